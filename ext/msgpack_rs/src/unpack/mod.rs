//! `MessagePack::Unpacker`, `MessagePack::MappedUnpacker` and what builds
//! Ruby objects from the core decoder.
pub mod builder;
pub mod driver;
pub mod key_cache;
pub mod mapped;
pub mod scratch;
pub mod settings;
pub mod unpacker;
