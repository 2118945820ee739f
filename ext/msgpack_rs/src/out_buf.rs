//! The packer's output vector as an encoding [`Sink`] with unchecked small
//! writes: one capacity check and one store per header or scalar, where
//! `Vec::extend_from_slice` may compile to a call and a `memcpy`.
use msgpack_rs_core::encode::Sink;

#[derive(Default)]
pub struct OutBuf(pub Vec<u8>);

impl OutBuf {
    #[inline(always)]
    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

impl Sink for OutBuf {
    #[inline(always)]
    fn put<const N: usize>(&mut self, bytes: [u8; N]) {
        self.0.reserve(N);
        let len = self.0.len();
        // SAFETY: `reserve(N)` leaves room for N more bytes after `len`;
        // the source is a local array of N bytes, so the ranges are disjoint.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.as_mut_ptr().add(len), N);
            self.0.set_len(len + N);
        }
    }

    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgpack_rs_core::encode;

    #[test]
    fn writes_like_a_vec() {
        let mut fast = OutBuf::default();
        let mut plain = Vec::new();
        for v in [0i64, -1, -33, 200, -200, 70_000, -70_000, 1 << 40, i64::MIN] {
            encode::write_int(&mut fast, v);
            encode::write_int(&mut plain, v);
        }
        encode::write_f64(&mut fast, 1.5);
        encode::write_f64(&mut plain, 1.5);
        fast.put_slice(b"abc");
        plain.put_slice(b"abc");
        assert_eq!(fast.0, plain);
    }
}
