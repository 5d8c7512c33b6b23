//! A model as every host sees it after loading: the validated [`Model`] plus what the hosts
//! show about it ([`ModelInfo`]), computed once here instead of copied in `serve/` and `wasm/`.
//!
//! ```text
//!  bytes ──format::read──► Model ──► LoadedModel { info: ModelInfo, model }
//!                                        │ hosts keep `info` (metadata routes, JS info())
//!                                        └ and compile `model` for a backend (Plan, WebGPU)
//! ```

use crate::error::Result;
use crate::format::{self, FileInfo};
use crate::model::{Metadata, Model};

/// Whether the bytes' SHA-256 digest must be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Bytes from anyone: every check, the digest included.
    Verify,
    /// Bytes whose digest was verified before they reached us (models embedded at build time,
    /// `serve/build.rs` checks them): skips only the hash; every structural check still runs.
    DigestChecked,
    /// The host hashed the bytes (`bytes[0..32] ++ bytes[64..]`, e.g. with WebCrypto): the
    /// reader uses the hash only if it matches the stored digest of a plain file, and hashes
    /// the bytes itself otherwise ([`format::read_with_info_hashed`]).
    Hashed([u8; 32]),
}

/// What hosts report about a loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub meta: Metadata,
    pub input_len: usize,
    pub output_shape: Vec<usize>,
    pub output_len: usize,
    /// Parameters (every tensor's elements).
    pub params: usize,
    /// Multiply-adds per sample of the Dense and Conv2d nodes.
    pub macs: usize,
    /// The op of every node, in order (`"Conv2d"`, `"ReLU"`, ...).
    pub op_names: Vec<&'static str>,
    /// The file's SHA-256 content digest, lowercase hex.
    pub digest: String,
    pub file_bytes: usize,
    /// The `.mdm` version the file was written in, e.g. `(1, 1)`.
    pub format_version: (u16, u16),
}

impl ModelInfo {
    fn new(model: &Model, file: &FileInfo) -> Result<ModelInfo> {
        let output_shape = model.output_shape()?;
        Ok(ModelInfo {
            input_len: model.input_len(),
            output_len: output_shape.iter().product(),
            output_shape,
            params: model.param_count(),
            macs: model.macs(),
            op_names: model.graph.nodes.iter().map(|n| n.op.name()).collect(),
            digest: file.digest_hex.clone(),
            file_bytes: file.file_len as usize,
            format_version: file.version,
            meta: model.meta.clone(),
        })
    }

    /// One label per output: the model's own, or the class index where it has none.
    pub fn labels(&self) -> Vec<String> {
        (0..self.output_len).map(|i| self.label(i)).collect()
    }

    /// The label of output `class`: the model's own, or the index.
    pub fn label(&self, class: usize) -> String {
        match self.meta.labels.get(class) {
            Some(l) if !l.is_empty() => l.clone(),
            _ => class.to_string(),
        }
    }

    /// One grey 28×28 image per sample: the shape the MNIST preprocessing produces.
    pub fn takes_digit_image(&self) -> bool {
        matches!(self.meta.input_shape[..], [1, 28, 28] | [784])
    }
}

/// A validated model and its [`ModelInfo`].
#[derive(Clone, Debug)]
pub struct LoadedModel {
    pub info: ModelInfo,
    pub model: Model,
}

impl LoadedModel {
    /// Reads untrusted (or digest-checked) `.mdm` bytes.
    pub fn read(bytes: &[u8], trust: Trust) -> Result<LoadedModel> {
        let (model, file) = match trust {
            Trust::Verify => format::read_with_info(bytes)?,
            Trust::DigestChecked => format::read_with_info_trusted(bytes)?,
            Trust::Hashed(sha256) => format::read_with_info_hashed(bytes, &sha256)?,
        };
        let info = ModelInfo::new(&model, &file)?;
        Ok(LoadedModel { info, model })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_describes_the_model() {
        let m = mdeploy_train::arch::cnn(1);
        let bytes = format::write(&m).unwrap();
        for trust in [Trust::Verify, Trust::DigestChecked] {
            let l = LoadedModel::read(&bytes, trust).unwrap();
            assert_eq!(l.model, m);
            assert_eq!(l.info.params, 46_730);
            assert_eq!(l.info.output_shape, vec![10]);
            assert_eq!(l.info.op_names[0], "Conv2d");
            assert_eq!(l.info.file_bytes, bytes.len());
            assert_eq!(l.info.format_version, (1, 0));
            assert_eq!(l.info.label(3), "3");
            assert!(l.info.takes_digit_image());
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(LoadedModel::read(&bad, Trust::Verify).is_err(), "digest checked");
    }
}
