//! A binary model against the shipped f32 MLP in the same run, one thread, on real test
//! digits: the MINIMUM time per call over many rounds, f32 (best set) and the binary model on
//! every kernel set interleaved round by round (as `int8_sets`), plus each model's accuracy on
//! the 2,000 test digits and its file size. Commands and results: `core/runtime/QUANT.md`,
//! "Binary".
//!
//! `cargo run --release -p mdeploy-core --example binary_sets -- BINARY.mdm [ROUNDS] [BATCH...]`
//! (default 20 rounds, batch 1024).

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use std::time::Instant;

use mdeploy_testkit::mnist;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: binary_sets BINARY.mdm [ROUNDS] [BATCH...]");
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut batches: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if batches.is_empty() {
        batches = vec![1024];
    }
    let (digits, labels) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let f_bytes = std::fs::read(mnist::model_path("mnist-mlp.mdm")).expect("f32 MLP");
    let b_bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let f = mdeploy_core::format::read(&f_bytes).expect("f32 MLP");
    let b = mdeploy_core::format::read(&b_bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    let best_set = KernelSet::best();
    for (label, m, bytes) in [("f32 MLP", &f, f_bytes.len()), ("binary", &b, b_bytes.len())] {
        let mut plan = Plan::with_kernels(m, 256, best_set).expect("plan");
        let mut out = vec![0.0f32; labels.len() * 10];
        plan.run(&digits, labels.len(), &mut out).expect("run");
        let ok = out.chunks_exact(10).zip(&labels).filter(|(p, &l)| mdeploy_core::train::argmax(p) == l as usize).count();
        println!("{label:<8} {:.2} % on the 2,000 test digits, {bytes} bytes", ok as f64 * 100.0 / labels.len() as f64);
    }
    // Every set but the generic one (its scalar int8 layers take ~0.5 ms an image), unless the
    // build has nothing else; the two AVX-512 sets share their kernels: time them once.
    let mut sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic").collect();
    if sets.is_empty() {
        sets.push(best_set);
    }
    sets.dedup_by_key(|k| k.bmmm_name());
    // Each set's other binary kernels too (A/B in one process): the AVX2 set's `popcnt` and
    // `vpshufb` kernels; a set without AVX-512 never gets the `vpopcntq` one.
    let sets: Vec<KernelSet> = sets
        .iter()
        .flat_map(|k| {
            let avx512 = k.bmmm_name().starts_with("avx512");
            k.binary_variants().into_iter().filter(move |v| v.bmmm_name() != "generic_bmmm_b1_4x8" && (avx512 || !v.bmmm_name().starts_with("avx512")))
        })
        .collect();
    for &batch in &batches {
        // Batch 1: one call = 256 consecutive digits run one by one (a request stream).
        let calls = if batch == 1 { 256 } else { 1 };
        let mut runs: Vec<(String, Plan)> = vec![(format!("f32 {}", best_set.name()), Plan::with_kernels(&f, batch, best_set).expect("plan"))];
        for &ks in &sets {
            runs.push((format!("binary {} {} + int8 {}", ks.bmmm_name(), ks.bpack_name(), ks.qmmm_name()), Plan::with_kernels(&b, batch, ks).expect("plan")));
        }
        let mut out = vec![0.0f32; batch * 10];
        let mut best = vec![f64::INFINITY; runs.len()];
        for _ in 0..rounds {
            for (i, (_, plan)) in runs.iter_mut().enumerate() {
                let t = Instant::now();
                for c in 0..calls {
                    let x = &digits[c * batch * 784..(c + 1) * batch * 784];
                    plan.run(x, batch, &mut out).expect("run");
                }
                best[i] = best[i].min(t.elapsed().as_secs_f64());
            }
        }
        let base = best[0];
        for ((label, _), t) in runs.iter().zip(&best) {
            let per_img = t / (calls * batch) as f64;
            println!("batch{batch:<5} {label:<76} {:>9.2} µs/image {:>9.0} images/s {:>6.2}x f32", per_img * 1e6, 1.0 / per_img, base / t);
        }
    }
}
