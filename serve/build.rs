//! With the `embedded-models` feature: the default models compiled into the server.
//!
//! Every model of `models/defaults.json` is read here with the real `.mdm` reader (digest, every structural
//! check, `Model::validate`) and planned, so a corrupt or inconsistent file fails the build, not
//! a request. That is what lets the runtime read them with `format::read_trusted` (no SHA-256 per
//! request under `wasmtime serve`) and report them ready without loading them.
//! The list is written to `$OUT_DIR/embedded_models.rs`, which `src/embedded.rs` includes.
//!
//! `MDEPLOY_EMBED_MODELS=DIR` (what `worker/build.sh --models DIR` sets) also embeds every
//! `<name>.mdm` directly in DIR as model `<name>`, after the defaults, with the same checks: a
//! file that does not load or plan, a name that is not usable in a URL, or a name the defaults
//! already use fails the build naming the file.

use std::fmt::Write as _;

/// `(name, file under models/)` from `models/defaults.json` (the one list of default models),
/// the default model first, the others in the file's order.
fn default_models(root: &str) -> Vec<(String, String)> {
    let path = format!("{root}/defaults.json");
    println!("cargo:rerun-if-changed={path}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: cannot read the default-model list: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
    let default = json["default"].as_str().unwrap_or_else(|| panic!("{path}: \"default\" must name a model"));
    let mut models: Vec<(String, String)> = json["models"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: \"models\" must be a list"))
        .iter()
        .map(|m| match (m["name"].as_str(), m["file"].as_str()) {
            (Some(name), Some(file)) => (name.to_string(), file.to_string()),
            _ => panic!("{path}: every entry of \"models\" needs a \"name\" and a \"file\""),
        })
        .collect();
    let at = models.iter().position(|(name, _)| name == default).unwrap_or_else(|| panic!("{path}: the default '{default}' is not in \"models\""));
    let first = models.remove(at);
    models.insert(0, first);
    models
}

/// The models of `MDEPLOY_EMBED_MODELS`: `(name, absolute path)`, sorted by name.
fn chosen_models(dir: &str, defaults: &[(String, String)]) -> Vec<(String, String)> {
    let dir = std::path::Path::new(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let listing = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!("MDEPLOY_EMBED_MODELS={}: cannot list the folder ({e}); pass a folder of .mdm files", dir.display())
    });
    let mut out = Vec::new();
    for entry in listing {
        let path = entry.unwrap_or_else(|e| panic!("MDEPLOY_EMBED_MODELS={}: {e}", dir.display())).path();
        if path.extension().is_none_or(|x| x != "mdm") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let usable = !stem.is_empty()
            && stem.len() <= 100
            && !stem.starts_with('.')
            && stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !usable {
            panic!(
                "{}: '{stem}' is not a model name (1 to 100 of A-Z a-z 0-9 - _ ., not starting with '.'); rename the file",
                path.display()
            );
        }
        if defaults.iter().any(|(name, _)| name == stem) {
            panic!("{}: '{stem}' is already a default model's name; rename the file", path.display());
        }
        let abs = std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((stem.to_string(), abs.display().to_string()));
    }
    if out.is_empty() {
        panic!("MDEPLOY_EMBED_MODELS={}: no .mdm file in the folder", dir.display());
    }
    out.sort();
    out
}

/// The keys of `MDEPLOY_EMBED_TRUSTED_KEYS=DIR` (what `worker/build.sh --trusted-keys DIR` sets):
/// every `*.pub` file directly in DIR (`mdeploy keygen` writes them), sorted by file name. A
/// file that is not a public key, or a folder without one, fails the build naming it.
fn trusted_keys(dir: &str) -> Vec<mdeploy_core::format::PublicKey> {
    let dir = std::path::Path::new(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let listing = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!("MDEPLOY_EMBED_TRUSTED_KEYS={}: cannot list the folder ({e}); pass a folder of .pub files", dir.display())
    });
    let mut files: Vec<std::path::PathBuf> = listing
        .map(|e| e.unwrap_or_else(|e| panic!("MDEPLOY_EMBED_TRUSTED_KEYS={}: {e}", dir.display())).path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    if files.is_empty() {
        panic!("MDEPLOY_EMBED_TRUSTED_KEYS={}: no .pub file in the folder (make one with `mdeploy keygen`)", dir.display());
    }
    files
        .iter()
        .map(|f| {
            println!("cargo:rerun-if-changed={}", f.display());
            let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: cannot read the key: {e}", f.display()));
            mdeploy_core::format::PublicKey::from_text(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MDEPLOY_EMBED_MODELS");
    println!("cargo:rerun-if-env-changed=MDEPLOY_EMBED_TRUSTED_KEYS");
    let policy = std::env::var("MDEPLOY_EMBED_TRUSTED_KEYS").ok().filter(|d| !d.is_empty()).map(|d| trusted_keys(&d));
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut code = String::from("// Generated by serve/build.rs.\npub(crate) static MODELS: &[(&str, &[u8])] = &[\n");
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_MODELS").is_some() {
        // Read at run time, not `env!` at compile time: cargo records build-script sources relative
        // to the package, so a build script compiled in another checkout (CI clones elsewhere and
        // shares the target folder) can be reused here, and a baked-in path would point there.
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let root = format!("{manifest}/../models");
        let defaults = default_models(&root);
        // Under a trust policy only signed models are served: the defaults (unsigned, this
        // repository's files) are left out, and every chosen model must verify (worker/README.md).
        let n_defaults = if policy.is_some() { 0 } else { defaults.len() };
        let mut all: Vec<(String, String)> =
            defaults.iter().take(n_defaults).map(|(name, file)| (name.clone(), format!("{root}/{file}"))).collect();
        if let Some(dir) = std::env::var("MDEPLOY_EMBED_MODELS").ok().filter(|d| !d.is_empty()) {
            all.extend(chosen_models(&dir, &defaults));
        }
        for (i, (name, path)) in all.iter().enumerate() {
            let fix = if i < n_defaults {
                "restore it with `git checkout models/` or re-export it"
            } else {
                "check it with `mdeploy info FILE`, or leave it out of the --models folder"
            };
            println!("cargo:rerun-if-changed={path}");
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: cannot read the embedded model: {e}"));
            if let Some(keys) = &policy {
                if let Err(e) = mdeploy_core::format::verify_signature(&bytes, keys) {
                    panic!("{path}: refused by the trust policy of MDEPLOY_EMBED_TRUSTED_KEYS ({e}); sign it with `mdeploy sign`, or leave it out of the --models folder");
                }
            }
            let model = mdeploy_core::format::read(&bytes)
                .unwrap_or_else(|e| panic!("{path}: the embedded model does not load ({e}); {fix}"));
            if let Err(e) = mdeploy_core::Plan::new(&model, 1) {
                panic!("{path}: the embedded model loads but cannot be planned: {e}; {fix}");
            }
            let _ = writeln!(code, "    ({name:?}, include_bytes!({path:?})),");
        }
    }
    code.push_str("];\n");
    // The policy's keys, for the models a host adds at run time (worker/: MDEPLOY_MODEL_DIR).
    code.push_str("#[cfg_attr(not(feature = \"trust-policy\"), allow(dead_code))]\n");
    match &policy {
        None => code.push_str("pub(crate) static TRUSTED_KEYS: Option<&[[u8; 32]]> = None;\n"),
        Some(keys) => {
            code.push_str("pub(crate) static TRUSTED_KEYS: Option<&[[u8; 32]]> = Some(&[\n");
            for k in keys {
                let _ = writeln!(code, "    {:?},", k.to_bytes());
            }
            code.push_str("]);\n");
        }
    }
    std::fs::write(out.join("embedded_models.rs"), code).expect("write OUT_DIR/embedded_models.rs");
}
