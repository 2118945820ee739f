//! Helpers shared by the integration tests.
#![allow(dead_code)]

use msgpack_rs_core::{parse_header, Builder, DecodeError, Header, Value, ValueBuilder};

/// Bit-exact structural equality (floats by bits, so NaNs compare equal to
/// themselves and `0.0 != -0.0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((pk, pv), (qk, qv))| same(pk, qk) && same(pv, qv))
        }
        _ => a == b,
    }
}

/// Payload length of a str/bin/ext header, 0 for the others.
pub fn payload_len(h: &Header) -> usize {
    match *h {
        Header::Str(n) | Header::Bin(n) | Header::Ext { len: n, .. } => n as usize,
        _ => 0,
    }
}

/// Offsets at which a token starts in a well-formed encoding (plus the end).
pub fn token_boundaries(enc: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    let mut at = 0;
    while at < enc.len() {
        let (h, hlen) = parse_header(&enc[at..])
            .expect("valid marker")
            .expect("complete header");
        at += hlen + payload_len(&h);
        assert!(at <= enc.len(), "token runs past the end");
        out.push(at);
    }
    out
}

/// `tail` (what the decoder left unread after `NeedMore`) must be the start
/// of one unfinished token: an incomplete header, or a str/bin/ext header
/// whose payload is not all there.
pub fn assert_unfinished_token(tail: &[u8]) {
    match parse_header(tail) {
        Ok(None) => {}
        Ok(Some((h, hlen))) => {
            let n = payload_len(&h);
            assert!(
                matches!(h, Header::Str(_) | Header::Bin(_) | Header::Ext { .. })
                    && tail.len() < hlen + n,
                "decoder stopped before a complete token {h:?} ({} bytes left)",
                tail.len()
            );
        }
        Err(e) => panic!("unread tail starts with an invalid marker: {e:?}"),
    }
}

/// One `array_begin`/`map_begin` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    pub map: bool,
    pub len: u32,
    pub capacity: usize,
}

/// A [`ValueBuilder`] that records container capacities and key callbacks,
/// and can defer one ext type.
#[derive(Debug, Default)]
pub struct Recorder {
    pub begins: Vec<Begin>,
    pub key_strs: Vec<Vec<u8>>,
    pub key_bins: Vec<Vec<u8>>,
    pub defer: Option<i8>,
    /// `ext` of this type fails (with `InvalidMarker(0)` as a sentinel).
    pub fail_ext: Option<i8>,
}

impl Recorder {
    pub fn total_capacity(&self) -> usize {
        self.begins.iter().map(|b| b.capacity).sum()
    }
}

type Map = <ValueBuilder as Builder>::Map;

impl Builder for Recorder {
    type Value = Value;
    type Array = Vec<Value>;
    type Map = Map;
    type Error = DecodeError;

    fn nil(&mut self) -> Result<Value, DecodeError> {
        ValueBuilder.nil()
    }
    fn boolean(&mut self, v: bool) -> Result<Value, DecodeError> {
        ValueBuilder.boolean(v)
    }
    fn uint(&mut self, v: u64) -> Result<Value, DecodeError> {
        ValueBuilder.uint(v)
    }
    fn int(&mut self, v: i64) -> Result<Value, DecodeError> {
        ValueBuilder.int(v)
    }
    fn float32(&mut self, v: f32) -> Result<Value, DecodeError> {
        ValueBuilder.float32(v)
    }
    fn float64(&mut self, v: f64) -> Result<Value, DecodeError> {
        ValueBuilder.float64(v)
    }
    fn str(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        ValueBuilder.str(bytes)
    }
    fn bin(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        ValueBuilder.bin(bytes)
    }
    fn ext(&mut self, ty: i8, data: &[u8]) -> Result<Value, DecodeError> {
        if self.fail_ext == Some(ty) {
            return Err(DecodeError::InvalidMarker(0));
        }
        ValueBuilder.ext(ty, data)
    }
    fn key_str(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        self.key_strs.push(bytes.to_vec());
        ValueBuilder.str(bytes)
    }
    fn key_bin(&mut self, bytes: &[u8]) -> Result<Value, DecodeError> {
        self.key_bins.push(bytes.to_vec());
        ValueBuilder.bin(bytes)
    }
    fn array_begin(&mut self, len: u32, capacity: usize) -> Result<Vec<Value>, DecodeError> {
        self.begins.push(Begin {
            map: false,
            len,
            capacity,
        });
        ValueBuilder.array_begin(len, capacity)
    }
    fn array_push(&mut self, array: &mut Vec<Value>, v: Value) -> Result<(), DecodeError> {
        ValueBuilder.array_push(array, v)
    }
    fn array_end(&mut self, array: Vec<Value>) -> Result<Value, DecodeError> {
        ValueBuilder.array_end(array)
    }
    fn map_begin(&mut self, len: u32, capacity: usize) -> Result<Map, DecodeError> {
        self.begins.push(Begin {
            map: true,
            len,
            capacity,
        });
        ValueBuilder.map_begin(len, capacity)
    }
    fn map_key(&mut self, map: &mut Map, k: Value) -> Result<(), DecodeError> {
        ValueBuilder.map_key(map, k)
    }
    fn map_value(&mut self, map: &mut Map, v: Value) -> Result<(), DecodeError> {
        ValueBuilder.map_value(map, v)
    }
    fn map_end(&mut self, map: Map) -> Result<Value, DecodeError> {
        ValueBuilder.map_end(map)
    }
    fn defer_ext(&mut self, ty: i8) -> bool {
        self.defer == Some(ty)
    }
}

/// A tiny deterministic PRNG (xorshift64*), for reproducible random tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}
