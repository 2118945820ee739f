//! [`ValueRef`]: a decoded object whose strings borrow from the input and
//! whose arrays and maps live in an arena.
use crate::encode::{self, Sink, TooLong};
use crate::timestamp::Timestamp;
use crate::value::Value;
use std::fmt;

/// A MessagePack object borrowed from its input and its arena.
///
/// `Str`, `Bin` and `Ext` payloads are sub-slices of the decoded input;
/// `Array` and `Map` are slices allocated in the caller's
/// [`bumpalo::Bump`]. A `ValueRef` is `Copy` (24 bytes): passing it around
/// copies two words and a tag, never the data.
///
/// Like [`Value`], a `Str` holds bytes, not checked UTF-8
/// ([`ValueRef::as_str`] checks), and `Int` holds what a signed format
/// carried (a canonical encoder only uses signed formats for negative
/// numbers; [`ValueRef::as_u64`] and [`ValueRef::as_i64`] accept both).
///
/// ```
/// use msgpack_rs_core::arena::{decode_in, ValueRef};
/// use bumpalo::Bump;
///
/// let bump = Bump::new();
/// // {"id": 7, "tags": ["a", "b"]}
/// let input = b"\x82\xa2id\x07\xa4tags\x92\xa1a\xa1b";
/// let v = decode_in(&bump, input).unwrap();
/// assert_eq!(v.get("id").and_then(|id| id.as_u64()), Some(7));
/// let tags: Vec<&str> = v["tags"].as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
/// assert_eq!(tags, ["a", "b"]);
/// ```
#[derive(Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// An unsigned format (positive fixint, uint 8..64).
    Uint(u64),
    /// A signed format (negative fixint, int 8..64); the value may still be
    /// non-negative.
    Int(i64),
    /// float 32.
    F32(f32),
    /// float 64.
    F64(f64),
    /// A str, as the bytes of the input (not checked for UTF-8).
    Str(&'a [u8]),
    /// A bin, borrowed from the input.
    Bin(&'a [u8]),
    /// An array; the slice lives in the arena.
    Array(&'a [ValueRef<'a>]),
    /// A map as its entries in input order (duplicate keys are kept); the
    /// slice lives in the arena.
    Map(&'a [(ValueRef<'a>, ValueRef<'a>)]),
    /// An extension: its type and payload (borrowed from the input).
    Ext(i8, &'a [u8]),
}

/// Returned by the indexing operator for a missing key or index.
static NIL: ValueRef<'static> = ValueRef::Nil;

impl<'a> ValueRef<'a> {
    /// True for `nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, ValueRef::Nil)
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            ValueRef::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The integer as a `u64`, if it is one and is non-negative (from an
    /// unsigned or a signed format).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            ValueRef::Uint(u) => Some(u),
            ValueRef::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    /// The integer as an `i64`, if it is one and fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ValueRef::Int(i) => Some(i),
            ValueRef::Uint(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// A float (float 32 widened) as an `f64`. Integers are not converted.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::F32(f) => Some(f as f64),
            ValueRef::F64(f) => Some(f),
            _ => None,
        }
    }

    /// A str that is valid UTF-8, borrowed from the input.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The bytes of a str, whatever they hold.
    pub fn as_str_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a bin.
    pub fn as_bin(&self) -> Option<&'a [u8]> {
        match *self {
            ValueRef::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&'a [ValueRef<'a>]> {
        match *self {
            ValueRef::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries of a map, in input order.
    pub fn as_map(&self) -> Option<&'a [(ValueRef<'a>, ValueRef<'a>)]> {
        match *self {
            ValueRef::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The type and payload of an extension.
    pub fn as_ext(&self) -> Option<(i8, &'a [u8])> {
        match *self {
            ValueRef::Ext(ty, data) => Some((ty, data)),
            _ => None,
        }
    }

    /// A timestamp extension (type -1) with a valid payload.
    pub fn as_timestamp(&self) -> Option<Timestamp> {
        match *self {
            ValueRef::Ext(Timestamp::EXT_TYPE, data) => Timestamp::from_payload(data).ok(),
            _ => None,
        }
    }

    /// In a map, the value of the first entry whose key is the str `key`
    /// (a linear scan: maps keep their input order and duplicates).
    pub fn get(&self, key: &str) -> Option<&'a ValueRef<'a>> {
        let key = key.as_bytes();
        self.as_map()?.iter().find_map(|(k, v)| match *k {
            ValueRef::Str(s) if s == key => Some(v),
            _ => None,
        })
    }

    /// Number of elements of an array or entries of a map, bytes of a
    /// str, bin or ext payload; `None` for scalars.
    pub fn len(&self) -> Option<usize> {
        match *self {
            ValueRef::Str(b) | ValueRef::Bin(b) | ValueRef::Ext(_, b) => Some(b.len()),
            ValueRef::Array(a) => Some(a.len()),
            ValueRef::Map(m) => Some(m.len()),
            _ => None,
        }
    }

    /// True for an empty str, bin, ext payload, array or map (`len() ==
    /// Some(0)`); false for scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// An owned copy as a [`Value`] tree.
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Nil => Value::Nil,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Uint(u) => Value::Uint(u),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::F32(f) => Value::F32(f),
            ValueRef::F64(f) => Value::F64(f),
            ValueRef::Str(s) => Value::Str(s.to_vec()),
            ValueRef::Bin(b) => Value::Bin(b.to_vec()),
            ValueRef::Array(a) => Value::Array(a.iter().map(ValueRef::to_value).collect()),
            ValueRef::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
            ValueRef::Ext(ty, data) => Value::Ext(ty, data.to_vec()),
        }
    }

    /// Encodes this object with the [`encode`] writers: the shortest form of
    /// every item, so the canonical encoding of a value decoded from
    /// canonical input is that input, byte for byte. A signed-format integer
    /// that is non-negative is written in the unsigned form (as
    /// [`crate::encode_value`] does). `Err` only for a str, bin, ext or
    /// container longer than 2^32-1, which decoding never produces.
    ///
    /// The encoder recurses once per nesting level of `self` (decoded values
    /// nest at most [`crate::Limits::max_depth`] deep).
    ///
    /// ```
    /// use msgpack_rs_core::arena::decode_in;
    /// use bumpalo::Bump;
    ///
    /// let input = [0x93, 0x01, 0xa1, b'x', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
    /// let bump = Bump::new();
    /// let mut out = Vec::new();
    /// decode_in(&bump, &input).unwrap().encode(&mut out).unwrap();
    /// assert_eq!(out, input);
    /// ```
    pub fn encode<S: Sink + ?Sized>(&self, out: &mut S) -> Result<(), TooLong> {
        match *self {
            ValueRef::Nil => encode::write_nil(out),
            ValueRef::Bool(b) => encode::write_bool(out, b),
            ValueRef::Uint(u) => encode::write_uint(out, u),
            ValueRef::Int(i) => encode::write_int(out, i),
            ValueRef::F32(f) => encode::write_f32(out, f),
            ValueRef::F64(f) => encode::write_f64(out, f),
            ValueRef::Str(s) => encode::write_str(out, s, false)?,
            ValueRef::Bin(b) => encode::write_bin(out, b, false)?,
            ValueRef::Ext(ty, data) => encode::write_ext(out, ty, data)?,
            ValueRef::Array(items) => {
                encode::write_array_header(out, encode::len_u32(items.len())?);
                for item in items {
                    item.encode(out)?;
                }
            }
            ValueRef::Map(entries) => {
                encode::write_map_header(out, encode::len_u32(entries.len())?);
                for (k, v) in entries {
                    k.encode(out)?;
                    v.encode(out)?;
                }
            }
        }
        Ok(())
    }

    /// [`ValueRef::encode`] into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, TooLong> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

impl<'a> std::ops::Index<&str> for ValueRef<'a> {
    type Output = ValueRef<'a>;

    /// The value for a str key of a map ([`ValueRef::get`]), or `Nil` when
    /// there is none or `self` is not a map.
    fn index(&self, key: &str) -> &ValueRef<'a> {
        self.get(key).unwrap_or(&NIL)
    }
}

impl<'a> std::ops::Index<usize> for ValueRef<'a> {
    type Output = ValueRef<'a>;

    /// An element of an array, or `Nil` when out of range or not an array.
    fn index(&self, i: usize) -> &ValueRef<'a> {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&NIL)
    }
}

/// Bytes as a Rust string literal when they are UTF-8, else as `b"..."`.
struct Text<'a>(&'a [u8]);

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

impl fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Nil => f.write_str("Nil"),
            ValueRef::Bool(b) => f.debug_tuple("Bool").field(b).finish(),
            ValueRef::Uint(u) => f.debug_tuple("Uint").field(u).finish(),
            ValueRef::Int(i) => f.debug_tuple("Int").field(i).finish(),
            ValueRef::F32(x) => f.debug_tuple("F32").field(x).finish(),
            ValueRef::F64(x) => f.debug_tuple("F64").field(x).finish(),
            ValueRef::Str(s) => f.debug_tuple("Str").field(&Text(s)).finish(),
            ValueRef::Bin(b) => f.debug_tuple("Bin").field(&Text(b)).finish(),
            ValueRef::Array(a) => f.debug_tuple("Array").field(a).finish(),
            ValueRef::Map(m) => f.debug_tuple("Map").field(m).finish(),
            ValueRef::Ext(ty, data) => f.debug_tuple("Ext").field(ty).field(&Text(data)).finish(),
        }
    }
}
