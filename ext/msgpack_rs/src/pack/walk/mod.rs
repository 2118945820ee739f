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

mod deep;
mod hash;
mod simple;

pub use simple::write_simple_to;
use simple::{array_class, hash_class, string_class};

/// `st_foreach` callback results.
const ST_CONTINUE: c_int = 0;
const ST_STOP: c_int = 1;

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
