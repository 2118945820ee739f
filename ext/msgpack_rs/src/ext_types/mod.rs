//! Registered extension types: the tables factories, packers and
//! unpackers share, and how their procs and methods are called.
pub mod call;
pub mod registry;
