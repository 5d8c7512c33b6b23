//! `mdeploy convert MODEL.onnx --out MODEL.mdm`: bring your own model (ONNX, through tract).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use mdeploy_core::model::Preprocessing;
use mdeploy_core::{format, Plan};
use mdeploy_onnx::{import_path, ImportOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PreprocessArg {
    /// Pictures go through the MNIST recipe (crop to the ink, fit 20x20, centre, ink = 1.0 on 0.0):
    /// for models trained on MNIST digits. Without --labels, a 10-output model gets labels 0..9.
    MnistDigit,
    /// The model takes its input as is (feature vectors, already prepared tensors).
    None,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "What converts: Conv (groups, dilation, pads), Gemm / MatMul with constant weights, \
BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid, Tanh, HardSwish, Softmax, MaxPool, AveragePool, \
GlobalAveragePool, Add / Sub / Mul (same shape or per channel), Concat (channels), Flatten / Reshape (the \
Shape-Gather-Concat-Reshape chains of Keras and PyTorch too), Transposes that end in a Dense (NHWC \
exporters), Dropout and Identity (removed). Anything else stops the conversion with the ONNX node, its op \
and what to do. See core/onnx/ONNX.md.

The batch axis stays free: --input-shape's first number is the batch as the exporter wrote it, and the \
converted model runs any batch size.

Examples:
  # the seed's Keras MLP, exported with model.export(\"mlp.onnx\", format=\"onnx\")
  mdeploy convert mlp.onnx --out mlp.mdm --preprocess mnist-digit
  # a PyTorch model exported with a dynamic batch (the input shape is then needed)
  mdeploy convert lenet.onnx --out lenet.mdm --input-shape 1,1,28,28 --name lenet5
  # scikit-learn through skl2onnx: two outputs, keep the probabilities
  mdeploy convert mlp.onnx --out sk.mdm --output probabilities --labels labels.txt
  mdeploy info mlp.mdm && mdeploy eval mlp.mdm")]
pub struct ConvertArgs {
    /// The ONNX file. Weights in ONNX external data files (model.onnx.data) are read from its folder.
    pub model: PathBuf,
    /// Where to write the .mdm model.
    #[arg(long)]
    pub out: PathBuf,
    /// Input shape with the batch first, comma-separated (e.g. 1,1,28,28 or 1,784). Default: the
    /// shape declared in the ONNX file, which must then be fixed apart from its batch axis.
    #[arg(long, value_name = "N,C,H,W")]
    pub input_shape: Option<String>,
    /// The model's name in the .mdm metadata. Default: the ONNX file's name without extension.
    #[arg(long)]
    pub name: Option<String>,
    /// A text file with one class label per line, in output order (as many lines as outputs).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// How hosts prepare a picture for this model.
    #[arg(long, value_enum, default_value_t = PreprocessArg::None)]
    pub preprocess: PreprocessArg,
    /// Which graph output to serve, when the ONNX model has several. Default: the only output,
    /// else the only floating-point one.
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
    /// Folder with the mnist package's 0.json..9.json: its training split becomes the model's
    /// input-drift reference (`monitor.reference`, for `mdeploy serve`). Needs a 784-value input.
    /// Without it no reference is stored (`mdeploy monitor-ref` adds one later; `mdeploy serve`
    /// falls back to its own for 784-value models).
    #[arg(long, value_name = "DIR")]
    pub reference_data: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|d| {
            d.trim().parse::<usize>().map_err(|_| {
                format!("--input-shape {s:?}: {d:?} is not a whole number; write it like 1,1,28,28 (batch first)")
            })
        })
        .collect()
}

fn read_labels(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--labels {}: cannot read: {e} (a UTF-8 text file, one label per line)", path.display()))?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    if labels.is_empty() {
        return Err(format!("--labels {}: the file holds no labels (write one per line)", path.display()));
    }
    Ok(labels)
}

pub fn run(args: &ConvertArgs) -> Result<(), String> {
    let input_shape = args.input_shape.as_deref().map(parse_shape).transpose()?;
    let opts = ImportOptions { input_shape, output: args.output.clone() };
    let imported = import_path(&args.model, &opts).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let file_name = args.model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
    };
    let (opset, producer) = (imported.opset, imported.producer.clone());
    let mut model = imported.into_model(&name, &file_name).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let outputs = model.output_len();
    if let PreprocessArg::MnistDigit = args.preprocess {
        model.meta.preprocessing = Preprocessing { recipe: "mnist-digit".into(), range: [0.0, 1.0], ink_high: true };
        if model.input_len() != 784 {
            return Err(format!(
                "--preprocess mnist-digit makes 784 values (28x28) but the model takes {} (input shape {:?}); use \
                 --preprocess none, or --input-shape for a 28x28 input",
                model.input_len(),
                model.meta.input_shape
            ));
        }
        if args.labels.is_none() && outputs == 10 {
            model.meta.labels = (0..10).map(|d| d.to_string()).collect();
        }
    }
    if let Some(path) = &args.labels {
        let labels = read_labels(path)?;
        if labels.len() != outputs {
            return Err(format!(
                "--labels {}: {} labels for a model with {outputs} outputs; write one label per output, in order",
                path.display(),
                labels.len()
            ));
        }
        model.meta.labels = labels;
    }
    // Plan it once: a model that converts but could not run (over the memory budget) fails here,
    // not later on a device.
    Plan::new(&model, 1).map_err(|e| format!("the converted model does not run in mdeploy: {e}"))?;
    let reference = match &args.reference_data {
        Some(dir) => {
            let split = crate::data::load_split(&crate::data::mnist_dir(Some(dir))?)?;
            if split.train.sample_len() != model.input_len() {
                return Err(format!(
                    "--reference-data {}: its digits have {} values but the model takes {} (input shape {:?}); a \
                     reference is made of the model's own inputs, so leave --reference-data out for this model",
                    dir.display(),
                    split.train.sample_len(),
                    model.input_len(),
                    model.meta.input_shape
                ));
            }
            crate::monitor_ref::record(&mut model, None, Some(&split.train))?
        }
        None => "none (no --reference-data; `mdeploy monitor-ref` can add one)",
    };
    let bytes = format::write(&model).map_err(|e| format!("cannot encode the model: {e}"))?;
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;

    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &model.graph.nodes {
        *ops.entry(n.op.name()).or_default() += 1;
    }
    if args.json {
        let v = serde_json::json!({
            "source": args.model.display().to_string(), "out": args.out.display().to_string(),
            "bytes": bytes.len(), "name": model.meta.name, "producer": producer, "opset": opset,
            "input_shape": model.meta.input_shape, "outputs": outputs, "params": model.param_count(),
            "nodes": model.graph.nodes.len(), "ops": ops, "drift_reference": reference,
        });
        println!("{v}");
    } else {
        let list: Vec<String> = ops.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "converted {} ({}, opset {opset}): input {:?}, {outputs} outputs, {} nodes ({}), {} parameters",
            args.model.display(),
            if producer.is_empty() { "unknown producer" } else { &producer },
            model.meta.input_shape,
            model.graph.nodes.len(),
            list.join(", "),
            model.param_count()
        );
        println!("wrote {} ({} bytes); input-drift reference: {reference}", args.out.display(), bytes.len());
    }
    Ok(())
}
