//! A packer's output: its buffer, the outer output set aside while a
//! recursive ext packer writes its payload, and the reused payload
//! allocation. The walk writes here (not through the Packer).
use crate::buffer::chunk_queue::ChunkQueue;
use crate::buffer::core::BufferCore;
use crate::ext_types::registry::FLAG_RECURSIVE;
use crate::pack::ext_lookup::ExtHit;
use crate::runtime::errors::{self, packer_output_busy as busy_output};
use crate::runtime::gc_ref;
use magnus::{rb_sys::AsRawValue, Error, RString, TryConvert, Value};
use msgpack_rs_core::encode;
use std::cell::RefCell;

/// Recursive ext payload buffers up to this size are kept for the next one.
const SPARE_PAYLOAD_KEEP: usize = 64 * 1024;

#[derive(Default)]
pub struct PackOutput {
    pub buf: BufferCore,
    /// Output set aside while a recursive ext packer writes its payload.
    suspended: RefCell<Vec<ChunkQueue>>,
    /// The allocation the last recursive payload was written to, for the
    /// next one (no malloc per recursive ext object).
    spare_payload: RefCell<Vec<u8>>,
}

impl PackOutput {
    /// Runs `f` on the output vector. Fails (instead of panicking) if the
    /// output is already being written, which only a bug could cause.
    #[inline(always)]
    pub fn out<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> Result<R, Error> {
        match self.buf.q_mut() {
            Ok(mut q) => Ok(f(q.tail())),
            Err(_) => Err(busy_output()),
        }
    }

    /// Takes the output tail for a walker to write to directly.
    pub fn take_tail(&self) -> Result<Vec<u8>, Error> {
        match self.buf.q_mut() {
            Ok(mut q) => Ok(std::mem::take(q.tail())),
            Err(_) => Err(busy_output()),
        }
    }

    /// Puts back the tail taken by [`PackOutput::take_tail`] (anything written
    /// meanwhile went to a fresh, empty tail, which this replaces).
    pub fn give_back_tail(&self, tail: Vec<u8>) -> Result<(), Error> {
        match self.buf.q_mut() {
            Ok(mut q) => {
                let fresh = std::mem::replace(q.tail(), tail);
                // Written while the walker held the tail: only possible if
                // a Ruby callback ran without a hand-back; keep it in order.
                if !fresh.is_empty() {
                    q.tail().extend_from_slice(&fresh);
                }
                Ok(())
            }
            Err(_) => Err(busy_output()),
        }
    }

    /// Appends a String body: copied, or referenced when it is longer than
    /// the write-reference threshold (no copy until the output is joined).
    pub fn put_body(&self, s: Value, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() > self.buf.write_reference_threshold() {
            // SAFETY: a frozen String sharing `s`'s buffer.
            let frozen = unsafe { rb_sys::rb_str_new_frozen(s.as_raw()) };
            self.buf
                .q_mut()
                .map_err(|_| busy_output())?
                .push_string(frozen);
            Ok(())
        } else {
            self.out(|o| o.extend_from_slice(bytes))
        }
    }

    /// Writes `obj` as ext `ty` using its registered packer.
    pub fn write_registered_ext(&self, me: Value, obj: Value, hit: ExtHit) -> Result<(), Error> {
        let ExtHit {
            ty,
            klass,
            packer,
            direct,
            flags,
            owner,
        } = hit;
        if flags & FLAG_RECURSIVE != 0 {
            // The payload is written to a queue of its own (the outer output
            // is set aside, so `flush` from the proc cannot send half of
            // it), then copied once behind its header.
            let spare = std::mem::take(
                &mut *self
                    .spare_payload
                    .try_borrow_mut()
                    .map_err(|_| busy_output())?,
            );
            let saved = std::mem::replace(
                &mut *self.buf.q_mut().map_err(|_| busy_output())?,
                ChunkQueue::with_tail(spare),
            );
            self.suspended
                .try_borrow_mut()
                .map_err(|_| busy_output())?
                .push(saved);
            // SAFETY: the hit's objects come from an entry of the packer's
            // registry (`ExtLookup`), which the packer marks.
            let r = unsafe {
                crate::ext_types::registry::call_packer(
                    packer,
                    direct,
                    ty,
                    klass,
                    owner,
                    obj,
                    &[me],
                )
            };
            let restored = self
                .suspended
                .try_borrow_mut()
                .map_err(|_| busy_output())?
                .pop()
                .unwrap_or_default();
            let payload =
                std::mem::replace(&mut *self.buf.q_mut().map_err(|_| busy_output())?, restored);
            let written = r.and_then(|_| {
                let len = encode::len_u32(payload.len()).map_err(errors::too_long)?;
                self.out(|o| {
                    encode::write_ext_header(o, ty, len);
                    for part in payload.slices() {
                        o.extend_from_slice(part);
                    }
                })
            });
            let tail = payload.into_tail();
            if tail.capacity() <= SPARE_PAYLOAD_KEEP {
                if let Ok(mut spare) = self.spare_payload.try_borrow_mut() {
                    *spare = tail;
                }
            }
            return written;
        }
        // SAFETY: as above.
        let payload = unsafe {
            crate::ext_types::registry::call_packer(packer, direct, ty, klass, owner, obj, &[])?
        };
        let s = RString::try_convert(payload)?;
        // SAFETY: bytes of a live String, copied before any Ruby call.
        let bytes = unsafe { crate::runtime::raw::str_bytes(s.as_raw()) };
        let len = encode::len_u32(bytes.len()).map_err(errors::too_long)?;
        self.out(|o| {
            encode::write_ext_header(o, ty, len);
            o.extend_from_slice(bytes);
        })
    }

    /// After a top-level write: push to the IO once enough is buffered
    /// (never in the middle of a recursive ext payload).
    pub fn maybe_flush(&self) -> Result<(), Error> {
        if self.buf.io().is_some()
            && self
                .suspended
                .try_borrow()
                .map(|s| s.is_empty())
                .unwrap_or(false)
            && self.buf.len()? >= self.buf.io_buffer_size()
        {
            self.buf.flush()?;
        }
        Ok(())
    }

    /// `flush` from a packer's user: writes to the IO, but not in the middle
    /// of a recursive ext payload (which would send half an object).
    pub fn flush_unless_nested(&self) -> Result<(), Error> {
        if self
            .suspended
            .try_borrow()
            .map(|s| s.is_empty())
            .unwrap_or(false)
        {
            self.buf.flush()?;
        }
        Ok(())
    }

    /// For the owner's dmark callback; `full` as for [`BufferCore::mark`].
    pub fn mark(&self, marker: &magnus::gc::Marker, full: bool) {
        self.buf.mark(marker, full);
        if !full {
            return;
        }
        if let Some(s) = gc_ref::peek(&self.suspended) {
            for q in s.iter() {
                q.mark(marker);
            }
        }
    }

    /// For the owner's dcompact callback.
    pub fn update(&self, compactor: &magnus::gc::Compactor) {
        self.buf.update_references(compactor);
        if let Some(s) = gc_ref::peek(&self.suspended) {
            for q in s.iter() {
                q.update_references(compactor);
            }
        }
    }
}
