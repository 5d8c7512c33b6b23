//! `mdeploy`: train, evaluate, inspect and run `.mdm` models.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod convert;
mod data;
mod distill;
mod eval;
mod export;
mod info;
mod model_file;
mod monitor_ref;
mod predict;
mod prune;
mod report;
mod quantize;
mod serve;
mod train;
mod trust;

#[derive(Parser, Debug)]
#[command(
    name = "mdeploy",
    version,
    about = "Train, evaluate and run small MNIST models (.mdm files).",
    after_help = "Quick start (from the repository root, after `npm start` or `npm install`):\n  \
        mdeploy predict models/mnist-cnn.mdm samples/digit-7.png --show  # a picture\n  \
        mdeploy eval models/mnist-cnn.mdm         # the 2,000 test digits\n  \
        mdeploy info models/mnist-mlp.mdm         # inside a model file\n  \
        mdeploy train --arch mlp --epochs 40 --augment --out my.mdm\n  \
        mdeploy convert model.onnx --out model.mdm  # your own model (ONNX)\n  \
        mdeploy export models/mnist-cnn.mdm --onnx cnn.onnx  # ours, as ONNX\n  \
        mdeploy prune models/mnist-mlp.mdm --sparsity 0.9 --epochs 5 --out sparse.mdm\n  \
        mdeploy distill --teacher models/mnist-cnn.mdm --arch mlp:32 --out student.mdm\n  \
        mdeploy quantize models/mnist-cnn.mdm --out cnn-int8.mdm  # int8, integer kernels\n  \
        mdeploy serve --repository repo/          # a model server (REST + gRPC)\n  \
        mdeploy keygen --out keys && mdeploy sign my.mdm --key keys/mdeploy.key  # signed models\n\n\
        Every command has --help with examples, and --json for scripts."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train an MNIST model on the fixed split and save it as .mdm.
    Train(train::TrainArgs),
    /// Score a model: accuracy, per-class precision/recall, confusion matrix.
    Eval(eval::EvalArgs),
    /// Classify a picture of one digit (PNG or PGM, any size).
    Predict(predict::PredictArgs),
    /// Describe a model file: metadata, provenance, layers, size, digest.
    Info(info::InfoArgs),
    /// Convert an ONNX model (PyTorch, Keras, scikit-learn exports) into an .mdm file.
    Convert(convert::ConvertArgs),
    /// Write an .mdm model as an ONNX file (to check it in onnxruntime or other runtimes).
    Export(export::ExportArgs),
    /// Drop the smallest weights (threshold, sparsity target or n:m), optionally gradually while
    /// fine-tuning, and store the model sparse.
    Prune(prune::PruneArgs),
    /// Train a small student on a teacher's softened answers (knowledge distillation).
    Distill(distill::DistillArgs),
    /// Compare models: a markdown table (size, non-zeros, accuracy, latency) and an accuracy-against-size chart.
    Report(report::ReportArgs),
    /// Quantize a model to int8 (calibrated on training digits) so it runs on integer kernels.
    Quantize(quantize::QuantizeArgs),
    /// Serve a model repository over REST (KServe v2, TF Serving) and gRPC, with metrics and reload.
    Serve(serve::ServeArgs),
    /// Store the training digits' input statistics in a model, for the server's drift monitor.
    MonitorRef(monitor_ref::MonitorRefArgs),
    /// Make an Ed25519 key pair for signing models (NAME.key secret, NAME.pub public).
    Keygen(trust::KeygenArgs),
    /// Sign a model with a secret key, so hosts that trust your public key can tell it is yours and unchanged.
    Sign(trust::SignArgs),
    /// Check that a model is signed by one of the given public keys and unchanged since (exit status 1 if not).
    Verify(trust::VerifyArgs),
    /// Encrypt a model (ChaCha20-Poly1305) so only holders of the key can run it; its metadata stays readable.
    Encrypt(trust::EncryptArgs),
    /// Decrypt an encrypted model into a plain .mdm file.
    Decrypt(trust::DecryptArgs),
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader goes away (`mdeploy eval --json | head`):
    // Rust ignores SIGPIPE, which turns every later println! into a panic.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Info(a) => info::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Export(a) => export::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Report(a) => report::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Serve(a) => serve::run(a),
        Command::MonitorRef(a) => monitor_ref::run(a),
        Command::Keygen(a) => trust::keygen(a),
        Command::Sign(a) => trust::sign(a),
        Command::Verify(a) => trust::verify(a),
        Command::Encrypt(a) => trust::encrypt(a),
        Command::Decrypt(a) => trust::decrypt(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
