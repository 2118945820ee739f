//! Encode/decode throughput of the pure-Rust core against rmpv, on payload
//! shapes like those the Ruby gem sees.
//!
//! `cargo bench -p msgpack-rs-core` (add `-- --warm-up-time 0.5
//! --measurement-time 1` for a quick pass, or a group name to filter).
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use msgpack_rs_core::{decode_value_exact, encode_value, Value};

fn s(text: &str) -> Value {
    Value::Str(text.as_bytes().to_vec())
}

/// A small deterministic generator, so every run benches the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn one_field_map() -> Value {
    let text = "The quick brown fox jumps over the lazy dog; ".repeat(4);
    Value::Map(vec![(s("message"), s(&text[..150]))])
}

const PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/api/v1/users/12345/orders?page=2&per_page=50",
    "/static/js/app.4f3c2a1b.min.js",
    "/images/logo@2x.png",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "curl/8.4.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];

/// An 11-field web-log record: strings and integers.
fn log_record(rng: &mut Lcg) -> Value {
    let i = rng.next();
    Value::Map(vec![
        (
            s("host"),
            s(&format!("192.168.{}.{}", i % 256, (i >> 8) % 256)),
        ),
        (s("ident"), s("-")),
        (s("user"), s(["-", "alice", "bob"][(i % 3) as usize])),
        (s("time"), s("23/Nov/2025:12:00:00 +0000")),
        (s("method"), s(["GET", "POST", "PUT"][(i % 3) as usize])),
        (s("path"), s(PATHS[(i % PATHS.len() as u64) as usize])),
        (s("protocol"), s("HTTP/1.1")),
        (
            s("status"),
            Value::Uint([200, 301, 404, 500][(i % 4) as usize]),
        ),
        (s("size"), Value::Uint(rng.below(1 << 20))),
        (s("referer"), s("https://example.com/")),
        (s("agent"), s(AGENTS[(i % AGENTS.len() as u64) as usize])),
    ])
}

fn log_records(n: usize) -> Value {
    let mut rng = Lcg(1);
    Value::Array((0..n).map(|_| log_record(&mut rng)).collect())
}

/// Integers cycling through every encoded width.
fn integers(n: usize) -> Value {
    let mut rng = Lcg(2);
    Value::Array(
        (0..n)
            .map(|i| {
                let r = rng.next();
                match i % 10 {
                    0 => Value::Uint(r % 128),
                    1 => Value::Uint(128 + r % 128),
                    2 => Value::Uint(256 + r % 65_000),
                    3 => Value::Uint(65_536 + r % (1 << 31)),
                    4 => Value::Uint((1 << 32) + r),
                    5 => Value::Int(-1 - (r % 32) as i64),
                    6 => Value::Int(-33 - (r % 95) as i64),
                    7 => Value::Int(-129 - (r % 32_000) as i64),
                    8 => Value::Int(-32_769 - (r % (1 << 30)) as i64),
                    _ => Value::Int(-(1i64 << 31) - 1 - (r % (1 << 40)) as i64),
                }
            })
            .collect(),
    )
}

fn floats(n: usize) -> Value {
    let mut rng = Lcg(3);
    Value::Array(
        (0..n)
            .map(|_| Value::F64(rng.next() as f64 / 7.0 - 1e12))
            .collect(),
    )
}

/// Records with nested arrays, maps, floats, bools and nil.
fn nested_records(n: usize) -> Value {
    let mut rng = Lcg(4);
    Value::Array(
        (0..n)
            .map(|i| {
                let f = |r: &mut Lcg| Value::F64(r.next() as f64 / 1e9);
                Value::Map(vec![
                    (s("id"), Value::Uint(i as u64)),
                    (s("active"), Value::Bool(i % 3 == 0)),
                    (s("parent"), Value::Nil),
                    (
                        s("scores"),
                        Value::Array((0..5).map(|_| f(&mut rng)).collect()),
                    ),
                    (
                        s("geo"),
                        Value::Map(vec![(s("lat"), f(&mut rng)), (s("lon"), f(&mut rng))]),
                    ),
                    (
                        s("tags"),
                        Value::Array(vec![s("alpha"), s("beta"), Value::Nil, Value::Bool(false)]),
                    ),
                    (
                        s("children"),
                        Value::Array(vec![
                            Value::Map(vec![(s("k"), Value::Int(-(i as i64)))]),
                            Value::Array(vec![]),
                            Value::Map(vec![]),
                        ]),
                    ),
                ])
            })
            .collect(),
    )
}

fn big_binary() -> Value {
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    Value::Map(vec![(s("data"), Value::Bin(data))])
}

/// UTF-8 strings of 0..200 characters mixing 1-, 2-, 3- and 4-byte chars.
fn utf8_strings(n: usize) -> Value {
    let alphabet: Vec<char> = "abcdefghij éüñçø кириллица ひらがな 漢字 🍺❤"
        .chars()
        .collect();
    let mut rng = Lcg(5);
    Value::Array(
        (0..n)
            .map(|_| {
                let len = rng.below(200) as usize;
                let text: String = (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect();
                s(&text)
            })
            .collect(),
    )
}

fn to_rmpv(v: &Value) -> rmpv::Value {
    match v {
        Value::Nil => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Uint(u) => rmpv::Value::from(*u),
        Value::Int(i) => rmpv::Value::from(*i),
        Value::F32(f) => rmpv::Value::F32(*f),
        Value::F64(f) => rmpv::Value::F64(*f),
        Value::Str(b) => rmpv::Value::String(
            String::from_utf8(b.clone())
                .expect("bench strings are UTF-8")
                .into(),
        ),
        Value::Bin(b) => rmpv::Value::Binary(b.clone()),
        Value::Array(a) => rmpv::Value::Array(a.iter().map(to_rmpv).collect()),
        Value::Map(m) => {
            rmpv::Value::Map(m.iter().map(|(k, v)| (to_rmpv(k), to_rmpv(v))).collect())
        }
        Value::Ext(t, d) => rmpv::Value::Ext(*t, d.clone()),
    }
}

fn payloads() -> Vec<(&'static str, Value)> {
    vec![
        ("one_field_map_150b_str", one_field_map()),
        ("log_record_11_fields", log_record(&mut Lcg(1))),
        ("log_records_x1000", log_records(1000)),
        ("integers_x10000", integers(10_000)),
        ("floats_x10000", floats(10_000)),
        ("nested_records_x200", nested_records(200)),
        ("binary_1mib_in_map", big_binary()),
        ("utf8_strings_x2000", utf8_strings(2_000)),
    ]
}

fn codec(c: &mut Criterion) {
    for (name, value) in payloads() {
        let mut bytes = Vec::new();
        encode_value(&value, &mut bytes).unwrap();
        let rv = to_rmpv(&value);
        // Both libraries agree on the bytes and the values, or the
        // comparison would be meaningless.
        let mut theirs = Vec::new();
        rmpv::encode::write_value(&mut theirs, &rv).unwrap();
        assert_eq!(theirs, bytes, "{name}: encodings differ");
        assert_eq!(
            decode_value_exact(&bytes).unwrap(),
            value.clone().normalized()
        );
        assert_eq!(rmpv::decode::read_value(&mut &bytes[..]).unwrap(), rv);

        println!("{name}: {} bytes encoded", bytes.len());
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let mut out = Vec::with_capacity(bytes.len());
        g.bench_function(BenchmarkId::new("encode", "msgpack-rs"), |b| {
            b.iter(|| {
                out.clear();
                encode_value(black_box(&value), &mut out).unwrap();
                black_box(out.len())
            })
        });
        g.bench_function(BenchmarkId::new("encode", "rmpv"), |b| {
            b.iter(|| {
                out.clear();
                rmpv::encode::write_value(&mut out, black_box(&rv)).unwrap();
                black_box(out.len())
            })
        });
        g.bench_function(BenchmarkId::new("decode", "msgpack-rs"), |b| {
            b.iter(|| decode_value_exact(black_box(&bytes)).unwrap())
        });
        g.bench_function(BenchmarkId::new("decode", "rmpv"), |b| {
            b.iter(|| rmpv::decode::read_value(&mut black_box(&bytes[..])).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
