//! Training on the real digits: determinism, and a short run that must clearly learn.

mod train_support;

use mdeploy_core::data::{Dataset, MNIST_SPLIT};
use mdeploy_core::eval::evaluate;
use mdeploy_core::model::{Model};
use mdeploy_core::Op;
use mdeploy_core::train::{Augment, OptimizerKind, Predictor, Schedule, TrainConfig, Trainer};
use mdeploy_core::{arch, format, ErrorKind};

fn subset(d: &Dataset, step: usize) -> Dataset {
    let idx: Vec<usize> = (0..d.n).step_by(step).collect();
    let images = idx
        .iter()
        .flat_map(|&i| d.image(i).iter().copied())
        .collect();
    Dataset::new(
        images,
        idx.iter().map(|&i| d.labels[i]).collect(),
        d.sample_shape,
    )
    .unwrap()
}

fn weights(m: &Model) -> Vec<Vec<f32>> {
    m.graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => {
                Some(weight.as_f32().unwrap().to_vec())
            }
            _ => None,
        })
        .collect()
}

fn train(model: Model, data: &Dataset, config: TrainConfig) -> Model {
    let mut t = Trainer::new(model, config).unwrap();
    t.fit(data, &mut |_| {}).unwrap();
    t.into_model()
}

#[test]
fn fixed_split_has_8000_train_and_2000_test_digits() {
    let s = train_support::mnist();
    assert_eq!((s.train.n, s.test.n), (8000, 2000));
    assert_eq!(s.test.class_counts(10), vec![200; 10]);
    assert_eq!(s.train.class_counts(10)[0], 1001 - 200);
}

#[test]
fn same_seed_gives_bit_identical_weights_and_another_seed_does_not() {
    let s = train_support::mnist();
    let data = subset(&s.train, 40); // 200 digits
                                     // Everything random at once: init, shuffling, dropout, augmentation.
    let config = |seed| TrainConfig {
        epochs: 2,
        batch_size: 32,
        augment: Some(Augment::default()),
        schedule: Schedule::Cosine {
            warmup_epochs: 0.5,
            min_factor: 0.1,
        },
        seed,
        ..TrainConfig::default()
    };
    for build in [arch::mlp as fn(u64) -> Model, arch::cnn] {
        let a = train(build(7), &data, config(7));
        let b = train(build(7), &data, config(7));
        let c = train(build(8), &data, config(8));
        assert_ne!(weights(&a), weights(&build(7)), "training changed nothing");
        assert_eq!(
            weights(&a),
            weights(&b),
            "{}: same seed, different weights",
            a.meta.name
        );
        assert_ne!(weights(&a), weights(&c));
    }
}

#[test]
fn one_epoch_of_the_mlp_clearly_learns_the_digits() {
    let s = train_support::mnist();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(arch::mlp(1), config).unwrap();
    let mut calls = 0;
    let stats = t
        .fit(&s.train, &mut |p| {
            calls += 1;
            assert!(p.loss.is_finite() && (0.0..=1.0).contains(&p.accuracy));
        })
        .unwrap();
    assert_eq!(calls, 250);
    assert!(
        stats[0].accuracy > 0.8,
        "training accuracy {}",
        stats[0].accuracy
    );
    let mut p = Predictor::new(t.model()).unwrap();
    let e = evaluate(&s.test, 10, 256, |x, n, out| p.run(x, n, out)).unwrap();
    assert!(
        e.accuracy() > 0.85,
        "test accuracy after 1 epoch: {}\n{e}",
        e.accuracy()
    );
    // Every class is learned, not just the easy ones.
    assert!((0..10).all(|c| e.recall(c).unwrap() > 0.6), "{e}");
    t.stamp_provenance(Some(e.accuracy()));
    let m = t.into_model();
    assert_eq!(m.meta.provenance.split, MNIST_SPLIT);
    assert_eq!(m.meta.provenance.epochs, 1);
    assert_eq!(m.meta.provenance.test_accuracy, Some(e.accuracy()));
    m.validate().unwrap();
    // The trained model survives the file format with its provenance and its predictions.
    let back = format::read(&format::write(&m).unwrap()).unwrap();
    assert_eq!(back.meta, m.meta);
    let mut p = Predictor::new(&back).unwrap();
    let again = evaluate(&s.test, 10, 256, |x, n, out| p.run(x, n, out)).unwrap();
    assert_eq!(again.confusion, e.confusion);
}

#[test]
fn sgd_with_momentum_also_learns() {
    let s = train_support::mnist();
    let data = subset(&s.train, 4); // 2000 digits
    let config = TrainConfig {
        epochs: 1,
        lr: 0.05,
        optimizer: OptimizerKind::Sgd { momentum: 0.9 },
        ..TrainConfig::default()
    };
    let m = train(arch::mlp(3), &data, config);
    let mut p = Predictor::new(&m).unwrap();
    let e = evaluate(&s.test, 10, 500, |x, n, out| p.run(x, n, out)).unwrap();
    assert!(
        e.accuracy() > 0.75,
        "SGD, 2000 digits, 1 epoch: {}",
        e.accuracy()
    );
}

#[test]
fn bad_configurations_and_mismatched_data_are_rejected() {
    let s = train_support::mnist();
    assert!(Trainer::new(
        arch::mlp(1),
        TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        }
    )
    .is_err());
    assert!(Trainer::new(
        arch::mlp(1),
        TrainConfig {
            lr: f32::NAN,
            ..TrainConfig::default()
        }
    )
    .is_err());
    let wrong = Dataset::new(vec![0.0; 2 * 100], vec![1, 2], [1, 10, 10]).unwrap();
    let mut t = Trainer::new(arch::mlp(1), TrainConfig::default()).unwrap();
    let e = t.train_epoch(&wrong, &mut |_| {}).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadInput);
    // A learning rate that makes training diverge is reported, not silently saved.
    let mut t = Trainer::new(
        arch::mlp(1),
        TrainConfig {
            lr: 1e20,
            optimizer: OptimizerKind::Sgd { momentum: 0.9 },
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let e = t
        .train_epoch(&subset(&s.train, 8), &mut |_| {})
        .unwrap_err();
    assert!(e.message.contains("learning rate"), "{e}");
}
