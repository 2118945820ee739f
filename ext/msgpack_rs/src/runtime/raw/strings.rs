//! Strings and Symbols: their bytes, new ones with the right encoding
//! set directly, interned keys, substrings, encoding indexes.
use super::*;

/// The bytes of a String.
///
/// # Safety
/// `s` must be a live String and the slice must not outlive any change to
/// it (callers only keep it while no Ruby code runs, or `s` is frozen).
#[inline]
pub unsafe fn str_bytes<'a>(s: VALUE) -> &'a [u8] {
    // SAFETY: per the contract, a live String: its length and pointer
    // describe its bytes.
    unsafe {
        let len = rb_sys::RSTRING_LEN(s) as usize;
        if len == 0 {
            return &[];
        }
        std::slice::from_raw_parts(rb_sys::RSTRING_PTR(s) as *const u8, len)
    }
}

/// True when the String's bytes live inside the object slot (so they move
/// when GC compaction moves the object).
///
/// # Safety
/// `s` must be a live String.
#[inline]
pub unsafe fn str_is_embedded(s: VALUE) -> bool {
    // SAFETY: reading the flags word of a live heap object.
    let flags = unsafe { (*(s as *const rb_sys::RBasic)).flags };
    flags & (rb_sys::ruby_rstring_flags::RSTRING_NOEMBED as VALUE) == 0
}

/// Where a String's encoding index lives in its flags word (indexes of
/// `RUBY_ENCODING_INLINE_MAX` and up are stored out of line).
const ENC_SHIFT: u32 = rb_sys::ruby_encoding_consts::RUBY_ENCODING_SHIFT as u32;
const ENC_INLINE_MAX: i32 = rb_sys::ruby_encoding_consts::RUBY_ENCODING_INLINE_MAX as i32;

/// Sets the encoding of a String made here to `idx`, with its coderange
/// unknown (rescanned by Ruby when needed). For such a String that is what
/// `rb_enc_associate_index` does, minus three out-of-line calls and checks
/// that cannot apply, which were about a tenth of decoding string-heavy
/// messages.
///
/// # Safety
/// `s` must be a live, unfrozen String this code just made and nothing else
/// references yet.
#[inline]
// SAFETY (contract): see `# Safety`; callers pass Strings they just made.
unsafe fn tag_fresh_string(s: VALUE, idx: i32) {
    if !(0..ENC_INLINE_MAX).contains(&idx) {
        // SAFETY: per the contract.
        unsafe { rb_sys::rb_enc_associate_index(s, idx) };
        return;
    }
    let enc_mask = rb_sys::ruby_encoding_consts::RUBY_ENCODING_MASK as VALUE;
    let cr_mask = rb_sys::ruby_coderange_type::RUBY_ENC_CODERANGE_MASK as VALUE;
    // SAFETY: per the contract, only this code sees the flags word.
    unsafe {
        let basic = s as *mut rb_sys::RBasic;
        (*basic).flags = ((*basic).flags & !(enc_mask | cr_mask)) | ((idx as VALUE) << ENC_SHIFT);
    }
}

/// A new UTF-8 String (bytes copied).
#[inline]
pub fn utf8_str(bytes: &[u8]) -> VALUE {
    // SAFETY: the pointer/length pair comes from a valid slice; the String
    // is fresh.
    unsafe {
        let s = rb_sys::rb_str_new(bytes.as_ptr() as *const _, clong(bytes.len()));
        tag_fresh_string(s, enc_indexes().utf8);
        s
    }
}

#[inline]
pub fn binary_str(bytes: &[u8]) -> VALUE {
    // SAFETY: as above; rb_str_new makes an ASCII-8BIT string.
    unsafe { rb_sys::rb_str_new(bytes.as_ptr() as *const _, clong(bytes.len())) }
}

/// A frozen, deduplicated UTF-8 string (what `-"str"` gives).
#[inline]
pub fn interned_utf8(bytes: &[u8]) -> VALUE {
    // SAFETY: valid slice; rb_utf8_encoding returns a static pointer.
    unsafe {
        rb_sys::rb_enc_interned_str(
            bytes.as_ptr() as *const _,
            clong(bytes.len()),
            rb_sys::rb_utf8_encoding(),
        )
    }
}

/// A frozen, deduplicated ASCII-8BIT string.
#[inline]
pub fn interned_binary(bytes: &[u8]) -> VALUE {
    // SAFETY: valid slice; rb_ascii8bit_encoding returns a static pointer.
    unsafe {
        rb_sys::rb_enc_interned_str(
            bytes.as_ptr() as *const _,
            clong(bytes.len()),
            rb_sys::rb_ascii8bit_encoding(),
        )
    }
}

/// A Symbol with the given bytes in UTF-8 (`binary` false) or ASCII-8BIT.
/// UTF-8 input must be valid (callers check), so this cannot raise.
///
/// A Symbol that does not exist yet is made *dynamic* (`String#to_sym`,
/// what the C gem does), so the GC can collect it: Symbols made from
/// untrusted map keys must not pile up forever, as `rb_intern` ones would.
#[inline]
pub fn symbol(bytes: &[u8], binary: bool) -> VALUE {
    // SAFETY: valid slice and static encoding pointers; the lookup makes
    // nothing, and `rb_str_intern` of a String with a valid encoding cannot
    // raise.
    unsafe {
        let enc = if binary {
            rb_sys::rb_ascii8bit_encoding()
        } else {
            rb_sys::rb_utf8_encoding()
        };
        let existing =
            rb_sys::rb_check_symbol_cstr(bytes.as_ptr() as *const _, clong(bytes.len()), enc);
        if existing != NIL {
            return existing;
        }
        let s = rb_sys::rb_enc_str_new(bytes.as_ptr() as *const _, clong(bytes.len()), enc);
        rb_sys::rb_str_intern(s)
    }
}

/// A shared (no-copy) substring of the frozen String `src`, as UTF-8 or
/// binary.
///
/// # Safety
/// `src` must be a live frozen String holding `offset..offset + len`.
#[inline]
pub unsafe fn substr(src: VALUE, offset: usize, len: usize, utf8: bool) -> VALUE {
    // SAFETY: offset/len lie within `src` (callers derive them from a slice
    // of its bytes); rb_str_subseq counts bytes (not characters) and shares the buffer of a long string.
    unsafe {
        let s = rb_sys::rb_str_subseq(src, clong(offset), clong(len));
        let known = enc_indexes();
        tag_fresh_string(s, if utf8 { known.utf8 } else { known.binary });
        s
    }
}

/// Encoding index of a String, read from its flags when inline (the common
/// case) as `ENCODING_GET` does.
///
/// # Safety
/// `s` must be a live String.
#[inline(always)]
pub unsafe fn enc_index(s: VALUE) -> i32 {
    // SAFETY: reading the flags word of a live heap object.
    let flags = unsafe { (*(s as *const rb_sys::RBasic)).flags };
    let idx = ((flags >> ENC_SHIFT) & ENC_INLINE_MAX as VALUE) as i32;
    if idx == ENC_INLINE_MAX {
        // SAFETY: a live String whose index is stored out of line.
        unsafe { rb_sys::rb_enc_get_index(s) }
    } else {
        idx
    }
}

/// The VM's indexes of ASCII-8BIT, UTF-8 and US-ASCII (fixed at boot).
#[derive(Clone, Copy)]
pub struct EncIndexes {
    pub binary: i32,
    pub utf8: i32,
    pub usascii: i32,
}

static ENC_INDEXES: std::sync::OnceLock<EncIndexes> = std::sync::OnceLock::new();

#[inline(always)]
pub fn enc_indexes() -> EncIndexes {
    *ENC_INDEXES.get_or_init(|| {
        // SAFETY: plain lookups of built-in encodings.
        unsafe {
            EncIndexes {
                binary: rb_sys::rb_ascii8bit_encindex(),
                utf8: rb_sys::rb_utf8_encindex(),
                usascii: rb_sys::rb_usascii_encindex(),
            }
        }
    })
}

/// A new binary (ASCII-8BIT) String with a copy of `bytes`.
pub fn binary(bytes: &[u8]) -> magnus::RString {
    use magnus::{rb_sys::FromRawValue, TryConvert};
    // SAFETY: a fresh String.
    let v = unsafe { magnus::Value::from_raw(binary_str(bytes)) };
    magnus::RString::try_convert(v).unwrap_or_else(|_| crate::runtime::ruby().str_new(""))
}
