//! `msgpack-rs-core`: the pure-Rust engine behind the msgpack-rs Ruby gem.
//!
//! * [`encode`]: writers for every MessagePack format, always choosing the
//!   shortest encoding, with a compatibility mode for old-spec peers.
//! * [`decode`]: a streaming, resumable decoder that drives a [`Builder`], so a
//!   binding can build its native objects directly (no intermediate tree).
//! * [`value`]: a plain-Rust [`Value`] tree and builder, for tests, benches and
//!   Rust users who just want values.
//! * [`timestamp`]: the timestamp extension (type -1) in its 32/64/96-bit forms.
//! * [`limits`]: hostile-input limits (depth, container and string lengths).
//!
//! The crate knows nothing about Ruby; it is usable and benchmarkable alone.
#![forbid(unsafe_code)]

pub mod decode;
pub mod encode;
pub mod error;
pub mod limits;
pub mod timestamp;
pub mod value;

pub use decode::{parse_header, Builder, Header, Partial, Skipper, Step, StreamDecoder};
pub use error::{DecodeError, LimitKind};
pub use limits::Limits;
pub use timestamp::{Timestamp, TimestampError};
pub use value::{decode_value, decode_value_exact, encode_value, Value, ValueBuilder};
