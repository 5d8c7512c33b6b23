//! Sparse against dense kernels, one thread, every SIMD set of this machine: the 90 %-pruned
//! MNIST MLP (`models/mnist-mlp.mdm`, |w| above each weight's 90th percentile kept) at batch 1
//! and 1,024 on real test digits, and one 90 %-pruned conv layer of the CNN (its second conv,
//! 16 → 32 channels, 5×5) at batch 1 and 64. "sparse" is the plan `lower()` makes; "dense" is
//! the same program densified (`Program::densified`): the same pruned weights through the
//! dense GEMM/GEMV. Reports the MINIMUM time per call over many rounds, all variants
//! interleaved round by round (on a shared machine the minimum is the run nobody interrupted).
//! Also sweeps the MLP's density, for the threshold `lower::SPARSE_MAX_DENSITY`, and times the
//! MLP's first Dense alone at batch 1 through `spmv` and the dense GEMV ("layer 1" rows: where
//! batch-1 time goes, KERNELS.md). Then the block shapes: the MLP pruned in 1×4, 1×8, 1×16 and
//! 4×1 blocks, whole plans and the first Dense alone, and the shipped `mnist-mlp-sparse90.mdm`
//! ("Block-sparse batch 1", KERNELS.md).
//!
//! `MDEPLOY_MNIST_DIR=... cargo run --release -p mdeploy-core --example sparse_sets [ROUNDS]`

use mdeploy_core::kernels::{KernelSet, MatRef};
use mdeploy_core::lower::Kernel;
use mdeploy_core::lower::{lower, Program};
use mdeploy_core::model::{Metadata, Model};
use mdeploy_core::{Graph, Op, Plan};
use std::time::Instant;

use mdeploy_testkit::{mnist, prune, Rng};

/// Minimum seconds per image of each plan over `rounds`, interleaved.
fn race(plans: &mut [Plan], xs: &[f32], batch: usize, calls: usize, rounds: usize) -> Vec<f64> {
    let il = plans[0].input_len();
    let mut out = vec![0.0f32; batch * plans[0].output_len()];
    let mut best = vec![f64::INFINITY; plans.len()];
    for _ in 0..rounds {
        for (i, plan) in plans.iter_mut().enumerate() {
            let t = Instant::now();
            for c in 0..calls {
                let x = &xs[(c * batch * il) % (xs.len() - batch * il + 1)..][..batch * il];
                plan.run(x, batch, &mut out).expect("run");
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64() / (calls * batch) as f64);
        }
    }
    best
}

fn plans(p: &Program, ks: KernelSet, batch: usize, budget: usize) -> Vec<Plan> {
    [p.clone(), p.clone().densified()].into_iter().map(|p| Plan::from_program(p, batch, ks, budget).expect("plan")).collect()
}

fn row(what: &str, ks: KernelSet, t: &[f64]) {
    println!(
        "{what:<28} {:<16} sparse {:>8.3} µs/image  dense {:>8.3} µs/image  speed-up {:>5.2}x",
        ks.name(),
        t[0] * 1e6,
        t[1] * 1e6,
        t[1] / t[0]
    );
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    // Optional: only the rows whose label contains this (e.g. "mlp 90% batch 1 " for a profile).
    let only = std::env::args().nth(2).unwrap_or_default();
    let want = |label: &str| label.contains(only.as_str());
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "x86_64-avx512-narrow").collect();
    let mlp = mnist::trained_model("mnist-mlp.mdm").unwrap_or_else(|e| panic!("{e}"));
    let budget = mdeploy_core::budget::arena_budget(&mlp.graph);

    let pruned = prune::pruned_sparse(mlp.clone(), 0.9, false).unwrap_or_else(|e| panic!("{e}"));
    let p = lower(&pruned.graph, &pruned.meta.input_shape).expect("lower");
    for &ks in &sets {
        for batch in [1usize, 1024] {
            // Batch 1: one call = 256 consecutive digits run one by one (a request stream).
            let calls = if batch == 1 { 256 } else { 1 };
            let label = format!("mlp 90% batch {batch} ");
            if want(&label) {
                let t = race(&mut plans(&p, ks, batch, budget), &digits, batch, calls, rounds);
                row(&label, ks, &t);
            }
        }
    }

    // Where batch-1 time goes: the first Dense alone (the only sparse step of this MLP) through
    // the sparse kernel (spmv) and the dense one (GEMV on the same pruned weights), per digit,
    // beside the whole plan's time above; the rest is the fixed cost both plans pay (the input
    // check, the 128 -> 10 Dense, Softmax, copies).
    if let Some(Kernel::SparseDense { k, out, weight, bias, .. }) = p.steps.iter().map(|s| &s.kernel).find(|k| matches!(k, Kernel::SparseDense { .. })) {
        let (k, out) = (*k, *out);
        let wt = weight.transpose();
        let dense = weight.to_dense();
        if want("mlp 90% batch 1 layer 1 ") {
            // The work the batch-1 kernel has: non-zero inputs and the stored weights of their rows.
            let (mut upd, mut act) = (0usize, 0usize);
            for x in digits.chunks_exact(k).take(256) {
                for (i, _) in x.iter().enumerate().filter(|(_, &v)| v != 0.0) {
                    act += 1;
                    upd += (wt.ptr[i + 1] - wt.ptr[i]) as usize;
                }
            }
            println!(
                "layer 1: {k} -> {out}, {} non-zero weights; per digit {:.1} non-zero inputs, {:.1} of those weights",
                wt.nnz(),
                act as f64 / 256.0,
                upd as f64 / 256.0
            );
        }
        for &ks in &sets {
            let label = "mlp 90% batch 1 layer 1 ";
            if !want(label) {
                continue;
            }
            let kd = ks.for_width(out);
            let packed = kd.pack_b(k, out, MatRef::row_major(&dense, out));
            let mut y = vec![0.0f32; out];
            let (mut ts, mut td) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..rounds {
                let t = Instant::now();
                for x in digits.chunks_exact(k).take(256) {
                    ks.spmv(x, &wt, bias, Some((0.0, f32::INFINITY)), &mut y);
                    std::hint::black_box(&y);
                }
                ts = ts.min(t.elapsed().as_secs_f64() / 256.0);
                let t = Instant::now();
                for x in digits.chunks_exact(k).take(256) {
                    kd.gemv(x, &packed, Some(bias), true, &mut y);
                    std::hint::black_box(&y);
                }
                td = td.min(t.elapsed().as_secs_f64() / 256.0);
            }
            row(label, ks, &[ts, td]);
        }
    }

    // The shipped pruned MLP (1×16 blocks, fine-tuned): what `serve` and the npm package run.
    let shipped = mnist::trained_model("mnist-mlp-sparse90.mdm").unwrap_or_else(|e| panic!("{e}"));
    let sp = lower(&shipped.graph, &shipped.meta.input_shape).expect("lower");
    for &ks in &sets {
        for batch in [1usize, 1024] {
            let calls = if batch == 1 { 256 } else { 1 };
            let label = format!("shipped sparse90 batch {batch} ");
            if want(&label) {
                let t = race(&mut plans(&sp, ks, batch, budget), &digits, batch, calls, rounds);
                row(&label, ks, &t);
            }
        }
    }

    // Block shapes (issue 11, block-sparse batch 1): the MLP pruned one shot to 90 % (global
    // ranking of units by mean |w|, `mdeploy prune`'s code) in 1×bw blocks along the outputs
    // and in 4×1 blocks along the inputs, against unstructured. Speed depends on the pattern,
    // not on fine-tuned values, so no fine-tuning here. Whole plans (sparse as lowered vs
    // densified) at batch 1 and 1024, then the first Dense alone at batch 1 through the kernel
    // the lowering picked (bspmv for 1×bw blocks, spmv otherwise) and the dense GEMV.
    for structure in ["unstructured", "block:1x4", "block:1x8", "block:1x16", "block:4x1"] {
        use mdeploy_core::train::prune as tp;
        let label = format!("mlp {structure} ");
        if !want(&label) {
            continue;
        }
        let mut m = mlp.clone();
        let st = tp::Structure::parse(structure).expect("structure");
        tp::prune(&mut m, tp::Criterion::Sparsity(0.9), st, tp::Scope::Global).expect("prune");
        let p = lower(&m.graph, &m.meta.input_shape).expect("lower");
        let names: Vec<&str> = p.steps.iter().map(|s| s.kernel.name()).filter(|n| n.contains("Dense")).collect();
        println!("{structure}: lowered to {names:?}");
        for &ks in &sets {
            for batch in [1usize, 1024] {
                let calls = if batch == 1 { 256 } else { 1 };
                let t = race(&mut plans(&p, ks, batch, budget), &digits, batch, calls, rounds);
                row(&format!("{label}batch {batch} "), ks, &t);
            }
        }
        let first = p.steps.iter().map(|s| &s.kernel).find(|k| matches!(k, Kernel::SparseDense { .. } | Kernel::BlockSparseDense { .. }));
        let (Some(Kernel::SparseDense { k, out, weight, bias, .. }) | Some(Kernel::BlockSparseDense { k, out, weight, bias, .. })) = first else {
            continue;
        };
        let (k, out) = (*k, *out);
        let block = match first {
            Some(Kernel::BlockSparseDense { block, .. }) => Some(*block),
            _ => None,
        };
        let blocks = block.map(|bw| mdeploy_core::kernels::BlockW::from_sparse(weight, bw));
        let wt = weight.transpose();
        let dense = weight.to_dense();
        // The batch-1 kernel's work per digit: non-zero inputs, their rows' blocks and entries.
        let (mut act, mut nblk, mut upd) = (0usize, 0usize, 0usize);
        for x in digits.chunks_exact(k).take(256) {
            for (i, _) in x.iter().enumerate().filter(|(_, &v)| v != 0.0) {
                act += 1;
                upd += (wt.ptr[i + 1] - wt.ptr[i]) as usize;
                nblk += blocks.as_ref().map_or(0, |b| (b.ptr[i + 1] - b.ptr[i]) as usize);
            }
        }
        println!(
            "{structure} layer 1: {} non-zero weights in {} blocks; per digit {:.1} non-zero inputs, {:.1} blocks, {:.1} weights",
            wt.nnz(),
            blocks.as_ref().map_or(0, |b| b.blocks()),
            act as f64 / 256.0,
            nblk as f64 / 256.0,
            upd as f64 / 256.0
        );
        // 64-byte aligned like the plan's scratch: a zmm accumulator that straddles two cache
        // lines measured 0.99 against 0.66 µs per digit on AVX-512.
        let mut acc = mdeploy_core::kernels::AlignedBuf::zeros(blocks.as_ref().map_or(0, |b| b.acc_len()));
        for &ks in &sets {
            let kd = ks.for_width(out);
            let packed = kd.pack_b(k, out, MatRef::row_major(&dense, out));
            let mut y = vec![0.0f32; out];
            let (mut ts, mut td) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..rounds {
                let t = Instant::now();
                for x in digits.chunks_exact(k).take(256) {
                    match &blocks {
                        Some(b) => ks.bspmv(x, b, bias, Some((0.0, f32::INFINITY)), acc.as_mut_slice(), &mut y),
                        None => ks.spmv(x, &wt, bias, Some((0.0, f32::INFINITY)), &mut y),
                    }
                    std::hint::black_box(&y);
                }
                ts = ts.min(t.elapsed().as_secs_f64() / 256.0);
                let t = Instant::now();
                for x in digits.chunks_exact(k).take(256) {
                    kd.gemv(x, &packed, Some(bias), true, &mut y);
                    std::hint::black_box(&y);
                }
                td = td.min(t.elapsed().as_secs_f64() / 256.0);
            }
            let kernel = if blocks.is_some() { ks.bspmv_name() } else { "spmv" };
            row(&format!("{label}layer 1 ({kernel}) "), ks, &[ts, td]);
        }
    }

    // One conv layer: the CNN's second Conv2d alone, on non-negative inputs about half zeros
    // (what a ReLU + max pool hands it).
    let cnn = mnist::trained_model("mnist-cnn.mdm").unwrap_or_else(|e| panic!("{e}"));
    let shapes = cnn.graph.validate(&cnn.meta.input_shape).expect("shapes");
    let convs: Vec<usize> = (0..cnn.graph.nodes.len()).filter(|&i| matches!(cnn.graph.nodes[i].op, Op::Conv2d { .. })).collect();
    let ci = convs[1];
    let in_shape = shapes[cnn.graph.nodes[ci].inputs[0] as usize].clone();
    let layer = Model {
        meta: Metadata { input_shape: in_shape.clone(), ..Default::default() },
        graph: Graph::sequential(vec![cnn.graph.nodes[ci].op.clone()]),
    };
    let layer = prune::pruned_sparse(layer, 0.9, true).unwrap_or_else(|e| panic!("{e}"));
    let lp = lower(&layer.graph, &layer.meta.input_shape).expect("lower conv");
    let il: usize = in_shape.iter().product();
    let mut rng = Rng::new(7);
    let xs: Vec<f32> = (0..il * 256).map(|_| if rng.next_f32() < 0.5 { 0.0 } else { rng.next_f32() }).collect();
    let lbudget = mdeploy_core::budget::arena_budget(&layer.graph);
    for &ks in &sets {
        for batch in [1usize, 64] {
            let calls = if batch == 1 { 64 } else { 1 };
            let label = format!("conv {in_shape:?} 90% b{batch} ");
            if want(&label) {
                let t = race(&mut plans(&lp, ks, batch, lbudget), &xs, batch, calls, rounds);
                row(&label, ks, &t);
            }
        }
    }

    // Density sweep on the MLP (best set only): where sparse stops paying.
    let ks = KernelSet::best();
    for q in [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95] {
        let m = prune::pruned_sparse(mlp.clone(), q, false).unwrap_or_else(|e| panic!("{e}"));
        let p = lower(&m.graph, &m.meta.input_shape).expect("lower");
        // Force the sparse kernels whatever the threshold says, to measure both sides of it.
        let sparse = force_sparse(p.clone());
        for batch in [1usize, 1024] {
            let calls = if batch == 1 { 256 } else { 1 };
            let label = format!("mlp {:.0}% zeros batch {batch} ", q * 100.0);
            if !want(&label) {
                continue;
            }
            let mut ps: Vec<Plan> = [sparse.clone(), p.clone().densified()]
                .into_iter()
                .map(|p| Plan::from_program(p, batch, ks, budget).expect("plan"))
                .collect();
            let t = race(&mut ps, &digits, batch, calls, rounds.div_ceil(2));
            row(&label, ks, &t);
        }
    }
}

/// Every Dense step of `p` as a SparseDense one.
fn force_sparse(mut p: Program) -> Program {
    use mdeploy_core::lower::SparseW;
    for s in &mut p.steps {
        if let Kernel::Dense { k, out, weight, bias, act } = &s.kernel {
            s.kernel = Kernel::SparseDense { k: *k, out: *out, weight: SparseW::from_dense(*k, *out, weight), bias: bias.clone(), act: *act };
        }
    }
    p
}
