//! A Ruby object reference held in Rust memory, visible to the GC, and the
//! rules for GC callbacks.
//!
//! The slot is an atomic word so the GC's mark and compact callbacks can read
//! and update it through a shared reference while Rust code holds other
//! shared borrows of the same struct: that keeps the compaction update sound
//! without `&mut` aliasing, and makes the owning struct `Send + Sync` for
//! magnus and for Ractor-shared frozen factories.
use magnus::gc::{Compactor, Marker};
use magnus::{rb_sys::FromRawValue, Value};
use rb_sys::{special_consts::Qnil, VALUE};
use std::sync::atomic::{AtomicUsize, Ordering};

/// See the module docs. Its contract: it holds nil, an immediate, or a live
/// object that the struct holding the `GcRef` marks in its dmark callback
/// (with [`GcRef::mark`] or [`GcRef::mark_pinned`]) and updates in its
/// dcompact callback ([`GcRef::update`]).
pub struct GcRef(AtomicUsize);

impl GcRef {
    pub const fn nil() -> Self {
        GcRef(AtomicUsize::new(Qnil as usize))
    }

    /// # Safety
    /// `v` must be an immediate or a live object, and the struct this
    /// `GcRef` goes into must mark and update it (see [`GcRef`]).
    pub unsafe fn new(v: VALUE) -> Self {
        GcRef(AtomicUsize::new(v as usize))
    }

    #[inline]
    pub fn get(&self) -> VALUE {
        self.0.load(Ordering::Relaxed) as VALUE
    }

    /// The object as a magnus handle.
    #[inline]
    pub fn value(&self) -> Value {
        // SAFETY: per the type's contract the object is alive (its holder
        // marks it) and at its current address (its holder updates it).
        unsafe { Value::from_raw(self.get()) }
    }

    /// # Safety
    /// As [`GcRef::new`].
    #[inline]
    pub unsafe fn set(&self, v: VALUE) {
        self.0.store(v as usize, Ordering::Relaxed)
    }

    /// Back to nil (always safe: nil needs no marking).
    #[inline]
    pub fn clear(&self) {
        self.0.store(Qnil as usize, Ordering::Relaxed)
    }

    #[inline]
    pub fn is_nil(&self) -> bool {
        self.get() == Qnil as VALUE
    }

    /// For the dmark callback: marks the object as movable.
    #[inline]
    pub fn mark(&self, marker: &Marker) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            marker.mark_movable(self.value());
        }
    }

    /// For the dmark callback: marks the object and pins it, so compaction
    /// leaves it (and, for a String, its bytes) where it is. For objects whose
    /// memory we read through a raw pointer that outlives one call: since
    /// Ruby 3.2 compaction may move a heap String into a slot big enough to
    /// embed it, copy its bytes there and free the old buffer.
    #[inline]
    pub fn mark_pinned(&self, marker: &Marker) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            marker.mark(self.value());
        }
    }

    /// For the dcompact callback: follows the object to its new address.
    #[inline]
    pub fn update(&self, compactor: &Compactor) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            let moved = compactor.location(self.value());
            self.0.store(
                magnus::rb_sys::AsRawValue::as_raw(moved) as usize,
                Ordering::Relaxed,
            );
        }
    }
}

impl Clone for GcRef {
    fn clone(&self) -> Self {
        // The clone is held by a struct of the same kind, which marks it.
        GcRef(AtomicUsize::new(self.get() as usize))
    }
}

impl Default for GcRef {
    fn default() -> Self {
        GcRef::nil()
    }
}

/// Whether a GC callback of an object owned by Ractor `owner` (see
/// [`crate::runtime::ractor::current_id`]) may read the object's Rust state,
/// beyond its atomic [`GcRef`] slots.
///
/// GC callbacks do not only run inside a GC, with every Ractor stopped:
/// `ObjectSpace.memsize_of_all` calls `dsize`, and `reachable_objects_from`
/// calls `dmark`, from whichever Ractor asks, while the owner may be running
/// and changing that state (on Ruby 3.4 this is observable). So callbacks
/// read the state only inside a GC, or on the owner's own Ractor (which is
/// then running the callback, not changing the state); otherwise they look at
/// atomics only.
#[inline]
pub fn may_read_state(owner: u64) -> bool {
    in_gc() || super::ractor::known_current_id() == Some(owner)
}

/// True while the GC runs (every Ractor stopped at a safe point).
#[inline]
pub fn in_gc() -> bool {
    // SAFETY: plain C API query; it reads a flag.
    unsafe { rb_sys::rb_during_gc() != 0 }
}

/// A `RefCell`'s contents for a GC callback that [`may_read_state`], without
/// touching its (non-atomic) borrow flag. The code that owns the cell never
/// holds a mutable borrow of GC-visible state across a call into Ruby, where
/// the GC could run; a mutable borrow seen here is such a bug (caught by a
/// debug assertion; release builds skip the contents rather than read them
/// mid-change).
#[inline]
pub fn peek<T>(cell: &std::cell::RefCell<T>) -> Option<&T> {
    // SAFETY: per `may_read_state`, nothing changes the cell while the
    // callback runs; the reference does not outlive the callback.
    match unsafe { cell.try_borrow_unguarded() } {
        Ok(v) => Some(v),
        Err(_) => {
            debug_assert!(
                false,
                "GC-visible state mutably borrowed across a Ruby call"
            );
            None
        }
    }
}

/// A byte count the owner publishes for `dsize`, which may run on any Ractor
/// at any time (see [`may_read_state`]) and so reads only this.
#[derive(Default)]
pub struct Published(AtomicUsize);

impl Published {
    #[inline]
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed)
    }

    #[inline]
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}
