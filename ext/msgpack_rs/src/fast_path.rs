//! `MessagePack.pack/unpack` and `Factory#dump/load` without the per-call
//! Packer/Unpacker setup:
//!
//! * unpacking a String decodes straight from its bytes (no Unpacker object,
//!   no copy; long str/bin values become shared substrings);
//! * packing reuses one Packer per Ractor (kept in Ractor-local storage), so
//!   its output buffer is warm and no allocation happens per call.
//!
//! IO arguments and recursive ext types take the ordinary path.
use crate::buffer_core::opt;
use crate::builder::{RubyBuilder, UnpackOptions};
use crate::chunk_queue::SharedSource;
use crate::errors::{self, ruby};
use crate::factory::{Factory, Tables};
use crate::packer::{split_io_options, Packer};
use crate::raw;
use crate::unpacker::parse_limits;
use magnus::{
    function, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj,
    value::ReprValue, Error, RHash, RModule, RString, Ruby, Value,
};
use msgpack_rs_core::{DecodeError, Step};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// Ractor-local storage key for the reusable packer (created at load time,
/// immutable afterwards).
static PACKER_KEY: OnceLock<usize> = OnceLock::new();
/// `MessagePack::DefaultFactory` (a pinned constant).
static DEFAULT_FACTORY: OnceLock<usize> = OnceLock::new();

fn default_factory() -> Result<&'static Factory, Error> {
    let raw = *DEFAULT_FACTORY
        .get()
        .ok_or_else(|| errors::arg_error("MessagePack is not initialized"))?;
    // SAFETY: a pinned, permanently referenced Factory object.
    <&Factory>::try_convert(unsafe { Value::from_raw(raw as VALUE) })
}

/// The Ractor's reusable packer if one was made, as it is (for compact!).
pub fn existing_scratch_packer() -> Option<Obj<Packer>> {
    let key = *PACKER_KEY.get()? as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; the VM marks what it stores.
    let stored = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    // SAFETY: a live object (or nil) from Ractor-local storage.
    Obj::<Packer>::try_convert(unsafe { Value::from_raw(stored) }).ok()
}

/// The Ractor's reusable packer, set up for `factory`'s current tables;
/// `None` when it is busy (a nested call from a `to_msgpack` callback).
fn scratch_packer(factory: &Factory) -> Option<Obj<Packer>> {
    let key = *PACKER_KEY.get()? as rb_sys::rb_ractor_local_key_t;
    // SAFETY: a key made at init; the VM marks what it stores.
    let stored = unsafe { rb_sys::rb_ractor_local_storage_value(key) };
    // SAFETY: a live object (or nil) from Ractor-local storage.
    let packer = match Obj::<Packer>::try_convert(unsafe { Value::from_raw(stored) }) {
        Ok(p) => p,
        Err(_) => {
            let p = ruby().obj_wrap(Packer::default());
            // SAFETY: storing a live object under our key.
            unsafe { rb_sys::rb_ractor_local_storage_value_set(key, p.as_raw()) };
            p
        }
    };
    if packer.is_busy() {
        return None;
    }
    if !packer.has_tables_of(factory, factory.generation()) {
        let tables = factory.tables().ok()?;
        packer.adopt(factory, &tables);
    }
    Some(packer)
}

/// `factory.dump(obj, *args)`.
pub fn dump(factory: &Factory, obj: Value, args: &[Value]) -> Result<Value, Error> {
    let (io, _) = split_io_options(args, true)?;
    let scratch = if io.is_none() {
        scratch_packer(factory)
    } else {
        None
    };
    let Some(p) = scratch else {
        let p = factory.new_packer(args)?;
        Packer::write_top(p, obj)?;
        return Ok(match p.full_pack()? {
            Some(s) => s.as_value(),
            None => ruby().qnil().as_value(),
        });
    };
    p.reconfigure(args)?;
    let r = p.with_busy(|| Packer::dump_direct(p, obj));
    let out = match r {
        Ok(Some(s)) => Ok(s),
        // Callbacks ran: the output went to the packer's buffer.
        Ok(None) => p.take_output(),
        Err(e) => Err(e),
    };
    // This packer is the library's, not the caller's: whatever a big
    // message made it hold goes back now, and the next message is sized
    // from this one, on every path (no cliff after one big message).
    p.end_scratch_call(out.as_ref().map(|s| s.len()).unwrap_or(0));
    out.map(|s| s.as_value())
}

/// `factory.load(src, options = nil)`.
pub fn load(factory: &Factory, src: Value, options: Option<Value>) -> Result<Value, Error> {
    let opts_hash = options.and_then(RHash::from_value);
    let Some(s) = RString::from_value(src) else {
        let mut args = vec![src];
        if let Some(o) = options {
            args.push(o);
        }
        let u = factory.new_unpacker(&args)?;
        return crate::unpacker::Unpacker::full_unpack(u.as_value());
    };
    // Nothing registered (DefaultFactory as usually used): no snapshot, so
    // concurrent Ractors share no lock or reference count here.
    let tables = if factory.has_unpackers() {
        Some(factory.tables()?)
    } else {
        None
    };
    match decode_string(s, tables.as_ref(), opts_hash)? {
        Some(v) => Ok(v),
        None => {
            // A recursive ext type: it needs a real Unpacker to read from.
            let u = factory.new_unpacker(&options.into_iter().collect::<Vec<_>>())?;
            crate::unpacker::Unpacker::feed(u.as_value(), s.as_value())?;
            crate::unpacker::Unpacker::full_unpack(u.as_value())
        }
    }
}

fn unpack_options(tables: Option<&Tables>, options: Option<RHash>) -> UnpackOptions {
    let flag = |k: &str| opt(options, k).map(|v| v.to_bool()).unwrap_or(false);
    UnpackOptions {
        symbolize_keys: flag("symbolize_keys"),
        freeze: flag("freeze"),
        allow_unknown_ext: flag("allow_unknown_ext"),
        optimized_symbols: tables.is_some_and(|t| t.optimized_symbols),
    }
}

/// Decodes exactly one object from `s`. `Ok(None)`: a recursive ext type
/// was met, use an Unpacker instead.
fn decode_string(
    s: RString,
    tables: Option<&Tables>,
    options: Option<RHash>,
) -> Result<Option<Value>, Error> {
    let opts = unpack_options(tables, options);
    let limits = parse_limits(options)?;
    let threshold = match opt(options, "read_reference_threshold") {
        Some(v) if !v.is_nil() => usize::try_convert(v)?.max(256),
        _ => crate::buffer_core::READ_REFERENCE_THRESHOLD_DEFAULT,
    };
    let raw_s = s.as_raw();
    let len = s.len();
    // User code (ext procs) could modify the caller's String while we read
    // it, and long values are returned as substrings of it: in those cases
    // read a frozen String sharing its bytes.
    let user_code = tables.is_some_and(|t| !t.unpack.is_empty()) || opts.allow_unknown_ext;
    let src = if raw::is_frozen(raw_s) || !(user_code || len >= threshold) {
        raw_s
    } else {
        // SAFETY: a frozen String sharing `s`'s buffer.
        unsafe { rb_sys::rb_str_new_frozen(raw_s) }
    };
    // Embedded String bytes live in the object slot, which compaction may
    // move while Ruby code runs: read small ones from a copy.
    let small: Vec<u8>;
    // SAFETY: bytes of a live String kept alive (and, if embedded, not used
    // past the copy) until decoding ends.
    let mut bytes = unsafe { raw::str_bytes(src) };
    let embedded = raw::str_is_embedded(src);
    if embedded {
        small = bytes.to_vec();
        bytes = &small;
    }
    let source = (raw::is_frozen(src) && !embedded).then_some(SharedSource {
        string: src,
        base: bytes.as_ptr(),
    });
    let registry = tables.map(|t| t.unpack.clone());
    let mut pos = 0;
    // The decoder and value stacks are this Ractor's reusable scratch
    // (memory.rs).
    let r = crate::memory::with_unpack_scratch(limits, |dec, values| {
        let mut b = RubyBuilder::new(values, opts, registry, source, threshold);
        dec.decode(&mut b, bytes, &mut pos)
    });
    // Keep the source visibly alive (on the machine stack, where the GC
    // looks) until decoding is over.
    std::hint::black_box(src);
    match r.map_err(Error::from)? {
        Step::Done(v) => {
            if pos < bytes.len() {
                return Err(errors::decode_error(DecodeError::ExtraBytes(
                    bytes.len() - pos,
                )));
            }
            // SAFETY: a live object just built.
            Ok(Some(unsafe { Value::from_raw(v) }))
        }
        Step::NeedMore => Err(errors::eof()),
        Step::Deferred { .. } => Ok(None),
    }
}

fn module_pack(args: &[Value]) -> Result<Value, Error> {
    let Some((obj, rest)) = args.split_first() else {
        return Err(errors::arg_error(
            "wrong number of arguments (given 0, expected 1..3)",
        ));
    };
    dump(default_factory()?, *obj, rest)
}

fn module_unpack(args: &[Value]) -> Result<Value, Error> {
    ruby().check_arity(args.len(), 1..=2)?;
    load(
        default_factory()?,
        args[0],
        args.get(1).copied().filter(|v| !v.is_nil()),
    )
}

pub fn init(ruby: &Ruby, module: RModule, default: Value) -> Result<(), Error> {
    // SAFETY: plain C API call at load time.
    let key = unsafe { rb_sys::rb_ractor_local_storage_value_newkey() };
    let _ = PACKER_KEY.set(key as usize);
    // SAFETY: pinning the DefaultFactory object for the process lifetime.
    unsafe { rb_sys::rb_gc_register_mark_object(default.as_raw()) };
    let _ = DEFAULT_FACTORY.set(default.as_raw() as usize);
    module.define_module_function("pack", function!(module_pack, -1))?;
    module.define_module_function("dump", function!(module_pack, -1))?;
    module.define_module_function("unpack", function!(module_unpack, -1))?;
    module.define_module_function("load", function!(module_unpack, -1))?;
    let _ = ruby;
    Ok(())
}
