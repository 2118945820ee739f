//! Encode/decode throughput of the pure-Rust core against rmpv and
//! rmp-serde, on the eight payload shapes of the Ruby benches
//! (`benches/support/payloads.rs`, after `bench/support/payloads.rb`).
//!
//! Every iteration handles one whole message. Per shape (a criterion group):
//!
//! * `encode/msgpack-rs`: `encode_value` of a `Value` into a reused `Vec`;
//! * `encode/rmpv`: `rmpv::encode::write_value`, same bytes;
//! * `decode/arena`: `arena::decode_in` into a reused `Bump` (reset each time);
//! * `decode/arena+utf8`: the same, then every str checked as UTF-8 (what
//!   rmpv and serde do while decoding; the arena decoder leaves it to the
//!   caller, e.g. `ValueRef::as_str`);
//! * `decode/value`: `decode_value_exact` into an owned `Value` tree;
//! * `decode/rmpv-read_value`: `rmpv::decode::read_value` (owned);
//! * `decode/rmpv-read_value_ref`: `rmpv::decode::read_value_ref` (borrowed);
//! * `decode/rmp_serde-json`: `rmp_serde::from_slice::<serde_json::Value>`
//!   (not for `bin_1mib`: `serde_json::Value` has no bytes);
//! * `decode/rmp_serde-typed`: `rmp_serde::from_slice` into structs that
//!   borrow their strings, where the shape has a natural Rust type.
//!
//! A last group, `stream_log_records_1000`, decodes a stream of 1,000
//! separate log-record messages: `ArenaStream` fed the whole buffer then
//! `next_message` in a loop (`arena-feed`), `ArenaStream::read_message` from
//! an `io::Read` (`arena-read`), `rmpv::decode::read_value_ref` in a loop
//! over the slice, and `StreamDecoder` building `Value`s.
//!
//! `cargo bench -p msgpack-rs-core` (add `-- --warm-up-time 0.5
//! --measurement-time 1` for a quick pass, or a shape name to filter), then
//! `python3 core/benches/table.py` for the README's table.
mod support;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use msgpack_rs_core::arena::{decode_in, ArenaStream, ValueRef};
use msgpack_rs_core::bumpalo::Bump;
use msgpack_rs_core::{
    decode_value_exact, encode_value, Limits, Step, StreamDecoder, Value, ValueBuilder,
};
use serde::Deserialize;
use support::payloads;
use support::typed;

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

/// Checks every str of `v` as UTF-8; returns how many there are.
fn check_utf8(v: &ValueRef<'_>) -> usize {
    match *v {
        ValueRef::Str(s) => std::str::from_utf8(s).map(|_| 1).expect("UTF-8"),
        ValueRef::Array(items) => items.iter().map(check_utf8).sum(),
        ValueRef::Map(entries) => entries
            .iter()
            .map(|(k, v)| check_utf8(k) + check_utf8(v))
            .sum(),
        _ => 0,
    }
}

/// Decodes `bytes` into the shape's typed form and returns something
/// derived from it, so the work can't be optimised away.
type Typed = fn(&[u8]) -> usize;

fn typed_decoder(name: &str) -> Option<Typed> {
    fn via<'a, T: Deserialize<'a>>(bytes: &'a [u8], f: impl Fn(&T) -> usize) -> usize {
        f(&rmp_serde::from_slice::<T>(bytes).expect("typed decode"))
    }
    Some(match name {
        "map1_str150" => |b| via(b, |m: &typed::Map1| m.message.len()),
        "log_record" => |b| via(b, |r: &typed::LogRecord| r.path.len()),
        "records_1000" => |b| via(b, |r: &Vec<typed::LogRecord>| r.len()),
        "ints_10000" => |b| via(b, |r: &Vec<typed::AnyInt>| r.len()),
        "floats_10000" => |b| via(b, |r: &Vec<f64>| r.len()),
        "nested_200" => |b| via(b, |r: &Vec<typed::Nested>| r.len()),
        "bin_1mib" => |b| via(b, |r: &typed::Blob| r.data.len()),
        "utf8_strings_2000" => |b| via(b, |r: &Vec<&str>| r.len()),
        _ => return None,
    })
}

fn codec(c: &mut Criterion) {
    for (name, value) in payloads::shapes() {
        let mut bytes = Vec::new();
        encode_value(&value, &mut bytes).unwrap();
        let rv = to_rmpv(&value);
        // The libraries agree on the bytes and the values, or the
        // comparison would be meaningless.
        let mut theirs = Vec::new();
        rmpv::encode::write_value(&mut theirs, &rv).unwrap();
        assert_eq!(theirs, bytes, "{name}: encodings differ");
        assert_eq!(decode_value_exact(&bytes).unwrap(), value);
        assert_eq!(rmpv::decode::read_value(&mut &bytes[..]).unwrap(), rv);
        assert_eq!(
            rmpv::decode::read_value_ref(&mut &bytes[..])
                .unwrap()
                .to_owned(),
            rv
        );
        let mut bump = Bump::new();
        let arena_value = decode_in(&bump, &bytes).unwrap();
        assert_eq!(arena_value.to_value(), value);
        assert_eq!(arena_value.to_vec().unwrap(), bytes, "{name}: round trip");
        let json = (name != "bin_1mib").then(|| {
            rmp_serde::from_slice::<serde_json::Value>(&bytes).expect("rmp_serde into JSON")
        });
        let typed = typed_decoder(name);
        if let Some(decode) = typed {
            assert!(decode(&bytes) > 0);
        }

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
        g.bench_function(BenchmarkId::new("decode", "arena"), |b| {
            b.iter(|| {
                bump.reset();
                let v = decode_in(&bump, black_box(&bytes)).unwrap();
                black_box(v.len())
            })
        });
        g.bench_function(BenchmarkId::new("decode", "arena+utf8"), |b| {
            b.iter(|| {
                bump.reset();
                let v = decode_in(&bump, black_box(&bytes)).unwrap();
                black_box(check_utf8(&v))
            })
        });
        g.bench_function(BenchmarkId::new("decode", "value"), |b| {
            b.iter(|| decode_value_exact(black_box(&bytes)).unwrap())
        });
        g.bench_function(BenchmarkId::new("decode", "rmpv-read_value"), |b| {
            b.iter(|| rmpv::decode::read_value(&mut black_box(&bytes[..])).unwrap())
        });
        g.bench_function(BenchmarkId::new("decode", "rmpv-read_value_ref"), |b| {
            b.iter(|| rmpv::decode::read_value_ref(&mut black_box(&bytes[..])).unwrap())
        });
        if json.is_some() {
            g.bench_function(BenchmarkId::new("decode", "rmp_serde-json"), |b| {
                b.iter(|| rmp_serde::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
            });
        }
        if let Some(decode) = typed {
            g.bench_function(BenchmarkId::new("decode", "rmp_serde-typed"), |b| {
                b.iter(|| decode(black_box(&bytes)))
            });
        }
        g.finish();
    }
}

/// A stream of 1,000 log records, each its own message.
fn stream(c: &mut Criterion) {
    let mut data = Vec::new();
    for i in 0..1_000 {
        encode_value(&payloads::log_record(i), &mut data).unwrap();
    }
    let count = 1_000;
    let mut g = c.benchmark_group("stream_log_records_1000");
    g.throughput(Throughput::Bytes(data.len() as u64));
    let mut stream = ArenaStream::new();
    g.bench_function(BenchmarkId::new("decode", "arena-feed"), |b| {
        b.iter(|| {
            stream.reset();
            stream.feed(black_box(&data));
            let mut n = 0;
            while let Some(msg) = stream.next_message().unwrap() {
                n += msg.value.len().unwrap_or(0);
            }
            assert_eq!(n, 11 * count);
        })
    });
    g.bench_function(BenchmarkId::new("decode", "arena-read"), |b| {
        b.iter(|| {
            let mut reader = black_box(&data[..]);
            let mut n = 0;
            while let Some(msg) = stream.read_message(&mut reader).unwrap() {
                n += msg.value.len().unwrap_or(0);
            }
            assert_eq!(n, 11 * count);
        })
    });
    g.bench_function(BenchmarkId::new("decode", "rmpv-read_value_ref"), |b| {
        b.iter(|| {
            let mut rest = black_box(&data[..]);
            let mut n = 0;
            while !rest.is_empty() {
                let v = rmpv::decode::read_value_ref(&mut rest).unwrap();
                if let rmpv::ValueRef::Map(m) = v {
                    n += m.len();
                }
            }
            assert_eq!(n, 11 * count);
        })
    });
    let mut decoder = StreamDecoder::<ValueBuilder>::new(Limits::default());
    g.bench_function(BenchmarkId::new("decode", "value-stream"), |b| {
        b.iter(|| {
            let mut pos = 0;
            let mut n = 0;
            while let Step::Done(Value::Map(m)) = decoder
                .decode(&mut ValueBuilder, black_box(&data), &mut pos)
                .unwrap()
            {
                n += m.len();
            }
            assert_eq!(n, 11 * count);
        })
    });
    g.finish();
}

criterion_group!(benches, codec, stream);
criterion_main!(benches);
