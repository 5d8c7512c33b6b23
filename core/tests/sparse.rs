//! Sparse weights (`SparseW`, `KernelSet::spmm`/`spmv`, `Kernel::SparseDense`/`SparseConv2d`):
//!
//! * every kernel set this machine has (generic, AVX2, AVX-512) against an f64 reference and
//!   against the dense GEMM on edge sizes: empty columns, an all-zero weight, one non-zero,
//!   sizes that are not multiples of any SIMD width, 1, 3, 17 and 1,024 rows;
//! * `models/mnist-mlp.mdm` and `models/mnist-cnn.mdm` magnitude-pruned to 90 % in the test
//!   (|w| above the 90th percentile kept, per weight), stored sparse (CSR) through the real
//!   writer and reader: the lowering picks the sparse kernels, and on the 2,000 test digits
//!   the plan equals the densified program's plan (same pruned weights) and the independent
//!   f64 reference;
//! * hostile sparse data (bad indices, huge claimed sizes) is refused at read or at plan
//!   building, never a panic.
//!
//! The wasm `simd128` kernel (`wasm_spmm_f32_16`) runs this same file under Node (see
//! `wasm/scripts/test.sh`), like `kernels_parity.rs`.

use mdeploy_core::kernels::{KernelSet, MatRef, SparseW};
use mdeploy_core::lower::{lower, Kernel, SPARSE_MAX_DENSITY};
use mdeploy_core::model::{Model, Tensor, TensorData};
use mdeploy_core::{Op, Plan};
use mdeploy_testkit::hostile::one_step_program;
use mdeploy_testkit::{parity, Rng};

/// Row-major `[k × n]` with about `density` non-zeros (exactly none at 0), values in ±1.
fn random_sparse(rng: &mut Rng, k: usize, n: usize, density: f32) -> Vec<f32> {
    (0..k * n).map(|_| if rng.next_f32() < density { rng.uniform(-1.0, 1.0) } else { 0.0 }).collect()
}

fn reference(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: &[f32], clamp: Option<(f32, f32)>) -> Vec<f64> {
    let mut y = vec![0.0f64; m * n];
    for r in 0..m {
        for j in 0..n {
            let mut s = bias[j] as f64;
            for i in 0..k {
                s += x[r * k + i] as f64 * w[i * n + j] as f64;
            }
            if let Some((lo, hi)) = clamp {
                s = s.max(lo as f64).min(hi as f64);
            }
            y[r * n + j] = s;
        }
    }
    y
}

/// spmm (row blocks) and spmv (row by row) of one case, for every set, against the f64
/// reference and the same set's dense GEMM.
fn check_case(rng: &mut Rng, m: usize, k: usize, n: usize, w: &[f32], clamp: Option<(f32, f32)>) {
    // Inputs with exact zeros in them (the spmv skips their rows).
    let x: Vec<f32> = (0..m * k).map(|_| if rng.next_f32() < 0.4 { 0.0 } else { rng.uniform(-1.0, 1.0) }).collect();
    let bias = rng.signed_vec(n);
    let sw = SparseW::from_dense(k, n, w);
    sw.check().expect("from_dense makes a valid SparseW");
    assert_eq!(sw.to_dense(), w, "round trip");
    let wt = sw.transpose();
    wt.check().expect("transpose is valid");
    let want = reference(&x, m, k, w, n, &bias, clamp);
    let tol = |v: f64| 1e-5 * (1.0 + v.abs()) * (k as f64).sqrt().max(1.0);
    for ks in KernelSet::available() {
        let what = format!("{} m={m} k={k} n={n} nnz={}", ks.name(), sw.nnz());
        // NaN garbage in the output beyond n must stay untouched; inside it must be overwritten.
        let ldc = n + 3;
        let mut y = vec![f32::NAN; m * ldc];
        let nb = ks.spmm_nb();
        let mut scratch = vec![f32::NAN; ks.spmm_scratch(&sw)];
        let fill = |row0: usize, rows: usize, xt: &mut [f32]| {
            for r in 0..rows {
                for i in 0..k {
                    xt[i * nb + r] = x[(row0 + r) * k + i];
                }
            }
        };
        ks.spmm(m, &sw, &ks.spmm_rows(&sw), &bias, clamp, fill, &mut scratch, &mut y, ldc);
        let mut y1 = vec![f32::NAN; m * n];
        for r in 0..m {
            ks.spmv(&x[r * k..(r + 1) * k], &wt, &bias, clamp, &mut y1[r * n..(r + 1) * n]);
        }
        // The dense GEMM of the same weights (+ bias, clamp applied here).
        let mut yd = vec![0.0f32; m * n];
        if m > 0 && n > 0 {
            ks.gemm(m, n, k, MatRef::row_major(&x, k), MatRef::row_major(w, n), &mut yd, n, false);
        }
        for r in 0..m {
            for j in 0..n {
                let e = want[r * n + j];
                let mut d = yd[r * n + j] + bias[j];
                if let Some((lo, hi)) = clamp {
                    d = d.max(lo).min(hi);
                }
                let (a, b) = (y[r * ldc + j], y1[r * n + j]);
                assert!((a as f64 - e).abs() <= tol(e), "{what}: spmm[{r},{j}] = {a}, reference {e}");
                assert!((b as f64 - e).abs() <= tol(e), "{what}: spmv[{r},{j}] = {b}, reference {e}");
                assert!((a - d).abs() as f64 <= tol(e), "{what}: spmm[{r},{j}] = {a}, dense gemm {d}");
            }
            assert!(y[r * ldc + n..(r + 1) * ldc].iter().all(|v| v.is_nan()), "{what}: wrote past n in row {r}");
        }
    }
}

trait SignedVec {
    fn signed_vec(&mut self, n: usize) -> Vec<f32>;
}
impl SignedVec for Rng {
    fn signed_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-1.0, 1.0)).collect()
    }
}

#[test]
fn kernels_match_reference_and_dense_on_edge_sizes() {
    let mut rng = Rng::new(11);
    let relu = Some((0.0, f32::INFINITY));
    for &m in &[1usize, 3, 17, 1024] {
        for &(k, n) in &[(1usize, 1usize), (7, 5), (33, 17), (70, 65), (784, 10), (50, 300)] {
            let w = random_sparse(&mut rng, k, n, 0.1);
            check_case(&mut rng, m, k, n, &w, if m % 2 == 1 { relu } else { None });
        }
    }
    for &m in &[1usize, 17, 1024] {
        // All-zero weight: the output is the bias.
        check_case(&mut rng, m, 19, 13, &vec![0.0; 19 * 13], None);
        // One non-zero.
        let mut w = vec![0.0; 40 * 9];
        w[23 * 9 + 4] = -0.75;
        check_case(&mut rng, m, 40, 9, &w, Some((-0.5, 0.5)));
        // Empty columns and rows next to full ones.
        let mut w = random_sparse(&mut rng, 31, 12, 0.9);
        for i in 0..31 {
            w[i * 12 + 3] = 0.0;
            w[i * 12 + 11] = 0.0;
        }
        w[5 * 12..6 * 12].fill(0.0);
        check_case(&mut rng, m, 31, 12, &w, None);
    }
    // No rows at all.
    let w = random_sparse(&mut rng, 8, 8, 0.5);
    check_case(&mut rng, 0, 8, 8, &w, None);
}

#[test]
fn nan_inputs_pass_through_the_clamp() {
    let w = vec![1.0f32, 0.0, 0.0, 1.0];
    let sw = SparseW::from_dense(2, 2, &w);
    let x = [f32::NAN, 2.0];
    for ks in KernelSet::available() {
        let nb = ks.spmm_nb();
        let mut scratch = vec![0.0; ks.spmm_scratch(&sw)];
        let mut y = [0.0f32; 2];
        ks.spmm(1, &sw, &ks.spmm_rows(&sw), &[0.0, 0.0], Some((0.0, 1.0)), |_, _, xt| {
            xt[0] = x[0];
            xt[nb] = x[1];
        }, &mut scratch, &mut y, 2);
        assert!(y[0].is_nan() && y[1] == 1.0, "{}: spmm gave {y:?}", ks.name());
        ks.spmv(&x, &sw.transpose(), &[0.0, 0.0], Some((0.0, 1.0)), &mut y);
        assert!(y[0].is_nan() && y[1] == 1.0, "{}: spmv gave {y:?}", ks.name());
    }
}

// ---------------------------------------------------------------- pruned MNIST models

/// `model` pruned to `q` zeros per weight, stored CSR, through the real writer and reader.
fn pruned_sparse(model: Model, q: f64, only_conv: bool) -> Model {
    mdeploy_testkit::prune::pruned_sparse(model, q, only_conv).unwrap_or_else(|e| panic!("{e}"))
}

/// Plans of `program` and of its densified twin on the 2,000 test digits, for every set: equal
/// within 1e-5 with identical argmax, and both within the parity rule of the f64 reference.
fn check_pruned(model: &Model, want_sparse: &[&str]) {
    let program = lower(&model.graph, &model.meta.input_shape).expect("lower");
    let names: Vec<&str> = program.steps.iter().map(|s| s.kernel.name()).filter(|n| n.starts_with("Sparse")).collect();
    assert_eq!(names, want_sparse, "sparse kernels chosen by lower()");
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().expect("MNIST test digits");
    let n = labels.len();
    assert_eq!(n, 2000);
    let classes = program.output_len;
    let want = mdeploy_testkit::reference_outputs(model, &xs, n).expect("f64 reference");
    let budget = mdeploy_core::budget::arena_budget(&model.graph);
    for ks in KernelSet::available() {
        let mut outs = Vec::new();
        for p in [program.clone(), program.clone().densified()] {
            for max_batch in [1usize, 3, 1024] {
                let mut plan = Plan::from_program(p.clone(), max_batch, ks, budget).expect("plan");
                let mut out = vec![0.0f32; n * classes];
                plan.run(&xs, n, &mut out).expect("run");
                outs.push(out);
            }
        }
        let dense = &outs[3];
        for (i, o) in outs.iter().enumerate() {
            let what = format!("{} {} max_batch {}", ks.name(), if i < 3 { "sparse" } else { "dense" }, [1, 3, 1024][i % 3]);
            let r = parity::compare(&what, o, &want, classes, Some(&labels)).unwrap_or_else(|e| panic!("{e}"));
            let max_diff = o.iter().zip(dense).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max_diff <= 1e-5, "{what}: max |sparse - dense| = {max_diff}");
            for s in 0..n {
                let row = |v: &[f32]| parity::argmax(&v[s * classes..(s + 1) * classes]);
                assert_eq!(row(o), row(dense), "{what}: sample {s} argmax differs from the dense plan");
            }
            // Pruned without fine-tuning, so accuracy drops (that is `mdeploy prune`'s job); only
            // the parity above is this test's claim.
            if i == 0 {
                eprintln!("{what}: {} of 2000 correct, max |sparse - dense| {max_diff:.2e}, vs f64 {:.2e}", r.correct, r.max_abs_diff);
            }
        }
    }
}

#[test]
fn pruned_mlp_sparse_plan_equals_dense_plan_on_2000_digits() {
    let model = pruned_sparse(mdeploy_testkit::mnist::trained_model("mnist-mlp.mdm").expect("mnist-mlp.mdm"), 0.9, false);
    let dense_layers = model.graph.nodes.iter().filter(|n| matches!(n.op, Op::Dense { .. })).count();
    check_pruned(&model, &vec!["SparseDense"; dense_layers]);
}

#[test]
fn pruned_cnn_convs_run_sparse_on_2000_digits() {
    let model = pruned_sparse(mdeploy_testkit::mnist::trained_model("mnist-cnn.mdm").expect("mnist-cnn.mdm"), 0.9, true);
    let program = lower(&model.graph, &model.meta.input_shape).expect("lower");
    let convs = program.steps.iter().filter(|s| matches!(s.kernel, Kernel::Conv2d { .. } | Kernel::SparseConv2d { .. })).count();
    assert!(convs >= 2);
    check_pruned(&model, &vec!["SparseConv2d"; convs]);
}

#[test]
fn padded_strided_dilated_sparse_convs_match_the_reference() {
    // Direct (stride 1, padded, dilated) and im2col (stride 2) sparse convolutions, odd sizes,
    // multi-channel input, each against the f64 reference and the densified plan.
    let mut rng = Rng::new(5);
    let mut dilated = mdeploy_testkit::builders::conv(&mut rng, 5, 7, 3, 1, 2, 1);
    if let Op::Conv2d { dilation, .. } = &mut dilated {
        *dilation = [2, 2];
    }
    let layers = vec![
        mdeploy_testkit::builders::conv(&mut rng, 3, 5, 3, 1, 1, 1),
        Op::Relu,
        dilated,
        Op::Tanh,
        mdeploy_testkit::builders::conv(&mut rng, 7, 9, 3, 2, 1, 1),
        Op::Flatten,
    ];
    let model = Model {
        meta: mdeploy_core::model::Metadata { input_shape: vec![3, 13, 11], ..Default::default() },
        graph: mdeploy_core::Graph::sequential(layers),
    };
    let model = pruned_sparse(model, 0.9, true);
    let program = lower(&model.graph, &model.meta.input_shape).expect("lower");
    let sparse = program.steps.iter().filter(|s| matches!(s.kernel, Kernel::SparseConv2d { .. })).count();
    assert_eq!(sparse, 3, "every conv sparse");
    let n = 5;
    let xs: Vec<f32> = (0..n * 3 * 13 * 11).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let want = mdeploy_testkit::reference_outputs(&model, &xs, n).expect("reference");
    let budget = mdeploy_core::budget::arena_budget(&model.graph);
    let out_len = program.output_len;
    for ks in KernelSet::available() {
        for p in [program.clone(), program.clone().densified()] {
            let mut plan = Plan::from_program(p, 2, ks, budget).expect("plan");
            let mut out = vec![0.0f32; n * out_len];
            plan.run(&xs, n, &mut out).expect("run");
            for (i, (&a, &b)) in out.iter().zip(&want).enumerate() {
                assert!((a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()), "{}: value {i} is {a}, reference {b}", ks.name());
            }
        }
    }
}

#[test]
fn dense_ish_stored_sparse_weights_stay_dense() {
    // 80 % pruned is stored sparse but stays above SPARSE_MAX_DENSITY: dense kernels.
    assert!(SPARSE_MAX_DENSITY < 0.2);
    let model = pruned_sparse(mdeploy_testkit::mnist::trained_model("mnist-mlp.mdm").expect("mnist-mlp.mdm"), 0.8, false);
    let p = lower(&model.graph, &model.meta.input_shape).expect("lower");
    assert!(p.steps.iter().all(|s| !s.kernel.name().starts_with("Sparse")), "a 20 % dense weight went sparse");
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_sparse_programs_are_refused_not_panicked() {
    let good = SparseW::from_dense(4, 3, &[1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
    let mut cases: Vec<(&str, SparseW)> = Vec::new();
    let mut w = good.clone();
    w.idx[1] = 4;
    cases.push(("row index out of range", w));
    let mut w = good.clone();
    w.idx[1] = u32::MAX;
    cases.push(("row index u32::MAX", w));
    let mut w = good.clone();
    w.ptr[3] = 1_000_000;
    cases.push(("pointer past the values", w));
    let mut w = good.clone();
    w.ptr = vec![0, 2, 1, 3];
    cases.push(("decreasing pointers", w));
    let mut w = good.clone();
    w.ptr.pop();
    cases.push(("short pointers", w));
    let mut w = good.clone();
    w.val.pop();
    cases.push(("fewer values than indices", w));
    let mut w = good.clone();
    w.val[0] = f32::INFINITY;
    cases.push(("infinite value", w));
    let mut w = good.clone();
    w.rows = usize::MAX;
    cases.push(("huge claimed rows", w));
    for (what, w) in cases {
        let k = Kernel::SparseDense { k: 4, out: 3, weight: w, bias: vec![0.0; 3], act: mdeploy_core::lower::Act::None };
        let r = Plan::from_program(one_step_program(k, 4, 3), 4, KernelSet::best(), 1 << 20);
        let e = r.err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(e.message.contains("SparseDense"), "{what}: error does not name the kernel: {}", e.message);
    }
    // A consistent but huge weight whose block offsets would not fit u32: refused, no panic.
    let big = 1usize << 30;
    let w = SparseW { rows: big, cols: 3, ptr: vec![0, 1, 1, 1], idx: vec![1 << 29], val: vec![1.0] };
    let k = Kernel::SparseDense { k: big, out: 3, weight: w, bias: vec![0.0; 3], act: mdeploy_core::lower::Act::None };
    assert!(Plan::from_program(one_step_program(k, big, 3), 1, KernelSet::best(), 1 << 20).is_err());
    // Huge claimed sizes in the kernel itself.
    let k = Kernel::SparseDense { k: 1 << 40, out: 3, weight: good.clone(), bias: vec![0.0; 3], act: mdeploy_core::lower::Act::None };
    assert!(Plan::from_program(one_step_program(k, 4, 3), 4, KernelSet::best(), 1 << 20).is_err());
    // The good one runs.
    let k = Kernel::SparseDense { k: 4, out: 3, weight: good, bias: vec![0.5; 3], act: mdeploy_core::lower::Act::None };
    let mut plan = Plan::from_program(one_step_program(k, 4, 3), 4, KernelSet::best(), 1 << 20).expect("good program");
    let mut y = [0.0f32; 3];
    plan.run(&[1.0, 1.0, 1.0, 1.0], 1, &mut y).expect("run");
    assert_eq!(y, [1.5, 2.5, 3.5]);
}

#[test]
fn hostile_sparse_tensors_are_refused_at_read_or_lowering() {
    // A model whose CSR weight has an out-of-range column index, made in memory (bypassing the
    // reader's checks): lowering must refuse it with an error, not index out of bounds.
    let mut model = mdeploy_testkit::mnist::trained_model("mnist-mlp.mdm").expect("mnist-mlp.mdm");
    let Some(Op::Dense { weight, .. }) = model.graph.nodes.iter_mut().map(|n| &mut n.op).find(|op| matches!(op, Op::Dense { .. })) else {
        panic!("no Dense layer")
    };
    let rows = weight.shape[0];
    let mut row_ptr = vec![0u32; rows + 1];
    for p in row_ptr.iter_mut().skip(1) {
        *p = 1;
    }
    *weight = Tensor { shape: weight.shape.clone(), data: TensorData::SparseCsr { row_ptr, col_idx: vec![1_000_000], values: vec![1.0] } };
    let lowered = lower(&model.graph, &model.meta.input_shape);
    assert!(lowered.is_err(), "a CSR index past the row was lowered");
    // And through the real reader: the bytes of that model are refused at read.
    if let Ok(bytes) = mdeploy_core::format::write(&model) {
        assert!(mdeploy_core::format::read(&bytes).is_err(), "the reader accepted a CSR index past the row");
    }
}
