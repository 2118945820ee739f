//! Ractor helpers: which Ractor we are in, and whether an object may be
//! touched from any Ractor.
use crate::errors;
use magnus::{prelude::*, value::ReprValue, Error, ExceptionClass, Value};
use rb_sys::VALUE;

// This backs the public inline function `rb_ractor_shareable_p` of
// ruby/ractor.h; bindgen does not emit inline functions, so we declare what it
// calls. Exported by every supported Ruby (3.1-3.4).
extern "C" {
    fn rb_ractor_shareable_p_continue(obj: VALUE) -> bool;
}

/// True in the main Ractor.
///
/// Ruby has no public "am I the main Ractor" call (`rb_ractor_main_p_` and
/// `ruby_single_main_ractor` are private, and 3.3+ no longer export them), so
/// the id kept in Ractor-local storage tells: [`init`] stores 0 in the main
/// Ractor's storage at load time, and every other Ractor gets a fresh id.
#[inline]
pub fn in_main_ractor() -> bool {
    current_id() == 0
}

/// `Ractor.shareable?(obj)`.
#[inline]
pub fn is_shareable(obj: VALUE) -> bool {
    if rb_sys::SPECIAL_CONST_P(obj) {
        return true;
    }
    // SAFETY: flags of a live heap object, then the VM's deep check.
    unsafe {
        let flags = (*(obj as *const rb_sys::RBasic)).flags;
        flags & (rb_sys::ruby_fl_type::RUBY_FL_SHAREABLE as VALUE) != 0
            || rb_ractor_shareable_p_continue(obj)
    }
}

/// Marks an object shareable without freezing it. Only for objects whose
/// every method is safe to call from any Ractor at once (see Factory).
pub fn mark_shareable(obj: VALUE) {
    // SAFETY: setting a flag bit on a live heap object we own.
    unsafe {
        (*(obj as *mut rb_sys::RBasic)).flags |= rb_sys::ruby_fl_type::RUBY_FL_SHAREABLE as VALUE;
    }
}

/// Ractor-local storage key for [`current_id`] (made at load time).
static ID_KEY: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Makes the Ractor-local key and tags the loading Ractor as the main one
/// (extensions can only be loaded by the main Ractor).
pub fn init() {
    // SAFETY: plain C API call at load time.
    let key = unsafe { rb_sys::rb_ractor_local_storage_value_newkey() };
    let _ = ID_KEY.set(key as usize);
    // SAFETY: storing a Fixnum under our key, in the main Ractor.
    unsafe { rb_sys::rb_ractor_local_storage_value_set(key, rb_sys::LONG2FIX(0)) };
}

/// An id for the current Ractor: 0 for the main Ractor, otherwise a
/// process-unique number kept in Ractor-local storage (never reused).
pub fn current_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let Some(&key) = ID_KEY.get() else {
        return u64::MAX;
    };
    let key = key as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; values stored are Fixnums.
    let v = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    if rb_sys::FIXNUM_P(v) {
        // SAFETY: checked Fixnum.
        return unsafe { rb_sys::FIX2LONG(v) } as u64;
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: storing a Fixnum under our key.
    unsafe { rb_sys::rb_ractor_local_storage_value_set(key, rb_sys::LONG2FIX(id as _)) };
    id
}

/// The current Ractor's id if it has one: `None` for a Ractor that never
/// used this library (so it owns none of its objects). Allocates nothing, so
/// GC callbacks may call it.
#[inline]
pub fn known_current_id() -> Option<u64> {
    let key = *ID_KEY.get()? as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; a lookup only.
    let v = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    // SAFETY: checked Fixnum.
    rb_sys::FIXNUM_P(v).then(|| unsafe { rb_sys::FIX2LONG(v) } as u64)
}

/// Whether `callable`, registered from Ractor `owner` (see [`current_id`]),
/// may be called or handed out here: shareable objects anywhere, others
/// only in the Ractor that registered them.
#[inline]
pub fn callable_here(callable: VALUE, owner: u64) -> bool {
    is_shareable(callable) || (owner == 0 && in_main_ractor()) || owner == current_id()
}

/// Fails unless `callable` (registered from Ractor `owner`) may be called
/// from the current Ractor.
pub fn check_callable_owned(
    callable: VALUE,
    owner: u64,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    if callable_here(callable, owner) {
        return Ok(());
    }
    Err(isolation_error(what))
}

/// Fails unless `callable` may be called from the current Ractor.
pub fn check_callable(callable: VALUE, what: impl FnOnce() -> String) -> Result<(), Error> {
    if is_shareable(callable) || in_main_ractor() {
        return Ok(());
    }
    Err(isolation_error(what))
}

fn isolation_error(what: impl FnOnce() -> String) -> Error {
    let ruby = errors::ruby();
    let class = ruby
        .class_object()
        .const_get::<_, Value>("Ractor")
        .and_then(|r| r.funcall::<_, _, Value>("const_get", ("IsolationError",)))
        .ok()
        .and_then(ExceptionClass::from_value)
        .unwrap_or_else(|| ruby.exception_runtime_error());
    Error::new(
        class,
        format!(
            "{} is not shareable, so it cannot be called from another Ractor than the one \
             that registered it; register a shareable Proc (Ractor.make_shareable) or a \
             method name Symbol",
            what()
        ),
    )
}
