//! Opening a `MappedUnpacker` and the class's definition.
use super::*;

/// Opens `path` (anything `File.path` takes) with `registry`'s ext types,
/// registered for `compact!`: `MappedUnpacker.open_internal`'s work once
/// the factory's tables are known (factory/one_shot.rs).
pub fn open_path(
    path: Value,
    options: Value,
    registry: Arc<UnpackRegistry>,
    optimized_symbols: bool,
) -> Result<Obj<MappedUnpacker>, Error> {
    let ruby = ruby();
    let path: RString = ruby
        .class_object()
        .const_get::<_, RClass>("File")?
        .funcall("path", (path,))?;
    // Bytes as they are (no UTF-8 conversion), like File.open; NUL is the
    // one byte no path may hold.
    let raw_path = magnus::rb_sys::AsRawValue::as_raw(path);
    // SAFETY: bytes of a live String, copied at once.
    let bytes = unsafe { raw::str_bytes(raw_path) }.to_vec();
    if bytes.contains(&0) {
        return Err(errors::arg_error("path name contains null byte"));
    }
    let path_buf = PathBuf::from(OsStr::from_bytes(&bytes));
    // SAFETY: a frozen copy of a live String, for `#path`.
    let path_string = unsafe { raw::freeze(rb_sys::rb_str_new_frozen(raw_path)) };
    let options = if options.is_nil() {
        None
    } else {
        Some(RHash::try_convert(options)?)
    };
    let u = ruby.obj_wrap(MappedUnpacker::open(
        path_string,
        path_buf,
        options,
        registry,
        optimized_symbols,
    )?);
    memory::track(&*u);
    Ok(u)
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("MappedUnpacker", ruby.class_object())?;
    class.undef_default_alloc_func();
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
    crate::buffer::class::undef_copy(class)?;
    Ok(())
}
