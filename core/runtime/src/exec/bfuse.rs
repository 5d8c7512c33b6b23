//! Fuses `Affine → Sign → BDense` into the binary step's sign-packing (QUANT.md, "Binary
//! input"). A BatchNorm with no producer to fold into (the one over the pixels of an
//! `mlp-binary-in` model, or one after a binary layer) lowers to an `Affine` step, then the
//! `Sign` writes ±1 floats, then the `BDense` packs their signs into bits: three passes over
//! the values. Fused, the `BDense` packs `x · scale + shift >= 0` straight from the Affine's
//! input (`KernelSet::bpack_rows` with `pre`), rounded as the Affine rounds (product, then
//! sum), so the bits are the unfused plan's. The GPU and the program keep the three kernels;
//! this is the CPU executor's choice of how to run them.

use super::{Loc, XStep, XK};
use crate::lower::Act;

/// Fuses every `Affine (no activation) → Sign → BDense` run of adjacent steps whose two
/// intermediate values are read by the next step of the run only. The BDense then reads the
/// Affine's input, which must still hold it: the program input, or the Affine's own buffer
/// when it ran in place (the Sign ran in place over it too, and both steps are gone). `vals`
/// (each step's input values and output value) and `split` follow the removed steps.
pub(super) fn fuse_sign_affines(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize, out_v: usize) {
    #[cfg(test)]
    if tests::UNFUSED.with(|u| u.get()) {
        return;
    }
    let mut j = 0;
    while j + 2 < steps.len() {
        if fusible(steps, vals, j, out_v) {
            let (scale, shift) = match &steps[j].k {
                XK::Affine { scale, shift, .. } => (scale.clone(), shift.clone()),
                _ => unreachable!("checked by fusible"),
            };
            let (a_ins, a_in_lens) = (steps[j].ins.clone(), steps[j].in_lens.clone());
            let a_vals = vals[j].0.clone();
            let b = &mut steps[j + 2];
            let XK::BDense(d) = &mut b.k else { unreachable!("checked by fusible") };
            // The Affine is per channel over HWC (channel = position % c); the packer reads
            // one scale and shift per position.
            let (k, c) = (d.w.k(), scale.len());
            d.pre = Some(((0..k).map(|p| scale[p % c]).collect(), (0..k).map(|p| shift[p % c]).collect()));
            b.ins = a_ins;
            b.in_lens = a_in_lens;
            vals[j + 2].0 = a_vals;
            for r in [j + 1, j] {
                steps.remove(r);
                vals.remove(r);
                if r < *split {
                    *split -= 1;
                }
            }
        }
        j += 1;
    }
}

fn fusible(steps: &[XStep], vals: &[(Vec<usize>, usize)], j: usize, out_v: usize) -> bool {
    let (a, s, b) = (&steps[j], &steps[j + 1], &steps[j + 2]);
    let (XK::Affine { scale, act: Act::None, .. }, XK::Sign, XK::BDense(d)) = (&a.k, &s.k, &b.k) else {
        return false;
    };
    let (va, vs) = (vals[j].1, vals[j + 1].1);
    let chain = vals[j + 1].0.as_slice() == [va] && vals[j + 2].0.as_slice() == [vs];
    // Nobody else reads the Affine's or the Sign's value, and neither is the output (in
    // place, the Affine's value is its input's: the Affine reads it too).
    let private = vals
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != j && i != j + 1 && i != j + 2)
        .all(|(_, (ins, _))| !ins.contains(&va) && !ins.contains(&vs))
        && va != out_v
        && vs != out_v;
    // The Affine's input is still there when the BDense runs (see above), as floats.
    let source_kept = matches!(a.ins.first(), Some(Loc::Input)) || a.in_place;
    let k = d.w.k();
    let shapes = d.pre.is_none() && !a.in_u8 && !s.in_u8 && a.out_len == k && !scale.is_empty() && k % scale.len() == 0;
    chain && private && source_kept && shapes
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Exec;
    use crate::budget::arena_budget;
    use crate::graph::{Graph, Op};
    use crate::kernels::KernelSet;
    use crate::lower::lower;
    use crate::model::{Model, Tensor};
    use std::cell::Cell;

    thread_local! {
        /// Plans built on this thread keep their Affine and Sign steps (the comparisons).
        pub(crate) static UNFUSED: Cell<bool> = const { Cell::new(false) };
    }

    fn lcg(st: &mut u64) -> f32 {
        *st = st.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (*st >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `BatchNorm 784 > Sign > binary Dense 784-40 > BatchNorm > Sign > binary Dense 40-24 >
    /// BatchNorm > ReLU > Dense 24-10 > Softmax` with BatchNorm statistics away from the
    /// identity (an `mlp-binary-in:…x2` shape, built here without the train crate).
    fn binary_in_model() -> Model {
        let mut st = 0x2545_f491_4f6c_dd1du64;
        let mut r = |lo: f32, hi: f32| lo + (hi - lo) * lcg(&mut st);
        let mut bn = |c: usize| Op::BatchNorm {
            gamma: Tensor::f32(vec![c], (0..c).map(|_| r(0.5, 1.5)).collect()),
            beta: Tensor::f32(vec![c], (0..c).map(|_| r(-0.3, 0.3)).collect()),
            mean: Tensor::f32(vec![c], (0..c).map(|_| r(0.0, 0.5)).collect()),
            var: Tensor::f32(vec![c], (0..c).map(|_| r(0.05, 1.0)).collect()),
            eps: 1e-5,
        };
        let (bn0, bn1, bn2) = (bn(784), bn(40), bn(24));
        let mut st = 7u64;
        let mut w = |k: usize, n: usize| Tensor::f32(vec![k, n], (0..k * n).map(|_| lcg(&mut st) - 0.5).collect());
        let (w1, w2, w3) = (w(784, 40), w(40, 24), w(24, 10));
        let bin = |t: &Tensor| crate::quantize::binarize_weight(t).expect("binarize");
        let z = |n: usize| Tensor::f32(vec![n], vec![0.01; n]);
        let graph = Graph::sequential([
            Op::Flatten,
            bn0,
            Op::Sign,
            Op::Dense { weight: bin(&w1), bias: z(40) },
            bn1,
            Op::Sign,
            Op::Dense { weight: bin(&w2), bias: z(24) },
            bn2,
            Op::Relu,
            Op::Dense { weight: w3, bias: z(10) },
            Op::Softmax,
        ]);
        let meta = crate::model::Metadata { input_shape: vec![1, 28, 28], labels: (0..10).map(|d| d.to_string()).collect(), ..Default::default() };
        Model { meta, graph }
    }

    /// The fused `Affine → Sign → BDense` gives the same output bits as the three steps on
    /// every kernel set, at batch 1 and batched, on a binary-input graph (both of its chains
    /// fuse: the one over the pixels, read from the program input, and the one after the
    /// first binary layer, in place) and on the shipped binary default (its BatchNorm after the
    /// int8 first layer), and the fusion did happen (two steps fewer per chain).
    #[test]
    fn fused_sign_affines_give_the_same_bits() {
        let shipped = crate::format::read(include_bytes!("../../../../models/mnist-mlp-binary.mdm")).expect("shipped model");
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        let n = 37;
        // Digit-like inputs (many exact zeros), some exactly on a pixel's threshold.
        let xs: Vec<f32> = (0..n * 784)
            .map(|_| {
                let u = lcg(&mut st);
                if u < 0.6 { 0.0 } else { (u - 0.6) / 0.4 }
            })
            .collect();
        for (model, chains) in [(binary_in_model(), 2usize), (shipped, 1)] {
            for ks in KernelSet::available() {
                for max_batch in [1, 16, 64] {
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
                    assert_eq!(fused, unfused, "{} ({}) max batch {max_batch}: the fusion changed the output bits", ks.name(), ks.bpack_name());
                    assert_eq!(fused_steps + 2 * chains, steps, "{}: {chains} chains fused?", ks.name());
                }
            }
        }
    }
}
