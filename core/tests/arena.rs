//! The arena decoder (`arena::decode_in` and friends) and `ArenaStream`:
//! round trips against the encoder, truncation, chunked streams, readers,
//! limits and lying headers, and agreement with `StreamDecoder` (the random
//! and mutated inputs of `tests/random_input.rs` check that in bulk).
mod common;

use common::{same, token_boundaries};
use msgpack_rs_core::arena::{decode_in, decode_in_with, decode_prefix_in, ArenaStream, ValueRef};
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::value::decode_value_with;
use msgpack_rs_core::{
    decode_value, decode_value_exact, encode, encode_value, DecodeError, LimitKind, Limits,
    ReadError, Timestamp, Value,
};
use proptest::prelude::*;
use proptest::sample::Index;
use std::io::{self, Read};

// ---------------------------------------------------------------- strategies

fn payload() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (240usize..300, any::<u8>()).prop_map(|(n, s)| vec![s; n]),
        1 => (65_530usize..65_540, any::<u8>()).prop_map(|(n, s)| vec![s; n]),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Nil),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<u64>().prop_map(|v| Value::Uint(v >> (v % 64))),
        2 => any::<i64>().prop_map(|v| Value::Int(v >> (v.unsigned_abs() % 64))),
        1 => (-40i64..300).prop_map(Value::Int),
        1 => any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        1 => any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        2 => payload().prop_map(Value::Str),
        1 => payload().prop_map(Value::Bin),
        1 => (any::<i8>(), payload()).prop_map(|(t, d)| Value::Ext(t, d)),
    ]
    .boxed()
}

/// Nested values; containers go up to 19 entries so array16/map16 appear.
fn value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(5, 64, 19, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
            ]
        })
        .boxed()
}

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, &mut out).unwrap();
    out
}

/// Prefix lengths worth checking: all of them for short encodings, else
/// every token boundary, the bytes around it, and some random ones.
fn prefixes(bytes: &[u8], picks: &[Index]) -> Vec<usize> {
    if bytes.len() <= 600 {
        return (0..bytes.len()).collect();
    }
    let mut out: Vec<usize> = token_boundaries(bytes)
        .into_iter()
        .flat_map(|b| [b.saturating_sub(1), b, b + 1])
        .chain(picks.iter().map(|i| i.index(bytes.len())))
        .filter(|&n| n < bytes.len())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Decodes a stream fed in the chunks ending at `ends` (then to the end):
/// every message re-encoded, or the error, in order.
fn stream_events(data: &[u8], ends: &[usize], limits: Limits) -> Vec<Result<Value, DecodeError>> {
    let mut stream = ArenaStream::with_limits(limits);
    let mut out = Vec::new();
    let mut fed = 0;
    let mut calls = 0;
    for end in ends.iter().copied().chain([data.len()]) {
        let end = end.clamp(fed, data.len());
        stream.feed(&data[fed..end]);
        fed = end;
        loop {
            calls += 1;
            assert!(calls <= 2 * data.len() + ends.len() + 4, "no progress");
            match stream.next_message() {
                Ok(Some(msg)) => {
                    assert_eq!(msg.value.to_vec().unwrap(), enc(&msg.value.to_value()));
                    out.push(Ok(msg.value.to_value()));
                }
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Decoding gives the value the `Value` decoder gives, and encoding it
    /// back gives the input, byte for byte (the encoder's output is
    /// canonical).
    #[test]
    fn round_trip(v in value()) {
        let bytes = enc(&v);
        let bump = Bump::new();
        let r = decode_in(&bump, &bytes).unwrap();
        prop_assert!(same(&r.to_value(), &decode_value_exact(&bytes).unwrap()));
        prop_assert!(same(&r.to_value(), &v.clone().normalized()));
        prop_assert_eq!(r.to_vec().unwrap(), bytes);
    }

    /// Every strict prefix of a message is `UnexpectedEof` one-shot, and
    /// `Ok(None)` (needs more) for the stream, which then completes it.
    #[test]
    fn strict_prefixes_need_more(v in value(), picks in prop::collection::vec(any::<Index>(), 8)) {
        let bytes = enc(&v);
        let mut bump = Bump::new();
        for n in prefixes(&bytes, &picks) {
            bump.reset();
            prop_assert_eq!(decode_in(&bump, &bytes[..n]), Err(DecodeError::UnexpectedEof));
            prop_assert_eq!(
                decode_prefix_in(&bump, &bytes[..n], Limits::default()),
                Err(DecodeError::UnexpectedEof)
            );
            let mut stream = ArenaStream::new();
            stream.feed(&bytes[..n]);
            prop_assert_eq!(stream.next_message(), Ok(None));
            prop_assert_eq!(stream.next_message(), Ok(None));
            stream.feed(&bytes[n..]);
            let msg = stream.next_message().unwrap().expect("complete now");
            prop_assert_eq!(msg.bytes, &bytes[..]);
            prop_assert_eq!(msg.offset, 0);
            prop_assert!(same(&msg.value.to_value(), &v.clone().normalized()));
            prop_assert_eq!(stream.next_message(), Ok(None));
            prop_assert!(stream.is_at_boundary());
        }
    }

    /// Concatenated messages, fed in arbitrary chunks, come out one by one
    /// with their offsets.
    #[test]
    fn chunked_stream(vs in prop::collection::vec(value(), 1..6),
                      cuts in prop::collection::vec(any::<Index>(), 0..8)) {
        let encs: Vec<Vec<u8>> = vs.iter().map(enc).collect();
        let data = encs.concat();
        let mut ends: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        ends.sort_unstable();
        let events = stream_events(&data, &ends, Limits::default());
        prop_assert_eq!(events.len(), vs.len());
        for (e, v) in events.iter().zip(&vs) {
            prop_assert!(same(e.as_ref().unwrap(), &v.clone().normalized()));
        }
        // Offsets and bytes, fed all at once.
        let mut stream = ArenaStream::new();
        stream.feed(&data);
        let mut offset = 0;
        for e in &encs {
            let msg = stream.next_message().unwrap().unwrap();
            prop_assert_eq!(msg.offset, offset as u64);
            prop_assert_eq!(msg.bytes, &e[..]);
            offset += e.len();
        }
        prop_assert_eq!(stream.next_message(), Ok(None));
        // And read from a reader that returns a few bytes at a time.
        let mut reader = Trickle { data: &data, step: 1 + cuts.len() * 3 };
        let mut stream = ArenaStream::new();
        stream.set_read_size(7);
        for e in &encs {
            let msg = stream.read_message(&mut reader).unwrap().unwrap();
            prop_assert_eq!(msg.bytes, &e[..]);
        }
        prop_assert!(stream.read_message(&mut reader).unwrap().is_none());
    }
}

/// A reader that returns at most `step` bytes per call, and is interrupted
/// every other call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.step % 2 == 0 {
            self.step += 1;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.step += 1;
        let n = (self.step / 2).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

// ---------------------------------------------------------------- one-shot

#[test]
fn scalars_and_borrowing() {
    let bump = Bump::new();
    let input = [0xc4, 0x02, 0xaa, 0xbb];
    let v = decode_in(&bump, &input).unwrap();
    let ValueRef::Bin(b) = v else { panic!("{v:?}") };
    // Borrowed from the input, not copied.
    assert_eq!(b.as_ptr(), input[2..].as_ptr());
    assert_eq!(bump.allocated_bytes(), 0, "a scalar allocates nothing");

    let cases: &[(&[u8], ValueRef)] = &[
        (&[0xc0], ValueRef::Nil),
        (&[0xc2], ValueRef::Bool(false)),
        (&[0xc3], ValueRef::Bool(true)),
        (&[0x7f], ValueRef::Uint(127)),
        (&[0xcc, 0xff], ValueRef::Uint(255)),
        (&[0xcd, 0x01, 0x00], ValueRef::Uint(256)),
        (&[0xce, 0, 1, 0, 0], ValueRef::Uint(65_536)),
        (&[0xcf, 0, 0, 0, 1, 0, 0, 0, 0], ValueRef::Uint(1 << 32)),
        (&[0xe0], ValueRef::Int(-32)),
        (&[0xd0, 0x05], ValueRef::Int(5)),
        (&[0xd1, 0xff, 0x38], ValueRef::Int(-200)),
        (&[0xd2, 0xff, 0xff, 0xff, 0xff], ValueRef::Int(-1)),
        (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], ValueRef::Int(i64::MIN)),
        (&[0xca, 0x3f, 0xc0, 0, 0], ValueRef::F32(1.5)),
        (&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], ValueRef::F64(1.5)),
        (&[0xa0], ValueRef::Str(b"")),
        (&[0xd9, 0x01, b'x'], ValueRef::Str(b"x")),
        (&[0xda, 0x00, 0x01, b'x'], ValueRef::Str(b"x")),
        (&[0xdb, 0, 0, 0, 1, b'x'], ValueRef::Str(b"x")),
        (&[0xc5, 0x00, 0x01, 7], ValueRef::Bin(&[7])),
        (&[0xc6, 0, 0, 0, 1, 7], ValueRef::Bin(&[7])),
        (&[0xd4, 0x05, 1], ValueRef::Ext(5, &[1])),
        (&[0xd5, 0xfb, 1, 2], ValueRef::Ext(-5, &[1, 2])),
        (&[0xd6, 1, 1, 2, 3, 4], ValueRef::Ext(1, &[1, 2, 3, 4])),
        (&[0xc7, 0x00, 0x06], ValueRef::Ext(6, &[])),
        (&[0xc8, 0x00, 0x01, 0x06, 9], ValueRef::Ext(6, &[9])),
        (&[0xc9, 0, 0, 0, 1, 0x06, 9], ValueRef::Ext(6, &[9])),
        (&[0x90], ValueRef::Array(&[])),
        (&[0x80], ValueRef::Map(&[])),
        (&[0xdc, 0, 0], ValueRef::Array(&[])),
        (&[0xdf, 0, 0, 0, 0], ValueRef::Map(&[])),
    ];
    for (input, want) in cases {
        assert_eq!(decode_in(&bump, input).as_ref(), Ok(want), "{input:02x?}");
        assert_eq!(
            decode_value_exact(input),
            Ok(want.to_value()),
            "{input:02x?}"
        );
    }
}

#[test]
fn containers_and_accessors() {
    let v = Value::Map(vec![
        (Value::Str(b"id".to_vec()), Value::Uint(7)),
        (
            Value::Str(b"tags".to_vec()),
            Value::Array(vec![Value::Str(b"a".to_vec()), Value::Nil]),
        ),
        (Value::Uint(1), Value::Int(-1)),
        (
            Value::Str(b"ts".to_vec()),
            Value::Ext(-1, Timestamp::new(5, 6).to_payload()),
        ),
        (Value::Str(b"id".to_vec()), Value::Uint(8)),
        (Value::Str(b"f".to_vec()), Value::F32(0.5)),
        (Value::Str(b"bad".to_vec()), Value::Str(vec![0xff])),
        (Value::Str(b"bin".to_vec()), Value::Bin(vec![1])),
    ]);
    let bytes = enc(&v);
    let bump = Bump::new();
    let r = decode_in(&bump, &bytes).unwrap();
    assert_eq!(r.len(), Some(8));
    assert_eq!(r["id"].as_u64(), Some(7), "the first of duplicate keys");
    assert_eq!(r["tags"][0].as_str(), Some("a"));
    assert!(r["tags"][1].is_nil());
    assert!(r["tags"][2].is_nil(), "out of range");
    assert!(r["missing"].is_nil());
    assert!(r[0].is_nil(), "not an array");
    assert_eq!(r.as_map().unwrap()[2].1.as_i64(), Some(-1));
    assert_eq!(r["ts"].as_timestamp(), Some(Timestamp::new(5, 6)));
    assert_eq!(r["f"].as_f64(), Some(0.5));
    assert_eq!(r["bad"].as_str(), None);
    assert_eq!(r["bad"].as_str_bytes(), Some(&[0xff][..]));
    assert_eq!(r["bin"].as_bin(), Some(&[1][..]));
    assert_eq!(r["bin"].as_str(), None);
    assert_eq!(r["id"].as_bool(), None);
    assert_eq!(ValueRef::Int(5).as_u64(), Some(5));
    assert_eq!(ValueRef::Int(-5).as_u64(), None);
    assert_eq!(ValueRef::Uint(u64::MAX).as_i64(), None);
    assert_eq!(ValueRef::Nil.len(), None);
    assert_eq!(ValueRef::Ext(3, &[1, 2]).as_ext(), Some((3, &[1, 2][..])));
    assert_eq!(ValueRef::Ext(3, &[1, 2]).as_timestamp(), None);
    assert_eq!(r.to_value(), v);
    assert_eq!(r.to_vec().unwrap(), bytes);
    assert_eq!(
        format!(
            "{:?}",
            decode_in(&bump, &[0x92, 0xa1, b'a', 0xc4, 1, 0xff]).unwrap()
        ),
        r#"Array([Str("a"), Bin(b"\xff")])"#
    );
}

/// Map entries whose key, value or both are containers (the decoder parks
/// a key while its container value is decoded).
#[test]
fn container_keys_and_values() {
    let arr = |v: Vec<Value>| Value::Array(v);
    let map = |v: Vec<(Value, Value)>| Value::Map(v);
    let u = Value::Uint;
    let v = map(vec![
        (
            arr(vec![u(1)]),
            map(vec![(arr(vec![u(2)]), arr(vec![u(3)]))]),
        ),
        (Value::Str(b"k".to_vec()), arr(vec![u(4), map(vec![])])),
        (arr(vec![u(5)]), u(6)),
        (u(7), u(8)),
        (
            map(vec![(u(9), u(10))]),
            map(vec![(map(vec![]), arr(vec![]))]),
        ),
        (arr(vec![]), arr(vec![arr(vec![u(11)]), arr(vec![u(12)])])),
    ]);
    let bytes = enc(&v);
    let bump = Bump::new();
    let r = decode_in(&bump, &bytes).unwrap();
    assert_eq!(r.to_value(), v);
    assert_eq!(r.to_vec().unwrap(), bytes);
    // The same inside arrays, and split anywhere in a stream.
    let outer = arr(vec![v.clone(), u(0), v.clone()]);
    let bytes = enc(&outer);
    assert_eq!(decode_in(&bump, &bytes).unwrap().to_value(), outer);
    for split in 0..bytes.len() {
        let events = stream_events(&bytes, &[split], Limits::default());
        assert_eq!(events, vec![Ok(outer.clone())], "split {split}");
    }
}

#[test]
fn one_shot_errors_and_prefixes() {
    let bump = Bump::new();
    assert_eq!(decode_in(&bump, &[]), Err(DecodeError::UnexpectedEof));
    assert_eq!(
        decode_in(&bump, &[0xc1]),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(
        decode_in(&bump, &[0x92, 0x01, 0xc1]),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(
        decode_in(&bump, &[0x01, 0x02]),
        Err(DecodeError::ExtraBytes(1))
    );
    // A lying header followed by an invalid byte: the invalid byte is what
    // the streaming decoder reports, so it is what is reported here.
    assert_eq!(
        decode_in(&bump, &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc1]),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    let input = [0x92, 0x01, 0x02, 0xa1, b'x', 0xc0];
    let (v, used) = decode_prefix_in(&bump, &input, Limits::default()).unwrap();
    assert_eq!((v.len(), used), (Some(2), 3));
    assert_eq!(decode_value(&input).map(|(_, n)| n), Ok(3));
}

fn nested_arrays(n: usize, innermost: u8) -> Vec<u8> {
    let mut out = vec![0x91; n];
    out.push(innermost);
    out
}

#[test]
fn depth_limit_matches_the_stream_decoder() {
    let bump = Bump::new();
    assert!(decode_in(&bump, &nested_arrays(128, 0x01)).is_ok());
    assert_eq!(
        decode_in(&bump, &nested_arrays(129, 0x01)),
        Err(DecodeError::DepthExceeded { max: 128 })
    );
    // Empty containers don't count.
    assert!(decode_in(&bump, &nested_arrays(128, 0x90)).is_ok());
    assert!(decode_in(&bump, &nested_arrays(128, 0x80)).is_ok());
    for max_depth in [0, 1, 2, 5] {
        let limits = Limits {
            max_depth,
            ..Limits::default()
        };
        for n in 0..8 {
            for innermost in [0x01, 0x90, 0x81] {
                let mut input = nested_arrays(n, innermost);
                if innermost == 0x81 {
                    input.extend_from_slice(&[0xa1, b'k', 0x02]);
                }
                let bump = Bump::new();
                let arena = decode_in_with(&bump, &input, limits).map(|v| v.to_value());
                let stream = decode_value_with(&input, limits).map(|(v, _)| v);
                assert_eq!(arena, stream, "{input:02x?} max_depth {max_depth}");
            }
        }
    }
}

/// Nesting deeper than any native stack could recurse decodes with an
/// explicit stack.
#[test]
fn very_deep_nesting_does_not_recurse() {
    let depth = 200_000;
    let input = nested_arrays(depth, 0x2a);
    let limits = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    let bump = Bump::new();
    let mut v = decode_in_with(&bump, &input, limits).unwrap();
    let mut levels = 0;
    while let ValueRef::Array([inner]) = v {
        v = *inner;
        levels += 1;
    }
    assert_eq!((levels, v), (depth, ValueRef::Uint(42)));
    // Truncated, it is still UnexpectedEof (found by the streaming scan).
    assert_eq!(
        decode_in_with(&bump, &input[..depth], limits),
        Err(DecodeError::UnexpectedEof)
    );
}

#[test]
fn length_limits_match_the_stream_decoder() {
    let tight = |kind: LimitKind, max: u32| {
        let mut l = Limits::default();
        match kind {
            LimitKind::ArrayLen => l.max_array_len = max,
            LimitKind::MapLen => l.max_map_len = max,
            LimitKind::StrLen => l.max_str_len = max,
            LimitKind::BinLen => l.max_bin_len = max,
            LimitKind::ExtLen => l.max_ext_len = max,
        }
        l
    };
    let values = [
        Value::Array(vec![Value::Nil; 3]),
        Value::Map(vec![(Value::Nil, Value::Nil); 3]),
        Value::Str(b"abc".to_vec()),
        Value::Str(vec![b'x'; 40]),
        Value::Bin(vec![1; 3]),
        Value::Ext(1, vec![1; 3]),
        Value::Ext(1, vec![1; 4]),
        Value::Array(vec![Value::Str(b"abcd".to_vec()), Value::Bin(vec![1; 4])]),
    ];
    for kind in [
        LimitKind::ArrayLen,
        LimitKind::MapLen,
        LimitKind::StrLen,
        LimitKind::BinLen,
        LimitKind::ExtLen,
    ] {
        for max in [0, 2, 3, 4, 31, 32] {
            let limits = tight(kind, max);
            for v in &values {
                let bytes = enc(v);
                let bump = Bump::new();
                let arena = decode_in_with(&bump, &bytes, limits).map(|v| v.to_value());
                let stream = decode_value_with(&bytes, limits).map(|(v, _)| v);
                assert_eq!(arena, stream, "{kind:?} <= {max}: {bytes:02x?}");
            }
        }
    }
    let bump = Bump::new();
    assert_eq!(
        decode_in_with(&bump, &[0x93, 1, 2, 3], tight(LimitKind::ArrayLen, 2)),
        Err(DecodeError::LimitExceeded {
            kind: LimitKind::ArrayLen,
            len: 3,
            max: 2
        })
    );
}

/// Lying length headers allocate nothing big: nothing at all at the top
/// level, and in total never more slots than the input has bytes.
#[test]
fn lying_headers_reserve_nothing_they_cannot_fill() {
    let bump = Bump::new();
    for input in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02][..],
        &[0xc6, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdb, 0xff, 0xff, 0xff, 0xff][..],
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        &[0x9f, 0x01][..],
        &[0x8f, 0x01, 0x01][..],
    ] {
        assert_eq!(decode_in(&bump, input), Err(DecodeError::UnexpectedEof));
    }
    assert_eq!(bump.allocated_bytes(), 0);
    // Nested lying headers share the byte budget: 150 KB of `dc ff ff`
    // stops at depth 129 (what the streaming decoder reports) having
    // reserved at most one slot per input byte.
    for unit in [&[0xdc, 0xff, 0xff][..], &[0xde, 0xff, 0xff][..]] {
        let input = unit.repeat(50_000);
        let mut bump = Bump::new();
        assert_eq!(
            decode_in(&bump, &input),
            Err(DecodeError::DepthExceeded { max: 128 })
        );
        let slots = bump.allocated_bytes() / std::mem::size_of::<ValueRef>();
        println!(
            "{unit:02x?} x 50,000: {} arena bytes",
            bump.allocated_bytes()
        );
        assert!(slots <= 2 * input.len() + 1024, "{slots} slots");
        bump.reset();
    }
}

// ---------------------------------------------------------------- streaming

#[test]
fn stream_errors_resume_like_the_stream_decoder() {
    // 1, [2, 0xc1, 3] (fails; the rest `03` is skipped), "x", then a str
    // over the limit whose payload is skipped, then nil.
    let limits = Limits {
        max_str_len: 3,
        ..Limits::default()
    };
    let data = [
        0x01, 0x93, 0x02, 0xc1, 0x03, 0xa1, b'x', 0xa4, b'a', b'b', b'c', b'd', 0xc0,
    ];
    let want = vec![
        Ok(Value::Uint(1)),
        Err(DecodeError::InvalidMarker(0xc1)),
        Ok(Value::Str(b"x".to_vec())),
        Err(DecodeError::LimitExceeded {
            kind: LimitKind::StrLen,
            len: 4,
            max: 3,
        }),
        Ok(Value::Nil),
    ];
    assert_eq!(stream_events(&data, &[], limits), want);
    for split in 0..=data.len() {
        assert_eq!(
            stream_events(&data, &[split], limits),
            want,
            "split {split}"
        );
    }
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(stream_events(&data, &bytewise, limits), want);
}

#[test]
fn stream_offsets_reset_and_arena_reuse() {
    let mut stream = ArenaStream::new();
    stream.feed(&[0x92, 0x01, 0x02, 0x91]);
    assert_eq!(stream.offset(), 0);
    let msg = stream.next_message().unwrap().unwrap();
    assert_eq!((msg.offset, msg.bytes.len()), (0, 3));
    assert_eq!(stream.offset(), 3);
    assert!(stream.arena_bytes() > 0);
    assert_eq!(stream.next_message(), Ok(None));
    assert_eq!(stream.buffered(), 1);
    assert!(!stream.is_at_boundary());
    stream.reset();
    assert!(stream.is_at_boundary());
    assert_eq!(stream.offset(), 4, "offsets go on counting after a reset");
    stream.feed(&[0xc3]);
    let msg = stream.next_message().unwrap().unwrap();
    assert_eq!((msg.offset, msg.value), (4, ValueRef::Bool(true)));
    assert!(format!("{stream:?}").starts_with("ArenaStream"));
}

#[test]
fn read_message_ends_and_errors() {
    // Ends inside a message: UnexpectedEof once, then the end.
    let mut reader: &[u8] = &[0x01, 0x92, 0x01];
    let mut stream = ArenaStream::new();
    assert_eq!(
        stream.read_message(&mut reader).unwrap().unwrap().value,
        ValueRef::Uint(1)
    );
    assert!(matches!(
        stream.read_message(&mut reader),
        Err(ReadError::Decode(DecodeError::UnexpectedEof))
    ));
    assert!(stream.read_message(&mut reader).unwrap().is_none());

    // A decode error, then the next message.
    let mut reader: &[u8] = &[0xc1, 0x05];
    let mut stream = ArenaStream::new();
    assert!(matches!(
        stream.read_message(&mut reader),
        Err(ReadError::Decode(DecodeError::InvalidMarker(0xc1)))
    ));
    assert_eq!(
        stream.read_message(&mut reader).unwrap().unwrap().value,
        ValueRef::Uint(5)
    );

    // Reader errors come through, and convert to io::Error.
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        }
    }
    let err = ArenaStream::new().read_message(&mut Failing).unwrap_err();
    assert!(matches!(&err, ReadError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe));
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::BrokenPipe);
    let eof: io::Error = ReadError::Decode(DecodeError::UnexpectedEof).into();
    assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    let bad: io::Error = ReadError::Decode(DecodeError::InvalidMarker(0xc1)).into();
    assert_eq!(bad.kind(), io::ErrorKind::InvalidData);

    // It does not read while a whole message is buffered (a peer waiting
    // for an answer is not blocked on).
    struct Once(Option<Vec<u8>>);
    impl Read for Once {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let data = self
                .0
                .take()
                .expect("read again while a message was buffered");
            buf[..data.len()].copy_from_slice(&data);
            Ok(data.len())
        }
    }
    let mut reader = Once(Some(vec![0x01, 0x02]));
    let mut stream = ArenaStream::new();
    for want in [1, 2] {
        let msg = stream.read_message(&mut reader).unwrap().unwrap();
        assert_eq!(msg.value.as_u64(), Some(want));
    }
}

/// A big message arriving in small pieces is scanned incrementally (the
/// stream does not re-decode it from the start on every piece).
#[test]
fn big_message_in_small_pieces() {
    let v = Value::Array((0..20_000u64).map(Value::Uint).collect());
    let bytes = enc(&v);
    let mut stream = ArenaStream::new();
    let mut got = None;
    for chunk in bytes.chunks(64) {
        stream.feed(chunk);
        if let Some(msg) = stream.next_message().unwrap() {
            got = Some(msg.value.to_value());
        }
    }
    assert_eq!(got, Some(v));
    assert!(stream.is_at_boundary());
}

#[test]
fn encodes_to_any_sink() {
    let bump = Bump::new();
    let input = enc(&Value::Array(vec![
        Value::Int(-200),
        Value::Str("héllo".as_bytes().to_vec()),
        Value::Bin(vec![1, 2, 3]),
        Value::Ext(7, vec![0; 16]),
        Value::Map(vec![(Value::F32(0.25), Value::F64(-0.0))]),
    ]));
    let v = decode_in(&bump, &input).unwrap();
    let mut out = Vec::new();
    v.encode(&mut out).unwrap();
    assert_eq!(out, input);
    // Non-canonical input comes back canonical.
    let loose = [0x92, 0xd0, 0x05, 0xd9, 0x01, b'a'];
    let v = decode_in(&bump, &loose).unwrap();
    assert_eq!(v.to_vec().unwrap(), [0x92, 0x05, 0xa1, b'a']);
    let mut writers = Vec::new();
    encode::write_array_header(&mut writers, 2);
    encode::write_uint(&mut writers, 5);
    encode::write_str(&mut writers, b"a", false).unwrap();
    assert_eq!(v.to_vec().unwrap(), writers);
}
