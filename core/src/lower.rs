//! One lowering for every backend: a [`Graph`] becomes a [`Program`], a flat list of kernel
//! calls over numbered buffer slots. The CPU [`Plan`](crate::plan::Plan) and the WebGPU engine
//! (`wasm/src/gpu/`) both execute a `Program`; neither looks at the graph, so they cannot drift
//! apart, and a backend that lacks a [`Kernel`] fails at load naming it.
//!
//! ```text
//!  Graph (NCHW semantics, BatchNorm, Dropout, Flatten, ...)
//!    │ lower(): fold BatchNorm into the preceding Conv2d/Dense, drop identities,
//!    │          fuse activations (and conv → pool where it pays) into epilogues,
//!    │          choose layouts (3-D activations are HWC: channels innermost),
//!    │          permute weights once, assign slots by liveness
//!    ▼
//!  Program { slots: [floats per sample], steps: [Step { kernel, inputs, output }] }
//! ```
//!
//! **Layouts.** Inside a program every 3-D activation is stored HWC (channels innermost): a
//! convolution is then `[pixels × (kh·kw·C)] · [(kh·kw·C) × out_c]` and a pooling window is a
//! run of contiguous channel vectors. The model's NCHW contract is kept at the edges by
//! explicit [`Kernel::Transpose`] steps (none when C = 1), and a `Dense` after a `Flatten` of an
//! HWC value gets its weight rows permuted here, once.
//!
//! **Batches.** Slot sizes are per sample; a backend allocates `slots[i] × batch` floats (or
//! runs per-sample steps one sample at a time). Every kernel works on `n` samples laid out one
//! after another.

use crate::error::Result;
use crate::graph::Graph;

/// Index into [`Program::slots`].
pub type Slot = usize;

/// An elementwise function applied on the way out of a kernel (or alone, [`Kernel::Act`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, lo), hi)`; ReLU6 is `Clip(0, 6)`.
    Clip(f32, f32),
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    HardSwish,
}

/// `Add` or `Mul`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Mul,
}

/// Window geometry of a convolution or pooling over one HWC sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input channels, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// `[top, left, bottom, right]`.
    pub pad: [usize; 4],
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// Average; `count_include_pad` divides by the whole window.
    Avg { count_include_pad: bool },
}

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
}

impl Kernel {
    /// The name backends use in "not supported" errors.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Transpose { .. } => "Transpose",
            Kernel::Dense { .. } => "Dense",
            Kernel::Conv2d { .. } => "Conv2d",
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
        }
    }
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

/// Lowers `graph` (validated against `input_shape`) for inference.
pub fn lower(graph: &Graph, input_shape: &[usize]) -> Result<Program> {
    let _ = (graph, input_shape);
    Err(crate::error::Error::unsupported("lower() is being written (issue 9)"))
}
