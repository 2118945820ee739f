//! Builds Ruby objects for the core decoder.
//!
//! Containers under construction are kept in a Ruby Array (the *holder*)
//! rather than in Rust memory: the GC sees and moves them like any other
//! array element, so a half-decoded message is safe across GC and
//! compaction without extra bookkeeping. The decoder's stack holds only
//! indices into it.
use crate::chunk_queue::SharedSource;
use crate::errors::{self, Fail};
use crate::ext_registry::{self, UnpackRegistry};
use crate::key_cache::KeyCache;
use crate::raw;
use magnus::{prelude::*, rb_sys::FromRawValue, value::ReprValue, Error, RHash, Value};
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
    holder: VALUE,
    /// The innermost open container and its holder index, cached to skip a
    /// holder lookup per element. The builder lives on the machine stack,
    /// where the GC scans (and pins) it, so the cached VALUE stays valid.
    cur: VALUE,
    cur_idx: usize,
    opts: UnpackOptions,
    /// `None`: nothing registered (no table to share between cores).
    registry: Option<Arc<UnpackRegistry>>,
    source: Option<SharedSource>,
    read_reference_threshold: usize,
    /// Looked up on the first map key (`None` until then).
    keys: Option<Option<KeyCache>>,
}

impl RubyBuilder {
    pub fn new(
        holder: VALUE,
        opts: UnpackOptions,
        registry: Option<Arc<UnpackRegistry>>,
        source: Option<SharedSource>,
        read_reference_threshold: usize,
    ) -> Self {
        RubyBuilder {
            holder,
            cur: raw::NIL,
            cur_idx: usize::MAX,
            opts,
            registry,
            source,
            read_reference_threshold,
            keys: None,
        }
    }

    /// The container at holder index `idx`.
    #[inline(always)]
    fn container(&mut self, idx: usize) -> VALUE {
        if idx != self.cur_idx {
            self.cur = raw::ary_entry(self.holder, idx);
            self.cur_idx = idx;
        }
        self.cur
    }

    /// The holder array (made on first use, so scalar-only messages
    /// allocate nothing extra).
    pub fn holder(&self) -> VALUE {
        self.holder
    }

    #[inline(always)]
    fn open(&mut self, container: VALUE) -> usize {
        if self.holder == raw::NIL {
            self.holder = raw::ary_new_capa(8);
        }
        let idx = raw::ary_len(self.holder);
        raw::ary_push(self.holder, container);
        self.cur = container;
        self.cur_idx = idx;
        idx
    }

    #[inline(always)]
    fn close(&mut self, idx: usize) -> VALUE {
        let v = self.container(idx);
        raw::ary_truncate(self.holder, idx);
        self.cur_idx = usize::MAX;
        v
    }

    #[inline]
    fn done(&self, v: VALUE) -> VALUE {
        if self.opts.freeze {
            raw::freeze(v)
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
        Some(raw::substr(src.string, offset, bytes.len(), utf8))
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
            let ruby = errors::ruby();
            Err(Fail::Ruby(Error::new(
                ruby.exception_encoding_error(),
                format!("invalid symbol in encoding UTF-8 :{}", ruby_inspect(bytes)),
            )))
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
            return Ok(match std::str::from_utf8(data) {
                Ok(_) => raw::symbol(data, false),
                Err(_) => raw::symbol(data, true),
            });
        }
        if let Some(e) = self.registry.as_ref().and_then(|r| r.get(ty)) {
            if !e.unpacker.is_nil() {
                let payload = Self::ext_payload(data);
                let v = ext_registry::call_unpacker(
                    e.unpacker.get(),
                    ty,
                    e.klass.get(),
                    e.owner,
                    payload,
                )?;
                return Ok(self.done(magnus::rb_sys::AsRawValue::as_raw(v)));
            }
        }
        if self.opts.allow_unknown_ext {
            let ruby = errors::ruby();
            let class: Value = ruby
                .class_object()
                .const_get::<_, magnus::RModule>("MessagePack")
                .and_then(|m| m.const_get("ExtensionValue"))?;
            let v: Value = class.funcall("new", (ty as i64, Self::ext_payload(data)))?;
            return Ok(self.done(magnus::rb_sys::AsRawValue::as_raw(v)));
        }
        Err(Fail::Ruby(errors::error(
            errors::Kind::UnknownExtType,
            "unexpected extension type",
        )))
    }

    fn defer_ext(&mut self, ty: i8) -> bool {
        self.registry
            .as_ref()
            .and_then(|r| r.get(ty))
            .map(|e| e.flags & ext_registry::FLAG_RECURSIVE != 0 && !e.unpacker.is_nil())
            .unwrap_or(false)
    }

    #[inline]
    fn array_begin(&mut self, _len: u32, capacity: usize) -> Result<usize, Fail> {
        Ok(self.open(raw::ary_new_capa(capacity.min(PREALLOC_CAP))))
    }
    #[inline]
    fn array_push(&mut self, array: &mut usize, v: VALUE) -> Result<(), Fail> {
        let a = self.container(*array);
        raw::ary_push(a, v);
        Ok(())
    }
    #[inline]
    fn array_end(&mut self, array: usize) -> Result<VALUE, Fail> {
        let v = self.close(array);
        Ok(self.done(v))
    }
    #[inline]
    fn map_begin(&mut self, _len: u32, _capacity: usize) -> Result<usize, Fail> {
        let h = raw::hash_new();
        let idx = self.open(h);
        // The slot after a map holds its pending key.
        raw::ary_push(self.holder, raw::NIL);
        Ok(idx)
    }
    #[inline]
    fn map_key(&mut self, map: &mut usize, k: VALUE) -> Result<(), Fail> {
        raw::ary_store(self.holder, *map + 1, k);
        Ok(())
    }
    #[inline]
    fn map_value(&mut self, map: &mut usize, v: VALUE) -> Result<(), Fail> {
        let h = self.container(*map);
        let k = raw::ary_entry(self.holder, *map + 1);
        if raw::has_builtin_hash(k) {
            raw::hash_aset(h, k, v);
        } else {
            // User-defined #hash/#eql? may raise: go through magnus's
            // protected call.
            // SAFETY: live objects held in the holder array.
            let (hv, kv, vv) =
                unsafe { (Value::from_raw(h), Value::from_raw(k), Value::from_raw(v)) };
            if let Some(hash) = RHash::from_value(hv) {
                hash.aset(kv, vv)?;
            }
        }
        Ok(())
    }
    #[inline]
    fn map_end(&mut self, map: usize) -> Result<VALUE, Fail> {
        let v = self.close(map);
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
