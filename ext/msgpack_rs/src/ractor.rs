//! Ractor helpers: which Ractor we are in, and whether an object may be
//! touched from any Ractor.
use crate::errors;
use magnus::{prelude::*, value::ReprValue, Error, ExceptionClass, Value};
use rb_sys::VALUE;
use std::os::raw::c_void;

// These back the public inline functions `rb_ractor_main_p` and
// `rb_ractor_shareable_p` of ruby/ractor.h; bindgen does not emit inline
// functions, so we declare what they call.
extern "C" {
    static ruby_single_main_ractor: *mut c_void;
    fn rb_ractor_main_p_() -> bool;
    fn rb_ractor_shareable_p_continue(obj: VALUE) -> bool;
}

/// True in the main Ractor (and always while only one Ractor exists).
#[inline]
pub fn in_main_ractor() -> bool {
    // SAFETY: reading a VM global pointer, then the VM's own query.
    unsafe { !ruby_single_main_ractor.is_null() || rb_ractor_main_p_() }
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

/// Fails unless `callable` may be called from the current Ractor.
pub fn check_callable(callable: VALUE, what: impl FnOnce() -> String) -> Result<(), Error> {
    if is_shareable(callable) || in_main_ractor() {
        return Ok(());
    }
    let ruby = errors::ruby();
    let class = ruby
        .class_object()
        .const_get::<_, Value>("Ractor")
        .and_then(|r| r.funcall::<_, _, Value>("const_get", ("IsolationError",)))
        .ok()
        .and_then(ExceptionClass::from_value)
        .unwrap_or_else(|| ruby.exception_runtime_error());
    Err(Error::new(
        class,
        format!(
            "{} is not shareable, so it cannot be called from a non-main Ractor; \
             register a shareable Proc (Ractor.make_shareable) or a method name Symbol",
            what()
        ),
    ))
}
