//! The residual network: it trains reproducibly, BatchNorm's running statistics move, and the
//! published `models/mnist-resnet.mdm` scores what its provenance says through the training
//! code's eval-mode forward pass after a round trip through the file format.



use mdeploy_core::eval::evaluate;
use mdeploy_core::graph::Op;
use mdeploy_core::model::Model;
use mdeploy_core::train::{Predictor, TrainConfig, Trainer};
use mdeploy_core::{arch, format};

use mdeploy_testkit::mnist::spread_subset as subset;

fn trained_tensors(m: &Model) -> Vec<Vec<f32>> {
    m.graph
        .nodes
        .iter()
        .flat_map(|n| n.op.tensors())
        .map(|t| t.as_f32().unwrap().to_vec())
        .collect()
}

#[test]
fn a_residual_graph_trains_and_predicts_in_eval_mode() {
    let s = mdeploy_testkit::mnist::split();
    let data = subset(&s.train, 1000);
    let test = subset(&s.test, 500);
    let config = TrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 3e-3,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(arch::resnet(1), config.clone()).unwrap();
    let stats = t.fit(&data, &mut |_| {}).unwrap();
    assert!(stats[1].loss < stats[0].loss, "{stats:?}");
    let mut p = Predictor::new(t.model()).unwrap();
    let e = evaluate(&test, 10, 100, |x, n, out| p.run(x, n, out)).unwrap();
    assert!(
        e.accuracy() > 0.8,
        "resnet, 1000 digits, 2 epochs: {}",
        e.accuracy()
    );
    // Same seed, same weights (BatchNorm statistics included).
    let mut again = Trainer::new(arch::resnet(1), config).unwrap();
    again.fit(&data, &mut |_| {}).unwrap();
    assert_eq!(trained_tensors(again.model()), trained_tensors(t.model()));
    // Running statistics moved away from their initial values.
    let bn_moved = t.model().graph.nodes.iter().any(|n| match &n.op {
        Op::BatchNorm { mean, .. } => mean.as_f32().unwrap().iter().any(|&v| v != 0.0),
        _ => false,
    });
    assert!(bn_moved);
}

#[test]
fn the_published_resnet_scores_its_recorded_accuracy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/mnist-resnet.mdm");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let m = format::read(&bytes).unwrap();
    assert!(
        m.graph.as_sequential().is_none(),
        "a DAG (skip connections)"
    );
    assert_eq!(
        m.graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNorm { .. }))
            .count(),
        8
    );
    assert_eq!(m.param_count(), 38_890);
    let recorded = m
        .meta
        .provenance
        .test_accuracy
        .expect("the provenance holds the test accuracy");
    let s = mdeploy_testkit::mnist::split();
    let mut p = Predictor::new(&m).unwrap();
    let e = evaluate(&s.test, 10, 250, |x, n, out| p.run(x, n, out)).unwrap();
    assert_eq!(e.accuracy(), recorded, "{e}");
    assert!(e.accuracy() >= 0.985, "{e}");
}
