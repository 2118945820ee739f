//! Exception classes (msgpack-ruby's hierarchy) and how Rust failures become
//! Ruby exceptions.
use magnus::{
    prelude::*, rb_sys::FromRawValue, value::ReprValue, Error, ExceptionClass, RModule, Ruby, Value,
};
use msgpack_rs_core::DecodeError;
use rb_sys::VALUE;
use std::sync::OnceLock;

/// Classes looked up once at load time. They are constants of `MessagePack`,
/// registered with the GC as permanently marked (pinned), and never change
/// afterwards: shared read-only state, safe from any Ractor.
struct Classes {
    unpack_error: VALUE,
    malformed_format: VALUE,
    stack_error: VALUE,
    unexpected_type: VALUE,
    unknown_ext_type: VALUE,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

#[derive(Clone, Copy)]
pub enum Kind {
    Unpack,
    Malformed,
    Stack,
    UnexpectedType,
    UnknownExtType,
}

fn pin(v: Value) -> VALUE {
    use magnus::rb_sys::AsRawValue;
    let raw = v.as_raw();
    // SAFETY: registering a live class object as a permanent GC root.
    unsafe { rb_sys::rb_gc_register_mark_object(raw) };
    raw
}

/// Ruby 3.4 changed the quotes in its own messages from `x' to 'x'; ours
/// (the C type names in RangeError messages, which the C gem gets from Ruby)
/// follow the running Ruby.
static NEW_QUOTES: OnceLock<bool> = OnceLock::new();

/// `name` quoted the way the running Ruby quotes names in messages.
pub fn quoted(name: &str) -> String {
    if NEW_QUOTES.get().copied().unwrap_or(false) {
        format!("'{name}'")
    } else {
        format!("`{name}'")
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let version: String = ruby.class_object().const_get("RUBY_VERSION")?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let _ = NEW_QUOTES.set((major, minor) >= (3, 4));
    let unpack_error = module.define_error("UnpackError", ruby.exception_standard_error())?;
    let malformed = module.define_error("MalformedFormatError", unpack_error)?;
    let stack = module.define_error("StackError", unpack_error)?;
    let unexpected = module.define_error("UnexpectedTypeError", unpack_error)?;
    let type_error_mod = module.define_module("TypeError")?;
    unexpected.include_module(type_error_mod)?;
    let unknown_ext = module.define_error("UnknownExtTypeError", unpack_error)?;
    let _ = CLASSES.set(Classes {
        unpack_error: pin(unpack_error.as_value()),
        malformed_format: pin(malformed.as_value()),
        stack_error: pin(stack.as_value()),
        unexpected_type: pin(unexpected.as_value()),
        unknown_ext_type: pin(unknown_ext.as_value()),
    });
    Ok(())
}

fn class(kind: Kind) -> ExceptionClass {
    let raw = match CLASSES.get() {
        Some(c) => match kind {
            Kind::Unpack => c.unpack_error,
            Kind::Malformed => c.malformed_format,
            Kind::Stack => c.stack_error,
            Kind::UnexpectedType => c.unexpected_type,
            Kind::UnknownExtType => c.unknown_ext_type,
        },
        // SAFETY: reading a VM global set at boot.
        None => unsafe { rb_sys::rb_eStandardError },
    };
    // SAFETY: `raw` is a live, pinned exception class.
    let v = unsafe { Value::from_raw(raw) };
    ExceptionClass::from_value(v).unwrap_or_else(|| Ruby::get_with(v).exception_standard_error())
}

pub fn error(kind: Kind, msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(class(kind), msg)
}

pub fn eof() -> Error {
    let ruby = ruby();
    Error::new(ruby.exception_eof_error(), "end of buffer reached")
}

pub fn arg_error(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_arg_error(), msg)
}

pub fn type_error(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_type_error(), msg)
}

pub fn range_error(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_range_error(), msg)
}

pub fn frozen_error(what: &str) -> Error {
    Error::new(
        ruby().exception_frozen_error(),
        format!("can't modify frozen {what}"),
    )
}

/// The Ruby handle. Every caller runs on a Ruby thread holding the GVL (a
/// method called by Ruby, or a GC callback), so skip `Ruby::get`'s
/// thread-local and GVL checks: they showed up in profiles of small calls.
#[inline(always)]
pub fn ruby() -> Ruby {
    // SAFETY: see above; this crate starts no threads of its own that call
    // into Ruby.
    unsafe { Ruby::get_unchecked() }
}

/// A decoding failure: either the format was bad (a typed core error) or
/// Ruby code called while building values raised.
pub enum Fail {
    Decode(DecodeError),
    Ruby(Error),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Decode(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Ruby(e)
    }
}

impl From<Fail> for Error {
    fn from(f: Fail) -> Error {
        match f {
            Fail::Ruby(e) => e,
            Fail::Decode(e) => decode_error(e),
        }
    }
}

pub fn decode_error(e: DecodeError) -> Error {
    let msg = e.to_string();
    match e {
        DecodeError::UnexpectedEof => eof(),
        DecodeError::InvalidMarker(_) | DecodeError::ExtraBytes(_) => error(Kind::Malformed, msg),
        DecodeError::DepthExceeded { .. } => error(Kind::Stack, msg),
        DecodeError::LimitExceeded { .. } => error(Kind::Malformed, msg),
    }
}
