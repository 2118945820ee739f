//! Hashes: small ones copied out with one C call, others walked through
//! `rb_hash_foreach`.
use super::*;

impl Walker<'_> {
    pub fn write_hash(&mut self, h: RHash, depth: usize) -> Result<(), Error> {
        if depth >= DEEP_FROM {
            return self.write_deep(h.as_raw(), depth);
        }
        if depth >= self.max_depth {
            return Err(errors::stack_too_deep());
        }
        check_depth(depth)?;
        let len = len32(h.len())?;
        self.out.reserve(2 * len as usize + 5);
        encode::write_map_header(&mut self.out, len);
        if len as usize <= SMALL_HASH && depth < SMALL_HASH_MAX_DEPTH {
            if let Some(foreach) = raw::hash_stlike_foreach() {
                return self.write_small_hash(h, len as usize, depth, foreach);
            }
        }
        let mut ctx = HashCtx {
            walker: self,
            depth: depth + 1,
            err: None,
        };
        // SAFETY: `each_pair` only runs our callback, which never raises
        // (errors are stored in `ctx` and iteration stops).
        unsafe {
            rb_sys::rb_hash_foreach(
                h.as_raw(),
                Some(each_pair),
                &mut ctx as *mut HashCtx as VALUE,
            );
        }
        match ctx.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The entries of a small Hash, copied out first (no Ruby code runs
    /// while the table is walked), then written. The copies live in a
    /// local array on the machine stack, where the GC finds (and pins)
    /// them, so a `to_msgpack` that deletes entries cannot free an object
    /// still to be written.
    pub(super) fn write_small_hash(
        &mut self,
        h: RHash,
        len: usize,
        depth: usize,
        foreach: raw::StlikeForeachFn,
    ) -> Result<(), Error> {
        let mut pairs = SmallPairs {
            kv: [raw::NIL; 2 * SMALL_HASH],
            n: 0,
        };
        // SAFETY: `collect_pair` only copies into `pairs` (no Ruby code, no
        // allocation) and stops when it is full.
        unsafe {
            foreach(
                h.as_raw(),
                Some(collect_pair),
                &mut pairs as *mut SmallPairs as usize,
            )
        };
        let n = pairs.n.min(len);
        for i in 0..n {
            let (k, v) = (pairs.kv[2 * i], pairs.kv[2 * i + 1]);
            // SAFETY: entries of a live Hash, kept alive by `pairs`.
            let (k, v) = unsafe { (Value::from_raw(k), Value::from_raw(v)) };
            self.write_value(k, depth + 1)?;
            self.write_value(v, depth + 1)?;
        }
        // Fewer entries than the header said (cannot happen: nothing ran
        // in between): keep the output well-formed.
        for _ in n..len {
            encode::write_nil(&mut self.out);
            encode::write_nil(&mut self.out);
        }
        std::hint::black_box(&pairs);
        Ok(())
    }
}

/// Hashes up to this many entries are packed through [`SmallPairs`].
const SMALL_HASH: usize = 16;
/// ...at nesting depths below this (bounding the extra stack per level).
const SMALL_HASH_MAX_DEPTH: usize = 256;

struct SmallPairs {
    kv: [VALUE; 2 * SMALL_HASH],
    n: usize,
}

extern "C" fn collect_pair(k: usize, v: usize, arg: usize) -> c_int {
    // SAFETY: `arg` is the `SmallPairs` of `write_small_hash`, alive for
    // the whole iteration.
    let pairs = unsafe { &mut *(arg as *mut SmallPairs) };
    if pairs.n >= SMALL_HASH {
        return ST_STOP;
    }
    pairs.kv[2 * pairs.n] = k as VALUE;
    pairs.kv[2 * pairs.n + 1] = v as VALUE;
    pairs.n += 1;
    ST_CONTINUE
}

struct HashCtx<'w, 'a> {
    walker: &'w mut Walker<'a>,
    depth: usize,
    err: Option<Error>,
}

extern "C" fn each_pair(k: VALUE, v: VALUE, arg: VALUE) -> c_int {
    // SAFETY: `arg` is the `HashCtx` passed by `write_hash`, alive for the
    // whole iteration.
    let ctx = unsafe { &mut *(arg as *mut HashCtx) };
    // SAFETY: key and value are live objects of the Hash.
    let (k, v) = unsafe { (Value::from_raw(k), Value::from_raw(v)) };
    let r = ctx
        .walker
        .write_value(k, ctx.depth)
        .and_then(|()| ctx.walker.write_value(v, ctx.depth));
    match r {
        Ok(()) => ST_CONTINUE,
        Err(e) => {
            ctx.err = Some(e);
            ST_STOP
        }
    }
}
