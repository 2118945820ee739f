//! The objects a walk writes without a Ruby call, an allocation or an ext
//! lookup, and the core classes that need no lookup.
use super::*;

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

// The core classes: VM globals set at boot and never changed. An object
// whose class is exactly one of these (no subclass, no singleton class)
// never needs an ext lookup.
#[inline(always)]
pub(super) fn string_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cString }
}

#[inline(always)]
pub(super) fn array_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cArray }
}

#[inline(always)]
pub(super) fn hash_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cHash }
}

#[inline(always)]
pub(super) fn float_class() -> VALUE {
    // SAFETY: reading a VM global set at boot (see above).
    unsafe { rb_sys::rb_cFloat }
}
