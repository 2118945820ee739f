//! The decoder's typed errors.
use std::fmt;

/// Which configurable limit a length header broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    ArrayLen,
    MapLen,
    StrLen,
    BinLen,
    ExtLen,
}

impl LimitKind {
    /// The option name a user sets for this limit (`max_array_len`, ...).
    pub fn option_name(self) -> &'static str {
        match self {
            LimitKind::ArrayLen => "max_array_len",
            LimitKind::MapLen => "max_map_len",
            LimitKind::StrLen => "max_str_len",
            LimitKind::BinLen => "max_bin_len",
            LimitKind::ExtLen => "max_ext_len",
        }
    }
}

/// Why decoding stopped. Kept small (two words) so `Result` stays cheap on
/// the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside an object. Streaming decoding reports
    /// [`crate::Step::NeedMore`] instead; one-shot helpers turn that into this.
    UnexpectedEof,
    /// A lead byte that no format uses (only `0xc1`).
    InvalidMarker(u8),
    /// More nested containers than [`crate::Limits::max_depth`].
    DepthExceeded { max: usize },
    /// A length header above a configured limit.
    LimitExceeded { kind: LimitKind, len: u32, max: u32 },
    /// A complete object was followed by this many more bytes (only from
    /// helpers that require the input to hold exactly one object).
    ExtraBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEof => f.write_str("end of buffer reached"),
            DecodeError::InvalidMarker(_) => f.write_str("invalid byte"),
            DecodeError::DepthExceeded { .. } => f.write_str("stack level too deep"),
            DecodeError::LimitExceeded { kind, len, max } => {
                write!(f, "length {len} exceeds {} ({max})", kind.option_name())
            }
            DecodeError::ExtraBytes(n) => {
                write!(f, "{n} extra bytes after the deserialized object")
            }
        }
    }
}

impl std::error::Error for DecodeError {}
