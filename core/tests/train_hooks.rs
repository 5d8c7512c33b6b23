//! The training extension points: `StepHook` (called every step with the step's gradients),
//! `MaskHook` (pruned weights stay zero), and a custom `Loss` and `Optimizer` plugged into the
//! `Trainer`. Runs on a few hundred real digits so that it stays fast.



use mdeploy_core::data::Dataset;
use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::model::{Model, Tensor};
use mdeploy_core::rng::Rng;
use mdeploy_core::train::{
    Batch, CrossEntropy, Loss, MaskHook, Mode, Network, Optimizer, OptimizerKind, Output, Param,
    ParamGrads, StepHook, TrainConfig, Trainer,
};
use mdeploy_core::{arch, Result};

use mdeploy_testkit::mnist::spread_subset as subset;

fn digits(n: usize) -> Dataset {
    subset(&mdeploy_testkit::mnist::split().train, n)
}

/// A small MNIST model without dropout (so a step can be recomputed exactly), with a
/// convolution, a BatchNorm and two Dense layers.
fn small_model(seed: u64) -> Model {
    let mut rng = Rng::new(seed);
    let mut t = |shape: &[usize], scale: f32| {
        let n = shape.iter().product();
        Tensor::f32(
            shape.to_vec(),
            (0..n).map(|_| rng.normal() * scale).collect(),
        )
    };
    let mut m = arch::mlp(seed);
    m.graph = Graph::sequential([
        Op::Conv2d {
            weight: t(&[4, 1, 5, 5], 0.3),
            bias: t(&[4], 0.0),
            stride: [2, 2],
            padding: [0; 4],
            dilation: [1, 1],
            groups: 1,
        },
        Op::BatchNorm {
            gamma: Tensor::f32(vec![4], vec![1.0; 4]),
            beta: Tensor::f32(vec![4], vec![0.0; 4]),
            mean: Tensor::f32(vec![4], vec![0.0; 4]),
            var: Tensor::f32(vec![4], vec![1.0; 4]),
            eps: 1e-5,
        },
        Op::Relu,
        Op::Flatten,
        Op::Dense {
            weight: t(&[4 * 12 * 12, 32], 0.05),
            bias: t(&[32], 0.0),
        },
        Op::Relu,
        Op::Dense {
            weight: t(&[32, 10], 0.2),
            bias: t(&[10], 0.0),
        },
        Op::Softmax,
    ]);
    m.validate().unwrap();
    m
}

fn trained_tensors(m: &Model) -> Vec<Vec<f32>> {
    m.graph
        .nodes
        .iter()
        .flat_map(|n| n.op.tensors())
        .map(|t| t.as_f32().unwrap().to_vec())
        .collect()
}

/// Records what it is handed every step.
#[derive(Default)]
struct Recorder {
    before: Vec<Vec<Option<ParamGrads>>>,
    after: Vec<Vec<Vec<f32>>>,
}

struct Shared(std::rc::Rc<std::cell::RefCell<Recorder>>);

impl StepHook for Shared {
    fn before_step(&mut self, grads: &mut [Option<ParamGrads>]) -> Result<()> {
        self.0.borrow_mut().before.push(grads.to_vec());
        Ok(())
    }
    fn after_step(&mut self, model: &mut Model) -> Result<()> {
        self.0.borrow_mut().after.push(trained_tensors(model));
        Ok(())
    }
}

#[test]
fn step_hook_sees_each_steps_gradients_and_the_updated_model() {
    let data = digits(96);
    let model = small_model(1);
    let lr = 0.05;
    let config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        optimizer: OptimizerKind::Sgd { momentum: 0.0 },
        lr,
        ..TrainConfig::default()
    };
    let rec = std::rc::Rc::new(std::cell::RefCell::new(Recorder::default()));
    let mut t = Trainer::new(model.clone(), config).unwrap();
    t.add_hook(Box::new(Shared(rec.clone())));

    // One step by hand on the first 32 digits, then the same step recomputed independently.
    let inputs = data.images[..32 * 784].to_vec();
    let labels = data.labels[..32].to_vec();
    let batch = Batch {
        inputs: &inputs,
        labels: &labels,
        n: 32,
    };
    let stats = t.step(&batch, lr).unwrap();

    let mut net = Network::new(&model, Output::Logits).unwrap();
    let logits = net
        .forward(&model, &inputs, 32, Mode::Train, &mut Rng::new(0))
        .unwrap()
        .to_vec();
    let mut dlogits = vec![0.0; logits.len()];
    let loss = CrossEntropy::new(0.0)
        .loss_and_grad(&logits, 10, &batch, &mut dlogits)
        .unwrap();
    net.backward(&model, &dlogits, false).unwrap();
    let correct = logits
        .chunks(10)
        .zip(&labels)
        .filter(|(row, &l)| mdeploy_core::train::argmax(row) == l as usize)
        .count();
    assert_eq!(stats.loss, loss, "the step reports the batch's loss");
    assert_eq!(stats.correct, correct);

    let r = rec.borrow();
    assert_eq!(
        (r.before.len(), r.after.len()),
        (1, 1),
        "one call of each per step"
    );
    let seen = &r.before[0];
    assert_eq!(
        seen.len(),
        model.graph.nodes.len(),
        "gradients are indexed by node"
    );
    assert_eq!(
        seen,
        &net.grads().to_vec(),
        "the hook sees exactly this step's gradients"
    );
    let with_grads: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].is_some()).collect();
    assert_eq!(
        with_grads,
        vec![0, 1, 4, 6],
        "Conv2d, BatchNorm, Dense, Dense"
    );
    // after_step sees the updated model: plain SGD, w − lr·g for every trained tensor.
    let before = trained_tensors(&model);
    let after = &r.after[0];
    let mut k = 0;
    for (i, node) in model.graph.nodes.iter().enumerate() {
        let n_t = node.op.tensors().len();
        if let Some(g) = &seen[i] {
            for (slot, grad) in [(0, &g.weight), (1, &g.bias)] {
                let want: Vec<f32> = before[k + slot]
                    .iter()
                    .zip(grad.iter())
                    .map(|(w, g)| w - lr * g)
                    .collect();
                assert_eq!(after[k + slot], want, "node {i} slot {slot}");
            }
        }
        k += n_t;
    }
    drop(r);

    // Over an epoch: one call per batch.
    let mut t = Trainer::new(
        model.clone(),
        TrainConfig {
            epochs: 2,
            batch_size: 32,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let rec = std::rc::Rc::new(std::cell::RefCell::new(Recorder::default()));
    t.add_hook(Box::new(Shared(rec.clone())));
    t.fit(&data, &mut |_| {}).unwrap();
    assert_eq!(rec.borrow().before.len(), 6);
    assert_eq!(rec.borrow().after.len(), 6);
    assert_eq!(
        rec.borrow().after.last().unwrap(),
        &trained_tensors(t.model())
    );
}

#[test]
fn batchnorm_running_statistics_follow_the_batches_and_the_momentum() {
    let data = digits(64);
    let model = small_model(2);
    let stats_of = |m: &Model| match &m.graph.nodes[1].op {
        Op::BatchNorm { mean, var, .. } => (
            mean.as_f32().unwrap().to_vec(),
            var.as_f32().unwrap().to_vec(),
        ),
        _ => unreachable!(),
    };
    for momentum in [0.0f32, 0.1, 1.0] {
        let config = TrainConfig {
            epochs: 1,
            batch_size: 64,
            batchnorm_momentum: momentum,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(model.clone(), config).unwrap();
        let batch = Batch {
            inputs: &data.images,
            labels: &data.labels,
            n: 64,
        };
        // The batch statistics of the conv output, from the network before the step.
        let mut net = Network::new(&model, Output::Logits).unwrap();
        net.forward(&model, &data.images, 64, Mode::Train, &mut Rng::new(0))
            .unwrap();
        let conv = net.graph_net().value(1).unwrap().to_vec();
        t.step(&batch, 1e-3).unwrap();
        let (mean, var) = stats_of(t.model());
        for c in 0..4 {
            let vals: Vec<f64> = (0..64)
                .flat_map(|s| {
                    conv[(s * 4 + c) * 144..(s * 4 + c + 1) * 144]
                        .iter()
                        .map(|&v| v as f64)
                })
                .collect();
            let mu = vals.iter().sum::<f64>() / vals.len() as f64;
            let var_u =
                vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (vals.len() - 1) as f64;
            let m = momentum as f64;
            assert!(
                (mean[c] as f64 - m * mu).abs() < 1e-4,
                "momentum {momentum}: mean {} vs {}",
                mean[c],
                m * mu
            );
            assert!((var[c] as f64 - ((1.0 - m) + m * var_u)).abs() < 1e-3 * (1.0 + var_u));
        }
    }
    assert!(Trainer::new(
        model,
        TrainConfig {
            batchnorm_momentum: 2.0,
            ..TrainConfig::default()
        }
    )
    .is_err());
}

#[test]
fn mask_hook_keeps_pruned_weights_and_channels_at_zero() {
    let data = digits(256);
    let model = small_model(3);
    let mut rng = Rng::new(4);
    let len = |i: usize| model.graph.nodes[i].op.tensors()[0].numel();
    let mut masks: Vec<Option<Vec<f32>>> = vec![None; model.graph.nodes.len()];
    masks[0] = Some(
        (0..len(0))
            .map(|_| if rng.next_f32() < 0.5 { 0.0 } else { 1.0 })
            .collect(),
    );
    masks[4] = Some(
        (0..len(4))
            .map(|_| if rng.next_f32() < 0.7 { 0.0 } else { 1.0 })
            .collect(),
    );
    masks[1] = Some(vec![1.0, 0.0, 1.0, 1.0]); // BatchNorm gamma: prune channel 1
    let config = TrainConfig {
        epochs: 2,
        batch_size: 32,
        // Decay and momentum would revive pruned weights if the hook did not hold them down.
        weight_decay: 0.01,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(model.clone(), config).unwrap();
    // Start pruned, as a pruning pipeline would.
    t.add_hook(Box::new(MaskHook {
        masks: masks.clone(),
    }));
    t.fit(&data, &mut |_| {}).unwrap();
    let m = t.model();
    for i in [0, 1, 4] {
        let before = model.graph.nodes[i].op.tensors()[0].as_f32().unwrap();
        let after = m.graph.nodes[i].op.tensors()[0].as_f32().unwrap();
        let mask = masks[i].as_ref().unwrap();
        let mut kept_changed = 0;
        for j in 0..mask.len() {
            if mask[j] == 0.0 {
                assert_eq!(
                    after[j], 0.0,
                    "node {i} entry {j} was pruned but is {}",
                    after[j]
                );
            } else if after[j] != before[j] {
                kept_changed += 1;
            }
        }
        assert!(kept_changed > 0, "node {i}: the kept weights were trained");
    }
    // A mask of the wrong size, or on a node without weights, is an error that names the node.
    let mut bad = vec![None; model.graph.nodes.len()];
    bad[4] = Some(vec![1.0; 3]);
    let mut t = Trainer::new(
        model.clone(),
        TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    t.add_hook(Box::new(MaskHook { masks: bad }));
    let e = t.train_epoch(&data, &mut |_| {}).unwrap_err();
    assert!(e.message.contains("node 4"), "{e}");
    let mut bad = vec![None; model.graph.nodes.len()];
    bad[2] = Some(vec![1.0; 3]);
    let mut t = Trainer::new(
        model,
        TrainConfig {
            epochs: 1,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    t.add_hook(Box::new(MaskHook { masks: bad }));
    let e = t.train_epoch(&data, &mut |_| {}).unwrap_err();
    assert!(e.message.contains("node 2"), "{e}");
}

/// Cross-entropy scaled by one half, counting its calls.
struct HalfCrossEntropy {
    inner: CrossEntropy,
    calls: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Loss for HalfCrossEntropy {
    fn loss_and_grad(
        &mut self,
        logits: &[f32],
        classes: usize,
        batch: &Batch,
        grad: &mut [f32],
    ) -> Result<f32> {
        assert_eq!(
            batch.inputs.len(),
            batch.n * 784,
            "the loss sees the batch's inputs"
        );
        self.calls.set(self.calls.get() + 1);
        let l = self.inner.loss_and_grad(logits, classes, batch, grad)?;
        grad.iter_mut().for_each(|g| *g *= 0.5);
        Ok(0.5 * l)
    }
    fn describe(&self) -> String {
        "half cross-entropy".into()
    }
}

/// Plain SGD (`w −= lr·g`), recording the parameters' sizes and bias flags.
struct PlainSgd {
    seen: std::rc::Rc<std::cell::RefCell<Vec<(usize, bool)>>>,
}

impl Optimizer for PlainSgd {
    fn step(&mut self, params: &mut [Param<'_>], lr: f32) {
        *self.seen.borrow_mut() = params.iter().map(|p| (p.value.len(), p.is_bias)).collect();
        for p in params.iter_mut() {
            p.value
                .iter_mut()
                .zip(p.grad)
                .for_each(|(w, g)| *w -= lr * g);
        }
    }
    fn describe(&self) -> String {
        "plain sgd".into()
    }
}

#[test]
fn custom_loss_and_optimizer_are_used_by_the_trainer() {
    let data = digits(128);
    let model = small_model(5);
    let config = |lr| TrainConfig {
        epochs: 1,
        batch_size: 32,
        lr,
        optimizer: OptimizerKind::Sgd { momentum: 0.0 },
        ..TrainConfig::default()
    };
    // Built-in SGD without momentum, cross-entropy, lr 0.02 ...
    let mut reference = Trainer::new(model.clone(), config(0.02)).unwrap();
    let ref_stats = reference.fit(&data, &mut |_| {}).unwrap();
    // ... equals plain SGD on half the cross-entropy at twice the rate: scaling by powers of
    // two is exact, so the weights are bit-identical only if both plug-ins are really used.
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut t = Trainer::new(model.clone(), config(0.04)).unwrap();
    t.set_loss(Box::new(HalfCrossEntropy {
        inner: CrossEntropy::new(0.0),
        calls: calls.clone(),
    }));
    t.set_optimizer(Box::new(PlainSgd { seen: seen.clone() }));
    let stats = t.fit(&data, &mut |_| {}).unwrap();
    assert_eq!(calls.get(), 4, "one loss call per batch");
    assert_eq!(
        trained_tensors(t.model()),
        trained_tensors(reference.model())
    );
    assert_eq!(stats[0].loss, 0.5 * ref_stats[0].loss);
    // Parameters come in node order, slot 0 then slot 1; biases and BatchNorm's gamma/beta
    // are flagged so that no weight decay touches them.
    assert_eq!(
        *seen.borrow(),
        vec![
            (100, false),
            (4, true),
            (4, true),
            (4, true),
            (576 * 32, false),
            (32, true),
            (320, false),
            (10, true)
        ]
    );
    t.stamp_provenance(None);
    let extra = &t.model().meta.provenance.extra;
    let get = |k: &str| {
        extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("loss").as_deref(), Some("half cross-entropy"));
    assert_eq!(get("optimizer").as_deref(), Some("plain sgd"));
    assert_eq!(get("batchnorm_momentum").as_deref(), Some("0.1"));
    // And a different loss really trains differently.
    let mut other = Trainer::new(model, config(0.04)).unwrap();
    other.fit(&data, &mut |_| {}).unwrap();
    assert_ne!(trained_tensors(other.model()), trained_tensors(t.model()));
}
