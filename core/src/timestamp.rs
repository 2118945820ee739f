//! The timestamp extension (type -1): 32-, 64- and 96-bit payloads.

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub sec: i64,
    /// Nanoseconds within the second (below 10^9 when valid).
    pub nsec: u32,
}

/// Why a timestamp payload was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// The payload is not 4, 8 or 12 bytes long.
    InvalidSize(usize),
    /// The nanoseconds field is 10^9 or more.
    NsecOutOfRange(u32),
}

impl std::fmt::Display for TimestampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimestampError::InvalidSize(n) => write!(f, "Invalid timestamp data size: {n}"),
            TimestampError::NsecOutOfRange(n) => {
                write!(f, "Invalid timestamp nanoseconds: {n} (must be below 10^9)")
            }
        }
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    /// The ext type id reserved for timestamps.
    pub const EXT_TYPE: i8 = -1;
    /// The largest `sec` of the 32-bit form (whole seconds only).
    pub const TIMESTAMP32_MAX_SEC: i64 = (1 << 32) - 1;
    /// The largest `sec` of the 64-bit form.
    pub const TIMESTAMP64_MAX_SEC: i64 = (1 << 34) - 1;

    /// A timestamp (not checked: see [`Timestamp::from_payload`]).
    pub fn new(sec: i64, nsec: u32) -> Self {
        Timestamp { sec, nsec }
    }

    /// Appends the shortest payload (without the ext header): 4 bytes for
    /// whole seconds in 0..2^32, 8 bytes for seconds in 0..2^34, else 12.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        if self.sec >= 0 && self.sec <= Self::TIMESTAMP64_MAX_SEC {
            if self.nsec == 0 && self.sec <= Self::TIMESTAMP32_MAX_SEC {
                out.extend_from_slice(&(self.sec as u32).to_be_bytes());
            } else {
                let v = ((self.nsec as u64) << 34) | self.sec as u64;
                out.extend_from_slice(&v.to_be_bytes());
            }
        } else {
            out.extend_from_slice(&self.nsec.to_be_bytes());
            out.extend_from_slice(&self.sec.to_be_bytes());
        }
    }

    /// The payload as a new vector.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        self.write_payload(&mut out);
        out
    }

    /// Parses a 4-, 8- or 12-byte payload, rejecting nanoseconds >= 10^9.
    pub fn from_payload(data: &[u8]) -> Result<Self, TimestampError> {
        let ts = Self::from_payload_unchecked(data)?;
        if ts.nsec >= 1_000_000_000 {
            return Err(TimestampError::NsecOutOfRange(ts.nsec));
        }
        Ok(ts)
    }

    /// Parses a payload without the nanosecond range check (what the C
    /// msgpack-ruby gem does).
    pub fn from_payload_unchecked(data: &[u8]) -> Result<Self, TimestampError> {
        match *data {
            [a, b, c, d] => Ok(Timestamp {
                sec: u32::from_be_bytes([a, b, c, d]) as i64,
                nsec: 0,
            }),
            [a, b, c, d, e, f, g, h] => {
                let v = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                Ok(Timestamp {
                    sec: (v & ((1 << 34) - 1)) as i64,
                    nsec: (v >> 34) as u32,
                })
            }
            [a, b, c, d, e, f, g, h, i, j, k, l] => Ok(Timestamp {
                nsec: u32::from_be_bytes([a, b, c, d]),
                sec: i64::from_be_bytes([e, f, g, h, i, j, k, l]),
            }),
            _ => Err(TimestampError::InvalidSize(data.len())),
        }
    }
}
