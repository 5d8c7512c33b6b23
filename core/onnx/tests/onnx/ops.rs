//! One ONNX graph per op pattern (fixtures/ops, made by make_op_fixtures.py with onnx.helper),
//! converted and run in mdeploy against onnxruntime's outputs on the same inputs; the
//! unsupported cases must be refused with the ONNX op named. Plus hostile bytes: truncated and
//! corrupted real files give errors, never a panic.

use std::path::{Path, PathBuf};

use mdeploy_core::Plan;
use mdeploy_onnx::{import_bytes, import_path, ImportOptions};

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ops")
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Converts `case`, runs its 4 inputs and returns (mdeploy outputs, onnxruntime outputs, ops).
fn run_case(case: &str) -> (Vec<f32>, Vec<f32>, Vec<&'static str>) {
    let dir = ops_dir();
    let imported = import_path(&dir.join(format!("{case}.onnx")), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let model = imported.into_model(case, case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let io = read_f32(&dir.join(format!("{case}.io.f32")));
    let n = 4;
    let (il, ol) = (model.input_len(), model.output_len());
    assert_eq!(io.len(), n * (il + ol), "{case}: the fixture holds {} floats, the model takes {il} and gives {ol}", io.len());
    let mut plan = Plan::new(&model, n).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut out = vec![0f32; n * ol];
    plan.run(&io[..n * il], n, &mut out).unwrap_or_else(|e| panic!("{case}: {e}"));
    let ops = model.graph.nodes.iter().map(|n| n.op.name()).collect();
    (out, io[n * il..].to_vec(), ops)
}

fn assert_matches_onnxruntime(case: &str) -> Vec<&'static str> {
    let (got, want, ops) = run_case(case);
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("{case}: {ops:?}, max |mdeploy - onnxruntime| = {max:.2e}");
    assert!(max <= 1e-5, "{case}: max difference {max} > 1e-5\nmdeploy {got:?}\nonnxruntime {want:?}");
    ops
}

#[test]
fn gemm_with_trans_b_alpha_beta() {
    // alpha = 0.5 stays a per-feature scale (a BatchNorm node that the plan folds into the Dense);
    // beta · C becomes the Dense bias.
    assert_eq!(assert_matches_onnxruntime("gemm_transb_sigmoid"), ["Dense", "BatchNorm", "Sigmoid"]);
}

#[test]
fn matmul_add_and_activations() {
    let ops = assert_matches_onnxruntime("matmul_activations_softmax");
    assert_eq!(ops, ["Dense", "Tanh", "LeakyReLU", "Dense", "HardSwish", "Softmax"]);
}

#[test]
fn conv_batchnorm_clip_and_pools() {
    let ops = assert_matches_onnxruntime("conv_bn_clip_pools");
    for op in ["Conv2d", "Clip", "MaxPool2d", "AvgPool2d", "Flatten"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
}

#[test]
fn mobilenet_block_with_residual_gate_and_concat() {
    let ops = assert_matches_onnxruntime("mobilenet_block");
    for op in ["Conv2d", "Add", "GlobalAvgPool", "Mul", "Concat", "BatchNorm"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
}

#[test]
fn pytorch_shape_gather_concat_reshape_flatten() {
    assert_eq!(assert_matches_onnxruntime("pytorch_view_flatten"), ["Conv2d", "Flatten", "Dense"]);
}

#[test]
fn nhwc_transposes_are_absorbed_into_the_dense() {
    // tract turns the Conv NHWC; mdeploy computes it NCHW and permutes the Dense's rows instead.
    let ops = assert_matches_onnxruntime("nhwc_transpose_flatten_dense");
    assert_eq!(ops, ["Reshape", "Conv2d", "MaxPool2d", "Flatten", "Dense"]);
}

#[test]
fn dropout_and_identity_disappear() {
    assert_eq!(assert_matches_onnxruntime("dropout_identity"), ["Dense", "ReLU"]);
}

#[test]
fn unsupported_ops_are_refused_with_the_onnx_node_named() {
    for (case, needles) in [
        ("unsupported_erf", &["\"erf_", "Erf", "opset 13", "not supported"][..]),
        ("unsupported_softmax_axis", &["\"softmax_", "Softmax", "opset 13", "whole sample"][..]),
        ("unsupported_runtime_matmul", &["\"matmul_", "MatMul", "constant weights"][..]),
        ("unsupported_nhwc_input_2ch", &["\"conv_", "Conv", "NHWC", "channels-first"][..]),
    ] {
        let e = import_path(&ops_dir().join(format!("{case}.onnx")), &ImportOptions::default())
            .expect_err(&format!("{case} must be refused"));
        for n in needles {
            assert!(e.message.contains(n), "{case}: error {:?} should mention {n:?}", e.message);
        }
    }
}

/// A small deterministic generator (xorshift) for the mutations.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hostile_bytes_give_errors_never_panics() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let files = [base.join("keras_cnn.onnx"), ops_dir().join("mobilenet_block.onnx"), ops_dir().join("conv_bn_clip_pools.onnx")];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (mut ok, mut refused) = (0, 0);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Truncations at 40 places, including inside the header and the weights.
        for i in 0..40 {
            cases.push(bytes[..bytes.len() * i / 40].to_vec());
        }
        // 80 corruptions of 1 to 4 random bytes each (tags, lengths, dims, payloads).
        for _ in 0..80 {
            let mut b = bytes.clone();
            for _ in 0..(1 + next(&mut state) % 4) {
                let at = (next(&mut state) % b.len() as u64) as usize;
                b[at] = next(&mut state) as u8;
            }
            cases.push(b);
        }
        for case in cases {
            // A panic escaping import_bytes would fail this test; a caught one is an Err.
            match import_bytes(&case, &ImportOptions::default()) {
                Ok(m) => {
                    // Whatever converts is a valid mdeploy graph (import validated it).
                    assert!(m.graph.validate(&m.input_shape).is_ok());
                    ok += 1;
                }
                Err(e) => {
                    assert!(!e.message.is_empty());
                    refused += 1;
                }
            }
        }
    }
    eprintln!("hostile bytes: {refused} refused, {ok} still converted (corruptions inside weights)");
    assert!(refused > 100, "only {refused} of the mutations were refused");
}
