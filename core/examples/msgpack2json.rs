//! Converts a stream of MessagePack messages on stdin to JSON on stdout, one
//! document per line.
//!
//! ```sh
//! printf '\x82\xa2id\x07\xa4tags\x92\xa1a\xc0' | cargo run -q -p msgpack-rs-core --example msgpack2json
//! {"id":7,"tags":["a",null]}
//! ```
//!
//! Messages are decoded with `ArenaStream::read_message` into a reused arena
//! (strings borrow from the read buffer), then written straight out.
//! What JSON has no type for: a bin becomes `{"$bin":"<base64>"}`, an ext
//! `{"$ext":[type,"<base64>"]}`, a timestamp `{"$timestamp":[sec,nsec]}`; a
//! str that is not UTF-8 is converted lossily; a non-finite float is `null`;
//! a map key that is not a str is written as the JSON text of the key.
use msgpack_rs_core::{ArenaStream, Limits, ValueRef};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgpack2json: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut stream = ArenaStream::with_limits(Limits::default());
    let mut line = String::new();
    while let Some(msg) = stream.read_message(&mut input)? {
        line.clear();
        write_json(&mut line, &msg.value);
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

fn write_json(out: &mut String, v: &ValueRef<'_>) {
    use std::fmt::Write as _;
    match *v {
        ValueRef::Nil => out.push_str("null"),
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Uint(u) => write!(out, "{u}").unwrap(),
        ValueRef::Int(i) => write!(out, "{i}").unwrap(),
        ValueRef::F32(f) => write_float(out, f as f64),
        ValueRef::F64(f) => write_float(out, f),
        ValueRef::Str(s) => write_str(out, &String::from_utf8_lossy(s)),
        ValueRef::Bin(b) => {
            out.push_str("{\"$bin\":\"");
            base64(out, b);
            out.push_str("\"}");
        }
        ValueRef::Ext(_, _) if v.as_timestamp().is_some() => {
            let ts = v.as_timestamp().unwrap();
            write!(out, "{{\"$timestamp\":[{},{}]}}", ts.sec, ts.nsec).unwrap();
        }
        ValueRef::Ext(ty, data) => {
            write!(out, "{{\"$ext\":[{ty},\"").unwrap();
            base64(out, data);
            out.push_str("\"]}");
        }
        ValueRef::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        ValueRef::Map(entries) => {
            out.push('{');
            let mut key = String::new();
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match *k {
                    ValueRef::Str(s) => write_str(out, &String::from_utf8_lossy(s)),
                    _ => {
                        key.clear();
                        write_json(&mut key, k);
                        write_str(out, &key);
                    }
                }
                out.push(':');
                write_json(out, val);
            }
            out.push('}');
        }
    }
}

fn write_float(out: &mut String, f: f64) {
    use std::fmt::Write as _;
    if f.is_finite() {
        // Debug gives the shortest text that reads back as the same float,
        // with an exponent for very large and very small magnitudes.
        write!(out, "{f:?}").unwrap();
    } else {
        out.push_str("null");
    }
}

fn write_str(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn base64(out: &mut String, data: &[u8]) {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}
