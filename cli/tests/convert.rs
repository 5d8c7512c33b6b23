//! `mdeploy convert` end to end: real exporter files (core/onnx/fixtures) in, .mdm out, then
//! `mdeploy eval` on the 2,000 test digits reproduces the framework's own accuracy; bad input
//! gives errors that say what to do.

use std::path::Path;

mod support;
use support::{fails_with, mdeploy, ok_json, root};

fn tmp(name: &str) -> String {
    support::tmp_file("convert", name).display().to_string()
}

fn fixture(name: &str) -> String {
    root().join("core/onnx/fixtures").join(name).display().to_string()
}

/// Accuracies the frameworks measured on the same 2,000 digits when the fixtures were made
/// (core/onnx/fixtures/README.md); the converted models must score exactly the same.
const KERAS_MLP_ACCURACY: f64 = 0.9415;
const KERAS_CNN_ACCURACY: f64 = 0.9590;
const SKLEARN_MLP_ACCURACY: f64 = 0.9330;

#[test]
fn keras_models_convert_and_score_what_keras_scored() {
    for (name, acc) in [("keras_mlp", KERAS_MLP_ACCURACY), ("keras_cnn", KERAS_CNN_ACCURACY)] {
        let out = tmp(&format!("{name}.mdm"));
        let c = ok_json(&["convert", &fixture(&format!("{name}.onnx")), "--out", &out, "--preprocess", "mnist-digit", "--json"]);
        assert_eq!(c["outputs"], 10, "{c}");
        assert_eq!(c["producer"], "tf2onnx 1.17.0 None", "{c}");
        let info = ok_json(&["info", &out, "--json"]);
        assert_eq!(info["name"], name);
        assert_eq!(info["preprocessing"]["recipe"], "mnist-digit");
        assert_eq!(info["labels"].as_array().map(|l| l.len()), Some(10), "mnist-digit gives labels 0..9");
        let eval = ok_json(&["eval", &out, "--json"]);
        let measured = eval["accuracy"].as_f64().expect("accuracy");
        assert!((measured - acc).abs() < 1e-9, "{name}: mdeploy {measured} vs Keras {acc}");
    }
}

#[test]
fn sklearn_model_keeps_the_probabilities_output_and_takes_labels() {
    let labels = tmp("labels.txt");
    std::fs::write(&labels, "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n").unwrap();
    let out = tmp("sk.mdm");
    let c = ok_json(&["convert", &fixture("sklearn_mlp.onnx"), "--out", &out, "--labels", &labels, "--name", "sk", "--json"]);
    assert_eq!(c["input_shape"], serde_json::json!([784]));
    let info = ok_json(&["info", &out, "--json"]);
    assert_eq!(info["labels"][9], "nine");
    assert_eq!(info["preprocessing"]["recipe"], "none");
    let eval = ok_json(&["eval", &out, "--json"]);
    assert!((eval["accuracy"].as_f64().unwrap() - SKLEARN_MLP_ACCURACY).abs() < 1e-9, "{eval}");

    // The other output is the int64 label: not something mdeploy serves.
    fails_with(
        &["convert", &fixture("sklearn_mlp.onnx"), "--out", &out, "--output", "label"],
        &["I64", "f32"],
    );
    fails_with(&["convert", &fixture("sklearn_mlp.onnx"), "--out", &out, "--output", "nope"], &["\"probabilities\""]);
    std::fs::write(&labels, "a\nb\n").unwrap();
    fails_with(&["convert", &fixture("sklearn_mlp.onnx"), "--out", &out, "--labels", &labels], &["2 labels", "10 outputs"]);
}

#[test]
fn bad_input_gives_errors_that_say_what_to_do() {
    let out = tmp("bad.mdm");
    fails_with(&["convert", "no-such.onnx", "--out", &out], &["cannot read"]);
    // A PNG is not an ONNX file.
    fails_with(&["convert", "samples/digit-7.png", "--out", &out], &["not a readable ONNX file"]);
    fails_with(&["convert", &fixture("keras_mlp.onnx"), "--out", &out, "--input-shape", "1,x"], &["1,1,28,28"]);
    // A wrong input shape: tract cannot type the graph, and says where.
    fails_with(&["convert", &fixture("keras_mlp.onnx"), "--out", &out, "--input-shape", "1,3,3"], &["--input-shape"]);
    fails_with(
        &["convert", &fixture("sklearn_mlp.onnx"), "--out", &out, "--preprocess", "mnist-digit", "--input-shape", "1,100"],
        &["--input-shape"],
    );
    assert!(!Path::new(&out).exists(), "no file is written on failure");
}

/// PyTorch's accuracy for the ResNet fixture (core/onnx/fixtures/README.md); onnxruntime's
/// argmax agreed with PyTorch's on all 2,000 digits.
const PYTORCH_RESNET_ACCURACY: f64 = 0.8810;

#[test]
fn pytorch_dynamo_export_with_external_data_converts_and_scores_what_pytorch_scored() {
    // The .onnx holds the graph, pytorch_resnet_dynamo.onnx.data beside it the weights.
    let out = tmp("resnet.mdm");
    let c = ok_json(&["convert", &fixture("pytorch_resnet_dynamo.onnx"), "--out", &out, "--preprocess", "mnist-digit", "--json"]);
    assert_eq!(c["input_shape"], serde_json::json!([1, 28, 28]), "{c}");
    let eval = ok_json(&["eval", &out, "--json"]);
    let measured = eval["accuracy"].as_f64().expect("accuracy");
    assert!((measured - PYTORCH_RESNET_ACCURACY).abs() < 1e-9, "mdeploy {measured} vs PyTorch {PYTORCH_RESNET_ACCURACY}");

    // The same .onnx copied without its data file: the error names the file and where it belongs.
    let lone = tmp("alone/pytorch_resnet_dynamo.onnx");
    std::fs::create_dir_all(Path::new(&lone).parent().expect("a folder")).expect("temp folder");
    std::fs::copy(fixture("pytorch_resnet_dynamo.onnx"), &lone).expect("copy the graph alone");
    let bad = tmp("alone.mdm");
    fails_with(&["convert", &lone, "--out", &bad], &["\"pytorch_resnet_dynamo.onnx.data\"", "missing", "alone"]);
    assert!(!Path::new(&bad).exists(), "no file is written on failure");
}

#[test]
fn convert_help_teaches() {
    let out = mdeploy(&["convert", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("Examples") && text.contains("--input-shape"), "{text}");
}

/// onnxruntime's accuracy on the 2,000 test digits for its quantized fixtures
/// (core/onnx/fixtures/README.md, make_quant_fixtures.py).
const ORT_QUANT_ACCURACY: [(&str, f64); 3] = [("keras_mlp.qdq", 0.9420), ("keras_cnn.qop", 0.9595), ("sklearn_mlp.dyn", 0.9325)];

#[test]
fn quantized_models_convert_and_info_says_how_they_run() {
    for (name, ort_acc) in ORT_QUANT_ACCURACY {
        let out = tmp(&format!("{name}.mdm"));
        let mut args = vec!["convert".to_string(), fixture(&format!("quant/{name}.onnx")), "--out".into(), out.clone()];
        args.extend(["--preprocess", "mnist-digit", "--json"].map(String::from));
        if name.starts_with("sklearn") {
            args.extend(["--output", "probabilities"].map(String::from));
        }
        let c = ok_json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(c["producer"], "onnx.quantize 0.1.0", "{c}");
        let info = ok_json(&["info", &out, "--json"]);
        let w = &info["weights"];
        let dense_conv = if name.starts_with("keras_cnn") { 3 } else { 2 };
        assert_eq!(w["int8"], dense_conv, "{name}: {w}");
        // QDQ and QOperator: uint8 activation grids became Quantize nodes, so every Dense/Conv2d
        // runs on the integer kernels; dynamic: per-batch grids, no Quantize, f32.
        let runs = if name.ends_with(".dyn") {
            "runs dequantized to f32 (no activation grids: `mdeploy quantize` makes an int8 model)".to_string()
        } else {
            format!("{dense_conv} Dense/Conv2d run on the int8 kernels")
        };
        assert_eq!(w["runs"], runs.as_str(), "{name}: {w}");
        assert!(info["source"].as_str().is_some_and(|s| s.starts_with("converted from ONNX (producer onnx.quantize 0.1.0, opset ")));
        let text = mdeploy(&["info", &out]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains(&runs), "{text}");
        assert!(text.contains(&format!("{dense_conv} quantized tensors ({dense_conv} int8; ")), "{text}");
        assert!(text.contains("converted from ONNX (producer onnx.quantize 0.1.0"), "{text}");
        assert!(!text.contains("epochs"), "a converted model was not trained here: {text}");
        // Requantization rounds differently from onnxruntime's (QDQ, QOperator), activations run
        // in f32 (dynamic): close to, not exactly, its score.
        let eval = ok_json(&["eval", &out, "--json"]);
        let measured = eval["accuracy"].as_f64().expect("accuracy");
        assert!((measured - ort_acc).abs() <= 0.005, "{name}: mdeploy {measured} vs onnxruntime {ort_acc}");
    }
}

#[test]
fn info_of_a_converted_float_model_names_its_source_not_epochs() {
    let out = tmp("keras_mlp_source.mdm");
    ok_json(&["convert", &fixture("keras_mlp.onnx"), "--out", &out, "--json"]);
    let text = mdeploy(&["info", &out]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("origin    converted from ONNX (producer tf2onnx 1.17.0 None, opset 15)"), "{text}");
    assert!(!text.contains("trained") && !text.contains("quantized"), "{text}");
}
