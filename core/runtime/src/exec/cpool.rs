//! An f32 convolution and the max pool that alone reads it, run as one step, in bands of pooled
//! rows (`super::conv`): each band's convolution rows go to a small scratch (`pool.kh` rows of
//! the conv's output), are pooled straight into the pool's output, and the conv's full output
//! is never written. This file decides which steps fuse.
//!
//! Why: at batch 1 the conv's output is written once and read once. Under `wasmtime serve`,
//! which gives every request a fresh copy-on-write instance, each page a request writes is a
//! page fault plus its unmapping: the MNIST CNN's first conv output (24×24×16 floats, 36 KB)
//! was 10 of a request's 35 faults (`bench/serverless/faults.sh`, worker/README.md). Banded,
//! the conv writes one 3 KB band and the pool its 9 KB output.
//!
//! Why the bits stay the same: every output value of the conv is computed by the same tile
//! kernel with the same K blocking (`KernelSet::drive` splits K by `k` alone and computes each
//! row from its own A row), only in a different call; the activation and the max then see the
//! same values. `tests::fused_conv_pools_give_the_same_bits` checks it on every kernel set.

use super::{XStep, XK};
use crate::lower::PoolKind;

/// Fuses each non-overlapping max pool (window = stride, no padding) that alone reads an f32
/// convolution's output into that convolution, in the per-sample stage. `vals` (each step's
/// input values and output value) is kept in step with `steps`. Returns the floats of the
/// largest band (the scratch the fused steps need).
pub(super) fn fuse_conv_max_pools(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize) -> usize {
    #[cfg(test)]
    if super::tests::POOLS_UNFUSED.with(|u| u.get()) {
        return 0;
    }
    let mut band_max = 0usize;
    let mut j = 0;
    while j + 1 < (*split).min(steps.len()) {
        let v = vals[j].1;
        let readers = vals.iter().filter(|(ins, _)| ins.contains(&v)).count();
        let (ins1, out1) = &vals[j + 1];
        if readers != 1 || ins1.first() != Some(&v) || *out1 == v {
            j += 1;
            continue;
        }
        let (head, tail) = steps.split_at_mut(j + 1);
        let (cs, ps) = (&mut head[j], &mut tail[0]);
        let (XK::Conv(g), XK::Pool { kind: PoolKind::Max, fast: Some(pg), .. }) = (&mut cs.k, &ps.k) else {
            j += 1;
            continue;
        };
        let pg = *pg;
        let w = &g.win;
        let fits = pg.kh == pg.sh && pg.kw == pg.sw && pg.c == g.out_c && pg.h == w.oh && pg.w == w.ow;
        if !fits || g.pool.is_some() || cs.out_u8 || ps.in_u8 || ps.out_u8 {
            j += 1;
            continue;
        }
        g.pool = Some(pg);
        band_max = band_max.max(pg.kh * w.ow * g.out_c);
        cs.out_len = ps.out_len;
        if cs.ins.contains(&ps.out) {
            // The pool's output took the conv input's buffer (it died there), and a step never
            // writes its own input's buffer (`sample_step` takes it out): the conv writes the
            // pooled values to its own output, and the pool's step becomes a copy of them.
            ps.k = XK::Copy;
            ps.ins = vec![cs.out];
            ps.in_lens = vec![ps.out_len];
            j += 2;
        } else {
            cs.out = ps.out;
            steps.remove(j + 1);
            vals[j].1 = vals[j + 1].1;
            vals.remove(j + 1);
            *split -= 1;
            j += 1;
        }
    }
    band_max
}

#[cfg(test)]
mod tests {
    /// The shipped f32 CNN: same bits with its pools fused into the convs (exec.rs tests).
    #[test]
    fn fused_conv_pools_give_the_same_bits() {
        super::super::tests::pool_fusion_keeps_the_bits(include_bytes!("../../../../models/mnist-cnn.mdm"));
    }
}
