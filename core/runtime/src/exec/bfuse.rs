//! Fuses `Affine → Sign → BDense` into the binary step's sign-packing (QUANT.md, "Binary
//! input"). A BatchNorm with no producer to fold into (the one over the pixels of an
//! `mlp-binary-in` model, or one after a binary layer) lowers to an `Affine` step, then the
//! `Sign` writes ±1 floats, then the `BDense` packs their signs into bits: three passes over
//! the values. Fused, the `BDense` packs `x · scale + shift >= 0` straight from the Affine's
//! input (`KernelSet::bpack_rows` with `pre`), rounded as the Affine rounds (product, then
//! sum), so the bits are the unfused plan's. The GPU and the program keep the three kernels;
//! this is the CPU executor's choice of how to run them.

use super::{BDenseX, Loc, XStep, XK};
use crate::kernels::generic::generic_eltwise_f32::generic_act_f32;
use crate::kernels::BSignRule;
use crate::lower::Act;

/// Removes step `i` and its entry in `vals`, keeping `split` (an index into `steps`) on the
/// step it named: what every fusion here does when it folds a step into its neighbour.
fn remove_step(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize, i: usize) -> (XStep, (Vec<usize>, usize)) {
    if i < *split {
        *split -= 1;
    }
    (steps.remove(i), vals.remove(i))
}

/// Fuses every `Affine (no activation) → Sign → BDense` run of adjacent steps whose two
/// intermediate values are read by the next step of the run only. The BDense then reads the
/// Affine's input, which must still hold it: the program input, or the Affine's own buffer
/// when it ran in place (the Sign ran in place over it too, and both steps are gone). `vals`
/// (each step's input values and output value) and `split` follow the removed steps.
#[inline(never)] // binary programs only: Exec::new calls it when a BDense step exists
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
                remove_step(steps, vals, split, r);
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

/// Fuses `BDense → BDense(pre)` (after [`fuse_sign_affines`]: a binary layer, then the
/// BatchNorm → Sign packed by the next binary layer) into one step whose first layer writes
/// the second's input bits straight from its dot products ("stacks": QUANT.md, "Binary
/// input"). The first layer's f32 outputs `act(alpha · dot + bias)`, then `· scale + shift >=
/// 0`, are a function of the dot product alone, an integer in `−k..=k` of k's parity: the
/// plan evaluates it, with the same f32 operations in the same order, at every one of those
/// k + 1 values per channel at load time, and fuses when the 1s form one interval (always, for
/// alpha ≥ 0 and finite values: each operation is monotone), which is then the rule
/// `lo <= dot <= hi` (`KernelSet::bgemm_sign`). The same bits by construction; repeats, so a
/// run of L binary layers becomes one step.
#[inline(never)] // binary programs only: Exec::new calls it when a BDense step exists
pub(super) fn fuse_binary_stacks(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize, out_v: usize) {
    #[cfg(test)]
    if tests::UNSTACKED.with(|u| u.get()) {
        return;
    }
    let mut j = 0;
    while j + 1 < steps.len() {
        let rule = stackable(steps, vals, j, out_v);
        let Some(rule) = rule else {
            j += 1;
            continue;
        };
        let (second, (_, v2)) = remove_step(steps, vals, split, j + 1);
        let XK::BDense(mut d2) = second.k else { unreachable!("checked by stackable") };
        d2.pre = None;
        let a = &mut steps[j];
        let XK::BDense(d1) = &mut a.k else { unreachable!("checked by stackable") };
        last_mut(d1).then = Some(Box::new((rule, *d2)));
        a.out = second.out;
        a.out_len = second.out_len;
        a.out_u8 = second.out_u8;
        vals[j].1 = v2;
        // Stay on j: the stack may take the next layer too.
    }
}

/// Fuses an in-place `Affine` right after a binary step (the BatchNorm > ReLU after the last
/// binary layer of an `mlp-binary(-in)` model) into the step's epilogue: the row the step just
/// wrote, still in L1, goes through the same `generic_affine_f32` call instead of a second pass
/// over the chunk. The same operations in the same order: the same bits.
#[inline(never)] // binary programs only: Exec::new calls it when a BDense step exists
pub(super) fn fuse_binary_posts(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize) {
    #[cfg(test)]
    if tests::UNSTACKED.with(|u| u.get()) {
        return;
    }
    let mut j = 0;
    while j + 1 < steps.len() {
        let v = vals[j].1;
        let ok = match (&steps[j].k, &steps[j + 1].k) {
            (XK::BDense(d), XK::Affine { scale, .. }) => {
                let b = &steps[j + 1];
                d.last().post.is_none()
                    && b.in_place
                    && b.ins.first() == Some(&steps[j].out)
                    && vals[j + 1].0.first() == Some(&v)
                    && vals[j + 1].1 == v
                    && !b.in_u8
                    && !b.out_u8
                    && !steps[j].out_u8
                    && !scale.is_empty()
                    && b.out_len == steps[j].out_len
                    && b.out_len.is_multiple_of(scale.len())
            }
            _ => false,
        };
        if !ok {
            j += 1;
            continue;
        }
        let (b, _) = remove_step(steps, vals, split, j + 1);
        let (XK::Affine { scale, shift, act }, XK::BDense(d)) = (b.k, &mut steps[j].k) else { unreachable!("checked above") };
        last_mut(d).post = Some((scale, shift, act));
    }
}

/// Fuses `binary step → Quantize (in place, f32 grid values) → QDense on the same grid` into
/// a binary step that writes the u8 codes the QDense reads (`out_u8` / `in_u8`, one byte per
/// value at the start of the slot, as `u8_values` keeps them). Unfused, the QDense quantizes
/// the grid value `dequantize(quantize(v))` again, which gives back `quantize(v)` (the
/// argument of `u8_values`: |code − zp| <= 255, so the round trip is off by far less than half
/// a step); fused, the epilogue writes `quantize(v)` with the same kernel. The same codes, one
/// pass over the f32 values instead of three.
#[inline(never)] // binary programs only: Exec::new calls it when a BDense step exists
pub(super) fn fuse_binary_codes(steps: &mut Vec<XStep>, vals: &mut Vec<(Vec<usize>, usize)>, split: &mut usize, out_v: usize) {
    #[cfg(test)]
    if tests::UNSTACKED.with(|u| u.get()) {
        return;
    }
    let mut j = 0;
    while j + 2 < steps.len() {
        let v = vals[j].1;
        let ok = match (&steps[j].k, &steps[j + 1].k, &steps[j + 2].k) {
            (XK::BDense(d), XK::Quantize { q }, XK::QDense(qd)) => {
                let (b, c) = (&steps[j + 1], &steps[j + 2]);
                let same = q.scale.to_bits() == qd.input.scale.to_bits() && q.zero_point == qd.input.zero_point;
                // Nobody but the QDense reads the value, and it is not the output.
                let private = v != out_v && vals.iter().enumerate().filter(|&(i, _)| i != j + 1 && i != j + 2).all(|(_, (ins, _))| !ins.contains(&v));
                d.last().quant.is_none()
                    && same
                    && private
                    && b.in_place
                    && !b.out_u8
                    && !b.in_u8
                    && !steps[j].out_u8
                    && !c.in_u8
                    && vals[j + 1].0.as_slice() == [v]
                    && vals[j + 1].1 == v
                    && vals[j + 2].0.as_slice() == [v]
                    && b.out_len == steps[j].out_len
                    && c.in_lens.first() == Some(&steps[j].out_len)
            }
            _ => false,
        };
        if !ok {
            j += 1;
            continue;
        }
        let (b, _) = remove_step(steps, vals, split, j + 1);
        let (XK::Quantize { q }, XK::BDense(d)) = (b.k, &mut steps[j].k) else { unreachable!("checked above") };
        last_mut(d).quant = Some(q);
        steps[j].out_u8 = true;
        steps[j + 1].in_u8 = true;
        j += 1;
    }
}

fn last_mut(d: &mut BDenseX) -> &mut BDenseX {
    match d.then {
        Some(ref mut t) => last_mut(&mut t.1),
        None => d,
    }
}

/// The rule when steps j and j + 1 stack (see [`fuse_binary_stacks`]).
fn stackable(steps: &[XStep], vals: &[(Vec<usize>, usize)], j: usize, out_v: usize) -> Option<BSignRule> {
    let (a, b) = (&steps[j], &steps[j + 1]);
    let (XK::BDense(d1), XK::BDense(d2)) = (&a.k, &b.k) else { return None };
    let (Some((scale, shift)), d1) = (&d2.pre, d1.last()) else { return None };
    if d1.post.is_some() {
        return None;
    }
    let v = vals[j].1;
    // The buffers were assigned for the two steps: the second's output may have taken the first
    // one's input buffer (free once the first ran). The stack reads one while writing the other.
    let apart = a.ins.first() != Some(&b.out);
    let chain = vals[j + 1].0.as_slice() == [v] && !a.in_place && !b.in_place && !a.out_u8 && !b.in_u8 && apart;
    let private = v != out_v && vals.iter().enumerate().filter(|&(i, _)| i != j + 1).all(|(_, (ins, _))| !ins.contains(&v));
    let n = d1.w.n();
    let shapes = d2.w.k() == n && a.out_len == n && scale.len() == n && shift.len() == n && d1.alpha.len() == n && d1.bias.len() == n;
    if !(chain && private && shapes) {
        return None;
    }
    sign_rule(d1, scale, shift)
}

/// Per output channel of `d`, the interval of dot products whose output `act(alpha · dot +
/// bias) · scale + shift` is `>= 0` (NaN: not), computed as the executor computes it; `None`
/// when some channel's 1s are not one interval.
fn sign_rule(d: &BDenseX, scale: &[f32], shift: &[f32]) -> Option<BSignRule> {
    let (k, n) = (d.w.k() as i32, d.w.n());
    let (mut lo, mut hi) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for c in 0..n {
        // Runs of 1s seen so far, and the first and last dot of the first run.
        let (mut runs, mut first, mut last, mut prev) = (0, i32::MAX, i32::MIN, false);
        for dot in (-k..=k).step_by(2) {
            let mut y = [d.alpha[c] * dot as f32 + d.bias[c]];
            generic_act_f32(d.act, &mut y);
            let bit = y[0] * scale[c] + shift[c] >= 0.0;
            if bit && !prev {
                runs += 1;
                first = dot;
            }
            if bit {
                last = dot;
            }
            prev = bit;
        }
        if runs > 1 {
            return None;
        }
        // No 1 at all: lo = i32::MAX > hi = i32::MIN, never true.
        lo.push(first);
        hi.push(last);
    }
    Some(BSignRule::new(lo, hi))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::steps_and_bits;
    use crate::graph::{Graph, Op};
    use crate::kernels::KernelSet;
    use crate::model::{Model, Tensor};
    use std::cell::Cell;

    thread_local! {
        /// Plans built on this thread keep their Affine and Sign steps (the comparisons).
        pub(crate) static UNFUSED: Cell<bool> = const { Cell::new(false) };
        /// Plans built on this thread keep each binary layer a step of its own (f32 outputs) and
        /// the Affine after it a step too (no stacks, no posts).
        pub(crate) static UNSTACKED: Cell<bool> = const { Cell::new(false) };
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
                    // The stacks are tested below; here both plans keep each binary layer.
                    let (fused_steps, fused) = steps_and_bits(&model, ks, max_batch, &xs, n, &[&UNSTACKED]);
                    let (steps, unfused) = steps_and_bits(&model, ks, max_batch, &xs, n, &[&UNSTACKED, &UNFUSED]);
                    assert_eq!(fused, unfused, "{} ({}) max batch {max_batch}: the fusion changed the output bits", ks.name(), ks.bpack_name());
                    assert_eq!(fused_steps + 2 * chains, steps, "{}: {chains} chains fused?", ks.name());
                }
            }
        }
    }

    /// Runs `model` on `xs` (`n` samples) with or without the stacks; returns the plan's step
    /// count and the output bits.
    fn run_stacked(model: &Model, ks: KernelSet, max_batch: usize, xs: &[f32], n: usize, stacked: bool) -> (usize, Vec<u32>) {
        steps_and_bits(model, ks, max_batch, xs, n, if stacked { &[] } else { &[&UNSTACKED] })
    }

    /// `BatchNorm > Sign > binary Dense` three times over `k0 = 100` inputs (1 word + 36 bits)
    /// with widths 37 and 29 (a last panel of 5 columns, pad bits in every packed row), ±1
    /// weights (alpha exactly 1), integer biases, and BatchNorms with var 1 and eps 0 whose
    /// thresholds sit exactly on reachable dot products (ties: `x · scale + shift` is exactly
    /// 0, which the Sign maps to +1), with gamma −1 on some channels (the rule `dot <= T`) and
    /// 0 on two (always +1, never: the constant rules). Every value is a small integer, so the
    /// f64 reference agrees exactly (`plan_binary.rs` checks that).
    pub(crate) fn tie_model(seed: u64) -> Model {
        let mut st = seed;
        let mut u = move || lcg(&mut st);
        let widths = [100usize, 37, 29, 3];
        let mut ops = vec![];
        let mut bias_prev: Vec<f32> = vec![];
        for l in 0..3 {
            let (k, n) = (widths[l], widths[l + 1]);
            let bn = if l == 0 {
                let z = Tensor::f32(vec![k], vec![0.0; k]);
                Op::BatchNorm { gamma: Tensor::f32(vec![k], vec![1.0; k]), beta: z.clone(), mean: z, var: Tensor::f32(vec![k], vec![1.0; k]), eps: 0.0 }
            } else {
                // The previous layer's output is dot + bias (alpha 1): a mean of bias + t puts
                // the tie at dot = t, t of the dot's parity (k's) and within ±8.
                let kp = widths[l - 1] as i32;
                let mut gamma = vec![];
                let mut beta = vec![];
                let mut mean = vec![];
                for c in 0..k {
                    let t = 2 * ((u() * 9.0) as i32 - 4) + kp % 2;
                    let (g, b) = match c {
                        0 => (0.0, 0.0),  // v = 0 always: +1
                        1 => (0.0, -1.0), // v = −1 always: −1
                        _ if u() < 0.4 => (-1.0, 0.0),
                        _ => (1.0, 0.0),
                    };
                    gamma.push(g);
                    beta.push(b);
                    mean.push(bias_prev[c] + t as f32);
                }
                Op::BatchNorm { gamma: Tensor::f32(vec![k], gamma), beta: Tensor::f32(vec![k], beta), mean: Tensor::f32(vec![k], mean), var: Tensor::f32(vec![k], vec![1.0; k]), eps: 0.0 }
            };
            ops.push(bn);
            ops.push(Op::Sign);
            let w: Vec<f32> = (0..k * n).map(|_| if u() < 0.5 { -1.0 } else { 1.0 }).collect();
            let b: Vec<f32> = (0..n).map(|_| ((u() * 7.0) as i32 - 3) as f32).collect();
            bias_prev = b.clone();
            ops.push(Op::Dense { weight: crate::quantize::binarize_weight(&Tensor::f32(vec![k, n], w)).expect("binarize"), bias: Tensor::f32(vec![n], b) });
        }
        let meta = crate::model::Metadata { input_shape: vec![100], labels: (0..3).map(|d| d.to_string()).collect(), ..Default::default() };
        Model { meta, graph: Graph::sequential(ops) }
    }

    /// Inputs for [`tie_model`]: values on both sides of the pixels' threshold 0 and on it.
    pub(crate) fn tie_inputs(n: usize, seed: u64) -> Vec<f32> {
        let mut st = seed;
        (0..n * 100).map(|_| [-1.0f32, -0.5, 0.0, 0.5, 1.0][(lcg(&mut st) * 5.0) as usize % 5]).collect()
    }

    /// The stacked binary layers (`fuse_binary_stacks`: one step writes the next layer's bits
    /// from its dot products) give the same output bits as the plan that writes each binary
    /// layer's f32 outputs, on every kernel set, at batch 1 and batched across the 64-row blocks,
    /// on the binary-input graph (two layers, one stack) and on the tie model (three layers,
    /// ties, constant channels and pad bits; two stacks into one step).
    #[test]
    fn stacked_binary_layers_give_the_same_bits() {
        let n = 137;
        let mut st = 0x0123_4567_89ab_cdefu64;
        let digits: Vec<f32> = (0..n * 784)
            .map(|_| {
                let u = lcg(&mut st);
                if u < 0.6 { 0.0 } else { (u - 0.6) / 0.4 }
            })
            .collect();
        let ties = tie_inputs(n, 99);
        // binary_in_model: one stack and the BatchNorm > ReLU after it as a post (its last
        // Dense is f32: no codes). The shipped binary-input file: a stack, a post and codes.
        let shipped = crate::format::read(include_bytes!("../../../../models/mnist-mlp-binary-in.mdm")).expect("shipped model");
        for (model, xs, merged) in [(binary_in_model(), &digits, 2usize), (tie_model(3), &ties, 2), (shipped, &digits, 3)] {
            for ks in KernelSet::available() {
                for max_batch in [1, 16, 64, 100] {
                    let (s_steps, stacked) = run_stacked(&model, ks, max_batch, xs, n, true);
                    let (u_steps, unstacked) = run_stacked(&model, ks, max_batch, xs, n, false);
                    assert_eq!(stacked, unstacked, "{} ({}) max batch {max_batch}: the stack changed the output bits", ks.name(), ks.bmmm_name());
                    assert_eq!(s_steps + merged, u_steps, "{}: {merged} steps merged?", ks.name());
                }
            }
        }
    }

    /// The rule is what the f32 epilogue computes at every reachable dot product, including a
    /// tie (exactly 0 maps to bit 1), a decreasing channel (negative scale) and the constants.
    #[test]
    fn sign_rule_is_the_interval_of_the_f32_comparison() {
        let ks = KernelSet::generic();
        // k = 5 (dots −5, −3, …, 5), 4 channels, alpha 1 except channel 3 (0.5), bias 1.
        let d = super::BDenseX {
            w: ks.bpack_b(5, 4, &[true; 20]),
            pre: None,
            alpha: vec![1.0, 1.0, 1.0, 0.5],
            bias: vec![1.0; 4],
            act: crate::lower::Act::None,
            then: None,
            post: None,
            quant: None,
        };
        // Channel 0: dot + 1 − 2 >= 0 ⇔ dot >= 1 (tie at 1). Channel 1: −(dot + 1) + 0 >= 0 ⇔
        // dot <= −1 (tie at −1). Channel 2: scale 0, shift 0: always. Channel 3: 0.5·dot + 1 +
        // (−10): never.
        let r = super::sign_rule(&d, &[1.0, -1.0, 0.0, 1.0], &[-2.0, 0.0, 0.0, -10.0]).expect("monotone");
        assert_eq!(r.interval(0), (1, 5));
        assert_eq!(r.interval(1), (-5, -1));
        assert_eq!(r.interval(2), (-5, 5));
        let (lo, hi) = r.interval(3);
        assert!(lo > hi, "never: {lo} {hi}");
        // A NaN scale: no 1 anywhere (NaN >= 0 is false), the "never" rule.
        let r = super::sign_rule(&d, &[f32::NAN; 4], &[0.0; 4]).expect("all 0");
        assert!((0..4).all(|c| r.interval(c).0 > r.interval(c).1));
    }
}
