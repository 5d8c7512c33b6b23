//! # mdeploy-mnist
//!
//! Everything that knows the data is MNIST: [`data`] (IDX files, the fixed train/validation/test
//! split, datasets), [`preprocess`] (the MNIST recipe that turns any drawn digit into a 28×28
//! input: crop, fit 20×20, centre by mass) and, with the `decode` feature, [`image`] (PNG and
//! PGM files to the ink map `preprocess` takes: the one decoder the CLI and the HTTP API share).

pub(crate) use mdeploy_model::error;

pub mod data;
#[cfg(feature = "decode")]
pub mod image;
pub mod preprocess;
