//! Shared by the benches: the payload shapes and their typed forms.
pub mod payloads;
pub mod typed;
