//! `wasm_qpack_pair_u8`: one row of activation codes into the `Pair` A panel (`qgemm.rs`), 16
//! bytes per step: the bytes widened to u16 (`u16x8.extend_low/high_u8x16`), which, read as
//! i32, are the layout's words `a[2w] | a[2w + 1] << 16` (little-endian, as wasm memory is).
//!
//! Why a kernel: the scalar loop's code under V8 (TurboFan from LLVM's vectorized wasm) took
//! 8 bytes per step through shuffles and lane inserts, and `qgemm`'s driver around the packing
//! had twice the samples of the `wasm_qmmm_i8_4x16` tile it feeds on the binary-input MLP's
//! int8 256 → 10 layer (`perf record` of the relaxed build under Node; QUANT.md, "On AMD EPYC
//! (Zen 4)"). simd128 only: the same bytes on every engine.

use core::arch::wasm32::*;

/// Writes `src.len() / 2` Pair words of `src` (an even number of bytes) to `dst`.
pub(crate) fn wasm_qpack_pair_u8(src: &[u8], dst: &mut [i32]) {
    let n = src.len() / 2;
    let dst = &mut dst[..n];
    let full = src.len() / 16 * 16;
    let mut p = 0;
    while p < full {
        // SAFETY: bytes p..p + 16 lie in `src` (p + 16 <= full <= len) and words p / 2..p / 2 + 8
        // in `dst` (p / 2 + 8 <= full / 2 <= n); unaligned v128 loads and stores are allowed.
        unsafe {
            let v = v128_load(src.as_ptr().add(p) as *const v128);
            let d = dst.as_mut_ptr().add(p / 2) as *mut v128;
            v128_store(d, u16x8_extend_low_u8x16(v));
            v128_store(d.add(1), u16x8_extend_high_u8x16(v));
        }
        p += 16;
    }
    for (w, q) in dst[full / 2..].iter_mut().zip(src[full..].chunks_exact(2)) {
        *w = i32::from(q[0]) | i32::from(q[1]) << 16;
    }
}
