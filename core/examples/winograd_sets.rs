//! Winograd F(2×2, 5×5) against the direct (indirect-GEMM) convolution, in one process: every
//! SIMD kernel set, the same plan built twice (`KernelSet::winograd_from(usize::MAX)` turns
//! Winograd off), interleaved round by round, the MINIMUM thread CPU time per image over the
//! rounds (time descheduled on the shared machine does not count; caches shared with the
//! neighbours still do). Rows:
//!
//! * `cnn/batch{1,1024}`: the trained `models/mnist-cnn.mdm` on real test digits;
//! * `conv ic→oc HxW`: one 5×5 convolution alone (`winograd_from(1, 1)`: Winograd even below
//!   `WINO_MIN`), the shapes behind the x86 sets' rule (KERNELS.md, "Winograd").
//!
//! `MDEPLOY_MNIST_DIR=... cargo run --release -p mdeploy-core --example winograd_sets [ROUNDS] [FILTER]`

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Metadata, Model};
use mdeploy_core::{Graph, Op, Plan};
use mdeploy_testkit::{builders, mnist, thread_time, Rng};

/// Minimum seconds per image of each plan over `rounds` interleaved rounds of `calls` calls,
/// in thread CPU time ([`thread_time`]).
fn race(plans: &mut [Plan], x: &[f32], batch: usize, calls: usize, rounds: usize) -> Vec<f64> {
    let il = plans[0].input_len();
    let mut out = vec![0.0f32; batch * plans[0].output_len()];
    let mut best = vec![f64::INFINITY; plans.len()];
    for _ in 0..rounds {
        for (i, plan) in plans.iter_mut().enumerate() {
            let t = thread_time();
            for c in 0..calls {
                let xs = &x[(c * batch * il) % (x.len() - batch * il + 1)..][..batch * il];
                plan.run(xs, batch, &mut out).expect("run");
            }
            best[i] = best[i].min((thread_time() - t) / (calls * batch) as f64);
        }
    }
    best
}

fn print(what: &str, ks: KernelSet, t: &[f64]) {
    println!(
        "{what:<28} {:<22} direct {:>8.2} µs/image  winograd {:>8.2} µs/image  speed-up {:.2}×",
        ks.name(),
        t[0] * 1e6,
        t[1] * 1e6,
        t[0] / t[1]
    );
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let filter = std::env::args().nth(2).unwrap_or_default();
    let sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic" || cfg!(target_arch = "wasm32")).collect();
    if "cnn".contains(&filter) || filter.starts_with("cnn") {
        let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
        let model = mnist::trained_model("mnist-cnn.mdm").unwrap_or_else(|e| panic!("{e}"));
        for batch in [1usize, 1024] {
            let what = format!("cnn/batch{batch}");
            if !what.contains(&filter) {
                continue;
            }
            // Batch 1: one call = 256 consecutive digits one by one (a request stream).
            let calls = if batch == 1 { 256 } else { 1 };
            for &ks in &sets {
                // Winograd at the x86 thresholds in every set (the generic and wasm sets leave it
                // off by default: this is how that was measured).
                let (ic, oc) = mdeploy_core::kernels::winograd::WINO_MIN;
                let mut plans: Vec<Plan> = [ks.winograd_from(usize::MAX, usize::MAX), ks.winograd_from(ic, oc)]
                    .iter()
                    .map(|&k| Plan::with_kernels(&model, batch, k).expect("plan"))
                    .collect();
                print(&what, ks, &race(&mut plans, &digits, batch, calls, rounds));
            }
        }
    }
    // Single convolutions: (ic, oc, side). The CNN's two convs, then channel counts around the
    // rule's threshold, and a larger image.
    for (ic, oc, side) in [(1, 16, 28), (16, 32, 12), (2, 16, 12), (3, 16, 12), (4, 16, 12), (8, 16, 12), (8, 32, 12), (32, 32, 12), (16, 16, 12), (16, 16, 28), (16, 32, 28), (32, 64, 12)] {
        let what = format!("conv {ic}→{oc} {side}x{side}");
        if !what.contains(&filter) {
            continue;
        }
        let mut rng = Rng::new(ic as u64 * 1000 + oc as u64);
        let model = Model {
            meta: Metadata { input_shape: vec![ic, side, side], ..Default::default() },
            graph: Graph::sequential(vec![builders::conv(&mut rng, ic, oc, 5, 1, 0, 1), Op::Relu]),
        };
        let x: Vec<f32> = (0..64 * ic * side * side).map(|_| rng.uniform(-0.2, 1.0).max(0.0)).collect();
        for &ks in &sets {
            let mut plans: Vec<Plan> =
                [ks.winograd_from(usize::MAX, usize::MAX), ks.winograd_from(1, 1)].iter().map(|&k| Plan::with_kernels(&model, 1, k).expect("plan")).collect();
            print(&what, ks, &race(&mut plans, &x, 1, 64, rounds));
        }
    }
}
