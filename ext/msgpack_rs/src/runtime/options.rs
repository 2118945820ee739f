//! Argument and option parsing shared by every class: options Hashes read
//! by Symbol key, and the `(io, options)` constructor arguments.
use super::{errors, ruby};
use magnus::{prelude::*, Error, RHash, TryConvert, Value};

/// Reads an option by Symbol key; `None` when absent.
pub fn opt(options: Option<RHash>, key: &str) -> Option<Value> {
    let h = options?;
    h.get(ruby().to_symbol(key))
}

/// A truthy option.
pub fn opt_flag(options: Option<RHash>, key: &str) -> bool {
    opt(options, key).map(|v| v.to_bool()).unwrap_or(false)
}

/// A size option (NUM2SIZET semantics: Integer-convertible, no upper
/// bound); `None` when absent or nil.
pub fn opt_size(options: Option<RHash>, key: &str) -> Result<Option<usize>, Error> {
    match opt(options, key) {
        Some(v) if !v.is_nil() => Ok(Some(usize::try_convert(v)?)),
        _ => Ok(None),
    }
}

/// A non-negative integer option; `None` when absent or nil.
pub fn opt_u64(options: Option<RHash>, key: &str) -> Result<Option<u64>, Error> {
    match opt(options, key) {
        Some(v) if !v.is_nil() => Ok(Some(u64::try_convert(v)?)),
        _ => Ok(None),
    }
}

/// How a constructor reports an options argument that is not a Hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BadOptions {
    /// `TypeError` "wrong argument type X (expected Hash)" (Packer).
    TypeError,
    /// `ArgumentError` "expected Hash but found X." (Unpacker).
    ArgumentError,
}

/// Parsed constructor arguments: `()`, `(nil)`, `(hash)`, `(io)`,
/// `(io, hash)`, `(io, nil)`.
pub fn split_io_options(
    args: &[Value],
    bad: BadOptions,
) -> Result<(Option<Value>, Option<RHash>), Error> {
    match args {
        [] => Ok((None, None)),
        [a] => match RHash::from_value(*a) {
            Some(h) => Ok((None, Some(h))),
            None => Ok((Some(*a).filter(|v| !v.is_nil()), None)),
        },
        [io, opts] => {
            let io = Some(*io).filter(|v| !v.is_nil());
            if opts.is_nil() {
                return Ok((io, None));
            }
            match RHash::from_value(*opts) {
                Some(h) => Ok((io, Some(h))),
                None if bad == BadOptions::TypeError => Err(errors::wrong_type(*opts, "Hash")),
                None => Err(errors::not_a_hash(*opts)),
            }
        }
        _ => Err(errors::arity(args.len(), "0..2")),
    }
}
