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

#[cfg(test)]
thread_local! {
    /// Plans built on this thread keep their f32 max pools as steps (the comparison below).
    pub(super) static UNFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Fuses each non-overlapping max pool (window = stride, no padding) that alone reads an f32
/// convolution's output into that convolution, in the per-sample stage. `vals` (each step's
/// input values and output value) is kept in step with `steps`. Returns the floats of the
/// largest band (the scratch the fused steps need).
pub(super) fn fuse_conv_max_pools(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize) -> usize {
    #[cfg(test)]
    if UNFUSED.with(|u| u.get()) {
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
    use super::super::Exec;
    use super::UNFUSED;
    use crate::budget::arena_budget;
    use crate::kernels::KernelSet;
    use crate::lower::lower;

    /// The shipped f32 CNN (conv → ReLU → 2×2 max pool, twice) with the pools fused into the
    /// convs gives the same output bits as with the pools as steps, on every kernel set, at
    /// batch 1 and batched, and the fusion did happen (fewer steps).
    #[test]
    fn fused_conv_pools_give_the_same_bits() {
        let bytes = include_bytes!("../../../../models/mnist-cnn.mdm");
        let model = crate::format::read(bytes).expect("shipped model");
        // Inputs in 0..1 with a digit-like share of exact zeros, from a fixed LCG.
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        let n = 9;
        let xs: Vec<f32> = (0..n * 784)
            .map(|_| {
                st = st.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = (st >> 40) as f32 / (1u64 << 24) as f32;
                if u < 0.6 { 0.0 } else { (u - 0.6) / 0.4 }
            })
            .collect();
        for ks in KernelSet::available() {
            for max_batch in [1, 4] {
                let run = |unfused: bool| {
                    let program = lower(&model.graph, &model.meta.input_shape).expect("lower");
                    UNFUSED.with(|u| u.set(unfused));
                    let exec = Exec::new(program, max_batch, ks, arena_budget(&model.graph));
                    UNFUSED.with(|u| u.set(false));
                    let mut exec = exec.expect("exec");
                    let mut out = vec![0.0f32; n * 10];
                    for s0 in (0..n).step_by(max_batch) {
                        let nb = max_batch.min(n - s0);
                        exec.run_chunk(&xs[s0 * 784..(s0 + nb) * 784], nb, &mut out[s0 * 10..(s0 + nb) * 10]);
                    }
                    (exec.steps.len(), out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
                };
                let (fused_steps, fused) = run(false);
                let (steps, unfused) = run(true);
                assert_eq!(fused, unfused, "{} max batch {max_batch}: fused conv pools changed the output bits", ks.name());
                assert!(fused_steps < steps, "{}: no pool was fused ({fused_steps} steps, {steps} unfused)", ks.name());
            }
        }
    }
}
