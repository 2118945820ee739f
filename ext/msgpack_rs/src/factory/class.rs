//! `MessagePack::Factory`: ext registrations that packers and unpackers
//! are created with. The Ruby side (lib/msgpack/factory.rb) normalises
//! `register_type` options; this file keeps the tables.
//!
//! Ractors: a factory may be shared between Ractors (a frozen one through
//! `Ractor.make_shareable`, and `DefaultFactory` always), so its tables sit
//! behind a lock and are swapped copy-on-write: packers and unpackers take a
//! reference-counted snapshot when created. The lock is never held while
//! Ruby code runs or allocates.
use crate::ext_types::registry::{
    PackRegistry, UnpackRegistry, FLAG_OPTIMIZED_SYMBOLS, FLAG_OVERSIZED_INTEGER, FLAG_RECURSIVE,
};
use crate::pack::packer::Packer;
use crate::runtime::errors;
use crate::runtime::ractor;
use crate::runtime::ruby;
use crate::unpack::unpacker::Unpacker;
use magnus::{
    method, prelude::*, rb_sys::AsRawValue, typed_data::Obj, value::ReprValue, DataTypeFunctions,
    Error, RArray, RHash, RModule, Ruby, TypedData, Value,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A snapshot of a factory's registrations.
#[derive(Default, Clone)]
pub struct Tables {
    pub pack: Arc<PackRegistry>,
    pub unpack: Arc<UnpackRegistry>,
    pub optimized_symbols: bool,
    /// Bumped on every change, so cached packers know when to refresh.
    pub generation: u64,
}

impl Tables {
    /// See [`Factory::has_unpackers`].
    pub fn needs_unpack_tables(&self) -> bool {
        !self.unpack.is_empty() || self.optimized_symbols
    }
}

#[derive(TypedData, Default)]
#[magnus(
    class = "MessagePack::Factory",
    mark,
    compact,
    size,
    free_immediately,
    frozen_shareable
)]
pub struct Factory {
    tables: RwLock<Tables>,
    /// Earlier versions of the tables that something may still use: a call
    /// in progress holds a snapshot taken before a registration, whose
    /// classes and procs must stay marked and follow compaction until it
    /// ends. (Packers and unpackers mark the version they hold themselves.)
    /// A version is dropped from here, at the next registration or
    /// snapshot, once this list holds its only reference: memory stays flat
    /// however often types are re-registered.
    retired: RwLock<Retired>,
    /// The current tables' generation, readable without the lock: per-Ractor
    /// packers check it on every `dump` and only take a snapshot (lock and
    /// shared reference counts, which bounce between cores) when it moved.
    current_generation: AtomicU64,
    /// Whether any unpack registration exists (readable without the lock).
    has_unpackers: AtomicBool,
}

#[derive(Default)]
struct Retired {
    pack: Vec<Arc<PackRegistry>>,
    unpack: Vec<Arc<UnpackRegistry>>,
}

impl Retired {
    /// Drops the versions nothing else holds any more.
    fn prune(&mut self) {
        self.pack.retain(|r| Arc::strong_count(r) > 1);
        self.unpack.retain(|r| Arc::strong_count(r) > 1);
    }

    fn heap_size(&self) -> usize {
        self.pack.iter().map(|r| r.heap_size()).sum::<usize>()
            + self.unpack.iter().map(|r| r.heap_size()).sum::<usize>()
            + (self.pack.capacity() + self.unpack.capacity()) * std::mem::size_of::<usize>()
    }
}

impl Factory {
    /// For the GC callbacks: the current tables and every retired version
    /// (all of them may still be in use, so the GC must see them all). The
    /// locks are atomic and never held across a Ruby call, so this is safe
    /// from any Ractor at any time; inside a GC they are always free.
    fn each_registry(
        &self,
        mut pack: impl FnMut(&PackRegistry),
        mut unpack: impl FnMut(&UnpackRegistry),
    ) {
        if let Ok(t) = self.tables.try_read() {
            pack(&t.pack);
            unpack(&t.unpack);
        }
        if let Ok(old) = self.retired.try_read() {
            old.pack.iter().for_each(|r| pack(r));
            old.unpack.iter().for_each(|r| unpack(r));
        }
    }
}

impl DataTypeFunctions for Factory {
    fn mark(&self, marker: &magnus::gc::Marker) {
        self.each_registry(|r| r.mark(marker), |r| r.mark(marker));
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        self.each_registry(
            |r| r.update_references(compactor),
            |r| r.update_references(compactor),
        );
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .tables
                .try_read()
                .map(|t| t.pack.heap_size() + t.unpack.heap_size())
                .unwrap_or(0)
            + self.retired.try_read().map(|r| r.heap_size()).unwrap_or(0)
    }
}

use errors::factory_poisoned as poisoned;

impl Factory {
    fn snapshot(&self) -> Result<Tables, Error> {
        self.tables
            .read()
            .map(|t| t.clone())
            .map_err(|_| poisoned())
    }

    pub fn tables(&self) -> Result<Tables, Error> {
        self.snapshot()
    }

    /// Whether unpacking needs the tables: an ext type is registered for
    /// unpacking, or Symbols are parsed natively (`optimized_symbols_parsing`).
    #[inline]
    pub fn has_unpackers(&self) -> bool {
        self.has_unpackers.load(Ordering::Acquire)
    }

    /// Generation of the current tables (see `current_generation`).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.current_generation.load(Ordering::Acquire)
    }

    fn initialize(&self, args: &[Value]) -> Result<(), Error> {
        if !args.is_empty() {
            return Err(errors::arg_error(format!(
                "wrong number of arguments ({} for 0)",
                args.len()
            )));
        }
        Ok(())
    }

    /// `dup`/`clone`. A copy made in another Ractor than the one that
    /// registered a callable that is not shareable gets nil there instead
    /// (as `registered_types` shows it): otherwise `Ractor.make_shareable`
    /// of the copy would reach, and freeze, that Ractor's Proc.
    fn initialize_copy(rb_self: Obj<Self>, other: Value) -> Result<Value, Error> {
        let other = <&Factory>::try_convert(other)?;
        let mut t = other.snapshot()?;
        if !t.pack.all_callable_here() {
            t.pack = Arc::new(t.pack.without_foreign_callables());
        }
        if !t.unpack.all_callable_here() {
            t.unpack = Arc::new(t.unpack.without_foreign_callables());
        }
        t.generation = next_generation();
        let generation = t.generation;
        let has_unpackers = t.needs_unpack_tables();
        *rb_self.tables.write().map_err(|_| poisoned())? = t;
        rb_self
            .has_unpackers
            .store(has_unpackers, Ordering::Release);
        rb_self
            .current_generation
            .store(generation, Ordering::Release);
        Ok(rb_self.as_value())
    }

    pub fn new_packer(&self, args: &[Value]) -> Result<Obj<Packer>, Error> {
        let reg = self.snapshot()?.pack;
        let p = ruby().obj_wrap(Packer::with_registry(reg));
        p.configure(args)?;
        Ok(p)
    }

    pub fn new_unpacker(&self, args: &[Value]) -> Result<Obj<Unpacker>, Error> {
        let t = self.snapshot()?;
        let u = ruby().obj_wrap(Unpacker::with_registry(t.unpack, t.optimized_symbols));
        u.configure(args)?;
        Ok(u)
    }

    fn packer(&self, args: &[Value]) -> Result<Obj<Packer>, Error> {
        self.new_packer(args)
    }

    fn unpacker(&self, args: &[Value]) -> Result<Obj<Unpacker>, Error> {
        self.new_unpacker(args)
    }

    /// `[{klass => [type, packer, flags]}, {type => [klass, unpacker, flags]}]`.
    /// Outside the main Ractor, callables that are not shareable show as nil
    /// (handing them to another Ractor would break isolation).
    fn registered_types_internal(&self) -> Result<RArray, Error> {
        let t = self.snapshot()?;
        let p = t.pack.to_hash()?;
        let u = t.unpack.to_hash()?;
        let ary = ruby().ary_new_capa(2);
        ary.push(p)?;
        ary.push(u)?;
        Ok(ary)
    }

    fn register_type_internal(
        rb_self: Obj<Self>,
        ty: Value,
        klass: Value,
        options: Value,
    ) -> Result<Value, Error> {
        if rb_self.is_frozen() {
            return Err(errors::frozen_error("MessagePack::Factory"));
        }
        let ty = crate::ext_types::registry::ext_type(ty)?;
        let klass_raw = crate::ext_types::registry::ext_class(klass)?;
        let ruby = ruby();
        let options = if options.is_nil() {
            None
        } else {
            Some(RHash::try_convert(options)?)
        };
        let get = |key: &str| options.and_then(|h| h.get(ruby.to_symbol(key)));
        let flag = |key: &str| get(key).map(|v| v.to_bool()).unwrap_or(false);
        let mut flags = 0u8;
        if flag("recursive") {
            flags |= FLAG_RECURSIVE;
        }
        if flag("oversized_integer_extension") {
            if klass_raw != ruby.class_integer().as_raw() {
                return Err(errors::arg_error(
                    "oversized_integer_extension: true is only for Integer class",
                ));
            }
            flags |= FLAG_OVERSIZED_INTEGER;
        }
        if flag("optimized_symbols_parsing") {
            flags |= FLAG_OPTIMIZED_SYMBOLS;
        }
        let nil = ruby.qnil().as_value();
        // Both sides are registered, a missing callable as nil (as the C
        // gem does): the type shows in registered_types either way.
        let packer = Some(get("packer").unwrap_or(nil));
        let unpacker = Some(get("unpacker").unwrap_or(nil));
        let packer_direct = crate::ext_types::registry::Direct::from_option(get("packer_call"))?;
        let unpacker_direct =
            crate::ext_types::registry::Direct::from_option(get("unpacker_call"))?;
        let owner = ractor::current_id();
        // SAFETY: live objects (the receiver and arguments of this call).
        if unsafe { ractor::is_shareable(rb_self.as_raw()) } && !ractor::in_main_ractor() {
            // Another Ractor may be reading this factory: only shareable
            // callables may go in from here.
            for c in [packer, unpacker].into_iter().flatten() {
                // SAFETY: as above.
                unsafe {
                    ractor::check_callable(c.as_raw(), || {
                        format!("the callable for ext type {ty}")
                    })?
                };
            }
        }
        let symbol_class = ruby.class_symbol().as_raw();
        let generation = next_generation();
        // Copy-on-write under one write lock (no Ruby calls inside), so
        // concurrent registrations from several Ractors cannot lose each
        // other's entries.
        let mut retired = rb_self.retired.write().map_err(|_| poisoned())?;
        let mut current = rb_self.tables.write().map_err(|_| poisoned())?;
        // Changed in place when nothing else holds the current version (a
        // loop of registrations is linear, not quadratic); otherwise copied,
        // and the version others hold stays marked (retired) until they let
        // go of it.
        if let Some(p) = packer {
            if Arc::strong_count(&current.pack) > 1 {
                retired.pack.push(current.pack.clone());
            }
            // SAFETY: live objects (arguments of this call); the factory
            // marks its registries.
            unsafe {
                Arc::make_mut(&mut current.pack).register(
                    ty,
                    klass_raw,
                    p.as_raw(),
                    packer_direct.clone(),
                    flags,
                    owner,
                )
            };
        }
        if let Some(u) = unpacker {
            if Arc::strong_count(&current.unpack) > 1 {
                retired.unpack.push(current.unpack.clone());
            }
            // SAFETY: as above.
            unsafe {
                Arc::make_mut(&mut current.unpack).register(
                    ty,
                    klass_raw,
                    u.as_raw(),
                    unpacker_direct.clone(),
                    flags,
                    owner,
                )
            };
        }
        if flags & FLAG_OPTIMIZED_SYMBOLS != 0 && klass_raw == symbol_class {
            current.optimized_symbols = true;
        }
        current.generation = generation;
        let has_unpackers = current.needs_unpack_tables();
        retired.prune();
        rb_self
            .has_unpackers
            .store(has_unpackers, Ordering::Release);
        rb_self
            .current_generation
            .store(generation, Ordering::Release);
        Ok(nil)
    }

    /// Freezes the factory; when every registered callable is shareable the
    /// factory becomes Ractor-shareable at once.
    fn freeze(rb_self: Obj<Self>) -> Result<Obj<Self>, Error> {
        // SAFETY: a live object this code just made or holds.
        unsafe { crate::runtime::raw::freeze(rb_self.as_raw()) };
        let t = rb_self.snapshot()?;
        if t.pack.all_shareable() && t.unpack.all_shareable() {
            // SAFETY: a frozen factory whose callables are all shareable:
            // every method of it is safe from any Ractor.
            unsafe { ractor::mark_shareable(rb_self.as_raw()) };
        }
        Ok(rb_self)
    }
}

/// Process-wide unique table versions: a cached packer compares the
/// generation it copied with its factory's current one.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn dump(rb_self: &Factory, args: &[Value]) -> Result<Value, Error> {
    let Some((obj, rest)) = args.split_first() else {
        return Err(errors::arg_error(
            "wrong number of arguments (given 0, expected 1+)",
        ));
    };
    crate::factory::one_shot::dump(rb_self, *obj, rest)
}

fn load(rb_self: &Factory, args: &[Value]) -> Result<Value, Error> {
    ruby().check_arity(args.len(), 1..=2)?;
    crate::factory::one_shot::load(
        rb_self,
        args[0],
        args.get(1).copied().filter(|v| !v.is_nil()),
    )
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Factory", ruby.class_object())?;
    class.define_alloc_func::<Factory>();
    class.define_method("initialize", method!(Factory::initialize, -1))?;
    class.define_method("initialize_copy", method!(Factory::initialize_copy, 1))?;
    class.define_method("packer", method!(Factory::packer, -1))?;
    class.define_method("unpacker", method!(Factory::unpacker, -1))?;
    class.define_method("freeze", method!(Factory::freeze, 0))?;
    class.define_method("dump", method!(dump, -1))?;
    class.define_method("pack", method!(dump, -1))?;
    class.define_method("load", method!(load, -1))?;
    class.define_method("unpack", method!(load, -1))?;
    class.define_method(
        "registered_types_internal",
        method!(Factory::registered_types_internal, 0),
    )?;
    class.define_private_method(
        "register_type_internal",
        method!(Factory::register_type_internal, 3),
    )?;
    // DefaultFactory stays unfrozen (apps register types on it at boot, as
    // with msgpack-ruby) yet must be readable from every Ractor: its methods
    // are lock-protected, so it is flagged shareable as it is.
    let default = ruby.obj_wrap(Factory::default());
    // SAFETY: see above; a live object just made.
    unsafe { ractor::mark_shareable(default.as_raw()) };
    module.const_set("DefaultFactory", default)?;
    crate::factory::one_shot::init(ruby, module, default.as_value())?;
    Ok(())
}
