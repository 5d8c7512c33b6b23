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

use super::{QConvX, QIn, QOutBuf, QScratch, MAX_PADDED_FLOATS, QROWS, QSLACK};
use crate::kernels::qgemm::PackedQB;
use crate::kernels::quant::MAX_QK;
use crate::kernels::KernelSet;
use crate::lower::Window;

/// Where the gathered words lie (see the module docs).
pub(super) struct QGather {
    /// Byte offset of word g from a pixel's base.
    offs: Vec<u32>,
    /// Height and width of the (padded) input the words are gathered from.
    hp: usize,
    wp: usize,
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
        Some((ks.qpack_b(kk, n, &w), QGather { offs, hp, wp }))
    }

    /// Bytes of the (padded) input.
    pub(super) fn x_len(&self, win: &Window) -> usize {
        self.hp * self.wp * win.c
    }
}

/// One sample of `g` (which has a [`QGather`]), `QROWS` output pixels per GEMM + epilogue.
pub(super) fn qconv_gather(ks: KernelSet, g: &QConvX, d: &QGather, src: QIn, mut dst: QOutBuf, q: &mut QScratch) {
    let w = &g.win;
    let QScratch { x, c, panel, .. } = q;
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
                ks.quantize(g.input, src, &mut x[..len]);
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
                QIn::F32(src) => ks.quantize(g.input, &src[iy * row..(iy + 1) * row], &mut x[at..at + row]),
            }
        }
        x
    };
    let (m, n) = (w.oh * w.ow, g.out_c);
    let mut base = [0u32; QROWS];
    for r0 in (0..m).step_by(QROWS) {
        let rows = QROWS.min(m - r0);
        let (mut oy, mut ox) = (r0 / w.ow, r0 % w.ow);
        for b in base.iter_mut().take(rows) {
            // Below MAX_PADDED_FLOATS (checked in `new`), so it fits u32.
            *b = ((oy * w.sh * d.wp + ox * w.sw) * w.c) as u32;
            ox += 1;
            if ox == w.ow {
                (oy, ox) = (oy + 1, 0);
            }
        }
        ks.qgemm_gather(x, &base[..rows], &d.offs, &g.w, &mut c[..rows * n], n, panel);
        dst.finish(ks, &g.epi, &c[..rows * n], n, rows, r0, n);
    }
}
