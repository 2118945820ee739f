//! The README's examples, compiled and run. `readme_blocks_are_tested`
//! checks that every ```rust block of README.md appears in this file, so the
//! two can't drift apart.
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::value::decode_value_with;
use msgpack_rs_core::{
    decode_in, decode_value_exact, encode, encode_value, ArenaStream, Builder, DecodeError,
    LimitKind, Limits, Step, StreamDecoder, Timestamp, Value, ValueRef,
};

#[test]
fn encode_and_decode_a_value() {
    // README: values
    let v = Value::Map(vec![(Value::Str(b"id".to_vec()), Value::Uint(7))]);
    let mut out = Vec::new();
    encode_value(&v, &mut out).unwrap();
    assert_eq!(out, [0x81, 0xa2, b'i', b'd', 0x07]);
    assert_eq!(decode_value_exact(&out).unwrap(), v);
    // README: end
}

#[test]
fn writers() {
    // README: writers
    let mut out = Vec::new();
    encode::write_array_header(&mut out, 3);
    encode::write_int(&mut out, -200); // d1 ff 38: the shortest form
    encode::write_str(&mut out, "héllo".as_bytes(), false).unwrap();
    encode::write_bin(&mut out, &[1, 2, 3], false).unwrap();
    assert_eq!(out[..4], [0x93, 0xd1, 0xff, 0x38]);
    // README: end
}

#[test]
fn arena_decoding() {
    // README: arena
    let mut bump = Bump::new();
    // {"id": 7, "tags": ["a", "b"], "blob": bin [1, 2]}
    let input = b"\x83\xa2id\x07\xa4tags\x92\xa1a\xa1b\xa4blob\xc4\x02\x01\x02";
    let v = decode_in(&bump, input).unwrap();
    assert_eq!(v["id"].as_u64(), Some(7));
    assert_eq!(v["tags"][1].as_str(), Some("b")); // borrowed from `input`
    assert_eq!(v["blob"], ValueRef::Bin(&[1, 2]));
    let mut out = Vec::new();
    v.encode(&mut out).unwrap(); // the encoder's shortest forms: canonical input comes back as is
    assert_eq!(out, input);
    // Frees every array and map of the message at once (`v` is gone).
    bump.reset();
    // README: end
}

#[test]
fn arena_stream() -> Result<(), DecodeError> {
    // README: arena stream
    let mut stream = ArenaStream::new();
    let mut seen = Vec::new();
    // [1, "ab"] then {"k": nil}, arriving in pieces that split both.
    for chunk in [
        &[0x92, 0x01, 0xa2, b'a'][..],
        &[b'b', 0x81, 0xa1],
        &[b'k', 0xc0],
    ] {
        stream.feed(chunk);
        while let Some(msg) = stream.next_message()? {
            // `msg` borrows `stream` until the next call: copy out what you keep.
            seen.push((msg.offset, msg.bytes.len(), msg.value.to_value()));
        }
    }
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[1].0, seen[1].1), (5, 4));
    assert!(stream.is_at_boundary());
    // README: end
    Ok(())
}

// README: builder
/// Counts the scalars in each object, without building anything.
struct Leaves;

impl Builder for Leaves {
    type Value = u64;
    type Array = u64;
    type Map = u64;
    type Error = DecodeError;

    fn nil(&mut self) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn boolean(&mut self, _: bool) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn uint(&mut self, _: u64) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn int(&mut self, _: i64) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn float32(&mut self, _: f32) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn float64(&mut self, _: f64) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn str(&mut self, _: &[u8]) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn bin(&mut self, _: &[u8]) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn ext(&mut self, _: i8, _: &[u8]) -> Result<u64, DecodeError> {
        Ok(1)
    }
    fn array_begin(&mut self, _len: u32, _capacity: usize) -> Result<u64, DecodeError> {
        Ok(0)
    }
    fn array_push(&mut self, n: &mut u64, v: u64) -> Result<(), DecodeError> {
        *n += v;
        Ok(())
    }
    fn array_end(&mut self, n: u64) -> Result<u64, DecodeError> {
        Ok(n)
    }
    fn map_begin(&mut self, _len: u32, _capacity: usize) -> Result<u64, DecodeError> {
        Ok(0)
    }
    fn map_key(&mut self, n: &mut u64, k: u64) -> Result<(), DecodeError> {
        *n += k;
        Ok(())
    }
    fn map_value(&mut self, n: &mut u64, v: u64) -> Result<(), DecodeError> {
        *n += v;
        Ok(())
    }
    fn map_end(&mut self, n: u64) -> Result<u64, DecodeError> {
        Ok(n)
    }
}

/// Decodes a stream that arrives in chunks, one object after another.
fn count_leaves(chunks: &[&[u8]]) -> Result<Vec<u64>, DecodeError> {
    let mut decoder = StreamDecoder::<Leaves>::new(Limits::default());
    let mut buf = Vec::new();
    let mut counts = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk); // the unread tail, then the new bytes
        let mut pos = 0;
        loop {
            match decoder.decode(&mut Leaves, &buf, &mut pos)? {
                Step::Done(n) => counts.push(n),
                Step::NeedMore => break,
                Step::Deferred { .. } => unreachable!("Leaves defers no ext"),
            }
        }
        buf.drain(..pos); // everything before `pos` has been applied
    }
    Ok(counts)
}
// README: end

#[test]
fn streaming_with_a_custom_builder() {
    // README: stream
    // [1, {"a": nil}] then "xyz", split mid-container and mid-string.
    let chunks: [&[u8]; 3] = [&[0x92, 0x01, 0x81], &[0xa1, b'a', 0xc0, 0xa3, b'x'], b"yz"];
    assert_eq!(count_leaves(&chunks), Ok(vec![3, 1]));
    // README: end
}

#[test]
fn timestamps() {
    // README: timestamp
    let ts = Timestamp::new(1_514_862_245, 678_901_234);
    let mut out = Vec::new();
    encode::write_ext(&mut out, Timestamp::EXT_TYPE, &ts.to_payload()).unwrap();
    assert_eq!(out[0], 0xd7); // fixext 8: the 64-bit form
    let Value::Ext(Timestamp::EXT_TYPE, payload) = decode_value_exact(&out).unwrap() else {
        panic!("not a timestamp");
    };
    assert_eq!(Timestamp::from_payload(&payload), Ok(ts));
    // README: end
}

#[test]
fn limits() {
    // README: limits
    let limits = Limits {
        max_depth: 32,
        max_str_len: 1 << 20,
        ..Limits::default()
    };
    // A str header claiming 4 GiB fails at once, before any payload arrives.
    let err = decode_value_with(&[0xdb, 0xff, 0xff, 0xff, 0xff], limits).unwrap_err();
    assert_eq!(
        err,
        DecodeError::LimitExceeded {
            kind: LimitKind::StrLen,
            len: u32::MAX,
            max: 1 << 20
        }
    );
    // README: end
}

/// The ```rust blocks of README.md, with their indentation removed.
fn readme_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        let t = line.trim();
        match &mut current {
            None if t == "```rust" => current = Some(Vec::new()),
            Some(lines) if t == "```" => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(t),
            None => {}
        }
    }
    blocks
}

#[test]
fn readme_blocks_are_tested() {
    let readme = include_str!("../README.md");
    let here: Vec<&str> = include_str!("readme.rs").lines().map(str::trim).collect();
    let here = here.join("\n");
    let blocks = readme_blocks(readme);
    assert!(blocks.len() >= 5, "found {} rust blocks", blocks.len());
    for block in blocks {
        assert!(
            here.contains(&block),
            "README block not in tests/readme.rs:\n{block}"
        );
    }
}
