//! Extra models from a folder the host mounts, next to the embedded defaults:
//!
//! ```text
//! wasmtime serve -Scli --dir ./my-models::/models --env MDEPLOY_MODEL_DIR=/models mdeploy-worker.wizer.wasm
//! ```
//!
//! Every `<name>.mdm` directly in the folder is served as model `<name>`, version `1`, beside
//! the embedded ones and on the same routes. The bytes are untrusted (unlike the embedded
//! models, which the build checked): read at most [`MAX_FILE_BYTES`] per file, at most
//! [`MAX_FILES`] files and [`MAX_TOTAL_BYTES`] in all, then the full reader (digest included) and the plan run on the first
//! request for that model, as for any model a client could have put there.
//!
//! Nothing here can stop the embedded models from serving: a file that cannot be read answers
//! 500 naming the file and the reason on its own routes; a file that reads but does not load
//! does the same when first used (`Server::load` names the file); a file whose stem is not a
//! usable model name, or that clashes with a served model, is skipped with a message on stderr.
//!
//! `wasmtime serve` makes a fresh instance per request, so this runs once per request (the Wizer
//! snapshot cannot hold these files: they are the host's, not the build's). What it costs is a
//! listing plus reading the files, no parsing: the digest and the plan are paid only by the
//! request that uses the model. Keep the folder to the models you serve.

use std::io::Read;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use mdeploy_core::format::PublicKey;
use mdeploy_serve::{ModelEntry, Server};

/// The environment variable naming the folder (a path inside the component, i.e. the guest side
/// of `--dir HOST::GUEST`). Unset: only the embedded models.
pub const ENV: &str = "MDEPLOY_MODEL_DIR";

/// Largest extra model file read (64 MiB): far above an MNIST-sized model (≤ 400 KB here), and
/// a bound on what a stray file in the folder can make every request read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Most `.mdm` files served from the folder (the first ones by file name).
pub const MAX_FILES: usize = 64;

/// Most bytes read from the folder by one instance, all files together (256 MiB): without it,
/// 64 files of 64 MiB would be 4 GiB, all of a wasm32 instance's memory, read per request.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// Every extra model has this version, like the embedded ones.
const VERSION: &str = "1";

/// Adds every `*.mdm` file directly in `dir` to `server` (sorted by file name). Returns one
/// message per file skipped or folder problem, for the host's log.
///
/// Under the trust policy compiled in (`worker/build.sh --trusted-keys DIR`), every file must be
/// signed by one of its keys: one that is not answers 500 `UNTRUSTED` on its own routes, naming
/// the file and the key id (checked on first use, like the digest), and the others serve.
pub fn add_models(server: &mut Server, dir: &Path) -> Vec<String> {
    let policy = ModelEntry::build_trusted_keys().map(Arc::from);
    add_models_within(server, dir, MAX_TOTAL_BYTES, policy.as_ref())
}

/// [`add_models`] reading at most `total_limit` bytes in all, under `policy` if given.
fn add_models_within(server: &mut Server, dir: &Path, total_limit: u64, policy: Option<&Arc<[PublicKey]>>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut total = 0u64;
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            notes.push(format!(
                "{ENV}={}: cannot list the folder ({e}); under wasmtime serve, mount it with --dir HOST_DIR::{}",
                dir.display(),
                dir.display()
            ));
            return notes;
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in listing {
        match entry {
            Ok(e) => {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "mdm") {
                    files.push(path);
                }
            }
            Err(e) => notes.push(format!("{ENV}={}: an entry could not be listed ({e})", dir.display())),
        }
    }
    files.sort();
    if files.len() > MAX_FILES {
        notes.push(format!(
            "{ENV}={}: {} .mdm files, serving the first {MAX_FILES} by name; {} and later are not served",
            dir.display(),
            files.len(),
            files[MAX_FILES].display()
        ));
        files.truncate(MAX_FILES);
    }
    for path in files {
        let shown = path.display().to_string();
        let name = match model_name(&path) {
            Ok(n) => n,
            Err(why) => {
                notes.push(format!("{shown}: not served: {why}"));
                continue;
            }
        };
        let added = match read_bounded(&path, total_limit - total) {
            Ok(bytes) => {
                total += bytes.len() as u64;
                let entry = ModelEntry::new(name, VERSION, bytes).with_source(shown.clone());
                server.add(match policy {
                    Some(keys) => entry.with_trusted_keys(keys.clone()),
                    None => entry,
                })
            }
            Err(why) => server.add_unavailable(&name, VERSION, &shown, &format!("{shown}: {why}")),
        };
        if let Err(e) = added {
            notes.push(e);
        }
    }
    notes
}

/// The model name of `<dir>/<name>.mdm`: `name`, when it is usable in a URL path as is.
fn model_name(path: &Path) -> Result<String, String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).ok_or("the file name is not UTF-8")?;
    let ok = !stem.is_empty()
        && stem.len() <= 100
        && !stem.starts_with('.')
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(stem.to_string())
    } else {
        Err(format!(
            "'{stem}' is not a model name (1 to 100 of A-Z a-z 0-9 - _ ., not starting with '.'); rename the file"
        ))
    }
}

/// The file's bytes, refusing more than [`MAX_FILE_BYTES`], or than the `left` bytes the folder's
/// total allows, before reading them (and while reading, should the file grow meanwhile).
fn read_bounded(path: &Path, left: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
    let len = file.metadata().map_err(|e| format!("cannot stat it ({e})"))?.len();
    let too_big = |n: u64| {
        if n > MAX_FILE_BYTES {
            format!("{n} bytes, over the limit of {MAX_FILE_BYTES} bytes (64 MiB) for a model read from {ENV}")
        } else {
            format!(
                "{n} bytes, over the limit of what is left ({left} bytes) of the {MAX_TOTAL_BYTES} bytes (256 MiB) read from \
                 {ENV} in all; serve fewer models from the folder, or compile them in with `worker/build.sh --models`"
            )
        }
    };
    let limit = MAX_FILE_BYTES.min(left);
    if len > limit {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read it ({e})"))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdeploy_serve::Request;

    fn get(server: &mut Server, path: &str) -> (u16, String) {
        let r = server.handle(&Request { method: "GET", path, content_type: None, headers: &[], body: &[] });
        (r.status, r.text().into_owned())
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mdeploy-worker-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create a temp folder");
        d
    }

    fn model_bytes(file: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn good_bad_and_clashing_files_beside_the_embedded_models() {
        let dir = temp_dir("mix");
        std::fs::write(dir.join("mobilenet-block.mdm"), model_bytes("test/mobilenet-block.mdm")).unwrap();
        let mut corrupt = model_bytes("mnist-mlp.mdm");
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0x40;
        std::fs::write(dir.join("corrupt.mdm"), &corrupt).unwrap();
        std::fs::write(dir.join("mnist-cnn.mdm"), model_bytes("mnist-mlp.mdm")).unwrap();
        std::fs::write(dir.join("bad name.mdm"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a model").unwrap();
        std::fs::create_dir(dir.join("folder.mdm")).unwrap();

        let mut server = Server::new(ModelEntry::embedded());
        let notes = add_models(&mut server, &dir);
        let names: Vec<String> = server.models().map(|(n, _)| n.to_string()).collect();
        let defaults: Vec<String> = ModelEntry::embedded().into_iter().map(|e| e.name).collect();
        let added = ["corrupt", "folder", "mobilenet-block"].map(String::from);
        assert_eq!(names, [defaults, added.to_vec()].concat(), "the defaults, then the folder's models by name");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("bad name.mdm") && n.contains("rename")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("mnist-cnn.mdm") && n.contains("already served") && n.contains("the build")),
            "{notes:?}"
        );

        // The extra model serves; the embedded one of the clashing name is still the embedded one.
        assert_eq!(get(&mut server, "/v2/models/mobilenet-block/ready").0, 200);
        let (status, body) = get(&mut server, "/v2/models/mnist-cnn");
        assert_eq!(status, 200, "{body}");
        // The corrupt file: its own routes say which file and what is wrong; the others serve.
        let (status, body) = get(&mut server, "/v2/models/corrupt");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("corrupt.mdm") && body.to_lowercase().contains("digest"), "{body}");
        let (status, body) = get(&mut server, "/v2/models/folder/ready");
        assert_eq!(status, 503, "{body}");
        let (status, body) = get(&mut server, "/v2/models/folder");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("folder.mdm") && body.contains("cannot"), "{body}");
        assert_eq!(get(&mut server, "/v2/models/mnist-mlp/ready").0, 200);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_missing_folder_is_one_message_and_changes_nothing() {
        let mut server = Server::new(ModelEntry::embedded());
        let notes = add_models(&mut server, Path::new("/nonexistent/mdeploy-models"));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("--dir"), "{notes:?}");
        assert_eq!(server.models().count(), ModelEntry::embedded().len(), "only the embedded models");
    }

    #[test]
    fn the_folder_is_read_within_a_total_bound() {
        let dir = temp_dir("total");
        let mlp = model_bytes("mnist-mlp.mdm");
        std::fs::write(dir.join("a.mdm"), &mlp).unwrap();
        std::fs::write(dir.join("b.mdm"), &mlp).unwrap();
        let mut server = Server::new(Vec::new());
        // Room for one of the two files: the first by name is served, the second names the bound.
        assert!(add_models_within(&mut server, &dir, mlp.len() as u64 * 3 / 2, None).is_empty());
        assert_eq!(get(&mut server, "/v2/models/a/ready").0, 200);
        let (status, body) = get(&mut server, "/v2/models/b");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("b.mdm") && body.contains("in all") && body.contains("--models"), "{body}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let dir = temp_dir("big");
        let f = std::fs::File::create(dir.join("huge.mdm")).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk used
        let mut server = Server::new(Vec::new());
        assert!(add_models(&mut server, &dir).is_empty());
        let (status, body) = get(&mut server, "/v2/models/huge");
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("huge.mdm") && body.contains("over the limit"), "{body}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn under_a_policy_only_files_signed_by_a_trusted_key_serve() {
        use mdeploy_core::format::{self, SecretKey};
        let dir = temp_dir("policy");
        let mlp = model_bytes("mnist-mlp.mdm");
        let (a, b) = (SecretKey::from_seed(&[0xa1; 32]), SecretKey::from_seed(&[0xb2; 32]));
        let signed = format::sign(&mlp, &a).unwrap();
        let mut bad_sig = signed.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1; // the signature, which the digest does not cover
        std::fs::write(dir.join("signed.mdm"), &signed).unwrap();
        std::fs::write(dir.join("unsigned.mdm"), &mlp).unwrap();
        std::fs::write(dir.join("other-key.mdm"), format::sign(&mlp, &b).unwrap()).unwrap();
        std::fs::write(dir.join("bad-signature.mdm"), &bad_sig).unwrap();
        let policy: Arc<[PublicKey]> = Arc::from(vec![a.public_key()]);
        let mut server = Server::new(Vec::new());
        assert!(add_models_within(&mut server, &dir, MAX_TOTAL_BYTES, Some(&policy)).is_empty());
        let id_a = a.public_key().key_id().to_string();
        let id_b = b.public_key().key_id().to_string();
        for (name, says) in [
            ("unsigned", "not signed".to_string()),
            ("other-key", format!("key id {id_b}")),
            ("bad-signature", format!("key id {id_a} does not verify")),
        ] {
            let (status, body) = get(&mut server, &format!("/v2/models/{name}"));
            assert_eq!(status, 500, "{name}: {body}");
            assert!(body.contains("\"UNTRUSTED\"") && body.contains(&says) && body.contains(&format!("{name}.mdm")), "{name}: {body}");
            assert_eq!(get(&mut server, "/v2/models/signed/ready").0, 200, "a good model after {name}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
