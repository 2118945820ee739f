//! Registered extension types: the pack side (class -> type id + packer) and
//! the unpack side (type id -> class + unpacker).
//!
//! Every Ruby object in here is a [`GcRef`], marked movable and updated on
//! compaction by whoever owns the registry.
use crate::runtime::errors;
use crate::runtime::gc_ref::GcRef;
use crate::runtime::ractor::{callable_here, check_callable_owned};
use crate::runtime::raw;
use magnus::{
    rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, Integer, RClass, RHash,
    RModule, Value,
};
use rb_sys::VALUE;

/// How to call a registered packer or unpacker without going through its
/// Proc: what the C gem's `Method#to_proc` / `Symbol#to_proc` would do, minus
/// a Proc call and (for Method registrations, which Ractors need wrapped in
/// `lambda { |*args| recv.__send__(name, *args) }`) an argument Array per
/// call. Set by `Factory#register_type` (msgpack/factory.rb).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DirectKind {
    /// Call the Proc.
    None,
    /// `obj.public_send(mid, *extra)` (a Symbol packer: `Symbol#to_proc`).
    Public,
    /// `method.call(obj, *extra)` of the registered Method object (bound
    /// when registered, as the C gem's `Method#to_proc`). A Method is never
    /// shareable: only the Ractor that registered it calls it this way;
    /// others call the Proc.
    Method,
    /// `receiver.__send__(mid, obj, *extra)`: a Method of a shareable
    /// receiver (a Module), registered as a shareable lambda doing exactly
    /// this, so that the factory stays shareable (a Method object would
    /// not be).
    Send,
}

/// A registration's direct call, as stored (receiver kept GC-visible).
#[derive(Clone)]
pub struct Direct {
    pub kind: DirectKind,
    pub receiver: GcRef,
    pub mid: rb_sys::ID,
}

impl Default for Direct {
    fn default() -> Self {
        Direct {
            kind: DirectKind::None,
            receiver: GcRef::nil(),
            mid: 0,
        }
    }
}

/// A direct call as taken out for one call (see [`Direct`]).
#[derive(Clone, Copy)]
pub struct DirectCall {
    pub kind: DirectKind,
    pub receiver: VALUE,
    pub mid: rb_sys::ID,
}

impl Direct {
    pub fn call(&self) -> DirectCall {
        DirectCall {
            kind: self.kind,
            receiver: self.receiver.get(),
            mid: self.mid,
        }
    }

    /// From `register_type`'s `packer_call:`/`unpacker_call:` option: a
    /// Method object, `[receiver, name]` (sent to a shareable receiver), or a
    /// method name Symbol (sent to the object); anything else (nil): no
    /// direct call.
    pub fn from_option(v: Option<Value>) -> Result<Direct, Error> {
        let Some(v) = v else {
            return Ok(Direct::default());
        };
        if let Some(ary) = magnus::RArray::from_value(v) {
            if ary.len() != 2 {
                return Ok(Direct::default());
            }
            let receiver: Value = ary.entry(0)?;
            let name: magnus::Symbol = ary.entry(1)?;
            // SAFETY: a live Symbol (see below).
            let mid = unsafe { rb_sys::rb_sym2id(name.as_raw()) };
            return Ok(Direct {
                kind: DirectKind::Send,
                // SAFETY: a live object; a Direct is held by a registry
                // entry, whose holder marks it (`Direct::mark`).
                receiver: unsafe { GcRef::new(receiver.as_raw()) },
                mid,
            });
        }
        if let Some(name) = magnus::Symbol::from_value(v) {
            // SAFETY: a live Symbol; method names are static Symbols (or
            // become one, as any method name does).
            let mid = unsafe { rb_sys::rb_sym2id(name.as_raw()) };
            return Ok(Direct {
                kind: DirectKind::Public,
                receiver: GcRef::nil(),
                mid,
            });
        }
        // SAFETY: type check of a live object.
        if unsafe { rb_sys::rb_obj_is_method(v.as_raw()) } == raw::TRUE {
            return Ok(Direct {
                kind: DirectKind::Method,
                // SAFETY: as for `Send` above.
                receiver: unsafe { GcRef::new(v.as_raw()) },
                mid: 0,
            });
        }
        Ok(Direct::default())
    }

    fn mark(&self, marker: &magnus::gc::Marker) {
        self.receiver.mark(marker);
    }

    fn update(&self, compactor: &magnus::gc::Compactor) {
        self.receiver.update(compactor);
    }
}

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

/// `callable.call(*args)`, protected. A Proc is called directly (as the C
/// gem does), without a method lookup of `call`: ext procs run once per
/// packed or unpacked object.
fn call_callable(callable: VALUE, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    // SAFETY: `callable` is a live object from a registry.
    let is_proc = unsafe { rb_sys::rb_obj_is_proc(callable) } == crate::runtime::raw::TRUE;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live arguments in `argv`, which outlives the call; errors
        // are caught by `protect`.
        unsafe {
            if is_proc {
                rb_sys::rb_proc_call_with_block(
                    callable,
                    argc,
                    argv.as_ptr(),
                    crate::runtime::raw::NIL,
                )
            } else {
                rb_sys::rb_funcallv(callable, call_id(), argc, argv.as_ptr())
            }
        }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

static CALL_ID: std::sync::OnceLock<rb_sys::ID> = std::sync::OnceLock::new();

/// The ID of `call` (looked up once; IDs of static names never change).
fn call_id() -> rb_sys::ID {
    // SAFETY: rb_intern of a NUL-terminated static name.
    *CALL_ID.get_or_init(|| unsafe { rb_sys::rb_intern(c"call".as_ptr()) })
}

/// Resolves `call`'s ID at load time, while only the main Ractor runs.
pub fn init() {
    let _ = call_id();
}

fn describe(side: &str, ty: i8, klass: VALUE) -> String {
    // SAFETY: a live class from a registry.
    let k = unsafe { Value::from_raw(klass) };
    format!("the {side} registered for ext type {ty} ({k})")
}

/// Calls a registered packer: through its direct call when it has one, a
/// Symbol names a method of `obj` (called with `extra`), anything else gets
/// `call(obj, *extra)`.
///
/// # Safety
/// `callable`, `klass` and `direct`'s receiver must be live (taken from a
/// registry entry its holder marks, and not kept past this call).
pub unsafe fn call_packer(
    callable: VALUE,
    direct: DirectCall,
    ty: i8,
    klass: VALUE,
    owner: u64,
    obj: Value,
    extra: &[Value],
) -> Result<Value, Error> {
    // SAFETY: per the contract.
    unsafe { check_callable_owned(callable, owner, || describe("packer", ty, klass))? };
    // At most the object and the packer: no allocation for the arguments.
    let mut argv = [raw::NIL; 2];
    let n = 1 + extra.len().min(1);
    argv[0] = obj.as_raw();
    if let Some(e) = extra.first() {
        argv[1] = e.as_raw();
    }
    match direct.kind {
        DirectKind::Public => return call_direct(obj.as_raw(), direct.mid, &argv[1..n]),
        // SAFETY: per the contract.
        DirectKind::Method if unsafe { callable_here(direct.receiver, owner) } => {
            return call_method(direct.receiver, &argv[..n]);
        }
        DirectKind::Send => return call_send(direct.receiver, direct.mid, &argv[..n]),
        _ => {}
    }
    // SAFETY: `callable` is a live object from a registry.
    let c = unsafe { Value::from_raw(callable) };
    if let Some(sym) = magnus::Symbol::from_value(c) {
        obj.funcall(sym, extra)
    } else {
        call_callable(callable, &argv[..n])
    }
}

/// Calls a registered unpacker: through its direct call when it has one, a
/// Symbol names a class method of `klass`, anything else gets `call(arg)`.
///
/// # Safety
/// As [`call_packer`].
pub unsafe fn call_unpacker(
    callable: VALUE,
    direct: DirectCall,
    ty: i8,
    klass: VALUE,
    owner: u64,
    arg: Value,
) -> Result<Value, Error> {
    // SAFETY: per the contract.
    unsafe { check_callable_owned(callable, owner, || describe("unpacker", ty, klass))? };
    let argv = [arg.as_raw()];
    match direct.kind {
        DirectKind::Public => return call_direct(arg.as_raw(), direct.mid, &[]),
        // SAFETY: per the contract.
        DirectKind::Method if unsafe { callable_here(direct.receiver, owner) } => {
            return call_method(direct.receiver, &argv);
        }
        DirectKind::Send => return call_send(direct.receiver, direct.mid, &argv),
        _ => {}
    }
    // SAFETY: live objects from a registry.
    let (c, k) = unsafe { (Value::from_raw(callable), Value::from_raw(klass)) };
    if let Some(sym) = magnus::Symbol::from_value(c) {
        k.funcall(sym, (arg,))
    } else {
        call_callable(callable, &argv)
    }
}

/// `receiver.public_send(mid, *argv)`, protected.
fn call_direct(receiver: VALUE, mid: rb_sys::ID, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live receiver and arguments (argv outlives the call);
        // errors are caught by `protect`.
        unsafe { rb_sys::rb_funcallv_public(receiver, mid, argc, argv.as_ptr()) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

/// `receiver.__send__(mid, *argv)`, protected.
fn call_send(receiver: VALUE, mid: rb_sys::ID, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: live receiver and arguments (argv outlives the call);
        // errors are caught by `protect`.
        unsafe { rb_sys::rb_funcallv(receiver, mid, argc, argv.as_ptr()) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}

/// `method.call(*argv)` of a Method object, protected.
fn call_method(method: VALUE, argv: &[VALUE]) -> Result<Value, Error> {
    let argc = argv.len() as std::os::raw::c_int;
    let r = magnus::rb_sys::protect(|| {
        // SAFETY: a live Method object and arguments (argv outlives the
        // call); errors are caught by `protect`.
        unsafe { rb_sys::rb_method_call(argc, argv.as_ptr(), method) }
    })?;
    // SAFETY: a live object just returned.
    Ok(unsafe { Value::from_raw(r) })
}
