//! mdeploy `Model` → ONNX `ModelProto` (`mdeploy export --onnx`), so a model can be checked in
//! other runtimes.
//!
//! ```text
//!  Model ─validate (shapes of every value)─► one or more standard ONNX nodes per mdeploy node
//!    value 0 ──► graph input  "input"  [N, ...input_shape]   (N symbolic)
//!    node i  ──► its ONNX node(s), output named after the node
//!    output  ──► graph output "output" [N, ...output_shape]
//!  tensors: F32 ─► float initializer; sparse ─► densified float initializer;
//!           Quantized ─► int8/uint8 initializer + scale + zero point ─DequantizeLinear─► float
//!  ─prost::Message::encode─► .onnx bytes (opset 13 by default, IR version of that opset)
//! ```
//!
//! The ONNX types are the prost types tract-onnx ships (`tract_onnx::pb`), so no second copy of
//! `onnx.proto` lives in the workspace. Every mapping is exact in ONNX's semantics; the one
//! rewrite is HardSwish before opset 14 (which has no `HardSwish`): `x · HardSigmoid(x)` with
//! `alpha = 1/6, beta = 1/2`, the same function, rounded differently. The op table is in
//! `ONNX.md` ("Export").

use std::collections::HashSet;

use mdeploy_model::model::{Quant, QuantType, TensorData};
use mdeploy_model::{Model, Op, Tensor};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

/// The opset `mdeploy export` writes unless asked otherwise.
pub const DEFAULT_OPSET: i64 = 13;
/// Opsets the exporter can write (13: per-axis `DequantizeLinear`, `Softmax` over one axis;
/// 21: the newest the tests run through onnxruntime 1.32).
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// Protobuf messages cannot exceed 2 GiB; ONNX's own checker refuses larger files too.
const MAX_PROTO_BYTES: usize = (2 << 30) - (1 << 20);

/// What `export` needs besides the model.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The default-domain opset to declare, within [`OPSETS`].
    pub opset: i64,
    /// Extra `metadata_props` entries (e.g. the source file and its digest), after mdeploy's own.
    pub metadata: Vec<(String, String)>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { opset: DEFAULT_OPSET, metadata: Vec::new() }
    }
}

/// Why a model could not be exported: the message names the node and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportError {
    pub message: String,
}

impl ExportError {
    fn new(message: impl Into<String>) -> ExportError {
        ExportError { message: message.into() }
    }
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExportError {}

/// The IR version that goes with `opset` (onnx's `VERSIONS_TABLE`): the oldest one a runtime
/// must understand, so older runtimes (onnxruntime-web) still load the file.
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

/// Exports `model` as ONNX bytes.
pub fn export(model: &Model, opts: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    let proto = export_proto(model, opts)?;
    let len = proto.encoded_len();
    if len > MAX_PROTO_BYTES {
        return Err(ExportError::new(format!(
            "the ONNX file would take {len} bytes, over protobuf's 2 GiB limit; ONNX keeps such weights in \
             external data files, which mdeploy does not write"
        )));
    }
    Ok(proto.encode_to_vec())
}

/// Exports `model` as an ONNX `ModelProto` (the prost type tract-onnx uses).
pub fn export_proto(model: &Model, opts: &ExportOptions) -> Result<pb::ModelProto, ExportError> {
    if !OPSETS.contains(&opts.opset) {
        return Err(ExportError::new(format!(
            "opset {} is not one mdeploy writes: choose {} to {} (default {DEFAULT_OPSET})",
            opts.opset,
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    model.validate().map_err(|e| ExportError::new(format!("the model does not validate, so it cannot be exported: {e}")))?;
    let shapes = model.shapes().map_err(|e| ExportError::new(e.to_string()))?;
    let graph = &model.graph;

    let mut b = Builder { opset: opts.opset, used: HashSet::new(), nodes: Vec::new(), inits: Vec::new(), bytes: 0 };
    b.used.insert("input".to_string());
    b.used.insert("output".to_string());
    // Value names: 0 is the graph input, the graph's output value is "output", every other value
    // is named after the node that makes it (unique, so a file with repeated layer names works).
    let mut values: Vec<String> = vec!["input".to_string()];
    let mut node_names = Vec::with_capacity(graph.nodes.len());
    for (i, n) in graph.nodes.iter().enumerate() {
        let want = if n.name.is_empty() { format!("{}_{i}", n.op.name().to_lowercase()) } else { n.name.clone() };
        let name = b.unique(&want);
        values.push(if i + 1 == graph.output as usize { "output".to_string() } else { name.clone() });
        node_names.push(name);
    }

    for (i, node) in graph.nodes.iter().enumerate() {
        let name = &node_names[i];
        let at = || graph.describe_node(i);
        let ins: Vec<String> = node.inputs.iter().map(|&v| values[v as usize].clone()).collect();
        let out = values[i + 1].clone();
        let tensor = |b: &mut Builder, what: &str, t: &Tensor| {
            b.weight(&format!("{name}.{what}"), t).map_err(|e| ExportError::new(format!("{} {what}: {e}", at())))
        };
        match &node.op {
            Op::Dense { weight, bias } => {
                let w = tensor(&mut b, "weight", weight)?;
                let bias = tensor(&mut b, "bias", bias)?;
                // Gemm computes x · W + b for a [N, in] input and W [in, out]: our layout as is.
                b.node("Gemm", name, vec![ins[0].clone(), w, bias], out, vec![]);
            }
            Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
                let w = tensor(&mut b, "weight", weight)?;
                let bias = tensor(&mut b, "bias", bias)?;
                let attrs = vec![
                    ints("kernel_shape", &weight.shape[2..]),
                    ints("strides", stride),
                    // ONNX pads are [x1_begin, x2_begin, x1_end, x2_end] = [top, left, bottom, right].
                    ints("pads", padding),
                    ints("dilations", dilation),
                    int("group", *groups as i64),
                ];
                b.node("Conv", name, vec![ins[0].clone(), w, bias], out, attrs);
            }
            Op::BatchNorm { gamma, beta, mean, var, eps } => {
                let inputs = vec![
                    ins[0].clone(),
                    tensor(&mut b, "gamma", gamma)?,
                    tensor(&mut b, "beta", beta)?,
                    tensor(&mut b, "mean", mean)?,
                    tensor(&mut b, "var", var)?,
                ];
                b.node("BatchNormalization", name, inputs, out, vec![float("epsilon", *eps)]);
            }
            Op::Add | Op::Mul => {
                let (sa, sb) = (&shapes[node.inputs[0] as usize], &shapes[node.inputs[1] as usize]);
                // [C] against [C, H, W]: ONNX broadcasts from the right, so [N, C] would meet W;
                // reshape it to [N, C, 1, 1] first. [C, 1, 1] and equal shapes broadcast as they are.
                let mut inputs = ins.clone();
                for (k, (s, other)) in [(sa, sb), (sb, sa)].into_iter().enumerate() {
                    if s.len() == 1 && other.len() == 3 {
                        let shape = b.i64_init(&format!("{name}.channels_shape"), &[0, s[0] as i64, 1, 1]);
                        let r = b.unique(&format!("{name}.channels"));
                        b.node("Reshape", &r.clone(), vec![inputs[k].clone(), shape], r.clone(), vec![]);
                        inputs[k] = r;
                    }
                }
                b.node(if matches!(node.op, Op::Add) { "Add" } else { "Mul" }, name, inputs, out, vec![]);
            }
            Op::Concat => b.node("Concat", name, ins, out, vec![int("axis", 1)]),
            Op::MaxPool2d { kernel, stride, padding, ceil_mode } => {
                let attrs = vec![
                    ints("kernel_shape", kernel),
                    ints("strides", stride),
                    ints("pads", padding),
                    int("ceil_mode", i64::from(*ceil_mode)),
                ];
                b.node("MaxPool", name, ins, out, attrs);
            }
            Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad } => {
                let attrs = vec![
                    ints("kernel_shape", kernel),
                    ints("strides", stride),
                    ints("pads", padding),
                    int("ceil_mode", i64::from(*ceil_mode)),
                    int("count_include_pad", i64::from(*count_include_pad)),
                ];
                b.node("AveragePool", name, ins, out, attrs);
            }
            Op::GlobalAvgPool => b.node("GlobalAveragePool", name, ins, out, vec![]),
            Op::Flatten => b.node("Flatten", name, ins, out, vec![int("axis", 1)]),
            Op::Reshape { shape } => {
                // 0 copies the input's dimension: the batch axis stays whatever it is.
                let dims: Vec<i64> = std::iter::once(0).chain(shape.iter().map(|&d| d as i64)).collect();
                let s = b.i64_init(&format!("{name}.shape"), &dims);
                b.node("Reshape", name, vec![ins[0].clone(), s], out, vec![]);
            }
            Op::Relu => b.node("Relu", name, ins, out, vec![]),
            Op::Clip { min, max } => {
                let lo = b.f32_init(&format!("{name}.min"), &[], &[*min]);
                let hi = b.f32_init(&format!("{name}.max"), &[], &[*max]);
                b.node("Clip", name, vec![ins[0].clone(), lo, hi], out, vec![]);
            }
            Op::LeakyRelu { alpha } => b.node("LeakyRelu", name, ins, out, vec![float("alpha", *alpha)]),
            Op::Sigmoid => b.node("Sigmoid", name, ins, out, vec![]),
            Op::Tanh => b.node("Tanh", name, ins, out, vec![]),
            Op::HardSwish if b.opset >= 14 => b.node("HardSwish", name, ins, out, vec![]),
            Op::HardSwish => {
                // Opset 13 has no HardSwish: x · relu6(x + 3) / 6 = x · clip(x / 6 + 1 / 2, 0, 1).
                let gate = b.unique(&format!("{name}.gate"));
                let attrs = vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)];
                b.node("HardSigmoid", &gate.clone(), ins.clone(), gate.clone(), attrs);
                b.node("Mul", name, vec![ins[0].clone(), gate], out, vec![]);
            }
            // The input is [N, features] (the graph requires a flat input): one axis, ONNX 13+.
            Op::Softmax => b.node("Softmax", name, ins, out, vec![int("axis", 1)]),
            // Dropout is the identity at inference; an explicit Identity keeps the value's name.
            Op::Dropout { .. } | Op::Identity => b.node("Identity", name, ins, out, vec![]),
            // A QDQ pair (what onnxruntime's quantize_static writes): uint8, per tensor.
            // ONNX Sign maps 0 to 0, ours to +1; a Where(x >= 0, 1, -1) export is not written yet.
            Op::Sign => {
                return Err(ExportError::new(format!(
                    "{}: Sign (binary activations, `mdeploy quantize --bits 1`) has no ONNX export yet; \
                     export the f32 model instead",
                    at()
                )))
            }
            Op::Quantize { scale, zero_point } => {
                let sname = b.f32_init(&format!("{name}.scale"), &[], &[*scale]);
                let zname = b.init(&format!("{name}.zero_point"), &[], DataType::Uint8, vec![*zero_point as u8]);
                let q = b.unique(&format!("{name}.quantized"));
                b.node("QuantizeLinear", &q.clone(), vec![ins[0].clone(), sname.clone(), zname.clone()], q.clone(), vec![]);
                b.node("DequantizeLinear", name, vec![q, sname, zname], out, vec![]);
            }
        }
    }
    if graph.output == 0 {
        b.node("Identity", "output", vec!["input".to_string()], "output".to_string(), vec![]);
    }

    let output_shape = &shapes[graph.output as usize];
    let pb_graph = pb::GraphProto {
        node: b.nodes,
        name: if model.meta.name.is_empty() { "mdeploy".to_string() } else { model.meta.name.clone() },
        initializer: b.inits,
        input: vec![value_info("input", &model.meta.input_shape)],
        output: vec![value_info("output", output_shape)],
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: ir_version(opts.opset),
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opts.opset }],
        producer_name: "mdeploy".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        model_version: model.meta.version.trim().parse().unwrap_or(0),
        doc_string: format!(
            "{} exported by mdeploy {}: input [N, {}] float, output [N, {}] float",
            model.meta.name,
            env!("CARGO_PKG_VERSION"),
            join(&model.meta.input_shape),
            join(output_shape)
        ),
        graph: Some(pb_graph),
        metadata_props: metadata(model, &opts.metadata),
        ..Default::default()
    })
}

/// The `.mdm` metadata as `metadata_props`: plain strings where they are one, JSON otherwise.
fn metadata(model: &Model, extra: &[(String, String)]) -> Vec<pb::StringStringEntryProto> {
    let m = &model.meta;
    let p = &m.provenance;
    let extras: serde_json::Map<String, serde_json::Value> =
        p.extra.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let mut props = vec![
        ("mdeploy.name".to_string(), m.name.clone()),
        ("mdeploy.version".to_string(), m.version.clone()),
        ("mdeploy.input_shape".to_string(), serde_json::json!(m.input_shape).to_string()),
        ("mdeploy.labels".to_string(), serde_json::json!(m.labels).to_string()),
        (
            "mdeploy.preprocessing".to_string(),
            serde_json::json!({
                "recipe": m.preprocessing.recipe,
                "range": m.preprocessing.range,
                "ink_high": m.preprocessing.ink_high,
            })
            .to_string(),
        ),
        (
            "mdeploy.provenance".to_string(),
            serde_json::json!({
                "data": p.data, "split": p.split, "arch": p.arch, "epochs": p.epochs, "seed": p.seed,
                "test_accuracy": p.test_accuracy, "extra": extras,
            })
            .to_string(),
        ),
    ];
    props.extend(extra.iter().cloned());
    props.into_iter().map(|(key, value)| pb::StringStringEntryProto { key, value }).collect()
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// A float tensor value `[N, ...dims]` with a symbolic batch axis.
fn value_info(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let batch = Dimension { value: Some(Value::DimParam("N".to_string())), ..Default::default() };
    let dim = std::iter::once(batch)
        .chain(dims.iter().map(|&d| Dimension { value: Some(Value::DimValue(d as i64)), ..Default::default() }))
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.to_string(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

fn ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.to_string(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

struct Builder {
    opset: i64,
    /// Every name given so far (nodes, values, initializers share it: one namespace is simpler
    /// than ONNX's rules and never produces a clash).
    used: HashSet<String>,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    /// Initializer payload bytes so far, to refuse a file over protobuf's limit before building it.
    bytes: usize,
}

impl Builder {
    fn unique(&mut self, want: &str) -> String {
        let mut name = want.to_string();
        let mut k = 2;
        while !self.used.insert(name.clone()) {
            name = format!("{want}_{k}");
            k += 1;
        }
        name
    }

    fn node(&mut self, op: &str, name: &str, inputs: Vec<String>, output: String, attribute: Vec<pb::AttributeProto>) {
        self.nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![output],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
    }

    /// Counts `n` more payload bytes; refuses a file over protobuf's limit before building it.
    fn charge(&mut self, n: usize) -> Result<(), String> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_PROTO_BYTES {
            return Err("the weights exceed protobuf's 2 GiB limit for one ONNX file".to_string());
        }
        Ok(())
    }

    fn init(&mut self, name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> String {
        let name = self.unique(name);
        self.inits.push(pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            name: name.clone(),
            // raw_data is little-endian by the ONNX spec, whatever the host.
            raw_data: raw,
            ..Default::default()
        });
        name
    }

    fn f32_init(&mut self, name: &str, dims: &[usize], v: &[f32]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(name, dims, DataType::Float, raw)
    }

    fn i64_init(&mut self, name: &str, v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(name, &[v.len()], DataType::Int64, raw)
    }

    /// A float value holding tensor `t`: an initializer, or for a quantized tensor the output of
    /// a `DequantizeLinear` over its integers (per axis when the tensor is per channel).
    fn weight(&mut self, name: &str, t: &Tensor) -> Result<String, String> {
        let TensorData::Quantized { qtype, quant, .. } = &t.data else {
            // F32 as is; CSR and bitmask densified (ONNX sparse initializers are rarely supported).
            let v = t.to_f32_dense().map_err(|e| e.message)?;
            self.charge(v.len() * 4)?;
            return Ok(self.f32_init(name, &t.shape, &v));
        };
        let q = t.quantized_values().map_err(|e| e.message)?.unwrap_or_default();
        // n-bit values (at most 7 bits, and binary ±1) fit int8 whatever their sign; U8 stays uint8
        // so values above 127 keep their meaning.
        let (dtype, to_byte): (DataType, fn(i32) -> u8) = match qtype {
            QuantType::U8 => (DataType::Uint8, |v| v as u8),
            QuantType::I8 | QuantType::Packed { .. } => (DataType::Int8, |v| v as i8 as u8),
        };
        self.charge(q.len())?;
        let raw: Vec<u8> = q.iter().map(|&v| to_byte(v)).collect();
        let qname = self.init(&format!("{name}_quantized"), &t.shape, dtype, raw);
        let (scales, zps, axis, dims): (Vec<f32>, Vec<i32>, Option<usize>, Vec<usize>) = match quant {
            Quant::PerTensor { scale, zero_point } => (vec![*scale], vec![*zero_point], None, vec![]),
            Quant::PerChannel { axis, scales, zero_points } => {
                (scales.clone(), zero_points.clone(), Some(*axis), vec![scales.len()])
            }
        };
        self.charge(scales.len() * 5)?;
        let sname = self.f32_init(&format!("{name}_scale"), &dims, &scales);
        let zraw = zps.iter().map(|&z| to_byte(z)).collect();
        let zname = self.init(&format!("{name}_zero_point"), &dims, dtype, zraw);
        let out = self.unique(name);
        let dq = self.unique(&format!("{out}_dequantize"));
        let attrs = axis.map(|a| vec![int("axis", a as i64)]).unwrap_or_default();
        self.node("DequantizeLinear", &dq, vec![qname, sname, zname], out.clone(), attrs);
        Ok(out)
    }
}
