//! The latency `mdeploy report` measures natively, for any build of the core: for each model
//! file, the fastest of 301 single test digits and of 15 batches of 1,024 through
//! `Plan` (one thread, the best kernel set of the build), after a warm-up (longer than the
//! report's: see below). One JSON
//! object per line, keyed by the model's digest, which `mdeploy report --wasm-latency FILE`
//! reads. Built for wasm32-wasip1 with simd128 and run in Node it gives the wasm column:
//!
//! ```sh
//! RUSTFLAGS='-C target-feature=+simd128' cargo build --release -p mdeploy-core --example latency --target wasm32-wasip1
//! node bench/wasm/wasi-run.mjs $CARGO_TARGET_DIR/wasm32-wasip1/release/examples/latency.wasm \
//!     $PWD/models/mnist-mlp.mdm ... > wasm-latency.jsonl
//! ```
//!
//! (wasi-run.mjs mounts the workspace at its own absolute path: pass absolute model paths.)

use std::time::Instant;

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::{format, Plan};
use mdeploy_testkit::mnist;

fn min_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let (x1, x1024) = (&digits[..784], &digits[..1024 * 784]);
    for file in std::env::args().skip(1) {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let model = format::read(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let digest = format::digest_hex(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut plan = Plan::new(&model, 1024).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut out = vec![0.0f32; 1024 * 10];
        // Warm-up: one batch as `mdeploy report` does, plus 2,000 single digits, because V8
        // first runs wasm in its baseline compiler and swaps in optimized code in the background
        // (without them batch 1 of the same model measured 4.2 or 8.9 µs from run to run).
        plan.run(x1024, 1024, &mut out).expect("warm-up");
        for i in 0..2000 {
            plan.run(&digits[(i % 1024) * 784..(i % 1024 + 1) * 784], 1, &mut out[..10]).expect("warm-up");
        }
        let b1 = min_secs(301, || plan.run(x1, 1, &mut out[..10]).expect("batch 1"));
        let b1024 = min_secs(15, || plan.run(x1024, 1024, &mut out).expect("batch 1024"));
        println!(
            "{{\"file\":{file:?},\"digest\":\"{digest}\",\"batch1_us\":{:.3},\"batch1024_ms\":{:.4},\"kernels\":\"{}\"}}",
            b1 * 1e6,
            b1024 * 1e3,
            KernelSet::best().name()
        );
    }
}
