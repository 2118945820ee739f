//! The decoder's typed errors.
use std::fmt;

/// Which configurable limit a length header broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// [`crate::Limits::max_array_len`].
    ArrayLen,
    /// [`crate::Limits::max_map_len`].
    MapLen,
    /// [`crate::Limits::max_str_len`].
    StrLen,
    /// [`crate::Limits::max_bin_len`].
    BinLen,
    /// [`crate::Limits::max_ext_len`].
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
    /// A lead byte that no format uses (only `0xc1`), with the byte.
    InvalidMarker(u8),
    /// More nested containers than [`crate::Limits::max_depth`].
    DepthExceeded {
        /// The limit.
        max: usize,
    },
    /// A length header above a configured limit.
    LimitExceeded {
        /// Which limit.
        kind: LimitKind,
        /// The length in the header.
        len: u32,
        /// The limit.
        max: u32,
    },
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

/// Why [`crate::arena::ArenaStream::read_message`] stopped: the reader
/// failed, or the bytes did not decode (a reader that ends inside a message
/// gives [`DecodeError::UnexpectedEof`]).
#[derive(Debug)]
pub enum ReadError {
    /// The reader's error.
    Io(std::io::Error),
    /// The stream's bytes are not valid MessagePack (or break a limit).
    Decode(DecodeError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read error: {e}"),
            ReadError::Decode(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::Decode(e) => Some(e),
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        ReadError::Decode(e)
    }
}

impl From<ReadError> for std::io::Error {
    /// Decode errors become [`std::io::ErrorKind::InvalidData`] (a truncated
    /// message [`std::io::ErrorKind::UnexpectedEof`]).
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            ReadError::Decode(DecodeError::UnexpectedEof) => std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                DecodeError::UnexpectedEof,
            ),
            ReadError::Decode(e) => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }
    }
}
