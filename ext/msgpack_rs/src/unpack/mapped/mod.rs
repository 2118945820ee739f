//! `MessagePack::MappedUnpacker`: decodes objects straight from a
//! memory-mapped file (`MessagePack::Unpacker.open`, `MessagePack.load_file`,
//! `Factory#open_file` / `#load_file` in lib/msgpack/memory.rb).
//!
//! * No read() copies: the decoder reads the mapping's pages directly.
//! * Values never reference the mapping: every String (and ext payload) is
//!   copied out, so nothing Ruby holds outlives or depends on the mapping.
//! * The file's size is checked (fstat) before every object, by every API
//!   (`read`, `skip`, `full_unpack`, and `each` before each object it
//!   yields, so also after the block ran): a file that grew is re-mapped
//!   (appended objects become readable), one that shrank is re-mapped to its
//!   new size, and if it shrank below the read position `IOError` is raised.
//!   A truncation by another process that races with the decode of one
//!   object cannot be detected: the kernel then raises SIGBUS for the lost
//!   pages, which kills the process. Do not map files that are truncated or
//!   rewritten in place while being read (append, or rename a new version
//!   into place: the mapping keeps the old inode).
//! * Nothing Rust-owned lives on the stack across a yield: `each` holds no
//!   reference to the mapping while its block runs, so an abandoned
//!   `each` enumerator (whose Fiber the GC frees without unwinding it)
//!   leaks nothing; the mapping goes with `close` or the object.
//! * Paths are taken as bytes, exactly as `File.open` takes them.
//! * Consumed pages are given back with `madvise(MADV_DONTNEED)` by
//!   `compact!`, and automatically by `each` every [`AUTO_DROP`] bytes (2 MiB), so
//!   streaming a large file keeps RSS small.
use crate::buffer::core::READ_REFERENCE_THRESHOLD_DEFAULT;
use crate::ext_types::registry::UnpackRegistry;
use crate::memory::{self, Compactable, Tracker};
use crate::runtime::errors;
use crate::runtime::gc_ref::{self, GcRef, Published};
use crate::runtime::raw;
use crate::runtime::ruby;
use crate::runtime::value_stack::ValueStack;
use crate::unpack::builder::UnpackOptions;
use crate::unpack::driver::{self, Build, BytesSource, Decoder, Got, Registrations};
use crate::unpack::settings::{check_nothing_left, DecodeSettings};
use magnus::{
    method, prelude::*, rb_sys::FromRawValue, typed_data::Obj, value::ReprValue, DataTypeFunctions,
    Error, RClass, RHash, RModule, RString, Ruby, TypedData, Value,
};
use memmap2::{Advice, Mmap, UncheckedAdvice};
use msgpack_rs_core::{Limits, StreamDecoder};
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

mod api;
mod file;

pub use api::{init, open_path};
use errors::{mapped_closed as closed_error, mapped_in_use as reentrant, system_call as io_error};
use file::{drop_pages, map_file, not_regular, page_floor, resident_bytes};
use std::time::Instant;

/// `each` gives consumed pages back every this many bytes.
const AUTO_DROP: usize = 2 * 1024 * 1024;

struct Source {
    file: Option<File>,
    /// `None` for an empty file (nothing to map) and after `close`. Borrowed
    /// (shared) for the whole of one decode, so `close` from an ext proc
    /// cannot unmap bytes being read: it raises instead.
    map: Option<Mmap>,
}

#[derive(TypedData)]
#[magnus(
    class = "MessagePack::MappedUnpacker",
    mark,
    compact,
    size,
    free_immediately
)]
pub struct MappedUnpacker {
    /// First field: unregisters before anything else is dropped.
    pub(crate) tracker: Tracker,
    /// The Ractor that made it (see `gc_ref::may_read_state`).
    owner: u64,
    source: RefCell<Source>,
    /// The path as given (a frozen String, for `#path`) and as bytes.
    path_string: GcRef,
    path: PathBuf,
    /// Offset of the next object.
    pos: Cell<usize>,
    /// Pages before this offset were already given back by `each`.
    dropped: Cell<usize>,
    /// Reused across objects (no malloc per object once warm); also skips.
    decoder: RefCell<Decoder>,
    decoder_bytes: Published,
    /// Values of the object being decoded (reused; see value_stack.rs).
    values: ValueStack,
    opts: UnpackOptions,
    registry: Arc<UnpackRegistry>,
}

impl DataTypeFunctions for MappedUnpacker {
    fn mark(&self, marker: &magnus::gc::Marker) {
        // The registry is immutable (shared copy-on-write with the factory).
        self.registry.mark(marker);
        self.path_string.mark(marker);
        if gc_ref::may_read_state(self.owner) {
            self.values.mark(marker);
        }
    }
    fn compact(&self, compactor: &magnus::gc::Compactor) {
        self.registry.update_references(compactor);
        self.path_string.update(compactor);
        self.values.update(compactor);
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.path.as_os_str().len()
            + self.decoder_bytes.get()
            + self.values.heap_size()
    }
}

impl Compactable for MappedUnpacker {
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    /// Heap bytes plus the mapping's pages resident in this process.
    fn held_bytes(&self) -> usize {
        DataTypeFunctions::size(self) + self.resident_size()
    }
    fn release(&self) {
        if let Ok(mut d) = self.decoder.try_borrow_mut() {
            if d.is_idle() {
                d.shrink_to_fit();
                self.values.shrink();
            }
            self.decoder_bytes.set(d.heap_size());
        }
        if let Ok(src) = self.source.try_borrow() {
            if let Some(map) = &src.map {
                // Everything consumed, including pages `each` dropped
                // already (a rewind may have faulted them back in).
                drop_pages(map, 0, self.pos.get());
                self.dropped.set(page_floor(self.pos.get()));
            }
        }
    }
}

/// What decoding at the current position gave.
enum Next {
    Value(Value),
    /// No more bytes at all.
    End,
    /// The file ends inside an object.
    Truncated,
}

impl MappedUnpacker {
    fn open(
        path_string: rb_sys::VALUE,
        path: PathBuf,
        options: Option<RHash>,
        registry: Arc<UnpackRegistry>,
        optimized_symbols: bool,
    ) -> Result<MappedUnpacker, Error> {
        // Check the type before opening: opening a FIFO for reading would
        // block until a writer appears.
        let meta = std::fs::metadata(&path).map_err(|e| io_error(e, &path))?;
        if !meta.file_type().is_file() {
            return Err(not_regular(&path, meta.file_type()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| io_error(e, &path))?;
        let meta = file.metadata().map_err(|e| io_error(e, &path))?;
        if !meta.file_type().is_file() {
            return Err(not_regular(&path, meta.file_type()));
        }
        let map = map_file(&file, meta.len(), &path)?;
        let DecodeSettings { opts, limits, .. } =
            DecodeSettings::parse(options, optimized_symbols)?;
        Ok(MappedUnpacker {
            tracker: Tracker::default(),
            owner: crate::runtime::ractor::current_id(),
            source: RefCell::new(Source {
                file: Some(file),
                map,
            }),
            // SAFETY: a live String; marked and updated by our callbacks.
            path_string: unsafe { GcRef::new(path_string) },
            path,
            pos: Cell::new(0),
            dropped: Cell::new(0),
            decoder: RefCell::new(StreamDecoder::new(limits)),
            decoder_bytes: Published::default(),
            values: ValueStack::default(),
            opts,
            registry,
        })
    }

    fn len_of(map: &Option<Mmap>) -> usize {
        map.as_ref().map(|m| m.len()).unwrap_or(0)
    }

    /// Re-checks the file's size (fstat) and re-maps it when it changed.
    /// Called before every object: a file that shrank below the read
    /// position raises here instead of faulting in the decoder.
    fn refresh(&self) -> Result<(), Error> {
        let mut src = self.source.try_borrow_mut().map_err(|_| reentrant())?;
        let Some(file) = src.file.as_ref() else {
            return Err(closed_error());
        };
        let size = file.metadata().map_err(|e| io_error(e, &self.path))?.len();
        if size != Self::len_of(&src.map) as u64 {
            let map = map_file(file, size, &self.path)?;
            src.map = map;
            if self.dropped.get() as u64 > size {
                self.dropped.set(page_floor(size as usize));
            }
        }
        // Every time, not only when the size changed: the same answer until
        // the file grows back or the caller seeks.
        if size < self.pos.get() as u64 {
            return Err(errors::file_shrank(&self.path, size, self.pos.get()));
        }
        Ok(())
    }

    /// The mapped length, without a size check (fails when closed).
    fn mapped_len(&self) -> Result<usize, Error> {
        let src = self.source.try_borrow().map_err(|_| reentrant())?;
        if src.file.is_none() {
            return Err(closed_error());
        }
        Ok(Self::len_of(&src.map))
    }

    /// Decodes the object at the current position (after a size check).
    fn decode_next(&self) -> Result<Next, Error> {
        self.refresh()?;
        let src = self.source.try_borrow().map_err(|_| reentrant())?;
        let bytes: &[u8] = src.map.as_deref().unwrap_or(&[]);
        let start = self.pos.get();
        let discarding = self
            .decoder
            .try_borrow()
            .map_err(|_| reentrant())?
            .is_discarding();
        if start >= bytes.len() && !discarding {
            return Ok(Next::End);
        }
        // Ruby code may run inside the object (ext procs; ExtensionValue.new):
        // it could truncate the file under the decoder, and the next byte
        // read from the mapping would raise SIGBUS. So then the object is
        // first measured (no Ruby code runs while the mapping is read) and
        // decoded from a copy.
        let user_code = !self.registry.is_empty() || self.opts.allow_unknown_ext;
        let copy: Option<Vec<u8>> = if user_code && !discarding {
            let mut probe = StreamDecoder::<msgpack_rs_core::Skipper>::new(Limits {
                max_depth: usize::MAX,
                max_array_len: u32::MAX,
                max_map_len: u32::MAX,
                max_str_len: u32::MAX,
                max_bin_len: u32::MAX,
                max_ext_len: u32::MAX,
            });
            let mut end = start;
            match probe.skip(bytes, &mut end) {
                // Whole, or up to the malformed byte the decode will stop at.
                Ok(true) | Err(_) => bytes.get(start..end).map(<[u8]>::to_vec),
                // The file ends inside it: nothing to decode yet.
                Ok(false) => return Ok(Next::Truncated),
            }
        } else {
            None
        };
        let len = bytes.len();
        // No shared source: every String is copied out of the mapping.
        let build = Build {
            values: &self.values,
            opts: self.opts,
            registry: Registrations::Fixed(Some(self.registry.clone())),
            threshold: READ_REFERENCE_THRESHOLD_DEFAULT,
            decoder_bytes: &self.decoder_bytes,
            busy: reentrant,
        };
        let (r, pos) = match &copy {
            Some(object) => {
                drop(src);
                let input = BytesSource::new(object, 0, None);
                let r = driver::decode(&self.decoder, &input, &build, 0);
                (r, start + input.pos())
            }
            None => {
                let input = BytesSource::new(bytes, start, None);
                let r = driver::decode(&self.decoder, &input, &build, 0);
                let pos = input.pos();
                drop(src);
                (r, pos)
            }
        };
        let mut dec = self.decoder.try_borrow_mut().map_err(|_| reentrant())?;
        let next = match r {
            Ok(Got::Value(v)) => {
                self.pos.set(pos);
                // SAFETY: a live object just built.
                Ok(Next::Value(unsafe { Value::from_raw(v) }))
            }
            Ok(Got::NeedMore) => {
                // Keep nothing half-built: the next call starts this object
                // again (from `pos` unless a discard moved past it).
                if dec.is_discarding() {
                    self.pos.set(pos);
                } else {
                    dec.reset();
                }
                self.values.truncate(0);
                Ok(if self.pos.get() >= len {
                    Next::End
                } else {
                    Next::Truncated
                })
            }
            Ok(Got::Deferred { ty, .. }) => {
                dec.reset();
                self.values.truncate(0);
                Err(errors::mapped_recursive_ext(ty))
            }
            Err(e) => {
                // Like Unpacker: the rest of the failed object is
                // discarded by the next call.
                self.pos.set(pos);
                self.values.truncate(0);
                Err(e)
            }
        };
        self.decoder_bytes.set(dec.heap_size());
        next
    }

    fn truncated(&self, len: usize) -> Error {
        errors::file_ends_inside_object(&self.path, len, self.pos.get())
    }

    fn read(&self) -> Result<Value, Error> {
        match self.decode_next()? {
            Next::Value(v) => Ok(v),
            Next::End => Err(errors::eof()),
            Next::Truncated => Err(self.truncated(self.mapped_len()?)),
        }
    }

    /// Exactly one object, and nothing after it.
    fn read_whole(&self) -> Result<Value, Error> {
        let v = self.read()?;
        let len = self.mapped_len()?;
        let pos = self.pos.get();
        check_nothing_left(len.saturating_sub(pos))?;
        Ok(v)
    }

    fn skip(&self) -> Result<(), Error> {
        self.refresh()?;
        let src = self.source.try_borrow().map_err(|_| reentrant())?;
        let bytes: &[u8] = src.map.as_deref().unwrap_or(&[]);
        let start = self.pos.get();
        let discarding = self
            .decoder
            .try_borrow()
            .map_err(|_| reentrant())?
            .is_discarding();
        if start >= bytes.len() && !discarding {
            return Err(errors::eof());
        }
        let input = BytesSource::new(bytes, start, None);
        let r = driver::skip(&self.decoder, &input, &self.values, 0, reentrant);
        match r {
            Ok(true) => {
                self.pos.set(input.pos());
                Ok(())
            }
            Ok(false) => {
                // Truncated: forget the partial skip; the next call starts
                // at this object again.
                self.decoder
                    .try_borrow_mut()
                    .map_err(|_| reentrant())?
                    .reset();
                Err(self.truncated(bytes.len()))
            }
            Err(e) => {
                self.pos.set(input.pos());
                Err(e)
            }
        }
    }

    /// Yields every complete object. Stops quietly at the end of the file,
    /// and at an object the file ends inside (as `Unpacker#each` over an IO
    /// does): `read` then raises EOFError, and once the writer has appended
    /// the rest, `each` resumes there. The size is checked before every
    /// object, so a block that rewrites the file gets an exception, never a
    /// signal.
    fn each(rb_self: Obj<Self>) -> Result<Value, Error> {
        let ruby = ruby();
        if !ruby.block_given() {
            return Ok(rb_self.enumeratorize("each", ()).as_value());
        }
        // Nothing borrowed from the mapping survives the condition.
        while let Next::Value(v) = rb_self.decode_next()? {
            let _: Value = ruby.yield_value(v)?;
            rb_self.auto_drop()?;
        }
        Ok(ruby.qnil().as_value())
    }

    fn auto_drop(&self) -> Result<(), Error> {
        // The block may have closed us.
        let src = self.source.try_borrow().map_err(|_| reentrant())?;
        let Some(map) = &src.map else { return Ok(()) };
        let pos = self.pos.get();
        if pos >= self.dropped.get() + AUTO_DROP {
            drop_pages(map, self.dropped.get(), pos);
            self.dropped.set(page_floor(pos));
        }
        Ok(())
    }

    fn pos(&self) -> usize {
        self.pos.get()
    }

    /// Moves to `offset` (the start of an object).
    fn seek(&self, offset: usize) -> Result<usize, Error> {
        let len = self.mapped_len()?;
        if offset > len {
            return Err(errors::range_error(format!(
                "offset {offset} is past the end of the file ({len} bytes)"
            )));
        }
        self.decoder
            .try_borrow_mut()
            .map_err(|_| reentrant())?
            .reset();
        self.pos.set(offset);
        self.dropped.set(self.dropped.get().min(page_floor(offset)));
        Ok(offset)
    }

    fn rewind(&self) -> Result<usize, Error> {
        self.seek(0)
    }

    fn size(&self) -> Result<usize, Error> {
        self.mapped_len()
    }

    fn is_eof(&self) -> Result<bool, Error> {
        Ok(self.pos.get() >= self.size()?)
    }

    fn path(&self) -> Value {
        // SAFETY: a frozen String kept alive by our mark callback.
        unsafe { Value::from_raw(self.path_string.get()) }
    }

    fn close(&self) -> Result<(), Error> {
        // Refused (raises) while a decode reads the mapping, e.g. from an
        // ext proc.
        let mut src = self.source.try_borrow_mut().map_err(|_| reentrant())?;
        src.map = None;
        src.file = None;
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.source
            .try_borrow()
            .map(|s| s.file.is_none())
            .unwrap_or(false)
    }

    fn compact(&self) -> Result<Value, Error> {
        let started = Instant::now();
        let before = self.held_bytes();
        self.release();
        memory::report(before, self.held_bytes(), 1, started, None)
    }

    /// Bytes of the mapping resident in this process right now.
    fn resident_size(&self) -> usize {
        self.source
            .try_borrow()
            .ok()
            .and_then(|s| s.map.as_ref().map(resident_bytes))
            .unwrap_or(0)
    }

    fn symbolize_keys_p(&self) -> bool {
        self.opts.symbolize_keys
    }

    fn freeze_p(&self) -> bool {
        self.opts.freeze
    }

    fn allow_unknown_ext_p(&self) -> bool {
        self.opts.allow_unknown_ext
    }
}
