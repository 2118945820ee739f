//! The packing walk: turns a Ruby object graph into MessagePack bytes.
//!
//! Type dispatch uses the raw object header (no magnus conversions), and
//! the output vector is borrowed only between calls into Ruby, so user code
//! (`to_msgpack(packer)`, ext packers) can write into the same packer.
use crate::errors;
use crate::packer::Packer;
use crate::raw;
use magnus::{
    prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Integer, RArray,
    RHash, RString, Symbol, Value,
};
use msgpack_rs_core::encode;
use rb_sys::{ruby_value_type::*, VALUE};
use std::os::raw::c_int;

/// Nesting beyond this raises SystemStackError (msgpack-ruby has no guard
/// and overflows Ruby's stack on cyclic data; we stop before the native
/// stack is at risk, also in non-main Ractors' smaller stacks).
const MAX_PACK_DEPTH: usize = 4096;

pub struct Walker<'a> {
    p: &'a Packer,
    me: Value,
}

impl<'a> Walker<'a> {
    pub fn new(p: &'a Packer, me: Value) -> Self {
        Walker { p, me }
    }

    pub fn write_value(&self, obj: Value, depth: usize) -> Result<(), Error> {
        let v = obj.as_raw();
        if rb_sys::SPECIAL_CONST_P(v) {
            if v == raw::NIL {
                return self.p.out(encode::write_nil);
            } else if v == raw::TRUE {
                return self.p.out(|o| encode::write_bool(o, true));
            } else if v == raw::FALSE {
                return self.p.out(|o| encode::write_bool(o, false));
            } else if rb_sys::FIXNUM_P(v) {
                // SAFETY: checked Fixnum.
                let i = unsafe { rb_sys::FIX2LONG(v) } as i64;
                return self.p.out(|o| encode::write_int(o, i));
            } else if rb_sys::FLONUM_P(v) {
                // SAFETY: checked Flonum.
                let f = unsafe { rb_sys::NUM2DBL(v) };
                return self.p.out(|o| encode::write_f64(o, f));
            } else if rb_sys::STATIC_SYM_P(v) {
                if let Some(sym) = Symbol::from_value(obj) {
                    return self.write_symbol(sym);
                }
            }
            return self.write_other(obj, depth);
        }
        // Plain Strings are the most common heap objects in real payloads:
        // test for them before the general type dispatch.
        if raw::class_of(v) == string_class() {
            if let Some(s) = RString::from_value(obj) {
                return self.write_rstring(s);
            }
        }
        // SAFETY: `v` is a live heap object.
        let t = unsafe { rb_sys::RB_BUILTIN_TYPE(v) };
        match t {
            RUBY_T_STRING => {
                if raw::class_of(v) != string_class() {
                    if let Some(hit) = self.p.lookup_ext(obj) {
                        return self.p.write_registered_ext(self.me, obj, hit);
                    }
                }
                match RString::from_value(obj) {
                    Some(s) => self.write_rstring(s),
                    None => self.write_other(obj, depth),
                }
            }
            RUBY_T_ARRAY => {
                if raw::class_of(v) != array_class() {
                    if let Some(hit) = self.p.lookup_ext(obj) {
                        return self.p.write_registered_ext(self.me, obj, hit);
                    }
                }
                match RArray::from_value(obj) {
                    Some(a) => self.write_array(a, depth),
                    None => self.write_other(obj, depth),
                }
            }
            RUBY_T_HASH => {
                if raw::class_of(v) != hash_class() {
                    if let Some(hit) = self.p.lookup_ext(obj) {
                        return self.p.write_registered_ext(self.me, obj, hit);
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
                self.p.out(|o| encode::write_f64(o, f))
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

    /// Ext lookup, then `obj.to_msgpack(packer)`.
    fn write_other(&self, obj: Value, _depth: usize) -> Result<(), Error> {
        if let Some(hit) = self.p.lookup_ext(obj) {
            return self.p.write_registered_ext(self.me, obj, hit);
        }
        let _: Value = obj.funcall("to_msgpack", (self.me,))?;
        Ok(())
    }

    pub fn write_integer(&self, i: Integer) -> Result<(), Error> {
        let v = i.as_raw();
        if rb_sys::FIXNUM_P(v) {
            // SAFETY: checked Fixnum.
            let n = unsafe { rb_sys::FIX2LONG(v) } as i64;
            return self.p.out(|o| encode::write_int(o, n));
        }
        // SAFETY: a Bignum.
        let positive = unsafe { rb_sys::RBIGNUM_POSITIVE_P(v) };
        if positive {
            if let Ok(u) = i.to_u64() {
                return self.p.out(|o| encode::write_uint(o, u));
            }
        } else if let Ok(n) = i.to_i64() {
            // msgpack-ruby quirk kept for byte compatibility: with an
            // oversized-integer ext registered, -2**63 goes through the ext.
            if !(n == i64::MIN && self.p.has_bigint_ext()) {
                return self.p.out(|o| encode::write_int(o, n));
            }
        }
        if self.p.has_bigint_ext() {
            if let Some(hit) = self.p.lookup_ext(i.as_value()) {
                return self.p.write_registered_ext(self.me, i.as_value(), hit);
            }
        }
        Err(errors::range_error(if positive {
            "bignum too big to convert into `unsigned long long'"
        } else {
            "bignum too big to convert into `long long'"
        }))
    }

    #[inline(always)]
    pub fn write_rstring(&self, s: RString) -> Result<(), Error> {
        let v = s.as_raw();
        let enc = raw::enc_index(v);
        let known = raw::enc_indexes();
        let compat = self.p.compat();
        if enc == known.binary {
            return self.write_body(s, compat, true);
        }
        if enc == known.utf8
            || enc == known.usascii
            // SAFETY: coderange scan of a live String.
            || unsafe { rb_sys::rb_enc_str_asciionly_p(v) } != 0
        {
            return self.write_body(s, compat, false);
        }
        let converted: Value = s.funcall("encode", ("UTF-8",))?;
        self.write_body(RString::try_convert(converted)?, compat, false)
    }

    /// Header and bytes of a str (or, `binary`, a bin) in one buffer visit
    /// unless the body is long enough to be referenced instead of copied.
    #[inline(always)]
    fn write_body(&self, s: RString, compat: bool, binary: bool) -> Result<(), Error> {
        // SAFETY: bytes of a live String; no Ruby call while they are used.
        let bytes = unsafe { raw::str_bytes(s.as_raw()) };
        let len = len32(bytes.len())?;
        let header = |o: &mut Vec<u8>| {
            if binary && !compat {
                encode::write_bin_header(o, len)
            } else {
                encode::write_str_header(o, len, compat)
            }
        };
        if bytes.len() > self.p.buffer_core().write_reference_threshold() {
            self.p.out(header)?;
            return self.p.put_body(s.as_value(), bytes);
        }
        self.p.out(|o| {
            o.reserve(bytes.len() + 5);
            header(o);
            o.extend_from_slice(bytes);
        })
    }

    pub fn write_symbol(&self, sym: Symbol) -> Result<(), Error> {
        if self.p.has_symbol_ext() {
            if let Some(hit) = self.p.lookup_ext(sym.as_value()) {
                return self.p.write_registered_ext(self.me, sym.as_value(), hit);
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

    pub fn write_array(&self, a: RArray, depth: usize) -> Result<(), Error> {
        if depth >= MAX_PACK_DEPTH {
            return Err(stack_too_deep());
        }
        let len = len32(a.len())?;
        self.p.out(|o| encode::write_array_header(o, len))?;
        let ary = a.as_raw();
        let mut i = 0usize;
        // Re-read the length each time: user code (to_msgpack) may change it.
        // SAFETY: `ary` is a live Array and `i` is within its current length.
        while i < len as usize && i < unsafe { rb_sys::RARRAY_LEN(ary) } as usize {
            let v = unsafe { rb_sys::RARRAY_AREF(ary, i as isize) };
            i += 1;
            // SAFETY: an element of a live Array.
            self.write_value(unsafe { Value::from_raw(v) }, depth + 1)?;
        }
        // Elements removed while packing: keep the output well-formed.
        while i < len as usize {
            self.p.out(encode::write_nil)?;
            i += 1;
        }
        Ok(())
    }

    pub fn write_hash(&self, h: RHash, depth: usize) -> Result<(), Error> {
        if depth >= MAX_PACK_DEPTH {
            return Err(stack_too_deep());
        }
        let len = len32(h.len())?;
        self.p.out(|o| encode::write_map_header(o, len))?;
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

struct HashCtx<'w, 'a> {
    walker: &'w Walker<'a>,
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
    encode::len_u32(n).map_err(|e| errors::arg_error(e.to_string()))
}

fn stack_too_deep() -> Error {
    let ruby = errors::ruby();
    let class = ruby
        .class_object()
        .const_get::<_, magnus::ExceptionClass>("SystemStackError")
        .unwrap_or_else(|_| ruby.exception_standard_error());
    Error::new(class, "stack level too deep")
}
