//! Decodes arbitrary bytes whole and split in two chunks (the split point
//! taken from the first byte), with default and with tight limits, and checks
//! that the decoder never panics, always makes progress, and reports the same
//! objects and errors however the input is split.
//!
//! The arena decoder is held to the same answers: `ArenaStream`, fed the same
//! chunks, gives the same objects and errors as `StreamDecoder`, and the
//! one-shot `decode_prefix_in` agrees on the first object; every arena value
//! re-encodes to the bytes `encode_value` gives for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msgpack_rs_core::arena::{decode_prefix_in, ArenaStream};
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::{
    encode_value, DecodeError, Limits, ReadError, Step, StreamDecoder, ValueBuilder,
};
use std::io::Read;

/// An object (re-encoded, so floats compare bit-exact) or an error.
type Event = Result<Vec<u8>, DecodeError>;

/// Feeds `data` in chunks ending at `ends` (then at the end), keeping the
/// unread tail, and reads on after errors. Returns the events, the unread
/// byte count and the depth of an unfinished object.
fn run(data: &[u8], ends: &[usize], limits: Limits) -> (Vec<Event>, usize, usize) {
    let mut dec = StreamDecoder::<ValueBuilder>::new(limits);
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let mut fed = 0;
    for end in ends.iter().copied().chain([data.len()]) {
        let end = end.clamp(fed, data.len());
        buf.extend_from_slice(&data[fed..end]);
        fed = end;
        let mut pos = 0;
        loop {
            let before = pos;
            match dec.decode(&mut ValueBuilder, &buf, &mut pos) {
                Ok(Step::Done(v)) => {
                    assert!(pos > before && pos <= buf.len());
                    let mut out = Vec::new();
                    encode_value(&v, &mut out).expect("decoded lengths fit");
                    events.push(Ok(out));
                }
                Ok(Step::NeedMore) => {
                    assert!(pos >= before && pos <= buf.len());
                    break;
                }
                Ok(Step::Deferred { .. }) => unreachable!("ValueBuilder defers nothing"),
                Err(e) => {
                    assert!(pos > before && pos <= buf.len(), "error without progress");
                    // No partial containers are kept (the rest of the
                    // failed object may still be discarded by the next call).
                    assert_eq!(dec.depth(), 0, "error leaves partial containers");
                    assert!(!matches!(
                        e,
                        DecodeError::UnexpectedEof | DecodeError::ExtraBytes(_)
                    ));
                    events.push(Err(e));
                }
            }
        }
        buf.drain(..pos);
    }
    (events, buf.len(), dec.depth())
}

/// [`run`] for `ArenaStream`: the events, and whether the input ended inside
/// a message (or inside the rest of a failed one).
fn run_arena(data: &[u8], ends: &[usize], limits: Limits) -> (Vec<Event>, bool) {
    let mut stream = ArenaStream::with_limits(limits);
    let mut events = Vec::new();
    let mut fed = 0;
    for end in ends.iter().copied().chain([data.len()]) {
        let end = end.clamp(fed, data.len());
        stream.feed(&data[fed..end]);
        fed = end;
        loop {
            let before = stream.offset();
            match stream.next_message() {
                Ok(Some(msg)) => {
                    assert!(msg.offset >= before);
                    let at = msg.offset as usize;
                    assert_eq!(&data[at..at + msg.bytes.len()], msg.bytes);
                    let mut out = Vec::new();
                    encode_value(&msg.value.to_value(), &mut out).expect("decoded lengths fit");
                    assert_eq!(msg.value.to_vec().expect("decoded lengths fit"), out);
                    events.push(Ok(out));
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(stream.offset() > before, "error without progress");
                    events.push(Err(e));
                }
            }
        }
    }
    (events, !stream.is_at_boundary())
}

/// Returns `data` in two pieces (split at `split`), `max` bytes per read.
struct Pieces<'a> {
    data: &'a [u8],
    split: usize,
    at: usize,
    max: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = if self.at < self.split {
            self.split
        } else {
            self.data.len()
        };
        let n = (end - self.at).min(buf.len()).min(self.max);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// `ArenaStream::read_message` over [`Pieces`]: the events, and whether the
/// reader ended inside a message.
fn run_reader(data: &[u8], split: usize, limits: Limits) -> (Vec<Event>, bool) {
    let max = 1 + split % 37;
    let mut reader = Pieces {
        data,
        split,
        at: 0,
        max,
    };
    let mut stream = ArenaStream::with_limits(limits);
    stream.set_read_size(max);
    let mut events = Vec::new();
    let mut eof = false;
    for _ in 0..2 * data.len() + 4 {
        match stream.read_message(&mut reader) {
            Ok(Some(msg)) => events.push(Ok(msg.value.to_vec().expect("decoded lengths fit"))),
            Ok(None) => return (events, eof),
            Err(ReadError::Decode(DecodeError::UnexpectedEof)) => {
                assert!(!eof, "UnexpectedEof twice");
                eof = true;
            }
            Err(ReadError::Decode(e)) => events.push(Err(e)),
            Err(ReadError::Io(e)) => panic!("{e}"),
        }
    }
    panic!("read_message does not terminate");
}

fuzz_target!(|data: &[u8]| {
    let split = match data.first() {
        Some(&b) => b as usize % (data.len() + 1),
        None => 0,
    };
    let tight = Limits {
        max_depth: 8,
        max_array_len: 64,
        max_map_len: 64,
        max_str_len: 64,
        max_bin_len: 64,
        max_ext_len: 64,
    };
    for limits in [Limits::default(), tight] {
        let whole = run(data, &[], limits);
        let chunked = run(data, &[split], limits);
        assert_eq!(whole, chunked, "split at {split}");
        // The arena decoder gives the same answers.
        let (arena, arena_mid) = run_arena(data, &[split], limits);
        assert_eq!(arena, whole.0, "arena stream, split at {split}");
        if !arena_mid {
            assert_eq!((whole.1, whole.2), (0, 0), "arena stream ended early");
        }
        let (read, eof) = run_reader(data, split, limits);
        assert_eq!(read, whole.0, "read_message, split at {split}");
        assert!(
            eof == ((whole.1, whole.2) != (0, 0))
                || (!eof && matches!(whole.0.last(), Some(Err(_)))),
            "read_message ended at the wrong place"
        );
        let bump = Bump::new();
        match (decode_prefix_in(&bump, data, limits), whole.0.first()) {
            (Ok((v, used)), Some(Ok(bytes))) => {
                assert_eq!(&v.to_vec().expect("decoded lengths fit"), bytes);
                assert!(used > 0 && used <= data.len());
            }
            (Err(e), Some(Err(w))) => assert_eq!(&e, w),
            (Err(DecodeError::UnexpectedEof), None) => {}
            (r, w) => panic!("arena one-shot {r:?}, stream {w:?}"),
        }
        // Every object re-decodes to itself.
        for bytes in whole.0.iter().flatten() {
            let again = run(bytes, &[], Limits::default());
            assert_eq!(again, (vec![Ok(bytes.clone())], 0, 0));
        }
    }
});
