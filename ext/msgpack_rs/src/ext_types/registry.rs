//! Registered extension types: the pack side (class -> type id + packer) and
//! the unpack side (type id -> class + unpacker).
//!
//! Every Ruby object in here is a [`GcRef`], marked movable and updated on
//! compaction by whoever owns the registry.
use crate::runtime::errors;
use crate::runtime::gc_ref::GcRef;
use crate::runtime::raw;
use magnus::{
    rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Integer, RClass, RHash,
    RModule, Value,
};
use rb_sys::VALUE;

pub use super::call::{call_packer, call_unpacker, init, Direct, DirectCall};

pub const FLAG_RECURSIVE: u8 = 1;
pub const FLAG_OVERSIZED_INTEGER: u8 = 2;
pub const FLAG_OPTIMIZED_SYMBOLS: u8 = 4;
/// Validates an ext type id: an Integer in -128..127.
pub fn ext_type(v: Value) -> Result<i8, Error> {
    let Some(i) = Integer::from_value(v) else {
        return Err(errors::wrong_type(v, "Integer"));
    };
    let n = i.to_i64().unwrap_or(i64::MAX);
    i8::try_from(n).map_err(|_| errors::integer_too_big(n, "signed char"))
}

/// Validates a Class/Module argument.
pub fn ext_class(v: Value) -> Result<VALUE, Error> {
    if RModule::from_value(v).is_some() || RClass::from_value(v).is_some() {
        Ok(v.as_raw())
    } else {
        Err(errors::not_a_module(v))
    }
}

#[derive(Clone)]
pub struct PackEntry {
    pub klass: GcRef,
    pub ty: i8,
    /// A Proc, a Method, or a Symbol naming a method of the object.
    pub packer: GcRef,
    pub direct: Direct,
    pub flags: u8,
    /// The Ractor that registered it (`crate::runtime::ractor::current_id`).
    pub owner: u64,
}

/// Pack-side registrations, in insertion order (the order ancestor lookup
/// tries them, as in msgpack-ruby).
#[derive(Default, Clone)]
pub struct PackRegistry {
    entries: Vec<PackEntry>,
}

impl PackRegistry {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<PackEntry>()
    }

    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// Registers (or replaces, keeping its position) the entry for `klass`.
    ///
    /// # Safety
    /// `klass` and `packer` must be live objects (or immediates); the
    /// registry's holder marks them from now on.
    pub unsafe fn register(
        &mut self,
        ty: i8,
        klass: VALUE,
        packer: VALUE,
        direct: Direct,
        flags: u8,
        owner: u64,
    ) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.klass.get() == klass) {
            e.ty = ty;
            // SAFETY: per the contract.
            unsafe { e.packer.set(packer) };
            e.direct = direct;
            e.flags = flags;
            e.owner = owner;
        } else {
            // SAFETY: per the contract.
            let (klass, packer) = unsafe { (GcRef::new(klass), GcRef::new(packer)) };
            self.entries.push(PackEntry {
                klass,
                ty,
                packer,
                direct,
                flags,
                owner,
            });
        }
    }

    /// Every registered callable may be called from any Ractor.
    pub fn all_shareable(&self) -> bool {
        self.entries
            .iter()
            .all(|e| crate::runtime::ractor::held_is_shareable(&e.packer))
    }

    /// Whether the current Ractor may call every registered callable.
    pub fn all_callable_here(&self) -> bool {
        self.entries
            .iter()
            .all(|e| crate::runtime::ractor::held_callable_here(&e.packer, e.owner))
    }

    /// A copy with nil for the callables the current Ractor may not call.
    pub fn without_foreign_callables(&self) -> PackRegistry {
        let mut copy = self.clone();
        for e in &mut copy.entries {
            if !crate::runtime::ractor::held_callable_here(&e.packer, e.owner) {
                e.packer.clear();
                e.direct = Direct::default();
            }
        }
        copy
    }

    pub fn find_exact(&self, klass: VALUE) -> Option<usize> {
        self.entries.iter().position(|e| e.klass.get() == klass)
    }

    /// The first entry whose class or module is an ancestor of `klass`.
    pub fn find_ancestor(&self, klass: VALUE) -> Option<usize> {
        self.entries.iter().position(|e| {
            // SAFETY: both are live classes/modules; `Module#<=` on them
            // cannot raise.
            unsafe { rb_sys::rb_class_inherited_p(klass, e.klass.get()) == raw::TRUE }
        })
    }

    pub fn get(&self, idx: usize) -> Option<&PackEntry> {
        self.entries.get(idx)
    }

    /// `{klass => [type, packer, flags]}`.
    pub fn to_hash(&self) -> Result<RHash, Error> {
        let h = crate::runtime::ruby().hash_new();
        for e in &self.entries {
            // SAFETY: live objects kept alive by the owner's mark callback.
            let (k, p) = unsafe {
                (
                    Value::from_raw(e.klass.get()),
                    Value::from_raw(e.packer.get()),
                )
            };
            let p = if !crate::runtime::ractor::held_callable_here(&e.packer, e.owner) {
                crate::runtime::ruby().qnil().as_value()
            } else {
                p
            };
            h.aset(k, (e.ty as i64, p, e.flags as i64))?;
        }
        Ok(h)
    }

    pub fn mark(&self, marker: &magnus::gc::Marker) {
        for e in &self.entries {
            e.klass.mark(marker);
            e.packer.mark(marker);
            e.direct.mark(marker);
        }
    }

    pub fn update_references(&self, compactor: &magnus::gc::Compactor) {
        for e in &self.entries {
            e.klass.update(compactor);
            e.packer.update(compactor);
            e.direct.update(compactor);
        }
    }
}

#[derive(Clone)]
pub struct UnpackEntry {
    pub klass: GcRef,
    /// A Proc, a Method, or a Symbol naming a class method of `klass`.
    pub unpacker: GcRef,
    pub direct: Direct,
    pub flags: u8,
    /// The Ractor that registered it (`crate::runtime::ractor::current_id`).
    pub owner: u64,
}

impl UnpackEntry {
    /// Calls this entry's unpacker for ext `ty` with `arg` (the payload, or
    /// the Unpacker for a recursive type).
    pub fn call(&self, ty: i8, arg: Value) -> Result<Value, Error> {
        // SAFETY: GcRefs hold live objects (their contract: the registry's
        // holder marks them).
        unsafe {
            call_unpacker(
                self.unpacker.get(),
                self.direct.call(),
                ty,
                self.klass.get(),
                self.owner,
                arg,
            )
        }
    }
}

/// Unpack-side registrations: a 256-slot table indexed by type id, shared
/// copy-on-write between a factory and its unpackers.
#[derive(Clone)]
pub struct UnpackRegistry {
    slots: Vec<Option<UnpackEntry>>,
    count: usize,
}

/// Empty until the first registration, so creating factories and
/// unpackers allocates nothing for the table.
impl Default for UnpackRegistry {
    fn default() -> Self {
        UnpackRegistry {
            slots: Vec::new(),
            count: 0,
        }
    }
}

impl UnpackRegistry {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn heap_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<UnpackEntry>>()
    }

    #[inline]
    pub fn get(&self, ty: i8) -> Option<&UnpackEntry> {
        self.slots.get(ty as u8 as usize).and_then(|s| s.as_ref())
    }

    /// Registers (or replaces) the entry for `ty`.
    ///
    /// # Safety
    /// As [`PackRegistry::register`].
    pub unsafe fn register(
        &mut self,
        ty: i8,
        klass: VALUE,
        unpacker: VALUE,
        direct: Direct,
        flags: u8,
        owner: u64,
    ) {
        if self.slots.is_empty() {
            self.slots = vec![None; 256];
        }
        if let Some(slot) = self.slots.get_mut(ty as u8 as usize) {
            if slot.is_none() {
                self.count += 1;
            }
            // SAFETY: per the contract.
            let (klass, unpacker) = unsafe { (GcRef::new(klass), GcRef::new(unpacker)) };
            *slot = Some(UnpackEntry {
                klass,
                unpacker,
                direct,
                flags,
                owner,
            });
        }
    }

    /// Every registered callable may be called from any Ractor.
    pub fn all_shareable(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .all(|e| crate::runtime::ractor::held_is_shareable(&e.unpacker))
    }

    /// Whether the current Ractor may call every registered callable.
    pub fn all_callable_here(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .all(|e| crate::runtime::ractor::held_callable_here(&e.unpacker, e.owner))
    }

    /// A copy with nil for the callables the current Ractor may not call.
    pub fn without_foreign_callables(&self) -> UnpackRegistry {
        let mut copy = self.clone();
        for e in copy.slots.iter_mut().flatten() {
            if !crate::runtime::ractor::held_callable_here(&e.unpacker, e.owner) {
                e.unpacker.clear();
                e.direct = Direct::default();
            }
        }
        copy
    }

    /// `{type => [klass, unpacker, flags]}`.
    pub fn to_hash(&self) -> Result<RHash, Error> {
        let h = crate::runtime::ruby().hash_new();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(e) = slot {
                // SAFETY: live objects kept alive by the owner's mark callback.
                let (k, u) = unsafe {
                    (
                        Value::from_raw(e.klass.get()),
                        Value::from_raw(e.unpacker.get()),
                    )
                };
                let u = if !crate::runtime::ractor::held_callable_here(&e.unpacker, e.owner) {
                    crate::runtime::ruby().qnil().as_value()
                } else {
                    u
                };
                h.aset(i as u8 as i8 as i64, (k, u, e.flags as i64))?;
            }
        }
        Ok(h)
    }

    pub fn mark(&self, marker: &magnus::gc::Marker) {
        for e in self.slots.iter().flatten() {
            e.klass.mark(marker);
            e.unpacker.mark(marker);
            e.direct.mark(marker);
        }
    }

    pub fn update_references(&self, compactor: &magnus::gc::Compactor) {
        for e in self.slots.iter().flatten() {
            e.klass.update(compactor);
            e.unpacker.update(compactor);
            e.direct.update(compactor);
        }
    }
}
