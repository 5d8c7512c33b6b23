//! The networks mdeploy trains, freshly initialised from a seed.
//!
//! | name | layers | params | MACs/digit |
//! |------|--------|--------|------------|
//! | [`mlp`] | Flatten → Dense 784→128 → ReLU → Dropout 0.2 → Dense 128→10 → Softmax | 101,770 | 101,632 |
//! | [`cnn`] | Conv 1→16 5×5 → ReLU → MaxPool 2 → Conv 16→32 5×5 → ReLU → MaxPool 2 → Flatten → Dense 512→64 → ReLU → Dropout 0.3 → Dense 64→10 → Softmax | 46,730 | 1,083,008 |
//! | [`resnet`] | Conv 1→16 3×3 → BN → ReLU → MaxPool 2 → residual block 16 → residual block 16→32 (stride 2, 1×1 projection) → residual block 32 → GlobalAvgPool → Dense 32→10 → Softmax | 38,890 | 2,622,016 |
//!
//! The MLP is the Keras beginner-tutorial network. The CNN is LeNet-shaped: two 5×5 valid
//! convolutions each halve the resolution through a 2×2 max-pool (28 → 24 → 12 → 8 → 4), so
//! the classifier sees 32 maps of 4×4 = 512 features. It has half the MLP's parameters
//! (a smaller file) and ~10× its compute: on one core with the AVX2 kernels it trains at
//! about 2,200 digits per second (the MLP at about 30,000).
//!
//! The ResNet is the smallest network here with the structures real models have: skip
//! connections (a value read twice), BatchNorm (trained with batch statistics, run with
//! running ones) and a strided 1×1 projection. The stem's max-pool brings 28×28 down to 14×14
//! before the blocks so that it costs ~2.4× the CNN's compute, not ~10×. Its parameter count
//! includes the BatchNorm running statistics (416 of the 38,890).
//!
//! Initialisation: He-normal (`σ = √(2 / fan_in)`) for layers followed by ReLU, Glorot-uniform
//! for the classifier layer feeding the softmax, zero biases.

use crate::graph::{Graph, GraphBuilder, Op, ValueId};
use crate::model::{Metadata, Model, Preprocessing, Provenance, Tensor};
use crate::rng::Rng;

/// `Rng::derive` stream for weight initialisation (training uses others).
const STREAM_INIT: u64 = 0;

/// Architectures [`by_name`] knows.
pub const NAMES: [&str; 3] = ["mlp", "cnn", "resnet"];

/// Builds the architecture called `name` (one of [`NAMES`]).
pub fn by_name(name: &str, seed: u64) -> Option<Model> {
    match name {
        "mlp" => Some(mlp(seed)),
        "cnn" => Some(cnn(seed)),
        "resnet" => Some(resnet(seed)),
        _ => None,
    }
}

fn he_normal(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let std = (2.0 / fan_in as f32).sqrt();
    (0..n).map(|_| rng.normal() * std).collect()
}

fn glorot_uniform(rng: &mut Rng, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
    (0..n).map(|_| rng.uniform(-limit, limit)).collect()
}

fn dense(rng: &mut Rng, fin: usize, fout: usize, relu_follows: bool) -> Op {
    let w = if relu_follows {
        he_normal(rng, fin * fout, fin)
    } else {
        glorot_uniform(rng, fin * fout, fin, fout)
    };
    Op::Dense {
        weight: Tensor::f32(vec![fin, fout], w),
        bias: Tensor::f32(vec![fout], vec![0.0; fout]),
    }
}

fn conv(rng: &mut Rng, ic: usize, oc: usize, k: usize) -> Op {
    let fan_in = ic * k * k;
    Op::conv2d(
        Tensor::f32(vec![oc, ic, k, k], he_normal(rng, oc * fan_in, fan_in)),
        Tensor::f32(vec![oc], vec![0.0; oc]),
        [1, 1],
        [0, 0],
    )
}

/// Metadata every MNIST model carries (training fills in the rest of the provenance).
fn mnist_meta(name: &str, arch: &str, seed: u64) -> Metadata {
    Metadata {
        name: name.into(),
        version: "1.0.0".into(),
        input_shape: vec![1, 28, 28],
        labels: (0..10).map(|d| d.to_string()).collect(),
        preprocessing: Preprocessing {
            recipe: "mnist-digit".into(),
            range: [0.0, 1.0],
            ink_high: true,
        },
        provenance: Provenance {
            arch: arch.into(),
            seed,
            ..Default::default()
        },
    }
}

/// The Keras tutorial MLP (see the module table).
pub fn mlp(seed: u64) -> Model {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    Model {
        meta: mnist_meta(
            "mnist-mlp",
            "mlp: Flatten > Dense 784-128 > ReLU > Dropout 0.2 > Dense 128-10 > Softmax",
            seed,
        ),
        graph: Graph::sequential([
            Op::Flatten,
            dense(&mut rng, 784, 128, true),
            Op::Relu,
            Op::Dropout { rate: 0.2 },
            dense(&mut rng, 128, 10, false),
            Op::Softmax,
        ]),
    }
}

/// An MLP with the given hidden widths (each followed by ReLU, no dropout):
/// `mlp_hidden(seed, &[32])` is Flatten > Dense 784-32 > ReLU > Dense 32-10 > Softmax, the
/// distillation student. Same initialisation rules as [`mlp`].
pub fn mlp_hidden(seed: u64, hidden: &[usize]) -> Model {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    let mut ops = vec![Op::Flatten];
    let mut desc = String::from("Flatten");
    let mut fin = 784;
    for &h in hidden {
        ops.push(dense(&mut rng, fin, h, true));
        ops.push(Op::Relu);
        desc += &format!(" > Dense {fin}-{h} > ReLU");
        fin = h;
    }
    ops.push(dense(&mut rng, fin, 10, false));
    ops.push(Op::Softmax);
    desc += &format!(" > Dense {fin}-10 > Softmax");
    let widths: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
    let name = format!("mlp:{}", widths.join("-"));
    Model {
        meta: mnist_meta("mnist-mlp-student", &format!("{name}: {desc}"), seed),
        graph: Graph::sequential(ops),
    }
}

/// A binary MLP in Larq's shape (QUANT.md, "Binary"): `Flatten > Dense 784-H > BatchNorm >
/// Sign`, then `binary` (>= 1) binary layers `Dense H-H > BatchNorm`, each followed by a Sign
/// except the last (followed by ReLU), then `Dense H-10 > Softmax`. A binary layer is a Dense
/// whose input is a Sign (`quantize --bits 1` stores its weights as ±1); the first and the last
/// Dense read real values and stay 8-bit. BatchNorm before each Sign learns the per-channel
/// threshold. Weights f32 (the latent weights QAT trains).
pub fn mlp_binary(seed: u64, hidden: usize, binary: usize) -> Model {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    let bn = bn_identity;
    let binary = binary.max(1);
    let mut ops = vec![Op::Flatten, dense(&mut rng, 784, hidden, true), bn(hidden), Op::Sign];
    for l in 0..binary {
        ops.extend([dense(&mut rng, hidden, hidden, true), bn(hidden)]);
        ops.push(if l + 1 < binary { Op::Sign } else { Op::Relu });
    }
    ops.extend([dense(&mut rng, hidden, 10, false), Op::Softmax]);
    let desc = format!(
        "mlp-binary:{hidden}x{binary}: Flatten > Dense 784-{hidden} > BatchNorm > Sign > {binary} binary Dense {hidden}-{hidden} > BatchNorm (> Sign between them) > ReLU > Dense {hidden}-10 > Softmax"
    );
    Model { meta: mnist_meta("mnist-mlp-binary", &desc, seed), graph: Graph::sequential(ops) }
}

/// A binary MLP whose first layer is binary too (QUANT.md, "Binary input"): `Flatten >
/// BatchNorm 784 > Sign`, then `binary` (>= 1) layers `Dense > BatchNorm` (784-H, then H-H),
/// each followed by a Sign except the last (followed by ReLU), then `Dense H-10 > Softmax`.
/// The BatchNorm over the 784 pixels learns each pixel's threshold: its Sign is +1 where
/// `(x - mean) · gamma / sqrt(var + eps) + beta >= 0`. Every Dense except the last reads a
/// Sign, so `quantize --bits 1` stores all the hidden weights as ±1 and the whole hidden stack
/// runs on XOR + popcount; only the last Dense stays 8-bit. This breaks Larq's rule (keep the
/// first layer at 8 bits): it trades the pixels' grey levels for a 784-bit input.
pub fn mlp_binary_in(seed: u64, hidden: usize, binary: usize) -> Model {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    let binary = binary.max(1);
    // The pixels' BatchNorm starts with beta = -0.1, not 0: a pixel that is 0 in every digit
    // of a training batch (the rarely inked ones) normalises to exactly 0 there, whose Sign is
    // +1, while at inference its running mean (> 0) makes a blank pixel slightly negative, -1:
    // with beta = 0 the blank background flipped between training and inference (test accuracy
    // 79.65 % against 92 % on the training batches, QUANT.md "Binary input"). Below 0, a blank
    // pixel is -1 in both; inside the STE's |x| <= 1 window, so beta still learns.
    let mut input_bn = bn_identity(784);
    if let Op::BatchNorm { beta, .. } = &mut input_bn {
        *beta = Tensor::f32(vec![784], vec![-0.1; 784]);
    }
    let mut ops = vec![Op::Flatten, input_bn, Op::Sign];
    let mut fin = 784;
    for l in 0..binary {
        ops.extend([dense(&mut rng, fin, hidden, true), bn_identity(hidden)]);
        ops.push(if l + 1 < binary { Op::Sign } else { Op::Relu });
        fin = hidden;
    }
    ops.extend([dense(&mut rng, hidden, 10, false), Op::Softmax]);
    let desc = format!(
        "mlp-binary-in:{hidden}x{binary}: Flatten > BatchNorm 784 > Sign > {binary} binary Dense (784-{hidden}, then {hidden}-{hidden}) > BatchNorm (> Sign between them) > ReLU > Dense {hidden}-10 > Softmax"
    );
    Model { meta: mnist_meta("mnist-mlp-binary-in", &desc, seed), graph: Graph::sequential(ops) }
}

/// A BatchNorm that starts as the identity (gamma 1, beta 0, mean 0, var 1).
fn bn_identity(c: usize) -> Op {
    Op::BatchNorm {
        gamma: Tensor::f32(vec![c], vec![1.0; c]),
        beta: Tensor::f32(vec![c], vec![0.0; c]),
        mean: Tensor::f32(vec![c], vec![0.0; c]),
        var: Tensor::f32(vec![c], vec![1.0; c]),
        eps: 1e-5,
    }
}

/// An architecture from a spec: one of [`NAMES`], or `mlp:H` / `mlp:H1-H2-...` (hidden widths
/// 1..=4096, at most 8 layers) for [`mlp_hidden`], or `mlp-binary:H` / `mlp-binary:HxL` (width
/// 1..=4096, 1..=8 binary layers, default 1) for [`mlp_binary`], or `mlp-binary-in:H` /
/// `mlp-binary-in:HxL` (the same bounds; L counts the binary layers, the first included) for
/// [`mlp_binary_in`].
pub fn from_spec(spec: &str, seed: u64) -> Result<Model, String> {
    if let Some(m) = by_name(spec, seed) {
        return Ok(m);
    }
    if let Some(rest) = spec.strip_prefix("mlp-binary-in:") {
        let (h, l) = rest.split_once('x').unwrap_or((rest, "1"));
        let h = h.parse::<usize>().ok().filter(|h| (1..=4096).contains(h));
        let l = l.parse::<usize>().ok().filter(|l| (1..=8).contains(l));
        return match (h, l) {
            (Some(h), Some(l)) => Ok(mlp_binary_in(seed, h, l)),
            _ => Err(format!(
                "architecture {spec:?}: expected mlp-binary-in:H or mlp-binary-in:HxL (width 1..=4096, 1..=8 binary layers counting the first, e.g. mlp-binary-in:256x2)"
            )),
        };
    }
    if let Some(rest) = spec.strip_prefix("mlp-binary:") {
        let (h, l) = rest.split_once('x').unwrap_or((rest, "1"));
        let h = h.parse::<usize>().ok().filter(|h| (1..=4096).contains(h));
        let l = l.parse::<usize>().ok().filter(|l| (1..=8).contains(l));
        return match (h, l) {
            (Some(h), Some(l)) => Ok(mlp_binary(seed, h, l)),
            _ => Err(format!(
                "architecture {spec:?}: expected mlp-binary:H or mlp-binary:HxL (width 1..=4096, 1..=8 binary layers, e.g. mlp-binary:512x1)"
            )),
        };
    }
    let bad = || {
        format!(
            "architecture {spec:?}: expected mlp, cnn, resnet or mlp:H[-H...] with hidden widths (e.g. mlp:32 or mlp:64-32)"
        )
    };
    let widths = spec.strip_prefix("mlp:").ok_or_else(bad)?;
    let hidden = widths
        .split('-')
        .map(|w| w.parse::<usize>().ok().filter(|w| (1..=4096).contains(w)))
        .collect::<Option<Vec<_>>>()
        .filter(|h| !h.is_empty() && h.len() <= 8)
        .ok_or_else(bad)?;
    Ok(mlp_hidden(seed, &hidden))
}

/// The small LeNet-style CNN (see the module table).
pub fn cnn(seed: u64) -> Model {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    Model {
        meta: mnist_meta(
            "mnist-cnn",
            "cnn: Conv 1-16 5x5 > ReLU > MaxPool 2 > Conv 16-32 5x5 > ReLU > MaxPool 2 > Flatten > \
             Dense 512-64 > ReLU > Dropout 0.3 > Dense 64-10 > Softmax",
            seed,
        ),
        graph: Graph::sequential([
            conv(&mut rng, 1, 16, 5),
            Op::Relu,
            Op::maxpool2d([2, 2], [2, 2]),
            conv(&mut rng, 16, 32, 5),
            Op::Relu,
            Op::maxpool2d([2, 2], [2, 2]),
            Op::Flatten,
            dense(&mut rng, 512, 64, true),
            Op::Relu,
            Op::Dropout { rate: 0.3 },
            dense(&mut rng, 64, 10, false),
            Op::Softmax,
        ]),
    }
}

// ---- graph builders (residual and inverted-residual networks) ----

/// A He-initialised convolution (`groups` divides both channel counts) with zero bias and
/// symmetric padding `pad` on all four sides.
fn conv_op(
    rng: &mut Rng,
    ic: usize,
    oc: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Op {
    let fan_in = ic / groups * k * k;
    Op::Conv2d {
        weight: Tensor::f32(
            vec![oc, ic / groups, k, k],
            he_normal(rng, oc * fan_in, fan_in),
        ),
        bias: Tensor::f32(vec![oc], vec![0.0; oc]),
        stride: [stride, stride],
        padding: [pad; 4],
        dilation: [1, 1],
        groups,
    }
}

/// A fresh BatchNorm (identity statistics: mean 0, variance 1; gamma 1, beta 0), eps 1e-5
/// as PyTorch.
fn batchnorm_op(c: usize) -> Op {
    Op::BatchNorm {
        gamma: Tensor::f32(vec![c], vec![1.0; c]),
        beta: Tensor::f32(vec![c], vec![0.0; c]),
        mean: Tensor::f32(vec![c], vec![0.0; c]),
        var: Tensor::f32(vec![c], vec![1.0; c]),
        eps: 1e-5,
    }
}

/// A ResNet basic block: `relu(bn(conv3x3(relu(bn(conv3x3_s(x))))) + skip(x))` where the
/// skip is `x`, or a strided 1×1 convolution + BatchNorm when the shape changes. `x` is read
/// twice (the main branch and the skip), which is what exercises gradient accumulation.
pub fn residual_block(
    b: &mut GraphBuilder,
    rng: &mut Rng,
    x: ValueId,
    ic: usize,
    oc: usize,
    stride: usize,
) -> ValueId {
    let y = b.push(conv_op(rng, ic, oc, 3, stride, 1, 1), &[x]);
    let y = b.push(batchnorm_op(oc), &[y]);
    let y = b.push(Op::Relu, &[y]);
    let y = b.push(conv_op(rng, oc, oc, 3, 1, 1, 1), &[y]);
    let y = b.push(batchnorm_op(oc), &[y]);
    let skip = if stride == 1 && ic == oc {
        x
    } else {
        let p = b.push(conv_op(rng, ic, oc, 1, stride, 0, 1), &[x]);
        b.push(batchnorm_op(oc), &[p])
    };
    let y = b.push(Op::Add, &[y, skip]);
    b.push(Op::Relu, &[y])
}

/// A MobileNetV2 inverted residual block (Sandler et al. 2018):
///
/// ```text
/// x ─ 1×1 conv ic→ic·expand ─ BN ─ ReLU6 ─ 3×3 depthwise (stride) ─ BN ─ ReLU6 ─ 1×1 conv →oc ─ BN ─┬─
/// └──────────────────────────────── Add (only when stride 1 and ic == oc) ──────────────────────────┘
/// ```
///
/// `expand == 1` skips the expansion convolution (the network's first block). The stride-2
/// variant pads the depthwise convolution asymmetrically, `[0, 0, 1, 1]`, as TensorFlow's
/// `SAME` padding does on even inputs (the case exporters from Keras produce, and a case
/// symmetric-padding code gets wrong); stride 1 pads 1 on every side.
pub fn mobilenet_block(
    b: &mut GraphBuilder,
    rng: &mut Rng,
    x: ValueId,
    ic: usize,
    oc: usize,
    expand: usize,
    stride: usize,
) -> ValueId {
    let hidden = ic * expand.max(1);
    let relu6 = || Op::Clip { min: 0.0, max: 6.0 };
    let mut y = x;
    if expand > 1 {
        y = b.push(conv_op(rng, ic, hidden, 1, 1, 0, 1), &[y]);
        y = b.push(batchnorm_op(hidden), &[y]);
        y = b.push(relu6(), &[y]);
    }
    let mut dw = conv_op(rng, hidden, hidden, 3, stride, 1, hidden);
    if stride == 2 {
        if let Op::Conv2d { padding, .. } = &mut dw {
            *padding = [0, 0, 1, 1];
        }
    }
    y = b.push(dw, &[y]);
    y = b.push(batchnorm_op(hidden), &[y]);
    y = b.push(relu6(), &[y]);
    y = b.push(conv_op(rng, hidden, oc, 1, 1, 0, 1), &[y]);
    y = b.push(batchnorm_op(oc), &[y]);
    if stride == 1 && ic == oc {
        y = b.push(Op::Add, &[x, y]);
    }
    y
}

/// Replaces every BatchNorm's statistics and affine parameters with random ones (gamma and
/// variance in [0.5, 1.5], beta and mean in [−0.5, 0.5]), and every bias with small random
/// values: fresh builders give identity BatchNorms and zero biases, which would hide layout
/// bugs from a parity suite.
pub fn randomize_for_parity(graph: &mut Graph, seed: u64) {
    let mut rng = Rng::derive(seed, STREAM_PARITY);
    let mut fill = |t: &mut Tensor, lo: f32, hi: f32| {
        if let Some(v) = t.as_f32_mut() {
            v.iter_mut().for_each(|x| *x = rng.uniform(lo, hi));
        }
    };
    for node in &mut graph.nodes {
        match &mut node.op {
            Op::BatchNorm {
                gamma,
                beta,
                mean,
                var,
                ..
            } => {
                fill(gamma, 0.5, 1.5);
                fill(beta, -0.5, 0.5);
                fill(mean, -0.5, 0.5);
                fill(var, 0.5, 1.5);
            }
            Op::Dense { bias, .. } | Op::Conv2d { bias, .. } => fill(bias, -0.1, 0.1),
            _ => {}
        }
    }
}

/// `Rng::derive` stream of [`randomize_for_parity`].
const STREAM_PARITY: u64 = 100;

/// The small ResNet (see the module table) with MNIST metadata.
pub fn resnet(seed: u64) -> Model {
    Model {
        meta: mnist_meta(
            "mnist-resnet",
            "resnet: Conv 1-16 3x3 > BN > ReLU > MaxPool 2 > ResBlock 16 > ResBlock 16-32 stride 2 (1x1 projection) > \
             ResBlock 32 > GlobalAvgPool > Dense 32-10 > Softmax (ResBlock: Conv 3x3 > BN > ReLU > Conv 3x3 > BN, + skip, ReLU)",
            seed,
        ),
        graph: resnet_graph(seed),
    }
}

/// The graph of [`resnet`]: see the module table.
pub fn resnet_graph(seed: u64) -> Graph {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    let mut b = GraphBuilder::new();
    let x = b.push(conv_op(&mut rng, 1, 16, 3, 1, 1, 1), &[GraphBuilder::INPUT]);
    let x = b.push(batchnorm_op(16), &[x]);
    let x = b.push(Op::Relu, &[x]);
    let x = b.push(Op::maxpool2d([2, 2], [2, 2]), &[x]);
    let x = residual_block(&mut b, &mut rng, x, 16, 16, 1);
    let x = residual_block(&mut b, &mut rng, x, 16, 32, 2);
    let x = residual_block(&mut b, &mut rng, x, 32, 32, 1);
    let x = b.push(Op::GlobalAvgPool, &[x]);
    let x = b.push(Op::Flatten, &[x]);
    let w = glorot_uniform(&mut rng, 32 * 10, 32, 10);
    let x = b.push(
        Op::Dense {
            weight: Tensor::f32(vec![32, 10], w),
            bias: Tensor::f32(vec![10], vec![0.0; 10]),
        },
        &[x],
    );
    b.push(Op::Softmax, &[x]);
    b.finish()
}

/// A small MobileNetV2-style graph for parity suites (random weights, not trained): a 3×3
/// stem 1→8 + BN + ReLU6, then [`mobilenet_block`]s 8→8 (expand 4, stride 1, residual),
/// 8→16 (expand 4, stride 2), 16→16 (expand 1, stride 1, residual), GlobalAvgPool, Flatten,
/// Dense 16→10, Softmax; its BatchNorms and biases randomised ([`randomize_for_parity`]).
pub fn mobilenet_graph(seed: u64) -> Graph {
    let mut rng = Rng::derive(seed, STREAM_INIT);
    let mut b = GraphBuilder::new();
    let x = b.push(conv_op(&mut rng, 1, 8, 3, 1, 1, 1), &[GraphBuilder::INPUT]);
    let x = b.push(batchnorm_op(8), &[x]);
    let x = b.push(Op::Clip { min: 0.0, max: 6.0 }, &[x]);
    let x = mobilenet_block(&mut b, &mut rng, x, 8, 8, 4, 1);
    let x = mobilenet_block(&mut b, &mut rng, x, 8, 16, 4, 2);
    let x = mobilenet_block(&mut b, &mut rng, x, 16, 16, 1, 1);
    let x = b.push(Op::GlobalAvgPool, &[x]);
    let x = b.push(Op::Flatten, &[x]);
    let w = glorot_uniform(&mut rng, 16 * 10, 16, 10);
    let x = b.push(
        Op::Dense {
            weight: Tensor::f32(vec![16, 10], w),
            bias: Tensor::f32(vec![10], vec![0.0; 10]),
        },
        &[x],
    );
    b.push(Op::Softmax, &[x]);
    let mut g = b.finish();
    randomize_for_parity(&mut g, seed);
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_validate_and_match_the_documented_sizes() {
        let m = mlp(1);
        m.validate().unwrap();
        assert_eq!(m.param_count(), 101_770);
        assert_eq!(m.macs(), 101_632);
        assert_eq!(m.output_len(), 10);
        let c = cnn(1);
        c.validate().unwrap();
        assert_eq!(c.param_count(), 46_730);
        assert_eq!(c.macs(), 1_083_008);
        assert_eq!(c.output_len(), 10);
        assert_ne!(mlp(1), mlp(2));
        assert_eq!(cnn(5), cnn(5));
    }

    /// `mlp-binary-in:HxL`: a Sign right after the pixels' BatchNorm, so every Dense but the
    /// last reads a Sign (the ones `quantize --bits 1` binarizes); L counts the first layer.
    #[test]
    fn binary_input_mlp_has_a_sign_before_every_dense_but_the_last() {
        let m = from_spec("mlp-binary-in:64x2", 3).expect("spec");
        m.validate().expect("valid");
        assert_eq!(m.output_len(), 10);
        let ops: Vec<&Op> = m.graph.nodes.iter().map(|n| &n.op).collect();
        assert!(matches!(ops[..3], [Op::Flatten, Op::BatchNorm { .. }, Op::Sign]), "{ops:?}");
        let dense: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| matches!(o, Op::Dense { .. })).map(|(i, _)| i).collect();
        assert_eq!(dense.len(), 3);
        let reads_sign = |i: usize| matches!(ops[i - 1], Op::Sign);
        assert!(reads_sign(dense[0]) && reads_sign(dense[1]) && !reads_sign(dense[2]), "{ops:?}");
        let shape = |i: usize| match ops[i] {
            Op::Dense { weight, .. } => weight.shape.clone(),
            _ => unreachable!(),
        };
        assert_eq!((shape(dense[0]), shape(dense[1]), shape(dense[2])), (vec![784, 64], vec![64, 64], vec![64, 10]));
        // 784 pixel thresholds (4 BatchNorm vectors) + 2 hidden BatchNorms + the three Dense.
        assert_eq!(m.param_count(), 4 * 784 + 784 * 64 + 64 + 4 * 64 + 64 * 64 + 64 + 4 * 64 + 64 * 10 + 10);
        assert_eq!(from_spec("mlp-binary-in:64", 3).expect("spec").graph.nodes.iter().filter(|n| matches!(n.op, Op::Dense { .. })).count(), 2);
        assert_eq!(from_spec("mlp-binary-in:64x2", 3), Ok(m));
        for bad in ["mlp-binary-in:", "mlp-binary-in:0", "mlp-binary-in:64x0", "mlp-binary-in:64x9", "mlp-binary-in:5000", "mlp-binary-in:ax2"] {
            assert!(from_spec(bad, 1).is_err_and(|e| e.contains("mlp-binary-in:H")), "{bad}");
        }
    }

    #[test]
    fn resnet_and_mobilenet_graphs_validate() {
        let r = resnet(1);
        r.validate().unwrap();
        assert_eq!(r.output_len(), 10);
        assert_eq!(by_name("resnet", 1), Some(r));
        let g = resnet_graph(1);
        let shapes = g.validate(&[1, 28, 28]).unwrap();
        assert_eq!(shapes.last().unwrap(), &vec![10]);
        assert!(g.as_sequential().is_none());
        assert!(g.param_count() < 100_000, "{}", g.param_count());
        assert_eq!(g.param_count(), 38_890);
        assert_eq!(g.macs(&[1, 28, 28]), 2_622_016);
        assert_eq!(resnet_graph(3), resnet_graph(3));
        assert_ne!(resnet_graph(3), resnet_graph(4));
        let m = mobilenet_graph(1);
        let shapes = m.validate(&[1, 28, 28]).unwrap();
        assert_eq!(shapes.last().unwrap(), &vec![10]);
        // The stride-2 block halves 28 to 14 with the asymmetric "SAME" padding.
        assert!(shapes.iter().any(|s| s == &vec![32, 14, 14]));
        let adds = m.nodes.iter().filter(|n| matches!(n.op, Op::Add)).count();
        assert_eq!(
            adds, 2,
            "the stride-1 blocks with equal channels are residual, the stride-2 one is not"
        );
    }
}
