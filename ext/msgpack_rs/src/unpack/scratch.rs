//! The decoder stack and value stack `MessagePack.unpack` / `Factory#load`
//! reuse, one per Ractor (Ractor-local storage; never shared), so decoding
//! a String allocates nothing but the Ruby objects it returns.
use crate::runtime::gc_ref::{may_read_state, Published};
use crate::runtime::local::RactorLocal;
use crate::runtime::ruby;
use crate::runtime::value_stack::ValueStack;
use crate::unpack::driver::Decoder;
use magnus::{rb_sys::AsRawValue, typed_data::Obj};
use msgpack_rs_core::{Limits, StreamDecoder};
use std::cell::{Cell, RefCell};

/// This Ractor's scratch.
static SCRATCH: RactorLocal = RactorLocal::new();

#[derive(magnus::TypedData)]
#[magnus(
    class = "MessagePack::Memory::Scratch",
    mark,
    compact,
    free_immediately,
    size
)]
struct UnpackScratch {
    /// The Ractor it belongs to (see `gc_ref::may_read_state`).
    owner: u64,
    decoder: RefCell<Decoder>,
    /// Lent to a decode (a nested one, from an ext proc, gets a fresh
    /// scratch).
    busy: Cell<bool>,
    /// The decoder's heap size as of its last use, for `dsize`.
    decoder_bytes: Published,
    values: ValueStack,
}

impl magnus::DataTypeFunctions for UnpackScratch {
    fn mark(&self, marker: &magnus::gc::Marker) {
        if may_read_state(self.owner) {
            self.values.mark(marker);
        }
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        self.values.update(compactor);
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.values.heap_size() + self.decoder_bytes.get()
    }
}

/// Value-stack capacity the scratch keeps between calls, in bytes.
const SCRATCH_VALUES_KEEP: usize = 1 << 20;

fn new_scratch() -> Obj<UnpackScratch> {
    ruby().obj_wrap(UnpackScratch {
        owner: crate::runtime::ractor::current_id(),
        decoder: RefCell::new(StreamDecoder::default()),
        busy: Cell::new(false),
        decoder_bytes: Default::default(),
        values: ValueStack::default(),
    })
}

/// Runs `f` with this Ractor's scratch decoder (idle, set to `limits`),
/// value stack and the decoder's published size, or with fresh ones when
/// they are lent further up the stack (an ext callback unpacking a nested
/// String).
pub fn with_unpack_scratch<R>(
    limits: Limits,
    f: impl FnOnce(&RefCell<Decoder>, &ValueStack, &Published) -> R,
) -> R {
    let scratch = SCRATCH
        .object_or_init(new_scratch)
        .filter(|s| !s.busy.get())
        // Lent further up the stack: a fresh one for this call (alive
        // while it runs: `scratch` is on the machine stack).
        .unwrap_or_else(new_scratch);
    scratch.busy.set(true);
    if let Ok(mut dec) = scratch.decoder.try_borrow_mut() {
        dec.reset();
        dec.set_limits(limits);
    }
    let r = f(&scratch.decoder, &scratch.values, &scratch.decoder_bytes);
    // Partial frames (after NeedMore, an error or a deferred ext) hold only
    // indices; drop them and their values, keep the allocations, but not
    // those of a huge message (a million-element Array): at most 1 MiB of
    // value stack stays.
    if let Ok(mut dec) = scratch.decoder.try_borrow_mut() {
        dec.reset();
        scratch.decoder_bytes.set(dec.heap_size());
    }
    scratch.values.truncate(0);
    if scratch.values.heap_size() > SCRATCH_VALUES_KEEP {
        scratch.values.shrink();
    }
    scratch.busy.set(false);
    std::hint::black_box(scratch.as_raw());
    r
}

/// For `MessagePack.compact!` (a memory hook): gives back the scratch
/// decoder's memory unless it is in use.
pub fn compact() -> (usize, usize) {
    let Some(s) = SCRATCH.object::<UnpackScratch>().filter(|s| !s.busy.get()) else {
        return (0, 0);
    };
    let Ok(mut dec) = s.decoder.try_borrow_mut() else {
        return (0, 0);
    };
    let before = dec.heap_size() + s.values.heap_size();
    if dec.is_idle() {
        dec.shrink_to_fit();
        s.values.shrink();
    }
    s.decoder_bytes.set(dec.heap_size());
    (before, dec.heap_size() + s.values.heap_size())
}

/// Makes the Ractor-local key and the Ruby class (at load time).
pub fn init(ruby: &magnus::Ruby, memory: magnus::RModule) -> Result<(), magnus::Error> {
    use magnus::{prelude::*, TypedData};
    SCRATCH.init();
    let scratch = memory.define_class("Scratch", ruby.class_object())?;
    scratch.undef_default_alloc_func();
    let _ = UnpackScratch::class(ruby);
    Ok(())
}
