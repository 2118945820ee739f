//! The `msgpack_rs` Ruby extension: defines `MessagePack`'s native classes.
//! The layers, bottom up (docs/architecture.md): `runtime` knows no
//! MessagePack class; `memory` tracks instances through a trait; `buffer`,
//! `ext_types`, then `pack` and `unpack`; `factory` on top. This file only
//! wires them up.
mod buffer;
mod ext_types;
mod factory;
mod memory;
mod pack;
mod runtime;
mod unpack;

use magnus::{prelude::*, value::ReprValue, Error, Ruby};

tagged!(
    pack::packer::Packer,
    unpack::unpacker::Unpacker,
    buffer::class::Buffer
);

#[magnus::init(name = "msgpack_rs")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    // Every method defined below may be called from any Ractor: instances
    // own all their state, and shared state is immutable after load.
    // SAFETY: plain C API call during extension init.
    unsafe { rb_sys::rb_ext_ractor_safe(true) };
    let module = ruby.define_module("MessagePack")?;
    unpack::key_cache::init();
    runtime::ractor::init();
    runtime::errors::init(ruby, module)?;
    let held = module.define_class("HeldBuffer", ruby.class_basic_object())?;
    held.undef_default_alloc_func();
    buffer::class::init(ruby, module)?;
    pack::packer::init(ruby, module)?;
    unpack::unpacker::init(ruby, module)?;
    unpack::mapped::init(ruby, module)?;
    let memory = memory::init(
        ruby,
        module,
        vec![unpack::scratch::compact, || {
            // The map-key cache: its interned Strings/Symbols can be
            // collected once it lets go of them.
            unpack::key_cache::clear_current();
            (0, 0)
        }],
    )?;
    unpack::scratch::init(ruby, memory)?;
    factory::class::init(ruby, module)?;
    factory::pools::init(memory)?;
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
    let _ = buffer::class::Buffer::class(ruby);
    let _ = pack::packer::Packer::class(ruby);
    let _ = unpack::unpacker::Unpacker::class(ruby);
    let _ = factory::class::Factory::class(ruby);
    let _ = unpack::mapped::MappedUnpacker::class(ruby);
    // The data-type tags `receiver::this` compares with.
    runtime::receiver::record::<pack::packer::Packer>(
        ruby.obj_wrap(pack::packer::Packer::default()).as_value(),
    );
    runtime::receiver::record::<unpack::unpacker::Unpacker>(
        ruby.obj_wrap(unpack::unpacker::Unpacker::default())
            .as_value(),
    );
    runtime::receiver::record::<buffer::class::Buffer>(
        ruby.obj_wrap(buffer::class::Buffer::default()).as_value(),
    );
    memory::resolve_classes(ruby);
    let _ = runtime::raw::enc_indexes();
    runtime::raw::resolve_hash_iteration();
    ext_types::registry::init();
}
