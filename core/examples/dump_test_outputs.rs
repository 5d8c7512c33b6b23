//! Writes a model's outputs on the fixed split's 2,000 test digits as raw little-endian f32
//! (`2000 × outputs`, digits in split order), so `bench/native/check_onnx.py` can check that the
//! ONNX export computes what our native Plan computes, probability by probability.
//!
//! `cargo run --release -p mdeploy-core --example dump_test_outputs -- models/mnist-cnn.mdm out.f32`

use mdeploy_core::eval::Evaluation;
use mdeploy_core::Plan;
use mdeploy_testkit::mnist;

fn main() {
    if let Err(e) = run() {
        eprintln!("dump_test_outputs: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, out_path] = args.as_slice() else {
        return Err("usage: dump_test_outputs MODEL.mdm OUT.f32".into());
    };
    let bytes = std::fs::read(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let model = mdeploy_core::format::read(&bytes).map_err(|e| format!("{model_path}: {e}"))?;
    let (images, labels) = mnist::test_digits()?;
    let n = labels.len();
    // One batch-1 plan per digit would be the CLI `predict` path; a batched run computes the
    // same per-sample math (the kernels do not mix samples), and is what `mdeploy eval` uses.
    let mut plan = Plan::new(&model, 256).map_err(|e| format!("{model_path}: {e}"))?;
    let mut out = vec![0.0f32; n * plan.output_len()];
    plan.run(&images, n, &mut out)
        .map_err(|e| format!("{model_path}: {e}"))?;
    let raw: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out_path, raw).map_err(|e| format!("{out_path}: {e}"))?;
    // Scored by the same code as `mdeploy eval`, so this line matches its accuracy.
    let e =
        Evaluation::from_outputs(&out, &labels, plan.output_len()).map_err(|e| e.to_string())?;
    eprintln!(
        "{model_path}: {n} test digits, kernels {}, {} correct (accuracy {}), wrote {out_path}",
        plan.kernel_name(),
        e.correct(),
        e.accuracy()
    );
    Ok(())
}
