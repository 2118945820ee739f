//! The byte queue behind every Buffer, Packer and Unpacker.
//!
//! Sealed chunks (owned byte vectors, or frozen Ruby Strings referenced
//! without copying: large strings fed to an Unpacker, or written to a Packer
//! above the write-reference threshold) followed by one owned *tail* that
//! new bytes are appended to. The tail is a plain field so the encoder's
//! hot path is one vector push. Each instance owns its memory; the tail's
//! allocation is kept when drained, so steady-state encoding and decoding do
//! not call malloc.
use crate::runtime::gc_ref::GcRef;
use crate::runtime::raw;
use rb_sys::VALUE;
use std::collections::VecDeque;

enum Data {
    Owned(Vec<u8>),
    /// A frozen, non-embedded String, read through `ptr` without copying.
    /// The owner's mark callback pins it ([`ChunkQueue::mark`]): a String
    /// that compaction moved could be re-embedded, its buffer freed, and
    /// `ptr` left dangling (Ruby 3.2+).
    Shared {
        s: GcRef,
        ptr: usize,
        len: usize,
    },
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
                // by the owner's mark callback, and its heap buffer is stable.
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

/// Tail capacity a drained queue keeps (see `reset_drained_tail`).
const KEEP_ON_DRAIN: usize = 4096;

#[derive(Default)]
pub struct ChunkQueue {
    sealed: VecDeque<Chunk>,
    tail: Vec<u8>,
    tail_pos: usize,
    /// Bytes read (consumed) since the queue was made: how far a stream
    /// position moved between two moments.
    consumed: u64,
}

impl ChunkQueue {
    pub fn len(&self) -> usize {
        self.sealed
            .iter()
            .map(|c| c.all().len() - c.pos)
            .sum::<usize>()
            + (self.tail.len() - self.tail_pos)
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.tail_pos == self.tail.len()
    }

    /// The vector new bytes are appended to.
    #[inline(always)]
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    /// Appends bytes that will be read back (feeding). A stream that always
    /// ends in a partial object never fully drains: drop the consumed prefix
    /// once it is half the tail, so memory stays bounded (amortized O(1)).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.tail_pos >= 4096 && self.tail_pos >= self.tail.len() / 2 {
            self.tail.drain(..self.tail_pos);
            self.tail_pos = 0;
        }
        self.tail.extend_from_slice(bytes);
    }

    /// Moves unread tail bytes into a sealed chunk (before something must
    /// follow them in order).
    fn seal_tail(&mut self) {
        if self.tail_pos < self.tail.len() {
            let cap = self.tail.capacity();
            let v = std::mem::replace(&mut self.tail, Vec::with_capacity(cap.min(64 * 1024)));
            self.sealed.push_back(Chunk {
                data: Data::Owned(v),
                pos: self.tail_pos,
            });
        } else {
            self.tail.clear();
        }
        self.tail_pos = 0;
    }

    /// References `s` without copying when it is a frozen heap String;
    /// otherwise copies it.
    pub fn push_string(&mut self, s: VALUE) {
        // SAFETY: `s` is a live String; we read it before any Ruby call.
        let (bytes, shared) = unsafe {
            (
                raw::str_bytes(s),
                raw::is_frozen(s) && !raw::str_is_embedded(s),
            )
        };
        if shared {
            self.seal_tail();
            self.sealed.push_back(Chunk {
                data: Data::Shared {
                    // SAFETY: a live String; the queue's owner marks (pinned)
                    // and updates every shared chunk (`mark`, `update_references`).
                    s: unsafe { GcRef::new(s) },
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
        let (all, pos) = self.front_with_pos();
        &all[pos..]
    }

    /// The whole front chunk and its read position.
    #[inline]
    pub fn front_with_pos(&self) -> (&[u8], usize) {
        match self.sealed.front() {
            Some(c) => (c.all(), c.pos),
            None => (&self.tail, self.tail_pos),
        }
    }

    pub fn front_source(&self) -> Option<SharedSource> {
        match self.sealed.front() {
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
        match self.sealed.front_mut() {
            Some(c) => {
                let pos = pos.min(c.all().len());
                self.consumed += pos.saturating_sub(c.pos) as u64;
                c.pos = pos;
                self.drop_drained_front();
            }
            None => {
                let pos = pos.min(self.tail.len());
                self.consumed += pos.saturating_sub(self.tail_pos) as u64;
                self.tail_pos = pos;
                self.reset_drained_tail();
            }
        }
    }

    /// Bytes consumed so far (see the field).
    #[inline]
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// A drained queue keeps a small tail allocation for reuse and gives
    /// larger ones back, so `ObjectSpace.memsize_of` drops back once data
    /// is consumed (as with msgpack-ruby).
    #[inline]
    fn reset_drained_tail(&mut self) {
        if self.tail_pos == self.tail.len() && self.sealed.is_empty() {
            self.tail_pos = 0;
            if self.tail.capacity() > KEEP_ON_DRAIN {
                self.tail = Vec::new();
            } else {
                self.tail.clear();
            }
        }
    }

    fn drop_drained_front(&mut self) {
        while let Some(c) = self.sealed.front() {
            if c.pos < c.all().len() {
                break;
            }
            self.sealed.pop_front();
        }
        self.reset_drained_tail();
    }

    /// Joins the front chunk with the next one so a token that spans them
    /// can be read contiguously. Returns false when there is no next chunk.
    pub fn coalesce_front(&mut self) -> bool {
        let Some(front) = self.sealed.pop_front() else {
            return false;
        };
        let mut joined = match front.data {
            Data::Owned(mut v) => {
                v.drain(..front.pos);
                v
            }
            Data::Shared { .. } => front.unread().to_vec(),
        };
        match self.sealed.pop_front() {
            Some(next) => {
                joined.extend_from_slice(next.unread());
                self.sealed.push_front(Chunk {
                    data: Data::Owned(joined),
                    pos: 0,
                });
            }
            None => {
                // The next chunk is the tail: the joined bytes become it.
                joined.extend_from_slice(&self.tail[self.tail_pos..]);
                self.tail = joined;
                self.tail_pos = 0;
            }
        }
        true
    }

    /// Drops up to `n` bytes from the front; returns how many were dropped.
    pub fn consume(&mut self, n: usize) -> usize {
        let dropped = self.consume_inner(n);
        self.consumed += dropped as u64;
        dropped
    }

    fn consume_inner(&mut self, n: usize) -> usize {
        let mut left = n;
        while left > 0 {
            match self.sealed.front_mut() {
                Some(c) => {
                    let take = (c.all().len() - c.pos).min(left);
                    c.pos += take;
                    left -= take;
                    self.drop_drained_front();
                }
                None => {
                    let take = (self.tail.len() - self.tail_pos).min(left);
                    self.tail_pos += take;
                    left -= take;
                    self.reset_drained_tail();
                    break;
                }
            }
        }
        n - left
    }

    /// Appends up to `n` unread bytes to `out` and consumes them.
    pub fn read_into(&mut self, out: &mut Vec<u8>, n: usize) -> usize {
        let mut left = n;
        for s in self.slices() {
            if left == 0 {
                break;
            }
            let take = s.len().min(left);
            out.extend_from_slice(&s[..take]);
            left -= take;
        }
        self.consume(n - left)
    }

    /// The unread bytes, chunk by chunk.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.sealed
            .iter()
            .map(Chunk::unread)
            .chain(std::iter::once(&self.tail[self.tail_pos..]))
            .filter(|s| !s.is_empty())
    }

    /// An empty queue whose tail reuses `tail`'s allocation.
    pub fn with_tail(mut tail: Vec<u8>) -> ChunkQueue {
        tail.clear();
        ChunkQueue {
            tail,
            ..ChunkQueue::default()
        }
    }

    /// The tail's allocation, emptied (for reuse).
    pub fn into_tail(mut self) -> Vec<u8> {
        self.tail.clear();
        std::mem::take(&mut self.tail)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for s in self.slices() {
            v.extend_from_slice(s);
        }
        v
    }

    /// Drops everything (a large tail allocation too).
    pub fn clear(&mut self) {
        self.sealed.clear();
        self.tail.clear();
        self.tail_pos = 0;
        self.reset_drained_tail();
    }

    /// Drops everything but keeps the tail's allocation whatever its size:
    /// for a packer whose output was just taken, the next message will
    /// likely need as much.
    pub fn clear_retaining(&mut self) {
        self.sealed.clear();
        self.tail.clear();
        self.tail_pos = 0;
    }

    /// Heap bytes owned (not counting referenced Strings, which Ruby counts).
    pub fn heap_size(&self) -> usize {
        let owned: usize = self
            .sealed
            .iter()
            .map(|c| match &c.data {
                Data::Owned(v) => v.capacity(),
                Data::Shared { .. } => 0,
            })
            .sum();
        owned + self.tail.capacity() + self.sealed.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Releases slack: consumed prefixes, and capacity over twice what is
    /// held. Returns the bytes released.
    pub fn shrink(&mut self) -> usize {
        let before = self.heap_size();
        for c in &mut self.sealed {
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
        if self.tail_pos > 0 {
            self.tail.drain(..self.tail_pos);
            self.tail_pos = 0;
        }
        if self.tail.capacity() > 2 * self.tail.len() {
            self.tail.shrink_to_fit();
        }
        self.sealed.shrink_to_fit();
        before.saturating_sub(self.heap_size())
    }

    /// Marks (and pins) the referenced Strings.
    pub fn mark(&self, marker: &magnus::gc::Marker) {
        for c in &self.sealed {
            if let Data::Shared { s, .. } = &c.data {
                s.mark_pinned(marker);
            }
        }
    }

    /// Pinned Strings do not move; this only keeps the slots exact should
    /// a Ruby ever move one regardless.
    pub fn update_references(&self, compactor: &magnus::gc::Compactor) {
        for c in &self.sealed {
            if let Data::Shared { s, .. } = &c.data {
                s.update(compactor);
            }
        }
    }
}
