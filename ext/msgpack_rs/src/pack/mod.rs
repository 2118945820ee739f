//! `MessagePack::Packer` and the packing walk.
pub mod ext_lookup;
pub mod out_buf;
pub mod output;
pub mod packer;
pub mod walk;
