//! Rust-side tests of the JS boundary, run inside a real wasm engine: `wasm-pack test --node`
//! (from wasm/, so `.cargo/config.toml` turns simd128 on and the shipped kernels are the ones
//! under test). The end-to-end suite on real digits and the packed npm package is
//! `wasm/test/*.test.mjs`.
#![cfg(target_arch = "wasm32")]

use js_sys::Reflect;
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Metadata, Model, Tensor};
use mdeploy_core::{Graph, Op};
use mdeploy_core::{format, Plan};
use mdeploy_testkit::{Rng, RngExt};
use mdeploy_wasm::{build_info, preprocess_rgba, Engine};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

/// Deterministic values in [-scale, scale) (the testkit's seeded Rng).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    Rng::new(seed).signed(n, scale)
}

/// A small CNN on 1×28×28 with every layer kind the plan fuses (conv+ReLU, pool, dense+ReLU).
fn small_cnn() -> Model {
    Model {
        meta: Metadata {
            name: "test-cnn".into(),
            input_shape: vec![1, 28, 28],
            labels: (0..10).map(|d| format!("digit {d}")).collect(),
            ..Metadata::default()
        },
        graph: Graph::sequential(vec![
            Op::conv2d(Tensor::f32(vec![8, 1, 3, 3], values(72, 1, 0.5)), Tensor::f32(vec![8], values(8, 2, 0.1)), [1, 1], [1, 1]),
            Op::Relu,
            Op::maxpool2d([2, 2], [2, 2]),
            Op::Flatten,
            Op::Dense { weight: Tensor::f32(vec![8 * 14 * 14, 32], values(8 * 14 * 14 * 32, 3, 0.05)), bias: Tensor::f32(vec![32], values(32, 4, 0.1)) },
            Op::Relu,
            Op::Dense { weight: Tensor::f32(vec![32, 10], values(320, 5, 0.3)), bias: Tensor::f32(vec![10], values(10, 6, 0.1)) },
            Op::Softmax,
        ]),
    }
}

fn code_of(e: &JsValue) -> String {
    Reflect::get(e, &JsValue::from_str("code")).ok().and_then(|c| c.as_string()).unwrap_or_default()
}

fn message_of(e: &JsValue) -> String {
    Reflect::get(e, &JsValue::from_str("message")).ok().and_then(|c| c.as_string()).unwrap_or_default()
}

#[wasm_bindgen_test]
fn the_shipped_kernels_are_simd128() {
    let info = build_info();
    assert_eq!(Reflect::get(&info, &"simd128".into()).unwrap(), JsValue::TRUE);
    assert_eq!(Reflect::get(&info, &"kernel".into()).unwrap().as_string().unwrap(), "wasm-simd128");
}

#[wasm_bindgen_test]
fn engine_matches_the_generic_kernels_at_batch_1_and_37() {
    let model = small_cnn();
    let bytes = format::write(&model).unwrap();
    let mut engine = Engine::new(&bytes, "auto", 16).unwrap();
    assert_eq!(engine.backend(), "cpu");
    assert_eq!((engine.input_len(), engine.output_len()), (784, 10));
    let mut reference = Plan::with_kernels(&model, 64, KernelSet::generic()).unwrap();
    for n in [1usize, 37] {
        let x: Vec<f32> = values(n * 784, 10 + n as u64, 1.0).iter().map(|v| v.abs()).collect();
        let got = engine.run(&x, n as u32).unwrap();
        let mut want = vec![0.0; n * 10];
        reference.run(&x, n, &mut want).unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "batch {n}: simd128 and generic differ by {worst}");
        for row in got.chunks(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "softmax rows sum to 1");
        }
    }
}

#[wasm_bindgen_test]
fn every_bad_input_has_its_code_and_the_engine_survives() {
    let bytes = format::write(&small_cnn()).unwrap();
    let mut engine = Engine::new(&bytes, "cpu", 4).unwrap();
    let good: Vec<f32> = vec![0.5; 784];
    let before = engine.run(&good, 1).unwrap();

    let e = engine.run(&good[..783], 1).err().unwrap();
    assert_eq!(code_of(&e), "BAD_INPUT");
    assert!(message_of(&e).contains("784"), "message names the expected length: {}", message_of(&e));
    assert_eq!(code_of(&engine.run(&good, 2).err().unwrap()), "BAD_INPUT");
    assert_eq!(code_of(&engine.run(&good, 0).err().unwrap()), "BAD_INPUT");
    let mut nan = good.clone();
    nan[300] = f32::NAN;
    let e = engine.run(&nan, 1).err().unwrap();
    assert_eq!(code_of(&e), "BAD_INPUT");
    assert!(message_of(&e).contains("300"), "message names the index: {}", message_of(&e));
    let e: JsValue = engine.run(&good, u32::MAX).err().unwrap();
    assert_eq!(code_of(&e), "BAD_INPUT");

    // Errors are real JS Errors with the stable name.
    assert!(e.is_instance_of::<js_sys::Error>());
    assert_eq!(Reflect::get(&e, &"name".into()).unwrap().as_string().unwrap(), "MdeployError");

    assert_eq!(engine.run(&good, 1).unwrap(), before, "same model, same answer after the errors");
}

#[wasm_bindgen_test]
fn bad_models_and_backends_are_rejected_with_their_codes() {
    let bytes = format::write(&small_cnn()).unwrap();
    let code = |b: &[u8], backend: &str| code_of(&Engine::new(b, backend, 1).err().unwrap());
    assert_eq!(code(b"", "auto"), "BAD_MODEL");
    assert_eq!(code(b"definitely not a model, just some text", "auto"), "BAD_MODEL");
    assert_eq!(code(&bytes[..bytes.len() / 2], "auto"), "BAD_MODEL");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40; // the digest catches a flipped bit in the weights
    assert_eq!(code(&flipped, "auto"), "BAD_MODEL");
    assert_eq!(code(&bytes, "webgpu"), "NO_WEBGPU");
    assert_eq!(code(&bytes, "tpu"), "BAD_INPUT");
    assert!(Engine::new(&bytes, "cpu", 1).is_ok(), "the intact model still loads");
}

#[wasm_bindgen_test]
fn info_describes_the_model() {
    let model = small_cnn();
    let bytes = format::write(&model).unwrap();
    let engine = Engine::new(&bytes, "cpu", 8).unwrap();
    let info = engine.info();
    let get = |k: &str| Reflect::get(&info, &JsValue::from_str(k)).unwrap();
    assert_eq!(get("name").as_string().unwrap(), "test-cnn");
    assert_eq!(get("params").as_f64().unwrap() as usize, model.param_count());
    assert_eq!(get("kernel").as_string().unwrap(), "wasm-simd128");
    assert_eq!(get("maxBatch").as_f64().unwrap(), 8.0);
    assert_eq!(get("digest").as_string().unwrap(), format::digest_hex(&bytes).unwrap());
    assert_eq!(engine.labels().get(3).as_string().unwrap(), "digit 3");
    assert!(engine.takes_digit_image());
}

#[wasm_bindgen_test]
fn preprocess_centres_a_drawn_stroke_and_rejects_bad_images() {
    // A 100×60 transparent canvas with an opaque vertical bar off to the left.
    let (w, h) = (100usize, 60usize);
    let mut rgba = vec![0u8; w * h * 4];
    for y in 5..55 {
        for x in 10..18 {
            rgba[(y * w + x) * 4 + 3] = 255;
        }
    }
    let out = preprocess_rgba(w as u32, h as u32, &rgba).unwrap();
    assert_eq!(out.len(), 784);
    let mass: f32 = out.iter().sum();
    let cx: f32 = out.iter().enumerate().map(|(i, v)| v * ((i % 28) as f32 + 0.5)).sum::<f32>() / mass;
    assert!((cx - 14.0).abs() <= 1.0, "stroke centred, centre of mass at x = {cx}");
    assert_eq!(code_of(&preprocess_rgba(10, 10, &rgba[..399]).err().unwrap()), "BAD_INPUT");
    assert_eq!(code_of(&preprocess_rgba(0, 10, &[]).err().unwrap()), "BAD_INPUT");
    assert_eq!(code_of(&preprocess_rgba(4, 4, &[0u8; 64]).err().unwrap()), "BAD_INPUT", "an empty canvas has no ink");
}

/// The sparse kernels of the shipped build (`wasm_spmm_f32_16`, direct and im2col sparse conv,
/// spmv) against the generic set: a 90 %-pruned small CNN (pruned weights stored CSR) through
/// the Engine at batch 1, 3 and 17, and the block kernel alone on sizes that are not multiples
/// of 4 or 16.
#[wasm_bindgen_test]
fn sparse_kernels_match_the_generic_kernels() {
    let model = mdeploy_testkit::prune::pruned_sparse(small_cnn(), 0.9, false).unwrap();
    let program = mdeploy_core::lower::lower(&model.graph, &model.meta.input_shape).unwrap();
    let names: Vec<&str> = program.steps.iter().map(|s| s.kernel.name()).filter(|n| n.starts_with("Sparse")).collect();
    assert_eq!(names, ["SparseConv2d", "SparseDense", "SparseDense"]);
    let bytes = format::write(&model).unwrap();
    let mut engine = Engine::new(&bytes, "cpu", 16).unwrap();
    let mut reference = Plan::with_kernels(&model, 64, KernelSet::generic()).unwrap();
    for n in [1usize, 3, 17] {
        let x: Vec<f32> = values(n * 784, 40 + n as u64, 1.0).iter().map(|v| v.max(0.0)).collect();
        let got = engine.run(&x, n as u32).unwrap();
        let mut want = vec![0.0; n * 10];
        reference.run(&x, n, &mut want).unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "sparse batch {n}: simd128 and generic differ by {worst}");
    }
    let simd = KernelSet::best();
    assert_eq!(simd.spmm_name(), "wasm_spmm_f32_16");
    let mut rng = Rng::new(9);
    for &(m, k, n) in &[(1usize, 7usize, 5usize), (3, 33, 17), (17, 70, 9), (1024, 30, 13)] {
        let w: Vec<f32> = (0..k * n).map(|_| if rng.next_f32() < 0.15 { rng.uniform(-1.0, 1.0) } else { 0.0 }).collect();
        let x = rng.signed(m * k, 1.0);
        let bias = rng.signed(n, 1.0);
        let sw = mdeploy_core::kernels::SparseW::from_dense(k, n, &w);
        let mut outs = Vec::new();
        for ks in [simd, KernelSet::generic()] {
            let nb = ks.spmm_nb();
            let mut scratch = vec![0.0; ks.spmm_scratch(&sw)];
            let mut y = vec![0.0f32; m * n];
            let fill = |row0: usize, rows: usize, xt: &mut [f32]| {
                for r in 0..rows {
                    for i in 0..k {
                        xt[i * nb + r] = x[(row0 + r) * k + i];
                    }
                }
            };
            ks.spmm(m, &sw, &ks.spmm_rows(&sw), &bias, Some((-0.5, 0.5)), fill, &mut scratch, &mut y, n);
            outs.push(y);
        }
        let worst = outs[0].iter().zip(&outs[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "spmm m={m} k={k} n={n}: simd128 and generic differ by {worst}");
    }
}
