//! Every layer's backward pass against central finite differences.
//!
//! The scalar checked is `L = Σ r ⊙ y` for a fixed random probe `r`, so `∂L/∂y = r` and the
//! analytic gradients come from `Network::backward(r)`. Shapes are small and odd on purpose
//! (non-square kernels, stride ≠ padding) so that index mix-ups cannot cancel out.
#![allow(clippy::needless_range_loop)]

use mdeploy_core::model::{Metadata, Model, Tensor};
use mdeploy_core::{Graph, Op};
use mdeploy_core::rng::Rng;
use mdeploy_core::train::{soft_cross_entropy, Mode, Network, Output};

fn model(input_shape: Vec<usize>, layers: Vec<Op>) -> Model {
    Model {
        meta: Metadata {
            input_shape,
            ..Default::default()
        },
        graph: Graph::sequential(layers),
    }
}

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

fn dense(rng: &mut Rng, fin: usize, fout: usize) -> Op {
    Op::Dense {
        weight: Tensor::f32(vec![fin, fout], randn(rng, fin * fout)),
        bias: Tensor::f32(vec![fout], randn(rng, fout)),
    }
}

fn conv(
    rng: &mut Rng,
    ic: usize,
    oc: usize,
    k: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Op {
    let n = oc * ic * k[0] * k[1];
    Op::conv2d(Tensor::f32(vec![oc, ic, k[0], k[1]], randn(rng, n)), Tensor::f32(vec![oc], randn(rng, oc)), stride, padding)
}

/// `L(model, x)` with dropout masks drawn from a fresh, fixed RNG (so every evaluation uses
/// the same mask).
fn loss(model: &Model, x: &[f32], n: usize, r: &[f32], mode: Mode) -> f64 {
    let mut net = Network::new(model, Output::Full).unwrap();
    let y = net.forward(model, x, n, mode, &mut Rng::new(99)).unwrap();
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

fn close(analytic: f32, numeric: f64, what: &str) {
    let a = analytic as f64;
    let tol = 2e-3 + 2e-2 * a.abs().max(numeric.abs());
    assert!(
        (a - numeric).abs() <= tol,
        "{what}: analytic {a} vs numeric {numeric}"
    );
}

/// Checks d/dinput and d/dparams of the whole `model` on `n` random samples.
fn check(model: Model, n: usize, mode: Mode, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut net = Network::new(&model, Output::Full).unwrap();
    let in_len = net.input_len();
    let x = randn(&mut rng, n * in_len);
    let r = randn(&mut rng, n * net.output_len());
    net.forward(&model, &x, n, mode, &mut Rng::new(99)).unwrap();
    net.backward(&model, &r, true).unwrap();
    let eps = 1e-3f32;

    let dx = net.input_grad().to_vec();
    assert_eq!(dx.len(), x.len());
    for i in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += eps;
        xm[i] -= eps;
        let num =
            (loss(&model, &xp, n, &r, mode) - loss(&model, &xm, n, &r, mode)) / (2.0 * eps as f64);
        close(dx[i], num, &format!("d/dx[{i}]"));
    }

    for (li, g) in net.grads().iter().enumerate() {
        let Some(g) = g else { continue };
        for (which, grad) in [("weight", &g.weight), ("bias", &g.bias)] {
            for j in 0..grad.len() {
                let perturbed = |delta: f32| {
                    let mut m = model.clone();
                    if let Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } =
                        &mut m.graph.nodes[li].op
                    {
                        let t = if which == "weight" { weight } else { bias };
                        t.as_f32_mut().unwrap()[j] += delta;
                    }
                    loss(&m, &x, n, &r, mode)
                };
                let num = (perturbed(eps) - perturbed(-eps)) / (2.0 * eps as f64);
                close(grad[j], num, &format!("layer {li} d/d{which}[{j}]"));
            }
        }
    }
}

#[test]
fn dense_backward_matches_finite_differences() {
    let mut rng = Rng::new(1);
    check(
        model(vec![5], vec![dense(&mut rng, 5, 3)]),
        3,
        Mode::Eval,
        10,
    );
}

#[test]
fn conv2d_with_stride_and_padding_backward_matches_finite_differences() {
    let mut rng = Rng::new(2);
    // 2 input channels, 3×2 kernel, stride (2, 1), padding (1, 2) on a 5×6 input.
    check(
        model(
            vec![2, 5, 6],
            vec![conv(&mut rng, 2, 3, [3, 2], [2, 1], [1, 2])],
        ),
        2,
        Mode::Eval,
        11,
    );
    // The plain case the CNN uses.
    check(
        model(
            vec![1, 6, 6],
            vec![conv(&mut rng, 1, 2, [3, 3], [1, 1], [0, 0])],
        ),
        2,
        Mode::Eval,
        12,
    );
}

#[test]
fn maxpool_backward_matches_finite_differences() {
    // Non-overlapping 2×2 and overlapping 3×2 / stride (2, 1) windows.
    check(
        model(
            vec![2, 4, 6],
            vec![Op::maxpool2d([2, 2], [2, 2])],
        ),
        2,
        Mode::Eval,
        13,
    );
    check(
        model(
            vec![1, 5, 5],
            vec![Op::maxpool2d([3, 2], [2, 1])],
        ),
        2,
        Mode::Eval,
        14,
    );
}

#[test]
fn relu_softmax_flatten_backward_match_finite_differences() {
    check(model(vec![7], vec![Op::Relu]), 3, Mode::Eval, 15);
    check(model(vec![6], vec![Op::Softmax]), 3, Mode::Eval, 16);
    check(
        model(vec![2, 3, 2], vec![Op::Flatten]),
        2,
        Mode::Eval,
        17,
    );
}

#[test]
fn dropout_backward_matches_finite_differences_in_training_mode() {
    check(
        model(vec![20], vec![Op::Dropout { rate: 0.4 }]),
        3,
        Mode::Train,
        18,
    );
    // And it really drops something in training mode, nothing in eval mode.
    let m = model(vec![1000], vec![Op::Dropout { rate: 0.4 }]);
    let mut net = Network::new(&m, Output::Full).unwrap();
    let x = vec![1.0f32; 1000];
    let zeros = net
        .forward(&m, &x, 1, Mode::Train, &mut Rng::new(1))
        .unwrap()
        .iter()
        .filter(|&&v| v == 0.0)
        .count();
    assert!(
        (300..500).contains(&zeros),
        "{zeros} of 1000 dropped at rate 0.4"
    );
    assert_eq!(
        net.forward(&m, &x, 1, Mode::Eval, &mut Rng::new(1))
            .unwrap(),
        &x[..]
    );
}

#[test]
fn a_whole_small_cnn_backward_matches_finite_differences() {
    let mut rng = Rng::new(3);
    let layers = vec![
        conv(&mut rng, 1, 2, [3, 3], [1, 1], [1, 1]),
        Op::Relu,
        Op::maxpool2d([2, 2], [2, 2]),
        Op::Flatten,
        dense(&mut rng, 2 * 3 * 3, 4),
        Op::Softmax,
    ];
    check(model(vec![1, 6, 6], layers), 2, Mode::Eval, 19);
}

#[test]
fn soft_cross_entropy_gradient_matches_finite_differences() {
    let mut rng = Rng::new(4);
    let (rows, k) = (3, 5);
    let z = randn(&mut rng, rows * k);
    let mut t: Vec<f32> = (0..rows * k).map(|_| rng.next_f32()).collect();
    for row in t.chunks_exact_mut(k) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    for temperature in [1.0f32, 3.0] {
        let mut g = vec![0.0; rows * k];
        soft_cross_entropy(&z, &t, k, temperature, &mut g).unwrap();
        let mut scratch = vec![0.0; rows * k];
        for i in 0..z.len() {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[i] += 1e-3;
            zm[i] -= 1e-3;
            let lp = soft_cross_entropy(&zp, &t, k, temperature, &mut scratch).unwrap() as f64;
            let lm = soft_cross_entropy(&zm, &t, k, temperature, &mut scratch).unwrap() as f64;
            close(
                g[i],
                (lp - lm) / 2e-3,
                &format!("T={temperature} d/dz[{i}]"),
            );
        }
    }
}
