//! An integer convolution read straight from its input: the GEMM gathers each output pixel's
//! window 4 bytes at a time (`KernelSet::qgemm_gather`), so no im2col rows are written, and on
//! AVX-512 VNNI no A panel is packed either (`core/runtime/QUANT.md`, "Integer kernels").
//!
//! ```text
//!   input (u8 codes, HWC, zero-padded copy when the conv pads)   weights, k' = kh × run4 rows
//!   pixel (oy, ox): base = (oy·sh·Wp + ox·sw)·C                  kernel row ky: its kw·C taps,
//!   word g = (ky, j): base + ky·dh·Wp·C + 4j,  j < run4 / 4          then zero rows up to run4
//! ```
//!
//! A kernel row's `kw · C` taps are contiguous in HWC (columns not dilated), so they are whole
//! words once the run is rounded up to `run4`, a multiple of 4: the up to 3 bytes past a run
//! are whatever follows in the input, multiplied by those zero rows, so they add exactly 0.
//! The sums are the im2col's, so the outputs are the same bits.
//!
//! A max pool that alone reads the conv's u8 output is fused in (`fuse_max_pools`): the window
//! max of the i32 sums, then one epilogue on the pooled values (why the bits stay the same: at
//! `fuse_max_pools`).

use super::{quantize_input, QConvX, QIn, QOutBuf, QScratch, XStep, XK, MAX_PADDED_FLOATS, QROWS, QSLACK};
use crate::kernels::qgemm::PackedQB;
use crate::kernels::PoolGeom;
use crate::lower::PoolKind;
use crate::kernels::quant::MAX_QK;
use crate::kernels::KernelSet;
use crate::lower::Window;

/// Largest `i32` scratch a conv with a fused max pool keeps (its whole sample's sums plus the
/// pooled ones): 1 MiB. Bigger convs keep the pool as a step of its own.
const MAX_POOLED_SUMS: usize = 1 << 18;

/// Where the gathered words lie (see the module docs).
pub(super) struct QGather {
    /// Byte offset of word g from a pixel's base.
    offs: Vec<u32>,
    /// Height and width of the (padded) input the words are gathered from.
    hp: usize,
    wp: usize,
    /// A max pool of the output fused in (`fuse_max_pools`): the sums are pooled before the
    /// epilogue, which then runs on a quarter of the values (2×2 windows).
    pool: Option<PoolGeom>,
    /// With `pool`: each pool window's conv pixels' bases, one window after the other
    /// (`KernelSet::qgemm_gather_max` pools them in the tile's registers where the set can,
    /// `qgather_max_native`: AVX-512 VNNI, and the wasm simd128 set's 4-row tiles for 2 × 2
    /// windows).
    pool_base: Vec<u32>,
}

impl QGather {
    /// The weights re-laid for gathering and the word offsets, or `None` when the conv cannot
    /// gather (dilated columns, a padded input above `MAX_PADDED_FLOATS` bytes, `k'` above
    /// `MAX_QK`): it then runs on the im2col.
    pub(super) fn new(ks: KernelSet, win: &Window, n: usize, weight: &[i8]) -> Option<(PackedQB, QGather)> {
        let [pt, pl, pb, pr] = win.pad;
        let hp = win.h.checked_add(pt)?.checked_add(pb)?;
        let wp = win.w.checked_add(pl)?.checked_add(pr)?;
        // The same bound as the f32 conv's padded copy keeps every offset far inside u32.
        let len = hp.checked_mul(wp)?.checked_mul(win.c)?;
        if win.dw != 1 || len > MAX_PADDED_FLOATS {
            return None;
        }
        let run = win.kw * win.c;
        let run4 = run.div_ceil(4) * 4;
        let kk = win.kh * run4;
        if kk > MAX_QK || weight.len() != win.kh * run * n {
            return None;
        }
        let mut w = vec![0i8; kk * n];
        for ky in 0..win.kh {
            let (from, to) = (ky * run * n, ky * run4 * n);
            w[to..to + run * n].copy_from_slice(&weight[from..from + run * n]);
        }
        let wpr = run4 / 4;
        let offs = (0..kk / 4).map(|g| ((g / wpr) * win.dh * wp * win.c + 4 * (g % wpr)) as u32).collect();
        let d = QGather {
            offs,
            hp,
            wp,
            pool: None,
            pool_base: Vec::new(),
        };
        Some((ks.qpack_b(kk, n, &w), d))
    }

    /// Bytes of the (padded) input.
    pub(super) fn x_len(&self, win: &Window) -> usize {
        self.hp * self.wp * win.c
    }
}

/// One sample of `g` (which has a [`QGather`]), `QROWS` output pixels per GEMM + epilogue.
pub(super) fn qconv_gather(ks: KernelSet, g: &QConvX, d: &QGather, src: QIn, mut dst: QOutBuf, q: &mut QScratch) {
    let w = &g.win;
    let QScratch { x, c, panel, check, nonfinite, .. } = q;
    let len = w.h * w.w * w.c;
    // The last pixel's last word reaches up to 3 bytes past the input: codes are read in place
    // when their slot has that many spare bytes (all but the tiniest), scratch has QSLACK.
    let x: &[u8] = if w.pad == [0; 4] {
        match src {
            QIn::U8(codes) if codes.len() >= len + QSLACK => codes,
            QIn::U8(codes) => {
                x[..len].copy_from_slice(&codes[..len]);
                x
            }
            QIn::F32(src) => {
                quantize_input(ks, g.input, src, &mut x[..len], *check, nonfinite);
                x
            }
        }
    } else {
        // The padding is the input zero point, i.e. real 0, as in the im2col.
        let zp = g.input.zero_point.clamp(0, 255) as u8;
        let [pt, pl, ..] = w.pad;
        x[..d.x_len(w)].fill(zp);
        let row = w.w * w.c;
        for iy in 0..w.h {
            let at = ((pt + iy) * d.wp + pl) * w.c;
            match src {
                QIn::U8(codes) => x[at..at + row].copy_from_slice(&codes[iy * row..(iy + 1) * row]),
                QIn::F32(src) => quantize_input(ks, g.input, &src[iy * row..(iy + 1) * row], &mut x[at..at + row], *check, nonfinite),
            }
        }
        x
    };
    let (m, n) = (w.oh * w.ow, g.out_c);
    if let Some(pg) = &d.pool {
        let mp = pg.oh * pg.ow;
        // The pool in the tile's registers: only the pooled sums are ever stored.
        if ks.qgather_max_native(pg.kh * pg.kw) {
            let pooled = &mut c[..mp * n];
            ks.qgemm_gather_max(x, &d.pool_base, pg.kh * pg.kw, &d.offs, &g.w, pooled, n, panel);
            dst.finish(ks, &g.epi, pooled, n, mp, 0, n);
            return;
        }
        // All the sample's sums first (the input is read to the end before anything is
        // written), then the max of each window's sums per channel, then one epilogue on those.
        let (sums, pooled) = c.split_at_mut(m * n);
        gather_rows(ks, g, d, x, 0, m, sums, panel);
        pool_sums(pg, n, sums, pooled);
        dst.finish(ks, &g.epi, &pooled[..mp * n], n, mp, 0, n);
        return;
    }
    for r0 in (0..m).step_by(QROWS) {
        let rows = QROWS.min(m - r0);
        gather_rows(ks, g, d, x, r0, rows, &mut c[..rows * n], panel);
        dst.finish(ks, &g.epi, &c[..rows * n], n, rows, r0, n);
    }
}

/// `pooled[p][j]` = the largest `sums[q][j]` over pool window p's pixels q (`n` per pixel).
fn pool_sums(pg: &PoolGeom, n: usize, sums: &[i32], pooled: &mut [i32]) {
    // The runtime is built for baseline x86_64, whose SSE2 has no i32 max (a compare and three
    // logic ops per 4 lanes, visible in the profile): AVX2 where the CPU has it (every x86_64
    // SIMD kernel set needs it), `vpmaxsd`; the int8 CNN went from 15.0 to 14.0–14.2 CPU
    // µs/image at batch 1024 (QUANT.md, "Speed").
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just above.
        return unsafe { pool_sums_avx2(pg, n, sums, pooled) };
    }
    pool_sums_body(pg, n, sums, pooled)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_sums_avx2(pg: &PoolGeom, n: usize, sums: &[i32], pooled: &mut [i32]) {
    pool_sums_body(pg, n, sums, pooled)
}

#[inline(always)]
fn pool_sums_body(pg: &PoolGeom, n: usize, sums: &[i32], pooled: &mut [i32]) {
    for oy in 0..pg.oh {
        for ox in 0..pg.ow {
            let out = &mut pooled[(oy * pg.ow + ox) * n..][..n];
            out.fill(i32::MIN);
            for ky in 0..pg.kh {
                for kx in 0..pg.kw {
                    let at = ((oy * pg.sh + ky) * pg.w + ox * pg.sw + kx) * n;
                    for (o, &v) in out.iter_mut().zip(&sums[at..at + n]) {
                        *o = (*o).max(v);
                    }
                }
            }
        }
    }
}

/// The sums of output pixels `r0..r0 + rows` into `c` (`n` per row), `QROWS` at a time.
#[allow(clippy::too_many_arguments)]
fn gather_rows(ks: KernelSet, g: &QConvX, d: &QGather, x: &[u8], r0: usize, rows: usize, c: &mut [i32], panel: &mut [i32]) {
    let (w, n) = (&g.win, g.out_c);
    let mut base = [0u32; QROWS];
    for q0 in (r0..r0 + rows).step_by(QROWS) {
        let qr = QROWS.min(r0 + rows - q0);
        let (mut oy, mut ox) = (q0 / w.ow, q0 % w.ow);
        for b in base.iter_mut().take(qr) {
            // Below MAX_PADDED_FLOATS (checked in `new`), so it fits u32.
            *b = ((oy * w.sh * d.wp + ox * w.sw) * w.c) as u32;
            ox += 1;
            if ox == w.ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
        let at = (q0 - r0) * n;
        ks.qgemm_gather(x, &base[..qr], &d.offs, &g.w, &mut c[at..at + qr * n], n, panel);
    }
}

/// Fuses each padding-free max pool that alone reads a gathering integer conv's u8 output
/// into that conv, and drops the pool's step (`split` follows). Why the bits stay the same:
/// the requantizing epilogue is non-decreasing in the sum (a saturating add of the bias, a
/// saturating left shift, a multiply by a non-negative multiplier with a floor, a rounding
/// right shift, a clamp: each non-decreasing), so the code of the largest sum is the largest
/// code, which is what the pool took (`generic_maxpool_u8`). Fused only when the pool writes
/// codes, so an f32 dequantization (which would also be non-decreasing) never enters here.
/// `vals`: each step's input and output values; `qs` grows to the sums it needs.
#[inline(never)] // integer programs only: Exec::new calls it when a QConv step exists
pub(super) fn fuse_max_pools(steps: &mut Vec<XStep>, vals: &[(Vec<usize>, usize)], split: &mut usize, qs: &mut QScratch) {
    #[cfg(test)]
    if super::tests::POOLS_UNFUSED.with(|u| u.get()) {
        return;
    }
    let mut fused = Vec::new();
    for j in 0..(*split).min(steps.len()).saturating_sub(1) {
        let v = vals[j].1;
        let readers = vals.iter().filter(|(ins, _)| ins.contains(&v)).count();
        let (ins1, out1) = &vals[j + 1];
        if readers != 1 || ins1.first() != Some(&v) || *out1 == v {
            continue;
        }
        let (head, tail) = steps.split_at_mut(j + 1);
        let (cs, ps) = (&mut head[j], &mut tail[0]);
        let (XK::QConv(g), XK::Pool { kind: PoolKind::Max, fast: Some(pg), .. }) = (&mut cs.k, &ps.k) else {
            continue;
        };
        let pg = *pg;
        let (m, n) = (g.win.oh * g.win.ow, g.out_c);
        let sums = m.checked_mul(n).and_then(|s| s.checked_add(pg.oh * pg.ow * n));
        let fits = pg.c == n && pg.h == g.win.oh && pg.w == g.win.ow && sums.is_some_and(|s| s <= MAX_POOLED_SUMS);
        let requant = g.epi.out_params().is_some();
        let Some(d) = g.gather.as_mut().filter(|_| fits && requant && cs.out_u8 && ps.in_u8 && ps.out_u8) else {
            continue;
        };
        d.pool = Some(pg);
        let w = &g.win;
        d.pool_base = (0..pg.oh * pg.ow)
            .flat_map(|p| (0..pg.kh * pg.kw).map(move |q| (p / pg.ow * pg.sh + q / pg.kw, p % pg.ow * pg.sw + q % pg.kw)))
            // Below MAX_PADDED_FLOATS (checked in `QGather::new`), so it fits u32.
            .map(|(oy, ox)| ((oy * w.sh * d.wp + ox * w.sw) * w.c) as u32)
            .collect();
        if let Some(s) = sums {
            qs.c.resize(qs.c.len().max(s), 0);
        }
        cs.out_len = ps.out_len;
        if cs.ins.contains(&ps.out) {
            // The pool's output took the conv input's buffer (it died there), and a step never
            // writes its own input's buffer (`sample_step` takes it out): the conv writes the
            // pooled codes to its own output, and the pool's step becomes a copy of them.
            ps.k = XK::Copy;
            ps.ins = vec![cs.out];
            ps.in_lens = vec![ps.out_len];
        } else {
            cs.out = ps.out;
            fused.push(j + 1);
        }
    }
    for &j in fused.iter().rev() {
        steps.remove(j);
        *split -= 1;
    }
}

#[cfg(test)]
mod tests {
    /// The shipped int8 CNN: same bits with its pools fused into the integer convs (exec.rs
    /// tests).
    #[test]
    fn fused_max_pools_give_the_same_bits() {
        super::super::tests::pool_fusion_keeps_the_bits(include_bytes!("../../../../models/mnist-cnn-int8.mdm"));
    }
}
