//! The GRAPH section: the 1.0 layer list (`minor == 0`) or the 1.1 node list, parsed into ops
//! with placeholder tensors that the TENSORS records then fill.

use crate::error::{Error, Result};
use crate::format::codes::layer;
use crate::format::cursor::Cursor;
use crate::graph::{Node, Op, ValueId, MAX_NODES, MAX_NODE_INPUTS};
use crate::model::Tensor;
use super::meta::parse_bool;

/// A node as parsed: its op with empty placeholder tensors, and the table indices that fill
/// them (in `Op::tensors_mut` order) once the tensors are decoded.
pub(super) struct NodeSpec {
    pub(super) node: Node,
    pub(super) tensors: Vec<usize>,
}

pub(super) fn placeholder() -> Tensor {
    Tensor::f32(Vec::new(), Vec::new())
}

/// Parses the GRAPH section: the 1.0 layer list (`minor == 0`) or the 1.1 node list.
pub(super) fn parse_graph(
    c: &mut Cursor,
    minor: u16,
    n_tensors: usize,
    owners: &mut [Option<(usize, &'static str)>],
) -> Result<(Vec<NodeSpec>, ValueId)> {
    let v11 = minor >= 1;
    let what = if v11 { "node" } else { "layer" };
    // 1.0: a layer is at least its u16 code; 1.1: code + name length + input count.
    let n = c.count(format_args!("{what} count"), MAX_NODES, if v11 { 7 } else { 2 })?;
    let output = if v11 { c.u32("graph output value")? } else { n as ValueId };
    let mut specs = Vec::new();
    for i in 0..n {
        let at = c.offset();
        let code = c.u16(format_args!("{what} {i} code"))?;
        let (name, inputs) = if v11 {
            let name = c.string(format_args!("node {i} name"))?;
            let k = c.u8(format_args!("node {i} input count"))? as usize;
            if k > MAX_NODE_INPUTS {
                return Err(c.err(format_args!("node {i} has {k} inputs, more than the limit of {MAX_NODE_INPUTS}")));
            }
            let mut inputs = Vec::with_capacity(k);
            for j in 0..k {
                inputs.push(c.u32(format_args!("node {i} input {j}"))?);
            }
            (name, inputs)
        } else {
            (String::new(), vec![i as ValueId])
        };
        let mut idx = Vec::new();
        let mut tensor = |c: &mut Cursor, role: &'static str| -> Result<Tensor> {
            let t = c.u32(format_args!("{what} {i} {role} tensor index"))? as usize;
            match owners.get_mut(t) {
                None => Err(c.err(format_args!(
                    "{what} {i} {role} refers to tensor {t}, but the table has {n_tensors} tensors"
                ))),
                Some(Some((other, r))) => Err(c.err(format_args!(
                    "{what} {i} {role} refers to tensor {t}, already used as {what} {other} {r}; each tensor belongs to exactly one {what}"
                ))),
                Some(slot) => {
                    *slot = Some((i, role));
                    idx.push(t);
                    Ok(placeholder())
                }
            }
        };
        let pair = |c: &mut Cursor, f: &str| -> Result<[usize; 2]> {
            Ok([c.usize32(format_args!("{what} {i} {f}[0]"))?, c.usize32(format_args!("{what} {i} {f}[1]"))?])
        };
        let unknown = || {
            Error::unsupported(format!(
                "GRAPH section, file offset {at}: {what} {i} has unknown op code {code} for format 1.{minor}; upgrade mdeploy if this file was written by a newer version"
            ))
        };
        // The ops of the 1.0 layer list inline; the other 1.1 ops (and the 1.1 layout of Conv2d
        // and MaxPool2d) in `parse_v11_op`, its own wasm function: V8 compiles a function on its
        // first call, so a 1.0 file (the MNIST defaults) never compiles it (wasm/DESIGN.md,
        // "What the load path compiles").
        let op = match code {
            layer::DENSE => Op::Dense { weight: tensor(c, "weight")?, bias: tensor(c, "bias")? },
            layer::CONV2D if !v11 => {
                let (weight, bias) = (tensor(c, "weight")?, tensor(c, "bias")?);
                let stride = pair(c, "stride")?;
                Op::conv2d(weight, bias, stride, pair(c, "padding")?)
            }
            layer::MAXPOOL2D if !v11 => {
                let (kernel, stride) = (pair(c, "kernel")?, pair(c, "stride")?);
                Op::maxpool2d(kernel, stride)
            }
            layer::RELU => Op::Relu,
            layer::SOFTMAX => Op::Softmax,
            layer::FLATTEN => Op::Flatten,
            layer::DROPOUT => Op::Dropout { rate: c.finite_f32(format_args!("{what} {i} dropout rate"))? },
            _ if !v11 => return Err(unknown()),
            _ => match parse_v11_op(c, code, i, &mut tensor)? {
                Some(op) => op,
                None => return Err(unknown()),
            },
        };
        specs.push(NodeSpec { node: Node { op, inputs, name }, tensors: idx });
    }
    c.finish(false)?;
    if let Some(t) = owners.iter().position(Option::is_none) {
        return Err(Error::bad_model(format!(
            "TENSORS section: tensor {t} is not used by any {what} (each tensor belongs to exactly one {what})"
        )));
    }
    Ok((specs, output))
}


/// A 1.1 node's op (code `code`, node `i`) after its name and inputs; `None` for an unknown code.
/// `tensor` reads a tensor index and claims it for this node (as in `parse_graph`).
#[inline(never)]
fn parse_v11_op(
    c: &mut Cursor,
    code: u16,
    i: usize,
    tensor: &mut dyn FnMut(&mut Cursor, &'static str) -> Result<Tensor>,
) -> Result<Option<Op>> {
    let pair = |c: &mut Cursor, f: &str| -> Result<[usize; 2]> {
        Ok([c.usize32(format_args!("node {i} {f}[0]"))?, c.usize32(format_args!("node {i} {f}[1]"))?])
    };
    let quad = |c: &mut Cursor, f: &str| -> Result<[usize; 4]> {
        let mut q = [0; 4];
        for (j, v) in q.iter_mut().enumerate() {
            *v = c.usize32(format_args!("node {i} {f}[{j}]"))?;
        }
        Ok(q)
    };
    let flag = |c: &mut Cursor, f: &str| -> Result<bool> { parse_bool(c, &format!("node {i} {f}")) };
    Ok(Some(match code {
        layer::CONV2D => {
            let (weight, bias) = (tensor(c, "weight")?, tensor(c, "bias")?);
            let stride = pair(c, "stride")?;
            let padding = quad(c, "padding")?;
            let dilation = pair(c, "dilation")?;
            let groups = c.usize32(format_args!("node {i} groups"))?;
            Op::Conv2d { weight, bias, stride, padding, dilation, groups }
        }
        layer::MAXPOOL2D => {
            let (kernel, stride) = (pair(c, "kernel")?, pair(c, "stride")?);
            let padding = quad(c, "padding")?;
            Op::MaxPool2d { kernel, stride, padding, ceil_mode: flag(c, "ceil_mode")? }
        }
        layer::BATCHNORM => Op::BatchNorm {
            gamma: tensor(c, "gamma")?,
            beta: tensor(c, "beta")?,
            mean: tensor(c, "mean")?,
            var: tensor(c, "var")?,
            eps: c.finite_f32(format_args!("node {i} eps"))?,
        },
        layer::ADD => Op::Add,
        layer::MUL => Op::Mul,
        layer::CONCAT => Op::Concat,
        layer::AVGPOOL2D => {
            let (kernel, stride, padding) = (pair(c, "kernel")?, pair(c, "stride")?, quad(c, "padding")?);
            let ceil_mode = flag(c, "ceil_mode")?;
            Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad: flag(c, "count_include_pad")? }
        }
        layer::GLOBAL_AVGPOOL => Op::GlobalAvgPool,
        layer::RESHAPE => {
            let rank = c.u8(format_args!("node {i} reshape rank"))? as usize;
            if !(1..=3).contains(&rank) {
                return Err(c.err(format_args!("node {i}: a Reshape target has 1 to 3 dimensions, not {rank}")));
            }
            let mut shape = Vec::with_capacity(rank);
            for j in 0..rank {
                shape.push(c.usize32(format_args!("node {i} reshape dim {j}"))?);
            }
            Op::Reshape { shape }
        }
        layer::CLIP => Op::Clip {
            min: c.f32(format_args!("node {i} clip min"))?,
            max: c.f32(format_args!("node {i} clip max"))?,
        },
        layer::LEAKY_RELU => Op::LeakyRelu { alpha: c.finite_f32(format_args!("node {i} alpha"))? },
        layer::SIGMOID => Op::Sigmoid,
        layer::TANH => Op::Tanh,
        layer::HARDSWISH => Op::HardSwish,
        layer::IDENTITY => Op::Identity,
        layer::SIGN => Op::Sign,
        layer::QUANTIZE => Op::Quantize {
            scale: c.finite_f32(format_args!("node {i} quantize scale"))?,
            zero_point: c.i32(format_args!("node {i} quantize zero point"))?,
        },
        _ => return Ok(None),
    }))
}
