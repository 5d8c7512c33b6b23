//! From bytes to a decluttered tract `TypedModel`: decoding, checks that tract does not make,
//! the input fact, the output choice, typing and declutter.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

use crate::error::ImportError;
use crate::ImportOptions;

/// Largest ONNX file read: protobuf itself stops at 2 GiB, and anything near that is far
/// outside what mdeploy's runtime accepts (`MAX_ACTIVATION_ELEMS`, the arena budget).
pub const MAX_FILE_BYTES: usize = 1 << 30;
/// Largest number of ONNX nodes; mdeploy graphs hold at most 4,096 nodes, and exporters
/// rarely emit more than a few per mdeploy op.
pub const MAX_ONNX_NODES: usize = 65_536;

/// `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

/// What the mapping needs: the typed model and how to name things in errors.
pub struct Loaded {
    pub typed: TypedModel,
    pub input_name: String,
    pub output_name: String,
    pub opset: i64,
    pub producer: String,
    pub graph_name: String,
    /// ONNX node name (and first output name) → op type, to name the ONNX op behind a tract node.
    pub onnx_ops: HashMap<String, String>,
    /// What quant.rs rewrote (a quantized graph) and the integer source of each weight.
    pub quant: crate::quant::Rewritten,
}

impl Loaded {
    /// The ONNX op type behind a tract node: tract names a node after its ONNX node (or its
    /// first output) and the nodes it expands into after that name plus a `.suffix`.
    pub fn onnx_op_of<'a>(&'a self, tract_name: &'a str) -> Option<(&'a str, &'a str)> {
        let mut name = tract_name;
        loop {
            if let Some((k, v)) = self.onnx_ops.get_key_value(name) {
                return Some((k.as_str(), v.as_str()));
            }
            match name.rfind('.') {
                Some(i) => name = &name[..i],
                None => break,
            }
        }
        // A node with neither a name nor a first output (GRU/LSTM/RNN that output only Y_h)
        // is named "<index>-<op type>" by tract.
        let (index, op) = name.split_once('-')?;
        (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) && !op.is_empty()).then_some((name, op))
    }

    /// `ONNX node "dense/MatMul" (MatMul, opset 15)`, or the tract name when no ONNX node matches.
    pub fn describe(&self, tract_name: &str) -> String {
        match self.onnx_op_of(tract_name) {
            Some((name, op)) => format!("ONNX node {name:?} ({op}, opset {})", self.opset),
            None => format!("node {tract_name:?} (made by tract, opset {})", self.opset),
        }
    }
}

fn tract_err(what: &str, e: TractError) -> ImportError {
    // `{:#}` prints anyhow's whole context chain on one line: tract's context says which
    // node failed, the root cause says why.
    ImportError::new(format!("{what}: {e:#}"))
}

pub fn load(bytes: &[u8], dir: Option<&Path>, opts: &ImportOptions) -> Result<Loaded, ImportError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ImportError::new(format!(
            "the ONNX file is {} bytes, more than the {MAX_FILE_BYTES} this converter reads; mdeploy targets small \
             models (store large weights as ONNX external data, or quantize)",
            bytes.len()
        )));
    }
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| {
        tract_err("this is not a readable ONNX file (protobuf decoding failed; is it an .onnx model?)", e)
    })?;
    // External weights (model.onnx.data) are read here, checked, into the model itself; tract
    // then parses a self-contained model and never touches the filesystem (external.rs).
    crate::external::inline(&mut proto, dir, (MAX_FILE_BYTES - bytes.len()) as u64)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::new("the ONNX file holds no graph (ModelProto.graph is missing); re-export it"))?;
    if graph.node.len() > MAX_ONNX_NODES {
        return Err(ImportError::new(format!(
            "the ONNX graph has {} nodes, more than the {MAX_ONNX_NODES} this converter accepts",
            graph.node.len()
        )));
    }
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    let producer = format!("{} {}", proto.producer_name, proto.producer_version).trim().to_string();
    let mut onnx_ops = HashMap::new();
    for n in &graph.node {
        let op = if n.domain.is_empty() || n.domain == "ai.onnx" {
            n.op_type.clone()
        } else {
            format!("{}:{}", n.domain, n.op_type)
        };
        if !n.name.is_empty() {
            onnx_ops.insert(n.name.clone(), op.clone());
        }
        if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
            onnx_ops.entry(o.clone()).or_insert(op);
        }
    }
    let dir_str = match dir {
        Some(d) => Some(d.to_str().ok_or_else(|| {
            ImportError::new(format!("the model's folder {} is not valid UTF-8; move the model", d.display()))
        })?),
        None => None,
    };
    // Quantized graphs become the f32 graphs they stand for before tract sees them (quant.rs);
    // the op names above stay the file's, so errors name the quantized op.
    let quant = crate::quant::rewrite(&mut proto, dir_str, opset)?;
    let graph = proto.graph.as_ref().ok_or_else(|| ImportError::new("the ONNX file holds no graph"))?;
    let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(ImportError::new("the ONNX graph has no input (every graph input is an initializer)")),
        many => {
            return Err(ImportError::new(format!(
                "the ONNX graph has {} inputs ({}); mdeploy models take exactly one (an image or a feature vector)",
                many.len(),
                many.iter().map(|i| format!("{:?}", i.name)).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    if let Some(ty) = tensor_type(input).map(|t| t.elem_type).filter(|&t| t != ONNX_FLOAT && t != 0) {
        return Err(ImportError::new(format!(
            "input {:?} is a tensor of ONNX type {}; mdeploy models take one f32 input (export the model with a \
             float32 input, casting inside the graph if it needs another type)",
            input.name,
            type_name(ty)
        )));
    }
    unreadable_types(graph, opset)?;
    let output_name = choose_output(graph, opts)?;
    let per_sample = input_shape(input, opts)?;
    let loaded_base = |typed| Loaded {
        typed,
        input_name: input.name.clone(),
        output_name: output_name.clone(),
        opset,
        producer: producer.clone(),
        graph_name: graph.name.clone(),
        onnx_ops: onnx_ops.clone(),
        quant: quant.clone(),
    };

    // The batch axis stays symbolic, so that tract proves the graph treats samples apart and
    // folds the Shape/Gather/Concat/Reshape chains of Keras and PyTorch into reshapes. tract
    // cannot fold every such chain symbolically (tf2onnx casts the batch size to int32, which a
    // symbol cannot go through): then the batch is fixed at 2, never 1, because tract drops
    // unit axes and a batch of 1 could not be told apart from the sample's own axes. Either
    // way the mapping refuses any op that touches the batch axis (map.rs).
    match typed_model(&onnx, &proto, input, &output_name, &per_sample, Batch::Symbolic, &loaded_base) {
        Ok(l) => Ok(l),
        Err(symbolic_err) => {
            typed_model(&onnx, &proto, input, &output_name, &per_sample, Batch::Two, &loaded_base)
                .map_err(|e| {
                    // Both failing for the same reason (a wrong --input-shape) is the common
                    // case: say it once. tract's complaint about a symbolic batch is the less
                    // useful one when only it failed at first.
                    let same = e.message.replace("Val(2)", "Sym(N)") == symbolic_err.message;
                    if same {
                        symbolic_err
                    } else {
                        ImportError::new(format!("{e} (with a symbolic batch axis: {symbolic_err})"))
                    }
                })
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    Symbolic,
    Two,
}

#[allow(clippy::too_many_arguments)]
fn typed_model(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    input: &pb::ValueInfoProto,
    output_name: &str,
    per_sample: &[usize],
    batch: Batch,
    base: &dyn Fn(TypedModel) -> Loaded,
) -> Result<Loaded, ImportError> {
    let parsed = onnx.parse(proto, None).map_err(|e| tract_err("tract could not read the ONNX graph", e))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(ImportError::new(format!(
            "the ONNX graph reads values nothing defines: {:?}; the file is incomplete, re-export it",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;
    let batch: TDim = match batch {
        Batch::Symbolic => model.symbols.sym("N").into(),
        Batch::Two => 2.into(),
    };
    let mut dims: TVec<TDim> = tvec![batch];
    dims.extend(per_sample.iter().map(|&d| TDim::from(d)));
    let fact = InferenceFact::dt_shape(f32::datum_type(), dims);
    model
        .set_input_fact(0, fact)
        .map_err(|e| tract_err(&format!("cannot set the shape of input {:?}", input.name), e))?;
    model
        .select_outputs_by_name([output_name])
        .map_err(|e| tract_err(&format!("cannot select output {output_name:?}"), e))?;
    let probe = base(TypedModel::default());
    // An op tract does not know becomes an UnimplementedOp; name it before typing fails on it.
    if let Ok(order) = model.eval_order() {
        for id in order {
            let node = model.node(id);
            if node.op_as::<UnimplementedOp>().is_some() {
                let op = probe.onnx_op_of(&node.name).map(|(_, op)| op.to_string()).unwrap_or_default();
                let why = if op.contains(':') {
                    "an op outside the standard ai.onnx domain, which tract does not implement"
                } else {
                    "an op tract does not implement"
                };
                return Err(ImportError::new(format!(
                    "{}: {why}, so mdeploy cannot convert it; replace it in the model or export without it",
                    probe.describe(&node.name)
                )));
            }
        }
    }
    let typed = model.into_typed().map_err(|e| {
        tract_err(
            &format!(
                "tract could not type the graph with input {:?} of shape [batch, {}] (is --input-shape right?)",
                input.name,
                per_sample.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ),
            e,
        )
    })?;
    let typed = typed.into_decluttered().map_err(|e| tract_err("tract could not simplify (declutter) the graph", e))?;
    Ok(base(typed))
}

/// The graph output to keep: `--output`, else the only one, else the only float one.
fn choose_output(graph: &pb::GraphProto, opts: &ImportOptions) -> Result<String, ImportError> {
    let names = || graph.output.iter().map(|o| format!("{:?}", o.name)).collect::<Vec<_>>().join(", ");
    if let Some(want) = &opts.output {
        return graph
            .output
            .iter()
            .find(|o| &o.name == want)
            .map(|o| o.name.clone())
            .ok_or_else(|| ImportError::new(format!("the model has no output {want:?}; its outputs are {}", names())));
    }
    if let [one] = graph.output.as_slice() {
        return Ok(one.name.clone());
    }
    let floats: Vec<&pb::ValueInfoProto> = graph.output.iter().filter(|o| elem_type(o) == Some(ONNX_FLOAT)).collect();
    match floats.as_slice() {
        [one] => Ok(one.name.clone()),
        [] if graph.output.is_empty() => Err(ImportError::new("the ONNX graph declares no output; re-export it")),
        _ => Err(ImportError::new(format!(
            "the model has {} outputs ({}); choose the one mdeploy should serve with --output NAME",
            graph.output.len(),
            names()
        ))),
    }
}

fn tensor_type(v: &pb::ValueInfoProto) -> Option<&pb::type_proto::Tensor> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    tensor_type(v).map(|t| t.elem_type)
}

/// `FLOAT8E5M2` for ONNX's `TensorProto.DataType` number, or the number when prost does not know it.
fn type_name(t: i32) -> String {
    pb::tensor_proto::DataType::try_from(t).map(|d| d.as_str_name().to_string()).unwrap_or_else(|_| format!("#{t}"))
}

/// tract reads only some ONNX element types (not bfloat16, float8, int4, ...) and says so
/// without naming the value; name it here, before tract parses the graph.
fn unreadable_types(graph: &pb::GraphProto, opset: i64) -> Result<(), ImportError> {
    let readable = |t: i32| {
        pb::tensor_proto::DataType::try_from(t).ok().is_some_and(|d| DatumType::try_from(d).is_ok())
    };
    let why = "a data type tract cannot read; mdeploy converts f32 models";
    let values = graph.input.iter().chain(&graph.output).chain(&graph.value_info);
    for v in values {
        if let Some(t) = elem_type(v).filter(|&t| t != 0 && !readable(t)) {
            return Err(ImportError::new(format!("value {:?} of the graph is {}, {why}", v.name, type_name(t))));
        }
    }
    for t in &graph.initializer {
        if !readable(t.data_type) {
            return Err(ImportError::new(format!("weight {:?} is {}, {why}", t.name, type_name(t.data_type))));
        }
    }
    for n in &graph.node {
        let name = if n.name.is_empty() { n.output.first().map(String::as_str).unwrap_or("") } else { &n.name };
        for a in &n.attribute {
            // Cast's `to` and the tensors of Constant-like attributes.
            let bad = match (a.name.as_str(), &a.t) {
                ("to", _) if a.r#type == pb::attribute_proto::AttributeType::Int as i32 && !readable(a.i as i32) => {
                    Some(a.i as i32)
                }
                (_, Some(t)) if !readable(t.data_type) => Some(t.data_type),
                _ => None,
            };
            if let Some(t) = bad {
                return Err(ImportError::new(format!(
                    "ONNX node {name:?} ({}, opset {opset}): attribute {:?} is {}, {why}",
                    n.op_type,
                    a.name,
                    type_name(t)
                )));
            }
        }
    }
    Ok(())
}

/// The per-sample input shape (the batch axis removed): `--input-shape` when given, else the
/// model's declared shape, which must then be concrete apart from its batch axis.
fn input_shape(input: &pb::ValueInfoProto, opts: &ImportOptions) -> Result<Vec<usize>, ImportError> {
    let hint = "pass --input-shape with the batch first, e.g. --input-shape 1,1,28,28 (NCHW) or 1,784";
    if let Some(s) = &opts.input_shape {
        if s.len() < 2 || s.len() > 4 {
            return Err(ImportError::new(format!(
                "--input-shape {s:?} needs a batch axis and 1 to 3 sample axes, e.g. 1,1,28,28 or 1,784"
            )));
        }
        if s[1..].iter().any(|&d| d == 0 || d > mdeploy_model::graph::MAX_ACTIVATION_ELEMS) {
            return Err(ImportError::new(format!("--input-shape {s:?} has an empty or oversized axis")));
        }
        return Ok(s[1..].to_vec());
    }
    let dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => match &t.shape {
            Some(shape) => &shape.dim,
            None => return Err(ImportError::new(format!("input {:?} declares no shape; {hint}", input.name))),
        },
        #[allow(unreachable_patterns)]
        _ => return Err(ImportError::new(format!("input {:?} is not a tensor; mdeploy takes one f32 tensor", input.name))),
    };
    if dims.len() < 2 || dims.len() > 4 {
        return Err(ImportError::new(format!(
            "input {:?} has {} axes; mdeploy takes a batch axis plus 1 to 3 sample axes ([N, features] or [N, C, H, W]); {hint}",
            input.name,
            dims.len()
        )));
    }
    let mut out = Vec::new();
    for (i, d) in dims.iter().enumerate().skip(1) {
        match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                let v = usize::try_from(*v).ok().filter(|&v| v <= mdeploy_model::graph::MAX_ACTIVATION_ELEMS);
                out.push(v.ok_or_else(|| {
                    ImportError::new(format!("input {:?} axis {i} is too large; {hint}", input.name))
                })?)
            }
            _ => {
                return Err(ImportError::new(format!(
                    "input {:?} axis {i} has no fixed size in the model; {hint}",
                    input.name
                )))
            }
        }
    }
    Ok(out)
}
