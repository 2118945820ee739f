//! `MessagePack::Factory`, and the one-shot `MessagePack.pack`/`unpack`,
//! `Factory#dump`/`load`.
pub mod class;
pub mod one_shot;
pub mod pools;
