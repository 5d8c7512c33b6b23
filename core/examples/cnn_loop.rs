//! A profiling target: the trained CNN (`models/mnist-cnn.mdm`) through `Plan` with the best
//! kernel set, on real test digits, for a fixed number of seconds at one batch size, so that
//! `perf record` sees nothing but the plan. Prints the thread CPU time per image: the mean, and
//! the minimum, median and maximum over the calls (one call = one batch; at batch 1, 256
//! digits), so that a call-to-call spread shows, and the wall time's minimum and median.
//!
//! `MDEPLOY_MNIST_DIR=... cargo run --release -p mdeploy-core --example cnn_loop [BATCH] [SECONDS]`
//! then e.g. `perf record -g $CARGO_TARGET_DIR/release/examples/cnn_loop 1 10`.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use mdeploy_testkit::{mnist, thread_time};

fn main() {
    let arg = |i: usize, d: f64| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, secs) = (arg(1, 1.0) as usize, arg(2, 5.0));
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let model = mnist::trained_model("mnist-cnn.mdm").unwrap_or_else(|e| panic!("{e}"));
    let mut plan = Plan::from_graph(&model.graph, &model.meta.input_shape, batch, KernelSet::best()).expect("plan");
    let il = 784;
    let n = digits.len() / il;
    let mut out = vec![0.0; plan.output_len() * batch];
    // A timed call: one batch, or 256 single digits at batch 1 (one is below the clock's grain).
    let per_call = if batch == 1 { 256 } else { 1 };
    // `CNN_LOOP_FIXED=1`: the same first digits every call (as the criterion bench), instead of
    // a window moving by 7 digits per call.
    let step = if std::env::var_os("CNN_LOOP_FIXED").is_some() { 0 } else { batch.min(7) };
    let (mut calls, mut walls): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (t0, mut done, mut i) = (thread_time(), 0usize, 0usize);
    while thread_time() - t0 < secs {
        let (c0, w0) = (thread_time(), std::time::Instant::now());
        for _ in 0..per_call {
            let s = i % (n - batch + 1);
            plan.run(&digits[s * il..(s + batch) * il], batch, &mut out).expect("run");
            done += batch;
            i += step;
        }
        calls.push((thread_time() - c0) / (per_call * batch) as f64 * 1e6);
        walls.push(w0.elapsed().as_secs_f64() / (per_call * batch) as f64 * 1e6);
    }
    calls.sort_by(f64::total_cmp);
    walls.sort_by(f64::total_cmp);
    let q = |f: f64| calls[((calls.len() - 1) as f64 * f) as usize];
    println!(
        "{} batch {batch}: {:.2} µs/image over {done} images; per call min {:.2} median {:.2} max {:.2} ({} calls); wall min {:.2} median {:.2}",
        plan.kernel_name(),
        (thread_time() - t0) / done as f64 * 1e6,
        q(0.0),
        q(0.5),
        q(1.0),
        calls.len(),
        walls[0],
        walls[walls.len() / 2]
    );
}
