//! The CPU executor of a [`Program`]: packs weights for one [`KernelSet`], gives every value a
//! buffer, and runs the steps on chunks of up to `max_batch` samples without allocating.
//! [`Plan`](crate::plan::Plan) is the public face (input checks, chunking, `predict`).
//!
//! ```text
//!  chunk of nb samples
//!    │
//!  ┌─ steps before the first Dense: one sample at a time ───────────────────────────────┐
//!  │ values live in per-sample buffers (L1/L2-sized), except those a later step reads:    │
//!  │ these are written into row s of a batch buffer                                       │
//!  └──────────────────────────────────────────────────────────────────────────────────────┘
//!  ┌─ from the first Dense on: step by step over the whole chunk ────────────────────────┐
//!  │ Dense: GEMV when nb = 1, else the packed GEMM (weights reused across the batch);     │
//!  │ any other step loops over the samples                                                │
//!  └──────────────────────────────────────────────────────────────────────────────────────┘
//!    ▼ rows of the output buffer → caller's `out`
//! ```
//!
//! **Buffers.** The program's slots are sized per sample for a backend that batches every
//! step; this executor keeps most values per sample instead. So it re-derives the values from
//! the steps (every step output starts a new value, except an in-place step, whose output
//! slot is its input 0: it continues that value) and assigns buffers by liveness in two pools:
//! per-sample buffers for values only the per-sample stage touches, batch buffers
//! (`max_batch` rows) for values the batched stage reads or writes (and the output). A batch
//! value written in the per-sample stage stays live until that stage ends for every sample.
//! The model input is never copied: its slot is bound to the caller's slice.

use crate::error::{Error, Result};
use crate::kernels::generic::generic_eltwise_f32::{
    act_clamp, generic_act_f32, generic_affine_f32, generic_binary_f32, generic_gap_f32, generic_transpose_f32,
};
use crate::kernels::generic::generic_pool_f32::generic_pool_f32;
use crate::kernels::generic::generic_softmax_f32::softmax_rows;
use crate::kernels::{a_panel, APanel, AlignedBuf, BlockW, KernelSet, MatRef, PackedB, PoolGeom, SparseOffsets, SparseW, MAX_MR, BLOCK_WIDTHS};
use crate::kernels::qgemm::{PackedQB, QLayout, QMAX_MR};
use crate::kernels::{BSignRule, PackedBB, MAX_BK};
use crate::kernels::WinogradW;
use crate::kernels::generic::generic_maxpool_u8::generic_maxpool_u8;
use crate::kernels::quant::{QEpi, QOut, QParams, MAX_QK};
use crate::lower::{Act, BinOp, Kernel, PoolKind, Program, Window};

mod bfuse;
// Conv + max pool in bands: only where every request starts from a fresh copy-on-write instance
// (the `wasi:http` component, `target_os = "wasi"`) does not writing the conv's output pay (6
// page faults of the CNN's 35 per request); warm, in one process, it measured the same, and in
// the browser package it would cost about 1.3 KB gzip for nothing (exec/cpool.rs). Compiled for
// the crate's own tests too, which check its bits against the unfused plan on every native set.
#[cfg(any(target_os = "wasi", test))]
mod cpool;
mod qconv;

/// Rows an integer step quantizes, multiplies and writes back at a time: its u8/i32 scratch
/// stays a few KiB per row whatever the batch (a multiple of every integer kernel's MR).
const QROWS: usize = 96;

/// Largest arena (floats over all buffers) an executor will size: 2^28 floats = 1 GiB.
const MAX_ARENA_FLOATS: usize = 1 << 28;

/// Sparse Dense chunks of fewer rows run row by row (`KernelSet::spmv`, which also skips zero
/// inputs) instead of through the row blocks of `KernelSet::spmm` (KERNELS.md, "Sparse kernels").
const SPMV_MAX_ROWS: usize = 4;

/// Largest `KernelSet::spmm_nb` of any set (AVX-512: 64), for stack scratch.
const MAX_SPMM_NB: usize = 64;

/// Most input rows of a sparse weight: every block offset `row · NB` must fit the kernels' u32
/// offsets (a real layer is far below: 2^25 inputs).
const MAX_SPARSE_ROWS: usize = (u32::MAX as usize) / (2 * MAX_SPMM_NB);

/// A sparse convolution (one group) through the sparse block kernel, either
///
/// * **direct** (stride 1): the input is copied once per sample into zero-padded channel
///   planes `Hp × Wp`; output pixels are computed over the padded width (`oh × Wp` "virtual"
///   pixels, the `Wp − ow` extra columns dropped), so tap (ky, kx, c) of every pixel in a block
///   is the same shift `c·Hp·Wp + ky·dh·Wp + kx·dw` of the block start: no im2col at all;
/// * or **im2col** (other strides): a block of output pixels copied transposed, tap by tap.
struct SpConvX {
    win: Window,
    w: SparseW,
    offs: SparseOffsets,
    /// `Some((hp, wp))`: the direct form over planes of this size.
    direct: Option<(usize, usize)>,
    /// Scratch floats: padded planes (+ tail) or im2col block, then the output block.
    scratch: usize,
    bias: Vec<f32>,
    clamp: Option<(f32, f32)>,
    post: Act,
}

/// Largest zero-padded copy of a conv input (floats) the executor keeps; bigger ones (huge
/// padding) use the im2col panels instead.
const MAX_PADDED_FLOATS: usize = 1 << 22;

/// A convolution through the GEMM tiles: per group, `[(ky, kx, ci) × oc_g]` packed.
struct ConvX {
    /// The geometry the panels see: the program's window, or, when `padded`, the window over
    /// the zero-padded copy of the input (padding 0, every window inside: all indirect).
    win: Window,
    /// `Some(original window)` when the input is first copied into a zero-padded buffer.
    padded: Option<Window>,
    out_c: usize,
    icg: usize,
    ocg: usize,
    /// Per group: packed weights and bias (padded to whole panels).
    w: Vec<PackedB>,
    bias: Vec<Vec<f32>>,
    /// ReLU or Clip in the tile's epilogue; any other activation after it.
    clamp: Option<(f32, f32)>,
    post: Act,
    /// Per group: offset of tap (ky, kx, ci) from a pixel's top-left input element (im2col
    /// column order), for the indirect kernel.
    offs: Vec<Vec<u32>>,
    /// Per group: the largest offset (bounds check of an indirect panel).
    last_off: Vec<usize>,
    /// A max pool fused in (`exec/cpool.rs`): the step writes the pooled output, band by band.
    #[cfg_attr(not(any(target_os = "wasi", test)), allow(dead_code))]
    pool: Option<PoolGeom>,
}

/// A 5×5 stride-1 convolution through Winograd F(2×2, 5×5) (`kernels/src/winograd.rs`; when
/// it is chosen: `winograd_pays`, measured in KERNELS.md, "Winograd").
struct WinoX {
    win: Window,
    w: WinogradW,
    bias: Vec<f32>,
    clamp: Option<(f32, f32)>,
    post: Act,
}

impl ConvX {
    fn k(&self) -> usize {
        self.win.kh * self.win.kw * self.icg
    }
}

/// A sparse Dense weight by input row, for single rows: entries (`KernelSet::spmv`, a scalar
/// scatter) or, for a `BlockSparseDense`, `1 × bw` blocks (`KernelSet::bspmv`, whole vectors).
enum SpRows {
    Entries(SparseW),
    Blocks(BlockW),
}

impl SpRows {
    /// `y = clamp(x · W + bias)` for one row; `acc` is scratch for the blocks' accumulator.
    fn run(&self, ks: KernelSet, x: &[f32], bias: &[f32], clamp: Option<(f32, f32)>, acc: &mut [f32], y: &mut [f32]) {
        match self {
            SpRows::Entries(wt) => ks.spmv(x, wt, bias, clamp, y),
            SpRows::Blocks(bw) => ks.bspmv(x, bw, bias, clamp, acc, y),
        }
    }
}

enum XK {
    Transpose { c: usize, hw: usize, to_hwc: bool },
    Dense { w: PackedB, bias: Vec<f32>, tile_relu: bool, post: Act },
    Conv(Box<ConvX>),
    Wino(Box<WinoX>),
    /// Sparse Dense: `w` by output column (row blocks), `wt` by input row (single rows).
    SpDense { w: SparseW, offs: SparseOffsets, wt: SpRows, bias: Vec<f32>, clamp: Option<(f32, f32)>, post: Act },
    SpConv(Box<SpConvX>),
    /// Depthwise: `w` is `[kh·kw × C]`.
    DwConv { win: Window, w: Vec<f32>, bias: Vec<f32>, lo: f32, hi: f32, post: Act },
    /// `fast`: the padding-free floor-mode max pool of the SIMD kernels.
    Pool { kind: PoolKind, win: Window, fast: Option<PoolGeom> },
    Gap { c: usize, hw: usize },
    Binary { op: BinOp, bc: usize, act: Act },
    Concat { channels: Vec<usize>, hw: usize },
    Act { act: Act },
    Affine { scale: Vec<f32>, shift: Vec<f32>, act: Act },
    Softmax { len: usize },
    Copy,
    Quantize { q: QParams },
    QDense(Box<QDenseX>),
    QConv(Box<QConvX>),
    Sign,
    BDense(Box<BDenseX>),
}

/// A binary Dense: ±1 weights packed for the set, then `act(alpha[c] · dot + bias[c])`.
struct BDenseX {
    w: PackedBB,
    /// A fused `Affine → Sign` before it (`exec/bfuse.rs`): per input position, the scale and
    /// shift the packer applies before taking the sign.
    pre: Option<(Vec<f32>, Vec<f32>)>,
    alpha: Vec<f32>,
    bias: Vec<f32>,
    act: Act,
    /// A fused `→ Affine → Sign → BDense` after it (`exec/bfuse.rs`, "stacks"): this layer's
    /// outputs are never written as f32; `rule` turns each dot product straight into the next
    /// layer's input bit (its alpha, bias and act are folded into the rule), and the step's
    /// output is the last layer's.
    then: Option<Box<(BSignRule, BDenseX)>>,
    /// A fused in-place `Affine` after the step (`exec/bfuse.rs`, "posts"; the last layer's):
    /// `act(y · scale + shift)` applied to each output row as the Affine step applies it.
    post: Option<(Vec<f32>, Vec<f32>, Act)>,
    /// A fused `Quantize` whose only reader is an integer Dense on the same grid (`exec/bfuse.rs`,
    /// "codes"; the last layer's): the step writes u8 codes (`out_u8`) instead of f32 values.
    quant: Option<QParams>,
}

impl BDenseX {
    /// The layer whose f32 outputs the step writes.
    fn last(&self) -> &BDenseX {
        match &self.then {
            Some(t) => t.1.last(),
            None => self,
        }
    }
}

/// Rows a binary Dense packs and multiplies at a time (bounds its scratch: `BROWS` packed rows
/// and their i32 sums).
const BROWS: usize = 64;

/// An integer Dense: weights packed for the set, epilogue as lowered.
struct QDenseX {
    w: PackedQB,
    input: QParams,
    epi: QEpi,
}

/// An integer convolution (one group), `QROWS` pixels at a time: gathered from its input
/// (`qconv.rs`; `w` then holds the gathered layout's weights) or through im2col rows of u8.
struct QConvX {
    win: Window,
    out_c: usize,
    w: PackedQB,
    input: QParams,
    epi: QEpi,
    gather: Option<qconv::QGather>,
}

/// Where a value lives: the caller's input, or buffer `buf` (`batched`: row `s` of sample `s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Input,
    Buf { buf: usize, batched: bool },
}

struct XStep {
    k: XK,
    ins: Vec<Loc>,
    out: Loc,
    /// The output is input 0's buffer (elementwise in place).
    in_place: bool,
    /// Input and output lengths per sample.
    in_lens: Vec<usize>,
    out_len: usize,
    /// Input 0 / the output holds u8 codes, one byte per value at the start of the f32 slot
    /// (`u8_values`): set only on Quantize, integer steps and fast max pools.
    in_u8: bool,
    out_u8: bool,
}

/// A compiled program for one kernel set and batch size.
pub(crate) struct Exec {
    ks: KernelSet,
    max_batch: usize,
    input_len: usize,
    output_len: usize,
    steps: Vec<XStep>,
    /// Steps `..split` run one sample at a time.
    split: usize,
    bufs: Vec<AlignedBuf>,
    /// Row length (floats per sample) of each buffer.
    stride: Vec<usize>,
    out: Loc,
    scratch: Scratch,
}

/// Per-call scratch shared by all steps.
struct Scratch {
    /// One packed A panel (`MR × largest K`).
    apanel: AlignedBuf,
    /// The zero-padded copy of a padded convolution's input (largest of them).
    padded: AlignedBuf,
    /// Integer steps: one quantized sample (conv input), `QROWS` rows of u8 activations, their
    /// i32 products, and the integer kernels' A panel.
    q: QScratch,
    /// The transposed input and output blocks of the sparse kernels (largest of them).
    sparse: AlignedBuf,
    /// A Winograd convolution's transformed input and output blocks (largest of them).
    wino: AlignedBuf,
    /// A conv fused with its max pool: one band of conv rows (largest of them, `exec/cpool.rs`).
    band: AlignedBuf,
    /// Binary steps: `BROWS` sign-packed rows and their i32 dot products (largest of them).
    bits: Vec<u64>,
    bacc: Vec<i32>,
    /// A fused stack's second bit buffer (the layers alternate between the two).
    bits2: Vec<u64>,
    /// One f32 row of a binary step that writes u8 codes.
    brow: Vec<f32>,
}

#[derive(Default)]
struct QScratch {
    x: Vec<u8>,
    a: Vec<u8>,
    c: Vec<i32>,
    panel: Vec<i32>,
    /// Set by `run_chunk` around a first per-sample Quantize or QConv that reads the plan's
    /// input (`Exec::checks_input`): its quantizer then checks the floats on that read
    /// (`quantize_input`) and `nonfinite` records a NaN or ±∞.
    check: bool,
    nonfinite: bool,
}

/// A per-sample quantizer of f32 input (Quantize, QConv): the checking one when `q.check` (recording a non-finite
/// value in `q.nonfinite`), else the plain one (the same bytes either way).
#[inline]
fn quantize_input(ks: KernelSet, p: QParams, src: &[f32], dst: &mut [u8], check: bool, nonfinite: &mut bool) {
    if check {
        match ks.quantize_checked(p, src, dst) {
            Some(finite) => *nonfinite |= !finite,
            None => ks.quantize(p, src, dst),
        }
    } else {
        ks.quantize(p, src, dst)
    }
}

impl QScratch {
    fn reserve(&mut self, x: usize, k_padded: usize, n: usize) {
        self.x.resize(self.x.len().max(x + QSLACK), 0);
        self.a.resize(self.a.len().max(QROWS * k_padded + QSLACK), 0);
        self.c.resize(self.c.len().max(QROWS * n), 0);
        self.panel.resize(self.panel.len().max(QMAX_MR * k_padded / 2), 0);
    }
}

fn padded_bias(b: &[f32], n_padded: usize) -> Vec<f32> {
    let mut v = vec![0.0; n_padded.max(b.len())];
    v[..b.len()].copy_from_slice(b);
    v
}

fn out_len(k: &Kernel) -> usize {
    k.out_len()
}

fn in_lens(k: &Kernel) -> Vec<usize> {
    k.in_lens()
}

fn bad(step: usize, node: usize, what: String) -> Error {
    Error::bad_model(format!("program step {step} (graph node {node}): {what}"))
}

/// Whether `out` positions fit a window of `span` over `len` (stride `s`, padding `lo`, `hi`):
/// up to the larger of the floor and ceil rules (a floor-mode conv may place its last window
/// in the trailing padding; ceil mode never does, see `graph::window_out`).
fn fits(len: usize, span: usize, s: usize, lo: usize, hi: usize, out: usize) -> bool {
    [false, true].iter().any(|&c| crate::graph::window_out(len, span, s, lo, hi, 1, c).is_some_and(|m| out <= m))
}

fn win_ok(w: &Window, kh_span: usize, kw_span: usize) -> bool {
    fits(w.h, kh_span, w.sh, w.pad[0], w.pad[2], w.oh) && fits(w.w, kw_span, w.sw, w.pad[1], w.pad[3], w.ow) && w.c > 0 && w.oh > 0 && w.ow > 0
}

/// `check_step` for the sparse, integer and binary kernels: its own wasm function, so an f32
/// model's load never compiles it (wasm/DESIGN.md, "What the load path compiles").
#[inline(never)]
fn check_rare(j: usize, node: usize, kernel: &Kernel) -> Result<bool> {
    Ok(match kernel {
        Kernel::SparseDense { k, out, weight, bias, .. } => {
            if let Err(e) = weight.check() {
                return Err(bad(j, node, format!("SparseDense weight: {e}")));
            }
            weight.rows == *k && weight.cols == *out && bias.len() == *out && weight.rows <= MAX_SPARSE_ROWS
        }
        Kernel::BlockSparseDense { k, out, block, weight, bias, .. } => {
            if let Err(e) = weight.check() {
                return Err(bad(j, node, format!("BlockSparseDense weight: {e}")));
            }
            if !BLOCK_WIDTHS.contains(block) {
                return Err(bad(j, node, format!("BlockSparseDense block width {block}: want one of {BLOCK_WIDTHS:?}")));
            }
            weight.rows == *k && weight.cols == *out && bias.len() == *out && weight.rows <= MAX_SPARSE_ROWS
        }
        Kernel::SparseConv2d { win, out_c, weight, bias, .. } => {
            if let Err(e) = weight.check() {
                return Err(bad(j, node, format!("SparseConv2d weight: {e}")));
            }
            win.dh > 0
                && win.dw > 0
                && win.kh > 0
                && win.kw > 0
                && weight.rows == win.kh * win.kw * win.c
                && weight.cols == *out_c
                && weight.rows <= MAX_SPARSE_ROWS
                && bias.len() == *out_c
                && win_ok(win, (win.kh - 1) * win.dh + 1, (win.kw - 1) * win.dw + 1)
        }
        Kernel::QDense { k, out, weight, bias, epi, .. } => {
            weight.len() == k * out && bias.len() == *out && *k <= MAX_QK && !weight.contains(&i8::MIN) && qout_ok(epi, *out)
        }
        Kernel::QConv2d { win, out_c, weight, bias, epi, .. } => {
            let kk = win.kh * win.kw * win.c;
            win.dh > 0
                && win.dw > 0
                && win.kh > 0
                && win.kw > 0
                && weight.len() == kk * out_c
                && bias.len() == *out_c
                && kk <= MAX_QK
                && !weight.contains(&i8::MIN)
                && qout_ok(epi, *out_c)
                && win_ok(win, (win.kh - 1) * win.dh + 1, (win.kw - 1) * win.dw + 1)
        }
        Kernel::Quantize { q, .. } => q_ok(*q),
        Kernel::BDense { k, out, plus, alpha, bias, .. } => {
            plus.len() == k * out
                && alpha.len() == *out
                && bias.len() == *out
                && (1..=MAX_BK).contains(k)
                && alpha.iter().all(|a| a.is_finite() && *a >= 0.0)
                && bias.iter().all(|b| b.is_finite())
        }
        _ => true,
    })
}

/// Checks one step's geometry so the kernels' slice arithmetic cannot go out of bounds on a
/// hand-built (or buggy) program: the lowering produces consistent steps, this says so.
fn check_step(j: usize, s: &crate::lower::Step, slots: &[usize]) -> Result<()> {
    let node = s.node;
    let lens = in_lens(&s.kernel);
    if lens.len() != s.inputs.len() {
        return Err(bad(j, node, format!("{} takes {} inputs, got {}", s.kernel.name(), lens.len(), s.inputs.len())));
    }
    for (&slot, &len) in s.inputs.iter().chain(std::iter::once(&s.output)).zip(lens.iter().chain(std::iter::once(&out_len(&s.kernel)))) {
        match slots.get(slot) {
            Some(&n) if n >= len && len > 0 => {}
            _ => return Err(bad(j, node, format!("slot {slot} cannot hold {len} floats"))),
        }
    }
    let ok = match &s.kernel {
        Kernel::Dense { k, out, weight, bias, .. } => weight.len() == k * out && bias.len() == *out,
        Kernel::Conv2d { win, out_c, groups, weight, bias, .. } => {
            let g = *groups;
            g > 0
                && win.c % g == 0
                && out_c % g == 0
                && win.dh > 0
                && win.dw > 0
                && weight.len() == win.kh * win.kw * (win.c / g) * out_c
                && bias.len() == *out_c
                && win_ok(win, (win.kh.max(1) - 1) * win.dh + 1, (win.kw.max(1) - 1) * win.dw + 1)
                && win.kh > 0
                && win.kw > 0
        }
        Kernel::Pool { win, .. } => {
            win.kh > 0
                && win.kw > 0
                && win.pad[0] < win.kh
                && win.pad[2] < win.kh
                && win.pad[1] < win.kw
                && win.pad[3] < win.kw
                && win_ok(win, win.kh, win.kw)
        }
        Kernel::Binary { len, b_per_channel, .. } => b_per_channel.is_none_or(|c| c > 0 && len % c == 0),
        Kernel::Affine { c, scale, shift, .. } => scale.len() == *c && shift.len() == *c && *c > 0,
        Kernel::SparseDense { .. }
        | Kernel::BlockSparseDense { .. }
        | Kernel::SparseConv2d { .. }
        | Kernel::QDense { .. }
        | Kernel::QConv2d { .. }
        | Kernel::Quantize { .. }
        | Kernel::BDense { .. } => check_rare(j, node, &s.kernel)?,
        _ => true,
    };
    if !ok {
        return Err(bad(j, node, format!("inconsistent {} geometry or weights", s.kernel.name())));
    }
    Ok(())
}

fn q_ok(q: QParams) -> bool {
    q.scale.is_finite() && q.scale > 0.0 && (0..=255).contains(&q.zero_point)
}

fn qout_ok(e: &QOut, n: usize) -> bool {
    match e {
        QOut::Requant { out, mult, lo } => q_ok(*out) && mult.len() == n && (0..=255).contains(lo),
        QOut::Dequant { scale, .. } => scale.len() == n,
    }
}

impl Exec {
    /// `budget`: bytes the activation buffers may take (`budget.rs`); `max_batch` shrinks to
    /// fit. The program is consumed (its weights are dropped as they are packed).
    #[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
    pub(crate) fn new(p: Program, max_batch: usize, ks: KernelSet, budget: usize) -> Result<Exec> {
        if max_batch == 0 {
            return Err(Error::bad_input(
                "max_batch is 0; a plan needs room for at least 1 sample (use 1 for single predictions)",
            ));
        }
        let nslots = p.slots.len();
        if p.input_slot >= nslots || p.output_slot >= nslots || p.input_slot == p.output_slot {
            return Err(Error::bad_model("program: input/output slots out of range or equal"));
        }
        for (j, s) in p.steps.iter().enumerate() {
            check_step(j, s, &p.slots)?;
            if s.output == p.input_slot {
                return Err(bad(j, s.node, "writes the input slot".into()));
            }
            let in_place = s.inputs.first() == Some(&s.output);
            let may = s.kernel.may_run_in_place();
            if (s.inputs.contains(&s.output) && !(in_place && may)) || (in_place && s.inputs[1..].contains(&s.output)) {
                return Err(bad(j, s.node, format!("{} cannot run in place", s.kernel.name())));
            }
        }
        let mut p = p;
        drop_dot7_input_quantize(&mut p, ks);
        let split = p
            .steps
            .iter()
            .position(|s| {
                matches!(
                    s.kernel,
                    Kernel::Dense { .. } | Kernel::SparseDense { .. } | Kernel::BlockSparseDense { .. } | Kernel::QDense { .. } | Kernel::BDense { .. }
                )
            })
            .unwrap_or(p.steps.len());

        // Values: one per step output (in-place steps continue input 0's value).
        // value 0 = the input.
        let mut cur = vec![usize::MAX; nslots];
        cur[p.input_slot] = 0;
        let mut v_len = vec![p.input_len];
        let mut v_first = vec![0usize];
        let mut v_last = vec![0usize];
        let mut v_batched = vec![false];
        let mut step_vals: Vec<(Vec<usize>, usize)> = Vec::with_capacity(p.steps.len());
        for (j, s) in p.steps.iter().enumerate() {
            let mut ins = Vec::with_capacity(s.inputs.len());
            for &sl in &s.inputs {
                let v = cur[sl];
                if v == usize::MAX {
                    return Err(bad(j, s.node, format!("reads slot {sl} before any step wrote it")));
                }
                v_last[v] = j;
                if j >= split {
                    v_batched[v] = true;
                }
                ins.push(v);
            }
            let out = if s.inputs.first() == Some(&s.output) {
                ins[0]
            } else {
                v_len.push(out_len(&s.kernel));
                v_first.push(j);
                v_last.push(j);
                v_batched.push(false);
                v_len.len() - 1
            };
            if j >= split {
                v_batched[out] = true;
            }
            cur[s.output] = out;
            step_vals.push((ins, out));
        }
        let out_v = cur[p.output_slot];
        if out_v == usize::MAX || out_v == 0 {
            return Err(Error::bad_model("program: no step writes the output slot"));
        }
        if v_len[out_v] < p.output_len {
            return Err(Error::bad_model("program: the output value is shorter than output_len"));
        }
        v_batched[out_v] = true;
        v_last[out_v] = usize::MAX;
        for v in 1..v_len.len() {
            // A batch value written per sample must survive the whole per-sample stage.
            if v_batched[v] && v_first[v] < split {
                v_last[v] = v_last[v].max(split);
            }
        }

        // The integer and binary passes below run only for programs with such steps: an f32
        // model then never calls them, so V8 never compiles their ~11 KB of wasm on its cold
        // start (wasm/DESIGN.md, "What the load path compiles"). Without a Quantize, QDense or
        // QConv2d no value is on a u8 grid, which is what `u8_values` would find.
        let has_int = p.steps.iter().any(|s| matches!(s.kernel, Kernel::Quantize { .. } | Kernel::QDense { .. } | Kernel::QConv2d { .. }));
        let is_u8 = if has_int { u8_values(&p.steps, &step_vals, v_len.len(), out_v) } else { vec![false; v_len.len()] };

        // Buffers by liveness, one pool per kind.
        let mut ends_at = vec![Vec::new(); p.steps.len()];
        for (v, &last) in v_last.iter().enumerate().skip(1) {
            if let Some(list) = ends_at.get_mut(last) {
                list.push(v);
            }
        }
        let mut v_buf = vec![usize::MAX; v_len.len()];
        let mut stride: Vec<usize> = Vec::new();
        let mut buf_batched: Vec<bool> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        for (j, (_, out)) in step_vals.iter().enumerate() {
            let o = *out;
            if v_buf[o] == usize::MAX && o != 0 {
                let need = v_len[o];
                let cands = free.iter().enumerate().filter(|(_, &b)| buf_batched[b] == v_batched[o]);
                let fit = cands.clone().filter(|(_, &b)| stride[b] >= need).min_by_key(|(_, &b)| stride[b]);
                let pick = fit.or_else(|| cands.max_by_key(|(_, &b)| stride[b])).map(|(i, _)| i);
                v_buf[o] = match pick {
                    Some(i) => {
                        let b = free.swap_remove(i);
                        stride[b] = stride[b].max(need);
                        b
                    }
                    None => {
                        stride.push(need);
                        buf_batched.push(v_batched[o]);
                        stride.len() - 1
                    }
                };
            }
            // Release the values that end here (after the output took its buffer, so a
            // step never writes over its own inputs unless it runs in place).
            for &v in &ends_at[j] {
                if v != o {
                    free.push(v_buf[v]);
                }
            }
        }

        let loc = |v: usize| if v == 0 { Loc::Input } else { Loc::Buf { buf: v_buf[v], batched: buf_batched[v_buf[v]] } };

        let mut k_max = 0usize;
        let mut pad_max = 0usize;
        let mut sparse_max = 0usize;
        let mut wino_max = 0usize;
        let (mut bwords_max, mut bn_max) = (0usize, 0usize);
        let mut qs = QScratch::default();
        let mut steps = Vec::with_capacity(p.steps.len());
        let (input_len, output_len) = (p.input_len, p.output_len);
        // The program is consumed step by step: each step's weights are dropped once packed, so
        // a model's weights are held about once (program or packed), not twice.
        for (s, (ins, out)) in p.steps.into_iter().zip(&step_vals) {
            let k = compile(&s.kernel, ks, &mut k_max, &mut qs);
            match &k {
                XK::Conv(g) if g.padded.is_some() => pad_max = pad_max.max(g.win.h * g.win.w * g.win.c),
                XK::SpDense { w, wt, .. } => {
                    let acc = if let SpRows::Blocks(b) = wt { b.acc_len() } else { 0 };
                    sparse_max = sparse_max.max(ks.spmm_scratch(w)).max(acc);
                }
                XK::SpConv(g) => sparse_max = sparse_max.max(g.scratch),
                XK::Wino(g) => wino_max = wino_max.max(ks.winograd_scratch(&g.w)),
                XK::BDense(d) => {
                    bwords_max = bwords_max.max(d.w.words());
                    bn_max = bn_max.max(d.w.n());
                }
                _ => {}
            }
            steps.push(XStep {
                k,
                ins: ins.iter().map(|&v| loc(v)).collect(),
                out: loc(*out),
                in_place: s.inputs.first() == Some(&s.output),
                in_lens: in_lens(&s.kernel),
                out_len: out_len(&s.kernel),
                in_u8: ins.first().is_some_and(|&v| is_u8[v]),
                out_u8: is_u8[*out],
            });
        }
        let mut split = split;
        // Each binary pass starts from a BDense step, the pool fusions from a Conv / QConv one.
        if steps.iter().any(|s| matches!(s.k, XK::BDense(_))) {
            bfuse::fuse_sign_affines(&mut steps, &mut step_vals, &mut split, out_v);
            bfuse::fuse_binary_stacks(&mut steps, &mut step_vals, &mut split, out_v);
            bfuse::fuse_binary_posts(&mut steps, &mut step_vals, &mut split);
            bfuse::fuse_binary_codes(&mut steps, &mut step_vals, &mut split, out_v);
        }
        // Before the integer one: it keeps `step_vals` in step with `steps`, which the integer
        // one (the last fusion) does not need to.
        #[cfg(any(target_os = "wasi", test))]
        let band_max = cpool::fuse_conv_max_pools(&mut steps, &mut step_vals, &mut split);
        #[cfg(not(any(target_os = "wasi", test)))]
        let band_max = 0usize;
        if steps.iter().any(|s| matches!(s.k, XK::QConv(_))) {
            qconv::fuse_max_pools(&mut steps, &step_vals, &mut split, &mut qs);
        }
        // Memory budget (`budget.rs`): the per-sample buffers and the padded-conv scratch are
        // fixed; the batch buffers grow with the chunk, which shrinks to fit.
        let fixed: usize = stride
            .iter()
            .zip(&buf_batched)
            .filter(|(_, &b)| !b)
            .map(|(&s, _)| s)
            .fold(pad_max.saturating_add(sparse_max).saturating_add(wino_max).saturating_add(band_max), usize::saturating_add);
        let per_sample: usize = stride.iter().zip(&buf_batched).filter(|(_, &b)| b).map(|(&s, _)| s).fold(0, usize::saturating_add);
        let max_batch = crate::budget::chunk(budget, fixed, per_sample, max_batch)?;
        let mut total = 0usize;
        let mut bufs = Vec::with_capacity(stride.len());
        for (b, &st) in stride.iter().enumerate() {
            let n = if buf_batched[b] { st.checked_mul(max_batch) } else { Some(st) };
            total = n.and_then(|n| total.checked_add(n)).filter(|&t| t <= MAX_ARENA_FLOATS).ok_or_else(|| {
                Error::bad_input(format!(
                    "max_batch {max_batch} needs more than the arena limit of {MAX_ARENA_FLOATS} floats for this model; \
                     use a smaller max_batch (run() still accepts any batch, in chunks)"
                ))
            })?;
            bufs.push(AlignedBuf::zeros(n.unwrap_or(0)));
        }
        Ok(Exec {
            ks,
            max_batch,
            input_len,
            output_len,
            steps,
            split,
            bufs,
            stride,
            out: loc(out_v),
            scratch: Scratch {
                apanel: AlignedBuf::zeros(MAX_MR.max(ks.mr()) * k_max),
                q: qs,
                padded: AlignedBuf::zeros(pad_max),
                sparse: AlignedBuf::zeros(sparse_max),
                wino: AlignedBuf::zeros(wino_max),
                band: AlignedBuf::zeros(band_max),
                bits: vec![0; BROWS * bwords_max],
                bacc: vec![0; BROWS * bn_max],
                bits2: vec![0; BROWS * bwords_max],
                brow: vec![0.0; bn_max],
            },
        })
    }

    pub(crate) fn kernel_set(&self) -> KernelSet {
        self.ks
    }
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }
    pub(crate) fn input_len(&self) -> usize {
        self.input_len
    }
    pub(crate) fn output_len(&self) -> usize {
        self.output_len
    }

    /// Whether the first step reads every input value through a sign-packer (a binary step on
    /// the program input, nothing before it) or quantizes it straight into the 7-bit tile's
    /// panel (an integer Dense with Dot7 weights on the input) or through a quantizer that
    /// checks on its read (`KernelSet::quantize_checks`: the x86_64 FMA sets): then
    /// [`Exec::run_chunk`] finds a non-finite input on that read, and `Plan::run` needs no pass
    /// of its own over the input.
    pub(crate) fn checks_input(&self) -> bool {
        self.steps.first().is_some_and(|st| {
            let reads = match &st.k {
                XK::BDense(_) => self.split == 0,
                XK::QDense(d) => self.split == 0 && !st.in_u8 && (d.w.layout() == QLayout::Dot7 || self.ks.quantize_checks()),
                // The codes of the input (the int8 MLP's first step): [`Exec::run_chunk`]
                // quantizes every sample's row through the checking quantizer first.
                // Into a per-sample slot (the int8 CNN's first step, whose codes its first conv
                // reads), or a conv on the floats: checked sample by sample in the per-sample
                // loop (`quantize_input`), which `run_chunk` looks at before any batched step
                // runs or anything is written to `out`.
                XK::Quantize { .. } => {
                    st.out_u8 && self.ks.quantize_checks() && (matches!(st.out, Loc::Buf { batched: true, .. }) || self.split > 0)
                }
                XK::QConv(_) => self.split > 0 && !st.in_u8 && self.ks.quantize_checks(),
                _ => false,
            };
            reads && st.ins.first() == Some(&Loc::Input) && st.in_lens.first() == Some(&self.input_len)
        })
    }

    /// Runs `nb <= max_batch` samples (`input`: `nb × input_len`, `out`: `nb × output_len`).
    /// The input must be finite unless [`Exec::checks_input`]: then a non-finite value makes it
    /// return `false` after the first step (a first QConv: after the per-sample steps), with
    /// `out` untouched.
    pub(crate) fn run_chunk(&mut self, input: &[f32], nb: usize, out: &mut [f32]) -> bool {
        debug_assert!(nb >= 1 && nb <= self.max_batch);
        let checks = self.checks_input();
        let Exec { ks, input_len, output_len, steps, split, bufs, stride, out: out_loc, scratch, .. } = self;
        let (split, il) = (*split, *input_len);
        // A first step that quantizes the input to codes, checked on that read: all samples
        // first, so a non-finite value stops the chunk before any other step runs.
        let mut first = 0;
        if let (true, Some(st)) = (checks && split > 0, steps.first()) {
            // Only into a batched slot (one row per sample): a slot that holds one sample at
            // a time is read by per-sample steps before the next sample's codes are written.
            if let (XK::Quantize { q }, Loc::Buf { buf, batched: true }) = (&st.k, st.out) {
                let (ld, n) = (4 * stride[buf], st.out_len);
                let y = bytes_mut(bufs[buf].as_mut_slice());
                let mut finite = true;
                for s in 0..nb {
                    finite &= ks.quantize_checked(*q, &input[s * il..(s + 1) * il], &mut y[s * ld..s * ld + n]) != Some(false);
                }
                if !finite {
                    return false;
                }
                first = 1;
            }
        }
        // A first per-sample Quantize (or QConv) on the input checks it on its read
        // (`checks_input`: the int8 CNN); the rest of each sample's steps run on whatever codes
        // a bad value gave (finite bytes), and the chunk stops below, before the batched steps
        // and the output.
        let sample_checks = checks && first == 0 && split > 0 && matches!(steps.first().map(|st| &st.k), Some(XK::QConv(_) | XK::Quantize { .. }));
        scratch.q.nonfinite = false;
        for s in 0..nb {
            for (i, st) in steps[first..split].iter().enumerate() {
                scratch.q.check = sample_checks && i == 0;
                sample_step(*ks, st, s, input, il, bufs, stride, scratch);
            }
        }
        scratch.q.check = false;
        if sample_checks && scratch.q.nonfinite {
            return false;
        }
        for (i, st) in steps[split..].iter().enumerate() {
            if let XK::Dense { w, bias, tile_relu, post } = &st.k {
                dense_step(*ks, st, w, bias, *tile_relu, *post, nb, input, il, bufs, stride, &mut scratch.apanel);
            } else if let XK::SpDense { w, offs, wt, bias, clamp, post } = &st.k {
                sparse_dense_step(*ks, st, (w, offs, wt), bias, *clamp, *post, nb, input, il, bufs, stride, &mut scratch.sparse);
            } else if let XK::QDense(d) = &st.k {
                let finite = qdense_step(*ks, st, d, nb, input, il, bufs, stride, &mut scratch.q);
                if checks && i == 0 && !finite {
                    return false;
                }
            } else if let XK::BDense(d) = &st.k {
                let finite = bdense_step(*ks, st, d, nb, input, il, bufs, stride, scratch);
                if checks && i == 0 && !finite {
                    return false;
                }
            } else if let (true, Loc::Buf { buf, .. }, XK::Act { act: a }) = (st.in_place, st.out, &st.k) {
                // In place over rows that may have gaps: one pass per row, no per-sample setup.
                let st_len = stride[buf];
                for row in bufs[buf].as_mut_slice()[..nb * st_len].chunks_exact_mut(st_len) {
                    generic_act_f32(*a, &mut row[..st.out_len]);
                }
            } else if let (true, Loc::Buf { buf, .. }, XK::Affine { scale, shift, act }) = (st.in_place, st.out, &st.k) {
                // As the Act above (a BatchNorm after a binary layer): the same per-row kernel
                // as `sample_step`, without its per-sample setup.
                let st_len = stride[buf];
                for row in bufs[buf].as_mut_slice()[..nb * st_len].chunks_exact_mut(st_len) {
                    generic_affine_f32(&mut row[..st.out_len], scale, shift, *act);
                }
            } else if let (true, false, Loc::Buf { buf, .. }, XK::Quantize { q }) = (st.in_place, st.out_u8, st.out, &st.k) {
                let st_len = stride[buf];
                for row in bufs[buf].as_mut_slice()[..nb * st_len].chunks_exact_mut(st_len) {
                    ks.fake_quantize(*q, &mut row[..st.out_len]);
                }
            } else if let (true, Loc::Buf { buf, .. }, XK::Softmax { len }) = (st.in_place, st.out, &st.k) {
                let st_len = stride[buf];
                if st_len == *len {
                    softmax_rows(&mut bufs[buf].as_mut_slice()[..nb * st_len], *len);
                } else {
                    for row in bufs[buf].as_mut_slice()[..nb * st_len].chunks_exact_mut(st_len) {
                        softmax_rows(&mut row[..*len], *len);
                    }
                }
            } else {
                for s in 0..nb {
                    sample_step(*ks, st, s, input, il, bufs, stride, scratch);
                }
            }
        }
        let ol = *output_len;
        let Loc::Buf { buf, .. } = *out_loc else { unreachable!("the output is never the input") };
        let (src, st) = (bufs[buf].as_slice(), stride[buf]);
        if st == ol {
            out[..nb * ol].copy_from_slice(&src[..nb * ol]);
        } else {
            for (s, o) in out.chunks_exact_mut(ol).enumerate().take(nb) {
                o.copy_from_slice(&src[s * st..s * st + ol]);
            }
        }
        true
    }
}

/// The padding-free floor-mode max pool the SIMD kernels (and the u8 one) take.
fn fast_pool(kind: PoolKind, win: &Window) -> Option<PoolGeom> {
    let fits = win.pad == [0; 4] && (win.oh - 1) * win.sh + win.kh <= win.h && (win.ow - 1) * win.sw + win.kw <= win.w;
    (kind == PoolKind::Max && fits)
        .then_some(PoolGeom { c: win.c, h: win.h, w: win.w, kh: win.kh, kw: win.kw, sh: win.sh, sw: win.sw, oh: win.oh, ow: win.ow })
}

/// Which values are kept as u8 codes between steps instead of f32 on their grid (QUANT.md,
/// "Values between steps"). A value qualifies when it is written, not in place, by a
/// `Quantize`, a requantizing integer step, or a fast max pool of a u8 value, and every step
/// that reads it is an integer step on the same grid (as its first input) or such a max pool
/// whose own output qualifies; never the program's input or output. The outputs are the same
/// bits either way: a reader would quantize the f32 grid value back to exactly that code, and
/// a max of codes dequantizes to the max of their values.
#[inline(never)] // integer programs only (see its caller)
fn u8_values(steps: &[crate::lower::Step], vals: &[(Vec<usize>, usize)], nv: usize, out_v: usize) -> Vec<bool> {
    let same = |a: QParams, b: QParams| a.scale.to_bits() == b.scale.to_bits() && a.zero_point == b.zero_point;
    let mut grid: Vec<Option<QParams>> = vec![None; nv];
    for (s, (ins, out)) in steps.iter().zip(vals) {
        let in_place = s.inputs.first() == Some(&s.output);
        grid[*out] = if in_place {
            None
        } else {
            match &s.kernel {
                Kernel::Quantize { q, .. } => Some(*q),
                Kernel::QDense { epi: QOut::Requant { out, .. }, .. } | Kernel::QConv2d { epi: QOut::Requant { out, .. }, .. } => Some(*out),
                Kernel::Pool { kind, win } if fast_pool(*kind, win).is_some() => ins.first().and_then(|&v| grid[v]),
                _ => None,
            }
        };
    }
    grid[0] = None;
    grid[out_v] = None;
    loop {
        let mut changed = false;
        for (s, (ins, out)) in steps.iter().zip(vals) {
            let in_place = s.inputs.first() == Some(&s.output);
            for (i, &v) in ins.iter().enumerate() {
                let Some(g) = grid[v] else { continue };
                let ok = i == 0
                    && !in_place
                    && match &s.kernel {
                        Kernel::QDense { input, .. } | Kernel::QConv2d { input, .. } => same(*input, g),
                        Kernel::Pool { kind, win } if fast_pool(*kind, win).is_some() => grid[*out].is_some(),
                        _ => false,
                    };
                if !ok {
                    grid[v] = None;
                    changed = true;
                }
            }
            // A pool's output is u8 only while its input is.
            if matches!(s.kernel, Kernel::Pool { .. }) && grid[*out].is_some() && ins.first().is_none_or(|&v| grid[v].is_none()) {
                grid[*out] = None;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    grid.iter().map(Option::is_some).collect()
}

/// The bytes of an f32 slot, for values kept as u8 codes (one byte per value from the start).
fn bytes(x: &[f32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte of an initialized f32 is initialized.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// [`bytes`], writable.
fn bytes_mut(x: &mut [f32]) -> &mut [u8] {
    // SAFETY: as `bytes`; any bytes written make valid f32 bit patterns.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(x)) }
}

/// Packs one kernel's weights for `ks`.
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn compile(k: &Kernel, ks: KernelSet, k_max: &mut usize, qs: &mut QScratch) -> XK {
    let split_act = |act: Act| if act == Act::Relu { (true, Act::None) } else { (false, act) };
    match k {
        Kernel::Transpose { c, hw, to_hwc } => XK::Transpose { c: *c, hw: *hw, to_hwc: *to_hwc },
        Kernel::Dense { k, out, weight, bias, act } => {
            let kset = ks.for_width(*out);
            let w = kset.pack_b(*k, *out, MatRef::row_major(weight, *out));
            let bias = padded_bias(bias, w.n_padded());
            *k_max = (*k_max).max(*k);
            let (tile_relu, post) = split_act(*act);
            XK::Dense { w, bias, tile_relu, post }
        }
        Kernel::Conv2d { win, out_c, groups, weight, bias, act } => compile_conv(win, *out_c, *groups, weight, bias, *act, ks, k_max),
        Kernel::SparseDense { .. } | Kernel::BlockSparseDense { .. } | Kernel::SparseConv2d { .. } => compile_sparse(k, ks),
        Kernel::Pool { kind, win } => XK::Pool { kind: *kind, win: *win, fast: fast_pool(*kind, win) },
        Kernel::GlobalAvgPool { c, hw } => XK::Gap { c: *c, hw: *hw },
        Kernel::Binary { op, len, b_per_channel, act } => XK::Binary { op: *op, bc: b_per_channel.unwrap_or(*len), act: *act },
        Kernel::Concat { channels, hw } => XK::Concat { channels: channels.clone(), hw: *hw },
        Kernel::Act { act, .. } => XK::Act { act: *act },
        Kernel::Affine { scale, shift, act, .. } => XK::Affine { scale: scale.clone(), shift: shift.clone(), act: *act },
        Kernel::Softmax { len } => XK::Softmax { len: *len },
        Kernel::Copy { .. } => XK::Copy,
        Kernel::Quantize { q, .. } => XK::Quantize { q: *q },
        Kernel::QDense { .. } | Kernel::BDense { .. } | Kernel::QConv2d { .. } => compile_int(k, ks, qs),
        Kernel::Sign { .. } => XK::Sign,
    }
}

// The arms of `compile` that only some models take, each its own wasm function: V8 compiles a
// function on its first call, so an f32 MLP never compiles the convolution, sparse or integer
// packing (wasm/DESIGN.md, "What the load path compiles").

/// `compile` for a Conv2d: depthwise, Winograd or the packed direct convolution.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn compile_conv(win: &Window, out_c: usize, groups: usize, weight: &[f32], bias: &[f32], act: Act, ks: KernelSet, k_max: &mut usize) -> XK {
    let g = groups;
    let (icg, ocg) = (win.c / g, out_c / g);
    if g == win.c && g == out_c {
        // Depthwise: per group a [kh·kw × 1] column → [kh·kw × C].
        let taps = win.kh * win.kw;
        let mut w = vec![0.0f32; taps * win.c];
        for ch in 0..win.c {
            for t in 0..taps {
                w[t * win.c + ch] = weight[ch * taps + t];
            }
        }
        let (lo, hi, post) = match act_clamp(act) {
            Some((lo, hi)) => (lo, hi, Act::None),
            None => (f32::NEG_INFINITY, f32::INFINITY, act),
        };
        return XK::DwConv { win: *win, w, bias: bias.to_vec(), lo, hi, post };
    }
    if ks.winograd_pays(win, g, out_c) {
        // Its scratch (36 transformed tiles × ~64 × (ic + oc)) is capped like the padded
        // copy, so a huge layer cannot make the plan's fixed memory balloon: it stays direct.
        if let Some(w) = ks.winograd_pack(win, out_c, weight).filter(|w| ks.winograd_scratch(w) <= MAX_PADDED_FLOATS) {
            *k_max = (*k_max).max(win.c);
            let (clamp, post) = split_clamp(act);
            return XK::Wino(Box::new(WinoX { win: *win, w, bias: bias.to_vec(), clamp, post }));
        }
    }
    let kk = win.kh * win.kw * icg;
    let kset = ks.for_width(ocg);
    // A padded convolution runs on a zero-padded copy of its input, so that every
    // window lies inside it and every panel is indirect (no im2col at the borders).
    let [pt, pl, pb, pr] = win.pad;
    let (hp, wp) = (win.h + pt + pb, win.w + pl + pr);
    let padded = (win.pad != [0; 4] && hp.checked_mul(wp).and_then(|n| n.checked_mul(win.c)).is_some_and(|n| n <= MAX_PADDED_FLOATS))
        .then_some(*win);
    let geo = match padded {
        Some(_) => Window { h: hp, w: wp, pad: [0; 4], ..*win },
        None => *win,
    };
    let mut ws = Vec::with_capacity(g);
    let mut bs = Vec::with_capacity(g);
    let mut offs = Vec::with_capacity(g);
    for gi in 0..g {
        let wg = &weight[gi * kk * ocg..(gi + 1) * kk * ocg];
        let packed = kset.pack_b(kk, ocg, MatRef::row_major(wg, ocg));
        bs.push(padded_bias(&bias[gi * ocg..(gi + 1) * ocg], packed.n_padded()));
        ws.push(packed);
        let mut o = Vec::with_capacity(kk);
        for ky in 0..win.kh {
            for kx in 0..win.kw {
                for ci in 0..icg {
                    // Truncation cannot matter: an offset is only used when the window
                    // fits in the input, i.e. when it is < h·w·c <= 2^24.
                    o.push(((ky * win.dh * geo.w + kx * win.dw) * win.c + gi * icg + ci) as u32);
                }
            }
        }
        offs.push(o);
    }
    *k_max = (*k_max).max(kk);
    let (clamp, post) = match act {
        Act::None => (None, Act::None),
        a => match act_clamp(a) {
            Some(c) => (Some(c), Act::None),
            None => (None, a),
        },
    };
    let last_off = offs.iter().map(|o| o.iter().copied().max().map_or(0, |m| m as usize)).collect();
    XK::Conv(Box::new(ConvX { win: geo, padded, out_c, icg, ocg, w: ws, bias: bs, clamp, post, offs, last_off, pool: None }))
}

/// `compile` for the sparse kernels.
#[inline(never)]
fn compile_sparse(k: &Kernel, ks: KernelSet) -> XK {
    match k {
        Kernel::SparseDense { weight, bias, act, .. } => {
            let (clamp, post) = split_clamp(*act);
            XK::SpDense { offs: ks.spmm_rows(weight), wt: SpRows::Entries(weight.transpose()), w: weight.clone(), bias: bias.clone(), clamp, post }
        }
        Kernel::BlockSparseDense { block, weight, bias, act, .. } => {
            let (clamp, post) = split_clamp(*act);
            let wt = SpRows::Blocks(BlockW::from_sparse(weight, *block));
            XK::SpDense { offs: ks.spmm_rows(weight), wt, w: weight.clone(), bias: bias.clone(), clamp, post }
        }
        Kernel::SparseConv2d { win, weight, bias, act, .. } => {
            let (clamp, post) = split_clamp(*act);
            let nb = ks.spmm_nb();
            let (c, kw) = (win.c, win.kw);
            let [pt, pl, pb, pr] = win.pad;
            let (hp, wp) = (win.h + pt + pb, win.w + pl + pr);
            // Direct when the stride is 1 and the padded planes stay small (`MAX_PADDED_FLOATS`).
            let planes = hp.checked_mul(wp).and_then(|p| p.checked_mul(c)).filter(|&n| n <= MAX_PADDED_FLOATS);
            let (offs, direct, scratch) = match planes {
                Some(planes) if win.sh == 1 && win.sw == 1 => {
                    let offs = ks.spmm_offsets(weight, |t| {
                        let (tap, ci) = (t / c, t % c);
                        let (ky, kx) = (tap / kw, tap % kw);
                        ci * hp * wp + ky * win.dh * wp + kx * win.dw
                    });
                    // The last block starts below oh·Wp and reads up to its largest offset + NB.
                    let mv = win.oh * wp;
                    let x_len = (offs.span() + mv.div_ceil(nb) * nb).max(planes);
                    (offs, Some((hp, wp)), x_len + weight.cols * nb)
                }
                _ => (ks.spmm_rows(weight), None, ks.spmm_scratch(weight)),
            };
            XK::SpConv(Box::new(SpConvX { win: *win, w: weight.clone(), offs, direct, scratch, bias: bias.clone(), clamp, post }))
        }
        _ => unreachable!("compile_sparse takes the sparse kernels only"),
    }
}

/// `compile` for the integer and binary kernels.
#[inline(never)]
fn compile_int(k: &Kernel, ks: KernelSet, qs: &mut QScratch) -> XK {
    match k {
        Kernel::QDense { k, out, weight, bias, input, epi } => {
            let w = ks.qpack_b(*k, *out, weight);
            qs.reserve(0, w.k_padded(), *out);
            XK::QDense(Box::new(QDenseX { w, input: *input, epi: QEpi::new(bias, epi) }))
        }
        Kernel::BDense { k, out, plus, alpha, bias, act } => XK::BDense(Box::new(BDenseX {
            w: ks.bpack_b(*k, *out, plus),
            pre: None,
            alpha: alpha.clone(),
            bias: bias.clone(),
            act: *act,
            then: None,
            post: None,
            quant: None,
        })),
        Kernel::QConv2d { win, out_c, weight, bias, input, epi } => {
            let (w, gather) = match qconv::QGather::new(ks, win, *out_c, weight) {
                Some((w, d)) => (w, Some(d)),
                None => (ks.qpack_b(win.kh * win.kw * win.c, *out_c, weight), None),
            };
            let x_len = gather.as_ref().map_or(0, |d| d.x_len(win)).max(win.h * win.w * win.c);
            qs.reserve(x_len, w.k_padded(), *out_c);
            XK::QConv(Box::new(QConvX { win: *win, out_c: *out_c, w, input: *input, epi: QEpi::new(bias, epi), gather }))
        }
        _ => unreachable!("compile_int takes the integer and binary kernels only"),
    }
}

/// An activation as the kernels' fused clamp (ReLU, Clip; `None` for no activation) plus what
/// must run after it (any other activation).
fn split_clamp(act: Act) -> (Option<(f32, f32)>, Act) {
    match act {
        Act::None => (None, Act::None),
        a => match act_clamp(a) {
            Some(c) => (Some(c), Act::None),
            None => (None, a),
        },
    }
}

/// Sample `s`'s `len` floats of a value.
fn view<'a>(loc: Loc, s: usize, len: usize, input: &'a [f32], il: usize, bufs: &'a [AlignedBuf], stride: &[usize]) -> &'a [f32] {
    match loc {
        Loc::Input => &input[s * il..s * il + len],
        Loc::Buf { buf, batched } => {
            let at = if batched { s * stride[buf] } else { 0 };
            &bufs[buf].as_slice()[at..at + len]
        }
    }
}

/// Runs one step on sample `s`.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn sample_step(
    ks: KernelSet,
    st: &XStep,
    s: usize,
    input: &[f32],
    il: usize,
    bufs: &mut [AlignedBuf],
    stride: &[usize],
    scratch: &mut Scratch,
) {
    let Loc::Buf { buf: ob, batched } = st.out else { unreachable!("no step writes the input") };
    // Take the output buffer out so the inputs can be borrowed from the rest (`take` leaves an
    // empty buffer: no allocation).
    let mut obuf = std::mem::take(&mut bufs[ob]);
    {
        let at = if batched { s * stride[ob] } else { 0 };
        let y = &mut obuf.as_mut_slice()[at..at + st.out_len];
        let bufs: &[AlignedBuf] = bufs;
        let x = |i: usize| view(st.ins[i], s, st.in_lens[i], input, il, bufs, stride);
        // Elementwise kernels run on `y`; when not in place, input 0 is copied in first.
        let load0 = |y: &mut [f32]| {
            if !st.in_place {
                y.copy_from_slice(x(0));
            }
        };
        match &st.k {
            XK::Transpose { c, hw, to_hwc } => generic_transpose_f32(x(0), *c, *hw, *to_hwc, y),
            XK::Conv(g) => conv(ks, g, x(0), y, scratch),
            XK::Act { act, .. } => {
                load0(y);
                generic_act_f32(*act, y);
            }
            XK::Affine { scale, shift, act, .. } => {
                load0(y);
                generic_affine_f32(y, scale, shift, *act);
            }
            XK::Softmax { len } => {
                load0(y);
                softmax_rows(y, *len);
            }
            XK::Copy => y.copy_from_slice(x(0)),
            XK::Pool { kind, win, fast } if !st.in_u8 => match fast {
                Some(g) => ks.maxpool_hwc(x(0), g, y),
                None => generic_pool_f32(x(0), y, win, *kind),
            },
            // The other kinds in a function of their own: V8 compiles a function on its
            // first call, so a model without them (the f32 MNIST models) never compiles them
            // (wasm/DESIGN.md, "What the load path compiles").
            _ => sample_step_rare(ks, st, s, input, il, bufs, stride, y, scratch),
        }
    }
    bufs[ob] = obuf;
}

/// [`sample_step`] for the kinds the f32 MNIST models do not have (sparse, Winograd, depthwise,
/// integer, binary, elementwise with two inputs, concat, u8 pools): `y` is the step's output.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn sample_step_rare(
    ks: KernelSet,
    st: &XStep,
    s: usize,
    input: &[f32],
    il: usize,
    bufs: &[AlignedBuf],
    stride: &[usize],
    y: &mut [f32],
    scratch: &mut Scratch,
) {
    let x = |i: usize| view(st.ins[i], s, st.in_lens[i], input, il, bufs, stride);
    let load0 = |y: &mut [f32]| {
        if !st.in_place {
            y.copy_from_slice(x(0));
        }
    };
    match &st.k {
        XK::Pool { kind, win, fast } => match fast {
            Some(g) => generic_maxpool_u8(bytes(x(0)), bytes_mut(y), g),
            None => generic_pool_f32(x(0), y, win, *kind),
        },
        XK::Wino(g) => {
            ks.winograd_conv(&g.w, &g.win, x(0), &g.bias, g.clamp, y, scratch.apanel.as_mut_slice(), scratch.wino.as_mut_slice());
            generic_act_f32(g.post, y);
        }
        XK::SpConv(g) => sparse_conv(ks, g, x(0), y, scratch.sparse.as_mut_slice()),
        XK::SpDense { wt, bias, clamp, post, .. } => {
            // Never reached (a Dense starts the batched stage); kept correct anyway.
            wt.run(ks, x(0), bias, *clamp, scratch.sparse.as_mut_slice(), y);
            generic_act_f32(*post, y);
        }
        XK::DwConv { win, w, bias, lo, hi, post } => {
            ks.dwconv_hwc(x(0), w, bias, y, win, *lo, *hi);
            generic_act_f32(*post, y);
        }
        XK::Gap { c, hw } => generic_gap_f32(x(0), *c, *hw, y),
        XK::Binary { op, bc, act, .. } => {
            load0(y);
            generic_binary_f32(*op, y, &x(1)[..*bc], *act);
        }
        XK::Concat { channels, hw } => {
            let total: usize = channels.iter().sum();
            let mut off = 0;
            for (i, &c) in channels.iter().enumerate() {
                let src = x(i);
                for p in 0..*hw {
                    y[p * total + off..p * total + off + c].copy_from_slice(&src[p * c..(p + 1) * c]);
                }
                off += c;
            }
        }
        XK::Sign => {
            load0(y);
            y.iter_mut().for_each(|v| *v = if *v >= 0.0 { 1.0 } else { -1.0 });
        }
        XK::BDense(d) => {
            // Never reached (a BDense starts the batched stage); correct anyway.
            let k = d.w.k();
            let _ = bdense_rows(ks, d, x(0), k, 1, y, st.out_len, scratch);
        }
        // Never in place when it writes u8 (`u8_values`).
        XK::Quantize { q } if st.out_u8 => {
            let QScratch { check, nonfinite, .. } = &mut scratch.q;
            quantize_input(ks, *q, x(0), &mut bytes_mut(y)[..st.out_len], *check, nonfinite)
        }
        XK::Quantize { q } => {
            load0(y);
            ks.fake_quantize(*q, y);
        }
        XK::QConv(g) => {
            let src = if st.in_u8 { QIn::U8(bytes(x(0))) } else { QIn::F32(x(0)) };
            let dst = if st.out_u8 { QOutBuf::U8(bytes_mut(y)) } else { QOutBuf::F32(y) };
            qconv(ks, g, src, dst, &mut scratch.q)
        }
        XK::QDense(d) => {
            // Never reached (QDense starts the batched stage); correct anyway.
            let QScratch { a, c, panel, .. } = &mut scratch.q;
            let src = if st.in_u8 { QIn::U8(bytes(x(0))) } else { QIn::F32(x(0)) };
            let dst = if st.out_u8 { QOutBuf::U8(bytes_mut(y)) } else { QOutBuf::F32(y) };
            let (k, n) = (d.w.k(), d.w.n());
            // Finiteness is checked where a plan's input is read (`Exec::checks_input`).
            let _ = qrows(ks, &d.w, d.input, &d.epi, src, k, 1, dst, n, a, c, panel);
        }
        XK::Dense { w, bias, tile_relu, post } => {
            // Never reached: the first Dense starts the batched stage, where Dense steps go
            // through `dense_step`. Kept correct anyway (batch-1 GEMV).
            ks.for_width(w.n()).gemv_unchecked(x(0), w.data(), w.k(), w.n(), Some(bias), *tile_relu, y);
            generic_act_f32(*post, y);
        }
        XK::Transpose { .. } | XK::Conv(_) | XK::Act { .. } | XK::Affine { .. } | XK::Softmax { .. } | XK::Copy => {
            unreachable!("run by sample_step")
        }
    }
}

/// A binary Dense over `m` rows of `x` (stride `lda`) into `y` (stride `ldy`), `BROWS` rows at
/// a time: sign-pack, XOR + popcount GEMM (exact i32), then `alpha[c] · dot + bias[c]` in f32
/// (an exact integer-to-f32 conversion, |dot| <= 2^16, one multiply and one add: the same bits
/// on every kernel set).
#[allow(clippy::too_many_arguments)]
/// Returns whether every input value it packed was finite.
fn bdense_rows(ks: KernelSet, d: &BDenseX, x: &[f32], lda: usize, m: usize, y: &mut [f32], ldy: usize, scratch: &mut Scratch) -> bool {
    let k = d.w.k();
    let mut finite = true;
    let Scratch { bits, bits2, bacc, brow, .. } = scratch;
    for r0 in (0..m).step_by(BROWS) {
        let rows = BROWS.min(m - r0);
        let pre = d.pre.as_ref().map(|(s, t)| (s.as_slice(), t.as_slice()));
        finite &= ks.bpack_rows(rows, k, &x[r0 * lda..], lda, pre, bits);
        bstack_rows(ks, d, rows, bits, bits2, bacc, brow, &mut y[r0 * ldy..], ldy);
    }
    finite
}

/// `rows` packed rows in `a` through `d` and the layers fused after it: each hidden layer's
/// products become the next layer's bits in `b` (the two buffers swap roles), the last
/// layer's become `act(alpha[c] · dot + bias[c])` in `y`.
#[allow(clippy::too_many_arguments)]
fn bstack_rows(ks: KernelSet, d: &BDenseX, rows: usize, a: &mut [u64], b: &mut [u64], acc: &mut [i32], brow: &mut [f32], y: &mut [f32], ldy: usize) {
    let (n, words) = (d.w.n(), d.w.words());
    if let Some(t) = &d.then {
        let (rule, next) = (&t.0, &t.1);
        ks.bgemm_sign(rows, a, words, &d.w, rule, b, next.w.words());
        return bstack_rows(ks, next, rows, b, a, acc, brow, y, ldy);
    }
    ks.bgemm(rows, a, words, &d.w, acc, n);
    // The post `Affine` the fused epilogue takes: one over the row's n features (made once, not per row).
    let post = d.post.as_ref().filter(|(s, _, _)| s.len() == n).map(|(s, t, a)| (s.as_slice(), t.as_slice(), *a));
    for r in 0..rows {
        // With codes out, the f32 row is built in `brow` and quantized into the row's bytes.
        if let Some(q) = d.quant {
            // The set's fused epilogue + quantizer where it has one (same codes).
            if d.post.is_some() == post.is_some() && ks.bepilogue_q(&acc[r * n..r * n + n], &d.alpha, &d.bias, d.act, post, q, &mut bytes_mut(&mut y[r * ldy..r * ldy + n])[..n]) {
                continue;
            }
        }
        let yr = if d.quant.is_some() { &mut brow[..n] } else { &mut y[r * ldy..r * ldy + n] };
        bepilogue_row(d, &acc[r * n..r * n + n], yr);
        if let Some(q) = d.quant {
            ks.quantize(q, &brow[..n], &mut bytes_mut(&mut y[r * ldy..r * ldy + n])[..n]);
        }
    }
}

/// One output row of a binary layer: `act(alpha[c] · dot[c] + bias[c])`, then the fused post
/// `Affine` (`act'(y · scale[c] + shift[c])`), in one pass over the row. The same operations in
/// the same order as the separate loops (the Dense's epilogue, `generic_act_f32`,
/// `generic_affine_f32`), so the same bits; one loop instead of three over the row (the three
/// were about a fifth of the binary-input MLP's time natively: QUANT.md, "Binary stacks").
/// The common activations (none, ReLU) are monomorphized so the loop vectorizes.
fn bepilogue_row(d: &BDenseX, dot: &[i32], y: &mut [f32]) {
    #[inline(always)]
    fn run(d: &BDenseX, dot: &[i32], y: &mut [f32], act: impl Fn(f32) -> f32, post: Option<(&[f32], &[f32])>, pact: impl Fn(f32) -> f32) {
        let n = y.len();
        let (alpha, bias, dot) = (&d.alpha[..n], &d.bias[..n], &dot[..n]);
        match post {
            None => {
                for c in 0..n {
                    y[c] = act(alpha[c] * dot[c] as f32 + bias[c]);
                }
            }
            Some((scale, shift)) => {
                let (scale, shift) = (&scale[..n], &shift[..n]);
                for c in 0..n {
                    y[c] = pact(act(alpha[c] * dot[c] as f32 + bias[c]) * scale[c] + shift[c]);
                }
            }
        }
    }
    let n = y.len();
    let relu = |x: f32| x.max(0.0);
    let none = |x: f32| x;
    // A post over the row's n features (a Dense's output); anything else takes the loops below.
    let post = d.post.as_ref().filter(|(s, t, _)| s.len() == n && t.len() == n);
    let pact = post.map_or(Act::None, |p| p.2);
    let st = post.map(|(s, t, _)| (s.as_slice(), t.as_slice()));
    match (d.post.is_some() == post.is_some(), d.act, pact) {
        (true, Act::None, Act::None) => run(d, dot, y, none, st, none),
        (true, Act::None, Act::Relu) => run(d, dot, y, none, st, relu),
        (true, Act::Relu, Act::None) => run(d, dot, y, relu, st, none),
        (true, Act::Relu, Act::Relu) => run(d, dot, y, relu, st, relu),
        _ => {
            // Any other combination: the separate loops, as before.
            for c in 0..n {
                y[c] = d.alpha[c] * dot[c] as f32 + d.bias[c];
            }
            generic_act_f32(d.act, y);
            if let Some((scale, shift, act)) = &d.post {
                generic_affine_f32(y, scale, shift, *act);
            }
        }
    }
}

/// A binary Dense step over the whole chunk (rows of the input value at its stride).
#[allow(clippy::too_many_arguments)]
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn bdense_step(
    ks: KernelSet,
    st: &XStep,
    d: &BDenseX,
    nb: usize,
    input: &[f32],
    il: usize,
    bufs: &mut [AlignedBuf],
    stride: &[usize],
    scratch: &mut Scratch,
) -> bool {
    let Loc::Buf { buf: ob, batched } = st.out else { unreachable!("no step writes the input") };
    let mut obuf = std::mem::take(&mut bufs[ob]);
    let mut finite = true;
    {
        let ldy = if batched { stride[ob] } else { 0 };
        let (src, lda, src_batched): (&[f32], usize, bool) = match st.ins[0] {
            Loc::Input => (input, il, true),
            Loc::Buf { buf, batched } => (bufs[buf].as_slice(), stride[buf], batched),
        };
        if src_batched && batched {
            finite = bdense_rows(ks, d, src, lda, nb, obuf.as_mut_slice(), ldy, scratch);
        } else {
            // A per-sample input or output (not expected after the split): one row at a time.
            for s in 0..nb {
                let x = view(st.ins[0], s, st.in_lens[0], input, il, bufs, stride);
                let at = if batched { s * stride[ob] } else { 0 };
                let y = &mut obuf.as_mut_slice()[at..at + st.out_len];
                finite &= bdense_rows(ks, d, x, d.w.k(), 1, y, st.out_len, scratch);
            }
        }
    }
    bufs[ob] = obuf;
    finite
}

/// A Dense step over the whole chunk: GEMV at one sample, the packed GEMM otherwise.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn dense_step(
    ks: KernelSet,
    st: &XStep,
    w: &PackedB,
    bias: &[f32],
    tile_relu: bool,
    post: Act,
    nb: usize,
    input: &[f32],
    il: usize,
    bufs: &mut [AlignedBuf],
    stride: &[usize],
    apanel: &mut AlignedBuf,
) {
    let Loc::Buf { buf: ob, .. } = st.out else { unreachable!("no step writes the input") };
    let (k, n) = (w.k(), w.n());
    let mut obuf = std::mem::take(&mut bufs[ob]);
    {
        let ldc = stride[ob];
        let (src, lda): (&[f32], usize) = match st.ins[0] {
            Loc::Input => (input, il),
            Loc::Buf { buf, .. } => (bufs[buf].as_slice(), stride[buf]),
        };
        let dst = obuf.as_mut_slice();
        // The set the weights were packed for (same choice as at load time).
        let ks = ks.for_width(n);
        if nb == 1 {
            ks.gemv_unchecked(&src[..k], w.data(), k, n, Some(bias), tile_relu, &mut dst[..n]);
        } else {
            let a = MatRef::row_major(&src[..(nb - 1) * lda + k], lda);
            let mr = ks.mr();
            ks.drive(
                nb,
                n,
                k,
                apanel.as_mut_slice(),
                |row0, panel| a_panel(nb, k, mr, row0, &a, panel),
                w.data(),
                Some(bias),
                tile_relu.then_some((0.0, f32::INFINITY)),
                &mut dst[..(nb - 1) * ldc + n],
                ldc,
                false,
            );
        }
        if post != Act::None {
            for s in 0..nb {
                generic_act_f32(post, &mut dst[s * ldc..s * ldc + n]);
            }
        }
    }
    bufs[ob] = obuf;
}

/// A sparse Dense step over the whole chunk: row by row under `SPMV_MAX_ROWS` rows, else
/// row blocks transposed into the sparse block kernel.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn sparse_dense_step(
    ks: KernelSet,
    st: &XStep,
    (w, offs, wt): (&SparseW, &SparseOffsets, &SpRows),
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    post: Act,
    nb: usize,
    input: &[f32],
    il: usize,
    bufs: &mut [AlignedBuf],
    stride: &[usize],
    scratch: &mut AlignedBuf,
) {
    let Loc::Buf { buf: ob, .. } = st.out else { unreachable!("no step writes the input") };
    let (k, n) = (w.rows, w.cols);
    let mut obuf = std::mem::take(&mut bufs[ob]);
    {
        let ldc = stride[ob];
        let (src, lda): (&[f32], usize) = match st.ins[0] {
            Loc::Input => (input, il),
            Loc::Buf { buf, .. } => (bufs[buf].as_slice(), stride[buf]),
        };
        let dst = obuf.as_mut_slice();
        if nb < SPMV_MAX_ROWS {
            for s in 0..nb {
                wt.run(ks, &src[s * lda..s * lda + k], bias, clamp, scratch.as_mut_slice(), &mut dst[s * ldc..s * ldc + n]);
            }
        } else {
            let bn = ks.spmm_nb();
            // Transposed in strips of 16 inputs: the 16 xt rows being written stay in L1 while
            // each sample's 16 inputs are read contiguously.
            let fill = |row0: usize, rows: usize, xt: &mut [f32]| {
                for i0 in (0..k).step_by(16) {
                    let i1 = (i0 + 16).min(k);
                    for r in 0..rows {
                        let x = &src[(row0 + r) * lda + i0..(row0 + r) * lda + i1];
                        for (i, &v) in (i0..i1).zip(x) {
                            xt[i * bn + r] = v;
                        }
                    }
                }
            };
            ks.spmm(nb, w, offs, bias, clamp, fill, scratch.as_mut_slice(), &mut dst[..(nb - 1) * ldc + n], ldc);
        }
        if post != Act::None {
            for s in 0..nb {
                generic_act_f32(post, &mut dst[s * ldc..s * ldc + n]);
            }
        }
    }
    bufs[ob] = obuf;
}

/// A sparse convolution of one HWC sample: blocks of output pixels, im2col'd transposed
/// (`xt[(ky, kx, c) × NB]`, zeros where a window reads padding), through the sparse block kernel.
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn sparse_conv(ks: KernelSet, g: &SpConvX, src: &[f32], dst: &mut [f32], scratch: &mut [f32]) {
    let w = &g.win;
    let (m, oc, c) = (w.oh * w.ow, g.w.cols, w.c);
    let bn = ks.spmm_nb();
    if let Some((hp, wp)) = g.direct {
        let (x, yt) = scratch[..g.scratch].split_at_mut(g.scratch - oc * bn);
        // HWC → zero-padded CHW planes (the tail past the planes stays zero: only dropped
        // columns read it).
        x.fill(0.0);
        let (pt, pl) = (w.pad[0], w.pad[1]);
        for (p, px) in src[..w.h * w.w * c].chunks_exact(c).enumerate() {
            let at = (pt + p / w.w) * wp + pl + p % w.w;
            for (ci, &v) in px.iter().enumerate() {
                x[ci * hp * wp + at] = v;
            }
        }
        let mv = w.oh * wp;
        let mut p0 = 0;
        while p0 < mv {
            ks.spmm_block(&g.w, &g.offs, &x[p0..], &g.bias, g.clamp, yt);
            for r in 0..bn.min(mv - p0) {
                let (oy, ox) = ((p0 + r) / wp, (p0 + r) % wp);
                if ox < w.ow {
                    let out = &mut dst[(oy * w.ow + ox) * oc..(oy * w.ow + ox + 1) * oc];
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = yt[j * bn + r];
                    }
                }
            }
            p0 += bn;
        }
        generic_act_f32(g.post, &mut dst[..m * oc]);
        return;
    }
    // Tap by tap: the rows' input pixel offsets (or `usize::MAX` in the padding) once, then
    // each of the tap's `c` xt rows is written contiguously (reads stride `c` through the
    // HWC input, which is small enough to sit in L1).
    let mut base = [0usize; MAX_SPMM_NB];
    let fill = |row0: usize, rows: usize, xt: &mut [f32]| {
        for ky in 0..w.kh {
            for kx in 0..w.kw {
                for (r, b) in base.iter_mut().enumerate().take(rows) {
                    let (oy, ox) = ((row0 + r) / w.ow, (row0 + r) % w.ow);
                    let iy = (oy * w.sh + ky * w.dh).wrapping_sub(w.pad[0]);
                    let ix = (ox * w.sw + kx * w.dw).wrapping_sub(w.pad[1]);
                    // Wrapped (negative) coordinates are huge: one comparison covers both sides.
                    *b = if iy < w.h && ix < w.w { (iy * w.w + ix) * c } else { usize::MAX };
                }
                let t0 = (ky * w.kw + kx) * c;
                for ci in 0..c {
                    let row = &mut xt[(t0 + ci) * bn..(t0 + ci) * bn + rows];
                    for (v, &b) in row.iter_mut().zip(&base[..rows]) {
                        *v = if b == usize::MAX { 0.0 } else { src[b + ci] };
                    }
                }
            }
        }
    };
    ks.spmm(m, &g.w, &g.offs, &g.bias, g.clamp, fill, scratch, &mut dst[..m * oc], oc);
    generic_act_f32(g.post, &mut dst[..m * oc]);
}

/// An integer step's input: f32 values on its grid (quantized here), or the u8 codes.
enum QIn<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
}

/// An integer step's output: f32 on the grid (or dequantized), or the u8 codes.
enum QOutBuf<'a> {
    F32(&'a mut [f32]),
    U8(&'a mut [u8]),
}

impl QOutBuf<'_> {
    /// The epilogue of `rows` rows of sums into rows `r0..` (stride `ld` values).
    #[allow(clippy::too_many_arguments)]
    fn finish(&mut self, ks: KernelSet, epi: &QEpi, c: &[i32], n: usize, rows: usize, r0: usize, ld: usize) {
        match self {
            QOutBuf::F32(y) => ks.qepilogue(epi, c, n, rows, &mut y[r0 * ld..], ld),
            QOutBuf::U8(y) => ks.qepilogue_u8(epi, c, n, rows, &mut y[r0 * ld..], ld),
        }
    }
}

/// Drops a first step that quantizes the program input for a 7-bit Dense alone: the Dense then
/// reads the floats and quantizes them straight into its tile's panel (`qgemm_quantize_dot7`:
/// the same codes, from the same `QParams`, with the finiteness check on that read, so
/// `Plan::run` skips its scan, `Exec::checks_input`). Kept, the step wrote the codes to a
/// batch buffer (3.2 MB at batch 1024 for MNIST) that the Dense then packed into its panel,
/// and the Dense never took that path: every `mdeploy quantize` model starts with such a
/// Quantize (wasm/DESIGN.md, "What V8 makes of the 7-bit path"). Only where the set packs
/// the weights as `Dot7` (the relaxed wasm build); a program it does not match is left as is.
fn drop_dot7_input_quantize(p: &mut Program, ks: KernelSet) {
    let [first, second, rest @ ..] = p.steps.as_slice() else { return };
    let (Kernel::Quantize { len, q }, Kernel::QDense { k, weight, input, .. }) = (&first.kernel, &second.kernel) else { return };
    let s0 = first.output;
    let same_grid = q.scale.to_bits() == input.scale.to_bits() && q.zero_point == input.zero_point;
    let whole_input = first.inputs == [p.input_slot] && *len == p.input_len && *k == p.input_len;
    if !(same_grid && whole_input && second.inputs == [s0] && ks.packs_dot7(weight)) {
        return;
    }
    // No later step may read the codes, and they must not be the result: a step that writes
    // the slot first ends their life (slots are reused: here it is often the output slot).
    let mut overwritten = false;
    for st in rest {
        if st.inputs.contains(&s0) {
            return;
        }
        if st.output == s0 {
            overwritten = true;
            break;
        }
    }
    if !overwritten && s0 == p.output_slot {
        return;
    }
    p.steps[1].inputs[0] = p.input_slot;
    p.steps.remove(0);
}

/// `nb` rows (`x`, stride `ldx` values) through an integer product into `y` (stride `ldy`
/// values): `QROWS` rows at a time are quantized to u8 (unless they are codes already),
/// multiplied on the int8 kernels, and finished by the epilogue shared by every backend
/// (`kernels::quant`). Returns `false` when a float row held a NaN or ±∞, which only 7-bit
/// weights (Dot7, quantized straight into the tile's panel) and the sets whose quantizer
/// checks (`KernelSet::quantize_checked`) look for; `true` otherwise.
#[allow(clippy::too_many_arguments)]
fn qrows(
    ks: KernelSet,
    w: &PackedQB,
    input: QParams,
    epi: &QEpi,
    x: QIn,
    ldx: usize,
    nb: usize,
    mut y: QOutBuf,
    ldy: usize,
    a: &mut [u8],
    c: &mut [i32],
    panel: &mut [i32],
) -> bool {
    let (k, n, kp) = (w.k(), w.n(), w.k_padded());
    let mut finite = true;
    for r0 in (0..nb).step_by(QROWS) {
        let rows = QROWS.min(nb - r0);
        match x {
            // 7-bit weights: the floats go straight into the tile's A panel, checked on the way.
            QIn::F32(x) if w.layout() == QLayout::Dot7 => {
                finite &= ks.qgemm_quantize_dot7(input, rows, &x[r0 * ldx..], ldx, w, &mut c[..rows * n], n, panel);
            }
            QIn::F32(x) => {
                for r in 0..rows {
                    let (src, dst) = (&x[(r0 + r) * ldx..(r0 + r) * ldx + k], &mut a[r * kp..r * kp + k]);
                    match ks.quantize_checked(input, src, dst) {
                        Some(ok) => finite &= ok,
                        None => ks.quantize(input, src, dst),
                    }
                }
                ks.qgemm(rows, &a[..rows * kp], kp, w, &mut c[..rows * n], n, panel);
            }
            // The codes are the A rows: no copy (qgemm reads k bytes of each row).
            QIn::U8(x) => ks.qgemm(rows, &x[r0 * ldx..], ldx, w, &mut c[..rows * n], n, panel),
        }
        y.finish(ks, epi, &c[..rows * n], n, rows, r0, ldy);
    }
    finite
}

/// An integer Dense step over the whole chunk.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn qdense_step(
    ks: KernelSet,
    st: &XStep,
    d: &QDenseX,
    nb: usize,
    input: &[f32],
    il: usize,
    bufs: &mut [AlignedBuf],
    stride: &[usize],
    q: &mut QScratch,
) -> bool {
    let Loc::Buf { buf: ob, .. } = st.out else { unreachable!("no step writes the input") };
    let mut obuf = std::mem::take(&mut bufs[ob]);
    let finite;
    {
        let ldc = stride[ob];
        let (src, lda): (&[f32], usize) = match st.ins[0] {
            Loc::Input => (input, il),
            Loc::Buf { buf, .. } => (bufs[buf].as_slice(), stride[buf]),
        };
        let QScratch { a, c, panel, .. } = q;
        // Codes sit at the start of each sample's f32 row: the byte stride is 4 per float.
        let (src, lda) = if st.in_u8 { (QIn::U8(bytes(src)), 4 * lda) } else { (QIn::F32(src), lda) };
        let (dst, ldc) = if st.out_u8 {
            (QOutBuf::U8(bytes_mut(obuf.as_mut_slice())), 4 * ldc)
        } else {
            (QOutBuf::F32(obuf.as_mut_slice()), ldc)
        };
        finite = qrows(ks, &d.w, d.input, &d.epi, src, lda, nb, dst, ldc, a, c, panel);
    }
    bufs[ob] = obuf;
    finite
}

/// An integer convolution of one HWC sample: the input is quantized once, then `QROWS` output
/// pixels at a time get their im2col rows (u8; the padding is the zero point), the product
/// and the epilogue.
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn qconv(ks: KernelSet, g: &QConvX, src: QIn, mut dst: QOutBuf, q: &mut QScratch) {
    if let Some(d) = &g.gather {
        return qconv::qconv_gather(ks, g, d, src, dst, q);
    }
    let w = &g.win;
    let QScratch { x, a, c, panel, check, nonfinite } = q;
    let len = w.h * w.w * w.c;
    // The im2col below reads up to QSLACK bytes past the sample: codes in a slot are read in
    // place when the slot has that many spare bytes (4 per value, so all but the tiniest).
    let x: &[u8] = match src {
        QIn::U8(codes) if codes.len() >= len + QSLACK => codes,
        QIn::U8(codes) => {
            x[..len].copy_from_slice(&codes[..len]);
            x
        }
        QIn::F32(src) => {
            quantize_input(ks, g.input, src, &mut x[..len], *check, nonfinite);
            x
        }
    };
    let zp = g.input.zero_point.clamp(0, 255) as u8;
    let (m, k, kp, n) = (w.oh * w.ow, g.w.k(), g.w.k_padded(), g.out_c);
    // A kernel row's taps are `kw · c` contiguous input bytes when the columns are not dilated.
    let run = w.kw * w.c;
    let run8 = run.div_ceil(8) * 8;
    for r0 in (0..m).step_by(QROWS) {
        let rows = QROWS.min(m - r0);
        let (mut oy, mut ox) = (r0 / w.ow, r0 % w.ow);
        for r in 0..rows {
            if r > 0 {
                ox += 1;
                if ox == w.ow {
                    (oy, ox) = (oy + 1, 0);
                }
            }
            let row = r * kp;
            // The whole window inside the input (columns not dilated): each kernel row is one
            // run of `run` bytes, copied in 8-byte words. The last word may reach up to 7 bytes
            // past the run in both buffers: `x` and `a` have QSLACK spare bytes at the end, and
            // what lands in `a` past the run is overwritten by the next run or lies in the row's
            // padding to kp (which meets zero weights, QUANT.md). Bounds are checked once per
            // row, for the last run, which is the furthest in both buffers.
            let iy0 = (oy * w.sh).checked_sub(w.pad[0]).filter(|&y| y + (w.kh - 1) * w.dh < w.h);
            let ix0 = (ox * w.sw).checked_sub(w.pad[1]).filter(|&x| w.dw == 1 && x + w.kw <= w.w);
            if let (Some(iy0), Some(ix0)) = (iy0, ix0) {
                let from0 = (iy0 * w.w + ix0) * w.c;
                let (step_x, last_x) = (w.dh * w.w * w.c, from0 + (w.kh - 1) * w.dh * w.w * w.c);
                if last_x + run8 <= x.len() && row + (w.kh - 1) * run + run8 <= a.len() {
                    for ky in 0..w.kh {
                        let (from, at) = (from0 + ky * step_x, row + ky * run);
                        for wd in (0..run8).step_by(8) {
                            // SAFETY: from + run8 <= last_x + run8 <= x.len() and at + run8 <=
                            // a.len() (checked above for the last ky, the largest); unaligned
                            // 8-byte reads and writes of plain bytes.
                            unsafe {
                                let v = std::ptr::read_unaligned(x.as_ptr().add(from + wd).cast::<u64>());
                                std::ptr::write_unaligned(a.as_mut_ptr().add(at + wd).cast::<u64>(), v);
                            }
                        }
                    }
                    continue;
                }
            }
            for ky in 0..w.kh {
                let iy = (oy * w.sh + ky * w.dh).checked_sub(w.pad[0]).filter(|&y| y < w.h);
                let at = row + ky * run;
                for kx in 0..w.kw {
                    let cell = &mut a[at + kx * w.c..at + (kx + 1) * w.c];
                    match (iy, (ox * w.sw + kx * w.dw).checked_sub(w.pad[1]).filter(|&v| v < w.w)) {
                        // A loop, not copy_from_slice: cells are 1 to a few dozen bytes, where a
                        // memmove call costs more than the copy (it was 14 % of the int8 CNN).
                        (Some(iy), Some(ix)) => {
                            let from = &x[(iy * w.w + ix) * w.c..(iy * w.w + ix + 1) * w.c];
                            for (d, &v) in cell.iter_mut().zip(from) {
                                *d = v;
                            }
                        }
                        _ => {
                            for d in cell.iter_mut() {
                                *d = zp;
                            }
                        }
                    }
                }
            }
        }
        debug_assert!(k <= kp);
        ks.qgemm(rows, &a[..rows * kp], kp, &g.w, &mut c[..rows * n], n, panel);
        dst.finish(ks, &g.epi, &c[..rows * n], n, rows, r0, n);
    }
}

/// Spare bytes at the end of the integer scratch rows, for the im2col's last 8-byte word.
const QSLACK: usize = 8;


/// A convolution of one HWC sample through the GEMM tiles, one GEMM per group.
#[inline(never)] // its own wasm function: V8 compiles (and optimizes) only what a model runs (wasm/DESIGN.md, "Cold start")
fn conv(ks: KernelSet, g: &ConvX, src: &[f32], dst: &mut [f32], scratch: &mut Scratch) {
    // The set the weights were packed for (same choice as at load time).
    let kset = ks.for_width(g.ocg);
    let win = &g.win;
    let Scratch { apanel, padded, band, .. } = scratch;
    let apanel = apanel.as_mut_slice();
    let src: &[f32] = match &g.padded {
        Some(orig) => {
            let buf = &mut padded.as_mut_slice()[..win.h * win.w * win.c];
            pad_copy(orig, src, win.w, buf);
            buf
        }
        None => src,
    };
    // A max pool fused in (`exec/cpool.rs`): the conv rows of one pooled row at a time into
    // `band`, then their max straight into the pooled output.
    #[cfg(any(target_os = "wasi", test))]
    if let Some(pg) = &g.pool {
        let m = pg.kh * win.ow;
        let band = &mut band.as_mut_slice()[..m * g.out_c];
        let Some(bg) = PoolGeom::new(pg.c, pg.kh, pg.w, [pg.kh, pg.kw], [pg.sh, pg.sw]) else {
            unreachable!("a fused pool's window fits its band")
        };
        let row = pg.ow * pg.c;
        for py in 0..pg.oh {
            conv_rows(kset, g, src, py * pg.sh * win.ow, m, apanel, band);
            ks.maxpool_hwc(band, &bg, &mut dst[py * row..(py + 1) * row]);
        }
        return;
    }
    #[cfg(not(any(target_os = "wasi", test)))]
    let _ = band;
    conv_rows(kset, g, src, 0, win.oh * win.ow, apanel, dst);
}

/// Output pixels `r0..r0 + m` of a convolution (every group, then the activation) into `dst`
/// (`m` rows of `out_c`). One function for whole convs and fused bands, so the driver is
/// instantiated once (code size of the wasm builds).
fn conv_rows(kset: KernelSet, g: &ConvX, src: &[f32], r0: usize, m: usize, apanel: &mut [f32], dst: &mut [f32]) {
    let (k, mr) = (g.k(), kset.mr());
    for gi in 0..g.w.len() {
        kset.drive_into(
            m,
            g.ocg,
            k,
            apanel,
            |row0, panel, out| conv_panel(g, gi, src, r0 + row0, mr, panel, out),
            g.w[gi].data(),
            Some(&g.bias[gi]),
            g.clamp,
            &mut dst[gi * g.ocg..m * g.out_c],
            g.out_c,
            false,
        );
    }
    generic_act_f32(g.post, &mut dst[..m * g.out_c]);
}

/// Copies an HWC sample of window `o` into `buf`, an HWC image `wp` pixels wide with `o.pad`
/// zero rows/columns around it.
fn pad_copy(o: &Window, src: &[f32], wp: usize, buf: &mut [f32]) {
    let c = o.c;
    let [pt, pl, _, _] = o.pad;
    let row = wp * c;
    buf[..pt * row].fill(0.0);
    for y in 0..o.h {
        let d = &mut buf[(pt + y) * row..(pt + y + 1) * row];
        d[..pl * c].fill(0.0);
        d[pl * c..(pl + o.w) * c].copy_from_slice(&src[y * o.w * c..(y + 1) * o.w * c]);
        d[(pl + o.w) * c..].fill(0.0);
    }
    buf[(pt + o.h) * row..].fill(0.0);
}

/// The A panel for output pixels `row0..row0+MR` of group `gi`: indirect (read in place
/// through per-pixel pointers and the tap offsets) when no pixel's window touches the padding,
/// else im2col.
/// Written into `out` (the previous panel): an indirect panel overwrites its row pointers in
/// place (see `KernelSet::drive_into`).
fn conv_panel<'a>(g: &'a ConvX, gi: usize, src: &[f32], row0: usize, mr: usize, dst: &mut [f32], out: &mut APanel<'a>) {
    let w = &g.win;
    let m = w.oh * w.ow;
    let offs = &g.offs[gi];
    let last_off = g.last_off[gi];
    let (span_h, span_w) = ((w.kh - 1) * w.dh + 1, (w.kw - 1) * w.dw + 1);
    if !matches!(out, APanel::Indirect { .. }) {
        *out = APanel::Indirect { rows: [std::ptr::null(); MAX_MR], offs };
    }
    let APanel::Indirect { rows, offs: o } = out else { unreachable!("set just above") };
    *o = offs;
    // One division per panel, then the pixel coordinates are stepped: the per-row division
    // and window checks were ~9 % of the trained CNN's batch-1 time (perf; its conv 1 sets up
    // 576 row pointers per digit).
    let first = row0.min(m - 1);
    let (mut oy, mut ox) = (first / w.ow, first % w.ow);
    if w.pad == [0; 4] && (w.oh - 1) * w.sh + span_h <= w.h && (w.ow - 1) * w.sw + span_w <= w.w {
        // No padding and every window inside the input: the input offset of pixel (oy, ox)
        // grows with the pixel index, so checking the panel's last row covers all of them.
        let last = (row0 + mr - 1).min(m - 1);
        let last_at = ((last / w.ow) * w.sh * w.w + (last % w.ow) * w.sw) * w.c;
        assert!(last_at + last_off < src.len(), "conv window outside the input");
        let (step, wrap) = (w.sw * w.c, (w.sh * w.w - (w.ow - 1) * w.sw) * w.c);
        let mut at = (oy * w.sh * w.w + ox * w.sw) * w.c;
        if ox + mr <= w.ow {
            // The panel is one run of one output row (every panel of the CNN's conv 1: 24-pixel
            // rows, 24-row tiles): evenly spaced pointers, no wrap test per row (that loop was
            // ~5 % of the CNN at batch 1024, perf).
            for (r, row) in rows.iter_mut().enumerate().take(mr) {
                // SAFETY: at + r·step <= last_at (pixel row0 + r < m lies in this output row).
                *row = unsafe { src.as_ptr().add(at + r * step) };
            }
            return;
        }
        for (r, row) in rows.iter_mut().enumerate().take(mr) {
            // SAFETY: at <= last_at, in bounds by the assertion above.
            *row = unsafe { src.as_ptr().add(at) };
            // Rows past the last pixel repeat the last one: computed, then discarded by the tile.
            if row0 + r + 1 < m {
                ox += 1;
                if ox == w.ow {
                    ox = 0;
                    at += wrap;
                } else {
                    at += step;
                }
            }
        }
        return;
    }
    for (r, row) in rows.iter_mut().enumerate().take(mr) {
        let (y0, x0) = (oy * w.sh, ox * w.sw);
        // Rows past the last pixel repeat the last one: computed, then discarded by the tile.
        if row0 + r + 1 < m {
            ox += 1;
            if ox == w.ow {
                ox = 0;
                oy += 1;
            }
        }
        if y0 < w.pad[0] || x0 < w.pad[1] || y0 - w.pad[0] + span_h > w.h || x0 - w.pad[1] + span_w > w.w {
            *out = im2col_panel(g, gi, src, row0, mr, dst);
            return;
        }
        let at = ((y0 - w.pad[0]) * w.w + (x0 - w.pad[1])) * w.c;
        // Every offset is <= last_off, so this check covers the whole window.
        assert!(at + last_off < src.len(), "conv window outside the input");
        // SAFETY: in bounds by the assertion above.
        *row = unsafe { src.as_ptr().add(at) };
    }
}

/// Fill one A panel (`MR` rows of `K` values, row-major) of the im2col matrix of group `gi`:
/// row r is output pixel `row0 + r`, column `(ky·kw + kx)·icg + ci` the input under tap
/// (ky, kx), channel `gi·icg + ci`, zero in the padding. With one group and no horizontal
/// dilation the taps of one kernel row are `kw·C` contiguous floats: one copy per kernel row.
fn im2col_panel<'a>(g: &ConvX, gi: usize, src: &[f32], row0: usize, mr: usize, dst: &mut [f32]) -> APanel<'a> {
    let w = &g.win;
    let m = w.oh * w.ow;
    let (ic, icg, k) = (w.c, g.icg, g.k());
    let run = w.kw * icg;
    let contiguous = icg == ic && w.dw == 1;
    for (r, row) in dst[..mr * k].chunks_exact_mut(k).enumerate() {
        let pix = row0 + r;
        if pix >= m {
            row.fill(0.0);
            continue;
        }
        let (oy, ox) = (pix / w.ow, pix % w.ow);
        let x0 = ox * w.sw; // padded column of kx = 0
        for (ky, seg) in row.chunks_exact_mut(run).enumerate() {
            let Some(iy) = (oy * w.sh + ky * w.dh).checked_sub(w.pad[0]).filter(|&y| y < w.h) else {
                zero_short(seg);
                continue;
            };
            if contiguous {
                // Valid kx range: 0 <= x0 + kx - pl < w.
                let kx_lo = w.pad[1].saturating_sub(x0).min(w.kw);
                let kx_hi = (w.w + w.pad[1]).saturating_sub(x0).min(w.kw).max(kx_lo);
                zero_short(&mut seg[..kx_lo * ic]);
                if kx_hi > kx_lo {
                    let from = (iy * w.w + x0 + kx_lo - w.pad[1]) * ic;
                    copy_short(&mut seg[kx_lo * ic..kx_hi * ic], &src[from..from + (kx_hi - kx_lo) * ic]);
                }
                zero_short(&mut seg[kx_hi * ic..]);
            } else {
                for (kx, cell) in seg.chunks_exact_mut(icg).enumerate() {
                    match (x0 + kx * w.dw).checked_sub(w.pad[1]).filter(|&x| x < w.w) {
                        Some(ix) => {
                            let from = (iy * w.w + ix) * ic + gi * icg;
                            copy_short(cell, &src[from..from + icg]);
                        }
                        None => zero_short(cell),
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::Step;
    use std::cell::Cell;

    thread_local! {
        /// Plans built on this thread keep their max pools as steps: neither the int8 fusion
        /// (`exec/qconv.rs`) nor the f32 one (`exec/cpool.rs`) runs (the comparisons below).
        pub(super) static POOLS_UNFUSED: Cell<bool> = const { Cell::new(false) };
    }

    /// Plans `model` with each flag in `off` set on this thread while the plan is built (a fusion
    /// kept out), runs `n` samples of `xs` in chunks of `max_batch`, and returns the plan's step
    /// count and the output bits (the fused-vs-unfused comparisons of `exec/*.rs`).
    pub(super) fn steps_and_bits(
        model: &crate::model::Model,
        ks: KernelSet,
        max_batch: usize,
        xs: &[f32],
        n: usize,
        off: &[&'static std::thread::LocalKey<Cell<bool>>],
    ) -> (usize, Vec<u32>) {
        let program = crate::lower::lower(&model.graph, &model.meta.input_shape).expect("lower");
        let (il, ol) = (program.input_len, program.output_len);
        off.iter().for_each(|f| f.with(|u| u.set(true)));
        let exec = Exec::new(program, max_batch, ks, crate::budget::arena_budget(&model.graph));
        off.iter().for_each(|f| f.with(|u| u.set(false)));
        let mut exec = exec.expect("exec");
        let mut out = vec![0.0f32; n * ol];
        for s0 in (0..n).step_by(max_batch) {
            let nb = max_batch.min(n - s0);
            exec.run_chunk(&xs[s0 * il..(s0 + nb) * il], nb, &mut out[s0 * ol..(s0 + nb) * ol]);
        }
        (exec.steps.len(), out.iter().map(|v| v.to_bits()).collect())
    }

    /// A shipped CNN (conv → ReLU → 2×2 max pool, twice) with its pools fused into the convs
    /// gives the same output bits as with the pools as steps, on every kernel set, at batch 1
    /// and batched, and the fusion did happen (fewer steps).
    pub(super) fn pool_fusion_keeps_the_bits(bytes: &[u8]) {
        let model = crate::format::read(bytes).expect("shipped model");
        // Inputs in 0..1 with a digit-like share of exact zeros, from a fixed LCG.
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        let n = 9;
        let xs: Vec<f32> = (0..n * 784)
            .map(|_| {
                st = st.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = (st >> 40) as f32 / (1u64 << 24) as f32;
                if u < 0.6 { 0.0 } else { (u - 0.6) / 0.4 }
            })
            .collect();
        for ks in KernelSet::available() {
            for max_batch in [1, 4] {
                let (fused_steps, fused) = steps_and_bits(&model, ks, max_batch, &xs, n, &[]);
                let (steps, unfused) = steps_and_bits(&model, ks, max_batch, &xs, n, &[&POOLS_UNFUSED]);
                assert_eq!(fused, unfused, "{} max batch {max_batch}: fused pools changed the output bits", ks.name());
                assert!(fused_steps < steps, "{}: no pool was fused ({fused_steps} steps, {steps} unfused)", ks.name());
            }
        }
    }

    fn program(steps: Vec<Step>, slots: Vec<usize>) -> Program {
        Program { input_shape: vec![4], input_len: 4, output_len: 4, slots, input_slot: 0, output_slot: 1, steps }
    }

    fn act(inputs: Vec<usize>, output: usize) -> Step {
        Step { kernel: Kernel::Act { act: Act::Relu, len: 4 }, inputs, output, node: 0 }
    }

    #[test]
    fn hand_built_programs_are_checked() {
        let ks = KernelSet::generic();
        // A good one runs.
        let p = program(vec![act(vec![0], 1)], vec![4, 4]);
        let mut e = Exec::new(p, 2, ks, usize::MAX).expect("valid program");
        let mut out = [0.0f32; 8];
        e.run_chunk(&[-1.0, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0, -8.0], 2, &mut out);
        assert_eq!(out, [0.0, 2.0, 0.0, 4.0, 5.0, 0.0, 7.0, 0.0]);
        // Writing the input slot, reading an unwritten slot, a slot too small, a short weight.
        let bad = [
            program(vec![act(vec![0], 0)], vec![4, 4]),
            program(vec![act(vec![2], 1)], vec![4, 4, 4]),
            program(vec![act(vec![0], 1)], vec![4, 3]),
            program(
                vec![Step {
                    kernel: Kernel::Dense { k: 4, out: 4, weight: vec![0.0; 15], bias: vec![0.0; 4], act: Act::None },
                    inputs: vec![0],
                    output: 1,
                    node: 0,
                }],
                vec![4, 4],
            ),
            // A convolution cannot run in place.
            program(
                vec![
                    act(vec![0], 1),
                    Step {
                        kernel: Kernel::Transpose { c: 2, hw: 2, to_hwc: true },
                        inputs: vec![1],
                        output: 1,
                        node: 1,
                    },
                ],
                vec![4, 4],
            ),
        ];
        for (i, p) in bad.iter().enumerate() {
            let e = Exec::new(p.clone(), 2, ks, usize::MAX).err().unwrap_or_else(|| panic!("bad program {i} accepted"));
            assert_eq!(e.kind, crate::error::ErrorKind::BadModel, "{e}");
        }
    }

    /// A first step that quantizes the input for a 7-bit Dense alone is dropped where the set
    /// packs those weights as Dot7 (the relaxed wasm build: the Dense then quantizes the floats
    /// into its tile's panel and checks them, `checks_input`), with the bits of the program as
    /// written on generic; it stays on every other set, for weights past −64..=63, for another
    /// grid, and when a later step reads the codes. Natively no set has Dot7: built for
    /// `wasm32-wasip1 +simd128,+relaxed-simd` (QUANT.md) the first case drops the step.
    #[test]
    fn a_seven_bit_dense_on_the_input_quantizes_it_itself() {
        let q = QParams { scale: 1.0 / 50.0, zero_point: 7 };
        let w7: Vec<i8> = (0..16).map(|i| ((i * 37) % 127 - 63) as i8).collect();
        let mut w8 = w7.clone();
        w8[5] = 100;
        let dense = |input: QParams, weight: &[i8], from: usize, to: usize| Step {
            kernel: Kernel::QDense {
                k: 4,
                out: 4,
                weight: weight.to_vec(),
                bias: vec![5, -3, 0, 100],
                input,
                epi: QOut::Dequant { scale: vec![0.5, 0.25, 1.0, 0.125], relu: false },
            },
            inputs: vec![from],
            output: to,
            node: 1,
        };
        let quant = Step { kernel: Kernel::Quantize { len: 4, q }, inputs: vec![0], output: 1, node: 0 };
        // Slot 1 holds the codes, then the result (as a lowered MLP reuses it).
        let mlp = |input: QParams, weight: &[i8]| program(vec![quant.clone(), dense(input, weight, 1, 2), act(vec![2], 1)], vec![4, 4, 4]);
        let other = QParams { scale: 1.0 / 40.0, zero_point: 7 };
        // A later step reads the codes: the result is slot 3.
        let mut reread = program(vec![quant.clone(), dense(q, &w7, 1, 2), act(vec![1], 3)], vec![4, 4, 4, 4]);
        reread.output_slot = 3;
        let xs = [-1.0f32, 0.3, 5.2, 0.1, 0.0, 0.02, 0.99, -0.5, 2.0, 0.41, 0.43, 0.45];
        let run = |p: &Program, ks: KernelSet| {
            let mut e = Exec::new(p.clone(), 3, ks, usize::MAX).expect("valid program");
            let mut out = [0.0f32; 12];
            assert!(e.run_chunk(&xs, 3, &mut out));
            (e.steps.len(), e.checks_input(), out.map(f32::to_bits))
        };
        for ks in KernelSet::available() {
            let dot7 = ks.packs_dot7(&w7);
            let (steps, checks, bits) = run(&mlp(q, &w7), ks);
            // Kept, the first Quantize checks the input itself on the sets whose quantizer
            // reports non-finite values (the x86_64 FMA sets), else `Plan::run` scans.
            assert_eq!((steps, checks), if dot7 { (2, true) } else { (3, ks.quantize_checks()) }, "{}", ks.name());
            assert_eq!(bits, run(&mlp(q, &w7), KernelSet::generic()).2, "{}: other bits", ks.name());
            if checks {
                // The Dense's (or the kept Quantize's) own read finds a non-finite input.
                let mut e = Exec::new(mlp(q, &w7), 3, ks, usize::MAX).expect("valid program");
                let mut bad = xs;
                bad[7] = f32::NAN;
                assert!(!e.run_chunk(&bad, 3, &mut [0.0; 12]), "{}: NaN not reported", ks.name());
            }
            for (what, p) in [("8-bit weights", mlp(q, &w8)), ("another grid", mlp(other, &w7)), ("codes read again", reread.clone())] {
                assert_eq!(run(&p, ks).0, 3, "{}: dropped with {what}", ks.name());
            }
        }
    }

}
