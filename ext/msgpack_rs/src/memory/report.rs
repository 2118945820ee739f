//! The `MessagePack::CompactReport` a `compact!` returns, and the process
//! figures it quotes.
use crate::runtime::ruby;
use magnus::{prelude::*, Error, RModule, Value};
use std::time::Instant;

/// A `MessagePack::CompactReport`.
pub fn report(
    before: usize,
    after: usize,
    visited: usize,
    started: Instant,
    rss: Option<(usize, usize)>,
) -> Result<Value, Error> {
    let ruby = ruby();
    let class: Value = ruby
        .class_object()
        .const_get::<_, RModule>("MessagePack")?
        .const_get("CompactReport")?;
    let elapsed = started.elapsed().as_secs_f64();
    let nil = ruby.qnil().as_value();
    let (rb, ra) = match rss {
        Some((b, a)) => (ruby.into_value(b), ruby.into_value(a)),
        None => (nil, nil),
    };
    class.funcall("new", (before, after, visited, elapsed, rb, ra))
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}
