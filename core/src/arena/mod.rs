//! Zero-copy decoding into an arena.
//!
//! [`decode_in`] turns one message into a [`ValueRef`] tree in a single pass
//! over a byte slice: strings, binaries and ext payloads borrow from the
//! input, arrays and maps are slices in a caller-owned [`bumpalo::Bump`]. No
//! node is allocated on the heap on its own, and one [`Bump::reset`] frees a
//! whole message, so a reused arena decodes without heap allocations once it
//! has grown to the size of the largest message.
//!
//! ```
//! use msgpack_rs_core::arena::{decode_in, ValueRef};
//! use bumpalo::Bump;
//!
//! let mut bump = Bump::new();
//! for message in [&b"\x92\x01\xa2hi"[..], b"\x81\xa1k\xc3"] {
//!     bump.reset(); // frees the previous message's arrays and maps at once
//!     let v = decode_in(&bump, message).unwrap();
//!     println!("{v:?}");
//! }
//! let v = decode_in(&bump, b"\x92\x01\xa2hi").unwrap();
//! assert_eq!(v, ValueRef::Array(&[ValueRef::Uint(1), ValueRef::Str(b"hi")]));
//! ```
//!
//! For a byte stream (chunks, or an [`std::io::Read`]), [`ArenaStream`] owns
//! its buffer and arena and hands out one [`Message`] at a time.
//!
//! # Limits and hostile input
//!
//! The same [`Limits`] apply as for [`crate::StreamDecoder`], with the same
//! results: an input decodes here exactly when it decodes there, to the same
//! object, and fails with the same [`DecodeError`] otherwise (a truncated
//! message is [`DecodeError::UnexpectedEof`]). Errors are rare, so their
//! exact kind is worked out by running the streaming decoder (with
//! [`crate::Skipper`]) over the input: the fast path only has to notice that
//! something is wrong.
//!
//! Lying length headers cost nothing: a container is only allocated once the
//! bytes left in the input could hold all its elements (an element takes at
//! least a byte, a map entry two), after setting aside a byte for each element
//! the enclosing containers still expect. The slices of all open containers
//! together therefore never hold more elements than the input has bytes, and
//! the arena use of one message is at most about 48 bytes per input byte.
//! Nesting is tracked on an explicit stack (in the arena), so deep input
//! cannot overflow the native stack, whatever [`Limits::max_depth`] is.
use crate::decode::{Skipper, Step, StreamDecoder};
use crate::error::DecodeError;
use crate::limits::Limits;
use bumpalo::collections::Vec as BumpVec;
use bumpalo::Bump;

mod stream;
mod value_ref;

pub use stream::{ArenaStream, Message};
pub use value_ref::ValueRef;

/// Decodes `input`, which must hold exactly one object, into `bump` with
/// default [`Limits`].
///
/// Trailing bytes are [`DecodeError::ExtraBytes`]; a truncated object is
/// [`DecodeError::UnexpectedEof`]. See the [module docs](self).
///
/// ```
/// use msgpack_rs_core::{arena::decode_in, DecodeError};
/// use bumpalo::Bump;
///
/// let bump = Bump::new();
/// let v = decode_in(&bump, &[0x92, 0xa1, b'a', 0xc0]).unwrap();
/// assert_eq!(v[0].as_str(), Some("a"));
/// assert!(v[1].is_nil());
/// assert_eq!(decode_in(&bump, &[0x92, 0xa1]), Err(DecodeError::UnexpectedEof));
/// assert_eq!(decode_in(&bump, &[0xc0, 0xc0]), Err(DecodeError::ExtraBytes(1)));
/// ```
#[inline]
pub fn decode_in<'a>(bump: &'a Bump, input: &'a [u8]) -> Result<ValueRef<'a>, DecodeError> {
    decode_in_with(bump, input, Limits::default())
}

/// [`decode_in`] with explicit limits.
///
/// ```
/// use msgpack_rs_core::{arena::decode_in_with, DecodeError, Limits};
/// use bumpalo::Bump;
///
/// let limits = Limits { max_depth: 1, ..Limits::default() };
/// let bump = Bump::new();
/// assert!(decode_in_with(&bump, &[0x91, 0x90], limits).is_ok()); // empty ones don't count
/// assert_eq!(
///     decode_in_with(&bump, &[0x91, 0x91, 0x01], limits),
///     Err(DecodeError::DepthExceeded { max: 1 })
/// );
/// ```
#[inline]
pub fn decode_in_with<'a>(
    bump: &'a Bump,
    input: &'a [u8],
    limits: Limits,
) -> Result<ValueRef<'a>, DecodeError> {
    let (v, used) = decode_prefix_in(bump, input, limits)?;
    match input.len() - used {
        0 => Ok(v),
        extra => Err(DecodeError::ExtraBytes(extra)),
    }
}

/// Decodes the first object of `input` into `bump`. Returns it and the
/// number of bytes it took; what follows is not looked at.
///
/// ```
/// use msgpack_rs_core::{arena::decode_prefix_in, Limits};
/// use bumpalo::Bump;
///
/// let bump = Bump::new();
/// let input = [0x01, 0xa2, b'h', b'i'];
/// let (first, used) = decode_prefix_in(&bump, &input, Limits::default()).unwrap();
/// assert_eq!((first.as_u64(), used), (Some(1), 1));
/// let (second, _) = decode_prefix_in(&bump, &input[used..], Limits::default()).unwrap();
/// assert_eq!(second.as_str(), Some("hi"));
/// ```
#[inline]
pub fn decode_prefix_in<'a>(
    bump: &'a Bump,
    input: &'a [u8],
    limits: Limits,
) -> Result<(ValueRef<'a>, usize), DecodeError> {
    match decode_fast(bump, input, &limits) {
        Some(done) => Ok(done),
        None => Err(canonical_error(input, limits)),
    }
}

/// Why `input` does not start with a whole object: what the streaming
/// decoder says about it (it is the reference; the fast path only detects).
#[cold]
#[inline(never)]
pub(crate) fn canonical_error(input: &[u8], limits: Limits) -> DecodeError {
    let mut pos = 0;
    match StreamDecoder::<Skipper>::new(limits).decode(&mut Skipper, input, &mut pos) {
        Err(e) => e,
        Ok(Step::NeedMore) => DecodeError::UnexpectedEof,
        // Unreachable: the fast path accepts exactly what the streaming
        // decoder accepts (checked by the tests and the fuzz target).
        Ok(Step::Done(())) | Ok(Step::Deferred { .. }) => {
            debug_assert!(false, "fast path rejected a valid object");
            DecodeError::UnexpectedEof
        }
    }
}

/// One token: a finished value, or the header of a non-empty container.
enum Token<'a> {
    Value(ValueRef<'a>),
    Array(usize),
    Map(usize),
}

/// A container under construction. `owed` is the number of elements the
/// enclosing containers still expect after the ones in progress (each takes
/// at least a byte of input).
enum Frame<'a> {
    Array {
        items: BumpVec<'a, ValueRef<'a>>,
        len: usize,
        owed: usize,
    },
    Map {
        entries: BumpVec<'a, (ValueRef<'a>, ValueRef<'a>)>,
        len: usize,
        owed: usize,
        /// The key of the entry in progress waits on the key stack (its
        /// value is a container being decoded). Keeping keys out of the
        /// frame keeps frames small and plainly laid out.
        parked: bool,
    },
}

impl<'a> Frame<'a> {
    /// Elements the enclosing containers (and this one, after the element in
    /// progress) still expect: what a child container opened now must leave
    /// room for.
    #[inline(always)]
    fn owed_by_child(&self) -> usize {
        match self {
            Frame::Array { items, len, owed } => owed + (len - items.len() - 1),
            Frame::Map {
                entries,
                len,
                owed,
                parked,
            } => owed + 2 * (len - entries.len()) - *parked as usize - 1,
        }
    }

    /// Puts a finished child container in its place.
    #[inline(always)]
    fn place(&mut self, v: ValueRef<'a>, keys: &mut BumpVec<'a, ValueRef<'a>>) {
        match self {
            Frame::Array { items, .. } => items.push(v),
            Frame::Map {
                entries, parked, ..
            } => {
                if *parked {
                    // The child was the value of the parked key.
                    let k = keys.pop();
                    debug_assert!(k.is_some(), "a parked key is on the stack");
                    entries.push((k.unwrap_or(ValueRef::Nil), v));
                    *parked = false;
                } else {
                    // The child was a key: its value comes next.
                    keys.push(v);
                    *parked = true;
                }
            }
        }
    }

    #[inline(always)]
    fn finish(self) -> ValueRef<'a> {
        match self {
            Frame::Array { items, .. } => ValueRef::Array(items.into_bump_slice()),
            Frame::Map { entries, .. } => ValueRef::Map(entries.into_bump_slice()),
        }
    }
}

/// The `N` bytes at `at`, if there.
#[inline(always)]
fn be<const N: usize>(input: &[u8], at: usize) -> Option<[u8; N]> {
    input.get(at..)?.get(..N)?.try_into().ok()
}

/// The `len` bytes at `at`, if there.
#[inline(always)]
fn bytes(input: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    input.get(at..)?.get(..len)
}

/// Reads the token at `*pos` and moves past it. `None` when the input ends
/// inside it, for `0xc1`, or when a length is over its limit.
#[inline(always)]
fn token<'a>(input: &'a [u8], pos: &mut usize, limits: &Limits) -> Option<Token<'a>> {
    let at = *pos;
    let lead = *input.get(at)?;
    let p = at + 1;
    macro_rules! scalar {
        ($n:literal, |$b:ident| $v:expr) => {{
            let $b = be::<$n>(input, p)?;
            *pos = p + $n;
            Token::Value($v)
        }};
    }
    macro_rules! payload {
        ($hlen:literal, $len:expr, $max:expr, |$data:ident| $v:expr) => {{
            let len: u32 = $len;
            if len > $max {
                return None;
            }
            let start = p + $hlen;
            let $data = bytes(input, start, len as usize)?;
            *pos = start + len as usize;
            Token::Value($v)
        }};
    }
    let t = match lead {
        0x00..=0x7f => {
            *pos = p;
            Token::Value(ValueRef::Uint(lead as u64))
        }
        0xe0..=0xff => {
            *pos = p;
            Token::Value(ValueRef::Int(lead as i8 as i64))
        }
        0xa0..=0xbf => payload!(0, (lead & 0x1f) as u32, limits.max_str_len, |s| {
            ValueRef::Str(s)
        }),
        0x90..=0x9f => {
            *pos = p;
            return container(false, (lead & 0x0f) as u32, limits);
        }
        0x80..=0x8f => {
            *pos = p;
            return container(true, (lead & 0x0f) as u32, limits);
        }
        0xc0 => {
            *pos = p;
            Token::Value(ValueRef::Nil)
        }
        0xc1 => return None,
        0xc2 | 0xc3 => {
            *pos = p;
            Token::Value(ValueRef::Bool(lead == 0xc3))
        }
        0xc4 => {
            let n = be::<1>(input, p)?[0] as u32;
            payload!(1, n, limits.max_bin_len, |b| ValueRef::Bin(b))
        }
        0xc5 => {
            let n = u16::from_be_bytes(be(input, p)?) as u32;
            payload!(2, n, limits.max_bin_len, |b| ValueRef::Bin(b))
        }
        0xc6 => {
            let n = u32::from_be_bytes(be(input, p)?);
            payload!(4, n, limits.max_bin_len, |b| ValueRef::Bin(b))
        }
        0xc7 => {
            let [n, ty] = be::<2>(input, p)?;
            payload!(2, n as u32, limits.max_ext_len, |d| ValueRef::Ext(
                ty as i8, d
            ))
        }
        0xc8 => {
            let [a, b, ty] = be::<3>(input, p)?;
            let n = u16::from_be_bytes([a, b]) as u32;
            payload!(3, n, limits.max_ext_len, |d| ValueRef::Ext(ty as i8, d))
        }
        0xc9 => {
            let [a, b, c, d, ty] = be::<5>(input, p)?;
            let n = u32::from_be_bytes([a, b, c, d]);
            payload!(5, n, limits.max_ext_len, |d| ValueRef::Ext(ty as i8, d))
        }
        0xca => scalar!(4, |b| ValueRef::F32(f32::from_be_bytes(b))),
        0xcb => scalar!(8, |b| ValueRef::F64(f64::from_be_bytes(b))),
        0xcc => scalar!(1, |b| ValueRef::Uint(b[0] as u64)),
        0xcd => scalar!(2, |b| ValueRef::Uint(u16::from_be_bytes(b) as u64)),
        0xce => scalar!(4, |b| ValueRef::Uint(u32::from_be_bytes(b) as u64)),
        0xcf => scalar!(8, |b| ValueRef::Uint(u64::from_be_bytes(b))),
        0xd0 => scalar!(1, |b| ValueRef::Int(b[0] as i8 as i64)),
        0xd1 => scalar!(2, |b| ValueRef::Int(i16::from_be_bytes(b) as i64)),
        0xd2 => scalar!(4, |b| ValueRef::Int(i32::from_be_bytes(b) as i64)),
        0xd3 => scalar!(8, |b| ValueRef::Int(i64::from_be_bytes(b))),
        0xd4..=0xd8 => {
            let ty = be::<1>(input, p)?[0] as i8;
            payload!(1, 1 << (lead - 0xd4), limits.max_ext_len, |d| {
                ValueRef::Ext(ty, d)
            })
        }
        0xd9 => {
            let n = be::<1>(input, p)?[0] as u32;
            payload!(1, n, limits.max_str_len, |s| ValueRef::Str(s))
        }
        0xda => {
            let n = u16::from_be_bytes(be(input, p)?) as u32;
            payload!(2, n, limits.max_str_len, |s| ValueRef::Str(s))
        }
        0xdb => {
            let n = u32::from_be_bytes(be(input, p)?);
            payload!(4, n, limits.max_str_len, |s| ValueRef::Str(s))
        }
        0xdc => {
            let n = u16::from_be_bytes(be(input, p)?) as u32;
            *pos = p + 2;
            return container(false, n, limits);
        }
        0xdd => {
            let n = u32::from_be_bytes(be(input, p)?);
            *pos = p + 4;
            return container(false, n, limits);
        }
        0xde => {
            let n = u16::from_be_bytes(be(input, p)?) as u32;
            *pos = p + 2;
            return container(true, n, limits);
        }
        0xdf => {
            let n = u32::from_be_bytes(be(input, p)?);
            *pos = p + 4;
            return container(true, n, limits);
        }
    };
    Some(t)
}

/// A container header: an empty container is a finished value (it needs no
/// slice and does not count toward the depth).
#[inline(always)]
fn container<'a>(map: bool, len: u32, limits: &Limits) -> Option<Token<'a>> {
    let max = if map {
        limits.max_map_len
    } else {
        limits.max_array_len
    };
    if len > max {
        return None;
    }
    Some(match (len, map) {
        (0, false) => Token::Value(ValueRef::Array(&[])),
        (0, true) => Token::Value(ValueRef::Map(&[])),
        (n, false) => Token::Array(n as usize),
        (n, true) => Token::Map(n as usize),
    })
}

/// Opens a non-empty container whose header ended at `pos`, if the input
/// left could hold it (see the module docs) and the depth allows.
#[inline(always)]
fn open<'a>(
    bump: &'a Bump,
    token: Token<'a>,
    left: usize,
    owed: usize,
    depth: usize,
    limits: &Limits,
) -> Option<Frame<'a>> {
    if depth >= limits.max_depth {
        return None;
    }
    let room = left.checked_sub(owed)?;
    match token {
        Token::Array(len) if len <= room => Some(Frame::Array {
            items: BumpVec::with_capacity_in(len, bump),
            len,
            owed,
        }),
        Token::Map(len) if len <= room / 2 => Some(Frame::Map {
            entries: BumpVec::with_capacity_in(len, bump),
            len,
            owed,
            parked: false,
        }),
        _ => None,
    }
}

/// The fast path: one object from the start of `input`, with the bytes it
/// took, or `None` if there is none (truncated or invalid input: see
/// [`canonical_error`]).
///
/// The container being filled is kept in a local; its ancestors wait on a
/// stack in the arena, so the loop over a run of scalars is as tight as in a
/// recursive decoder, without recursion.
pub(crate) fn decode_fast<'a>(
    bump: &'a Bump,
    input: &'a [u8],
    limits: &Limits,
) -> Option<(ValueRef<'a>, usize)> {
    let mut pos = 0;
    let first = token(input, &mut pos, limits)?;
    let mut cur = match first {
        Token::Value(v) => return Some((v, pos)),
        t => open(bump, t, input.len() - pos, 0, 0, limits)?,
    };
    let mut stack: BumpVec<'a, Frame<'a>> = BumpVec::new_in(bump);
    let mut keys: BumpVec<'a, ValueRef<'a>> = BumpVec::new_in(bump);
    loop {
        // Fill the current container until it is full or a child opens.
        let child = match &mut cur {
            Frame::Array { items, len, .. } => loop {
                if items.len() == *len {
                    break None;
                }
                match token(input, &mut pos, limits)? {
                    Token::Value(v) => items.push(v),
                    t => break Some(t),
                }
            },
            Frame::Map {
                entries,
                len,
                parked,
                ..
            } => {
                // A whole entry per turn, the key in a local; a key waits on
                // the key stack only while its value (a container) is
                // decoded.
                let mut pending = if *parked {
                    *parked = false;
                    keys.pop()
                } else {
                    None
                };
                loop {
                    if entries.len() == *len {
                        break None;
                    }
                    let k = match pending.take() {
                        Some(k) => k,
                        None => match token(input, &mut pos, limits)? {
                            Token::Value(k) => k,
                            t => break Some(t),
                        },
                    };
                    match token(input, &mut pos, limits)? {
                        Token::Value(v) => entries.push((k, v)),
                        t => {
                            keys.push(k);
                            *parked = true;
                            break Some(t);
                        }
                    }
                }
            }
        };
        match child {
            Some(t) => {
                let owed = cur.owed_by_child();
                let frame = open(bump, t, input.len() - pos, owed, stack.len() + 1, limits)?;
                stack.push(std::mem::replace(&mut cur, frame));
            }
            None => match stack.pop() {
                None => return Some((cur.finish(), pos)),
                Some(parent) => {
                    let done = std::mem::replace(&mut cur, parent);
                    cur.place(done.finish(), &mut keys);
                }
            },
        }
    }
}
