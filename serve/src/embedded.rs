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
            // Verified by build.rs under the policy (if any): not again per instance.
            #[cfg(feature = "trust-policy")]
            trusted_keys: None,
        })
        .collect()
}

/// The trust policy compiled in (`MDEPLOY_EMBED_TRUSTED_KEYS` at build time), if any. build.rs
/// parsed every key, so none is dropped here in practice.
#[cfg(feature = "trust-policy")]
pub(crate) fn trusted_keys() -> Option<Vec<mdeploy_core::format::PublicKey>> {
    TRUSTED_KEYS.map(|keys| keys.iter().filter_map(|k| mdeploy_core::format::PublicKey::from_bytes(k).ok()).collect())
}
