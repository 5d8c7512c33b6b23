//! Sealing the snapshot's heap: the last step of `wizer-initialize` takes every free block of
//! wasi-libc's `malloc` heap for good, so that the requests of every fresh instance allocate
//! from pages grown past the end of the snapshot's memory image.
//!
//! Why: `wasmtime serve` maps the snapshot's memory copy-on-write into every fresh instance. A
//! request that allocates from free blocks of the snapshot's heap writes into image pages: each
//! first write there is a copy-on-write fault, and when a read fault nearby had already mapped
//! the page read-only (the kernel maps up to 16 neighbours of a faulting file page), the write
//! also costs a TLB shootdown, an inter-processor interrupt to every core the server runs on.
//! That was most of what a trivial route cost beyond the hello component (`bench/README.md`,
//! "Serverless"). Pages grown past the image are anonymous memory: a first write zero-fills the
//! page, with no copy and no shootdown.
//!
//! Why not a second allocator for after the snapshot: wasi-libc's own bindings free, with its
//! `free`, lists that the canonical ABI allocated through the component's `cabi_realloc`, which
//! is Rust's global allocator, so the two must stay one heap (a trial with a separate dlmalloc
//! trapped in `getenv`).
//!
//! What it costs: the free space of the snapshot's heap (what the warm-up left free) is never
//! reused, by any instance; it stays in the image as before. Requests free and reuse their own
//! blocks as usual, so memory stays bounded when a host reuses an instance.
//!
//! Without the snapshot (`mdeploy-worker.wasm`) nothing calls [`seal`].

extern "C" {
    // wasi-libc's allocator, the one behind Rust's `System` allocator on wasm32-wasip2.
    fn malloc(size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
}

/// Allocates (and leaks) every block of the heap that lies inside the current linear memory, from
/// 1 MiB requests down to 1 byte, until `malloc` would have to grow memory for the next one.
/// Returns the bytes taken. Called again (the init export stays in the snapshot), it finds
/// nearly nothing free and takes that.
pub fn seal() -> usize {
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let mut taken = 0;
    for shift in (0..=20).rev() {
        let size = 1usize << shift;
        loop {
            // SAFETY: plain libc calls; the blocks kept are never touched again.
            let p = unsafe { malloc(size) };
            if p.is_null() {
                break;
            }
            if p as usize + size > end {
                // Served (at least partly) past the image: give it back to the top of the heap,
                // which is where requests will allocate.
                unsafe { free(p) };
                break;
            }
            taken += size;
        }
    }
    clear_past_top(end);
    taken
}

/// Zeroes the free space of the heap's top chunk past `end` (what `seal` left of memory that
/// `malloc` grew while being probed), keeping only the chunk's own header.
///
/// Why: probing for the blocks that cross `end` grew the memory, and `malloc` left headers of
/// those blocks (and the trailing marker it keeps after its top chunk) in the grown pages. Wizer
/// writes every non-zero byte into the memory image, so those few bytes, the last one a few
/// dozen bytes before the end of memory, stretched the image over the whole top chunk: the
/// requests' allocations, which come from that chunk, were then copy-on-write copies of image
/// pages (`bench/serverless/faults.sh`: every allocation fault in the image) instead of fresh
/// anonymous pages. With them zeroed the image ends at the top chunk's header.
///
/// Safe for `malloc`: the inside of the top chunk is free space it never reads; it reads the
/// chunk's header (kept) and rewrites the trailing marker whenever it grows the chunk.
fn clear_past_top(end: usize) {
    let mem_end = core::arch::wasm32::memory_size(0) * 65536;
    // The top chunk starts where a 1-byte block would be carved from it: at or just before `end`
    // (seal took every block below). Its header is in the 8 bytes before the block.
    // SAFETY: plain libc calls; the zeroed range is free space of the top chunk, past the block
    // just freed, inside the linear memory.
    unsafe {
        let p = malloc(1);
        if p.is_null() {
            return;
        }
        free(p);
        let from = (p as usize + 64).max(end);
        if from < mem_end {
            core::ptr::write_bytes(from as *mut u8, 0, mem_end - from);
        }
    }
}
