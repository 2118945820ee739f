//! A per-Ractor cache of recently decoded map keys.
//!
//! Keys repeat across records, and interning one (`rb_enc_interned_str`)
//! costs a hash-table lookup. This direct-mapped cache answers repeats with
//! a short hash and a byte comparison. Entries live in a Ruby Array held in
//! Ractor-local storage, so the GC sees (and pins) them and no Ractor shares
//! another's cache. Results are identical to interning: the cache only
//! holds interned strings (or symbols) it got from the VM.
use crate::runtime::local::RactorLocal;
use crate::runtime::raw;
use rb_sys::VALUE;

const SLOTS: usize = 256;
/// Longer keys are rarely repeated hot keys; they go straight to the VM.
const MAX_KEY_LEN: usize = 48;

/// This Ractor's cache Array.
static CACHE: RactorLocal = RactorLocal::new();

pub fn init() {
    CACHE.init();
}

/// Empties this Ractor's cache, if it has one (`MessagePack.compact!`), so
/// the interned Strings and Symbols it kept can be collected.
pub fn clear_current() {
    let ary = CACHE.get();
    if ary == raw::NIL {
        return;
    }
    // SAFETY: an Array this code owns or holds, alive on the stack.
    for i in 0..unsafe { raw::ary_len(ary) } {
        // SAFETY: an Array this code owns (unfrozen), alive; the element is live.
        unsafe { raw::ary_store(ary, i, raw::NIL) };
    }
}

#[derive(Clone, Copy)]
pub struct KeyCache {
    /// Slots `0..SLOTS` hold Strings, `SLOTS..2*SLOTS` Symbols.
    ary: VALUE,
}

#[inline(always)]
fn slot_of(bytes: &[u8]) -> usize {
    // FNV-1a: short keys, good enough spread, no dependencies.
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as usize % SLOTS
}

#[inline(always)]
fn same_bytes(s: VALUE, bytes: &[u8]) -> bool {
    // SAFETY: `s` is a live frozen String from the cache.
    unsafe { raw::str_bytes(s) == bytes }
}

impl KeyCache {
    /// Slot `i` (a read: no write barrier needed, so no call).
    #[inline(always)]
    fn slot(&self, i: usize) -> VALUE {
        // SAFETY: `ary` is the cache's live Array of 2 * SLOTS entries (it
        // never shrinks: clear_current stores nil) and `i < 2 * SLOTS`; the
        // pointer is used at once, before anything can move the elements.
        unsafe { *rb_sys::RARRAY_CONST_PTR(self.ary).add(i) }
    }

    /// This Ractor's cache (created on first use).
    pub fn current() -> Option<KeyCache> {
        let mut ary = CACHE.get();
        if ary == raw::NIL {
            CACHE.initialized()?;
            ary = raw::ary_new_capa(2 * SLOTS);
            for _ in 0..2 * SLOTS {
                // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
                unsafe { raw::ary_push(ary, raw::NIL) };
            }
            CACHE.set(ary);
        }
        Some(KeyCache { ary })
    }

    /// The interned UTF-8 String for a key.
    #[inline]
    pub fn string(&self, bytes: &[u8]) -> VALUE {
        if bytes.len() > MAX_KEY_LEN {
            return raw::interned_utf8(bytes);
        }
        let i = slot_of(bytes);
        let hit = self.slot(i);
        if hit != raw::NIL && same_bytes(hit, bytes) {
            return hit;
        }
        let v = raw::interned_utf8(bytes);
        // SAFETY: an Array this code owns (unfrozen), alive; the element is live.
        unsafe { raw::ary_store(self.ary, i, v) };
        v
    }

    /// The Symbol for a (valid UTF-8) key.
    #[inline]
    pub fn symbol(&self, bytes: &[u8]) -> VALUE {
        if bytes.len() > MAX_KEY_LEN {
            return raw::symbol(bytes, false);
        }
        let i = SLOTS + slot_of(bytes);
        let hit = self.slot(i);
        // SAFETY: `hit` is a live Symbol from the cache; its name is a
        // frozen String.
        if hit != raw::NIL && same_bytes(unsafe { rb_sys::rb_sym2str(hit) }, bytes) {
            return hit;
        }
        let v = raw::symbol(bytes, false);
        // SAFETY: an Array this code owns (unfrozen), alive; the element is live.
        unsafe { raw::ary_store(self.ary, i, v) };
        v
    }
}
