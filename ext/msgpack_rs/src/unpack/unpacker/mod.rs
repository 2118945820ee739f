//! `MessagePack::Unpacker`.
//!
//! Re-entrancy (docs/reentrancy.md): while a read runs, the only calls this
//! unpacker accepts are reads from a *recursive* ext unpacker it is running
//! (they read the ext's payload objects from this stream), on the same
//! thread; feeding is accepted there too. Everything else that would change
//! it, from an ext proc or from another thread, raises
//! `MessagePack::UnpackError` before changing anything. Between the objects
//! `each` yields, no read is running: the block may do anything.
use crate::buffer::class::{new_view, undef_copy, BufferOwner};
use crate::buffer::core::BufferCore;
use crate::ext_types::registry::UnpackRegistry;
use crate::runtime::errors;
use crate::runtime::gc_ref::{self, GcRef, Published};
use crate::runtime::options::{split_io_options, BadOptions};
use crate::runtime::raw;
use crate::runtime::ruby;
use crate::runtime::value_stack::ValueStack;
use crate::unpack::builder::UnpackOptions;
use crate::unpack::driver::{self, Build, Decoder, QueueSource, Registrations, Source};
use crate::unpack::settings::{check_nothing_left, DecodeSettings};
use magnus::{
    method,
    prelude::*,
    rb_sys::{AsRawValue, FromRawValue},
    typed_data::Obj,
    value::ReprValue,
    DataTypeFunctions, Error, RHash, RModule, RString, Ruby, TypedData, Value,
};
use msgpack_rs_core::{parse_header, Header, LimitKind, Limits, StreamDecoder};
use std::cell::{Cell, RefCell};
use std::sync::Arc;

mod api;
mod headers;
pub use api::init;

/// Who is reading this unpacker right now (see the module docs).
struct Calls {
    /// Reads running, nested ones included.
    active: Cell<u32>,
    /// Recursive ext unpackers running: each may read from this unpacker.
    recursive: Cell<u32>,
    /// The Thread running them, while `active > 0` (nil otherwise).
    thread: GcRef,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            active: Cell::new(0),
            recursive: Cell::new(0),
            thread: GcRef::nil(),
        }
    }
}

impl Calls {
    /// Why a call must wait: another thread, or a re-entrant call (which a
    /// read suspended in another Fiber looks like from here).
    fn refusal(&self) -> Error {
        if self.thread.get() != current_thread() {
            return other_thread();
        }
        reentrant()
    }
}

/// A running read; leaving it (also by an error) ends it.
struct ReadCall<'a> {
    calls: &'a Calls,
}

impl Drop for ReadCall<'_> {
    fn drop(&mut self) {
        let n = self.calls.active.get().saturating_sub(1);
        self.calls.active.set(n);
        if n == 0 {
            self.calls.thread.clear();
        }
    }
}

fn current_thread() -> rb_sys::VALUE {
    // SAFETY: plain C API call on a Ruby thread.
    unsafe { rb_sys::rb_thread_current() }
}

#[derive(TypedData)]
#[magnus(class = "MessagePack::Unpacker", mark, compact, size, free_immediately)]
pub struct Unpacker {
    /// First field: leaves the Ractor's compact! registry before anything
    /// else is dropped (see memory/mod.rs).
    pub(crate) tracker: crate::memory::Tracker,
    /// The Ractor that made it (see `gc_ref::may_read_state`).
    owner: u64,
    buf: BufferCore,
    /// Plain data only (no Ruby objects), so it may stay borrowed while
    /// Ruby code runs during decoding.
    /// Reads, and skips (which discard through the same decoder, so a skip
    /// cut short and a read cut short can never both be pending).
    decoder: RefCell<Decoder>,
    /// The decoder's heap size as of its last step, for `dsize`.
    decoder_bytes: Published,
    /// Values of the object being decoded (see value_stack.rs).
    values: ValueStack,
    opts: Cell<UnpackOptions>,
    limits: Cell<Limits>,
    registry: RefCell<Arc<UnpackRegistry>>,
    view: GcRef,
    calls: Calls,
    /// Value-stack length owned by the outer objects of the current nesting
    /// level: errors inside a recursive ext proc keep what is below it.
    nest_base: Cell<usize>,
    /// Registries replaced while a read may still be using them (an ext
    /// proc registering on its own unpacker): kept marked until no read
    /// runs.
    retired: RefCell<Vec<Arc<UnpackRegistry>>>,
}

impl Default for Unpacker {
    fn default() -> Self {
        Unpacker {
            tracker: Default::default(),
            owner: crate::runtime::ractor::current_id(),
            buf: Default::default(),
            decoder: RefCell::new(Decoder::new(Limits::default())),
            decoder_bytes: Default::default(),
            values: Default::default(),
            opts: Default::default(),
            limits: Default::default(),
            registry: Default::default(),
            view: GcRef::nil(),
            calls: Default::default(),
            nest_base: Cell::new(0),
            retired: Default::default(),
        }
    }
}

impl DataTypeFunctions for Unpacker {
    fn mark(&self, marker: &magnus::gc::Marker) {
        let full = gc_ref::may_read_state(self.owner);
        self.buf.mark(marker, full);
        self.view.mark(marker);
        self.calls.thread.mark(marker);
        if !full {
            return;
        }
        self.values.mark(marker);
        if let Some(r) = gc_ref::peek(&self.registry) {
            r.mark(marker);
        }
        if let Some(old) = gc_ref::peek(&self.retired) {
            old.iter().for_each(|r| r.mark(marker));
        }
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        self.buf.update_references(compactor);
        self.values.update(compactor);
        self.view.update(compactor);
        self.calls.thread.update(compactor);
        if let Some(r) = gc_ref::peek(&self.registry) {
            r.update_references(compactor);
        }
        if let Some(old) = gc_ref::peek(&self.retired) {
            old.iter().for_each(|r| r.update_references(compactor));
        }
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.buf.heap_size()
            + self.values.heap_size()
            + self.decoder_bytes.get()
    }
}

use errors::{
    unexpected_type, unpacker_other_thread as other_thread, unpacker_reentrant as reentrant,
};

/// What a read attempt produced.
enum Got {
    Value(Value),
    /// Incomplete data and no IO to read more from.
    NeedMore,
}

impl BufferOwner for Unpacker {
    fn buffer_core(&self) -> &BufferCore {
        &self.buf
    }

    /// Changes through the view are refused while another thread reads
    /// (from the reading thread they are checked by the buffer itself).
    fn check_buffer_change(&self) -> Result<(), Error> {
        if self.calls.active.get() > 0 && self.calls.thread.get() != current_thread() {
            return Err(other_thread());
        }
        Ok(())
    }
}

impl Unpacker {
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
        self.check_idle()?;
        let (io, options) = split_io_options(args, BadOptions::ArgumentError)?;
        let settings = DecodeSettings::parse(options, self.opts.get().optimized_symbols)?;
        let limits = settings.limits;
        self.opts.set(settings.opts);
        self.limits.set(limits);
        self.decoder
            .try_borrow_mut()
            .map_err(|_| reentrant())?
            .set_limits(limits);
        self.buf.configure(io, options)
    }

    fn initialize(rb_self: &Self, args: &[Value]) -> Result<(), Error> {
        rb_self.configure(args)
    }

    /// Starts a read: allowed when none runs, or from a recursive ext
    /// unpacker this unpacker is running, on its thread.
    fn enter_read(&self) -> Result<ReadCall<'_>, Error> {
        let active = self.calls.active.get();
        if active > 0 {
            if self.calls.thread.get() != current_thread() || self.calls.recursive.get() != active {
                return Err(self.calls.refusal());
            }
        } else {
            // SAFETY: the current Thread, alive while it runs this read; the
            // unpacker marks `calls.thread`.
            unsafe { self.calls.thread.set(current_thread()) };
        }
        self.calls.active.set(active + 1);
        Ok(ReadCall { calls: &self.calls })
    }

    /// Fails if a read is running (for calls that would change state under it).
    fn check_idle(&self) -> Result<(), Error> {
        if self.calls.active.get() == 0 {
            return Ok(());
        }
        Err(self.calls.refusal())
    }

    /// Fails unless feeding is safe now: no read runs, or only recursive
    /// ext unpackers (which may need the bytes they read) on this thread.
    fn check_feedable(&self) -> Result<(), Error> {
        let active = self.calls.active.get();
        if active == 0 {
            return Ok(());
        }
        if self.calls.thread.get() != current_thread() || self.calls.recursive.get() != active {
            return Err(self.calls.refusal());
        }
        Ok(())
    }

    /// How this unpacker builds values.
    fn build(&self) -> Result<Build<'_>, Error> {
        Ok(Build {
            values: &self.values,
            opts: self.opts.get(),
            registry: Registrations::Live(&self.registry),
            threshold: self.buf.read_reference_threshold(),
            decoder_bytes: &self.decoder_bytes,
            busy: reentrant,
        })
    }

    /// Reads one object. Incomplete data is kept (partial containers and
    /// all), so feeding more and reading again resumes.
    fn read_value(&self, me: Value) -> Result<Got, Error> {
        let _call = self.enter_read()?;
        let src = QueueSource(&self.buf);
        loop {
            let build = self.build()?;
            match driver::decode(&self.decoder, &src, &build, self.nest_base.get())? {
                driver::Got::Value(v) => {
                    // SAFETY: a live object just built.
                    return Ok(Got::Value(unsafe { Value::from_raw(v) }));
                }
                driver::Got::NeedMore => return Ok(Got::NeedMore),
                driver::Got::Deferred { ty, len } => {
                    drop(build);
                    if let Some(v) = self.read_recursive_ext(me, ty, len)? {
                        return Ok(Got::Value(v));
                    }
                }
            }
        }
    }

    /// `read` of a scalar (integer, float, nil, boolean) that is all there
    /// in the front chunk, with no object in progress: the common case of a
    /// recursive ext unpacker reading its fields. `None`, having done
    /// nothing, otherwise (and whenever the full path's re-entrancy rules
    /// would refuse the read: it then raises).
    #[inline]
    fn read_scalar(&self) -> Option<Value> {
        let active = self.calls.active.get();
        if active > 0
            && (self.calls.recursive.get() != active || self.calls.thread.get() != current_thread())
        {
            return None;
        }
        if !self.decoder.try_borrow().ok()?.is_idle() {
            return None;
        }
        let mut q = self.buf.q_mut().ok()?;
        let (bytes, pos) = q.front_with_pos();
        let (v, len) = raw::scalar_at(bytes.get(pos..)?)?;
        q.set_front_pos(pos + len);
        // SAFETY: an immediate, or a Float/Integer just made.
        Some(unsafe { Value::from_raw(v) })
    }

    /// A recursive ext: its unpacker reads the following objects from this
    /// unpacker. The in-progress decoder is set aside meanwhile (its
    /// values stay on the value stack, where the GC sees them).
    fn read_recursive_ext(&self, me: Value, ty: i8, len: u32) -> Result<Option<Value>, Error> {
        let entry = self
            .registry
            .try_borrow()
            .map_err(|_| reentrant())?
            .get(ty)
            .cloned();
        let Some(entry) = entry else {
            return Err(errors::unknown_ext_type());
        };
        let outer = {
            let mut d = self.decoder.try_borrow_mut().map_err(|_| reentrant())?;
            // The nested reads get what is left of the depth budget: a
            // recursive-ext frame counts as a level.
            let mut inner_limits = *d.limits();
            inner_limits.max_depth = inner_limits.max_depth.saturating_sub(d.depth() + 1);
            std::mem::replace(&mut *d, StreamDecoder::new(inner_limits))
        };
        let outer_base = self.nest_base.get();
        let level_base = self.values.len();
        let payload_start = self.buf.q()?.consumed();
        self.nest_base.set(level_base);
        self.calls.recursive.set(self.calls.recursive.get() + 1);
        let r = entry.call(ty, me);
        self.calls.recursive.set(self.calls.recursive.get() - 1);
        self.nest_base.set(outer_base);
        // Whatever the nested reads left half done is gone with them.
        self.values.truncate(level_base);
        let mut d = self.decoder.try_borrow_mut().map_err(|_| reentrant())?;
        *d = outer;
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                // Whatever of the payload the proc did not read goes first,
                // then the rest of the outer object.
                let read = self
                    .buf
                    .q()
                    .map(|q| q.consumed())
                    .unwrap_or(payload_start)
                    .saturating_sub(payload_start);
                d.abandon_deferred((len as u64).saturating_sub(read));
                self.values.truncate(outer_base);
                return Err(e);
            }
        };
        let v = if self.opts.get().freeze {
            // SAFETY: a live object the proc returned.
            unsafe { raw::freeze(v.as_raw()) }
        } else {
            v.as_raw()
        };
        drop(d);
        let top = driver::inject(&self.decoder, &self.build()?, v, outer_base)?;
        // SAFETY: a live object just built.
        Ok(top.map(|t| unsafe { Value::from_raw(t) }))
    }

    pub fn read(rb_self: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        if let Some(v) = this.read_scalar() {
            return Ok(v);
        }
        match this.read_value(rb_self)? {
            Got::Value(v) => Ok(v),
            Got::NeedMore => Err(errors::eof()),
        }
    }

    /// Skips one object (or the rest of the one a read left unfinished).
    fn skip(rb_self: Value) -> Result<(), Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        this.skip_one()
    }

    fn skip_one(&self) -> Result<(), Error> {
        let _call = self.enter_read()?;
        let src = QueueSource(&self.buf);
        if driver::skip(
            &self.decoder,
            &src,
            &self.values,
            self.nest_base.get(),
            reentrant,
        )? {
            Ok(())
        } else {
            Err(errors::eof())
        }
    }

    /// Discards the rest of a failed or skipped object before a raw header
    /// read. Returns false when the data ran out first. A half-read object
    /// (a `read` cut short) is refused: the header after it is not the next
    /// object's, and one inside it would splice two objects together.
    fn discard_leftover(&self) -> Result<bool, Error> {
        if self.decoder.try_borrow().map_err(|_| reentrant())?.depth() > 0 {
            return Err(errors::half_read());
        }
        driver::discard_leftover(&self.decoder, &QueueSource(&self.buf), reentrant)
    }

    /// Releases slack memory; returns bytes released. While a read runs
    /// only the buffer's unused capacity is given back.
    pub fn compact_memory(&self) -> usize {
        let mut n = self.buf.q_mut().map(|mut q| q.shrink()).unwrap_or(0);
        if self.calls.active.get() > 0 {
            return n;
        }
        if let Ok(mut d) = self.decoder.try_borrow_mut() {
            let before = d.heap_size();
            d.shrink_to_fit();
            n += before.saturating_sub(d.heap_size());
            self.decoder_bytes.set(d.heap_size());
            // Nothing in flight: the value stack holds only a partial
            // object's values, which an idle decoder has none of.
            if d.depth() == 0 {
                self.values.truncate(0);
                n += self.values.shrink();
            }
        }
        if let Ok(mut retired) = self.retired.try_borrow_mut() {
            retired.clear();
            retired.shrink_to_fit();
        }
        n
    }
}

impl crate::memory::Compactable for Unpacker {
    fn tracker(&self) -> &crate::memory::Tracker {
        &self.tracker
    }
    /// Its memsize is what it holds.
    fn held_bytes(&self) -> usize {
        DataTypeFunctions::size(self)
    }
    fn release(&self) {
        self.compact_memory();
    }
}
