//! `MessagePack::MappedUnpacker`: decodes objects straight from a
//! memory-mapped file (`MessagePack::Unpacker.open`, `MessagePack.load_file`,
//! `Factory#open_file` / `#load_file` in lib/msgpack/memory.rb).
//!
//! * No read() copies: the decoder reads the mapping's pages directly.
//! * Values never reference the mapping: every String (and ext payload) is
//!   copied out, so nothing Ruby holds outlives or depends on the mapping.
//! * The file's size is checked (fstat) at each `read`/`skip`, at the start
//!   of each `each` and whenever `each` reaches the end of the mapping: a
//!   file that grew is re-mapped (appended objects become readable), one
//!   that shrank is re-mapped to its new size, and if it shrank below the
//!   read position `IOError` is raised. A truncation that races with a
//!   decode in progress cannot be detected: the kernel then raises SIGBUS
//!   for the lost pages, which kills the process. Do not map files that are
//!   truncated or rewritten in place while being read (append, or rename a
//!   new version into place: the mapping keeps the old inode).
//! * Consumed pages are given back with `madvise(MADV_DONTNEED)` by
//!   `compact!`, and automatically by `each` every [`AUTO_DROP`] bytes (2 MiB), so
//!   streaming a large file keeps RSS small.
use crate::buffer_core::{opt_flag, READ_REFERENCE_THRESHOLD_DEFAULT};
use crate::builder::{RubyBuilder, UnpackOptions};
use crate::errors::{self, ruby};
use crate::ext_registry::UnpackRegistry;
use crate::factory::Factory;
use crate::memory::{self, Compactable, Kind, Tracker};
use crate::raw;
use crate::unpacker::parse_limits;
use crate::value_stack::ValueStack;
use magnus::{
    function, method, prelude::*, rb_sys::FromRawValue, typed_data::Obj, value::ReprValue,
    DataTypeFunctions, Error, Exception, RClass, RHash, RModule, RString, Ruby, TypedData, Value,
};
use memmap2::{Advice, Mmap, UncheckedAdvice};
use msgpack_rs_core::{DecodeError, Limits, Skipper, Step, StreamDecoder};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::Arc;
use std::time::Instant;

/// `each` gives consumed pages back every this many bytes.
const AUTO_DROP: usize = 2 * 1024 * 1024;

struct Source {
    file: Option<File>,
    /// `None` for an empty file (nothing to map) and after `close`.
    map: Option<Arc<Mmap>>,
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
    source: RefCell<Source>,
    path: String,
    /// Offset of the next object.
    pos: Cell<usize>,
    /// Pages before this offset were already given back by `each`.
    dropped: Cell<usize>,
    /// Reused across objects (no malloc per object once warm).
    decoder: RefCell<StreamDecoder<RubyBuilder>>,
    /// Values of the object being decoded (reused; see value_stack.rs).
    values: ValueStack,
    skipper: RefCell<StreamDecoder<Skipper>>,
    opts: UnpackOptions,
    registry: Arc<UnpackRegistry>,
}

impl DataTypeFunctions for MappedUnpacker {
    fn mark(&self, _: &magnus::gc::Marker) {
        self.registry.mark();
        self.values.mark();
    }
    fn compact(&self, _: &magnus::gc::Compactor) {
        self.registry.update_references();
        self.values.update();
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.path.capacity()
            + self
                .decoder
                .try_borrow()
                .map(|d| d.heap_size())
                .unwrap_or(0)
            + self.values.heap_size()
    }
}

impl Compactable for MappedUnpacker {
    const KIND: Kind = Kind::Mapped;
    fn tracker(&self) -> &Tracker {
        &self.tracker
    }
    /// Heap bytes plus the mapping's pages resident in this process.
    fn held_bytes(&self) -> usize {
        let resident = self
            .source
            .try_borrow()
            .ok()
            .and_then(|s| s.map.clone())
            .map(|m| resident_bytes(&m))
            .unwrap_or(0);
        DataTypeFunctions::size(self) + resident
    }
    fn release(&self) {
        if let Ok(mut d) = self.decoder.try_borrow_mut() {
            if d.is_idle() {
                d.shrink_to_fit();
                self.values.shrink();
            }
        }
        if let Ok(mut s) = self.skipper.try_borrow_mut() {
            if s.is_idle() {
                s.shrink_to_fit();
            }
        }
        let map = self.source.try_borrow().ok().and_then(|s| s.map.clone());
        if let Some(map) = map {
            // Everything consumed, including pages `each` dropped already
            // (a rewind may have faulted them back in).
            drop_pages(&map, 0, self.pos.get());
            self.dropped.set(page_floor(self.pos.get()));
        }
    }
}

fn page_floor(n: usize) -> usize {
    let page = memory::page_size();
    n / page * page
}

/// `madvise(MADV_DONTNEED)` on the whole pages in `[from, to)`.
fn drop_pages(map: &Mmap, from: usize, to: usize) {
    let (start, end) = (page_floor(from), page_floor(to.min(map.len())));
    if end > start {
        // SAFETY: the mapping is a read-only (PROT_READ, MAP_SHARED) file
        // mapping: dropping its pages only discards our page-table entries,
        // and the next access faults the same file bytes back in. No Rust
        // code can observe a difference. The range lies inside the mapping
        // and `start` is page-aligned (the mapping starts on a page).
        let _ =
            // SAFETY: as explained above: DONTNEED on a read-only file mapping only drops page-table entries.
            unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    }
}

/// Bytes of the mapping resident in this process: pages present in our
/// page tables, from /proc/self/pagemap (bit 63 of each entry; readable
/// without privileges). mincore would report the page cache instead, which
/// MADV_DONTNEED does not change.
fn resident_bytes(map: &Mmap) -> usize {
    use std::os::unix::fs::FileExt;
    let page = memory::page_size();
    let len = map.len();
    if len == 0 {
        return 0;
    }
    let first = map.as_ptr() as usize / page;
    let pages = len.div_ceil(page);
    let Ok(pagemap) = File::open("/proc/self/pagemap") else {
        return 0;
    };
    let mut buf = vec![0u8; pages.min(64 * 1024) * 8];
    let mut resident = 0;
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(buf.len() / 8);
        let Some(chunk) = buf.get_mut(..n * 8) else {
            return 0;
        };
        if pagemap
            .read_exact_at(chunk, ((first + done) * 8) as u64)
            .is_err()
        {
            return 0;
        }
        resident += chunk.chunks_exact(8).filter(|e| e[7] & 0x80 != 0).count();
        done += n;
    }
    resident * page
}

fn closed_error() -> Error {
    Error::new(ruby().exception_io_error(), "closed MappedUnpacker")
}

fn reentrant() -> Error {
    errors::error(
        errors::Kind::Unpack,
        "MappedUnpacker is in use (re-entrant call from an extension callback?)",
    )
}

/// An `Errno::*` exception for a failed system call on `path`.
fn io_error(e: std::io::Error, path: &str) -> Error {
    let ruby = ruby();
    if let Some(errno) = e.raw_os_error() {
        let made = ruby
            .class_object()
            .const_get::<_, RClass>("SystemCallError")
            .and_then(|c| c.funcall::<_, _, Value>("new", (path, errno)));
        if let Ok(v) = made {
            if let Some(exc) = Exception::from_value(v) {
                return Error::from(exc);
            }
        }
    }
    Error::new(ruby.exception_io_error(), format!("{e} @ {path}"))
}

fn describe_type(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &str, ft: std::fs::FileType) -> Error {
    errors::arg_error(format!(
        "MessagePack can only map regular files: {path} is {}",
        describe_type(ft)
    ))
}

fn map_file(file: &File, len: u64, path: &str) -> Result<Option<Arc<Mmap>>, Error> {
    if len == 0 {
        return Ok(None);
    }
    if usize::try_from(len).is_err() {
        return Err(errors::range_error(format!("{path} is too large to map")));
    }
    // SAFETY: mapping a regular file read-only. Rust's rules assume the
    // bytes cannot change while borrowed, which another process writing to
    // the file could violate: the decoder then sees inconsistent bytes, but
    // it bounds-checks every length against the slice, so the worst case is
    // a wrong value or a format error. A truncation below the mapped length
    // makes access to the lost pages raise SIGBUS: see the module docs for
    // how sizes are re-checked and what is left to the caller.
    // SAFETY: as explained above: the mapping is read-only and every read is bounds-checked.
    let map = unsafe { Mmap::map(file) }.map_err(|e| io_error(e, path))?;
    let _ = map.advise(Advice::Sequential);
    Ok(Some(Arc::new(map)))
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
        path: String,
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
        let limits: Limits = parse_limits(options)?;
        let opts = UnpackOptions {
            symbolize_keys: opt_flag(options, "symbolize_keys"),
            freeze: opt_flag(options, "freeze"),
            allow_unknown_ext: opt_flag(options, "allow_unknown_ext"),
            optimized_symbols,
        };
        Ok(MappedUnpacker {
            tracker: Tracker::default(),
            source: RefCell::new(Source {
                file: Some(file),
                map,
            }),
            path,
            pos: Cell::new(0),
            dropped: Cell::new(0),
            decoder: RefCell::new(StreamDecoder::new(limits)),
            values: ValueStack::default(),
            skipper: RefCell::new(StreamDecoder::new(limits)),
            opts,
            registry,
        })
    }

    /// Re-checks the file's size and re-maps it when it changed. Returns
    /// the current mapping (`None` when the file is empty).
    fn refresh(&self) -> Result<Option<Arc<Mmap>>, Error> {
        let mut src = self.source.try_borrow_mut().map_err(|_| reentrant())?;
        let Some(file) = src.file.as_ref() else {
            return Err(closed_error());
        };
        let size = file.metadata().map_err(|e| io_error(e, &self.path))?.len();
        let mapped = src.map.as_ref().map(|m| m.len() as u64).unwrap_or(0);
        if size != mapped {
            let map = map_file(file, size, &self.path)?;
            src.map = map;
            if size < self.pos.get() as u64 {
                return Err(Error::new(
                    ruby().exception_io_error(),
                    format!(
                        "{} shrank to {size} bytes, below the read position {}",
                        self.path,
                        self.pos.get()
                    ),
                ));
            }
            if self.dropped.get() as u64 > size {
                self.dropped.set(page_floor(size as usize));
            }
        }
        Ok(src.map.clone())
    }

    /// The current mapping, without a size check.
    fn current(&self) -> Result<Option<Arc<Mmap>>, Error> {
        let src = self.source.try_borrow().map_err(|_| reentrant())?;
        if src.file.is_none() {
            return Err(closed_error());
        }
        Ok(src.map.clone())
    }

    /// Decodes the object at the current position from `map`.
    fn decode_at(&self, map: Option<&Arc<Mmap>>) -> Result<Next, Error> {
        let bytes: &[u8] = map.map(|m| &m[..]).unwrap_or(&[]);
        let start = self.pos.get();
        if start >= bytes.len() {
            return Ok(Next::End);
        }
        let mut dec = self.decoder.try_borrow_mut().map_err(|_| reentrant())?;
        // No shared source: every String is copied out of the mapping.
        let mut b = RubyBuilder::new(
            &self.values,
            self.opts,
            Some(self.registry.clone()),
            None,
            READ_REFERENCE_THRESHOLD_DEFAULT,
        );
        let mut pos = start;
        let r = dec.decode(&mut b, bytes, &mut pos);
        match r {
            Ok(Step::Done(v)) => {
                self.pos.set(pos);
                // SAFETY: a live object just built.
                Ok(Next::Value(unsafe { Value::from_raw(v) }))
            }
            Ok(Step::NeedMore) => {
                dec.reset();
                self.values.truncate(0);
                Ok(Next::Truncated)
            }
            Ok(Step::Deferred { ty, .. }) => {
                dec.reset();
                self.values.truncate(0);
                Err(errors::error(
                    errors::Kind::Unpack,
                    format!(
                        "ext type {ty} is registered as recursive, which MappedUnpacker does \
                         not support; use MessagePack::Unpacker.new(File.open(path)) instead"
                    ),
                ))
            }
            Err(e) => {
                // Like Unpacker: continue after the offending header.
                self.pos.set(pos);
                self.values.truncate(0);
                Err(Error::from(e))
            }
        }
    }

    fn truncated(&self, len: usize) -> Error {
        Error::new(
            ruby().exception_eof_error(),
            format!(
                "end of file reached inside an object: {} ends at byte {len}, the object \
                 starting at byte {} is incomplete",
                self.path,
                self.pos.get()
            ),
        )
    }

    fn read(&self) -> Result<Value, Error> {
        let map = self.refresh()?;
        match self.decode_at(map.as_ref())? {
            Next::Value(v) => Ok(v),
            Next::End => Err(errors::eof()),
            Next::Truncated => Err(self.truncated(map.map(|m| m.len()).unwrap_or(0))),
        }
    }

    /// Exactly one object, and nothing after it.
    fn read_whole(&self) -> Result<Value, Error> {
        let v = self.read()?;
        let len = self.current()?.map(|m| m.len()).unwrap_or(0);
        let pos = self.pos.get();
        if pos < len {
            return Err(errors::decode_error(DecodeError::ExtraBytes(len - pos)));
        }
        Ok(v)
    }

    fn skip(&self) -> Result<(), Error> {
        let map = self.refresh()?;
        let bytes: &[u8] = map.as_ref().map(|m| &m[..]).unwrap_or(&[]);
        let start = self.pos.get();
        if start >= bytes.len() {
            return Err(errors::eof());
        }
        let mut dec = self.skipper.try_borrow_mut().map_err(|_| reentrant())?;
        let mut pos = start;
        match dec.decode(&mut Skipper, bytes, &mut pos) {
            Ok(Step::Done(())) => {
                self.pos.set(pos);
                Ok(())
            }
            Ok(_) => {
                dec.reset();
                Err(self.truncated(bytes.len()))
            }
            Err(e) => {
                self.pos.set(pos);
                Err(errors::decode_error(e))
            }
        }
    }

    /// Yields every complete object. Stops quietly at the end of the file,
    /// and at an object the file ends inside (as `Unpacker#each` over an IO
    /// does): `read` then raises EOFError, and once the writer has appended
    /// the rest, `each` resumes there.
    fn each(rb_self: Obj<Self>) -> Result<Value, Error> {
        let ruby = ruby();
        if !ruby.block_given() {
            return Ok(rb_self.enumeratorize("each", ()).as_value());
        }
        let mut map = rb_self.refresh()?;
        let mut rechecked = false;
        loop {
            match rb_self.decode_at(map.as_ref())? {
                Next::Value(v) => {
                    rechecked = false;
                    let _: Value = ruby.yield_value(v)?;
                    rb_self.auto_drop(map.as_ref());
                    // The block may have closed us.
                    map = rb_self.current()?;
                }
                Next::End | Next::Truncated => {
                    if rechecked {
                        break;
                    }
                    // The file may have grown meanwhile.
                    rechecked = true;
                    map = rb_self.refresh()?;
                }
            }
        }
        Ok(ruby.qnil().as_value())
    }

    fn auto_drop(&self, map: Option<&Arc<Mmap>>) {
        let Some(map) = map else { return };
        let pos = self.pos.get();
        if pos >= self.dropped.get() + AUTO_DROP {
            drop_pages(map, self.dropped.get(), pos);
            self.dropped.set(page_floor(pos));
        }
    }

    fn pos(&self) -> usize {
        self.pos.get()
    }

    /// Moves to `offset` (the start of an object).
    fn seek(&self, offset: usize) -> Result<usize, Error> {
        let len = self.current()?.map(|m| m.len()).unwrap_or(0);
        if offset > len {
            return Err(errors::range_error(format!(
                "offset {offset} is past the end of the file ({len} bytes)"
            )));
        }
        if let Ok(mut d) = self.decoder.try_borrow_mut() {
            d.reset();
        }
        self.pos.set(offset);
        self.dropped.set(self.dropped.get().min(page_floor(offset)));
        Ok(offset)
    }

    fn rewind(&self) -> Result<usize, Error> {
        self.seek(0)
    }

    fn size(&self) -> Result<usize, Error> {
        Ok(self.current()?.map(|m| m.len()).unwrap_or(0))
    }

    fn is_eof(&self) -> Result<bool, Error> {
        Ok(self.pos.get() >= self.size()?)
    }

    fn path(&self) -> RString {
        ruby().str_new(&self.path)
    }

    fn close(&self) -> Result<(), Error> {
        let mut src = self.source.try_borrow_mut().map_err(|_| reentrant())?;
        // A decode in progress (re-entered from an ext callback) holds its
        // own Arc of the mapping, so dropping ours cannot unmap under it.
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
            .and_then(|s| s.map.clone())
            .map(|m| resident_bytes(&m))
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

/// `MappedUnpacker.open_internal(path, options, factory_or_nil)`.
fn open_internal(
    path: Value,
    options: Value,
    factory: Value,
) -> Result<Obj<MappedUnpacker>, Error> {
    let ruby = ruby();
    let path: RString = ruby
        .class_object()
        .const_get::<_, RClass>("File")?
        .funcall("path", (path,))?;
    // SAFETY: bytes of a live String, copied at once.
    let path = String::from_utf8_lossy(unsafe {
        raw::str_bytes(magnus::rb_sys::AsRawValue::as_raw(path))
    })
    .into_owned();
    let options = if options.is_nil() {
        None
    } else {
        Some(RHash::try_convert(options)?)
    };
    let (registry, optimized) = if factory.is_nil() {
        (Arc::new(UnpackRegistry::default()), false)
    } else {
        let f = <&Factory>::try_convert(factory)?;
        let t = f.tables()?;
        (t.unpack, t.optimized_symbols)
    };
    let u = ruby.obj_wrap(MappedUnpacker::open(path, options, registry, optimized)?);
    memory::track(&*u);
    Ok(u)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("MappedUnpacker", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("open_internal", function!(open_internal, 3))?;
    class.define_method("read", method!(MappedUnpacker::read, 0))?;
    class.define_method("unpack", method!(MappedUnpacker::read, 0))?;
    class.define_method("full_unpack", method!(MappedUnpacker::read_whole, 0))?;
    class.define_method("skip", method!(MappedUnpacker::skip, 0))?;
    class.define_method("each", method!(MappedUnpacker::each, 0))?;
    class.define_method("pos", method!(MappedUnpacker::pos, 0))?;
    class.define_method("seek", method!(MappedUnpacker::seek, 1))?;
    class.define_method("rewind", method!(MappedUnpacker::rewind, 0))?;
    class.define_method("size", method!(MappedUnpacker::size, 0))?;
    class.define_method("eof?", method!(MappedUnpacker::is_eof, 0))?;
    class.define_method("path", method!(MappedUnpacker::path, 0))?;
    class.define_method("close", method!(MappedUnpacker::close, 0))?;
    class.define_method("closed?", method!(MappedUnpacker::is_closed, 0))?;
    class.define_method("compact!", method!(MappedUnpacker::compact, 0))?;
    class.define_method("resident_size", method!(MappedUnpacker::resident_size, 0))?;
    class.define_method(
        "symbolize_keys?",
        method!(MappedUnpacker::symbolize_keys_p, 0),
    )?;
    class.define_method("freeze?", method!(MappedUnpacker::freeze_p, 0))?;
    class.define_method(
        "allow_unknown_ext?",
        method!(MappedUnpacker::allow_unknown_ext_p, 0),
    )?;
    crate::buffer::undef_copy(class)?;
    Ok(())
}
