//! The committed fixtures (`models/test/`) are exactly what their generators make today, and
//! they load with the real reader: a file that drifted from its generator (or a generator whose
//! output changed) fails here, with the command that rewrites it.

use mdeploy_testkit::{fixtures, mnist};

#[test]
fn mobilenet_block_file_equals_a_fresh_generation() {
    let path = mnist::model_path(fixtures::MOBILENET_BLOCK_FILE);
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fresh = fixtures::mobilenet_block_bytes().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        committed == fresh,
        "{} ({} bytes) differs from a fresh generation ({} bytes): if the change is intended, run \
         `cargo run --release -p mdeploy-testkit --example fixtures` and commit the file",
        path.display(),
        committed.len(),
        fresh.len()
    );
    let model = mnist::read_model(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.meta.name, "mobilenet-block");
    assert_eq!(model.meta.input_shape, [1, 28, 28]);
    assert_eq!(model.meta.labels.len(), 10);
    assert_eq!(model.meta.provenance.test_accuracy, None, "a random-weight fixture claims no accuracy");
    // The structures it exists to test: grouped (depthwise) convolutions and residual Adds.
    use mdeploy_core::graph::Op;
    let depthwise = model.graph.nodes.iter().filter(|n| matches!(&n.op, Op::Conv2d { groups, .. } if *groups > 1)).count();
    let adds = model.graph.nodes.iter().filter(|n| matches!(n.op, Op::Add)).count();
    assert_eq!((depthwise, adds), (3, 2), "depthwise convolutions and residual Adds");
}

#[test]
fn the_fixture_is_a_parity_model() {
    let list = mnist::shipped_models();
    assert!(list.iter().any(|f| f == fixtures::MOBILENET_BLOCK_FILE), "models/parity.json must list {}", fixtures::MOBILENET_BLOCK_FILE);
}
