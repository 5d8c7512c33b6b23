//! Fixtures for the trust-policy tests of the npm package (`wasm/test/trust.test.mjs`) and the
//! serverless hosts: models signed by the Rust API (`format::sign`, what `mdeploy sign` runs),
//! the keys as `mdeploy keygen` writes them, and the small-order Ed25519 key encodings the
//! native reader refuses, so the JS policy can be checked against the same list.
//!
//! ```text
//! cargo run --release -p mdeploy-wasm --example trust_fixtures -- <out-dir> <model.mdm>
//! ```
//! Writes to `<out-dir>`: `a.pub`, `b.pub` (key files), `a.raw`, `b.raw` (the 32 key bytes),
//! `signed-a.mdm`, `signed-b.mdm`, `unsigned.mdm`, `bad-signature.mdm` (signed by a, one bit of
//! the signature flipped: the digest still holds), `tampered.mdm` (signed by a, one byte of the
//! model changed and the digest recomputed, as an attacker without the key would),
//! `corrupt.mdm` (signed by a, one byte changed, digest not recomputed), and `trust.json`
//! (`{ keys: { a: { keyId }, b: { keyId } }, weakKeys: [hex...] }`).
//! Keys come from fixed seeds: test keys, obviously nobody's.

use curve25519_dalek::constants::EIGHT_TORSION;
use mdeploy_core::format::{self, PublicKey, SecretKey};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// Every 32-byte encoding of a small-order point that `PublicKey::from_bytes` refuses as weak:
/// the canonical encodings of the 8 torsion points, their sign-bit twins and the non-canonical
/// `y + p` forms where they fit, each kept only if the native reader refuses it as weak.
fn weak_keys() -> Vec<String> {
    // p = 2^255 - 19, little-endian.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut out: Vec<[u8; 32]> = Vec::new();
    for point in EIGHT_TORSION.iter() {
        let c = point.compress().to_bytes();
        let mut y = c;
        y[31] &= 0x7f;
        let mut forms = vec![y];
        // y + p < 2^255 only for y < 19 (then the encoding is non-canonical but decodes).
        if y[1..].iter().all(|&b| b == 0) && y[0] < 19 {
            let mut z = p;
            z[0] = z[0].wrapping_add(y[0]);
            forms.push(z);
        }
        for f in forms {
            for sign in [0u8, 0x80] {
                let mut e = f;
                e[31] |= sign;
                let weak = matches!(PublicKey::from_bytes(&e), Err(err) if err.message.contains("weak"));
                if weak && !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }
    out.iter().map(|b| b.iter().map(|x| format!("{x:02x}")).collect()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(dir.join(name), bytes).map_err(|e| format!("{}: {e}", dir.join(name).display()))
}

fn run(dir: &Path, model: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plain = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let a = SecretKey::from_seed(&[0xa1; 32]);
    let b = SecretKey::from_seed(&[0xb2; 32]);
    let sign = |k: &SecretKey| format::sign(&plain, k).map_err(|e| e.to_string());
    let signed_a = sign(&a)?;
    let signed_b = sign(&b)?;
    let unsigned = format::read(&plain).and_then(|m| format::write(&m)).map_err(|e| e.to_string())?;

    let mut bad_sig = signed_a.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;

    let end = signed_a.len() - format::codes::signature::SECTION_LEN;
    let at = end - 16; // inside the DATA section, well past the header and table
    let mut tampered = signed_a.clone();
    tampered[at] ^= 0x40;
    let mut corrupt = tampered.clone();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, &tampered[..32]);
    sha2::Digest::update(&mut h, &tampered[64..end]);
    tampered[32..64].copy_from_slice(&sha2::Digest::finalize(h));
    corrupt[32..64].copy_from_slice(&signed_a[32..64]);

    for (name, k) in [("a", &a), ("b", &b)] {
        write(dir, &format!("{name}.pub"), k.public_key().to_text().as_bytes())?;
        write(dir, &format!("{name}.raw"), &k.public_key().to_bytes())?;
    }
    write(dir, "signed-a.mdm", &signed_a)?;
    write(dir, "signed-b.mdm", &signed_b)?;
    write(dir, "unsigned.mdm", &unsigned)?;
    write(dir, "bad-signature.mdm", &bad_sig)?;
    write(dir, "tampered.mdm", &tampered)?;
    write(dir, "corrupt.mdm", &corrupt)?;
    let weak = weak_keys();
    if weak.len() < 8 {
        return Err(format!("only {} weak key encodings found: the torsion points changed?", weak.len()));
    }
    let info = json!({
        "model": model.display().to_string(),
        "keys": {
            "a": { "keyId": a.public_key().key_id().to_string() },
            "b": { "keyId": b.public_key().key_id().to_string() },
        },
        "weakKeys": weak,
    });
    write(dir, "trust.json", serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?.as_bytes())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, model] = args.as_slice() else {
        eprintln!("usage: trust_fixtures <out-dir> <model.mdm>");
        return ExitCode::from(2);
    };
    match run(Path::new(dir), Path::new(model)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trust_fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}
