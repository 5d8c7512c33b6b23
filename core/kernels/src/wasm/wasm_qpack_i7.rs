//! `wasm_qpack_i7`: one run of activation words into the `Dot7` A panel (`qgemm.rs`), 16 bytes
//! per step: each word `a ^ 0x80808080` (the i8 operand `a − 128` of the 7-bit tile,
//! `wasm_relaxed_qmmm_i7.rs`) and the sum of the run's bytes (for the row constant `−64 · Σ a`).
//!
//! Why a kernel: in wasm the scalar packing (a 4-byte load, an xor and four byte adds per word)
//! took 22 % of the int7 CNN's time in its conv gathers and 8 % of the int7 MLP's in packing A,
//! against 51–59 % for the tile itself (`perf` over wasmtime 48 and over Node 20's TurboFan
//! code, QUANT.md "Speed"). A conv's window row is one contiguous run of `kw · C` codes in HWC,
//! so the gather copies runs (`qgemm.rs`, `dot7_runs`), and a dense layer's row is one run.
//! simd128 only (no relaxed instruction): the same bytes on every engine.

use core::arch::wasm32::*;

/// Writes `words` Dot7 words of the `4 · words` bytes at `src` to `dst` and returns the sum
/// of those bytes (at most `4 · words · 255`, which fits u32 for any `words <= MAX_QK / 4`).
///
/// # Safety
/// `src` readable for `4 · words` bytes, `dst` writable for `words` i32 (any alignment).
#[inline(always)]
pub(crate) unsafe fn wasm_qpack_i7_run(src: *const u8, words: usize, dst: *mut i32) -> u32 {
    let flip = u8x16_splat(0x80);
    let mut acc = i32x4_splat(0);
    let mut g = 0;
    while g + 4 <= words {
        let v = v128_load(src.add(4 * g) as *const v128);
        v128_store(dst.add(g) as *mut v128, v128_xor(v, flip));
        // u8 → u16 pairs → u32 quads: exact, 2 adds per 16 bytes.
        acc = i32x4_add(acc, i32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(v)));
        g += 4;
    }
    let mut sum = (i32x4_extract_lane::<0>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<1>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<2>(acc) as u32)
        .wrapping_add(i32x4_extract_lane::<3>(acc) as u32);
    // The tail (and whole runs of 2 words: the CNN's first conv, C = 1, kw = 5 rounded to 8
    // bytes) in a u64: byte sums by halves, each 16-bit lane at most 2 · 255.
    if g + 2 <= words {
        let q = (src.add(4 * g) as *const u64).read_unaligned();
        (dst.add(g) as *mut u64).write_unaligned(q ^ 0x8080_8080_8080_8080);
        let t = (q & 0x00ff_00ff_00ff_00ff) + ((q >> 8) & 0x00ff_00ff_00ff_00ff);
        sum = sum.wrapping_add((t.wrapping_mul(0x0001_0001_0001_0001) >> 48) as u32);
        g += 2;
    }
    if g < words {
        let q = (src.add(4 * g) as *const u32).read_unaligned();
        dst.add(g).write_unaligned((q ^ 0x8080_8080) as i32);
        let t = (q & 0x00ff_00ff) + ((q >> 8) & 0x00ff_00ff);
        sum = sum.wrapping_add(t.wrapping_mul(0x0001_0001) >> 16);
    }
    sum
}
