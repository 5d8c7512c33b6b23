//! Binary models against f32 models in the same run, one thread, on real test digits: the
//! MINIMUM (and median) time per call over many rounds, every f32 reference (best set) and
//! every binary model on every kernel set interleaved round by round (as `int8_sets`), plus
//! each model's accuracy on the 2,000 test digits and its file size. Commands and results:
//! `core/runtime/QUANT.md`, "Binary".
//!
//! `cargo run --release -p mdeploy-core --example binary_sets -- BINARY.mdm[,BINARY2.mdm...] [ROUNDS] [BATCH...]`
//! (default 20 rounds, batch 1024).
//!
//! The references: the shipped f32 MLP (`models/mnist-mlp.mdm`, 784-128-10) always, and the
//! files listed in `BINARY_SETS_F32` (comma-separated), e.g. the same architecture in f32 made
//! by `bench/binary-f32.sh` (issue 12's "f32 model" of a binary network: its latent weights
//! before binarization), or `BINARY_SETS_ARCH` (comma-separated architecture specs, built here
//! with untrained weights). Every row prints its ratio to each reference.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use std::time::Instant;

use mdeploy_testkit::mnist;

fn main() {
    let mut args = std::env::args().skip(1);
    let paths: Vec<String> = args.next().expect("usage: binary_sets BINARY.mdm[,...] [ROUNDS] [BATCH...]").split(',').map(str::to_owned).collect();
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut batches: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if batches.is_empty() {
        batches = vec![1024];
    }
    let (digits, labels) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let read = |p: &str| {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let m = mdeploy_core::format::read(&bytes).unwrap_or_else(|e| panic!("{p}: {e}"));
        (name_of(p), m, bytes.len())
    };
    let mut refs = vec![read(mnist::model_path("mnist-mlp.mdm").to_str().expect("utf-8 path"))];
    for p in std::env::var("BINARY_SETS_F32").unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        refs.push(read(p));
    }
    // `BINARY_SETS_ARCH=mlp-binary-in:256x2,mlp-binary:192x1`: f32 references built here from
    // an architecture spec (`arch::from_spec`, seed 1) with their initial weights, for a machine
    // without an `mdeploy` binary to run `bench/binary-f32.sh`. At batch > 1 an f32 plan's time
    // does not depend on its weights (its GEMM multiplies every value; only the batch-1 GEMV
    // skips zero inputs, and after a ReLU which inputs are zero depends on the weights); their
    // accuracy is that of untrained weights.
    for spec in std::env::var("BINARY_SETS_ARCH").unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let m = mdeploy_core::arch::from_spec(spec, 1).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let bytes = mdeploy_core::format::write(&m).unwrap_or_else(|e| panic!("{spec}: {e}")).len();
        refs.push((format!("f32 {spec} (untrained)"), m, bytes));
    }
    let bins: Vec<_> = paths.iter().map(|p| read(p)).collect();
    let best_set = KernelSet::best();
    for (label, m, bytes) in refs.iter().chain(&bins) {
        let mut plan = Plan::with_kernels(m, 256, best_set).expect("plan");
        let mut out = vec![0.0f32; labels.len() * 10];
        plan.run(&digits, labels.len(), &mut out).expect("run");
        let ok = out.chunks_exact(10).zip(&labels).filter(|(p, &l)| mdeploy_core::train::argmax(p) == l as usize).count();
        println!("{label:<28} {:.2} % on the 2,000 test digits, {bytes} bytes", ok as f64 * 100.0 / labels.len() as f64);
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
    if std::env::var_os("BINARY_SETS_BEST").is_some() {
        // Only the best set's own binary kernels (a shorter run, e.g. under wasm).
        println!("(BINARY_SETS_BEST: {} only)", best_set.name());
    }
    let sets: Vec<KernelSet> = if std::env::var_os("BINARY_SETS_BEST").is_some() { vec![best_set] } else { sets };
    for &batch in &batches {
        // Batch 1: one call = 256 consecutive digits run one by one (a request stream).
        let calls = if batch == 1 { 256 } else { 1 };
        // The references on every set the binary rows use (f32 on the AVX2 set beside the AVX2
        // set's binary rows): (set name, label, plan, reference index or None).
        let mut ref_sets: Vec<KernelSet> = sets.clone();
        ref_sets.dedup_by_key(|k| k.name());
        let mut runs: Vec<(String, &'static str, Option<usize>, Plan)> = Vec::new();
        for &ks in &ref_sets {
            for (i, (l, m, _)) in refs.iter().enumerate() {
                runs.push((format!("{l} (f32 {})", ks.name()), ks.name(), Some(i), Plan::with_kernels(m, batch, ks).expect("plan")));
            }
        }
        for (l, m, _) in &bins {
            for &ks in &sets {
                runs.push((format!("{l} {} {} + int8 {}", ks.bmmm_name(), ks.bpack_name(), ks.qmmm_name()), ks.name(), None, Plan::with_kernels(m, batch, ks).expect("plan")));
            }
        }
        let mut out = vec![0.0f32; batch * 10];
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); runs.len()];
        let mut cpu = vec![f64::INFINITY; runs.len()];
        for _ in 0..rounds {
            for (i, (_, _, _, plan)) in runs.iter_mut().enumerate() {
                let (t, c0) = (Instant::now(), thread_cpu_ns());
                for c in 0..calls {
                    let x = &digits[c * batch * 784..(c + 1) * batch * 784];
                    plan.run(x, batch, &mut out).expect("run");
                }
                times[i].push(t.elapsed().as_secs_f64());
                if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
                    cpu[i] = cpu[i].min((b - a) as f64 * 1e-9);
                }
            }
        }
        let per = (calls * batch) as f64;
        let stat: Vec<(f64, f64)> = times
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                (v[0] / per, v[v.len() / 2] / per)
            })
            .collect();
        // The thread's CPU time (minimum over the rounds): what other processes on the cores
        // cannot inflate by preempting this one; its ratios are printed after the wall ones.
        let cpu: Vec<f64> = cpu.iter().map(|c| c / per).collect();
        for (((label, set, _, _), &(min, med)), &c) in runs.iter().zip(&stat).zip(&cpu) {
            // × each reference on the same set: min / min and median / median.
            let x: Vec<String> = runs
                .iter()
                .zip(&stat)
                .filter_map(|((_, s, r, _), &(rmin, rmed))| r.filter(|_| s == set).map(|r| format!("{:.2}x/{:.2}x {}", rmin / min, rmed / med, refs[r].0)))
                .collect();
            let xc: Vec<String> = runs
                .iter()
                .zip(&cpu)
                .filter_map(|((_, s, r, _), &rc)| r.filter(|_| s == set && c.is_finite()).map(|r| format!("{:.2}x {}", rc / c, refs[r].0)))
                .collect();
            println!("batch{batch:<5} {label:<92} {:>7.2} / {:>7.2} µs/image (min / median)  {}  | CPU {:.2} µs/image  {}", min * 1e6, med * 1e6, x.join("  "), c * 1e6, xc.join("  "));
        }
    }
}

/// A short label: the file name without `.mdm`.
fn name_of(p: &str) -> String {
    std::path::Path::new(p).file_stem().map_or_else(|| p.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// CPU time of this thread in ns (`mdeploy_testkit::thread_time`: `CLOCK_THREAD_CPUTIME_ID` on
/// Linux, WASI's `THREAD_CPUTIME_ID` under a WASI host, where Node's gives the thread running the
/// module); `None` where there is no thread clock.
fn thread_cpu_ns() -> Option<u64> {
    if cfg!(any(target_os = "wasi", target_os = "linux")) {
        Some((mdeploy_testkit::thread_time() * 1e9) as u64)
    } else {
        None
    }
}
