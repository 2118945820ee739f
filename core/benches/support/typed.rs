//! Rust types for the payload shapes, for `rmp_serde` typed decoding.
//! Strings and bytes borrow from the input, as the arena decoder's do.
#![allow(dead_code)] // fields are only decoded

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Map1<'a> {
    pub message: &'a str,
}

#[derive(Deserialize)]
pub struct LogRecord<'a> {
    pub ts: u64,
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_us: u64,
    pub remote_ip: &'a str,
    pub user_agent: &'a str,
    pub request_id: &'a str,
    pub referer: &'a str,
}

/// Any msgpack integer (`u64::MAX` and `i64::MIN` both appear).
pub struct AnyInt(pub i128);

impl<'de> Deserialize<'de> for AnyInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyInt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyInt, E> {
                Ok(AnyInt(v as i128))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyInt, E> {
                Ok(AnyInt(v as i128))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
pub struct Dims<'a> {
    pub w: f64,
    pub h: f64,
    pub unit: &'a str,
    pub rotated: bool,
}

#[derive(Deserialize)]
pub struct History {
    pub at: u64,
    pub ok: bool,
    pub score: (f64, Option<()>, u64, i64),
}

#[derive(Deserialize)]
pub struct Parent<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub path: (&'a str, &'a str, Option<&'a str>),
    pub weight: f64,
}

#[derive(Deserialize)]
pub struct Meta<'a> {
    pub flags: (bool, bool, Option<bool>),
    #[serde(borrow)]
    pub parent: Option<Parent<'a>>,
    pub matrix: [[f64; 2]; 2],
}

#[derive(Deserialize)]
pub struct Nested<'a> {
    pub id: u64,
    pub name: &'a str,
    pub active: bool,
    pub deleted_at: Option<&'a str>,
    pub price: f64,
    pub ratio: f64,
    #[serde(borrow)]
    pub tags: Vec<&'a str>,
    #[serde(borrow)]
    pub dims: Dims<'a>,
    pub history: Vec<History>,
    #[serde(borrow)]
    pub meta: Meta<'a>,
}

#[derive(Deserialize)]
pub struct Blob<'a> {
    pub data: &'a [u8],
}
