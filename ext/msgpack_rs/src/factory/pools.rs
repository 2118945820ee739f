//! The native side of `Factory#pool` and `Factory#compact!`: which pooled
//! Packers and Unpackers belong to which factory, and compacting them with
//! the Ractor's scratch packer.
use crate::factory::class::Factory;
use crate::memory::{self, report};
use crate::pack::packer::Packer;
use crate::unpack::unpacker::Unpacker;
use magnus::{function, typed_data::Obj, Error, RModule, TryConvert, Value};
use std::time::Instant;

/// The tag of `factory`'s pool members: the address of its native data,
/// stable while it lives.
fn tag(factory: &Factory) -> usize {
    factory as *const Factory as usize
}

/// `MessagePack::Factory#compact!`'s native part: the calling Ractor's
/// scratch packer, which every factory's `dump`/`pack` reuses. The Ruby
/// side adds the factory's pools.
fn compact_scratch_packer(_factory: Value) -> Result<Value, Error> {
    let started = Instant::now();
    match crate::factory::one_shot::existing_scratch_packer() {
        Some(p) => {
            let (before, after) = memory::measure(&*p);
            report(before, after, 1, started, None)
        }
        None => report(0, 0, 0, started, None),
    }
}

/// `Memory.mark_pool_member(member, factory)`: records that a Packer or
/// Unpacker belongs to a pool of `factory` (see `Factory#pool`). Native
/// bookkeeping rather than a Ruby WeakMap: on Ruby 3.1, WeakMaps register
/// finalizers in a process-wide table that Ractors update without a lock.
fn mark_pool_member(member: Value, factory: &Factory) -> Result<Value, Error> {
    if let Ok(p) = Obj::<Packer>::try_convert(member) {
        memory::track_tagged(&*p, tag(factory));
    } else {
        let u = Obj::<Unpacker>::try_convert(member)?;
        memory::track_tagged(&*u, tag(factory));
    }
    Ok(member)
}

/// `Memory.compact_pool_members(factory)`: compacts the members of the
/// pools asked from `factory` in the calling Ractor.
fn compact_pool_members(factory: &Factory) -> Result<Value, Error> {
    let started = Instant::now();
    let (before, after, visited) = memory::compact_tagged(tag(factory));
    report(before, after, visited, started, None)
}

pub fn init(memory: RModule) -> Result<(), Error> {
    memory.define_module_function(
        "compact_scratch_packer",
        function!(compact_scratch_packer, 1),
    )?;
    memory.define_module_function("mark_pool_member", function!(mark_pool_member, 2))?;
    memory.define_module_function("compact_pool_members", function!(compact_pool_members, 1))?;
    Ok(())
}
