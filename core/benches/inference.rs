//! Inference throughput of the MNIST MLP and CNN, one thread, batch 1 and batch 1024, with
//! the best kernel set side by side with `generic` (one criterion group per model and batch).
//!
//! `cargo bench -p mdeploy-core --bench inference -- --warm-up-time 1 --measurement-time 3`
//!
//! Models are built here with seeded random weights (the trained `.mdm` files come later);
//! timing does not depend on the weight values. Inputs are smooth synthetic images in 0..1
//! with zeros around the border like real digits (no data-dependent shortcuts exist anyway).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Layer, Metadata, Model, Tensor};
use mdeploy_core::Plan;

fn seeded(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

fn dense(fin: usize, fout: usize, seed: u64) -> Layer {
    let s = (6.0 / fin as f32).sqrt();
    Layer::Dense { weight: Tensor::f32(vec![fin, fout], seeded(fin * fout, seed, s)), bias: Tensor::f32(vec![fout], seeded(fout, seed + 1, 0.1)) }
}

fn conv(ic: usize, oc: usize, k: usize, seed: u64) -> Layer {
    let s = (6.0 / (ic * k * k) as f32).sqrt();
    Layer::Conv2d {
        weight: Tensor::f32(vec![oc, ic, k, k], seeded(oc * ic * k * k, seed, s)),
        bias: Tensor::f32(vec![oc], seeded(oc, seed + 1, 0.1)),
        stride: [1, 1],
        padding: [0, 0],
    }
}

fn mlp() -> Model {
    Model {
        meta: Metadata { input_shape: vec![1, 28, 28], ..Default::default() },
        layers: vec![Layer::Flatten, dense(784, 128, 1), Layer::Relu, Layer::Dropout { rate: 0.2 }, dense(128, 10, 3), Layer::Softmax],
    }
}

fn cnn() -> Model {
    let pool = Layer::MaxPool2d { kernel: [2, 2], stride: [2, 2] };
    Model {
        meta: Metadata { input_shape: vec![1, 28, 28], ..Default::default() },
        layers: vec![
            conv(1, 16, 5, 5),
            Layer::Relu,
            pool.clone(),
            conv(16, 32, 5, 7),
            Layer::Relu,
            pool,
            Layer::Flatten,
            dense(512, 64, 9),
            Layer::Relu,
            dense(64, 10, 11),
            Layer::Softmax,
        ],
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

criterion_group!(benches, bench);
criterion_main!(benches);
