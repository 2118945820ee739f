//! The walk of very deep Arrays and Hashes: nested containers on a heap
//! stack instead of the machine stack.
use super::*;

/// A container being walked by [`Walker::write_deep`]. Its elements are read
/// from `held`, a Ruby Array on the machine stack (so the GC sees, and pins,
/// everything in it): an Array is held itself; a Hash's pairs are copied in.
enum DeepFrame {
    Array { ary: VALUE, next: usize, len: usize },
    Pairs { next: usize, end: usize },
}

impl Walker<'_> {
    /// Writes `root` (an Array or Hash at `depth`) and everything in it,
    /// keeping nested Arrays and Hashes on a heap stack instead of the
    /// machine stack. Other objects (strings, ext types, `to_msgpack`) go
    /// through the ordinary walk.
    #[inline(never)]
    pub(super) fn write_deep(&mut self, root: VALUE, depth: usize) -> Result<(), Error> {
        let held = raw::ary_new_capa(16);
        let mut frames: Vec<(DeepFrame, usize)> = Vec::new();
        self.open_deep(root, depth, held, &mut frames)?;
        while let Some((frame, mark)) = frames.last_mut() {
            let v = match frame {
                DeepFrame::Array { ary, next, len } => {
                    if *next >= *len {
                        let mark = *mark;
                        frames.pop();
                        // SAFETY: an Array this code owns, alive on the stack.
                        unsafe { raw::ary_truncate(held, mark) };
                        continue;
                    }
                    // Re-read: callbacks may have changed the Array (an
                    // element removed meanwhile is written as nil, keeping
                    // the output well-formed).
                    // SAFETY: an Array this code owns or holds, alive on the stack.
                    let v = if *next < unsafe { raw::ary_len(*ary) } {
                        // SAFETY: an Array this code owns or holds, alive on the stack.
                        unsafe { raw::ary_entry(*ary, *next) }
                    } else {
                        raw::NIL
                    };
                    *next += 1;
                    v
                }
                DeepFrame::Pairs { next, end, .. } => {
                    if *next >= *end {
                        let mark = *mark;
                        frames.pop();
                        // SAFETY: an Array this code owns, alive on the stack.
                        unsafe { raw::ary_truncate(held, mark) };
                        continue;
                    }
                    // SAFETY: an Array this code owns or holds, alive on the stack.
                    let v = unsafe { raw::ary_entry(held, *next) };
                    *next += 1;
                    v
                }
            };
            if self.write_simple(v) {
                continue;
            }
            let d = depth + frames.len();
            if self.is_walkable_container(v) {
                self.open_deep(v, d, held, &mut frames)?;
            } else {
                // SAFETY: a live object held by `held` or its container.
                self.write_general(unsafe { Value::from_raw(v) }, d)?;
            }
        }
        std::hint::black_box(held);
        Ok(())
    }

    /// An Array or Hash with no ext type registered for it (what the
    /// ordinary walk would write as a plain container).
    pub(super) fn is_walkable_container(&self, v: VALUE) -> bool {
        if rb_sys::SPECIAL_CONST_P(v) {
            return false;
        }
        // SAFETY: `v` is a live heap object.
        let (t, klass) = (unsafe { rb_sys::RB_BUILTIN_TYPE(v) }, unsafe {
            raw::class_of(v)
        });
        let core = match t {
            RUBY_T_ARRAY => array_class(),
            RUBY_T_HASH => hash_class(),
            _ => return false,
        };
        // SAFETY: a live object.
        klass == core || self.ext.lookup(unsafe { Value::from_raw(v) }).is_none()
    }

    /// Writes the header of the Array or Hash `v` at depth `depth` and
    /// pushes a frame for its elements.
    fn open_deep(
        &mut self,
        v: VALUE,
        depth: usize,
        held: VALUE,
        frames: &mut Vec<(DeepFrame, usize)>,
    ) -> Result<(), Error> {
        if depth >= self.max_depth {
            return Err(errors::stack_too_deep());
        }
        // SAFETY: an Array this code owns or holds, alive on the stack.
        let mark = unsafe { raw::ary_len(held) };
        // SAFETY: `v` is a live Array or Hash (checked by the caller).
        if unsafe { rb_sys::RB_BUILTIN_TYPE(v) } == RUBY_T_ARRAY {
            // SAFETY: an Array this code owns or holds, alive on the stack.
            let len = len32(unsafe { raw::ary_len(v) })?;
            encode::write_array_header(&mut self.out, len);
            // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
            unsafe { raw::ary_push(held, v) };
            frames.push((
                DeepFrame::Array {
                    ary: v,
                    next: 0,
                    len: len as usize,
                },
                mark,
            ));
        } else {
            // SAFETY: a live Hash.
            let len = len32(unsafe { rb_sys::RHASH_SIZE(v) } as usize)?;
            encode::write_map_header(&mut self.out, len);
            // SAFETY: `push_pair` only appends to `held` (an allocation,
            // never Ruby code, never a change to the Hash).
            unsafe { rb_sys::rb_hash_foreach(v, Some(push_pair), held) };
            // Exactly `len` pairs: the header is written already.
            let end = mark + 2 * len as usize;
            // SAFETY: an Array this code owns or holds, alive on the stack.
            while unsafe { raw::ary_len(held) } < end {
                // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
                unsafe { raw::ary_push(held, raw::NIL) };
            }
            // SAFETY: an Array this code owns, alive on the stack.
            unsafe { raw::ary_truncate(held, end) };
            frames.push((DeepFrame::Pairs { next: mark, end }, mark));
        }
        Ok(())
    }
}

extern "C" fn push_pair(k: VALUE, v: VALUE, held: VALUE) -> c_int {
    // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
    unsafe { raw::ary_push(held, k) };
    // SAFETY: an Array this code owns (unfrozen), alive on the stack; the element is live.
    unsafe { raw::ary_push(held, v) };
    ST_CONTINUE
}
