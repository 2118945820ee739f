//! The `msgpack_rs` Ruby extension: defines `MessagePack`'s native classes.
//! Each Ruby class lives in its own module; this file only wires them up.
mod buffer;
mod buffer_core;
mod builder;
mod chunk_queue;
mod errors;
mod ext_registry;
mod factory;
mod fast_path;
mod gc_ref;
mod key_cache;
mod mapped;
mod memory;
mod out_buf;
mod pack_walk;
mod packer;
mod ractor;
mod raw;
mod receiver;
mod unpacker;
mod value_stack;

use magnus::{prelude::*, value::ReprValue, Error, Ruby};

tagged!(packer::Packer, unpacker::Unpacker, buffer::Buffer);

#[magnus::init(name = "msgpack_rs")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    // Every method defined below may be called from any Ractor: instances
    // own all their state, and shared state is immutable after load.
    // SAFETY: plain C API call during extension init.
    unsafe { rb_sys::rb_ext_ractor_safe(true) };
    let module = ruby.define_module("MessagePack")?;
    key_cache::init();
    ractor::init();
    errors::init(ruby, module)?;
    let held = module.define_class("HeldBuffer", ruby.class_basic_object())?;
    held.undef_default_alloc_func();
    buffer::init(ruby, module)?;
    packer::init(ruby, module)?;
    unpacker::init(ruby, module)?;
    factory::init(ruby, module)?;
    memory::init(ruby, module)?;
    mapped::init(ruby, module)?;
    resolve_lazy_state(ruby);
    Ok(())
}

/// magnus finds a wrapped type's Ruby class on first use, through a
/// `OnceLock` whose initializer calls into Ruby. If two Ractors raced on that
/// first use, one would block on the lock outside a VM safepoint while the
/// other waited for the VM: a deadlock. So everything lazy is resolved here,
/// at load time, while only the main Ractor runs.
fn resolve_lazy_state(ruby: &Ruby) {
    use magnus::TypedData;
    let _ = buffer::Buffer::class(ruby);
    let _ = packer::Packer::class(ruby);
    let _ = unpacker::Unpacker::class(ruby);
    let _ = factory::Factory::class(ruby);
    let _ = mapped::MappedUnpacker::class(ruby);
    // The data-type tags `receiver::this` compares with.
    receiver::record::<packer::Packer>(ruby.obj_wrap(packer::Packer::default()).as_value());
    receiver::record::<unpacker::Unpacker>(ruby.obj_wrap(unpacker::Unpacker::default()).as_value());
    receiver::record::<buffer::Buffer>(ruby.obj_wrap(buffer::Buffer::default()).as_value());
    memory::resolve_classes(ruby);
    let _ = raw::enc_indexes();
    raw::resolve_hash_iteration();
    ext_registry::init();
}
