//! `MessagePack::Packer`.
use crate::buffer::class::{new_view, undef_copy, BufferOwner};
use crate::buffer::core::BufferCore;
use crate::ext_types::registry::PackRegistry;
use crate::pack::ext_lookup::ExtLookup;
use crate::pack::output::PackOutput;
use crate::pack::walk::{WalkSettings, Walker};
use crate::runtime::errors;
use crate::runtime::gc_ref::{self, GcRef};
use crate::runtime::options::{opt_flag, opt_size, split_io_options, BadOptions};
use crate::runtime::raw::binary;
use crate::runtime::ruby;
use magnus::{
    method, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj,
    value::ReprValue, DataTypeFunctions, Error, Integer, RArray, RHash, RModule, RString, Ruby,
    Symbol, TypedData, Value,
};
use msgpack_rs_core::encode;
use std::cell::Cell;
use std::sync::Arc;

mod api;
pub use api::init;

/// The largest output String `dump_direct` allocates before writing.
const DIRECT_START_MAX: usize = 1 << 20;

/// Buffer capacity the per-Ractor `MessagePack.pack` packer keeps between
/// calls (see `end_scratch_call`).
const SCRATCH_KEEP: usize = 256 * 1024;

/// Walks (`write` and friends) running on a packer, and their thread.
/// Callbacks of a walk (`to_msgpack`, ext packers) write to the same packer,
/// in order; another thread must not, and nothing may take or drop the
/// output under a walk (docs/reentrancy.md).
struct Walks {
    active: Cell<u32>,
    /// The Thread running them, while `active > 0` (nil otherwise).
    thread: GcRef,
}

impl Default for Walks {
    fn default() -> Self {
        Walks {
            active: Cell::new(0),
            thread: GcRef::nil(),
        }
    }
}

/// A running walk; leaving it (also by an error) ends it.
pub struct WalkCall<'a> {
    walks: &'a Walks,
}

impl Drop for WalkCall<'_> {
    #[inline]
    fn drop(&mut self) {
        let n = self.walks.active.get().saturating_sub(1);
        self.walks.active.set(n);
        if n == 0 {
            self.walks.thread.clear();
        }
    }
}

#[inline]
fn current_thread() -> rb_sys::VALUE {
    // SAFETY: plain C API call on a Ruby thread.
    unsafe { rb_sys::rb_thread_current() }
}

#[derive(TypedData)]
#[magnus(class = "MessagePack::Packer", mark, compact, size, free_immediately)]
pub struct Packer {
    /// First field: leaves the Ractor's compact! registry before anything
    /// else is dropped (see memory/mod.rs).
    pub(crate) tracker: crate::memory::Tracker,
    /// The Ractor that made it (see `gc_ref::may_read_state`).
    owner: u64,
    walks: Walks,
    output: PackOutput,
    compat: Cell<bool>,
    /// The `max_depth` option: deeper nesting raises SystemStackError.
    max_depth: Cell<usize>,
    ext: ExtLookup,
    view: GcRef,
    /// A per-Ractor reusable packer is in the middle of a `dump`.
    busy: Cell<bool>,
    /// Which factory tables (address, generation) the registry came from.
    origin: Cell<(usize, u64)>,
    /// Size of the last message `dump_direct` made: the next one's
    /// starting capacity.
    size_hint: Cell<usize>,
}

impl Default for Packer {
    fn default() -> Self {
        Packer {
            tracker: Default::default(),
            owner: crate::runtime::ractor::current_id(),
            walks: Default::default(),
            output: Default::default(),
            ext: Default::default(),
            compat: Default::default(),
            max_depth: Cell::new(crate::pack::walk::DEFAULT_MAX_DEPTH),
            view: GcRef::nil(),
            busy: Default::default(),
            origin: Default::default(),
            size_hint: Default::default(),
        }
    }
}

impl DataTypeFunctions for Packer {
    fn mark(&self, marker: &magnus::gc::Marker) {
        let full = gc_ref::may_read_state(self.owner);
        self.output.mark(marker, full);
        self.view.mark(marker);
        self.walks.thread.mark(marker);
        if full {
            self.ext.mark(marker);
        }
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        self.output.update(compactor);
        self.view.update(compactor);
        self.walks.thread.update(compactor);
        self.ext.update(compactor);
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.output.buf.heap_size()
    }
}

impl Packer {
    /// Starts a walk (or a write): nested ones from the callbacks of a walk
    /// are fine, on its thread.
    #[inline]
    pub fn enter_walk(&self) -> Result<WalkCall<'_>, Error> {
        let active = self.walks.active.get();
        if active > 0 {
            if self.walks.thread.get() != current_thread() {
                return Err(errors::packer_other_thread());
            }
        } else {
            // SAFETY: the current Thread, alive while it runs this walk; the
            // packer marks `walks.thread`.
            unsafe { self.walks.thread.set(current_thread()) };
        }
        self.walks.active.set(active + 1);
        Ok(WalkCall { walks: &self.walks })
    }

    /// `write(v)` of a value that needs no walk (see
    /// `pack_walk::write_simple_to`): the common case of an ext packer
    /// writing its fields. Returns false, having done nothing, otherwise
    /// (and when another thread is walking, which the full path refuses).
    #[inline]
    fn try_write_simple(&self, v: rb_sys::VALUE) -> bool {
        if self.walks.active.get() > 0 && self.walks.thread.get() != current_thread() {
            return false;
        }
        let Ok(mut q) = self.output.buf.q_mut() else {
            return false;
        };
        crate::pack::walk::write_simple_to(
            q.tail(),
            v,
            self.compat.get(),
            self.output.buf.write_reference_threshold(),
            crate::runtime::raw::enc_indexes(),
        )
    }

    /// Fails while another thread walks: for calls that take or drop the
    /// output. From the walk's own callbacks they work as in the C gem (the
    /// output so far is taken or dropped; the walk goes on after it).
    fn check_no_walk(&self) -> Result<(), Error> {
        if self.walks.active.get() > 0 && self.walks.thread.get() != current_thread() {
            return Err(errors::packer_other_thread());
        }
        Ok(())
    }
}

impl BufferOwner for Packer {
    fn buffer_core(&self) -> &BufferCore {
        &self.output.buf
    }

    /// Changes through the view are refused while another thread walks.
    fn check_buffer_change(&self) -> Result<(), Error> {
        self.check_no_walk()
    }

    /// A walk's own callbacks may flush the view: the output so far goes
    /// out only when no walk is running (as `Packer#flush`).
    fn flush(&self) -> Result<(), Error> {
        self.check_no_walk()?;
        self.flush_unless_nested()
    }
}

impl Packer {
    pub fn compat(&self) -> bool {
        self.compat.get()
    }

    /// A packer carrying a factory's registrations.
    pub fn with_registry(registry: Arc<PackRegistry>) -> Packer {
        let p = Packer::default();
        p.install_registry(registry);
        p
    }

    fn install_registry(&self, registry: Arc<PackRegistry>) {
        self.ext.install(registry);
    }

    pub fn is_busy(&self) -> bool {
        self.busy.get()
    }

    /// Runs `f` marked busy, so a nested `dump` takes a fresh packer.
    pub fn with_busy<R>(&self, f: impl FnOnce() -> R) -> R {
        self.busy.set(true);
        let r = f();
        self.busy.set(false);
        r
    }

    /// Whether the registrations from `origin` (a factory's address and
    /// the generation of its tables) are installed.
    #[inline]
    pub fn has_tables_of(&self, origin: (usize, u64)) -> bool {
        self.origin.get() == origin
    }

    /// Takes `registry`, the pack tables of `origin`, unless they are
    /// already installed.
    pub fn adopt(&self, origin: (usize, u64), registry: &Arc<PackRegistry>) {
        if self.origin.get() != origin {
            self.install_registry(registry.clone());
            self.origin.set(origin);
        }
    }

    /// Back to default options, then `args` applied (for reuse).
    pub fn reconfigure(&self, args: &[Value]) -> Result<(), Error> {
        self.output.buf.reset_options();
        self.configure(args)
    }

    /// `obj` packed straight into a new String (see out_buf.rs); `None`
    /// when Ruby callbacks ran and the output is in the buffer instead
    /// (`take_output` has it).
    pub fn dump_direct(rb_self: Obj<Self>, obj: Value) -> Result<Option<RString>, Error> {
        let _walk = rb_self.enter_walk()?;
        let me = rb_self.as_value();
        // Room for the last message's size plus a little: a repeated shape
        // fits without growing; a smaller one gives the rest back. At most
        // DIRECT_START_MAX up front: after one big message, the next (small)
        // one must not allocate as much (Ruby counts it towards its next GC,
        // and a callback would throw it away); bigger ones grow by doubling.
        let hint = rb_self.size_hint.get().min(DIRECT_START_MAX);
        let mut w = Walker::new_direct(
            &rb_self.output,
            &rb_self.ext,
            rb_self.walk_settings(),
            me,
            hint + hint / 32 + 64,
        )?;
        w.write_value(obj, 0)?;
        Ok(w.finish())
    }

    /// After a `MessagePack.pack`/`Factory#dump` call on the per-Ractor
    /// packer: the next call starts from this call's output size, and
    /// buffers beyond a small working size are given back (a big message
    /// must not keep its memory, or make every later call allocate as
    /// much).
    pub fn end_scratch_call(&self, output_len: usize) {
        self.size_hint.set(output_len);
        if let Ok(mut q) = self.output.buf.q_mut() {
            q.clear_retaining();
            if q.tail().capacity() > SCRATCH_KEEP {
                *q.tail() = Vec::new();
            }
        }
        self.ext.release_cache(64);
    }

    /// `write(obj)` without returning self.
    pub fn write_top(rb_self: Obj<Self>, obj: Value) -> Result<(), Error> {
        let _walk = rb_self.enter_walk()?;
        let me = rb_self.as_value();
        rb_self.walker(me)?.write_value(obj, 0)?;
        rb_self.output.maybe_flush()
    }

    /// The whole output as one String, leaving the buffer empty (its
    /// allocation is kept for the next message).
    pub fn take_output(&self) -> Result<RString, Error> {
        self.output.buf.take_rstring()
    }

    pub fn configure(&self, args: &[Value]) -> Result<(), Error> {
        crate::memory::track(self);
        let (io, options) = split_io_options(args, BadOptions::TypeError)?;
        self.compat.set(opt_flag(options, "compatibility_mode"));
        let max_depth =
            opt_size(options, "max_depth")?.unwrap_or(crate::pack::walk::DEFAULT_MAX_DEPTH);
        self.max_depth.set(max_depth);
        self.output.buf.configure(io, options)
    }

    fn initialize(rb_self: &Self, args: &[Value]) -> Result<(), Error> {
        rb_self.configure(args)
    }

    fn walk_settings(&self) -> WalkSettings {
        WalkSettings {
            compat: self.compat.get(),
            max_depth: self.max_depth.get(),
        }
    }

    fn walker<'a>(&'a self, me: Value) -> Result<Walker<'a>, Error> {
        Walker::new(&self.output, &self.ext, self.walk_settings(), me)
    }

    // ---- buffer & state ----

    fn flush(rb_self: Value) -> Result<Value, Error> {
        let this = crate::runtime::receiver::this::<Self>(rb_self)?;
        let _walk = this.enter_walk()?;
        this.flush_unless_nested()?;
        Ok(rb_self)
    }

    /// Flushes to the IO, except while a recursive ext packer is writing
    /// its payload (that output is not the stream's yet).
    pub fn flush_unless_nested(&self) -> Result<(), Error> {
        self.output.flush_unless_nested()
    }

    fn reset(&self) -> Result<(), Error> {
        self.check_no_walk()?;
        self.output.buf.clear()
    }

    fn size(&self) -> Result<usize, Error> {
        self.output.buf.len()
    }

    fn is_empty(&self) -> Result<bool, Error> {
        self.output.buf.is_empty()
    }

    fn to_str(&self) -> Result<RString, Error> {
        self.output.buf.to_rstring()
    }

    fn to_a(&self) -> Result<RArray, Error> {
        let ary = ruby().ary_new();
        let q = self.output.buf.q()?;
        let parts: Vec<Vec<u8>> = q.slices().map(|s| s.to_vec()).collect();
        drop(q);
        if parts.is_empty() {
            ary.push(binary(&[]))?;
        }
        for p in parts {
            ary.push(binary(&p))?;
        }
        Ok(ary)
    }

    fn write_to(&self, io: Value) -> Result<usize, Error> {
        self.check_no_walk()?;
        let s = self.output.buf.take_rstring()?;
        let n = s.len();
        let _: Value = io.funcall("write", (s,))?;
        Ok(n)
    }

    fn buffer(rb_self: Obj<Self>) -> Result<Value, Error> {
        if rb_self.view.is_nil() {
            let v = new_view(rb_self)?;
            // SAFETY: a live object just made; the packer marks `view`.
            unsafe { rb_self.view.set(v.as_raw()) };
        }
        // SAFETY: kept alive by our mark callback.
        Ok(unsafe { Value::from_raw(rb_self.view.get()) })
    }

    /// The whole output as a String (clearing it), or nil after flushing to
    /// the IO.
    pub fn full_pack(&self) -> Result<Option<RString>, Error> {
        self.check_no_walk()?;
        if self.output.buf.io().is_some() {
            self.output.buf.flush()?;
            Ok(None)
        } else {
            Ok(Some(self.output.buf.take_rstring()?))
        }
    }

    fn compatibility_mode_p(&self) -> bool {
        self.compat.get()
    }

    fn registered_types_internal(&self) -> Result<RHash, Error> {
        self.ext.registry().ok_or_else(busy_output)?.to_hash()
    }

    fn register_type_internal(
        rb_self: Obj<Self>,
        ty: Value,
        klass: Value,
        proc_: Value,
    ) -> Result<Value, Error> {
        if rb_self.is_frozen() {
            return Err(errors::frozen_error("MessagePack::Packer"));
        }
        let ty = crate::ext_types::registry::ext_type(ty)?;
        let klass = crate::ext_types::registry::ext_class(klass)?;
        let mut reg = rb_self.ext.registry().ok_or_else(busy_output)?.clone();
        // SAFETY: live objects (arguments of this call); the packer marks
        // its registries.
        unsafe {
            Arc::make_mut(&mut reg).register(
                ty,
                klass,
                proc_.as_raw(),
                crate::ext_types::registry::Direct::default(),
                0,
                crate::runtime::ractor::current_id(),
            )
        };
        rb_self.install_registry(reg);
        Ok(ruby().qnil().as_value())
    }

    /// Releases slack memory; returns bytes released.
    pub fn compact_memory(&self) -> usize {
        self.ext.release_cache(0);
        self.output.buf.q_mut().map(|mut q| q.shrink()).unwrap_or(0)
    }
}

use errors::wrong_type;

use errors::packer_output_busy as busy_output;

impl crate::memory::Compactable for Packer {
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
