//! Loading `.mdm` files with errors that say how to fix the problem.

use mdeploy_core::{format, Model};

pub fn read_bytes(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{path}: no such file. The default models are models/mnist-mlp.mdm and models/mnist-cnn.mdm; \
             `mdeploy train --arch mlp --out FILE` makes a new one"
        ),
        _ => format!("{path}: cannot read: {e}"),
    })
}

pub fn load(path: &str) -> Result<Model, String> {
    let bytes = read_bytes(path)?;
    format::read(&bytes).map_err(|e| match e.kind {
        mdeploy_core::ErrorKind::DecryptFailed => format!(
            "{path}: {e}; this command takes plain models: `mdeploy decrypt {path} --key KEY.enckey --out plain.mdm` makes one"
        ),
        _ => format!("{path}: {e}"),
    })
}
