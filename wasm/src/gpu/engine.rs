//! The WebGPU engine proper: a lowered [`Program`] executed with wgpu, in plain async Rust (no
//! wasm-bindgen types), so the same code runs in the browser (wgpu's WebGPU backend) and natively
//! on Vulkan in tests (`--features native-gpu`, lavapipe).
//!
//! At load ([`GpuCore::new`]): one GPU buffer per program slot (`slots[i] × chunk` floats),
//! every weight uploaded once, one pipeline per kernel used (its WGSL generated around the kernel
//! file, see `kernels.rs`), and one bind group and uniform buffer per dispatch. A batch then
//! costs one `write_buffer` of the input, the uniforms when the chunk's sample count changed, ONE
//! command encoder with one compute pass (a dispatch per step; concat: one per input), a copy of
//! the output slot into a mappable buffer and one asynchronous map awaited as a future.

use super::kernels::{self, Def, WG};
use super::params::{self, Params};
use super::program::program_for;
use crate::error::{WasmError, NO_WEBGPU};
use mdeploy_core::kernels::generic::generic_softmax_f32::softmax_rows;
use mdeploy_core::kernels::bgemm::MAX_BK;
use mdeploy_core::kernels::quant::MAX_QK;
use mdeploy_core::lower::{BinOp, Kernel, PoolKind, Program, QOut, QParams, Step, Window};
use mdeploy_core::Model;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// One kernel dispatch, ready to record.
struct Dispatch {
    pipeline: usize,
    bind: wgpu::BindGroup,
    params: wgpu::Buffer,
    /// The uniform's words; word `n_at` (the field `n`) is the chunk's sample count.
    words: Vec<u32>,
    n_at: usize,
    /// Invocations per sample.
    per_sample: u64,
}

/// A weight buffer's contents: f32 values as they are, or the integer kernels' words (packed
/// int8, i32 biases and multipliers), uploaded as their bits.
enum W<'a> {
    F(&'a [f32]),
    U(Vec<u32>),
}

impl W<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            // Storage bindings cannot be empty: a zero-length tensor gets one unused word.
            W::F([]) => vec![0; 4],
            W::U(v) if v.is_empty() => vec![0; 4],
            W::F(v) => f32_bytes(v),
            W::U(v) => params::bytes(v),
        }
    }
}

/// What a step asks of the GPU before buffers exist: a kernel, its uniform, the slots it binds
/// (output first) and its weights.
struct Call<'a> {
    def: &'static Def,
    in_place: bool,
    words: Vec<u32>,
    output: usize,
    /// Slots bound as read-only inputs (in place: without input 0, which the kernel reads as `y`).
    inputs: Vec<usize>,
    weights: Vec<W<'a>>,
    per_sample: usize,
}

pub struct GpuCore {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: Vec<wgpu::ComputePipeline>,
    dispatches: Vec<Dispatch>,
    slots: Vec<wgpu::Buffer>,
    weights: Vec<wgpu::Buffer>,
    readback: wgpu::Buffer,
    input_slot: usize,
    input_len: usize,
    input_shape: Vec<usize>,
    output_len: usize,
    chunk: usize,
    /// The grid of a `Quantize` step that reads the program input: applied on the CPU to the
    /// input before upload (QUANT.md, "WebGPU": exact, where WGSL's `/` is not).
    input_q: Option<QParams>,
    /// The slot read back: the output slot, or the input of a trailing Softmax run on the CPU.
    read_slot: usize,
    /// A trailing Softmax of an integer program, run on the CPU after readback with the CPU
    /// engine's own function (`libm::expf`; WGSL's `exp` is not correctly rounded).
    cpu_softmax: Option<usize>,
    /// The sample count the uniforms currently hold (0: never written).
    uniform_n: Cell<usize>,
    adapter: String,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<String>>,
    gpu_error: Arc<Mutex<Option<String>>>,
    disposed: AtomicBool,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The window parameters every windowed shader (convolutions and pools) takes: input size,
/// kernel, stride, top/left padding, output size.
fn window(p: Params, win: &Window) -> Result<Params, WasmError> {
    p.u("c", win.c)?
        .u("h", win.h)?
        .u("w", win.w)?
        .u("kh", win.kh)?
        .u("kw", win.kw)?
        .u("sh", win.sh)?
        .u("sw", win.sw)?
        .u("pt", win.pad[0])?
        .u("pl", win.pad[1])?
        .u("oh", win.oh)?
        .u("ow", win.ow)
}

/// The window parameters `conv2d.wgsl` and `qconv2d.wgsl` share: [`window`], dilation and
/// output channels.
fn conv_window(p: Params, win: &Window, out_c: usize) -> Result<Params, WasmError> {
    window(p, win)?.u("dh", win.dh)?.u("dw", win.dw)?.u("oc", out_c)
}

fn unsupported(msg: String) -> WasmError {
    WasmError::new("UNSUPPORTED", format!("{msg}; load this model with {{ backend: 'cpu' }} (or 'auto')"))
}

/// The step's label in errors: "step 3 (Conv2d, graph node 5)".
fn label(i: usize, step: &Step) -> String {
    format!("step {i} ({}, graph node {})", step.kernel.name(), step.node)
}

fn bad(i: usize, step: &Step, what: String) -> WasmError {
    WasmError::new("BAD_MODEL", format!("{}: {what}; the lowered program is inconsistent (re-export the model)", label(i, step)))
}

/// Checks a step against the program's slots and its own sizes (the lowering should guarantee
/// all this; WebGPU would clamp out-of-range reads, but a wrong answer is worse than an error),
/// and turns it into kernel calls.
fn calls<'a>(i: usize, step: &'a Step, slots: &[usize]) -> Result<Vec<Call<'a>>, WasmError> {
    let name = step.kernel.name();
    let arity = match &step.kernel {
        Kernel::Binary { .. } => 2,
        Kernel::Concat { channels, .. } => channels.len(),
        _ => 1,
    };
    if step.inputs.len() != arity || arity == 0 {
        return Err(bad(i, step, format!("takes {arity} input(s), got {}", step.inputs.len())));
    }
    let slot_len = |s: usize| slots.get(s).copied();
    let fits = |s: usize, len: usize, what: &str| -> Result<(), WasmError> {
        match slot_len(s) {
            Some(have) if have >= len => Ok(()),
            Some(have) => Err(bad(i, step, format!("{what} {len} floats per sample in slot {s}, which holds {have}"))),
            None => Err(bad(i, step, format!("slot {s} does not exist (the program has {})", slots.len()))),
        }
    };
    let weights_len = |w: &[f32], want: usize, what: &str| -> Result<(), WasmError> {
        if w.len() == want {
            Ok(())
        } else {
            Err(bad(i, step, format!("{what} has {} values, expected {want}", w.len())))
        }
    };
    // In place: the output is input 0 (elementwise kernels only), and no other input.
    let in_place = step.inputs.first() == Some(&step.output);
    let may_alias = matches!(
        step.kernel,
        Kernel::Act { .. }
            | Kernel::Softmax { .. }
            | Kernel::Affine { .. }
            | Kernel::Binary { .. }
            | Kernel::Copy { .. }
            | Kernel::Sign { .. }
            | Kernel::Quantize { .. }
    );
    if (in_place && !may_alias) || step.inputs.iter().skip(1).any(|&s| s == step.output) {
        return Err(bad(
            i,
            step,
            "writes a slot it reads (only Activation, Softmax, Affine, Binary, Copy, Sign and Quantize may run in place, over their first input)".into(),
        ));
    }
    let act = |p: Params, a| -> Result<Params, WasmError> {
        let (code, x, y) = kernels::act_words(a);
        p.u("act", code)?.f("act_a", x)?.f("act_b", y)
    };
    let weights_len_i8 = |w: &[i8], k: usize, cols: usize| -> Result<(), WasmError> {
        let want = k * cols;
        if w.len() != want {
            return Err(bad(i, step, format!("the int8 weight has {} values, expected {want}", w.len())));
        }
        // The sums are exact in i32 only for k <= MAX_QK (as on the CPU, whose lowering checks it).
        if k > MAX_QK {
            return Err(bad(i, step, format!("an integer product over more than {MAX_QK} terms")));
        }
        Ok(())
    };
    // The input grid and the epilogue's uniform fields; a grid the WGSL cannot reproduce
    // exactly (1/s not a normal f32) is refused rather than run approximately.
    let qepi = |p: Params, input: QParams, epi: &QOut, cols: usize| -> Result<Params, WasmError> {
        let inv = 1.0f32 / input.scale;
        if !(input.scale.is_normal() && input.scale > 0.0 && inv.is_normal() && (0..=255).contains(&input.zero_point)) {
            return Err(unsupported(format!(
                "{}: input grid scale {} / zero point {} is outside what the WebGPU integer kernels reproduce exactly",
                label(i, step),
                input.scale,
                input.zero_point
            )));
        }
        let p = p.f("inv", inv)?.u("zp", input.zero_point as usize)?;
        match epi {
            QOut::Requant { out, mult, lo } => {
                if mult.len() != cols {
                    return Err(bad(i, step, format!("{} requantization multipliers for {cols} columns", mult.len())));
                }
                if !(0..=255).contains(&out.zero_point) || !(0..=255).contains(lo) || !out.scale.is_finite() {
                    return Err(bad(i, step, format!("output grid scale {} / zero point {} / floor {lo} out of range", out.scale, out.zero_point)));
                }
                // A subnormal output scale could make `s_out · (q − zp)` subnormal, which GPUs may
                // flush to zero: refused rather than run with other bits than the CPU's.
                if !out.scale.is_normal() {
                    return Err(unsupported(format!("{}: output grid scale {} is not a normal f32", label(i, step), out.scale)));
                }
                if let Some(m) = mult.iter().find(|m| m.mult < 0 || !(-31..=30).contains(&m.shift)) {
                    return Err(bad(i, step, format!("requantization multiplier {} / shift {} out of range", m.mult, m.shift)));
                }
                p.u("mode", 0)?.u("relu", 0)?.u("ozp", out.zero_point as usize)?.u("lo", *lo as usize)?.f("oscale", out.scale)
            }
            QOut::Dequant { scale, relu } => {
                if scale.len() != cols {
                    return Err(bad(i, step, format!("{} dequantization scales for {cols} columns", scale.len())));
                }
                // |acc + bias| >= 1 unless 0, so a normal (or zero) scale never gives a subnormal.
                if let Some(s) = scale.iter().find(|s| !(s.is_normal() || **s == 0.0)) {
                    return Err(unsupported(format!("{}: dequantization scale {s} is not a normal f32", label(i, step))));
                }
                p.u("mode", 1)?.u("relu", usize::from(*relu))?.u("ozp", 0)?.u("lo", 0)?.f("oscale", 0.0)
            }
        }
    };
    // bias, mult, shift, dscale, as qepi.wgsl binds them (the unused ones of a mode zero-filled).
    let qepi_weights = |bias: &[i32], epi: &'a QOut, cols: usize| -> Result<Vec<W<'a>>, WasmError> {
        if bias.len() != cols {
            return Err(bad(i, step, format!("the integer bias has {} values, expected {cols}", bias.len())));
        }
        let bits = |v: &[i32]| v.iter().map(|&b| b as u32).collect::<Vec<u32>>();
        Ok(match epi {
            QOut::Requant { mult, .. } => vec![
                W::U(bits(bias)),
                W::U(mult.iter().map(|m| m.mult as u32).collect()),
                W::U(mult.iter().map(|m| m.shift as u32).collect()),
                W::U(vec![0; cols]),
            ],
            QOut::Dequant { scale, .. } => vec![W::U(bits(bias)), W::U(vec![0; cols]), W::U(vec![0; cols]), W::F(scale)],
        })
    };
    let x = step.inputs[0];
    let one = |def: &'static Def, params: Params, weights: Vec<W<'a>>, per_sample: usize| -> Result<Vec<Call<'a>>, WasmError> {
        let words = params.finish(&["n"])?;
        let inputs = step.inputs[usize::from(in_place)..].to_vec();
        Ok(vec![Call { def, in_place, words, output: step.output, inputs, weights, per_sample }])
    };
    match &step.kernel {
        Kernel::Sign { len } => {
            fits(x, *len, "reads")?;
            fits(step.output, *len, "writes")?;
            let p = Params::new(name, kernels::SIGN.spec()).u("len", *len)?;
            one(&kernels::SIGN, p, vec![], *len)
        }
        Kernel::BDense { k, out, plus, alpha, bias, act: a } => {
            if plus.len() != k * out {
                return Err(bad(i, step, format!("the binary weight has {} values, expected {}", plus.len(), k * out)));
            }
            weights_len(alpha, *out, "the scale (alpha)")?;
            weights_len(bias, *out, "the bias")?;
            // As the CPU's plan check: |dot| <= k <= 2^16 also keeps dot exact in f32.
            if !(1..=MAX_BK).contains(k) {
                return Err(bad(i, step, format!("a binary product over {k} terms (1..={MAX_BK})")));
            }
            if let Some(s) = alpha.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
                return Err(bad(i, step, format!("binary scale {s} is not finite and >= 0")));
            }
            // alpha·dot with |dot| >= 1 is never subnormal when alpha is normal (or 0); a
            // subnormal alpha could be flushed to zero on a GPU: refused, not approximated.
            if let Some(s) = alpha.iter().find(|s| !(s.is_normal() || **s == 0.0)) {
                return Err(unsupported(format!("{}: binary scale {s} is not a normal f32", label(i, step))));
            }
            if let Some(b) = bias.iter().find(|b| !b.is_finite()) {
                return Err(bad(i, step, format!("bias {b} is not finite")));
            }
            fits(x, *k, "reads")?;
            fits(step.output, *out, "writes")?;
            let p = act(Params::new(name, kernels::BDENSE.spec()).u("k", *k)?.u("out", *out)?.f("one", 1.0)?, *a)?;
            one(&kernels::BDENSE, p, vec![W::U(pack_bits(plus, *k, *out)), W::F(alpha), W::F(bias)], *out)
        }
        // A Quantize of the program input never gets here (GpuCore::new runs it on the CPU);
        // this is one of an intermediate value, run through the CPU's own thresholds.
        Kernel::Quantize { len, q } => {
            fits(x, *len, "reads")?;
            fits(step.output, *len, "writes")?;
            let thr = quantize_thresholds(*q).ok_or_else(|| {
                unsupported(format!(
                    "{}: grid scale {} / zero point {} is outside what the WebGPU quantizer reproduces exactly",
                    label(i, step),
                    q.scale,
                    q.zero_point
                ))
            })?;
            let p = Params::new(name, kernels::QUANTIZE.spec()).u("len", *len)?.u("zp", q.zero_point as usize)?.f("scale", q.scale)?;
            one(&kernels::QUANTIZE, p, vec![W::U(thr.iter().map(|t| t.to_bits()).collect())], *len)
        }
        Kernel::QDense { k, out, weight, bias, input, epi } => {
            weights_len_i8(weight, *k, *out)?;
            fits(x, *k, "reads")?;
            fits(step.output, *out, "writes")?;
            let p = qepi(Params::new(name, kernels::QDENSE.spec()).u("k", *k)?.u("out", *out)?, *input, epi, *out)?;
            let mut ws = vec![W::U(pack_i8(weight, *k, *out))];
            ws.extend(qepi_weights(bias, epi, *out)?);
            one(&kernels::QDENSE, p, ws, *out)
        }
        Kernel::QConv2d { win, out_c, weight, bias, input, epi } => {
            let kk = win.kh * win.kw * win.c;
            weights_len_i8(weight, kk, *out_c)?;
            fits(x, win.c * win.h * win.w, "reads")?;
            let out = win.oh * win.ow * out_c;
            fits(step.output, out, "writes")?;
            let p = conv_window(Params::new(name, kernels::QCONV2D.spec()), win, *out_c)?;
            let p = qepi(p, *input, epi, *out_c)?;
            let mut ws = vec![W::U(pack_i8(weight, kk, *out_c))];
            ws.extend(qepi_weights(bias, epi, *out_c)?);
            one(&kernels::QCONV2D, p, ws, out)
        }
        Kernel::Transpose { c, hw, to_hwc } => {
            let len = c * hw;
            fits(x, len, "reads")?;
            fits(step.output, len, "writes")?;
            let p = Params::new(name, kernels::TRANSPOSE.spec()).u("c", *c)?.u("hw", *hw)?.u("to_hwc", usize::from(*to_hwc))?;
            one(&kernels::TRANSPOSE, p, vec![], len)
        }
        Kernel::Dense { k, out, weight, bias, act: a } => {
            weights_len(weight, k * out, "the weight")?;
            weights_len(bias, *out, "the bias")?;
            fits(x, *k, "reads")?;
            fits(step.output, *out, "writes")?;
            let p = act(Params::new(name, kernels::DENSE.spec()).u("k", *k)?.u("out", *out)?, *a)?;
            one(&kernels::DENSE, p, vec![W::F(weight), W::F(bias)], *out)
        }
        Kernel::Conv2d { win, out_c, groups, weight, bias, act: a } => {
            let g = *groups;
            if g == 0 || win.c % g != 0 || out_c % g != 0 {
                return Err(bad(i, step, format!("{g} groups do not divide {} input and {out_c} output channels", win.c)));
            }
            weights_len(weight, win.kh * win.kw * (win.c / g) * out_c, "the weight")?;
            weights_len(bias, *out_c, "the bias")?;
            fits(x, win.c * win.h * win.w, "reads")?;
            let out = win.oh * win.ow * out_c;
            fits(step.output, out, "writes")?;
            let p = conv_window(Params::new(name, kernels::CONV2D.spec()), win, *out_c)?.u("groups", g)?;
            one(&kernels::CONV2D, act(p, *a)?, vec![W::F(weight), W::F(bias)], out)
        }
        Kernel::SparseDense { .. } | Kernel::BlockSparseDense { .. } | Kernel::SparseConv2d { .. } => {
            Err(bad(i, step, "a sparse kernel reached the GPU encoder; GpuCore::new densifies them first (a bug)".into()))
        }
        Kernel::Pool { kind, win } => {
            fits(x, win.c * win.h * win.w, "reads")?;
            let out = win.oh * win.ow * win.c;
            fits(step.output, out, "writes")?;
            let code = match kind {
                PoolKind::Max => 0,
                PoolKind::Avg { count_include_pad: false } => 1,
                PoolKind::Avg { count_include_pad: true } => 2,
            };
            let p = window(Params::new(name, kernels::POOL.spec()), win)?
                .u("pb", win.pad[2])?
                .u("pr", win.pad[3])?
                .u("kind", code)?;
            one(&kernels::POOL, p, vec![], out)
        }
        Kernel::GlobalAvgPool { c, hw } => {
            fits(x, c * hw, "reads")?;
            fits(step.output, *c, "writes")?;
            let p = Params::new(name, kernels::GLOBAL_AVG_POOL.spec()).u("c", *c)?.u("hw", *hw)?;
            one(&kernels::GLOBAL_AVG_POOL, p, vec![], *c)
        }
        Kernel::Binary { op, len, b_per_channel, act: a } => {
            fits(x, *len, "reads")?;
            let bc = b_per_channel.unwrap_or(0);
            if b_per_channel.is_some() && (bc == 0 || len % bc != 0) {
                return Err(bad(i, step, format!("{bc} broadcast channels do not divide {len} values")));
            }
            fits(step.inputs[1], if bc == 0 { *len } else { bc }, "reads")?;
            fits(step.output, *len, "writes")?;
            let code = match op {
                BinOp::Add => 0,
                BinOp::Mul => 1,
            };
            let p = Params::new(name, kernels::BINARY.spec()).u("len", *len)?.u("bc", bc)?.u("op", code)?;
            one(&kernels::BINARY, act(p, *a)?, vec![], *len)
        }
        Kernel::Concat { channels, hw } => {
            let total: usize = channels.iter().sum();
            fits(step.output, total * hw, "writes")?;
            let mut out = Vec::with_capacity(channels.len());
            let mut off = 0;
            for (&s, &c) in step.inputs.iter().zip(channels) {
                fits(s, c * hw, "reads")?;
                let p = Params::new(name, kernels::CONCAT.spec()).u("hw", *hw)?.u("cin", c)?.u("ctot", total)?.u("coff", off)?;
                out.push(Call { def: &kernels::CONCAT, in_place: false, words: p.finish(&["n"])?, output: step.output, inputs: vec![s], weights: vec![], per_sample: c * hw });
                off += c;
            }
            Ok(out)
        }
        Kernel::Act { act: a, len } => {
            fits(x, *len, "reads")?;
            fits(step.output, *len, "writes")?;
            let p = act(Params::new(name, kernels::ACT.spec()).u("len", *len)?, *a)?;
            one(&kernels::ACT, p, vec![], *len)
        }
        Kernel::Affine { c, hw, scale, shift, act: a } => {
            weights_len(scale, *c, "the scale")?;
            weights_len(shift, *c, "the shift")?;
            fits(x, c * hw, "reads")?;
            fits(step.output, c * hw, "writes")?;
            let p = act(Params::new(name, kernels::AFFINE.spec()).u("c", *c)?.u("hw", *hw)?.f("one", 1.0)?, *a)?;
            one(&kernels::AFFINE, p, vec![W::F(scale), W::F(shift)], c * hw)
        }
        Kernel::Softmax { len } => {
            fits(x, *len, "reads")?;
            fits(step.output, *len, "writes")?;
            if *len == 0 {
                return Ok(vec![]);
            }
            let p = Params::new(name, kernels::SOFTMAX.spec()).u("len", *len)?;
            one(&kernels::SOFTMAX, p, vec![], 1)
        }
        Kernel::Copy { len } => {
            fits(x, *len, "reads")?;
            fits(step.output, *len, "writes")?;
            if in_place {
                return Ok(vec![]); // y = y
            }
            let p = Params::new(name, kernels::COPY.spec()).u("len", *len)?;
            one(&kernels::COPY, p, vec![], *len)
        }
    }
}

/// Int8 weights `[k, cols]` row-major as qdense/qconv2d.wgsl read them: per column, 4 codes
/// per u32 along k (byte t of word j is row 4j + t), zero bytes past k.
fn pack_i8(w: &[i8], k: usize, cols: usize) -> Vec<u32> {
    let k4 = k.div_ceil(4);
    let mut out = vec![0u32; k4 * cols];
    for (r, row) in w.chunks_exact(cols.max(1)).enumerate().take(k) {
        for (c, &v) in row.iter().enumerate() {
            out[c * k4 + r / 4] |= u32::from(v as u8) << (8 * (r % 4));
        }
    }
    out
}

/// ±1 weights `[k, cols]` row-major (true = +1) as bdense.wgsl reads them: per column, 32 rows
/// per u32 along k (bit t of word j is row 32j + t, 1 = +1), zero bits past k.
fn pack_bits(plus: &[bool], k: usize, cols: usize) -> Vec<u32> {
    let kw = k.div_ceil(32);
    let mut out = vec![0u32; kw * cols];
    for (r, row) in plus.chunks_exact(cols.max(1)).enumerate().take(k) {
        for (c, &v) in row.iter().enumerate() {
            out[c * kw + r / 32] |= u32::from(v) << (r % 32);
        }
    }
    out
}

/// The thresholds quantize.wgsl compares with: `thr[j]` (j in 1..=255) is the smallest f32 `x`
/// with `q.quantize(x) >= j` (the CPU's own function, so the GPU's codes are the CPU's by
/// construction: the code is non-decreasing in `x`); `thr[0]` is unused. Found by bisection over
/// the finite f32 values in order. `None` when the scale is not a normal f32 (then the output
/// `scale · (q − zp)` could be subnormal, which a GPU may flush to zero) or the zero point is
/// outside 0..=255, or a threshold is not a normal f32 (a GPU may flush it in the comparison).
pub fn quantize_thresholds(q: QParams) -> Option<Vec<f32>> {
    if !(q.scale.is_normal() && q.scale > 0.0 && (0..=255).contains(&q.zero_point)) {
        return None;
    }
    // Finite f32 values in order <-> i64 keys (−0 and +0 share key 0: same code).
    let key = |x: f32| -> i64 {
        let b = x.to_bits();
        if b >> 31 == 1 { -i64::from(b & 0x7fff_ffff) } else { i64::from(b) }
    };
    let val = |k: i64| -> f32 { if k < 0 { f32::from_bits(0x8000_0000 | (-k) as u32) } else { f32::from_bits(k as u32) } };
    let code = |k: i64| i32::from(q.quantize(val(k)));
    let mut thr = vec![0.0f32; 256];
    for (j, t) in thr.iter_mut().enumerate().skip(1) {
        // code(-MAX) = 0 < j <= 255 = code(MAX): the answer is in (lo, hi].
        let (mut lo, mut hi) = (key(f32::MIN), key(f32::MAX));
        if code(hi) < j as i32 {
            return None;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if code(mid) >= j as i32 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        *t = val(hi);
        if !t.is_normal() {
            return None;
        }
    }
    Some(thr)
}

impl GpuCore {
    /// The engine for a model read from untrusted bytes: the shared lowering, then the core's
    /// memory budget ([`mdeploy_core::budget`]) bounds the slot buffers as it bounds the CPU's
    /// arena, so a hostile file cannot make the device allocate more than its stored bytes
    /// justify (`max_batch` shrinks to fit; a single sample beyond it is `BAD_MODEL`).
    pub async fn load(model: &Model, max_batch: usize) -> Result<GpuCore, WasmError> {
        let program = program_for(model)?;
        let per_sample: usize = program.slots.iter().sum();
        let budget = mdeploy_core::budget::arena_budget(&model.graph);
        let max_batch = mdeploy_core::budget::chunk(budget, 0, per_sample, max_batch)?;
        GpuCore::new(&program, max_batch).await
    }

    /// Compiles `program` for the first WebGPU (wasm32) or Vulkan (native) adapter, sizing the
    /// slot buffers for `max_batch` samples per submit (fewer if the device's largest storage
    /// binding is smaller). Fails with `NO_WEBGPU` (no adapter or device), `BAD_MODEL` (an
    /// inconsistent program) or `UNSUPPORTED` (sizes beyond the device or the kernels).
    pub async fn new(program: &Program, max_batch: usize) -> Result<GpuCore, WasmError> {
        // Everything about the program is checked before a device is requested.
        let slots = &program.slots;
        for (what, s, len) in [("input", program.input_slot, program.input_len), ("output", program.output_slot, program.output_len)] {
            if slots.get(s).is_none_or(|&have| have < len) {
                return Err(WasmError::new(
                    "BAD_MODEL",
                    format!("the program's {what} slot {s} cannot hold {len} floats per sample; the lowered program is inconsistent"),
                ));
            }
        }
        if program.input_shape.iter().product::<usize>() != program.input_len {
            return Err(WasmError::new("BAD_MODEL", format!("input shape {:?} does not hold {} values", program.input_shape, program.input_len)));
        }
        // Sparse weights are densified on upload: the dense WGSL kernels run them (KERNELS.md,
        // "Sparse kernels", says why). A hand-made program's sparse structure is checked first.
        let densified;
        let program = if program.steps.iter().any(|s| matches!(s.kernel, Kernel::SparseDense { .. } | Kernel::BlockSparseDense { .. } | Kernel::SparseConv2d { .. })) {
            for (i, step) in program.steps.iter().enumerate() {
                if let Kernel::SparseDense { weight, .. } | Kernel::BlockSparseDense { weight, .. } | Kernel::SparseConv2d { weight, .. } = &step.kernel {
                    weight.check().map_err(|e| bad(i, step, format!("sparse weight: {e}")))?;
                    // Densifying allocates rows × cols floats: only what the step's own sizes say.
                    let (want_rows, want_cols) = match &step.kernel {
                        Kernel::SparseDense { k, out, .. } | Kernel::BlockSparseDense { k, out, .. } => (*k, *out),
                        Kernel::SparseConv2d { win, out_c, .. } => (win.kh * win.kw * win.c, *out_c),
                        _ => unreachable!("matched above"),
                    };
                    if (weight.rows, weight.cols) != (want_rows, want_cols) {
                        return Err(bad(i, step, format!("sparse weight is {}x{}, the step needs {want_rows}x{want_cols}", weight.rows, weight.cols)));
                    }
                    // A few stored values may claim a huge dense matrix: refuse before allocating
                    // it (2^26 floats = 256 MiB, already twice WebGPU's default binding limit).
                    if weight.rows.checked_mul(weight.cols).is_none_or(|n| n > 1 << 26) {
                        return Err(WasmError::new(
                            "UNSUPPORTED",
                            format!("{}: a {}x{} sparse weight is too large to densify for WebGPU; use {{ backend: 'cpu' }}", label(i, step), weight.rows, weight.cols),
                        ));
                    }
                }
            }
            densified = program.clone().densified();
            &densified
        } else {
            program
        };
        // Integer programs (QUANT.md, "WebGPU"): a Quantize of the program input runs on the CPU
        // before upload (its `x / s` must be IEEE-exact), its step becomes a copy; a trailing
        // Softmax runs on the CPU after readback (its `exp` must be `libm::expf`).
        let integer = program.steps.iter().any(|s| matches!(s.kernel, Kernel::QDense { .. } | Kernel::QConv2d { .. } | Kernel::BDense { .. }));
        let readers = |slot: usize| program.steps.iter().filter(|s| s.inputs.contains(&slot)).count();
        let mut input_q = None;
        let mut cpu_softmax = None;
        let mut read_slot = program.output_slot;
        let mut plan: Vec<Call> = Vec::new();
        let last = program.steps.len().wrapping_sub(1);
        for (i, step) in program.steps.iter().enumerate() {
            match &step.kernel {
                Kernel::Quantize { len, q }
                    if step.inputs == [program.input_slot]
                        && readers(program.input_slot) == 1
                        && !program.steps[..i].iter().any(|s| s.output == program.input_slot) =>
                {
                    if *len > program.input_len || slots.get(step.output).is_none_or(|&have| have < *len) {
                        return Err(bad(i, step, format!("quantizes {len} values of a {}-value input", program.input_len)));
                    }
                    if !(q.scale.is_finite() && q.scale > 0.0 && (0..=255).contains(&q.zero_point)) {
                        return Err(bad(i, step, format!("grid scale {} / zero point {} out of range", q.scale, q.zero_point)));
                    }
                    input_q = Some(*q);
                    if step.output != step.inputs[0] && *len > 0 {
                        let words = Params::new("Copy", kernels::COPY.spec()).u("len", *len)?.finish(&["n"])?;
                        plan.push(Call { def: &kernels::COPY, in_place: false, words, output: step.output, inputs: step.inputs.clone(), weights: vec![], per_sample: *len });
                    }
                }
                Kernel::Softmax { len } if integer && i == last && step.output == program.output_slot && *len == program.output_len => {
                    let from = step.inputs.first().copied().unwrap_or(step.output);
                    if slots.get(from).is_none_or(|&have| have < *len) {
                        return Err(bad(i, step, format!("reads {len} floats per sample from slot {from}, which is smaller")));
                    }
                    read_slot = from;
                    cpu_softmax = Some(*len);
                }
                _ => plan.extend(calls(i, step, slots)?),
            }
        }

        #[cfg(target_arch = "wasm32")]
        let backends = wgpu::Backends::BROWSER_WEBGPU;
        #[cfg(not(target_arch = "wasm32"))]
        let backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        let adapter = instance.request_adapter(&wgpu::RequestAdapterOptions::default()).await.map_err(|e| {
            WasmError::new(
                NO_WEBGPU,
                format!("no WebGPU adapter ({e}); use {{ backend: 'cpu' }} or 'auto', or enable WebGPU in the browser (Chromium: a GPU or --enable-unsafe-webgpu)"),
            )
        })?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mdeploy"),
                required_features: wgpu::Features::empty(),
                // WebGPU's defaults are what every adapter offers; the chunk size adapts to them.
                required_limits: wgpu::Limits::default(),
                ..Default::default()
            })
            .await
            .map_err(|e| WasmError::new(NO_WEBGPU, format!("the WebGPU adapter refused a device ({e}); use {{ backend: 'cpu' }} or 'auto'")))?;

        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(String::new()));
        {
            let (lost, why) = (lost.clone(), lost_reason.clone());
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut w) = why.lock() {
                    *w = format!("{reason:?}: {msg}");
                }
                lost.store(true, Ordering::SeqCst);
            });
        }
        // wgpu's default handler panics on a validation error, and a panic traps the whole wasm
        // instance (the CPU engine too). Record it instead; the batch then fails with a message.
        let gpu_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        {
            let slot = gpu_error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut s) = slot.lock() {
                    s.get_or_insert_with(|| e.to_string());
                }
            }));
        }

        // Samples per submit: every slot and every kernel's flat u32 invocation index must fit.
        let limits = device.limits();
        let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let widest = slots.iter().copied().max().unwrap_or(0).max(1) as u64;
        let fit_mem = cap / (widest * 4);
        if fit_mem == 0 {
            return Err(unsupported(format!(
                "one sample needs a {} MB buffer, beyond this device's largest storage binding ({} MB)",
                (widest * 4) >> 20,
                cap >> 20
            )));
        }
        // Kernels index slots with u32 (sample × len) and flatten a 2-D dispatch whose last row
        // may overshoot by up to 65,535 workgroups: keep every index below u32::MAX with that margin.
        let busiest = plan.iter().map(|c| c.per_sample as u64).max().unwrap_or(1).max(widest);
        let fit_index = (u64::from(u32::MAX) - 65_535 * WG) / busiest;
        if fit_index == 0 {
            return Err(unsupported(format!("one sample needs {busiest} values in one kernel, beyond the WebGPU kernels' 32-bit indexing")));
        }
        let chunk = (max_batch as u64).clamp(1, fit_mem.min(fit_index)) as usize;

        // Validation and out-of-memory errors while building are caught here, at load, rather
        // than surfacing as a failed first batch.
        let oom_scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val_scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let slot_bufs: Vec<wgpu::Buffer> = slots
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("slot{i}")),
                    size: (len.max(1) * chunk * 4) as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (program.output_len.max(1) * 4 * chunk) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut cache: Vec<((usize, bool), usize)> = Vec::new();
        let mut pipelines: Vec<wgpu::ComputePipeline> = Vec::new();
        let mut weights: Vec<wgpu::Buffer> = Vec::new();
        let mut dispatches = Vec::with_capacity(plan.len());
        for call in &plan {
            let def = call.def;
            let kid = kernels::ALL.iter().position(|d| d.name == def.name).unwrap_or(0);
            let key = (kid, call.in_place);
            let pipeline = match cache.iter().find(|(k, _)| *k == key) {
                Some(&(_, p)) => p,
                None => {
                    let label = if call.in_place { format!("{}-in-place", def.name) } else { def.name.to_string() };
                    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&label),
                        source: wgpu::ShaderSource::Wgsl(def.source(call.in_place).into()),
                    });
                    pipelines.push(device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    }));
                    cache.push((key, pipelines.len() - 1));
                    pipelines.len() - 1
                }
            };
            let params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(def.name),
                size: (call.words.len() * 4) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let first_weight = weights.len();
            for (w, name) in call.weights.iter().zip(def.weights) {
                weights.push(device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(name),
                    contents: &w.bytes(),
                    usage: wgpu::BufferUsages::STORAGE,
                }));
            }
            // Binding order as kernels.rs declares it: p, y, inputs, weights.
            let mut resources: Vec<wgpu::BindingResource> = vec![params.as_entire_binding(), slot_bufs[call.output].as_entire_binding()];
            resources.extend(call.inputs.iter().map(|&s| slot_bufs[s].as_entire_binding()));
            resources.extend(weights[first_weight..].iter().map(|b| b.as_entire_binding()));
            let entries: Vec<wgpu::BindGroupEntry> =
                resources.into_iter().enumerate().map(|(b, resource)| wgpu::BindGroupEntry { binding: b as u32, resource }).collect();
            let layout = pipelines[pipeline].get_bind_group_layout(0);
            let bind = device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(def.name), layout: &layout, entries: &entries });
            let n_at = params::index(def.spec(), "n").unwrap_or(0);
            dispatches.push(Dispatch { pipeline, bind, params, words: call.words.clone(), n_at, per_sample: call.per_sample as u64 });
        }
        if let Some(e) = val_scope.pop().await {
            return Err(unsupported(format!("WebGPU rejected the model's kernels: {e}")));
        }
        if let Some(e) = oom_scope.pop().await {
            return Err(unsupported(format!("the GPU is out of memory for this model at {chunk} samples per batch ({e}); try a smaller maxBatch")));
        }
        Ok(GpuCore {
            device,
            queue,
            pipelines,
            dispatches,
            slots: slot_bufs,
            weights,
            readback,
            input_slot: program.input_slot,
            input_len: program.input_len,
            input_shape: program.input_shape.clone(),
            output_len: program.output_len,
            chunk,
            input_q,
            read_slot,
            cpu_softmax,
            uniform_n: Cell::new(0),
            adapter: format!("{} ({:?})", info.name, info.backend),
            lost,
            lost_reason,
            gpu_error,
            disposed: AtomicBool::new(false),
        })
    }

    pub fn input_len(&self) -> usize {
        self.input_len
    }
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    /// Bytes of every buffer this engine created on the device (slots, readback, uniforms, weights).
    pub fn device_bytes(&self) -> u64 {
        let buffers = self.slots.iter().chain(&self.weights).chain(std::iter::once(&self.readback));
        buffers.map(|b| b.size()).sum::<u64>() + self.dispatches.iter().map(|d| d.params.size()).sum::<u64>()
    }
    /// Samples per GPU submit.
    pub fn chunk(&self) -> usize {
        self.chunk
    }
    /// Kernel dispatches per submit.
    pub fn dispatches(&self) -> usize {
        self.dispatches.len()
    }
    /// The adapter's name and backend, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)".
    pub fn adapter(&self) -> &str {
        &self.adapter
    }
    /// `true` once the device is lost (driver reset, tab in the background too long, ...).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
    pub fn lost_reason(&self) -> String {
        self.lost_reason.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// Destroys the device as a driver reset would: lets tests exercise the lost-device path.
    pub fn lose_device_for_testing(&self) {
        self.device.destroy();
    }

    /// Frees the GPU buffers and the device now instead of at drop / garbage collection.
    pub fn dispose(&self) {
        if self.disposed.swap(true, Ordering::SeqCst) {
            return;
        }
        for b in self.weights.iter().chain(&self.slots).chain(self.dispatches.iter().map(|d| &d.params)) {
            b.destroy();
        }
        self.readback.destroy();
        self.device.destroy();
    }

    fn check_alive(&self) -> Result<(), WasmError> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(WasmError::new("DISPOSED", "this model's GPU engine was disposed; load the model again"));
        }
        if self.lost() {
            return Err(WasmError::new(NO_WEBGPU, format!("the WebGPU device was lost ({}); the model continues on the CPU", self.lost_reason())));
        }
        Ok(())
    }

    /// Runs `n` samples (`n × input_len` floats, the model's NCHW order); resolves to
    /// `n × output_len` floats. Never blocks in the browser: the readback is an awaited map.
    /// One call at a time per engine (callers serialise: the slot buffers are shared).
    pub async fn run(&self, input: &[f32], n: usize) -> Result<Vec<f32>, WasmError> {
        let il = self.input_len;
        crate::error::check_batch(input.len(), n, il, &self.input_shape)?;
        if let Some(bad) = input.iter().position(|v| !v.is_finite()) {
            return Err(WasmError::new(
                "BAD_INPUT",
                format!(
                    "input value at index {bad} (sample {}, element {}) is {}; inputs must be finite numbers \
                     (check the preprocessing, e.g. a division by zero during normalisation)",
                    bad / il.max(1),
                    bad % il.max(1),
                    input[bad]
                ),
            ));
        }
        let ol = self.output_len;
        let mut out = vec![0.0f32; n * ol];
        let mut done = 0;
        while done < n {
            self.check_alive()?;
            let nb = (n - done).min(self.chunk);
            if il > 0 {
                let chunk_in = &input[done * il..(done + nb) * il];
                let bytes = match self.input_q {
                    // quant.rs's own functions: the same codes as the CPU engine, on the grid.
                    Some(q) => chunk_in.iter().flat_map(|&v| q.dequantize(i32::from(q.quantize(v))).to_le_bytes()).collect(),
                    None => f32_bytes(chunk_in),
                };
                self.queue.write_buffer(&self.slots[self.input_slot], 0, &bytes);
            }
            if self.uniform_n.get() != nb {
                for d in &self.dispatches {
                    let mut words = d.words.clone();
                    words[d.n_at] = nb as u32; // nb ≤ chunk, and chunk × per_sample fits a u32
                    self.queue.write_buffer(&d.params, 0, &params::bytes(&words));
                }
                self.uniform_n.set(nb);
            }
            let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                for d in &self.dispatches {
                    let groups = (nb as u64 * d.per_sample).div_ceil(WG);
                    if groups == 0 {
                        continue;
                    }
                    let x = groups.min(65535);
                    let y = groups.div_ceil(x);
                    pass.set_pipeline(&self.pipelines[d.pipeline]);
                    pass.set_bind_group(0, &d.bind, &[]);
                    pass.dispatch_workgroups(x as u32, y as u32, 1);
                }
            }
            let bytes = (nb * ol * 4) as u64;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(&self.slots[self.read_slot], 0, &self.readback, 0, bytes);
            }
            self.queue.submit([enc.finish()]);
            if bytes == 0 {
                done += nb;
                continue;
            }

            let (tx, rx) = futures_channel::oneshot::channel();
            self.readback.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
            // Native wgpu runs map callbacks from poll(); in the browser the event loop does.
            #[cfg(not(target_arch = "wasm32"))]
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
            let mapped = rx.await;
            if let Some(e) = self.gpu_error.lock().ok().and_then(|mut s| s.take()) {
                if matches!(mapped, Ok(Ok(()))) {
                    self.readback.unmap();
                }
                return Err(unsupported(format!("WebGPU reported an error running the model: {e}")));
            }
            match mapped {
                Ok(Ok(())) => {}
                _ => {
                    self.check_alive()?;
                    return Err(WasmError::new(NO_WEBGPU, "reading the result back from the GPU failed; use { backend: 'cpu' }"));
                }
            }
            {
                let view = self.readback.get_mapped_range(0..bytes).map_err(|e| {
                    WasmError::new(NO_WEBGPU, format!("reading the result back from the GPU failed ({e}); use {{ backend: 'cpu' }}"))
                })?;
                for (o, c) in out[done * ol..(done + nb) * ol].iter_mut().zip(view.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            self.readback.unmap();
            if let Some(len) = self.cpu_softmax {
                softmax_rows(&mut out[done * ol..(done + nb) * ol], len);
            }
            done += nb;
        }
        Ok(out)
    }
}
