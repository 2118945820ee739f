//! Raw header reads (`read_array_header`, `read_map_header`,
//! `skip_nil`): the next header straight from the buffer, after whatever a
//! failed or skipped object left.
use super::*;

impl Unpacker {
    /// The next header, without consuming it; EOFError when there is none.
    /// The invalid byte 0xc1 is "unexpected type" here, as in msgpack-ruby.
    fn peek_header(&self) -> Result<(Header, usize), Error> {
        if !self.discard_leftover()? {
            return Err(errors::eof());
        }
        loop {
            let r = parse_header(self.buf.q()?.front());
            match r {
                Ok(Some(h)) => return Ok(h),
                Ok(None) => {
                    if !QueueSource(&self.buf).more()? {
                        return Err(errors::eof());
                    }
                }
                Err(_) => return Err(unexpected_type()),
            }
        }
    }

    pub(super) fn skip_nil(&self) -> Result<bool, Error> {
        let _call = self.enter_read()?;
        if !self.discard_leftover()? {
            return Err(errors::eof());
        }
        loop {
            let first = self.buf.q()?.front().first().copied();
            match first {
                Some(b) => return Ok(b == 0xc0),
                None => {
                    if !QueueSource(&self.buf).more()? {
                        return Err(errors::eof());
                    }
                }
            }
        }
    }

    /// Reads an array or map header (when `map`), applying the length
    /// limits like a full read would.
    fn read_header(&self, map: bool) -> Result<u32, Error> {
        let _call = self.enter_read()?;
        let limits = self.limits.get();
        let (n, hlen, max, kind) = match self.peek_header()? {
            (Header::Array(n), hlen) if !map => {
                (n, hlen, limits.max_array_len, LimitKind::ArrayLen)
            }
            (Header::Map(n), hlen) if map => (n, hlen, limits.max_map_len, LimitKind::MapLen),
            _ => return Err(unexpected_type()),
        };
        self.buf.q_mut()?.consume(hlen);
        if n > max {
            return Err(errors::limit(kind, n, max));
        }
        Ok(n)
    }

    pub(super) fn read_array_header(&self) -> Result<u32, Error> {
        self.read_header(false)
    }

    pub(super) fn read_map_header(&self) -> Result<u32, Error> {
        self.read_header(true)
    }
}
