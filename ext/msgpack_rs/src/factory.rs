//! `MessagePack::Factory`: ext registrations that packers and unpackers
//! are created with. The Ruby side (lib/msgpack/factory.rb) normalises
//! `register_type` options; this file keeps the tables.
use crate::errors::{self, ruby};
use crate::ext_registry::{
    self, PackRegistry, UnpackRegistry, FLAG_OPTIMIZED_SYMBOLS, FLAG_OVERSIZED_INTEGER,
    FLAG_RECURSIVE,
};
use crate::packer::Packer;
use crate::unpacker::Unpacker;
use magnus::{
    method, prelude::*, rb_sys::AsRawValue, typed_data::Obj, value::ReprValue, DataTypeFunctions,
    Error, RArray, RHash, RModule, Ruby, TypedData, Value,
};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

#[derive(TypedData, Default)]
#[magnus(class = "MessagePack::Factory", mark, compact, size, free_immediately)]
pub struct Factory {
    pack: RefCell<PackRegistry>,
    unpack: RefCell<Arc<UnpackRegistry>>,
    optimized_symbols: Cell<bool>,
}

impl DataTypeFunctions for Factory {
    fn mark(&self, _: &magnus::gc::Marker) {
        if let Ok(p) = self.pack.try_borrow() {
            p.mark();
        }
        if let Ok(u) = self.unpack.try_borrow() {
            u.mark();
        }
    }
    fn compact(&self, _: &magnus::gc::Compactor) {
        if let Ok(p) = self.pack.try_borrow() {
            p.update_references();
        }
        if let Ok(u) = self.unpack.try_borrow() {
            u.update_references();
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

fn busy() -> Error {
    errors::error(errors::Kind::Unpack, "Factory is in use")
}

impl Factory {
    fn initialize(&self, args: &[Value]) -> Result<(), Error> {
        if !args.is_empty() {
            return Err(errors::arg_error(format!(
                "wrong number of arguments ({} for 0)",
                args.len()
            )));
        }
        Ok(())
    }

    fn initialize_copy(rb_self: Obj<Self>, other: Value) -> Result<Value, Error> {
        let other = <&Factory>::try_convert(other)?;
        let pack = other.pack.try_borrow().map_err(|_| busy())?.clone();
        let unpack = other.unpack.try_borrow().map_err(|_| busy())?.clone();
        *rb_self.pack.try_borrow_mut().map_err(|_| busy())? = pack;
        *rb_self.unpack.try_borrow_mut().map_err(|_| busy())? = unpack;
        rb_self.optimized_symbols.set(other.optimized_symbols.get());
        Ok(rb_self.as_value())
    }

    pub fn new_packer(&self, args: &[Value]) -> Result<Obj<Packer>, Error> {
        let reg = self.pack.try_borrow().map_err(|_| busy())?.clone();
        let p = ruby().obj_wrap(Packer::with_registry(reg));
        p.configure(args)?;
        Ok(p)
    }

    pub fn new_unpacker(&self, args: &[Value]) -> Result<Obj<Unpacker>, Error> {
        let reg = self.unpack.try_borrow().map_err(|_| busy())?.clone();
        let u = ruby().obj_wrap(Unpacker::with_registry(reg, self.optimized_symbols.get()));
        u.configure(args)?;
        Ok(u)
    }

    fn packer(&self, args: &[Value]) -> Result<Obj<Packer>, Error> {
        self.new_packer(args)
    }

    fn unpacker(&self, args: &[Value]) -> Result<Obj<Unpacker>, Error> {
        self.new_unpacker(args)
    }

    fn registered_types_internal(&self) -> Result<RArray, Error> {
        let p = self.pack.try_borrow().map_err(|_| busy())?.to_hash()?;
        let u = self.unpack.try_borrow().map_err(|_| busy())?.to_hash()?;
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
        let ty = ext_registry::ext_type(ty)?;
        let klass_raw = ext_registry::ext_class(klass)?;
        let ruby = ruby();
        let options = if options.is_nil() {
            None
        } else {
            Some(RHash::try_convert(options)?)
        };
        let get = |key: &str| options.and_then(|h| h.get(ruby.to_symbol(key)));
        let has = |key: &str| match options {
            None => true,
            Some(h) => h
                .funcall::<_, _, bool>("key?", (ruby.to_symbol(key),))
                .unwrap_or(false),
        };
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
        if has("packer") {
            let packer = get("packer").unwrap_or(nil);
            rb_self
                .pack
                .try_borrow_mut()
                .map_err(|_| busy())?
                .register(ty, klass_raw, packer.as_raw(), flags);
        }
        if has("unpacker") {
            let unpacker = get("unpacker").unwrap_or(nil);
            let mut reg = rb_self.unpack.try_borrow_mut().map_err(|_| busy())?;
            Arc::make_mut(&mut reg).register(ty, klass_raw, unpacker.as_raw(), flags);
        }
        if flags & FLAG_OPTIMIZED_SYMBOLS != 0 && klass_raw == ruby.class_symbol().as_raw() {
            rb_self.optimized_symbols.set(true);
        }
        Ok(nil)
    }

    fn freeze(rb_self: Obj<Self>) -> Obj<Self> {
        crate::raw::freeze(rb_self.as_raw());
        rb_self
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Factory", ruby.class_object())?;
    class.define_alloc_func::<Factory>();
    class.define_method("initialize", method!(Factory::initialize, -1))?;
    class.define_method("initialize_copy", method!(Factory::initialize_copy, 1))?;
    class.define_method("packer", method!(Factory::packer, -1))?;
    class.define_method("unpacker", method!(Factory::unpacker, -1))?;
    class.define_method("freeze", method!(Factory::freeze, 0))?;
    class.define_method(
        "registered_types_internal",
        method!(Factory::registered_types_internal, 0),
    )?;
    class.define_private_method(
        "register_type_internal",
        method!(Factory::register_type_internal, 3),
    )?;
    Ok(())
}
