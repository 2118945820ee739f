//! A bounded, reproducible fuzz pass for stable `cargo test`: 100,000 random
//! byte strings and mutated valid encodings (bit flips, truncation, inserted
//! bytes, length-header bumps, ...), each decoded whole and in random chunks.
//!
//! Checked for every case: no panic; every call makes progress or stops with
//! `NeedMore` at an unfinished token (so decoding terminates); streaming errors
//! are only the streaming variants; and the sequence of objects and errors is
//! the same however the input is chunked, and the same for the skipper and
//! for the arena decoder (one-shot on the first object, and `ArenaStream` on
//! the whole stream, chunked the same way).
//!
//! Seeds are fixed; set `MSGPACK_RANDOM_SEED` to explore others.
mod common;

use common::{assert_unfinished_token, same, Rng};
use msgpack_rs_core::arena::{decode_prefix_in, ArenaStream};
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::{
    encode, encode_value, parse_header, Builder, DecodeError, Header, Limits, ReadError, Skipper,
    Step, StreamDecoder, Value, ValueBuilder,
};
use std::io::Read;

const CASES: usize = 100_000;

/// Bytes worth over-representing: every header with a length field, the
/// reserved marker, and extremes.
const MARKERS: &[u8] = &[
    0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3,
    0xd4, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
    0xbf, 0xff,
];

fn interesting_byte(rng: &mut Rng) -> u8 {
    if rng.chance(50) {
        MARKERS[rng.below(MARKERS.len())]
    } else {
        rng.byte()
    }
}

fn gen_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = match rng.below(10) {
        0 => 250 + rng.below(12),
        _ => rng.below(24),
    };
    (0..n).map(|_| rng.byte()).collect()
}

fn gen_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth == 0 { 10 } else { 13 };
    match rng.below(kinds) {
        0 => Value::Nil,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::Uint(rng.next_u64() >> (rng.below(64) as u32)),
        3 => Value::Int(-((rng.next_u64() >> (rng.below(63) as u32 + 1)) as i64) - 1),
        4 => Value::F32(f32::from_bits(rng.next_u64() as u32)),
        5 => Value::F64(f64::from_bits(rng.next_u64())),
        6 => Value::Str(gen_bytes(rng)),
        7 => Value::Bin(gen_bytes(rng)),
        8 => Value::Ext(rng.byte() as i8, gen_bytes(rng)),
        9 => Value::Uint(rng.below(130) as u64),
        10 | 11 => {
            let n = if rng.chance(10) { 16 } else { rng.below(5) };
            Value::Array((0..n).map(|_| gen_value(rng, depth - 1)).collect())
        }
        _ => {
            let n = if rng.chance(10) { 16 } else { rng.below(4) };
            Value::Map(
                (0..n)
                    .map(|_| (gen_value(rng, depth - 1), gen_value(rng, depth - 1)))
                    .collect(),
            )
        }
    }
}

/// Offsets of headers that carry a length (fixstr/fixarray/fixmap included).
fn length_headers(enc: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(Some((h, hlen))) = parse_header(&enc[at..]) {
        let payload = match h {
            Header::Str(n) | Header::Bin(n) | Header::Ext { len: n, .. } => n as usize,
            _ => 0,
        };
        if matches!(
            h,
            Header::Str(_)
                | Header::Bin(_)
                | Header::Ext { .. }
                | Header::Array(_)
                | Header::Map(_)
        ) {
            out.push(at);
        }
        at += hlen + payload;
        if at >= enc.len() {
            break;
        }
    }
    out
}

/// Changes the length in the header at `at`: +1, -1, all ones, or random.
fn bump_length(rng: &mut Rng, data: &mut [u8], at: usize) {
    let lead = data[at];
    let (off, width) = match lead {
        0x80..=0xbf => {
            // Fix types: the length lives in the low bits.
            let mask = if lead >= 0xa0 { 0x1f } else { 0x0f };
            let len = lead & mask;
            let new = match rng.below(3) {
                0 => len.wrapping_add(1),
                1 => len.wrapping_sub(1),
                _ => rng.byte(),
            } & mask;
            data[at] = (lead & !mask) | new;
            return;
        }
        0xc4 | 0xc7 | 0xd9 => (1, 1),
        0xc5 | 0xc8 | 0xda | 0xdc | 0xde => (1, 2),
        0xc6 | 0xc9 | 0xdb | 0xdd | 0xdf => (1, 4),
        _ => return,
    };
    let n = data.len();
    let field = &mut data[(at + off).min(n)..(at + off + width).min(n)];
    if field.is_empty() {
        return;
    }
    match rng.below(4) {
        0 => {
            // +1, big-endian with carry.
            for b in field.iter_mut().rev() {
                *b = b.wrapping_add(1);
                if *b != 0 {
                    break;
                }
            }
        }
        1 => {
            for b in field.iter_mut().rev() {
                *b = b.wrapping_sub(1);
                if *b != 0xff {
                    break;
                }
            }
        }
        2 => field.fill(0xff),
        _ => field.iter_mut().for_each(|b| *b = rng.byte()),
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let headers = length_headers(data);
    for _ in 0..1 + rng.below(3) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => data.truncate(rng.below(len)),
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(4);
                let ins: Vec<u8> = (0..n).map(|_| interesting_byte(rng)).collect();
                data.splice(at..at, ins);
            }
            3 | 4 if !headers.is_empty() => {
                let at = headers[rng.below(headers.len())];
                if at < data.len() {
                    bump_length(rng, data, at);
                }
            }
            5 if len > 0 => {
                let i = rng.below(len);
                data[i] = interesting_byte(rng);
            }
            6 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(8)).min(len);
                data.drain(a..b);
            }
            7 if len > 0 => {
                // Duplicate a slice in place (repeated headers, nesting).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let dup = data[a..b].to_vec();
                data.splice(a..a, dup);
            }
            _ => data.push(interesting_byte(rng)),
        }
    }
}

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(48);
    (0..n).map(|_| interesting_byte(rng)).collect()
}

fn random_limits(rng: &mut Rng) -> Limits {
    if rng.chance(80) {
        return Limits::default();
    }
    Limits {
        max_depth: rng.below(6),
        max_array_len: rng.below(40) as u32,
        max_map_len: rng.below(40) as u32,
        max_str_len: rng.below(40) as u32,
        max_bin_len: rng.below(40) as u32,
        max_ext_len: rng.below(40) as u32,
    }
}

/// One thing that happened while reading a stream.
#[derive(Debug)]
enum Event<V> {
    Object(V),
    Error(DecodeError),
}

/// Feeds `data` in the chunks ending at `ends` (then to the end), going on
/// after errors from where the decoder left the position, as a tolerant
/// reader would. Returns the events and where the input ended: the bytes left
/// unread plus the depth of the unfinished object.
fn run<B: Builder<Error = DecodeError> + Default>(
    data: &[u8],
    ends: &[usize],
    limits: Limits,
) -> (Vec<Event<B::Value>>, (usize, usize)) {
    let mut b = B::default();
    let mut dec = StreamDecoder::<B>::new(limits);
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut calls = 0usize;
    let budget = 2 * data.len() + ends.len() + 4;
    for end in ends.iter().copied().chain([data.len()]) {
        let end = end.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        let mut pos = 0;
        loop {
            calls += 1;
            assert!(calls <= budget, "decoding does not terminate");
            let before = pos;
            match dec.decode(&mut b, &buf, &mut pos) {
                Ok(Step::Done(v)) => {
                    assert!(pos > before && pos <= buf.len(), "Done without progress");
                    assert!(dec.is_idle());
                    events.push(Event::Object(v));
                }
                Ok(Step::NeedMore) => {
                    assert!(pos >= before && pos <= buf.len());
                    assert_unfinished_token(&buf[pos..]);
                    break;
                }
                Ok(Step::Deferred { .. }) => panic!("nothing is deferred"),
                Err(e) => {
                    assert!(pos > before && pos <= buf.len(), "error without progress");
                    assert_eq!(dec.depth(), 0, "error leaves partial containers");
                    assert!(
                        matches!(
                            e,
                            DecodeError::InvalidMarker(0xc1)
                                | DecodeError::DepthExceeded { .. }
                                | DecodeError::LimitExceeded { .. }
                        ),
                        "unexpected streaming error {e:?}"
                    );
                    events.push(Event::Error(e));
                }
            }
        }
        buf.drain(..pos);
    }
    (events, (buf.len(), dec.depth()))
}

/// [`run`] for `ArenaStream`: the same chunks, and reading on after errors.
/// Also returns whether the input ended inside a message.
fn run_arena(data: &[u8], ends: &[usize], limits: Limits) -> (Vec<Event<Value>>, bool) {
    let mut stream = ArenaStream::with_limits(limits);
    let mut events = Vec::new();
    let mut fed = 0;
    let mut calls = 0usize;
    let budget = 2 * data.len() + ends.len() + 4;
    for end in ends.iter().copied().chain([data.len()]) {
        let end = end.clamp(fed, data.len());
        stream.feed(&data[fed..end]);
        fed = end;
        loop {
            calls += 1;
            assert!(calls <= budget, "arena stream does not terminate");
            let before = stream.offset();
            match stream.next_message() {
                Ok(Some(msg)) => {
                    // Past `before` only by the rest of a failed message.
                    assert!(msg.offset >= before);
                    let at = msg.offset as usize;
                    assert_eq!(&data[at..at + msg.bytes.len()], msg.bytes);
                    events.push(Event::Object(msg.value.to_value()));
                    let end = msg.offset + msg.bytes.len() as u64;
                    assert_eq!(end, stream.offset());
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(stream.offset() > before, "error without progress");
                    events.push(Event::Error(e));
                }
            }
        }
    }
    let mid_message = !stream.is_at_boundary();
    (events, mid_message)
}

/// A reader that returns `data` in the pieces ending at `ends`.
struct Pieces<'a> {
    data: &'a [u8],
    ends: &'a [usize],
    at: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let next = self
            .ends
            .iter()
            .copied()
            .find(|&e| e > self.at)
            .unwrap_or(self.data.len())
            .min(self.data.len());
        let n = (next - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// `ArenaStream::read_message` over a reader that returns the same pieces
/// (and `read_size` bytes at most per read). Returns the events, and whether
/// the reader ended inside a message (`UnexpectedEof`, reported once).
fn run_arena_reader(
    data: &[u8],
    ends: &[usize],
    limits: Limits,
    read_size: usize,
) -> (Vec<Event<Value>>, bool) {
    let mut reader = Pieces { data, ends, at: 0 };
    let mut stream = ArenaStream::with_limits(limits);
    stream.set_read_size(read_size);
    let mut events = Vec::new();
    let mut eof = false;
    for _ in 0..2 * data.len() + 4 {
        match stream.read_message(&mut reader) {
            Ok(Some(msg)) => events.push(Event::Object(msg.value.to_value())),
            Ok(None) => {
                assert!(stream.is_at_boundary());
                return (events, eof);
            }
            Err(ReadError::Decode(DecodeError::UnexpectedEof)) => {
                assert!(!eof, "UnexpectedEof twice");
                eof = true;
            }
            Err(ReadError::Decode(e)) => events.push(Event::Error(e)),
            Err(ReadError::Io(e)) => panic!("{e}"),
        }
    }
    panic!("read_message does not terminate");
}

fn same_events(a: &[Event<Value>], b: &[Event<Value>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Event::Object(p), Event::Object(q)) => same(p, q),
            (Event::Error(p), Event::Error(q)) => p == q,
            _ => false,
        })
}

fn random_ends(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len > 1 && rng.chance(10) {
        return (1..len).collect(); // a byte at a time
    }
    let mut ends: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(len + 1)).collect();
    ends.sort_unstable();
    ends
}

#[test]
fn random_and_mutated_input() {
    let seed = std::env::var("MSGPACK_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024_u64);
    let mut rng = Rng::new(seed);
    let mut stats = [0usize; 4]; // objects, errors, cases ending mid-object, mutated
    let start = std::time::Instant::now();
    for case in 0..CASES {
        let mut data;
        if rng.chance(30) {
            data = random_input(&mut rng);
        } else {
            data = Vec::new();
            for _ in 0..1 + rng.below(2) {
                let v = gen_value(&mut rng, 3);
                encode_value(&v, &mut data).unwrap();
            }
            if rng.chance(5) {
                // Deep nesting around a valid object.
                let mut wrapped = Vec::new();
                for _ in 0..rng.below(200) {
                    encode::write_array_header(&mut wrapped, 1 + rng.below(3) as u32);
                }
                wrapped.extend_from_slice(&data);
                data = wrapped;
            }
            mutate(&mut rng, &mut data);
            stats[3] += 1;
        }
        let limits = random_limits(&mut rng);
        let ends = random_ends(&mut rng, data.len());

        let (whole, left) = run::<ValueBuilder>(&data, &[], limits);
        let (chunked, left_chunked) = run::<ValueBuilder>(&data, &ends, limits);
        assert!(
            same_events(&whole, &chunked) && left == left_chunked,
            "case {case} (seed {seed:#x}): chunking changed the result for {data:02x?} \
             split at {ends:?}:\n whole {whole:?}\n chunked {chunked:?}"
        );
        if case % 4 == 0 {
            let (skipped, left_skipped) = run::<Skipper>(&data, &ends, limits);
            assert_eq!(left_skipped, left, "case {case}: skipper stopped elsewhere");
            assert_eq!(skipped.len(), whole.len(), "case {case}");
            for (s, w) in skipped.iter().zip(&whole) {
                match (s, w) {
                    (Event::Object(()), Event::Object(_)) => {}
                    (Event::Error(p), Event::Error(q)) => assert_eq!(p, q, "case {case}"),
                    _ => panic!("case {case}: skipper disagrees: {s:?} vs {w:?}"),
                }
            }
        }
        // The arena decoder agrees: the stream on everything, chunked the
        // same way, and the one-shot decoder on the first object.
        let (arena, arena_mid) = run_arena(&data, &ends, limits);
        assert!(
            same_events(&arena, &whole),
            "case {case} (seed {seed:#x}): arena stream disagrees for {data:02x?} \
             split at {ends:?}:\n arena {arena:?}\n stream {whole:?}"
        );
        // It ends inside a message exactly when the stream decoder does (or
        // while it still discards the rest of a failed one, which `left`
        // does not show).
        assert!(
            arena_mid == (left != (0, 0))
                || (arena_mid && matches!(whole.last(), Some(Event::Error(_)))),
            "case {case}: arena mid-message {arena_mid}, stream left {left:?} for {data:02x?}"
        );
        let read_size = 1 + rng.below(64);
        let (read, eof) = run_arena_reader(&data, &ends, limits, read_size);
        assert!(
            same_events(&read, &whole)
                && (eof == (left != (0, 0))
                    // The cut-off rest of a failed message is just the end.
                    || (!eof && matches!(whole.last(), Some(Event::Error(_))))),
            "case {case} (seed {seed:#x}): read_message disagrees for {data:02x?} split at \
             {ends:?}, reads of {read_size}:\n read {read:?} (eof {eof})\n stream {whole:?} \
             (left {left:?})"
        );
        let bump = Bump::new();
        match (decode_prefix_in(&bump, &data, limits), whole.first()) {
            (Ok((v, _)), Some(Event::Object(w))) => {
                assert!(same(&v.to_value(), w), "case {case}: {v:?} vs {w:?}")
            }
            (Err(e), Some(Event::Error(w))) => assert_eq!(&e, w, "case {case}"),
            (Err(DecodeError::UnexpectedEof), None) => {}
            (r, w) => panic!("case {case}: arena one-shot {r:?}, stream {w:?} for {data:02x?}"),
        }
        // Whatever decoded re-encodes to something that decodes the same.
        for e in &whole {
            if let Event::Object(v) = e {
                let mut again = Vec::new();
                encode_value(v, &mut again).unwrap();
                let (back, rest) = run::<ValueBuilder>(&again, &[], Limits::default());
                assert_eq!(rest, (0, 0));
                assert!(
                    matches!(&back[..], [Event::Object(b)] if same(b, &v.clone().normalized()))
                );
            }
        }
        for e in &whole {
            match e {
                Event::Object(_) => stats[0] += 1,
                Event::Error(_) => stats[1] += 1,
            }
        }
        if left != (0, 0) {
            stats[2] += 1;
        }
    }
    println!(
        "{CASES} cases ({} mutated) in {:?}: {} objects, {} errors, {} ended mid-object",
        stats[3],
        start.elapsed(),
        stats[0],
        stats[1],
        stats[2]
    );
    // The generator reaches every outcome in bulk, or the pass proves little.
    assert!(stats[0] > CASES / 2, "{stats:?}");
    assert!(stats[1] > CASES / 10, "{stats:?}");
    assert!(stats[2] > CASES / 10, "{stats:?}");
}

/// The run helper notices a decoder that disagrees across chunkings.
#[test]
fn harness_detects_differences() {
    let a = [
        Event::Object(Value::Uint(1)),
        Event::Error(DecodeError::InvalidMarker(0xc1)),
    ];
    let b = [
        Event::Object(Value::Uint(1)),
        Event::Error(DecodeError::InvalidMarker(0xc1)),
    ];
    let c = [Event::Object(Value::Int(1))];
    assert!(same_events(&a, &b));
    assert!(!same_events(&a, &c));
    let input = [0x01, 0xc1, 0x92, 0x02, 0xa3, 0x61];
    let (events, left) = run::<ValueBuilder>(&input, &[1, 3], Limits::default());
    // Ends inside the array, with the str's two bytes unread.
    assert_eq!(left, (2, 1));
    assert!(same_events(
        &events,
        &[
            Event::Object(Value::Uint(1)),
            Event::Error(DecodeError::InvalidMarker(0xc1))
        ]
    ));
}
