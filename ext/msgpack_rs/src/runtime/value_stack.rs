//! The values of a message being decoded, before their container exists.
//!
//! The builder pushes every finished value here and makes each Array or
//! Hash in one call when it closes (`rb_ary_new_from_values`,
//! `rb_hash_bulk_insert`): one allocation of the right size per container
//! instead of a growing `rb_ary_push` / `rb_hash_aset` per element, and no
//! write barrier per element (a new container is young).
//!
//! The stack is plain Rust memory inside the object that owns the decode
//! (Unpacker, MappedUnpacker, or the per-Ractor scratch of
//! `MessagePack.unpack`); the owner's mark and compact callbacks call
//! [`ValueStack::mark`] and [`ValueStack::update`], so a half-decoded
//! message stays alive, and follows compaction, across GC runs. Owners are
//! T_DATA objects without write-barrier protection (as msgpack-ruby's
//! unpacker stack): the GC re-marks them at every minor GC, so in-flight
//! values age normally and are not promoted all at once.
use super::gc_ref::Published;
use magnus::gc::{Compactor, Marker};
use magnus::{rb_sys::AsRawValue, rb_sys::FromRawValue, Value};
use rb_sys::VALUE;
use std::cell::UnsafeCell;

#[derive(Default)]
pub struct ValueStack {
    // Interior mutability without a borrow flag: the GC callbacks read and
    // update the slots while a decode is suspended inside an allocation, so
    // a RefCell borrow held across that allocation would hide them from the
    // GC. Soundness rests on two rules, upheld by every method here: no
    // method keeps a reference to the Vec across a call into Ruby, and the
    // owner's callbacks read the slots only when `gc_ref::may_read_state`
    // says nothing else is changing them.
    slots: UnsafeCell<Vec<VALUE>>,
    /// Capacity in bytes as of the last reserve/truncate/shrink, for `dsize`
    /// (which may run on another Ractor, so it must not read `slots`).
    bytes: Published,
}

// SAFETY: the owner objects are never shared between Ractors while a
// decode runs (Unpacker copies are refused; the scratch is Ractor-local),
// and VALUEs are plain words.
unsafe impl Send for ValueStack {}

impl ValueStack {
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut Vec<VALUE>) -> R) -> R {
        // SAFETY: see the `slots` field: `f` is plain Rust code (callers
        // never pass closures that call Ruby), so no other reference to the
        // Vec exists while it runs.
        f(unsafe { &mut *self.slots.get() })
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.with(|s| s.len())
    }

    #[inline(always)]
    pub fn push(&self, v: VALUE) {
        self.with(|s| s.push(v))
    }

    #[inline(always)]
    pub fn reserve(&self, additional: usize) {
        let cap = self.with(|s| {
            s.reserve(additional);
            s.capacity()
        });
        self.bytes.set(cap * std::mem::size_of::<VALUE>());
    }

    /// Drops the slots from `len` on (a container closed, or a decode
    /// ended); also publishes the capacity, which pushes may have grown.
    #[inline(always)]
    pub fn truncate(&self, len: usize) {
        let cap = self.with(|s| {
            s.truncate(len);
            s.capacity()
        });
        self.bytes.set(cap * std::mem::size_of::<VALUE>());
    }

    /// The value at `idx` (nil past the end).
    #[inline(always)]
    pub fn get(&self, idx: usize) -> VALUE {
        self.with(|s| s.get(idx).copied().unwrap_or(super::raw::NIL))
    }

    /// Pointer to the slots from `start` on, and how many there are. The
    /// pointer stays valid until the next push/reserve (the GC may rewrite
    /// the slots it points at, never move them).
    #[inline(always)]
    pub fn tail(&self, start: usize) -> (*const VALUE, usize) {
        self.with(|s| {
            let start = start.min(s.len());
            (s[start..].as_ptr(), s.len() - start)
        })
    }

    /// Calls `f` on the slots from `start` on (plain Rust code only).
    #[inline(always)]
    pub fn scan<R>(&self, start: usize, f: impl FnOnce(&[VALUE]) -> R) -> R {
        self.with(|s| f(s.get(start..).unwrap_or(&[])))
    }

    /// Gives back spare capacity; returns the bytes released.
    pub fn shrink(&self) -> usize {
        let (before, after) = self.with(|s| {
            let before = s.capacity();
            s.shrink_to_fit();
            (before, s.capacity())
        });
        self.bytes.set(after * std::mem::size_of::<VALUE>());
        (before - after) * std::mem::size_of::<VALUE>()
    }

    /// Capacity in bytes as last published (safe from any Ractor).
    pub fn heap_size(&self) -> usize {
        self.bytes.get()
    }

    /// For the owner's dmark callback, when `gc_ref::may_read_state`.
    pub fn mark(&self, marker: &Marker) {
        self.with(|s| {
            for &v in s.iter() {
                if !rb_sys::SPECIAL_CONST_P(v) {
                    // SAFETY: a live object this stack keeps alive.
                    marker.mark_movable(unsafe { Value::from_raw(v) });
                }
            }
        })
    }

    /// For the owner's dcompact callback.
    pub fn update(&self, compactor: &Compactor) {
        self.with(|s| {
            for v in s.iter_mut() {
                if !rb_sys::SPECIAL_CONST_P(*v) {
                    // SAFETY: an object this stack marked movable.
                    *v = compactor.location(unsafe { Value::from_raw(*v) }).as_raw();
                }
            }
        })
    }
}
