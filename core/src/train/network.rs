//! Batched forward and backward passes over a [`Model`]'s layers (NCHW, `f32`).
//!
//! A [`Network`] holds what training needs besides the weights: each layer's input
//! activations, the im2col buffers of the convolutions, the argmax of each max-pool window,
//! the dropout masks, and the parameter gradients. The weights stay in the [`Model`], so the
//! optimizer updates the very tensors that get saved.
//!
//! Dense and Conv2d go through [`crate::kernels::gemm`] with strided views, so they speed up
//! with the kernels, and the transposes of the backward pass cost nothing:
//!
//! ```text
//! Dense   y  = x · W + b            x: [n, in]   W: [in, out]
//!         dW = xᵀ · dy              dx = dy · Wᵀ        db = Σ_rows dy
//! Conv2d  col = im2col(x_s)         col: [ic·kh·kw, oh·ow]  (per sample s)
//!         y_s = W · col + b         W viewed as [oc, ic·kh·kw]
//!         dW += dy_s · colᵀ         dcol = Wᵀ · dy_s    dx_s = col2im(dcol)
//! ```

use crate::error::{Error, Result};
use crate::kernels::{gemm, MatRef};
use crate::graph::Op;
use crate::model::Model;
use crate::rng::Rng;

/// Whether dropout is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Dropout drops (inverted dropout: kept units are scaled by `1 / (1 − rate)`).
    Train,
    /// Dropout is the identity, as at inference.
    Eval,
}

/// Where the forward pass stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Run every layer.
    Full,
    /// Stop before a final `Softmax` (if the model ends with one): the output are the logits
    /// the fused softmax-cross-entropy losses expect.
    Logits,
}

/// Gradients of one Dense or Conv2d layer, same layouts as the weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGrads {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

#[derive(Clone, Debug, Default)]
struct Cache {
    /// Conv2d: im2col of every sample of the batch, `[n][ic·kh·kw][oh·ow]`.
    col: Vec<f32>,
    /// MaxPool2d: for each output, the index (within the sample) of the input that won.
    argmax: Vec<u32>,
    /// Dropout: the multiplier of each element (0 or `1 / (1 − rate)`); empty in eval mode.
    mask: Vec<f32>,
}

/// Training-time state for one model; see the module docs.
pub struct Network {
    end: usize,
    /// Per-sample shapes; `shapes[i]` is the input of layer `i`.
    shapes: Vec<Vec<usize>>,
    lens: Vec<usize>,
    /// `acts[i]` = input of layer `i` for the current batch; `acts[end]` = output.
    acts: Vec<Vec<f32>>,
    caches: Vec<Cache>,
    grads: Vec<Option<ParamGrads>>,
    /// Gradient w.r.t. the network input after a [`Network::backward`] that asked for it.
    input_grad: Vec<f32>,
    scratch: Vec<f32>,
    dcol: Vec<f32>,
    n: usize,
    mode: Mode,
}

/// The ops of a chain (node `i` reads value `i`): what this network trains until graph
/// training lands (issue 9). Anything else is an error naming why.
fn chain(model: &Model) -> Result<Vec<&Op>> {
    model.graph.as_sequential().ok_or_else(|| {
        Error::unsupported("training runs sequential models only until graph training lands")
    })
}

fn f32_weights(layer: &Op, i: usize) -> Result<(&[f32], &[f32])> {
    let (w, b) = match layer {
        Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => (weight, bias),
        _ => return Err(Error::bad_model(format!("layer {i} has no weights"))),
    };
    match (w.as_f32(), b.as_f32()) {
        (Some(w), Some(b)) => Ok((w, b)),
        _ => Err(Error::unsupported(format!(
            "layer {i} ({}): training needs f32 weights; this model is quantized or sparse, train the \
             f32 model and compress it afterwards",
            layer.name()
        ))),
    }
}

impl Network {
    /// Validates the model and sizes the per-layer state (activations are sized per batch).
    pub fn new(model: &Model, output: Output) -> Result<Network> {
        model.validate()?;
        let shapes = model.shapes()?;
        let layers = chain(model)?;
        let mut end = layers.len();
        if output == Output::Logits && matches!(layers.last(), Some(Op::Softmax)) {
            end -= 1;
        }
        for (i, layer) in layers.iter().copied().enumerate().take(end) {
            if matches!(layer, Op::Dense { .. } | Op::Conv2d { .. }) {
                f32_weights(layer, i)?;
            }
        }
        let lens = shapes.iter().map(|s| s.iter().product()).collect();
        let grads = layers[..end]
            .iter()
            .map(|l| match l {
                Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => {
                    Some(ParamGrads {
                        weight: vec![0.0; weight.numel()],
                        bias: vec![0.0; bias.numel()],
                    })
                }
                _ => None,
            })
            .collect();
        Ok(Network {
            end,
            shapes,
            lens,
            acts: vec![Vec::new(); end + 1],
            caches: vec![Cache::default(); end],
            grads,
            input_grad: Vec::new(),
            scratch: Vec::new(),
            dcol: Vec::new(),
            n: 0,
            mode: Mode::Eval,
        })
    }

    /// Values per sample of the network output.
    pub fn output_len(&self) -> usize {
        self.lens[self.end]
    }

    /// Values per sample of the input.
    pub fn input_len(&self) -> usize {
        self.lens[0]
    }

    /// Parameter gradients of the last [`Network::backward`], one entry per layer run
    /// (`None` for layers without weights).
    pub fn grads(&self) -> &[Option<ParamGrads>] {
        &self.grads
    }

    pub fn grads_mut(&mut self) -> &mut [Option<ParamGrads>] {
        &mut self.grads
    }

    /// Gradient w.r.t. the input after `backward(.., true)`.
    pub fn input_grad(&self) -> &[f32] {
        &self.input_grad
    }

    /// Runs the layers on `n` samples and returns the output (`n × output_len()`).
    /// `rng` draws the dropout masks in [`Mode::Train`] (unused in eval mode).
    /// `model` must be the one the network was built for (same layers, same shapes).
    pub fn forward(
        &mut self,
        model: &Model,
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
        if chain(model)?.len() < self.end {
            return Err(Error::bad_model(
                "the model has fewer layers than the network was built for",
            ));
        }
        self.n = n;
        self.mode = mode;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(input);
        for i in 0..self.end {
            let out_len = n * self.lens[i + 1];
            // Take the output buffer out so that the input can be borrowed alongside it.
            let mut y = std::mem::take(&mut self.acts[i + 1]);
            y.resize(out_len, 0.0);
            self.forward_layer(model, i, &mut y, mode, rng)?;
            self.acts[i + 1] = y;
        }
        Ok(&self.acts[self.end])
    }

    fn forward_layer(
        &mut self,
        model: &Model,
        i: usize,
        y: &mut [f32],
        mode: Mode,
        rng: &mut Rng,
    ) -> Result<()> {
        let n = self.n;
        let x = &self.acts[i];
        let (ins, outs) = (&self.shapes[i], &self.shapes[i + 1]);
        let (in_len, out_len) = (self.lens[i], self.lens[i + 1]);
        let cache = &mut self.caches[i];
        match chain(model)?[i] {
            layer @ Op::Dense { .. } => {
                let (w, b) = f32_weights(layer, i)?;
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
            layer @ Op::Conv2d {
                stride,
                padding,
                weight,
                ..
            } => {
                let (w, b) = f32_weights(layer, i)?;
                let g = ConvGeom::new(ins, outs, &weight.shape, *stride, [padding[0], padding[1]]);
                let (k, p) = (g.k(), g.p());
                cache.col.resize(n * k * p, 0.0);
                for s in 0..n {
                    let col = &mut cache.col[s * k * p..(s + 1) * k * p];
                    g.im2col(&x[s * in_len..(s + 1) * in_len], col);
                    let ys = &mut y[s * out_len..(s + 1) * out_len];
                    gemm(
                        g.oc,
                        p,
                        k,
                        MatRef::row_major(w, k),
                        MatRef::row_major(col, p),
                        ys,
                        p,
                        false,
                    );
                    for (c, plane) in ys.chunks_exact_mut(p).enumerate() {
                        plane.iter_mut().for_each(|v| *v += b[c]);
                    }
                }
            }
            Op::MaxPool2d { kernel, stride, .. } => {
                let (c, h, w) = (ins[0], ins[1], ins[2]);
                let (oh, ow) = (outs[1], outs[2]);
                cache.argmax.resize(n * out_len, 0);
                for s in 0..n {
                    let xs = &x[s * in_len..(s + 1) * in_len];
                    for ch in 0..c {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let mut best = f32::NEG_INFINITY;
                                let mut arg = 0usize;
                                for ky in 0..kernel[0] {
                                    let iy = oy * stride[0] + ky;
                                    for kx in 0..kernel[1] {
                                        let idx = (ch * h + iy) * w + ox * stride[1] + kx;
                                        // `>` keeps the first maximum: ties send the gradient to one input.
                                        if xs[idx] > best || kx + ky == 0 {
                                            best = xs[idx];
                                            arg = idx;
                                        }
                                    }
                                }
                                let o = s * out_len + (ch * oh + oy) * ow + ox;
                                y[o] = best;
                                cache.argmax[o] = arg as u32;
                            }
                        }
                    }
                }
            }
            Op::Relu => y
                .iter_mut()
                .zip(x.iter())
                .for_each(|(y, &x)| *y = x.max(0.0)),
            Op::Softmax => {
                y.copy_from_slice(x);
                for row in y.chunks_exact_mut(out_len) {
                    softmax_in_place(row);
                }
            }
            Op::Flatten => y.copy_from_slice(x),
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
            other => {
                return Err(Error::unsupported(format!("{} is not trainable until graph training lands", other.name())))
            }
        }
        Ok(())
    }

    /// Back-propagates `dout` (`n × output_len()`, the gradient of the loss w.r.t. the output
    /// of the last forward) and overwrites [`Network::grads`]. The gradient w.r.t. the input is
    /// only computed when `input_grad` is set (the first layer's `dx` is otherwise wasted work).
    pub fn backward(&mut self, model: &Model, dout: &[f32], input_grad: bool) -> Result<()> {
        let n = self.n;
        if n == 0 || dout.len() != n * self.lens[self.end] {
            return Err(Error::bad_input(format!(
                "backward got {} gradient values; the last forward produced {} (run forward first)",
                dout.len(),
                n * self.lens[self.end]
            )));
        }
        // `dy` holds the gradient w.r.t. the current layer's output, `dx` receives its input's.
        let mut dy = std::mem::take(&mut self.scratch);
        dy.clear();
        dy.extend_from_slice(dout);
        let mut dx = std::mem::take(&mut self.input_grad);
        for i in (0..self.end).rev() {
            let need_dx = i > 0 || input_grad;
            dx.resize(n * self.lens[i], 0.0);
            self.backward_layer(model, i, &dy, &mut dx, need_dx)?;
            std::mem::swap(&mut dy, &mut dx);
        }
        // After the last swap the input gradient sits in `dy`.
        if input_grad {
            self.input_grad = dy;
            self.scratch = dx;
        } else {
            self.input_grad = Vec::new();
            self.scratch = dy;
        }
        Ok(())
    }

    fn backward_layer(
        &mut self,
        model: &Model,
        i: usize,
        dy: &[f32],
        dx: &mut [f32],
        need_dx: bool,
    ) -> Result<()> {
        let n = self.n;
        let x = &self.acts[i];
        let (ins, outs) = (&self.shapes[i], &self.shapes[i + 1]);
        let (in_len, out_len) = (self.lens[i], self.lens[i + 1]);
        let cache = &self.caches[i];
        match chain(model)?[i] {
            layer @ Op::Dense { .. } => {
                let (w, _) = f32_weights(layer, i)?;
                let g = self.grads[i]
                    .as_mut()
                    .ok_or_else(|| Error::bad_model("gradient slot missing"))?;
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
                if need_dx {
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
            }
            layer @ Op::Conv2d {
                stride,
                padding,
                weight,
                ..
            } => {
                let (w, _) = f32_weights(layer, i)?;
                let geom = ConvGeom::new(ins, outs, &weight.shape, *stride, [padding[0], padding[1]]);
                let (k, p) = (geom.k(), geom.p());
                let g = self.grads[i]
                    .as_mut()
                    .ok_or_else(|| Error::bad_model("gradient slot missing"))?;
                g.bias.iter_mut().for_each(|v| *v = 0.0);
                self.dcol.resize(k * p, 0.0);
                for s in 0..n {
                    let dys = &dy[s * out_len..(s + 1) * out_len];
                    let col = &cache.col[s * k * p..(s + 1) * k * p];
                    gemm(
                        geom.oc,
                        k,
                        p,
                        MatRef::row_major(dys, p),
                        MatRef::transposed(col, p),
                        &mut g.weight,
                        k,
                        s > 0,
                    );
                    for (c, plane) in dys.chunks_exact(p).enumerate() {
                        g.bias[c] += plane.iter().sum::<f32>();
                    }
                    if need_dx {
                        gemm(
                            k,
                            p,
                            geom.oc,
                            MatRef::transposed(w, k),
                            MatRef::row_major(dys, p),
                            &mut self.dcol,
                            p,
                            false,
                        );
                        geom.col2im(&self.dcol, &mut dx[s * in_len..(s + 1) * in_len]);
                    }
                }
            }
            Op::MaxPool2d { .. } => {
                if need_dx {
                    dx.iter_mut().for_each(|v| *v = 0.0);
                    for s in 0..n {
                        let dxs = &mut dx[s * in_len..(s + 1) * in_len];
                        for o in 0..out_len {
                            dxs[cache.argmax[s * out_len + o] as usize] += dy[s * out_len + o];
                        }
                    }
                }
            }
            Op::Relu => {
                if need_dx {
                    dx.iter_mut()
                        .zip(dy.iter().zip(x))
                        .for_each(|(dx, (&dy, &x))| *dx = if x > 0.0 { dy } else { 0.0 });
                }
            }
            Op::Softmax => {
                if need_dx {
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
            Op::Flatten => {
                if need_dx {
                    dx.copy_from_slice(dy)
                }
            }
            Op::Dropout { .. } => {
                if need_dx {
                    if cache.mask.len() == dy.len() {
                        dx.iter_mut()
                            .zip(dy.iter().zip(&cache.mask))
                            .for_each(|(dx, (dy, m))| *dx = dy * m);
                    } else {
                        dx.copy_from_slice(dy);
                    }
                }
            }
            other => {
                return Err(Error::unsupported(format!("{} is not trainable until graph training lands", other.name())))
            }
        }
        Ok(())
    }
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

/// Shapes of one convolution, all validated by `Model::shapes` before we get here.
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
    pad: [usize; 2],
}

impl ConvGeom {
    fn new(
        ins: &[usize],
        outs: &[usize],
        wshape: &[usize],
        stride: [usize; 2],
        pad: [usize; 2],
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
        }
    }
    fn k(&self) -> usize {
        self.ic * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Calls `f(row, col_index, input_index)` for every in-bounds tap; padded taps are skipped.
    #[inline]
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize)) {
        let p = self.p();
        for c in 0..self.ic {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    for oy in 0..self.oh {
                        let iy = (oy * self.stride[0] + ky) as isize - self.pad[0] as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let base_in = (c * self.h + iy as usize) * self.w;
                        let base_col = row * p + oy * self.ow;
                        for ox in 0..self.ow {
                            let ix = (ox * self.stride[1] + kx) as isize - self.pad[1] as isize;
                            if ix >= 0 && ix < self.w as isize {
                                f(base_col + ox, base_in + ix as usize);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `col[(c·kh + ky)·kw + kx][oy·ow + ox] = x[c][oy·sh + ky − ph][ox·sw + kx − pw]` (0 outside).
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        if self.pad != [0, 0] {
            col.iter_mut().for_each(|v| *v = 0.0);
        }
        self.for_each_tap(|ci, xi| col[ci] = x[xi]);
    }

    /// The adjoint of `im2col`: sums each column entry back into the input it came from.
    fn col2im(&self, col: &[f32], dx: &mut [f32]) {
        dx.iter_mut().for_each(|v| *v = 0.0);
        self.for_each_tap(|ci, xi| dx[xi] += col[ci]);
    }
}
