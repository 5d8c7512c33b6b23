//! tract's decluttered `TypedModel` → mdeploy [`Graph`], one tract node at a time.
//!
//! Every tract outlet maps to a [`Val`]: a constant, or a runtime value seen through a *view*.
//! A view lets tract's layout differ from mdeploy's without emitting nodes:
//!
//! ```text
//!   tract outlet  [N, 16, 4, 4] ──AxisOp::Move (NCHW→NHWC)──► [N, 4, 4, 16] ──Reshape──► [N, 256]
//!   mdeploy       value 7 [16, 4, 4]   (no node)               (no node)        gather: tract flat
//!                                                                               index → mdeploy's
//!   ──EinSum (MatMul by W[256, 10])──►  Dense with W's rows permuted by the gather (exact)
//! ```
//!
//! * `shape` is tract's per-sample shape (the batch axis removed), `md_shape` the mdeploy
//!   value's; they may differ (a reshape that keeps row-major order is free until a consumer
//!   needs a particular shape: then [`Mapper::materialize`] pushes a Reshape or Flatten).
//! * `gather` is `None` when tract's row-major order of the sample equals mdeploy's, else the
//!   mdeploy flat index of every tract flat index: what an NHWC exporter's Transposes leave.
//!   Only elementwise ops and a Dense (which permutes its weight rows) can consume a gathered
//!   value; anything else gets an error naming the Transpose.
//!
//! Exact rewrites, so that a converted model computes what the ONNX graph computes: a constant
//! added to a Dense/Conv output becomes its bias (the bias starts at 0, so `0 + c` is `c`), a
//! per-channel affine (`Mul` then `Add` by constants, how tract expands BatchNormalization)
//! becomes one BatchNorm with mean 0, variance 1 and eps 0, `Max(x, 0)` is ReLU, and
//! `Max` then `Min` by scalars one Clip.

use std::collections::HashMap;
use std::rc::Rc;

use mdeploy_model::graph::{broadcast, Graph, Node, Op, ValueId};
use mdeploy_model::model::Tensor as MdTensor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::nn::{DataFormat, Reduce, Reducer, Softmax, SoftmaxKind};
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_core::ops::change_axes::AxisOp;

use crate::error::ImportError;
use crate::proto::Loaded;

/// Largest sample (elements) whose layout permutation the importer tracks (4 bytes each).
const MAX_GATHER: usize = 1 << 22;

#[derive(Clone, Debug)]
enum Val {
    Const(Arc<Tensor>),
    Run(View),
    /// A sum over the spatial axes of `[C, H, W]` (`Reduce<Sum>` keeping dims), waiting for the
    /// division by `H × W` that makes it a GlobalAveragePool (how tract expands that op).
    SpatialSum { view: View, hw: usize },
}

#[derive(Clone, Debug)]
struct View {
    id: ValueId,
    md_shape: Vec<usize>,
    shape: Vec<usize>,
    gather: Option<Rc<Vec<u32>>>,
}

type R<T> = Result<T, ImportError>;

struct Mapper<'a> {
    l: &'a Loaded,
    nodes: Vec<Node>,
    /// The mdeploy shape of every value (index = value id), as this mapper computed it.
    shapes: Vec<Vec<usize>>,
    vals: HashMap<OutletId, Val>,
    batch: TDim,
}

pub fn map_model(l: &Loaded) -> R<(Graph, Vec<usize>)> {
    let model = &l.typed;
    let inputs = model.input_outlets().map_err(|e| ImportError::new(format!("tract: {e:#}")))?;
    let outputs = model.output_outlets().map_err(|e| ImportError::new(format!("tract: {e:#}")))?;
    let (input, output) = match (inputs, outputs) {
        ([i], [o]) => (*i, *o),
        _ => {
            return Err(ImportError::new(format!(
                "after simplification the graph has {} inputs and {} outputs; mdeploy models have one of each",
                inputs.len(),
                outputs.len()
            )))
        }
    };
    let in_fact = model.outlet_fact(input).map_err(|e| ImportError::new(format!("tract: {e:#}")))?;
    let in_dims = in_fact.shape.to_tvec();
    let batch = in_dims.first().cloned().ok_or_else(|| ImportError::new("the input has no batch axis"))?;
    let mut m = Mapper { l, nodes: Vec::new(), shapes: Vec::new(), vals: HashMap::new(), batch };
    let per_sample = m.per_sample(&in_fact.shape.to_tvec(), "the input")?;
    m.shapes.push(per_sample.clone());
    m.vals.insert(
        input,
        Val::Run(View { id: 0, md_shape: per_sample.clone(), shape: per_sample.clone(), gather: None }),
    );

    let order = model.eval_order().map_err(|e| ImportError::new(format!("tract: {e:#}")))?;
    for id in order {
        let node = model.node(id);
        if node.op_as::<TypedSource>().is_some() {
            if OutletId::new(id, 0) != input {
                return Err(ImportError::new(format!("{}: a second graph input", l.describe(&node.name))));
            }
            continue;
        }
        let val = m.map_node(node)?;
        m.vals.insert(OutletId::new(id, 0), val);
    }

    let out = m.vals.get(&output).cloned().ok_or_else(|| ImportError::new("the output was not mapped"))?;
    let out_name = &model.node(output.node).name;
    let view = match out {
        Val::Run(v) => v,
        Val::Const(_) => {
            return Err(ImportError::new(
                "the model's output does not depend on its input (tract folded it to a constant)",
            ))
        }
        Val::SpatialSum { .. } => {
            return Err(ImportError::new(format!(
                "{}: the output is a sum over H and W; mdeploy has GlobalAveragePool but no ReduceSum",
                l.describe(out_name)
            )))
        }
    };
    let shape = view.shape.clone();
    let id = m.materialize(&view, &shape, out_name, "the model output")?;
    let graph = Graph { nodes: m.nodes, output: id };
    // Cross-check: the core's own shape rules must agree with what the mapping assumed for every
    // value; a disagreement (a padding or ceil-mode rule mapped wrongly) is a bug to report, not
    // a model to write.
    let core_shapes = graph
        .shapes(&per_sample)
        .map_err(|e| ImportError::new(format!("the converted graph is inconsistent: {e}")))?;
    if core_shapes != m.shapes {
        let at = core_shapes.iter().zip(&m.shapes).position(|(a, b)| a != b).unwrap_or(0);
        return Err(ImportError::new(format!(
            "internal error: value {at} has shape {:?} in mdeploy but {:?} in the mapping; please report this model",
            core_shapes.get(at),
            m.shapes.get(at)
        )));
    }
    Ok((graph, per_sample))
}

fn tensor_f32(t: &Tensor) -> TractResult<Vec<f32>> {
    if !t.datum_type().is_float() {
        return Err(tract_onnx::tract_core::internal::anyhow!("a constant of type {:?} where mdeploy needs floating-point weights", t.datum_type()));
    }
    let t = t.cast_to::<f32>()?;
    Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect())
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl<'a> Mapper<'a> {
    fn err(&self, node: &TypedNode, msg: impl std::fmt::Display) -> ImportError {
        ImportError::new(format!("{}: {msg}", self.l.describe(&node.name)))
    }

    /// The per-sample shape of a runtime tensor: axis 0 must be the batch, the rest concrete.
    fn per_sample(&self, dims: &[TDim], what: &str) -> R<Vec<usize>> {
        match dims.split_first() {
            Some((b, rest)) if *b == self.batch => rest
                .iter()
                .map(|d| {
                    d.to_usize().map_err(|_| {
                        ImportError::new(format!("{what} has shape {dims:?}, with a size that depends on the input"))
                    })
                })
                .collect(),
            _ => Err(ImportError::new(format!(
                "{what} has shape {dims:?}, whose first axis is not the batch axis ({}): mdeploy keeps every sample \
                 apart; models that mix samples (or drop the batch axis) cannot be converted",
                self.batch
            ))),
        }
    }

    fn push(&mut self, name: &str, op: Op, inputs: &[ValueId], shape: Vec<usize>) -> ValueId {
        self.nodes.push(Node { op, inputs: inputs.to_vec(), name: name.to_string() });
        self.shapes.push(shape);
        self.nodes.len() as ValueId
    }

    /// The node that produced value `id` (none for the input).
    fn producer_mut(&mut self, id: ValueId) -> Option<&mut Node> {
        (id as usize).checked_sub(1).and_then(|i| self.nodes.get_mut(i))
    }

    /// An mdeploy value in tract's layout and shape `want`: pushes a Reshape/Flatten when the
    /// shapes differ; a permuted (gathered) value cannot be materialized.
    fn materialize(&mut self, v: &View, want: &[usize], name: &str, consumer: &str) -> R<ValueId> {
        if v.gather.is_some() {
            return Err(ImportError::new(format!(
                "{consumer} ({name:?}) reads a tensor whose axes were transposed (an NHWC/NCHW Transpose); mdeploy \
                 absorbs such a Transpose only before a Dense or elementwise ops. Export the model channels-first \
                 (NCHW), or end the convolutions with a Flatten straight into a Dense"
            )));
        }
        if v.md_shape == want {
            return Ok(v.id);
        }
        if want.is_empty() || want.len() > 3 {
            return Err(ImportError::new(format!(
                "{consumer} ({name:?}) needs a tensor of per-sample shape {want:?}; mdeploy values have 1 to 3 axes \
                 besides the batch"
            )));
        }
        let op = if want.len() == 1 { Op::Flatten } else { Op::Reshape { shape: want.to_vec() } };
        Ok(self.push(&format!("{name}.reshape"), op, &[v.id], want.to_vec()))
    }

    fn map_node(&mut self, node: &TypedNode) -> R<Val> {
        let fact = &node.outputs.first().ok_or_else(|| self.err(node, "a node without outputs"))?.fact;
        if let Some(k) = &fact.konst {
            return Ok(Val::Const(k.clone()));
        }
        if let Some(c) = node.op_as::<Const>() {
            return Ok(Val::Const(c.val().clone()));
        }
        if node.outputs.len() != 1 {
            return Err(self.err(node, format!("tract op {} has {} outputs; mdeploy maps single-output ops", node.op.name(), node.outputs.len())));
        }
        if fact.datum_type != f32::datum_type() {
            return Err(self.err(
                node,
                format!(
                    "computes {:?} values (tract op {}); mdeploy converts f32 graphs: serve a float output (--output) and \
                     leave integer post-processing (ArgMax, labels) to the host (quantized ONNX converts in the patterns \
                     onnxruntime's quantizer writes: QDQ, QLinearConv/QLinearMatMul, MatMulInteger/ConvInteger)",
                    fact.datum_type,
                    node.op.name()
                ),
            ));
        }
        let out_shape = self.per_sample(&fact.shape.to_tvec(), &format!("the output of {}", self.l.describe(&node.name)))?;
        let ins: Vec<Val> = node
            .inputs
            .iter()
            .map(|o| self.vals.get(o).cloned().ok_or_else(|| self.err(node, "reads a value that was not mapped")))
            .collect::<R<_>>()?;

        if node.op_as::<Identity>().is_some() {
            return Ok(ins[0].clone());
        }
        if let Some(c) = node.op_as::<Cast>() {
            if c.to == f32::datum_type() {
                if let Val::Run(_) = &ins[0] {
                    return Ok(ins[0].clone());
                }
            }
            return Err(self.err(node, format!("a Cast to {:?} of a non-f32 runtime value", c.to)));
        }
        if let Some(op) = node.op_as::<TypedBinOp>() {
            return self.binary(node, op.0.name().to_string(), &ins, out_shape);
        }
        if let Some(op) = node.op_as::<ElementWiseOp>() {
            let name = op.0.name();
            let mdop = match name.as_str() {
                "Sigmoid" => Op::Sigmoid,
                "Tanh" => Op::Tanh,
                "HardSwish" => Op::HardSwish,
                "LeakyRelu" => {
                    let alpha = op
                        .0
                        .downcast_ref::<tract_onnx::tract_core::ops::nn::LeakyRelu>()
                        .map(|l| l.alpha)
                        .ok_or_else(|| self.err(node, "LeakyRelu without its alpha"))?;
                    Op::LeakyRelu { alpha }
                }
                other => {
                    return Err(self.err(
                        node,
                        format!("the elementwise function {other} is not supported by mdeploy (supported: Relu, Clip, LeakyRelu, Sigmoid, Tanh, HardSwish)"),
                    ))
                }
            };
            return self.unary(node, mdop, &ins[0]);
        }
        if let Some(op) = node.op_as::<EinSum>() {
            return self.einsum(node, op, &ins, out_shape);
        }
        if let Some(op) = node.op_as::<Conv>() {
            return self.conv(node, op, &ins, out_shape);
        }
        if let Some(op) = node.op_as::<MaxPool>() {
            if op.with_index_outputs.is_some() {
                return Err(self.err(node, "MaxPool with indices output is not supported"));
            }
            let (kernel, stride, padding, ceil_mode) = self.pool_geometry(node, &op.pool_spec, &ins[0])?;
            let nhwc = is_nhwc(&op.pool_spec);
            return self.spatial_op(node, Op::MaxPool2d { kernel, stride, padding, ceil_mode }, &ins[0], out_shape, nhwc);
        }
        if let Some(op) = node.op_as::<SumPool>() {
            if !op.normalize {
                return Err(self.err(node, "a sum pooling (not an average) is not supported"));
            }
            let (kernel, stride, padding, ceil_mode) = self.pool_geometry(node, &op.pool_spec, &ins[0])?;
            let avg = Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad: op.count_include_pad };
            return self.spatial_op(node, avg, &ins[0], out_shape, is_nhwc(&op.pool_spec));
        }
        if let Some(op) = node.op_as::<Softmax>() {
            return self.softmax(node, op, &ins[0], out_shape);
        }
        if let Some(op) = node.op_as::<Reduce>() {
            return self.reduce(node, op, &ins[0], out_shape);
        }
        if let Some(op) = node.op_as::<AxisOp>() {
            return self.axis_op(node, op, &ins[0], out_shape);
        }
        if let Some(op) = node.op_as::<TypedConcat>() {
            return self.concat(node, op.axis, &ins, out_shape);
        }
        if let Some(op) = node.op_as::<Downsample>() {
            return self.downsample(node, op, &ins[0], out_shape);
        }
        Err(self.err(
            node,
            format!(
                "not supported by mdeploy (tract op {}). Supported: Conv, Gemm/MatMul with constant weights, \
                 BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid, Tanh, HardSwish, Softmax (last axis), \
                 MaxPool, AveragePool, GlobalAveragePool, Add/Mul/Sub (per-channel or same shape), Concat \
                 (channels), Flatten/Reshape, Transpose before a Dense, Dropout, Identity. Replace the op in the \
                 model, or export without it",
                node.op.name()
            ),
        ))
    }

    fn run<'v>(&self, node: &TypedNode, v: &'v Val) -> R<&'v View> {
        match v {
            Val::Run(view) => Ok(view),
            Val::Const(_) => Err(self.err(node, "an op on constants only that tract did not fold")),
            Val::SpatialSum { .. } => Err(self.err(
                node,
                "reads a ReduceSum over H and W; mdeploy supports that only as GlobalAveragePool (divided by H×W)",
            )),
        }
    }

    /// An elementwise op of one input: the view (layout, gather) carries over.
    fn unary(&mut self, node: &TypedNode, op: Op, x: &Val) -> R<Val> {
        let x = self.run(node, x)?.clone();
        let id = self.push(&node.name, op, &[x.id], x.md_shape.clone());
        Ok(Val::Run(View { id, ..x }))
    }

    fn binary(&mut self, node: &TypedNode, op: String, ins: &[Val], out_shape: Vec<usize>) -> R<Val> {
        match (&ins[0], &ins[1]) {
            (Val::SpatialSum { view, hw }, Val::Const(c)) if op == "Div" || op == "Mul" => {
                let vals = tensor_f32(c).map_err(|e| self.err(node, format!("{e:#}")))?;
                let want = if op == "Div" { *hw as f32 } else { 1.0 / *hw as f32 };
                if vals.len() == 1 && (vals[0] - want).abs() <= want * 1e-6 {
                    let view = view.clone();
                    let id = self.materialize(&view, &view.shape.clone(), &node.name, "GlobalAveragePool")?;
                    let id = self.push(&node.name, Op::GlobalAvgPool, &[id], out_shape.clone());
                    return Ok(Val::Run(View { id, md_shape: out_shape.clone(), shape: out_shape, gather: None }));
                }
                Err(self.err(node, "a ReduceSum over H and W not divided by H×W; only GlobalAveragePool is supported"))
            }
            (Val::Run(x), Val::Const(c)) => self.with_const(node, &op, x, c, false),
            (Val::Const(c), Val::Run(x)) => self.with_const(node, &op, x, c, true),
            (Val::Run(a), Val::Run(b)) => {
                let (a, b) = (a.clone(), b.clone());
                let b_id = match op.as_str() {
                    "Add" | "Mul" => None,
                    // a − b = a + (−b), exactly (negation is exact in IEEE arithmetic).
                    "Sub" => Some(self.negate(node, &b)?),
                    other => {
                        return Err(self.err(
                            node,
                            format!("{other} of two runtime tensors is not supported (mdeploy has Add, Mul, and Sub via Add)"),
                        ))
                    }
                };
                let mdop = if op == "Mul" { Op::Mul } else { Op::Add };
                // Same permutation on both sides: the op commutes with it, the view carries over.
                if let (Some(ga), Some(gb)) = (&a.gather, &b.gather) {
                    if ga == gb && a.md_shape == b.md_shape {
                        let id = self.push(&node.name, mdop, &[a.id, b_id.unwrap_or(b.id)], a.md_shape.clone());
                        return Ok(Val::Run(View { id, ..a }));
                    }
                }
                let ai = self.materialize(&a, &a.shape.clone(), &node.name, node.op.name().as_ref())?;
                let bi = match b_id {
                    Some(id) => id,
                    None => self.materialize(&b, &b.shape.clone(), &node.name, node.op.name().as_ref())?,
                };
                let md = broadcast(&a.shape, &b.shape).ok_or_else(|| {
                    self.err(
                        node,
                        format!(
                            "{op} of shapes {:?} and {:?}: mdeploy broadcasts only [C] or [C, 1, 1] against [C, H, W]",
                            a.shape, b.shape
                        ),
                    )
                })?;
                if md != out_shape {
                    return Err(self.err(node, format!("{op} broadcast to {out_shape:?}, which mdeploy cannot express")));
                }
                let id = self.push(&node.name, mdop, &[ai, bi], md.clone());
                Ok(Val::Run(View { id, md_shape: md.clone(), shape: md, gather: None }))
            }
            _ => Err(self.err(node, format!("{op} of these operands is not supported"))),
        }
    }

    /// `−b` as a BatchNorm with gamma −1 (exact).
    fn negate(&mut self, node: &TypedNode, b: &View) -> R<ValueId> {
        let bi = self.materialize(b, &b.shape.clone(), &node.name, "Sub")?;
        let c = b.shape[0];
        let op = affine(vec![-1.0; c], vec![0.0; c]);
        let name = format!("{}.neg", node.name);
        let (id, md) = self.push_affine(&name, op, bi, &b.shape);
        if md == b.shape {
            return Ok(id);
        }
        Ok(self.push(&format!("{name}.reshape"), Op::Reshape { shape: b.shape.clone() }, &[id], b.shape.clone()))
    }

    /// A binary op between a runtime value and a constant (`swapped`: the constant is on the left).
    fn with_const(&mut self, node: &TypedNode, op: &str, x: &View, c: &Arc<Tensor>, swapped: bool) -> R<Val> {
        let vals = tensor_f32(c).map_err(|e| self.err(node, format!("{e:#}")))?;
        let scalar = vals.len() == 1;
        match op {
            "Max" | "Min" if scalar => {
                let v = vals[0];
                let x = x.clone();
                // Max then Min (Clip, ReLU6) or Min after a ReLU: tighten the producer in place
                // when nothing else reads its output; the two forms compute the same values.
                if op == "Min" && self.single_consumer(node) {
                    if let Some(p) = self.producer_mut(x.id) {
                        let lo = match p.op {
                            Op::Relu => Some(0.0),
                            Op::Clip { min, max } if max == f32::MAX => Some(min),
                            _ => None,
                        };
                        if let Some(lo) = lo {
                            if lo <= v {
                                p.op = Op::Clip { min: lo, max: v };
                                return Ok(Val::Run(x));
                            }
                        }
                    }
                }
                let mdop = match op {
                    "Max" if v == 0.0 => Op::Relu,
                    "Max" => Op::Clip { min: v, max: f32::MAX },
                    _ => Op::Clip { min: -f32::MAX, max: v },
                };
                let id = self.push(&node.name, mdop, &[x.id], x.md_shape.clone());
                Ok(Val::Run(View { id, ..x }))
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let per = self.per_channel(node, x, c, &vals)?;
                let n = per.len();
                let (gamma, beta) = match (op, swapped) {
                    ("Add", _) => (vec![1.0; n], per),
                    ("Sub", false) => (vec![1.0; n], per.iter().map(|v| -v).collect()),
                    ("Sub", true) => (vec![-1.0; n], per),
                    ("Mul", _) => (per, vec![0.0; n]),
                    // x / c as x · (1/c): within one rounding of the division.
                    ("Div", false) => (per.iter().map(|v| 1.0 / v).collect(), vec![0.0; n]),
                    _ => return Err(self.err(node, "a constant divided by a runtime tensor is not supported")),
                };
                self.affine_node(node, x, gamma, beta)
            }
            other => Err(self.err(
                node,
                format!("{other} with a constant is not supported (only scalar Max/Min, i.e. Relu/Clip, and per-channel Add/Sub/Mul/Div)"),
            )),
        }
    }

    /// True when the node's input 0 is read by this node only (so its producer may be changed).
    fn single_consumer(&self, node: &TypedNode) -> bool {
        let Some(input) = node.inputs.iter().find(|o| matches!(self.vals.get(o), Some(Val::Run(_)))) else {
            return false;
        };
        let model = &self.l.typed;
        let outputs = model.output_outlets().map(|o| o.to_vec()).unwrap_or_default();
        model.outlet_successors(*input).len() == 1 && !outputs.contains(input)
    }

    /// `x · gamma + beta` per channel (axis 0 of the sample).
    fn affine_node(&mut self, node: &TypedNode, x: &View, gamma: Vec<f32>, beta: Vec<f32>) -> R<Val> {
        let single = self.single_consumer(node);
        let x = x.clone();
        let is_bias = gamma.iter().all(|&g| g == 1.0);
        if single {
            if let Some(p) = self.producer_mut(x.id) {
                match &mut p.op {
                    // A Dense/Conv's bias starts at 0 (tract splits Gemm/Conv bias off only when
                    // it is not folded in); adding the constant to it is exact.
                    Op::Dense { bias, .. } | Op::Conv2d { bias, .. } if is_bias => {
                        if let Some(b) = bias.as_f32_mut() {
                            if b.len() == beta.len() {
                                for (b, c) in b.iter_mut().zip(&beta) {
                                    *b += c;
                                }
                                return Ok(Val::Run(x));
                            }
                        }
                    }
                    // BatchNormalization as tract expands it: Mul by a slope, then Add an intercept.
                    Op::BatchNorm { beta: b0, mean, var, eps, .. }
                        if is_bias
                            && *eps == 0.0
                            && b0.as_f32().is_some_and(|v| v.iter().all(|&v| v == 0.0))
                            && mean.as_f32().is_some_and(|v| v.iter().all(|&v| v == 0.0))
                            && var.as_f32().is_some_and(|v| v.iter().all(|&v| v == 1.0))
                            && b0.numel() == beta.len() =>
                    {
                        *b0 = MdTensor::f32(vec![beta.len()], beta);
                        return Ok(Val::Run(x));
                    }
                    _ => {}
                }
            }
        }
        let (id, md_shape) = self.push_affine(&node.name, affine(gamma, beta), x.id, &x.md_shape);
        Ok(Val::Run(View { id, md_shape, ..x }))
    }

    /// A BatchNorm node over value `src` of mdeploy shape `md`. The runtime lowers a per-channel
    /// affine on `[C]` and `[C, H, W]` values only (on `[C, L]` it covers C floats, not C·L:
    /// onnx's HardSigmoid cases showed it), so a `[C, L]` value goes through `[C, L, 1]`: the
    /// same bytes, the same channel axis. Returns the node's value and shape.
    fn push_affine(&mut self, name: &str, op: Op, src: ValueId, md: &[usize]) -> (ValueId, Vec<usize>) {
        match md {
            [c, l] => {
                let md3 = vec![*c, *l, 1];
                let r = self.push(&format!("{name}.as_chw"), Op::Reshape { shape: md3.clone() }, &[src], md3.clone());
                (self.push(name, op, &[r], md3.clone()), md3)
            }
            _ => (self.push(name, op, &[src], md.to_vec()), md.to_vec()),
        }
    }

    /// The constant of an elementwise op against `x`, as one value per channel (axis 0 of the
    /// sample): a scalar, or a tensor that varies along the channel axis only.
    fn per_channel(&mut self, node: &TypedNode, x: &View, c: &Tensor, vals: &[f32]) -> R<Vec<f32>> {
        let channels = *x.md_shape.first().ok_or_else(|| self.err(node, "an empty shape"))?;
        if vals.len() == 1 {
            return Ok(vec![vals[0]; channels]);
        }
        // mdeploy's value may carry trailing unit axes tract's does not ([C, L, 1] for [C, L]):
        // axis 0 is still the channel axis.
        let same_channels =
            x.md_shape.starts_with(&x.shape) && x.md_shape[x.shape.len()..].iter().all(|&d| d == 1);
        if x.gather.is_some() || !same_channels {
            return Err(self.err(
                node,
                "a per-channel constant applied after a Transpose or Reshape; mdeploy applies it per channel of \
                 the tensor before them",
            ));
        }
        // Right-aligned broadcasting against the full [N, ...sample] shape: the constant may vary
        // along sample axis 0 only.
        let full = x.shape.len() + 1;
        let cs = c.shape();
        if cs.len() > full {
            return Err(self.err(node, format!("a constant of shape {cs:?} against a tensor of rank {full}")));
        }
        let offset = full - cs.len();
        for (i, &d) in cs.iter().enumerate() {
            let axis = offset + i; // axis in the full shape; 1 is the channel axis
            if d != 1 && axis != 1 {
                return Err(self.err(
                    node,
                    format!(
                        "a constant of shape {cs:?} varies along axis {axis} of a tensor of per-sample shape {:?}; \
                         mdeploy's elementwise ops with constants work per channel (axis 1) only",
                        x.shape
                    ),
                ));
            }
        }
        if vals.len() != channels {
            return Err(self.err(node, format!("a constant of {} values for {channels} channels", vals.len())));
        }
        Ok(vals.to_vec())
    }

    fn einsum(&mut self, node: &TypedNode, op: &EinSum, ins: &[Val], out_shape: Vec<usize>) -> R<Val> {
        if op.q_params.is_some() || ins.len() != 2 {
            return Err(self.err(node, "a quantized or multi-input MatMul/EinSum is not supported"));
        }
        let (x_slot, x, w) = match (&ins[0], &ins[1]) {
            (Val::Run(x), Val::Const(w)) => (0, x.clone(), w.clone()),
            (Val::Const(w), Val::Run(x)) => (1, x.clone(), w.clone()),
            _ => {
                return Err(self.err(
                    node,
                    "a MatMul of two runtime tensors (attention-style) is not supported; mdeploy's Dense needs \
                     constant weights",
                ))
            }
        };
        let w_slot = 1 - x_slot;
        let hint = "mdeploy maps MatMul/Gemm as [batch, in] × [in, out] with constant weights";
        let not_dense = || self.err(node, format!("an einsum {} that is not a Dense layer: {hint}", op.axes));
        if x.shape.len() == 3 && out_shape.len() == 3 {
            return self.pointwise_conv(node, op, x_slot, &x, &w, out_shape);
        }
        if out_shape.len() != 1 {
            return Err(not_dense());
        }
        // Axis roles from the einsum expression. tract writes MatMul as "mk,kn->mn", Gemm with
        // transB as "mk,nk->mn", and folds a Reshape/Transpose before a MatMul into it
        // ("mkba,bakn->mn": every sample axis of x is contracted with an axis of w).
        // PyTorch's Flatten after a GlobalAveragePool ([C, 1, 1]) folds into a Gemm as
        // "mkba,nk->mn": the unit axes b, a are in x only, summed over one element each.
        let mut batch = false;
        let mut contracted: Vec<(usize, usize)> = Vec::new(); // (x sample axis, w axis)
        // Unit sample axes that tract left out of w (a Flatten of [1, H, W] folded into a Gemm,
        // "mbak,akn->mn"; PyTorch's GlobalAveragePool + Flatten + Gemm, "mkba,nk->mn"): summing
        // over one element is the element itself.
        let mut unit: Vec<usize> = Vec::new(); // x sample axes of size 1 that w does not name
        let mut m_pos = None;
        for axis in op.axes.iter_all_axes() {
            let xp = axis.inputs.get(x_slot).map(|p| p.as_slice()).unwrap_or(&[]);
            let wp = axis.inputs.get(w_slot).map(|p| p.as_slice()).unwrap_or(&[]);
            let outp = axis.outputs.first().map(|p| p.as_slice()).unwrap_or(&[]);
            match (xp, wp, outp) {
                ([0], [], [0]) => batch = true,
                ([p], [q], []) if *p >= 1 => contracted.push((p - 1, *q)),
                ([p], [], []) if *p >= 1 && x.shape.get(p - 1) == Some(&1) => unit.push(p - 1),
                ([], [q], [1]) => m_pos = Some(*q),
                ([], [q], []) if w.shape().get(*q) == Some(&1) => {}
                _ => return Err(not_dense()),
            }
        }
        let m_pos = m_pos.ok_or_else(not_dense)?;
        // Every sample axis of x exactly once, either contracted with w or a unit axis.
        let mut seen = vec![false; x.shape.len()];
        for a in contracted.iter().map(|&(a, _)| a).chain(unit.iter().copied()) {
            match seen.get_mut(a) {
                Some(s) if !*s => *s = true,
                _ => return Err(not_dense()),
            }
        }
        if !batch || seen.iter().any(|s| !s) {
            return Err(not_dense());
        }
        let wshape = w.shape().to_vec();
        if contracted.iter().any(|&(a, q)| wshape[q] != x.shape[a]) || wshape[m_pos] != out_shape[0] {
            return Err(self.err(node, format!("weights {wshape:?} do not fit input {:?}", x.shape)));
        }
        let k: usize = x.shape.iter().product();
        let m = out_shape[0];
        let wv = tensor_f32(&w).map_err(|e| self.err(node, format!("{e:#}")))?;
        let wst = strides(&wshape);
        // mdeploy's Dense weight is [in, out]; row r multiplies mdeploy's flat input element r.
        // tract's flat input element j (row-major over x's sample axes) is mdeploy's element
        // gather[j] (or j itself).
        let mut weight = vec![0f32; k * m];
        let mut idx = vec![0usize; x.shape.len()];
        for j in 0..k {
            let base: usize = contracted.iter().map(|&(a, q)| idx[a] * wst[q]).sum();
            let row = match &x.gather {
                Some(g) => g[j] as usize,
                None => j,
            };
            for mm in 0..m {
                weight[row * m + mm] = wv[base + mm * wst[m_pos]];
            }
            for ax in (0..idx.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < x.shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        let input = if x.gather.is_some() {
            if x.md_shape.len() != 1 {
                self.push(&format!("{}.flatten", node.name), Op::Flatten, &[x.id], vec![k])
            } else {
                x.id
            }
        } else {
            self.materialize(&x, &[k], &node.name, "MatMul")?
        };
        let op = Op::Dense { weight: MdTensor::f32(vec![k, m], weight), bias: MdTensor::f32(vec![m], vec![0.0; m]) };
        let id = self.push(&node.name, op, &[input], vec![m]);
        Ok(Val::Run(View { id, md_shape: vec![m], shape: vec![m], gather: None }))
    }

    /// tract rewrites a 1×1 convolution as an einsum over channels ("NIHW,OI->NOHW"): back to
    /// a Conv2d with a [O, I, 1, 1] kernel.
    fn pointwise_conv(&mut self, node: &TypedNode, op: &EinSum, x_slot: usize, x: &View, w: &Tensor, out_shape: Vec<usize>) -> R<Val> {
        let w_slot = 1 - x_slot;
        let not_conv = || self.err(node, format!("an einsum {} over [C, H, W] that is not a 1×1 convolution", op.axes));
        let (mut batch, mut spatial, mut i_pos, mut o_pos) = (false, 0, None, None);
        for axis in op.axes.iter_all_axes() {
            let xp = axis.inputs.get(x_slot).map(|p| p.as_slice()).unwrap_or(&[]);
            let wp = axis.inputs.get(w_slot).map(|p| p.as_slice()).unwrap_or(&[]);
            let outp = axis.outputs.first().map(|p| p.as_slice()).unwrap_or(&[]);
            match (xp, wp, outp) {
                ([0], [], [0]) => batch = true,
                ([1], [q], []) => i_pos = Some(*q),
                ([], [q], [1]) => o_pos = Some(*q),
                ([a], [], [b]) if a == b && (*a == 2 || *a == 3) => spatial += 1,
                ([], [q], []) if w.shape().get(*q) == Some(&1) => {}
                _ => return Err(not_conv()),
            }
        }
        let (Some(i_pos), Some(o_pos)) = (i_pos, o_pos) else { return Err(not_conv()) };
        if !batch || spatial != 2 {
            return Err(not_conv());
        }
        let (ic, oc) = (w.shape()[i_pos], w.shape()[o_pos]);
        if ic != x.shape[0] || oc != out_shape[0] {
            return Err(self.err(node, format!("weights {:?} do not fit input {:?}", w.shape(), x.shape)));
        }
        let wv = tensor_f32(w).map_err(|e| self.err(node, format!("{e:#}")))?;
        let wst = strides(w.shape());
        let mut kernel = vec![0f32; oc * ic];
        for o in 0..oc {
            for i in 0..ic {
                kernel[o * ic + i] = wv[o * wst[o_pos] + i * wst[i_pos]];
            }
        }
        let conv = Op::Conv2d {
            weight: MdTensor::f32(vec![oc, ic, 1, 1], kernel),
            bias: MdTensor::f32(vec![oc], vec![0.0; oc]),
            stride: [1, 1],
            padding: [0; 4],
            dilation: [1, 1],
            groups: 1,
        };
        self.spatial_op(node, conv, &Val::Run(x.clone()), out_shape, false)
    }

    fn conv(&mut self, node: &TypedNode, op: &Conv, ins: &[Val], out_shape: Vec<usize>) -> R<Val> {
        if op.q_params.is_some() {
            return Err(self.err(node, "a quantized Conv is not supported yet"));
        }
        if ins.len() != 3 {
            return Err(self.err(node, format!("a Conv with {} inputs", ins.len())));
        }
        let (Val::Const(kernel), Val::Const(bias)) = (&ins[1], &ins[2]) else {
            return Err(self.err(node, "a Conv whose weights are computed at run time; mdeploy needs constant weights"));
        };
        let x = self.run(node, &ins[0])?.clone();
        if kernel.rank() != 4 {
            return Err(self.err(node, format!("a {}-D convolution; mdeploy has Conv2d only", kernel.rank().saturating_sub(2))));
        }
        // mdeploy stores OIHW (ONNX's own layout); tract may have rewritten the kernel.
        let perm: &[usize] = match op.kernel_fmt {
            KernelFormat::OIHW => &[0, 1, 2, 3],
            KernelFormat::HWIO => &[3, 2, 0, 1],
            KernelFormat::OHWI => &[0, 3, 1, 2],
        };
        let k = kernel.as_ref().clone().permute_axes(perm).map_err(|e| self.err(node, format!("{e:#}")))?;
        let kshape = k.shape().to_vec();
        let kv = tensor_f32(&k).map_err(|e| self.err(node, format!("{e:#}")))?;
        let oc = kshape[0];
        let bv = tensor_f32(bias).map_err(|e| self.err(node, format!("{e:#}")))?;
        let bias = match bv.len() {
            1 if bias.rank() == 0 => vec![bv[0]; oc],
            n if n == oc => bv,
            n => return Err(self.err(node, format!("a bias of {n} values for {oc} output channels"))),
        };
        let (kernel_hw, stride, padding, ceil, dilation) = self.geometry(node, &op.pool_spec, &x)?;
        if ceil {
            return Err(self.err(node, "a Conv with ceil-mode output size"));
        }
        if kernel_hw != [kshape[2], kshape[3]] {
            return Err(self.err(node, "kernel shape disagrees with the weights"));
        }
        let nhwc = is_nhwc(&op.pool_spec);
        let op = Op::Conv2d {
            weight: MdTensor::f32(kshape, kv),
            bias: MdTensor::f32(vec![oc], bias),
            stride,
            padding,
            dilation,
            groups: op.group,
        };
        self.spatial_op(node, op, &Val::Run(x), out_shape, nhwc)
    }

    /// tract declutters a strided 1×1 convolution (ResNet's projection shortcut) into a
    /// `Downsample` (every stride-th row or column) and a 1×1 einsum. Keeping every s-th element
    /// along H or W is a max pooling with a 1×1 window and that stride: exact (the max of one
    /// element is that element), and the output size, ceil(H / s), is the same.
    fn downsample(&mut self, node: &TypedNode, op: &Downsample, x: &Val, out_shape: Vec<usize>) -> R<Val> {
        let view = self.run(node, x)?;
        let s = usize::try_from(op.stride).ok().filter(|&s| s >= 1);
        let (Some(s), 0, 3, 2 | 3) = (s, op.modulo, view.shape.len(), op.axis) else {
            return Err(self.err(
                node,
                format!(
                    "a Downsample (axis {}, stride {}, offset {}) of a tensor of per-sample shape {:?}; mdeploy maps \
                     only a positive stride from the start along H or W of [C, H, W] (a strided 1×1 convolution)",
                    op.axis, op.stride, op.modulo, view.shape
                ),
            ));
        };
        if view.gather.is_some() {
            // The axis is tract's; on a transposed value it need not be mdeploy's H or W.
            return Err(self.err(
                node,
                "a Downsample (a strided Slice or strided 1×1 convolution) of a tensor whose axes were transposed; \
                 mdeploy maps it only on a channels-first [C, H, W] value (export the model NCHW)",
            ));
        }
        let stride = if op.axis == 2 { [s, 1] } else { [1, s] };
        let pool = Op::MaxPool2d { kernel: [1, 1], stride, padding: [0; 4], ceil_mode: false };
        self.spatial_op(node, pool, x, out_shape, false)
    }

    fn check_format(&self, node: &TypedNode, ps: &PoolSpec) -> R<()> {
        match ps.data_format {
            DataFormat::NCHW | DataFormat::NHWC => Ok(()),
            f => Err(self.err(node, format!("tract laid this op out as {f:?} (no batch axis); mdeploy keeps the batch axis"))),
        }
    }

    /// Kernel, stride, padding `[top, left, bottom, right]`, ceil mode and dilation of a
    /// convolution or pooling over `x` (`[C, H, W]`).
    #[allow(clippy::type_complexity)]
    fn geometry(&self, node: &TypedNode, ps: &PoolSpec, x: &View) -> R<([usize; 2], [usize; 2], [usize; 4], bool, [usize; 2])> {
        self.check_format(node, ps)?;
        if ps.kernel_shape.len() != 2 || x.shape.len() != 3 {
            return Err(self.err(node, format!("a {}-D window over per-sample shape {:?}; mdeploy has 2-D only", ps.kernel_shape.len(), x.shape)));
        }
        let kernel = [ps.kernel_shape[0], ps.kernel_shape[1]];
        let strides: Vec<usize> = ps.strides.as_ref().map(|s| s.to_vec()).unwrap_or_else(|| vec![1, 1]);
        let dil: Vec<usize> = ps.dilations.as_ref().map(|s| s.to_vec()).unwrap_or_else(|| vec![1, 1]);
        if strides.len() != 2 || dil.len() != 2 {
            return Err(self.err(node, "strides/dilations of the wrong rank"));
        }
        let (pads, ceil) = match &ps.padding {
            PaddingSpec::Valid => ([0; 4], false),
            PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => ([b[0], b[1], a[0], a[1]], false),
            PaddingSpec::ExplicitOnnxPool(b, a, ceil) if b.len() == 2 && a.len() == 2 => ([b[0], b[1], a[0], a[1]], *ceil),
            same @ (PaddingSpec::SameUpper | PaddingSpec::SameLower) => {
                let hw = if is_nhwc(ps) { &x.shape[0..2] } else { &x.shape[1..3] };
                let c = same.compute(hw, &kernel, &dil, &strides);
                ([c[0].pad_before, c[1].pad_before, c[0].pad_after, c[1].pad_after], false)
            }
            other => return Err(self.err(node, format!("padding {other:?}"))),
        };
        Ok((kernel, [strides[0], strides[1]], pads, ceil, [dil[0], dil[1]]))
    }

    #[allow(clippy::type_complexity)]
    fn pool_geometry(&self, node: &TypedNode, ps: &PoolSpec, x: &Val) -> R<([usize; 2], [usize; 2], [usize; 4], bool)> {
        let x = self.run(node, x)?;
        let (k, s, p, ceil, d) = self.geometry(node, ps, x)?;
        if d != [1, 1] {
            return Err(self.err(node, "a dilated pooling is not supported"));
        }
        Ok((k, s, p, ceil))
    }

    /// A Conv or pool: needs its input as `[C, H, W]` in tract's layout, or, when tract chose
    /// NHWC (it does to absorb an exporter's Transposes), an mdeploy `[C, H, W]` value that the
    /// tract tensor is the NHWC view of; the output is then such a view too.
    fn spatial_op(&mut self, node: &TypedNode, op: Op, x: &Val, out_shape: Vec<usize>, nhwc: bool) -> R<Val> {
        let x = self.run(node, x)?.clone();
        let what = op.name();
        if !nhwc {
            let xi = self.materialize(&x, &x.shape.clone(), &node.name, what)?;
            let id = self.push(&node.name, op, &[xi], out_shape.clone());
            return Ok(Val::Run(View { id, md_shape: out_shape.clone(), shape: out_shape, gather: None }));
        }
        let xi = self.nchw_source(node, &x)?;
        let [oh, ow, oc] = out_shape[..] else {
            return Err(self.err(node, format!("an NHWC output of shape {out_shape:?}")));
        };
        let md = vec![oc, oh, ow];
        let id = self.push(&node.name, op, &[xi], md.clone());
        let gather = permute_gather(&md, &[1, 2, 0], None).map_err(|m| self.err(node, m))?;
        Ok(Val::Run(View { id, md_shape: md, shape: out_shape, gather }))
    }

    /// The mdeploy `[C, H, W]` value whose NHWC transpose is `x` (tract shape `[H, W, C]`).
    fn nchw_source(&mut self, node: &TypedNode, x: &View) -> R<ValueId> {
        let [h, w, c] = x.shape[..] else {
            return Err(self.err(node, format!("an NHWC op over per-sample shape {:?}", x.shape)));
        };
        let md = [c, h, w];
        match &x.gather {
            // One channel (MNIST in Keras's layout) or one pixel: NHWC and NCHW are the same bytes.
            None if c == 1 || h * w == 1 => self.materialize(x, &md, &node.name, "an NHWC convolution"),
            Some(g) if x.md_shape == md
                && permute_gather(&md, &[1, 2, 0], None).ok().flatten().is_some_and(|p| *p == **g) =>
            {
                Ok(x.id)
            }
            _ => Err(self.err(
                node,
                format!(
                    "a channels-last (NHWC) tensor of shape {:?} with {c} channels reaches a convolution or pooling;                      mdeploy computes NCHW and has no Transpose op. Export the model channels-first (NCHW), or with                      a single input channel",
                    x.shape
                ),
            )),
        }
    }

    fn softmax(&mut self, node: &TypedNode, op: &Softmax, x: &Val, out_shape: Vec<usize>) -> R<Val> {
        let x = self.run(node, x)?.clone();
        if !matches!(op.kind, SoftmaxKind::Softmax) || op.quant_output_dt.is_some() {
            return Err(self.err(node, "LogSoftmax and quantized softmax are not supported (only Softmax)"));
        }
        let last = x.shape.len(); // the last axis in the full [N, ...] shape
        let whole = op.axes.as_slice() == [last] && x.shape.len() == 1
            || op.axes.iter().copied().eq(1..=last);
        if !whole {
            return Err(self.err(
                node,
                format!(
                    "a Softmax over axes {:?} of per-sample shape {:?}; mdeploy's Softmax is over the whole sample \
                     (a flat [features] vector)",
                    op.axes, x.shape
                ),
            ));
        }
        let flat: usize = x.shape.iter().product();
        let xi = self.materialize(&x, &[flat], &node.name, "Softmax")?;
        let id = self.push(&node.name, Op::Softmax, &[xi], vec![flat]);
        Ok(Val::Run(View { id, md_shape: vec![flat], shape: out_shape, gather: None }))
    }

    fn reduce(&mut self, node: &TypedNode, op: &Reduce, x: &Val, out_shape: Vec<usize>) -> R<Val> {
        let x = self.run(node, x)?.clone();
        let spatial = x.shape.len() == 3 && {
            let mut axes = op.axes.to_vec();
            axes.sort_unstable();
            axes == [2, 3]
        };
        if matches!(op.reducer, Reducer::Sum) && spatial && out_shape == [x.shape[0], 1, 1] {
            return Ok(Val::SpatialSum { hw: x.shape[1] * x.shape[2], view: x });
        }
        Err(self.err(
            node,
            format!(
                "a reduction ({:?} over axes {:?}) is not supported; mdeploy has GlobalAveragePool (mean over H and W)",
                op.reducer, op.axes
            ),
        ))
    }

    fn axis_op(&mut self, node: &TypedNode, op: &AxisOp, x: &Val, out_shape: Vec<usize>) -> R<Val> {
        let x = self.run(node, x)?.clone();
        let n_in: usize = x.shape.iter().product();
        if out_shape.iter().product::<usize>() != n_in {
            return Err(self.err(node, "a reshape that changes the number of elements per sample"));
        }
        let gather = match op {
            AxisOp::Move(from, to) => {
                if *from == 0 || *to == 0 {
                    return Err(self.err(node, "a Transpose that moves the batch axis"));
                }
                let (from, to) = (from - 1, to - 1);
                let r = x.shape.len();
                if from >= r || to >= r {
                    return Err(self.err(node, "a Transpose axis out of range"));
                }
                let mut perm: Vec<usize> = (0..r).collect();
                let a = perm.remove(from);
                perm.insert(to, a);
                permute_gather(&x.shape, &perm, x.gather.as_deref()).map_err(|m| self.err(node, m))?
            }
            // Add/Rm of unit axes and reshapes keep the row-major order of the sample.
            _ => x.gather.clone(),
        };
        Ok(Val::Run(View { id: x.id, md_shape: x.md_shape, shape: out_shape, gather }))
    }

    fn concat(&mut self, node: &TypedNode, axis: usize, ins: &[Val], out_shape: Vec<usize>) -> R<Val> {
        if axis != 1 {
            return Err(self.err(
                node,
                format!("a Concat along axis {axis}; mdeploy concatenates along the channel axis (1) only"),
            ));
        }
        let mut ids = Vec::new();
        for v in ins {
            let v = match v {
                Val::Run(v) => v.clone(),
                _ => return Err(self.err(node, "a Concat with a constant input is not supported")),
            };
            ids.push(self.materialize(&v, &v.shape.clone(), &node.name, "Concat")?);
        }
        let id = self.push(&node.name, Op::Concat, &ids, out_shape.clone());
        Ok(Val::Run(View { id, md_shape: out_shape.clone(), shape: out_shape, gather: None }))
    }
}

fn is_nhwc(ps: &PoolSpec) -> bool {
    matches!(ps.data_format, DataFormat::NHWC)
}

/// `y = x · gamma + beta` per channel, as a BatchNorm that computes exactly that
/// (`(x − 0) / sqrt(1 + 0) · gamma + beta`).
fn affine(gamma: Vec<f32>, beta: Vec<f32>) -> Op {
    let n = gamma.len();
    Op::BatchNorm {
        gamma: MdTensor::f32(vec![n], gamma),
        beta: MdTensor::f32(vec![n], beta),
        mean: MdTensor::f32(vec![n], vec![0.0; n]),
        var: MdTensor::f32(vec![n], vec![1.0; n]),
        eps: 0.0,
    }
}

/// The gather after transposing a sample of `shape` by `perm` (output axis i = input axis
/// perm[i]); `None` when the permutation keeps row-major order (it moves unit axes only).
fn permute_gather(shape: &[usize], perm: &[usize], old: Option<&Vec<u32>>) -> Result<Option<Rc<Vec<u32>>>, String> {
    let moved_non_unit: Vec<usize> = perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    if old.is_none() && moved_non_unit.windows(2).all(|w| w[0] < w[1]) {
        return Ok(None);
    }
    let n: usize = shape.iter().product();
    if n > MAX_GATHER {
        return Err(format!("a Transpose of a {n}-element sample is too large to absorb"));
    }
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let mut g = Vec::with_capacity(n);
    let mut idx = vec![0usize; out_shape.len()];
    for _ in 0..n {
        let src: usize = idx.iter().zip(perm).map(|(&i, &a)| i * in_strides[a]).sum();
        g.push(match old {
            Some(o) => o[src],
            None => src as u32,
        });
        for ax in (0..idx.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < out_shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    if g.iter().enumerate().all(|(i, &v)| v as usize == i) {
        return Ok(None);
    }
    Ok(Some(Rc::new(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_of_nchw_to_nhwc() {
        // [C=2, H=1, W=3] → [H, W, C]: tract element (w, c) is mdeploy element c·3 + w.
        let g = permute_gather(&[2, 1, 3], &[1, 2, 0], None).unwrap().unwrap();
        assert_eq!(*g, vec![0, 3, 1, 4, 2, 5]);
        // Moving a unit axis keeps the order.
        assert!(permute_gather(&[1, 28, 28], &[1, 2, 0], None).unwrap().is_none());
        // Transposing back undoes it.
        let back = permute_gather(&[1, 3, 2], &[2, 0, 1], Some(&g)).unwrap();
        assert!(back.is_none(), "{back:?}");
    }
}
