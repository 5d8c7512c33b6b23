//! The inference plan: load a [`Model`] once, pack its weights for one [`KernelSet`], size a
//! buffer arena for `max_batch` samples, then [`Plan::run`] any number of times without
//! allocating.
//!
//! How a batch flows through a plan:
//!
//! ```text
//!  input (NCHW, n samples)
//!    │  chunks of ≤ max_batch samples
//!    ▼
//!  ┌── spatial stage, one sample at a time (activations HWC, stay in L1/L2) ──────────────┐
//!  │ [CHW→HWC if C>1] → Conv2d (im2col panel + GEMM, bias+ReLU fused) → MaxPool → ...     │
//!  └──────────────────────────────────────────────── result row s of the batch buffer ───┘
//!    ▼
//!  ┌── flat stage, whole chunk at once (weights are big: reuse them across the batch) ─────┐
//!  │ Dense (GEMV when 1 row, packed GEMM otherwise; bias+ReLU fused) → ReLU → Softmax      │
//!  └───────────────────────────────────────────────────────────────────────────────────────┘
//!    ▼
//!  output (NCHW order restored if the last activation was spatial)
//! ```
//!
//! Activations inside the spatial stage are HWC (channels innermost) rather than the model's
//! NCHW: a convolution then becomes `[pixels × (kh·kw·C)] · [(kh·kw·C) × out_c]`, whose
//! N = out_c (16, 32) fills the 16-wide micro-kernel tile, and a pooling window is a run of
//! contiguous channel vectors. The model's NCHW contract is kept at the edges: the input is
//! transposed on entry (free when C = 1), a Dense after a `Flatten` gets its weight rows
//! permuted at load time, and a spatial output is transposed back on exit.
//! Dropout is the identity at inference; Flatten only changes bookkeeping.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::kernels::generic::softmax_f32::{relu, softmax_rows};
use crate::kernels::{a_panel, APanel, AlignedBuf, MAX_MR, KernelSet, MatRef, PackedB, PoolGeom};
use crate::graph::Op;
use crate::model::{Model, Tensor, TensorData};

/// Largest arena (floats per batch buffer) a plan will size: 1 Gi floats would be 4 GiB.
const MAX_ARENA_FLOATS: usize = 1 << 28;

struct ConvOp {
    ic: usize,
    ih: usize,
    iw: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    oh: usize,
    ow: usize,
    /// Weights as `[(ky, kx, c) × out_c]`, packed in NR-column panels.
    w: PackedB,
    bias: Vec<f32>,
    relu: bool,
    /// Offset of tap (ky, kx, c) from a pixel's top-left input element, in im2col column order:
    /// the indirect kernel reads the input in place through these.
    offs: Vec<u32>,
}

impl ConvOp {
    fn k(&self) -> usize {
        self.kh * self.kw * self.ic
    }
}

enum SpatialOp {
    /// The input sample from the model's CHW to the plan's HWC (only needed when C > 1).
    ToHwc { c: usize, h: usize, w: usize },
    Conv(ConvOp),
    Pool(PoolGeom),
    Relu { len: usize },
}

enum FlatOp {
    Dense { w: PackedB, bias: Vec<f32>, relu: bool },
    Relu { len: usize },
    Softmax { len: usize },
}

impl FlatOp {
    fn out_len(&self) -> usize {
        match self {
            FlatOp::Dense { w, .. } => w.n(),
            FlatOp::Relu { len } | FlatOp::Softmax { len } => *len,
        }
    }
}

/// Where the current activation lives while a chunk runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cur {
    Input,
    Buf(usize),
}

/// A compiled model: packed weights, fused epilogues and a preallocated arena.
pub struct Plan {
    ks: KernelSet,
    input_len: usize,
    output_len: usize,
    max_batch: usize,
    spatial: Vec<SpatialOp>,
    /// Elements per sample after the spatial stage (its output row width in `fb`).
    spatial_out: usize,
    flat: Vec<FlatOp>,
    /// `Some((c, h, w))` when the final activation is stored HWC and must go out as CHW.
    out_perm: Option<(usize, usize, usize)>,
    /// Per-sample ping-pong buffers of the spatial stage.
    sp: [AlignedBuf; 2],
    /// Batch ping-pong buffers of the flat stage, `max_batch × widest activation`.
    fb: [AlignedBuf; 2],
    /// One packed A panel (`MR × largest K`), refilled for every panel of every GEMM.
    apanel: AlignedBuf,
    /// Output of [`Plan::predict`].
    pred: Vec<f32>,
}

/// Layout state of the activation while compiling.
#[derive(Clone, Copy)]
enum St {
    /// 3-D, still in the model's CHW order (nothing has touched it yet).
    Chw(usize, usize, usize),
    /// 3-D, HWC order (inside the spatial stage).
    Hwc(usize, usize, usize),
    /// 1-D; `perm` says the elements are a flattened HWC `(c, h, w)` instead of CHW.
    Flat { len: usize, perm: Option<(usize, usize, usize)> },
}

/// The weights as dense f32. Quantized and sparse tensors are expanded once at load
/// (`Tensor::to_f32_dense`): every stored variant runs today, and dedicated int8/n-bit/sparse
/// kernels can replace the expansion per layer later without changing the file.
fn f32_data<'a>(t: &'a Tensor, layer: usize, what: &str, kind: &str) -> Result<Cow<'a, [f32]>> {
    match &t.data {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        _ => t
            .to_f32_dense()
            .map(Cow::Owned)
            .map_err(|e| Error { kind: e.kind, message: format!("layer {layer} ({kind}) {what}: {}", e.message) }),
    }
}

fn padded_bias(b: &[f32], n_padded: usize) -> Vec<f32> {
    let mut v = vec![0.0; n_padded];
    v[..b.len()].copy_from_slice(b);
    v
}

impl Plan {
    /// Compile `model` for the best kernels of this CPU/build, with an arena for `max_batch`
    /// samples per chunk (larger `run` batches are processed in chunks).
    pub fn new(model: &Model, max_batch: usize) -> Result<Plan> {
        Plan::with_kernels(model, max_batch, KernelSet::best())
    }

    /// Like [`Plan::new`] with an explicit kernel set (tests compare SIMD with `generic`).
    pub fn with_kernels(model: &Model, max_batch: usize, ks: KernelSet) -> Result<Plan> {
        if max_batch == 0 {
            return Err(Error::bad_input("max_batch is 0; a plan needs room for at least 1 sample (use 1 for single predictions)"));
        }
        model.validate()?;
        let shapes = model.shapes()?;
        let input_shape = &model.meta.input_shape;
        let input_len = model.input_len();

        let mut spatial = Vec::new();
        let mut flat: Vec<FlatOp> = Vec::new();
        let mut st = match input_shape[..] {
            [c, h, w] => St::Chw(c, h, w),
            _ => St::Flat { len: input_len, perm: None },
        };
        // Largest per-sample activation that lands in a spatial buffer, and largest K of a GEMM.
        let mut sp_max = 0usize;
        let mut k_max = 0usize;
        let mut spatial_out = 0usize;
        // Until the graph executor lands (issue 9), this plan runs chains of the 1.0 layers.
        let layers: Vec<&Op> = model.graph.as_sequential().ok_or_else(|| {
            Error::unsupported("this CPU plan runs sequential models only; branching graphs need the graph runtime")
        })?;
        let mut i = 0;
        while i < layers.len() {
            let layer = layers[i];
            // A ReLU after this layer (Dropouts in between are identities) fuses into its epilogue.
            let mut next = i + 1;
            while matches!(layers.get(next), Some(Op::Dropout { .. })) {
                next += 1;
            }
            let fuse_relu = matches!(layers.get(next), Some(Op::Relu));
            let wrong_rank = |what: &str| {
                Error::bad_model(format!("layer {i} ({}): needs a {what} input", layer.name()))
            };
            match layer {
                Op::Dense { weight, bias } => {
                    let St::Flat { len, perm } = st else { return Err(wrong_rank("flat")) };
                    let w = &*f32_data(weight, i, "weight", "Dense")?;
                    let b = &*f32_data(bias, i, "bias", "Dense")?;
                    let (fin, fout) = (weight.shape[0], weight.shape[1]);
                    debug_assert_eq!(fin, len);
                    let wmat = match perm {
                        // Row f (CHW index) of W must meet element g (HWC index) of the activation.
                        Some((c, h, wd)) => {
                            let mut re = vec![0.0f32; w.len()];
                            for ch in 0..c {
                                for p in 0..h * wd {
                                    let f = ch * h * wd + p;
                                    let g = p * c + ch;
                                    re[g * fout..(g + 1) * fout].copy_from_slice(&w[f * fout..(f + 1) * fout]);
                                }
                            }
                            ks.for_width(fout).pack_b(fin, fout, MatRef::row_major(&re, fout))
                        }
                        None => ks.for_width(fout).pack_b(fin, fout, MatRef::row_major(w, fout)),
                    };
                    let bias = padded_bias(b, wmat.n_padded());
                    k_max = k_max.max(fin);
                    flat.push(FlatOp::Dense { w: wmat, bias, relu: fuse_relu });
                    st = St::Flat { len: fout, perm: None };
                    i = if fuse_relu { next + 1 } else { i + 1 };
                    continue;
                }
                Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
                    if *dilation != [1, 1] || *groups != 1 || padding[0] != padding[2] || padding[1] != padding[3] {
                        return Err(Error::unsupported(format!("layer {i} (Conv2d): dilation, groups and asymmetric padding need the graph runtime")));
                    }
                    let padding = &[padding[0], padding[1]];
                    let (ic, ih, iw) = match st {
                        St::Chw(c, h, w) => {
                            if c > 1 {
                                spatial.push(SpatialOp::ToHwc { c, h, w });
                                sp_max = sp_max.max(c * h * w);
                            }
                            (c, h, w)
                        }
                        St::Hwc(c, h, w) => (c, h, w),
                        St::Flat { .. } => return Err(wrong_rank("[C, H, W]")),
                    };
                    let w = &*f32_data(weight, i, "weight", "Conv2d")?;
                    let b = &*f32_data(bias, i, "bias", "Conv2d")?;
                    let (oc, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3]);
                    let (oh, ow) = (shapes[i + 1][1], shapes[i + 1][2]);
                    // OIHW → [(ky, kx, c) × oc], the row order of the HWC im2col panel.
                    let k = kh * kw * ic;
                    let mut re = vec![0.0f32; k * oc];
                    for o in 0..oc {
                        for c in 0..ic {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    re[((ky * kw + kx) * ic + c) * oc + o] = w[((o * ic + c) * kh + ky) * kw + kx];
                                }
                            }
                        }
                    }
                    let packed = ks.for_width(oc).pack_b(k, oc, MatRef::row_major(&re, oc));
                    let mut offs = Vec::with_capacity(k);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for c in 0..ic {
                                // < ih·iw·ic <= MAX_ACTIVATION_ELEMS (2^24): fits u32.
                                offs.push(((ky * iw + kx) * ic + c) as u32);
                            }
                        }
                    }
                    let bias = padded_bias(b, packed.n_padded());
                    k_max = k_max.max(k);
                    sp_max = sp_max.max(oc * oh * ow);
                    spatial_out = oc * oh * ow;
                    spatial.push(SpatialOp::Conv(ConvOp {
                        ic,
                        ih,
                        iw,
                        oc,
                        kh,
                        kw,
                        sh: stride[0],
                        sw: stride[1],
                        ph: padding[0],
                        pw: padding[1],
                        oh,
                        ow,
                        w: packed,
                        bias,
                        relu: fuse_relu,
                        offs,
                    }));
                    st = St::Hwc(oc, oh, ow);
                    i = if fuse_relu { next + 1 } else { i + 1 };
                    continue;
                }
                Op::MaxPool2d { kernel, stride, padding, ceil_mode } => {
                    if *padding != [0; 4] || *ceil_mode {
                        return Err(Error::unsupported(format!("layer {i} (MaxPool2d): padding and ceil mode need the graph runtime")));
                    }
                    let (c, h, w) = match st {
                        St::Chw(c, h, w) => {
                            if c > 1 {
                                spatial.push(SpatialOp::ToHwc { c, h, w });
                                sp_max = sp_max.max(c * h * w);
                            }
                            (c, h, w)
                        }
                        St::Hwc(c, h, w) => (c, h, w),
                        St::Flat { .. } => return Err(wrong_rank("[C, H, W]")),
                    };
                    let g = PoolGeom::new(c, h, w, *kernel, *stride).ok_or_else(|| {
                        Error::bad_model(format!("layer {i} (MaxPool2d): window {kernel:?} does not fit {c}x{h}x{w}"))
                    })?;
                    sp_max = sp_max.max(g.out_len());
                    spatial_out = g.out_len();
                    spatial.push(SpatialOp::Pool(g));
                    st = St::Hwc(c, g.oh, g.ow);
                }
                Op::Relu => match st {
                    St::Chw(c, h, w) | St::Hwc(c, h, w) => {
                        let len = c * h * w;
                        sp_max = sp_max.max(len);
                        spatial_out = len;
                        spatial.push(SpatialOp::Relu { len });
                    }
                    St::Flat { len, .. } => flat.push(FlatOp::Relu { len }),
                },
                Op::Softmax => {
                    let St::Flat { len, .. } = st else { return Err(wrong_rank("flat")) };
                    flat.push(FlatOp::Softmax { len });
                }
                Op::Flatten => {
                    st = match st {
                        St::Chw(c, h, w) => St::Flat { len: c * h * w, perm: None },
                        St::Hwc(c, h, w) => {
                            St::Flat { len: c * h * w, perm: (c > 1 && h * w > 1).then_some((c, h, w)) }
                        }
                        flat_state => flat_state,
                    };
                }
                Op::Dropout { .. } | Op::Identity => {}
                other => {
                    return Err(Error::unsupported(format!(
                        "layer {i} ({}): this op needs the graph runtime",
                        other.name()
                    )))
                }
            }
            i += 1;
        }
        let out_perm = match st {
            St::Hwc(c, h, w) if c > 1 && h * w > 1 => Some((c, h, w)),
            St::Flat { perm, .. } => perm,
            _ => None,
        };
        let output_len = shapes.last().map(|s| s.iter().product()).unwrap_or(input_len);

        // Width of the batch buffers: whatever the flat stage reads or writes there.
        let mut fb_width = if spatial.is_empty() { 0 } else { spatial_out };
        if spatial.is_empty() && matches!(flat.first(), Some(FlatOp::Relu { .. } | FlatOp::Softmax { .. })) {
            fb_width = input_len; // copied in before the in-place op
        }
        for op in &flat {
            fb_width = fb_width.max(op.out_len());
        }
        // Memory bounded by what the model stores (budget.rs): the per-sample buffers must fit,
        // and the batch buffers get at most as many samples as the budget allows.
        crate::budget::chunk(model, 2 * sp_max, 1)?;
        let max_batch = crate::budget::chunk(model, 2 * fb_width, max_batch)?;
        let fb_len = max_batch
            .checked_mul(fb_width)
            .filter(|&l| l <= MAX_ARENA_FLOATS)
            .ok_or_else(|| {
                Error::bad_input(format!(
                    "max_batch {max_batch} × {fb_width} activations per sample exceeds the arena limit of \
                     {MAX_ARENA_FLOATS} floats; use a smaller max_batch (run() still accepts any batch, in chunks)"
                ))
            })?;
        Ok(Plan {
            ks,
            input_len,
            output_len,
            max_batch,
            spatial,
            spatial_out,
            flat,
            out_perm,
            sp: [AlignedBuf::zeros(sp_max), AlignedBuf::zeros(sp_max)],
            fb: [AlignedBuf::zeros(fb_len), AlignedBuf::zeros(fb_len)],
            // Room for the tallest tile of any set an op may be handed to (`for_width`).
            apanel: AlignedBuf::zeros(MAX_MR.max(ks.mr()) * k_max),
            pred: vec![0.0; output_len],
        })
    }

    /// Floats per input sample (product of the model's input shape).
    pub fn input_len(&self) -> usize {
        self.input_len
    }
    /// Floats per output sample.
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    /// Samples processed per chunk; `run` accepts more and chunks them.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
    /// The kernel set in use: `"x86_64-avx512"`, `"x86_64-avx2-fma"`, `"wasm-simd128"` or `"generic"`.
    pub fn kernel_name(&self) -> &'static str {
        self.ks.name()
    }

    /// Run `n >= 1` samples (`input`: `n × input_len` floats, NCHW) into `out`
    /// (`n × output_len`). Allocates nothing. Rejects wrong lengths and NaN/infinite inputs with
    /// a `BadInput` error before computing anything, so `out` is untouched on error.
    pub fn run(&mut self, input: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        if n == 0 {
            return Err(Error::bad_input("batch size n is 0; pass at least one sample"));
        }
        let (il, ol) = (self.input_len, self.output_len);
        match n.checked_mul(il) {
            Some(want) if want == input.len() => {}
            _ => {
                return Err(Error::bad_input(format!(
                    "input has {} values but {n} samples of {il} values each need {}; check the batch size and \
                     the input shape ({il} = the model's input shape flattened)",
                    input.len(),
                    n.saturating_mul(il)
                )))
            }
        }
        match n.checked_mul(ol) {
            Some(want) if want == out.len() => {}
            _ => {
                return Err(Error::bad_input(format!(
                    "output buffer has {} values but {n} samples of {ol} outputs need {}",
                    out.len(),
                    n.saturating_mul(ol)
                )))
            }
        }
        if let Some(bad) = input.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_input(format!(
                "input value at index {bad} (sample {}, element {}) is {}; inputs must be finite numbers \
                 (check the preprocessing, e.g. a division by zero during normalisation)",
                bad / il,
                bad % il,
                input[bad]
            )));
        }
        let mut done = 0;
        while done < n {
            let nb = (n - done).min(self.max_batch);
            self.run_chunk(&input[done * il..(done + nb) * il], nb, &mut out[done * ol..(done + nb) * ol]);
            done += nb;
        }
        Ok(())
    }

    /// One sample: `input` holds `input_len` floats; returns the `output_len` outputs (for a
    /// classifier ending in Softmax, the class probabilities). Allocates nothing.
    pub fn predict(&mut self, input: &[f32]) -> Result<&[f32]> {
        // Take the buffer out so `run` can borrow `self` mutably; `take` leaves an empty Vec,
        // which does not allocate.
        let mut pred = std::mem::take(&mut self.pred);
        let r = self.run(input, 1, &mut pred);
        self.pred = pred;
        r.map(|()| &self.pred[..])
    }

    /// Runs `nb <= max_batch` validated samples.
    fn run_chunk(&mut self, input: &[f32], nb: usize, out: &mut [f32]) {
        let Plan { ks, input_len, output_len, spatial, spatial_out, flat, out_perm, sp, fb, apanel, .. } = self;
        let (il, ks) = (*input_len, *ks);
        let mut cur = Cur::Input;
        let mut width = il;
        if !spatial.is_empty() {
            let so = *spatial_out;
            for s in 0..nb {
                let x = &input[s * il..(s + 1) * il];
                let res = run_spatial(ks, spatial, x, sp, apanel.as_mut_slice());
                let src = match res {
                    Cur::Input => x,
                    Cur::Buf(b) => &sp[b].as_slice()[..so],
                };
                fb[0].as_mut_slice()[s * so..(s + 1) * so].copy_from_slice(src);
            }
            cur = Cur::Buf(0);
            width = so;
        }
        for op in flat.iter() {
            match op {
                FlatOp::Dense { w, bias, relu } => {
                    let (k, n) = (w.k(), w.n());
                    let dst_idx = if cur == Cur::Buf(0) { 1 } else { 0 };
                    let (src, dst) = src_dst(input, fb, cur, dst_idx);
                    let src = &src[..nb * k];
                    let dst = &mut dst[..nb * n];
                    // The set the weights were packed for (same choice as at load time).
                    let ks = ks.for_width(n);
                    if nb == 1 {
                        ks.gemv_unchecked(src, w.data(), k, n, Some(bias), *relu, dst);
                    } else {
                        let a = MatRef::row_major(src, k);
                        let mr = ks.mr();
                        ks.drive(
                            nb,
                            n,
                            k,
                            apanel.as_mut_slice(),
                            |row0, panel| a_panel(nb, k, mr, row0, &a, panel),
                            w.data(),
                            Some(bias),
                            *relu,
                            dst,
                            n,
                            false,
                        );
                    }
                    cur = Cur::Buf(dst_idx);
                    width = n;
                }
                FlatOp::Relu { len } | FlatOp::Softmax { len } => {
                    let len = *len;
                    if cur == Cur::Input {
                        fb[0].as_mut_slice()[..nb * len].copy_from_slice(&input[..nb * len]);
                        cur = Cur::Buf(0);
                    }
                    let Cur::Buf(b) = cur else { unreachable!("copied into a buffer above") };
                    let x = &mut fb[b].as_mut_slice()[..nb * len];
                    if matches!(op, FlatOp::Relu { .. }) {
                        relu(x);
                    } else {
                        softmax_rows(x, len);
                    }
                    width = len;
                }
            }
        }
        debug_assert_eq!(width, *output_len);
        let ol = *output_len;
        let res: &[f32] = match cur {
            Cur::Input => &input[..nb * ol],
            Cur::Buf(b) => &fb[b].as_slice()[..nb * ol],
        };
        match *out_perm {
            None => out.copy_from_slice(res),
            Some((c, h, w)) => {
                for (o, r) in out.chunks_exact_mut(ol).zip(res.chunks_exact(ol)) {
                    for p in 0..h * w {
                        for ch in 0..c {
                            o[ch * h * w + p] = r[p * c + ch];
                        }
                    }
                }
            }
        }
    }
}

/// The current activation (the chunk's input or batch buffer `cur`) and batch buffer `dst`.
fn src_dst<'a>(input: &'a [f32], fb: &'a mut [AlignedBuf; 2], cur: Cur, dst: usize) -> (&'a [f32], &'a mut [f32]) {
    let [f0, f1] = fb;
    match (cur, dst) {
        (Cur::Input, 0) => (input, f0.as_mut_slice()),
        (Cur::Input, _) => (input, f1.as_mut_slice()),
        (Cur::Buf(0), _) => (f0.as_slice(), f1.as_mut_slice()),
        (Cur::Buf(_), _) => (f1.as_slice(), f0.as_mut_slice()),
    }
}

/// Runs the spatial ops on one sample; returns where the result is.
fn run_spatial(ks: KernelSet, ops: &[SpatialOp], x: &[f32], sp: &mut [AlignedBuf; 2], apanel: &mut [f32]) -> Cur {
    let mut cur = Cur::Input;
    for op in ops {
        let dst_idx = if cur == Cur::Buf(0) { 1 } else { 0 };
        let [s0, s1] = &mut *sp;
        let (src, dst): (&[f32], &mut [f32]) = match (cur, dst_idx) {
            (Cur::Input, 0) => (x, s0.as_mut_slice()),
            (Cur::Buf(0), _) => (s0.as_slice(), s1.as_mut_slice()),
            _ => (s1.as_slice(), s0.as_mut_slice()),
        };
        match op {
            SpatialOp::ToHwc { c, h, w } => {
                let (c, hw) = (*c, h * w);
                for ch in 0..c {
                    for p in 0..hw {
                        dst[p * c + ch] = src[ch * hw + p];
                    }
                }
            }
            SpatialOp::Conv(g) => {
                // The set the weights were packed for (same choice as at load time).
                let ks = ks.for_width(g.oc);
                let (m, k, mr) = (g.oh * g.ow, g.k(), ks.mr());
                ks.drive(
                    m,
                    g.oc,
                    k,
                    apanel,
                    |row0, panel| conv_panel(g, src, row0, mr, panel),
                    g.w.data(),
                    Some(&g.bias),
                    g.relu,
                    &mut dst[..m * g.oc],
                    g.oc,
                    false,
                );
            }
            SpatialOp::Pool(g) => ks.maxpool_hwc(src, g, dst),
            SpatialOp::Relu { len } => {
                dst[..*len].copy_from_slice(&src[..*len]);
                relu(&mut dst[..*len]);
            }
        }
        cur = Cur::Buf(dst_idx);
    }
    cur
}

/// The A panel for output pixels `row0..row0+MR`: indirect (read in place through per-pixel
/// pointers and the tap offsets) when no pixel's window touches the padding, else im2col.
fn conv_panel<'a>(g: &'a ConvOp, src: &[f32], row0: usize, mr: usize, dst: &mut [f32]) -> APanel<'a> {
    let m = g.oh * g.ow;
    let last_off = g.offs.last().map_or(0, |&o| o as usize);
    let mut rows = [std::ptr::null(); MAX_MR];
    for (r, row) in rows.iter_mut().enumerate().take(mr) {
        // Rows past the last pixel repeat the last one: computed, then discarded by the tile.
        let pix = (row0 + r).min(m - 1);
        let (oy, ox) = (pix / g.ow, pix % g.ow);
        let (y0, x0) = (oy * g.sh, ox * g.sw);
        if y0 < g.ph || x0 < g.pw || y0 - g.ph + g.kh > g.ih || x0 - g.pw + g.kw > g.iw {
            return im2col_panel(g, src, row0, mr, dst);
        }
        let at = ((y0 - g.ph) * g.iw + (x0 - g.pw)) * g.ic;
        // Every offset is <= last_off, so this check covers the whole window.
        assert!(at + last_off < src.len(), "conv window outside the input");
        // SAFETY: in bounds by the assertion above.
        *row = unsafe { src.as_ptr().add(at) };
    }
    APanel::Indirect { rows, offs: &g.offs }
}

/// Fill one A panel (`MR` rows of `K` values, row-major) of the im2col matrix of an HWC
/// sample: row r is output pixel `row0 + r`, column `(ky·kw + kx)·C + c` the input under kernel
/// tap (ky, kx), channel c. In HWC the taps kx = 0..kw of one kernel row are `kw·C` contiguous
/// floats, so a row is `kh` slice copies (fewer where padding cuts in, zero-filled).
fn im2col_panel<'a>(g: &ConvOp, src: &[f32], row0: usize, mr: usize, dst: &mut [f32]) -> APanel<'a> {
    let m = g.oh * g.ow;
    let (ic, k) = (g.ic, g.k());
    let run = g.kw * ic;
    for (r, row) in dst[..mr * k].chunks_exact_mut(k).enumerate() {
        let pix = row0 + r;
        if pix >= m {
            row.fill(0.0);
            continue;
        }
        let (oy, ox) = (pix / g.ow, pix % g.ow);
        // Valid kx range: 0 <= ox*sw + kx - pw < iw.
        let x0 = ox * g.sw; // input column of kx = 0, plus pw
        let kx_lo = g.pw.saturating_sub(x0).min(g.kw);
        let kx_hi = (g.iw + g.pw).saturating_sub(x0).min(g.kw).max(kx_lo);
        for (ky, seg) in row.chunks_exact_mut(run).enumerate() {
            match (oy * g.sh + ky).checked_sub(g.ph).filter(|&y| y < g.ih) {
                Some(iy) if kx_hi > kx_lo => {
                    zero_short(&mut seg[..kx_lo * ic]);
                    let ix = x0 + kx_lo - g.pw;
                    let from = (iy * g.iw + ix) * ic;
                    copy_short(&mut seg[kx_lo * ic..kx_hi * ic], &src[from..from + (kx_hi - kx_lo) * ic]);
                    zero_short(&mut seg[kx_hi * ic..]);
                }
                _ => zero_short(seg),
            }
        }
    }
    APanel::Packed
}

/// `dst.copy_from_slice(src)` without a `memmove` call for short runs: a 1-channel 5×5 conv
/// copies runs of 5 floats, where the call costs more than the copy.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    if dst.len() > 32 {
        return dst.copy_from_slice(src);
    }
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (d4, s4) in (&mut d).zip(&mut s) {
        if let (Ok(d4), Ok(s4)) = (<&mut [f32; 4]>::try_from(d4), <&[f32; 4]>::try_from(s4)) {
            *d4 = *s4;
        }
    }
    for (dv, &sv) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *dv = sv;
    }
}

/// `dst.fill(0.0)` without a `memset` call for short (often empty) runs.
#[inline(always)]
fn zero_short(dst: &mut [f32]) {
    if dst.len() > 32 {
        return dst.fill(0.0);
    }
    for v in dst {
        *v = 0.0;
    }
}
