//! Giving memory back: the per-Ractor registry of live instances, the
//! `compact!` report, and the `MessagePack.compact!` cascade.
//!
//! This layer knows no MessagePack class. Each class implements
//! [`Compactable`] and registers itself ([`track`]); the registry keeps, per
//! instance, a pointer to the monomorphized `measure` function of its type,
//! so it never needs a list of every class. What `MessagePack.compact!` does
//! besides visiting instances (the unpack scratch, the map-key cache) comes
//! in as hooks from `lib.rs` ([`init`]).
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
//! Besides the registry, the cascade runs its hooks (the Ractor's
//! `MessagePack.unpack` scratch decoder, `unpack/scratch.rs`; its map-key
//! cache, `unpack/key_cache.rs`) and calls `malloc_trim(0)` (glibc) so freed
//! pages go back to the kernel. The `MessagePack.pack` scratch packer is a
//! registered Packer like any other.
//!
//! # Locking
//!
//! The registry's mutex is taken by its own Ractor (registering, compacting)
//! and by whichever thread frees an instance (GC sweeping may run in another
//! Ractor). While it is held, no Ruby object is allocated and no Ruby code
//! runs, so the GC cannot be entered with it held, and a free never waits
//! for anything but a short Rust critical section.
mod report;

pub use report::{page_size, report, rss_bytes};

use crate::runtime::local::RactorLocal;
use crate::runtime::ruby;
use magnus::{function, prelude::*, Error, RModule, Ruby, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

/// The calling Ractor's registry holder.
static REGISTRY: RactorLocal = RactorLocal::new();

/// Compacts the instance at an address and returns (bytes before, bytes
/// after): [`measure_at`] for the instance's type.
type MeasureAt = unsafe fn(usize) -> (usize, usize);

/// What the registry knows of one live instance.
#[derive(Clone, Copy)]
struct Entry {
    measure: MeasureAt,
    /// A tag (for a member of a `Factory#pool`, the address of the native
    /// data of the factory the pool was asked from, stable while it lives),
    /// so the factory's `compact!` finds its pools' members; 0 otherwise.
    tag: usize,
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

    /// Compacts every registered instance (only those tagged `tag`, if
    /// given). Returns (bytes before, bytes after, instances visited).
    fn compact_all(&self, tag: Option<usize>) -> (usize, usize, usize) {
        let mut map = self.lock();
        let (mut before, mut after, mut visited) = (0, 0, 0);
        for (&addr, entry) in map.iter() {
            if tag.is_some_and(|t| t != entry.tag) {
                continue;
            }
            visited += 1;
            // SAFETY: an entry is removed (under this lock) by the
            // instance's Tracker before any other part of the instance is
            // dropped, so every address in the map points to a live,
            // fully-initialized instance of the type `measure` was made
            // for; the instances belong to this Ractor, whose GVL we hold.
            let (b, a) = unsafe { (entry.measure)(addr) };
            before += b;
            after += a;
        }
        if tag.is_none() {
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
}

/// The calling Ractor's registry; made on first use when `create`.
fn current_registry(create: bool) -> Option<Arc<Registry>> {
    if let Some(h) = REGISTRY.object::<RegistryHolder>() {
        return Some(h.0.clone());
    }
    if !create {
        return None;
    }
    let reg = Arc::new(Registry::default());
    REGISTRY.object_or_init(|| ruby().obj_wrap(RegistryHolder(reg.clone())))?;
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

/// What the registry and `compact!` need from an instance. Its state must
/// sit behind Cell/RefCell/atomics: the registry compacts it through a
/// shared reference.
pub trait Compactable {
    fn tracker(&self) -> &Tracker;
    /// Bytes the instance holds outside the Ruby heap (plus its struct).
    fn held_bytes(&self) -> usize;
    /// Gives back slack; never touches unread data.
    fn release(&self);

    /// `compact!` of this instance alone: its report.
    fn compact_report(&self) -> Result<Value, Error>
    where
        Self: Sized,
    {
        compact_one(self)
    }
}

/// # Safety
/// `addr` must be the address of a live `T` (see [`Registry::compact_all`]).
unsafe fn measure_at<T: Compactable>(addr: usize) -> (usize, usize) {
    // SAFETY: per the contract.
    measure(unsafe { &*(addr as *const T) })
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
            measure: measure_at::<T>,
            tag: 0,
        },
    );
    if let Err((reg, addr)) = tracker.slot.set((reg, addr)) {
        // Unreachable (checked above, and one Ractor's GVL is held), but
        // keep the map consistent regardless.
        reg.remove(addr);
    }
}

/// Tracks `obj` and tags it with `tag` (see [`compact_tagged`]).
pub fn track_tagged<T: Compactable>(obj: &T, tag: usize) {
    track(obj);
    let addr = obj as *const T as usize;
    if let Some(reg) = current_registry(false) {
        if let Some(entry) = reg.lock().get_mut(&addr) {
            entry.tag = tag;
        }
    }
}

/// Compacts the calling Ractor's instances tagged `tag`: (bytes before,
/// bytes after, instances visited).
pub fn compact_tagged(tag: usize) -> (usize, usize, usize) {
    current_registry(false)
        .map(|r| r.compact_all(Some(tag)))
        .unwrap_or((0, 0, 0))
}

/// Compacts `obj`: (bytes before, bytes after).
pub fn measure<T: Compactable>(obj: &T) -> (usize, usize) {
    let before = obj.held_bytes();
    obj.release();
    (before, obj.held_bytes())
}

/// `compact!` of one instance: a report for it alone.
pub fn compact_one<T: Compactable>(obj: &T) -> Result<Value, Error> {
    let started = Instant::now();
    let (before, after) = measure(obj);
    report(before, after, 1, started, None)
}

/// Something `MessagePack.compact!` compacts besides the registered
/// instances: returns (bytes before, bytes after), (0, 0) for nothing.
pub type CompactHook = fn() -> (usize, usize);

static HOOKS: OnceLock<Vec<CompactHook>> = OnceLock::new();

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
/// mapped files), the hooks, then the allocator.
fn module_compact() -> Result<Value, Error> {
    let started = Instant::now();
    let rss_before = rss_bytes();
    let (mut before, mut after, mut visited) = current_registry(false)
        .map(|r| r.compact_all(None))
        .unwrap_or((0, 0, 0));
    for hook in HOOKS.get().map(|h| h.as_slice()).unwrap_or(&[]) {
        let (b, a) = hook();
        if b > 0 {
            before += b;
            after += a;
            visited += 1;
        }
    }
    trim_allocator();
    let rss = rss_before.zip(rss_bytes());
    report(before, after, visited, started, rss)
}

/// Live registered instances in the calling Ractor (for specs and
/// diagnostics).
fn tracked_count() -> usize {
    current_registry(false).map(|r| r.lock().len()).unwrap_or(0)
}

/// Defines `MessagePack.compact!` and `MessagePack::Memory`; `hooks` run
/// in every `MessagePack.compact!` after the instances.
pub fn init(ruby: &Ruby, module: RModule, hooks: Vec<CompactHook>) -> Result<RModule, Error> {
    REGISTRY.init();
    let _ = HOOKS.set(hooks);
    let memory = module.define_module("Memory")?;
    let registry = memory.define_class("Registry", ruby.class_object())?;
    registry.undef_default_alloc_func();
    module.define_module_function("compact!", function!(module_compact, 0))?;
    memory.define_module_function("tracked_count", function!(tracked_count, 0))?;
    Ok(memory)
}
