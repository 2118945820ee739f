//! `MessagePack::Packer` and the packing walk.
pub mod out_buf;
pub mod packer;
pub mod walk;
