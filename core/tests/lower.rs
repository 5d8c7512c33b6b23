//! Lowering suite: what `lower()` promises about the Program (folding, fusion, layouts,
//! slots), checked on the Program itself; numbers are checked against the f64 reference.

mod graph_support;

use graph_support::*;
use mdeploy_core::graph::{Graph, GraphBuilder, Op};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::lower::{lower, Act, Kernel, Program};
use mdeploy_core::Plan;

const MNIST: [usize; 3] = [1, 28, 28];

fn names(p: &Program) -> Vec<&'static str> {
    p.steps.iter().map(|s| s.kernel.name()).collect()
}

/// The guarantees documented on `lower()`.
fn invariants(p: &Program) {
    assert_ne!(p.input_slot, p.output_slot);
    let mut written = vec![false; p.slots.len()];
    written[p.input_slot] = true;
    for (j, s) in p.steps.iter().enumerate() {
        assert_ne!(s.output, p.input_slot, "step {j} writes the input slot");
        for &i in &s.inputs {
            assert!(written[i], "step {j} reads slot {i} before it is written");
        }
        if s.inputs.contains(&s.output) {
            assert_eq!(s.inputs[0], s.output, "step {j}: in place only over input 0");
            assert!(
                matches!(s.kernel, Kernel::Act { .. } | Kernel::Affine { .. } | Kernel::Binary { .. } | Kernel::Softmax { .. }),
                "step {j}: {} in place",
                s.kernel.name()
            );
        }
        written[s.output] = true;
    }
    assert!(written[p.output_slot]);
}

fn plan_matches_reference(g: &Graph, shape: &[usize], n: usize) {
    let x = mnist_digits(n * shape.iter().product::<usize>() / 784 + 1);
    let il: usize = shape.iter().product();
    let x = &x[..n * il];
    let mut plan = Plan::from_graph(g, shape, n, KernelSet::best()).expect("plan");
    let mut out = vec![0.0; n * plan.output_len()];
    plan.run(x, n, &mut out).expect("run");
    for (o, xi) in out.chunks_exact(plan.output_len()).zip(x.chunks_exact(il)) {
        let e = rel_err(o, &reference(g, shape, xi));
        assert!(e < 1e-4, "relative error {e:e}");
    }
}

#[test]
fn batchnorm_folds_into_its_conv_and_dense() {
    let rng = &mut Rng(11);
    let g = Graph::sequential([
        conv(rng, 1, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1),
        bn(rng, 8),
        Op::Relu,
        Op::Flatten,
        dense(rng, 8 * 28 * 28, 16),
        bn(rng, 16),
        Op::Tanh,
        dense(rng, 16, 10),
    ]);
    let p = lower(&g, &MNIST).expect("lowers");
    invariants(&p);
    assert_eq!(names(&p), ["Conv2d", "Dense", "Dense"], "BatchNorm folded, activations fused, no transposes");
    assert!(matches!(p.steps[0].kernel, Kernel::Conv2d { act: Act::Relu, .. }));
    assert!(matches!(p.steps[1].kernel, Kernel::Dense { act: Act::Tanh, .. }));
    // Folded numbers equal the unfolded f64 forward pass.
    plan_matches_reference(&g, &MNIST, 3);
}

#[test]
fn shared_values_neither_fold_nor_fuse() {
    let rng = &mut Rng(12);
    let mut b = GraphBuilder::new();
    let c = b.push(conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
    let n = b.push(bn(rng, 4), &[c]); // c is also read by the Add: no folding
    let r = b.push(Op::Relu, &[n]); // n has one reader: fuses into the Affine
    let s = b.push(Op::Add, &[c, r]);
    let s2 = b.push(Op::Relu, &[s]); // fuses into the Add
    let t = b.push(Op::Sigmoid, &[s2]);
    let _ = b.push(Op::Mul, &[s2, t]); // s2 read twice: the Sigmoid stays a step
    let g = b.finish();
    let p = lower(&g, &MNIST).expect("lowers");
    invariants(&p);
    let ks: Vec<_> = p.steps.iter().map(|s| &s.kernel).collect();
    assert!(matches!(ks[0], Kernel::Conv2d { act: Act::None, .. }));
    assert!(matches!(ks[1], Kernel::Affine { act: Act::Relu, .. }));
    assert!(matches!(ks[2], Kernel::Binary { act: Act::Relu, .. }));
    assert!(matches!(ks[3], Kernel::Act { act: Act::Sigmoid, .. }));
    assert!(matches!(ks[4], Kernel::Binary { act: Act::None, .. }));
    assert_eq!(ks[5].name(), "Transpose", "spatial output goes back to NCHW");
    assert_eq!(ks.len(), 6);
    plan_matches_reference(&g, &MNIST, 2);

    // An activation of the graph output's producer when that value is the output too.
    let mut b = GraphBuilder::new();
    let d = b.chain(0, [Op::Flatten, dense(rng, 784, 10)]);
    let _ = b.push(Op::Relu, &[d]);
    let g = b.finish_at(d);
    let p = lower(&g, &MNIST).expect("lowers");
    assert_eq!(names(&p), ["Dense"], "dead ReLU dropped, Dense not fused");
    assert!(matches!(p.steps[0].kernel, Kernel::Dense { act: Act::None, .. }));
}

#[test]
fn identities_vanish_and_slots_are_reused() {
    let rng = &mut Rng(13);
    let mut ops = vec![conv(rng, 1, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), Op::Dropout { rate: 0.5 }];
    for _ in 0..8 {
        ops.push(conv(rng, 8, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1));
        ops.push(Op::Identity);
        ops.push(Op::Relu);
    }
    ops.push(Op::maxpool2d([2, 2], [2, 2]));
    ops.push(Op::Relu); // after a pool: an Act step, in place
    ops.push(Op::Flatten);
    ops.push(dense(rng, 8 * 14 * 14, 10));
    let g = Graph::sequential(ops);
    let p = lower(&g, &MNIST).expect("lowers");
    invariants(&p);
    assert_eq!(p.steps.len(), 9 + 3, "{:?}", names(&p));
    // The input, two ping-pong conv buffers and the pool output (reused by the Dense output).
    assert!(p.slots.len() <= 4, "slots {:?}", p.slots);
    let act = &p.steps[10];
    assert_eq!(act.kernel.name(), "Activation");
    assert_eq!(act.inputs[0], act.output, "the ReLU after the pool runs in place");
    plan_matches_reference(&g, &MNIST, 2);
}

#[test]
fn dense_after_hwc_flatten_gets_permuted_rows() {
    let rng = &mut Rng(14);
    let g = Graph::sequential([
        conv(rng, 1, 4, [3, 3], [2, 2], [0; 4], [1, 1], 1),
        Op::Flatten,
        dense(rng, 4 * 13 * 13, 5),
    ]);
    let p = lower(&g, &MNIST).expect("lowers");
    invariants(&p);
    assert_eq!(names(&p), ["Conv2d", "Dense"], "no transpose between the conv and the Dense");
    let (Op::Dense { weight, .. }, Kernel::Dense { weight: pw, .. }) = (&g.nodes[2].op, &p.steps[1].kernel) else {
        panic!("Dense expected")
    };
    let w = weight.as_f32().expect("f32");
    // Row g = p·C + ch of the program's weight is row f = ch·HW + p of the model's.
    let (c, hw) = (4, 13 * 13);
    for ch in 0..c {
        for px in 0..hw {
            assert_eq!(&pw[(px * c + ch) * 5..][..5], &w[(ch * hw + px) * 5..][..5]);
        }
    }
    plan_matches_reference(&g, &MNIST, 2);
}

#[test]
fn entry_transposes_only_for_multi_channel_inputs() {
    let rng = &mut Rng(15);
    let g1 = Graph::sequential([conv(rng, 1, 2, [3, 3], [1, 1], [0; 4], [1, 1], 1), Op::Flatten, dense(rng, 2 * 26 * 26, 3)]);
    assert_eq!(names(&lower(&g1, &MNIST).expect("lowers")), ["Conv2d", "Dense"]);
    let g3 = Graph::sequential([conv(rng, 3, 2, [3, 3], [1, 1], [0; 4], [1, 1], 1), Op::Flatten, dense(rng, 2 * 26 * 26, 3)]);
    let p = lower(&g3, &[3, 28, 28]).expect("lowers");
    invariants(&p);
    assert_eq!(names(&p), ["Transpose", "Conv2d", "Dense"]);
    assert!(matches!(p.steps[0].kernel, Kernel::Transpose { c: 3, hw: 784, to_hwc: true }));
    // A graph of identities copies the input to the output.
    let p = lower(&Graph::sequential([Op::Identity]), &[5]).expect("lowers");
    invariants(&p);
    assert_eq!(names(&p), ["Copy"]);
}

#[test]
fn invalid_graphs_are_errors_naming_the_node() {
    let rng = &mut Rng(16);
    let g = Graph::sequential([Op::Relu, dense(rng, 10, 3)]);
    let e = lower(&g, &MNIST).expect_err("Dense on a 3-D value");
    assert!(e.message.contains("node 1"), "{e}");
}
