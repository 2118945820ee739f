//! Limits that protect a decoder from hostile input.

/// Decoder limits. Lengths are per object, checked against the header before
/// any payload is waited for, so a lying header fails fast.
///
/// Whatever the limits, the decoder never reserves memory for more elements
/// than the bytes already buffered could hold (every element takes at least
/// one byte), so a huge declared length with no data costs nothing.
///
/// ```
/// use msgpack_rs_core::{value::decode_value_with, DecodeError, LimitKind, Limits};
///
/// let limits = Limits { max_str_len: 4, ..Limits::default() };
/// assert!(decode_value_with(b"\xa4abcd", limits).is_ok());
/// assert_eq!(
///     decode_value_with(b"\xa5abcde", limits),
///     Err(DecodeError::LimitExceeded { kind: LimitKind::StrLen, len: 5, max: 4 })
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of nested non-empty containers (default 128, as in the
    /// C msgpack-ruby gem; empty containers do not count).
    pub max_depth: usize,
    /// Maximum elements of one array (default unlimited: `u32::MAX`).
    pub max_array_len: u32,
    /// Maximum entries of one map (default unlimited).
    pub max_map_len: u32,
    /// Maximum bytes of one str (default unlimited).
    pub max_str_len: u32,
    /// Maximum bytes of one bin (default unlimited).
    pub max_bin_len: u32,
    /// Maximum payload bytes of one ext (default unlimited).
    pub max_ext_len: u32,
}

impl Limits {
    /// The default [`Limits::max_depth`].
    pub const DEFAULT_MAX_DEPTH: usize = 128;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_array_len: u32::MAX,
            max_map_len: u32::MAX,
            max_str_len: u32::MAX,
            max_bin_len: u32::MAX,
            max_ext_len: u32::MAX,
        }
    }
}
