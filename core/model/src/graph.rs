//! The model graph: a DAG of nodes over numbered values.
//!
//! ```text
//!   value 0 = the model input (one sample's shape, no batch axis)
//!   node i  : op(inputs: values < i + 1)  ──►  value i + 1
//!   output  : one value (by default the last node's)
//! ```
//!
//! Nodes are stored in topological order: a node may only read the input or the value of an
//! earlier node, so every graph that [`Graph::shapes`] accepts is acyclic by construction and
//! can be run front to back. A sequential model (MLP, LeNet) is the special case where node `i`
//! reads value `i`; [`Graph::sequential`] builds one.
//!
//! Layouts, per sample (the batch axis is never part of a shape here):
//!
//! * activations are `[features]` or `[C, H, W]` (NCHW with the N outside), `f32`;
//! * `Dense` weights are `[in, out]` (ONNX `MatMul`, Keras `Dense`), bias `[out]`;
//! * `Conv2d` weights are `[out_c, in_c / groups, kh, kw]` (ONNX `OIHW`), bias `[out_c]`;
//!   `groups == in_c == out_c` is a depthwise convolution;
//! * `BatchNorm` tensors are `[C]`, over axis 0 (channels, or features of a flat input);
//! * padding is `[top, left, bottom, right]` (ONNX `pads` reordered: begins then ends per axis
//!   would be `[top, left, bottom, right]` too).
//!
//! Nothing here trusts its input: every shape is computed with checked arithmetic and bounded
//! by [`MAX_ACTIVATION_ELEMS`] per value, node and input counts are bounded, and every error
//! names the node (its index, op and name).

use crate::error::{Error, Result};
use crate::model::{Tensor, TensorData};

/// Largest activation (elements of one sample, for any value) a model may declare: 16 Mi
/// floats (64 MiB). MNIST-sized models use ~12k; the bound keeps a hostile graph from sizing a
/// huge arena.
pub const MAX_ACTIVATION_ELEMS: usize = 1 << 24;
/// Largest number of nodes in a graph.
pub const MAX_NODES: usize = 4096;
/// Largest number of inputs of one node (a `Concat` of many branches).
pub const MAX_NODE_INPUTS: usize = 64;
/// Largest kernel, stride, dilation or padding along one axis, and largest `groups`.
pub const MAX_GEOMETRY: usize = 1 << 16;

/// Index of a value: 0 is the model input, `i + 1` the output of node `i`.
pub type ValueId = u32;

/// One operation. Weights are owned by the op that uses them (a tensor belongs to exactly one
/// node: the format relies on it so that a small file cannot expand into many copies).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `y = x · W + b`, `W: [in, out]`, input `[in]` (ONNX Gemm/MatMul with a constant weight).
    Dense { weight: Tensor, bias: Tensor },
    /// 2-D convolution (cross-correlation), zero padding.
    Conv2d {
        weight: Tensor,
        bias: Tensor,
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        padding: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    },
    /// Inference: `y = (x − mean) / sqrt(var + eps) · gamma + beta` per channel. Training
    /// normalises with the batch statistics and updates `mean`/`var` (momentum in `train`).
    BatchNorm { gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor, eps: f32 },
    /// Elementwise sum of two values; equal shapes, or one is `[C]`/`[C, 1, 1]` and the other
    /// `[C, H, W]` (broadcast over the spatial axes).
    Add,
    /// Elementwise product, broadcasting as [`Op::Add`] (a squeeze-and-excitation gate).
    Mul,
    /// Concatenation along the channel axis (axis 0 of the per-sample shape).
    Concat,
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        /// `[top, left, bottom, right]`; padded cells never win.
        padding: [usize; 4],
        ceil_mode: bool,
    },
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        ceil_mode: bool,
        /// Divide by the whole window (padding counted) instead of the cells inside the input.
        count_include_pad: bool,
    },
    /// `[C, H, W] → [C, 1, 1]`, the mean of each channel.
    GlobalAvgPool,
    /// Any shape to `[numel]`.
    Flatten,
    /// To the given per-sample shape (same element count; row-major order is kept).
    Reshape { shape: Vec<usize> },
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip { min: f32, max: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    Tanh,
    /// `x · relu6(x + 3) / 6` (MobileNetV3, ONNX HardSwish).
    HardSwish,
    /// Over the whole (flat) sample.
    Softmax,
    /// Active in training only; the identity at inference.
    Dropout { rate: f32 },
    Identity,
    /// Per-tensor uint8 quantization of the value, returned dequantized ("fake quantization",
    /// ONNX QuantizeLinear → DequantizeLinear): `q = clamp(round_half_even(x / scale) +
    /// zero_point, 0, 255)`, `y = scale · (q − zero_point)`. It records where a model's
    /// activations live on an 8-bit grid; the lowering runs a Dense/Conv2d with int8 weights
    /// whose input carries one on the integer kernels (`core/runtime/QUANT.md`). `scale` is
    /// finite and > 0, `zero_point` in 0..=255.
    Quantize { scale: f32, zero_point: i32 },
    /// Binarization: `y = +1` where `x >= 0` (−0 included), `−1` elsewhere (negative, NaN).
    /// It marks a binary layer's input: a Dense with 1-bit (`SPACKED`, ±1) weights after it runs
    /// on the XOR + popcount kernels (`core/runtime/QUANT.md`, "Binary"). Unlike ONNX `Sign`,
    /// 0 maps to +1 (two values, one bit).
    Sign,
}

impl Op {
    /// The op's name as errors, `mdeploy info` and the format documentation spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Dense { .. } => "Dense",
            Op::Conv2d { .. } => "Conv2d",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Concat => "Concat",
            Op::MaxPool2d { .. } => "MaxPool2d",
            Op::AvgPool2d { .. } => "AvgPool2d",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Flatten => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Relu => "ReLU",
            Op::Clip { .. } => "Clip",
            Op::LeakyRelu { .. } => "LeakyReLU",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::HardSwish => "HardSwish",
            Op::Softmax => "Softmax",
            Op::Dropout { .. } => "Dropout",
            Op::Identity => "Identity",
            Op::Quantize { .. } => "Quantize",
            Op::Sign => "Sign",
        }
    }

    /// A convolution with symmetric padding, no dilation, one group (the common case).
    pub fn conv2d(weight: Tensor, bias: Tensor, stride: [usize; 2], padding: [usize; 2]) -> Op {
        Op::Conv2d {
            weight,
            bias,
            stride,
            padding: [padding[0], padding[1], padding[0], padding[1]],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// A max pooling without padding, floor mode (the LeNet case).
    pub fn maxpool2d(kernel: [usize; 2], stride: [usize; 2]) -> Op {
        Op::MaxPool2d { kernel, stride, padding: [0; 4], ceil_mode: false }
    }

    /// How many inputs the op takes: `Some(n)` exactly, `None` for one or more (Concat).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Add | Op::Mul => Some(2),
            Op::Concat => None,
            _ => Some(1),
        }
    }

    /// The op's tensors, in the order the format stores them.
    pub fn tensors(&self) -> Vec<&Tensor> {
        match self {
            Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => vec![weight, bias],
            Op::BatchNorm { gamma, beta, mean, var, .. } => vec![gamma, beta, mean, var],
            _ => vec![],
        }
    }

    /// The op's tensors, mutably (training updates them in place).
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        match self {
            Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } => vec![weight, bias],
            Op::BatchNorm { gamma, beta, mean, var, .. } => vec![gamma, beta, mean, var],
            _ => vec![],
        }
    }

    /// `true` for ops that change nothing at inference (Dropout, Identity).
    pub fn is_identity_at_inference(&self) -> bool {
        matches!(self, Op::Dropout { .. } | Op::Identity)
    }

    /// `true` for elementwise activations of one input (fusable into a producer's epilogue).
    pub fn is_activation(&self) -> bool {
        matches!(
            self,
            Op::Relu | Op::Clip { .. } | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh | Op::HardSwish
        )
    }
}

/// One node: an op applied to earlier values. `name` is free text (an ONNX node name, a
/// layer name); it may be empty and is used in error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub name: String,
}

impl Node {
    pub fn new(op: Op, inputs: Vec<ValueId>) -> Node {
        Node { op, inputs, name: String::new() }
    }
}

/// A DAG of nodes in topological order with one input (value 0) and one output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// The value the model returns; [`Graph::sequential`] and [`GraphBuilder`] set it to the
    /// last node's.
    pub output: ValueId,
}

/// Builds a graph node by node: each `push` returns the new value's id.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
}

impl GraphBuilder {
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }
    /// The model input.
    pub const INPUT: ValueId = 0;
    pub fn push(&mut self, op: Op, inputs: &[ValueId]) -> ValueId {
        self.nodes.push(Node::new(op, inputs.to_vec()));
        self.nodes.len() as ValueId
    }
    pub fn push_named(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> ValueId {
        self.nodes.push(Node { op, inputs: inputs.to_vec(), name: name.to_string() });
        self.nodes.len() as ValueId
    }
    /// A chain of single-input ops after `from`; returns the last value.
    pub fn chain(&mut self, from: ValueId, ops: impl IntoIterator<Item = Op>) -> ValueId {
        ops.into_iter().fold(from, |v, op| self.push(op, &[v]))
    }
    /// Finishes with the last node's value as the output.
    pub fn finish(self) -> Graph {
        let output = self.nodes.len() as ValueId;
        Graph { nodes: self.nodes, output }
    }
    /// Finishes with `output` as the output.
    pub fn finish_at(self, output: ValueId) -> Graph {
        Graph { nodes: self.nodes, output }
    }
}

pub(crate) fn checked_prod(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Output length of a convolution or pooling window along one axis: `None` when it does not fit.
/// `ceil` follows ONNX/PyTorch: a last window must start inside the input or the leading pad.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad_lo: usize,
    pad_hi: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let padded = input.checked_add(pad_lo)?.checked_add(pad_hi)?;
    let span = (kernel - 1).checked_mul(dilation)?.checked_add(1)?;
    if padded < span {
        return None;
    }
    let room = padded - span;
    let mut out = if ceil { room.div_ceil(stride) + 1 } else { room / stride + 1 };
    if ceil && out > 1 && (out - 1) * stride >= input + pad_lo {
        out -= 1;
    }
    Some(out)
}

impl Graph {
    /// A chain: node `i` reads value `i`, the output is the last node's.
    pub fn sequential(ops: impl IntoIterator<Item = Op>) -> Graph {
        let mut b = GraphBuilder::new();
        b.chain(GraphBuilder::INPUT, ops);
        b.finish()
    }

    /// `Some(ops)` when the graph is a chain (node `i` reads exactly value `i` and the output
    /// is the last node's): the form the 1.0 format and the older code paths handle.
    pub fn as_sequential(&self) -> Option<Vec<&Op>> {
        let chain = self.output as usize == self.nodes.len()
            && self.nodes.iter().enumerate().all(|(i, n)| n.inputs.len() == 1 && n.inputs[0] as usize == i);
        chain.then(|| self.nodes.iter().map(|n| &n.op).collect())
    }

    /// How node `i` is named in errors: `node 3 (Conv2d "conv1")`.
    pub fn describe_node(&self, i: usize) -> String {
        match self.nodes.get(i) {
            Some(n) if n.name.is_empty() => format!("node {i} ({})", n.op.name()),
            Some(n) => format!("node {i} ({} {:?})", n.op.name(), n.name),
            None => format!("node {i}"),
        }
    }

    /// For every value, the nodes that read it (`consumers()[v]`), in node order.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c = vec![Vec::new(); self.nodes.len() + 1];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                if let Some(list) = c.get_mut(v as usize) {
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
        c
    }

    /// Per-sample shape of every value: `shapes[0]` is `input`, `shapes[i + 1]` node `i`'s
    /// output. Checks the topological order, arities, every weight shape and attribute, and
    /// bounds every value by [`MAX_ACTIVATION_ELEMS`]; the error names the node.
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        if self.nodes.len() > MAX_NODES {
            return Err(Error::bad_model(format!(
                "{} nodes is more than the limit of {MAX_NODES}",
                self.nodes.len()
            )));
        }
        if input.is_empty() || input.len() > 3 || input.contains(&0) {
            return Err(Error::bad_model(format!(
                "input shape {input:?} must have 1 to 3 non-zero dimensions ([features] or [C, H, W])"
            )));
        }
        if checked_prod(input).is_none_or(|n| n > MAX_ACTIVATION_ELEMS) {
            return Err(Error::bad_model(format!(
                "input shape {input:?} exceeds the limit of {MAX_ACTIVATION_ELEMS} elements per sample"
            )));
        }
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len() + 1);
        shapes.push(input.to_vec());
        for (i, node) in self.nodes.iter().enumerate() {
            let at = || self.describe_node(i);
            let n_in = node.inputs.len();
            match node.op.arity() {
                Some(k) if k != n_in => {
                    return Err(Error::bad_model(format!("{}: takes {k} input(s), has {n_in}", at())))
                }
                None if n_in == 0 || n_in > MAX_NODE_INPUTS => {
                    return Err(Error::bad_model(format!(
                        "{}: takes 1 to {MAX_NODE_INPUTS} inputs, has {n_in}",
                        at()
                    )))
                }
                _ => {}
            }
            let mut ins: Vec<&[usize]> = Vec::with_capacity(n_in);
            for &v in &node.inputs {
                match shapes.get(v as usize) {
                    Some(s) => ins.push(s),
                    None => {
                        return Err(Error::bad_model(format!(
                            "{}: reads value {v}, which is not the input or an earlier node's output \
                             (nodes must be in topological order)",
                            at()
                        )))
                    }
                }
            }
            let out = node_shape(&node.op, &ins).map_err(|m| Error::bad_model(format!("{}: {m}", at())))?;
            match checked_prod(&out) {
                Some(n) if n > 0 && n <= MAX_ACTIVATION_ELEMS => {}
                _ => {
                    return Err(Error::bad_model(format!(
                        "{}: output shape {out:?} is empty or exceeds the limit of {MAX_ACTIVATION_ELEMS} \
                         elements per sample",
                        at()
                    )))
                }
            }
            shapes.push(out);
        }
        if self.output as usize >= shapes.len() {
            return Err(Error::bad_model(format!(
                "the graph output is value {}, but only values 0..={} exist",
                self.output,
                shapes.len() - 1
            )));
        }
        Ok(shapes)
    }

    /// Full check: shapes, every tensor's payload size, finite f32 weights.
    pub fn validate(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let shapes = self.shapes(input)?;
        for (i, node) in self.nodes.iter().enumerate() {
            for t in node.op.tensors() {
                if let TensorData::F32(v) = &t.data {
                    if Some(v.len()) != checked_prod(&t.shape) {
                        return Err(Error::bad_model(format!(
                            "{}: tensor of shape {:?} holds {} values",
                            self.describe_node(i),
                            t.shape,
                            v.len()
                        )));
                    }
                    if crate::first_non_finite(v).is_some() {
                        return Err(Error::bad_model(format!(
                            "{}: weights contain NaN or infinity",
                            self.describe_node(i)
                        )));
                    }
                }
            }
            if let Op::BatchNorm { var, eps, .. } = &node.op {
                if let TensorData::F32(v) = &var.data {
                    if v.iter().any(|&x| x + eps <= 0.0) {
                        return Err(Error::bad_model(format!(
                            "{}: variance + eps must be positive",
                            self.describe_node(i)
                        )));
                    }
                }
            }
        }
        Ok(shapes)
    }

    /// Number of parameters (elements of every tensor; BatchNorm's running statistics included).
    pub fn param_count(&self) -> usize {
        self.nodes.iter().flat_map(|n| n.op.tensors()).map(|t| t.numel()).sum()
    }

    /// Multiply-accumulates per sample of Dense and Conv2d nodes (FLOPs ≈ 2 × MACs).
    pub fn macs(&self, input: &[usize]) -> usize {
        let Ok(shapes) = self.shapes(input) else { return 0 };
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.op {
                Op::Dense { weight, .. } => weight.numel(),
                Op::Conv2d { weight, .. } => {
                    let per_out = weight.shape[1..].iter().product::<usize>();
                    shapes[i + 1].iter().product::<usize>() * per_out
                }
                _ => 0,
            })
            .sum()
    }
}

fn expect(what: &str, t: &Tensor, want: &[usize]) -> std::result::Result<(), String> {
    if t.shape != want {
        return Err(format!("{what} has shape {:?}, expected {want:?}", t.shape));
    }
    Ok(())
}

fn geometry_ok(vals: &[usize]) -> bool {
    vals.iter().all(|&v| v <= MAX_GEOMETRY)
}

/// Output shape of one op from its input shapes (already checked for arity).
fn node_shape(op: &Op, ins: &[&[usize]]) -> std::result::Result<Vec<usize>, String> {
    let x = ins[0];
    Ok(match op {
        Op::Dense { weight, bias } => {
            if x.len() != 1 {
                return Err(format!("Dense needs a flat input, got shape {x:?} (add a Flatten before it)"));
            }
            if weight.shape.len() != 2 {
                return Err(format!("Dense weight must be 2-D [in, out], got {:?}", weight.shape));
            }
            let (fin, fout) = (weight.shape[0], weight.shape[1]);
            if fin != x[0] {
                return Err(format!("Dense expects {fin} inputs but receives {}", x[0]));
            }
            expect("Dense bias", bias, &[fout])?;
            vec![fout]
        }
        Op::Conv2d { .. } | Op::MaxPool2d { .. } | Op::AvgPool2d { .. } => spatial_shape(op, ins)?,
        Op::BatchNorm { .. }
        | Op::Add
        | Op::Mul
        | Op::Concat
        | Op::GlobalAvgPool
        | Op::Reshape { .. }
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::Quantize { .. } => other_shape(op, ins)?,
        Op::Flatten => vec![checked_prod(x).ok_or("Flatten size overflows")?],
        Op::Dropout { rate } => {
            if !(0.0..1.0).contains(rate) {
                return Err(format!("Dropout rate {rate} must be in [0, 1)"));
            }
            x.to_vec()
        }
        Op::Softmax => {
            if x.len() != 1 {
                return Err(format!("Softmax needs a flat input, got {x:?} (add a Flatten before it)"));
            }
            x.to_vec()
        }
        Op::Relu | Op::Sigmoid | Op::Tanh | Op::HardSwish | Op::Identity | Op::Sign => x.to_vec(),
    })
}

/// `node_shape` for the windowed ops (Conv2d and the pools), a wasm function of its own: V8
/// compiles a function on its first call, so a plain MLP's load never compiles these checks
/// (wasm/DESIGN.md, "What the load path compiles"); `other_shape` has the remaining ops.
#[inline(never)]
fn spatial_shape(op: &Op, ins: &[&[usize]]) -> std::result::Result<Vec<usize>, String> {
    let x = ins[0];
    Ok(match op {
        Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
            let (c, h, w) = spatial("Conv2d", x)?;
            if weight.shape.len() != 4 {
                return Err(format!("Conv2d weight must be 4-D [out_c, in_c/groups, kh, kw], got {:?}", weight.shape));
            }
            let (oc, icg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3]);
            let g = *groups;
            if !geometry_ok(&[stride[0], stride[1], dilation[0], dilation[1], g, kh, kw])
                || !geometry_ok(padding)
            {
                return Err(format!("Conv2d geometry exceeds the limit of {MAX_GEOMETRY}"));
            }
            if g == 0 || c % g != 0 || oc % g != 0 || oc == 0 {
                return Err(format!(
                    "Conv2d groups {g} must divide both the {c} input and the {oc} output channels"
                ));
            }
            if icg != c / g {
                return Err(format!(
                    "Conv2d expects {} input channels ({icg} per group × {g} groups) but receives {c}",
                    icg * g
                ));
            }
            expect("Conv2d bias", bias, &[oc])?;
            let oh = window_out(h, kh, stride[0], padding[0], padding[2], dilation[0], false);
            let ow = window_out(w, kw, stride[1], padding[1], padding[3], dilation[1], false);
            match (oh, ow) {
                (Some(oh), Some(ow)) => vec![oc, oh, ow],
                _ => {
                    return Err(format!(
                        "Conv2d kernel {kh}x{kw} (stride {stride:?}, padding {padding:?}, dilation {dilation:?}) \
                         does not fit input {x:?}"
                    ))
                }
            }
        }
        Op::MaxPool2d { kernel, stride, padding, ceil_mode }
        | Op::AvgPool2d { kernel, stride, padding, ceil_mode, .. } => {
            let (c, h, w) = spatial(op.name(), x)?;
            if !geometry_ok(kernel) || !geometry_ok(stride) || !geometry_ok(padding) {
                return Err(format!("{} geometry exceeds the limit of {MAX_GEOMETRY}", op.name()));
            }
            if kernel.contains(&0) || stride.contains(&0) {
                return Err(format!("{} kernel {kernel:?} and stride {stride:?} must be non-zero", op.name()));
            }
            if padding[0] >= kernel[0] || padding[2] >= kernel[0] || padding[1] >= kernel[1] || padding[3] >= kernel[1] {
                return Err(format!("{} padding {padding:?} must be smaller than the kernel {kernel:?}", op.name()));
            }
            let oh = window_out(h, kernel[0], stride[0], padding[0], padding[2], 1, *ceil_mode);
            let ow = window_out(w, kernel[1], stride[1], padding[1], padding[3], 1, *ceil_mode);
            match (oh, ow) {
                (Some(oh), Some(ow)) => vec![c, oh, ow],
                _ => return Err(format!("{} kernel {kernel:?} does not fit input {x:?}", op.name())),
            }
        }
        _ => unreachable!("node_shape sends the other ops elsewhere"),
    })
}

/// `node_shape` for the ops neither a plain MLP nor a plain CNN has (normalisation, residual
/// joins, reshapes, clips, quantization), a wasm function of its own for the same reason as
/// `spatial_shape`.
#[inline(never)]
fn other_shape(op: &Op, ins: &[&[usize]]) -> std::result::Result<Vec<usize>, String> {
    let x = ins[0];
    Ok(match op {
        Op::BatchNorm { gamma, beta, mean, var, eps } => {
            let c = x[0];
            for (what, t) in [("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)] {
                expect(&format!("BatchNorm {what}"), t, &[c])?;
            }
            if !eps.is_finite() || *eps < 0.0 {
                return Err(format!("BatchNorm eps {eps} must be finite and >= 0"));
            }
            x.to_vec()
        }
        Op::Add | Op::Mul => {
            let (a, b) = (ins[0], ins[1]);
            broadcast(a, b).ok_or_else(|| {
                format!(
                    "{} needs equal shapes, or [C] / [C, 1, 1] against [C, H, W]; got {a:?} and {b:?}",
                    op.name()
                )
            })?
        }
        Op::Concat => {
            let first = ins[0];
            let mut c = 0usize;
            for s in ins {
                if s.len() != first.len() || s[1..] != first[1..] {
                    return Err(format!(
                        "Concat joins along channels: every input needs the same other dimensions, got {first:?} and {s:?}"
                    ));
                }
                c = c.checked_add(s[0]).ok_or("Concat channel count overflows")?;
            }
            let mut out = first.to_vec();
            out[0] = c;
            out
        }
        Op::GlobalAvgPool => {
            let (c, _, _) = spatial("GlobalAvgPool", x)?;
            vec![c, 1, 1]
        }
        Op::Reshape { shape } => {
            if shape.is_empty() || shape.len() > 3 || shape.contains(&0) {
                return Err(format!("Reshape target {shape:?} must have 1 to 3 non-zero dimensions"));
            }
            if checked_prod(shape) != checked_prod(x) {
                return Err(format!("Reshape target {shape:?} does not hold the {} elements of {x:?}", x.iter().product::<usize>()));
            }
            shape.clone()
        }
        Op::Clip { min, max } => {
            if min.is_nan() || max.is_nan() || min > max {
                return Err(format!("Clip bounds [{min}, {max}] must be ordered numbers"));
            }
            x.to_vec()
        }
        Op::LeakyRelu { alpha } => {
            if !alpha.is_finite() {
                return Err(format!("LeakyReLU alpha {alpha} must be finite"));
            }
            x.to_vec()
        }
        Op::Quantize { scale, zero_point } => {
            if !(scale.is_finite() && *scale > 0.0 && *scale >= f32::MIN_POSITIVE) {
                return Err(format!("Quantize scale {scale} must be finite and positive (a normal f32)"));
            }
            if !(0..=255).contains(zero_point) {
                return Err(format!("Quantize zero point {zero_point} must lie in 0..=255 (uint8)"));
            }
            x.to_vec()
        }
        _ => unreachable!("node_shape sends the other ops elsewhere"),
    })
}

/// `x` as `[C, H, W]`, or the error `what` reports when it is not.
fn spatial(what: &str, x: &[usize]) -> std::result::Result<(usize, usize, usize), String> {
    match *x {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!("{what} needs a [C, H, W] input, got {x:?}")),
    }
}

/// The shape of a broadcast elementwise op, or `None` when the shapes do not combine.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a == b {
        return Some(a.to_vec());
    }
    let per_channel = |small: &[usize], big: &[usize]| {
        big.len() == 3 && (small == [big[0]] || small == [big[0], 1, 1])
    };
    if per_channel(b, a) {
        Some(a.to_vec())
    } else if per_channel(a, b) {
        Some(b.to_vec())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize]) -> Tensor {
        Tensor::f32(shape.to_vec(), vec![0.5; shape.iter().product()])
    }

    #[test]
    fn residual_block_shapes() {
        let mut b = GraphBuilder::new();
        let x = b.push(Op::conv2d(t(&[8, 1, 3, 3]), t(&[8]), [1, 1], [1, 1]), &[0]);
        let x = b.push(Op::Relu, &[x]);
        let y = b.push(
            Op::Conv2d {
                weight: t(&[8, 1, 3, 3]),
                bias: t(&[8]),
                stride: [1, 1],
                padding: [1, 1, 1, 1],
                dilation: [1, 1],
                groups: 8,
            },
            &[x],
        );
        let y = b.push(Op::BatchNorm { gamma: t(&[8]), beta: t(&[8]), mean: t(&[8]), var: t(&[8]), eps: 1e-5 }, &[y]);
        let s = b.push(Op::Add, &[x, y]);
        let g = b.push(Op::GlobalAvgPool, &[s]);
        let m = b.push(Op::Mul, &[s, g]);
        let c = b.push(Op::Concat, &[m, s]);
        let f = b.push(Op::Flatten, &[c]);
        let _ = b.push(Op::Dense { weight: t(&[16 * 28 * 28, 10]), bias: t(&[10]) }, &[f]);
        let g = b.finish();
        let shapes = g.validate(&[1, 28, 28]).unwrap();
        assert_eq!(shapes[8], vec![16, 28, 28]);
        assert_eq!(shapes.last().unwrap(), &vec![10]);
        assert!(g.as_sequential().is_none());
        assert_eq!(g.consumers()[2], vec![2, 4]);
    }

    #[test]
    fn rejects_forward_references_and_bad_arity() {
        let g = Graph { nodes: vec![Node::new(Op::Relu, vec![1])], output: 1 };
        let e = g.shapes(&[4]).unwrap_err();
        assert!(e.message.contains("topological"), "{e}");
        let g = Graph { nodes: vec![Node::new(Op::Add, vec![0])], output: 1 };
        assert!(g.shapes(&[4]).unwrap_err().message.contains("takes 2 input"));
        let g = Graph { nodes: vec![Node::new(Op::Relu, vec![0])], output: 5 };
        assert!(g.shapes(&[4]).is_err());
    }

    #[test]
    fn window_rules_follow_onnx() {
        // floor vs ceil: 5 wide, kernel 2, stride 2.
        assert_eq!(window_out(5, 2, 2, 0, 0, 1, false), Some(2));
        assert_eq!(window_out(5, 2, 2, 0, 0, 1, true), Some(3));
        // ceil mode never starts a window entirely in the trailing pad.
        assert_eq!(window_out(4, 2, 2, 0, 1, 1, true), Some(2));
        // dilation 2 on a 3-tap kernel spans 5.
        assert_eq!(window_out(7, 3, 1, 0, 0, 2, false), Some(3));
        assert_eq!(window_out(4, 3, 1, 0, 0, 2, false), None);
        assert_eq!(window_out(usize::MAX, 3, 1, 1, 1, 1, false), None);
    }

    #[test]
    fn hostile_shapes_are_errors() {
        let g = Graph::sequential([Op::Reshape { shape: vec![1 << 20, 1 << 20] }]);
        assert!(g.shapes(&[4]).is_err());
        let g = Graph::sequential([Op::Conv2d {
            weight: t(&[1, 1, 1, 1]),
            bias: t(&[1]),
            stride: [1, 1],
            padding: [1 << 15, 1 << 15, 1 << 15, 1 << 15],
            dilation: [1, 1],
            groups: 1,
        }]);
        assert!(g.shapes(&[1, 4, 4]).is_err(), "a 65k-padded output exceeds the activation limit");
    }
}
