//! Seeded random-weight graphs for tests: blocks on [`GraphBuilder`] and small whole networks.
//!
//! Weights are He-uniform (so activations neither vanish nor explode through a few layers),
//! biases small and non-zero, BatchNorm statistics away from the identity (so a kernel that
//! skipped the normalisation would show). Everything comes from one [`Rng`]: the same seed gives
//! the same graph on every target.

use mdeploy_core::graph::{Graph, GraphBuilder, Op, ValueId};
use mdeploy_core::model::Tensor;
use mdeploy_core::rng::Rng;

/// ReLU6, as MobileNetV2 uses it (ONNX `Clip(0, 6)`).
pub fn relu6() -> Op {
    Op::Clip { min: 0.0, max: 6.0 }
}

/// `n` He-uniform values for `fan_in` inputs.
pub fn he_uniform(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let limit = (6.0 / fan_in as f32).sqrt();
    (0..n).map(|_| rng.uniform(-limit, limit)).collect()
}

/// A random `Dense fin → fout`.
pub fn dense(rng: &mut Rng, fin: usize, fout: usize) -> Op {
    Op::Dense {
        weight: Tensor::f32(vec![fin, fout], he_uniform(rng, fin * fout, fin)),
        bias: Tensor::f32(vec![fout], (0..fout).map(|_| rng.uniform(-0.1, 0.1)).collect()),
    }
}

/// A random convolution `in_c → out_c`, `k × k`, with `groups` (`groups == in_c == out_c` is
/// depthwise), symmetric padding `pad`.
pub fn conv(rng: &mut Rng, in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize, groups: usize) -> Op {
    let fan_in = in_c / groups * k * k;
    Op::Conv2d {
        weight: Tensor::f32(vec![out_c, in_c / groups, k, k], he_uniform(rng, out_c * fan_in, fan_in)),
        bias: Tensor::f32(vec![out_c], (0..out_c).map(|_| rng.uniform(-0.1, 0.1)).collect()),
        stride: [stride, stride],
        padding: [pad; 4],
        dilation: [1, 1],
        groups,
    }
}

/// A BatchNorm over `c` channels with random (inference) statistics.
pub fn batch_norm(rng: &mut Rng, c: usize) -> Op {
    let mut v = |lo: f32, hi: f32| Tensor::f32(vec![c], (0..c).map(|_| rng.uniform(lo, hi)).collect());
    Op::BatchNorm { gamma: v(0.6, 1.4), beta: v(-0.2, 0.2), mean: v(-0.3, 0.3), var: v(0.5, 1.5), eps: 1e-5 }
}

/// ResNet basic block on `c` channels: conv 3×3 + BN + ReLU, conv 3×3 + BN, add `x`, ReLU.
pub fn residual_block(b: &mut GraphBuilder, rng: &mut Rng, x: ValueId, c: usize) -> ValueId {
    let y = b.chain(x, [conv(rng, c, c, 3, 1, 1, 1), batch_norm(rng, c), Op::Relu]);
    let y = b.chain(y, [conv(rng, c, c, 3, 1, 1, 1), batch_norm(rng, c)]);
    let s = b.push(Op::Add, &[x, y]);
    b.push(Op::Relu, &[s])
}

/// MobileNetV2 inverted residual: 1×1 expand (`in_c × expand`) + BN + ReLU6, 3×3 depthwise
/// (`stride`, pad 1) + BN + ReLU6, 1×1 project to `out_c` + BN, and `+ x` when the shapes allow
/// (stride 1, `in_c == out_c`).
pub fn inverted_residual(
    b: &mut GraphBuilder,
    rng: &mut Rng,
    x: ValueId,
    in_c: usize,
    out_c: usize,
    expand: usize,
    stride: usize,
) -> ValueId {
    let hid = in_c * expand;
    let y = b.chain(x, [conv(rng, in_c, hid, 1, 1, 0, 1), batch_norm(rng, hid), relu6()]);
    let y = b.chain(y, [conv(rng, hid, hid, 3, stride, 1, hid), batch_norm(rng, hid), relu6()]);
    let y = b.chain(y, [conv(rng, hid, out_c, 1, 1, 0, 1), batch_norm(rng, out_c)]);
    if stride == 1 && in_c == out_c {
        b.push(Op::Add, &[x, y])
    } else {
        y
    }
}

/// A small residual network for a `[1, 28, 28]` input: stem conv 3×3 1→8 + BN + ReLU, a
/// residual block, an inverted residual 8→16 stride 2, one 16→16 stride 1 (with its add),
/// global average pool, Dense 16→10, Softmax.
pub fn resnet_tiny(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let mut b = GraphBuilder::new();
    let x = b.chain(GraphBuilder::INPUT, [conv(r, 1, 8, 3, 1, 1, 1), batch_norm(r, 8), Op::Relu]);
    let x = residual_block(&mut b, r, x, 8);
    let x = inverted_residual(&mut b, r, x, 8, 16, 4, 2);
    let x = inverted_residual(&mut b, r, x, 16, 16, 2, 1);
    b.chain(x, [Op::GlobalAvgPool, Op::Flatten, dense(r, 16, 10), Op::Softmax]);
    b.finish()
}

/// Every op of `graph::Op` at least once, for a `[1, 28, 28]` input, ending in a 10-way
/// Softmax: padded/strided/dilated/grouped convolutions, padded ceil-mode pools both ways,
/// a squeeze-and-excitation gate (GlobalAvgPool → Dense-free 1×1 convs → Sigmoid → Mul),
/// Concat of three branches, Reshape, every activation, Dropout and Identity.
pub fn every_op(seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let mut b = GraphBuilder::new();
    // 1×28×28 → 6×14×14
    let x = b.chain(GraphBuilder::INPUT, [conv(r, 1, 6, 3, 2, 1, 1), batch_norm(r, 6), Op::HardSwish]);
    // Branches: dilated 3×3 (pad 2 keeps 14×14), grouped 1×1 + LeakyReLU, max pool 3/1 pad 1.
    let a = b.push(
        Op::Conv2d {
            weight: Tensor::f32(vec![4, 6, 3, 3], he_uniform(r, 4 * 6 * 9, 54)),
            bias: Tensor::f32(vec![4], vec![0.05, -0.05, 0.1, 0.0]),
            stride: [1, 1],
            padding: [2, 2, 2, 2],
            dilation: [2, 2],
            groups: 1,
        },
        &[x],
    );
    let a = b.push(Op::Tanh, &[a]);
    let g = b.chain(x, [conv(r, 6, 6, 1, 1, 0, 3), Op::LeakyRelu { alpha: 0.1 }]);
    let m = b.push(Op::MaxPool2d { kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1], ceil_mode: false }, &[x]);
    let cat = b.push(Op::Concat, &[a, g, m]); // 16×14×14
    // Squeeze-and-excitation: [16,1,1] gate times the map.
    let se = b.chain(
        cat,
        [Op::GlobalAvgPool, conv(r, 16, 4, 1, 1, 0, 1), Op::Relu, conv(r, 4, 16, 1, 1, 0, 1), Op::Sigmoid],
    );
    let gated = b.push(Op::Mul, &[cat, se]);
    let scaled = b.push(Op::Add, &[gated, se]); // broadcast Add too
    // Pools with padding and ceil mode, both windows hanging over the edge: 14 → 8 (avg 3/2
    // pad 1 ceil, padding counted) → 4 (avg 3/2 ceil, unpadded, only the inside counted).
    let p = b.chain(
        scaled,
        [
            Op::AvgPool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], ceil_mode: true, count_include_pad: true },
            Op::Clip { min: -1.0, max: 3.0 },
            Op::AvgPool2d { kernel: [3, 3], stride: [2, 2], padding: [0; 4], ceil_mode: true, count_include_pad: false },
            Op::Dropout { rate: 0.25 },
            Op::Identity,
        ],
    );
    let f = b.chain(p, [Op::Reshape { shape: vec![16, 16] }, Op::Flatten, dense(r, 256, 10), Op::Softmax]);
    b.finish_at(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_validate_with_the_documented_shapes() {
        let g = resnet_tiny(1);
        let s = g.validate(&[1, 28, 28]).unwrap();
        assert_eq!(s.last().unwrap(), &vec![10]);
        assert!(g.as_sequential().is_none(), "the residual adds make it a DAG");
        let g = every_op(1);
        let s = g.validate(&[1, 28, 28]).unwrap();
        assert_eq!(s.last().unwrap(), &vec![10]);
        let names: std::collections::BTreeSet<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(names.len(), 20, "every op of graph::Op appears: {names:?}");
        assert_eq!(resnet_tiny(3), resnet_tiny(3));
        assert_ne!(resnet_tiny(3), resnet_tiny(4));
    }
}
