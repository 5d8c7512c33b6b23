//! Quantized ONNX: onnxruntime's three formats rewritten into the f32 graph they stand for, the
//! integer weights found again after mapping so that `.mdm` stores them as integers, and the
//! uint8 activation grids turned into `Op::Quantize` so that they run on the integer kernels.
//!
//! ```text
//!  ModelProto ──rewrite (before tract sees it)──► f32 ModelProto + the integer source of each weight
//!    QDQ        DequantizeLinear(int8/uint8/int32 initializer)  → f32 initializer scale·(q − zp)
//!               QuantizeLinear(x) of an activation               → Clip(x, scale·(qmin − zp), scale·(qmax − zp))
//!                                                                  (+ its grid remembered when uint8)
//!               DequantizeLinear(x) of an activation             → Identity(x)
//!    QOperator  QLinearMatMul / QLinearConv                      → MatMul / Conv (f32 weights, bias
//!                                                                  B·x_scale·w_scale) + Clip of y's range
//!    dynamic    DynamicQuantizeLinear → MatMulInteger/ConvInteger → Cast → Mul(scales)
//!                                                                → MatMul / Conv on the f32 input
//!  tract + map.rs (unchanged) ──► mdeploy Graph
//!    ──store_weights──► a Dense/Conv2d weight whose f32 values are bit for bit scale·(q − zp)
//!                       for a remembered source becomes TensorData::Quantized
//!    ──quantize_activations──► a Clip with exactly a remembered uint8 grid's bounds becomes
//!                       Quantize { scale, zero_point } (a repeat on the same grid: Identity)
//! ```
//!
//! Why a rewrite and not tract's own quantized ops: tract types QDQ graphs as integer graphs,
//! which `map.rs` would need a second mapping for; an f32 graph with Clips keeps `map.rs` as it
//! is, and the Clips' bounds (kept bit for bit by tract's Max/Min) identify the grids after
//! mapping. The Clip is also the right answer where no `Quantize` can stand in: int8
//! activations (mdeploy's grid is uint8) keep their *range*, which matters because onnxruntime's
//! quantizer removes a Relu when the quantized range already clips at 0.
//!
//! The integer weights are matched after mapping by value, not by name: tract transposes
//! weights and the mapping permutes Dense rows (absorbed Transposes), so a weight's layout in
//! mdeploy is not the file's. Checking that every value is exactly `scale·(q − zp)` (trying
//! each axis of the right length for per-channel scales) finds the layout without tracking it,
//! and stores integers only where they reproduce the f32 weights bit for bit.

use std::collections::{HashMap, HashSet};

use mdeploy_model::model::{Quant, QuantType, Tensor, TensorData};
use mdeploy_model::{Graph, Op};
use tract_onnx::data_resolver::FopenDataResolver;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::ImportError;

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;

/// An integer weight as the file stores it: `real = scale[c] · (q − zero_point[c])`.
#[derive(Clone, Debug)]
pub struct Source {
    pub qtype: QuantType,
    pub numel: usize,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
}

/// An activation quantized to uint8, per tensor, that the rewrite turned into `Clip(x, lo, hi)`:
/// after mapping, the Clip with exactly these bounds becomes `Op::Quantize { scale, zero_point }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActGrid {
    pub lo: f32,
    pub hi: f32,
    pub scale: f32,
    pub zero_point: i32,
}

/// What the rewrite did: the formats it met and the integer weights it dequantized.
#[derive(Clone, Debug, Default)]
pub struct Rewritten {
    /// `"QDQ"`, `"QOperator"`, `"dynamic"` (several joined with `+`); empty: not quantized.
    pub format: String,
    pub sources: Vec<Source>,
    /// The uint8 activation grids (QuantizeLinear, and QLinearConv/QLinearMatMul outputs).
    pub grids: Vec<ActGrid>,
    /// Activation ranges that stay a plain Clip: int8 activations (mdeploy's `Quantize` is
    /// uint8 only, the u8 × i8 kernels need unsigned activations) or a scale that is not a
    /// normal f32.
    pub clip_only: usize,
}

/// How many Dense/Conv2d weights `store_weights` stored as integers, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub weights: usize,
    pub quantized: usize,
    pub per_channel: usize,
    pub int8: usize,
    pub uint8: usize,
}

fn in_default_domain(n: &pb::NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

/// Microsoft-only ops onnxruntime's quantizer writes: neither tract nor mdeploy know them.
fn is_ms_quant_op(n: &pb::NodeProto) -> bool {
    n.domain == "com.microsoft"
        && (n.op_type.starts_with("QLinear")
            || n.op_type.starts_with("QGemm")
            || n.op_type.starts_with("QOrdered")
            || n.op_type.starts_with("DynamicQuantize")
            || matches!(
                n.op_type.as_str(),
                "QuantizeLinear" | "DequantizeLinear" | "QAttention" | "MatMulIntegerToFloat" | "MatMulNBits"
            ))
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn input(n: &pb::NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

/// Integer or float values of an initializer, read by tract's own tensor loader.
struct Values {
    dt: i32,
    shape: Vec<usize>,
    ints: Vec<i32>,
    floats: Vec<f32>,
}

struct Ctx<'a> {
    inits: HashMap<&'a str, &'a pb::TensorProto>,
    dir: Option<&'a str>,
    opset: i64,
    /// f32 initializers the rewrite adds (dequantized weights, Clip bounds).
    new_inits: Vec<pb::TensorProto>,
    sources: Vec<Source>,
    formats: Vec<&'static str>,
    grids: Vec<ActGrid>,
    clip_only: usize,
}

fn describe(n: &pb::NodeProto, opset: i64) -> String {
    let name = if n.name.is_empty() { n.output.first().map(String::as_str).unwrap_or("") } else { &n.name };
    format!("ONNX node {name:?} ({}, opset {opset})", n.op_type)
}

impl<'a> Ctx<'a> {
    fn err(&self, n: &pb::NodeProto, what: impl std::fmt::Display) -> ImportError {
        ImportError::new(format!("{}: {what}", describe(n, self.opset)))
    }

    fn values(&self, n: &pb::NodeProto, name: &str, what: &str) -> Result<Values, ImportError> {
        let t = self.inits.get(name).ok_or_else(|| {
            self.err(
                n,
                format!(
                    "its {what} {name:?} is computed at run time; mdeploy imports quantized graphs whose {what} is an \
                     initializer (as onnxruntime's quantizer writes them)"
                ),
            )
        })?;
        if ![FLOAT, UINT8, INT8, INT32, INT64].contains(&t.data_type) {
            return Err(self.err(
                n,
                format!(
                    "its {what} {name:?} has ONNX data type {}; mdeploy imports 8-bit quantization (int8/uint8 weights, \
                     float32 scales, int32 biases): re-quantize with weight_type QInt8 or QUInt8",
                    t.data_type
                ),
            ));
        }
        let tensor = tract_onnx::tensor::load_tensor(&FopenDataResolver, t, self.dir)
            .map_err(|e| self.err(n, format!("cannot read its {what} {name:?}: {e:#}")))?;
        let shape = tensor.shape().to_vec();
        let bad = |e: TractError| self.err(n, format!("cannot read its {what} {name:?}: {e:#}"));
        let (ints, floats) = match t.data_type {
            FLOAT => (Vec::new(), tensor.to_plain_array_view::<f32>().map_err(bad)?.iter().copied().collect()),
            UINT8 => (tensor.to_plain_array_view::<u8>().map_err(bad)?.iter().map(|&v| i32::from(v)).collect(), Vec::new()),
            INT8 => (tensor.to_plain_array_view::<i8>().map_err(bad)?.iter().map(|&v| i32::from(v)).collect(), Vec::new()),
            INT32 => (tensor.to_plain_array_view::<i32>().map_err(bad)?.iter().copied().collect(), Vec::new()),
            _ => {
                // int64 only as a shape-like constant: never a quantized value.
                return Err(self.err(n, format!("its {what} {name:?} is int64; quantized values are 8-bit integers")));
            }
        };
        Ok(Values { dt: t.data_type, shape, ints, floats })
    }

    /// Scales (f32, finite, > 0) and zero points (default 0) of a quantized value; per-tensor
    /// when the scale is a scalar, else one per index of `axis` of `shape`.
    fn params(
        &self,
        n: &pb::NodeProto,
        scale: &str,
        zp: Option<&str>,
        shape: &[usize],
        axis: usize,
    ) -> Result<(Vec<f32>, Vec<i32>, Option<i32>), ImportError> {
        let s = self.values(n, scale, "scale")?;
        if s.dt != FLOAT {
            return Err(self.err(n, format!("its scale {scale:?} is not float32")));
        }
        let per_channel = s.floats.len() != 1 || !s.shape.is_empty() && s.shape != [1];
        if per_channel && (s.shape.len() != 1 || shape.get(axis) != Some(&s.floats.len())) {
            return Err(self.err(
                n,
                format!(
                    "scale {scale:?} has shape {:?}, neither one value nor one per index of axis {axis} of a {shape:?} \
                     tensor; mdeploy imports per-tensor and per-axis quantization only",
                    s.shape
                ),
            ));
        }
        if let Some(bad) = s.floats.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(self.err(n, format!("scale {scale:?} holds {bad}; scales must be finite and positive")));
        }
        let (zps, zdt) = match zp {
            Some(z) => {
                let v = self.values(n, z, "zero point")?;
                if v.dt == FLOAT || v.ints.len() != s.floats.len() {
                    return Err(self.err(
                        n,
                        format!("zero point {z:?} must be integers, as many as the scales ({})", s.floats.len()),
                    ));
                }
                (v.ints, Some(v.dt))
            }
            None => (vec![0; s.floats.len()], None),
        };
        Ok((s.floats, zps, zdt))
    }

    fn add_f32(&mut self, name: &str, shape: &[usize], values: &[f32]) {
        self.new_inits.push(pb::TensorProto {
            name: name.to_string(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    /// `scale·(q − zp)` of an integer initializer as a new f32 initializer `out`; an 8-bit one
    /// is remembered as the source of a weight.
    fn dequantize_init(
        &mut self,
        n: &pb::NodeProto,
        q_name: &str,
        scale: &str,
        zp: Option<&str>,
        axis: i64,
        out: &str,
    ) -> Result<(), ImportError> {
        let q = self.values(n, q_name, "quantized tensor")?;
        if q.dt == FLOAT {
            return Err(self.err(n, format!("{q_name:?} is already float32; nothing to dequantize")));
        }
        let rank = q.shape.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        let ax = usize::try_from(axis).unwrap_or(usize::MAX);
        let (scales, zps, zdt) = self.params(n, scale, zp, &q.shape, ax)?;
        if zdt.is_some_and(|z| z != q.dt) {
            return Err(self.err(n, format!("zero point and {q_name:?} have different integer types")));
        }
        let inner: usize = if scales.len() > 1 { q.shape[ax + 1..].iter().product() } else { q.ints.len().max(1) };
        let k = scales.len();
        // The formula of mdeploy_model's Tensor::to_f32_dense (and of ONNX DequantizeLinear):
        // the integer difference is exact in f32, so both round the same one product.
        let f: Vec<f32> = q
            .ints
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / inner.max(1)) % k;
                scales[c] * (i64::from(v) - i64::from(zps[c])) as f32
            })
            .collect();
        self.add_f32(out, &q.shape, &f);
        let qtype = match q.dt {
            INT8 => Some(QuantType::I8),
            UINT8 => Some(QuantType::U8),
            _ => None, // int32 biases: mdeploy stores biases as f32
        };
        if let Some(qtype) = qtype {
            self.sources.push(Source { qtype, numel: f.len(), scales, zero_points: zps });
        }
        Ok(())
    }

    /// `Clip(x, lo, hi)` with the range an 8-bit quantization of `scale`, `zp` saturates to.
    fn range_clip(
        &mut self,
        n: &pb::NodeProto,
        x: &str,
        scale: &str,
        zp: Option<&str>,
        out: &str,
        name: &str,
    ) -> Result<pb::NodeProto, ImportError> {
        let (s, z, zdt) = self.params(n, scale, zp, &[], 0)?;
        if s.len() != 1 {
            return Err(self.err(n, "per-axis quantization of an activation is not supported (only of weights)"));
        }
        // Without a zero point the type is output_dtype (opset 21) or uint8.
        let dt = zdt.or_else(|| attr(n, "output_dtype").map(|a| a.i as i32).filter(|&d| d != 0)).unwrap_or(UINT8);
        let (qmin, qmax) = match dt {
            UINT8 => (0i64, 255i64),
            INT8 => (-128, 127),
            other => {
                return Err(self.err(
                    n,
                    format!("quantizes activations to ONNX data type {other}; mdeploy imports 8-bit (int8/uint8) only"),
                ))
            }
        };
        let lo = s[0] * (qmin - i64::from(z[0])) as f32;
        let hi = s[0] * (qmax - i64::from(z[0])) as f32;
        // A uint8 grid is what `Op::Quantize` computes (ONNX QuantizeLinear's round half to
        // even, then the clamp to 0..=255 that is this Clip): remembered so that the mapped
        // Clip can become one. int8 activations have no mdeploy op: they stay a range only.
        if dt == UINT8 && s[0].is_normal() {
            self.grids.push(ActGrid { lo, hi, scale: s[0], zero_point: z[0] });
        } else {
            self.clip_only += 1;
        }
        let mut clip = pb::NodeProto {
            name: name.to_string(),
            op_type: "Clip".into(),
            input: vec![x.to_string()],
            output: vec![out.to_string()],
            ..Default::default()
        };
        if self.opset >= 11 {
            let (lo_name, hi_name) = (format!("{name}.min"), format!("{name}.max"));
            self.add_f32(&lo_name, &[], &[lo]);
            self.add_f32(&hi_name, &[], &[hi]);
            clip.input.extend([lo_name, hi_name]);
        } else {
            for (k, v) in [("min", lo), ("max", hi)] {
                clip.attribute.push(pb::AttributeProto { name: k.into(), r#type: 1, f: v, ..Default::default() });
            }
        }
        Ok(clip)
    }
}

fn node(op: &str, name: &str, input: Vec<String>, output: Vec<String>, attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto { name: name.to_string(), op_type: op.to_string(), input, output, attribute, ..Default::default() }
}

fn arg<'n>(opset: i64, n: &'n pb::NodeProto, i: usize, what: &str) -> Result<&'n str, ImportError> {
    input(n, i).ok_or_else(|| {
        ImportError::new(format!("{}: input {i} ({what}) is missing; the file is malformed", describe(n, opset)))
    })
}

fn block_size_check(ctx: &Ctx, n: &pb::NodeProto) -> Result<(), ImportError> {
    if attr(n, "block_size").is_some_and(|a| a.i != 0) {
        return Err(ctx.err(n, "blocked quantization (block_size) is not supported; quantize per tensor or per channel"));
    }
    Ok(())
}

/// Rewrites a quantized graph into its f32 equivalent in place; a graph without quantized ops
/// is left untouched (an empty [`Rewritten::format`]).
pub fn rewrite(proto: &mut pb::ModelProto, dir: Option<&str>, opset: i64) -> Result<Rewritten, ImportError> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(Rewritten::default()) };
    if let Some(n) = graph.node.iter().find(|n| is_ms_quant_op(n)) {
        return Err(ImportError::new(format!(
            "{}: a Microsoft-only quantized op (domain com.microsoft), which neither tract nor mdeploy implement; \
             quantize with onnxruntime's QuantFormat.QDQ, or QuantFormat.QOperator with \
             op_types_to_quantize=[\"Conv\", \"MatMul\"] (standard QLinearConv/QLinearMatMul)",
            describe(n, opset).replace(&format!("({}", n.op_type), &format!("(com.microsoft:{}", n.op_type))
        )));
    }
    const OPS: [&str; 7] =
        ["QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear"];
    if !graph.node.iter().any(|n| in_default_domain(n) && OPS.contains(&n.op_type.as_str())) {
        return Ok(Rewritten::default());
    }
    let nodes = std::mem::take(&mut graph.node);
    let inits_vec = std::mem::take(&mut graph.initializer);
    let mut ctx = Ctx {
        inits: inits_vec.iter().map(|t| (t.name.as_str(), t)).collect(),
        dir,
        opset,
        new_inits: Vec::new(),
        sources: Vec::new(),
        formats: Vec::new(),
        grids: Vec::new(),
        clip_only: 0,
    };
    let producer: HashMap<&str, usize> =
        nodes.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for x in n.input.iter().filter(|x| !x.is_empty()) {
            consumers.entry(x.as_str()).or_default().push(i);
        }
    }
    let mut skip: HashSet<usize> = HashSet::new();
    let mut out: Vec<pb::NodeProto> = Vec::with_capacity(nodes.len());
    let format = |ctx: &mut Ctx, f: &'static str| {
        if !ctx.formats.contains(&f) {
            ctx.formats.push(f)
        }
    };
    for (idx, n) in nodes.iter().enumerate() {
        if skip.contains(&idx) {
            continue;
        }
        if !in_default_domain(n) || !OPS.contains(&n.op_type.as_str()) {
            out.push(n.clone());
            continue;
        }
        let out0 = n.output.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "DequantizeLinear" => {
                block_size_check(&ctx, n)?;
                let (x, s) = (arg(opset, n, 0, "x")?, arg(opset, n, 1, "x_scale")?);
                if ctx.inits.contains_key(x) {
                    let axis = attr(n, "axis").map(|a| a.i).unwrap_or(1);
                    ctx.dequantize_init(n, x, s, input(n, 2), axis, &out0)?;
                    format(&mut ctx, "QDQ");
                } else {
                    // Its producer (a QuantizeLinear, now a Clip) already made the f32 value.
                    out.push(node("Identity", &n.name, vec![x.to_string()], vec![out0], vec![]));
                }
            }
            "QuantizeLinear" => {
                block_size_check(&ctx, n)?;
                let (x, s) = (arg(opset, n, 0, "x")?, arg(opset, n, 1, "y_scale")?);
                let clip = ctx.range_clip(n, x, s, input(n, 2), &out0, &n.name)?;
                out.push(clip);
            }
            "QLinearMatMul" | "QLinearConv" => {
                let conv = n.op_type == "QLinearConv";
                let (x, w) = (arg(opset, n, 0, "input")?, arg(opset, n, 3, "weight")?);
                if !ctx.inits.contains_key(w) {
                    return Err(ctx.err(
                        n,
                        "its second operand is computed at run time; mdeploy imports QLinearMatMul/QLinearConv with \
                         constant (initializer) weights only",
                    ));
                }
                let wf = format!("{out0}.weight");
                // QLinearMatMul's B is [K, N] with per-column scales; QLinearConv's W is [M, C, kh, kw]
                // with per-output-channel scales.
                ctx.dequantize_init(n, w, arg(opset, n, 4, "weight scale")?, input(n, 5), if conv { 0 } else { 1 }, &wf)?;
                let tmp = format!("{out0}.f32");
                let mut ins = vec![x.to_string(), wf];
                if conv {
                    if let Some(b) = input(n, 8) {
                        let bv = ctx.values(n, b, "bias")?;
                        let (xs, _, _) = ctx.params(n, arg(opset, n, 1, "x_scale")?, None, &[], 0)?;
                        let ws = ctx.values(n, arg(opset, n, 4, "weight scale")?, "weight scale")?.floats;
                        if bv.dt != INT32 || xs.len() != 1 || !(ws.len() == 1 || ws.len() == bv.ints.len()) {
                            return Err(ctx.err(n, format!("bias {b:?} must be int32, one per output channel")));
                        }
                        // ONNX: the bias is quantized with scale x_scale · w_scale and zero point 0.
                        let bf: Vec<f32> = bv
                            .ints
                            .iter()
                            .enumerate()
                            .map(|(i, &q)| q as f32 * (xs[0] * ws[if ws.len() == 1 { 0 } else { i }]))
                            .collect();
                        let name = format!("{out0}.bias");
                        ctx.add_f32(&name, &bv.shape, &bf);
                        ins.push(name);
                    }
                }
                let op = if conv { "Conv" } else { "MatMul" };
                let attrs = if conv { n.attribute.clone() } else { vec![] };
                out.push(node(op, &n.name, ins, vec![tmp.clone()], attrs));
                let (ys, yzp) = (arg(opset, n, 6, "y_scale")?, input(n, 7));
                let clip = ctx.range_clip(n, &tmp, ys, yzp, &out0, &format!("{}.range", n.name))?;
                out.push(clip);
                format(&mut ctx, "QOperator");
            }
            "MatMulInteger" | "ConvInteger" => {
                let pattern = "mdeploy imports MatMulInteger/ConvInteger in the pattern onnxruntime's quantize_dynamic \
                               writes (DynamicQuantizeLinear → MatMulInteger/ConvInteger with an initializer weight → \
                               Cast to float → Mul by the product of the two scales)";
                let fail = |why: &str| ctx.err(n, format!("{why}; {pattern}"));
                let (a, w) = (arg(opset, n, 0, "input")?, arg(opset, n, 1, "weight")?);
                let dql = producer.get(a).map(|&i| &nodes[i]).filter(|p| p.op_type == "DynamicQuantizeLinear");
                let dql = dql.ok_or_else(|| fail("its input is not a DynamicQuantizeLinear output"))?;
                let x = input(dql, 0).ok_or_else(|| fail("DynamicQuantizeLinear has no input"))?;
                if !ctx.inits.contains_key(w) {
                    return Err(fail("its weight is computed at run time"));
                }
                let only = |v: &str| consumers.get(v).filter(|c| c.len() == 1).map(|c| c[0]);
                let cast = only(&out0).filter(|&i| nodes[i].op_type == "Cast" && attr(&nodes[i], "to").is_some_and(|a| a.i == 1));
                let cast = cast.ok_or_else(|| fail("its output does not go only to a Cast to float"))?;
                let cast_out = nodes[cast].output.first().map(String::as_str).unwrap_or("");
                let mul = only(cast_out).filter(|&i| nodes[i].op_type == "Mul" && nodes[i].input.len() == 2);
                let mul = mul.ok_or_else(|| fail("the Cast does not go only to a Mul"))?;
                let other = nodes[mul].input.iter().find(|i| i.as_str() != cast_out).map(String::as_str).unwrap_or("");
                let scale_mul = producer.get(other).map(|&i| &nodes[i]).filter(|p| p.op_type == "Mul");
                let scale_mul = scale_mul.ok_or_else(|| fail("the Mul's other operand is not a product of scales"))?;
                let dql_scale = dql.output.get(1).map(String::as_str).unwrap_or("");
                if !scale_mul.input.iter().any(|i| i == dql_scale) {
                    return Err(fail("the scale product does not use DynamicQuantizeLinear's scale"));
                }
                let ws = scale_mul.input.iter().find(|i| ctx.inits.contains_key(i.as_str()));
                let ws = ws.ok_or_else(|| fail("the weight scale is not an initializer"))?.clone();
                let conv = n.op_type == "ConvInteger";
                let wf = format!("{out0}.weight");
                ctx.dequantize_init(n, w, &ws, input(n, 3), if conv { 0 } else { 1 }, &wf)?;
                let result = nodes[mul].output.first().cloned().unwrap_or_default();
                let attrs = if conv { n.attribute.clone() } else { vec![] };
                out.push(node(if conv { "Conv" } else { "MatMul" }, &n.name, vec![x.to_string(), wf], vec![result], attrs));
                skip.extend([cast, mul]);
                format(&mut ctx, "dynamic");
            }
            // DynamicQuantizeLinear stays until pruning: it must end up feeding nothing.
            _ => out.push(n.clone()),
        }
    }
    // Nodes that fed only the replaced integer chains (DynamicQuantizeLinear, the scale Mul)
    // are dead now; a DynamicQuantizeLinear that still feeds something is not understood.
    let graph_outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    loop {
        let used: HashSet<&str> = out.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
        let live: Vec<bool> = out
            .iter()
            .map(|n| n.output.iter().any(|o| used.contains(o.as_str()) || graph_outputs.contains(o)))
            .collect();
        if live.iter().all(|&l| l) {
            break;
        }
        let mut it = live.into_iter();
        out.retain(|_| it.next().unwrap_or(true));
    }
    if let Some(n) = out.iter().find(|n| in_default_domain(n) && n.op_type == "DynamicQuantizeLinear") {
        return Err(ctx.err(
            n,
            "its quantized output feeds an op other than MatMulInteger/ConvInteger; mdeploy imports the patterns of \
             onnxruntime's quantize_dynamic only",
        ));
    }
    let used: HashSet<&str> = out.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let Ctx { new_inits, sources, formats, grids, clip_only, .. } = ctx;
    // Integer weights, scales and zero points no longer read by any node leave the initializers
    // (and the graph inputs, where IR < 4 files list initializers too).
    let keep = |name: &str| used.contains(name) || graph_outputs.contains(name);
    let dropped: HashSet<String> = inits_vec.iter().filter(|t| !keep(&t.name)).map(|t| t.name.clone()).collect();
    let mut inits: Vec<pb::TensorProto> = inits_vec.into_iter().filter(|t| !dropped.contains(&t.name)).collect();
    inits.extend(new_inits.into_iter().filter(|t| keep(&t.name)));
    graph.input.retain(|i| !dropped.contains(&i.name));
    graph.initializer = inits;
    graph.node = out;
    // Declared types of the rewritten values (uint8, int32) are wrong now; tract infers them.
    graph.value_info.clear();
    Ok(Rewritten { format: formats.join("+"), sources, grids, clip_only })
}

/// Turns each mapped `Clip` whose bounds are exactly those of a remembered uint8 grid into
/// `Op::Quantize` (the Clip is the clamp half of it; tract and map.rs keep the bounds' bits, as
/// Max/Min by constants, or a ReLU tightened by a Min when the zero point is 0), so that the
/// lowering runs the Dense/Conv2d around it on the integer kernels. A `Quantize` whose input is
/// the output of a `Quantize` on the same grid (onnxruntime writes a pair around every op it
/// keeps in float, e.g. a Dropout's Identity, which tract drops) is the identity on that grid
/// (QUANT.md: re-quantizing an on-grid value gives back its code; seen through Identity,
/// Dropout, Flatten, Reshape and MaxPool2d, which keep values on their grid) and becomes `Op::Identity`,
/// which the lowering removes. Returns how many Quantize nodes the graph has now.
pub fn quantize_activations(graph: &mut Graph, grids: &[ActGrid]) -> usize {
    let find = |min: f32, max: f32| -> Option<(f32, i32)> {
        let mut hits = grids.iter().filter(|g| g.lo == min && g.hi == max);
        let first = hits.next()?;
        // Two grids with the same bounds but other parameters: the Clip is ambiguous, keep it.
        hits.all(|g| g.scale.to_bits() == first.scale.to_bits() && g.zero_point == first.zero_point)
            .then_some((first.scale, first.zero_point))
    };
    let mut count = 0;
    for i in 0..graph.nodes.len() {
        let (min, max) = match graph.nodes[i].op {
            Op::Clip { min, max } => (min, max),
            _ => continue,
        };
        let Some((scale, zero_point)) = find(min, max) else { continue };
        // The producer of this node's input, seen through ops that keep values as they are.
        let mut src = graph.nodes[i].inputs.first().copied();
        let mut same_grid = false;
        while let Some(v) = src {
            let Some(p) = v.checked_sub(1).and_then(|k| graph.nodes.get(k as usize)) else { break };
            match p.op {
                // Max pools keep a grid too: the max of on-grid values is one of them.
                Op::Identity | Op::Dropout { .. } | Op::Flatten | Op::Reshape { .. } | Op::MaxPool2d { .. } => {
                    src = p.inputs.first().copied()
                }
                Op::Quantize { scale: s, zero_point: z } => {
                    same_grid = s.to_bits() == scale.to_bits() && z == zero_point;
                    break;
                }
                _ => break,
            }
        }
        if same_grid {
            graph.nodes[i].op = Op::Identity;
        } else {
            graph.nodes[i].op = Op::Quantize { scale, zero_point };
            count += 1;
        }
    }
    count
}

/// Stores each Dense/Conv2d weight whose f32 values are exactly `scale·(q − zp)` for one of
/// `sources` (per tensor, or per channel along an axis of the scales' length) as integers.
pub fn store_weights(graph: &mut Graph, sources: &[Source]) -> Stored {
    let mut stored = Stored::default();
    for n in graph.nodes.iter_mut() {
        let weight = match &mut n.op {
            Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => weight,
            _ => continue,
        };
        stored.weights += 1;
        if sources.is_empty() {
            continue;
        }
        let Some(found) = sources.iter().find_map(|s| as_quantized(weight, s)) else { continue };
        stored.quantized += 1;
        if let TensorData::Quantized { qtype, quant, .. } = &found.data {
            stored.per_channel += usize::from(matches!(quant, Quant::PerChannel { .. }));
            stored.int8 += usize::from(*qtype == QuantType::I8);
            stored.uint8 += usize::from(*qtype == QuantType::U8);
        }
        *weight = found;
    }
    stored
}

/// `t` as integers with `s`'s scales, if that reproduces every value bit for bit.
fn as_quantized(t: &Tensor, s: &Source) -> Option<Tensor> {
    let v = t.as_f32()?;
    if v.len() != s.numel || s.scales.is_empty() {
        return None;
    }
    let (qmin, qmax) = match s.qtype {
        QuantType::I8 => (-128i64, 127i64),
        QuantType::U8 => (0, 255),
        QuantType::Packed { .. } => return None,
    };
    let k = s.scales.len();
    // Per channel: every axis of the right length is a candidate (tract and the mapping may
    // have moved the channel axis); per tensor: the one scale.
    let axes: Vec<Option<usize>> = if k == 1 {
        vec![None]
    } else {
        (0..t.shape.len()).filter(|&a| t.shape[a] == k).map(Some).collect()
    };
    'axis: for axis in axes {
        let inner: usize = axis.map(|a| t.shape[a + 1..].iter().product()).unwrap_or(1).max(1);
        let mut raw = Vec::with_capacity(v.len());
        for (i, &x) in v.iter().enumerate() {
            let c = if axis.is_some() { (i / inner) % k } else { 0 };
            let q = (x / s.scales[c]).round();
            if !q.is_finite() {
                continue 'axis;
            }
            let q = q as i64 + i64::from(s.zero_points[c]);
            if q < qmin || q > qmax {
                continue 'axis;
            }
            raw.push(if s.qtype == QuantType::I8 { q as i8 as u8 } else { q as u8 });
        }
        // A symmetric int8 weight holding −128 stays f32: the integer kernels take −127..=127
        // and refuse the model otherwise, while the f32 weight runs anywhere (onnxruntime's
        // symmetric quantizer never writes −128; a hand-made file might).
        if s.qtype == QuantType::I8 && s.zero_points.iter().all(|&z| z == 0) && raw.contains(&0x80) {
            continue 'axis;
        }
        let quant = match axis {
            None => Quant::PerTensor { scale: s.scales[0], zero_point: s.zero_points[0] },
            Some(axis) => Quant::PerChannel { axis, scales: s.scales.clone(), zero_points: s.zero_points.clone() },
        };
        let cand = Tensor { shape: t.shape.clone(), data: TensorData::Quantized { qtype: s.qtype, quant, raw } };
        // The model crate's own expansion decides: integers are kept only if what every
        // backend will compute from them is the f32 weight, bit for bit.
        if cand.to_f32_dense().is_ok_and(|d| d.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits())) {
            return Some(cand);
        }
    }
    None
}
