//! The reference against cases computed by hand (the numbers in the comments).

use super::*;
use mdeploy_core::graph::GraphBuilder;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::f32(shape.to_vec(), v.to_vec())
}

/// Runs a chain of ops on `x` of shape `shape`; returns the output value.
fn run(ops: Vec<Op>, shape: &[usize], x: &[f32]) -> Value {
    let g = Graph::sequential(ops);
    let mut v = forward_values(&g, shape, x).unwrap();
    v.pop().unwrap()
}

fn close(got: &Value, shape: &[usize], want: &[f64]) {
    assert_eq!(got.shape, shape);
    assert_eq!(got.data.len(), want.len());
    for (i, (g, w)) in got.data.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-12, "element {i}: {g} != {w} (all: {:?})", got.data);
    }
}

fn conv(weight: Tensor, bias: &[f32], stride: usize, pad: usize, groups: usize) -> Op {
    Op::Conv2d {
        bias: t(&[bias.len()], bias),
        weight,
        stride: [stride, stride],
        padding: [pad; 4],
        dilation: [1, 1],
        groups,
    }
}

const NINE: [f32; 9] = [1., 2., 3., 4., 5., 6., 7., 8., 9.];

#[test]
fn conv3x3_with_padding() {
    // All-ones 3×3, pad 1 on 1..9: each output is the sum of the in-bounds neighbourhood.
    let y = run(vec![conv(t(&[1, 1, 3, 3], &[1.0; 9]), &[0.0], 1, 1, 1)], &[1, 3, 3], &NINE);
    close(&y, &[1, 3, 3], &[12., 21., 16., 27., 45., 33., 24., 39., 28.]);
    // A kernel with one tap right of centre reads x[y][x + 1] (cross-correlation, not a flipped
    // convolution), zero past the right edge; bias 0.5.
    let mut k = [0.0; 9];
    k[5] = 1.0;
    let y = run(vec![conv(t(&[1, 1, 3, 3], &k), &[0.5], 1, 1, 1)], &[1, 3, 3], &NINE);
    close(&y, &[1, 3, 3], &[2.5, 3.5, 0.5, 5.5, 6.5, 0.5, 8.5, 9.5, 0.5]);
    // Two input channels into one output: the channel sums add.
    let x: Vec<f32> = NINE.iter().chain(&[1.0; 9]).copied().collect();
    let mut w = vec![0.0; 18];
    w[4] = 2.0; // centre of channel 0
    w[9 + 4] = -1.0; // centre of channel 1
    let y = run(vec![conv(t(&[1, 2, 3, 3], &w), &[0.0], 1, 0, 1)], &[2, 3, 3], &x);
    close(&y, &[1, 1, 1], &[2.0 * 5.0 - 1.0]);
}

#[test]
fn depthwise_conv_stride_2() {
    // Channel 0 = 1..9 with all-ones weights, channel 1 = 10..18 with weights 2 and bias 1;
    // 3×3, stride 2, pad 1: windows start at -1 and 1 on each axis.
    let x: Vec<f32> = (1..=18).map(|v| v as f32).collect();
    let w: Vec<f32> = [1.0; 9].into_iter().chain([2.0; 9]).collect();
    let y = run(vec![conv(t(&[2, 1, 3, 3], &w), &[0.0, 1.0], 2, 1, 2)], &[2, 3, 3], &x);
    // ch0: 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9; ch1: 2 × (same + 36) + 1.
    close(&y, &[2, 2, 2], &[12., 16., 24., 28., 97., 105., 121., 129.]);
}

#[test]
fn dilated_conv() {
    // 1×3 kernel of ones, dilation 2 along W, over 1..5: taps 1, 3, 5.
    let op = Op::Conv2d {
        weight: t(&[1, 1, 1, 3], &[1.0; 3]),
        bias: t(&[1], &[0.0]),
        stride: [1, 1],
        padding: [0; 4],
        dilation: [1, 2],
        groups: 1,
    };
    let y = run(vec![op], &[1, 1, 5], &[1., 2., 3., 4., 5.]);
    close(&y, &[1, 1, 1], &[9.0]);
}

fn avg(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4], ceil_mode: bool, count_include_pad: bool) -> Op {
    Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad }
}

#[test]
fn avg_pool_counts_padding_or_not() {
    // 2×2 input 1 2 / 3 4, kernel 2, stride 1, padding top and left only: windows start at -1, 0.
    let x = [1., 2., 3., 4.];
    let y = run(vec![avg([2, 2], [1, 1], [1, 1, 0, 0], false, true)], &[1, 2, 2], &x);
    close(&y, &[1, 2, 2], &[1. / 4., 3. / 4., 4. / 4., 10. / 4.]);
    let y = run(vec![avg([2, 2], [1, 1], [1, 1, 0, 0], false, false)], &[1, 2, 2], &x);
    close(&y, &[1, 2, 2], &[1. / 1., 3. / 2., 4. / 2., 10. / 4.]);
}

#[test]
fn ceil_mode_adds_a_partial_window() {
    let x = [1., 5., 2., 8., 3.];
    let max = |ceil_mode| Op::MaxPool2d { kernel: [1, 2], stride: [1, 2], padding: [0; 4], ceil_mode };
    close(&run(vec![max(false)], &[1, 1, 5], &x), &[1, 1, 2], &[5., 8.]);
    close(&run(vec![max(true)], &[1, 1, 5], &x), &[1, 1, 3], &[5., 8., 3.]);
    // The partial last window holds one cell: both averages divide by 1 (with no padding there
    // is no padded cell to count, and the overhang past the input is never counted).
    for include in [false, true] {
        let y = run(vec![avg([1, 2], [1, 2], [0; 4], true, include)], &[1, 1, 5], &x);
        close(&y, &[1, 1, 3], &[3., 5., 3.]);
    }
    // 3-wide windows, stride 2, pad 1 each side, ceil, on 1..4: windows start at -1, 1, 3; the
    // last covers 3 (=4), the trailing pad, and one cell beyond it (not counted).
    let x = [1., 2., 3., 4.];
    let y = run(vec![avg([1, 3], [1, 2], [0, 1, 0, 1], true, true)], &[1, 1, 4], &x);
    close(&y, &[1, 1, 3], &[3. / 3., 9. / 3., 4. / 2.]);
    let y = run(vec![avg([1, 3], [1, 2], [0, 1, 0, 1], true, false)], &[1, 1, 4], &x);
    close(&y, &[1, 1, 3], &[3. / 2., 9. / 3., 4. / 1.]);
    // Ceil mode never starts a window in the trailing padding (4 wide, kernel 2, stride 2,
    // one trailing pad: 2 windows, not 3).
    let y = run(vec![avg([1, 2], [1, 2], [0, 0, 0, 1], true, true)], &[1, 1, 4], &x);
    close(&y, &[1, 1, 2], &[1.5, 3.5]);
}

#[test]
fn max_pool_padding_never_wins() {
    let x = [-1., -2., -3., -4.];
    let op = Op::MaxPool2d { kernel: [2, 2], stride: [1, 1], padding: [1, 1, 1, 1], ceil_mode: false };
    let y = run(vec![op], &[1, 2, 2], &x);
    close(&y, &[1, 3, 3], &[-1., -1., -2., -1., -1., -2., -3., -3., -4.]);
}

#[test]
fn broadcast_mul_and_add_keep_operand_roles() {
    let mut b = GraphBuilder::new();
    let s = b.push(Op::GlobalAvgPool, &[0]); // [2, 1, 1] = channel means
    let m = b.push(Op::Mul, &[0, s]);
    let m2 = b.push(Op::Mul, &[s, 0]);
    let a = b.push(Op::Add, &[m, m2]);
    let g = b.finish_at(a);
    // Channel 0 = 1 2 (mean 1.5), channel 1 = 3 5 (mean 4): x·mean twice.
    let v = forward_values(&g, &[2, 1, 2], &[1., 2., 3., 5.]).unwrap();
    close(&v[1], &[2, 1, 1], &[1.5, 4.]);
    close(&v[2], &[2, 1, 2], &[1.5, 3., 12., 20.]);
    close(&v[3], &[2, 1, 2], &[1.5, 3., 12., 20.]);
    close(&v[4], &[2, 1, 2], &[3., 6., 24., 40.]);
    // A flat [C] gate against [C, H, W] (Flatten of the pooled means).
    let mut b = GraphBuilder::new();
    let s = b.chain(0, [Op::GlobalAvgPool, Op::Flatten]);
    let m = b.push(Op::Mul, &[s, 0]);
    let g = b.finish_at(m);
    let y = forward(&g, &[2, 1, 2], &[1., 2., 3., 5.]).unwrap();
    assert_eq!(y, vec![1.5, 3., 12., 20.]);
}

#[test]
fn concat_appends_channels_in_input_order() {
    let mut b = GraphBuilder::new();
    let r = b.push(Op::Relu, &[0]);
    let n = b.push(Op::Clip { min: -1.0, max: 0.0 }, &[0]);
    let c = b.push(Op::Concat, &[n, r, 0]);
    let g = b.finish_at(c);
    let y = forward_values(&g, &[1, 1, 2], &[-2., 3.]).unwrap();
    close(&y[3], &[3, 1, 2], &[-1., 0., 0., 3., -2., 3.]);
}

#[test]
fn dense_batchnorm_and_activations() {
    let dense = Op::Dense { weight: t(&[2, 3], &[1., 2., 3., 4., 5., 6.]), bias: t(&[3], &[0.5, 0., 0.]) };
    close(&run(vec![dense], &[2], &[1., 2.]), &[3], &[9.5, 12., 15.]);
    // (x - mean) / sqrt(var + eps) · gamma + beta, per channel of a flat input.
    let bn = Op::BatchNorm {
        gamma: t(&[2], &[2., 1.]),
        beta: t(&[2], &[0., 1.]),
        mean: t(&[2], &[1., 0.]),
        var: t(&[2], &[3., 0.]),
        eps: 1.0,
    };
    close(&run(vec![bn.clone()], &[2], &[1., 2.]), &[2], &[0., 3.]);
    // On [C, H, W] the statistics apply to every pixel of the channel.
    close(&run(vec![bn], &[2, 1, 2], &[1., 3., 2., 4.]), &[2, 1, 2], &[0., 2., 3., 5.]);
    let x = [-4., -1., 0., 1., 4., 7.];
    close(&run(vec![Op::HardSwish], &[6], &x), &[6], &[0., -1. / 3., 0., 2. / 3., 4., 7.]);
    close(&run(vec![Op::Clip { min: 0.0, max: 6.0 }], &[6], &x), &[6], &[0., 0., 0., 1., 4., 6.]);
    close(&run(vec![Op::Relu], &[6], &x), &[6], &[0., 0., 0., 1., 4., 7.]);
    close(&run(vec![Op::LeakyRelu { alpha: 0.5 }], &[6], &x), &[6], &[-2., -0.5, 0., 1., 4., 7.]);
    let s = run(vec![Op::Sigmoid], &[2], &[0., 2.]);
    close(&s, &[2], &[0.5, 1. / (1. + (-2f64).exp())]);
    close(&run(vec![Op::Tanh], &[1], &[0.5]), &[1], &[0.5f64.tanh()]);
    close(&run(vec![Op::Dropout { rate: 0.5 }, Op::Identity], &[2], &[1., -1.]), &[2], &[1., -1.]);
}

#[test]
fn softmax_is_over_the_flat_sample_and_stable() {
    let l = 3f32.ln();
    let e = (l as f64).exp(); // ≈ 3
    close(&run(vec![Op::Softmax], &[2], &[0., l]), &[2], &[1. / (1. + e), e / (1. + e)]);
    let y = run(vec![Op::Softmax], &[3], &[1e30, -1e30, 0.]);
    close(&y, &[3], &[1., 0., 0.]);
    // Flatten then Softmax over all 4 values of a [1, 2, 2] map.
    let y = run(vec![Op::Flatten, Op::Softmax], &[1, 2, 2], &[0.; 4]);
    close(&y, &[4], &[0.25; 4]);
}

#[test]
fn reshape_keeps_row_major_order_and_errors_name_the_node() {
    let y = run(vec![Op::Reshape { shape: vec![2, 1, 2] }], &[4], &[1., 2., 3., 4.]);
    close(&y, &[2, 1, 2], &[1., 2., 3., 4.]);
    let g = Graph::sequential([Op::Relu, Op::Softmax]);
    let e = forward(&g, &[1, 2, 2], &[0.; 4]).unwrap_err();
    assert!(e.contains("node 1") && e.contains("Softmax"), "{e}");
    let e = forward(&g, &[4], &[0.; 3]).unwrap_err();
    assert!(e.contains("3 values"), "{e}");
}

#[test]
fn every_builder_graph_runs_and_sums_to_one() {
    for g in [crate::builders::resnet_tiny(7), crate::builders::every_op(7)] {
        let x: Vec<f32> = (0..784).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let y = forward(&g, &[1, 28, 28], &x).unwrap();
        assert_eq!(y.len(), 10);
        assert!((y.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{y:?}");
        assert!(y.iter().all(|&p| p > 0.0 && p < 1.0), "not degenerate: {y:?}");
    }
}

#[test]
fn a_batch_is_its_samples_one_after_another() {
    let g = crate::builders::resnet_tiny(2);
    let xs: Vec<f32> = (0..5 * 784).map(|i| ((i * 13) % 97) as f32 / 96.0).collect();
    let batch = forward_batch(&g, &[1, 28, 28], &xs, 5).unwrap();
    let one: Vec<f64> = (0..5).flat_map(|s| forward(&g, &[1, 28, 28], &xs[s * 784..(s + 1) * 784]).unwrap()).collect();
    assert_eq!(batch, one);
    assert!(forward_batch(&g, &[1, 28, 28], &xs[1..], 5).is_err());
}
