//! `mdeploy info MODEL`: what is in a model file, without running it.

use crate::model_file;
use mdeploy_core::{format, Layer};

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
    let model = format::read(&bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let shapes = model.shapes().map_err(|e| e.to_string())?;
    let digest = format::digest_hex(&bytes).map_err(|e| e.to_string())?;
    let m = &model.meta;
    let p = &m.provenance;
    let layers: Vec<serde_json::Value> = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let params = match l {
                Layer::Dense { weight, bias } | Layer::Conv2d { weight, bias, .. } => weight.numel() + bias.numel(),
                _ => 0,
            };
            serde_json::json!({ "op": l.name(), "output_shape": shapes[i + 1], "params": params, "detail": detail(l) })
        })
        .collect();
    if args.json {
        let v = serde_json::json!({
            "file": args.model,
            "bytes": bytes.len(),
            "sha256": digest,
            "format_version": format::FORMAT_VERSION,
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
            "layers": layers,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{} {} ({} bytes, format {:?}, sha256 {})", m.name, m.version, bytes.len(), format::FORMAT_VERSION, digest);
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
    for (i, l) in model.layers.iter().enumerate() {
        println!("  {i:>2} {:<10} -> {:<14} {}", l.name(), format!("{:?}", shapes[i + 1]), detail(l));
    }
    Ok(())
}

fn detail(l: &Layer) -> String {
    match l {
        Layer::Dense { weight, .. } => format!("weight {:?}", weight.shape),
        Layer::Conv2d { weight, stride, padding, .. } => {
            format!("weight {:?} stride {:?} padding {:?}", weight.shape, stride, padding)
        }
        Layer::MaxPool2d { kernel, stride } => format!("kernel {kernel:?} stride {stride:?}"),
        Layer::Dropout { rate } => format!("rate {rate} (training only)"),
        _ => String::new(),
    }
}
