//! `mdeploy keygen`, `mdeploy sign`, `mdeploy verify`: signed models (the format side is
//! core/model/src/format/trust.rs; bytes and rules in MDM_FORMAT.md, "Signatures").

use std::path::{Path, PathBuf};

use mdeploy_core::format::{self, DecryptionKey, PublicKey, ReadOptions, SecretKey};
use zeroize::Zeroizing;

use crate::model_file;

#[derive(clap::Args, Debug)]
#[command(after_help = "Writes two files:\n  \
    DIR/NAME.key   the secret key: keep it private (created with mode 0600; never overwritten)\n  \
    DIR/NAME.pub   the public key: give it to whoever loads your models\n\n\
    Example:\n  mdeploy keygen --out keys --name release\n  \
    mdeploy sign models/mnist-cnn.mdm --key keys/release.key --out cnn-signed.mdm\n  \
    mdeploy verify cnn-signed.mdm --pub keys/release.pub")]
pub struct KeygenArgs {
    /// Folder to write the key pair into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// File name of the pair, without extension.
    #[arg(long, default_value = "mdeploy")]
    name: String,
    /// Make an encryption key instead (one file, DIR/NAME.enckey, mode 0600: whoever holds it can
    /// read models encrypted with it; see `mdeploy encrypt --help`).
    #[arg(long)]
    encryption: bool,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "ChaCha20-Poly1305. The model's metadata (name, labels, provenance) stays readable by     `mdeploy info`; the graph and weights are not. Sign after encrypting (encrypt-then-sign) so hosts check     the publisher before decrypting.

    Examples:
  mdeploy keygen --out keys --name model --encryption
      mdeploy encrypt models/mnist-cnn.mdm --key keys/model.enckey --out cnn.enc.mdm
      mdeploy sign cnn.enc.mdm --key keys/release.key
      mdeploy decrypt cnn.enc.mdm --key keys/model.enckey --out cnn.mdm")]
pub struct EncryptArgs {
    /// The model file (.mdm) to encrypt.
    model: String,
    /// The encryption key file (NAME.enckey from `mdeploy keygen --encryption`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Where to write the encrypted model; default: replace MODEL.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Decrypts in memory and writes the plain model (a signature is not kept: the plain file     is a different file; sign it again if you publish it).

    Example:
  mdeploy decrypt cnn.enc.mdm --key keys/model.enckey --out cnn.mdm")]
pub struct DecryptArgs {
    /// The encrypted model file.
    model: String,
    /// The encryption key file (NAME.enckey).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Where to write the plain model.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "The signature (Ed25519) covers every byte of the model; the file stays a normal .mdm that \
    every mdeploy loads, and hosts given trusted public keys refuse it if anything changed.\n\n\
    Examples:\n  mdeploy sign models/mnist-cnn.mdm --key keys/release.key --out cnn-signed.mdm\n  \
    mdeploy sign my.mdm --key keys/release.key        # signs my.mdm in place\n  \
    mdeploy info cnn-signed.mdm                        # shows the key id")]
pub struct SignArgs {
    /// The model file (.mdm) to sign. A signed model is signed afresh (its signature replaced).
    model: String,
    /// The secret key file (NAME.key from `mdeploy keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Where to write the signed model; default: replace MODEL.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status 0 only if MODEL is signed by one of the given keys and unchanged since.\n\n\
    Examples:\n  mdeploy verify cnn-signed.mdm --pub keys/release.pub\n  \
    mdeploy verify cnn-signed.mdm --pub keys/          # every *.pub in a folder\n  \
    mdeploy verify cnn-signed.mdm --pub a.pub --pub b.pub --json")]
pub struct VerifyArgs {
    /// The model file (.mdm) to check.
    model: String,
    /// A trusted public key (NAME.pub), or a folder whose *.pub files are all trusted. Repeat
    /// for several.
    #[arg(long = "pub", value_name = "KEY", required = true)]
    keys: Vec<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn keygen(a: &KeygenArgs) -> Result<(), String> {
    if a.name.is_empty() || a.name.contains(['/', '\\']) || a.name.starts_with('.') {
        return Err(format!("--name {:?}: give a plain file name such as `release` (no folders, not hidden)", a.name));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    let secret_path = a.out.join(format!("{}.{}", a.name, if a.encryption { "enckey" } else { "key" }));
    let public_path = a.out.join(format!("{}.pub", a.name));
    let paths = if a.encryption { vec![&secret_path] } else { vec![&secret_path, &public_path] };
    for p in paths {
        if p.exists() {
            return Err(format!(
                "{} already exists: keygen never overwrites a key (a lost secret key cannot sign updates); pick another --name or --out",
                p.display()
            ));
        }
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..]).map_err(|e| format!("the operating system gave no random bytes for the key: {e}"))?;
    if a.encryption {
        let key = DecryptionKey::from_bytes(&seed);
        write_secret(&secret_path, key.to_text().as_bytes())?;
        println!(
            "wrote {} (encryption key: keep it private; give it only to hosts that may run the model), key id {}",
            secret_path.display(),
            key.key_id()
        );
        return Ok(());
    }
    let key = SecretKey::from_seed(&seed);
    write_secret(&secret_path, key.to_text().as_bytes())?;
    let public = key.public_key();
    std::fs::write(&public_path, public.to_text()).map_err(|e| format!("cannot write {}: {e}", public_path.display()))?;
    println!(
        "wrote {} (secret: keep it private) and {} (public), key id {}",
        secret_path.display(),
        public_path.display(),
        public.key_id()
    );
    Ok(())
}

/// Creates the secret key file readable by its owner only, from the first byte (no window in
/// which it is world-readable), and refuses to replace an existing file.
fn write_secret(path: &Path, text: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn read_secret_key(path: &Path) -> Result<SecretKey, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the secret key {}: {e}", path.display()))?,
    );
    SecretKey::from_text(&text).map_err(|e| format!("{}: {}", path.display(), e.message))
}

/// Public keys from files and folders (every `*.pub` in a folder, in name order). A folder with
/// none is an error: a policy that trusts nobody is never what a typo meant.
pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<(PathBuf, PublicKey)>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read the key folder {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "pub"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{} has no .pub files: put the publishers' public keys there (`mdeploy keygen` writes NAME.pub)",
                    p.display()
                ));
            }
            for f in files {
                out.push((f.clone(), read_public_key(&f)?));
            }
        } else {
            out.push((p.clone(), read_public_key(p)?));
        }
    }
    Ok(out)
}

fn read_public_key(path: &Path) -> Result<PublicKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the public key {}: {e}", path.display()))?;
    PublicKey::from_text(&text).map_err(|e| format!("{}: {}", path.display(), e.message))
}

pub fn read_decryption_key(path: &Path) -> Result<DecryptionKey, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the encryption key {}: {e}", path.display()))?,
    );
    DecryptionKey::from_text(&text).map_err(|e| format!("{}: {}", path.display(), e.message))
}

/// Writes `bytes` beside `out` and renames, so an interrupted run never leaves half a model.
fn write_model(out: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = out.with_extension("mdm.writing");
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", out.display())
    })
}

pub fn encrypt(a: &EncryptArgs) -> Result<(), String> {
    let key = read_decryption_key(&a.key)?;
    let bytes = model_file::read_bytes(&a.model)?;
    // A fresh random nonce per file: ChaCha20-Poly1305 is broken by reusing a nonce with a key.
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| format!("the operating system gave no random bytes for the nonce: {e}"))?;
    let sealed = format::encrypt(&bytes, &key, &nonce).map_err(|e| format!("{}: {e}", a.model))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(&a.model));
    write_model(&out, &sealed)?;
    println!("encrypted {} for key id {} -> {} ({} bytes)", a.model, key.key_id(), out.display(), sealed.len());
    Ok(())
}

pub fn decrypt(a: &DecryptArgs) -> Result<(), String> {
    let key = read_decryption_key(&a.key)?;
    let bytes = model_file::read_bytes(&a.model)?;
    let plain = Zeroizing::new(format::decrypt(&bytes, &key).map_err(|e| format!("{}: {e}", a.model))?);
    write_model(&a.out, &plain)?;
    println!("decrypted {} -> {} ({} bytes)", a.model, a.out.display(), plain.len());
    Ok(())
}

pub fn sign(a: &SignArgs) -> Result<(), String> {
    let key = read_secret_key(&a.key)?;
    let bytes = model_file::read_bytes(&a.model)?;
    let signed = format::sign(&bytes, &key).map_err(|e| format!("{}: {e}", a.model))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(&a.model));
    write_model(&out, &signed)?;
    println!(
        "signed {} with key id {} -> {} ({} bytes)",
        a.model,
        key.public_key().key_id(),
        out.display(),
        signed.len()
    );
    Ok(())
}

pub fn verify(a: &VerifyArgs) -> Result<(), String> {
    let keys = read_public_keys(&a.keys)?;
    let bytes = model_file::read_bytes(&a.model)?;
    let trusted: Vec<PublicKey> = keys.iter().map(|(_, k)| k.clone()).collect();
    if let Ok(Some((meta, info, enc_id))) = format::peek_encrypted(&bytes) {
        // Encrypted: the signature covers the ciphertext, so it is checked without decrypting.
        let sig = format::verify_signature(&bytes, &trusted).map_err(|e| format!("{}: {e}", a.model))?;
        let by = key_file(&keys, &sig.key_id);
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "file": a.model, "verified": true, "algorithm": sig.algorithm, "key_id": sig.key_id,
                    "key_file": by, "sha256": info.digest_hex, "name": meta.name, "version": meta.version,
                    "encrypted_for": enc_id.to_string(),
                })
            );
        } else {
            println!(
                "{}: signature verified: {} key id {} ({by}); encrypted model {} {} (key id {enc_id}; not decrypted), sha256 {}",
                a.model, sig.algorithm, sig.key_id, meta.name, meta.version, info.digest_hex
            );
        }
        return Ok(());
    }
    let opts = ReadOptions { trusted_keys: Some(trusted), ..Default::default() };
    let (model, info) = format::read_with_options(&bytes, &opts).map_err(|e| {
        let hint = match e.kind {
            mdeploy_core::ErrorKind::Untrusted => "",
            _ => " (the file itself is damaged or not a model: nothing to verify)",
        };
        format!("{}: {e}{hint}", a.model)
    })?;
    // read_with_options succeeded under a policy, so the file is signed by one of the keys.
    let sig = info.signature.ok_or_else(|| format!("{}: verified but carries no signature (a bug in mdeploy)", a.model))?;
    let by = key_file(&keys, &sig.key_id);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "file": a.model, "verified": true, "algorithm": sig.algorithm, "key_id": sig.key_id,
                "key_file": by, "sha256": info.digest_hex, "name": model.meta.name, "version": model.meta.version,
            })
        );
    } else {
        println!(
            "{}: signature verified: {} key id {} ({by}); model {} {}, sha256 {}",
            a.model, sig.algorithm, sig.key_id, model.meta.name, model.meta.version, info.digest_hex
        );
    }
    Ok(())
}

fn key_file(keys: &[(PathBuf, PublicKey)], id: &str) -> String {
    keys.iter().find(|(_, k)| k.key_id().to_string() == id).map(|(p, _)| p.display().to_string()).unwrap_or_default()
}
