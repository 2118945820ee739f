//! `msgpack-rs-core`: a MessagePack codec in safe Rust, with limits for
//! hostile input. It is the engine behind the msgpack-rs Ruby gem, but knows
//! nothing about Ruby; it is usable and benchmarkable alone.
//!
//! * [`arena`]: zero-copy decoding into a [`bumpalo::Bump`]: a [`ValueRef`]
//!   tree whose strings borrow from the input, one pass, no heap allocation
//!   per node; and [`ArenaStream`], one message at a time from a byte stream.
//! * [`decode`]: a streaming, resumable decoder that drives a [`Builder`], so
//!   a binding builds its native objects directly (no intermediate tree).
//! * [`value`]: an owned [`Value`] tree and its builder.
//! * [`encode`]: writers for every MessagePack format, always choosing the
//!   shortest encoding, with a compatibility mode for old-spec peers.
//! * [`timestamp`]: the timestamp extension (type -1) in its 32/64/96-bit
//!   forms.
//! * [`limits`]: hostile-input limits (depth, container and string lengths).
//!
//! # One-shot decoding into a `Value`
//!
//! ```
//! use msgpack_rs_core::{decode_value_exact, Value};
//!
//! let v = decode_value_exact(&[0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0xc3]).unwrap();
//! assert_eq!(
//!     v,
//!     Value::Map(vec![
//!         (Value::Str(b"a".to_vec()), Value::Uint(1)),
//!         (Value::Str(b"b".to_vec()), Value::Bool(true)),
//!     ])
//! );
//! ```
//!
//! # Arena decoding (the fastest way to read a message)
//!
//! ```
//! use msgpack_rs_core::{arena::decode_in, bumpalo::Bump};
//!
//! let mut bump = Bump::new(); // reuse it: reset() frees a whole message at once
//! let input = b"\x82\xa4name\xa3Ada\xa5langs\x92\xa4Rust\xa4Ruby";
//! let v = decode_in(&bump, input).unwrap();
//! assert_eq!(v["name"].as_str(), Some("Ada")); // borrowed from `input`
//! assert_eq!(v["langs"].len(), Some(2));
//! bump.reset();
//! ```
//!
//! # Streaming
//!
//! [`ArenaStream`] buffers a byte stream (fed chunks, or read from an
//! [`std::io::Read`]) and hands out one message at a time; each borrows the
//! stream until the next call.
//!
//! ```
//! use msgpack_rs_core::ArenaStream;
//!
//! let mut reader: &[u8] = &[0x01, 0x92, 0xa1, b'x', 0xc0, 0xa2, b'h', b'i'];
//! let mut stream = ArenaStream::new();
//! let mut seen = Vec::new();
//! while let Some(msg) = stream.read_message(&mut reader)? {
//!     seen.push(format!("{:?} at {}", msg.value, msg.offset));
//! }
//! assert_eq!(seen, ["Uint(1) at 0", r#"Array([Str("x"), Nil]) at 1"#, r#"Str("hi") at 5"#]);
//! # Ok::<(), msgpack_rs_core::ReadError>(())
//! ```
//!
//! [`StreamDecoder`] is the lower-level, resumable decoder: it takes the
//! input in pieces without buffering it, keeping partial containers between
//! calls, and builds through a [`Builder`] of your own (see its docs for a
//! custom one, and [`ValueBuilder`] for `Value`s).
//!
//! # Encoding
//!
//! ```
//! use msgpack_rs_core::{encode, encode_value, Value};
//!
//! let mut out = Vec::new();
//! encode_value(&Value::Array(vec![Value::Int(-1), Value::Nil]), &mut out).unwrap();
//! encode::write_str(&mut out, b"next", false).unwrap(); // or item by item
//! assert_eq!(out, [0x92, 0xff, 0xc0, 0xa4, b'n', b'e', b'x', b't']);
//! ```
//!
//! # A custom `Builder`
//!
//! ```
//! use msgpack_rs_core::{Builder, DecodeError, Limits, Step, StreamDecoder};
//!
//! /// Collects the strs of an object (map keys included) into one string.
//! #[derive(Default)]
//! struct Text(String);
//!
//! impl Builder for Text {
//!     type Value = ();
//!     type Array = ();
//!     type Map = ();
//!     type Error = DecodeError;
//!
//!     fn str(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
//!         self.0.push_str(&String::from_utf8_lossy(bytes));
//!         self.0.push(' ');
//!         Ok(())
//!     }
//!     fn nil(&mut self) -> Result<(), DecodeError> { Ok(()) }
//!     fn boolean(&mut self, _: bool) -> Result<(), DecodeError> { Ok(()) }
//!     fn uint(&mut self, _: u64) -> Result<(), DecodeError> { Ok(()) }
//!     fn int(&mut self, _: i64) -> Result<(), DecodeError> { Ok(()) }
//!     fn float32(&mut self, _: f32) -> Result<(), DecodeError> { Ok(()) }
//!     fn float64(&mut self, _: f64) -> Result<(), DecodeError> { Ok(()) }
//!     fn bin(&mut self, _: &[u8]) -> Result<(), DecodeError> { Ok(()) }
//!     fn ext(&mut self, _: i8, _: &[u8]) -> Result<(), DecodeError> { Ok(()) }
//!     fn array_begin(&mut self, _: u32, _: usize) -> Result<(), DecodeError> { Ok(()) }
//!     fn array_push(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> { Ok(()) }
//!     fn array_end(&mut self, _: ()) -> Result<(), DecodeError> { Ok(()) }
//!     fn map_begin(&mut self, _: u32, _: usize) -> Result<(), DecodeError> { Ok(()) }
//!     fn map_key(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> { Ok(()) }
//!     fn map_value(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> { Ok(()) }
//!     fn map_end(&mut self, _: ()) -> Result<(), DecodeError> { Ok(()) }
//! }
//!
//! let input = [0x81, 0xa2, b'h', b'i', 0x92, 0x07, 0xa3, b'y', b'o', b'u'];
//! let mut text = Text::default();
//! let mut pos = 0;
//! let step = StreamDecoder::<Text>::new(Limits::default()).decode(&mut text, &input, &mut pos)?;
//! assert_eq!(step, Step::Done(()));
//! assert_eq!(text.0, "hi you ");
//! # Ok::<(), DecodeError>(())
//! ```
//!
//! # Hostile input
//!
//! Every decoder here takes [`Limits`] (nesting depth, default 128, and
//! per-object lengths), never reserves memory from a length header that the
//! input could not back, and never panics on any input. The arena decoder and
//! the streaming decoder accept exactly the same inputs and report the same
//! errors.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arena;
pub mod decode;
pub mod encode;
pub mod error;
pub mod limits;
pub mod timestamp;
pub mod value;

pub use arena::{decode_in, ArenaStream, ValueRef};
/// The arena allocator crate, re-exported so callers use the same version.
pub use bumpalo;
pub use decode::{parse_header, Builder, Header, Partial, Skipper, Step, StreamDecoder};
pub use error::{DecodeError, LimitKind, ReadError};
pub use limits::Limits;
pub use timestamp::{Timestamp, TimestampError};
pub use value::{decode_value, decode_value_exact, encode_value, Value, ValueBuilder};
