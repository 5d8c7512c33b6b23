//! `mdeploy info MODEL`: what is in a model file, without running it.

use crate::model_file;
use mdeploy_core::model::{Model, Provenance, Quant, QuantType, TensorData};
use mdeploy_core::{format, Node, Op};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  mdeploy info models/mnist-mlp.mdm\n  mdeploy info models/mnist-cnn.mdm --json")]
pub struct InfoArgs {
    /// The model file (.mdm) to describe.
    pub model: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> Result<(), String> {
    let bytes = model_file::read_bytes(&args.model)?;
    if let Ok(Some((meta, file, key_id))) = format::peek_encrypted(&bytes) {
        return encrypted(args, &bytes, &meta, &file, &key_id.to_string());
    }
    let (model, file) = format::read_with_info(&bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let shapes = model.shapes().map_err(|e| e.to_string())?;
    // Non-zeros and storage of every Dense/Conv2d weight (pruned models are stored sparse).
    let sparsity = mdeploy_core::train::prune::layer_sparsity(&model).map_err(|e| format!("{}: {e}", args.model))?;
    let sparsity_of = |i: usize| sparsity.iter().find(|l| l.node == i);
    let digest = format::digest_hex(&bytes).map_err(|e| e.to_string())?;
    let m = &model.meta;
    let p = &m.provenance;
    let nodes: Vec<serde_json::Value> = model
        .graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let params: usize = n.op.tensors().iter().map(|t| t.numel()).sum();
            let mut v = serde_json::json!({
                "op": n.op.name(), "name": n.name, "inputs": n.inputs, "output_shape": shapes[i + 1],
                "params": params, "detail": detail(&n.op),
            });
            if let Some(l) = sparsity_of(i) {
                v["weight_nonzeros"] = l.nonzeros.into();
                v["weight_total"] = l.total.into();
                v["weight_encoding"] = l.encoding.into();
            }
            v
        })
        .collect();
    if args.json {
        let v = serde_json::json!({
            "file": args.model,
            "bytes": bytes.len(),
            "sha256": digest,
            "format_version": file.version,
            // null for an unsigned file; `verified` is false here: info has no trusted keys
            // (`mdeploy verify MODEL --pub KEY` checks the signature).
            "signature": file.signature.as_ref().map(|s| serde_json::json!({
                "algorithm": s.algorithm, "key_id": s.key_id, "verified": s.verified,
            })),
            "name": m.name,
            "version": m.version,
            "input_shape": m.input_shape,
            "labels": m.labels,
            "preprocessing": { "recipe": m.preprocessing.recipe, "range": m.preprocessing.range, "ink_high": m.preprocessing.ink_high },
            "provenance": {
                "data": p.data, "split": p.split, "arch": p.arch, "epochs": p.epochs, "seed": p.seed,
                "test_accuracy": p.test_accuracy,
                "extra": p.extra.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
            },
            "source": source(p),
            "weights": weight_storage(&model).json(),
            "params": model.param_count(),
            "macs_per_sample": model.macs(),
            "output": model.graph.output,
            "nodes": nodes,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{} {} ({} bytes, format {}.{}, sha256 {})", m.name, m.version, bytes.len(), file.version.0, file.version.1, digest);
    println!("  input     {:?}, preprocessing {:?} range {:?}", m.input_shape, m.preprocessing.recipe, m.preprocessing.range);
    println!("  labels    {}", m.labels.join(" "));
    match &file.signature {
        Some(s) => println!(
            "  signed    {} key id {} (not checked here: `mdeploy verify {} --pub KEY.pub` checks it)",
            s.algorithm, s.key_id, args.model
        ),
        None => println!("  signed    no (`mdeploy sign` signs it)"),
    }
    match source(p) {
        // A converted model was not trained here: no data, split or epochs to speak of.
        Some(s) => println!("  origin    {s}"),
        None => {
            println!("  arch      {}", p.arch);
            println!("  data      {}", p.data);
            println!("  split     {}", p.split);
            println!("  trained   {} epochs, seed {}", p.epochs, p.seed);
        }
    }
    match p.test_accuracy {
        Some(a) => println!("  accuracy  {:.2} % on the test split", a * 100.0),
        None => println!("  accuracy  not recorded"),
    }
    for (k, v) in &p.extra {
        println!("  {k:<9} {v}");
    }
    println!("  {} parameters, {} multiply-adds per sample", model.param_count(), model.macs());
    if let Some(line) = weight_storage(&model).line() {
        println!("  weights   {line}");
    }
    let chain = model.graph.as_sequential().is_some();
    for (i, n) in model.graph.nodes.iter().enumerate() {
        // A chain reads like a layer list; a DAG also says which values each node reads.
        let from = if chain { String::new() } else { inputs(n) };
        // Weights with zeros or sparse storage say how sparse and how stored.
        let sparse = sparsity_of(i)
            .filter(|l| l.nonzeros < l.total || l.encoding != "dense")
            .map(|l| format!(", {} / {} non-zero ({:.1} % sparse, {})", l.nonzeros, l.total, 100.0 * l.sparsity(), l.encoding))
            .unwrap_or_default();
        println!("  {i:>2} {:<13}{from} -> {:<14} {}{sparse}", n.op.name(), format!("{:?}", shapes[i + 1]), detail(&n.op));
    }
    Ok(())
}

/// An encrypted model: what its clear metadata says, and which key it needs.
fn encrypted(args: &InfoArgs, bytes: &[u8], m: &mdeploy_core::Metadata, file: &format::FileInfo, key_id: &str) -> Result<(), String> {
    let sig = file.signature.as_ref().map(|s| serde_json::json!({ "algorithm": s.algorithm, "key_id": s.key_id, "verified": s.verified }));
    if args.json {
        let v = serde_json::json!({
            "file": args.model, "bytes": bytes.len(), "sha256": file.digest_hex, "format_version": file.version,
            "encrypted": { "algorithm": "chacha20-poly1305", "key_id": key_id },
            "signature": sig,
            "name": m.name, "version": m.version, "input_shape": m.input_shape, "labels": m.labels,
            "provenance": { "data": m.provenance.data, "arch": m.provenance.arch, "test_accuracy": m.provenance.test_accuracy },
        });
        println!("{v}");
        return Ok(());
    }
    println!("{} {} ({} bytes, format {}.{}, sha256 {})", m.name, m.version, bytes.len(), file.version.0, file.version.1, file.digest_hex);
    println!("  encrypted chacha20-poly1305 for key id {key_id}: layers and weights are not readable without it");
    println!("            (`mdeploy decrypt {} --key KEY.enckey --out plain.mdm`)", args.model);
    match &file.signature {
        Some(s) => println!("  signed    {} key id {} (not checked here: `mdeploy verify`)", s.algorithm, s.key_id),
        None => println!("  signed    no"),
    }
    println!("  input     {:?}", m.input_shape);
    println!("  labels    {}", m.labels.join(" "));
    println!("  arch      {}", m.provenance.arch);
    if let Some(a) = m.provenance.test_accuracy {
        println!("  accuracy  {:.2} % on the test split", a * 100.0);
    }
    Ok(())
}

/// ` (v3, v5)`: the values a node reads (value 0 is the input, value i + 1 node i's output).
fn inputs(n: &Node) -> String {
    let v: Vec<String> = n.inputs.iter().map(|v| format!("v{v}")).collect();
    format!("({})", v.join(", "))
}

fn detail(op: &Op) -> String {
    match op {
        Op::Dense { weight, .. } => format!("weight {:?}", weight.shape),
        Op::Conv2d { weight, stride, padding, dilation, groups, .. } => {
            let mut s = format!("weight {:?} stride {stride:?} padding {padding:?}", weight.shape);
            if *dilation != [1, 1] {
                s += &format!(" dilation {dilation:?}");
            }
            if *groups != 1 {
                s += &format!(" groups {groups}");
            }
            s
        }
        Op::MaxPool2d { kernel, stride, padding, ceil_mode } | Op::AvgPool2d { kernel, stride, padding, ceil_mode, .. } => {
            let mut s = format!("kernel {kernel:?} stride {stride:?}");
            if *padding != [0; 4] {
                s += &format!(" padding {padding:?}");
            }
            if *ceil_mode {
                s += " ceil";
            }
            s
        }
        Op::BatchNorm { gamma, eps, .. } => format!("{} channels eps {eps}", gamma.numel()),
        Op::Reshape { shape } => format!("to {shape:?}"),
        Op::Clip { min, max } => format!("[{min}, {max}]"),
        Op::LeakyRelu { alpha } => format!("alpha {alpha}"),
        Op::Dropout { rate } => format!("rate {rate} (training only)"),
        _ => String::new(),
    }
}

/// `converted from ONNX (producer tf2onnx 1.17.0, opset 15)` for a model `mdeploy convert` made
/// (its provenance holds `onnx.opset`); `None` for a model trained by mdeploy.
fn source(p: &Provenance) -> Option<String> {
    let extra = |k: &str| p.extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let opset = extra("onnx.opset")?;
    // Files converted before `onnx.producer` was recorded keep it in `arch`: "onnx (producer)".
    let producer = extra("onnx.producer")
        .map(str::to_string)
        .or_else(|| p.arch.strip_prefix("onnx (").and_then(|a| a.strip_suffix(')')).map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown producer".to_string());
    Some(format!("converted from ONNX (producer {producer}, opset {opset})"))
}

/// How a model's tensors are stored: f32, or integers with their scales (and how many).
#[derive(Default)]
struct Storage {
    f32: usize,
    int8: usize,
    uint8: usize,
    packed: usize,
    per_channel: usize,
    per_tensor: usize,
    sparse: usize,
    /// Steps of the lowered program on the int8 kernels (QDense, QConv2d).
    int_steps: usize,
}

fn weight_storage(model: &Model) -> Storage {
    let mut s = Storage::default();
    // What the lowering (every backend's) makes of it: int8 weights run on the integer kernels
    // only where the model says which grid their input is on (core/runtime/QUANT.md).
    if let Ok(p) = mdeploy_core::lower::lower(&model.graph, &model.meta.input_shape) {
        use mdeploy_core::lower::Kernel;
        s.int_steps = p.steps.iter().filter(|st| matches!(st.kernel, Kernel::QDense { .. } | Kernel::QConv2d { .. })).count();
    }
    for t in model.graph.nodes.iter().flat_map(|n| n.op.tensors()) {
        match &t.data {
            TensorData::F32(_) => s.f32 += 1,
            TensorData::Quantized { qtype, quant, .. } => {
                match qtype {
                    QuantType::I8 => s.int8 += 1,
                    QuantType::U8 => s.uint8 += 1,
                    QuantType::Packed { .. } => s.packed += 1,
                }
                match quant {
                    Quant::PerChannel { .. } => s.per_channel += 1,
                    Quant::PerTensor { .. } => s.per_tensor += 1,
                }
            }
            TensorData::SparseCsr { .. } | TensorData::SparseBitmask { .. } => s.sparse += 1,
        }
    }
    s
}

/// Int8 weights without Quantize nodes on their inputs (e.g. a converted ONNX model) are
/// expanded to f32 once, when the model is planned (mdeploy_runtime::lower::dense_f32).
const RUNS_DEQUANTIZED: &str = "runs dequantized to f32 (no activation grids: `mdeploy quantize` makes an int8 model)";

impl Storage {
    fn quantized(&self) -> usize {
        self.int8 + self.uint8 + self.packed
    }

    /// `3 int8 tensors (per-channel 3), 4 f32; runs dequantized to f32: no integer kernels yet`;
    /// `None` when every tensor is plain f32.
    fn line(&self) -> Option<String> {
        if self.quantized() == 0 && self.sparse == 0 {
            return None;
        }
        let mut parts = Vec::new();
        for (n, what) in [(self.int8, "int8"), (self.uint8, "uint8"), (self.packed, "packed n-bit")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mut line = String::new();
        if self.quantized() > 0 {
            line = format!(
                "{} quantized tensor{} ({}; {} per-channel, {} per-tensor)",
                self.quantized(),
                if self.quantized() == 1 { "" } else { "s" },
                parts.join(", "),
                self.per_channel,
                self.per_tensor
            );
        }
        if self.sparse > 0 {
            line += &format!("{}{} sparse", if line.is_empty() { "" } else { ", " }, self.sparse);
        }
        let runs = if self.int_steps > 0 {
            self.runs_int8()
        } else if self.quantized() > 0 {
            RUNS_DEQUANTIZED.to_string()
        } else {
            "runs expanded to dense f32".to_string()
        };
        Some(format!("{line}, {} f32; {runs}", self.f32))
    }

    fn runs_int8(&self) -> String {
        format!("{} Dense/Conv2d run on the int8 kernels", self.int_steps)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "f32": self.f32, "int8": self.int8, "uint8": self.uint8, "packed": self.packed, "sparse": self.sparse,
            "per_channel": self.per_channel, "per_tensor": self.per_tensor,
            "runs": if self.int_steps > 0 { self.runs_int8() } else if self.quantized() > 0 { RUNS_DEQUANTIZED.to_string() } else if self.sparse > 0 { "expanded to dense f32".to_string() } else { "f32".to_string() },
            "int8_steps": self.int_steps,
        })
    }
}
