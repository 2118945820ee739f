//! Giving memory back: `compact!` on Buffer, Packer, Unpacker and
//! MappedUnpacker, and the `MessagePack.compact!` cascade.
//!
//! # Which instances `MessagePack.compact!` visits
//!
//! Every Packer, Unpacker, Buffer and MappedUnpacker registers itself, the
//! first time it is configured, in a registry that belongs to the Ractor it
//! was made in (kept in Ractor-local storage). The registry is *weak*: it
//! holds the address of the instance's Rust data, not a Ruby reference, and
//! the instance removes itself when it is freed (its [`Tracker`] is the
//! first field of the struct, so it is dropped before anything the
//! registry could reach). `MessagePack.compact!` walks the calling Ractor's
//! registry only: instances of other Ractors run in parallel and are never
//! touched.
//!
//! `ObjectSpace.each_object` would need no registry, but on Ruby 3.1 it
//! yields only shareable objects as soon as a second Ractor has ever been
//! started (none of these classes is shareable), so it would silently visit
//! nothing in exactly the programs that use Ractors.
//!
//! Cost: registering is one Ractor-local lookup and a hash insert per
//! instance (not per message: the per-call path of `MessagePack.pack`
//! finds its instance already registered after one atomic load), and freeing
//! is one hash removal.
//!
//! Besides the registry, the cascade shrinks the Ractor's `MessagePack.unpack`
//! scratch decoder ([`with_unpack_scratch`]), clears its map-key cache
//! (key_cache.rs), and calls `malloc_trim(0)` (glibc) so freed pages go back
//! to the kernel. The `MessagePack.pack` scratch packer is a registered
//! Packer like any other.
//!
//! # Locking
//!
//! The registry's mutex is taken by its own Ractor (registering, compacting)
//! and by whichever thread frees an instance (GC sweeping may run in another
//! Ractor). While it is held, no Ruby object is allocated and no Ruby code
//! runs, so the GC cannot be entered with it held, and a free never waits
//! for anything but a short Rust critical section.
use crate::buffer::Buffer;
use crate::builder::RubyBuilder;
use crate::errors::ruby;
use crate::factory::Factory;
use crate::mapped::MappedUnpacker;
use crate::packer::Packer;
use crate::unpacker::Unpacker;
use crate::value_stack::ValueStack;
use magnus::{
    function, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj,
    DataTypeFunctions, Error, RModule, Ruby, Value,
};
use msgpack_rs_core::{Limits, StreamDecoder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

/// Ractor-local storage key of the registry holder (made at load time,
/// immutable afterwards).
static REGISTRY_KEY: OnceLock<usize> = OnceLock::new();
/// Ractor-local storage key of the unpack scratch (see [`with_unpack_scratch`]).
static SCRATCH_KEY: OnceLock<usize> = OnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Packer,
    Unpacker,
    Buffer,
    Mapped,
}

/// What the registry knows of one live instance.
#[derive(Clone, Copy)]
struct Entry {
    kind: Kind,
    /// For a member of a `Factory#pool`: the address of the native data of
    /// the factory the pool was asked from (stable while it lives), so
    /// `Factory#compact!` finds its pools' members; 0 otherwise.
    pool_owner: usize,
}

/// Live instances of one Ractor: data address -> entry.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<usize, Entry>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<usize, Entry>> {
        // Nothing panics while holding it; if something ever did, the map
        // itself is still consistent (single inserts/removals).
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remove(&self, addr: usize) {
        self.lock().remove(&addr);
    }

    /// Compacts every registered instance (only the members of the pools of
    /// the factory at `pool_owner`, if given). Returns (bytes before, bytes
    /// after, instances visited).
    fn compact_all(&self, pool_owner: Option<usize>) -> (usize, usize, usize) {
        let mut map = self.lock();
        let (mut before, mut after, mut visited) = (0, 0, 0);
        for (&addr, entry) in map.iter() {
            if pool_owner.is_some_and(|owner| owner != entry.pool_owner) {
                continue;
            }
            let kind = entry.kind;
            visited += 1;
            // SAFETY: an entry is removed (under this lock) by the
            // instance's Tracker before any other part of the instance is
            // dropped, so every address in the map points to a live,
            // fully-initialized instance of `kind`. All their state sits
            // behind Cell/RefCell/atomics, so a shared reference is enough,
            // and the instances belong to this Ractor, whose GVL we hold.
            // SAFETY: as explained above: registered instances are live and owned by this Ractor.
            let (b, a) = unsafe {
                match kind {
                    Kind::Packer => measure(&*(addr as *const Packer)),
                    Kind::Unpacker => measure(&*(addr as *const Unpacker)),
                    Kind::Buffer => measure(&*(addr as *const Buffer)),
                    Kind::Mapped => measure(&*(addr as *const MappedUnpacker)),
                }
            };
            before += b;
            after += a;
        }
        if pool_owner.is_none() {
            map.shrink_to_fit();
        }
        (before, after, visited)
    }
}

/// Keeps a Ractor's registry alive in its Ractor-local storage.
#[magnus::wrap(class = "MessagePack::Memory::Registry", free_immediately, size)]
struct RegistryHolder(Arc<Registry>);

/// Resolves the wrapper's Ruby class now (see `lib.rs`).
pub(crate) fn resolve_classes(ruby: &magnus::Ruby) {
    let _ = <RegistryHolder as magnus::TypedData>::class(ruby);
    let _ = <UnpackScratch as magnus::TypedData>::class(ruby);
}

/// The calling Ractor's registry; made on first use when `create`.
fn current_registry(create: bool) -> Option<Arc<Registry>> {
    let key = *REGISTRY_KEY.get()? as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; the VM marks the value it stores.
    let stored = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    // SAFETY: a live object (or nil) from Ractor-local storage.
    if let Ok(h) = <&RegistryHolder>::try_convert(unsafe { Value::from_raw(stored) }) {
        return Some(h.0.clone());
    }
    if !create {
        return None;
    }
    let reg = Arc::new(Registry::default());
    let holder = ruby().obj_wrap(RegistryHolder(reg.clone()));
    // SAFETY: storing a live object under our key (the VM marks it).
    unsafe { rb_sys::rb_ractor_local_storage_value_set(key, holder.as_raw()) };
    Some(reg)
}

/// An instance's entry in its Ractor's registry. Must be the *first* field
/// of the owning struct, so it unregisters before the rest is dropped.
#[derive(Default)]
pub struct Tracker {
    slot: OnceLock<(Arc<Registry>, usize)>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // Runs inside the GC's free callback: a short Rust critical
        // section, no Ruby calls, no allocation.
        if let Some((reg, addr)) = self.slot.get() {
            reg.remove(*addr);
        }
    }
}

/// What the registry and `compact!` need from an instance.
pub trait Compactable {
    const KIND: Kind;
    fn tracker(&self) -> &Tracker;
    /// Bytes the instance holds outside the Ruby heap (plus its struct).
    fn held_bytes(&self) -> usize;
    /// Gives back slack; never touches unread data.
    fn release(&self);
}

/// Registers `obj` in the calling Ractor's registry (once; later calls are
/// one atomic load). `obj` must be the instance's final, boxed location:
/// call it from a method on the wrapped object, never on a value that will
/// be moved afterwards.
#[inline]
pub fn track<T: Compactable>(obj: &T) {
    let tracker = obj.tracker();
    if tracker.slot.get().is_some() {
        return;
    }
    let Some(reg) = current_registry(true) else {
        return;
    };
    let addr = obj as *const T as usize;
    reg.lock().insert(
        addr,
        Entry {
            kind: T::KIND,
            pool_owner: 0,
        },
    );
    if let Err((reg, addr)) = tracker.slot.set((reg, addr)) {
        // Unreachable (checked above, and one Ractor's GVL is held), but
        // keep the map consistent regardless.
        reg.remove(addr);
    }
}

fn measure<T: Compactable>(obj: &T) -> (usize, usize) {
    let before = obj.held_bytes();
    obj.release();
    (before, obj.held_bytes())
}

/// Packer and Unpacker: their memsize is what they hold, and their own
/// `compact_memory` releases it.
macro_rules! compactable_by_memsize {
    ($($ty:ident => $kind:expr),*) => {$(
        impl Compactable for $ty {
            const KIND: Kind = $kind;
            fn tracker(&self) -> &Tracker {
                &self.tracker
            }
            fn held_bytes(&self) -> usize {
                DataTypeFunctions::size(self)
            }
            fn release(&self) {
                self.compact_memory();
            }
        }
    )*};
}

compactable_by_memsize!(Packer => Kind::Packer, Unpacker => Kind::Unpacker);

impl Compactable for Buffer {
    const KIND: Kind = Kind::Buffer;
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    fn held_bytes(&self) -> usize {
        // A view buffer reports its owner's bytes (it compacts them too).
        std::mem::size_of::<Self>() + self.core_heap_size()
    }
    fn release(&self) {
        let _ = self.compact_memory();
    }
}

/// The decoder stack and value stack `MessagePack.unpack` / `Factory#load`
/// reuse, one per Ractor (Ractor-local storage; never shared), so decoding
/// a String allocates nothing but the Ruby objects it returns.
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
    decoder: RefCell<StreamDecoder<RubyBuilder>>,
    /// The decoder's heap size as of its last use, for `dsize`.
    decoder_bytes: crate::gc_ref::Published,
    values: ValueStack,
}

impl magnus::DataTypeFunctions for UnpackScratch {
    fn mark(&self, _: &magnus::gc::Marker) {
        if crate::gc_ref::may_read_state(self.owner) {
            self.values.mark();
        }
    }
    fn compact(&self, _: &magnus::gc::Compactor) {
        self.values.update();
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.values.heap_size() + self.decoder_bytes.get()
    }
}

/// Value-stack capacity the scratch keeps between calls, in bytes.
const SCRATCH_VALUES_KEEP: usize = 1 << 20;

fn new_scratch() -> Obj<UnpackScratch> {
    ruby().obj_wrap(UnpackScratch {
        owner: crate::ractor::current_id(),
        decoder: RefCell::new(StreamDecoder::default()),
        decoder_bytes: Default::default(),
        values: ValueStack::default(),
    })
}

fn unpack_scratch(create: bool) -> Option<Obj<UnpackScratch>> {
    let key = *SCRATCH_KEY.get()? as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; the VM marks the value it stores.
    let stored = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    // SAFETY: a live object (or nil) from Ractor-local storage.
    if let Ok(s) = Obj::<UnpackScratch>::try_convert(unsafe { Value::from_raw(stored) }) {
        return Some(s);
    }
    if !create {
        return None;
    }
    let s = new_scratch();
    // SAFETY: storing a live object under our key (the VM marks it).
    unsafe { rb_sys::rb_ractor_local_storage_value_set(key, s.as_raw()) };
    Some(s)
}

/// Runs `f` with this Ractor's scratch decoder (idle, set to `limits`) and
/// value stack, or with fresh ones when they are in use further up the
/// stack (an ext callback unpacking a nested String).
pub fn with_unpack_scratch<R>(
    limits: Limits,
    f: impl FnOnce(&mut StreamDecoder<RubyBuilder>, &ValueStack) -> R,
) -> R {
    let scratch = unpack_scratch(true)
        .filter(|s| s.decoder.try_borrow_mut().is_ok())
        // In use further up the stack: a fresh one for this call (alive
        // while it runs: `scratch` is on the machine stack).
        .unwrap_or_else(new_scratch);
    let r = match scratch.decoder.try_borrow_mut() {
        Ok(mut dec) => {
            dec.reset();
            dec.set_limits(limits);
            let r = f(&mut dec, &scratch.values);
            // Partial frames (after NeedMore, an error or a deferred ext)
            // hold only indices; drop them and their values, keep the
            // allocations, but not those of a huge message (a
            // million-element Array): at most 1 MiB of value stack stays.
            dec.reset();
            scratch.values.truncate(0);
            if scratch.values.heap_size() > SCRATCH_VALUES_KEEP {
                scratch.values.shrink();
            }
            scratch.decoder_bytes.set(dec.heap_size());
            r
        }
        // Unreachable (checked above, or new); still decode with a value
        // stack the GC marks.
        Err(_) => {
            let fresh = new_scratch();
            let r = f(&mut StreamDecoder::new(limits), &fresh.values);
            std::hint::black_box(fresh.as_raw());
            r
        }
    };
    std::hint::black_box(scratch.as_raw());
    r
}

/// Gives back the scratch decoder's memory (unless it is in use).
fn compact_unpack_scratch() -> (usize, usize) {
    let Some(s) = unpack_scratch(false) else {
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

/// A `MessagePack::CompactReport`.
pub fn report(
    before: usize,
    after: usize,
    visited: usize,
    started: Instant,
    rss: Option<(usize, usize)>,
) -> Result<Value, Error> {
    let ruby = ruby();
    let class: Value = ruby
        .class_object()
        .const_get::<_, RModule>("MessagePack")?
        .const_get("CompactReport")?;
    let elapsed = started.elapsed().as_secs_f64();
    let nil = ruby.qnil().as_value();
    let (rb, ra) = match rss {
        Some((b, a)) => (ruby.into_value(b), ruby.into_value(a)),
        None => (nil, nil),
    };
    class.funcall("new", (before, after, visited, elapsed, rb, ra))
}

/// `compact!` of one instance: a report for it alone.
pub fn compact_one<T: Compactable>(obj: &T) -> Result<Value, Error> {
    let started = Instant::now();
    let (before, after) = measure(obj);
    report(before, after, 1, started, None)
}

pub fn packer_compact(rb_self: &Packer) -> Result<Value, Error> {
    compact_one(rb_self)
}

pub fn unpacker_compact(rb_self: &Unpacker) -> Result<Value, Error> {
    compact_one(rb_self)
}

pub fn buffer_compact(rb_self: &Buffer) -> Result<Value, Error> {
    compact_one(rb_self)
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Returns free memory at the top of malloc's heaps (and in its free
/// lists, on glibc 2.8+) to the kernel.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own structures
        // under its own locks; it has no preconditions.
        unsafe { libc::malloc_trim(0) };
    }
}

/// `MessagePack.compact!`: every live instance of the calling Ractor
/// (its `MessagePack.pack` scratch packer, DefaultFactory's and every other
/// factory's packers, unpackers and pool members, standalone buffers,
/// mapped files), then the allocator.
fn module_compact() -> Result<Value, Error> {
    let started = Instant::now();
    let rss_before = rss_bytes();
    let (mut before, mut after, mut visited) = current_registry(false)
        .map(|r| r.compact_all(None))
        .unwrap_or((0, 0, 0));
    let (b, a) = compact_unpack_scratch();
    if b > 0 {
        before += b;
        after += a;
        visited += 1;
    }
    // The map-key cache: its interned Strings/Symbols can be collected.
    crate::key_cache::clear_current();
    trim_allocator();
    let rss = rss_before.zip(rss_bytes());
    report(before, after, visited, started, rss)
}

/// `MessagePack::Factory#compact!`'s native part: the calling Ractor's
/// scratch packer, which every factory's `dump`/`pack` reuses. The Ruby
/// side adds the factory's pools.
fn factory_compact_scratch(_factory: Value) -> Result<Value, Error> {
    let started = Instant::now();
    match crate::fast_path::existing_scratch_packer() {
        Some(p) => {
            let (before, after) = measure(&*p);
            report(before, after, 1, started, None)
        }
        None => report(0, 0, 0, started, None),
    }
}

/// `Memory.mark_pool_member(member, factory)`: records that a Packer or
/// Unpacker belongs to a pool of `factory` (see `Factory#pool`). Native
/// bookkeeping rather than a Ruby WeakMap: on Ruby 3.1, WeakMaps register
/// finalizers in a process-wide table that Ractors update without a lock.
fn mark_pool_member(member: Value, factory: &Factory) -> Result<Value, Error> {
    let owner = factory as *const Factory as usize;
    let addr = if let Ok(p) = Obj::<Packer>::try_convert(member) {
        track(&*p);
        &*p as *const Packer as usize
    } else {
        let u = Obj::<Unpacker>::try_convert(member)?;
        track(&*u);
        &*u as *const Unpacker as usize
    };
    if let Some(reg) = current_registry(false) {
        if let Some(entry) = reg.lock().get_mut(&addr) {
            entry.pool_owner = owner;
        }
    }
    Ok(member)
}

/// `Memory.compact_pool_members(factory)`: compacts the members of the
/// pools asked from `factory` in the calling Ractor.
fn compact_pool_members(factory: &Factory) -> Result<Value, Error> {
    let started = Instant::now();
    let owner = factory as *const Factory as usize;
    let (before, after, visited) = current_registry(false)
        .map(|r| r.compact_all(Some(owner)))
        .unwrap_or((0, 0, 0));
    report(before, after, visited, started, None)
}

/// Live registered instances in the calling Ractor (for specs and
/// diagnostics).
fn tracked_count() -> usize {
    current_registry(false).map(|r| r.lock().len()).unwrap_or(0)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    // SAFETY: plain C API call at load time.
    let key = unsafe { rb_sys::rb_ractor_local_storage_value_newkey() };
    let _ = REGISTRY_KEY.set(key as usize);
    // SAFETY: as above.
    let key = unsafe { rb_sys::rb_ractor_local_storage_value_newkey() };
    let _ = SCRATCH_KEY.set(key as usize);
    let memory = module.define_module("Memory")?;
    let registry = memory.define_class("Registry", ruby.class_object())?;
    registry.undef_default_alloc_func();
    let scratch = memory.define_class("Scratch", ruby.class_object())?;
    scratch.undef_default_alloc_func();
    module.define_module_function("compact!", function!(module_compact, 0))?;
    memory.define_module_function(
        "compact_scratch_packer",
        function!(factory_compact_scratch, 1),
    )?;
    memory.define_module_function("tracked_count", function!(tracked_count, 0))?;
    memory.define_module_function("mark_pool_member", function!(mark_pool_member, 2))?;
    memory.define_module_function("compact_pool_members", function!(compact_pool_members, 1))?;
    Ok(())
}
