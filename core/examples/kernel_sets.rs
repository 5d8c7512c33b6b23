//! Every available kernel set side by side on the trained models and real test digits, one
//! thread: the MINIMUM time per call over many rounds, interleaving the sets round by round.
//! On a shared machine the minimum is the run nobody interrupted, so it compares kernels far
//! more steadily than a mean (criterion's groups are still the published numbers).
//!
//! `cargo run --release -p mdeploy-core --example kernel_sets [ROUNDS]`

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use std::time::Instant;

use mdeploy_testkit::mnist;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic").collect();
    for name in ["mlp", "cnn"] {
        let model = mnist::trained_model(&format!("mnist-{name}.mdm")).unwrap_or_else(|e| panic!("{e}"));
        for batch in [1usize, 1024] {
            // Batch 1: one call = 256 consecutive digits run one by one (a request stream).
            let calls = if batch == 1 { 256 } else { 1 };
            let mut plans: Vec<_> = sets.iter().map(|&ks| Plan::with_kernels(&model, batch, ks).expect("plan")).collect();
            let mut out = vec![0.0f32; batch * plans[0].output_len()];
            let mut best = vec![f64::INFINITY; sets.len()];
            for _ in 0..rounds {
                for (i, plan) in plans.iter_mut().enumerate() {
                    let t = Instant::now();
                    for c in 0..calls {
                        let x = &digits[c * batch * 784..(c + 1) * batch * 784];
                        plan.run(x, batch, &mut out).expect("run");
                    }
                    best[i] = best[i].min(t.elapsed().as_secs_f64());
                }
            }
            for (ks, t) in sets.iter().zip(&best) {
                let per_img = t / (calls * batch) as f64;
                println!(
                    "{name}/batch{batch:<5} {:<22} {:>9.2} µs/image {:>9.0} images/s",
                    ks.name(),
                    per_img * 1e6,
                    1.0 / per_img
                );
            }
        }
    }
}
