//! `MessagePack.pack/unpack` and `Factory#dump/load` without the per-call
//! Packer/Unpacker setup:
//!
//! * unpacking a String decodes straight from its bytes (no Unpacker object,
//!   no copy; long str/bin values become shared substrings);
//! * packing reuses one Packer per Ractor (kept in Ractor-local storage), so
//!   its output buffer is warm and no allocation happens per call.
//!
//! IO arguments and recursive ext types take the ordinary path.
use crate::buffer::chunk_queue::SharedSource;
use crate::ext_types::registry::UnpackRegistry;
use crate::factory::class::{Factory, Tables};
use crate::pack::packer::Packer;
use crate::runtime::errors;
use crate::runtime::local::RactorLocal;
use crate::runtime::options::{split_io_options, BadOptions};
use crate::runtime::raw;
use crate::runtime::ruby;
use crate::unpack::driver::{self, Build, BytesSource, Got, Registrations};
use crate::unpack::mapped::MappedUnpacker;
use crate::unpack::scratch::with_unpack_scratch;
use crate::unpack::settings::{check_nothing_left, DecodeSettings};
use magnus::{
    function, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, typed_data::Obj,
    value::ReprValue, Error, RHash, RModule, RString, Ruby, Value,
};
use rb_sys::VALUE;
use std::sync::Arc;
use std::sync::OnceLock;

/// The Ractor's reusable packer.
static SCRATCH_PACKER: RactorLocal = RactorLocal::new();
/// `MessagePack::DefaultFactory` (a pinned constant).
static DEFAULT_FACTORY: OnceLock<usize> = OnceLock::new();

fn default_factory() -> Result<&'static Factory, Error> {
    let raw = *DEFAULT_FACTORY.get().ok_or_else(errors::not_initialized)?;
    // SAFETY: a pinned, permanently referenced Factory object.
    <&Factory>::try_convert(unsafe { Value::from_raw(raw as VALUE) })
}

/// The Ractor's reusable packer if one was made, as it is (for compact!).
pub fn existing_scratch_packer() -> Option<Obj<Packer>> {
    SCRATCH_PACKER.object::<Packer>()
}

/// The Ractor's reusable packer, set up for `factory`'s current tables;
/// `None` when it is busy (a nested call from a `to_msgpack` callback).
fn scratch_packer(factory: &Factory) -> Option<Obj<Packer>> {
    let packer = SCRATCH_PACKER.object_or_init(|| ruby().obj_wrap(Packer::default()))?;
    if packer.is_busy() {
        return None;
    }
    let address = factory as *const Factory as usize;
    if !packer.has_tables_of((address, factory.generation())) {
        let tables = factory.tables().ok()?;
        packer.adopt((address, tables.generation), &tables.pack);
    }
    Some(packer)
}

/// `factory.dump(obj, *args)`.
pub fn dump(factory: &Factory, obj: Value, args: &[Value]) -> Result<Value, Error> {
    let (io, _) = split_io_options(args, BadOptions::TypeError)?;
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
        return crate::unpack::unpacker::Unpacker::full_unpack(u.as_value());
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
            crate::unpack::unpacker::Unpacker::feed(u.as_value(), s.as_value())?;
            crate::unpack::unpacker::Unpacker::full_unpack(u.as_value())
        }
    }
}

/// Decodes exactly one object from `s`. `Ok(None)`: a recursive ext type
/// was met, use an Unpacker instead.
fn decode_string(
    s: RString,
    tables: Option<&Tables>,
    options: Option<RHash>,
) -> Result<Option<Value>, Error> {
    let DecodeSettings {
        opts,
        limits,
        read_reference_threshold: threshold,
    } = DecodeSettings::parse(options, tables.is_some_and(|t| t.optimized_symbols))?
        .with_read_reference_threshold(options)?;
    let raw_s = s.as_raw();
    let len = s.len();
    // User code (ext procs) could modify the caller's String while we read
    // it, and long values are returned as substrings of it: in those cases
    // read a frozen String sharing its bytes.
    let user_code = tables.is_some_and(|t| !t.unpack.is_empty()) || opts.allow_unknown_ext;
    // SAFETY: a live object the caller holds.
    let src = if unsafe { raw::is_frozen(raw_s) } || !(user_code || len >= threshold) {
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
    // SAFETY: a live String the caller holds.
    let embedded = unsafe { raw::str_is_embedded(src) };
    if embedded {
        small = bytes.to_vec();
        bytes = &small;
    }
    // SAFETY: a live object the caller holds.
    let source = (unsafe { raw::is_frozen(src) } && !embedded).then_some(SharedSource {
        string: src,
        base: bytes.as_ptr(),
    });
    let registry = tables.map(|t| t.unpack.clone());
    let input = BytesSource::new(bytes, 0, source);
    // The decoder and value stacks are this Ractor's reusable scratch
    // (unpack/scratch.rs).
    let r = with_unpack_scratch(limits, |dec, values, decoder_bytes| {
        let build = Build {
            values,
            opts,
            registry: Registrations::Fixed(registry),
            threshold,
            decoder_bytes,
            busy: errors::unpacker_reentrant,
        };
        driver::decode(dec, &input, &build, 0)
    });
    // Keep the source visibly alive (on the machine stack, where the GC
    // looks) until decoding is over.
    std::hint::black_box(src);
    match r? {
        Got::Value(v) => {
            check_nothing_left(input.left())?;
            // SAFETY: a live object just built.
            Ok(Some(unsafe { Value::from_raw(v) }))
        }
        Got::NeedMore => Err(errors::eof()),
        Got::Deferred { .. } => Ok(None),
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
    SCRATCH_PACKER.init();
    // SAFETY: pinning the DefaultFactory object for the process lifetime.
    unsafe { rb_sys::rb_gc_register_mark_object(default.as_raw()) };
    let _ = DEFAULT_FACTORY.set(default.as_raw() as usize);
    let mapped = module.const_get::<_, magnus::RClass>("MappedUnpacker")?;
    mapped.define_singleton_method("open_internal", function!(open_mapped, 3))?;
    module.define_module_function("pack", function!(module_pack, -1))?;
    module.define_module_function("dump", function!(module_pack, -1))?;
    module.define_module_function("unpack", function!(module_unpack, -1))?;
    module.define_module_function("load", function!(module_unpack, -1))?;
    let _ = ruby;
    Ok(())
}

/// `MappedUnpacker.open_internal(path, options, factory_or_nil)`: a mapped
/// file read with the factory's ext types.
fn open_mapped(path: Value, options: Value, factory: Value) -> Result<Obj<MappedUnpacker>, Error> {
    let (registry, optimized) = if factory.is_nil() {
        (Arc::new(UnpackRegistry::default()), false)
    } else {
        let f = <&Factory>::try_convert(factory)?;
        let t = f.tables()?;
        (t.unpack, t.optimized_symbols)
    };
    crate::unpack::mapped::open_path(path, options, registry, optimized)
}
