//! `MessagePack::Buffer`: a standalone byte buffer, or the view returned by
//! `Packer#buffer` / `Unpacker#buffer` onto its owner's buffer.
use crate::buffer_core::BufferCore;
use crate::errors::{self, ruby};
use crate::gc_ref::GcRef;
use crate::packer::Packer;
use crate::unpacker::Unpacker;
use magnus::{
    method, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj,
    value::ReprValue, DataTypeFunctions, Error, RArray, RClass, RHash, RModule, RString, Ruby,
    TypedData, Value,
};

enum Kind {
    Own(BufferCore),
    /// A view onto a Packer's or Unpacker's buffer.
    View(GcRef),
}

#[derive(TypedData)]
#[magnus(class = "MessagePack::Buffer", mark, compact, size, free_immediately)]
pub struct Buffer {
    /// First field: leaves the Ractor's compact! registry before anything
    /// else is dropped (see memory.rs).
    pub(crate) tracker: crate::memory::Tracker,
    /// The Ractor that made it (see `gc_ref::may_read_state`).
    owner: u64,
    kind: Kind,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            tracker: crate::memory::Tracker::default(),
            owner: crate::ractor::current_id(),
            kind: Kind::Own(BufferCore::default()),
        }
    }
}

impl DataTypeFunctions for Buffer {
    fn mark(&self, _: &magnus::gc::Marker) {
        match &self.kind {
            Kind::Own(core) => core.mark(crate::gc_ref::may_read_state(self.owner)),
            Kind::View(owner) => owner.mark(),
        }
    }
    fn compact(&self, _: &magnus::gc::Compactor) {
        match &self.kind {
            Kind::Own(core) => core.update_references(),
            Kind::View(owner) => owner.update(),
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.kind {
                Kind::Own(core) => core.heap_size(),
                Kind::View(_) => 0,
            }
    }
}

/// Makes the view object for an owner (a Packer or Unpacker).
pub fn new_view(owner: Value) -> Result<Value, Error> {
    let ruby = ruby();
    let view = ruby.obj_wrap(Buffer {
        tracker: crate::memory::Tracker::default(),
        owner: crate::ractor::current_id(),
        kind: Kind::View(GcRef::new(owner.as_raw())),
    });
    view.ivar_set("@owner", owner)?;
    Ok(view.as_value())
}

impl Buffer {
    /// Runs `f` on this buffer's core (its own, or its owner's).
    fn with<R>(&self, f: impl FnOnce(&BufferCore) -> Result<R, Error>) -> Result<R, Error> {
        self.with_core(false, f)
    }

    /// Like [`Buffer::with`], for calls that change the buffer: a view first
    /// asks its owner, which refuses while another thread is reading or
    /// writing it (docs/reentrancy.md).
    fn with_mut<R>(&self, f: impl FnOnce(&BufferCore) -> Result<R, Error>) -> Result<R, Error> {
        self.with_core(true, f)
    }

    fn with_core<R>(
        &self,
        change: bool,
        f: impl FnOnce(&BufferCore) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match &self.kind {
            Kind::Own(core) => f(core),
            Kind::View(owner) => {
                // SAFETY: the owner is kept alive by our mark callback.
                let owner = unsafe { Value::from_raw(owner.get()) };
                if let Ok(p) = <&Packer>::try_convert(owner) {
                    if change {
                        p.check_buffer_change()?;
                    }
                    f(p.buffer_core())
                } else {
                    let u = <&Unpacker>::try_convert(owner)?;
                    if change {
                        u.check_buffer_change()?;
                    }
                    u.with_buffer_core(f)
                }
            }
        }
    }

    fn initialize(rb_self: &Self, args: &[Value]) -> Result<(), Error> {
        if args.len() > 2 {
            return Err(errors::arg_error(format!(
                "wrong number of arguments ({} for 0..1)",
                args.len()
            )));
        }
        let (io, options) = match args {
            [] => (None, None),
            [a] => match RHash::from_value(*a) {
                Some(h) => (None, Some(h)),
                None => (Some(*a), None),
            },
            [io, opts] => {
                let h = RHash::from_value(*opts).ok_or_else(|| {
                    errors::arg_error(format!(
                        "expected Hash but found {}.",
                        // msgpack-ruby names the class of the first argument.
                        // SAFETY: classname of a live object.
                        unsafe { io.classname() }
                    ))
                })?;
                (Some(*io), Some(h))
            }
            _ => (None, None),
        };
        crate::memory::track(rb_self);
        match &rb_self.kind {
            Kind::Own(core) => core.configure(io, options),
            Kind::View(_) => Ok(()),
        }
    }

    fn size(&self) -> Result<usize, Error> {
        self.with(|c| c.len())
    }

    fn is_empty(&self) -> Result<bool, Error> {
        self.with(|c| c.is_empty())
    }

    fn clear(&self) -> Result<(), Error> {
        self.with_mut(|c| c.clear())
    }

    /// Feeding an Unpacker's view buffer must go through the unpacker (so a
    /// written chunk is decodable); a Packer's or a plain buffer's `<<`
    /// appends.
    fn write(&self, data: Value) -> Result<usize, Error> {
        let s = RString::try_convert(data)?;
        self.with_mut(|c| c.write_string(s))
    }

    fn append(rb_self: Obj<Self>, data: Value) -> Result<Obj<Self>, Error> {
        rb_self.write(data)?;
        Ok(rb_self)
    }

    fn read(&self, args: &[Value]) -> Result<Value, Error> {
        self.read_impl(args, false)
    }

    fn read_all(&self, args: &[Value]) -> Result<Value, Error> {
        self.read_impl(args, true)
    }

    fn read_impl(&self, args: &[Value], exact: bool) -> Result<Value, Error> {
        ruby().check_arity(args.len(), 0..=2)?;
        let ruby = ruby();
        let n = match args.first() {
            None => None,
            Some(v) if v.is_nil() => None,
            Some(v) => Some(count_arg(*v)?),
        };
        let outbuf = match args.get(1) {
            None => None,
            Some(v) => Some(
                RString::from_value(*v)
                    .ok_or_else(|| errors::type_error("instance of String needed"))?,
            ),
        };
        let bytes = match n {
            None => self.with_mut(|c| c.read_everything())?,
            Some(0) => Vec::new(),
            Some(n) => {
                if exact {
                    self.with_mut(|c| c.fill_exact(n))?;
                }
                let got = self.with_mut(|c| c.read_bytes(n))?;
                if got.is_empty() && !exact {
                    if let Some(out) = outbuf {
                        out.replace(binary(&[]))?;
                    }
                    return Ok(ruby.qnil().as_value());
                }
                got
            }
        };
        match outbuf {
            Some(out) => {
                out.replace(binary(&bytes))?;
                Ok(out.as_value())
            }
            None => Ok(binary(&bytes).as_value()),
        }
    }

    fn skip(&self, n: Value) -> Result<usize, Error> {
        let n = count_arg(n)?;
        self.with_mut(|c| c.skip_bytes(n))
    }

    fn skip_all(rb_self: Obj<Self>, n: Value) -> Result<Obj<Self>, Error> {
        let n = count_arg(n)?;
        rb_self.with_mut(|c| {
            c.fill_exact(n)?;
            c.skip_bytes(n)
        })?;
        Ok(rb_self)
    }

    fn to_str(&self) -> Result<RString, Error> {
        self.with(|c| c.to_rstring())
    }

    fn to_a(&self) -> Result<RArray, Error> {
        self.with(|c| {
            let q = c.q()?;
            let parts: Vec<Vec<u8>> = q.slices().map(|s| s.to_vec()).collect();
            drop(q);
            let ary = ruby().ary_new_capa(parts.len().max(1));
            if parts.is_empty() {
                ary.push(binary(&[]))?;
            }
            for p in parts {
                ary.push(binary(&p))?;
            }
            Ok(ary)
        })
    }

    fn io(&self) -> Result<Value, Error> {
        self.with(|c| Ok(c.io().unwrap_or_else(|| ruby().qnil().as_value())))
    }

    fn flush(rb_self: Obj<Self>) -> Result<Obj<Self>, Error> {
        if let Kind::View(owner) = &rb_self.kind {
            // SAFETY: the owner is kept alive by our mark callback.
            let owner = unsafe { Value::from_raw(owner.get()) };
            if let Ok(p) = <&Packer>::try_convert(owner) {
                p.check_buffer_change()?;
                p.flush_unless_nested()?;
                return Ok(rb_self);
            }
        }
        rb_self.with_mut(|c| c.flush())?;
        Ok(rb_self)
    }

    fn close(&self) -> Result<Value, Error> {
        match self.with(|c| Ok(c.io()))? {
            Some(io) => io.funcall("close", ()),
            None => Ok(ruby().qnil().as_value()),
        }
    }

    /// Heap bytes of this buffer's core (its owner's, for a view).
    pub fn core_heap_size(&self) -> usize {
        self.with(|c| Ok(c.heap_size())).unwrap_or(0)
    }

    /// Releases slack memory; returns the bytes released.
    pub fn compact_memory(&self) -> Result<usize, Error> {
        self.with(|c| Ok(c.q_mut().map(|mut q| q.shrink()).unwrap_or(0)))
    }

    fn write_to(&self, io: Value) -> Result<usize, Error> {
        let s = self.with_mut(|c| c.take_rstring())?;
        let n = s.len();
        let _: Value = io.funcall("write", (s,))?;
        Ok(n)
    }
}

fn refuse_copy(rb_self: Value, _other: Value) -> Result<(), Error> {
    Err(errors::type_error(format!(
        "can't copy {}",
        // SAFETY: classname of a live object.
        unsafe { rb_self.classname() }
    )))
}

/// A byte count argument. msgpack-ruby converts with FIX2ULONG, so a
/// negative count means "everything".
fn count_arg(v: Value) -> Result<usize, Error> {
    let n = i64::try_convert(v)?;
    Ok(if n < 0 { usize::MAX } else { n as usize })
}

pub fn binary(bytes: &[u8]) -> RString {
    let s = crate::raw::binary_str(bytes);
    // SAFETY: a fresh String.
    RString::from_value(unsafe { Value::from_raw(s) }).unwrap_or_else(|| ruby().str_new(""))
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<RClass, Error> {
    let class = module.define_class("Buffer", ruby.class_object())?;
    class.define_alloc_func::<Buffer>();
    class.define_method("initialize", method!(Buffer::initialize, -1))?;
    class.define_method("clear", method!(Buffer::clear, 0))?;
    class.define_method("size", method!(Buffer::size, 0))?;
    class.define_method("empty?", method!(Buffer::is_empty, 0))?;
    class.define_method("write", method!(Buffer::write, 1))?;
    class.define_method("<<", method!(Buffer::append, 1))?;
    class.define_method("read", method!(Buffer::read, -1))?;
    class.define_method("read_all", method!(Buffer::read_all, -1))?;
    class.define_method("skip", method!(Buffer::skip, 1))?;
    class.define_method("skip_all", method!(Buffer::skip_all, 1))?;
    class.define_method("to_str", method!(Buffer::to_str, 0))?;
    class.define_method("to_s", method!(Buffer::to_str, 0))?;
    class.define_method("to_a", method!(Buffer::to_a, 0))?;
    class.define_method("io", method!(Buffer::io, 0))?;
    class.define_method("flush", method!(Buffer::flush, 0))?;
    class.define_method("close", method!(Buffer::close, 0))?;
    class.define_method("write_to", method!(Buffer::write_to, 1))?;
    class.define_method("compact!", method!(crate::memory::buffer_compact, 0))?;
    undef_copy(class)?;
    Ok(class)
}

/// msgpack-ruby 1.6.1+ undefines `dup` and `clone` on its stateful classes.
/// Copies made another way (Ruby 3.1 copies objects sent to a Ractor with
/// `rb_obj_clone`) raise instead of silently producing an empty instance.
pub fn undef_copy(class: RClass) -> Result<(), Error> {
    class.define_private_method("initialize_copy", method!(refuse_copy, 1))?;
    let _: Value = class.funcall("undef_method", ("dup", "clone"))?;
    Ok(())
}
