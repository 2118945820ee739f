//! The packing walk: turns a Ruby object graph into MessagePack bytes.
//!
//! Type dispatch uses the raw object header (no magnus conversions). The
//! walker takes the packer's output vector for the whole walk and writes to
//! it directly; before any call that can run Ruby code (`to_msgpack`, ext
//! packers, transcoding) it hands the vector back, so user code writing to
//! the same packer appends in order, and takes it again afterwards.
use crate::pack::ext_lookup::{ExtHit, ExtLookup};
use crate::pack::out_buf::OutBuf;
use crate::pack::output::PackOutput;
use crate::runtime::errors;
use crate::runtime::raw;
use magnus::{
    prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Integer, RArray,
    RHash, RString, Symbol, Value,
};
use msgpack_rs_core::encode::{self, Sink};
use rb_sys::{ruby_value_type::*, VALUE};
use std::os::raw::c_int;

/// Containers nested deeper than this are walked with an explicit stack
/// (see [`Walker::write_deep`]), so the machine stack never limits how deep
/// data may be (the C gem packs 100,000 nested Arrays; so do we).
const DEEP_FROM: usize = 64;

/// The default for the packer's `max_depth` option: nesting beyond it raises
/// SystemStackError, as the C gem's recursion does for cyclic data.
pub const DEFAULT_MAX_DEPTH: usize = 1_000_000;

/// What a walk reads from its packer's options, once per walk (user code
/// cannot change them mid-walk: `initialize`/`reconfigure` set them).
#[derive(Clone, Copy)]
pub struct WalkSettings {
    /// `compatibility_mode`: no str8 and no bin types.
    pub compat: bool,
    /// Nesting beyond it raises SystemStackError.
    pub max_depth: usize,
}

pub struct Walker<'a> {
    /// Where the bytes go, and who gets them back around Ruby calls.
    output: &'a PackOutput,
    /// Ext-type registrations (the walk never asks the Packer).
    ext: &'a ExtLookup,
    /// The Ruby Packer, handed to `to_msgpack` and recursive ext packers.
    me: Value,
    /// The packer's output tail while the walker holds it (see module docs).
    out: OutBuf,
    /// Packer settings read once per walk (user code cannot change them
    /// mid-walk: they are set by `initialize`/`reconfigure` only).
    compat: bool,
    reference_threshold: usize,
    max_depth: usize,
    enc: raw::EncIndexes,
}

impl Drop for Walker<'_> {
    fn drop(&mut self) {
        // Errors end the walk too: what was written stays in the packer
        // (a direct String is the fast path's own, discarded on error).
        if !self.out.is_string() {
            let _ = self.output.give_back_tail(self.out.take_vec());
        }
    }
}

impl<'a> Walker<'a> {
    pub fn new(
        output: &'a PackOutput,
        ext: &'a ExtLookup,
        settings: WalkSettings,
        me: Value,
    ) -> Result<Self, Error> {
        let threshold = output.buf.write_reference_threshold();
        Ok(Walker::with_out(
            output,
            ext,
            settings,
            me,
            OutBuf::from_vec(output.take_tail()?),
            threshold,
        ))
    }

    fn with_out(
        output: &'a PackOutput,
        ext: &'a ExtLookup,
        settings: WalkSettings,
        me: Value,
        out: OutBuf,
        reference_threshold: usize,
    ) -> Self {
        Walker {
            output,
            ext,
            me,
            out,
            compat: settings.compat,
            reference_threshold,
            max_depth: settings.max_depth,
            enc: raw::enc_indexes(),
        }
    }

    /// A walker writing straight into a new String of `capacity` bytes
    /// (see out_buf.rs), when the packer holds nothing yet; otherwise an
    /// ordinary one. Long Strings are copied rather than referenced: the
    /// output is one String either way.
    pub fn new_direct(
        output: &'a PackOutput,
        ext: &'a ExtLookup,
        settings: WalkSettings,
        me: Value,
        capacity: usize,
    ) -> Result<Self, Error> {
        if !output.buf.is_empty()? {
            return Walker::new(output, ext, settings, me);
        }
        Ok(Walker::with_out(
            output,
            ext,
            settings,
            me,
            OutBuf::new_string(capacity),
            usize::MAX,
        ))
    }

    /// The output String of a direct walker that stayed direct; `None`
    /// when the output is in the packer (Ruby callbacks ran).
    pub fn finish(mut self) -> Option<RString> {
        let s = self.out.take_string()?;
        // SAFETY: a live String we made.
        RString::from_value(unsafe { Value::from_raw(s) })
    }

    /// Runs `f` (which may run Ruby code and write to the packer) with the
    /// output handed back to the packer.
    fn synced<R>(&mut self, f: impl FnOnce(&PackOutput) -> Result<R, Error>) -> Result<R, Error> {
        // (A direct String turns into an ordinary packer buffer here.)
        self.output.give_back_tail(self.out.take_vec())?;
        let r = f(self.output);
        self.out = OutBuf::from_vec(self.output.take_tail()?);
        r
    }

    /// Writes the objects that need no Ruby call, no allocation and no ext
    /// lookup (see [`write_simple_to`]). Callers rely on it never running
    /// Ruby code or the GC.
    #[inline(always)]
    fn write_simple(&mut self, v: VALUE) -> bool {
        write_simple_to(
            &mut self.out,
            v,
            self.compat,
            self.reference_threshold,
            self.enc,
        )
    }

    #[inline(always)]
    pub fn write_value(&mut self, obj: Value, depth: usize) -> Result<(), Error> {
        if self.write_simple(obj.as_raw()) {
            return Ok(());
        }
        self.write_general(obj, depth)
    }

    /// Everything [`Walker::write_simple`] leaves out.
    #[inline(never)]
    fn write_general(&mut self, obj: Value, depth: usize) -> Result<(), Error> {
        let v = obj.as_raw();
        if rb_sys::SPECIAL_CONST_P(v) {
            if v == raw::NIL {
                encode::write_nil(&mut self.out);
                return Ok(());
            } else if v == raw::TRUE {
                encode::write_bool(&mut self.out, true);
                return Ok(());
            } else if v == raw::FALSE {
                encode::write_bool(&mut self.out, false);
                return Ok(());
            } else if rb_sys::FIXNUM_P(v) {
                // SAFETY: checked Fixnum.
                let i = unsafe { rb_sys::FIX2LONG(v) } as i64;
                encode::write_int(&mut self.out, i);
                return Ok(());
            } else if rb_sys::FLONUM_P(v) {
                // SAFETY: checked Flonum.
                let f = unsafe { rb_sys::NUM2DBL(v) };
                encode::write_f64(&mut self.out, f);
                return Ok(());
            } else if rb_sys::STATIC_SYM_P(v) {
                if let Some(sym) = Symbol::from_value(obj) {
                    return self.write_symbol(sym);
                }
            }
            return self.write_other(obj, depth);
        }
        // Plain Strings are the most common heap objects in real payloads:
        // test for them before the general type dispatch.
        // SAFETY: a live object (or immediate) the caller holds.
        if unsafe { raw::class_of(v) } == string_class() {
            if let Some(s) = RString::from_value(obj) {
                return self.write_rstring(s);
            }
        }
        // SAFETY: `v` is a live heap object.
        let t = unsafe { rb_sys::RB_BUILTIN_TYPE(v) };
        match t {
            RUBY_T_STRING => {
                // SAFETY: a live object (or immediate) the caller holds.
                if unsafe { raw::class_of(v) } != string_class() {
                    if let Some(hit) = self.ext.lookup(obj) {
                        return self.write_ext(obj, hit);
                    }
                }
                match RString::from_value(obj) {
                    Some(s) => self.write_rstring(s),
                    None => self.write_other(obj, depth),
                }
            }
            RUBY_T_ARRAY => {
                // SAFETY: a live object (or immediate) the caller holds.
                if unsafe { raw::class_of(v) } != array_class() {
                    if let Some(hit) = self.ext.lookup(obj) {
                        return self.write_ext(obj, hit);
                    }
                }
                match RArray::from_value(obj) {
                    Some(a) => self.write_array(a, depth),
                    None => self.write_other(obj, depth),
                }
            }
            RUBY_T_HASH => {
                // SAFETY: a live object (or immediate) the caller holds.
                if unsafe { raw::class_of(v) } != hash_class() {
                    if let Some(hit) = self.ext.lookup(obj) {
                        return self.write_ext(obj, hit);
                    }
                }
                match RHash::from_value(obj) {
                    Some(h) => self.write_hash(h, depth),
                    None => self.write_other(obj, depth),
                }
            }
            RUBY_T_FLOAT => {
                // SAFETY: checked Float.
                let f = unsafe { rb_sys::NUM2DBL(v) };
                encode::write_f64(&mut self.out, f);
                Ok(())
            }
            RUBY_T_BIGNUM => match Integer::from_value(obj) {
                Some(i) => self.write_integer(i),
                None => self.write_other(obj, depth),
            },
            RUBY_T_SYMBOL => match Symbol::from_value(obj) {
                Some(sym) => self.write_symbol(sym),
                None => self.write_other(obj, depth),
            },
            _ => self.write_other(obj, depth),
        }
    }

    /// `obj` through its registered ext packer.
    fn write_ext(&mut self, obj: Value, hit: ExtHit) -> Result<(), Error> {
        let me = self.me;
        self.synced(|p| p.write_registered_ext(me, obj, hit))
    }

    /// Ext lookup, then `obj.to_msgpack(packer)`.
    fn write_other(&mut self, obj: Value, _depth: usize) -> Result<(), Error> {
        if let Some(hit) = self.ext.lookup(obj) {
            return self.write_ext(obj, hit);
        }
        let me = self.me;
        self.synced(|_| {
            let _: Value = obj.funcall("to_msgpack", (me,))?;
            Ok(())
        })
    }

    pub fn write_integer(&mut self, i: Integer) -> Result<(), Error> {
        let v = i.as_raw();
        if rb_sys::FIXNUM_P(v) {
            // SAFETY: checked Fixnum.
            let n = unsafe { rb_sys::FIX2LONG(v) } as i64;
            encode::write_int(&mut self.out, n);
            return Ok(());
        }
        // SAFETY: a live Bignum (type checked above).
        let negative = match unsafe { raw::bignum_to_64(v) } {
            Ok(Ok(u)) => {
                encode::write_uint(&mut self.out, u);
                return Ok(());
            }
            // msgpack-ruby quirk kept for byte compatibility: with an
            // oversized-integer ext registered, -2**63 goes through the ext.
            Ok(Err(n)) if !(n == i64::MIN && self.ext.has_bigint_ext()) => {
                encode::write_int(&mut self.out, n);
                return Ok(());
            }
            Ok(Err(_)) => true,
            Err(negative) => negative,
        };
        if self.ext.has_bigint_ext() {
            if let Some(hit) = self.ext.lookup(i.as_value()) {
                return self.write_ext(i.as_value(), hit);
            }
        }
        Err(errors::bignum_too_big(negative))
    }

    #[inline(always)]
    pub fn write_rstring(&mut self, s: RString) -> Result<(), Error> {
        let v = s.as_raw();
        // SAFETY: a live String the caller holds.
        let enc = unsafe { raw::enc_index(v) };
        let known = self.enc;
        if enc == known.binary {
            return self.write_body(s, true);
        }
        if enc == known.utf8
            || enc == known.usascii
            // SAFETY: coderange scan of a live String.
            || unsafe { rb_sys::rb_enc_str_asciionly_p(v) } != 0
        {
            return self.write_body(s, false);
        }
        let converted = self.synced(|_| {
            let c: Value = s.funcall("encode", ("UTF-8",))?;
            RString::try_convert(c)
        })?;
        self.write_body(converted, false)
    }

    /// Header and bytes of a str (or, `binary`, a bin), unless the body is
    /// long enough to be referenced instead of copied.
    #[inline(always)]
    fn write_body(&mut self, s: RString, binary: bool) -> Result<(), Error> {
        // SAFETY: bytes of a live String; no Ruby call while they are used.
        let bytes = unsafe { raw::str_bytes(s.as_raw()) };
        let len = len32(bytes.len())?;
        if bytes.len() > self.reference_threshold {
            self.put_string_header(len, binary);
            return self.synced(|p| p.put_body(s.as_value(), bytes));
        }
        self.out.reserve(bytes.len() + 5);
        self.put_string_header(len, binary);
        self.out.put_slice(bytes);
        Ok(())
    }

    /// A str header, or (`binary`, outside compatibility mode) a bin one.
    #[inline(always)]
    fn put_string_header(&mut self, len: u32, binary: bool) {
        if binary && !self.compat {
            encode::write_bin_header(&mut self.out, len);
        } else {
            encode::write_str_header(&mut self.out, len, self.compat);
        }
    }

    pub fn write_symbol(&mut self, sym: Symbol) -> Result<(), Error> {
        if self.ext.has_symbol_ext() {
            if let Some(hit) = self.ext.lookup(sym.as_value()) {
                return self.write_ext(sym.as_value(), hit);
            }
        }
        // SAFETY: Symbol#name as a frozen String.
        let name = unsafe { rb_sys::rb_sym2str(sym.as_raw()) };
        // SAFETY: a live String.
        match RString::from_value(unsafe { Value::from_raw(name) }) {
            Some(s) => self.write_rstring(s),
            None => Err(errors::type_error("Symbol without a name")),
        }
    }

    pub fn write_array(&mut self, a: RArray, depth: usize) -> Result<(), Error> {
        if depth >= DEEP_FROM {
            return self.write_deep(a.as_raw(), depth);
        }
        if depth >= self.max_depth {
            return Err(errors::stack_too_deep());
        }
        check_depth(depth)?;
        let len = len32(a.len())?;
        // Every element takes at least a byte.
        self.out.reserve(len as usize + 5);
        encode::write_array_header(&mut self.out, len);
        let ary = a.as_raw();
        let len = len as usize;
        let mut i = 0usize;
        'runs: while i < len {
            // Re-read the elements after anything that may have run Ruby
            // code or the GC: user code (to_msgpack) may change the Array,
            // and the GC may move its elements (transient heap).
            // SAFETY: `ary` is a live Array.
            let (ptr, now) = unsafe { (rb_sys::RARRAY_CONST_PTR(ary), rb_sys::RARRAY_LEN(ary)) };
            let end = len.min(now as usize);
            while i < end {
                // SAFETY: `i < end <= RARRAY_LEN`, and nothing since the read
                // above ran Ruby code or the GC (write_simple never does).
                let v = unsafe { *ptr.add(i) };
                i += 1;
                if !self.write_simple(v) {
                    // SAFETY: an element of a live Array.
                    self.write_general(unsafe { Value::from_raw(v) }, depth + 1)?;
                    continue 'runs;
                }
            }
            break;
        }
        // Elements removed while packing: keep the output well-formed.
        while i < len {
            encode::write_nil(&mut self.out);
            i += 1;
        }
        Ok(())
    }

    pub fn write_hash(&mut self, h: RHash, depth: usize) -> Result<(), Error> {
        if depth >= DEEP_FROM {
            return self.write_deep(h.as_raw(), depth);
        }
        if depth >= self.max_depth {
            return Err(errors::stack_too_deep());
        }
        check_depth(depth)?;
        let len = len32(h.len())?;
        self.out.reserve(2 * len as usize + 5);
        encode::write_map_header(&mut self.out, len);
        if len as usize <= SMALL_HASH && depth < SMALL_HASH_MAX_DEPTH {
            if let Some(foreach) = raw::hash_stlike_foreach() {
                return self.write_small_hash(h, len as usize, depth, foreach);
            }
        }
        let mut ctx = HashCtx {
            walker: self,
            depth: depth + 1,
            err: None,
        };
        // SAFETY: `each_pair` only runs our callback, which never raises
        // (errors are stored in `ctx` and iteration stops).
        unsafe {
            rb_sys::rb_hash_foreach(
                h.as_raw(),
                Some(each_pair),
                &mut ctx as *mut HashCtx as VALUE,
            );
        }
        match ctx.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The entries of a small Hash, copied out first (no Ruby code runs
    /// while the table is walked), then written. The copies live in a
    /// local array on the machine stack, where the GC finds (and pins)
    /// them, so a `to_msgpack` that deletes entries cannot free an object
    /// still to be written.
    fn write_small_hash(
        &mut self,
        h: RHash,
        len: usize,
        depth: usize,
        foreach: raw::StlikeForeachFn,
    ) -> Result<(), Error> {
        let mut pairs = SmallPairs {
            kv: [raw::NIL; 2 * SMALL_HASH],
            n: 0,
        };
        // SAFETY: `collect_pair` only copies into `pairs` (no Ruby code, no
        // allocation) and stops when it is full.
        unsafe {
            foreach(
                h.as_raw(),
                Some(collect_pair),
                &mut pairs as *mut SmallPairs as usize,
            )
        };
        let n = pairs.n.min(len);
        for i in 0..n {
            let (k, v) = (pairs.kv[2 * i], pairs.kv[2 * i + 1]);
            // SAFETY: entries of a live Hash, kept alive by `pairs`.
            let (k, v) = unsafe { (Value::from_raw(k), Value::from_raw(v)) };
            self.write_value(k, depth + 1)?;
            self.write_value(v, depth + 1)?;
        }
        // Fewer entries than the header said (cannot happen: nothing ran
        // in between): keep the output well-formed.
        for _ in n..len {
            encode::write_nil(&mut self.out);
            encode::write_nil(&mut self.out);
        }
        std::hint::black_box(&pairs);
        Ok(())
    }
}

/// Writes `v` to `out` if it needs no Ruby call, no allocation and no ext
/// lookup: nil, booleans, Fixnums, Floats, and plain Strings (class exactly
/// String) in UTF-8, US-ASCII or binary up to `reference_threshold` bytes.
/// Returns false, having written nothing, for anything else. Never runs Ruby
/// code or the GC.
#[inline(always)]
pub fn write_simple_to<S: Sink>(
    out: &mut S,
    v: VALUE,
    compat: bool,
    reference_threshold: usize,
    known: raw::EncIndexes,
) -> bool {
    if rb_sys::SPECIAL_CONST_P(v) {
        if rb_sys::FIXNUM_P(v) {
            // SAFETY: checked Fixnum.
            let i = unsafe { rb_sys::FIX2LONG(v) } as i64;
            encode::write_int(out, i);
        } else if rb_sys::FLONUM_P(v) {
            // SAFETY: checked Flonum (decoded inline, no call).
            let f = unsafe { rb_sys::NUM2DBL(v) };
            encode::write_f64(out, f);
        } else if v == raw::NIL {
            encode::write_nil(out);
        } else if v == raw::TRUE || v == raw::FALSE {
            encode::write_bool(out, v == raw::TRUE);
        } else {
            return false;
        }
        return true;
    }
    // SAFETY: a live object (or immediate) the caller holds.
    let klass = unsafe { raw::class_of(v) };
    if klass == string_class() {
        // SAFETY: a live String the caller holds.
        let enc = unsafe { raw::enc_index(v) };
        let binary = enc == known.binary;
        if !(binary || enc == known.utf8 || enc == known.usascii) {
            return false;
        }
        // SAFETY: bytes of a live String, copied before any Ruby call.
        let bytes = unsafe { raw::str_bytes(v) };
        if bytes.len() > reference_threshold || bytes.len() > u32::MAX as usize {
            return false;
        }
        let len = bytes.len() as u32;
        if binary && !compat {
            encode::write_bin_header(out, len);
        } else {
            encode::write_str_header(out, len, compat);
        }
        out.put_slice(bytes);
        return true;
    }
    if klass == float_class() {
        // SAFETY: a heap Float (no call beyond reading its value).
        let f = unsafe { rb_sys::rb_float_value(v) };
        encode::write_f64(out, f);
        return true;
    }
    false
}

/// A container being walked by [`Walker::write_deep`]. Its elements are read
/// from `held`, a Ruby Array on the machine stack (so the GC sees, and pins,
/// everything in it): an Array is held itself; a Hash's pairs are copied in.
enum DeepFrame {
    Array { ary: VALUE, next: usize, len: usize },
    Pairs { next: usize, end: usize },
}

impl Walker<'_> {
    /// Writes `root` (an Array or Hash at `depth`) and everything in it,
    /// keeping nested Arrays and Hashes on a heap stack instead of the
    /// machine stack. Other objects (strings, ext types, `to_msgpack`) go
    /// through the ordinary walk.
    #[inline(never)]
    fn write_deep(&mut self, root: VALUE, depth: usize) -> Result<(), Error> {
        let held = raw::ary_new_capa(16);
        let mut frames: Vec<(DeepFrame, usize)> = Vec::new();
        self.open_deep(root, depth, held, &mut frames)?;
        while let Some((frame, mark)) = frames.last_mut() {
            let v = match frame {
                DeepFrame::Array { ary, next, len } => {
                    if *next >= *len {
                        let mark = *mark;
                        frames.pop();
                        // SAFETY: an Array this code owns, alive on the stack.
                        unsafe { raw::ary_truncate(held, mark) };
                        continue;
                    }
                    // Re-read: callbacks may have changed the Array (an
                    // element removed meanwhile is written as nil, keeping
                    // the output well-formed).
                    // SAFETY: an Array this code owns or holds, alive on the stack.
                    let v = if *next < unsafe { raw::ary_len(*ary) } {
                        // SAFETY: an Array this code owns or holds, alive on the stack.
                        unsafe { raw::ary_entry(*ary, *next) }
                    } else {
                        raw::NIL
                    };
                    *next += 1;
                    v
                }
                DeepFrame::Pairs { next, end, .. } => {
                    if *next >= *end {
                        let mark = *mark;
                        frames.pop();
                        // SAFETY: an Array this code owns, alive on the stack.
                        unsafe { raw::ary_truncate(held, mark) };
                        continue;
                    }
                    // SAFETY: an Array this code owns or holds, alive on the stack.
                    let v = unsafe { raw::ary_entry(held, *next) };
                    *next += 1;
                    v
                }
            };
            if self.write_simple(v) {
                continue;
            }
            let d = depth + frames.len();
            if self.is_walkable_container(v) {
                self.open_deep(v, d, held, &mut frames)?;
            } else {
                // SAFETY: a live object held by `held` or its container.
                self.write_general(unsafe { Value::from_raw(v) }, d)?;
            }
        }
        std::hint::black_box(held);
        Ok(())
    }

    /// An Array or Hash with no ext type registered for it (what the
    /// ordinary walk would write as a plain container).
    fn is_walkable_container(&self, v: VALUE) -> bool {
        if rb_sys::SPECIAL_CONST_P(v) {
            return false;
        }
        // SAFETY: `v` is a live heap object.
        let (t, klass) = (unsafe { rb_sys::RB_BUILTIN_TYPE(v) }, unsafe {
            raw::class_of(v)
        });
        let core = match t {
            RUBY_T_ARRAY => array_class(),
            RUBY_T_HASH => hash_class(),
            _ => return false,
        };
        // SAFETY: a live object.
        klass == core || self.ext.lookup(unsafe { Value::from_raw(v) }).is_none()
    }

    /// Writes the header of the Array or Hash `v` at depth `depth` and
    /// pushes a frame for its elements.
    fn open_deep(
        &mut self,
        v: VALUE,
        depth: usize,
        held: VALUE,
        frames: &mut Vec<(DeepFrame, usize)>,
    ) -> Result<(), Error> {
        if depth >= self.max_depth {
            return Err(errors::stack_too_deep());
        }
        // SAFETY: an Array this code owns or holds, alive on the stack.
        let mark = unsafe { raw::ary_len(held) };
        // SAFETY: `v` is a live Array or Hash (checked by the caller).
        if unsafe { rb_sys::RB_BUILTIN_TYPE(v) } == RUBY_T_ARRAY {
            // SAFETY: an Array this code owns or holds, alive on the stack.
            let len = len32(unsafe { raw::ary_len(v) })?;
            encode::write_array_header(&mut self.out, len);
            // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
            unsafe { raw::ary_push(held, v) };
            frames.push((
                DeepFrame::Array {
                    ary: v,
                    next: 0,
                    len: len as usize,
                },
                mark,
            ));
        } else {
            // SAFETY: a live Hash.
            let len = len32(unsafe { rb_sys::RHASH_SIZE(v) } as usize)?;
            encode::write_map_header(&mut self.out, len);
            // SAFETY: `push_pair` only appends to `held` (an allocation,
            // never Ruby code, never a change to the Hash).
            unsafe { rb_sys::rb_hash_foreach(v, Some(push_pair), held) };
            // Exactly `len` pairs: the header is written already.
            let end = mark + 2 * len as usize;
            // SAFETY: an Array this code owns or holds, alive on the stack.
            while unsafe { raw::ary_len(held) } < end {
                // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
                unsafe { raw::ary_push(held, raw::NIL) };
            }
            // SAFETY: an Array this code owns, alive on the stack.
            unsafe { raw::ary_truncate(held, end) };
            frames.push((DeepFrame::Pairs { next: mark, end }, mark));
        }
        Ok(())
    }
}

extern "C" fn push_pair(k: VALUE, v: VALUE, held: VALUE) -> c_int {
    // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
    unsafe { raw::ary_push(held, k) };
    // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
    unsafe { raw::ary_push(held, v) };
    ST_CONTINUE
}

/// Hashes up to this many entries are packed through [`SmallPairs`].
const SMALL_HASH: usize = 16;
/// ...at nesting depths below this (bounding the extra stack per level).
const SMALL_HASH_MAX_DEPTH: usize = 256;

struct SmallPairs {
    kv: [VALUE; 2 * SMALL_HASH],
    n: usize,
}

extern "C" fn collect_pair(k: usize, v: usize, arg: usize) -> c_int {
    // SAFETY: `arg` is the `SmallPairs` of `write_small_hash`, alive for
    // the whole iteration.
    let pairs = unsafe { &mut *(arg as *mut SmallPairs) };
    if pairs.n >= SMALL_HASH {
        return ST_STOP;
    }
    pairs.kv[2 * pairs.n] = k as VALUE;
    pairs.kv[2 * pairs.n + 1] = v as VALUE;
    pairs.n += 1;
    ST_CONTINUE
}

// The core classes: VM globals set at boot and never changed. An object
// whose class is exactly one of these (no subclass, no singleton class)
// never needs an ext lookup.
#[inline(always)]
fn string_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cString }
}

#[inline(always)]
fn array_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cArray }
}

#[inline(always)]
fn hash_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cHash }
}

#[inline(always)]
fn float_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cFloat }
}

struct HashCtx<'w, 'a> {
    walker: &'w mut Walker<'a>,
    depth: usize,
    err: Option<Error>,
}

const ST_CONTINUE: c_int = 0;
const ST_STOP: c_int = 1;

extern "C" fn each_pair(k: VALUE, v: VALUE, arg: VALUE) -> c_int {
    // SAFETY: `arg` is the `HashCtx` passed by `write_hash`, alive for the
    // whole iteration.
    let ctx = unsafe { &mut *(arg as *mut HashCtx) };
    // SAFETY: key and value are live objects of the Hash.
    let (k, v) = unsafe { (Value::from_raw(k), Value::from_raw(v)) };
    let r = ctx
        .walker
        .write_value(k, ctx.depth)
        .and_then(|()| ctx.walker.write_value(v, ctx.depth));
    match r {
        Ok(()) => ST_CONTINUE,
        Err(e) => {
            ctx.err = Some(e);
            ST_STOP
        }
    }
}

#[inline(always)]
fn len32(n: usize) -> Result<u32, Error> {
    encode::len_u32(n).map_err(errors::too_long)
}

/// Nesting the recursive walk may not go into: from a moderate depth on,
/// the machine stack Ruby has left (threads of non-main Ractors have small
/// ones; `to_msgpack` callbacks nest the walk through Ruby frames).
/// Stopping here raises a clean SystemStackError; letting Ruby's own check
/// fire inside `rb_hash_foreach` would unwind through this walk without
/// running its cleanup.
#[inline(always)]
fn check_depth(depth: usize) -> Result<(), Error> {
    // Shallow data cannot exhaust any Ruby thread's stack: no call for it.
    // SAFETY: plain C API call; it only compares stack addresses.
    if depth >= STACK_CHECK_FROM && unsafe { rb_sys::ruby_stack_check() } != 0 {
        return Err(errors::stack_too_deep());
    }
    Ok(())
}

/// Depth from which every container checks the remaining machine stack.
const STACK_CHECK_FROM: usize = 64;
