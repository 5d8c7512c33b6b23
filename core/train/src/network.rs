//! Batched forward and backward passes over a [`Model`]: the model-level face of
//! [`GraphNet`](super::graph_net::GraphNet), which does the work on the model's graph.
//!
//! The weights stay in the [`Model`], so the optimizer updates the very tensors that get
//! saved; the network holds activations, caches and gradients. Gradients are indexed by
//! **node** ([`Network::grads`]`()[i]` belongs to `model.graph.nodes[i]`), and each node's
//! [`ParamGrads`] holds its trainable tensor slots 0 and 1 ([`crate::graph::Op::tensors`]):
//! weight and bias of `Dense`/`Conv2d`, gamma and beta of `BatchNorm`.

use super::graph_net::GraphNet;
pub use super::graph_net::{softmax_in_place, Mode, Output, ParamGrads, DEFAULT_BN_MOMENTUM};
use crate::error::Result;
use crate::model::Model;
use crate::rng::Rng;

/// Training-time state for one model; see the module docs.
pub struct Network {
    net: GraphNet,
}

impl Network {
    /// Validates the model and sizes the per-node state (activations are sized per batch).
    pub fn new(model: &Model, output: Output) -> Result<Network> {
        model.validate()?;
        Ok(Network {
            net: GraphNet::new(&model.graph, &model.meta.input_shape, output)?,
        })
    }

    /// Values per sample of the network output.
    pub fn output_len(&self) -> usize {
        self.net.output_len()
    }

    /// Values per sample of the input.
    pub fn input_len(&self) -> usize {
        self.net.input_len()
    }

    /// Parameter gradients of the last [`Network::backward`], one entry per graph node
    /// (`None` for nodes without trainable tensors).
    pub fn grads(&self) -> &[Option<ParamGrads>] {
        self.net.grads()
    }

    pub fn grads_mut(&mut self) -> &mut [Option<ParamGrads>] {
        self.net.grads_mut()
    }

    /// Gradient w.r.t. the input after `backward(.., true)`.
    pub fn input_grad(&self) -> &[f32] {
        self.net.input_grad()
    }

    /// The graph-level network (per-value activations and gradients).
    pub fn graph_net(&self) -> &GraphNet {
        &self.net
    }

    /// Sets the BatchNorm momentum of [`Network::update_running_stats`] (default 0.1).
    pub fn set_bn_momentum(&mut self, momentum: f32) -> Result<()> {
        self.net.set_bn_momentum(momentum)
    }

    /// Runs the model on `n` samples and returns the output (`n × output_len()`).
    /// `rng` draws the dropout masks in [`Mode::Train`] (unused in eval mode).
    /// `model` must be the one the network was built for (same graph, same shapes).
    pub fn forward(
        &mut self,
        model: &Model,
        input: &[f32],
        n: usize,
        mode: Mode,
        rng: &mut Rng,
    ) -> Result<&[f32]> {
        self.net.forward(&model.graph, input, n, mode, rng)
    }

    /// Back-propagates `dout` (`n × output_len()`) and overwrites [`Network::grads`]. The
    /// gradient w.r.t. the input is only computed when `input_grad` is set.
    pub fn backward(&mut self, model: &Model, dout: &[f32], input_grad: bool) -> Result<()> {
        self.net.backward(&model.graph, dout, input_grad)
    }

    /// After a [`Mode::Train`] forward: moves every BatchNorm's running mean/var toward the
    /// batch statistics (momentum, unbiased variance, as PyTorch).
    pub fn update_running_stats(&self, model: &mut Model) -> Result<()> {
        self.net.update_running_stats(&mut model.graph)
    }
}
