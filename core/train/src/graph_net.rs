//! Batched forward and backward passes over a [`Graph`] (NCHW, `f32`): every [`Op`].
//!
//! A [`GraphNet`] holds what training needs besides the weights: the activation of every
//! value for the current batch, per-node caches (im2col buffers, max-pool winners, dropout
//! masks, BatchNorm batch statistics), the gradient of every value, and the parameter
//! gradients. The weights stay in the [`Graph`], so the optimizer updates the very tensors
//! that get saved. Design notes: `TRAINING.md` beside this file.
//!
//! ```text
//!  forward  (node order)          value 0 ─► node 0 ─► value 1 ─► ... ─► value `out`
//!  backward (reverse order)       dvalue[out] = dout
//!                                 node i: dvalue[i+1] ─► dparams[i], dvalue[input] (+)= ...
//! ```
//!
//! A value read by several nodes (the skip connection of a residual block) receives the sum
//! of their gradients: the first contribution (in reverse node order) is moved into place,
//! later ones are added. A value with a single consumer is never added to zeros, so a
//! sequential graph does exactly the arithmetic of the former layer-list network.
//!
//! Dense and Conv2d go through [`crate::kernels::gemm`] with strided views (im2col per
//! group for the convolution), so they speed up with the kernels:
//!
//! ```text
//! Dense   y  = x · W + b            x: [n, in]   W: [in, out]
//!         dW = xᵀ · dy              dx = dy · Wᵀ        db = Σ_rows dy
//! Conv2d  col = im2col(x_s, g)      col: [icg·kh·kw, oh·ow]  (per sample s, group g)
//!         y_s,g = W_g · col + b     W_g viewed as [ocg, icg·kh·kw]
//!         dW_g += dy_s,g · colᵀ     dcol = W_gᵀ · dy_s,g    dx_s,g = col2im(dcol)
//! ```

// Per-channel loops index several tensors at once.
#![allow(clippy::needless_range_loop)]

use crate::error::{Error, Result};
use crate::graph::{Graph, Op, ValueId};
use crate::kernels::{gemm, MatRef};
use crate::rng::Rng;

/// Whether dropout drops and BatchNorm uses batch statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout drops (inverted dropout: kept units are scaled by `1 / (1 − rate)`);
    /// BatchNorm normalises with the statistics of the batch (over N·H·W per channel).
    Train,
    /// Dropout is the identity and BatchNorm uses its running statistics, as at inference.
    Eval,
}

/// Where the forward pass stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The graph's output value.
    Full,
    /// The input of the output node when that node is a `Softmax`: the logits the fused
    /// softmax-cross-entropy losses expect. Same as `Full` otherwise.
    Logits,
}

/// Gradients of one node's trainable tensors, same layouts as the tensors: slot 0
/// (`weight`) and slot 1 (`bias`) of [`Op::tensors`]. For `Dense` and `Conv2d` that is
/// weight and bias; for `BatchNorm` it is `gamma` and `beta` (its running `mean` and `var`,
/// slots 2 and 3, are buffers updated by [`GraphNet::update_running_stats`], not trained).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGrads {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Default BatchNorm momentum for the running statistics (PyTorch's):
/// `running = (1 − m) · running + m · batch`.
pub const DEFAULT_BN_MOMENTUM: f32 = 0.1;

#[derive(Clone, Debug, Default)]
struct Cache {
    /// Conv2d: im2col of every sample and group, `[n][groups][icg·kh·kw][oh·ow]`.
    col: Vec<f32>,
    /// MaxPool2d: for each output, the index (within the sample) of the input that won.
    argmax: Vec<u32>,
    /// Dropout: the multiplier of each element (0 or `1 / (1 − rate)`); empty when inactive.
    mask: Vec<f32>,
    /// BatchNorm: the mean and `1 / sqrt(var + eps)` used by the last forward (batch
    /// statistics in train mode, running ones in eval mode), per channel.
    bn_mean: Vec<f32>,
    bn_inv_std: Vec<f32>,
    /// BatchNorm, train mode: the unbiased batch variance (for the running estimate).
    bn_var_unbiased: Vec<f32>,
}

/// Training-time state for one graph; see the module docs.
pub struct GraphNet {
    /// Per-sample shape and length of every value.
    shapes: Vec<Vec<usize>>,
    lens: Vec<usize>,
    /// The value the forward pass returns.
    out: usize,
    /// Nodes the output depends on (the others are not run).
    live: Vec<bool>,
    has_params: Vec<bool>,
    acts: Vec<Vec<f32>>,
    caches: Vec<Cache>,
    grads: Vec<Option<ParamGrads>>,
    /// Gradient of every value after [`GraphNet::backward`]; `vgrad_set[v]` says whether it
    /// holds one (values nothing trainable depends on get none).
    vgrad: Vec<Vec<f32>>,
    vgrad_set: Vec<bool>,
    scratch: Vec<f32>,
    dcol: Vec<f32>,
    n: usize,
    mode: Mode,
    bn_momentum: f32,
}

fn f32_of<'a>(graph: &Graph, i: usize, t: &'a crate::model::Tensor) -> Result<&'a [f32]> {
    t.as_f32().ok_or_else(|| {
        Error::unsupported(format!(
            "{}: training needs f32 tensors; this model is quantized or sparse, train the f32 model \
             and compress it afterwards",
            graph.describe_node(i)
        ))
    })
}

/// `(weight, bias)` of a Dense or Conv2d node, `(gamma, beta)` of a BatchNorm.
fn param_pair(graph: &Graph, i: usize) -> Result<(&[f32], &[f32])> {
    match &graph.nodes[i].op {
        Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => {
            Ok((f32_of(graph, i, weight)?, f32_of(graph, i, bias)?))
        }
        Op::BatchNorm { gamma, beta, .. } => {
            Ok((f32_of(graph, i, gamma)?, f32_of(graph, i, beta)?))
        }
        _ => Err(Error::bad_model(format!(
            "{} has no parameters",
            graph.describe_node(i)
        ))),
    }
}

/// `true` for the ops whose tensors slots 0 and 1 are trained.
pub fn has_params(op: &Op) -> bool {
    matches!(
        op,
        Op::Dense { .. } | Op::Conv2d { .. } | Op::BatchNorm { .. }
    )
}

impl GraphNet {
    /// Validates the graph for `input_shape` (one sample) and sizes the per-node state
    /// (activations are sized per batch).
    pub fn new(graph: &Graph, input_shape: &[usize], output: Output) -> Result<GraphNet> {
        let shapes = graph.validate(input_shape)?;
        let mut out = graph.output as usize;
        if output == Output::Logits && out > 0 && matches!(graph.nodes[out - 1].op, Op::Softmax) {
            out = graph.nodes[out - 1].inputs[0] as usize;
        }
        // Live nodes: ancestors of `out` (walk back in reverse topological order).
        let mut live_value = vec![false; shapes.len()];
        live_value[out] = true;
        let mut live = vec![false; graph.nodes.len()];
        for i in (0..graph.nodes.len()).rev() {
            if live_value[i + 1] {
                live[i] = true;
                for &v in &graph.nodes[i].inputs {
                    live_value[v as usize] = true;
                }
            }
        }
        let has = graph
            .nodes
            .iter()
            .map(|n| has_params(&n.op))
            .collect::<Vec<_>>();
        let mut grads = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            // Every tensor an op reads must be f32 (BatchNorm's running statistics included).
            if live[i] {
                for t in node.op.tensors() {
                    f32_of(graph, i, t)?;
                }
            }
            grads.push(if live[i] && has[i] {
                let (w, b) = param_pair(graph, i)?;
                Some(ParamGrads {
                    weight: vec![0.0; w.len()],
                    bias: vec![0.0; b.len()],
                })
            } else {
                None
            });
        }
        let lens = shapes.iter().map(|s| s.iter().product()).collect();
        let values = shapes.len();
        Ok(GraphNet {
            shapes,
            lens,
            out,
            live,
            has_params: has,
            acts: vec![Vec::new(); values],
            caches: vec![Cache::default(); graph.nodes.len()],
            grads,
            vgrad: vec![Vec::new(); values],
            vgrad_set: vec![false; values],
            scratch: Vec::new(),
            dcol: Vec::new(),
            n: 0,
            mode: Mode::Eval,
            bn_momentum: DEFAULT_BN_MOMENTUM,
        })
    }

    /// Sets the BatchNorm momentum used by [`GraphNet::update_running_stats`] (0..=1).
    pub fn set_bn_momentum(&mut self, momentum: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::bad_input(format!(
                "BatchNorm momentum {momentum} must be in [0, 1]"
            )));
        }
        self.bn_momentum = momentum;
        Ok(())
    }

    /// Values per sample of the network output.
    pub fn output_len(&self) -> usize {
        self.lens[self.out]
    }

    /// Values per sample of the input.
    pub fn input_len(&self) -> usize {
        self.lens[0]
    }

    /// Per-sample shape of every value (`[0]` is the input).
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// Parameter gradients of the last [`GraphNet::backward`], indexed by node (`None` for
    /// nodes without trainable tensors, and for nodes the output does not depend on).
    pub fn grads(&self) -> &[Option<ParamGrads>] {
        &self.grads
    }

    pub fn grads_mut(&mut self) -> &mut [Option<ParamGrads>] {
        &mut self.grads
    }

    /// Gradient w.r.t. the input after `backward(.., true)` (empty otherwise).
    pub fn input_grad(&self) -> &[f32] {
        if self.vgrad_set[0] {
            &self.vgrad[0]
        } else {
            &[]
        }
    }

    /// Gradient w.r.t. value `v` after the last backward, if it got one.
    pub fn value_grad(&self, v: ValueId) -> Option<&[f32]> {
        let v = v as usize;
        (v < self.vgrad.len() && self.vgrad_set[v]).then(|| &self.vgrad[v][..])
    }

    /// Activation of value `v` for the last forward (`n × len`), if it was computed.
    pub fn value(&self, v: ValueId) -> Option<&[f32]> {
        let v = v as usize;
        self.acts.get(v).filter(|a| !a.is_empty()).map(|a| &a[..])
    }

    /// Runs the graph on `n` samples and returns the output (`n × output_len()`).
    /// `rng` draws the dropout masks in [`Mode::Train`] (unused in eval mode).
    /// `graph` must be the one the network was built for (same nodes, same shapes).
    pub fn forward(
        &mut self,
        graph: &Graph,
        input: &[f32],
        n: usize,
        mode: Mode,
        rng: &mut Rng,
    ) -> Result<&[f32]> {
        if n == 0 || Some(input.len()) != n.checked_mul(self.lens[0]) {
            return Err(Error::bad_input(format!(
                "forward got {} values for {n} samples of {} values each",
                input.len(),
                self.lens[0]
            )));
        }
        if graph.nodes.len() != self.live.len() {
            return Err(Error::bad_model(format!(
                "the graph has {} nodes but the network was built for {}",
                graph.nodes.len(),
                self.live.len()
            )));
        }
        self.n = n;
        self.mode = mode;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(input);
        for i in 0..graph.nodes.len() {
            if !self.live[i] {
                continue;
            }
            let (before, after) = self.acts.split_at_mut(i + 1);
            let y = &mut after[0];
            y.resize(n * self.lens[i + 1], 0.0);
            let node = &graph.nodes[i];
            let ins: Vec<(&[f32], &[usize])> = node
                .inputs
                .iter()
                .map(|&v| (&before[v as usize][..], &self.shapes[v as usize][..]))
                .collect();
            forward_node(
                graph,
                i,
                &ins,
                &self.shapes[i + 1],
                y,
                n,
                mode,
                &mut self.caches[i],
                rng,
            )?;
        }
        Ok(&self.acts[self.out])
    }

    /// After a [`Mode::Train`] forward: folds the batch statistics of every BatchNorm into
    /// its running `mean`/`var` (`running = (1 − m)·running + m·batch`, the unbiased batch
    /// variance, as PyTorch). Does nothing after an eval forward.
    pub fn update_running_stats(&self, graph: &mut Graph) -> Result<()> {
        if self.mode != Mode::Train || self.n == 0 {
            return Ok(());
        }
        let m = self.bn_momentum;
        for (i, node) in graph.nodes.iter_mut().enumerate() {
            let Op::BatchNorm { mean, var, .. } = &mut node.op else {
                continue;
            };
            let cache = &self.caches[i];
            if !self.live[i] || cache.bn_var_unbiased.is_empty() {
                continue;
            }
            let (Some(mean), Some(var)) = (mean.as_f32_mut(), var.as_f32_mut()) else {
                return Err(Error::unsupported(
                    "BatchNorm running statistics must be f32",
                ));
            };
            for (r, &b) in mean.iter_mut().zip(&cache.bn_mean) {
                *r = (1.0 - m) * *r + m * b;
            }
            for (r, &b) in var.iter_mut().zip(&cache.bn_var_unbiased) {
                *r = (1.0 - m) * *r + m * b;
            }
        }
        Ok(())
    }

    /// Back-propagates `dout` (`n × output_len()`, the gradient of the loss w.r.t. the output
    /// of the last forward) and overwrites [`GraphNet::grads`]. The gradient w.r.t. the input
    /// is only computed when `input_grad` is set.
    pub fn backward(&mut self, graph: &Graph, dout: &[f32], input_grad: bool) -> Result<()> {
        let n = self.n;
        if n == 0 || dout.len() != n * self.lens[self.out] {
            return Err(Error::bad_input(format!(
                "backward got {} gradient values; the last forward produced {} (run forward first)",
                dout.len(),
                n * self.lens[self.out]
            )));
        }
        // needs[v]: some trainable tensor (or the input, when asked) lies upstream of v.
        let mut needs = vec![false; self.shapes.len()];
        needs[0] = input_grad;
        for (i, node) in graph.nodes.iter().enumerate() {
            needs[i + 1] = self.live[i]
                && (self.has_params[i] || node.inputs.iter().any(|&v| needs[v as usize]));
        }
        self.vgrad_set.iter_mut().for_each(|s| *s = false);
        let o = self.out;
        self.vgrad[o].clear();
        self.vgrad[o].extend_from_slice(dout);
        self.vgrad_set[o] = true;
        for i in (0..graph.nodes.len()).rev() {
            if !self.live[i] || !needs[i + 1] {
                continue;
            }
            if !self.vgrad_set[i + 1] {
                // Live but nothing flowed back (cannot happen for an ancestor of the output
                // that needs a gradient); keep the parameter gradients defined anyway.
                if let Some(g) = self.grads[i].as_mut() {
                    g.weight.iter_mut().for_each(|v| *v = 0.0);
                    g.bias.iter_mut().for_each(|v| *v = 0.0);
                }
                continue;
            }
            let dy = std::mem::take(&mut self.vgrad[i + 1]);
            let node = &graph.nodes[i];
            let result = (|| -> Result<()> {
                if self.has_params[i] {
                    self.param_grads(graph, i, &dy)?;
                }
                for (slot, &v) in node.inputs.iter().enumerate() {
                    let v = v as usize;
                    if !needs[v] {
                        continue;
                    }
                    let mut dx = std::mem::take(&mut self.scratch);
                    dx.resize(n * self.lens[v], 0.0);
                    self.input_grad_of(graph, i, slot, &dy, &mut dx)?;
                    if self.vgrad_set[v] {
                        self.vgrad[v].iter_mut().zip(&dx).for_each(|(a, b)| *a += b);
                        self.scratch = dx;
                    } else {
                        self.scratch = std::mem::replace(&mut self.vgrad[v], dx);
                        self.vgrad_set[v] = true;
                    }
                }
                Ok(())
            })();
            self.vgrad[i + 1] = dy;
            result?;
        }
        Ok(())
    }

    /// Parameter gradients of node `i` from `dy` (its output's gradient).
    fn param_grads(&mut self, graph: &Graph, i: usize, dy: &[f32]) -> Result<()> {
        let n = self.n;
        let node = &graph.nodes[i];
        let x = &self.acts[node.inputs[0] as usize];
        let (ins, outs) = (&self.shapes[node.inputs[0] as usize], &self.shapes[i + 1]);
        let (in_len, out_len) = (self.lens[node.inputs[0] as usize], self.lens[i + 1]);
        let cache = &self.caches[i];
        let g = self.grads[i]
            .as_mut()
            .ok_or_else(|| Error::bad_model("gradient slot missing"))?;
        match &node.op {
            Op::Dense { .. } => {
                gemm(
                    in_len,
                    out_len,
                    n,
                    MatRef::transposed(x, in_len),
                    MatRef::row_major(dy, out_len),
                    &mut g.weight,
                    out_len,
                    false,
                );
                g.bias.iter_mut().for_each(|v| *v = 0.0);
                for row in dy.chunks_exact(out_len) {
                    g.bias.iter_mut().zip(row).for_each(|(b, d)| *b += d);
                }
            }
            Op::Conv2d {
                weight,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let geom = ConvGeom::new(
                    ins,
                    outs,
                    &weight.shape,
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                );
                let (k, p, ocg) = (geom.k(), geom.p(), geom.ocg());
                g.bias.iter_mut().for_each(|v| *v = 0.0);
                for s in 0..n {
                    let dys = &dy[s * out_len..(s + 1) * out_len];
                    for gi in 0..geom.groups {
                        let col = &cache.col[(s * geom.groups + gi) * k * p..][..k * p];
                        gemm(
                            ocg,
                            k,
                            p,
                            MatRef::row_major(&dys[gi * ocg * p..], p),
                            MatRef::transposed(col, p),
                            &mut g.weight[gi * ocg * k..],
                            k,
                            s > 0,
                        );
                    }
                    for (c, plane) in dys.chunks_exact(p).enumerate() {
                        g.bias[c] += plane.iter().sum::<f32>();
                    }
                }
            }
            Op::BatchNorm { .. } => {
                let c = ins[0];
                let sp = in_len / c;
                let mut dgamma = vec![0.0f64; c];
                let mut dbeta = vec![0.0f64; c];
                for s in 0..n {
                    for ch in 0..c {
                        let (m, is) = (cache.bn_mean[ch], cache.bn_inv_std[ch]);
                        let base = s * in_len + ch * sp;
                        let (mut dg, mut db) = (0.0f64, 0.0f64);
                        for j in base..base + sp {
                            let xhat = (x[j] - m) * is;
                            dg += (dy[j] * xhat) as f64;
                            db += dy[j] as f64;
                        }
                        dgamma[ch] += dg;
                        dbeta[ch] += db;
                    }
                }
                g.weight
                    .iter_mut()
                    .zip(&dgamma)
                    .for_each(|(g, v)| *g = *v as f32);
                g.bias
                    .iter_mut()
                    .zip(&dbeta)
                    .for_each(|(g, v)| *g = *v as f32);
            }
            _ => {}
        }
        Ok(())
    }

    /// Gradient w.r.t. input `slot` of node `i`, written (not added) into `dx`.
    fn input_grad_of(
        &mut self,
        graph: &Graph,
        i: usize,
        slot: usize,
        dy: &[f32],
        dx: &mut [f32],
    ) -> Result<()> {
        let n = self.n;
        let node = &graph.nodes[i];
        let xv = node.inputs[slot] as usize;
        let x = &self.acts[xv];
        let (ins, outs) = (&self.shapes[xv], &self.shapes[i + 1]);
        let (in_len, out_len) = (self.lens[xv], self.lens[i + 1]);
        let cache = &self.caches[i];
        match &node.op {
            Op::Dense { weight, .. } => {
                let w = f32_of(graph, i, weight)?;
                gemm(
                    n,
                    in_len,
                    out_len,
                    MatRef::row_major(dy, out_len),
                    MatRef::transposed(w, out_len),
                    dx,
                    in_len,
                    false,
                );
            }
            Op::Conv2d {
                weight,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let w = f32_of(graph, i, weight)?;
                let geom = ConvGeom::new(
                    ins,
                    outs,
                    &weight.shape,
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                );
                let (k, p, ocg) = (geom.k(), geom.p(), geom.ocg());
                self.dcol.resize(k * p, 0.0);
                for s in 0..n {
                    let dys = &dy[s * out_len..(s + 1) * out_len];
                    let dxs = &mut dx[s * in_len..(s + 1) * in_len];
                    for gi in 0..geom.groups {
                        gemm(
                            k,
                            p,
                            ocg,
                            MatRef::transposed(&w[gi * ocg * k..], k),
                            MatRef::row_major(&dys[gi * ocg * p..], p),
                            &mut self.dcol,
                            p,
                            false,
                        );
                        geom.col2im(&self.dcol, dxs, gi);
                    }
                }
            }
            Op::BatchNorm { gamma, .. } => {
                let gamma = f32_of(graph, i, gamma)?;
                let c = ins[0];
                let sp = in_len / c;
                if self.mode == Mode::Train {
                    // dx = γ·σ⁻¹/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), sums over the M = N·H·W
                    // elements of the channel.
                    let count = (n * sp) as f64;
                    for ch in 0..c {
                        let (m, is) = (cache.bn_mean[ch], cache.bn_inv_std[ch]);
                        let (mut sdy, mut sdyx) = (0.0f64, 0.0f64);
                        for s in 0..n {
                            let base = s * in_len + ch * sp;
                            for j in base..base + sp {
                                sdy += dy[j] as f64;
                                sdyx += (dy[j] * (x[j] - m) * is) as f64;
                            }
                        }
                        let (mdy, mdyx) = ((sdy / count) as f32, (sdyx / count) as f32);
                        let scale = gamma[ch] * is;
                        for s in 0..n {
                            let base = s * in_len + ch * sp;
                            for j in base..base + sp {
                                let xhat = (x[j] - m) * is;
                                dx[j] = scale * (dy[j] - mdy - xhat * mdyx);
                            }
                        }
                    }
                } else {
                    for s in 0..n {
                        for ch in 0..c {
                            let scale = gamma[ch] * cache.bn_inv_std[ch];
                            let base = s * in_len + ch * sp;
                            for j in base..base + sp {
                                dx[j] = dy[j] * scale;
                            }
                        }
                    }
                }
            }
            Op::Add | Op::Mul => {
                let other = node.inputs[1 - slot] as usize;
                let (b, bshape) = (&self.acts[other], &self.shapes[other]);
                let is_add = matches!(node.op, Op::Add);
                if in_len == out_len {
                    // This input has the output's shape; the other may be broadcast.
                    if is_add {
                        dx.copy_from_slice(dy);
                    } else {
                        let blen = self.lens[other];
                        let sp = out_len / blen.max(1);
                        for s in 0..n {
                            for j in 0..out_len {
                                let bj = if blen == out_len { j } else { j / sp };
                                dx[s * out_len + j] = dy[s * out_len + j] * b[s * blen + bj];
                            }
                        }
                    }
                } else {
                    // This input is broadcast per channel: reduce over the spatial axes.
                    let c = in_len;
                    let sp = out_len / c;
                    let _ = bshape;
                    for s in 0..n {
                        for ch in 0..c {
                            let base = s * out_len + ch * sp;
                            let mut acc = 0.0f32;
                            for j in base..base + sp {
                                acc += if is_add { dy[j] } else { dy[j] * b[j] };
                            }
                            dx[s * c + ch] = acc;
                        }
                    }
                }
            }
            Op::Concat => {
                // Channel offset of this input: the lengths of the inputs before it.
                let offset: usize = node.inputs[..slot]
                    .iter()
                    .map(|&v| self.lens[v as usize])
                    .sum();
                for s in 0..n {
                    dx[s * in_len..(s + 1) * in_len]
                        .copy_from_slice(&dy[s * out_len + offset..s * out_len + offset + in_len]);
                }
            }
            Op::MaxPool2d { .. } => {
                dx.iter_mut().for_each(|v| *v = 0.0);
                for s in 0..n {
                    let dxs = &mut dx[s * in_len..(s + 1) * in_len];
                    for o in 0..out_len {
                        dxs[cache.argmax[s * out_len + o] as usize] += dy[s * out_len + o];
                    }
                }
            }
            Op::AvgPool2d {
                kernel,
                stride,
                padding,
                count_include_pad,
                ..
            } => {
                dx.iter_mut().for_each(|v| *v = 0.0);
                let pool = PoolGeom::new(ins, outs, *kernel, *stride, *padding);
                for s in 0..n {
                    let dxs = &mut dx[s * in_len..(s + 1) * in_len];
                    let dys = &dy[s * out_len..(s + 1) * out_len];
                    for ch in 0..pool.c {
                        for oy in 0..pool.oh {
                            for ox in 0..pool.ow {
                                let (ys, xs, div) = pool.avg_window(oy, ox, *count_include_pad);
                                let g = dys[(ch * pool.oh + oy) * pool.ow + ox] / div;
                                for iy in ys.clone() {
                                    for ix in xs.clone() {
                                        dxs[(ch * pool.h + iy) * pool.w + ix] += g;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Op::GlobalAvgPool => {
                let c = ins[0];
                let sp = in_len / c;
                let inv = 1.0 / sp as f32;
                for s in 0..n {
                    for ch in 0..c {
                        let g = dy[s * c + ch] * inv;
                        dx[s * in_len + ch * sp..s * in_len + (ch + 1) * sp]
                            .iter_mut()
                            .for_each(|v| *v = g);
                    }
                }
            }
            Op::Flatten | Op::Reshape { .. } | Op::Identity => dx.copy_from_slice(dy),
            // Straight-through estimator with the usual clip (BinaryConnect, XNOR-Net,
            // Bi-Real): the gradient of sign is taken as that of clamp(x, −1, 1).
            Op::Sign => dx
                .iter_mut()
                .zip(dy.iter().zip(x))
                .for_each(|(dx, (&dy, &x))| *dx = if (-1.0..=1.0).contains(&x) { dy } else { 0.0 }),
            Op::Quantize { scale, zero_point } => {
                // Straight-through estimator: the gradient passes where x lies inside the
                // grid's range and stops where the quantizer clamps (the QAT groundwork).
                let p = crate::kernels::quant::QParams { scale: *scale, zero_point: *zero_point };
                let (lo, hi) = (p.dequantize(0), p.dequantize(255));
                dx.iter_mut()
                    .zip(dy.iter().zip(x))
                    .for_each(|(dx, (&dy, &x))| *dx = if (lo..=hi).contains(&x) { dy } else { 0.0 });
            }
            Op::Dropout { .. } => {
                if cache.mask.len() == dy.len() {
                    dx.iter_mut()
                        .zip(dy.iter().zip(&cache.mask))
                        .for_each(|(dx, (dy, m))| *dx = dy * m);
                } else {
                    dx.copy_from_slice(dy);
                }
            }
            Op::Relu => {
                dx.iter_mut()
                    .zip(dy.iter().zip(x))
                    .for_each(|(dx, (&dy, &x))| *dx = if x > 0.0 { dy } else { 0.0 });
            }
            Op::Clip { min, max } => {
                // As PyTorch's clamp: the gradient passes where min <= x <= max.
                dx.iter_mut()
                    .zip(dy.iter().zip(x))
                    .for_each(|(dx, (&dy, &x))| {
                        *dx = if x >= *min && x <= *max { dy } else { 0.0 }
                    });
            }
            Op::LeakyRelu { alpha } => {
                dx.iter_mut()
                    .zip(dy.iter().zip(x))
                    .for_each(|(dx, (&dy, &x))| *dx = if x > 0.0 { dy } else { alpha * dy });
            }
            Op::Sigmoid => {
                let y = &self.acts[i + 1];
                dx.iter_mut()
                    .zip(dy.iter().zip(y))
                    .for_each(|(dx, (&dy, &y))| *dx = dy * y * (1.0 - y));
            }
            Op::Tanh => {
                let y = &self.acts[i + 1];
                dx.iter_mut()
                    .zip(dy.iter().zip(y))
                    .for_each(|(dx, (&dy, &y))| *dx = dy * (1.0 - y * y));
            }
            Op::HardSwish => {
                dx.iter_mut()
                    .zip(dy.iter().zip(x))
                    .for_each(|(dx, (&dy, &x))| {
                        *dx = if x <= -3.0 {
                            0.0
                        } else if x >= 3.0 {
                            dy
                        } else {
                            dy * (2.0 * x + 3.0) / 6.0
                        }
                    });
            }
            Op::Softmax => {
                let y = &self.acts[i + 1];
                for ((dxr, dyr), yr) in dx
                    .chunks_exact_mut(out_len)
                    .zip(dy.chunks_exact(out_len))
                    .zip(y.chunks_exact(out_len))
                {
                    let dot: f32 = dyr.iter().zip(yr).map(|(a, b)| a * b).sum();
                    for ((d, &g), &y) in dxr.iter_mut().zip(dyr).zip(yr) {
                        *d = y * (g - dot);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Forward of node `i` on `n` samples: `ins` are its inputs' activations and shapes.
#[allow(clippy::too_many_arguments)]
fn forward_node(
    graph: &Graph,
    i: usize,
    ins: &[(&[f32], &[usize])],
    outs: &[usize],
    y: &mut [f32],
    n: usize,
    mode: Mode,
    cache: &mut Cache,
    rng: &mut Rng,
) -> Result<()> {
    let (x, xshape) = ins[0];
    let in_len = x.len() / n;
    let out_len = y.len() / n;
    match &graph.nodes[i].op {
        Op::Dense { weight, bias } => {
            let (w, b) = (f32_of(graph, i, weight)?, f32_of(graph, i, bias)?);
            gemm(
                n,
                out_len,
                in_len,
                MatRef::row_major(x, in_len),
                MatRef::row_major(w, out_len),
                y,
                out_len,
                false,
            );
            for row in y.chunks_exact_mut(out_len) {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        Op::Conv2d {
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
        } => {
            let (w, b) = (f32_of(graph, i, weight)?, f32_of(graph, i, bias)?);
            let g = ConvGeom::new(
                xshape,
                outs,
                &weight.shape,
                *stride,
                *padding,
                *dilation,
                *groups,
            );
            let (k, p, ocg) = (g.k(), g.p(), g.ocg());
            cache.col.resize(n * g.groups * k * p, 0.0);
            for s in 0..n {
                let xs = &x[s * in_len..(s + 1) * in_len];
                let ys = &mut y[s * out_len..(s + 1) * out_len];
                for gi in 0..g.groups {
                    let col = &mut cache.col[(s * g.groups + gi) * k * p..][..k * p];
                    g.im2col(xs, col, gi);
                    gemm(
                        ocg,
                        p,
                        k,
                        MatRef::row_major(&w[gi * ocg * k..], k),
                        MatRef::row_major(col, p),
                        &mut ys[gi * ocg * p..],
                        p,
                        false,
                    );
                }
                for (c, plane) in ys.chunks_exact_mut(p).enumerate() {
                    plane.iter_mut().for_each(|v| *v += b[c]);
                }
            }
        }
        Op::BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
        } => {
            let (gm, bt) = (f32_of(graph, i, gamma)?, f32_of(graph, i, beta)?);
            let (rm, rv) = (f32_of(graph, i, mean)?, f32_of(graph, i, var)?);
            let c = xshape[0];
            let sp = in_len / c;
            cache.bn_mean.resize(c, 0.0);
            cache.bn_inv_std.resize(c, 0.0);
            if mode == Mode::Train {
                // Batch statistics over the N·H·W elements of each channel, summed in f64 so
                // the variance does not lose digits to cancellation.
                let count = n * sp;
                cache.bn_var_unbiased.resize(c, 0.0);
                for ch in 0..c {
                    let mut sum = 0.0f64;
                    for s in 0..n {
                        let base = s * in_len + ch * sp;
                        sum += x[base..base + sp].iter().map(|&v| v as f64).sum::<f64>();
                    }
                    let mu = sum / count as f64;
                    let mut sq = 0.0f64;
                    for s in 0..n {
                        let base = s * in_len + ch * sp;
                        sq += x[base..base + sp]
                            .iter()
                            .map(|&v| (v as f64 - mu) * (v as f64 - mu))
                            .sum::<f64>();
                    }
                    let var_b = sq / count as f64;
                    cache.bn_mean[ch] = mu as f32;
                    cache.bn_inv_std[ch] = (1.0 / (var_b + *eps as f64).sqrt()) as f32;
                    // A batch of one element per channel has no unbiased variance; keep the
                    // biased one (PyTorch refuses such a batch in training mode).
                    cache.bn_var_unbiased[ch] = if count > 1 {
                        (sq / (count - 1) as f64) as f32
                    } else {
                        var_b as f32
                    };
                }
            } else {
                cache.bn_var_unbiased.clear();
                for ch in 0..c {
                    cache.bn_mean[ch] = rm[ch];
                    cache.bn_inv_std[ch] = 1.0 / (rv[ch] + eps).sqrt();
                }
            }
            for s in 0..n {
                for ch in 0..c {
                    let (m, is) = (cache.bn_mean[ch], cache.bn_inv_std[ch]);
                    let base = s * in_len + ch * sp;
                    for j in base..base + sp {
                        y[j] = (x[j] - m) * is * gm[ch] + bt[ch];
                    }
                }
            }
        }
        Op::Add | Op::Mul => {
            let (b, _) = ins[1];
            let (alen, blen) = (in_len, b.len() / n);
            let is_add = matches!(graph.nodes[i].op, Op::Add);
            let f = |p: f32, q: f32| if is_add { p + q } else { p * q };
            for s in 0..n {
                for j in 0..out_len {
                    // A per-channel operand is indexed by the channel of output element j.
                    let aj = if alen == out_len {
                        j
                    } else {
                        j / (out_len / alen)
                    };
                    let bj = if blen == out_len {
                        j
                    } else {
                        j / (out_len / blen)
                    };
                    y[s * out_len + j] = f(x[s * alen + aj], b[s * blen + bj]);
                }
            }
        }
        Op::Concat => {
            let mut offset = 0;
            for (xi, _) in ins {
                let len = xi.len() / n;
                for s in 0..n {
                    y[s * out_len + offset..s * out_len + offset + len]
                        .copy_from_slice(&xi[s * len..(s + 1) * len]);
                }
                offset += len;
            }
        }
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
            ..
        } => {
            let pool = PoolGeom::new(xshape, outs, *kernel, *stride, *padding);
            cache.argmax.resize(n * out_len, 0);
            for s in 0..n {
                let xs = &x[s * in_len..(s + 1) * in_len];
                for ch in 0..pool.c {
                    for oy in 0..pool.oh {
                        for ox in 0..pool.ow {
                            let (ys, xr) = pool.window(oy, ox);
                            let mut best = f32::NEG_INFINITY;
                            let mut arg = usize::MAX;
                            for iy in ys {
                                for ix in xr.clone() {
                                    let idx = (ch * pool.h + iy) * pool.w + ix;
                                    // `>` keeps the first maximum: ties send the gradient to one
                                    // input. Padded cells are never candidates.
                                    if arg == usize::MAX || xs[idx] > best {
                                        best = xs[idx];
                                        arg = idx;
                                    }
                                }
                            }
                            let o = s * out_len + (ch * pool.oh + oy) * pool.ow + ox;
                            y[o] = best;
                            cache.argmax[o] = arg as u32;
                        }
                    }
                }
            }
        }
        Op::AvgPool2d {
            kernel,
            stride,
            padding,
            count_include_pad,
            ..
        } => {
            let pool = PoolGeom::new(xshape, outs, *kernel, *stride, *padding);
            for s in 0..n {
                let xs = &x[s * in_len..(s + 1) * in_len];
                for ch in 0..pool.c {
                    for oy in 0..pool.oh {
                        for ox in 0..pool.ow {
                            let (ys, xr, div) = pool.avg_window(oy, ox, *count_include_pad);
                            let mut sum = 0.0f32;
                            for iy in ys {
                                for ix in xr.clone() {
                                    sum += xs[(ch * pool.h + iy) * pool.w + ix];
                                }
                            }
                            y[s * out_len + (ch * pool.oh + oy) * pool.ow + ox] = sum / div;
                        }
                    }
                }
            }
        }
        Op::GlobalAvgPool => {
            let c = xshape[0];
            let sp = in_len / c;
            for s in 0..n {
                for ch in 0..c {
                    let base = s * in_len + ch * sp;
                    y[s * c + ch] = x[base..base + sp].iter().sum::<f32>() / sp as f32;
                }
            }
        }
        Op::Flatten | Op::Reshape { .. } | Op::Identity => y.copy_from_slice(x),
        Op::Sign => y.iter_mut().zip(x).for_each(|(y, &x)| *y = if x >= 0.0 { 1.0 } else { -1.0 }),
        Op::Quantize { scale, zero_point } => {
            let p = crate::kernels::quant::QParams { scale: *scale, zero_point: *zero_point };
            y.iter_mut().zip(x).for_each(|(y, &x)| *y = p.dequantize(i32::from(p.quantize(x))));
        }
        Op::Dropout { rate } => {
            if mode == Mode::Train && *rate > 0.0 {
                let keep = 1.0 / (1.0 - rate);
                cache.mask.clear();
                cache.mask.extend((0..x.len()).map(|_| {
                    if rng.next_f32() < *rate {
                        0.0
                    } else {
                        keep
                    }
                }));
                y.iter_mut()
                    .zip(x.iter().zip(&cache.mask))
                    .for_each(|(y, (x, m))| *y = x * m);
            } else {
                cache.mask.clear();
                y.copy_from_slice(x);
            }
        }
        Op::Relu => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(0.0)),
        Op::Clip { min, max } => y
            .iter_mut()
            .zip(x)
            .for_each(|(y, &x)| *y = x.max(*min).min(*max)),
        Op::LeakyRelu { alpha } => y
            .iter_mut()
            .zip(x)
            .for_each(|(y, &x)| *y = if x > 0.0 { x } else { alpha * x }),
        Op::Sigmoid => y
            .iter_mut()
            .zip(x)
            .for_each(|(y, &x)| *y = 1.0 / (1.0 + (-x).exp())),
        Op::Tanh => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.tanh()),
        Op::HardSwish => y
            .iter_mut()
            .zip(x)
            .for_each(|(y, &x)| *y = x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
        Op::Softmax => {
            y.copy_from_slice(x);
            for row in y.chunks_exact_mut(out_len) {
                softmax_in_place(row);
            }
        }
    }
    Ok(())
}

/// Numerically stable softmax of one row.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Geometry of a pooling window over one `[C, H, W]` sample (validated by `Graph::shapes`).
struct PoolGeom {
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pad: [usize; 4],
}

impl PoolGeom {
    fn new(
        ins: &[usize],
        outs: &[usize],
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    ) -> PoolGeom {
        PoolGeom {
            c: ins[0],
            h: ins[1],
            w: ins[2],
            oh: outs[1],
            ow: outs[2],
            kernel,
            stride,
            pad,
        }
    }

    /// The window of output `(oy, ox)` in padded coordinates (may extend past the padding in
    /// ceil mode): rows `[y0, y0 + kh)` shifted by the top padding, as signed numbers.
    fn padded(&self, oy: usize, ox: usize) -> ([isize; 2], [isize; 2]) {
        let y0 = (oy * self.stride[0]) as isize - self.pad[0] as isize;
        let x0 = (ox * self.stride[1]) as isize - self.pad[1] as isize;
        (
            [y0, y0 + self.kernel[0] as isize],
            [x0, x0 + self.kernel[1] as isize],
        )
    }

    /// The in-input rows and columns of output `(oy, ox)`'s window (never empty, see
    /// `graph::window_out`).
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let ([y0, y1], [x0, x1]) = self.padded(oy, ox);
        let clip = |a: isize, b: isize, len: usize| a.max(0) as usize..(b.max(0) as usize).min(len);
        (clip(y0, y1, self.h), clip(x0, x1, self.w))
    }

    /// The window and the divisor of an average. With `count_include_pad` the divisor counts
    /// the padded cells too, but not the part of a ceil-mode window beyond the padding (as
    /// PyTorch and onnxruntime).
    fn avg_window(
        &self,
        oy: usize,
        ox: usize,
        count_include_pad: bool,
    ) -> (std::ops::Range<usize>, std::ops::Range<usize>, f32) {
        let (ys, xs) = self.window(oy, ox);
        let div = if count_include_pad {
            let ([y0, y1], [x0, x1]) = self.padded(oy, ox);
            let hy = y1.min((self.h + self.pad[2]) as isize) - y0;
            let wx = x1.min((self.w + self.pad[3]) as isize) - x0;
            (hy * wx) as f32
        } else {
            (ys.len() * xs.len()) as f32
        };
        (ys, xs, div)
    }
}

/// Shapes of one convolution, all validated by `Graph::shapes` before we get here.
struct ConvGeom {
    ic: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    /// `[top, left, bottom, right]`; only top and left shift the taps, the bottom and right
    /// padding only make room for the output size.
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
}

impl ConvGeom {
    fn new(
        ins: &[usize],
        outs: &[usize],
        wshape: &[usize],
        stride: [usize; 2],
        pad: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    ) -> ConvGeom {
        ConvGeom {
            ic: ins[0],
            h: ins[1],
            w: ins[2],
            oc: outs[0],
            kh: wshape[2],
            kw: wshape[3],
            oh: outs[1],
            ow: outs[2],
            stride,
            pad,
            dilation,
            groups,
        }
    }
    /// Input channels per group.
    fn icg(&self) -> usize {
        self.ic / self.groups
    }
    /// Output channels per group.
    fn ocg(&self) -> usize {
        self.oc / self.groups
    }
    /// Rows of one group's im2col matrix.
    fn k(&self) -> usize {
        self.icg() * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Calls `f(col_index, input_index)` for every in-bounds tap of group `g`; padded taps
    /// are skipped.
    #[inline]
    fn for_each_tap(&self, g: usize, mut f: impl FnMut(usize, usize)) {
        let p = self.p();
        let c0 = g * self.icg();
        for c in 0..self.icg() {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    for oy in 0..self.oh {
                        let iy = (oy * self.stride[0] + ky * self.dilation[0]) as isize
                            - self.pad[0] as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let base_in = ((c0 + c) * self.h + iy as usize) * self.w;
                        let base_col = row * p + oy * self.ow;
                        for ox in 0..self.ow {
                            let ix = (ox * self.stride[1] + kx * self.dilation[1]) as isize
                                - self.pad[1] as isize;
                            if ix >= 0 && ix < self.w as isize {
                                f(base_col + ox, base_in + ix as usize);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `col[(c·kh + ky)·kw + kx][oy·ow + ox] = x[g·icg + c][oy·sh + ky·dh − pt][ox·sw + kx·dw − pl]`
    /// (0 outside).
    fn im2col(&self, x: &[f32], col: &mut [f32], g: usize) {
        if self.pad != [0; 4] {
            col.iter_mut().for_each(|v| *v = 0.0);
        }
        self.for_each_tap(g, |ci, xi| col[ci] = x[xi]);
    }

    /// The adjoint of `im2col`: zeroes group `g`'s input channels of `dx`, then sums each
    /// column entry back into the input it came from.
    fn col2im(&self, col: &[f32], dx: &mut [f32], g: usize) {
        let plane = self.h * self.w;
        dx[g * self.icg() * plane..(g + 1) * self.icg() * plane]
            .iter_mut()
            .for_each(|v| *v = 0.0);
        self.for_each_tap(g, |ci, xi| dx[xi] += col[ci]);
    }
}
