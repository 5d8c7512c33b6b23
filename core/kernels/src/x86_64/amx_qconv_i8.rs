//! `amx_qconv_i8_16x16`: a gathered integer convolution (`KernelSet::qgemm_gather`, and with a
//! max pool `qgemm_gather_max`) on the AMX tile (`tdpbusd`, see `amx_qmmm_i8.rs`). A tile load
//! reads 16 rows at one stride, but a conv's rows are gathered from its input (no im2col,
//! `runtime/src/exec/qconv.rs`), so each 16-row block is first copied into a contiguous panel
//! (`avx512_qgather_u8.rs`), then multiplied as the plain GEMM's AMX tile does, and the sums of
//! each group of `group` consecutive rows (one pool window's conv pixels) reduced to their max
//! before they are stored.
//!
//! In phases, up to 128 rows at a time: every row copied (vector code), then every tile
//! product (blocks in pairs: four sums per k step, two row blocks × two 16-column panels),
//! stored to a scratch, then every row's `k mod 64` rest on `vpdpbusd`, the pool max and the
//! store (vector code). On this Xeon each switch between vector and tile instructions cost
//! about 0.4 µs (a micro-benchmark: 4,800 `vpdpbusd` then 24 `tdpbusd` took 0.42 µs more than
//! the two apart), more than the 24 `tdpbusd` of a 32-row block pair (about 0.14 µs): block by
//! block, with the copy and the rest between, the tile was slower than `vpdpbusd` (QUANT.md,
//! "Speed"). The tile configuration is loaded once per call (one sample's conv).
//!
//! Exact i32 sums (the same as every other int8 tile) and the max of exact sums: the same bits
//! as the `vpdpbusd` pooling tiles.

use crate::qgemm::QNR;
use crate::x86_64::amx_qmmm_i8::CFG;
use crate::x86_64::avx512_qgather_u8::avx512_qgather_u8_rows;
use std::arch::asm;
use std::arch::x86_64::*;

pub(crate) const MR: usize = 16;

/// Rows per chunk at most: the sums of one chunk for two panels stay in a 32 KiB scratch.
pub(crate) const MAX_CHUNK: usize = 128;

/// The first `base.len() / 16` whole blocks of 16 gathered rows: C row `p` (at `ldc`) =
/// the max over rows `p · group .. (p + 1) · group` of the sums, for the `n` columns.
/// `chunk` rows (a multiple of 16, at most [`MAX_CHUNK`]) are copied into `buf` at a time.
///
/// # Safety
/// `amx_int8_ready()` (AMX, AVX-512F/BW/VNNI, tile state granted); `group` divides 16;
/// `words >= 16`; for every row and run, `x + base[r] + off .. + len` readable and the runs'
/// lengths summing to `4 · words`; `n.div_ceil(16)` B panels of `panel_bytes >= 64 · words`
/// bytes at `b`; C writable for `base.len() / 16 · 16 / group` rows × `n` at `ldc`; `buf`
/// writable for `chunk · 4 · words` bytes.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn amx_qconv_i8_16x16(
    x: *const u8,
    base: &[u32],
    runs: &[(u32, u32)],
    words: usize,
    b: *const u8,
    panel_bytes: usize,
    n: usize,
    group: usize,
    c: *mut i32,
    ldc: usize,
    buf: *mut u8,
    chunk: usize,
) {
    let kp = 4 * words;
    let m = base.len() / MR * MR;
    if m == 0 {
        return;
    }
    let steps = words / 16;
    let panels = n.div_ceil(QNR);
    let mut sums = Sums([0; (MAX_CHUNK + MR) * 2 * QNR]);
    let t = sums.0.as_mut_ptr();
    const LDS: usize = 2 * QNR; // sums row stride (i32): two panels side by side
    asm!("ldtilecfg [{cfg}]", cfg = in(reg) CFG.0.as_ptr(), options(nostack, preserves_flags, readonly));
    for r0 in (0..m).step_by(chunk) {
        let rows = chunk.min(m - r0);
        let blocks = rows / MR;
        avx512_qgather_u8_rows(x, &base[r0..r0 + rows], runs, buf, kp);
        let mut p = 0;
        while p < panels {
            let two = p + 1 < panels;
            let (b0, b1) = (b.add(p * panel_bytes), b.add((p + usize::from(two)) * panel_bytes));
            // Every tile product of the chunk, then every vector step: switching between
            // the tile unit and the vector unit costs far more than 24 tdpbusd (QUANT.md).
            for q in (0..blocks).step_by(2) {
                let a0 = buf.add(q * MR * kp);
                // A lone last block: the second A tile repeats the first (its sums land in
                // the scratch rows past the chunk's, never read).
                let a1 = if q + 1 < blocks { a0.add(MR * kp) } else { a0 };
                asm!("tilezero tmm0", "tilezero tmm3", "tilezero tmm6", "tilezero tmm7", options(nostack, preserves_flags, nomem));
                for s in 0..steps {
                    // Four independent sums (two row blocks × two panels) per step; each A
                    // and B tile loaded serves two products. With one panel left the second
                    // panel's products repeat the first into tmm3 and tmm7, unread.
                    asm!(
                        "tileloadd tmm1, [{a0} + {sa} * 1]",
                        "tileloadd tmm2, [{b0} + {sb} * 1]",
                        "tileloadd tmm4, [{b1} + {sb} * 1]",
                        "tileloadd tmm5, [{a1} + {sa} * 1]",
                        "tdpbusd tmm0, tmm1, tmm2",
                        "tdpbusd tmm3, tmm1, tmm4",
                        "tdpbusd tmm6, tmm5, tmm2",
                        "tdpbusd tmm7, tmm5, tmm4",
                        a0 = in(reg) a0.add(64 * s),
                        a1 = in(reg) a1.add(64 * s),
                        sa = in(reg) kp,
                        b0 = in(reg) b0.add(s * 16 * 64),
                        b1 = in(reg) b1.add(s * 16 * 64),
                        sb = in(reg) 64usize,
                        options(nostack, preserves_flags, readonly),
                    );
                }
                let at = t.add(q * MR * LDS);
                asm!(
                    "tilestored [{p0} + {s} * 1], tmm0",
                    "tilestored [{p1} + {s} * 1], tmm3",
                    "tilestored [{p2} + {s} * 1], tmm6",
                    "tilestored [{p3} + {s} * 1], tmm7",
                    p0 = in(reg) at,
                    p1 = in(reg) at.add(QNR),
                    p2 = in(reg) at.add(MR * LDS),
                    p3 = in(reg) at.add(MR * LDS + QNR),
                    s = in(reg) 4 * LDS,
                    options(nostack, preserves_flags),
                );
            }
            // The k mod 64 rest of each row on vpdpbusd, the max over each group, the store.
            for (h, bp) in [b0, b1].into_iter().enumerate().take(1 + usize::from(two)) {
                let col0 = (p + h) * QNR;
                let cols = QNR.min(n - col0);
                let mask: __mmask16 = if cols == QNR { 0xFFFF } else { ((1u32 << cols) - 1) as __mmask16 };
                for o in 0..rows / group {
                    let mut best = _mm512_undefined_epi32();
                    for r in o * group..(o + 1) * group {
                        let mut acc = _mm512_loadu_si512(t.add(r * LDS + h * QNR) as *const _);
                        let ar = buf.add(r * kp) as *const i32;
                        for g in steps * 16..words {
                            let bv = _mm512_loadu_si512(bp.add(g * 64) as *const _);
                            acc = _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(ar.add(g).read_unaligned()), bv);
                        }
                        best = if r == o * group { acc } else { _mm512_max_epi32(best, acc) };
                    }
                    _mm512_mask_storeu_epi32(c.add((r0 / group + o) * ldc + col0), mask, best);
                }
            }
            p += 2;
        }
    }
    asm!("tilerelease", options(nostack, preserves_flags, nomem));
}

#[repr(C, align(64))]
// MAX_CHUNK rows and a lone block's 16 unread ones, two panels each.
struct Sums([i32; (MAX_CHUNK + MR) * 2 * QNR]);
