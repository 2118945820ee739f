//! Round trips, streaming (truncation, chunked feeding, concatenation),
//! hostile-input limits, deferred exts, the skipper, the encoder's shortest
//! forms and the timestamp extension.
mod common;

use common::{assert_unfinished_token, same, token_boundaries, Begin, Recorder};
use msgpack_rs_core::value::decode_value_with;
use msgpack_rs_core::{
    decode_value, decode_value_exact, encode, encode_value, parse_header, Builder, DecodeError,
    LimitKind, Limits, Partial, Skipper, Step, StreamDecoder, Timestamp, TimestampError, Value,
    ValueBuilder,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------- strategies

/// Deterministic filler, so long payloads are cheap to generate.
fn fill(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)))
        .collect()
}

/// Payload bytes. With `big`, lengths straddle the 8/16/32-bit length
/// boundaries (255/256, 65535/65536).
fn payload(big: bool) -> BoxedStrategy<Vec<u8>> {
    let small = prop::collection::vec(any::<u8>(), 0..40);
    let medium = (240usize..300, any::<u8>()).prop_map(|(n, s)| fill(n, s));
    if big {
        prop_oneof![
            12 => small,
            3 => medium,
            1 => (65_530usize..65_540, any::<u8>()).prop_map(|(n, s)| fill(n, s)),
        ]
        .boxed()
    } else {
        prop_oneof![8 => small, 1 => medium].boxed()
    }
}

fn int() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<u8>().prop_map(|v| Value::Uint(v as u64)),
        any::<u16>().prop_map(|v| Value::Uint(v as u64)),
        any::<u32>().prop_map(|v| Value::Uint(v as u64)),
        any::<u64>().prop_map(Value::Uint),
        any::<i8>().prop_map(|v| Value::Int(v as i64)),
        any::<i16>().prop_map(|v| Value::Int(v as i64)),
        any::<i32>().prop_map(|v| Value::Int(v as i64)),
        any::<i64>().prop_map(Value::Int),
        (-40i64..300).prop_map(Value::Int),
    ]
    .boxed()
}

fn leaf(big: bool) -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Nil),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => int(),
        1 => any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        1 => any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        1 => any::<f64>().prop_map(Value::F64),
        2 => payload(big).prop_map(Value::Str),
        1 => payload(big).prop_map(Value::Bin),
        1 => (any::<i8>(), prop_oneof![4 => payload(false), 1 => payload(big)])
            .prop_map(|(t, d)| Value::Ext(t, d)),
    ]
    .boxed()
}

/// Nested values; containers go up to 19 entries so array16/map16 appear.
fn value(big: bool, depth: u32, size: u32) -> BoxedStrategy<Value> {
    leaf(big)
        .prop_recursive(depth, size, 19, |inner| {
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

fn enc_all(vs: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in vs {
        encode_value(v, &mut out).unwrap();
    }
    out
}

/// Feeds `data` to one decoder in the chunks ending at `ends` (and at the
/// end), keeping the unread tail and appending each new chunk, and checks the
/// position contract after every call: on `NeedMore` everything before the
/// position has been applied and what follows is one unfinished token; the
/// decoder is idle exactly between objects.
fn feed(data: &[u8], ends: &[usize]) -> Vec<Value> {
    let boundaries = token_boundaries(data);
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0; // bytes of `data` drained from `buf`
    let mut fed = 0;
    let mut ends = ends.to_vec();
    ends.push(data.len());
    for end in ends {
        let end = end.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        let mut pos = 0;
        loop {
            let before = pos;
            match dec.decode(&mut ValueBuilder, &buf, &mut pos).unwrap() {
                Step::Done(v) => {
                    assert!(pos > before && pos <= buf.len());
                    assert!(dec.is_idle());
                    out.push(v);
                    // An object ends only where its encoding ends.
                    let at = consumed + pos;
                    assert!(boundaries.contains(&at));
                }
                Step::NeedMore => {
                    assert!(pos >= before && pos <= buf.len());
                    let at = consumed + pos;
                    assert!(
                        boundaries.contains(&at),
                        "position {at} is not at a token start"
                    );
                    assert_unfinished_token(&buf[pos..]);
                    break;
                }
                Step::Deferred { .. } => panic!("ValueBuilder defers nothing"),
            }
        }
        buf.drain(..pos);
        consumed += pos;
    }
    assert_eq!(consumed, data.len(), "all input consumed");
    assert!(buf.is_empty());
    assert!(dec.is_idle());
    out
}

fn cut_points(len: usize, cuts: &[Index]) -> Vec<usize> {
    let mut v: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    v.sort_unstable();
    v
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any value, including 64 KiB payloads and every int width, survives
    /// encode -> decode (non-negative `Int`s come back as `Uint`).
    #[test]
    fn round_trip(v in value(true, 4, 48)) {
        let bytes = enc(&v);
        let got = decode_value_exact(&bytes).unwrap();
        prop_assert!(same(&got, &v.clone().normalized()), "{:?} != {:?}", got, v);
        // Skipping validates the same bytes and stops at the same place.
        let mut pos = 0;
        let step = StreamDecoder::<Skipper>::default().decode(&mut Skipper, &bytes, &mut pos);
        prop_assert_eq!(step, Ok(Step::Done(())));
        prop_assert_eq!(pos, bytes.len());
        // Re-encoding the decoded value is byte-identical.
        prop_assert_eq!(enc(&got), bytes);
    }

    /// Arbitrary chunkings of one object yield exactly that object.
    #[test]
    fn chunked_feeding(v in value(true, 3, 24), cuts in prop::collection::vec(any::<Index>(), 0..12)) {
        let bytes = enc(&v);
        let got = feed(&bytes, &cut_points(bytes.len(), &cuts));
        prop_assert_eq!(got.len(), 1);
        prop_assert!(same(&got[0], &v.clone().normalized()));
    }

    /// Concatenated objects decode in sequence, whole and in chunks.
    #[test]
    fn concatenated_objects(
        vs in prop::collection::vec(value(false, 2, 12), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let bytes = enc_all(&vs);
        let want: Vec<Value> = vs.iter().cloned().map(Value::normalized).collect();
        for got in [feed(&bytes, &[]), feed(&bytes, &cut_points(bytes.len(), &cuts))] {
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!(same(g, w));
            }
        }
        // The one-shot helper reports how much each object took.
        let mut at = 0;
        for w in &want {
            let (g, used) = decode_value(&bytes[at..]).unwrap();
            prop_assert!(same(&g, w));
            at += used;
        }
        prop_assert_eq!(at, bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every strict prefix is `NeedMore` (never `Done`, never an error), and
    /// the same decoder then finishes the object from the position it left.
    #[test]
    fn every_prefix_needs_more(v in value(false, 3, 16)) {
        let bytes = enc(&v);
        let boundaries = token_boundaries(&bytes);
        for k in 0..bytes.len() {
            let mut dec = StreamDecoder::<ValueBuilder>::default();
            let mut pos = 0;
            let step = dec.decode(&mut ValueBuilder, &bytes[..k], &mut pos);
            prop_assert_eq!(&step, &Ok(Step::NeedMore), "prefix {}", k);
            prop_assert!(pos <= k && boundaries.contains(&pos));
            assert_unfinished_token(&bytes[pos..k]);
            let done = dec.decode(&mut ValueBuilder, &bytes, &mut pos).unwrap();
            match done {
                Step::Done(got) => prop_assert!(same(&got, &v.clone().normalized())),
                other => prop_assert!(false, "{:?}", other),
            }
            prop_assert_eq!(pos, bytes.len());
        }
    }

    /// One byte at a time.
    #[test]
    fn byte_at_a_time(v in value(false, 3, 24)) {
        let bytes = enc(&v);
        let ends: Vec<usize> = (1..bytes.len()).collect();
        let got = feed(&bytes, &ends);
        prop_assert_eq!(got.len(), 1);
        prop_assert!(same(&got[0], &v.clone().normalized()));
    }
}

// ---------------------------------------------------------------- helpers

fn decode_with<B: Builder<Error = DecodeError>>(
    b: &mut B,
    limits: Limits,
    input: &[u8],
) -> (Result<Step<B::Value>, DecodeError>, usize, StreamDecoder<B>) {
    let mut dec = StreamDecoder::new(limits);
    let mut pos = 0;
    let r = dec.decode(b, input, &mut pos);
    (r, pos, dec)
}

fn nested_arrays(n: usize, innermost: u8) -> Vec<u8> {
    let mut v = vec![0x91; n];
    v.push(innermost);
    v
}

fn nested_maps(n: usize, innermost: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.extend_from_slice(&[0x81, 0x00]);
    }
    v.push(innermost);
    v
}

// ---------------------------------------------------------------- depth

#[test]
fn depth_limit_is_128_non_empty_containers() {
    assert_eq!(Limits::default().max_depth, 128);
    for make in [nested_arrays, nested_maps] {
        // 128 nested containers around nil: fine.
        let ok = make(128, 0xc0);
        assert!(decode_value_exact(&ok).is_ok());
        // An empty container inside does not count.
        assert!(decode_value_exact(&make(128, 0x90)).is_ok());
        assert!(decode_value_exact(&make(128, 0x80)).is_ok());
        // The 129th non-empty one fails, with the position past its header.
        let bad = make(129, 0xc0);
        let (r, pos, dec) = decode_with(&mut ValueBuilder, Limits::default(), &bad);
        assert_eq!(r, Err(DecodeError::DepthExceeded { max: 128 }));
        let unit = if make(1, 0xc0).len() == 2 { 1 } else { 2 };
        assert_eq!(pos, 128 * unit + 1);
        assert_eq!(dec.depth(), 0, "partial containers dropped after an error");
        // The rest of the failed object (the nil inside) is discarded next.
        assert!(dec.is_discarding());
    }
    // The value itself is right at the limit.
    let mut v = Value::Nil;
    for _ in 0..128 {
        v = Value::Array(vec![v]);
    }
    assert_eq!(decode_value_exact(&nested_arrays(128, 0xc0)), Ok(v));
}

#[test]
fn depth_limit_is_configurable() {
    let limits = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    assert!(decode_value_with(&[0x91, 0x91, 0xc0], limits).is_ok());
    assert!(decode_value_with(&[0x91, 0x91, 0x90], limits).is_ok());
    assert_eq!(
        decode_value_with(&[0x91, 0x91, 0x91, 0xc0], limits),
        Err(DecodeError::DepthExceeded { max: 2 })
    );
    // Siblings don't add up: depth, not count.
    assert!(decode_value_with(&[0x92, 0x91, 0xc0, 0x91, 0xc0], limits).is_ok());
    let zero = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert!(decode_value_with(&[0x90], zero).is_ok());
    assert!(decode_value_with(&[0x01], zero).is_ok());
    assert_eq!(
        decode_value_with(&[0x91, 0x01], zero),
        Err(DecodeError::DepthExceeded { max: 0 })
    );
}

/// 50,000 nested `dc ff ff` (array16 of 65,535) headers: the decoder stops
/// at depth 129, and the capacity hints it gave never add up to more than the
/// input could hold.
#[test]
fn deep_lying_array_headers_fail_without_big_reservations() {
    let input: Vec<u8> = [0xdc, 0xff, 0xff].repeat(50_000);
    let mut rec = Recorder::default();
    let (r, pos, dec) = decode_with(&mut rec, Limits::default(), &input);
    assert_eq!(r, Err(DecodeError::DepthExceeded { max: 128 }));
    assert_eq!(pos, 3 * 129);
    assert_eq!(rec.begins.len(), 128);
    assert!(rec.begins.iter().all(|b| b.len == 0xffff && !b.map));
    assert!(
        rec.total_capacity() <= input.len(),
        "reserved {} elements for {} bytes",
        rec.total_capacity(),
        input.len()
    );
    assert_eq!(dec.depth(), 0);
    // The decoder's own stack is bounded by the depth limit.
    assert!(dec.heap_size() <= 1 << 16, "{}", dec.heap_size());
}

/// The same with maps (`de ff ff`) and the 32-bit forms.
#[test]
fn nested_lying_headers_share_the_byte_budget() {
    for unit in [
        &[0xde, 0xff, 0xff][..],
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
    ] {
        let input = unit.repeat(20_000);
        let mut rec = Recorder::default();
        let (r, _, _) = decode_with(&mut rec, Limits::default(), &input);
        assert_eq!(r, Err(DecodeError::DepthExceeded { max: 128 }));
        assert!(
            rec.total_capacity() <= input.len(),
            "{unit:02x?}: reserved {} for {} bytes",
            rec.total_capacity(),
            input.len()
        );
    }
    // Outer container of 3 whose elements are big arrays: the first inner
    // array may not claim the bytes its two siblings need.
    let mut input = vec![0x93, 0xdc, 0x00, 0x0a];
    input.extend_from_slice(&[0xc0; 10]);
    input.extend_from_slice(&[0x90, 0x90]);
    let mut rec = Recorder::default();
    let (r, _, _) = decode_with(&mut rec, Limits::default(), &input);
    assert!(matches!(r, Ok(Step::Done(_))));
    assert_eq!(
        rec.begins,
        [
            Begin {
                map: false,
                len: 3,
                capacity: 3
            },
            Begin {
                map: false,
                len: 10,
                capacity: 10
            },
            Begin {
                map: false,
                len: 0,
                capacity: 0
            },
            Begin {
                map: false,
                len: 0,
                capacity: 0
            },
        ]
    );
    // Exact hints for a complete map of maps too.
    let v = Value::Map(vec![
        (
            Value::Uint(1),
            Value::Map(vec![(Value::Nil, Value::Nil); 3]),
        ),
        (Value::Uint(2), Value::Array(vec![Value::Nil; 5])),
    ]);
    let mut rec = Recorder::default();
    let (r, _, _) = decode_with(&mut rec, Limits::default(), &enc(&v));
    assert_eq!(r, Ok(Step::Done(v)));
    let caps: Vec<(u32, usize)> = rec.begins.iter().map(|b| (b.len, b.capacity)).collect();
    assert_eq!(caps, [(2, 2), (3, 3), (5, 5)]);
}

// ---------------------------------------------------------------- limits

fn tight(kind: LimitKind, max: u32) -> Limits {
    let mut l = Limits::default();
    match kind {
        LimitKind::ArrayLen => l.max_array_len = max,
        LimitKind::MapLen => l.max_map_len = max,
        LimitKind::StrLen => l.max_str_len = max,
        LimitKind::BinLen => l.max_bin_len = max,
        LimitKind::ExtLen => l.max_ext_len = max,
    }
    l
}

#[test]
fn each_limit_kind() {
    let at = |n: usize| -> [(LimitKind, Value); 5] {
        [
            (LimitKind::ArrayLen, Value::Array(vec![Value::Nil; n])),
            (
                LimitKind::MapLen,
                Value::Map(
                    (0..n)
                        .map(|i| (Value::Uint(i as u64), Value::Nil))
                        .collect(),
                ),
            ),
            (LimitKind::StrLen, Value::Str(vec![b'x'; n])),
            (LimitKind::BinLen, Value::Bin(vec![1; n])),
            (LimitKind::ExtLen, Value::Ext(7, vec![2; n])),
        ]
    };
    for n in [0usize, 3, 40, 300] {
        for (kind, v) in at(n) {
            let bytes = enc(&v);
            let limits = tight(kind, n as u32);
            // At the limit: fine.
            assert_eq!(
                decode_value_with(&bytes, limits),
                Ok((v.clone(), bytes.len()))
            );
            if n == 0 {
                continue;
            }
            // One below: fails on the header, before any payload is read.
            let limits = tight(kind, n as u32 - 1);
            let (r, pos, dec) = decode_with(&mut ValueBuilder, limits, &bytes);
            assert_eq!(
                r,
                Err(DecodeError::LimitExceeded {
                    kind,
                    len: n as u32,
                    max: n as u32 - 1
                }),
                "{kind:?} {n}"
            );
            let hlen = parse_header(&bytes).unwrap().unwrap().1;
            assert_eq!(pos, hlen, "{kind:?} {n}: position past the header");
            assert_eq!(dec.depth(), 0);
            // The next call discards the rest of the object: payload or
            // elements, and nothing after them.
            let mut dec = dec;
            let mut more = bytes.clone();
            more.push(0x2a);
            let mut pos = hlen;
            assert_eq!(
                dec.decode(&mut ValueBuilder, &more, &mut pos),
                Ok(Step::Done(Value::Uint(42))),
                "{kind:?} {n}"
            );
            assert_eq!(pos, more.len());
            // Other limits don't interfere.
            for other in [
                LimitKind::ArrayLen,
                LimitKind::MapLen,
                LimitKind::StrLen,
                LimitKind::BinLen,
                LimitKind::ExtLen,
            ] {
                if other != kind {
                    assert!(decode_value_with(&bytes, tight(other, 0)).is_ok());
                }
            }
        }
    }
    assert_eq!(LimitKind::StrLen.option_name(), "max_str_len");
    assert_eq!(LimitKind::ExtLen.option_name(), "max_ext_len");
}

#[test]
fn length_limits_apply_before_waiting_for_payload() {
    // str32 of 4096 with no payload at all: a limit error, not NeedMore.
    let input = [0xdb, 0x00, 0x00, 0x10, 0x00];
    let (r, pos, _) = decode_with(&mut ValueBuilder, tight(LimitKind::StrLen, 100), &input);
    assert_eq!(
        r,
        Err(DecodeError::LimitExceeded {
            kind: LimitKind::StrLen,
            len: 4096,
            max: 100
        })
    );
    assert_eq!(pos, 5);
    let (r, _, _) = decode_with(
        &mut ValueBuilder,
        tight(LimitKind::ExtLen, 10),
        &[0xc9, 0, 0, 1, 0, 5],
    );
    assert!(matches!(
        r,
        Err(DecodeError::LimitExceeded {
            kind: LimitKind::ExtLen,
            len: 256,
            ..
        })
    ));
    // Inside a container the same; the error message names the option.
    let (r, pos, dec) = decode_with(
        &mut ValueBuilder,
        tight(LimitKind::BinLen, 1),
        &[0x92, 0x01, 0xc4, 0x02],
    );
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "length 2 exceeds max_bin_len (1)");
    assert_eq!(pos, 4);
    assert_eq!(dec.depth(), 0);
    // The two payload bytes still to come are the failed object's.
    let mut dec = dec;
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0xaa], &mut pos),
        Ok(Step::NeedMore)
    );
    assert_eq!(pos, 1);
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0xbb, 0x03], &mut pos),
        Ok(Step::Done(Value::Uint(3)))
    );
}

// ---------------------------------------------------------------- lying headers

#[test]
fn lying_headers_without_data_need_more() {
    for (input, begin) in [
        (
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            Some(Begin {
                map: false,
                len: u32::MAX,
                capacity: 0,
            }),
        ),
        (
            &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
            Some(Begin {
                map: true,
                len: u32::MAX,
                capacity: 0,
            }),
        ),
        (&[0xc6, 0xff, 0xff, 0xff, 0xff][..], None),
        (&[0xdb, 0xff, 0xff, 0xff, 0xff][..], None),
        (&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01][..], None),
    ] {
        let start = std::time::Instant::now();
        let mut rec = Recorder::default();
        let (r, pos, dec) = decode_with(&mut rec, Limits::default(), input);
        assert_eq!(r, Ok(Step::NeedMore), "{input:02x?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        match begin {
            // A container header is applied at once, reserving nothing.
            Some(b) => {
                assert_eq!(rec.begins, [b]);
                assert_eq!(pos, 5);
                assert_eq!(dec.depth(), 1);
            }
            // A str/bin/ext waits at its header for the whole payload.
            None => {
                assert!(rec.begins.is_empty());
                assert_eq!(pos, 0);
                assert!(dec.is_idle());
            }
        }
    }
}

#[test]
fn capacity_never_exceeds_buffered_bytes() {
    for tail_len in [0usize, 1, 2, 7, 100] {
        for (header, map) in [
            (&[0xdd, 0xff, 0xff, 0xff, 0xff][..], false),
            (&[0xdf, 0xff, 0xff, 0xff, 0xff][..], true),
            (&[0xdc, 0xff, 0xff][..], false),
            (&[0xde, 0xff, 0xff][..], true),
        ] {
            let mut input = header.to_vec();
            input.extend_from_slice(&vec![0xc0; tail_len]);
            let mut rec = Recorder::default();
            let (r, pos, _) = decode_with(&mut rec, Limits::default(), &input);
            assert_eq!(r, Ok(Step::NeedMore));
            assert_eq!(pos, input.len(), "every nil applied");
            assert_eq!(rec.begins.len(), 1);
            let b = rec.begins[0];
            assert_eq!(b.map, map);
            // Every element takes at least a byte, every entry two.
            let bound = if map { tail_len / 2 } else { tail_len };
            assert_eq!(b.capacity, bound, "{header:02x?} + {tail_len}");
        }
    }
    // Small declared lengths are reserved exactly.
    let mut rec = Recorder::default();
    let (r, _, _) = decode_with(&mut rec, Limits::default(), &[0x93, 1, 2, 3]);
    assert!(matches!(r, Ok(Step::Done(_))));
    assert_eq!(rec.begins[0].capacity, 3);
}

// ---------------------------------------------------------------- markers, errors

#[test]
fn reserved_marker_c1() {
    let (r, pos, _) = decode_with(&mut ValueBuilder, Limits::default(), &[0xc1, 0x01]);
    assert_eq!(r, Err(DecodeError::InvalidMarker(0xc1)));
    assert_eq!(pos, 1, "position past the bad byte");
    // Inside a container: the partial array is dropped, and its last
    // element is discarded, never handed out as an object of its own.
    let input = [0x93, 0x01, 0xc1, 0x02, 0x05];
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    let r = dec.decode(&mut ValueBuilder, &input, &mut pos);
    assert_eq!(r, Err(DecodeError::InvalidMarker(0xc1)));
    assert_eq!(pos, 3);
    assert_eq!(dec.depth(), 0);
    assert!(dec.is_discarding());
    // The same decoder goes on with the next top-level object.
    assert_eq!(
        dec.decode(&mut ValueBuilder, &input, &mut pos),
        Ok(Step::Done(Value::Uint(5)))
    );
    assert_eq!(pos, 5);
    assert!(dec.is_idle());
    assert_eq!(DecodeError::InvalidMarker(0xc1).to_string(), "invalid byte");
}

#[test]
fn error_after_need_more_resets_the_decoder() {
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0x92, 0x01], &mut pos),
        Ok(Step::NeedMore)
    );
    assert_eq!((pos, dec.depth()), (2, 1));
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0xc1], &mut pos),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert!(dec.is_idle());
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0x05], &mut pos),
        Ok(Step::Done(Value::Uint(5)))
    );
}

#[test]
fn one_shot_helpers() {
    assert_eq!(decode_value(&[]), Err(DecodeError::UnexpectedEof));
    assert_eq!(decode_value(&[0x92, 0x01]), Err(DecodeError::UnexpectedEof));
    assert_eq!(decode_value(&[0x01, 0x02]), Ok((Value::Uint(1), 1)));
    assert_eq!(
        decode_value_exact(&[0x01, 0x02, 0x03]),
        Err(DecodeError::ExtraBytes(2))
    );
    assert_eq!(
        DecodeError::ExtraBytes(2).to_string(),
        "2 extra bytes after the deserialized object"
    );
}

#[test]
fn partials_reset_and_positions() {
    // [1, {"a": ... : stops at the start of the unfinished str.
    let input = [0x93, 0x01, 0x82, 0xa1, 0x61, 0xa5, 0x68, 0x65];
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &input, &mut pos),
        Ok(Step::NeedMore)
    );
    assert_eq!(pos, 5, "at the str header");
    assert_eq!(dec.depth(), 2);
    let mut seen = Vec::new();
    dec.for_each_partial(|p| match p {
        Partial::Array(a) => seen.push(format!("array {a:?}")),
        Partial::Map(m) => seen.push(format!("map {:?} key {:?}", m.0, m.1)),
    });
    assert_eq!(
        seen,
        [
            "array [Uint(1)]".to_string(),
            "map [] key Some(Str([97]))".to_string()
        ]
    );
    assert!(dec.heap_size() > 0);
    dec.reset();
    assert!(dec.is_idle());
    dec.shrink_to_fit();
    assert_eq!(dec.heap_size(), 0);
    // After a reset the old partial object is gone.
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0x07], &mut pos),
        Ok(Step::Done(Value::Uint(7)))
    );
}

#[test]
fn keys_use_key_callbacks() {
    // {"a": "b", bin "c": bin "d", [ "e" ]: 1}
    let input = [
        0x83, 0xa1, b'a', 0xa1, b'b', 0xc4, 0x01, b'c', 0xc4, 0x01, b'd', 0x91, 0xa1, b'e', 0x01,
    ];
    let mut rec = Recorder::default();
    let (r, _, _) = decode_with(&mut rec, Limits::default(), &input);
    assert!(matches!(r, Ok(Step::Done(Value::Map(_)))));
    assert_eq!(rec.key_strs, [b"a".to_vec()]);
    assert_eq!(rec.key_bins, [b"c".to_vec()]);
    // Longer keys (str8/str16, not fixstr) too; values never.
    let long = vec![b'k'; 40];
    let v = Value::Map(vec![
        (Value::Str(long.clone()), Value::Str(long.clone())),
        (Value::Str(vec![b'm'; 300]), Value::Nil),
    ]);
    let mut rec = Recorder::default();
    let (r, _, _) = decode_with(&mut rec, Limits::default(), &enc(&v));
    assert_eq!(r, Ok(Step::Done(v)));
    assert_eq!(rec.key_strs, [long, vec![b'm'; 300]]);
}

#[test]
fn builder_errors_reset_the_decoder() {
    let mut rec = Recorder {
        fail_ext: Some(9),
        ..Recorder::default()
    };
    // [[ext 9]], 1
    let input = [0x92, 0x91, 0xd4, 0x09, 0x00, 0x01, 0x07];
    let mut dec = StreamDecoder::<Recorder>::default();
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut rec, &input, &mut pos),
        Err(DecodeError::InvalidMarker(0))
    );
    assert_eq!(pos, 5);
    assert_eq!(dec.depth(), 0);
    // The same decoder drops the rest of [[ext 9], 1] and reads the next
    // object.
    assert_eq!(
        dec.decode(&mut rec, &input, &mut pos),
        Ok(Step::Done(Value::Uint(7)))
    );
    assert!(dec.is_idle());
    // And capacity bookkeeping starts afresh: a new container gets the
    // whole buffer again.
    let mut pos = 0;
    let input = [0x93, 0x01, 0x02, 0x03];
    assert!(matches!(
        dec.decode(&mut rec, &input, &mut pos),
        Ok(Step::Done(_))
    ));
    assert_eq!(rec.begins.last().map(|b| b.capacity), Some(3));
}

// ---------------------------------------------------------------- deferred ext

fn deferred_flow(rec: &mut Recorder, input: &[u8]) -> (Value, Vec<(i8, Vec<u8>)>) {
    let mut dec = StreamDecoder::<Recorder>::default();
    let mut pos = 0;
    let mut deferred = Vec::new();
    loop {
        match dec.decode(rec, input, &mut pos).unwrap() {
            Step::Done(v) => {
                assert_eq!(pos, input.len());
                return (v, deferred);
            }
            Step::NeedMore => panic!("complete input"),
            Step::Deferred { ty, len } => {
                // The payload is buffered right after the position.
                let payload = input[pos..pos + len as usize].to_vec();
                pos += len as usize;
                // A "recursive" unpacker: the payload holds msgpack objects.
                let inner = match decode_value_exact(&payload) {
                    Ok(v) => Value::Array(vec![Value::Str(b"custom".to_vec()), v]),
                    Err(_) => Value::Str(b"opaque".to_vec()),
                };
                deferred.push((ty, payload));
                if let Some(v) = dec.inject(rec, inner).unwrap() {
                    assert_eq!(pos, input.len());
                    return (v, deferred);
                }
            }
        }
    }
}

#[test]
fn deferred_ext_and_inject() {
    let custom = |v: Value| Value::Array(vec![Value::Str(b"custom".to_vec()), v]);
    let mut rec = Recorder {
        defer: Some(5),
        ..Recorder::default()
    };
    // Top level: inject returns the object.
    let (v, d) = deferred_flow(&mut rec, &[0xd4, 0x05, 0x07]);
    assert_eq!(v, custom(Value::Uint(7)));
    assert_eq!(d, [(5, vec![0x07])]);

    // In an array, next to a non-deferred ext and a scalar.
    let mut input = vec![0x94];
    encode::write_ext(&mut input, 5, &enc(&Value::Array(vec![Value::Uint(1)]))).unwrap();
    encode::write_ext(&mut input, 6, &[0xbb]).unwrap();
    encode::write_ext(&mut input, 5, &[0xc1, 0xc1, 0xc1]).unwrap();
    input.push(0x09);
    let (v, d) = deferred_flow(&mut rec, &input);
    assert_eq!(
        v,
        Value::Array(vec![
            custom(Value::Array(vec![Value::Uint(1)])),
            Value::Ext(6, vec![0xbb]),
            Value::Str(b"opaque".to_vec()),
            Value::Uint(9),
        ])
    );
    assert_eq!(d.len(), 2);

    // In key position the injected value becomes the key.
    let (v, _) = deferred_flow(&mut rec, &[0x81, 0xd4, 0x05, 0x02, 0xc3]);
    assert_eq!(
        v,
        Value::Map(vec![(custom(Value::Uint(2)), Value::Bool(true))])
    );

    // The position stops right after the header.
    let mut dec = StreamDecoder::<Recorder>::default();
    let mut pos = 0;
    let input = [0x92, 0xc7, 0x02, 0x05, 0x01, 0x02, 0xc0];
    assert_eq!(
        dec.decode(&mut rec, &input, &mut pos),
        Ok(Step::Deferred { ty: 5, len: 2 })
    );
    assert_eq!(pos, 4);
    assert_eq!(dec.depth(), 1);

    // Not deferred before the whole payload is buffered.
    let mut dec = StreamDecoder::<Recorder>::default();
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut rec, &input[..5], &mut pos),
        Ok(Step::NeedMore)
    );
    assert_eq!(pos, 1);
}

#[test]
fn deferred_ext_counts_toward_depth() {
    let mut rec = Recorder {
        defer: Some(5),
        ..Recorder::default()
    };
    let limits = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    let (r, _, _) = decode_with(&mut rec, limits, &[0xd4, 0x05, 0x00]);
    assert_eq!(r, Ok(Step::Deferred { ty: 5, len: 1 }));
    let (r, pos, _) = decode_with(&mut rec, limits, &[0x91, 0xd4, 0x05, 0x00]);
    assert_eq!(r, Err(DecodeError::DepthExceeded { max: 1 }));
    assert_eq!(pos, 3);
}

// ---------------------------------------------------------------- skipper

#[test]
fn skipper_skips_one_object() {
    let a = Value::Map(vec![
        (
            Value::Str(b"k".to_vec()),
            Value::Array(vec![Value::F64(1.5); 20]),
        ),
        (Value::Bin(vec![1; 300]), Value::Ext(-1, vec![0; 12])),
    ]);
    let b = Value::Int(-1000);
    let bytes = enc_all(&[a.clone(), b.clone()]);
    let first = enc(&a).len();
    let mut skip = StreamDecoder::<Skipper>::default();
    let mut pos = 0;
    assert_eq!(
        skip.decode(&mut Skipper, &bytes, &mut pos),
        Ok(Step::Done(()))
    );
    assert_eq!(pos, first);
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    assert_eq!(
        dec.decode(&mut ValueBuilder, &bytes, &mut pos),
        Ok(Step::Done(b))
    );
    // Truncated and invalid input behave as with any builder.
    let mut pos = 0;
    assert_eq!(
        skip.decode(&mut Skipper, &bytes[..first - 1], &mut pos),
        Ok(Step::NeedMore)
    );
    let mut pos = 0;
    let mut skip = StreamDecoder::<Skipper>::default();
    assert_eq!(
        skip.decode(&mut Skipper, &[0x92, 0xc1], &mut pos),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(skip.depth(), 0);
    assert!(skip.is_discarding());
}

/// `StreamDecoder::skip`: one object, or the rest of the one in progress,
/// across chunk boundaries, with no limits and no building.
#[test]
fn skip_one_object_streaming() {
    let a = Value::Map(vec![
        (
            Value::Str(b"k".to_vec()),
            Value::Array(vec![Value::Str(vec![b'x'; 40]); 3]),
        ),
        (Value::Bin(vec![1; 300]), Value::Ext(-1, vec![0; 12])),
    ]);
    let bytes = enc_all(&[a.clone(), Value::Uint(9)]);
    let first = enc(&a).len();
    // Whole, and a byte at a time.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(dec.skip(&bytes, &mut pos), Ok(true));
    assert_eq!(pos, first);
    assert!(dec.is_idle());
    let mut buf = Vec::new();
    let mut pos = 0;
    let mut calls = 0;
    for &byte in &bytes[..first] {
        buf.push(byte);
        calls += 1;
        let done = dec.skip(&buf, &mut pos).unwrap();
        assert_eq!(done, buf.len() == first, "after {} bytes", buf.len());
        assert!(pos <= buf.len());
    }
    assert_eq!((calls, pos), (first, first));
    // Skipping in the middle of a partial object drops the rest of it.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    let part = &bytes[..first - 20];
    assert_eq!(
        dec.decode(&mut ValueBuilder, part, &mut pos),
        Ok(Step::NeedMore)
    );
    assert!(dec.depth() > 0);
    assert_eq!(dec.skip(&bytes, &mut pos), Ok(true));
    assert_eq!(pos, first);
    assert_eq!(
        dec.decode(&mut ValueBuilder, &bytes, &mut pos),
        Ok(Step::Done(Value::Uint(9)))
    );
    // A skip cut short is finished by the next decode before anything else.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(dec.skip(&bytes[..first / 2], &mut pos), Ok(false));
    assert!(dec.is_discarding());
    assert_eq!(
        dec.decode(&mut ValueBuilder, &bytes, &mut pos),
        Ok(Step::Done(Value::Uint(9)))
    );
    // 0xc1 is reported and counted as one item; as after any error the rest
    // of its object is dropped, and the next skip is the next object's.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    let input = [0x92, 0xc1, 0x01, 0x07];
    assert_eq!(
        dec.skip(&input, &mut pos),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(dec.skip(&input, &mut pos), Ok(true));
    assert_eq!(pos, 4);
    // A c1 that is the whole object: reported, and the next skip is the next
    // object's.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    let input = [0xc1, 0x2a, 0x92, 0x07, 0x08];
    assert_eq!(
        dec.skip(&input, &mut pos),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert!(dec.is_idle());
    assert_eq!(dec.skip(&input, &mut pos), Ok(true));
    assert_eq!(pos, 2);
    // A c1 inside an array: the rest of that array is dropped, then the next
    // skip skips the object after it.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    let input = [0x93, 0x01, 0xc1, 0x02, 0x2a, 0x92, 0x07, 0x08];
    assert_eq!(
        dec.skip(&input, &mut pos),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(pos, 3);
    assert!(!dec.is_idle());
    assert_eq!(dec.skip(&input, &mut pos), Ok(true));
    assert_eq!(pos, 5);
    // Too deep: StackError's error, then the rest of that object is gone.
    let mut dec = StreamDecoder::<ValueBuilder>::new(Limits {
        max_depth: 1,
        ..Limits::default()
    });
    let mut pos = 0;
    assert_eq!(
        dec.skip(&bytes, &mut pos),
        Err(DecodeError::DepthExceeded { max: 1 })
    );
    assert_eq!(
        dec.decode(&mut ValueBuilder, &bytes, &mut pos),
        Ok(Step::Done(Value::Uint(9)))
    );
    // Length limits apply as for a read; the rejected value's rest goes.
    let mut dec = StreamDecoder::<ValueBuilder>::new(Limits {
        max_bin_len: 299,
        ..Limits::default()
    });
    let mut pos = 0;
    assert!(matches!(
        dec.skip(&bytes, &mut pos),
        Err(DecodeError::LimitExceeded {
            kind: LimitKind::BinLen,
            len: 300,
            max: 299
        })
    ));
    assert_eq!(
        dec.decode(&mut ValueBuilder, &bytes, &mut pos),
        Ok(Step::Done(Value::Uint(9)))
    );
    // 128 levels skip fine by default, 129 do not.
    let deep = |n: usize| {
        let mut v = vec![0x91; n];
        v.push(0xc0);
        v
    };
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(dec.skip(&deep(128), &mut pos), Ok(true));
    let mut pos = 0;
    assert_eq!(
        dec.skip(&deep(129), &mut pos),
        Err(DecodeError::DepthExceeded { max: 128 })
    );
    // A skip that found nothing (not even a whole header) leaves nothing
    // pending: the object that arrives later is the next one.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(dec.skip(&[], &mut pos), Ok(false));
    assert_eq!(dec.skip(&[0xdc, 0x00], &mut pos), Ok(false));
    assert_eq!(pos, 0);
    assert!(dec.is_idle());
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0x01, 0x02], &mut pos),
        Ok(Step::Done(Value::Uint(1)))
    );
    // Reset forgets a pending skip.
    let mut dec = StreamDecoder::<ValueBuilder>::default();
    let mut pos = 0;
    assert_eq!(dec.skip(&[0x93], &mut pos), Ok(false));
    dec.reset();
    let mut pos = 0;
    assert_eq!(
        dec.decode(&mut ValueBuilder, &[0x04], &mut pos),
        Ok(Step::Done(Value::Uint(4)))
    );
}

/// After an error of any kind inside an object, decoding resumes at the
/// next top-level object, also when the rest arrives in pieces.
#[test]
fn errors_resume_at_the_next_top_level_object() {
    let marker = [0xa3, b'e', b'n', b'd'];
    // (object with a failure inside, limits)
    let cases: Vec<(Vec<u8>, Limits)> = vec![
        // c1 in a map value position
        (
            vec![0x82, 0xa1, b'a', 0xc1, 0xa1, b'b', 0x92, 0x01, 0x02],
            Limits::default(),
        ),
        // a nested array beyond the depth limit
        (
            vec![0x92, 0x92, 0x91, 0x91, 0x01, 0x02, 0x03],
            Limits {
                max_depth: 2,
                ..Limits::default()
            },
        ),
        // a str over its limit, inside a map key
        (
            vec![0x81, 0xd9, 0x05, b'h', b'e', b'l', b'l', b'o', 0x01],
            Limits {
                max_str_len: 4,
                ..Limits::default()
            },
        ),
        // an array over its limit (its elements still follow)
        (
            vec![0x91, 0x93, 0xa1, b'x', 0x91, 0x02, 0xc0],
            Limits {
                max_array_len: 2,
                ..Limits::default()
            },
        ),
        // a map over its limit
        (
            vec![0x92, 0x82, 0x01, 0x02, 0x03, 0x04, 0x05],
            Limits {
                max_map_len: 1,
                ..Limits::default()
            },
        ),
    ];
    for (object, limits) in cases {
        let mut input = object.clone();
        input.extend_from_slice(&marker);
        for step in [input.len(), 1, 2, 3] {
            let mut dec = StreamDecoder::<ValueBuilder>::new(limits);
            let mut buf = Vec::new();
            let mut events = Vec::new();
            let mut fed = 0;
            while fed < input.len() {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
                let mut pos = 0;
                loop {
                    match dec.decode(&mut ValueBuilder, &buf, &mut pos) {
                        Ok(Step::Done(v)) => events.push(Ok(v)),
                        Ok(Step::NeedMore) => break,
                        Ok(Step::Deferred { .. }) => unreachable!(),
                        Err(e) => events.push(Err(e)),
                    }
                }
                buf.drain(..pos);
            }
            assert_eq!(
                events.len(),
                2,
                "{object:02x?} in steps of {step}: {events:?}"
            );
            assert!(events[0].is_err());
            assert_eq!(events[1], Ok(Value::Str(b"end".to_vec())));
            assert!(dec.is_idle() && buf.is_empty());
        }
    }
}

// ---------------------------------------------------------------- encoder

fn hexs(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn shortest_integer_forms() {
    let uints: &[(u64, &str)] = &[
        (0, "00"),
        (127, "7f"),
        (128, "cc 80"),
        (255, "cc ff"),
        (256, "cd 01 00"),
        (65535, "cd ff ff"),
        (65536, "ce 00 01 00 00"),
        (u32::MAX as u64, "ce ff ff ff ff"),
        (1 << 32, "cf 00 00 00 01 00 00 00 00"),
        (u64::MAX, "cf ff ff ff ff ff ff ff ff"),
    ];
    for &(v, want) in uints {
        let mut out = Vec::new();
        encode::write_uint(&mut out, v);
        assert_eq!(hexs(&out), want, "uint {v}");
        assert_eq!(decode_value_exact(&out), Ok(Value::Uint(v)));
        if let Ok(i) = i64::try_from(v) {
            // Non-negative signed values use the unsigned forms too.
            let mut out = Vec::new();
            encode::write_int(&mut out, i);
            assert_eq!(hexs(&out), want, "int {i}");
        }
    }
    let ints: &[(i64, &str)] = &[
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0 df"),
        (-128, "d0 80"),
        (-129, "d1 ff 7f"),
        (-32768, "d1 80 00"),
        (-32769, "d2 ff ff 7f ff"),
        (i32::MIN as i64, "d2 80 00 00 00"),
        (i32::MIN as i64 - 1, "d3 ff ff ff ff 7f ff ff ff"),
        (i64::MIN, "d3 80 00 00 00 00 00 00 00"),
        (i64::MAX, "cf 7f ff ff ff ff ff ff ff"),
    ];
    for &(v, want) in ints {
        let mut out = Vec::new();
        encode::write_int(&mut out, v);
        assert_eq!(hexs(&out), want, "int {v}");
        assert_eq!(
            decode_value_exact(&out).map(Value::normalized),
            Ok(Value::Int(v).normalized())
        );
    }
}

#[test]
fn scalar_forms() {
    let mut out = Vec::new();
    encode::write_nil(&mut out);
    encode::write_bool(&mut out, false);
    encode::write_bool(&mut out, true);
    encode::write_f32(&mut out, 1.5);
    encode::write_f64(&mut out, -2.0);
    assert_eq!(
        hexs(&out),
        "c0 c2 c3 ca 3f c0 00 00 cb c0 00 00 00 00 00 00 00"
    );
}

fn str_header(len: u32, compat: bool) -> String {
    let mut out = Vec::new();
    encode::write_str_header(&mut out, len, compat);
    hexs(&out)
}

#[test]
fn str_bin_array_map_headers() {
    for (len, normal, compat) in [
        (0, "a0", "a0"),
        (31, "bf", "bf"),
        (32, "d9 20", "da 00 20"),
        (255, "d9 ff", "da 00 ff"),
        (256, "da 01 00", "da 01 00"),
        (65535, "da ff ff", "da ff ff"),
        (65536, "db 00 01 00 00", "db 00 01 00 00"),
    ] {
        assert_eq!(str_header(len, false), normal, "str {len}");
        assert_eq!(str_header(len, true), compat, "compat str {len}");
    }
    for (len, bin, array, map) in [
        (0u32, "c4 00", "90", "80"),
        (15, "c4 0f", "9f", "8f"),
        (16, "c4 10", "dc 00 10", "de 00 10"),
        (255, "c4 ff", "dc 00 ff", "de 00 ff"),
        (256, "c5 01 00", "dc 01 00", "de 01 00"),
        (65535, "c5 ff ff", "dc ff ff", "de ff ff"),
        (65536, "c6 00 01 00 00", "dd 00 01 00 00", "df 00 01 00 00"),
    ] {
        let mut out = Vec::new();
        encode::write_bin_header(&mut out, len);
        assert_eq!(hexs(&out), bin, "bin {len}");
        out.clear();
        encode::write_array_header(&mut out, len);
        assert_eq!(hexs(&out), array, "array {len}");
        out.clear();
        encode::write_map_header(&mut out, len);
        assert_eq!(hexs(&out), map, "map {len}");
    }
    // Whole str/bin, normal and compat (old peers have no bin: a raw).
    let mut out = Vec::new();
    encode::write_str(&mut out, &[b'x'; 32], true).unwrap();
    assert_eq!(&out[..3], &[0xda, 0x00, 0x20]);
    assert_eq!(out.len(), 35);
    out.clear();
    encode::write_str(&mut out, &[b'x'; 32], false).unwrap();
    assert_eq!(&out[..2], &[0xd9, 0x20]);
    out.clear();
    encode::write_bin(&mut out, b"abc", false).unwrap();
    assert_eq!(hexs(&out), "c4 03 61 62 63");
    out.clear();
    encode::write_bin(&mut out, b"abc", true).unwrap();
    assert_eq!(hexs(&out), "a3 61 62 63");
    assert_eq!(decode_value_exact(&out), Ok(Value::Str(b"abc".to_vec())));
    out.clear();
    encode::write_bin(&mut out, &[0; 40], true).unwrap();
    assert_eq!(&out[..3], &[0xda, 0x00, 0x28]);
}

#[test]
fn length_overflow_is_an_error() {
    assert_eq!(encode::len_u32(u32::MAX as usize), Ok(u32::MAX));
    if usize::BITS > 32 {
        let too = u32::MAX as usize + 1;
        assert_eq!(encode::len_u32(too), Err(encode::TooLong(too)));
        assert!(encode::TooLong(too).to_string().contains("too long"));
    }
}

#[test]
fn ext_header_choices() {
    for (len, want) in [
        (1u32, "d4 07"),
        (2, "d5 07"),
        (4, "d6 07"),
        (8, "d7 07"),
        (16, "d8 07"),
        (0, "c7 00 07"),
        (3, "c7 03 07"),
        (17, "c7 11 07"),
        (255, "c7 ff 07"),
        (256, "c8 01 00 07"),
        (65535, "c8 ff ff 07"),
        (65536, "c9 00 01 00 00 07"),
    ] {
        let payload = fill(len as usize, 3);
        let mut out = Vec::new();
        encode::write_ext(&mut out, 7, &payload).unwrap();
        let hlen = out.len() - payload.len();
        assert_eq!(hexs(&out[..hlen]), want, "ext {len}");
        assert_eq!(&out[hlen..], &payload[..]);
        assert_eq!(decode_value_exact(&out), Ok(Value::Ext(7, payload)));
    }
    // Negative types are written as their two's-complement byte.
    let mut out = Vec::new();
    encode::write_ext_header(&mut out, -128, 1);
    assert_eq!(hexs(&out), "d4 80");
}

// ---------------------------------------------------------------- timestamp

#[test]
fn timestamp_forms() {
    for (sec, nsec, size) in [
        (0i64, 0u32, 4usize),
        (1, 0, 4),
        (Timestamp::TIMESTAMP32_MAX_SEC, 0, 4),
        (Timestamp::TIMESTAMP32_MAX_SEC + 1, 0, 8),
        (0, 1, 8),
        (1_514_862_245, 678_901_234, 8),
        (Timestamp::TIMESTAMP64_MAX_SEC, 999_999_999, 8),
        (Timestamp::TIMESTAMP64_MAX_SEC + 1, 0, 12),
        (-1, 0, 12),
        (-1, 999_999_999, 12),
        (i64::MIN, 0, 12),
        (i64::MAX, 999_999_999, 12),
    ] {
        let ts = Timestamp::new(sec, nsec);
        let payload = ts.to_payload();
        assert_eq!(payload.len(), size, "{ts:?}");
        assert_eq!(Timestamp::from_payload(&payload), Ok(ts));
        let mut again = vec![0xaa];
        ts.write_payload(&mut again);
        assert_eq!(&again[1..], &payload[..]);
        // Through the ext: fixext 4 / fixext 8 / ext8 with 12 bytes.
        let mut out = Vec::new();
        encode::write_ext(&mut out, Timestamp::EXT_TYPE, &payload).unwrap();
        let lead = match size {
            4 => vec![0xd6, 0xff],
            8 => vec![0xd7, 0xff],
            _ => vec![0xc7, 0x0c, 0xff],
        };
        assert_eq!(&out[..lead.len()], &lead[..]);
        match decode_value_exact(&out).unwrap() {
            Value::Ext(-1, data) => assert_eq!(Timestamp::from_payload(&data), Ok(ts)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        Timestamp::new(1, 0).to_payload(),
        [0, 0, 0, 1],
        "32-bit form is the big-endian seconds"
    );
    assert_eq!(
        Timestamp::new(1, 1).to_payload(),
        [0, 0, 0, 0b100, 0, 0, 0, 1],
        "64-bit form is nsec << 34 | sec"
    );
    assert_eq!(
        Timestamp::new(-1, 1).to_payload(),
        [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
}

#[test]
fn timestamp_errors() {
    for n in [0usize, 1, 3, 5, 7, 9, 11, 13, 16] {
        assert_eq!(
            Timestamp::from_payload(&vec![0; n]),
            Err(TimestampError::InvalidSize(n))
        );
        assert_eq!(
            Timestamp::from_payload_unchecked(&vec![0; n]),
            Err(TimestampError::InvalidSize(n))
        );
    }
    // 64-bit form with nsec = 10^9.
    let v: u64 = (1_000_000_000u64 << 34) | 5;
    let p64 = v.to_be_bytes();
    assert_eq!(
        Timestamp::from_payload(&p64),
        Err(TimestampError::NsecOutOfRange(1_000_000_000))
    );
    assert_eq!(
        Timestamp::from_payload_unchecked(&p64),
        Ok(Timestamp::new(5, 1_000_000_000))
    );
    // 96-bit form with nsec = u32::MAX.
    let mut p96 = u32::MAX.to_be_bytes().to_vec();
    p96.extend_from_slice(&(-7i64).to_be_bytes());
    assert_eq!(
        Timestamp::from_payload(&p96),
        Err(TimestampError::NsecOutOfRange(u32::MAX))
    );
    assert_eq!(
        Timestamp::from_payload_unchecked(&p96),
        Ok(Timestamp::new(-7, u32::MAX))
    );
    // The largest valid nsec passes.
    let ok = ((999_999_999u64) << 34).to_be_bytes();
    assert_eq!(
        Timestamp::from_payload(&ok),
        Ok(Timestamp::new(0, 999_999_999))
    );
    assert_eq!(
        TimestampError::InvalidSize(3).to_string(),
        "Invalid timestamp data size: 3"
    );
}
