//! `MessagePack::Buffer` and the byte queue behind every Buffer, Packer
//! and Unpacker.
pub mod chunk_queue;
pub mod class;
pub mod core;
