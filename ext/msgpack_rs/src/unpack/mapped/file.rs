//! The mapped file: mapping it, its pages (dropping consumed ones, counting
//! resident ones), and what a path that cannot be mapped is.
use super::*;

pub(super) fn page_floor(n: usize) -> usize {
    let page = memory::page_size();
    n / page * page
}

/// `madvise(MADV_DONTNEED)` on the whole pages in `[from, to)`.
pub(super) fn drop_pages(map: &Mmap, from: usize, to: usize) {
    let (start, end) = (page_floor(from), page_floor(to.min(map.len())));
    if end > start {
        // SAFETY: the mapping is a read-only (PROT_READ, MAP_SHARED) file
        // mapping: dropping its pages only discards our page-table entries,
        // and the next access faults the same file bytes back in. No Rust
        // code can observe a difference. The range lies inside the mapping
        // and `start` is page-aligned (the mapping starts on a page).
        let _ =
            // SAFETY: as explained above: DONTNEED on a read-only file mapping only drops page-table entries.
            unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    }
}

/// Bytes of the mapping resident in this process: pages present in our
/// page tables, from /proc/self/pagemap (bit 63 of each entry; readable
/// without privileges). mincore would report the page cache instead, which
/// MADV_DONTNEED does not change.
pub(super) fn resident_bytes(map: &Mmap) -> usize {
    use std::os::unix::fs::FileExt;
    let page = memory::page_size();
    let len = map.len();
    if len == 0 {
        return 0;
    }
    let first = map.as_ptr() as usize / page;
    let pages = len.div_ceil(page);
    let Ok(pagemap) = File::open("/proc/self/pagemap") else {
        return 0;
    };
    let mut buf = vec![0u8; pages.min(64 * 1024) * 8];
    let mut resident = 0;
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(buf.len() / 8);
        let Some(chunk) = buf.get_mut(..n * 8) else {
            return 0;
        };
        if pagemap
            .read_exact_at(chunk, ((first + done) * 8) as u64)
            .is_err()
        {
            return 0;
        }
        resident += chunk.chunks_exact(8).filter(|e| e[7] & 0x80 != 0).count();
        done += n;
    }
    resident * page
}

pub(super) fn describe_type(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

pub(super) fn not_regular(path: &std::path::Path, ft: std::fs::FileType) -> Error {
    errors::not_regular_file(path, describe_type(ft))
}

pub(super) fn map_file(
    file: &File,
    len: u64,
    path: &std::path::Path,
) -> Result<Option<Mmap>, Error> {
    if len == 0 {
        return Ok(None);
    }
    if usize::try_from(len).is_err() {
        return Err(errors::too_large_to_map(path));
    }
    // SAFETY: mapping a regular file read-only. Rust's rules assume the
    // bytes cannot change while borrowed, which another process writing to
    // the file could violate: the decoder then sees inconsistent bytes, but
    // it bounds-checks every length against the slice, so the worst case is
    // a wrong value or a format error. A truncation below the mapped length
    // makes access to the lost pages raise SIGBUS: see the module docs for
    // how sizes are re-checked and what is left to the caller.
    // SAFETY: as explained above: the mapping is read-only and every read is bounds-checked.
    let map = unsafe { Mmap::map(file) }.map_err(|e| io_error(e, path))?;
    let _ = map.advise(Advice::Sequential);
    Ok(Some(map))
}
