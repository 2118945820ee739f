//! Writers for every MessagePack format.
//!
//! Each writer appends to a [`Sink`] owned by the caller (a `Vec<u8>`, or a
//! binding's own output buffer) and always picks the shortest encoding.
//! Lengths are `u32` because that is the format's limit; callers check bigger
//! lengths before narrowing (see [`len_u32`]).
//!
//! ```
//! use msgpack_rs_core::encode;
//!
//! // {"id": 7, "tags": ["a"], "ratio": 0.5}
//! let mut out = Vec::new();
//! encode::write_map_header(&mut out, 3);
//! encode::write_str(&mut out, b"id", false).unwrap();
//! encode::write_uint(&mut out, 7);
//! encode::write_str(&mut out, b"tags", false).unwrap();
//! encode::write_array_header(&mut out, 1);
//! encode::write_str(&mut out, b"a", false).unwrap();
//! encode::write_str(&mut out, b"ratio", false).unwrap();
//! encode::write_f64(&mut out, 0.5);
//! assert_eq!(out[..5], [0x83, 0xa2, b'i', b'd', 0x07]);
//! assert_eq!(out.len(), 28);
//! ```
//!
//! A whole [`crate::Value`] encodes with [`crate::encode_value`], a
//! [`crate::ValueRef`] with [`crate::ValueRef::encode`].
use rmp::Marker;

/// Where encoded bytes go. `Vec<u8>` is one; a binding may implement it
/// on its own buffer to make the small fixed-size writes cheaper (they are
/// most of an encoder's work, and `Vec::extend_from_slice` is not always
/// inlined into a large caller).
pub trait Sink {
    /// Appends a few bytes: a marker and what follows it.
    fn put<const N: usize>(&mut self, bytes: [u8; N]);
    /// Appends a payload.
    fn put_slice(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        self.extend_from_slice(&bytes);
    }
    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[inline(always)]
fn put1<S: Sink + ?Sized>(out: &mut S, m: Marker) {
    out.put([m.to_u8()]);
}

#[inline(always)]
fn put_u8<S: Sink + ?Sized>(out: &mut S, m: Marker, v: u8) {
    out.put([m.to_u8(), v]);
}

#[inline(always)]
fn put_u16<S: Sink + ?Sized>(out: &mut S, m: Marker, v: u16) {
    let b = v.to_be_bytes();
    out.put([m.to_u8(), b[0], b[1]]);
}

#[inline(always)]
fn put_u32<S: Sink + ?Sized>(out: &mut S, m: Marker, v: u32) {
    let b = v.to_be_bytes();
    out.put([m.to_u8(), b[0], b[1], b[2], b[3]]);
}

#[inline(always)]
fn put_u64<S: Sink + ?Sized>(out: &mut S, m: Marker, v: u64) {
    let b = v.to_be_bytes();
    out.put([m.to_u8(), b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
}

/// `nil`.
#[inline(always)]
pub fn write_nil<S: Sink + ?Sized>(out: &mut S) {
    put1(out, Marker::Null);
}

/// `true` or `false`.
#[inline(always)]
pub fn write_bool<S: Sink + ?Sized>(out: &mut S, v: bool) {
    put1(out, if v { Marker::True } else { Marker::False });
}

/// Non-negative integers always use the unsigned forms (as msgpack-ruby does).
#[inline(always)]
pub fn write_uint<S: Sink + ?Sized>(out: &mut S, v: u64) {
    if v < 0x80 {
        out.put([v as u8]);
    } else if v <= u8::MAX as u64 {
        put_u8(out, Marker::U8, v as u8);
    } else if v <= u16::MAX as u64 {
        put_u16(out, Marker::U16, v as u16);
    } else if v <= u32::MAX as u64 {
        put_u32(out, Marker::U32, v as u32);
    } else {
        put_u64(out, Marker::U64, v);
    }
}

/// Signed integers: non-negative values go through [`write_uint`], negative
/// ones use negative fixint or the narrowest signed form.
#[inline(always)]
pub fn write_int<S: Sink + ?Sized>(out: &mut S, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.put([v as i8 as u8]);
    } else if v >= i8::MIN as i64 {
        put_u8(out, Marker::I8, v as i8 as u8);
    } else if v >= i16::MIN as i64 {
        put_u16(out, Marker::I16, v as i16 as u16);
    } else if v >= i32::MIN as i64 {
        put_u32(out, Marker::I32, v as i32 as u32);
    } else {
        put_u64(out, Marker::I64, v as u64);
    }
}

/// A float 32 (never narrowed or widened: the caller picks the width).
#[inline(always)]
pub fn write_f32<S: Sink + ?Sized>(out: &mut S, v: f32) {
    put_u32(out, Marker::F32, v.to_bits());
}

/// A float 64.
#[inline(always)]
pub fn write_f64<S: Sink + ?Sized>(out: &mut S, v: f64) {
    put_u64(out, Marker::F64, v.to_bits());
}

/// A str header. `compat` follows the old spec: no str8, so lengths 32..=255
/// use str16 (the old "raw16").
#[inline(always)]
pub fn write_str_header<S: Sink + ?Sized>(out: &mut S, len: u32, compat: bool) {
    if len < 32 {
        put1(out, Marker::FixStr(len as u8));
    } else if len <= u8::MAX as u32 && !compat {
        put_u8(out, Marker::Str8, len as u8);
    } else if len <= u16::MAX as u32 {
        put_u16(out, Marker::Str16, len as u16);
    } else {
        put_u32(out, Marker::Str32, len);
    }
}

/// A bin header (bin 8/16/32); the caller writes the `len` bytes.
#[inline(always)]
pub fn write_bin_header<S: Sink + ?Sized>(out: &mut S, len: u32) {
    if len <= u8::MAX as u32 {
        put_u8(out, Marker::Bin8, len as u8);
    } else if len <= u16::MAX as u32 {
        put_u16(out, Marker::Bin16, len as u16);
    } else {
        put_u32(out, Marker::Bin32, len);
    }
}

/// An array header (fixarray, array 16/32); the caller writes `len` objects.
#[inline(always)]
pub fn write_array_header<S: Sink + ?Sized>(out: &mut S, len: u32) {
    if len < 16 {
        put1(out, Marker::FixArray(len as u8));
    } else if len <= u16::MAX as u32 {
        put_u16(out, Marker::Array16, len as u16);
    } else {
        put_u32(out, Marker::Array32, len);
    }
}

/// A map header (fixmap, map 16/32); the caller writes `len` keys and
/// values, alternating.
#[inline(always)]
pub fn write_map_header<S: Sink + ?Sized>(out: &mut S, len: u32) {
    if len < 16 {
        put1(out, Marker::FixMap(len as u8));
    } else if len <= u16::MAX as u32 {
        put_u16(out, Marker::Map16, len as u16);
    } else {
        put_u32(out, Marker::Map32, len);
    }
}

/// An ext header: fixext for payloads of exactly 1, 2, 4, 8 or 16 bytes,
/// otherwise ext8/16/32 (ext8 also for the empty payload).
#[inline]
pub fn write_ext_header<S: Sink + ?Sized>(out: &mut S, ty: i8, len: u32) {
    let t = ty as u8;
    match len {
        1 => out.put([Marker::FixExt1.to_u8(), t]),
        2 => out.put([Marker::FixExt2.to_u8(), t]),
        4 => out.put([Marker::FixExt4.to_u8(), t]),
        8 => out.put([Marker::FixExt8.to_u8(), t]),
        16 => out.put([Marker::FixExt16.to_u8(), t]),
        _ if len <= u8::MAX as u32 => out.put([Marker::Ext8.to_u8(), len as u8, t]),
        _ if len <= u16::MAX as u32 => {
            put_u16(out, Marker::Ext16, len as u16);
            out.put([t]);
        }
        _ => {
            put_u32(out, Marker::Ext32, len);
            out.put([t]);
        }
    }
}

/// The length does not fit the format's 32-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(
    /// The length that was too long.
    pub usize,
);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "size {} is too long to pack (over 2^32-1)", self.0)
    }
}

impl std::error::Error for TooLong {}

/// Narrows a Rust length to the format's `u32`.
#[inline]
pub fn len_u32(len: usize) -> Result<u32, TooLong> {
    u32::try_from(len).map_err(|_| TooLong(len))
}

/// A whole str (header + bytes).
#[inline]
pub fn write_str<S: Sink + ?Sized>(out: &mut S, bytes: &[u8], compat: bool) -> Result<(), TooLong> {
    write_str_header(out, len_u32(bytes.len())?, compat);
    out.put_slice(bytes);
    Ok(())
}

/// A whole bin; in compatibility mode, old peers have no bin type, so the
/// bytes are written as a raw (str) instead.
#[inline]
pub fn write_bin<S: Sink + ?Sized>(out: &mut S, bytes: &[u8], compat: bool) -> Result<(), TooLong> {
    let len = len_u32(bytes.len())?;
    if compat {
        write_str_header(out, len, true);
    } else {
        write_bin_header(out, len);
    }
    out.put_slice(bytes);
    Ok(())
}

/// A whole ext (header + payload).
#[inline]
pub fn write_ext<S: Sink + ?Sized>(out: &mut S, ty: i8, payload: &[u8]) -> Result<(), TooLong> {
    write_ext_header(out, ty, len_u32(payload.len())?);
    out.put_slice(payload);
    Ok(())
}
