//! `wasm_bmmm_b1_4x8`: simd128 binary kernel. A B panel word (8 columns × 64 bits) is four
//! v128, two columns each; the tile runs the panel as two halves of 4 columns (2 v128) over 4
//! rows: per row and word the A word is splatted, XORed with the half's 2 B vectors and the
//! mismatches counted per byte into that row's 2 **byte** accumulators. A byte lane gains at
//! most 8 per word, so it holds `BLOCK` = 31 words (248 < 256) before the block's bytes are
//! widened (`extadd_pairwise` twice) into u32 column sums: one widening per 31 words instead
//! of one `i16x8.extadd_pairwise_u8x16` per vector and word (as the former 2×8 kernel did).
//!
//! The byte count is `i8x16.popcnt` in both builds. V8 (Node 20's 11.3 and Chromium 148 alike,
//! read from their code on this AVX-512 BITALG host) lowers it to a nibble table with `vpshufb`
//! and reloads its constants from memory at every use (no `vpopcntb`). A table of our own
//! (`i8x16.relaxed_swizzle`, exact for nibble indices, constants kept in registers: 8
//! instructions a vector instead of about 13) was tried in the relaxed build and dropped: the
//! tile with it measured within 2 % of the former 2×8 kernel (the binary-input MLP's CPU time
//! under Node), and in Chromium 148 the relaxed packages with and without it ran that model
//! within 0.3 % (QUANT.md, "Binary stacks").
//!
//! Registers (x86's 16 xmm under V8, one its scratch): 8 byte accumulators, 2 B vectors, the
//! splat and V8's temporaries for the count.

use core::arch::wasm32::*;

use crate::bgemm::BNR;

pub(crate) const MR: usize = 4;

/// Words per block of byte accumulation: a byte lane gains at most 8 per word, 31 · 8 = 248.
const BLOCK: usize = 31;

/// # Safety
/// As [`crate::bgemm::BmmmFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn wasm_bmmm_b1_4x8(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    // Two monomorphized loops (4 rows, 1 row), not one per row count: the remainder of a
    // chunk's rows (rare: chunks are multiples of 4 rows) runs row by row, which keeps the
    // module 2-3 KB smaller (wasm/test/package.test.mjs bounds it).
    if rows >= MR {
        tile::<4>(words, a, lda, b, k, c, ldc, cols);
    } else {
        for r in 0..rows {
            tile::<1>(words, a.add(r * lda), lda, b, k, c.add(r * ldc), ldc, cols);
        }
    }
}

/// `acc + popcount(x)` per byte.
#[inline(always)]
fn count_add(acc: v128, x: v128) -> v128 {
    i8x16_add(acc, i8x16_popcnt(x))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, cols: usize) {
    // The second half only when a column of it is stored (a last panel of n = 10 has 2).
    let tot = mismatches::<R>(words, a, lda, b, if cols > BNR / 2 { 2 } else { 1 });
    let kv = i32x4_splat(k);
    for (r, t) in tot.iter().enumerate() {
        // k − 2·d fits i32 (k <= MAX_BK); a full panel is two vector stores, a last one's few
        // columns are written one by one.
        let dots = [i32x4_sub(kv, i32x4_shl(t[0], 1)), i32x4_sub(kv, i32x4_shl(t[1], 1))];
        let row = c.add(r * ldc);
        if cols == BNR {
            v128_store(row as *mut v128, dots[0]);
            v128_store(row.add(4) as *mut v128, dots[1]);
        } else {
            let vals: [i32; BNR] = core::mem::transmute(dots);
            for (j, &v) in vals.iter().enumerate().take(cols) {
                *row.add(j) = v;
            }
        }
    }
}

/// Per row, the panel's 8 columns' mismatch counts over `words` words as two `u32x4` (columns
/// 0-3 and 4-7; the first `halves` × 4 columns counted, the others stay 0). The counts stay in
/// vectors to the end: the former `[[u32; 8]; R]` took 4 lane extracts and 4 scalar adds per
/// accumulator and block, and the tiles read the array back (what the 4-word 256 → 256 layer
/// of the binary-input MLP paid per tile beside its 4 words of products).
#[inline(always)]
pub(crate) unsafe fn mismatches<const R: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, halves: usize) -> [[v128; 2]; R] {
    let mut tot = [[u32x4_splat(0); 2]; R];
    for half in 0..halves {
        let mut w0 = 0;
        while w0 < words {
            let w1 = (w0 + BLOCK).min(words);
            let mut acc = [[u8x16_splat(0); 2]; R];
            for w in w0..w1 {
                let bw = b.add(w * BNR + half * BNR / 2) as *const v128;
                let (b0, b1) = (v128_load(bw), v128_load(bw.add(1)));
                for (r, s) in acc.iter_mut().enumerate() {
                    let av = u64x2_splat(*a.add(r * lda + w));
                    s[0] = count_add(s[0], v128_xor(av, b0));
                    s[1] = count_add(s[1], v128_xor(av, b1));
                }
            }
            for (t, s) in tot.iter_mut().zip(&acc) {
                // u8 × 16 → u32 × 4: lanes 0, 1 of `d0` belong to column 0 of the half, 2, 3 to
                // column 1; `d1` the same for columns 2 and 3. Even lanes plus odd lanes are
                // the four columns in order.
                let d0 = u32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(s[0]));
                let d1 = u32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(s[1]));
                let cols = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(d0, d1), i32x4_shuffle::<1, 3, 5, 7>(d0, d1));
                t[half] = i32x4_add(t[half], cols);
            }
            w0 = w1;
        }
    }
    tot
}
