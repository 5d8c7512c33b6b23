//! The graph suite of `core/tests/plan_graph.rs` on the GPU: every graph (residual blocks with
//! BatchNorm, MobileNetV2 blocks, squeeze-and-excitation, Concat, padded/ceil pools, grouped and
//! dilated convolutions, every activation, layout edge cases, seeded random graphs) through the
//! shared `lower()` and the WebGPU engine, against the same f64 NCHW reference, at max_batch 1,
//! 4 (chunks) and n. The graphs and the reference are the runtime's (`graph_support`), included
//! by path so both backends are held to one definition.
//!
//! Also every model of `models/parity.json` on 200 real test digits against the testkit's f64
//! reference (the defaults and the MobileNet fixture).
//!
//! `XDG_RUNTIME_DIR=<0700 dir> cargo test -p mdeploy-wasm --release --features native-gpu --test gpu_graph`.

#[path = "../../core/tests/graph_support/mod.rs"]
mod graph_support;

use mdeploy_testkit::block_on;
use graph_support::*;
use mdeploy_core::graph::{Graph, GraphBuilder, Node, Op};

const TOL: f64 = 2e-4;

/// Runs `g` on `inputs` (n samples) on the GPU through lower() at max_batch 1, 4 (chunks) and n,
/// and checks every sample against the f64 reference.
fn check(name: &str, g: &Graph, shape: &[usize], inputs: &[f32]) {
    let il: usize = shape.iter().product();
    let n = inputs.len() / il;
    let refs: Vec<Vec<f64>> = inputs.chunks_exact(il).map(|x| reference(g, shape, x)).collect();
    let ol = refs[0].len();
    let program = mdeploy_core::lower::lower(g, shape).unwrap_or_else(|e| panic!("{name}: lower: {e}"));
    for max_batch in [1, 4, n] {
        let e = block_on(mdeploy_wasm::gpu::GpuCore::new(&program, max_batch)).unwrap_or_else(|e| panic!("{name}: gpu: {e}"));
        let out = block_on(e.run(inputs, n)).unwrap_or_else(|e| panic!("{name}: run: {e}"));
        for (s, (o, r)) in out.chunks_exact(ol).zip(&refs).enumerate() {
            let err = rel_err(o, r);
            assert!(err < TOL, "{name}: GPU max_batch {max_batch} sample {s}: relative error {err:e}\n got {:?}\nwant {:?}", &o[..ol.min(8)], &r[..ol.min(8)]);
        }
    }
}

const MNIST: [usize; 3] = [1, 28, 28];

include!("../../core/tests/graph_support/cases.rs");

/// Every model of `models/parity.json` (the three defaults and the random-weight MobileNet block
/// of `models/test/`) through the WebGPU engine on real test digits, against the testkit's
/// independent f64 reference with the rule every parity suite uses (`parity::compare`: within
/// 1e-4, argmax equal where the reference's top-2 margin exceeds 1e-4): the native side of what
/// `wasm/test/browser.test.mjs` checks in Chromium.
#[test]
fn parity_models_match_the_f64_reference_on_real_digits() {
    use mdeploy_testkit::{mnist, parity, reference_outputs};
    // 200 digits, 20 of each class spread over the test split (as the serverless suites send).
    let indices: Vec<usize> = (0..10).flat_map(|d| (0..20).map(move |k| d * 200 + k * 10)).collect();
    let (xs, labels) = mnist::test_subset(&indices).unwrap_or_else(|e| panic!("{e}"));
    let n = indices.len();
    for file in mnist::shipped_models() {
        let model = mnist::trained_model(&file).unwrap_or_else(|e| panic!("{e}"));
        let want = reference_outputs(&model, &xs, n).unwrap_or_else(|e| panic!("{file}: {e}"));
        let program = mdeploy_wasm::gpu::program_for(&model).unwrap_or_else(|e| panic!("{file}: {}", e.message));
        let e = block_on(mdeploy_wasm::gpu::GpuCore::new(&program, 64)).unwrap_or_else(|e| panic!("{file}: gpu: {}", e.message));
        let got = block_on(e.run(&xs, n)).unwrap_or_else(|e| panic!("{file}: run: {}", e.message));
        let r = parity::compare(&format!("{file} (WebGPU, native)"), &got, &want, want.len() / n, Some(&labels))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{file}: {n} digits on the GPU, max |diff| {:.2e}, argmax checked on {}, {} correct", r.max_abs_diff, r.argmax_checked, r.correct);
        assert!(r.argmax_checked >= n - 5, "{file}: only {} clear-margin digits", r.argmax_checked);
    }
}
