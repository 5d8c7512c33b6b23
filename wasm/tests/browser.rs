//! The Rust-level wasm tests inside headless Chromium, the design's way in:
//! `wasm-pack test --headless --chrome --release -- --test browser` (from wasm/, so simd128 is on;
//! `webdriver.json` beside Cargo.toml turns WebGPU on, which Chromium here provides through
//! SwiftShader). `wasm/scripts/test.sh` runs it inside `npm test`.
//!
//! * every test of `node.rs` (the CPU engine at the JS boundary), now in a browser's wasm engine;
//! * the WebGPU engine (`GpuCore`, the code `index.js` uses through `GpuEngine`) on the browser's
//!   real WebGPU: the default models on 20 real test digits against the CPU engine and the labels.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "node.rs"]
mod node;

use mdeploy_core::{format, Plan};
use mdeploy_wasm::gpu::GpuCore;
use wasm_bindgen_test::wasm_bindgen_test;

/// 20 real digits of the fixed test split (2 per class; `fixtures/make_digits.mjs`).
fn digits() -> (Vec<f32>, Vec<u8>) {
    const BYTES: &[u8] = include_bytes!("fixtures/digits20.bin");
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for rec in BYTES.chunks_exact(1 + 784 * 2) {
        ys.push(rec[0]);
        xs.extend(rec[1..].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as f32 / 1000.0));
    }
    (xs, ys)
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// The default float models (`models/defaults.json` without the integer ones, which WebGPU
/// refuses: `wasm/test/browser.test.mjs` checks that refusal and their CPU bits in Chromium).
const MODELS: [(&str, &[u8]); 5] = [
    ("mnist-mlp", include_bytes!("../../models/mnist-mlp.mdm")),
    ("mnist-cnn", include_bytes!("../../models/mnist-cnn.mdm")),
    ("mnist-resnet", include_bytes!("../../models/mnist-resnet.mdm")),
    ("mnist-mlp-sparse90", include_bytes!("../../models/mnist-mlp-sparse90.mdm")),
    ("mnist-mlp-student", include_bytes!("../../models/mnist-mlp-student.mdm")),
];

#[wasm_bindgen_test]
async fn webgpu_runs_the_default_models_like_the_cpu_on_real_digits() {
    let (xs, ys) = digits();
    let n = ys.len();
    assert_eq!(n, 20);
    for (name, bytes) in MODELS {
        let model = format::read(bytes).expect("a shipped model loads");
        let gpu = match GpuCore::load(&model, 8).await {
            Ok(g) => g,
            Err(e) => panic!("{name}: no WebGPU engine in Chromium with --enable-unsafe-webgpu: {e}"),
        };
        // The browser's own WebGPU (SwiftShader here), not some other wgpu backend.
        assert!(gpu.adapter().contains("BrowserWebGpu"), "{name}: adapter {}", gpu.adapter());
        // 20 digits at a chunk of 8: three submits, the last one partial.
        let got = gpu.run(&xs, n).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut want = vec![0.0; n * 10];
        Plan::new(&model, n).expect("plan").run(&xs, n, &mut want).expect("cpu run");
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name}: WebGPU and the CPU differ by {worst}");
        let right = got.chunks(10).zip(&ys).filter(|(row, &y)| argmax(row) == y as usize).count();
        assert!(right >= 19, "{name}: {right}/20 real digits right on WebGPU");
        assert!(!gpu.lost(), "{name}: the device survived");
    }
}

#[wasm_bindgen_test]
async fn webgpu_refuses_bad_batches_with_codes_and_keeps_working() {
    let model = format::read(MODELS[1].1).expect("the CNN loads");
    let gpu = GpuCore::load(&model, 4).await.expect("a WebGPU engine");
    let (xs, _) = digits();
    let good = gpu.run(&xs[..784], 1).await.expect("one digit");
    let mut nan = xs[..784].to_vec();
    nan[100] = f32::NAN;
    for (what, input, n) in [("short", &xs[..783], 1usize), ("NaN", &nan[..], 1), ("zero", &xs[..784], 0)] {
        let e = gpu.run(input, n).await.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(e.code, "BAD_INPUT", "{what}: {e}");
    }
    assert_eq!(gpu.run(&xs[..784], 1).await.expect("again"), good, "same answer after the errors");
}
