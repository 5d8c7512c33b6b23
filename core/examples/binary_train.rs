//! Trains a binary MLP (`arch::mlp_binary`) with binary QAT on the 8,000 training digits,
//! stores it with `quantize_binary` (first and last layers int8, the middle binary), and
//! prints accuracy on the fixed split's 2,000 test digits, file and gzip-free size, and writes
//! the model to the path given.
//!
//! `MDEPLOY_MNIST_DIR=… cargo run --release -p mdeploy-core --example binary_train -- OUT.mdm
//! [hidden 512] [binary layers 1] [epochs 10] [lr 1e-3] [seed 1] [in]` (Adam, batch 64, augmented
//! digits: ±2 px, ±12°, ±10 %, cosine schedule with 1 warm-up epoch). With `in`, the
//! binary-input MLP (`arch::mlp_binary_in`: the first layer binary too, only the last int8).

use mdeploy_core::quantize::{quantize_binary, Calibration};
use mdeploy_core::train::{TrainConfig, Trainer};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use mdeploy_testkit::mnist;

fn accuracy(model: &mdeploy_core::Model, xs: &[f32], labels: &[u8]) -> Result<f64, String> {
    let n = labels.len();
    let mut plan = Plan::with_kernels(model, 256, KernelSet::best()).map_err(|e| e.to_string())?;
    let mut out = vec![0.0; n * 10];
    plan.run(xs, n, &mut out).map_err(|e| e.to_string())?;
    let ok = out.chunks_exact(10).zip(labels).filter(|(p, &l)| mdeploy_core::train::argmax(p) == l as usize).count();
    Ok(ok as f64 / n as f64)
}

fn main() -> std::process::ExitCode {
    mdeploy_testkit::tool_main("binary_train", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let out = args.first().ok_or("usage: binary_train OUT.mdm [hidden] [binary layers] [epochs] [lr] [seed]")?.clone();
        let num = |i: usize, d: f64| args.get(i).map_or(Ok(d), |s| s.parse::<f64>().map_err(|e| format!("argument {i}: {e}")));
        let (hidden, layers, epochs, lr, seed) = (num(1, 512.0)? as usize, num(2, 1.0)? as usize, num(3, 10.0)? as u32, num(4, 1e-3)? as f32, num(5, 1.0)? as u64);
        let split = mnist::split();
        let model = if args.get(6).is_some_and(|s| s == "in") {
            mdeploy_core::arch::mlp_binary_in(seed, hidden, layers)
        } else {
            mdeploy_core::arch::mlp_binary(seed, hidden, layers)
        };
        // Augmented digits and a cosine schedule: without them the binary MLP overfits the 8,000
        // digits (99 % train, 93.7 % test after 6 epochs at hidden 512).
        let config = TrainConfig {
            epochs,
            lr,
            seed,
            augment: Some(mdeploy_core::train::Augment::default()),
            schedule: mdeploy_core::train::Schedule::Cosine { warmup_epochs: 1.0, min_factor: 0.02 },
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(model, config).map_err(|e| e.to_string())?;
        trainer.set_weight_fake_quant(Some(1)).map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        for e in 0..epochs {
            let s = trainer.train_epoch(&split.train, &mut |_| {}).map_err(|e| e.to_string())?;
            eprintln!("epoch {}: {:?} ({:.0} s)", e + 1, s, t0.elapsed().as_secs_f64());
        }
        let latent = trainer.into_model();
        let (xs, labels) = mnist::test_digits()?;
        let calib = mnist::spread_subset(&split.train, 500);
        let (mut q, report) = quantize_binary(&latent, &calib.images, calib.n, Calibration::MinMax, |_, _| {}).map_err(|e| e.to_string())?;
        // The stored model's own score on the test split goes into the file (as the CLI does).
        q.meta.provenance.test_accuracy = Some(accuracy(&q, &xs, &labels)? as f32);
        let bytes = mdeploy_core::format::write(&q).map_err(|e| e.to_string())?;
        std::fs::write(&out, &bytes).map_err(|e| format!("{out}: {e}"))?;
        eprintln!(
            "latent f32 weights (not binarized) {:.2} %, stored (int8 first/last, binary middle) {:.2} %, {} bytes, {} weights quantized -> {out}",
            accuracy(&latent, &xs, &labels)? * 100.0,
            accuracy(&q, &xs, &labels)? * 100.0,
            bytes.len(),
            report.weights
        );
        Ok(())
    })
}
