//! The cross-language msgpack-test-suite vectors (kawanet/msgpack-test-suite,
//! MIT), vendored in `spec/fixtures/msgpack-test-suite/` of this repository:
//! every listed encoding must decode to the group's value, and encoding that
//! value must give the first (shortest) listed encoding. The same holds for
//! the arena decoder: it decodes every encoding to the same value, and its
//! `ValueRef` re-encodes to the shortest form.
use msgpack_rs_core::arena::decode_in;
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::{decode_value_exact, encode, encode_value, Timestamp, Value};
use serde_json::Value as Json;
use std::path::PathBuf;

/// The number of encodings in the suite (sum of every `msgpack` list).
const EXPECTED_ENCODINGS: usize = 233;

/// The vendored suite, `spec/fixtures/msgpack-test-suite/msgpack-test-suite.json`
/// at the repository root. A missing file fails the test (see
/// `msgpack_test_suite`); it is never skipped.
fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../spec/fixtures/msgpack-test-suite/msgpack-test-suite.json")
}

fn hex(s: &str) -> Vec<u8> {
    s.split('-')
        .filter(|p| !p.is_empty())
        .map(|p| u8::from_str_radix(p, 16).unwrap_or_else(|_| panic!("bad hex byte {p:?}")))
        .collect()
}

fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// What a group says the value is.
#[derive(Debug)]
enum Expected {
    /// Any value without numbers that need loose comparison at the top.
    Value(Value),
    /// An exact integer (from `number` or `bignum`).
    Int(i128),
    /// A non-integral JSON number.
    Float(f64),
    Timestamp(Timestamp),
}

/// A JSON value as a msgpack `Value`: integers as `Uint`/`Int` (normalized),
/// other numbers as `F64`, objects as maps in document order.
fn json_to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                Value::F64(n.as_f64().expect("finite number"))
            }
        }
        Json::String(s) => Value::Str(s.as_bytes().to_vec()),
        Json::Array(a) => Value::Array(a.iter().map(json_to_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::Str(k.as_bytes().to_vec()), json_to_value(v)))
                .collect(),
        ),
    }
}

fn expected_of(group: &serde_json::Map<String, Json>) -> (String, Expected) {
    if let Some(b) = group.get("bignum") {
        let s = b.as_str().expect("bignum is a string");
        let n: i128 = s.parse().expect("bignum parses");
        return ("bignum".into(), Expected::Int(n));
    }
    let keys: Vec<&String> = group.keys().filter(|k| *k != "msgpack").collect();
    assert_eq!(keys.len(), 1, "group has one value key: {group:?}");
    let key = keys[0].clone();
    let v = &group[&key];
    let e = match key.as_str() {
        "nil" | "bool" | "string" | "array" | "map" => Expected::Value(json_to_value(v)),
        "number" => {
            let n = v.as_number().expect("number");
            if let Some(u) = n.as_u64() {
                Expected::Int(u as i128)
            } else if let Some(i) = n.as_i64() {
                Expected::Int(i as i128)
            } else {
                Expected::Float(n.as_f64().unwrap())
            }
        }
        "binary" => Expected::Value(Value::Bin(hex(v.as_str().expect("binary hex")))),
        "ext" => {
            let a = v.as_array().expect("ext is [type, hex]");
            let ty = a[0].as_i64().expect("ext type") as i8;
            Expected::Value(Value::Ext(ty, hex(a[1].as_str().expect("ext hex"))))
        }
        "timestamp" => {
            let a = v.as_array().expect("timestamp is [sec, nsec]");
            Expected::Timestamp(Timestamp::new(
                a[0].as_i64().expect("sec"),
                a[1].as_u64().expect("nsec") as u32,
            ))
        }
        other => panic!("unknown value key {other:?}"),
    };
    (key, e)
}

/// Integer value of a decoded number, if it is one (floats only when integral).
fn as_i128(v: &Value) -> Option<i128> {
    match *v {
        Value::Uint(u) => Some(u as i128),
        Value::Int(i) => Some(i as i128),
        Value::F32(f) if f.fract() == 0.0 => Some(f as i128),
        Value::F64(f) if f.fract() == 0.0 => Some(f as i128),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match *v {
        Value::Uint(u) => Some(u as f64),
        Value::Int(i) => Some(i as f64),
        Value::F32(f) => Some(f as f64),
        Value::F64(f) => Some(f),
        _ => None,
    }
}

/// Structural equality where numbers compare by value and maps ignore order.
fn loosely_equal(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| loosely_equal(x, y))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && b.iter().all(|(bk, bv)| {
                    a.iter()
                        .any(|(ak, av)| loosely_equal(ak, bk) && loosely_equal(av, bv))
                })
        }
        (Value::Uint(_) | Value::Int(_), Value::Uint(_) | Value::Int(_)) => {
            as_i128(got) == as_i128(want)
        }
        (Value::F32(_) | Value::F64(_), Value::F64(w)) => as_f64(got) == Some(*w),
        (Value::F32(_) | Value::F64(_), Value::Uint(_) | Value::Int(_)) => {
            as_i128(got).is_some() && as_i128(got) == as_i128(want)
        }
        _ => got.clone().normalized() == want.clone().normalized(),
    }
}

fn decoded_matches(got: &Value, want: &Expected) -> bool {
    match want {
        Expected::Value(w) => loosely_equal(got, w),
        Expected::Int(n) => as_i128(got) == Some(*n),
        Expected::Float(f) => match got {
            Value::F32(g) => (*g as f64).to_bits() == f.to_bits(),
            Value::F64(g) => g.to_bits() == f.to_bits(),
            _ => false,
        },
        Expected::Timestamp(ts) => match got {
            Value::Ext(ty, data) if *ty == Timestamp::EXT_TYPE => {
                Timestamp::from_payload(data).as_ref() == Ok(ts)
            }
            _ => false,
        },
    }
}

/// Encodes the expected value the way a packer would: floats as f64 unless
/// the shortest encoding is float 32, integers with the narrowest form.
fn encode_expected(want: &Expected, first: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match want {
        Expected::Value(v) => encode_value(v, &mut out).expect("encodes"),
        Expected::Int(n) => {
            if *n >= 0 {
                encode::write_uint(&mut out, u64::try_from(*n).expect("fits u64"));
            } else {
                encode::write_int(&mut out, i64::try_from(*n).expect("fits i64"));
            }
        }
        Expected::Float(f) => {
            if first.first() == Some(&0xca) {
                encode::write_f32(&mut out, *f as f32);
            } else {
                encode::write_f64(&mut out, *f);
            }
        }
        Expected::Timestamp(ts) => {
            encode::write_ext(&mut out, Timestamp::EXT_TYPE, &ts.to_payload()).unwrap()
        }
    }
    out
}

/// `packed` is an unsigned integer form exactly as long as the listed first
/// encoding, which is a signed form (`d0`..`d3`), and is itself listed.
fn is_unsigned_tie(want: &Expected, packed: &[u8], encs: &[Vec<u8>]) -> bool {
    matches!(want, Expected::Int(n) if *n >= 0)
        && matches!(encs[0].first(), Some(0xd0..=0xd3))
        && matches!(packed.first(), Some(0xcc..=0xcf))
        && packed.len() == encs[0].len()
        && encs.iter().any(|e| e == packed)
}

#[test]
fn msgpack_test_suite() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the vendored test vectors {}: {e}", path.display()));
    let suite: Json = serde_json::from_str(&text).expect("suite is JSON");
    let files = suite.as_object().expect("suite is an object keyed by file");

    let mut encodings = 0usize;
    let mut groups = 0usize;
    let mut kinds = std::collections::BTreeSet::new();
    let mut unsigned_ties = Vec::new();
    let mut bump = Bump::new();
    let mut arena_checked = 0usize;
    for (file, list) in files {
        for group in list.as_array().expect("list of groups") {
            let group = group.as_object().expect("group is an object");
            let (kind, want) = expected_of(group);
            kinds.insert(kind);
            let encs: Vec<Vec<u8>> = group["msgpack"]
                .as_array()
                .expect("msgpack list")
                .iter()
                .map(|e| hex(e.as_str().expect("hex string")))
                .collect();
            assert!(!encs.is_empty(), "{file}: group without encodings");
            for enc in &encs {
                let got = decode_value_exact(enc)
                    .unwrap_or_else(|e| panic!("{file}: {} failed: {e:?}", show(enc)));
                assert!(
                    decoded_matches(&got, &want),
                    "{file}: {} decoded to {got:?}, expected {want:?}",
                    show(enc)
                );
                encodings += 1;
            }
            let packed = encode_expected(&want, &encs[0]);
            for enc in &encs {
                // The arena decoder: the same value, and re-encoding gives
                // the shortest form (byte-identical for the first encoding).
                bump.reset();
                let v = decode_in(&bump, enc)
                    .unwrap_or_else(|e| panic!("{file}: arena {} failed: {e:?}", show(enc)));
                let owned = decode_value_exact(enc).unwrap();
                assert_eq!(v.to_value(), owned, "{file}: arena {}", show(enc));
                let mut again = Vec::new();
                v.encode(&mut again).unwrap();
                let mut canonical = Vec::new();
                encode_value(&owned, &mut canonical).unwrap();
                assert_eq!(show(&again), show(&canonical), "{file}: arena re-encoding");
                if enc == &encs[0] && !is_unsigned_tie(&want, &packed, &encs) {
                    assert_eq!(show(&again), show(enc), "{file}: arena round trip");
                }
                arena_checked += 1;
            }
            if packed != encs[0] && is_unsigned_tie(&want, &packed, &encs) {
                // The suite lists `d3` (int 64) first for 2^63-1, but `cf`
                // (uint 64) is just as short; like msgpack-ruby, the encoder
                // writes every non-negative integer in an unsigned form.
                unsigned_ties.push(show(&packed));
            } else {
                assert_eq!(
                    show(&packed),
                    show(&encs[0]),
                    "{file}: encoding {want:?} is not the shortest form"
                );
            }
            groups += 1;
        }
    }
    println!("checked {encodings} encodings in {groups} groups");
    assert_eq!(encodings, EXPECTED_ENCODINGS, "encodings checked");
    assert_eq!(arena_checked, EXPECTED_ENCODINGS, "arena encodings checked");
    // The only place the suite's first encoding is a signed form of a
    // non-negative integer tied in length with the unsigned one.
    assert_eq!(unsigned_ties, ["cf-7f-ff-ff-ff-ff-ff-ff-ff"]);
    // Every kind of value key in the suite was exercised.
    let all: Vec<&str> = kinds.iter().map(String::as_str).collect();
    assert_eq!(
        all,
        [
            "array",
            "bignum",
            "binary",
            "bool",
            "ext",
            "map",
            "nil",
            "number",
            "string",
            "timestamp"
        ]
    );
}

/// The comparison helpers themselves must be able to tell values apart, or
/// the suite test above would pass vacuously.
#[test]
fn comparison_rejects_wrong_values() {
    let got = decode_value_exact(&[0x02]).unwrap();
    assert!(!decoded_matches(&got, &Expected::Int(1)));
    assert!(decoded_matches(&got, &Expected::Int(2)));
    assert!(!decoded_matches(&Value::F32(0.5), &Expected::Float(-0.5)));
    assert!(!decoded_matches(
        &Value::Str(b"0.5".to_vec()),
        &Expected::Float(0.5)
    ));
    assert!(decoded_matches(&Value::F32(0.5), &Expected::Float(0.5)));
    assert!(!loosely_equal(&Value::Uint(1), &Value::Uint(2)));
    assert!(!loosely_equal(&Value::F64(0.5), &Value::F64(-0.5)));
    assert!(!loosely_equal(
        &Value::Str(b"a".to_vec()),
        &Value::Bin(b"a".to_vec())
    ));
    assert!(!loosely_equal(
        &Value::Array(vec![Value::Nil]),
        &Value::Array(vec![Value::Nil, Value::Nil])
    ));
    let map = |k: &str, v: u64| Value::Map(vec![(Value::Str(k.into()), Value::Uint(v))]);
    assert!(!loosely_equal(&map("a", 1), &map("a", 2)));
    assert!(!loosely_equal(&map("a", 1), &map("b", 1)));
    assert!(loosely_equal(&map("a", 1), &map("a", 1)));
    assert!(loosely_equal(&Value::Int(1), &Value::Uint(1)));
    assert!(loosely_equal(&Value::F32(1.0), &Value::Uint(1)));
    assert!(!loosely_equal(&Value::F32(1.5), &Value::Uint(1)));
    let ts = Expected::Timestamp(Timestamp::new(1, 0));
    assert!(!decoded_matches(&Value::Ext(-1, vec![0, 0, 0, 2]), &ts));
    assert!(!decoded_matches(&Value::Ext(1, vec![0, 0, 0, 1]), &ts));
    assert!(decoded_matches(&Value::Ext(-1, vec![0, 0, 0, 1]), &ts));
}

/// Regression: ext 16 (`c8`) has a 3-byte length+type field; the decoder
/// once read 4, so `c8 00 00 06` (empty payload) looked truncated and longer
/// ext 16 payloads lost their first byte.
#[test]
fn ext16_header_is_four_bytes() {
    assert_eq!(
        decode_value_exact(&[0xc8, 0x00, 0x00, 0x06]),
        Ok(Value::Ext(6, vec![]))
    );
    let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let mut enc = Vec::new();
    encode::write_ext(&mut enc, 9, &payload).unwrap();
    assert_eq!(&enc[..4], &[0xc8, 0x01, 0x2c, 0x09]);
    assert_eq!(decode_value_exact(&enc), Ok(Value::Ext(9, payload)));
}
