//! `mdeploy export MODEL.mdm --onnx OUT.onnx`: the model as standard ONNX, to check it in other
//! runtimes (onnxruntime, tract, a browser runtime) or hand it to tools that speak ONNX.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::model_file;
use mdeploy_core::format;
use mdeploy_onnx::{ExportOptions, DEFAULT_OPSET, OPSETS};

#[derive(clap::Args, Debug)]
#[command(after_help = "What the ONNX file holds: one input \"input\" [N, ...the model's input shape] and one \
output \"output\" [N, ...], float32, with N free (any batch). Dense becomes Gemm, Conv2d Conv, BatchNorm \
BatchNormalization, the pools MaxPool / AveragePool / GlobalAveragePool, Flatten and Reshape the same, the \
activations Relu / Clip / LeakyRelu / Sigmoid / Tanh / HardSwish (HardSigmoid times x before opset 14) / \
Softmax, Dropout an Identity. Quantized weights stay integers: int8 or uint8 initializers and a \
DequantizeLinear (per axis for per-channel scales; 1- to 7-bit weights are widened to int8). Sparse weights \
are written dense. The .mdm metadata (name, version, labels, preprocessing, provenance) goes into the \
file's metadata_props as mdeploy.*, with the source file's sha256. See core/onnx/ONNX.md (\"Export\").

Examples:
  mdeploy export models/mnist-cnn.mdm --onnx mnist-cnn.onnx
  mdeploy export models/mnist-mlp.mdm --onnx mlp.onnx --opset 17 --json
  # then, in Python: onnxruntime.InferenceSession(\"mnist-cnn.onnx\").run(None, {\"input\": x})  # x: [N,1,28,28]")]
pub struct ExportArgs {
    /// The model file (.mdm) to export.
    pub model: String,
    /// Where to write the ONNX model.
    #[arg(long, value_name = "OUT.onnx")]
    pub onnx: PathBuf,
    /// The ONNX opset to declare (13 to 21). 13 runs in the most runtimes; 14 and later write
    /// HardSwish as one node.
    #[arg(long, default_value_t = DEFAULT_OPSET, value_name = "N")]
    pub opset: i64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ExportArgs) -> Result<(), String> {
    if !OPSETS.contains(&args.opset) {
        return Err(format!(
            "--opset {}: mdeploy writes opsets {} to {}; leave it out for {DEFAULT_OPSET}, the one most runtimes load",
            args.opset,
            OPSETS.start(),
            OPSETS.end()
        ));
    }
    let bytes = model_file::read_bytes(&args.model)?;
    let model = format::read(&bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let digest = format::digest_hex(&bytes).map_err(|e| e.to_string())?;
    let file_name = std::path::Path::new(&args.model)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opts = ExportOptions {
        opset: args.opset,
        metadata: vec![("mdeploy.source".into(), file_name), ("mdeploy.source_sha256".into(), digest.clone())],
    };
    let onnx = mdeploy_onnx::export(&model, &opts).map_err(|e| format!("{}: {e}", args.model))?;
    std::fs::write(&args.onnx, &onnx).map_err(|e| {
        format!("{}: cannot write: {e} (check that the folder exists and is writable)", args.onnx.display())
    })?;

    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &model.graph.nodes {
        *ops.entry(n.op.name()).or_default() += 1;
    }
    let out_shape = model.output_shape().map_err(|e| e.to_string())?;
    if args.json {
        let v = serde_json::json!({
            "source": args.model, "sha256": digest, "out": args.onnx.display().to_string(), "bytes": onnx.len(),
            "opset": args.opset, "name": model.meta.name, "input_shape": model.meta.input_shape,
            "output_shape": out_shape, "nodes": model.graph.nodes.len(), "ops": ops,
        });
        println!("{v}");
    } else {
        let list: Vec<String> = ops.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "exported {} ({} nodes: {}) as ONNX opset {}: input \"input\" [N, {}], output \"output\" [N, {}]",
            args.model,
            model.graph.nodes.len(),
            list.join(", "),
            args.opset,
            model.meta.input_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
            out_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
        );
        println!("wrote {} ({} bytes)", args.onnx.display(), onnx.len());
    }
    Ok(())
}
