//! The buffer state shared by `Buffer`, `Packer` and `Unpacker`: a chunk
//! queue, an optional IO, and msgpack-ruby's three buffer options.
use crate::buffer::chunk_queue::ChunkQueue;
use crate::runtime::errors;
use crate::runtime::gc_ref::{self, GcRef, Published};
use crate::runtime::options::opt_size;
use crate::runtime::raw;
use crate::runtime::ruby;
use magnus::{
    prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, value::ReprValue, Error, RHash, RString,
    Value,
};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::ops::{Deref, DerefMut};

pub const IO_BUFFER_SIZE_DEFAULT: usize = 32 * 1024;
pub const IO_BUFFER_SIZE_MIN: usize = 1024;
pub const READ_REFERENCE_THRESHOLD_DEFAULT: usize = 256;
pub const READ_REFERENCE_THRESHOLD_MIN: usize = 256;
pub const WRITE_REFERENCE_THRESHOLD_DEFAULT: usize = 512 * 1024;
pub const WRITE_REFERENCE_THRESHOLD_MIN: usize = 256;
/// Unfrozen Strings fed to an Unpacker up to this size are copied rather
/// than referenced (see `feed_string`).
pub const FEED_COPY_MAX: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadMethod {
    ReadPartial,
    Read,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteMethod {
    Write,
    Append,
}

pub struct BufferCore {
    /// Never borrowed mutably across a call into Ruby (see `gc_ref::peek`);
    /// changed only through [`BufferCore::q_mut`], which keeps `queue_bytes`
    /// current.
    queue: RefCell<ChunkQueue>,
    /// The queue's heap size as of its last change, for `dsize`.
    queue_bytes: Published,
    io: GcRef,
    read_method: Cell<ReadMethod>,
    write_method: Cell<WriteMethod>,
    io_buffer_size: Cell<usize>,
    read_reference_threshold: Cell<usize>,
    write_reference_threshold: Cell<usize>,
}

impl Default for BufferCore {
    fn default() -> Self {
        BufferCore {
            queue: RefCell::new(ChunkQueue::default()),
            queue_bytes: Published::default(),
            io: GcRef::nil(),
            read_method: Cell::new(ReadMethod::ReadPartial),
            write_method: Cell::new(WriteMethod::Write),
            io_buffer_size: Cell::new(IO_BUFFER_SIZE_DEFAULT),
            read_reference_threshold: Cell::new(READ_REFERENCE_THRESHOLD_DEFAULT),
            write_reference_threshold: Cell::new(WRITE_REFERENCE_THRESHOLD_DEFAULT),
        }
    }
}

/// Raised when a buffer is used while it is being read or written further
/// up the stack (e.g. an ext callback feeding the unpacker that called it).
pub fn busy() -> Error {
    errors::buffer_in_use()
}

/// The queue, borrowed for a change: publishes its heap size when dropped.
pub struct QueueMut<'a> {
    q: RefMut<'a, ChunkQueue>,
    published: &'a Published,
}

impl Deref for QueueMut<'_> {
    type Target = ChunkQueue;
    #[inline(always)]
    fn deref(&self) -> &ChunkQueue {
        &self.q
    }
}

impl DerefMut for QueueMut<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut ChunkQueue {
        &mut self.q
    }
}

impl Drop for QueueMut<'_> {
    #[inline]
    fn drop(&mut self) {
        self.published.set(self.q.heap_size());
    }
}

impl BufferCore {
    #[inline]
    pub fn q(&self) -> Result<Ref<'_, ChunkQueue>, Error> {
        self.queue.try_borrow().map_err(|_| busy())
    }

    #[inline]
    pub fn q_mut(&self) -> Result<QueueMut<'_>, Error> {
        match self.queue.try_borrow_mut() {
            Ok(q) => Ok(QueueMut {
                q,
                published: &self.queue_bytes,
            }),
            Err(_) => Err(busy()),
        }
    }

    /// For the owner's dmark callback; `full` as decided by
    /// [`gc_ref::may_read_state`] (otherwise only the atomic slots).
    pub fn mark(&self, marker: &magnus::gc::Marker, full: bool) {
        self.io.mark(marker);
        if full {
            if let Some(q) = gc_ref::peek(&self.queue) {
                q.mark(marker);
            }
        }
    }

    /// For the owner's dcompact callback (always inside a GC).
    pub fn update_references(&self, compactor: &magnus::gc::Compactor) {
        self.io.update(compactor);
        if let Some(q) = gc_ref::peek(&self.queue) {
            q.update_references(compactor);
        }
    }

    /// Heap bytes of the queue as last published (safe from any Ractor).
    pub fn heap_size(&self) -> usize {
        self.queue_bytes.get()
    }

    /// Back to the default options and no IO (for a reused instance).
    pub fn reset_options(&self) {
        self.io.clear();
        self.io_buffer_size.set(IO_BUFFER_SIZE_DEFAULT);
        self.read_reference_threshold
            .set(READ_REFERENCE_THRESHOLD_DEFAULT);
        self.write_reference_threshold
            .set(WRITE_REFERENCE_THRESHOLD_DEFAULT);
    }

    /// Applies `io` and the buffer options (msgpack-ruby's defaults/minimums).
    pub fn configure(&self, io: Option<Value>, options: Option<RHash>) -> Result<(), Error> {
        if let Some(io) = io.filter(|v| !v.is_nil()) {
            // SAFETY: a live object; marked and updated by `mark` and
            // `update_references`, which the owner's GC callbacks call.
            unsafe { self.io.set(io.as_raw()) };
            self.read_method
                .set(if io.respond_to("readpartial", true)? {
                    ReadMethod::ReadPartial
                } else {
                    ReadMethod::Read
                });
            self.write_method.set(if io.respond_to("write", true)? {
                WriteMethod::Write
            } else {
                WriteMethod::Append
            });
        }
        // msgpack-ruby's order (which decides the error when several are bad).
        if let Some(n) = opt_size(options, "read_reference_threshold")? {
            self.read_reference_threshold
                .set(n.max(READ_REFERENCE_THRESHOLD_MIN));
        }
        if let Some(n) = opt_size(options, "write_reference_threshold")? {
            self.write_reference_threshold
                .set(n.max(WRITE_REFERENCE_THRESHOLD_MIN));
        }
        if let Some(n) = opt_size(options, "io_buffer_size")? {
            self.io_buffer_size.set(n.max(IO_BUFFER_SIZE_MIN));
        }
        Ok(())
    }

    pub fn io(&self) -> Option<Value> {
        if self.io.is_nil() {
            None
        } else {
            // SAFETY: a live object kept alive by our mark callback.
            Some(unsafe { Value::from_raw(self.io.get()) })
        }
    }

    pub fn io_buffer_size(&self) -> usize {
        self.io_buffer_size.get()
    }

    pub fn read_reference_threshold(&self) -> usize {
        self.read_reference_threshold.get()
    }

    pub fn write_reference_threshold(&self) -> usize {
        self.write_reference_threshold.get()
    }

    pub fn len(&self) -> Result<usize, Error> {
        Ok(self.q()?.len())
    }

    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.q()?.is_empty())
    }

    /// Appends a String: copied, or referenced when longer than the write
    /// threshold. With an IO, a long string goes straight to the IO after
    /// flushing what is buffered.
    pub fn write_string(&self, s: RString) -> Result<usize, Error> {
        let raw_s = s.as_raw();
        let len = s.len();
        if len > self.write_reference_threshold.get() {
            if self.io().is_some() {
                self.flush()?;
                // SAFETY: encoding index of a live String.
                let is_binary =
                    unsafe { rb_sys::rb_enc_get_index(raw_s) == rb_sys::rb_ascii8bit_encindex() };
                let out: Value = if is_binary {
                    s.as_value()
                } else {
                    ruby()
                        .str_from_slice(
                            // SAFETY: bytes of a live String, copied at once.
                            unsafe { raw::str_bytes(raw_s) },
                        )
                        .as_value()
                };
                self.io_write(out)?;
                return Ok(len);
            }
            // SAFETY: makes a frozen String sharing `s`'s buffer.
            let frozen = unsafe { rb_sys::rb_str_new_frozen(raw_s) };
            self.q_mut()?.push_string(frozen);
        } else {
            // SAFETY: bytes of a live String, copied before any Ruby call.
            let bytes = unsafe { raw::str_bytes(raw_s) };
            self.q_mut()?.push_bytes(bytes);
        }
        Ok(len)
    }

    /// References a fed String without copying when it is large enough.
    pub fn feed_string(&self, s: RString) -> Result<(), Error> {
        let raw_s = s.as_raw();
        // A String the caller may still change (typically a reused read
        // buffer) is copied when it is at most FEED_COPY_MAX bytes: referencing
        // it needs a frozen shared copy, which makes the caller's next write
        // copy its buffer anyway and leaves the old one as garbage until the
        // next GC (and a value shared out of it pins the whole chunk). Small
        // copies go to the queue's reused tail; larger chunks are referenced,
        // since copying them would churn large tail allocations instead. See
        // docs/memory.md (measured with bench/rss.rb).
        // SAFETY: `raw_s` is the live String `s`.
        let was_frozen = unsafe { raw::is_frozen(raw_s) };
        let referenced = was_frozen || s.len() > FEED_COPY_MAX;
        if s.len() >= self.read_reference_threshold.get() && referenced {
            // SAFETY: a frozen String sharing `s`'s buffer, so later changes
            // by the caller do not leak in.
            let frozen = if was_frozen {
                raw_s
            } else {
                // SAFETY: `raw_s` is a live String.
                unsafe { rb_sys::rb_str_new_frozen(raw_s) }
            };
            self.q_mut()?.push_string(frozen);
        } else {
            // SAFETY: bytes of a live String, copied before any Ruby call.
            let bytes = unsafe { raw::str_bytes(raw_s) };
            self.q_mut()?.push_bytes(bytes);
        }
        Ok(())
    }

    /// Reads once from the IO into the queue. Raises EOFError at the end of
    /// the IO ("IO reached end of file", or the IO's own EOFError).
    pub fn feed_from_io(&self) -> Result<usize, Error> {
        let Some(io) = self.io() else {
            return Err(errors::eof());
        };
        let n = self.io_buffer_size.get();
        let method = match self.read_method.get() {
            ReadMethod::ReadPartial => "readpartial",
            ReadMethod::Read => "read",
        };
        let got: Value = io.funcall(method, (n,))?;
        if got.is_nil() {
            return Err(io_eof());
        }
        let s = RString::try_convert(got)?;
        if s.is_empty() {
            return Err(io_eof());
        }
        self.feed_string(s)?;
        Ok(s.len())
    }

    /// Reads from the IO until at least `want` bytes are buffered or the IO
    /// ends. Returns whether `want` was reached.
    pub fn fill_to(&self, want: usize) -> Result<bool, Error> {
        while self.len()? < want {
            if self.io().is_none() {
                return Ok(false);
            }
            match self.feed_from_io() {
                Ok(_) => {}
                Err(e) if e.is_kind_of(ruby().exception_eof_error()) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads from the IO until `want` bytes are buffered. The IO's end
    /// raises ("IO reached end of file", or the IO's own EOFError); without
    /// an IO, too little data raises "end of buffer reached".
    pub fn fill_exact(&self, want: usize) -> Result<(), Error> {
        while self.len()? < want {
            if self.io().is_none() {
                return Err(errors::eof());
            }
            self.feed_from_io()?;
        }
        Ok(())
    }

    fn io_write(&self, s: Value) -> Result<(), Error> {
        let Some(io) = self.io() else {
            return Ok(());
        };
        let _: Value = match self.write_method.get() {
            WriteMethod::Write => io.funcall("write", (s,))?,
            WriteMethod::Append => io.funcall("<<", (s,))?,
        };
        Ok(())
    }

    /// Everything buffered, as one binary String (not consumed).
    pub fn to_rstring(&self) -> Result<RString, Error> {
        let q = self.q()?;
        let mut slices = q.slices();
        match (slices.next(), slices.next()) {
            (None, _) => return Ok(crate::runtime::raw::binary(&[])),
            (Some(only), None) => return Ok(crate::runtime::raw::binary(only)),
            _ => {}
        }
        let total = q.len();
        // Allocating may run the GC, which only reads the queue: fine while
        // we hold a shared borrow.
        let out = ruby().str_buf_new(total);
        for s in q.slices() {
            out.cat(s);
        }
        Ok(out)
    }

    /// Writes everything to the IO and consumes it; no-op without an IO.
    pub fn flush(&self) -> Result<(), Error> {
        if self.io().is_none() {
            return Ok(());
        }
        let s = self.to_rstring()?;
        self.q_mut()?.clear();
        if !s.is_empty() {
            self.io_write(s.as_value())?;
        }
        Ok(())
    }

    /// Takes everything buffered as one String, leaving the queue empty.
    pub fn take_rstring(&self) -> Result<RString, Error> {
        let s = self.to_rstring()?;
        self.q_mut()?.clear_retaining();
        Ok(s)
    }

    pub fn clear(&self) -> Result<(), Error> {
        self.q_mut()?.clear();
        Ok(())
    }

    /// Reads up to `n` bytes, pulling from the IO when needed.
    pub fn read_bytes(&self, n: usize) -> Result<Vec<u8>, Error> {
        self.fill_to(n)?;
        let mut out = Vec::new();
        self.q_mut()?.read_into(&mut out, n);
        Ok(out)
    }

    /// Everything, reading the IO to its end.
    pub fn read_everything(&self) -> Result<Vec<u8>, Error> {
        self.fill_to(usize::MAX)?;
        let mut q = self.q_mut()?;
        let v = q.to_vec();
        q.clear();
        Ok(v)
    }

    pub fn skip_bytes(&self, n: usize) -> Result<usize, Error> {
        self.fill_to(n)?;
        Ok(self.q_mut()?.consume(n))
    }
}

use errors::io_eof;
