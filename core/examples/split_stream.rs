//! Splits a stream of MessagePack messages: prints the offset, length and
//! kind of each, and with `--out DIR` also writes each one to its own file
//! (`DIR/000000.msgpack`, `DIR/000001.msgpack`, ...).
//!
//! ```sh
//! cargo run -q -p msgpack-rs-core --example split_stream -- [--out DIR] [FILE]
//! ```
//!
//! Reads FILE, or stdin without one. An invalid message is reported (with
//! its offset) and skipped, and the split goes on with the next one; the exit
//! status is then 1. The stream is read in 64 KiB pieces with
//! `ArenaStream::fill_from` and each message is decoded once, in place.
use msgpack_rs_core::{ArenaStream, DecodeError, ValueRef};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut out_dir = None;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => match args.next() {
                Some(dir) => out_dir = Some(PathBuf::from(dir)),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return usage(),
        }
    }
    let reader: Box<dyn Read> = match &file {
        Some(path) => match File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("split_stream: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(io::stdin().lock()),
    };
    match split(reader, out_dir) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("split_stream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: split_stream [--out DIR] [FILE]");
    ExitCode::FAILURE
}

/// Splits the stream; returns the number of invalid messages.
fn split(mut reader: impl Read, out_dir: Option<PathBuf>) -> io::Result<usize> {
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir)?;
    }
    let stdout = io::stdout();
    let mut report = stdout.lock();
    writeln!(report, "{:>12} {:>10}  kind", "offset", "length")?;
    let mut stream = ArenaStream::new();
    let (mut count, mut errors, mut total) = (0usize, 0usize, 0u64);
    loop {
        match stream.next_message() {
            Ok(Some(msg)) => {
                writeln!(
                    report,
                    "{:>12} {:>10}  {}",
                    msg.offset,
                    msg.bytes.len(),
                    kind(&msg.value)
                )?;
                if let Some(dir) = &out_dir {
                    let path = dir.join(format!("{count:06}.msgpack"));
                    File::create(path)?.write_all(msg.bytes)?;
                }
                count += 1;
                total += msg.bytes.len() as u64;
            }
            Ok(None) => {
                if stream.fill_from(&mut reader)? == 0 {
                    break;
                }
            }
            Err(e) => {
                errors += 1;
                eprintln!("invalid message near offset {}: {e}", stream.offset());
            }
        }
    }
    if !stream.is_at_boundary() {
        errors += 1;
        eprintln!(
            "the stream ends inside a message at offset {} ({})",
            stream.offset(),
            DecodeError::UnexpectedEof
        );
    }
    writeln!(report, "{count} messages, {total} bytes")?;
    Ok(errors)
}

/// A short description of a message's top-level object.
fn kind(v: &ValueRef<'_>) -> String {
    match *v {
        ValueRef::Nil => "nil".into(),
        ValueRef::Bool(b) => format!("bool {b}"),
        ValueRef::Uint(u) => format!("int {u}"),
        ValueRef::Int(i) => format!("int {i}"),
        ValueRef::F32(f) => format!("float32 {f}"),
        ValueRef::F64(f) => format!("float64 {f}"),
        ValueRef::Str(s) => format!("str, {} bytes", s.len()),
        ValueRef::Bin(b) => format!("bin, {} bytes", b.len()),
        ValueRef::Array(a) => format!("array of {}", a.len()),
        ValueRef::Map(m) => {
            let keys: Vec<&str> = m.iter().take(4).filter_map(|(k, _)| k.as_str()).collect();
            let more = if m.len() > 4 { ", ..." } else { "" };
            format!("map of {} ({}{more})", m.len(), keys.join(", "))
        }
        ValueRef::Ext(ty, data) => match v.as_timestamp() {
            Some(ts) => format!("timestamp {}.{:09}", ts.sec, ts.nsec),
            None => format!("ext {ty}, {} bytes", data.len()),
        },
    }
}
