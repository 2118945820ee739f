//! Thin wrappers over the raw C API calls used on hot paths.
//!
//! magnus's high-level calls wrap every C call in `rb_protect`; the calls
//! here cannot raise (they only allocate, and Ruby handles out-of-memory by
//! itself), so they skip that cost. Anything that can run user code or raise
//! goes through magnus instead.
//!
//! Functions that read or change an object given as a raw `VALUE` are
//! `unsafe fn`: the caller promises the object is alive and of the right
//! type (their `# Safety` sections say exactly what). Functions that only
//! make new objects from Rust data are safe.
use rb_sys::{
    special_consts::{Qfalse, Qnil, Qtrue},
    VALUE,
};
use std::os::raw::{c_int, c_long};

mod strings;
pub use strings::*;

pub const NIL: VALUE = Qnil as VALUE;
pub const TRUE: VALUE = Qtrue as VALUE;
pub const FALSE: VALUE = Qfalse as VALUE;

/// A byte length as the C API's `long`. Ruby strings and Rust slices never
/// exceed `isize::MAX`, so this never truncates.
#[inline]
pub(super) fn clong(n: usize) -> c_long {
    n as c_long
}

/// The scalar (integer, float, nil, boolean) at the start of `bytes`, and
/// its length, if it is one and complete.
#[inline]
pub fn scalar_at(bytes: &[u8]) -> Option<(VALUE, usize)> {
    let lead = *bytes.first()?;
    let fixed = |n: usize| -> Option<u64> {
        let b = bytes.get(1..1 + n)?;
        let mut be = [0u8; 8];
        be[8 - n..].copy_from_slice(b);
        Some(u64::from_be_bytes(be))
    };
    Some(match lead {
        0x00..=0x7f => (uint(lead as u64), 1),
        0xe0..=0xff => (int(lead as i8 as i64), 1),
        0xc0 => (NIL, 1),
        0xc2 => (FALSE, 1),
        0xc3 => (TRUE, 1),
        0xca => (float(f32::from_bits(fixed(4)? as u32) as f64), 5),
        0xcb => (float(f64::from_bits(fixed(8)?)), 9),
        0xcc => (uint(fixed(1)?), 2),
        0xcd => (uint(fixed(2)?), 3),
        0xce => (uint(fixed(4)?), 5),
        0xcf => (uint(fixed(8)?), 9),
        0xd0 => (int(fixed(1)? as u8 as i8 as i64), 2),
        0xd1 => (int(fixed(2)? as u16 as i16 as i64), 3),
        0xd2 => (int(fixed(4)? as u32 as i32 as i64), 5),
        0xd3 => (int(fixed(8)? as i64), 9),
        _ => return None,
    })
}

#[inline]
pub fn uint(v: u64) -> VALUE {
    if v <= rb_sys::FIXNUM_MAX as u64 {
        // SAFETY: in Fixnum range.
        unsafe { rb_sys::LONG2FIX(v as c_long) }
    } else {
        // SAFETY: plain conversion.
        unsafe { rb_sys::rb_ull2inum(v) }
    }
}

#[inline]
pub fn int(v: i64) -> VALUE {
    if rb_sys::FIXABLE(v as c_long) {
        // SAFETY: in Fixnum range.
        unsafe { rb_sys::LONG2FIX(v as c_long) }
    } else {
        // SAFETY: plain conversion.
        unsafe { rb_sys::rb_ll2inum(v) }
    }
}

#[inline]
pub fn float(v: f64) -> VALUE {
    rb_sys::DBL2NUM(v)
}

#[inline]
pub fn ary_new_capa(capa: usize) -> VALUE {
    // SAFETY: plain allocation.
    unsafe { rb_sys::rb_ary_new_capa(clong(capa)) }
}

/// # Safety
/// `ary` must be a live, unfrozen Array we own; `v` a live object or immediate.
#[inline]
pub unsafe fn ary_push(ary: VALUE, v: VALUE) {
    // SAFETY: `ary` is a live, unfrozen Array we created.
    unsafe {
        rb_sys::rb_ary_push(ary, v);
    }
}

/// # Safety
/// `ary` must be a live Array.
#[inline]
pub unsafe fn ary_len(ary: VALUE) -> usize {
    // SAFETY: `ary` is a live Array.
    unsafe { rb_sys::RARRAY_LEN(ary) as usize }
}

/// Element `idx` of a live Array (nil past its end).
///
/// # Safety
/// `ary` must be a live Array.
#[inline]
pub unsafe fn ary_entry(ary: VALUE, idx: usize) -> VALUE {
    // SAFETY: `ary` is a live Array; rb_ary_entry bounds-checks.
    unsafe { rb_sys::rb_ary_entry(ary, idx as c_long) }
}

/// Shortens an Array we own to `len` elements.
///
/// # Safety
/// `ary` must be a live, unfrozen Array we own.
#[inline]
pub unsafe fn ary_truncate(ary: VALUE, len: usize) {
    // SAFETY: `ary` is a live, unfrozen Array we own.
    unsafe {
        rb_sys::rb_ary_resize(ary, len as c_long);
    }
}

/// # Safety
/// `ary` must be a live, unfrozen Array we own; `v` a live object or immediate.
#[inline]
pub unsafe fn ary_store(ary: VALUE, idx: usize, v: VALUE) {
    // SAFETY: `ary` is a live, unfrozen Array we own; rb_ary_store applies
    // the write barrier.
    unsafe { rb_sys::rb_ary_store(ary, idx as c_long, v) }
}

#[inline]
pub fn hash_new() -> VALUE {
    // SAFETY: plain allocation.
    unsafe { rb_sys::rb_hash_new() }
}

/// `Hash#[]=` for keys whose `hash`/`eql?` are Ruby's own (String, Symbol,
/// Integer, Float, nil, true, false), which cannot raise or run user code.
///
/// # Safety
/// `hash` must be a live, unfrozen Hash we made; `k` a key for which
/// [`has_builtin_hash`] holds, and `v` a live object or immediate.
#[inline]
pub unsafe fn hash_aset(hash: VALUE, k: VALUE, v: VALUE) {
    // SAFETY: `hash` is a live, unfrozen Hash we created.
    unsafe {
        rb_sys::rb_hash_aset(hash, k, v);
    }
}

/// # Safety
/// `v` must be a live object or immediate.
#[inline]
pub unsafe fn freeze(v: VALUE) -> VALUE {
    // SAFETY: freezing a live object we created.
    unsafe { rb_sys::rb_obj_freeze(v) }
}

/// # Safety
/// `v` must be a live object or immediate.
#[inline]
pub unsafe fn is_frozen(v: VALUE) -> bool {
    // Immediates are always frozen; otherwise the FL_FREEZE flag (what
    // `rb_obj_frozen_p` reads, without the call).
    // SAFETY: reading the flags word of a live heap object.
    rb_sys::SPECIAL_CONST_P(v)
        || unsafe { (*(v as *const rb_sys::RBasic)).flags }
            & rb_sys::ruby_fl_type::RUBY_FL_FREEZE as VALUE
            != 0
}

/// Whether a key's hashing is built in (see [`hash_aset`]): `CLASS_OF`
/// exactly String (no singleton class that could redefine `hash`), or a
/// Symbol, Integer, Float, nil, true or false.
///
/// # Safety
/// `k` must be a live object or immediate.
#[inline]
pub unsafe fn has_builtin_hash(k: VALUE) -> bool {
    use rb_sys::ruby_value_type::*;
    if rb_sys::SPECIAL_CONST_P(k) {
        return true;
    }
    // SAFETY: per the contract, a live heap object; rb_cString is a VM
    // global set at boot.
    match unsafe { rb_sys::RB_BUILTIN_TYPE(k) } {
        // SAFETY: as above.
        RUBY_T_STRING => unsafe { class_of(k) == rb_sys::rb_cString },
        RUBY_T_SYMBOL | RUBY_T_BIGNUM | RUBY_T_FLOAT => true,
        _ => false,
    }
}

/// A key `rb_hash_bulk_insert` may take as is: its hashing is built in and
/// `Hash#[]=` would store it unchanged (a String key only if it is frozen;
/// `[]=` stores a frozen copy of an unfrozen one).
///
/// # Safety
/// `k` must be a live object or immediate.
#[inline]
pub unsafe fn is_plain_key(k: VALUE) -> bool {
    // SAFETY: per the contract, `k` is a live object (heap unless special).
    unsafe {
        has_builtin_hash(k)
            && (rb_sys::SPECIAL_CONST_P(k)
                || rb_sys::RB_BUILTIN_TYPE(k) != rb_sys::ruby_value_type::RUBY_T_STRING
                || is_frozen(k))
    }
}

/// A Bignum as `Ok(u64)` (non-negative) or `Ok(i64)` (negative) when it
/// fits, or `Err(negative)` when it does not. Checks the size first
/// (`rb_absint_size` only counts digits), so the conversion calls that
/// follow cannot raise.
///
/// # Safety
/// `v` must be a live Bignum.
#[inline]
pub unsafe fn bignum_to_64(v: VALUE) -> Result<Result<u64, i64>, bool> {
    // SAFETY: `v` is a live Bignum.
    let negative = unsafe { rb_sys::RBIGNUM_NEGATIVE_P(v) };
    let mut nlz: c_int = 0;
    // SAFETY: as above; writes the leading-zero count of the top byte.
    let bytes = unsafe { rb_sys::rb_absint_size(v, &mut nlz) };
    if !negative {
        if bytes > 8 {
            return Err(false);
        }
        // SAFETY: |v| < 2**64, which rb_big2ull converts without raising.
        return Ok(Ok(unsafe { rb_sys::rb_big2ull(v) } as u64));
    }
    // -2**63 <= v: below 8 bytes, or 8 bytes with a clear top bit, or
    // exactly 2**63 in magnitude.
    // SAFETY: as above.
    let fits =
        bytes < 8 || (bytes == 8 && (nlz > 0 || unsafe { rb_sys::rb_absint_singlebit_p(v) } != 0));
    if !fits {
        return Err(true);
    }
    // SAFETY: -2**63 <= v < 0, which rb_big2ll converts without raising.
    Ok(Err(unsafe { rb_sys::rb_big2ll(v) } as i64))
}

/// `st_foreach`-style callback: key, value, argument.
pub type PairCallback = unsafe extern "C" fn(usize, usize, usize) -> c_int;
pub type StlikeForeachFn = unsafe extern "C" fn(VALUE, Option<PairCallback>, usize) -> c_int;

static HASH_STLIKE_FOREACH: std::sync::OnceLock<Option<StlikeForeachFn>> =
    std::sync::OnceLock::new();

/// `rb_hash_stlike_foreach`: iterates a Hash's table without the
/// `rb_ensure` frame (a setjmp) and iteration-level bookkeeping of
/// `rb_hash_foreach`, which cost more than the entries of a small Hash.
/// Exported by libruby since 2.7 but not in its public headers, so it is
/// looked up at load time (see [`resolve_hash_iteration`]) and callers fall
/// back to `rb_hash_foreach` without it. Only for callbacks that run no
/// Ruby code and never touch the Hash.
#[inline]
pub fn hash_stlike_foreach() -> Option<StlikeForeachFn> {
    HASH_STLIKE_FOREACH.get().copied().flatten()
}

/// Looks up `rb_hash_stlike_foreach` (at load, from the main Ractor).
pub fn resolve_hash_iteration() {
    HASH_STLIKE_FOREACH.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches
        // the process, where libruby is loaded.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"rb_hash_stlike_foreach".as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: the symbol is `int rb_hash_stlike_foreach(VALUE,
        // st_foreach_callback_func *, st_data_t)` (internal/hash.h), whose
        // ABI this type matches.
        Some(unsafe { std::mem::transmute::<*mut libc::c_void, StlikeForeachFn>(p) })
    });
}

/// `CLASS_OF`: the singleton class when there is one.
///
/// # Safety
/// `v` must be a live object or immediate.
#[inline]
pub unsafe fn class_of(v: VALUE) -> VALUE {
    // SAFETY: the class globals are set at VM boot; a non-special VALUE is a
    // live heap object whose RBasic header holds its class.
    unsafe {
        if !rb_sys::SPECIAL_CONST_P(v) {
            (*(v as *const rb_sys::RBasic)).klass
        } else if v == NIL {
            rb_sys::rb_cNilClass
        } else if v == TRUE {
            rb_sys::rb_cTrueClass
        } else if v == FALSE {
            rb_sys::rb_cFalseClass
        } else if rb_sys::FIXNUM_P(v) {
            rb_sys::rb_cInteger
        } else if rb_sys::FLONUM_P(v) {
            rb_sys::rb_cFloat
        } else {
            rb_sys::rb_cSymbol
        }
    }
}

/// # Safety
/// `v` must be a live object or immediate.
#[inline]
pub unsafe fn obj_class(v: VALUE) -> VALUE {
    // SAFETY: as above, skipping singleton classes.
    unsafe { rb_sys::rb_obj_class(v) }
}
