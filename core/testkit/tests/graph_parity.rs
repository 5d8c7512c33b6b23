//! The testkit's branching graphs (a ResNet/MobileNetV2 network, a graph with every op) through
//! the Plan on every kernel set, against the f64 reference on 200 real test digits.
//!
//! Until the graph runtime lands the sequential-only Plan refuses them with `Unsupported`, which
//! this test accepts; any graph the Plan does accept must match the reference. When the runtime
//! supports them, set `PLAN_RUNS_GRAPHS` to make refusing a failure.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::{Metadata, Model};
use mdeploy_core::{ErrorKind, Plan};
use mdeploy_testkit::{builders, mnist, parity, reference_outputs};

/// `true` once `Plan` executes any `Graph` (lower() + the graph runtime).
const PLAN_RUNS_GRAPHS: bool = true;

#[test]
fn branching_graphs_match_the_reference_or_are_refused_as_unsupported() {
    let idx = mnist::interleaved_test_indices(20);
    let (xs, _) = mnist::test_subset(&idx).unwrap_or_else(|e| panic!("{e}"));
    let n = idx.len();
    for (name, graph) in [("resnet_tiny", builders::resnet_tiny(11)), ("every_op", builders::every_op(12))] {
        let model = Model { meta: Metadata { input_shape: vec![1, 28, 28], ..Default::default() }, graph };
        model.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = reference_outputs(&model, &xs, n).unwrap_or_else(|e| panic!("{name}: {e}"));
        for ks in KernelSet::available() {
            match Plan::with_kernels(&model, 64, ks) {
                Ok(mut plan) => {
                    let mut got = vec![f32::NAN; n * plan.output_len()];
                    plan.run(&xs, n, &mut got).expect("run");
                    let r = parity::compare(&format!("{name} [{}]", ks.name()), &got, &want, 10, None)
                        .unwrap_or_else(|e| panic!("{e}"));
                    eprintln!("{name} [{}]: max |diff| {:.2e}", ks.name(), r.max_abs_diff);
                }
                Err(e) if e.kind == ErrorKind::Unsupported && !PLAN_RUNS_GRAPHS => {
                    eprintln!("{name} [{}]: not yet supported by the Plan: {e}", ks.name());
                }
                Err(e) => panic!("{name} [{}]: {e}", ks.name()),
            }
        }
    }
}
