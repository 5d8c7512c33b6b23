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

/// Rust's global allocator for the component: wasi-libc's `malloc` (std's `System`) for every
/// request, and a different placement while the snapshot is being made ([`snapshot_layout`]):
///
/// * blocks of 64 KiB or more (packed weights) start on a 64 KiB boundary, from `malloc`;
/// * blocks under 4 KiB come, in the order they are asked for, from one bump arena, and freeing
///   them does nothing (`arena.rs`);
/// * the rest from `malloc` as usual.
///
/// Why: a fresh instance pays a page fault per 64 KiB window of the snapshot's image it reads
/// (the kernel maps the window around the first read: fault-around) and one per 4 KiB page it
/// writes (a copy-on-write copy). With `malloc` placing the init's blocks, the few a request
/// touches (the server's model table, a plan's step list, its activation buffers and the vector
/// that holds them) were scattered over freed holes of the heap: an MLP request wrote three
/// heap pages of the image and read two more windows for them, and which windows its weights
/// crossed moved with unrelated changes (worker/README.md, "Layout moves faults too"). In
/// allocation order, what one `Plan::new` allocates lies together, as the code builds it: one
/// window read and one page written (bench/serverless/faults.sh, worker/README.md, session 19).
///
/// What it costs: the init's small blocks are never reused (what the init frees stays in the
/// image as garbage: read by no request); the arena's unused tail is zeroes.
///
/// Same heap as before (one `malloc`/`free`, as [`seal`]'s note requires): the arena is one
/// `malloc` block. A request that frees or grows a block of the arena (e.g. a scratch vector the
/// warm-up sized) leaves it there and gets a `malloc` block: a leak of at most the arena, once.
pub struct SnapshotAlloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

use crate::arena::Arena;

/// Window of the kernel's fault-around for file-backed pages (`fault_around_bytes`, 64 KiB by
/// default on Linux), also wasm's page size.
const WINDOW: usize = 65536;
/// Blocks under this size come from the arena during the init: the plans' step lists, shapes,
/// activation buffers and the vectors holding them, a model's small weight tensors. Larger ones
/// (weights, the transient tensors of reading a model, scratch) stay with `malloc`, so what
/// the init frees of them is reused and out of the image.
const SMALL: usize = 4096;
/// The arena: the default models' small blocks take 472 KiB (2026-12-01, the segments of
/// the snapshot's data); past it the init falls back to `malloc` (a `--models` build with many
/// models), which is correct, only less compact. Its unused tail is zero pages in the image.
const ARENA: usize = 768 << 10;

/// The allocator's state: wasm32-wasip2 components run one thread, and no allocation
/// re-enters the allocator.
struct State {
    on: bool,
    made: bool,
    arena: Arena,
}
struct Global(UnsafeCell<State>);
// SAFETY: the component is single-threaded (wasm32-wasip2 without threads).
unsafe impl Sync for Global {}
static STATE: Global = Global(UnsafeCell::new(State { on: false, made: false, arena: Arena::empty() }));

fn state() -> &'static mut State {
    // SAFETY: single-threaded, and no caller holds the reference across another call here.
    unsafe { &mut *STATE.0.get() }
}

/// Turns the snapshot's placement on (first thing of the init) or off (before `seal`).
pub fn snapshot_layout(on: bool) {
    let st = state();
    if on && !st.made {
        st.made = true;
        // SAFETY: a valid non-zero layout. The block is never freed: it becomes the arena. A
        // null result leaves the arena empty (every block from `malloc`).
        let p = unsafe { std::alloc::System.alloc_zeroed(Layout::from_size_align(ARENA, WINDOW).unwrap()) } as usize;
        if p != 0 {
            st.arena = Arena::new(p, ARENA);
        }
    }
    st.on = on;
}

/// Where a block goes: during the init, large blocks 64 KiB-aligned from `malloc` and small
/// ones from the arena (zero already: it was allocated zeroed and nothing is reused); else, and
/// when the arena is full, plain `malloc`.
///
/// # Safety
/// As `GlobalAlloc::alloc`: `layout` has a non-zero size.
unsafe fn place(layout: Layout, zeroed: bool) -> *mut u8 {
    let sys = |l: Layout| unsafe { if zeroed { std::alloc::System.alloc_zeroed(l) } else { std::alloc::System.alloc(l) } };
    let st = state();
    if st.on {
        if layout.size() >= WINDOW {
            return sys(layout.align_to(WINDOW).unwrap_or(layout));
        }
        if layout.size() < SMALL {
            if let Some(p) = st.arena.alloc(layout.size(), layout.align()) {
                return p as *mut u8;
            }
        }
    }
    sys(layout)
}

// SAFETY: blocks come from `System` (with an alignment at least the one asked for; wasi-libc's
// `free`/`realloc` take any block whatever layout is passed with it) or from the arena, whose
// blocks are in bounds, aligned, handed out once, zero when handed out (the arena was allocated
// zeroed and nothing is reused) and never given to `free`.
unsafe impl GlobalAlloc for SnapshotAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { place(layout, false) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { place(layout, true) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !state().arena.contains(ptr as usize) {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let st = state();
        let in_arena = st.arena.contains(ptr as usize);
        if !st.on && !in_arena {
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // A vector being filled during the init grows where it is while it is the arena's last block.
        if in_arena && st.on && new_size < SMALL && st.arena.resize_last(ptr as usize, layout.size(), new_size) {
            return ptr;
        }
        // SAFETY (of the layout): the caller guarantees `new_size` with `layout.align()` is valid.
        let new = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
