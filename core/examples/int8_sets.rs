//! Int8 against f32 in the same run, one thread, on the shipped MNIST models and real test
//! digits: the MINIMUM time per call over many rounds, interleaving f32 and every kernel set's
//! int8 round by round (the minimum is the run nobody interrupted on a shared machine). Builds
//! natively and for `wasm32-wasip1` (run under Node with `bench/wasm/wasi-run.mjs`), so the
//! same numbers come from both; the commands and results are in `core/runtime/QUANT.md`.
//!
//! `cargo run --release -p mdeploy-core --example int8_sets [ROUNDS] [BATCH...]` (default: 20
//! rounds, batch 1024; `INT8_SETS_MODEL=mlp|cnn` for one model, `INT8_SETS_KERNEL=<prefix>` for
//! the int8 sets whose integer kernel name starts so; `INT8_SETS_BITS=4,2` adds the f32 model
//! quantized here with 4- and 2-bit weights (as `mdeploy quantize --bits`: minmax, 500
//! training digits) on the first int8 set, to show what packed weights cost at run time;
//! `INT8_SETS_ONLY=<prefix>` keeps only the runs whose label starts so (`<label>$`: that label
//! alone), e.g. `int7` to profile
//! one model alone, its "x f32" column then relative to the first run kept;
//! `INT8_SETS_MIXED=1` takes the test digits with the classes interleaved).
//! Natively on Linux it also prints the thread's mean CPU time per image over all rounds.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::quantize::{quantize_bits, Calibration};
use mdeploy_core::Plan;
use std::time::Instant;

use mdeploy_testkit::mnist;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut batches: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if batches.is_empty() {
        batches = vec![1024];
    }
    // `INT8_SETS_MIXED=1`: the test digits interleaved 0,1,…,9,0,… instead of in class order
    // (200 zeros, then 200 ones, …): the zero-word skip of the int8 tiles (QUANT.md, "Zero
    // words") finds fewer words zero in every row of a tile when neighbouring rows are
    // different digits.
    let (digits, _) = if std::env::var_os("INT8_SETS_MIXED").is_some() {
        mnist::test_subset(&mnist::interleaved_test_indices(200))
    } else {
        mnist::test_digits()
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let best_set = KernelSet::best();
    // f32 on the best set only (the baseline); int8 on every set but the generic one, unless
    // the build has nothing else (a scalar wasm build).
    let mut sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic").collect();
    if sets.is_empty() {
        sets.push(best_set);
    }
    // The two AVX-512 sets share one integer kernel: time it once.
    sets.dedup_by_key(|k| k.qmmm_name());
    // `INT8_SETS_KERNEL=avx512vnni` keeps the sets whose integer kernel name starts so.
    if let Ok(prefix) = std::env::var("INT8_SETS_KERNEL") {
        sets.retain(|k| k.qmmm_name().starts_with(&prefix));
    }
    // `INT8_SETS_MODEL=cnn` times one model only (for a profiler).
    let only = std::env::var("INT8_SETS_MODEL").ok();
    for name in ["mlp", "cnn"].into_iter().filter(|m| only.as_deref().is_none_or(|o| o == *m)) {
        let f = mnist::trained_model(&format!("mnist-{name}.mdm")).unwrap_or_else(|e| panic!("{e}"));
        let q = mnist::trained_model(&format!("mnist-{name}-int8.mdm")).unwrap_or_else(|e| panic!("{e}"));
        let nbit: Vec<(u8, mdeploy_core::Model)> = std::env::var("INT8_SETS_BITS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|b| b.trim().parse::<u8>().ok())
            .map(|bits| {
                let calib = mnist::spread_subset(&mnist::split().train, 500);
                let (m, _) = quantize_bits(&f, &calib.images, calib.n, Calibration::MinMax, bits, |_, _| {}).expect("quantize");
                (bits, m)
            })
            .collect();
        for &batch in &batches {
            // Batch 1: one call = 256 consecutive digits run one by one (a request stream).
            let calls = if batch == 1 { 256 } else { 1 };
            let mut runs: Vec<(String, Plan)> = vec![(
                format!("f32 {}", best_set.name()),
                Plan::with_kernels(&f, batch, best_set).expect("plan"),
            )];
            for &ks in &sets {
                runs.push((format!("int8 {}", ks.qmmm_name()), Plan::with_kernels(&q, batch, ks).expect("plan")));
            }
            for (bits, m) in &nbit {
                let ks = sets[0];
                runs.push((format!("int{bits} {}", ks.qmmm_name()), Plan::with_kernels(m, batch, ks).expect("plan")));
            }
            if let Ok(prefix) = std::env::var("INT8_SETS_ONLY") {
                // A trailing `$` asks for the whole label (the VNNI-only set's is a prefix of
                // the AMX set's).
                runs.retain(|(label, _)| match prefix.strip_suffix('$') {
                    Some(whole) => label == whole,
                    None => label.starts_with(&prefix),
                });
            }
            let mut out = vec![0.0f32; batch * 10];
            let mut best = vec![f64::INFINITY; runs.len()];
            // The thread's CPU time over all rounds too (Linux): on a loaded machine the minimum
            // wall time still catches other jobs' cache and core sharing, CPU time does not count
            // the time the thread waited for a core.
            let mut cpu = vec![0u64; runs.len()];
            for _ in 0..rounds {
                for (i, (_, plan)) in runs.iter_mut().enumerate() {
                    let c0 = thread_cpu_ns();
                    let t = Instant::now();
                    for c in 0..calls {
                        let x = &digits[c * batch * 784..(c + 1) * batch * 784];
                        plan.run(x, batch, &mut out).expect("run");
                    }
                    best[i] = best[i].min(t.elapsed().as_secs_f64());
                    if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
                        cpu[i] += b.saturating_sub(a);
                    }
                }
            }
            let base = best[0];
            let images = (calls * batch * rounds) as f64;
            for (((label, _), t), &ns) in runs.iter().zip(&best).zip(&cpu) {
                let per_img = t / (calls * batch) as f64;
                let cpu_col = if ns > 0 {
                    format!("   cpu {:>8.2} µs/image {:>6.2}x f32", ns as f64 / images / 1e3, cpu[0] as f64 / ns as f64)
                } else {
                    String::new()
                };
                println!(
                    "{name}/batch{batch:<5} {label:<32} {:>9.2} µs/image {:>9.0} images/s {:>6.2}x f32{cpu_col}",
                    per_img * 1e6,
                    1.0 / per_img,
                    base / t
                );
            }
        }
    }
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`, Linux), `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
