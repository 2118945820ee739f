//! Heap allocations per message of the arena decoder, counted with a
//! counting global allocator: after warm-up (the arena and the buffers have
//! grown to the largest message), decoding allocates nothing, one-shot with
//! a reused `Bump` as well as through `ArenaStream` (fed chunks, or reading
//! from an `io::Read`). The binary holds a single test, so no other test's
//! allocations are counted.
use msgpack_rs_core::arena::{decode_in, ArenaStream};
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::{decode_value_exact, encode_value, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every operation to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's layout goes to the system allocator as is.
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above, i.e. from System.
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: as for `dealloc`; the new size comes from the caller.
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations (and reallocations) made by `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.load(Relaxed);
    let r = f();
    (r, ALLOCATIONS.load(Relaxed) - before)
}

fn s(text: &str) -> Value {
    Value::Str(text.as_bytes().to_vec())
}

/// Messages of several shapes and sizes: flat, nested, big, binary.
fn messages() -> Vec<Vec<u8>> {
    let record = |i: u64| {
        Value::Map(vec![
            (s("id"), Value::Uint(i)),
            (s("name"), s(&format!("item-{i}"))),
            (s("score"), Value::F64(i as f64 / 3.0)),
            (
                s("tags"),
                Value::Array(vec![s("a"), Value::Nil, Value::Bool(true)]),
            ),
            (
                s("child"),
                Value::Map(vec![(s("depth"), Value::Array(vec![Value::Array(vec![])]))]),
            ),
        ])
    };
    let values = [
        Value::Uint(1),
        record(1),
        Value::Array((0..500).map(record).collect()),
        Value::Array((0..10_000i64).map(|i| Value::Int(-i * 7919)).collect()),
        Value::Map(vec![(s("data"), Value::Bin(vec![7; 100_000]))]),
        Value::Array(vec![
            Value::Array(vec![
                Value::Array(vec![Value::Nil; 3]);
                40
            ]);
            40
        ]),
    ];
    values
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            encode_value(v, &mut out).unwrap();
            out
        })
        .collect()
}

#[test]
fn zero_allocations_per_message_after_warm_up() {
    let msgs = messages();
    let stream: Vec<u8> = msgs.concat();
    let rounds = 20;

    // One-shot, with a reused arena.
    let mut bump = Bump::new();
    for _ in 0..3 {
        for m in &msgs {
            bump.reset();
            decode_in(&bump, m).unwrap();
        }
    }
    let (_, n) = allocations(|| {
        for _ in 0..rounds {
            for m in &msgs {
                bump.reset();
                let v = decode_in(&bump, m).unwrap();
                assert!(v.len().is_some() || v.as_u64().is_some());
            }
        }
    });
    println!(
        "decode_in: {n} allocations for {} messages",
        rounds * msgs.len()
    );
    assert_eq!(n, 0, "decode_in allocated after warm-up");

    // ArenaStream, fed in 4 KiB chunks (most messages span several).
    let mut decoder = ArenaStream::new();
    let feed_all = |decoder: &mut ArenaStream| {
        let mut count = 0;
        for chunk in stream.chunks(4096) {
            decoder.feed(chunk);
            while let Some(msg) = decoder.next_message().unwrap() {
                assert!(!msg.bytes.is_empty());
                count += 1;
            }
        }
        assert_eq!(count, msgs.len());
    };
    for _ in 0..3 {
        feed_all(&mut decoder);
    }
    let (_, n) = allocations(|| {
        for _ in 0..rounds {
            feed_all(&mut decoder);
        }
    });
    println!("ArenaStream::feed/next_message: {n} allocations");
    assert_eq!(n, 0, "ArenaStream allocated after warm-up");

    // ArenaStream reading from an io::Read, in both styles.
    let mut decoder = ArenaStream::new();
    decoder.set_read_size(8192);
    let read_all = |decoder: &mut ArenaStream, fill: bool| {
        let mut reader = &stream[..];
        let mut count = 0;
        if fill {
            loop {
                if decoder.next_message().unwrap().is_some() {
                    count += 1;
                } else if decoder.fill_from(&mut reader).unwrap() == 0 {
                    break;
                }
            }
        } else {
            while decoder.read_message(&mut reader).unwrap().is_some() {
                count += 1;
            }
        }
        assert_eq!(count, msgs.len());
    };
    for fill in [true, false] {
        for _ in 0..3 {
            read_all(&mut decoder, fill);
        }
        let (_, n) = allocations(|| {
            for _ in 0..rounds {
                read_all(&mut decoder, fill);
            }
        });
        let how = if fill { "fill_from" } else { "read_message" };
        println!("ArenaStream::{how}: {n} allocations");
        assert_eq!(n, 0, "ArenaStream::{how} allocated after warm-up");
    }

    // For comparison: the owned decoders allocate per node.
    for (i, m) in msgs.iter().enumerate() {
        let (_, owned) = allocations(|| decode_value_exact(m).unwrap());
        let (_, rmpv_ref) = allocations(|| rmpv::decode::read_value_ref(&mut &m[..]).unwrap());
        let (_, arena) = allocations(|| {
            bump.reset();
            decode_in(&bump, m).map(|v| v.len()).unwrap()
        });
        println!(
            "message {i} ({} bytes): arena {arena}, Value {owned}, rmpv read_value_ref {rmpv_ref} allocations",
            m.len()
        );
    }
}
