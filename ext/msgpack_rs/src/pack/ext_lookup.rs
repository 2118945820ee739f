//! A packer's ext-type registrations as the packing walk sees them: the
//! registry snapshot, whether Symbols and Bignums need a lookup at all, and
//! a per-class cache of ancestor lookups. The walk gets this, not the
//! Packer.
use crate::ext_types::registry::{DirectCall, PackRegistry, FLAG_OVERSIZED_INTEGER};
use crate::runtime::gc_ref::{self, GcRef};
use crate::runtime::ruby;
use magnus::{rb_sys::AsRawValue, Value};
use std::cell::{Cell, Ref, RefCell};
use std::sync::Arc;

/// A registration found for an object being packed.
#[derive(Clone, Copy)]
pub struct ExtHit {
    pub ty: i8,
    pub klass: rb_sys::VALUE,
    pub packer: rb_sys::VALUE,
    pub direct: DirectCall,
    pub flags: u8,
    pub owner: u64,
}

#[derive(Default)]
pub struct ExtLookup {
    registry: RefCell<Arc<PackRegistry>>,
    /// Ancestor-lookup results by class (`None`: no registered ancestor).
    /// Cleared on every registration.
    cache: RefCell<Vec<(GcRef, Option<usize>)>>,
    has_symbol_ext: Cell<bool>,
    has_bigint_ext: Cell<bool>,
}

impl ExtLookup {
    /// Installs `registry` (a packer's own after `register_type`, or a
    /// factory's tables).
    pub fn install(&self, registry: Arc<PackRegistry>) {
        let symbol_class = ruby().class_symbol().as_raw();
        let has_symbol = registry
            .entries()
            .iter()
            .any(|e| e.klass.get() == symbol_class && !e.packer.is_nil());
        let has_bigint = registry
            .entries()
            .iter()
            .any(|e| e.flags & FLAG_OVERSIZED_INTEGER != 0 && !e.packer.is_nil());
        self.has_symbol_ext.set(has_symbol);
        self.has_bigint_ext.set(has_bigint);
        if let Ok(mut r) = self.registry.try_borrow_mut() {
            *r = registry;
        }
        self.clear_cache();
    }

    /// The registry, for `registered_types` and `register_type`.
    pub fn registry(&self) -> Option<Ref<'_, Arc<PackRegistry>>> {
        self.registry.try_borrow().ok()
    }

    #[inline]
    pub fn has_symbol_ext(&self) -> bool {
        self.has_symbol_ext.get()
    }

    #[inline]
    pub fn has_bigint_ext(&self) -> bool {
        self.has_bigint_ext.get()
    }

    fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.try_borrow_mut() {
            c.clear();
        }
    }

    /// Gives the cache's memory back when it holds more than `keep`
    /// entries' worth (0: always).
    pub fn release_cache(&self, keep: usize) {
        if let Ok(mut c) = self.cache.try_borrow_mut() {
            if keep == 0 || c.capacity() > keep {
                *c = Vec::new();
            }
        }
    }

    /// Looks up the ext registration for `obj` (exact class, real class,
    /// then the first registered ancestor, cached).
    pub fn lookup(&self, obj: Value) -> Option<ExtHit> {
        let reg = self.registry.try_borrow().ok()?;
        if reg.is_empty() {
            return None;
        }
        let raw_obj = obj.as_raw();
        // SAFETY: a live object (or immediate) the caller holds.
        let klass = unsafe { crate::runtime::raw::class_of(raw_obj) };
        // SAFETY: a live object (or immediate) the caller holds.
        let real = unsafe { crate::runtime::raw::obj_class(raw_obj) };
        let found = reg
            .find_exact(klass)
            .or_else(|| {
                if real != klass {
                    reg.find_exact(real)
                } else {
                    None
                }
            })
            .or_else(|| {
                if klass != real {
                    // Singleton classes are per object: not worth caching.
                    return reg.find_ancestor(klass);
                }
                if let Ok(cache) = self.cache.try_borrow() {
                    if let Some((_, hit)) = cache.iter().find(|(k, _)| k.get() == real) {
                        return *hit;
                    }
                }
                let hit = reg.find_ancestor(real);
                if let Ok(mut cache) = self.cache.try_borrow_mut() {
                    if cache.len() < 256 {
                        // SAFETY: a live class; the packer marks this
                        // cache (`ExtLookup::mark`).
                        cache.push((unsafe { GcRef::new(real) }, hit));
                    }
                }
                hit
            })?;
        let e = reg.get(found)?;
        if e.packer.is_nil() {
            return None;
        }
        Some(ExtHit {
            ty: e.ty,
            klass: e.klass.get(),
            packer: e.packer.get(),
            direct: e.direct.call(),
            flags: e.flags,
            owner: e.owner,
        })
    }

    /// For the owner's dmark callback (when it may read its state).
    pub fn mark(&self, marker: &magnus::gc::Marker) {
        if let Some(r) = gc_ref::peek(&self.registry) {
            r.mark(marker);
        }
        if let Some(c) = gc_ref::peek(&self.cache) {
            for (k, _) in c.iter() {
                k.mark(marker);
            }
        }
    }

    /// For the owner's dcompact callback.
    pub fn update(&self, compactor: &magnus::gc::Compactor) {
        if let Some(r) = gc_ref::peek(&self.registry) {
            r.update_references(compactor);
        }
        if let Some(c) = gc_ref::peek(&self.cache) {
            for (k, _) in c.iter() {
                k.update(compactor);
            }
        }
    }
}
