//! What the integer suites (`plan_int8.rs`, `plan_nbit.rs`) share: running a model on one
//! kernel set, its accuracy on the test digits, and the check every quantized MNIST model
//! passes (integer steps only, the same output bits on every kernel set and batch size, the
//! digest and accuracies printed for `-- --nocapture`).

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::lower::{lower, Kernel};
use mdeploy_core::{Model, Plan};
use mdeploy_testkit::{mnist, reference};

/// Share of rows of 10 probabilities whose argmax is the label.
pub fn accuracy(out: &[f32], labels: &[u8]) -> f64 {
    let ok = out
        .chunks_exact(10)
        .zip(labels)
        .filter(|(p, &l)| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(l as usize))
        .count();
    ok as f64 / labels.len() as f64
}

/// `n` samples of `xs` through a plan on `ks` with chunks of `max_batch`.
pub fn run(model: &Model, ks: KernelSet, xs: &[f32], n: usize, max_batch: usize) -> Vec<f32> {
    let mut plan = Plan::with_kernels(model, max_batch, ks).expect("plan");
    let mut out = vec![0.0; n * plan.output_len()];
    plan.run(xs, n, &mut out).expect("run");
    out
}

/// `q` (quantized from `f`) lowers to `int_steps` integer GEMM steps and no f32 one, and gives
/// the same output bits on every available kernel set at max batch 1, 17 and 1024 on the
/// 2,000 test digits (100 at batch 1). `label` names the model in messages and in the printed
/// FNV-1a digest. Returns (f32 accuracy, quantized accuracy).
pub fn check_integer_plan(label: &str, f: &Model, q: &Model, int_steps: usize) -> (f64, f64) {
    let prog = lower(&q.graph, &q.meta.input_shape).expect("lower");
    let ints = prog.steps.iter().filter(|s| matches!(s.kernel, Kernel::QDense { .. } | Kernel::QConv2d { .. })).count();
    assert_eq!(ints, int_steps, "{label}: integer steps in {:?}", prog.steps.iter().map(|s| s.kernel.name()).collect::<Vec<_>>());
    assert!(!prog.steps.iter().any(|s| matches!(s.kernel, Kernel::Dense { .. } | Kernel::Conv2d { .. })), "{label}: an f32 GEMM is left");

    let (xs, labels) = mnist::test_digits().expect("digits");
    let n = labels.len();
    assert_eq!(n, 2000);
    let sets = KernelSet::available();
    let reference = run(q, KernelSet::generic(), &xs, n, 256);
    for ks in &sets {
        for max_batch in [1usize, 17, 1024] {
            let m = if max_batch == 1 { 100 } else { n };
            let got = run(q, *ks, &xs[..m * 784], m, max_batch);
            let same = got.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{label}: {} ({}) at max_batch {max_batch} differs from generic", ks.name(), ks.qmmm_name());
        }
    }
    check_against_f64(label, q, &xs, &reference);
    // A digest of every output bit, printed so runs on different hosts (native, wasm) can be
    // compared by eye (`-- --nocapture`).
    let digest = reference.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3));
    eprintln!("{label}: FNV-1a of the 2,000 outputs {digest:016x} ({} sets: {:?})", sets.len(), sets.iter().map(|k| k.qmmm_name()).collect::<Vec<_>>());
    let acc_q = accuracy(&reference, &labels);
    let acc_f = accuracy(&run(f, KernelSet::best(), &xs, n, 256), &labels);
    eprintln!("{label}: f32 {:.2} %, quantized {:.2} %", acc_f * 100.0, acc_q * 100.0);
    (acc_f, acc_q)
}

/// The first 500 digits of `got` (the plan's outputs for `xs`) against the independent f64
/// reference forward pass of the same quantized graph (`mdeploy_testkit::reference`: weights
/// decoded from their codes, activations fake-quantized in f64, no plan, no kernels). The
/// integer requantization differs from f64 fake quantization only by ties and double rounding
/// (one grid step per value at most), so the argmax must agree on nearly every digit and the
/// probabilities stay close; a weight decoded, packed or scaled wrongly by the integer path
/// (which the every-set bit comparison cannot see: all sets share the packing) fails here.
pub fn check_against_f64(label: &str, q: &Model, xs: &[f32], got: &[f32]) {
    let n = 500;
    let want = reference::forward_batch(&q.graph, &q.meta.input_shape, &xs[..n * 784], n).expect("reference");
    let argmax = |v: &mut dyn Iterator<Item = f64>| v.enumerate().fold((0, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b }).0;
    let (mut agree, mut worst) = (0, 0.0f64);
    for s in 0..n {
        let (g, w) = (&got[s * 10..(s + 1) * 10], &want[s * 10..(s + 1) * 10]);
        agree += usize::from(argmax(&mut g.iter().map(|&v| f64::from(v))) == argmax(&mut w.iter().copied()));
        worst = g.iter().zip(w).fold(worst, |m, (&a, &b)| m.max((f64::from(a) - b).abs()));
    }
    eprintln!("{label}: against the f64 reference, argmax {agree}/{n}, largest |dp| {worst:.2e}");
    assert!(agree >= n * 99 / 100, "{label}: argmax agrees with the f64 reference on {agree} of {n} digits");
    assert!(worst < 0.1, "{label}: largest probability difference from the f64 reference {worst}");
}
