//! One lowering for every backend: a [`Graph`] becomes a [`Program`], a flat list of kernel
//! calls over numbered buffer slots. The CPU [`Plan`](crate::plan::Plan) and the WebGPU engine
//! (`wasm/src/gpu/`) both execute a `Program`; neither looks at the graph, so they cannot drift
//! apart, and a backend that lacks a [`Kernel`] fails at load naming it.
//!
//! ```text
//!  Graph (NCHW semantics, BatchNorm, Dropout, Flatten, ...)
//!    │ lower(): drop nodes the output does not depend on, drop identities,
//!    │          fold BatchNorm into the preceding Conv2d/Dense (else an Affine step),
//!    │          fuse activations into the producer's epilogue,
//!    │          choose layouts (3-D activations are HWC: channels innermost),
//!    │          permute weights once, assign slots by liveness
//!    ▼
//!  Program { slots: [floats per sample], steps: [Step { kernel, inputs, output }] }
//! ```
//!
//! **Folding and fusion** need the producer's value to have exactly one reader (looking through
//! Dropout/Identity) and not to be the graph output: a BatchNorm folds into a Conv2d or Dense
//! without an activation yet (`W·s`, `(b − mean)·s + beta`, `s = gamma / sqrt(var + eps)` in
//! f64); an activation (ReLU, Clip, LeakyReLU, Sigmoid, Tanh, HardSwish) fuses into a Dense,
//! Conv2d, Affine or Binary step. Otherwise each becomes a step of its own.
//!
//! **Slots.** Every step output is a new buffer; Flatten, Reshape (when the order allows),
//! Dropout and Identity reuse their input's buffer. Buffers get slots by liveness: a slot
//! returns to the free list once the last reader of every value in it has run, a new buffer
//! takes the smallest free slot that fits (else grows the largest free one, else a new slot),
//! and the elementwise kernels (`Act`, `Affine`, `Binary` over input 0, `Softmax`) write over
//! their dying input. The input slot is never written or reused.
//!
//! **Layouts.** Inside a program every 3-D activation is stored HWC (channels innermost): a
//! convolution is then `[pixels × (kh·kw·C)] · [(kh·kw·C) × out_c]` and a pooling window is a
//! run of contiguous channel vectors. The model's NCHW contract is kept at the edges by
//! explicit [`Kernel::Transpose`] steps (none when C = 1), and a `Dense` after a `Flatten` of an
//! HWC value gets its weight rows permuted here, once.
//!
//! **Sparse weights.** A Dense or one-group Conv2d whose final weight is at most
//! [`SPARSE_MAX_DENSITY`] non-zero becomes [`Kernel::SparseDense`] / [`Kernel::SparseConv2d`]
//! (the weight compressed by output column); a backend without sparse kernels runs
//! [`Kernel::densified`]. Why that threshold: "Sparse kernels" in `core/kernels/src/KERNELS.md`.
//! A sparse Dense whose non-zeros sit in `1 × bw` blocks along the outputs (pruned with
//! `--structure block:1x16`, say) becomes [`Kernel::BlockSparseDense`] instead: same weight,
//! plus the block width its batch-1 kernel reads ("Block-sparse batch 1" in KERNELS.md).
//!
//! **Batches.** Slot sizes are per sample; a backend allocates `slots[i] × batch` floats (or
//! runs per-sample steps one sample at a time: the CPU executor, `exec.rs`, re-derives the
//! values from the steps and keeps most of them per sample). Every kernel works on `n` samples
//! laid out one after another.

use crate::error::Result;
use crate::graph::{Graph, Op};
pub use mdeploy_kernels::quant::{QOut, QParams, Requant};

/// Index into [`Program::slots`].
pub type Slot = usize;

pub use mdeploy_kernels::geometry::{Act, BinOp, PoolKind, Window};
pub use mdeploy_kernels::SparseW;
pub use mdeploy_kernels::BLOCK_WIDTHS;

/// A sparse Dense weight is lowered to [`Kernel::BlockSparseDense`] with the widest block width
/// `bw` (16, 8, 4) at which its non-empty `1 × bw` blocks are at least this full
/// ([`mdeploy_kernels::block_fill`]). Block-pruned weights are ~1.0 (every kept block full);
/// unstructured 90 % sparsity gives 0.12 at 16 and 0.29 at 4, and stays on the scatter kernel.
/// Above 0.5 so that `1 × 8` blocks (whose 16-wide blocks are often half full) keep width 8.
pub const BLOCK_MIN_FILL: f64 = 0.75;

/// A Dense or (single-group) Conv2d weight with at most this fraction of non-zeros is lowered
/// to [`Kernel::SparseDense`] / [`Kernel::SparseConv2d`]; denser ones stay dense. Measured on
/// this machine's kernels: see "Sparse kernels" in `core/kernels/src/KERNELS.md`.
pub const SPARSE_MAX_DENSITY: f64 = 0.12;

/// One kernel call. Weights are already in the layout the kernel reads (permuted, BatchNorm
/// folded in); backends may repack them (the CPU packs NR-column panels) but never reinterpret.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// Per sample: `[c, hw]` (CHW) → `[hw, c]` (HWC) when `to_hwc`, else back.
    Transpose { c: usize, hw: usize, to_hwc: bool },
    /// `y[n × out] = act(x[n × k] · W[k × out] + b)`, `weight` row-major `[k, out]`.
    Dense { k: usize, out: usize, weight: Vec<f32>, bias: Vec<f32>, act: Act },
    /// HWC in, HWC out (`out_c` channels), grouped: group `g` reads input channels
    /// `g·c/groups ..` and writes output channels `g·out_c/groups ..`. `weight` is, per group,
    /// the `[(ky, kx, ci) × oc_g]` matrix (row-major), groups one after another; `bias [out_c]`.
    Conv2d { win: Window, out_c: usize, groups: usize, weight: Vec<f32>, bias: Vec<f32>, act: Act },
    /// `Dense` whose weight is mostly zeros: the same `[k × out]` matrix, by output column
    /// (`weight.rows == k`, `weight.cols == out`). A backend may run it densely
    /// ([`Kernel::densified`]).
    SparseDense { k: usize, out: usize, weight: SparseW, bias: Vec<f32>, act: Act },
    /// `SparseDense` whose non-zeros sit in `1 × block` tiles along the outputs (`block` in
    /// [`BLOCK_WIDTHS`]): one input row × `block` consecutive outputs, starting at multiples of
    /// `block`. The same `weight`; the CPU runs batch 1 with whole-block vector updates.
    BlockSparseDense { k: usize, out: usize, block: usize, weight: SparseW, bias: Vec<f32>, act: Act },
    /// `Conv2d` with one group whose weight is mostly zeros: the `[(ky, kx, c) × out_c]`
    /// matrix by output channel (`weight.rows == kh·kw·c`, `weight.cols == out_c`).
    SparseConv2d { win: Window, out_c: usize, weight: SparseW, bias: Vec<f32>, act: Act },
    /// HWC pooling; `win.dh = win.dw = 1`. Padded cells never win a max.
    Pool { kind: PoolKind, win: Window },
    /// HWC `[hw, c]` → `[c]`: the mean over the pixels.
    GlobalAvgPool { c: usize, hw: usize },
    /// `y = act(a op b)` over `len` elements; `b_per_channel = Some(c)` when `b` holds only
    /// `c` values broadcast over the pixels (HWC: element `i` uses `b[i % c]`).
    Binary { op: BinOp, len: usize, b_per_channel: Option<usize>, act: Act },
    /// HWC channel concatenation of the inputs (in order), `channels[i]` channels each over
    /// `hw` pixels; flat inputs have `hw = 1`.
    Concat { channels: Vec<usize>, hw: usize },
    /// `y = act(x)` over `len` elements (may run in place: input slot = output slot).
    Act { act: Act, len: usize },
    /// Per-channel `y = x · scale + shift` (a BatchNorm that had no producer to fold into),
    /// HWC or flat (`c` = features, `hw` = 1).
    Affine { c: usize, hw: usize, scale: Vec<f32>, shift: Vec<f32>, act: Act },
    /// Softmax over each sample's `len` values (may run in place).
    Softmax { len: usize },
    /// `y = x` (a graph output that is the input, or a value that must be materialised).
    Copy { len: usize },
    /// `y = q.dequantize(q.quantize(x))` over `len` values (may run in place): a value put on
    /// its uint8 grid (`core/runtime/QUANT.md`).
    Quantize { len: usize, q: QParams },
    /// Integer Dense: `x` (flat, on `input`'s grid) is quantized to u8, `acc = x_q · W` on the
    /// int8 kernels (exact i32), then `out` turns `acc + bias[c]` into f32. `weight` row-major
    /// `[k, out]` in −127..=127; `bias` already holds `− zp · Σ_k W[k][c]`.
    QDense { k: usize, out: usize, weight: Vec<i8>, bias: Vec<i32>, input: QParams, epi: QOut },
    /// Integer Conv2d (one group), HWC in and out, as `QDense` over the im2col rows; padded
    /// cells are the input's zero point. `weight` is `[(ky, kx, ci) × out_c]`.
    QConv2d { win: Window, out_c: usize, weight: Vec<i8>, bias: Vec<i32>, input: QParams, epi: QOut },
    /// `y = +1` where `x >= 0`, else −1, over `len` values (may run in place): a binary
    /// layer's input (`Op::Sign`).
    Sign { len: usize },
    /// Binary Dense (`core/runtime/QUANT.md`, "Binary"): `x` (flat) binarized by sign, `dot =
    /// Σ_k ±1 · ±1` on the XOR + popcount kernels (exact), `y = act(alpha[c] · dot + bias[c])`
    /// in f32. `plus` row-major `[k, out]`, true = +1.
    BDense { k: usize, out: usize, plus: Vec<bool>, alpha: Vec<f32>, bias: Vec<f32>, act: Act },
}

impl Kernel {
    /// May the kernel write its result over input 0 (elementwise, same length)? The lowering
    /// assigns such slots, and the executor's program check accepts nothing else in place.
    pub fn may_run_in_place(&self) -> bool {
        matches!(
            self,
            Kernel::Act { .. }
                | Kernel::Affine { .. }
                | Kernel::Binary { .. }
                | Kernel::Softmax { .. }
                | Kernel::Quantize { .. }
                | Kernel::Sign { .. }
        )
    }

    /// The name backends use in "not supported" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Transpose { .. } => "Transpose",
            Kernel::Dense { .. } => "Dense",
            Kernel::Conv2d { .. } => "Conv2d",
            Kernel::SparseDense { .. } => "SparseDense",
            Kernel::BlockSparseDense { .. } => "BlockSparseDense",
            Kernel::SparseConv2d { .. } => "SparseConv2d",
            Kernel::Pool { kind: PoolKind::Max, .. } => "MaxPool2d",
            Kernel::Pool { .. } => "AvgPool2d",
            Kernel::GlobalAvgPool { .. } => "GlobalAvgPool",
            Kernel::Binary { op: BinOp::Add, .. } => "Add",
            Kernel::Binary { .. } => "Mul",
            Kernel::Concat { .. } => "Concat",
            Kernel::Act { .. } => "Activation",
            Kernel::Affine { .. } => "Affine",
            Kernel::Softmax { .. } => "Softmax",
            Kernel::Copy { .. } => "Copy",
            Kernel::Quantize { .. } => "Quantize",
            Kernel::QDense { .. } => "QDense",
            Kernel::QConv2d { .. } => "QConv2d",
            Kernel::Sign { .. } => "Sign",
            Kernel::BDense { .. } => "BDense",
        }
    }
}

impl Kernel {
    /// Floats per sample the kernel writes.
    pub fn out_len(&self) -> usize {
        match self {
            Kernel::Transpose { c, hw, .. } => c * hw,
            Kernel::Dense { out, .. }
            | Kernel::SparseDense { out, .. }
            | Kernel::BlockSparseDense { out, .. }
            | Kernel::QDense { out, .. }
            | Kernel::BDense { out, .. } => *out,
            Kernel::Sign { len } => *len,
            Kernel::Conv2d { win, out_c, .. } | Kernel::SparseConv2d { win, out_c, .. } | Kernel::QConv2d { win, out_c, .. } => {
                win.oh * win.ow * out_c
            }
            Kernel::Quantize { len, .. } => *len,
            Kernel::Pool { win, .. } => win.c * win.oh * win.ow,
            Kernel::GlobalAvgPool { c, .. } => *c,
            Kernel::Binary { len, .. } | Kernel::Act { len, .. } | Kernel::Softmax { len } | Kernel::Copy { len } => *len,
            Kernel::Concat { channels, hw } => channels.iter().sum::<usize>() * hw,
            Kernel::Affine { c, hw, .. } => c * hw,
        }
    }

    /// Floats per sample the kernel reads from each of its inputs, in order.
    pub fn in_lens(&self) -> Vec<usize> {
        match self {
            Kernel::Dense { k, .. }
            | Kernel::SparseDense { k, .. }
            | Kernel::BlockSparseDense { k, .. }
            | Kernel::QDense { k, .. }
            | Kernel::BDense { k, .. } => vec![*k],
            Kernel::Conv2d { win, .. } | Kernel::SparseConv2d { win, .. } | Kernel::QConv2d { win, .. } | Kernel::Pool { win, .. } => {
                vec![win.c * win.h * win.w]
            }
            Kernel::GlobalAvgPool { c, hw } => vec![c * hw],
            Kernel::Binary { len, b_per_channel, .. } => vec![*len, b_per_channel.unwrap_or(*len)],
            Kernel::Concat { channels, hw } => channels.iter().map(|c| c * hw).collect(),
            other => vec![other.out_len()],
        }
    }
}

impl Kernel {
    /// The sparse kernels as their dense twins (same weights, zeros written out); every other
    /// kernel unchanged. For backends without sparse kernels (WebGPU) and for tests.
    pub fn densified(self) -> Kernel {
        match self {
            Kernel::SparseDense { k, out, weight, bias, act } | Kernel::BlockSparseDense { k, out, weight, bias, act, .. } => {
                Kernel::Dense { k, out, weight: weight.to_dense(), bias, act }
            }
            Kernel::SparseConv2d { win, out_c, weight, bias, act } => {
                Kernel::Conv2d { win, out_c, groups: 1, weight: weight.to_dense(), bias, act }
            }
            other => other,
        }
    }
}

/// The sparse form of a `[rows × cols]` weight when at most [`SPARSE_MAX_DENSITY`] of it is
/// non-zero (counted on the final weight: after BatchNorm folding and permutation).
fn sparse_if_pays(rows: usize, cols: usize, w: &[f32]) -> Option<SparseW> {
    let nnz = w.iter().filter(|&&v| v != 0.0).count();
    (!w.is_empty() && (nnz as f64) <= SPARSE_MAX_DENSITY * w.len() as f64).then(|| SparseW::from_dense(rows, cols, w))
}

/// One step: a kernel reading `inputs` and writing `output` (slots). `node` is the graph node
/// the step comes from (for error messages and profiles).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub kernel: Kernel,
    pub inputs: Vec<Slot>,
    pub output: Slot,
    pub node: usize,
}

/// A lowered model. See the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The model's input shape (NCHW semantics, as the caller passes data).
    pub input_shape: Vec<usize>,
    pub input_len: usize,
    pub output_len: usize,
    /// Floats per sample of each slot.
    pub slots: Vec<usize>,
    /// Where the caller's input goes (the backend may read it in place).
    pub input_slot: Slot,
    /// Where the result is, in the model's NCHW order.
    pub output_slot: Slot,
    pub steps: Vec<Step>,
}

impl Program {
    /// This program with every sparse kernel replaced by its dense twin ([`Kernel::densified`]).
    pub fn densified(mut self) -> Program {
        for s in &mut self.steps {
            let k = std::mem::replace(&mut s.kernel, Kernel::Copy { len: 0 });
            s.kernel = k.densified();
        }
        self
    }
}

/// Lowers `graph` (validated against `input_shape`) for inference.
///
/// Guarantees every backend may rely on (tested in `core/tests/lower.rs`):
///
/// * steps are in execution order and every slot a step reads was written by an earlier step
///   or is `input_slot`;
/// * `input_slot` is never written by any step and never reused for another value, so a
///   backend may bind it to the caller's input buffer;
/// * `output_slot != input_slot` and holds the result in the model's NCHW order after the last step;
/// * a step's output slot equals one of its input slots only for the elementwise kernels
///   `Act`, `Affine`, `Binary` (the output then replaces input `a`, i.e. `inputs[0]`) and `Softmax`;
/// * `Dense` steps read flat values; every other kernel reads and writes HWC (or flat) values.
#[inline(never)] // a load-path stage of its own (wasm/DESIGN.md, "Cold start")
pub fn lower(graph: &Graph, input_shape: &[usize]) -> Result<Program> {
    let shapes = graph.validate(input_shape)?;
    let Simplified { nodes, repr } = simplify(graph)?;
    let mut em = Emitter::new(graph, &shapes, input_shape);
    // Nodes are consumed one by one: their (expanded) weights move into the program instead
    // of being copied, so a big model is held about once here, not twice.
    for (i, ln) in nodes.into_iter().enumerate() {
        if let Some(ln) = ln {
            em.node(i, ln, &repr)?;
        }
    }
    let out_v = repr[graph.output as usize] as usize;
    em.finish(out_v, graph.nodes.len().saturating_sub(1))
}

// ------------------------------------------------------------------ pass 1: fold and fuse

/// A node after BatchNorm folding and activation fusion (`None` in [`Simplified::nodes`]
/// when the node became an alias of its input or of its producer).
enum LNode {
    Dense { w: Vec<f32>, b: Vec<f32>, k: usize, out: usize, act: Act },
    /// Weights OIHW as in the graph (reordered for the program in pass 2).
    Conv { w: Vec<f32>, b: Vec<f32>, stride: [usize; 2], pad: [usize; 4], dil: [usize; 2], groups: usize, act: Act },
    Affine { scale: Vec<f32>, shift: Vec<f32>, act: Act },
    Binary { op: BinOp, act: Act },
    Act(Act),
    Concat,
    Pool { kind: PoolKind, kernel: [usize; 2], stride: [usize; 2], pad: [usize; 4] },
    GlobalAvgPool,
    /// Flatten or Reshape to this shape.
    Reshape,
    Softmax,
    Quantize(QParams),
    /// A Dense/Conv2d on the int8 kernels: `w` int8 (Dense `[in, out]`, Conv OIHW), `sw` the
    /// per-output-channel scales, `input` its input's grid, `output` the grid a fused
    /// Quantize puts its result on (`None`: dequantized f32 out). `act`: None or ReLU.
    QDense { w: Vec<i8>, sw: Vec<f32>, b: Vec<f32>, k: usize, out: usize, act: Act, input: QParams, output: Option<QParams> },
    QConv { w: Vec<i8>, sw: Vec<f32>, b: Vec<f32>, stride: [usize; 2], pad: [usize; 4], dil: [usize; 2], act: Act, input: QParams, output: Option<QParams> },
    Sign,
    /// A Dense with ±1 weights (`plus`, `[in, out]`) and scales `alpha` whose input is a Sign.
    BDense { plus: Vec<bool>, alpha: Vec<f32>, b: Vec<f32>, k: usize, out: usize, act: Act },
}

struct Simplified {
    nodes: Vec<Option<LNode>>,
    /// For every value, the value that now carries it (itself unless aliased away).
    repr: Vec<u32>,
}

/// Dense f32 values of a tensor; quantized and sparse tensors are expanded here, once, and
/// the result is checked finite (a quantization scale can be infinite in a hostile file).
fn dense_f32(graph: &Graph, i: usize, what: &str, t: &crate::model::Tensor) -> Result<Vec<f32>> {
    let v = match &t.data {
        crate::model::TensorData::F32(v) => v.clone(),
        _ => t.to_f32_dense().map_err(|e| crate::error::Error {
            kind: e.kind,
            message: format!("{} {what}: {}", graph.describe_node(i), e.message),
        })?,
    };
    if mdeploy_model::first_non_finite(&v).is_some() {
        return Err(crate::error::Error::bad_model(format!(
            "{} {what}: expands to NaN or infinite weights (check the quantization scales)",
            graph.describe_node(i)
        )));
    }
    Ok(v)
}

fn act_of(op: &Op) -> Option<Act> {
    Some(match *op {
        Op::Relu => Act::Relu,
        Op::Clip { min, max } => Act::Clip(min, max),
        Op::LeakyRelu { alpha } => Act::LeakyRelu(alpha),
        Op::Sigmoid => Act::Sigmoid,
        Op::Tanh => Act::Tanh,
        Op::HardSwish => Act::HardSwish,
        _ => return None,
    })
}

/// BatchNorm as `y = x · scale + shift` per channel (computed in f64, rounded once).
fn bn_affine(graph: &Graph, i: usize, op: &Op) -> Result<(Vec<f32>, Vec<f32>)> {
    let Op::BatchNorm { gamma, beta, mean, var, eps } = op else { unreachable!("called on BatchNorm") };
    let (g, b) = (dense_f32(graph, i, "gamma", gamma)?, dense_f32(graph, i, "beta", beta)?);
    let (m, v) = (dense_f32(graph, i, "mean", mean)?, dense_f32(graph, i, "var", var)?);
    let mut scale = Vec::with_capacity(g.len());
    let mut shift = Vec::with_capacity(g.len());
    for c in 0..g.len() {
        let denom = (f64::from(v[c]) + f64::from(*eps)).sqrt();
        if denom.is_nan() || denom <= 0.0 {
            return Err(crate::error::Error::bad_model(format!(
                "{}: variance + eps of channel {c} must be positive",
                graph.describe_node(i)
            )));
        }
        let s = f64::from(g[c]) / denom;
        scale.push(s as f32);
        shift.push((f64::from(b[c]) - f64::from(m[c]) * s) as f32);
    }
    if scale.iter().chain(&shift).any(|x| !x.is_finite()) {
        return Err(crate::error::Error::bad_model(format!(
            "{}: gamma / sqrt(var + eps) overflows (variance too close to -eps)",
            graph.describe_node(i)
        )));
    }
    Ok((scale, shift))
}

/// A BatchNorm (node `i`) folded into `producer` (a Dense or Conv without activation, whose sole
/// reader it is): `None`; otherwise the Affine step it becomes. Its own wasm function, so a
/// model without BatchNorm never compiles it (wasm/DESIGN.md, "What the load path compiles").
#[inline(never)]
fn fold_bn(graph: &Graph, i: usize, producer: Option<&mut LNode>) -> Result<Option<LNode>> {
    let (scale, shift) = bn_affine(graph, i, &graph.nodes[i].op)?;
    let target = match producer {
        Some(LNode::Dense { w, b, out, act: Act::None, .. }) => {
            // W[:, o] and b[o] scale by scale[o]; shift adds to the bias.
            for row in w.chunks_exact_mut(*out) {
                for (x, s) in row.iter_mut().zip(&scale) {
                    *x *= s;
                }
            }
            Some(b)
        }
        Some(LNode::Conv { w, b, act: Act::None, .. }) => {
            let per_o = w.len() / b.len();
            for (row, s) in w.chunks_exact_mut(per_o).zip(&scale) {
                for x in row {
                    *x *= s;
                }
            }
            Some(b)
        }
        _ => None,
    };
    Ok(match target {
        Some(b) => {
            for ((bv, s), t) in b.iter_mut().zip(&scale).zip(&shift) {
                *bv = *bv * s + t;
            }
            None
        }
        None => Some(LNode::Affine { scale, shift, act: Act::None }),
    })
}

fn simplify(graph: &Graph) -> Result<Simplified> {
    let n = graph.nodes.len();
    // Dead-code elimination: only nodes the output depends on are lowered.
    let mut live_val = vec![false; n + 1];
    live_val[graph.output as usize] = true;
    for i in (0..n).rev() {
        if live_val[i + 1] {
            for &v in &graph.nodes[i].inputs {
                live_val[v as usize] = true;
            }
        }
    }
    // Effective uses of each value by live nodes, looking through identities (a value read
    // only by a Dropout that feeds one Conv has one use); the graph output counts as a use.
    let mut uses = vec![0usize; n + 1];
    uses[graph.output as usize] += 1;
    for i in (0..n).rev() {
        if !live_val[i + 1] {
            continue;
        }
        let node = &graph.nodes[i];
        let per_read = if node.op.is_identity_at_inference() { uses[i + 1] } else { 1 };
        for &v in &node.inputs {
            uses[v as usize] += per_read;
        }
    }

    let mut repr: Vec<u32> = (0..=n as u32).collect();
    let mut nodes: Vec<Option<LNode>> = Vec::with_capacity(n);
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live_val[i + 1] {
            nodes.push(None);
            continue;
        }
        let u = repr[node.inputs[0] as usize] as usize;
        // The producer of `u` when it is a node whose epilogue this node may join: `u` is read
        // by this node only (and is not the graph output).
        let sole_producer = (u > 0 && uses[u] == 1).then(|| u - 1);
        let ln = match &node.op {
            Op::Dropout { .. } | Op::Identity => {
                repr[i + 1] = u as u32;
                None
            }
            Op::BatchNorm { .. } => match fold_bn(graph, i, sole_producer.and_then(|p| nodes[p].as_mut()))? {
                None => {
                    uses[u] = uses[i + 1];
                    repr[i + 1] = u as u32;
                    None
                }
                affine => affine,
            },
            op if op.is_activation() => {
                let a = act_of(op).unwrap_or(Act::None);
                let slot = sole_producer.and_then(|p| match nodes[p].as_mut() {
                    Some(LNode::Dense { act, .. })
                    | Some(LNode::Conv { act, .. })
                    | Some(LNode::Affine { act, .. })
                    | Some(LNode::Binary { act, .. })
                    | Some(LNode::BDense { act, .. })
                        if *act == Act::None =>
                    {
                        Some(act)
                    }
                    // The integer epilogues fuse ReLU only (a clamp at the zero point).
                    Some(LNode::QDense { act, output: None, .. }) | Some(LNode::QConv { act, output: None, .. })
                        if *act == Act::None && a == Act::Relu =>
                    {
                        Some(act)
                    }
                    _ => None,
                });
                match slot {
                    Some(act) => {
                        *act = a;
                        uses[u] = uses[i + 1];
                        repr[i + 1] = u as u32;
                        None
                    }
                    None => Some(LNode::Act(a)),
                }
            }
            Op::Quantize { scale, zero_point } => {
                let q = QParams { scale: *scale, zero_point: *zero_point };
                // Onto the grid of an integer op's output: requantize in its epilogue.
                let fused = sole_producer.is_some_and(|p| match nodes[p].as_mut() {
                    Some(LNode::QDense { output: o @ None, .. }) | Some(LNode::QConv { output: o @ None, .. }) => {
                        *o = Some(q);
                        true
                    }
                    _ => false,
                });
                if fused {
                    uses[u] = uses[i + 1];
                    repr[i + 1] = u as u32;
                    None
                } else {
                    Some(LNode::Quantize(q))
                }
            }
            Op::Sign => Some(LNode::Sign),
            // A Dense whose input is a Sign and whose weights are ±1 (1-bit SPACKED): binary.
            Op::Dense { weight, bias } if u > 0 && matches!(nodes[u - 1], Some(LNode::Sign)) && crate::lower_quant::is_binary(weight) => {
                Some(binary_dense(graph, i, weight, bias)?)
            }
            Op::Dense { weight, bias } if let Some(input) = grid_of(graph, &nodes, &repr, u) => Some(int_dense(graph, i, weight, bias, input)?),
            Op::Conv2d { groups: 1, .. } if let Some(input) = grid_of(graph, &nodes, &repr, u) => Some(int_conv(graph, i, input)?),
            Op::Dense { weight, bias } => Some(LNode::Dense {
                w: dense_f32(graph, i, "weight", weight)?,
                b: dense_f32(graph, i, "bias", bias)?,
                k: weight.shape[0],
                out: weight.shape[1],
                act: Act::None,
            }),
            Op::Conv2d { weight, bias, stride, padding, dilation, groups } => Some(LNode::Conv {
                w: dense_f32(graph, i, "weight", weight)?,
                b: dense_f32(graph, i, "bias", bias)?,
                stride: *stride,
                pad: *padding,
                dil: *dilation,
                groups: *groups,
                act: Act::None,
            }),
            Op::Add => Some(LNode::Binary { op: BinOp::Add, act: Act::None }),
            Op::Mul => Some(LNode::Binary { op: BinOp::Mul, act: Act::None }),
            Op::Concat => Some(LNode::Concat),
            Op::MaxPool2d { kernel, stride, padding, .. } => {
                Some(LNode::Pool { kind: PoolKind::Max, kernel: *kernel, stride: *stride, pad: *padding })
            }
            Op::AvgPool2d { kernel, stride, padding, count_include_pad, .. } => Some(LNode::Pool {
                kind: PoolKind::Avg { count_include_pad: *count_include_pad },
                kernel: *kernel,
                stride: *stride,
                pad: *padding,
            }),
            Op::GlobalAvgPool => Some(LNode::GlobalAvgPool),
            Op::Flatten | Op::Reshape { .. } => Some(LNode::Reshape),
            Op::Softmax => Some(LNode::Softmax),
            // is_activation() covered the rest; a new Op must be handled above.
            op => {
                return Err(crate::error::Error::unsupported(format!(
                    "{}: the lowering does not know {} yet",
                    graph.describe_node(i),
                    op.name()
                )))
            }
        };
        nodes.push(ln);
    }
    Ok(Simplified { nodes, repr })
}

// The integer and binary forms of Dense and Conv2d, each a wasm function of its own (as
// `fold_bn`): an f32 model's load never compiles them.

#[inline(never)]
fn binary_dense(graph: &Graph, i: usize, weight: &crate::model::Tensor, bias: &crate::model::Tensor) -> Result<LNode> {
    let (plus, alpha) = crate::lower_quant::binary_weight(weight, &format!("{} weight", graph.describe_node(i)))?;
    Ok(LNode::BDense {
        plus,
        alpha,
        b: dense_f32(graph, i, "bias", bias)?,
        k: weight.shape[0],
        out: weight.shape[1],
        act: Act::None,
    })
}

#[inline(never)]
fn int_dense(graph: &Graph, i: usize, weight: &crate::model::Tensor, bias: &crate::model::Tensor, input: QParams) -> Result<LNode> {
    Ok(match crate::lower_quant::int8_weight(weight, 1, &format!("{} weight", graph.describe_node(i)))? {
        Some((w, sw)) => LNode::QDense {
            w,
            sw,
            b: dense_f32(graph, i, "bias", bias)?,
            k: weight.shape[0],
            out: weight.shape[1],
            act: Act::None,
            input,
            output: None,
        },
        None => LNode::Dense {
            w: dense_f32(graph, i, "weight", weight)?,
            b: dense_f32(graph, i, "bias", bias)?,
            k: weight.shape[0],
            out: weight.shape[1],
            act: Act::None,
        },
    })
}

#[inline(never)]
fn int_conv(graph: &Graph, i: usize, input: QParams) -> Result<LNode> {
    let Op::Conv2d { weight, bias, stride, padding, dilation, .. } = &graph.nodes[i].op else { unreachable!("int_conv takes a Conv2d") };
    Ok(match crate::lower_quant::int8_weight(weight, 0, &format!("{} weight", graph.describe_node(i)))? {
        Some((w, sw)) => LNode::QConv {
            w,
            sw,
            b: dense_f32(graph, i, "bias", bias)?,
            stride: *stride,
            pad: *padding,
            dil: *dilation,
            act: Act::None,
            input,
            output: None,
        },
        None => LNode::Conv {
            w: dense_f32(graph, i, "weight", weight)?,
            b: dense_f32(graph, i, "bias", bias)?,
            stride: *stride,
            pad: *padding,
            dil: *dilation,
            groups: 1,
            act: Act::None,
        },
    })
}

/// The uint8 grid value `v` lies on, if any: the output of a Quantize step or of an integer
/// op with a fused Quantize, seen through ops that keep values on their input's grid (max
/// pooling, Flatten/Reshape; Dropout/Identity are already aliased away).
fn grid_of(graph: &Graph, nodes: &[Option<LNode>], repr: &[u32], v: usize) -> Option<QParams> {
    let mut v = v;
    // Each step moves to an earlier value, so this ends.
    while v > 0 {
        match nodes.get(v - 1)?.as_ref()? {
            LNode::Quantize(q) => return Some(*q),
            LNode::QDense { output, .. } | LNode::QConv { output, .. } => return *output,
            LNode::Pool { kind: PoolKind::Max, .. } | LNode::Reshape => {
                v = repr[*graph.nodes[v - 1].inputs.first()? as usize] as usize;
            }
            _ => return None,
        }
    }
    None
}

// ------------------------------------------------------------------ pass 2: layouts and steps

/// Element order of a stored value. `Hwc` only when it differs from the plain order
/// (`c > 1` and `hw > 1`); a flat value may be `Hwc` too (a Flatten of an HWC value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// The model's row-major order (CHW for 3-D values).
    Plain,
    Hwc { c: usize, hw: usize },
}

fn hwc_order(c: usize, hw: usize) -> Order {
    if c > 1 && hw > 1 {
        Order::Hwc { c, hw }
    } else {
        Order::Plain
    }
}

#[derive(Clone, Copy, Debug)]
struct Val {
    buf: usize,
    order: Order,
}

/// A step over buffers (one per materialised tensor); slots are assigned in `finish`.
struct BStep {
    kernel: Kernel,
    inputs: Vec<usize>,
    output: usize,
    node: usize,
}

struct Emitter<'g> {
    graph: &'g Graph,
    shapes: &'g [Vec<usize>],
    input_shape: Vec<usize>,
    /// Floats per sample of each buffer.
    bufs: Vec<usize>,
    steps: Vec<BStep>,
    vals: Vec<Option<Val>>,
    /// Per value, its HWC and plain copies once a transpose made them.
    as_hwc: Vec<Option<Val>>,
    as_plain: Vec<Option<Val>>,
}

/// The rows of a `[features × out]` weight matrix in the order of an activation stored HWC:
/// element g = p·c + ch of the stored value is logical feature f = ch·hw + p, so row g of the
/// result is row f of `w`.
///
/// Its own function, never inlined, as is [`oihw_to_taps`]: these loops run over every weight of
/// a layer, so V8 optimizes the function that holds them on a cold start; inlined into
/// `Emitter::node` they made it optimize all 13 KB of that function, once, on a background
/// thread (wasm/DESIGN.md, "Cold start").
#[inline(never)]
fn rows_chw_to_hwc<T: Copy + Default>(w: &[T], c: usize, hw: usize, out: usize) -> Vec<T> {
    let mut re = vec![T::default(); w.len()];
    for ch in 0..c {
        for p in 0..hw {
            let (f, g) = (ch * hw + p, p * c + ch);
            re[g * out..(g + 1) * out].copy_from_slice(&w[f * out..(f + 1) * out]);
        }
    }
    re
}

/// Convolution weights OIHW (`g` groups of `ocg` outputs over `icg` inputs) → per group the
/// `[(ky, kx, ci) × ocg]` matrix the executor multiplies, groups one after another.
#[inline(never)]
fn oihw_to_taps<T: Copy + Default>(w: &[T], g: usize, ocg: usize, icg: usize, kh: usize, kw: usize) -> Vec<T> {
    let kk = kh * kw * icg;
    let mut re = vec![T::default(); w.len()];
    for gi in 0..g {
        let base = gi * kk * ocg;
        for o in 0..ocg {
            for ci in 0..icg {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let src = (((gi * ocg + o) * icg + ci) * kh + ky) * kw + kx;
                        re[base + ((ky * kw + kx) * icg + ci) * ocg + o] = w[src];
                    }
                }
            }
        }
    }
    re
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

impl<'g> Emitter<'g> {
    fn new(graph: &'g Graph, shapes: &'g [Vec<usize>], input_shape: &[usize]) -> Self {
        let n = shapes.len();
        let mut vals = vec![None; n];
        vals[0] = Some(Val { buf: 0, order: Order::Plain });
        Emitter {
            graph,
            shapes,
            input_shape: input_shape.to_vec(),
            bufs: vec![numel(input_shape)],
            steps: Vec::new(),
            vals,
            as_hwc: vec![None; n],
            as_plain: vec![None; n],
        }
    }

    fn new_buf(&mut self, len: usize) -> usize {
        self.bufs.push(len);
        self.bufs.len() - 1
    }

    fn val(&self, v: usize) -> Val {
        // Pass 1 only maps values to earlier live values, which pass 2 has emitted.
        self.vals[v].expect("value emitted before use (topological order)")
    }

    fn push(&mut self, kernel: Kernel, inputs: Vec<usize>, output: usize, node: usize) {
        self.steps.push(BStep { kernel, inputs, output, node });
    }

    /// `v` in HWC order (transposing a plain 3-D value once, cached).
    fn hwc(&mut self, v: usize, node: usize) -> Val {
        let val = self.val(v);
        let s = &self.shapes[v];
        if s.len() != 3 || val.order != Order::Plain {
            return val;
        }
        let (c, hw) = (s[0], s[1] * s[2]);
        if hwc_order(c, hw) == Order::Plain {
            return val;
        }
        if let Some(t) = self.as_hwc[v] {
            return t;
        }
        let buf = self.new_buf(c * hw);
        self.push(Kernel::Transpose { c, hw, to_hwc: true }, vec![val.buf], buf, node);
        let t = Val { buf, order: Order::Hwc { c, hw } };
        self.as_hwc[v] = Some(t);
        t
    }

    /// `v` in the model's plain order (transposing an HWC value back once, cached).
    fn plain(&mut self, v: usize, node: usize) -> Val {
        let val = self.val(v);
        let Order::Hwc { c, hw } = val.order else { return val };
        if let Some(t) = self.as_plain[v] {
            return t;
        }
        let buf = self.new_buf(c * hw);
        self.push(Kernel::Transpose { c, hw, to_hwc: false }, vec![val.buf], buf, node);
        let t = Val { buf, order: Order::Plain };
        self.as_plain[v] = Some(t);
        t
    }

    fn node(&mut self, i: usize, ln: LNode, repr: &[u32]) -> Result<()> {
        let ins: Vec<usize> = self.graph.nodes[i].inputs.iter().map(|&v| repr[v as usize] as usize).collect();
        let out_shape = self.shapes[i + 1].clone();
        let out_len = numel(&out_shape);
        let x = ins[0];
        let xs = self.shapes[x].clone();
        let result = match ln {
            LNode::Dense { w, b, k, out, act } => {
                let xv = self.val(x);
                let weight = match xv.order {
                    Order::Plain => w,
                    // Element g = p·c + ch of the stored activation is logical feature f = ch·hw + p:
                    // row g of the program's weight is row f of the model's.
                    Order::Hwc { c, hw } => rows_chw_to_hwc(&w, c, hw, out),
                };
                let buf = self.new_buf(out);
                let kernel = match sparse_if_pays(k, out, &weight) {
                    Some(sw) => match BLOCK_WIDTHS.into_iter().find(|&bw| mdeploy_kernels::block_fill(&sw, bw) >= BLOCK_MIN_FILL) {
                        Some(block) => Kernel::BlockSparseDense { k, out, block, weight: sw, bias: b, act },
                        None => Kernel::SparseDense { k, out, weight: sw, bias: b, act },
                    },
                    None => Kernel::Dense { k, out, weight, bias: b, act },
                };
                self.push(kernel, vec![xv.buf], buf, i);
                Val { buf, order: Order::Plain }
            }
            ln @ LNode::Conv { .. } => self.node_conv(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::Sign => self.node_sign(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::BDense { .. } => self.node_bdense(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::Quantize(..) => self.node_quantize(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::QDense { .. } => self.node_qdense(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::QConv { .. } => self.node_qconv(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::Pool { .. } => self.node_pool(i, ln, &ins, &xs, &out_shape, out_len)?,
            LNode::GlobalAvgPool => {
                let xv = self.hwc(x, i);
                let buf = self.new_buf(out_len);
                self.push(Kernel::GlobalAvgPool { c: xs[0], hw: xs[1] * xs[2] }, vec![xv.buf], buf, i);
                Val { buf, order: Order::Plain }
            }
            ln @ LNode::Affine { .. } => self.node_affine(i, ln, &ins, &xs, &out_shape, out_len)?,
            LNode::Act(act) => {
                let xv = self.val(x);
                let buf = self.new_buf(out_len);
                self.push(Kernel::Act { act, len: out_len }, vec![xv.buf], buf, i);
                Val { buf, order: xv.order }
            }
            LNode::Softmax => {
                // Softmax over the whole sample does not care about the element order.
                let xv = self.val(x);
                let buf = self.new_buf(out_len);
                self.push(Kernel::Softmax { len: out_len }, vec![xv.buf], buf, i);
                Val { buf, order: xv.order }
            }
            ln @ LNode::Binary { .. } => self.node_binary(i, ln, &ins, &xs, &out_shape, out_len)?,
            ln @ LNode::Concat => self.node_concat(i, ln, &ins, &xs, &out_shape, out_len)?,
            LNode::Reshape => {
                let xv = self.val(x);
                if out_shape == xs {
                    xv
                } else if out_shape.len() == 1 {
                    // Flatten: same buffer, the order travels with it (a Dense permutes its rows).
                    xv
                } else {
                    // To a new 3-D shape: row-major order must be the model's.
                    let p = self.plain(x, i);
                    Val { buf: p.buf, order: Order::Plain }
                }
            }
        };
        self.vals[i + 1] = Some(result);
        Ok(())
    }

    // The arms of `node` each a wasm function of their own: V8 compiles a function on its first
    // call, so a model's load compiles the lowering of its own layer kinds only (an MLP none of
    // the convolution, pooling, integer or binary code; wasm/DESIGN.md, "What the load path
    // compiles").
    #[inline(never)]
    #[allow(unused_variables)]
    fn node_conv(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Conv { w, b, stride, pad, dil, groups, act } = ln else { unreachable!("node_conv takes Conv only") };
        Ok({
            let xv = self.hwc(x, i);
            let (c, h, wd) = (xs[0], xs[1], xs[2]);
            let (oc, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
            let g = groups;
            let (icg, ocg) = (c / g, oc / g);
            let Op::Conv2d { weight, .. } = &self.graph.nodes[i].op else { unreachable!("Conv node") };
            let (kh, kw) = (weight.shape[2], weight.shape[3]);
            // OIHW → per group [(ky, kx, ci) × oc_g], groups one after another.
            let kk = kh * kw * icg;
            let re = oihw_to_taps(&w, g, ocg, icg, kh, kw);
            let win = Window {
                c,
                h,
                w: wd,
                kh,
                kw,
                sh: stride[0],
                sw: stride[1],
                pad,
                dh: dil[0],
                dw: dil[1],
                oh,
                ow,
            };
            let buf = self.new_buf(out_len);
            drop(w);
            let sparse = if g == 1 { sparse_if_pays(kk, oc, &re) } else { None };
            let kernel = match sparse {
                Some(sw) => Kernel::SparseConv2d { win, out_c: oc, weight: sw, bias: b, act },
                None => Kernel::Conv2d { win, out_c: oc, groups: g, weight: re, bias: b, act },
            };
            self.push(kernel, vec![xv.buf], buf, i);
            Val { buf, order: hwc_order(oc, oh * ow) }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_sign(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Sign = ln else { unreachable!("node_sign takes Sign only") };
        Ok({
            let xv = self.val(x);
            let buf = self.new_buf(out_len);
            self.push(Kernel::Sign { len: out_len }, vec![xv.buf], buf, i);
            Val { buf, order: xv.order }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_bdense(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::BDense { plus, alpha, b, k, out, act } = ln else { unreachable!("node_bdense takes BDense only") };
        Ok({
            let xv = self.val(x);
            let plus = match xv.order {
                Order::Plain => plus,
                // As for Dense: row g of the program's weight is row f of the model's.
                Order::Hwc { c, hw } => rows_chw_to_hwc(&plus, c, hw, out),
            };
            let buf = self.new_buf(out);
            self.push(Kernel::BDense { k, out, plus, alpha, bias: b, act }, vec![xv.buf], buf, i);
            Val { buf, order: Order::Plain }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_quantize(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Quantize(q) = ln else { unreachable!("node_quantize takes Quantize only") };
        Ok({
            let xv = self.val(x);
            let buf = self.new_buf(out_len);
            self.push(Kernel::Quantize { len: out_len, q }, vec![xv.buf], buf, i);
            Val { buf, order: xv.order }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_qdense(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::QDense { w, sw, b, k, out, act, input, output } = ln else { unreachable!("node_qdense takes QDense only") };
        Ok({
            let xv = self.val(x);
            let weight = match xv.order {
                Order::Plain => w,
                // As for Dense: row g of the program's weight is row f of the model's.
                Order::Hwc { c, hw } => rows_chw_to_hwc(&w, c, hw, out),
            };
            let col_sums: Vec<i64> =
                (0..out).map(|c| (0..k).map(|p| i64::from(weight[p * out + c])).sum()).collect();
            let what = self.graph.describe_node(i);
            let (bias, epi) =
                crate::lower_quant::epilogue(&what, input, &sw, &b, &col_sums, k, act == Act::Relu, output)?;
            let buf = self.new_buf(out);
            self.push(Kernel::QDense { k, out, weight, bias, input, epi }, vec![xv.buf], buf, i);
            Val { buf, order: Order::Plain }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_qconv(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::QConv { w, sw, b, stride, pad, dil, act, input, output } = ln else { unreachable!("node_qconv takes QConv only") };
        Ok({
            let xv = self.hwc(x, i);
            let (c, h, wd) = (xs[0], xs[1], xs[2]);
            let (oc, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
            let Op::Conv2d { weight, .. } = &self.graph.nodes[i].op else { unreachable!("Conv node") };
            let (kh, kw) = (weight.shape[2], weight.shape[3]);
            // OIHW → [(ky, kx, ci) × oc].
            let kk = kh * kw * c;
            let re = oihw_to_taps(&w, 1, oc, c, kh, kw);
            let col_sums: Vec<i64> = (0..oc).map(|o| (0..kk).map(|p| i64::from(re[p * oc + o])).sum()).collect();
            let what = self.graph.describe_node(i);
            let (bias, epi) =
                crate::lower_quant::epilogue(&what, input, &sw, &b, &col_sums, kk, act == Act::Relu, output)?;
            let win = Window { c, h, w: wd, kh, kw, sh: stride[0], sw: stride[1], pad, dh: dil[0], dw: dil[1], oh, ow };
            let buf = self.new_buf(out_len);
            self.push(Kernel::QConv2d { win, out_c: oc, weight: re, bias, input, epi }, vec![xv.buf], buf, i);
            Val { buf, order: hwc_order(oc, oh * ow) }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_pool(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Pool { kind, kernel, stride, pad } = ln else { unreachable!("node_pool takes Pool only") };
        Ok({
            let xv = self.hwc(x, i);
            let win = Window {
                c: xs[0],
                h: xs[1],
                w: xs[2],
                kh: kernel[0],
                kw: kernel[1],
                sh: stride[0],
                sw: stride[1],
                pad,
                dh: 1,
                dw: 1,
                oh: out_shape[1],
                ow: out_shape[2],
            };
            let buf = self.new_buf(out_len);
            self.push(Kernel::Pool { kind, win }, vec![xv.buf], buf, i);
            Val { buf, order: hwc_order(xs[0], out_shape[1] * out_shape[2]) }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_affine(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Affine { scale, shift, act } = ln else { unreachable!("node_affine takes Affine only") };
        Ok({
            // The kernel repeats `c` parameters over rows of `c` values (channel-minor). A
            // 3-D value is made HWC for it; a flat one maps each feature to itself; a [C, L]
            // one (values have rank 1 to 3) is made plain (C-major) and gets its parameters
            // repeated per element, so the kernel covers the whole value (it once covered
            // only the first C floats: a later op then read past them).
            let xv = match xs.len() {
                3 => self.hwc(x, i),
                1 => self.val(x),
                _ => self.plain(x, i),
            };
            let (c, hw, scale, shift) = match (xs.len(), xv.order) {
                (3, _) => (xs[0], xs[1] * xs[2], scale, shift),
                (r, _) if r >= 2 => {
                    let inner = out_len / xs[0].max(1);
                    let rep = |v: &[f32]| v.iter().flat_map(|&p| std::iter::repeat_n(p, inner)).collect::<Vec<f32>>();
                    (out_len, 1, rep(&scale), rep(&shift))
                }
                // A flat value stored in HWC order: permute the per-feature parameters.
                (_, Order::Hwc { c, hw }) => {
                    let mut sc = vec![0.0; c * hw];
                    let mut sh = vec![0.0; c * hw];
                    for ch in 0..c {
                        for p in 0..hw {
                            sc[p * c + ch] = scale[ch * hw + p];
                            sh[p * c + ch] = shift[ch * hw + p];
                        }
                    }
                    (c * hw, 1, sc, sh)
                }
                _ => (xs[0], 1, scale, shift),
            };
            let buf = self.new_buf(out_len);
            self.push(Kernel::Affine { c, hw, scale, shift, act }, vec![xv.buf], buf, i);
            Val { buf, order: xv.order }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_binary(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Binary { op, act } = ln else { unreachable!("node_binary takes Binary only") };
        Ok({
            let (mut a, mut b) = (ins[0], ins[1]);
            let (sa, sb) = (self.shapes[a].clone(), self.shapes[b].clone());
            if numel(&sa) < numel(&sb) {
                // Add and Mul commute: keep the full-size operand first.
                std::mem::swap(&mut a, &mut b);
            }
            let (sa, sb) = (self.shapes[a].clone(), self.shapes[b].clone());
            let (av, bv, per_channel) = if numel(&sa) != numel(&sb) {
                // b is [C] or [C, 1, 1] against a [C, H, W]: channels innermost in a, b in
                // channel order (a flat b may be a Flatten of an HWC value: put it back).
                (self.hwc(a, i), self.plain(b, i), Some(sa[0]))
            } else if sa.len() == 3 {
                (self.hwc(a, i), self.hwc(b, i), None)
            } else {
                let (av, bv) = (self.val(a), self.val(b));
                if av.order == bv.order {
                    (av, bv, None)
                } else {
                    (self.plain(a, i), self.plain(b, i), None)
                }
            };
            let buf = self.new_buf(out_len);
            let kernel = Kernel::Binary { op, len: out_len, b_per_channel: per_channel, act };
            self.push(kernel, vec![av.buf, bv.buf], buf, i);
            Val { buf, order: av.order }
        })
    }

    #[inline(never)]
    #[allow(unused_variables)]
    fn node_concat(&mut self, i: usize, ln: LNode, ins: &[usize], xs: &[usize], out_shape: &[usize], out_len: usize) -> Result<Val> {
        let x = ins[0];
        let LNode::Concat = ln else { unreachable!("node_concat takes Concat only") };
        Ok({
            let three_d = xs.len() == 3;
            let mut bufs = Vec::with_capacity(ins.len());
            let mut channels = Vec::with_capacity(ins.len());
            for &v in ins {
                let vv = if three_d { self.hwc(v, i) } else { self.plain(v, i) };
                bufs.push(vv.buf);
                channels.push(self.shapes[v][0]);
            }
            let hw = if three_d { xs[1] * xs[2] } else { 1 };
            let buf = self.new_buf(out_len);
            self.push(Kernel::Concat { channels, hw }, bufs, buf, i);
            Val { buf, order: if three_d { hwc_order(out_shape[0], hw) } else { Order::Plain } }
        })
    }

    fn finish(mut self, out_v: usize, last_node: usize) -> Result<Program> {
        let mut out = self.plain(out_v, last_node);
        if out.buf == 0 {
            // The output is the input itself (a graph of identities): materialise it.
            let len = self.bufs[0];
            let buf = self.new_buf(len);
            self.push(Kernel::Copy { len }, vec![0], buf, last_node);
            out = Val { buf, order: Order::Plain };
        }
        let (slots, map) = assign_slots(&self.bufs, &self.steps, out.buf);
        let steps = self
            .steps
            .into_iter()
            .map(|s| Step {
                kernel: s.kernel,
                inputs: s.inputs.iter().map(|&b| map[b]).collect(),
                output: map[s.output],
                node: s.node,
            })
            .collect();
        Ok(Program {
            input_len: numel(&self.input_shape),
            output_len: self.bufs[out.buf],
            input_shape: self.input_shape,
            slots,
            input_slot: map[0],
            output_slot: map[out.buf],
            steps,
        })
    }
}


/// Buffers → slots by liveness: a buffer's slot returns to the free list after its last
/// reader has run; elementwise steps write over their dying first input. Buffer 0 (the
/// input) and `out_buf` are never freed. Returns the slot sizes and the buffer → slot map.
fn assign_slots(bufs: &[usize], steps: &[BStep], out_buf: usize) -> (Vec<usize>, Vec<usize>) {
    let mut last_read = vec![None::<usize>; bufs.len()];
    for (j, s) in steps.iter().enumerate() {
        for &b in &s.inputs {
            last_read[b] = Some(j);
        }
    }
    let pinned = |b: usize| b == 0 || b == out_buf;
    let mut map = vec![usize::MAX; bufs.len()];
    let mut slots: Vec<usize> = vec![bufs[0]];
    map[0] = 0;
    let mut free: Vec<usize> = Vec::new();
    for (j, s) in steps.iter().enumerate() {
        let dying: Vec<usize> = {
            let mut d: Vec<usize> =
                s.inputs.iter().copied().filter(|&b| last_read[b] == Some(j) && !pinned(b)).collect();
            d.dedup();
            d
        };
        if map[s.output] == usize::MAX {
            let need = bufs[s.output];
            let a = s.inputs[0];
            let in_place = s.kernel.may_run_in_place()
                && dying.contains(&a)
                && bufs[a] == need
                && !s.inputs[1..].contains(&a);
            map[s.output] = if in_place {
                map[a]
            } else {
                // Best fit among the free slots, else grow the largest, else a new slot.
                let fit = free.iter().enumerate().filter(|(_, &sl)| slots[sl] >= need).min_by_key(|(_, &sl)| slots[sl]);
                let pick = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, &sl)| slots[sl]));
                match pick.map(|(i, _)| i) {
                    Some(i) => {
                        let sl = free.swap_remove(i);
                        slots[sl] = slots[sl].max(need);
                        sl
                    }
                    None => {
                        slots.push(need);
                        slots.len() - 1
                    }
                }
            };
        }
        for b in dying {
            let sl = map[b];
            if sl != map[s.output] && !free.contains(&sl) {
                free.push(sl);
            }
        }
    }
    (slots, map)
}
