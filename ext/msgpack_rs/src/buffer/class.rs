//! `MessagePack::Buffer`: a standalone byte buffer, or the view returned by
//! `Packer#buffer` / `Unpacker#buffer` onto its owner's buffer.
use crate::buffer::core::BufferCore;
use crate::runtime::errors;
use crate::runtime::gc_ref::GcRef;
use crate::runtime::raw::binary;
use crate::runtime::ruby;
use magnus::{
    method, prelude::*, rb_sys::AsRawValue, typed_data::Obj, value::ReprValue, DataTypeFunctions,
    Error, RArray, RClass, RHash, RModule, RString, Ruby, TypedData, Value,
};

/// What a `Buffer` view needs of the object whose buffer it shows (a
/// Packer or an Unpacker): the buffer, and a say on changes to it.
pub trait BufferOwner {
    fn buffer_core(&self) -> &BufferCore;
    /// Fails while a change through the view would break a read or write in
    /// progress on another thread (docs/reentrancy.md).
    fn check_buffer_change(&self) -> Result<(), Error>;
    /// `Buffer#flush` on the view: writes the buffer to the owner's IO.
    fn flush(&self) -> Result<(), Error> {
        self.check_buffer_change()?;
        self.buffer_core().flush()
    }
}

/// Finds the owner's Rust side from its Ruby object (one instance of this
/// generic function per owner type, chosen when the view is made).
type Resolve = fn(Value) -> Result<&'static dyn BufferOwner, Error>;

fn resolve<T: BufferOwner + TypedData + 'static>(
    owner: Value,
) -> Result<&'static dyn BufferOwner, Error> {
    // The reference is used only during one method call on the view, whose
    // mark callback keeps the owner alive; 'static is what magnus's
    // conversion gives, not a promise kept beyond that call.
    Ok(<&T>::try_convert(owner)? as &dyn BufferOwner)
}

enum Kind {
    Own(BufferCore),
    /// A view onto a Packer's or Unpacker's buffer.
    View {
        owner: GcRef,
        resolve: Resolve,
    },
}

#[derive(TypedData)]
#[magnus(class = "MessagePack::Buffer", mark, compact, size, free_immediately)]
pub struct Buffer {
    /// First field: leaves the Ractor's compact! registry before anything
    /// else is dropped (see memory/mod.rs).
    pub(crate) tracker: crate::memory::Tracker,
    /// The Ractor that made it (see `gc_ref::may_read_state`).
    owner: u64,
    kind: Kind,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            tracker: crate::memory::Tracker::default(),
            owner: crate::runtime::ractor::current_id(),
            kind: Kind::Own(BufferCore::default()),
        }
    }
}

impl DataTypeFunctions for Buffer {
    fn mark(&self, marker: &magnus::gc::Marker) {
        match &self.kind {
            Kind::Own(core) => {
                core.mark(marker, crate::runtime::gc_ref::may_read_state(self.owner))
            }
            Kind::View { owner, .. } => owner.mark(marker),
        }
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        match &self.kind {
            Kind::Own(core) => core.update_references(compactor),
            Kind::View { owner, .. } => owner.update(compactor),
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.kind {
                Kind::Own(core) => core.heap_size(),
                Kind::View { .. } => 0,
            }
    }
}

/// Makes the view object for an owner (a Packer or Unpacker).
pub fn new_view<T: BufferOwner + TypedData + 'static>(owner: Obj<T>) -> Result<Value, Error> {
    let ruby = ruby();
    let view = ruby.obj_wrap(Buffer {
        tracker: crate::memory::Tracker::default(),
        owner: crate::runtime::ractor::current_id(),
        kind: Kind::View {
            // SAFETY: a live object, marked and updated by the view's GC
            // callbacks.
            owner: unsafe { GcRef::new(owner.as_raw()) },
            resolve: resolve::<T>,
        },
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
            Kind::View { owner, resolve } => {
                let owner = resolve(owner.value())?;
                if change {
                    owner.check_buffer_change()?;
                }
                f(owner.buffer_core())
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
                // msgpack-ruby names the class of the first argument.
                let h = RHash::from_value(*opts).ok_or_else(|| errors::not_a_hash(*io))?;
                (Some(*io), Some(h))
            }
            _ => (None, None),
        };
        crate::memory::track(rb_self);
        match &rb_self.kind {
            Kind::Own(core) => core.configure(io, options),
            Kind::View { .. } => Ok(()),
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
        match &rb_self.kind {
            Kind::Own(core) => core.flush()?,
            Kind::View { owner, resolve } => resolve(owner.value())?.flush()?,
        }
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
    Err(errors::cannot_copy(rb_self))
}

/// A byte count argument. msgpack-ruby converts with FIX2ULONG, so a
/// negative count means "everything".
fn count_arg(v: Value) -> Result<usize, Error> {
    let n = i64::try_convert(v)?;
    Ok(if n < 0 { usize::MAX } else { n as usize })
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
    class.define_method(
        "compact!",
        method!(<Buffer as crate::memory::Compactable>::compact_report, 0),
    )?;
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

impl crate::memory::Compactable for Buffer {
    fn tracker(&self) -> &crate::memory::Tracker {
        &self.tracker
    }
    fn held_bytes(&self) -> usize {
        // A view buffer reports its owner's bytes (it compacts them too).
        std::mem::size_of::<Self>() + self.core_heap_size()
    }
    fn release(&self) {
        let _ = self.compact_memory();
    }
}
