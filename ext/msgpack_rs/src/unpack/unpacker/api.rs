//! The rest of `MessagePack::Unpacker`'s Ruby methods (feeding, `each`,
//! `reset`, options, registrations) and the class's definition.
use super::*;

impl Unpacker {
    pub fn feed(rb_self: Value, data: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let s = RString::try_convert(data)?;
        this.check_feedable()?;
        this.buf.feed_string(s)?;
        Ok(rb_self)
    }

    /// Yields every complete object; stops quietly at incomplete data (and
    /// at the end of the IO). No read runs while the block does.
    fn each(rb_self: Value) -> Result<Value, Error> {
        if !ruby().block_given() {
            return Ok(rb_self.enumeratorize("each", ()).as_value());
        }
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        loop {
            let got = match this.read_value(rb_self) {
                Ok(g) => g,
                Err(e) if e.is_kind_of(ruby().exception_eof_error()) && this.buf.io().is_some() => {
                    break;
                }
                Err(e) => return Err(e),
            };
            match got {
                Got::Value(v) => {
                    let _: Value = ruby().yield_value(v)?;
                }
                Got::NeedMore => break,
            }
        }
        Ok(ruby().qnil().as_value())
    }

    fn feed_each(rb_self: Value, data: Value) -> Result<Value, Error> {
        if !ruby().block_given() {
            return Ok(rb_self.enumeratorize("feed_each", (data,)).as_value());
        }
        Self::feed(rb_self, data)?;
        Self::each(rb_self)
    }

    /// Drops the buffer and any partial object. Refused (nothing changes)
    /// while a read runs: from an ext proc it is reading for, or from
    /// another thread.
    fn reset(&self) -> Result<(), Error> {
        self.check_idle()?;
        {
            let mut d = self.decoder.try_borrow_mut().map_err(|_| reentrant())?;
            d.reset();
            self.decoder_bytes.set(d.heap_size());
        }
        self.values.truncate(0);
        self.buf.clear()
    }

    /// Reads one object and requires the current chunk to be fully used.
    pub fn full_unpack(rb_self: Value) -> Result<Value, Error> {
        let v = Self::read(rb_self)?;
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let extra = this.buf.q()?.front().len();
        check_nothing_left(extra)?;
        Ok(v)
    }

    fn buffer(rb_self: Obj<Self>) -> Result<Value, Error> {
        if rb_self.view.is_nil() {
            let v = new_view(rb_self)?;
            // SAFETY: a live object just made; the unpacker marks `view`.
            unsafe { rb_self.view.set(v.as_raw()) };
        }
        // SAFETY: kept alive by our mark callback.
        Ok(unsafe { Value::from_raw(rb_self.view.get()) })
    }

    fn symbolize_keys_p(&self) -> bool {
        self.opts.get().symbolize_keys
    }

    fn freeze_p(&self) -> bool {
        self.opts.get().freeze
    }

    fn allow_unknown_ext_p(&self) -> bool {
        self.opts.get().allow_unknown_ext
    }

    fn registered_types_internal(&self) -> Result<RHash, Error> {
        self.registry
            .try_borrow()
            .map_err(|_| reentrant())?
            .to_hash()
    }

    fn register_type_internal(
        rb_self: Obj<Self>,
        ty: Value,
        klass: Value,
        proc_: Value,
    ) -> Result<Value, Error> {
        if rb_self.is_frozen() {
            return Err(errors::frozen_error("MessagePack::Unpacker"));
        }
        let ty = crate::ext_types::registry::ext_type(ty)?;
        let mut reg = rb_self.registry.try_borrow_mut().map_err(|_| reentrant())?;
        let mut updated = UnpackRegistry::clone(&reg);
        // SAFETY: live objects (arguments of this call); the unpacker
        // marks its registries.
        unsafe {
            updated.register(
                ty,
                klass.as_raw(),
                proc_.as_raw(),
                crate::ext_types::registry::Direct::default(),
                0,
                crate::runtime::ractor::current_id(),
            )
        };
        let old = std::mem::replace(&mut *reg, Arc::new(updated));
        drop(reg);
        let mut retired = rb_self.retired.try_borrow_mut().map_err(|_| reentrant())?;
        // Keep only the versions a running read may still hold.
        retired.retain(|r| Arc::strong_count(r) > 1);
        if Arc::strong_count(&old) > 1 {
            retired.push(old);
        }
        Ok(ruby().qnil().as_value())
    }
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Unpacker", ruby.class_object())?;
    class.define_alloc_func::<Unpacker>();
    class.define_method("initialize", method!(Unpacker::initialize, -1))?;
    class.define_method("symbolize_keys?", method!(Unpacker::symbolize_keys_p, 0))?;
    class.define_method("freeze?", method!(Unpacker::freeze_p, 0))?;
    class.define_method(
        "allow_unknown_ext?",
        method!(Unpacker::allow_unknown_ext_p, 0),
    )?;
    class.define_method("buffer", method!(Unpacker::buffer, 0))?;
    class.define_method("read", method!(Unpacker::read, 0))?;
    class.define_method("unpack", method!(Unpacker::read, 0))?;
    class.define_method("skip", method!(Unpacker::skip, 0))?;
    class.define_method("skip_nil", method!(Unpacker::skip_nil, 0))?;
    class.define_method("read_array_header", method!(Unpacker::read_array_header, 0))?;
    class.define_method("read_map_header", method!(Unpacker::read_map_header, 0))?;
    class.define_method("feed", method!(Unpacker::feed, 1))?;
    class.define_method("feed_reference", method!(Unpacker::feed, 1))?;
    class.define_method("each", method!(Unpacker::each, 0))?;
    class.define_method("feed_each", method!(Unpacker::feed_each, 1))?;
    class.define_method("reset", method!(Unpacker::reset, 0))?;
    class.define_method("full_unpack", method!(Unpacker::full_unpack, 0))?;
    class.define_method(
        "registered_types_internal",
        method!(Unpacker::registered_types_internal, 0),
    )?;
    class.define_private_method(
        "register_type_internal",
        method!(Unpacker::register_type_internal, 3),
    )?;
    class.define_method(
        "compact!",
        method!(<Unpacker as crate::memory::Compactable>::compact_report, 0),
    )?;
    undef_copy(class)?;
    Ok(())
}
