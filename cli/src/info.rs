//! `mdeploy info MODEL`: what is in a model file, without running it.

use crate::model_file;
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
    let (model, file) = format::read_with_info(&bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let shapes = model.shapes().map_err(|e| e.to_string())?;
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
            serde_json::json!({
                "op": n.op.name(), "name": n.name, "inputs": n.inputs, "output_shape": shapes[i + 1],
                "params": params, "detail": detail(&n.op),
            })
        })
        .collect();
    if args.json {
        let v = serde_json::json!({
            "file": args.model,
            "bytes": bytes.len(),
            "sha256": digest,
            "format_version": file.version,
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
    println!("  arch      {}", p.arch);
    println!("  data      {}", p.data);
    println!("  split     {}", p.split);
    println!("  trained   {} epochs, seed {}", p.epochs, p.seed);
    match p.test_accuracy {
        Some(a) => println!("  accuracy  {:.2} % on the test split", a * 100.0),
        None => println!("  accuracy  not recorded"),
    }
    for (k, v) in &p.extra {
        println!("  {k:<9} {v}");
    }
    println!("  {} parameters, {} multiply-adds per sample", model.param_count(), model.macs());
    let chain = model.graph.as_sequential().is_some();
    for (i, n) in model.graph.nodes.iter().enumerate() {
        // A chain reads like a layer list; a DAG also says which values each node reads.
        let from = if chain { String::new() } else { inputs(n) };
        println!("  {i:>2} {:<13}{from} -> {:<14} {}", n.op.name(), format!("{:?}", shapes[i + 1]), detail(&n.op));
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
