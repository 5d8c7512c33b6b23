//! The default models, compiled in. `build.rs` names them, reads each one with the real reader
//! and plans it while building, so at run time they are read with `format::read_trusted` (no
//! hashing per request) and count as ready without a load.

use std::borrow::Cow;

use crate::ModelEntry;

include!(concat!(env!("OUT_DIR"), "/embedded_models.rs"));

pub(crate) fn entries() -> Vec<ModelEntry> {
    MODELS
        .iter()
        .map(|&(name, bytes)| ModelEntry {
            name: name.to_string(),
            version: "1".to_string(),
            bytes: Cow::Borrowed(bytes),
            trusted: true,
            source: None,
        })
        .collect()
}
