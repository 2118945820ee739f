//! The one decode driver. Every entry point (a streaming `Unpacker` over
//! its chunk queue and IO, `MessagePack.unpack` / `Factory#load` over a
//! String, `MappedUnpacker` over a mapped file) runs the core's
//! `StreamDecoder` with a [`RubyBuilder`] through these functions, over a
//! [`Source`] of bytes, in the spirit of serde_json's `Read` trait.
//!
//! What stays with the caller is policy: what running out of bytes means
//! (wait for more, EOFError, "the file ends inside an object"), and what a
//! recursive ext type (`Got::Deferred`) does.
//!
//! The decoder sits in a `RefCell` that is borrowed only while the decoder
//! runs, never while a source fetches more bytes (an IO's `readpartial` is
//! Ruby code, which may call back into the owner).
use crate::buffer::chunk_queue::SharedSource;
use crate::buffer::core::BufferCore;
use crate::ext_types::registry::UnpackRegistry;
use crate::runtime::errors;
use crate::runtime::gc_ref::Published;
use crate::runtime::value_stack::ValueStack;
use crate::unpack::builder::{RubyBuilder, UnpackOptions};
use magnus::Error;
use msgpack_rs_core::{Step, StreamDecoder};
use rb_sys::VALUE;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// The decoder every entry point drives.
pub type Decoder = StreamDecoder<RubyBuilder>;

/// Where the decoder reads its bytes.
pub trait Source {
    /// Lends `f` the readable bytes, the position to read from (which `f`
    /// moves forward), and the frozen String the bytes live in when values
    /// may share it; then keeps the position `f` left.
    fn read<R>(
        &self,
        f: impl FnOnce(&[u8], &mut usize, Option<SharedSource>) -> R,
    ) -> Result<R, Error>;

    /// After the decoder ran out of bytes: makes more readable. False when
    /// there are no more to get.
    fn more(&self) -> Result<bool, Error>;
}

/// A chunk queue and, behind it, an IO (`Unpacker`).
pub struct QueueSource<'a>(pub &'a BufferCore);

impl Source for QueueSource<'_> {
    fn read<R>(
        &self,
        f: impl FnOnce(&[u8], &mut usize, Option<SharedSource>) -> R,
    ) -> Result<R, Error> {
        let q = self.0.q()?;
        let (bytes, mut pos) = q.front_with_pos();
        let r = f(bytes, &mut pos, q.front_source());
        drop(q);
        self.0.q_mut()?.set_front_pos(pos);
        Ok(r)
    }

    /// Joins the front chunk with the next, or reads the IO.
    fn more(&self) -> Result<bool, Error> {
        if self.0.q_mut()?.coalesce_front() {
            return Ok(true);
        }
        if self.0.io().is_none() {
            return Ok(false);
        }
        self.0.feed_from_io()?;
        Ok(true)
    }
}

/// Bytes that are all there is (a String's, a mapped file's, or a copy).
pub struct BytesSource<'a> {
    bytes: &'a [u8],
    pos: Cell<usize>,
    shared: Option<SharedSource>,
}

impl<'a> BytesSource<'a> {
    /// `bytes` read from `pos`; values may be substrings of `shared`, the
    /// frozen String `bytes` belongs to.
    pub fn new(bytes: &'a [u8], pos: usize, shared: Option<SharedSource>) -> Self {
        BytesSource {
            bytes,
            pos: Cell::new(pos),
            shared,
        }
    }

    /// Where reading stopped.
    pub fn pos(&self) -> usize {
        self.pos.get()
    }

    /// Bytes after the read position.
    pub fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos.get())
    }
}

impl Source for BytesSource<'_> {
    fn read<R>(
        &self,
        f: impl FnOnce(&[u8], &mut usize, Option<SharedSource>) -> R,
    ) -> Result<R, Error> {
        let mut pos = self.pos.get();
        let r = f(self.bytes, &mut pos, self.shared);
        self.pos.set(pos);
        Ok(r)
    }

    fn more(&self) -> Result<bool, Error> {
        Ok(false)
    }
}

/// What building values needs, and how the owner reports itself busy.
pub struct Build<'a> {
    /// Finished values wait here (GC-visible through the owner).
    pub values: &'a ValueStack,
    pub opts: UnpackOptions,
    pub registry: Registrations<'a>,
    /// Strings at least this long may be substrings of a shared source.
    pub threshold: usize,
    /// Where the decoder's heap size is published for `dsize`.
    pub decoder_bytes: &'a Published,
    /// The owner's error for a decoder already in use further up the stack.
    pub busy: fn() -> Error,
}

/// The ext types a decode uses.
pub enum Registrations<'a> {
    /// A snapshot (a String's or a mapped file's whole decode).
    Fixed(Option<Arc<UnpackRegistry>>),
    /// An Unpacker's own table, read again at every decode step: a type
    /// registered while a streamed object waits for more bytes (from an ext
    /// proc, the IO's `readpartial`, another thread) applies to the rest of
    /// it, as in msgpack-ruby.
    Live(&'a RefCell<Arc<UnpackRegistry>>),
}

impl Build<'_> {
    fn builder(&self, shared: Option<SharedSource>) -> Result<RubyBuilder, Error> {
        let registry = match &self.registry {
            Registrations::Fixed(r) => r.clone(),
            Registrations::Live(cell) => {
                Some(cell.try_borrow().map_err(|_| (self.busy)())?.clone())
            }
        };
        Ok(RubyBuilder::new(
            self.values,
            self.opts,
            registry,
            shared,
            self.threshold,
        ))
    }

    fn decoder<'d>(
        &self,
        dec: &'d RefCell<Decoder>,
    ) -> Result<std::cell::RefMut<'d, Decoder>, Error> {
        dec.try_borrow_mut().map_err(|_| (self.busy)())
    }
}

/// What reading one object gave.
pub enum Got {
    Value(VALUE),
    /// The source ran out inside (or before) the object; what was decoded
    /// so far is kept, and decoding resumes where it stopped.
    NeedMore,
    /// A recursive ext type: its unpacker must read the payload from the
    /// owner, then the value goes in with [`inject`].
    Deferred {
        ty: i8,
        len: u32,
    },
}

/// Reads one object: steps the decoder over `src`, asking it for more
/// bytes while the object is incomplete. On an error, the failed object's
/// values (those above `base` on the value stack) are dropped; the decoder
/// discards the rest of its bytes on its next call.
pub fn decode(
    dec: &RefCell<Decoder>,
    src: &impl Source,
    build: &Build,
    base: usize,
) -> Result<Got, Error> {
    loop {
        let r = src.read(|bytes, pos, shared| -> Result<Step<VALUE>, Error> {
            let mut d = build.decoder(dec)?;
            let mut b = build.builder(shared)?;
            let r = d.decode(&mut b, bytes, pos);
            build.decoder_bytes.set(d.heap_size());
            Ok(r?)
        });
        match r.and_then(|r| r) {
            Ok(Step::Done(v)) => return Ok(Got::Value(v)),
            Ok(Step::Deferred { ty, len }) => return Ok(Got::Deferred { ty, len }),
            Ok(Step::NeedMore) => {
                if !src.more()? {
                    return Ok(Got::NeedMore);
                }
            }
            Err(e) => {
                build.values.truncate(base);
                return Err(e);
            }
        }
    }
}

/// Hands a recursive ext type's value to the decoder (see [`Got::Deferred`]).
/// `Some` when it completed the top-level object.
pub fn inject(
    dec: &RefCell<Decoder>,
    build: &Build,
    v: VALUE,
    base: usize,
) -> Result<Option<VALUE>, Error> {
    let mut d = build.decoder(dec)?;
    let r = d.inject(&mut build.builder(None)?, v);
    drop(d);
    r.map_err(|e| {
        build.values.truncate(base);
        Error::from(e)
    })
}

/// Skips one object (or the rest of one a read or skip left unfinished),
/// asking `src` for more bytes as needed. False when they ran out first
/// (what was skipped so far stays skipped). Values of a partial object
/// (above `base`) are dropped.
pub fn skip(
    dec: &RefCell<Decoder>,
    src: &impl Source,
    values: &ValueStack,
    base: usize,
    busy: fn() -> Error,
) -> Result<bool, Error> {
    loop {
        let r = src.read(|bytes, pos, _| -> Result<bool, Error> {
            let mut d = dec.try_borrow_mut().map_err(|_| busy())?;
            let r = d.skip(bytes, pos);
            // A partial object's containers were dropped: their values too.
            values.truncate(base);
            r.map_err(errors::decode)
        })??;
        if r {
            return Ok(true);
        }
        if !src.more()? {
            return Ok(false);
        }
    }
}

/// Discards what is left of a failed or skipped object. False when the
/// bytes ran out first.
pub fn discard_leftover(
    dec: &RefCell<Decoder>,
    src: &impl Source,
    busy: fn() -> Error,
) -> Result<bool, Error> {
    loop {
        let r = src.read(|bytes, pos, _| -> Result<bool, Error> {
            let mut d = dec.try_borrow_mut().map_err(|_| busy())?;
            if !d.is_discarding() {
                return Ok(true);
            }
            d.discard_leftover(bytes, pos).map_err(errors::decode)
        })??;
        if r {
            return Ok(true);
        }
        if !src.more()? {
            return Ok(false);
        }
    }
}
