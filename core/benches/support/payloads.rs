//! The eight payload shapes of the Ruby benches (`bench/support/payloads.rb`),
//! rebuilt in Rust: the same structures, keys, strings and value ranges. The
//! log records are byte-for-byte those of the Ruby file; where the Ruby file
//! draws random numbers (Ruby's `Random`), a fixed-seed generator draws from
//! the same ranges instead, so sizes match closely but not exactly.
use msgpack_rs_core::Value;

pub fn s(text: &str) -> Value {
    Value::Str(text.as_bytes().to_vec())
}

fn uint(n: u64) -> Value {
    Value::Uint(n)
}

/// Integers as a Ruby packer writes them: non-negative ones unsigned.
fn int(n: i128) -> Value {
    if n >= 0 {
        Value::Uint(n as u64)
    } else {
        Value::Int(n as i64)
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)` (53 bits), like Ruby's `rand`.
    pub fn float(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i128, hi: i128) -> i128 {
        let span = (hi - lo + 1) as u128;
        let r = ((self.next_u64() as u128) << 64 | self.next_u64() as u128) % span;
        lo + r as i128
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.float()
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// An 11-field web-log record: strings and integers only (as in Ruby).
pub fn log_record(i: u64) -> Value {
    let referer = if i % 4 == 0 {
        String::new()
    } else {
        format!("https://shop.example.com/cart?item={}", i % 97)
    };
    map(vec![
        ("ts", uint(1_714_825_696_789 + i * 137)),
        ("host", s(&format!("web-{}.example.internal", i % 3 + 1))),
        ("method", s(if i % 2 == 0 { "GET" } else { "POST" })),
        ("path", s(&format!("/api/v2/orders/{}/items", 48_213 + i))),
        ("status", uint([200, 200, 201, 304, 404][(i % 5) as usize])),
        ("bytes", uint(1_834 + i * 71)),
        ("duration_us", uint(12_750 + (i * 7919) % 100_000)),
        ("remote_ip", s(&format!("203.0.113.{}", i % 250))),
        (
            "user_agent",
            s("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
        ),
        (
            "request_id",
            s(&format!(
                "{:08x}-4b1d-4c3e-9f0a-{:012x}",
                0x5eed_0000 + i,
                0xc0_ffee + i
            )),
        ),
        ("referer", s(&referer)),
    ])
}

pub fn records(n: u64) -> Value {
    Value::Array((0..n).map(log_record).collect())
}

/// A one-field map with a 150-byte ASCII string.
pub fn map1_str150() -> Value {
    let text = "GET /api/v2/orders/48213/items 200 ".repeat(5);
    map(vec![("message", s(&text[..150]))])
}

/// Every msgpack integer width, 1/10 each, boundaries included.
const INT_RANGES: [(i128, i128); 10] = [
    (0, 127),
    (128, 255),
    (256, 65_535),
    (65_536, 4_294_967_295),
    (4_294_967_296, 18_446_744_073_709_551_615),
    (-32, -1),
    (-128, -33),
    (-32_768, -129),
    (-2_147_483_648, -32_769),
    (-9_223_372_036_854_775_808, -2_147_483_649),
];

pub fn integers(n: usize) -> Value {
    let mut rng = Rng::new(7);
    let mut ints: Vec<i128> = (0..n)
        .map(|i| {
            let (lo, hi) = INT_RANGES[i % INT_RANGES.len()];
            rng.range(lo, hi)
        })
        .collect();
    for (k, &(lo, hi)) in INT_RANGES.iter().enumerate() {
        ints[k] = lo;
        ints[k + INT_RANGES.len()] = hi;
    }
    Value::Array(ints.into_iter().map(int).collect())
}

/// Floats of every magnitude: fractions, large, tiny, integral, +-0.0,
/// +-Infinity.
pub fn floats(n: usize) -> Value {
    let mut rng = Rng::new(11);
    let mut list: Vec<f64> = (0..n)
        .map(|i| match i % 6 {
            0 => rng.float(),
            1 => rng.float() * 2e6 - 1e6,
            2 => rng.uniform(-1e300, 1e300),
            3 => rng.uniform(-1e-300, 1e-300),
            4 => i as f64 * 0.25 - 500.0,
            _ => round(rng.uniform(-1e10, 1e10), 3),
        })
        .collect();
    list[..4].copy_from_slice(&[0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY]);
    Value::Array(list.into_iter().map(Value::F64).collect())
}

/// A nested record: arrays, maps, floats, booleans, nil.
fn nested_record(i: u64, rng: &mut Rng) -> Value {
    let f = Value::F64;
    map(vec![
        ("id", uint(i)),
        ("name", s(&format!("item-{i}"))),
        ("active", Value::Bool(i % 2 == 1)),
        ("deleted_at", Value::Nil),
        ("price", f(round(rng.float() * 1000.0, 2))),
        ("ratio", f(rng.float())),
        (
            "tags",
            Value::Array((0..i % 5).map(|k| s(&format!("tag-{k}"))).collect()),
        ),
        (
            "dims",
            map(vec![
                ("w", f(rng.float() * 10.0)),
                ("h", f(rng.float() * 10.0)),
                ("unit", s("cm")),
                ("rotated", Value::Bool(false)),
            ]),
        ),
        (
            "history",
            Value::Array(
                (0..3u64)
                    .map(|k| {
                        map(vec![
                            ("at", uint(1_700_000_000 + k * 60 + i)),
                            ("ok", Value::Bool(k % 2 == 0)),
                            (
                                "score",
                                Value::Array(vec![
                                    f(rng.float()),
                                    Value::Nil,
                                    uint(k),
                                    int(-(k as i128) * 1000),
                                ]),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "meta",
            map(vec![
                (
                    "flags",
                    Value::Array(vec![Value::Bool(true), Value::Bool(false), Value::Nil]),
                ),
                (
                    "parent",
                    if i == 0 {
                        Value::Nil
                    } else {
                        map(vec![
                            ("id", uint(i - 1)),
                            (
                                "path",
                                Value::Array(vec![
                                    s("root"),
                                    s(&format!("n{}", i % 7)),
                                    Value::Nil,
                                ]),
                            ),
                            ("weight", f(-1.5 * i as f64)),
                        ])
                    },
                ),
                (
                    "matrix",
                    Value::Array(vec![
                        Value::Array(vec![f(1.0), f(0.0)]),
                        Value::Array(vec![f(0.0), f(1.0)]),
                    ]),
                ),
            ]),
        ),
    ])
}

pub fn nested(n: u64) -> Value {
    let mut rng = Rng::new(3);
    Value::Array((0..n).map(|i| nested_record(i, &mut rng)).collect())
}

/// A map with one 1 MiB binary.
pub fn bin_1mib() -> Value {
    let mut rng = Rng::new(42);
    let data: Vec<u8> = (0..1 << 20).map(|_| rng.next_u64() as u8).collect();
    map(vec![("data", Value::Bin(data))])
}

const ALPHABETS: [&str; 5] = [
    "abcdefghijklmnopqrstuvwxyz0123456789 ",
    "aeiouéèêàçüöñß ",
    "дерево сеть данные ",
    "日本語の文字列テキスト中文",
    "😀🚀✨🎉 ok ",
];
const STRING_CHARS: [usize; 13] = [0, 1, 3, 8, 15, 16, 31, 40, 64, 100, 150, 255, 300];

/// UTF-8 strings of 0 to ~1,200 bytes; 4 of 5 contain non-ASCII.
pub fn utf8_strings(n: usize) -> Value {
    let mut rng = Rng::new(5);
    Value::Array(
        (0..n)
            .map(|i| {
                let chars: Vec<char> = ALPHABETS[i % ALPHABETS.len()].chars().collect();
                let len = STRING_CHARS[rng.below(STRING_CHARS.len())];
                let text: String = (0..len).map(|_| chars[rng.below(chars.len())]).collect();
                s(&text)
            })
            .collect(),
    )
}

/// Name and value of every shape, in the Ruby table's order.
pub fn shapes() -> Vec<(&'static str, Value)> {
    vec![
        ("map1_str150", map1_str150()),
        ("log_record", log_record(0)),
        ("records_1000", records(1_000)),
        ("ints_10000", integers(10_000)),
        ("floats_10000", floats(10_000)),
        ("nested_200", nested(200)),
        ("bin_1mib", bin_1mib()),
        ("utf8_strings_2000", utf8_strings(2_000)),
    ]
}
