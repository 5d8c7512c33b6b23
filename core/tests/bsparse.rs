//! Block-sparse batch 1 (`BlockW`, `KernelSet::bspmv`, `Kernel::BlockSparseDense`):
//!
//! * every kernel set this build has (generic, AVX2, AVX-512; simd128 under WASI) against an f64
//!   reference and the dense GEMV, block widths 16, 8 and 4, on edge sizes: ragged last blocks
//!   (outputs not a multiple of the width), empty rows, an all-zero weight, blocks with zeros
//!   inside (any weight can be written as blocks), one input, 784 inputs;
//! * one-step `BlockSparseDense` programs at batch 1 (block kernel) and 1,024 (row blocks of
//!   the SpMM) against their densified twins;
//! * `lower()` picks `BlockSparseDense` with the pruned block width for `models/mnist-mlp.mdm`
//!   pruned by `mdeploy prune`'s code in 1×16, 1×8 and 1×4 blocks, and `SparseDense` for
//!   unstructured and 4×1 pruning; on the 2,000 test digits the 1×16 plan equals the densified
//!   plan and the independent f64 reference, at max batch 1, 3 and 1,024;
//! * the shipped `mnist-mlp-sparse90.mdm` (pruned in 1×16 blocks) lowers to the block kernel;
//! * hostile block programs (bad widths, bad weights) are refused, never a panic.

use mdeploy_core::kernels::{BlockW, KernelSet, MatRef, SparseW, BLOCK_WIDTHS};
use mdeploy_core::lower::{lower, Act, Kernel, Program};
use mdeploy_core::model::Model;
use mdeploy_core::train::prune as tp;
use mdeploy_core::Plan;
use mdeploy_testkit::hostile::one_step_program;
use mdeploy_testkit::{parity, Rng};

/// Row-major `[k × n]` pruned in `1 × bw` blocks: each block kept with probability `keep` (full
/// of non-zeros in ±1, or with a hole when `holes`), rows listed in `empty` all zero.
fn block_weight(rng: &mut Rng, k: usize, n: usize, bw: usize, keep: f32, holes: bool, empty: &[usize]) -> Vec<f32> {
    let mut w = vec![0.0f32; k * n];
    for i in 0..k {
        for c0 in (0..n).step_by(bw) {
            if empty.contains(&i) || rng.next_f32() >= keep {
                continue;
            }
            for j in c0..(c0 + bw).min(n) {
                w[i * n + j] = if holes && rng.next_f32() < 0.3 { 0.0 } else { rng.uniform(-1.0, 1.0) };
            }
        }
    }
    w
}

fn reference(x: &[f32], k: usize, w: &[f32], n: usize, bias: &[f32], clamp: Option<(f32, f32)>) -> Vec<f64> {
    (0..n)
        .map(|j| {
            let s = (0..k).fold(bias[j] as f64, |s, i| s + x[i] as f64 * w[i * n + j] as f64);
            clamp.map_or(s, |(lo, hi)| s.max(lo as f64).min(hi as f64))
        })
        .collect()
}

/// bspmv of one weight at width `bw`, for every set and a few inputs (with exact zeros, the
/// rows the kernel skips), against the f64 reference and the same set's dense GEMV.
fn check_case(rng: &mut Rng, k: usize, n: usize, bw: usize, w: &[f32], clamp: Option<(f32, f32)>) {
    let sw = SparseW::from_dense(k, n, w);
    let b = BlockW::from_sparse(&sw, bw);
    b.check().expect("from_sparse makes a valid BlockW");
    assert_eq!(b.to_dense(), w, "round trip k={k} n={n} bw={bw}");
    assert!(b.col.iter().all(|&c| (c as usize).is_multiple_of(bw)), "blocks start at multiples of the width");
    let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let tol = |v: f64| 1e-5 * (1.0 + v.abs()) * (k as f64).sqrt().max(1.0);
    for _ in 0..3 {
        let x: Vec<f32> = (0..k).map(|_| if rng.next_f32() < 0.4 { 0.0 } else { rng.uniform(-1.0, 1.0) }).collect();
        let want = reference(&x, k, w, n, &bias, clamp);
        for ks in KernelSet::available() {
            let what = format!("{} ({}) k={k} n={n} bw={bw} blocks={}", ks.name(), ks.bspmv_name(), b.blocks());
            // NaN garbage in the scratch must be overwritten; past n in y it must stay.
            let mut acc = vec![f32::NAN; b.acc_len() + 5];
            let mut y = vec![f32::NAN; n + 3];
            ks.bspmv(&x, &b, &bias, clamp, &mut acc, &mut y);
            let kd = ks.for_width(n);
            let mut yd = vec![0.0f32; n];
            if n > 0 {
                let packed = kd.pack_b(k, n, MatRef::row_major(w, n));
                kd.gemv(&x, &packed, Some(&bias), false, &mut yd);
            }
            for j in 0..n {
                let e = want[j];
                let d = clamp.map_or(yd[j], |(lo, hi)| yd[j].max(lo).min(hi));
                assert!((y[j] as f64 - e).abs() <= tol(e), "{what}: y[{j}] = {}, reference {e}", y[j]);
                assert!(((y[j] - d).abs() as f64) <= tol(e), "{what}: y[{j}] = {}, dense gemv {d}", y[j]);
            }
            assert!(y[n..].iter().all(|v| v.is_nan()), "{what}: wrote past n");
        }
    }
}

#[test]
fn block_kernels_match_reference_and_dense_on_edge_sizes() {
    let mut rng = Rng::new(21);
    let relu = Some((0.0, f32::INFINITY));
    for &bw in &BLOCK_WIDTHS {
        for &(k, n) in &[(1usize, 1usize), (1, 16), (7, 5), (33, 17), (70, 65), (9, 3), (784, 128), (50, 300), (40, 31)] {
            let empty: Vec<usize> = (0..k).filter(|i| i % 3 == 1).collect();
            let w = block_weight(&mut rng, k, n, bw, 0.3, false, &empty);
            check_case(&mut rng, k, n, bw, &w, if k % 2 == 1 { relu } else { None });
            // Blocks with zeros inside, denser: still exact.
            let w = block_weight(&mut rng, k, n, bw, 0.7, true, &[]);
            check_case(&mut rng, k, n, bw, &w, None);
        }
        // All-zero weight: no blocks, the output is the bias (clamped).
        check_case(&mut rng, 19, 13, bw, &[0.0; 19 * 13], relu);
        // Every block kept: each row holds all its blocks (more than the work list's fast path).
        let w = block_weight(&mut rng, 20, 150, bw, 1.1, false, &[]);
        check_case(&mut rng, 20, 150, bw, &w, None);
    }
}

/// NaN inputs propagate through the block kernel like through the dense one.
#[test]
fn nan_input_reaches_the_output() {
    let (k, n) = (5, 20);
    let w: Vec<f32> = (0..k * n).map(|i| if (i % n) < 16 { 0.5 } else { 0.0 }).collect();
    let b = BlockW::from_sparse(&SparseW::from_dense(k, n, &w), 16);
    for ks in KernelSet::available() {
        let mut x = vec![1.0f32; k];
        x[2] = f32::NAN;
        let (mut acc, mut y) = (vec![0.0f32; b.acc_len()], vec![0.0f32; n]);
        ks.bspmv(&x, &b, &vec![0.0; n], Some((0.0, 6.0)), &mut acc, &mut y);
        assert!(y[..16].iter().all(|v| v.is_nan()), "{}: {:?}", ks.name(), y);
        assert!(y[16..].iter().all(|&v| v == 0.0), "{}: {:?}", ks.name(), y);
    }
}

/// A `BlockSparseDense` step through the plan: batch 1 (the block kernel) and 1,024 (the SpMM's
/// row blocks), against its densified twin.
#[test]
fn block_sparse_dense_steps_match_their_dense_twins_at_batch_1_and_1024() {
    let mut rng = Rng::new(5);
    for &bw in &BLOCK_WIDTHS {
        for &(k, n) in &[(33usize, 17usize), (784, 128), (64, 10)] {
            let w = block_weight(&mut rng, k, n, bw, 0.15, false, &[0, 5]);
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let kernel = Kernel::BlockSparseDense { k, out: n, block: bw, weight: SparseW::from_dense(k, n, &w), bias, act: Act::Relu };
            let sparse = one_step_program(kernel, k, n);
            let dense = sparse.clone().densified();
            assert_eq!(dense.steps[0].kernel.name(), "Dense");
            let x: Vec<f32> = (0..1024 * k).map(|_| if rng.next_f32() < 0.5 { 0.0 } else { rng.uniform(-1.0, 1.0) }).collect();
            for ks in KernelSet::available() {
                for batch in [1usize, 2, 1024] {
                    let run = |p: &Program| {
                        let mut plan = Plan::from_program(p.clone(), batch, ks, 1 << 24).expect("plan");
                        let mut y = vec![0.0f32; batch * n];
                        plan.run(&x[..batch * k], batch, &mut y).expect("run");
                        y
                    };
                    let (a, d) = (run(&sparse), run(&dense));
                    let max = a.iter().zip(&d).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
                    assert!(max <= 1e-4, "{} bw={bw} k={k} n={n} batch {batch}: max |block - dense| = {max}", ks.name());
                }
            }
        }
    }
}

/// `models/mnist-mlp.mdm` pruned one shot to 90 % with `mdeploy prune`'s code.
fn pruned_mlp(structure: &str) -> Model {
    let mut m = mdeploy_testkit::mnist::trained_model("mnist-mlp.mdm").expect("mnist-mlp.mdm");
    let st = tp::Structure::parse(structure).expect("structure");
    tp::prune(&mut m, tp::Criterion::Sparsity(0.9), st, tp::Scope::Global).expect("prune");
    // Through the real writer and reader, stored as `mdeploy prune` stores it.
    tp::store_sparse(&mut m).expect("store sparse");
    let bytes = mdeploy_core::format::write(&m).expect("write");
    mdeploy_core::format::read(&bytes).expect("read back")
}

fn sparse_kernels(p: &Program) -> Vec<(&'static str, Option<usize>)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.kernel {
            Kernel::BlockSparseDense { block, .. } => Some(("BlockSparseDense", Some(*block))),
            Kernel::SparseDense { .. } => Some(("SparseDense", None)),
            _ => None,
        })
        .collect()
}

#[test]
fn lowering_picks_the_block_kernel_for_block_pruned_weights_only() {
    for (structure, want) in [
        ("block:1x16", ("BlockSparseDense", Some(16))),
        ("block:1x8", ("BlockSparseDense", Some(8))),
        ("block:1x4", ("BlockSparseDense", Some(4))),
        ("unstructured", ("SparseDense", None)),
        ("block:4x1", ("SparseDense", None)),
    ] {
        let m = pruned_mlp(structure);
        let p = lower(&m.graph, &m.meta.input_shape).expect("lower");
        // The global ranking prunes the 784 -> 128 layer (the classifier keeps most weights).
        assert_eq!(sparse_kernels(&p), [want], "{structure}");
    }
}

#[test]
fn block_pruned_mlp_plan_equals_dense_plan_and_f64_reference_on_2000_digits() {
    let model = pruned_mlp("block:1x16");
    let program = lower(&model.graph, &model.meta.input_shape).expect("lower");
    assert_eq!(sparse_kernels(&program), [("BlockSparseDense", Some(16))]);
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().expect("MNIST test digits");
    let n = labels.len();
    assert_eq!(n, 2000);
    let classes = program.output_len;
    let want = mdeploy_testkit::reference_outputs(&model, &xs, n).expect("f64 reference");
    let budget = mdeploy_core::budget::arena_budget(&model.graph);
    for ks in KernelSet::available() {
        let mut dense_plan = Plan::from_program(program.clone().densified(), 1024, ks, budget).expect("dense plan");
        let mut dense = vec![0.0f32; n * classes];
        dense_plan.run(&xs, n, &mut dense).expect("run dense");
        for max_batch in [1usize, 3, 1024] {
            let what = format!("{} ({}) block plan, max_batch {max_batch}", ks.name(), ks.bspmv_name());
            let mut plan = Plan::from_program(program.clone(), max_batch, ks, budget).expect("plan");
            let mut out = vec![0.0f32; n * classes];
            plan.run(&xs, n, &mut out).expect("run");
            let r = parity::compare(&what, &out, &want, classes, Some(&labels)).unwrap_or_else(|e| panic!("{e}"));
            let max_diff = out.iter().zip(&dense).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max_diff <= 1e-5, "{what}: max |block - dense| = {max_diff}");
            for s in 0..n {
                let row = |v: &[f32]| parity::argmax(&v[s * classes..(s + 1) * classes]);
                assert_eq!(row(&out), row(&dense), "{what}: sample {s} argmax differs from the dense plan");
            }
            eprintln!("{what}: {} of 2000 correct, max |block - dense| {max_diff:.2e}, vs f64 {:.2e}", r.correct, r.max_abs_diff);
        }
    }
}

#[test]
fn shipped_sparse_mlp_runs_the_block_kernel() {
    let m = mdeploy_testkit::mnist::trained_model("mnist-mlp-sparse90.mdm").expect("mnist-mlp-sparse90.mdm");
    let p = lower(&m.graph, &m.meta.input_shape).expect("lower");
    assert_eq!(sparse_kernels(&p), [("BlockSparseDense", Some(16))]);
}

#[test]
fn hostile_block_programs_are_refused_not_panicked() {
    let good = SparseW::from_dense(4, 3, &[1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
    let step = |block: usize, weight: SparseW| Kernel::BlockSparseDense { k: 4, out: 3, block, weight, bias: vec![0.5; 3], act: Act::None };
    for block in [0usize, 1, 3, 32, usize::MAX] {
        let r = Plan::from_program(one_step_program(step(block, good.clone()), 4, 3), 4, KernelSet::best(), 1 << 20);
        let e = r.err().unwrap_or_else(|| panic!("block width {block} accepted"));
        assert!(e.message.contains("BlockSparseDense") && e.message.contains("block width"), "{block}: {}", e.message);
    }
    let mut bad = good.clone();
    bad.idx[1] = 9;
    let e = Plan::from_program(one_step_program(step(16, bad), 4, 3), 4, KernelSet::best(), 1 << 20).err().expect("bad index accepted");
    assert!(e.message.contains("BlockSparseDense weight"), "{}", e.message);
    // The good one runs, at batch 1 through the block kernel.
    for block in BLOCK_WIDTHS {
        let mut plan = Plan::from_program(one_step_program(step(block, good.clone()), 4, 3), 4, KernelSet::best(), 1 << 20).expect("good");
        let mut y = [0.0f32; 3];
        plan.run(&[1.0, 1.0, 1.0, 1.0], 1, &mut y).expect("run");
        assert_eq!(y, [1.5, 2.5, 3.5], "block {block}");
    }
    // BlockW::check names what is wrong.
    let b = BlockW::from_sparse(&good, 4);
    b.check().expect("good");
    let mut w = b.clone();
    w.col[0] = 2;
    assert!(w.check().unwrap_err().contains("multiple of 4"));
    let mut w = b.clone();
    w.col[0] = 4;
    assert!(w.check().unwrap_err().contains("out of range"));
    let mut w = b.clone();
    w.ptr[1] = 100;
    assert!(w.check().unwrap_err().contains("row pointers"));
    let mut w = b.clone();
    w.live[0] |= 1 << 3; // row 3 has no block: the kernels would read one
    assert!(w.check().unwrap_err().contains("live-row mask"));
    let mut w = b.clone();
    w.bw = 5;
    assert!(w.check().unwrap_err().contains("block width"));
    let mut w = b;
    w.val.as_mut_slice()[0] = f32::NAN;
    assert!(w.check().unwrap_err().contains("non-finite"));
}
