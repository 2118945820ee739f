//! Peak heap use on hostile input, measured with a counting allocator. The
//! binary holds a single test, so no other test's allocations blur the
//! numbers.
use msgpack_rs_core::value::decode_value_with;
use msgpack_rs_core::{DecodeError, Limits, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every operation to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout goes to the system allocator as is.
        let p = System.alloc(layout);
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` came from `alloc` above, i.e. from System, with `layout`.
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes allocated at the peak of `f`, above what was live before it.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = f();
    (r, PEAK.load(Relaxed).saturating_sub(base))
}

/// The bound: a `Value` per input byte (every element takes at least one),
/// plus slack for the decoder's stack.
fn budget(input_len: usize) -> usize {
    input_len * std::mem::size_of::<(Value, Value)>() / 2 + (1 << 20)
}

#[test]
fn hostile_headers_cost_little_memory() {
    nested_lying_headers_stay_linear_in_the_input();
    lying_top_level_headers_allocate_nothing_big();
}

fn nested_lying_headers_stay_linear_in_the_input() {
    for unit in [
        &[0xdc, 0xff, 0xff][..],
        &[0xde, 0xff, 0xff][..],
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
    ] {
        let input = unit.repeat(50_000);
        let (r, peak) = peak_during(|| decode_value_with(&input, Limits::default()));
        assert_eq!(r, Err(DecodeError::DepthExceeded { max: 128 }));
        println!("{unit:02x?} x 50,000: peak {peak} bytes");
        assert!(
            peak <= budget(input.len()),
            "{unit:02x?}: peak {peak} bytes for {} input bytes",
            input.len()
        );
    }
}

fn lying_top_level_headers_allocate_nothing_big() {
    for input in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff][..],
        &[0xc6, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdb, 0xff, 0xff, 0xff, 0xff][..],
        &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01][..],
    ] {
        let (r, peak) = peak_during(|| decode_value_with(input, Limits::default()));
        assert_eq!(r, Err(DecodeError::UnexpectedEof));
        assert!(peak < 4096, "{input:02x?}: peak {peak}");
    }
}
