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
