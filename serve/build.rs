//! With the `embedded-models` feature, verify the SHA-256 content digest of every model that
//! `src/embedded.rs` compiles in, so a corrupt file fails the build instead of a request, and
//! the runtime may skip the hash (it runs per request under `wasmtime serve`).
//! The digest covers `bytes[0..32] ++ bytes[64..]` and is stored at `bytes[32..64]`
//! (core/src/format/MDM_FORMAT.md).

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_MODELS").is_none() {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    for name in ["mnist-cnn.mdm", "mnist-mlp.mdm"] {
        let path = format!("{root}/{name}");
        println!("cargo:rerun-if-changed={path}");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: cannot read the embedded model: {e}"));
        assert!(bytes.len() > 64 && bytes.starts_with(b"\x89MDM\r\n\x1a\n"), "{path}: not an .mdm file");
        let mut h = Sha256::new();
        h.update(&bytes[..32]);
        h.update(&bytes[64..]);
        let digest = h.finalize();
        assert!(
            digest[..] == bytes[32..64],
            "{path}: its SHA-256 digest does not match its content: the file is corrupt; restore it with `git checkout models/`"
        );
    }
}
