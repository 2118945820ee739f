//! [`ArenaStream`]: one message at a time from a byte stream, decoded into
//! an arena the stream owns.
use super::{decode_fast, ValueRef};
use crate::decode::{Skipper, Step, StreamDecoder};
use crate::error::{DecodeError, ReadError};
use crate::limits::Limits;
use bumpalo::Bump;
use std::io::{self, Read};

/// How many bytes [`ArenaStream::fill_from`] asks a reader for by default.
const DEFAULT_READ_SIZE: usize = 64 * 1024;

/// One decoded message of an [`ArenaStream`], valid until the stream is used
/// again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message<'d> {
    /// The decoded object.
    pub value: ValueRef<'d>,
    /// Its encoding, as it appeared in the stream.
    pub bytes: &'d [u8],
    /// Where it started, in bytes from the start of the stream.
    pub offset: u64,
}

/// What the stream knows about the unread bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing known: the next message is tried at once.
    Idle,
    /// The message at `pos` was found incomplete; the resumable scanner
    /// reads the bytes as they come (each once) until it is whole.
    Scanning,
    /// The scanner found the message at `pos` whole and valid up to `end`.
    Ready { end: usize },
    /// After an error: the scanner drops the rest of the failed message.
    Discarding,
}

/// A streaming decoder that owns its buffer and its arena, and hands out one
/// [`Message`] at a time.
///
/// Feed it bytes ([`ArenaStream::feed`], or [`ArenaStream::fill_from`] a
/// reader) and ask for messages with [`ArenaStream::next_message`], which
/// returns `Ok(None)` when the buffered bytes end inside a message. Or let it
/// read: [`ArenaStream::read_message`] reads from an [`io::Read`] until it
/// has a whole message.
///
/// Each message is decoded into the stream's arena, which is reset when the
/// next one is asked for: a message borrows the stream, so the borrow
/// checker rejects keeping one past the next call (copy what you need, e.g.
/// with [`ValueRef::to_value`]). Once the arena and the buffer have grown to
/// the largest message, decoding allocates nothing.
///
/// A complete message in the buffer is decoded in one pass. A message that
/// arrives in pieces is scanned incrementally as its bytes come in (each byte
/// is looked at once), then decoded once whole.
///
/// Results are those of [`StreamDecoder`] with the same limits: the same
/// objects, the same errors, in the same order however the stream is split.
/// After an error, the rest of the failed message is skipped and the next
/// call decodes the message after it.
///
/// ```
/// use msgpack_rs_core::arena::ArenaStream;
///
/// let mut stream = ArenaStream::new();
/// // [1, "ab"] then true, split mid-message.
/// let mut seen = Vec::new();
/// for chunk in [&[0x92, 0x01, 0xa2][..], &[b'a', b'b', 0xc3][..]] {
///     stream.feed(chunk);
///     while let Some(msg) = stream.next_message().unwrap() {
///         seen.push((msg.offset, msg.bytes.len(), msg.value.to_value()));
///     }
/// }
/// assert_eq!(seen.len(), 2);
/// assert_eq!((seen[0].0, seen[0].1), (0, 5));
/// assert_eq!((seen[1].0, seen[1].1), (5, 1));
/// ```
///
/// A message cannot outlive the next call: this does not compile.
///
/// ```compile_fail,E0499
/// use msgpack_rs_core::arena::ArenaStream;
///
/// let mut stream = ArenaStream::new();
/// stream.feed(&[0xa1, b'a', 0xa1, b'b']);
/// let first = stream.next_message().unwrap().unwrap();
/// let second = stream.next_message().unwrap().unwrap(); // `stream` is still borrowed
/// assert_ne!(first.value, second.value);
/// ```
///
/// Nor can a value be kept across [`ArenaStream::feed`] (which may move the
/// bytes it borrows) or [`ArenaStream::reset`]:
///
/// ```compile_fail,E0499
/// use msgpack_rs_core::arena::ArenaStream;
///
/// let mut stream = ArenaStream::new();
/// stream.feed(&[0xa1, b'a']);
/// let value = stream.next_message().unwrap().unwrap().value;
/// stream.feed(&[0xc0]);
/// println!("{value:?}");
/// ```
pub struct ArenaStream {
    bump: Bump,
    /// The stream's bytes from the first one not handed out.
    buf: Vec<u8>,
    /// Takes over from `buf` when [`ArenaStream::read_message`] must read
    /// more after a decode attempt borrowed `buf` (the borrow may be
    /// returned, so `buf` cannot change in that call); the next call swaps
    /// the two back.
    spare: Vec<u8>,
    /// `spare` holds the live bytes.
    spare_live: bool,
    cur: Cursor,
    read_size: usize,
}

/// Where the stream is in its buffer, and what it knows about the bytes.
struct Cursor {
    /// Start of the unread bytes (of the message in progress).
    pos: usize,
    /// Stream offset of the buffer's first byte.
    base: u64,
    limits: Limits,
    /// Finds where an incomplete message ends, and the errors.
    scan: StreamDecoder<Skipper>,
    /// Where `scan` goes on (at or after `pos`).
    scan_pos: usize,
    state: State,
}

impl Default for ArenaStream {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ArenaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArenaStream")
            .field("offset", &self.offset())
            .field("buffered", &self.buffered())
            .field("state", &self.cur.state)
            .field("limits", &self.cur.limits)
            .field("arena_bytes", &self.arena_bytes())
            .finish_non_exhaustive()
    }
}

impl Cursor {
    /// Forgets the bytes before `pos` (they were removed from the buffer).
    fn rebase(&mut self) {
        let gone = self.pos;
        self.base += gone as u64;
        self.scan_pos -= gone;
        if let State::Ready { end } = &mut self.state {
            *end -= gone;
        }
        self.pos = 0;
    }

    /// Drops the unread bytes of `buf` and anything in progress.
    fn clear(&mut self, buf: &mut Vec<u8>) {
        self.base += buf.len() as u64;
        buf.clear();
        self.pos = 0;
        self.scan_pos = 0;
        self.scan.reset();
        self.state = State::Idle;
    }

    /// Moves the unread bytes to the front of `buf` when at least half of it
    /// has been read (so every byte moves at most once on average).
    fn compact(&mut self, buf: &mut Vec<u8>) {
        if self.pos > 0 && self.pos >= buf.len() / 2 {
            buf.drain(..self.pos);
            self.rebase();
        }
    }

    /// Reads once from `reader` into `buf` (up to `size` bytes).
    fn fill<R: Read + ?Sized>(
        &mut self,
        buf: &mut Vec<u8>,
        reader: &mut R,
        size: usize,
    ) -> io::Result<usize> {
        self.compact(buf);
        let old = buf.len();
        buf.resize(old + size, 0);
        let r = loop {
            match reader.read(&mut buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        buf.truncate(old + r.as_ref().map_or(0, |&n| n.min(size)));
        r
    }

    /// The scanner's verdict on the message at `pos`: whole (`Ready`), not
    /// yet (`false`), or an error (the stream then skips the rest of it).
    fn scan(&mut self, buf: &[u8]) -> Result<bool, DecodeError> {
        let mut p = self.scan_pos;
        let r = self.scan.decode(&mut Skipper, buf, &mut p);
        self.scan_pos = p;
        match r {
            Ok(Step::Done(())) => {
                self.state = State::Ready { end: p };
                Ok(true)
            }
            Ok(Step::NeedMore) => Ok(false),
            Ok(Step::Deferred { .. }) => unreachable!("Skipper defers nothing"),
            Err(e) => {
                self.pos = p;
                self.state = if self.scan.is_discarding() {
                    State::Discarding
                } else {
                    State::Idle
                };
                Err(e)
            }
        }
    }

    /// Skips what is left of a failed message: `true` once it is gone.
    fn discard(&mut self, buf: &[u8]) -> Result<bool, DecodeError> {
        let mut p = self.pos;
        let r = self.scan.discard_leftover(buf, &mut p);
        self.pos = p;
        self.scan_pos = p;
        match r {
            Ok(true) => {
                self.state = State::Idle;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                if !self.scan.is_discarding() {
                    self.state = State::Idle;
                }
                Err(e)
            }
        }
    }

    /// Starts the scanner on the message at `pos`.
    fn start_scan(&mut self) {
        self.scan.reset();
        self.scan_pos = self.pos;
        self.state = State::Scanning;
    }

    /// Works out, without decoding into the arena, whether `buf` has a
    /// message or an error to hand out (`true`) or needs more bytes.
    fn poll(&mut self, buf: &[u8]) -> Result<bool, DecodeError> {
        loop {
            match self.state {
                State::Ready { .. } => return Ok(true),
                State::Discarding => {
                    if !self.discard(buf)? {
                        return Ok(false);
                    }
                }
                State::Idle if self.pos == buf.len() => return Ok(false),
                State::Idle => self.start_scan(),
                State::Scanning => return self.scan(buf),
            }
        }
    }

    /// The message the scanner found whole, decoded into `bump`.
    fn take_ready<'d>(
        &mut self,
        bump: &'d Bump,
        buf: &'d [u8],
    ) -> Result<Option<Message<'d>>, DecodeError> {
        let State::Ready { end } = self.state else {
            return Ok(None);
        };
        let start = self.pos;
        self.state = State::Idle;
        self.pos = end;
        self.scan_pos = end;
        let bytes = &buf[start..end];
        match decode_fast(bump, bytes, &self.limits) {
            Some((value, used)) if used == bytes.len() => Ok(Some(Message {
                value,
                bytes,
                offset: self.base + start as u64,
            })),
            // Unreachable: the scanner accepted these bytes as one object.
            _ => Err(super::canonical_error(bytes, self.limits)),
        }
    }
}

impl ArenaStream {
    /// A stream with default [`Limits`].
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    /// A stream with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        ArenaStream {
            bump: Bump::new(),
            buf: Vec::new(),
            spare: Vec::new(),
            spare_live: false,
            cur: Cursor {
                pos: 0,
                base: 0,
                limits,
                scan: StreamDecoder::new(limits),
                scan_pos: 0,
                state: State::Idle,
            },
            read_size: DEFAULT_READ_SIZE,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.cur.limits
    }

    /// Sets how many bytes [`ArenaStream::fill_from`] and
    /// [`ArenaStream::read_message`] ask a reader for at a time (default
    /// 64 KiB; at least 1).
    pub fn set_read_size(&mut self, bytes: usize) {
        self.read_size = bytes.max(1);
    }

    /// The buffer holding the live bytes.
    fn live(&self) -> &[u8] {
        if self.spare_live {
            &self.spare
        } else {
            &self.buf
        }
    }

    /// Makes `buf` the live buffer again (at the start of every call that
    /// changes the stream: nothing is borrowed then).
    fn adopt_spare(&mut self) {
        if self.spare_live {
            std::mem::swap(&mut self.buf, &mut self.spare);
            self.spare_live = false;
        }
    }

    /// Bytes buffered and not yet handed out (including a message in
    /// progress).
    pub fn buffered(&self) -> usize {
        self.live().len() - self.cur.pos
    }

    /// Stream offset of the first byte not yet handed out.
    pub fn offset(&self) -> u64 {
        self.cur.base + self.cur.pos as u64
    }

    /// True when no message is partly buffered and nothing of a failed one
    /// is left to skip: the stream is at a message boundary.
    pub fn is_at_boundary(&self) -> bool {
        self.buffered() == 0 && self.cur.state != State::Discarding
    }

    /// Bytes the arena has allocated (for the current message, plus unused
    /// room). See [`Bump::allocated_bytes`].
    pub fn arena_bytes(&self) -> usize {
        self.bump.allocated_bytes()
    }

    /// Drops the buffered bytes, any message in progress and the arena's
    /// contents (keeping their memory). Offsets go on counting.
    pub fn reset(&mut self) {
        self.adopt_spare();
        self.cur.clear(&mut self.buf);
        self.bump.reset();
    }

    /// Appends bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.adopt_spare();
        self.cur.compact(&mut self.buf);
        self.buf.extend_from_slice(bytes);
    }

    /// Reads once from `reader` into the buffer (up to the read size, see
    /// [`ArenaStream::set_read_size`]), retrying on
    /// [`io::ErrorKind::Interrupted`]. Returns the number of bytes read: 0 at
    /// the end of the reader.
    ///
    /// With [`ArenaStream::next_message`], this gives a loop over a reader
    /// in which the caller decides when to read:
    ///
    /// ```
    /// use msgpack_rs_core::arena::ArenaStream;
    ///
    /// let mut reader: &[u8] = &[0x01, 0x92, 0xc2, 0xc3, 0xa1, b'z'];
    /// let mut stream = ArenaStream::new();
    /// stream.set_read_size(2); // tiny reads, to show the pattern
    /// let mut count = 0;
    /// loop {
    ///     if let Some(msg) = stream.next_message()? {
    ///         count += msg.bytes.len();
    ///     } else if stream.fill_from(&mut reader)? == 0 {
    ///         break; // the end of the reader
    ///     }
    /// }
    /// assert!(stream.is_at_boundary());
    /// assert_eq!(count, 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fill_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<usize> {
        self.adopt_spare();
        self.cur.fill(&mut self.buf, reader, self.read_size)
    }

    /// The next message from the buffered bytes, or `Ok(None)` when they end
    /// inside one (feed more and call again) or are all read.
    ///
    /// Resets the arena first: the previous message is gone, which the
    /// borrow checker enforces. After `Err`, the next call skips the rest of
    /// the failed message and goes on with the one after it.
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, DecodeError> {
        self.adopt_spare();
        self.bump.reset();
        let cur = &mut self.cur;
        if cur.state == State::Discarding && !cur.discard(&self.buf)? {
            return Ok(None);
        }
        if cur.state == State::Idle {
            let start = cur.pos;
            if start == self.buf.len() {
                return Ok(None);
            }
            // Fast path: the message is usually all there.
            if let Some((value, used)) = decode_fast(&self.bump, &self.buf[start..], &cur.limits) {
                cur.pos = start + used;
                cur.scan_pos = cur.pos;
                return Ok(Some(Message {
                    value,
                    bytes: &self.buf[start..start + used],
                    offset: cur.base + start as u64,
                }));
            }
            // Incomplete or invalid: the scanner tells which, and goes on
            // from where it stops as more bytes come.
            cur.start_scan();
        }
        if cur.state == State::Scanning && !cur.scan(&self.buf)? {
            return Ok(None);
        }
        cur.take_ready(&self.bump, &self.buf)
    }

    /// Reads from `reader` until a whole message is buffered, and returns
    /// it. `Ok(None)` when the reader ends at a message boundary; a reader
    /// that ends inside a message gives
    /// `Err(ReadError::Decode(DecodeError::UnexpectedEof))` (once; the
    /// partial message is dropped).
    ///
    /// It reads only when the buffered bytes hold no whole message, so it
    /// does not block on a reader that has nothing more to send yet. A
    /// message that is all buffered is decoded in one pass; one that is not
    /// is scanned as its bytes come, then decoded.
    ///
    /// ```
    /// use msgpack_rs_core::arena::ArenaStream;
    ///
    /// let mut reader: &[u8] = &[0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02, 0xc0];
    /// let mut stream = ArenaStream::new();
    /// let first = stream.read_message(&mut reader)?.unwrap();
    /// assert_eq!(first.value["b"].as_u64(), Some(2));
    /// assert!(stream.read_message(&mut reader)?.unwrap().value.is_nil());
    /// assert!(stream.read_message(&mut reader)?.is_none());
    /// # Ok::<(), msgpack_rs_core::ReadError>(())
    /// ```
    pub fn read_message<R: Read + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<Message<'_>>, ReadError> {
        self.adopt_spare();
        self.bump.reset();
        let cur = &mut self.cur;
        if cur.state == State::Idle {
            if cur.pos == self.buf.len() && cur.fill(&mut self.buf, reader, self.read_size)? == 0 {
                return Ok(None);
            }
            // Fast path: a whole message is usually buffered.
            let start = cur.pos;
            if let Some((value, used)) = decode_fast(&self.bump, &self.buf[start..], &cur.limits) {
                cur.pos = start + used;
                cur.scan_pos = cur.pos;
                return Ok(Some(Message {
                    value,
                    bytes: &self.buf[start..start + used],
                    offset: cur.base + start as u64,
                }));
            }
        }
        // Slow path. `buf` may be borrowed by the fast path's answer, so it
        // cannot change in this call: the unread bytes move to `spare`,
        // which takes in what is read until the message is whole.
        let spare = &mut self.spare;
        spare.clear();
        spare.extend_from_slice(&self.buf[cur.pos..]);
        cur.rebase();
        self.spare_live = true;
        while !cur.poll(spare)? {
            if cur.fill(spare, reader, self.read_size)? == 0 {
                let at_boundary = spare.len() == cur.pos;
                let discarding = cur.state == State::Discarding;
                cur.clear(spare);
                return if at_boundary || discarding {
                    // Only the rest of a failed message was missing.
                    Ok(None)
                } else {
                    Err(DecodeError::UnexpectedEof.into())
                };
            }
        }
        Ok(cur.take_ready(&self.bump, &self.spare)?)
    }
}
