//! `MessagePack::Unpacker`.
use crate::buffer::{self, undef_copy};
use crate::buffer_core::{opt, opt_flag, BufferCore};
use crate::builder::{RubyBuilder, UnpackOptions};
use crate::errors::{self, ruby, Fail};
use crate::ext_registry::{self, UnpackRegistry};
use crate::gc_ref::GcRef;
use crate::packer::split_io_options;
use crate::raw;
use crate::value_stack::ValueStack;
use magnus::{
    method,
    prelude::*,
    rb_sys::{AsRawValue, FromRawValue},
    typed_data::Obj,
    value::ReprValue,
    DataTypeFunctions, Error, RHash, RModule, RString, Ruby, TypedData, Value,
};
use msgpack_rs_core::{
    parse_header, DecodeError, Header, LimitKind, Limits, Skipper, Step, StreamDecoder,
};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

struct DecodeState {
    decoder: StreamDecoder<RubyBuilder>,
    skipper: StreamDecoder<Skipper>,
}

impl Default for DecodeState {
    fn default() -> Self {
        DecodeState {
            decoder: StreamDecoder::new(Limits::default()),
            skipper: StreamDecoder::new(Limits::default()),
        }
    }
}

#[derive(TypedData, Default)]
#[magnus(class = "MessagePack::Unpacker", mark, compact, size, free_immediately)]
pub struct Unpacker {
    /// First field: leaves the Ractor's compact! registry before anything
    /// else is dropped (see memory.rs).
    pub(crate) tracker: crate::memory::Tracker,
    buf: BufferCore,
    /// Plain data only (no Ruby objects), so it may stay borrowed while
    /// Ruby code runs during decoding.
    state: RefCell<DecodeState>,
    /// Values of the object being decoded (see value_stack.rs).
    values: ValueStack,
    opts: Cell<UnpackOptions>,
    limits: Cell<Limits>,
    registry: RefCell<Arc<UnpackRegistry>>,
    view: GcRef,
    /// Recursive ext unpackers running (they read from this unpacker while
    /// an outer object is half built).
    nesting: Cell<u32>,
    /// Value-stack length owned by the outer objects of the current nesting
    /// level: errors and resets inside an ext proc keep what is below it.
    nest_base: Cell<usize>,
    /// `reset` was called from inside a recursive ext proc: the outer
    /// objects are gone, so the outer read must fail.
    reset_while_nested: Cell<bool>,
    /// Registries replaced while a decode may still be using them (an ext
    /// proc registering on its own unpacker): kept marked and updated.
    retired: RefCell<Vec<Arc<UnpackRegistry>>>,
}

impl DataTypeFunctions for Unpacker {
    fn mark(&self, _: &magnus::gc::Marker) {
        self.buf.mark();
        self.values.mark();
        self.view.mark();
        if let Ok(r) = self.registry.try_borrow() {
            r.mark();
        }
        if let Ok(old) = self.retired.try_borrow() {
            old.iter().for_each(|r| r.mark());
        }
    }
    fn compact(&self, _: &magnus::gc::Compactor) {
        self.buf.update_references();
        self.values.update();
        self.view.update();
        if let Ok(r) = self.registry.try_borrow() {
            r.update_references();
        }
        if let Ok(old) = self.retired.try_borrow() {
            old.iter().for_each(|r| r.update_references());
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.buf.heap_size()
            + self.values.heap_size()
            + self
                .state
                .try_borrow()
                .map(|s| s.decoder.heap_size())
                .unwrap_or(0)
    }
}

fn unexpected_type() -> Error {
    errors::error(errors::Kind::UnexpectedType, "unexpected type")
}

fn reentrant() -> Error {
    errors::error(
        errors::Kind::Unpack,
        "Unpacker is in use (re-entrant call from an extension callback?)",
    )
}

/// What a read attempt produced.
enum Got {
    Value(Value),
    /// Incomplete data and no IO to read more from.
    NeedMore,
}

fn limit_option(options: Option<RHash>, key: &str) -> Result<Option<u64>, Error> {
    match opt(options, key) {
        Some(v) if !v.is_nil() => Ok(Some(u64::try_convert(v)?)),
        _ => Ok(None),
    }
}

/// Reads hostile-input limits from the options (all optional).
pub fn parse_limits(options: Option<RHash>) -> Result<Limits, Error> {
    let mut l = Limits::default();
    let clamp = |n: u64| n.min(u32::MAX as u64) as u32;
    if let Some(n) = limit_option(options, "max_depth")? {
        l.max_depth = n.min(usize::MAX as u64) as usize;
    }
    if let Some(n) = limit_option(options, "max_array_len")? {
        l.max_array_len = clamp(n);
    }
    if let Some(n) = limit_option(options, "max_map_len")? {
        l.max_map_len = clamp(n);
    }
    if let Some(n) = limit_option(options, "max_str_len")? {
        l.max_str_len = clamp(n);
    }
    if let Some(n) = limit_option(options, "max_bin_len")? {
        l.max_bin_len = clamp(n);
    }
    if let Some(n) = limit_option(options, "max_ext_len")? {
        l.max_ext_len = clamp(n);
    }
    Ok(l)
}

impl Unpacker {
    pub fn with_buffer_core<R>(
        &self,
        f: impl FnOnce(&BufferCore) -> Result<R, Error>,
    ) -> Result<R, Error> {
        f(&self.buf)
    }

    /// An unpacker carrying a factory's registrations.
    pub fn with_registry(registry: Arc<UnpackRegistry>, optimized_symbols: bool) -> Unpacker {
        let u = Unpacker {
            registry: RefCell::new(registry),
            ..Unpacker::default()
        };
        let mut o = u.opts.get();
        o.optimized_symbols = optimized_symbols;
        u.opts.set(o);
        u
    }

    pub fn configure(&self, args: &[Value]) -> Result<(), Error> {
        crate::memory::track(self);
        let (io, options) = split_io_options(args, false)?;
        let mut o = self.opts.get();
        o.symbolize_keys = opt_flag(options, "symbolize_keys");
        o.freeze = opt_flag(options, "freeze");
        o.allow_unknown_ext = opt_flag(options, "allow_unknown_ext");
        self.opts.set(o);
        let limits = parse_limits(options)?;
        self.limits.set(limits);
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
            st.decoder.set_limits(limits);
            st.skipper.set_limits(limits);
        }
        self.buf.configure(io, options)
    }

    fn initialize(rb_self: &Self, args: &[Value]) -> Result<(), Error> {
        rb_self.configure(args)
    }

    fn reset_state(&self) {
        if let Ok(mut st) = self.state.try_borrow_mut() {
            st.decoder.reset();
            st.skipper.reset();
        }
        self.values.truncate(self.nest_base.get());
    }

    /// One decode attempt on the front chunk.
    fn step(&self) -> Result<Step<rb_sys::VALUE>, Fail> {
        let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
        let q = self.buf.queue.try_borrow().map_err(|_| reentrant())?;
        let (bytes, start) = q.front_with_pos();
        let mut pos = start;
        let mut b = RubyBuilder::new(
            &self.values,
            self.opts.get(),
            Some(self.registry.try_borrow().map_err(|_| reentrant())?.clone()),
            q.front_source(),
            self.buf.read_reference_threshold(),
        );
        let r = st.decoder.decode(&mut b, bytes, &mut pos);
        drop(q);
        drop(st);
        if let Ok(mut q) = self.buf.queue.try_borrow_mut() {
            q.set_front_pos(pos);
        }
        if r.is_err() {
            self.reset_state();
        }
        r
    }

    /// Gets more bytes for an unfinished token: joins chunks, or reads the
    /// IO. Returns false when there is nothing more to get without an IO.
    fn more(&self) -> Result<bool, Error> {
        {
            let mut q = self.buf.queue.try_borrow_mut().map_err(|_| reentrant())?;
            if q.coalesce_front() {
                return Ok(true);
            }
        }
        if self.buf.io().is_none() {
            return Ok(false);
        }
        self.buf.feed_from_io()?;
        Ok(true)
    }

    /// Reads one object. Incomplete data is kept (partial containers and
    /// all), so feeding more and reading again resumes.
    fn read_value(&self, me: Value) -> Result<Got, Error> {
        loop {
            match self.step().map_err(Error::from)? {
                Step::Done(v) => {
                    // SAFETY: a live object just built.
                    return Ok(Got::Value(unsafe { Value::from_raw(v) }));
                }
                Step::NeedMore => {
                    if !self.more()? {
                        return Ok(Got::NeedMore);
                    }
                }
                Step::Deferred { ty, .. } => {
                    if let Some(v) = self.read_recursive_ext(me, ty)? {
                        return Ok(Got::Value(v));
                    }
                }
            }
        }
    }

    /// A recursive ext: its unpacker reads the following objects from this
    /// unpacker. The in-progress decoder is set aside meanwhile (its
    /// values stay on the value stack, where the GC sees them).
    fn read_recursive_ext(&self, me: Value, ty: i8) -> Result<Option<Value>, Error> {
        let entry = self
            .registry
            .try_borrow()
            .map_err(|_| reentrant())?
            .get(ty)
            .cloned();
        let Some(entry) = entry else {
            return Err(errors::error(
                errors::Kind::UnknownExtType,
                "unexpected extension type",
            ));
        };
        let outer = {
            let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
            // The nested reads get what is left of the depth budget: a
            // recursive-ext frame counts as a level.
            let mut inner_limits = *st.decoder.limits();
            inner_limits.max_depth = inner_limits
                .max_depth
                .saturating_sub(st.decoder.depth() + 1);
            std::mem::replace(&mut st.decoder, StreamDecoder::new(inner_limits))
        };
        let saved_base = self.nest_base.get();
        self.nest_base.set(self.values.len());
        self.nesting.set(self.nesting.get() + 1);
        let r = ext_registry::call_unpacker(
            entry.unpacker.get(),
            ty,
            entry.klass.get(),
            entry.owner,
            me,
        );
        self.nesting.set(self.nesting.get() - 1);
        self.nest_base.set(saved_base);
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
            st.decoder = outer;
        }
        if self.reset_while_nested.get() {
            if self.nesting.get() == 0 {
                self.reset_while_nested.set(false);
            }
            self.reset_state();
            return Err(errors::error(
                errors::Kind::Unpack,
                "Unpacker was reset by an extension unpacker while reading an object",
            ));
        }
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                self.reset_state();
                return Err(e);
            }
        };
        let v = if self.opts.get().freeze {
            raw::freeze(v.as_raw())
        } else {
            v.as_raw()
        };
        let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
        let mut b = RubyBuilder::new(
            &self.values,
            self.opts.get(),
            Some(self.registry.try_borrow().map_err(|_| reentrant())?.clone()),
            None,
            self.buf.read_reference_threshold(),
        );
        let r = st.decoder.inject(&mut b, v);
        drop(st);
        match r {
            // SAFETY: a live object just built.
            Ok(top) => Ok(top.map(|t| unsafe { Value::from_raw(t) })),
            Err(e) => {
                self.reset_state();
                Err(e.into())
            }
        }
    }

    pub fn read(rb_self: Obj<Self>) -> Result<Value, Error> {
        match rb_self.read_value(rb_self.as_value())? {
            Got::Value(v) => Ok(v),
            Got::NeedMore => Err(errors::eof()),
        }
    }

    fn skip(&self) -> Result<(), Error> {
        loop {
            let r = {
                let mut st = self.state.try_borrow_mut().map_err(|_| reentrant())?;
                let q = self.buf.queue.try_borrow().map_err(|_| reentrant())?;
                let (bytes, start) = q.front_with_pos();
                let mut pos = start;
                let r = st.skipper.decode(&mut Skipper, bytes, &mut pos);
                drop(q);
                if let Ok(mut q) = self.buf.queue.try_borrow_mut() {
                    q.set_front_pos(pos);
                }
                r
            };
            match r.map_err(errors::decode_error)? {
                Step::Done(()) => return Ok(()),
                Step::NeedMore | Step::Deferred { .. } => {
                    if !self.more()? {
                        return Err(errors::eof());
                    }
                }
            }
        }
    }

    /// The next header, without consuming it; EOFError when there is none.
    /// The invalid byte 0xc1 is "unexpected type" here, as in msgpack-ruby.
    fn peek_header(&self) -> Result<(Header, usize), Error> {
        loop {
            let r = {
                let q = self.buf.queue.try_borrow().map_err(|_| reentrant())?;
                parse_header(q.front())
            };
            match r {
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {
                    if !self.more()? {
                        return Err(errors::eof());
                    }
                }
                Err(_) => return Err(unexpected_type()),
            }
        }
    }

    fn skip_nil(&self) -> Result<bool, Error> {
        loop {
            let first = {
                let q = self.buf.queue.try_borrow().map_err(|_| reentrant())?;
                q.front().first().copied()
            };
            match first {
                Some(b) => return Ok(b == 0xc0),
                None => {
                    if !self.more()? {
                        return Err(errors::eof());
                    }
                }
            }
        }
    }

    /// Reads an array or map header (when `map`), applying the length
    /// limits like a full read would.
    fn read_header(&self, map: bool) -> Result<u32, Error> {
        let limits = self.limits.get();
        let (n, hlen, max, kind) = match self.peek_header()? {
            (Header::Array(n), hlen) if !map => {
                (n, hlen, limits.max_array_len, LimitKind::ArrayLen)
            }
            (Header::Map(n), hlen) if map => (n, hlen, limits.max_map_len, LimitKind::MapLen),
            _ => return Err(unexpected_type()),
        };
        self.buf
            .queue
            .try_borrow_mut()
            .map_err(|_| reentrant())?
            .consume(hlen);
        if n > max {
            return Err(errors::decode_error(DecodeError::LimitExceeded {
                kind,
                len: n,
                max,
            }));
        }
        Ok(n)
    }

    fn read_array_header(&self) -> Result<u32, Error> {
        self.read_header(false)
    }

    fn read_map_header(&self) -> Result<u32, Error> {
        self.read_header(true)
    }

    pub fn feed(rb_self: Obj<Self>, data: Value) -> Result<Obj<Self>, Error> {
        let s = RString::try_convert(data)?;
        rb_self.buf.feed_string(s)?;
        Ok(rb_self)
    }

    /// Yields every complete object; stops quietly at incomplete data (and
    /// at the end of the IO).
    fn each(rb_self: Obj<Self>) -> Result<Value, Error> {
        if !ruby().block_given() {
            return Ok(rb_self.enumeratorize("each", ()).as_value());
        }
        let me = rb_self.as_value();
        loop {
            let got = match rb_self.read_value(me) {
                Ok(g) => g,
                Err(e)
                    if e.is_kind_of(ruby().exception_eof_error()) && rb_self.buf.io().is_some() =>
                {
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

    fn feed_each(rb_self: Obj<Self>, data: Value) -> Result<Value, Error> {
        if !ruby().block_given() {
            return Ok(rb_self.enumeratorize("feed_each", (data,)).as_value());
        }
        Self::feed(rb_self, data)?;
        Self::each(rb_self)
    }

    fn reset(&self) -> Result<(), Error> {
        if self.nesting.get() > 0 {
            self.reset_while_nested.set(true);
        }
        self.reset_state();
        self.buf.clear()
    }

    /// Reads one object and requires the current chunk to be fully used.
    pub fn full_unpack(rb_self: Obj<Self>) -> Result<Value, Error> {
        let v = Self::read(rb_self)?;
        let extra = rb_self
            .buf
            .queue
            .try_borrow()
            .map(|q| q.front().len())
            .unwrap_or(0);
        if extra > 0 {
            return Err(errors::decode_error(DecodeError::ExtraBytes(extra)));
        }
        Ok(v)
    }

    fn buffer(rb_self: Obj<Self>) -> Result<Value, Error> {
        if rb_self.view.is_nil() {
            let v = buffer::new_view(rb_self.as_value())?;
            rb_self.view.set(v.as_raw());
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
        let ty = ext_registry::ext_type(ty)?;
        let mut reg = rb_self.registry.try_borrow_mut().map_err(|_| reentrant())?;
        let mut updated = UnpackRegistry::clone(&reg);
        updated.register(
            ty,
            klass.as_raw(),
            proc_.as_raw(),
            0,
            crate::ractor::current_id(),
        );
        let old = std::mem::replace(&mut *reg, Arc::new(updated));
        if Arc::strong_count(&old) > 1 {
            // Someone (a decode in progress) still reads the old table.
            rb_self
                .retired
                .try_borrow_mut()
                .map_err(|_| reentrant())?
                .push(old);
        }
        Ok(ruby().qnil().as_value())
    }

    /// Releases slack memory; returns bytes released.
    pub fn compact_memory(&self) -> usize {
        let mut n = self
            .buf
            .queue
            .try_borrow_mut()
            .map(|mut q| q.shrink())
            .unwrap_or(0);
        if let Ok(mut st) = self.state.try_borrow_mut() {
            let before = st.decoder.heap_size();
            st.decoder.shrink_to_fit();
            n += before.saturating_sub(st.decoder.heap_size());
            // Idle (not suspended inside a recursive ext): nothing in flight.
            if st.decoder.is_idle() && self.nesting.get() == 0 {
                n += self.values.shrink();
            }
        }
        n
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
    class.define_method("compact!", method!(crate::memory::unpacker_compact, 0))?;
    undef_copy(class)?;
    Ok(())
}
