//! The Rust data behind a method's receiver, found without magnus's
//! per-call check.
//!
//! A method declared with `rb_self: &T` or `Obj<T>` has magnus run
//! `rb_check_typeddata` under `rb_protect` (a setjmp) on every call: about a
//! third of a `Packer#write` made from inside an ext packer. Hot methods take
//! `rb_self: Value` instead and call [`this`], which compares the object's
//! data-type pointer with the one recorded for `T` at load time: one load and
//! one compare. Anything unexpected goes through magnus's checked conversion,
//! which raises the proper TypeError.
use magnus::{rb_sys::AsRawValue, Error, TryConvert, TypedData, Value};
use std::sync::OnceLock;

/// Records (at load time) the `rb_data_type_t` address of `T`'s objects.
pub trait Tagged: TypedData {
    fn tag() -> &'static OnceLock<usize>;
}

/// Records `T`'s data-type address from one of its objects (made at load
/// time, in the main Ractor).
pub fn record<T: Tagged>(sample: Value) {
    let v = sample.as_raw();
    // SAFETY: `sample` is a live object wrapping a `T` (just made by magnus).
    let ty = unsafe { rb_sys::RTYPEDDATA_TYPE(v) } as usize;
    let _ = T::tag().set(ty);
}

/// The `T` inside `rb_self`.
#[inline(always)]
pub fn this<'a, T: Tagged>(rb_self: Value) -> Result<&'a T, Error> {
    let v = rb_self.as_raw();
    if let Some(&tag) = T::tag().get() {
        // SAFETY: a non-special VALUE is a live heap object; its type is read
        // before anything else, and the data pointer only of a T_DATA
        // object built as an RTypedData with `T`'s data type, which magnus
        // made from a `Box<T>`. The receiver is alive for the whole call, so
        // the reference may live as long as the caller needs it.
        unsafe {
            if !rb_sys::SPECIAL_CONST_P(v)
                && rb_sys::RB_BUILTIN_TYPE(v) == rb_sys::ruby_value_type::RUBY_T_DATA
                && rb_sys::RTYPEDDATA_P(v)
                && rb_sys::RTYPEDDATA_TYPE(v) as usize == tag
            {
                let data = rb_sys::RTYPEDDATA_GET_DATA(v) as *const T;
                if let Some(t) = data.as_ref() {
                    return Ok(t);
                }
            }
        }
    }
    <&T>::try_convert(rb_self)
}

/// Implements [`Tagged`] for the listed types.
#[macro_export]
macro_rules! tagged {
    ($($t:ty),*) => {$(
        impl $crate::runtime::receiver::Tagged for $t {
            fn tag() -> &'static std::sync::OnceLock<usize> {
                static TAG: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
                &TAG
            }
        }
    )*};
}
