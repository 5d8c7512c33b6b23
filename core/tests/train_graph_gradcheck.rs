//! Every graph op's backward pass (and the distillation loss's) against central finite differences, on graphs (residual
//! blocks, broadcasts, concatenations), plus BatchNorm's train/eval semantics.
//!
//! The scalar checked is `L = Σ r ⊙ y` for a fixed random probe `r`, so `∂L/∂y = r` and the
//! analytic gradients come from `GraphNet::backward(r)`. The forward pass is f32; the loss
//! is summed in f64 and the differences are central, at several steps (see `check_one`), with
//! a relative tolerance. Shapes are small and odd on purpose (non-square kernels, stride ≠ padding,
//! asymmetric padding) so that index mix-ups cannot cancel out.
#![allow(clippy::needless_range_loop)]

use mdeploy_core::graph::{Graph, GraphBuilder, Op, ValueId};
use mdeploy_core::model::Tensor;
use mdeploy_core::rng::Rng;
use mdeploy_core::train::graph_net::{GraphNet, Mode, Output};

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn t(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(
        shape.to_vec(),
        randn(rng, n).into_iter().map(|v| v * scale).collect(),
    )
}

fn dense(rng: &mut Rng, fin: usize, fout: usize) -> Op {
    Op::Dense {
        weight: t(rng, &[fin, fout], 0.5),
        bias: t(rng, &[fout], 0.5),
    }
}

#[allow(clippy::too_many_arguments)]
fn conv(
    rng: &mut Rng,
    ic: usize,
    oc: usize,
    k: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
) -> Op {
    Op::Conv2d {
        weight: t(rng, &[oc, ic / groups, k[0], k[1]], 0.5),
        bias: t(rng, &[oc], 0.5),
        stride,
        padding,
        dilation,
        groups,
    }
}

fn conv3(rng: &mut Rng, ic: usize, oc: usize) -> Op {
    conv(rng, ic, oc, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1)
}

/// A BatchNorm with non-trivial running statistics (eval mode must use them).
fn bn(rng: &mut Rng, c: usize) -> Op {
    Op::BatchNorm {
        gamma: Tensor::f32(vec![c], (0..c).map(|_| 1.0 + 0.3 * rng.normal()).collect()),
        beta: t(rng, &[c], 0.3),
        mean: t(rng, &[c], 0.3),
        var: Tensor::f32(vec![c], (0..c).map(|_| 0.5 + rng.next_f32()).collect()),
        eps: 1e-5,
    }
}

/// `L(graph, x)`; dropout masks come from a fresh, fixed RNG (every evaluation draws the same).
fn loss(graph: &Graph, shape: &[usize], x: &[f32], n: usize, r: &[f32], mode: Mode) -> f64 {
    let mut net = GraphNet::new(graph, shape, Output::Full).unwrap();
    let y = net.forward(graph, x, n, mode, &mut Rng::new(99)).unwrap();
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central differences of `f` at steps 1e-3, 3e-4, 1e-4: `analytic` must match one of them.
/// A wide step may straddle a kink (ReLU, Clip, a max-pool winner changing) and a narrow one
/// drowns in f32 rounding; a wrong gradient matches at no step.
fn check_one(analytic: f32, f: impl Fn(f32) -> f64, what: &str) {
    let mut seen = Vec::new();
    for eps in [1e-3f32, 3e-4, 1e-4] {
        let num = (f(eps) - f(-eps)) / (2.0 * eps as f64);
        let a = analytic as f64;
        if (a - num).abs() <= 3e-3 + 2e-2 * a.abs().max(num.abs()) {
            return;
        }
        seen.push(num);
    }
    panic!("{what}: analytic {analytic} vs numeric {seen:?} (steps 1e-3, 3e-4, 1e-4)");
}

/// Checks d/dinput and d/d(every trainable tensor) of `graph` on `n` random samples.
/// Returns how many partial derivatives were compared.
fn check(graph: &Graph, shape: &[usize], n: usize, mode: Mode, seed: u64) -> usize {
    let mut rng = Rng::new(seed);
    let mut net = GraphNet::new(graph, shape, Output::Full).unwrap();
    let x = randn(&mut rng, n * net.input_len());
    let r = randn(&mut rng, n * net.output_len());
    net.forward(graph, &x, n, mode, &mut Rng::new(99)).unwrap();
    net.backward(graph, &r, true).unwrap();
    let mut checked = 0;

    let dx = net.input_grad().to_vec();
    assert_eq!(dx.len(), x.len());
    for i in 0..x.len() {
        let f = |delta: f32| {
            let mut xp = x.clone();
            xp[i] += delta;
            loss(graph, shape, &xp, n, &r, mode)
        };
        check_one(dx[i], f, &format!("{mode:?} d/dx[{i}]"));
        checked += 1;
    }

    for (node, g) in net.grads().iter().enumerate() {
        let Some(g) = g else { continue };
        for (slot, grad) in [(0, &g.weight), (1, &g.bias)] {
            for j in 0..grad.len() {
                let f = |delta: f32| {
                    let mut m = graph.clone();
                    m.nodes[node].op.tensors_mut()[slot].as_f32_mut().unwrap()[j] += delta;
                    loss(&m, shape, &x, n, &r, mode)
                };
                check_one(
                    grad[j],
                    f,
                    &format!("{mode:?} {} slot {slot} [{j}]", graph.describe_node(node)),
                );
                checked += 1;
            }
        }
    }
    checked
}

/// Both modes (they differ for BatchNorm and Dropout only).
fn check_both(graph: &Graph, shape: &[usize], n: usize, seed: u64) {
    assert!(check(graph, shape, n, Mode::Eval, seed) > 0);
    assert!(check(graph, shape, n, Mode::Train, seed + 1000) > 0);
}

#[test]
fn dense_and_flat_activations() {
    let mut rng = Rng::new(1);
    let g = Graph::sequential([
        dense(&mut rng, 5, 6),
        Op::LeakyRelu { alpha: 0.1 },
        dense(&mut rng, 6, 6),
        Op::Tanh,
        dense(&mut rng, 6, 6),
        Op::Sigmoid,
        dense(&mut rng, 6, 4),
        Op::Softmax,
    ]);
    check_both(&g, &[5], 3, 10);
}

#[test]
fn relu_clip_hardswish_identity_reshape() {
    let mut rng = Rng::new(2);
    // Scale the input up so that the clip bounds and HardSwish's ±3 knees are crossed.
    let g = Graph::sequential([
        dense(&mut rng, 6, 12),
        Op::Clip {
            min: -0.5,
            max: 1.0,
        },
        Op::Identity,
        dense(&mut rng, 12, 12),
        Op::HardSwish,
        Op::Reshape {
            shape: vec![3, 2, 2],
        },
        Op::Relu,
        Op::Flatten,
        dense(&mut rng, 12, 3),
    ]);
    check_both(&g, &[6], 3, 11);
}

#[test]
fn conv_with_stride_asymmetric_padding_dilation_and_groups() {
    let mut rng = Rng::new(3);
    // 4 input channels in 2 groups, 3×2 kernel, stride (2, 1), padding t1 l2 b0 r1, dilation (1, 2).
    let g = Graph::sequential([conv(
        &mut rng,
        4,
        6,
        [3, 2],
        [2, 1],
        [1, 2, 0, 1],
        [1, 2],
        2,
    )]);
    check(&g, &[4, 5, 6], 2, Mode::Eval, 12);
    // The plain case the CNN uses.
    let g = Graph::sequential([conv(&mut rng, 1, 2, [3, 3], [1, 1], [0; 4], [1, 1], 1)]);
    check(&g, &[1, 6, 6], 2, Mode::Eval, 13);
}

#[test]
fn depthwise_conv_stride_2_asymmetric_padding() {
    let mut rng = Rng::new(4);
    // MobileNet's stride-2 depthwise 3×3 with TF "SAME" padding on an even input: pad 0 top/left, 1 bottom/right.
    let g = Graph::sequential([
        conv(&mut rng, 3, 3, [3, 3], [2, 2], [0, 0, 1, 1], [1, 1], 3),
        Op::Clip { min: 0.0, max: 6.0 },
    ]);
    check(&g, &[3, 6, 6], 2, Mode::Eval, 14);
    // Depth multiplier 2 (6 outputs from 3 groups), asymmetric the other way.
    let g = Graph::sequential([conv(
        &mut rng,
        3,
        6,
        [3, 3],
        [2, 2],
        [1, 1, 0, 0],
        [1, 1],
        3,
    )]);
    check(&g, &[3, 5, 5], 2, Mode::Eval, 15);
}

#[test]
fn batchnorm_backward_in_train_and_eval_mode() {
    let mut rng = Rng::new(5);
    let g = Graph::sequential([conv3(&mut rng, 2, 3), bn(&mut rng, 3), Op::Relu]);
    check_both(&g, &[2, 4, 3], 3, 16);
    // Over a flat input ([C] features, statistics over the batch only).
    let g = Graph::sequential([dense(&mut rng, 4, 5), bn(&mut rng, 5), Op::Tanh]);
    check_both(&g, &[4], 4, 17);
}

/// conv → BN → ReLU → conv → BN, plus the skip connection (identity or a strided 1×1
/// projection with its own BN), Add, ReLU: `x` has two consumers.
fn residual(
    b: &mut GraphBuilder,
    rng: &mut Rng,
    x: ValueId,
    ic: usize,
    oc: usize,
    stride: usize,
) -> ValueId {
    let s = [stride, stride];
    let y = b.push(conv(rng, ic, oc, [3, 3], s, [1, 1, 1, 1], [1, 1], 1), &[x]);
    let y = b.push(bn(rng, oc), &[y]);
    let y = b.push(Op::Relu, &[y]);
    let y = b.push(conv3(rng, oc, oc), &[y]);
    let y = b.push(bn(rng, oc), &[y]);
    let skip = if stride == 1 && ic == oc {
        x
    } else {
        let p = b.push(conv(rng, ic, oc, [1, 1], s, [0; 4], [1, 1], 1), &[x]);
        b.push(bn(rng, oc), &[p])
    };
    let y = b.push(Op::Add, &[y, skip]);
    b.push(Op::Relu, &[y])
}

#[test]
fn residual_blocks_with_batchnorm() {
    let mut rng = Rng::new(6);
    let mut b = GraphBuilder::new();
    let x = b.push(conv3(&mut rng, 1, 2), &[0]);
    let x = residual(&mut b, &mut rng, x, 2, 2, 1);
    let x = residual(&mut b, &mut rng, x, 2, 3, 2);
    let x = b.push(Op::GlobalAvgPool, &[x]);
    let x = b.push(Op::Flatten, &[x]);
    b.push(dense(&mut rng, 3, 3), &[x]);
    let g = b.finish();
    check_both(&g, &[1, 5, 4], 3, 18);
}

#[test]
fn mul_and_add_broadcast_per_channel() {
    let mut rng = Rng::new(7);
    let mut b = GraphBuilder::new();
    let x = b.push(conv3(&mut rng, 2, 3), &[0]);
    // Squeeze-and-excitation: x · sigmoid(dense(gap(x))) as [C, 1, 1] (broadcast on the right).
    let s = b.push(Op::GlobalAvgPool, &[x]);
    let s = b.push(Op::Flatten, &[s]);
    let s = b.push(dense(&mut rng, 3, 3), &[s]);
    let s = b.push(Op::Sigmoid, &[s]);
    let s3 = b.push(
        Op::Reshape {
            shape: vec![3, 1, 1],
        },
        &[s],
    );
    let m = b.push(Op::Mul, &[x, s3]);
    // A flat [C] operand on the left of an Add, and of a Mul.
    let a = b.push(Op::Add, &[s, m]);
    let m2 = b.push(Op::Mul, &[s, a]);
    // Equal shapes, and a value multiplied by itself (two gradient contributions from one node).
    let e = b.push(Op::Mul, &[m2, m2]);
    let e = b.push(Op::Add, &[e, x]);
    b.push(Op::Flatten, &[e]);
    let g = b.finish();
    check(&g, &[2, 3, 4], 2, Mode::Eval, 19);
}

#[test]
fn concat_of_branches_and_of_a_value_with_itself() {
    let mut rng = Rng::new(8);
    let mut b = GraphBuilder::new();
    let l = b.push(conv3(&mut rng, 1, 2), &[0]);
    let r = b.push(
        conv(&mut rng, 1, 3, [1, 1], [1, 1], [0; 4], [1, 1], 1),
        &[0],
    );
    let c = b.push(Op::Concat, &[l, r, l]);
    let c = b.push(Op::Tanh, &[c]);
    let c2 = b.push(Op::Concat, &[c, 0]);
    b.push(conv3(&mut rng, 8, 2), &[c2]);
    let g = b.finish();
    check(&g, &[1, 4, 3], 2, Mode::Eval, 20);
}

#[test]
fn pooling_with_padding_and_ceil_mode() {
    let mut rng = Rng::new(9);
    for ceil_mode in [false, true] {
        // Overlapping 3×2 windows, stride (2, 1), asymmetric padding: padded cells never win.
        let g = Graph::sequential([Op::MaxPool2d {
            kernel: [3, 2],
            stride: [2, 1],
            padding: [1, 0, 0, 1],
            ceil_mode,
        }]);
        check(&g, &[2, 6, 5], 2, Mode::Eval, 21);
        for count_include_pad in [false, true] {
            let g = Graph::sequential([Op::AvgPool2d {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1, 1, 0],
                ceil_mode,
                count_include_pad,
            }]);
            check(&g, &[2, 6, 5], 2, Mode::Eval, 22);
        }
    }
    // Plain LeNet pooling, then GlobalAvgPool.
    let g = Graph::sequential([
        conv3(&mut rng, 1, 2),
        Op::MaxPool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0; 4],
            ceil_mode: false,
        },
        Op::GlobalAvgPool,
    ]);
    check(&g, &[1, 4, 6], 2, Mode::Eval, 23);
}

#[test]
fn dropout_in_training_mode() {
    let g = Graph::sequential([Op::Dropout { rate: 0.4 }, Op::Tanh]);
    check(&g, &[20], 3, Mode::Train, 24);
    let g = Graph::sequential([Op::Dropout { rate: 0.4 }]);
    let mut net = GraphNet::new(&g, &[1000], Output::Full).unwrap();
    let x = vec![1.0f32; 1000];
    let zeros = net
        .forward(&g, &x, 1, Mode::Train, &mut Rng::new(1))
        .unwrap()
        .iter()
        .filter(|&&v| v == 0.0)
        .count();
    assert!(
        (300..500).contains(&zeros),
        "{zeros} of 1000 dropped at rate 0.4"
    );
    assert_eq!(
        net.forward(&g, &x, 1, Mode::Eval, &mut Rng::new(1))
            .unwrap(),
        &x[..]
    );
}

#[test]
fn pooling_values_follow_pytorch() {
    // 1×3×3 input 1..9, 2×2 windows, stride 2, pad 1 top/left, ceil mode: windows
    // (pad,pad,pad,1) (pad,pad,2,3) (pad,4,pad,7) (5,6,8,9).
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let run = |op: Op| {
        let g = Graph::sequential([op]);
        let mut net = GraphNet::new(&g, &[1, 3, 3], Output::Full).unwrap();
        net.forward(&g, &x, 1, Mode::Eval, &mut Rng::new(0))
            .unwrap()
            .to_vec()
    };
    let max = run(Op::MaxPool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [1, 1, 0, 0],
        ceil_mode: false,
    });
    assert_eq!(max, vec![1.0, 3.0, 7.0, 9.0]);
    let avg = |count_include_pad| {
        run(Op::AvgPool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1, 1, 1],
            ceil_mode: true,
            count_include_pad,
        })
    };
    assert_eq!(avg(false), vec![1.0, 2.5, 5.5, 7.0]);
    assert_eq!(avg(true), vec![0.25, 1.25, 2.75, 7.0]);
}

#[test]
fn batchnorm_train_uses_batch_statistics_and_eval_the_running_ones() {
    let c = 2;
    let (h, w, n) = (3, 2, 4);
    let mut rng = Rng::new(30);
    let g0 = Graph::sequential([Op::BatchNorm {
        gamma: Tensor::f32(vec![c], vec![1.5, 0.5]),
        beta: Tensor::f32(vec![c], vec![0.25, -1.0]),
        mean: Tensor::f32(vec![c], vec![0.3, -0.2]),
        var: Tensor::f32(vec![c], vec![2.0, 0.5]),
        eps: 1e-5,
    }]);
    let shape = [c, h, w];
    let x: Vec<f32> = (0..n * c * h * w)
        .map(|_| 3.0 + 2.0 * rng.normal())
        .collect();
    let sp = h * w;
    let per_channel = |ch: usize| -> Vec<f64> {
        (0..n)
            .flat_map(|s| {
                x[(s * c + ch) * sp..(s * c + ch + 1) * sp]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect()
    };
    let mut g = g0.clone();
    let mut net = GraphNet::new(&g, &shape, Output::Full).unwrap();
    let y = net
        .forward(&g, &x, n, Mode::Train, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    net.update_running_stats(&mut g).unwrap();
    let Op::BatchNorm {
        gamma,
        beta,
        mean,
        var,
        ..
    } = &g.nodes[0].op
    else {
        unreachable!()
    };
    let (gm, bt) = (gamma.as_f32().unwrap(), beta.as_f32().unwrap());
    let (rm, rv) = (mean.as_f32().unwrap(), var.as_f32().unwrap());
    for ch in 0..c {
        let v = per_channel(ch);
        let m = v.len() as f64;
        let mu = v.iter().sum::<f64>() / m;
        let var_b = v.iter().map(|a| (a - mu) * (a - mu)).sum::<f64>() / m;
        let var_u = var_b * m / (m - 1.0);
        // Train mode: normalised with the batch's biased variance over N·H·W.
        let ys: Vec<f64> = (0..n)
            .flat_map(|s| {
                y[(s * c + ch) * sp..(s * c + ch + 1) * sp]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        for (yv, xv) in ys.iter().zip(&v) {
            let want = (xv - mu) / (var_b + 1e-5).sqrt() * gm[ch] as f64 + bt[ch] as f64;
            assert!((yv - want).abs() < 1e-4, "train y {yv} vs {want}");
        }
        // Running statistics: momentum 0.1, unbiased variance (PyTorch).
        let Op::BatchNorm {
            mean: m0, var: v0, ..
        } = &g0.nodes[0].op
        else {
            unreachable!()
        };
        let (m0, v0) = (
            m0.as_f32().unwrap()[ch] as f64,
            v0.as_f32().unwrap()[ch] as f64,
        );
        assert!(
            (rm[ch] as f64 - (0.9 * m0 + 0.1 * mu)).abs() < 1e-5,
            "running mean"
        );
        assert!(
            (rv[ch] as f64 - (0.9 * v0 + 0.1 * var_u)).abs() < 1e-4,
            "running var {} vs {}",
            rv[ch],
            0.9 * v0 + 0.1 * var_u
        );
    }
    // Eval mode: the (updated) running statistics, per sample, independent of the batch.
    let mut net = GraphNet::new(&g, &shape, Output::Full).unwrap();
    let ye = net
        .forward(&g, &x, n, Mode::Eval, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    let y1 = net
        .forward(&g, &x[..c * sp], 1, Mode::Eval, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    assert_eq!(
        &ye[..c * sp],
        &y1[..],
        "eval mode must not depend on the rest of the batch"
    );
    for s in 0..n {
        for ch in 0..c {
            for j in 0..sp {
                let i = (s * c + ch) * sp + j;
                let want = (x[i] - rm[ch]) / (rv[ch] + 1e-5).sqrt() * gm[ch] + bt[ch];
                assert!((ye[i] - want).abs() < 1e-5);
            }
        }
    }
    // An eval forward leaves the running statistics alone.
    let before = g.clone();
    net.update_running_stats(&mut g).unwrap();
    assert_eq!(g, before);
    // Momentum is configurable; 0 freezes the statistics.
    let mut g2 = g0.clone();
    let mut net = GraphNet::new(&g2, &shape, Output::Full).unwrap();
    net.set_bn_momentum(0.0).unwrap();
    assert!(net.set_bn_momentum(1.5).is_err());
    net.forward(&g2, &x, n, Mode::Train, &mut Rng::new(0))
        .unwrap();
    net.update_running_stats(&mut g2).unwrap();
    assert_eq!(g2, g0);
}

#[test]
fn logits_output_stops_before_a_final_softmax_and_dead_nodes_do_not_run() {
    let mut rng = Rng::new(31);
    let mut b = GraphBuilder::new();
    let d = b.push(dense(&mut rng, 4, 3), &[0]);
    // A dead branch: not an ancestor of the output, never run, no gradient slot.
    let _dead = b.push(dense(&mut rng, 4, 2), &[0]);
    b.push(Op::Softmax, &[d]);
    let g = b.finish();
    let mut logits = GraphNet::new(&g, &[4], Output::Logits).unwrap();
    let mut full = GraphNet::new(&g, &[4], Output::Full).unwrap();
    let x = randn(&mut rng, 8);
    let z = logits
        .forward(&g, &x, 2, Mode::Eval, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    let p = full
        .forward(&g, &x, 2, Mode::Eval, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    assert!(p
        .chunks(3)
        .all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    assert!(
        z.chunks(3)
            .any(|r| (r.iter().sum::<f32>() - 1.0).abs() > 1e-3),
        "logits are not probabilities"
    );
    assert!(logits.grads()[1].is_none());
    assert!(logits.value(2).is_none());
    logits.backward(&g, &[1.0; 6], false).unwrap();
    assert!(logits.input_grad().is_empty());
    assert!(logits.grads()[0]
        .as_ref()
        .unwrap()
        .bias
        .iter()
        .all(|&v| v == 2.0));
}

#[test]
fn mobilenet_inverted_residual_blocks() {
    use mdeploy_core::arch::{mobilenet_block, randomize_for_parity};
    let mut rng = Rng::new(32);
    let mut b = GraphBuilder::new();
    // Stride 1 with a residual Add (4 → 4, expand 2), then stride 2 with SAME padding (4 → 6).
    let x = mobilenet_block(&mut b, &mut rng, 0, 4, 4, 2, 1);
    mobilenet_block(&mut b, &mut rng, x, 4, 6, 2, 2);
    let mut g = b.finish();
    randomize_for_parity(&mut g, 7);
    assert!(g.nodes.iter().any(|n| matches!(n.op, Op::Add)));
    check_both(&g, &[4, 4, 4], 2, 33);
}

#[test]
fn a_whole_small_cnn_the_shape_of_the_shipped_one() {
    // conv (padding 1) + ReLU + 2×2 max pool + Flatten + Dense + Softmax, the layers of
    // `arch::cnn`, at a size where every partial derivative can be checked.
    let mut rng = Rng::new(3);
    let g = Graph::sequential([
        conv(&mut rng, 1, 2, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1),
        Op::Relu,
        Op::maxpool2d([2, 2], [2, 2]),
        Op::Flatten,
        dense(&mut rng, 2 * 3 * 3, 4),
        Op::Softmax,
    ]);
    check_both(&g, &[1, 6, 6], 2, 19);
}

#[test]
fn soft_cross_entropy_gradient_at_several_temperatures() {
    use mdeploy_core::train::soft_cross_entropy;
    let mut rng = Rng::new(4);
    let (rows, k) = (3, 5);
    let z = randn(&mut rng, rows * k);
    let mut targets: Vec<f32> = (0..rows * k).map(|_| rng.next_f32()).collect();
    for row in targets.chunks_exact_mut(k) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    for temperature in [1.0f32, 3.0] {
        let mut g = vec![0.0; rows * k];
        soft_cross_entropy(&z, &targets, k, temperature, &mut g).unwrap();
        for i in 0..z.len() {
            let f = |delta: f32| {
                let mut zp = z.clone();
                zp[i] += delta;
                let mut scratch = vec![0.0; rows * k];
                soft_cross_entropy(&zp, &targets, k, temperature, &mut scratch).unwrap() as f64
            };
            check_one(g[i], f, &format!("T={temperature} d/dz[{i}]"));
        }
    }
}
