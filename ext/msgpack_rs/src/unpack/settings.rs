//! The decoding options every entry point takes (`Unpacker.new`,
//! `MessagePack.unpack`/`Factory#load`, `MappedUnpacker`), parsed in one
//! place, and the one check that a whole-input read consumed everything.
use crate::buffer::core::{READ_REFERENCE_THRESHOLD_DEFAULT, READ_REFERENCE_THRESHOLD_MIN};
use crate::runtime::errors;
use crate::runtime::options::{opt_flag, opt_size, opt_u64};
use crate::unpack::builder::UnpackOptions;
use magnus::{Error, RHash};
use msgpack_rs_core::Limits;

/// What an options Hash asks of a decode.
#[derive(Clone, Copy)]
pub struct DecodeSettings {
    pub opts: UnpackOptions,
    pub limits: Limits,
    /// Strings at least this long may be substrings of a shared source.
    pub read_reference_threshold: usize,
}

impl DecodeSettings {
    /// The `max_*` limits, then `symbolize_keys`, `freeze` and
    /// `allow_unknown_ext`; `optimized_symbols` comes from the factory's
    /// registrations. `read_reference_threshold` stays the default: an
    /// Unpacker's buffer reads it with its other buffer options (after the
    /// IO, as msgpack-ruby does), a mapped file copies every String anyway
    /// (and ignores it), and `MessagePack.unpack` asks for it with
    /// [`DecodeSettings::with_read_reference_threshold`].
    pub fn parse(options: Option<RHash>, optimized_symbols: bool) -> Result<Self, Error> {
        if options.is_none() {
            // The common `MessagePack.unpack(data)`: no lookups at all.
            return Ok(DecodeSettings {
                opts: UnpackOptions {
                    optimized_symbols,
                    ..UnpackOptions::default()
                },
                limits: Limits::default(),
                read_reference_threshold: READ_REFERENCE_THRESHOLD_DEFAULT,
            });
        }
        let limits = parse_limits(options)?;
        Ok(DecodeSettings {
            opts: UnpackOptions {
                symbolize_keys: opt_flag(options, "symbolize_keys"),
                freeze: opt_flag(options, "freeze"),
                allow_unknown_ext: opt_flag(options, "allow_unknown_ext"),
                optimized_symbols,
            },
            limits,
            read_reference_threshold: READ_REFERENCE_THRESHOLD_DEFAULT,
        })
    }

    /// Also reads `read_reference_threshold` (msgpack-ruby's minimum
    /// applies), for a decode straight from a String.
    pub fn with_read_reference_threshold(mut self, options: Option<RHash>) -> Result<Self, Error> {
        if options.is_none() {
            return Ok(self);
        }
        if let Some(n) = opt_size(options, "read_reference_threshold")? {
            self.read_reference_threshold = n.max(READ_REFERENCE_THRESHOLD_MIN);
        }
        Ok(self)
    }
}

/// Reads hostile-input limits from the options (all optional).
pub fn parse_limits(options: Option<RHash>) -> Result<Limits, Error> {
    let mut l = Limits::default();
    let clamp = |n: u64| n.min(u32::MAX as u64) as u32;
    if let Some(n) = opt_u64(options, "max_depth")? {
        l.max_depth = n.min(usize::MAX as u64) as usize;
    }
    if let Some(n) = opt_u64(options, "max_array_len")? {
        l.max_array_len = clamp(n);
    }
    if let Some(n) = opt_u64(options, "max_map_len")? {
        l.max_map_len = clamp(n);
    }
    if let Some(n) = opt_u64(options, "max_str_len")? {
        l.max_str_len = clamp(n);
    }
    if let Some(n) = opt_u64(options, "max_bin_len")? {
        l.max_bin_len = clamp(n);
    }
    if let Some(n) = opt_u64(options, "max_ext_len")? {
        l.max_ext_len = clamp(n);
    }
    Ok(l)
}

/// The one extra-bytes check of a whole-input read (`full_unpack`,
/// `MessagePack.unpack`, `MappedUnpacker#read_whole`): `left` bytes follow
/// the one object read.
#[inline]
pub fn check_nothing_left(left: usize) -> Result<(), Error> {
    if left > 0 {
        return Err(errors::extra_bytes(left));
    }
    Ok(())
}
