//! `mdeploy predict MODEL IMAGE`: classify one picture of a digit.

use crate::model_file;
use mdeploy_core::{image, preprocess};
use mdeploy_core::Plan;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  mdeploy predict models/mnist-cnn.mdm samples/digit-7.png\n  \
    mdeploy predict models/mnist-mlp.mdm drawing.png --top 3 --show\n  \
    mdeploy predict models/mnist-cnn.mdm digit.pgm --json")]
pub struct PredictArgs {
    /// The model file (.mdm), e.g. models/mnist-cnn.mdm.
    pub model: String,
    /// A PNG or PGM image of ONE digit, any size, dark-on-light or light-on-dark, or drawn on a
    /// transparent background. It goes through the MNIST preprocessing: crop to the ink, fit into
    /// 20×20 keeping the aspect ratio, centre by centre of mass in 28×28.
    pub image: String,
    /// How many of the most likely classes to print.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Also print the 28×28 image the model actually saw, as text art.
    #[arg(long)]
    pub show: bool,
    /// Print one JSON object ({label, probs, ...}) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PredictArgs) -> Result<(), String> {
    let model = model_file::load(&args.model)?;
    let bytes = std::fs::read(&args.image).map_err(|e| format!("{}: cannot read image: {e}", args.image))?;
    let input = image::decode_digit(&bytes, preprocess::MAX_PIXELS).map_err(|e| format!("{}: {}", args.image, e.message))?;
    if model.input_len() != input.len() {
        return Err(format!(
            "{}: this model takes inputs of shape {:?}, but images become 28×28 digits; use an MNIST model",
            args.model, model.meta.input_shape
        ));
    }
    let mut plan = Plan::new(&model, 1).map_err(|e| format!("{}: {e}", args.model))?;
    let t0 = std::time::Instant::now();
    let probs = plan.predict(&input).map_err(|e| e.to_string())?.to_vec();
    let micros = t0.elapsed().as_secs_f64() * 1e6;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let label_of = |i: usize| model.meta.labels.get(i).cloned().unwrap_or_else(|| i.to_string());
    let best = order[0];
    if args.json {
        let v = serde_json::json!({
            "image": args.image,
            "model": model.meta.name,
            "label": label_of(best),
            "class": best,
            "probs": probs,
            "kernel": plan.kernel_name(),
            "micros": micros,
        });
        println!("{v}");
        return Ok(());
    }
    if args.show {
        print!("{}", ascii_art(&input));
    }
    let top: Vec<String> = order
        .iter()
        .take(args.top.max(1))
        .map(|&i| format!("{} ({:.1} %)", label_of(i), probs[i] * 100.0))
        .collect();
    println!("{}", top.join(", "));
    Ok(())
}

fn ascii_art(img: &[f32]) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    let mut s = String::new();
    for row in img.chunks(28) {
        for &v in row {
            let c = RAMP[((v.clamp(0.0, 1.0) * 9.0).round() as usize).min(9)] as char;
            s.push(c);
            s.push(c);
        }
        s.push('\n');
    }
    s
}
