//! Every exception the extension raises is made here: msgpack-ruby's
//! hierarchy, and one constructor per condition, with the class the C gem
//! raises for it (or, for conditions the C gem does not detect, the class
//! docs/reentrancy.md and docs/compatibility.md promise).
//!
//! The classes are looked up once, at load time, and pinned: raising costs
//! no constant lookup, and works the same in every Ractor.
use super::ruby;
use magnus::{
    prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Exception,
    ExceptionClass, RClass, RModule, Ruby, Value,
};
use msgpack_rs_core::{DecodeError, LimitKind};
use rb_sys::VALUE;
use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

/// Classes looked up once at load time. They are constants (of
/// `MessagePack`, or Ruby's own), registered with the GC as permanently
/// marked (pinned), and never change afterwards: shared read-only state,
/// safe from any Ractor.
struct Classes {
    unpack_error: VALUE,
    malformed_format: VALUE,
    stack_error: VALUE,
    unexpected_type: VALUE,
    unknown_ext_type: VALUE,
    isolation_error: VALUE,
    /// Ruby 3.4 changed the quotes in its own messages from `x' to 'x'.
    new_quotes: bool,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

#[derive(Clone, Copy)]
enum Kind {
    Unpack,
    Malformed,
    Stack,
    UnexpectedType,
    UnknownExtType,
    Isolation,
}

fn pin(v: Value) -> VALUE {
    let raw = v.as_raw();
    // SAFETY: registering a live class object as a permanent GC root.
    unsafe { rb_sys::rb_gc_register_mark_object(raw) };
    raw
}

/// Defines msgpack-ruby's exception classes under `module` and resolves
/// every class raised later.
pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let version: String = ruby.class_object().const_get("RUBY_VERSION")?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let unpack_error = module.define_error("UnpackError", ruby.exception_standard_error())?;
    let malformed = module.define_error("MalformedFormatError", unpack_error)?;
    let stack = module.define_error("StackError", unpack_error)?;
    let unexpected = module.define_error("UnexpectedTypeError", unpack_error)?;
    let type_error_mod = module.define_module("TypeError")?;
    unexpected.include_module(type_error_mod)?;
    let unknown_ext = module.define_error("UnknownExtTypeError", unpack_error)?;
    let isolation: Value = ruby
        .class_object()
        .const_get::<_, RClass>("Ractor")?
        .const_get("IsolationError")?;
    let _ = CLASSES.set(Classes {
        unpack_error: pin(unpack_error.as_value()),
        malformed_format: pin(malformed.as_value()),
        stack_error: pin(stack.as_value()),
        unexpected_type: pin(unexpected.as_value()),
        unknown_ext_type: pin(unknown_ext.as_value()),
        isolation_error: pin(isolation),
        new_quotes: (major, minor) >= (3, 4),
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
            Kind::Isolation => c.isolation_error,
        },
        // SAFETY: reading a VM global set at boot.
        None => unsafe { rb_sys::rb_eStandardError },
    };
    // SAFETY: `raw` is a live, pinned exception class.
    let v = unsafe { Value::from_raw(raw) };
    ExceptionClass::from_value(v).unwrap_or_else(|| ruby().exception_standard_error())
}

fn ours(kind: Kind, msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(class(kind), msg)
}

/// `name` quoted the way the running Ruby quotes names in its messages
/// (the C gem gets these messages from Ruby).
pub fn quoted(name: &str) -> String {
    if CLASSES.get().is_some_and(|c| c.new_quotes) {
        format!("'{name}'")
    } else {
        format!("`{name}'")
    }
}

/// The class name Ruby shows for `v` in messages.
fn class_name(v: Value) -> String {
    // SAFETY: the name is copied at once, before any other Ruby call.
    unsafe { v.classname() }.into_owned()
}

// ---- Ruby's own classes, for argument checks ----

pub fn arg_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_arg_error(), msg)
}

pub fn type_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_type_error(), msg)
}

pub fn range_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ruby().exception_range_error(), msg)
}

/// `wrong number of arguments (given)` in msgpack-ruby's `(N for M)` form.
pub fn arity(given: usize, expected: &str) -> Error {
    arg_error(format!(
        "wrong number of arguments ({given} for {expected})"
    ))
}

/// `wrong argument type X (expected Y)`: a typed argument of another class.
pub fn wrong_type(v: Value, expected: &str) -> Error {
    type_error(format!(
        "wrong argument type {} (expected {expected})",
        class_name(v)
    ))
}

/// An options argument that is not a Hash (msgpack-ruby's wording).
pub fn not_a_hash(v: Value) -> Error {
    arg_error(format!("expected Hash but found {}.", class_name(v)))
}

/// A class argument that is not a Class or Module.
pub fn not_a_module(v: Value) -> Error {
    arg_error(format!(
        "expected Module/Class but found {}.",
        class_name(v)
    ))
}

/// `integer N too big to convert to 'ctype'` (Ruby's NUM2xxx message).
pub fn integer_too_big(n: i64, ctype: &str) -> Error {
    range_error(format!(
        "integer {n} too big to convert to {}",
        quoted(ctype)
    ))
}

/// A Bignum that fits no MessagePack integer.
pub fn bignum_too_big(negative: bool) -> Error {
    let ctype = if negative {
        "long long"
    } else {
        "unsigned long long"
    };
    range_error(format!("bignum too big to convert into {}", quoted(ctype)))
}

/// A str/bin/ext/array/map longer than MessagePack can say (2**32 - 1).
pub fn too_long(e: impl std::fmt::Display) -> Error {
    arg_error(e.to_string())
}

pub fn frozen_error(what: &str) -> Error {
    Error::new(
        ruby().exception_frozen_error(),
        format!("can't modify frozen {what}"),
    )
}

/// `dup`/`clone` of a class whose instances cannot be copied.
pub fn cannot_copy(v: Value) -> Error {
    type_error(format!("can't copy {}", class_name(v)))
}

/// Nesting deeper than a packer's `max_depth`, or than the machine stack
/// allows (what the C gem's recursion runs into).
pub fn stack_too_deep() -> Error {
    Error::new(ruby().exception_sys_stack_error(), "stack level too deep")
}

/// A callable registered in one Ractor, called from another.
pub fn isolation(what: &str) -> Error {
    ours(
        Kind::Isolation,
        format!(
            "{what} is not shareable, so it cannot be called from another Ractor than the one \
             that registered it; register a shareable Proc (Ractor.make_shareable) or a method \
             name Symbol"
        ),
    )
}

/// A lock poisoned by a panic while held (never expected: nothing under
/// these locks panics).
pub fn factory_poisoned() -> Error {
    Error::new(
        ruby().exception_runtime_error(),
        "MessagePack::Factory is unusable: a panic happened while its tables were being changed",
    )
}

/// The extension's load-time state is missing (never expected).
pub fn not_initialized() -> Error {
    arg_error("MessagePack is not initialized")
}

// ---- decoding ----

/// No more data: "end of buffer reached" (`EOFError`).
pub fn eof() -> Error {
    Error::new(ruby().exception_eof_error(), "end of buffer reached")
}

/// The IO of a buffer ended.
pub fn io_eof() -> Error {
    Error::new(ruby().exception_eof_error(), "IO reached end of file")
}

/// The format was bad (a typed core error).
pub fn decode(e: DecodeError) -> Error {
    let msg = e.to_string();
    match e {
        DecodeError::UnexpectedEof => eof(),
        DecodeError::InvalidMarker(_) | DecodeError::ExtraBytes(_) => ours(Kind::Malformed, msg),
        DecodeError::DepthExceeded { .. } => ours(Kind::Stack, msg),
        DecodeError::LimitExceeded { .. } => ours(Kind::Malformed, msg),
    }
}

/// Bytes left after the one object a `full_unpack`/`load` reads.
pub fn extra_bytes(n: usize) -> Error {
    decode(DecodeError::ExtraBytes(n))
}

/// A header longer than the unpacker's limit for it.
pub fn limit(kind: LimitKind, len: u32, max: u32) -> Error {
    decode(DecodeError::LimitExceeded { kind, len, max })
}

/// A header read (`read_array_header`, ...) found another type.
pub fn unexpected_type() -> Error {
    ours(Kind::UnexpectedType, "unexpected type")
}

pub fn unknown_ext_type() -> Error {
    ours(Kind::UnknownExtType, "unexpected extension type")
}

/// A Symbol (key or ext) whose bytes are not UTF-8 (`inspect` shows them).
pub fn invalid_symbol(inspected: &str) -> Error {
    Error::new(
        ruby().exception_encoding_error(),
        format!("invalid symbol in encoding UTF-8 :{inspected}"),
    )
}

/// A raw header read while an object is half read.
pub fn half_read() -> Error {
    ours(
        Kind::Unpack,
        "an object is half read: read it to the end, skip it or reset before reading a header",
    )
}

// ---- re-entrancy (docs/reentrancy.md) ----

/// An Unpacker called from a callback of its own read.
pub fn unpacker_reentrant() -> Error {
    ours(
        Kind::Unpack,
        "Unpacker is in use (re-entrant call from an extension callback?)",
    )
}

/// An Unpacker called while another thread reads it.
pub fn unpacker_other_thread() -> Error {
    ours(Kind::Unpack, "Unpacker is in use by another thread")
}

/// A buffer read or changed while it is being read or written further up
/// the stack.
pub fn buffer_in_use() -> Error {
    ours(
        Kind::Unpack,
        "buffer is in use (re-entrant call from an extension callback?)",
    )
}

/// A Packer written by another thread, or whose output is being written.
pub fn packer_in_use(why: &str) -> Error {
    Error::new(
        ruby().exception_runtime_error(),
        format!("Packer is in use: {why}"),
    )
}

pub fn packer_other_thread() -> Error {
    packer_in_use("written by another thread")
}

pub fn packer_output_busy() -> Error {
    packer_in_use("its buffer is being written (re-entrant call)")
}

pub fn mapped_in_use() -> Error {
    ours(
        Kind::Unpack,
        "MappedUnpacker is in use (re-entrant call from an extension callback?)",
    )
}

// ---- mapped files ----

pub fn mapped_closed() -> Error {
    Error::new(ruby().exception_io_error(), "closed MappedUnpacker")
}

pub fn mapped_recursive_ext(ty: i8) -> Error {
    ours(
        Kind::Unpack,
        format!(
            "ext type {ty} is registered as recursive, which MappedUnpacker does not support; \
             use MessagePack::Unpacker.new(File.open(path)) instead"
        ),
    )
}

/// `path` for a message: its bytes as they are where they are UTF-8, others
/// as `\xFF` (what Ruby shows for them), never replaced by U+FFFD.
pub fn shown(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// An `Errno::*` exception for a failed system call on `path` (its message
/// holds the path's own bytes, as `File.open`'s does).
pub fn system_call(e: std::io::Error, path: &Path) -> Error {
    use std::os::unix::ffi::OsStrExt;
    let ruby = ruby();
    if let Some(errno) = e.raw_os_error() {
        let bytes = ruby.str_from_slice(path.as_os_str().as_bytes());
        let made = ruby
            .exception_system_call_error()
            .funcall::<_, _, Value>("new", (bytes, errno));
        if let Ok(v) = made {
            if let Some(exc) = Exception::from_value(v) {
                return Error::from(exc);
            }
        }
    }
    Error::new(ruby.exception_io_error(), format!("{e} @ {}", shown(path)))
}

pub fn not_regular_file(path: &Path, what: &str) -> Error {
    arg_error(format!(
        "MessagePack can only map regular files: {} is {what}",
        shown(path)
    ))
}

pub fn too_large_to_map(path: &Path) -> Error {
    range_error(format!("{} is too large to map", shown(path)))
}

pub fn file_shrank(path: &Path, size: u64, pos: usize) -> Error {
    Error::new(
        ruby().exception_io_error(),
        format!(
            "{} shrank to {size} bytes, below the read position {pos}",
            shown(path)
        ),
    )
}

pub fn file_ends_inside_object(path: &Path, len: usize, pos: usize) -> Error {
    Error::new(
        ruby().exception_eof_error(),
        format!(
            "end of file reached inside an object: {} ends at byte {len}, the object starting \
             at byte {pos} is incomplete",
            shown(path)
        ),
    )
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
            Fail::Decode(e) => decode(e),
        }
    }
}
