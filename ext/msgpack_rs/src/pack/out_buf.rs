//! Where the packing walk writes: the packer's output vector, or (for
//! `MessagePack.pack` and friends) straight into the Ruby String that will
//! be returned, which saves copying the whole message once more at the end.
//! That final copy, into freshly allocated memory, was about a third of the
//! time of packing a few hundred KiB of strings.
//!
//! Either way the hot writes go through one raw cursor (`ptr`, `len`,
//! `cap`): one capacity check and one store per header or scalar, where
//! `Vec::extend_from_slice` may compile to a call and a `memcpy`.
use crate::runtime::raw::NIL;
use msgpack_rs_core::encode::Sink;
use rb_sys::VALUE;

pub struct OutBuf {
    ptr: *mut u8,
    len: usize,
    cap: usize,
    /// nil: `ptr/len/cap` are the raw parts of a `Vec<u8>` this owns.
    /// Otherwise a String this writes into: a fresh one nothing else
    /// references, kept alive (and pinned) by the walker on the machine
    /// stack; its length is brought up to date before Ruby sees it.
    string: VALUE,
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        if self.string == NIL {
            drop(self.take_vec());
        }
    }
}

impl OutBuf {
    pub fn from_vec(v: Vec<u8>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        OutBuf {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
            string: NIL,
        }
    }

    /// Writes into a new binary String with room for `capacity` bytes.
    pub fn new_string(capacity: usize) -> Self {
        // SAFETY: plain allocation of an empty ASCII-8BIT String.
        let s = unsafe { rb_sys::rb_str_buf_new(capacity.min(isize::MAX as usize) as _) };
        let mut out = OutBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
            string: s,
        };
        out.refresh_string();
        out
    }

    pub fn is_string(&self) -> bool {
        self.string != NIL
    }

    fn refresh_string(&mut self) {
        // SAFETY: `self.string` is our live, unfrozen String.
        unsafe {
            self.ptr = rb_sys::RSTRING_PTR(self.string) as *mut u8;
            self.cap = rb_sys::rb_str_capacity(self.string) as usize;
        }
    }

    /// The bytes written so far as a `Vec` (this becomes empty).
    pub fn take_vec(&mut self) -> Vec<u8> {
        let v = if self.string == NIL {
            // SAFETY: in Vec mode, ptr/len/cap are the raw parts of a Vec
            // we own; they are replaced below so it is not freed twice.
            unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
        } else {
            // SAFETY: `len` initialized bytes of our String.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
        };
        self.clear_parts();
        v
    }

    /// Empty Vec mode, owning nothing (after the contents were taken). The
    /// fields are overwritten, not the whole value: dropping the old one
    /// would free the Vec just handed out.
    fn clear_parts(&mut self) {
        // What `Vec::new()` holds: a dangling, well-aligned pointer.
        self.ptr = std::ptr::NonNull::<u8>::dangling().as_ptr();
        self.len = 0;
        self.cap = 0;
        self.string = NIL;
    }

    /// The finished String (String mode only); this becomes empty.
    pub fn take_string(&mut self) -> Option<VALUE> {
        if self.string == NIL {
            return None;
        }
        let s = self.string;
        // SAFETY: our String; `len <= capacity` bytes were written.
        unsafe { rb_sys::rb_str_set_len(s, self.len as _) };
        // Give a large unused tail back (a realloc that shrinks in place).
        if self.cap - self.len > 4096 && self.cap - self.len > self.len / 4 {
            // SAFETY: as above; shrinking keeps the bytes.
            unsafe { rb_sys::rb_str_resize(s, self.len as _) };
        }
        self.clear_parts();
        Some(s)
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        if self.string == NIL {
            let mut v = self.take_vec();
            v.reserve(additional);
            *self = OutBuf::from_vec(v);
            return;
        }
        // Double, like Vec, so a growing message costs amortized O(1).
        let want = additional.max(self.len).max(64);
        // SAFETY: our unfrozen String; its length is set first so the
        // reallocation keeps what was written.
        unsafe {
            rb_sys::rb_str_set_len(self.string, self.len as _);
            rb_sys::rb_str_modify_expand(self.string, want as _);
        }
        self.refresh_string();
    }

    #[inline(always)]
    pub fn reserve(&mut self, additional: usize) {
        if self.cap - self.len < additional {
            self.grow(additional);
        }
    }
}

impl Sink for OutBuf {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        self.reserve(N);
        // SAFETY: `reserve(N)` leaves room for N bytes after `len`; the
        // source is a local array, disjoint from the buffer.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.len), N) };
        self.len += N;
    }

    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        // SAFETY: as above; `bytes` never points into this buffer (callers
        // pass Strings' and payloads' own bytes).
        unsafe {
            let dst = self.ptr.add(self.len);
            if bytes.len() >= STREAMING_COPY_MIN {
                copy_streaming(dst, bytes.as_ptr(), bytes.len());
            } else {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            }
        }
        self.len += bytes.len();
    }
}

/// Bodies at least this long are copied with non-temporal stores.
const STREAMING_COPY_MIN: usize = 256 * 1024;

/// Copies a large body without pulling the destination into the cache: the
/// output buffer is fresh memory, and ordinary stores would first read every
/// line of it (read-for-ownership), doubling the memory traffic of the copy
/// that dominates packing a large str/bin.
///
/// # Safety
/// `src..src+len` readable, `dst..dst+len` writable, not overlapping.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
// SAFETY (contract): see `# Safety` above; `put_slice` reserves `len` bytes.
unsafe fn copy_streaming(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    // SAFETY: (whole body) per the contract; SSE2 is part of x86_64, so
    // these intrinsics are always available; the streaming stores go to
    // 16-byte-aligned addresses (the head copy aligns `dst`).
    unsafe {
        let head = dst.align_offset(16).min(len);
        std::ptr::copy_nonoverlapping(src, dst, head);
        let mut i = head;
        while i + 64 <= len {
            let s = src.add(i) as *const __m128i;
            let d = dst.add(i) as *mut __m128i;
            let (a, b, c, e) = (
                _mm_loadu_si128(s),
                _mm_loadu_si128(s.add(1)),
                _mm_loadu_si128(s.add(2)),
                _mm_loadu_si128(s.add(3)),
            );
            _mm_stream_si128(d, a);
            _mm_stream_si128(d.add(1), b);
            _mm_stream_si128(d.add(2), c);
            _mm_stream_si128(d.add(3), e);
            i += 64;
        }
        // Streaming stores are weakly ordered: fence before anything else.
        _mm_sfence();
        std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(never)]
// SAFETY (contract): as the x86_64 version.
unsafe fn copy_streaming(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: per the contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}
