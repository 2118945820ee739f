//! A Ruby object reference held in Rust memory, visible to the GC.
//!
//! The slot is an atomic word so the GC's mark and compact callbacks can read
//! and update it through a shared reference while Rust code holds other
//! shared borrows of the same struct: that keeps the compaction update sound
//! without `&mut` aliasing, and makes the owning struct `Send + Sync` for
//! magnus and for Ractor-shared frozen factories.
use rb_sys::{special_consts::Qnil, VALUE};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct GcRef(AtomicUsize);

impl GcRef {
    pub const fn nil() -> Self {
        GcRef(AtomicUsize::new(Qnil as usize))
    }

    pub fn new(v: VALUE) -> Self {
        GcRef(AtomicUsize::new(v as usize))
    }

    #[inline]
    pub fn get(&self) -> VALUE {
        self.0.load(Ordering::Relaxed) as VALUE
    }

    #[inline]
    pub fn set(&self, v: VALUE) {
        self.0.store(v as usize, Ordering::Relaxed)
    }

    #[inline]
    pub fn is_nil(&self) -> bool {
        self.get() == Qnil as VALUE
    }

    /// For the dmark callback: marks the object as movable.
    #[inline]
    pub fn mark(&self) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            // SAFETY: called only from a GC mark callback, with a live object
            // this struct keeps alive.
            unsafe { rb_sys::rb_gc_mark_movable(v) }
        }
    }

    /// For the dcompact callback: follows the object to its new address.
    #[inline]
    pub fn update(&self) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            // SAFETY: called only from a GC compact callback for an object we
            // marked movable; rb_gc_location neither allocates nor raises.
            self.set(unsafe { rb_sys::rb_gc_location(v) })
        }
    }
}

impl Clone for GcRef {
    fn clone(&self) -> Self {
        GcRef::new(self.get())
    }
}

impl Default for GcRef {
    fn default() -> Self {
        GcRef::nil()
    }
}

impl GcRef {
    /// For the dmark callback: marks the object and pins it, so compaction
    /// leaves it (and, for a String, its bytes) where it is. For objects whose
    /// memory we read through a raw pointer that outlives one call: since
    /// Ruby 3.2 compaction may move a heap String into a slot big enough to
    /// embed it, copy its bytes there and free the old buffer.
    #[inline]
    pub fn mark_pinned(&self) {
        let v = self.get();
        if !rb_sys::SPECIAL_CONST_P(v) {
            // SAFETY: called only from a GC mark callback, with a live object
            // this struct keeps alive.
            unsafe { rb_sys::rb_gc_mark(v) }
        }
    }
}

/// Whether a GC callback of an object owned by Ractor `owner` (see
/// [`crate::ractor::current_id`]) may read the object's Rust state, beyond
/// its atomic [`GcRef`] slots.
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
    // SAFETY: plain C API query; it reads a flag.
    let in_gc = unsafe { rb_sys::rb_during_gc() } != 0;
    in_gc || crate::ractor::known_current_id() == Some(owner)
}

/// A `RefCell`'s contents for a GC callback that [`may_read_state`], without
/// touching its (non-atomic) borrow flag. The code that owns the cell never
/// holds a mutable borrow of GC-visible state across a call into Ruby, where
/// the GC could run; a mutable borrow seen here is such a bug.
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
