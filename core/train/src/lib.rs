//! # mdeploy-train
//!
//! Training: batched forward/backward over the [`Model`]'s graph, pluggable losses and
//! optimizers, learning-rate schedules, seeded augmentation. Design notes and the extension
//! points for distillation and pruning are in `TRAINING.md` next to this file.
//!
//! ```text
//!  Dataset ──shuffle──▶ batch ──augment──▶ Network::forward (Mode::Train, logits)
//!                                              │
//!                           Loss::loss_and_grad ◀┘  (fused softmax + CE, soft targets)
//!                                              │
//!                      Network::backward ◀─────┘ ──▶ grads (per node)
//!   StepHook::before_step(grads) ──▶ Optimizer::step(params, lr = schedule(epoch)) ──▶ StepHook::after_step(model)
//!   Network::update_running_stats(model)   (BatchNorm running mean/var, momentum)
//! ```
//!
//! Everything random (shuffling, dropout, augmentation) draws from its own [`Rng`] stream
//! derived from [`TrainConfig::seed`], and nothing depends on time or threads: the same
//! seed, data and configuration give a bit-identical model.

// The other crates' modules under the names this crate's files use.
pub(crate) use mdeploy_kernels as kernels;
pub(crate) use mdeploy_mnist::data;
pub(crate) use mdeploy_model::{error, graph, model};

pub mod arch;
pub mod augment;
pub mod eval;
pub mod graph_net;
pub mod rng;
pub mod loss;
pub mod network;
pub mod optim;
pub mod prune;
mod qat;

pub use augment::Augment;
pub use graph_net::GraphNet;
pub use loss::{soft_cross_entropy, Batch, CrossEntropy, Distillation, Loss, Teacher};
pub use network::{Mode, Network, Output, ParamGrads, DEFAULT_BN_MOMENTUM};
pub use optim::{Adam, Optimizer, Param, Schedule, Sgd};

use crate::data::{Dataset, MNIST_SOURCE, MNIST_SPLIT};
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::model::Model;
use crate::rng::Rng;

/// Which built-in optimizer [`Trainer::new`] creates (replace it with [`Trainer::set_optimizer`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Adam,
    /// SGD with this momentum (0.9 is the usual choice).
    Sgd {
        momentum: f32,
    },
}

/// Hyper-parameters of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// Base learning rate (before the schedule).
    pub lr: f32,
    /// Decoupled weight decay for Adam, L2 for SGD; biases are never decayed.
    pub weight_decay: f32,
    pub schedule: Schedule,
    pub augment: Option<Augment>,
    pub label_smoothing: f32,
    pub seed: u64,
    /// BatchNorm running statistics: `running = (1 − m)·running + m·batch` after every step
    /// (PyTorch's convention and default, 0.1). Unused by models without BatchNorm.
    pub batchnorm_momentum: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            augment: None,
            label_smoothing: 0.0,
            seed: 1,
            batchnorm_momentum: DEFAULT_BN_MOMENTUM,
        }
    }
}

/// Called around each optimizer step. This is the extension point for pruning with
/// fine-tuning (re-apply masks after each step, see [`MaskHook`]) and for anything else that
/// must touch gradients or weights every step (clipping, EMA of weights, ...).
pub trait StepHook {
    /// May edit the gradients before the optimizer sees them (e.g. zero pruned entries).
    fn before_step(&mut self, _grads: &mut [Option<ParamGrads>]) -> Result<()> {
        Ok(())
    }
    /// May edit the weights after the update (e.g. re-apply a pruning mask).
    fn after_step(&mut self, _model: &mut Model) -> Result<()> {
        Ok(())
    }
}

/// Keeps pruned weights at zero. `masks[i]` belongs to graph **node** `i` and masks its
/// tensor slot 0 ([`crate::graph::Op::tensors`]): the weight of a `Dense` or `Conv2d` node
/// (same length and layout, 0 or 1 per entry), or the gamma of a `BatchNorm` (one entry per
/// channel: zeroing a channel's gamma prunes the channel). The hook zeroes the gradient
/// before and the tensor after each step. `None` (or an index past the end) leaves a node
/// alone; a mask on a node without trainable tensors is an error.
pub struct MaskHook {
    pub masks: Vec<Option<Vec<f32>>>,
}

impl StepHook for MaskHook {
    fn before_step(&mut self, grads: &mut [Option<ParamGrads>]) -> Result<()> {
        for (i, (g, m)) in grads.iter_mut().zip(&self.masks).enumerate() {
            let Some(m) = m else { continue };
            let Some(g) = g else {
                return Err(Error::bad_input(format!(
                    "mask for node {i}, which has no trainable weights"
                )));
            };
            if g.weight.len() != m.len() {
                return Err(Error::bad_input(format!(
                    "mask for node {i} has {} entries, its weight {}",
                    m.len(),
                    g.weight.len()
                )));
            }
            g.weight.iter_mut().zip(m).for_each(|(g, m)| *g *= m);
        }
        Ok(())
    }
    fn after_step(&mut self, model: &mut Model) -> Result<()> {
        for (i, (node, m)) in model.graph.nodes.iter_mut().zip(&self.masks).enumerate() {
            let Some(m) = m else { continue };
            if !graph_net::has_params(&node.op) {
                return Err(Error::bad_input(format!(
                    "mask for node {i} ({}), which has no trainable weights",
                    node.op.name()
                )));
            }
            let w = node.op.tensors_mut().swap_remove(0);
            let w = w
                .as_f32_mut()
                .ok_or_else(|| Error::unsupported("masks need f32 weights"))?;
            if w.len() != m.len() {
                return Err(Error::bad_input(format!(
                    "mask for node {i} has {} entries, the weight {}",
                    m.len(),
                    w.len()
                )));
            }
            w.iter_mut().zip(m).for_each(|(w, m)| *w *= m);
        }
        Ok(())
    }
}

/// Reported to the progress callback after every batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// 0-based epoch.
    pub epoch: u32,
    pub epochs: u32,
    /// Batches done in this epoch (1-based after the first).
    pub batch: usize,
    pub batches: usize,
    /// Running mean loss over this epoch so far.
    pub loss: f32,
    /// Running training accuracy (argmax of the logits) over this epoch so far, 0..1.
    pub accuracy: f32,
    pub lr: f32,
    /// Samples processed in this epoch.
    pub samples: usize,
}

/// Summary of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    pub epoch: u32,
    pub loss: f32,
    pub accuracy: f32,
    pub samples: usize,
}

/// Result of one optimisation step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// Samples whose largest logit is the label.
    pub correct: usize,
}

/// Trains a model in place; see the module docs for the flow.
pub struct Trainer {
    model: Model,
    config: TrainConfig,
    net: Network,
    loss: Box<dyn Loss>,
    optimizer: Box<dyn Optimizer>,
    hooks: Vec<Box<dyn StepHook>>,
    shuffle_rng: Rng,
    dropout_rng: Rng,
    augment_rng: Rng,
    epoch: u32,
    batch_inputs: Vec<f32>,
    batch_labels: Vec<u8>,
    dlogits: Vec<f32>,
    order: Vec<usize>,
    /// Quantization-aware training: fake-quantize weights to this many bits (`qat.rs`).
    weight_bits: Option<u8>,
}

// Stream labels for `Rng::derive`: each random consumer gets its own stream.
const STREAM_SHUFFLE: u64 = 1;
const STREAM_DROPOUT: u64 = 2;
const STREAM_AUGMENT: u64 = 3;

impl Trainer {
    pub fn new(model: Model, config: TrainConfig) -> Result<Trainer> {
        if config.batch_size == 0 {
            return Err(Error::bad_input("batch size must be at least 1"));
        }
        if !(config.lr > 0.0 && config.lr.is_finite()) {
            return Err(Error::bad_input(format!(
                "learning rate {} must be a positive number",
                config.lr
            )));
        }
        let mut net = Network::new(&model, Output::Logits)?;
        net.set_bn_momentum(config.batchnorm_momentum)?;
        let optimizer: Box<dyn Optimizer> = match config.optimizer {
            OptimizerKind::Adam => Box::new(Adam::new(config.weight_decay)),
            OptimizerKind::Sgd { momentum } => Box::new(Sgd::new(momentum, config.weight_decay)),
        };
        let seed = config.seed;
        Ok(Trainer {
            loss: Box::new(CrossEntropy::new(config.label_smoothing)),
            optimizer,
            hooks: Vec::new(),
            shuffle_rng: Rng::derive(seed, STREAM_SHUFFLE),
            dropout_rng: Rng::derive(seed, STREAM_DROPOUT),
            augment_rng: Rng::derive(seed, STREAM_AUGMENT),
            epoch: 0,
            batch_inputs: Vec::new(),
            batch_labels: Vec::new(),
            dlogits: Vec::new(),
            order: Vec::new(),
            weight_bits: None,
            model,
            config,
            net,
        })
    }

    /// Replaces the loss (e.g. a distillation loss).
    pub fn set_loss(&mut self, loss: Box<dyn Loss>) {
        self.loss = loss;
    }
    /// Replaces the optimizer.
    pub fn set_optimizer(&mut self, optimizer: Box<dyn Optimizer>) {
        self.optimizer = optimizer;
    }
    /// Quantization-aware training: `Some(bits)` (2..=8) runs every step's forward and backward
    /// with each Dense / Conv2d (one group) weight fake-quantized to `bits` bits per output
    /// channel (the grid `mdeploy quantize --bits` stores), updating the f32 shadow weights
    /// through a straight-through estimator (`qat.rs`); `None` trains in plain f32.
    ///
    /// `Some(1)` is binary QAT: a Dense whose input is an `Op::Sign` sees `alpha_c · sign(w)`
    /// (`alpha_c = mean|w[:, c]|`), gradient passed where `|w| <= 1`; every other Dense / Conv2d
    /// is fake-quantized to 8 bits (the kept first and last layers; `qat.rs`).
    pub fn set_weight_fake_quant(&mut self, bits: Option<u8>) -> Result<()> {
        if let Some(b) = bits {
            if !(1..=8).contains(&b) {
                return Err(Error::bad_input(format!("fake-quantized weights of {b} bits: choose 1 (binary) to 8")));
            }
        }
        self.weight_bits = bits;
        Ok(())
    }

    /// Adds a hook run around every optimizer step, in the order added.
    pub fn add_hook(&mut self, hook: Box<dyn StepHook>) {
        self.hooks.push(hook);
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// Epochs completed so far.
    pub fn epochs_done(&self) -> u32 {
        self.epoch
    }
    pub fn into_model(self) -> Model {
        self.model
    }
    /// Descriptions of the loss and optimizer in use.
    pub fn describe(&self) -> (String, String) {
        (self.loss.describe(), self.optimizer.describe())
    }

    /// Scheduled learning rate at `progress` epochs.
    pub fn lr_at(&self, progress: f32) -> f32 {
        self.config
            .schedule
            .lr(self.config.lr, progress, self.config.epochs)
    }

    /// Forward, loss and backward of one step (gradients in `self.net`), and the BatchNorm
    /// statistics; returns the loss and the samples whose argmax is the label.
    fn forward_backward(&mut self, batch: &Batch) -> Result<(f32, usize)> {
        let classes = self.net.output_len();
        let logits = self.net.forward(
            &self.model,
            batch.inputs,
            batch.n,
            Mode::Train,
            &mut self.dropout_rng,
        )?;
        self.dlogits.resize(logits.len(), 0.0);
        let loss = self
            .loss
            .loss_and_grad(logits, classes, batch, &mut self.dlogits)?;
        if !loss.is_finite() {
            return Err(Error::bad_input(format!(
                "the loss became {loss} (diverged): lower the learning rate (--lr)"
            )));
        }
        let correct = logits
            .chunks_exact(classes)
            .zip(batch.labels)
            .filter(|(row, &l)| argmax(row) == l as usize)
            .count();
        self.net.backward(&self.model, &self.dlogits, false)?;
        // The batch statistics do not depend on the weights being updated: fold them in now.
        self.net.update_running_stats(&mut self.model)?;
        Ok((loss, correct))
    }

    /// One optimisation step on a batch (inputs already augmented, if wanted) at learning rate `lr`.
    pub fn step(&mut self, batch: &Batch, lr: f32) -> Result<StepStats> {
        let (loss, correct) = match self.weight_bits {
            None => self.forward_backward(batch)?,
            Some(bits) => {
                // The passes see the fake-quantized weights; the update goes to the shadow.
                let shadow = qat::swap_in(&mut self.model, bits)?;
                let fb = self.forward_backward(batch);
                let grads = if fb.is_ok() { Some(self.net.grads_mut()) } else { None };
                qat::restore(&mut self.model, shadow, grads)?;
                fb?
            }
        };
        for h in &mut self.hooks {
            h.before_step(self.net.grads_mut())?;
        }
        {
            // Node order, slot 0 then slot 1: the fixed order optimizers key their state by.
            let mut params: Vec<Param<'_>> = Vec::new();
            for (node, g) in self.model.graph.nodes.iter_mut().zip(self.net.grads()) {
                let Some(g) = g else { continue };
                let (w, b, w_is_bias) = match &mut node.op {
                    Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => {
                        (weight, bias, false)
                    }
                    // BatchNorm's gamma and beta are not weight-decayed (as biases).
                    Op::BatchNorm { gamma, beta, .. } => (gamma, beta, true),
                    _ => continue,
                };
                let (Some(w), Some(b)) = (w.as_f32_mut(), b.as_f32_mut()) else {
                    return Err(Error::unsupported("training needs f32 weights"));
                };
                params.push(Param {
                    value: w,
                    grad: &g.weight,
                    is_bias: w_is_bias,
                });
                params.push(Param {
                    value: b,
                    grad: &g.bias,
                    is_bias: true,
                });
            }
            self.optimizer.step(&mut params, lr);
        }
        for h in &mut self.hooks {
            h.after_step(&mut self.model)?;
        }
        Ok(StepStats { loss, correct })
    }

    /// One pass over `data` in a seeded random order, calling `progress` after every batch.
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<EpochStats> {
        let per = data.sample_len();
        if per != self.net.input_len() {
            return Err(Error::bad_input(format!(
                "the dataset's samples have {per} values ({:?}) but the model expects {}",
                data.sample_shape,
                self.net.input_len()
            )));
        }
        if data.n == 0 {
            return Err(Error::bad_input("the training set is empty"));
        }
        let bs = self.config.batch_size;
        let batches = data.n.div_ceil(bs);
        self.order.clear();
        self.order.extend(0..data.n);
        self.shuffle_rng.shuffle(&mut self.order);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let order = std::mem::take(&mut self.order);
        for (b, idx) in order.chunks(bs).enumerate() {
            let n = idx.len();
            self.batch_inputs.resize(n * per, 0.0);
            self.batch_labels.clear();
            for (slot, &i) in idx.iter().enumerate() {
                let dst = &mut self.batch_inputs[slot * per..(slot + 1) * per];
                match &self.config.augment {
                    Some(aug) => {
                        aug.apply(data.image(i), dst, data.sample_shape, &mut self.augment_rng)
                    }
                    None => dst.copy_from_slice(data.image(i)),
                }
                self.batch_labels.push(data.labels[i]);
            }
            let lr = self.lr_at(self.epoch as f32 + b as f32 / batches as f32);
            let inputs = std::mem::take(&mut self.batch_inputs);
            let labels = std::mem::take(&mut self.batch_labels);
            let result = self.step(
                &Batch {
                    inputs: &inputs,
                    labels: &labels,
                    n,
                },
                lr,
            );
            self.batch_inputs = inputs;
            self.batch_labels = labels;
            let stats = match result {
                Ok(s) => s,
                Err(e) => {
                    self.order = order;
                    return Err(e);
                }
            };
            loss_sum += stats.loss as f64 * n as f64;
            correct += stats.correct;
            seen += n;
            progress(&Progress {
                epoch: self.epoch,
                epochs: self.config.epochs,
                batch: b + 1,
                batches,
                loss: (loss_sum / seen as f64) as f32,
                accuracy: correct as f32 / seen as f32,
                lr,
                samples: seen,
            });
        }
        self.order = order;
        // A loss can stay finite a while after the weights blew up; never hand back such a model.
        for (i, node) in self.model.graph.nodes.iter().enumerate() {
            if node
                .op
                .tensors()
                .iter()
                .any(|t| t.as_f32().is_some_and(|w| w.iter().any(|v| !v.is_finite())))
            {
                return Err(Error::bad_input(format!(
                    "{} weights became NaN or infinite (training diverged): lower the learning rate (--lr)",
                    self.model.graph.describe_node(i)
                )));
            }
        }
        let stats = EpochStats {
            epoch: self.epoch,
            loss: (loss_sum / seen as f64) as f32,
            accuracy: correct as f32 / seen as f32,
            samples: seen,
        };
        self.epoch += 1;
        Ok(stats)
    }

    /// Runs the remaining epochs of the configuration.
    pub fn fit(
        &mut self,
        data: &Dataset,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Vec<EpochStats>> {
        let mut all = Vec::new();
        while self.epoch < self.config.epochs {
            all.push(self.train_epoch(data, progress)?);
        }
        Ok(all)
    }

    /// Fills the provenance of the trained model: data source, split, epochs, seed, the
    /// measured test accuracy and the hyper-parameters (as `extra`).
    pub fn stamp_provenance(&mut self, test_accuracy: Option<f32>) {
        let (loss, opt) = self.describe();
        let c = &self.config;
        let p = &mut self.model.meta.provenance;
        p.data = MNIST_SOURCE.into();
        p.split = MNIST_SPLIT.into();
        p.epochs = self.epoch;
        p.seed = c.seed;
        p.test_accuracy = test_accuracy;
        p.extra = vec![
            ("optimizer".into(), opt),
            ("lr".into(), c.lr.to_string()),
            ("schedule".into(), c.schedule.describe()),
            ("batch_size".into(), c.batch_size.to_string()),
            ("loss".into(), loss),
            (
                "augmentation".into(),
                c.augment
                    .map(|a| a.describe())
                    .unwrap_or_else(|| "none".into()),
            ),
            (
                "trainer".into(),
                format!("mdeploy-core {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if self
            .model
            .graph
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::BatchNorm { .. }))
        {
            p.extra.push((
                "batchnorm_momentum".into(),
                c.batchnorm_momentum.to_string(),
            ));
        }
    }
}

/// Index of the largest value (first one on ties; 0 for an empty slice).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Eval-mode inference with the training code, in batches: a stand-in for
/// `mdeploy_runtime::Plan` with the same calling convention (`run(input, n, out)`), used to check
/// a model right after training and by tests.
pub struct Predictor {
    net: Network,
    model: Model,
}

impl Predictor {
    pub fn new(model: &Model) -> Result<Predictor> {
        Ok(Predictor {
            net: Network::new(model, Output::Full)?,
            model: model.clone(),
        })
    }
    pub fn output_len(&self) -> usize {
        self.net.output_len()
    }
    /// Runs `n` samples from `input` and writes `n × output_len()` values into `out`.
    pub fn run(&mut self, input: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        let k = self.net.output_len();
        if out.len() != n * k {
            return Err(Error::bad_input(format!(
                "output buffer holds {} values, need {}",
                out.len(),
                n * k
            )));
        }
        let y = self
            .net
            .forward(&self.model, input, n, Mode::Eval, &mut Rng::new(0))?;
        out.copy_from_slice(y);
        Ok(())
    }
}
