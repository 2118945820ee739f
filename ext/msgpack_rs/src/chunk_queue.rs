//! The byte queue behind every Buffer, Packer and Unpacker.
//!
//! A queue of chunks: owned byte vectors, and frozen Ruby Strings referenced
//! without copying (large strings fed to an Unpacker, or written to a Packer
//! above the write-reference threshold). Each instance owns its memory; the
//! spare vector of a drained queue is reused so steady-state encoding and
//! decoding do not call malloc.
use crate::gc_ref::GcRef;
use crate::raw;
use rb_sys::VALUE;
use std::collections::VecDeque;

enum Data {
    Owned(Vec<u8>),
    /// A frozen, non-embedded String: its bytes never move or change while
    /// we hold it (compaction moves only the object slot, and we update the
    /// slot reference in the compact callback).
    Shared { s: GcRef, ptr: usize, len: usize },
}

struct Chunk {
    data: Data,
    /// Bytes already read from the front of this chunk.
    pos: usize,
}

impl Chunk {
    #[inline]
    fn all(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Shared { ptr, len, .. } => {
                // SAFETY: see `Data::Shared`: the String is frozen, kept alive
                // by our mark callback, and its heap buffer is stable.
                unsafe { std::slice::from_raw_parts(*ptr as *const u8, *len) }
            }
        }
    }

    #[inline]
    fn unread(&self) -> &[u8] {
        &self.all()[self.pos..]
    }
}

/// Where the front chunk's bytes come from, for zero-copy substrings.
#[derive(Clone, Copy)]
pub struct SharedSource {
    pub string: VALUE,
    pub base: *const u8,
}

#[derive(Default)]
pub struct ChunkQueue {
    chunks: VecDeque<Chunk>,
    /// The allocation of the last drained owned chunk, kept for reuse.
    spare: Vec<u8>,
}

impl ChunkQueue {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.all().len() - c.pos).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(|c| c.pos == c.all().len())
    }

    fn new_owned(&mut self, capacity: usize) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.spare);
        v.clear();
        v.reserve(capacity);
        v
    }

    /// The owned vector at the end of the queue, for appending.
    #[inline]
    pub fn tail(&mut self) -> &mut Vec<u8> {
        // A stream that always ends in a partial object never fully drains
        // its one chunk: drop the consumed prefix once it is half the chunk,
        // so memory stays bounded (amortized O(1) per byte).
        if self.chunks.len() == 1 {
            if let Some(Chunk {
                data: Data::Owned(v),
                pos,
            }) = self.chunks.front_mut()
            {
                if *pos >= 4096 && *pos >= v.len() / 2 {
                    v.drain(..*pos);
                    *pos = 0;
                }
            }
        }
        if !matches!(self.chunks.back(), Some(Chunk { data: Data::Owned(_), .. })) {
            let v = self.new_owned(256);
            self.chunks.push_back(Chunk {
                data: Data::Owned(v),
                pos: 0,
            });
        }
        match self.chunks.back_mut() {
            Some(Chunk {
                data: Data::Owned(v),
                ..
            }) => v,
            // Pushed just above.
            _ => &mut self.spare,
        }
    }

    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.tail().extend_from_slice(bytes);
        }
    }

    /// References `s` without copying when it is a frozen heap String;
    /// otherwise copies it.
    pub fn push_string(&mut self, s: VALUE) {
        // SAFETY: `s` is a live String; we read it before any Ruby call.
        let bytes = unsafe { raw::str_bytes(s) };
        if raw::is_frozen(s) && !raw::str_is_embedded(s) {
            self.chunks.push_back(Chunk {
                data: Data::Shared {
                    s: GcRef::new(s),
                    ptr: bytes.as_ptr() as usize,
                    len: bytes.len(),
                },
                pos: 0,
            });
        } else {
            self.push_bytes(bytes);
        }
    }

    /// The unread bytes of the front chunk (empty when the queue is).
    #[inline]
    pub fn front(&self) -> &[u8] {
        self.chunks.front().map(Chunk::unread).unwrap_or(&[])
    }

    /// The whole front chunk and its read position.
    #[inline]
    pub fn front_with_pos(&self) -> (&[u8], usize) {
        match self.chunks.front() {
            Some(c) => (c.all(), c.pos),
            None => (&[], 0),
        }
    }

    pub fn front_source(&self) -> Option<SharedSource> {
        match self.chunks.front() {
            Some(Chunk {
                data: Data::Shared { s, ptr, .. },
                ..
            }) => Some(SharedSource {
                string: s.get(),
                base: *ptr as *const u8,
            }),
            _ => None,
        }
    }

    /// Sets the read position of the front chunk (after decoding from it).
    #[inline]
    pub fn set_front_pos(&mut self, pos: usize) {
        if let Some(c) = self.chunks.front_mut() {
            c.pos = pos.min(c.all().len());
        }
        self.drop_drained_front();
    }

    fn drop_drained_front(&mut self) {
        while let Some(c) = self.chunks.front() {
            if c.pos < c.all().len() {
                break;
            }
            if let Some(Chunk {
                data: Data::Owned(v),
                ..
            }) = self.chunks.pop_front()
            {
                if v.capacity() > self.spare.capacity() {
                    self.spare = v;
                }
            }
        }
    }

    /// Joins the front chunk with the next one so a token that spans them
    /// can be read contiguously. Returns false when there is no next chunk.
    pub fn coalesce_front(&mut self) -> bool {
        if self.chunks.len() < 2 {
            return false;
        }
        let Some(next) = self.chunks.remove(1) else {
            return false;
        };
        if let Some(front) = self.chunks.front_mut() {
            match &mut front.data {
                Data::Owned(v) => {
                    v.drain(..front.pos);
                    v.extend_from_slice(next.unread());
                }
                Data::Shared { .. } => {
                    let mut v = Vec::with_capacity(front.unread().len() + next.unread().len());
                    v.extend_from_slice(front.unread());
                    v.extend_from_slice(next.unread());
                    front.data = Data::Owned(v);
                }
            }
            front.pos = 0;
        }
        true
    }

    /// Drops up to `n` bytes from the front; returns how many were dropped.
    pub fn consume(&mut self, mut n: usize) -> usize {
        let mut done = 0;
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            let avail = c.all().len() - c.pos;
            let take = avail.min(n);
            c.pos += take;
            n -= take;
            done += take;
            self.drop_drained_front();
        }
        done
    }

    /// Appends up to `n` unread bytes to `out` and consumes them.
    pub fn read_into(&mut self, out: &mut Vec<u8>, n: usize) -> usize {
        let mut left = n;
        for c in &self.chunks {
            if left == 0 {
                break;
            }
            let u = c.unread();
            let take = u.len().min(left);
            out.extend_from_slice(&u[..take]);
            left -= take;
        }
        self.consume(n - left)
    }

    /// The unread bytes, chunk by chunk.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Chunk::unread).filter(|s| !s.is_empty())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.slices() {
            v.extend_from_slice(s);
        }
        v
    }

    pub fn clear(&mut self) {
        while let Some(c) = self.chunks.pop_front() {
            if let Data::Owned(v) = c.data {
                if v.capacity() > self.spare.capacity() {
                    self.spare = v;
                }
            }
        }
        self.spare.clear();
    }

    /// Heap bytes owned (not counting referenced Strings, which Ruby counts).
    pub fn heap_size(&self) -> usize {
        let owned: usize = self
            .chunks
            .iter()
            .map(|c| match &c.data {
                Data::Owned(v) => v.capacity(),
                Data::Shared { .. } => 0,
            })
            .sum();
        owned + self.spare.capacity() + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Releases slack: the spare vector, consumed prefixes, and capacity
    /// over twice what is held. Returns the bytes released.
    pub fn shrink(&mut self) -> usize {
        let before = self.heap_size();
        self.spare = Vec::new();
        for c in &mut self.chunks {
            if let Data::Owned(v) = &mut c.data {
                if c.pos > 0 {
                    v.drain(..c.pos);
                    c.pos = 0;
                }
                if v.capacity() > 2 * v.len() {
                    v.shrink_to_fit();
                }
            }
        }
        self.chunks.shrink_to_fit();
        before.saturating_sub(self.heap_size())
    }

    pub fn mark(&self) {
        for c in &self.chunks {
            if let Data::Shared { s, .. } = &c.data {
                s.mark();
            }
        }
    }

    pub fn update_references(&self) {
        for c in &self.chunks {
            if let Data::Shared { s, .. } = &c.data {
                s.update();
            }
        }
    }
}
