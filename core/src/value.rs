//! A plain-Rust value tree: the builder used by the core's own tests and
//! benches, and a convenient API for Rust users.
use crate::decode::{Builder, Step, StreamDecoder};
use crate::encode;
use crate::error::DecodeError;
use crate::limits::Limits;

/// An owned MessagePack object.
///
/// ```
/// use msgpack_rs_core::{decode_value_exact, encode_value, Value};
///
/// let v = Value::Array(vec![Value::Int(-1), Value::Str(b"hi".to_vec())]);
/// let mut out = Vec::new();
/// encode_value(&v, &mut out).unwrap();
/// assert_eq!(out, [0x92, 0xff, 0xa2, b'h', b'i']);
/// assert_eq!(decode_value_exact(&out), Ok(v));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// Non-negative integers.
    Uint(u64),
    /// Negative integers (decoders may also produce non-negative ones from
    /// signed formats; [`Value::normalized`] folds those into `Uint`).
    Int(i64),
    /// float 32.
    F32(f32),
    /// float 64.
    F64(f64),
    /// A str, as bytes (not checked for UTF-8).
    Str(Vec<u8>),
    /// A bin.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map as its entries, in input order (duplicate keys are kept).
    Map(Vec<(Value, Value)>),
    /// An extension: its type and payload.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The same value with every non-negative `Int` turned into `Uint`, so two
    /// encodings of one number compare equal.
    pub fn normalized(self) -> Value {
        match self {
            Value::Int(i) if i >= 0 => Value::Uint(i as u64),
            Value::Array(a) => Value::Array(a.into_iter().map(Value::normalized).collect()),
            Value::Map(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| (k.normalized(), v.normalized()))
                    .collect(),
            ),
            v => v,
        }
    }
}

/// Builds [`Value`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct ValueBuilder;

impl Builder for ValueBuilder {
    type Value = Value;
    type Array = Vec<Value>;
    /// Entries so far, and the key waiting for its value.
    type Map = (Vec<(Value, Value)>, Option<Value>);
    type Error = DecodeError;

    fn nil(&mut self) -> Result<Value, DecodeError> {
        Ok(Value::Nil)
    }
    fn boolean(&mut self, v: bool) -> Result<Value, DecodeError> {
        Ok(Value::Bool(v))
    }
    fn uint(&mut self, v: u64) -> Result<Value, DecodeError> {
        Ok(Value::Uint(v))
    }
    fn int(&mut self, v: i64) -> Result<Value, DecodeError> {
        Ok(Value::Int(v))
    }
    fn float32(&mut self, v: f32) -> Result<Value, DecodeError> {
        Ok(Value::F32(v))
    }
    fn float64(&mut self, v: f64) -> Result<Value, DecodeError> {
        Ok(Value::F64(v))
    }
    fn str(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        Ok(Value::Str(bytes.to_vec()))
    }
    fn bin(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        Ok(Value::Bin(bytes.to_vec()))
    }
    fn ext(&mut self, ty: i8, data: &[u8]) -> Result<Value, DecodeError> {
        Ok(Value::Ext(ty, data.to_vec()))
    }
    fn array_begin(&mut self, _len: u32, capacity: usize) -> Result<Vec<Value>, DecodeError> {
        Ok(Vec::with_capacity(capacity))
    }
    fn array_push(&mut self, array: &mut Vec<Value>, v: Value) -> Result<(), DecodeError> {
        array.push(v);
        Ok(())
    }
    fn array_end(&mut self, array: Vec<Value>) -> Result<Value, DecodeError> {
        Ok(Value::Array(array))
    }
    fn map_begin(&mut self, _len: u32, capacity: usize) -> Result<Self::Map, DecodeError> {
        Ok((Vec::with_capacity(capacity), None))
    }
    fn map_key(&mut self, map: &mut Self::Map, k: Value) -> Result<(), DecodeError> {
        map.1 = Some(k);
        Ok(())
    }
    fn map_value(&mut self, map: &mut Self::Map, v: Value) -> Result<(), DecodeError> {
        if let Some(k) = map.1.take() {
            map.0.push((k, v));
        }
        Ok(())
    }
    fn map_end(&mut self, map: Self::Map) -> Result<Value, DecodeError> {
        Ok(Value::Map(map.0))
    }
}

/// Decodes the first object in `input` with default limits. Returns it and
/// the number of bytes it took.
///
/// ```
/// use msgpack_rs_core::{decode_value, DecodeError, Value};
///
/// assert_eq!(decode_value(&[0x01, 0x02]), Ok((Value::Uint(1), 1)));
/// assert_eq!(decode_value(&[0x92, 0x01]), Err(DecodeError::UnexpectedEof));
/// ```
pub fn decode_value(input: &[u8]) -> Result<(Value, usize), DecodeError> {
    decode_value_with(input, Limits::default())
}

/// [`decode_value`] with explicit limits.
pub fn decode_value_with(input: &[u8], limits: Limits) -> Result<(Value, usize), DecodeError> {
    let mut decoder = StreamDecoder::<ValueBuilder>::new(limits);
    let mut pos = 0;
    match decoder.decode(&mut ValueBuilder, input, &mut pos)? {
        Step::Done(v) => Ok((v, pos)),
        Step::NeedMore | Step::Deferred { .. } => Err(DecodeError::UnexpectedEof),
    }
}

/// Decodes `input`, which must hold exactly one object.
pub fn decode_value_exact(input: &[u8]) -> Result<Value, DecodeError> {
    let (v, used) = decode_value(input)?;
    match input.len() - used {
        0 => Ok(v),
        extra => Err(DecodeError::ExtraBytes(extra)),
    }
}

/// Encodes `v` in the shortest form; `Err` if a length exceeds 2^32-1.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) -> Result<(), encode::TooLong> {
    match v {
        Value::Nil => encode::write_nil(out),
        Value::Bool(b) => encode::write_bool(out, *b),
        Value::Uint(u) => encode::write_uint(out, *u),
        Value::Int(i) => encode::write_int(out, *i),
        Value::F32(f) => encode::write_f32(out, *f),
        Value::F64(f) => encode::write_f64(out, *f),
        Value::Str(s) => encode::write_str(out, s, false)?,
        Value::Bin(s) => encode::write_bin(out, s, false)?,
        Value::Ext(ty, data) => encode::write_ext(out, *ty, data)?,
        Value::Array(items) => {
            encode::write_array_header(out, encode::len_u32(items.len())?);
            for item in items {
                encode_value(item, out)?;
            }
        }
        Value::Map(entries) => {
            encode::write_map_header(out, encode::len_u32(entries.len())?);
            for (k, val) in entries {
                encode_value(k, out)?;
                encode_value(val, out)?;
            }
        }
    }
    Ok(())
}
