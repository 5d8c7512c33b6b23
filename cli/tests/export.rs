//! `mdeploy export` end to end: a shipped model out as ONNX, back in with `mdeploy convert`,
//! and `mdeploy eval` scores exactly what the original scores; bad input and options give errors
//! that say what to do. (onnxruntime parity of the exported files: core/onnx/tests/onnx/export.rs.)

use std::path::Path;

mod support;
use support::{fails_with, mdeploy, ok_json};

fn tmp(name: &str) -> String {
    support::tmp_file("export", name).display().to_string()
}

#[test]
fn export_then_convert_back_scores_the_same() {
    for name in ["mnist-mlp", "mnist-cnn"] {
        let model = format!("models/{name}.mdm");
        let onnx = tmp(&format!("{name}.onnx"));
        let e = ok_json(&["export", &model, "--onnx", &onnx, "--json"]);
        let written = std::fs::metadata(&onnx).expect("the ONNX file is written").len();
        assert_eq!(e["bytes"], written, "{e}");
        assert_eq!(e["opset"], 13, "{e}");
        assert_eq!(e["input_shape"], serde_json::json!([1, 28, 28]), "{e}");
        let back = tmp(&format!("{name}.back.mdm"));
        let c = ok_json(&["convert", &onnx, "--out", &back, "--preprocess", "mnist-digit", "--json"]);
        assert_eq!(c["producer"], format!("mdeploy {}", env!("CARGO_PKG_VERSION")), "{c}");
        assert_eq!(c["opset"], 13, "{c}");
        let (a, b) = (ok_json(&["eval", &model, "--json"]), ok_json(&["eval", &back, "--json"]));
        assert_eq!(a["accuracy"], b["accuracy"], "{name}: {a} vs {b}");
        assert_eq!(a["confusion"], b["confusion"], "{name}");
    }
}

#[test]
fn bad_input_gives_errors_that_say_what_to_do() {
    let out = tmp("bad.onnx");
    fails_with(&["export", "no-such.mdm", "--onnx", &out], &["no such file"]);
    fails_with(&["export", "samples/digit-7.png", "--onnx", &out], &["samples/digit-7.png"]);
    fails_with(&["export", "models/mnist-mlp.mdm", "--onnx", &out, "--opset", "12"], &["--opset 12", "13 to 21"]);
    fails_with(&["export", "models/mnist-mlp.mdm"], &["--onnx"]);
    let missing_dir = tmp("no-such-dir/out.onnx");
    fails_with(&["export", "models/mnist-mlp.mdm", "--onnx", &missing_dir], &["cannot write", "folder exists"]);
    assert!(!Path::new(&out).exists(), "no file is written on failure");
}

#[test]
fn export_help_teaches() {
    let out = mdeploy(&["export", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in ["Examples", "--opset", "DequantizeLinear", "metadata_props", "ONNX.md"] {
        assert!(text.contains(needle), "--help should mention {needle}: {text}");
    }
}
