//! The layer that knows no MessagePack class: raw C-API access, GC-visible
//! references and the value stack, Ractor ids and Ractor-local storage,
//! exceptions, argument and option parsing. Everything above it (buffer,
//! memory, ext_types, pack, unpack, factory) may use it; it uses none of
//! them.
pub mod errors;
pub mod gc_ref;
pub mod local;
pub mod options;
pub mod ractor;
pub mod raw;
pub mod receiver;
pub mod value_stack;

use magnus::Ruby;

/// The Ruby handle. Every caller runs on a Ruby thread holding the GVL (a
/// method called by Ruby, or a GC callback), so skip `Ruby::get`'s
/// thread-local and GVL checks: they showed up in profiles of small calls.
#[inline(always)]
pub fn ruby() -> Ruby {
    // SAFETY: see above; this crate starts no threads of its own that call
    // into Ruby.
    unsafe { Ruby::get_unchecked() }
}
