//! Builds Ruby objects for the core decoder.
//!
//! Finished values wait on a [`ValueStack`] owned by the object running the
//! decode (marked and updated by its GC callbacks) until their container
//! closes; the container is then made in one call. The decoder's own stack
//! holds only indices into it.
use crate::buffer::chunk_queue::SharedSource;
use crate::ext_types::registry::UnpackRegistry;
use crate::runtime::errors::{self, Fail};
use crate::runtime::raw;
use crate::runtime::value_stack::ValueStack;
use crate::unpack::key_cache::KeyCache;
use magnus::{prelude::*, rb_sys::FromRawValue, value::ReprValue, RHash, Value};
use msgpack_rs_core::Builder;
use rb_sys::VALUE;
use std::sync::Arc;

/// msgpack-ruby caps container preallocation at SHRT_MAX entries.
const PREALLOC_CAP: usize = 32767;

/// Decoding options. msgpack-ruby's `key_cache:` option is accepted and
/// needs no field: map keys always go through the per-Ractor key cache
/// (key_cache.rs), which gives the same objects as interning.
#[derive(Clone, Copy, Default)]
pub struct UnpackOptions {
    pub symbolize_keys: bool,
    pub freeze: bool,
    pub allow_unknown_ext: bool,
    /// A Symbol ext registered with `optimized_symbols_parsing`.
    pub optimized_symbols: bool,
}

pub struct RubyBuilder {
    /// Owned by the object running the decode, which outlives the builder
    /// (see [`RubyBuilder::new`]).
    values: *const ValueStack,
    opts: UnpackOptions,
    /// `None`: nothing registered (no table to share between cores).
    registry: Option<Arc<UnpackRegistry>>,
    source: Option<SharedSource>,
    read_reference_threshold: usize,
    /// Looked up on the first map key (`None` until then).
    keys: Option<Option<KeyCache>>,
}

impl RubyBuilder {
    /// `values` must stay alive and GC-marked (by its owner) for as long as
    /// the builder is used: builders live for one decode call of an owner
    /// borrowed by that call.
    pub fn new(
        values: &ValueStack,
        opts: UnpackOptions,
        registry: Option<Arc<UnpackRegistry>>,
        source: Option<SharedSource>,
        read_reference_threshold: usize,
    ) -> Self {
        RubyBuilder {
            values,
            opts,
            registry,
            source,
            read_reference_threshold,
            keys: None,
        }
    }

    #[inline(always)]
    fn values(&self) -> &ValueStack {
        // SAFETY: see `new`: the owner outlives the builder.
        unsafe { &*self.values }
    }

    /// Pops the values from `start` into a new Array.
    #[inline]
    fn make_array(&self, start: usize) -> VALUE {
        let (ptr, n) = self.values().tail(start);
        // SAFETY: `ptr..ptr+n` are initialized slots; the allocation may run
        // the GC, which rewrites them in place (never moves them), and
        // rb_ary_new_from_values copies them after allocating.
        let ary = unsafe { rb_sys::rb_ary_new_from_values(n as _, ptr) };
        self.values().truncate(start);
        ary
    }

    /// Pops the key/value pairs from `start` into a new Hash.
    fn make_hash(&self, start: usize) -> Result<VALUE, Fail> {
        let h = raw::hash_new();
        // Read after the allocation above: the GC only rewrites slots in
        // place, and nothing below allocates before the bulk insert.
        let (ptr, n) = self.values().tail(start);
        let bulk = self.values().scan(start, |kv| {
            // SAFETY: a live key the decode just made.
            kv.iter()
                .step_by(2)
                .all(|&k| unsafe { raw::is_plain_key(k) })
        });
        if bulk {
            // SAFETY: `n` initialized slots (an even count: the decoder
            // completes every entry before closing a map); plain keys hash
            // and compare without running Ruby code, so this cannot raise.
            unsafe { rb_sys::rb_hash_bulk_insert(n as _, ptr, h) };
        } else {
            let mut i = 0;
            while i + 1 < n {
                let (k, v) = (
                    self.values().get(start + i),
                    self.values().get(start + i + 1),
                );
                i += 2;
                // SAFETY: a live key the decode just made.
                if unsafe { raw::has_builtin_hash(k) } {
                    // SAFETY: a live Hash this decode made; live key and value.
                    unsafe { raw::hash_aset(h, k, v) };
                } else {
                    // User-defined #hash/#eql? may raise: go through
                    // magnus's protected call.
                    // SAFETY: live objects held on the value stack.
                    let (hv, kv, vv) =
                        unsafe { (Value::from_raw(h), Value::from_raw(k), Value::from_raw(v)) };
                    if let Some(hash) = RHash::from_value(hv) {
                        hash.aset(kv, vv)?;
                    }
                }
            }
        }
        self.values().truncate(start);
        Ok(h)
    }

    #[inline]
    fn done(&self, v: VALUE) -> VALUE {
        if self.opts.freeze {
            // SAFETY: a live object this code just made or holds.
            unsafe { raw::freeze(v) }
        } else {
            v
        }
    }

    /// A shared substring of the source String when the payload is long and
    /// comes from a referenced String.
    #[inline]
    fn shared(&self, bytes: &[u8], utf8: bool) -> Option<VALUE> {
        if bytes.len() < self.read_reference_threshold {
            return None;
        }
        let src = self.source?;
        let offset = (bytes.as_ptr() as usize).checked_sub(src.base as usize)?;
        // SAFETY: a live frozen source String, kept alive until decoding ends.
        Some(unsafe { raw::substr(src.string, offset, bytes.len(), utf8) })
    }

    #[inline]
    fn keys(&mut self) -> Option<KeyCache> {
        *self.keys.get_or_insert_with(KeyCache::current)
    }

    fn symbol_from_utf8(&mut self, bytes: &[u8]) -> Result<VALUE, Fail> {
        if std::str::from_utf8(bytes).is_ok() {
            Ok(match self.keys() {
                Some(k) => k.symbol(bytes),
                None => raw::symbol(bytes, false),
            })
        } else {
            Err(Fail::Ruby(errors::invalid_symbol(&ruby_inspect(bytes))))
        }
    }

    fn ext_payload(data: &[u8]) -> Value {
        // SAFETY: a fresh String.
        unsafe { Value::from_raw(raw::binary_str(data)) }
    }
}

impl Builder for RubyBuilder {
    type Value = VALUE;
    type Array = usize;
    type Map = usize;
    type Error = Fail;

    #[inline]
    fn nil(&mut self) -> Result<VALUE, Fail> {
        Ok(raw::NIL)
    }
    #[inline]
    fn boolean(&mut self, v: bool) -> Result<VALUE, Fail> {
        Ok(if v { raw::TRUE } else { raw::FALSE })
    }
    #[inline]
    fn uint(&mut self, v: u64) -> Result<VALUE, Fail> {
        Ok(raw::uint(v))
    }
    #[inline]
    fn int(&mut self, v: i64) -> Result<VALUE, Fail> {
        Ok(raw::int(v))
    }
    #[inline]
    fn float32(&mut self, v: f32) -> Result<VALUE, Fail> {
        Ok(raw::float(v as f64))
    }
    #[inline]
    fn float64(&mut self, v: f64) -> Result<VALUE, Fail> {
        Ok(raw::float(v))
    }
    #[inline]
    fn str(&mut self, bytes: &[u8]) -> Result<VALUE, Fail> {
        if self.opts.freeze {
            return Ok(raw::interned_utf8(bytes));
        }
        Ok(self
            .shared(bytes, true)
            .unwrap_or_else(|| raw::utf8_str(bytes)))
    }
    #[inline]
    fn bin(&mut self, bytes: &[u8]) -> Result<VALUE, Fail> {
        if self.opts.freeze {
            return Ok(raw::interned_binary(bytes));
        }
        Ok(self
            .shared(bytes, false)
            .unwrap_or_else(|| raw::binary_str(bytes)))
    }
    #[inline]
    fn key_str(&mut self, bytes: &[u8]) -> Result<VALUE, Fail> {
        if self.opts.symbolize_keys {
            return self.symbol_from_utf8(bytes);
        }
        // Map keys are always frozen, deduplicated strings.
        Ok(match self.keys() {
            Some(k) => k.string(bytes),
            None => raw::interned_utf8(bytes),
        })
    }
    #[inline]
    fn key_bin(&mut self, bytes: &[u8]) -> Result<VALUE, Fail> {
        if self.opts.symbolize_keys {
            return Ok(raw::symbol(bytes, true));
        }
        self.bin(bytes)
    }

    fn ext(&mut self, ty: i8, data: &[u8]) -> Result<VALUE, Fail> {
        if self.opts.optimized_symbols && ty == 0 {
            // As the C gem: invalid UTF-8 raises EncodingError.
            return self.symbol_from_utf8(data);
        }
        if let Some(e) = self.registry.as_ref().and_then(|r| r.get(ty)) {
            if !e.unpacker.is_nil() {
                let payload = Self::ext_payload(data);
                let v = e.call(ty, payload)?;
                return Ok(self.done(magnus::rb_sys::AsRawValue::as_raw(v)));
            }
        }
        if self.opts.allow_unknown_ext {
            let ruby = crate::runtime::ruby();
            let class: Value = ruby
                .class_object()
                .const_get::<_, magnus::RModule>("MessagePack")
                .and_then(|m| m.const_get("ExtensionValue"))?;
            let v: Value = class.funcall("new", (ty as i64, Self::ext_payload(data)))?;
            return Ok(self.done(magnus::rb_sys::AsRawValue::as_raw(v)));
        }
        Err(Fail::Ruby(errors::unknown_ext_type()))
    }

    fn defer_ext(&mut self, ty: i8) -> bool {
        self.registry
            .as_ref()
            .and_then(|r| r.get(ty))
            .map(|e| {
                e.flags & crate::ext_types::registry::FLAG_RECURSIVE != 0 && !e.unpacker.is_nil()
            })
            .unwrap_or(false)
    }

    #[inline]
    fn array_begin(&mut self, _len: u32, capacity: usize) -> Result<usize, Fail> {
        let start = self.values().len();
        self.values().reserve(capacity.min(PREALLOC_CAP));
        Ok(start)
    }
    #[inline(always)]
    fn array_push(&mut self, _array: &mut usize, v: VALUE) -> Result<(), Fail> {
        self.values().push(v);
        Ok(())
    }
    #[inline]
    fn array_end(&mut self, array: usize) -> Result<VALUE, Fail> {
        let v = self.make_array(array);
        Ok(self.done(v))
    }
    #[inline]
    fn map_begin(&mut self, _len: u32, capacity: usize) -> Result<usize, Fail> {
        let start = self.values().len();
        self.values().reserve(2 * capacity.min(PREALLOC_CAP));
        Ok(start)
    }
    #[inline(always)]
    fn map_key(&mut self, _map: &mut usize, k: VALUE) -> Result<(), Fail> {
        self.values().push(k);
        Ok(())
    }
    #[inline(always)]
    fn map_value(&mut self, _map: &mut usize, v: VALUE) -> Result<(), Fail> {
        self.values().push(v);
        Ok(())
    }
    #[inline]
    fn map_end(&mut self, map: usize) -> Result<VALUE, Fail> {
        let v = self.make_hash(map)?;
        Ok(self.done(v))
    }
}

/// `"..."` with invalid bytes as `\xFF`, like Ruby's String#inspect.
fn ruby_inspect(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => out.push_str(&c.escape_default().to_string()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out.push('"');
    out
}
