//! Int8 against f32, one thread, batch 1 and batch 1024, on the shipped MNIST models and real
//! test digits (`core/runtime/QUANT.md`).
//!
//! `MDEPLOY_MNIST_DIR=... cargo bench -p mdeploy-core --bench int8 -- --warm-up-time 1 --measurement-time 3`
//!
//! Groups `int8/{mlp,cnn}/batch{1,1024}`, ids `f32` (the shipped `models/mnist-*.mdm`) and
//! `int8` (`models/mnist-*-int8.mdm`, made by `mdeploy quantize`), both on `KernelSet::best()`,
//! plus `int8-avx2` where the best set is AVX-512 (the `vpmaddwd` kernel next to `vpdpbusd`).
//! Batch 1 cycles through the 2,000 test digits; batch 1024 runs the first 1,024.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use mdeploy_testkit::mnist;

fn bench(c: &mut Criterion) {
    let (xs, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let mut sets = vec![("int8", KernelSet::best())];
    #[cfg(target_arch = "x86_64")]
    if KernelSet::best().name() == "x86_64-avx512" {
        if let Some(k) = KernelSet::avx2_fma() {
            sets.push(("int8-avx2", k));
        }
    }
    for name in ["mlp", "cnn"] {
        let f = mnist::trained_model(&format!("mnist-{name}.mdm")).unwrap_or_else(|e| panic!("{e}"));
        let q = mnist::trained_model(&format!("mnist-{name}-int8.mdm"))
            .unwrap_or_else(|e| panic!("{e} (make it with the command in models/README.md)"));
        let mut runs = vec![("f32", f, KernelSet::best())];
        for (id, ks) in &sets {
            runs.push((id, q.clone(), *ks));
        }
        for batch in [1usize, 1024] {
            let mut g = c.benchmark_group(format!("int8/{name}/batch{batch}"));
            g.throughput(Throughput::Elements(batch as u64));
            for (id, model, ks) in &runs {
                let mut plan = Plan::with_kernels(model, batch, *ks).expect("plan");
                let mut out = vec![0.0f32; batch * 10];
                let mut at = 0usize;
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| {
                        let x = &xs[at * 784..(at + batch) * 784];
                        plan.run(black_box(x), batch, &mut out).expect("run");
                        at = (at + batch) % (2000 - batch + 1);
                        black_box(&out);
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
