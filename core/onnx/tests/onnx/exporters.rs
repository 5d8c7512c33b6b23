//! Models written by real exporters (core/onnx/fixtures, made by make_fixtures.py) convert, and
//! the converted mdeploy model reproduces the exporting framework's own probabilities on the
//! 2,000 test digits of the fixed split: f32 max difference <= 1e-5, argmax identical.

use mdeploy_core::Model;

use crate::support::assert_parity;

fn op_names(m: &Model) -> Vec<&'static str> {
    m.graph.nodes.iter().map(|n| n.op.name()).collect()
}

#[test]
fn sklearn_mlp_matches_scikit_learn() {
    let m = assert_parity("sklearn_mlp");
    // Two output heads in the file (label, probabilities): the float one is kept; the label
    // branch (ArgMax, ai.onnx.ml ArrayFeatureExtractor) is dropped with it.
    assert_eq!(op_names(&m), ["Dense", "ReLU", "Dense", "Softmax"]);
    assert_eq!(m.meta.input_shape, [784]);
}

#[test]
fn keras_seed_mlp_matches_keras() {
    let m = assert_parity("keras_mlp");
    // Flatten + Dense(128, relu) + Dropout + Dense(10, softmax): Dropout removed, biases folded.
    assert_eq!(op_names(&m), ["Flatten", "Dense", "ReLU", "Dense", "Softmax"]);
    assert_eq!(m.meta.input_shape, [28, 28]);
}

#[test]
fn keras_cnn_matches_keras() {
    let m = assert_parity("keras_cnn");
    let ops = op_names(&m);
    assert!(ops.contains(&"Conv2d") && ops.contains(&"MaxPool2d") && ops.contains(&"BatchNorm"), "{ops:?}");
}
