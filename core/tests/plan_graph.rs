//! Graph suite: the Plan (lower() + the CPU executor) against the naive f64 NCHW forward pass of
//! `graph_support` on real MNIST digits, for every available kernel set: residual blocks with
//! BatchNorm, MobileNetV2 inverted residual blocks, squeeze-and-excitation, Concat, padded and
//! ceil-mode pooling, grouped/dilated/asymmetric convolutions, every activation, layout edge
//! cases (exit transposes, Reshape of HWC values) and seeded random graphs; plus SIMD against
//! generic depthwise kernels on edge channel counts and widths.

mod graph_support;

use graph_support::*;
use mdeploy_core::graph::{Graph, GraphBuilder, Node, Op};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;

const TOL: f64 = 2e-4;

/// Runs `g` on `inputs` (n samples) with every kernel set at max_batch 1, 4 (chunks) and n,
/// and checks every sample against the f64 reference.
fn check(name: &str, g: &Graph, shape: &[usize], inputs: &[f32]) {
    let il: usize = shape.iter().product();
    let n = inputs.len() / il;
    let refs: Vec<Vec<f64>> = inputs.chunks_exact(il).map(|x| reference(g, shape, x)).collect();
    let ol = refs[0].len();
    for ks in KernelSet::available() {
        for max_batch in [1, 4, n] {
            let mut plan = Plan::from_graph(g, shape, max_batch, ks)
                .unwrap_or_else(|e| panic!("{name}: plan ({}) fails: {e}", ks.name()));
            assert_eq!(plan.output_len(), ol, "{name}: output length");
            let mut out = vec![f32::NAN; n * ol];
            plan.run(inputs, n, &mut out).unwrap_or_else(|e| panic!("{name}: run fails: {e}"));
            for (s, (o, r)) in out.chunks_exact(ol).zip(&refs).enumerate() {
                let err = rel_err(o, r);
                assert!(
                    err < TOL,
                    "{name}: kernel set {} max_batch {max_batch} sample {s}: relative error {err:e}\n got {:?}\nwant {:?}",
                    ks.name(),
                    &o[..ol.min(8)],
                    &r[..ol.min(8)]
                );
            }
            // Batch 1 through predict() too (the GEMV path).
            let p = plan.predict(&inputs[..il]).expect("predict").to_vec();
            assert!(rel_err(&p, &refs[0]) < TOL, "{name}: predict ({})", ks.name());
        }
    }
}

const MNIST: [usize; 3] = [1, 28, 28];

include!("graph_support/cases.rs");

#[test]
fn depthwise_simd_matches_generic_on_edge_sizes() {
    let rng = &mut Rng(9);
    for c in 1..=17 {
        for (w, stride, pad) in [(7usize, 1usize, [1usize; 4]), (9, 2, [1, 0, 1, 2]), (5, 1, [0; 4])] {
            let g = Graph::sequential([
                conv(rng, c, c, [3, 3], [stride, stride], pad, [1, 1], c),
                relu6(),
                // The SIMD max pool on the same channel counts.
                Op::maxpool2d([2, 2], [1, 2]),
            ]);
            let shape = [c, 6, w];
            let x: Vec<f32> = rng.vec(2 * c * 6 * w, 2.0);
            check(&format!("depthwise c={c} w={w}"), &g, &shape, &x);
            // Channel multiplier 2 (groups = C, out_c = 2C) takes the grouped GEMM path.
            let g = Graph::sequential([conv(rng, c, 2 * c, [3, 3], [1, 1], [1; 4], [1, 1], c), Op::Relu]);
            check(&format!("grouped c={c}"), &g, &shape, &x);
        }
    }
}


/// A DAG model through the whole path a host takes: `.mdm` bytes (format 1.1) → `format::read`
/// → `Plan::new`, against the reference of the graph it was written from.
#[test]
fn dag_models_from_mdm_bytes() {
    use mdeploy_core::model::{Metadata, Model};
    for (name, g) in [("residual", residual(&mut Rng(31))), ("mobilenet", mobilenet(&mut Rng(32)))] {
        let model = Model {
            meta: Metadata { name: name.into(), input_shape: MNIST.to_vec(), ..Default::default() },
            graph: g.clone(),
        };
        let bytes = mdeploy_core::format::write(&model).expect("writes");
        let back = mdeploy_core::format::read(&bytes).expect("reads");
        let x = digits(3);
        let mut plan = Plan::new(&back, 3).expect("plan");
        let mut out = vec![0.0; 3 * plan.output_len()];
        plan.run(&x, 3, &mut out).expect("run");
        for (o, xi) in out.chunks_exact(plan.output_len()).zip(x.chunks_exact(784)) {
            let e = rel_err(o, &reference(&g, &MNIST, xi));
            assert!(e < TOL, "{name}: relative error {e:e}");
        }
    }
}
