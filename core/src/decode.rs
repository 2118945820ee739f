//! The streaming, resumable decoder.
//!
//! Input arrives as a contiguous slice plus a read position. The decoder reads
//! one *token* at a time (a header, together with its payload for str, bin and
//! ext) and only advances the position past tokens it has fully applied. When
//! the slice ends inside a token it returns [`Step::NeedMore`] with the
//! position at that token's start: the caller keeps the unread tail, appends
//! more bytes and calls again. Containers under construction live on the
//! decoder's own stack, so nothing is re-read or lost between calls.
//!
//! After an error the decoder drops the object in progress and remembers how
//! much of it is still to come (whole items, and payload bytes of a str, bin
//! or ext whose header was read); the next call first discards that rest, so
//! decoding resumes at the next top-level object and never hands out parts of
//! a failed one. [`StreamDecoder::skip`] uses the same machinery to skip an
//! object without building it.
//!
//! The decoder never allocates from a length header: it passes the builder a
//! capacity hint no larger than what the buffered bytes could hold, after
//! setting aside a byte for every element the enclosing containers still
//! expect. Nested lying headers therefore cannot claim the same bytes twice:
//! the hints of all open containers together never exceed the buffered bytes.
use crate::error::{DecodeError, LimitKind};
use crate::limits::Limits;

/// Receives decoded items and builds the caller's values (Ruby objects in the
/// gem, [`crate::Value`] in tests).
///
/// [`StreamDecoder`] calls one method per item, in input order: a scalar
/// method for each scalar, `array_begin`, one `array_push` per element
/// and `array_end` for an array, and `map_begin`, `map_key`/`map_value` per
/// entry and `map_end` for a map. Anything the builder returns as `Err`
/// stops decoding (the decoder then drops the object in progress).
///
/// This builder sums every integer of an object, building nothing else:
///
/// ```
/// use msgpack_rs_core::{Builder, DecodeError, Limits, Step, StreamDecoder};
///
/// /// Sums the integers of an object (nested ones included).
/// struct Sum;
///
/// impl Builder for Sum {
///     type Value = i128;
///     type Array = i128;
///     type Map = i128;
///     type Error = DecodeError;
///
///     fn nil(&mut self) -> Result<i128, DecodeError> { Ok(0) }
///     fn boolean(&mut self, _: bool) -> Result<i128, DecodeError> { Ok(0) }
///     fn uint(&mut self, v: u64) -> Result<i128, DecodeError> { Ok(v.into()) }
///     fn int(&mut self, v: i64) -> Result<i128, DecodeError> { Ok(v.into()) }
///     fn float32(&mut self, _: f32) -> Result<i128, DecodeError> { Ok(0) }
///     fn float64(&mut self, _: f64) -> Result<i128, DecodeError> { Ok(0) }
///     fn str(&mut self, _: &[u8]) -> Result<i128, DecodeError> { Ok(0) }
///     fn bin(&mut self, _: &[u8]) -> Result<i128, DecodeError> { Ok(0) }
///     fn ext(&mut self, _: i8, _: &[u8]) -> Result<i128, DecodeError> { Ok(0) }
///     fn array_begin(&mut self, _: u32, _: usize) -> Result<i128, DecodeError> { Ok(0) }
///     fn array_push(&mut self, a: &mut i128, v: i128) -> Result<(), DecodeError> {
///         *a += v;
///         Ok(())
///     }
///     fn array_end(&mut self, a: i128) -> Result<i128, DecodeError> { Ok(a) }
///     fn map_begin(&mut self, _: u32, _: usize) -> Result<i128, DecodeError> { Ok(0) }
///     fn map_key(&mut self, m: &mut i128, k: i128) -> Result<(), DecodeError> {
///         *m += k;
///         Ok(())
///     }
///     fn map_value(&mut self, m: &mut i128, v: i128) -> Result<(), DecodeError> {
///         *m += v;
///         Ok(())
///     }
///     fn map_end(&mut self, m: i128) -> Result<i128, DecodeError> { Ok(m) }
/// }
///
/// // [1, {"a": -3}, [40, 2]]
/// let input = [0x93, 0x01, 0x81, 0xa1, b'a', 0xfd, 0x92, 0x28, 0x02];
/// let mut pos = 0;
/// let mut decoder = StreamDecoder::<Sum>::new(Limits::default());
/// assert_eq!(decoder.decode(&mut Sum, &input, &mut pos), Ok(Step::Done(40)));
/// assert_eq!(pos, input.len());
/// ```
pub trait Builder {
    /// What a decoded object becomes.
    type Value;
    /// An array under construction.
    type Array;
    /// A map under construction.
    type Map;
    /// The builder's own errors; decode errors convert into it.
    type Error: From<DecodeError>;

    /// `nil`.
    fn nil(&mut self) -> Result<Self::Value, Self::Error>;
    /// `true` or `false`.
    fn boolean(&mut self, v: bool) -> Result<Self::Value, Self::Error>;
    /// Positive fixint and uint8..uint64.
    fn uint(&mut self, v: u64) -> Result<Self::Value, Self::Error>;
    /// Negative fixint and int8..int64 (the value may still be non-negative).
    fn int(&mut self, v: i64) -> Result<Self::Value, Self::Error>;
    /// float 32.
    fn float32(&mut self, v: f32) -> Result<Self::Value, Self::Error>;
    /// float 64.
    fn float64(&mut self, v: f64) -> Result<Self::Value, Self::Error>;
    /// `bytes` is a sub-slice of the input given to [`StreamDecoder::decode`],
    /// so a binding may turn it into a shared view of its own source buffer.
    fn str(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error>;
    /// A bin; `bytes` is a sub-slice of the input, as for [`Builder::str`].
    fn bin(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error>;
    /// An extension of type `ty` that is not deferred
    /// ([`Builder::defer_ext`]); `data` is a sub-slice of the input.
    fn ext(&mut self, ty: i8, data: &[u8]) -> Result<Self::Value, Self::Error>;

    /// A str in map-key position (bindings intern keys).
    fn key_str(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error> {
        self.str(bytes)
    }
    /// A bin in map-key position.
    fn key_bin(&mut self, bytes: &[u8]) -> Result<Self::Value, Self::Error> {
        self.bin(bytes)
    }

    /// `len` is the declared length; `capacity` is what may safely be reserved
    /// (never more than the buffered bytes could hold).
    fn array_begin(&mut self, len: u32, capacity: usize) -> Result<Self::Array, Self::Error>;
    /// The next element of `array`.
    fn array_push(&mut self, array: &mut Self::Array, v: Self::Value) -> Result<(), Self::Error>;
    /// `array` has all its elements.
    fn array_end(&mut self, array: Self::Array) -> Result<Self::Value, Self::Error>;
    /// A map of `len` entries begins; `capacity` is what may safely be
    /// reserved, as for [`Builder::array_begin`].
    fn map_begin(&mut self, len: u32, capacity: usize) -> Result<Self::Map, Self::Error>;
    /// A finished key. The builder keeps it until the matching
    /// [`Builder::map_value`]: the decoder itself never holds values between
    /// calls, so a binding can keep everything in flight where its garbage
    /// collector sees it.
    fn map_key(&mut self, map: &mut Self::Map, k: Self::Value) -> Result<(), Self::Error>;
    /// The value for the key given just before.
    fn map_value(&mut self, map: &mut Self::Map, v: Self::Value) -> Result<(), Self::Error>;
    /// `map` has all its entries.
    fn map_end(&mut self, map: Self::Map) -> Result<Self::Value, Self::Error>;

    /// Return true to handle ext `ty` outside the decoder (a "recursive" ext
    /// whose unpacker reads the following objects itself). The decoder then
    /// stops with [`Step::Deferred`] right after the ext header, once the
    /// whole payload is buffered; the caller produces the value and hands it
    /// back with [`StreamDecoder::inject`].
    fn defer_ext(&mut self, _ty: i8) -> bool {
        false
    }
}

/// What one call to [`StreamDecoder::decode`] achieved.
#[derive(Debug, PartialEq)]
pub enum Step<V> {
    /// A whole top-level object.
    Done(V),
    /// The input ended inside an object; the position is at the start of the
    /// unfinished token, and partial containers are kept.
    NeedMore,
    /// An ext the builder asked to handle itself; the position is just past
    /// its header and `len` payload bytes are buffered.
    Deferred {
        /// The ext type.
        ty: i8,
        /// The payload length.
        len: u32,
    },
}

/// A parsed lead token. For fixed-size scalars the header holds the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Header {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// An unsigned format, with its value.
    Uint(u64),
    /// A signed format (negative fixint, int 8..64), with its value.
    Int(i64),
    /// float 32.
    F32(f32),
    /// float 64.
    F64(f64),
    /// A str header with its payload length.
    Str(u32),
    /// A bin header with its payload length.
    Bin(u32),
    /// An array header with its element count.
    Array(u32),
    /// A map header with its entry count.
    Map(u32),
    /// An ext header.
    Ext {
        /// The ext type.
        ty: i8,
        /// The payload length.
        len: u32,
    },
}

/// Payload bytes after the lead byte for 0xca (float32) ..= 0xd3 (int64).
const SCALAR_LEN: [usize; 10] = [4, 8, 1, 2, 4, 8, 1, 2, 4, 8];

/// The `N` bytes after the lead byte, if buffered.
#[inline(always)]
fn after<const N: usize>(input: &[u8]) -> Option<[u8; N]> {
    input.get(1..=N).and_then(|b| b.try_into().ok())
}

/// Parses the header at the start of `input`. Returns the header and its size
/// in bytes (for str/bin/ext, excluding the payload), `Ok(None)` when `input`
/// is too short to hold it, or `InvalidMarker` for `0xc1`.
///
/// One match on the lead byte (the layout of [`rmp::Marker`]'s ranges),
/// since this runs once per decoded item.
#[inline(always)]
pub fn parse_header(input: &[u8]) -> Result<Option<(Header, usize)>, DecodeError> {
    let Some(&lead) = input.first() else {
        return Ok(None);
    };
    macro_rules! take {
        ($n:literal, |$b:ident| $h:expr) => {
            match after::<$n>(input) {
                Some($b) => Ok(Some(($h, $n + 1))),
                None => Ok(None),
            }
        };
    }
    let u16_of = |b: [u8; 2]| u16::from_be_bytes(b) as u32;
    let u32_of = u32::from_be_bytes;
    match lead {
        0x00..=0x7f => Ok(Some((Header::Uint(lead as u64), 1))),
        0x80..=0x8f => Ok(Some((Header::Map((lead & 0x0f) as u32), 1))),
        0x90..=0x9f => Ok(Some((Header::Array((lead & 0x0f) as u32), 1))),
        0xa0..=0xbf => Ok(Some((Header::Str((lead & 0x1f) as u32), 1))),
        0xc0 => Ok(Some((Header::Nil, 1))),
        0xc1 => Err(DecodeError::InvalidMarker(lead)),
        0xc2 => Ok(Some((Header::Bool(false), 1))),
        0xc3 => Ok(Some((Header::Bool(true), 1))),
        0xc4 => take!(1, |b| Header::Bin(b[0] as u32)),
        0xc5 => take!(2, |b| Header::Bin(u16_of(b))),
        0xc6 => take!(4, |b| Header::Bin(u32_of(b))),
        0xc7 => take!(2, |b| Header::Ext {
            ty: b[1] as i8,
            len: b[0] as u32
        }),
        0xc8 => take!(3, |b| Header::Ext {
            ty: b[2] as i8,
            len: u16_of([b[0], b[1]])
        }),
        0xc9 => take!(5, |b| Header::Ext {
            ty: b[4] as i8,
            len: u32_of([b[0], b[1], b[2], b[3]])
        }),
        0xca => take!(4, |b| Header::F32(f32::from_bits(u32_of(b)))),
        0xcb => take!(8, |b| Header::F64(f64::from_bits(u64::from_be_bytes(b)))),
        0xcc => take!(1, |b| Header::Uint(b[0] as u64)),
        0xcd => take!(2, |b| Header::Uint(u16_of(b) as u64)),
        0xce => take!(4, |b| Header::Uint(u32_of(b) as u64)),
        0xcf => take!(8, |b| Header::Uint(u64::from_be_bytes(b))),
        0xd0 => take!(1, |b| Header::Int(b[0] as i8 as i64)),
        0xd1 => take!(2, |b| Header::Int(i16::from_be_bytes(b) as i64)),
        0xd2 => take!(4, |b| Header::Int(i32::from_be_bytes(b) as i64)),
        0xd3 => take!(8, |b| Header::Int(i64::from_be_bytes(b))),
        0xd4..=0xd8 => take!(1, |b| Header::Ext {
            ty: b[0] as i8,
            len: 1 << (lead - 0xd4)
        }),
        0xd9 => take!(1, |b| Header::Str(b[0] as u32)),
        0xda => take!(2, |b| Header::Str(u16_of(b))),
        0xdb => take!(4, |b| Header::Str(u32_of(b))),
        0xdc => take!(2, |b| Header::Array(u16_of(b))),
        0xdd => take!(4, |b| Header::Array(u32_of(b))),
        0xde => take!(2, |b| Header::Map(u16_of(b))),
        0xdf => take!(4, |b| Header::Map(u32_of(b))),
        0xe0..=0xff => Ok(Some((Header::Int(lead as i8 as i64), 1))),
    }
}

/// The length limit a header breaks, if any.
fn header_limit(header: &Header, limits: &Limits) -> Option<DecodeError> {
    let (kind, len, max) = match *header {
        Header::Str(len) => (LimitKind::StrLen, len, limits.max_str_len),
        Header::Bin(len) => (LimitKind::BinLen, len, limits.max_bin_len),
        Header::Ext { len, .. } => (LimitKind::ExtLen, len, limits.max_ext_len),
        Header::Array(len) => (LimitKind::ArrayLen, len, limits.max_array_len),
        Header::Map(len) => (LimitKind::MapLen, len, limits.max_map_len),
        _ => return None,
    };
    (len > max).then_some(DecodeError::LimitExceeded { kind, len, max })
}

/// What one general token did.
enum Token<V> {
    Value(V),
    /// A container was opened (nothing to place yet).
    Opened,
    Stop(Step<V>),
}

enum Frame<B: Builder> {
    Array {
        array: B::Array,
        remaining: u32,
    },
    Map {
        map: B::Map,
        remaining: u32,
        /// The key of the current entry has been given to the builder.
        has_key: bool,
    },
}

/// A container under construction, as handed out by
/// [`StreamDecoder::for_each_partial`].
pub enum Partial<'a, B: Builder> {
    /// An array under construction.
    Array(&'a mut B::Array),
    /// A map under construction.
    Map(&'a mut B::Map),
}

/// What a failing step leaves of its token: whole items (scalars, or
/// containers with everything in them) and payload bytes of a str, bin or
/// ext whose header was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cut {
    items: u64,
    bytes: u64,
}

/// What is left of an object being discarded: first `bytes` of a payload,
/// then whole items at each open level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Leftover {
    /// Items still to drop at each level, outermost first. The rest of a
    /// failed object is one level (its depth no longer matters); an
    /// explicit skip tracks its levels, so it can apply the depth limit
    /// like a read, and level 0 is the top level.
    levels: Vec<u64>,
    bytes: u64,
    /// An explicit [`StreamDecoder::skip`] cut short: the next `skip`
    /// continues it (rather than skipping one more object).
    skipping: bool,
}

impl Leftover {
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.bytes == 0 && self.levels.iter().all(|&n| n == 0)
    }

    fn clear(&mut self) {
        self.levels.clear();
        self.bytes = 0;
        self.skipping = false;
    }

    /// Turns whatever is left into one level of `extra` more items, with no
    /// depth tracking (after an error).
    fn flatten(&mut self, extra: u64) {
        let items = self
            .levels
            .iter()
            .fold(extra, |sum, &n| sum.saturating_add(n));
        self.levels.clear();
        self.levels.push(items);
        self.skipping = false;
    }
}

impl<B: Builder> Frame<B> {
    /// Items this container still expects, counting the one in progress.
    fn items_left(&self) -> u64 {
        match self {
            Frame::Array { remaining, .. } => *remaining as u64,
            Frame::Map {
                remaining, has_key, ..
            } => 2 * *remaining as u64 - *has_key as u64,
        }
    }
}

/// A resumable decoder: see the module docs.
///
/// Decoding a stream that arrives in chunks, keeping the unread tail:
///
/// ```
/// use msgpack_rs_core::{Limits, Step, StreamDecoder, Value, ValueBuilder};
///
/// let mut decoder = StreamDecoder::<ValueBuilder>::new(Limits::default());
/// let mut buf = Vec::new();
/// let mut objects = Vec::new();
/// // [1, "ab"] then nil, split inside the str.
/// for chunk in [&[0x92, 0x01, 0xa2, b'a'][..], &[b'b', 0xc0][..]] {
///     buf.extend_from_slice(chunk);
///     let mut pos = 0;
///     while let Step::Done(v) = decoder.decode(&mut ValueBuilder, &buf, &mut pos)? {
///         objects.push(v);
///     }
///     buf.drain(..pos); // everything before `pos` has been applied
/// }
/// assert_eq!(
///     objects,
///     [
///         Value::Array(vec![Value::Uint(1), Value::Str(b"ab".to_vec())]),
///         Value::Nil
///     ]
/// );
/// # Ok::<(), msgpack_rs_core::DecodeError>(())
/// ```
pub struct StreamDecoder<B: Builder> {
    stack: Vec<Frame<B>>,
    limits: Limits,
    /// Elements the open containers still expect after the ones in progress
    /// (each takes at least a byte), so capacity hints don't count them.
    owed: u64,
    /// The rest of an object being discarded (after an error, or by
    /// [`StreamDecoder::skip`]), consumed before anything else.
    leftover: Leftover,
    /// Set just before a step that may fail after reading a header: what of
    /// that token would still follow if it did.
    cut: Cut,
}

impl<B: Builder> Default for StreamDecoder<B> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<B: Builder> StreamDecoder<B> {
    /// An idle decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        StreamDecoder {
            stack: Vec::new(),
            limits,
            owed: 0,
            leftover: Leftover::default(),
            cut: Cut::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits (they apply from the next item on).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Containers currently under construction.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    /// True when no object is partially decoded or being discarded.
    pub fn is_idle(&self) -> bool {
        self.stack.is_empty() && self.leftover.is_empty()
    }

    /// True while the rest of a failed or skipped object is still to be
    /// discarded (the next [`StreamDecoder::decode`] does that first).
    pub fn is_discarding(&self) -> bool {
        !self.leftover.is_empty()
    }

    /// Drops any partial object, and what was left to discard.
    pub fn reset(&mut self) {
        self.stack.clear();
        self.owed = 0;
        self.leftover.clear();
        self.cut = Cut::default();
    }

    /// After an error: drops the object in progress and records what of it
    /// is still to come. Every open container has one element in progress
    /// (the failed token, or the container inside it), already consumed.
    fn abandon(&mut self) {
        let mut items = self.cut.items;
        for frame in &self.stack {
            items = items.saturating_add(frame.items_left() - 1);
        }
        self.leftover.flatten(items);
        self.leftover.bytes = self.leftover.bytes.saturating_add(self.cut.bytes);
        self.cut = Cut::default();
        self.stack.clear();
        self.owed = 0;
    }

    /// Discards the leftover from `input[*pos..]`. Returns true when it is
    /// all gone, false when the input ended first (the rest is remembered;
    /// `*pos` is past everything consumed, possibly inside a payload). A
    /// `0xc1` counts as a one-byte item and is reported once consumed; an
    /// explicit skip reports nesting beyond the depth limit, then goes on as
    /// after any error.
    fn discard(&mut self, input: &[u8], pos: &mut usize) -> Result<bool, DecodeError> {
        let left = &mut self.leftover;
        loop {
            if left.bytes > 0 {
                let available = input.len().saturating_sub(*pos) as u64;
                let n = left.bytes.min(available);
                *pos += n as usize;
                left.bytes -= n;
                if left.bytes > 0 {
                    return Ok(false);
                }
            }
            while left.levels.last() == Some(&0) {
                left.levels.pop();
            }
            if left.levels.is_empty() {
                left.skipping = false;
                return Ok(true);
            }
            let rest = input.get(*pos..).unwrap_or(&[]);
            let parsed = parse_header(rest);
            let Some(top) = left.levels.last_mut() else {
                return Ok(true);
            };
            let (header, hlen) = match parsed {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(false),
                Err(e) => {
                    *pos += 1;
                    *top -= 1;
                    // As after any error, the rest of this object is dropped
                    // first and the next skip or read starts a new object
                    // (a skip is not "continued" past its own error).
                    left.flatten(0);
                    if left.is_empty() {
                        left.clear();
                    }
                    return Err(e);
                }
            };
            *pos += hlen;
            *top -= 1;
            // An explicit skip rejects what a read would (the same answer
            // from every entry point); the rest of a failed object does not.
            let limit = if left.skipping {
                header_limit(&header, &self.limits)
            } else {
                None
            };
            let items = match header {
                Header::Str(len) | Header::Bin(len) | Header::Ext { len, .. } => {
                    left.bytes = len as u64;
                    if let Some(e) = limit {
                        left.flatten(0);
                        return Err(e);
                    }
                    continue;
                }
                Header::Array(n) => n as u64,
                Header::Map(n) => 2 * n as u64,
                _ => continue,
            };
            if let Some(e) = limit {
                left.flatten(items);
                return Err(e);
            }
            if items == 0 {
                continue;
            }
            if !left.skipping {
                *top = top.saturating_add(items);
            } else if left.levels.len() > self.limits.max_depth {
                left.flatten(items);
                return Err(DecodeError::DepthExceeded {
                    max: self.limits.max_depth,
                });
            } else {
                left.levels.push(items);
            }
        }
    }

    /// Discards what is left of a failed or skipped object (see the module
    /// docs) without decoding anything after it: `Ok(true)` once nothing is
    /// left. For callers that read raw headers next.
    pub fn discard_leftover(&mut self, input: &[u8], pos: &mut usize) -> Result<bool, DecodeError> {
        if self.leftover.is_empty() {
            return Ok(true);
        }
        self.discard(input, pos)
    }

    /// Skips one object without building it: the rest of the object in
    /// progress if there is one (its partial containers are dropped), else
    /// the next one; a skip cut short earlier is continued. `Ok(true)` when
    /// it is skipped; `Ok(false)` when the input ended first: the rest is
    /// remembered, and the next `skip` or `decode` finishes it before
    /// anything else. Nothing is built or reserved; nesting deeper than the
    /// depth limit fails as it would for a read.
    pub fn skip(&mut self, input: &[u8], pos: &mut usize) -> Result<bool, DecodeError> {
        if !self.leftover.skipping {
            // The rest of a failed object goes first.
            if !self.leftover.is_empty() && !self.discard(input, pos)? {
                return Ok(false);
            }
            let left = &mut self.leftover;
            left.clear();
            left.skipping = true;
            // Level 0 is the top level: the object being skipped, or (for a
            // partial one) nothing more there.
            left.levels.push(self.stack.is_empty() as u64);
            let innermost = self.stack.len();
            for (i, frame) in self.stack.iter().enumerate() {
                // Each container's element in progress is the one inside it,
                // except the innermost's next element, not started yet.
                let in_progress = (i + 1 < innermost) as u64;
                left.levels.push(frame.items_left() - in_progress);
            }
            self.stack.clear();
            self.owed = 0;
        }
        let r = self.discard(input, pos);
        // Nothing of a new object was there: no skip is pending (the next
        // call starts over), as if it had not been called.
        let left = &self.leftover;
        if r == Ok(false) && left.skipping && left.bytes == 0 && left.levels == [1] {
            self.leftover.clear();
        }
        r
    }

    /// Releases the stacks' memory beyond what they hold now.
    pub fn shrink_to_fit(&mut self) {
        self.stack.shrink_to_fit();
        self.leftover.levels.shrink_to_fit();
    }

    /// Heap bytes held by the decoder itself.
    pub fn heap_size(&self) -> usize {
        self.stack.capacity() * std::mem::size_of::<Frame<B>>()
            + self.leftover.levels.capacity() * std::mem::size_of::<u64>()
    }

    /// Calls `f` for every partial array and map, innermost last.
    pub fn for_each_partial(&mut self, mut f: impl FnMut(Partial<'_, B>)) {
        for frame in &mut self.stack {
            match frame {
                Frame::Array { array, .. } => f(Partial::Array(array)),
                Frame::Map { map, .. } => f(Partial::Map(map)),
            }
        }
    }

    /// Decodes from `input[*pos..]`. On return `*pos` is past every token
    /// applied. After an error `*pos` is past the offending token (or its
    /// header), the partial containers are dropped and the rest of the failed
    /// object is discarded by the next call, which then decodes the next
    /// top-level object (see the module docs).
    #[inline]
    pub fn decode(
        &mut self,
        b: &mut B,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Step<B::Value>, B::Error> {
        if !self.leftover.is_empty() && !self.discard(input, pos)? {
            return Ok(Step::NeedMore);
        }
        let r = self.decode_inner(b, input, pos);
        if r.is_err() {
            self.abandon();
        }
        r
    }

    /// Supplies the value of a [`Step::Deferred`] ext. Returns the top-level
    /// object if that value completed it.
    pub fn inject(&mut self, b: &mut B, v: B::Value) -> Result<Option<B::Value>, B::Error> {
        let r = self.place(b, v);
        if r.is_err() {
            self.abandon();
        }
        r
    }

    /// Gives up on a [`Step::Deferred`] ext whose value could not be made
    /// (its unpacker failed): the object in progress is discarded like
    /// after a decode error, starting with the `unread` bytes of the ext's
    /// payload that its unpacker did not read.
    pub fn abandon_deferred(&mut self, unread: u64) {
        self.cut.bytes = unread;
        self.abandon();
    }

    #[inline]
    fn in_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { has_key: false, .. }))
    }

    #[inline]
    fn check_depth(&self) -> Result<(), DecodeError> {
        if self.stack.len() >= self.limits.max_depth {
            Err(DecodeError::DepthExceeded {
                max: self.limits.max_depth,
            })
        } else {
            Ok(())
        }
    }

    /// Of `buffered` bytes, those not set aside for the elements the open
    /// containers still expect.
    #[inline]
    fn unowed(&self, buffered: usize) -> usize {
        (buffered as u64).saturating_sub(self.owed) as usize
    }

    #[inline]
    fn check_len(kind: LimitKind, len: u32, max: u32) -> Result<(), DecodeError> {
        if len > max {
            Err(DecodeError::LimitExceeded { kind, len, max })
        } else {
            Ok(())
        }
    }

    fn decode_inner(
        &mut self,
        b: &mut B,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Step<B::Value>, B::Error> {
        loop {
            let start = *pos;
            let Some(&lead) = input.get(start) else {
                return Ok(Step::NeedMore);
            };
            // One-byte formats (fixint, nil, bool) and fixstr are most of a
            // typical message: handle them before the general header parse.
            let value = match lead {
                0x00..=0x7f => {
                    *pos = start + 1;
                    b.uint(lead as u64)?
                }
                0xe0..=0xff => {
                    *pos = start + 1;
                    b.int(lead as i8 as i64)?
                }
                0xc0 => {
                    *pos = start + 1;
                    b.nil()?
                }
                0xc2 | 0xc3 => {
                    *pos = start + 1;
                    b.boolean(lead == 0xc3)?
                }
                // Fixed-size numbers: the lead byte says how many bytes follow.
                0xca..=0xd3 => {
                    let n = SCALAR_LEN[(lead - 0xca) as usize];
                    let Some(b8) = input.get(start + 1..start + 1 + n) else {
                        return Ok(Step::NeedMore);
                    };
                    let mut be = [0u8; 8];
                    be[8 - n..].copy_from_slice(b8);
                    let raw = u64::from_be_bytes(be);
                    *pos = start + 1 + n;
                    match lead {
                        0xca => b.float32(f32::from_bits(raw as u32))?,
                        0xcb => b.float64(f64::from_bits(raw))?,
                        0xcc..=0xcf => b.uint(raw)?,
                        // Sign-extend the n-byte two's complement value.
                        _ => {
                            let shift = 64 - 8 * n as u32;
                            b.int(((raw << shift) as i64) >> shift)?
                        }
                    }
                }
                0xa0..=0xbf if self.limits.max_str_len >= 31 => {
                    let len = (lead & 0x1f) as usize;
                    let Some(bytes) = input.get(start + 1..start + 1 + len) else {
                        return Ok(Step::NeedMore);
                    };
                    *pos = start + 1 + len;
                    if self.in_key_position() {
                        b.key_str(bytes)?
                    } else {
                        b.str(bytes)?
                    }
                }
                _ => match self.decode_token(b, input, pos)? {
                    Token::Value(v) => v,
                    Token::Opened => continue,
                    Token::Stop(step) => return Ok(step),
                },
            };
            if let Some(done) = self.place(b, value)? {
                return Ok(Step::Done(done));
            }
        }
    }

    /// Any token, through the general header parser.
    #[inline]
    fn decode_token(
        &mut self,
        b: &mut B,
        input: &[u8],
        pos: &mut usize,
    ) -> Result<Token<B::Value>, B::Error> {
        let start = *pos;
        let rest = input.get(start..).unwrap_or(&[]);
        let (header, hlen) = match parse_header(rest) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(Token::Stop(Step::NeedMore)),
            Err(e) => {
                // The 0xc1 byte is the failed item.
                *pos = start + 1;
                return Err(e.into());
            }
        };
        let body = &rest[hlen..];
        let value = match header {
            Header::Nil => b.nil()?,
            Header::Bool(v) => b.boolean(v)?,
            Header::Uint(v) => b.uint(v)?,
            Header::Int(v) => b.int(v)?,
            Header::F32(v) => b.float32(v)?,
            Header::F64(v) => b.float64(v)?,
            Header::Str(len) => {
                if let Err(e) = Self::check_len(LimitKind::StrLen, len, self.limits.max_str_len) {
                    *pos = start + hlen;
                    self.cut.bytes = len as u64;
                    return Err(e.into());
                }
                let Some(bytes) = body.get(..len as usize) else {
                    return Ok(Token::Stop(Step::NeedMore));
                };
                *pos = start + hlen + len as usize;
                return Ok(Token::Value(if self.in_key_position() {
                    b.key_str(bytes)?
                } else {
                    b.str(bytes)?
                }));
            }
            Header::Bin(len) => {
                if let Err(e) = Self::check_len(LimitKind::BinLen, len, self.limits.max_bin_len) {
                    *pos = start + hlen;
                    self.cut.bytes = len as u64;
                    return Err(e.into());
                }
                let Some(bytes) = body.get(..len as usize) else {
                    return Ok(Token::Stop(Step::NeedMore));
                };
                *pos = start + hlen + len as usize;
                return Ok(Token::Value(if self.in_key_position() {
                    b.key_bin(bytes)?
                } else {
                    b.bin(bytes)?
                }));
            }
            Header::Ext { ty, len } => {
                if let Err(e) = Self::check_len(LimitKind::ExtLen, len, self.limits.max_ext_len) {
                    *pos = start + hlen;
                    self.cut.bytes = len as u64;
                    return Err(e.into());
                }
                let Some(bytes) = body.get(..len as usize) else {
                    return Ok(Token::Stop(Step::NeedMore));
                };
                if b.defer_ext(ty) {
                    *pos = start + hlen;
                    // The payload belongs to the ext's unpacker, which reads
                    // it from the stream itself.
                    self.cut.bytes = len as u64;
                    self.check_depth()?;
                    self.cut.bytes = 0;
                    return Ok(Token::Stop(Step::Deferred { ty, len }));
                }
                *pos = start + hlen + len as usize;
                return Ok(Token::Value(b.ext(ty, bytes)?));
            }
            Header::Array(len) => {
                *pos = start + hlen;
                // Until the array is open, a failure leaves its elements.
                self.cut.items = len as u64;
                Self::check_len(LimitKind::ArrayLen, len, self.limits.max_array_len)?;
                if len == 0 {
                    let array = b.array_begin(0, 0)?;
                    return Ok(Token::Value(b.array_end(array)?));
                }
                self.check_depth()?;
                let capacity = (len as usize).min(self.unowed(body.len()));
                let array = b.array_begin(len, capacity)?;
                self.cut.items = 0;
                self.owed += len as u64 - 1;
                self.stack.push(Frame::Array {
                    array,
                    remaining: len,
                });
                return Ok(Token::Opened);
            }
            Header::Map(len) => {
                *pos = start + hlen;
                // Until the map is open, a failure leaves its entries.
                self.cut.items = 2 * len as u64;
                Self::check_len(LimitKind::MapLen, len, self.limits.max_map_len)?;
                if len == 0 {
                    let map = b.map_begin(0, 0)?;
                    return Ok(Token::Value(b.map_end(map)?));
                }
                self.check_depth()?;
                // Every entry takes at least two bytes.
                let capacity = (len as usize).min(self.unowed(body.len()) / 2);
                let map = b.map_begin(len, capacity)?;
                self.cut.items = 0;
                self.owed += 2 * len as u64 - 1;
                self.stack.push(Frame::Map {
                    map,
                    remaining: len,
                    has_key: false,
                });
                return Ok(Token::Opened);
            }
        };
        // Fixed-size scalars: the header is the whole token.
        *pos = start + hlen;
        Ok(Token::Value(value))
    }

    /// Puts a finished value into the innermost container, closing every
    /// container it completes. Returns the top-level object when done.
    #[inline(always)]
    fn place(&mut self, b: &mut B, mut v: B::Value) -> Result<Option<B::Value>, B::Error> {
        loop {
            match self.stack.last_mut() {
                None => return Ok(Some(v)),
                Some(Frame::Array { array, remaining }) => {
                    b.array_push(array, v)?;
                    *remaining -= 1;
                    if *remaining > 0 {
                        self.owed -= 1;
                        return Ok(None);
                    }
                    match self.stack.pop() {
                        Some(Frame::Array { array, .. }) => v = b.array_end(array)?,
                        _ => return Ok(None),
                    }
                }
                Some(Frame::Map {
                    map,
                    remaining,
                    has_key,
                }) => {
                    // Counters move only once the builder took the value,
                    // so an error leaves them describing what is still to
                    // come (see `abandon`).
                    if !*has_key {
                        b.map_key(map, v)?;
                        *has_key = true;
                        self.owed -= 1;
                        return Ok(None);
                    }
                    b.map_value(map, v)?;
                    *has_key = false;
                    *remaining -= 1;
                    if *remaining > 0 {
                        self.owed -= 1;
                        return Ok(None);
                    }
                    match self.stack.pop() {
                        Some(Frame::Map { map, .. }) => v = b.map_end(map)?,
                        _ => return Ok(None),
                    }
                }
            }
        }
    }
}

/// A builder that builds nothing: decoding with it validates and skips one
/// object.
#[derive(Debug, Default, Clone, Copy)]
pub struct Skipper;

impl Builder for Skipper {
    type Value = ();
    type Array = ();
    type Map = ();
    type Error = DecodeError;

    fn nil(&mut self) -> Result<(), DecodeError> {
        Ok(())
    }
    fn boolean(&mut self, _: bool) -> Result<(), DecodeError> {
        Ok(())
    }
    fn uint(&mut self, _: u64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn int(&mut self, _: i64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn float32(&mut self, _: f32) -> Result<(), DecodeError> {
        Ok(())
    }
    fn float64(&mut self, _: f64) -> Result<(), DecodeError> {
        Ok(())
    }
    fn str(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn bin(&mut self, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn ext(&mut self, _: i8, _: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    fn array_begin(&mut self, _: u32, _: usize) -> Result<(), DecodeError> {
        Ok(())
    }
    fn array_push(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> {
        Ok(())
    }
    fn array_end(&mut self, _: ()) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map_begin(&mut self, _: u32, _: usize) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map_key(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map_value(&mut self, _: &mut (), _: ()) -> Result<(), DecodeError> {
        Ok(())
    }
    fn map_end(&mut self, _: ()) -> Result<(), DecodeError> {
        Ok(())
    }
}
