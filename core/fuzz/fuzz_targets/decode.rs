//! Decodes arbitrary bytes whole and split in two chunks (the split point
//! taken from the first byte), with default and with tight limits, and checks
//! that the decoder never panics, always makes progress, and reports the same
//! objects and errors however the input is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msgpack_rs_core::{encode_value, DecodeError, Limits, Step, StreamDecoder, ValueBuilder};

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
                    assert!(dec.is_idle());
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
        // Every object re-decodes to itself.
        for bytes in whole.0.iter().flatten() {
            let again = run(bytes, &[], Limits::default());
            assert_eq!(again, (vec![Ok(bytes.clone())], 0, 0));
        }
    }
});
