//! `mdeploy keygen`, `sign`, `verify` and `info` on signed models, through the real binary and
//! the real default models.

mod support;

use support::{fails_with, mdeploy, ok, ok_json, s, tmp_dir};

#[test]
fn keygen_sign_verify_and_info_round_trip() {
    let dir = tmp_dir("trust-roundtrip");
    let keys = dir.join("keys");
    let out = ok(&["keygen", "--out", s(&keys), "--name", "release"]);
    let secret = keys.join("release.key");
    let public = keys.join("release.pub");
    assert!(out.contains("key id"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the secret key is private");
    }
    let pub_text = std::fs::read_to_string(&public).unwrap();
    assert!(pub_text.starts_with("mdeploy-ed25519-public "), "{pub_text}");
    // keygen never overwrites a key.
    fails_with(&["keygen", "--out", s(&keys), "--name", "release"], &["already exists", "--name"]);

    let signed = dir.join("cnn-signed.mdm");
    ok(&["sign", "models/mnist-cnn.mdm", "--key", s(&secret), "--out", s(&signed)]);
    let v = ok_json(&["verify", s(&signed), "--pub", s(&public), "--json"]);
    assert_eq!(v["verified"], true, "{v}");
    let id = v["key_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16, "{v}");
    // A folder of keys works too.
    let text = ok(&["verify", s(&signed), "--pub", s(&keys)]);
    assert!(text.contains("signature verified") && text.contains(&id), "{text}");

    // info shows it signed, with the key id; the unsigned original says so too.
    let info = ok_json(&["info", s(&signed), "--json"]);
    assert_eq!(info["signature"]["key_id"], id.as_str(), "{info}");
    assert_eq!(info["signature"]["verified"], false, "{info}");
    assert!(ok(&["info", s(&signed)]).contains(&format!("signed    ed25519 key id {id}")));
    assert!(ok_json(&["info", "models/mnist-cnn.mdm", "--json"])["signature"].is_null());
    assert!(ok(&["info", "models/mnist-cnn.mdm"]).contains("signed    no"));

    // The signed model still runs everywhere: eval gives the original's accuracy.
    let a = ok_json(&["eval", s(&signed), "--json"]);
    let b = ok_json(&["eval", "models/mnist-cnn.mdm", "--json"]);
    assert_eq!(a["accuracy"], b["accuracy"]);

    // Signing in place (no --out).
    let copy = dir.join("mlp.mdm");
    std::fs::copy(support::root().join("models/mnist-mlp.mdm"), &copy).unwrap();
    ok(&["sign", s(&copy), "--key", s(&secret)]);
    ok(&["verify", s(&copy), "--pub", s(&public)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_refuses_with_a_nonzero_exit_and_says_what_to_do() {
    let dir = tmp_dir("trust-refuse");
    ok(&["keygen", "--out", s(&dir), "--name", "a"]);
    ok(&["keygen", "--out", s(&dir), "--name", "b"]);
    let (a_key, a_pub, b_pub) = (dir.join("a.key"), dir.join("a.pub"), dir.join("b.pub"));
    let signed = dir.join("signed.mdm");
    ok(&["sign", "models/mnist-mlp.mdm", "--key", s(&a_key), "--out", s(&signed)]);

    // Unsigned.
    fails_with(&["verify", "models/mnist-mlp.mdm", "--pub", s(&a_pub)], &["UNTRUSTED", "not signed", "mdeploy sign"]);
    // Signed by a key that is not trusted: names the signer's key id.
    let id = ok_json(&["info", s(&signed), "--json"])["signature"]["key_id"].as_str().unwrap().to_string();
    fails_with(&["verify", s(&signed), "--pub", s(&b_pub)], &["UNTRUSTED", &id, "not a trusted key"]);
    // One byte changed after signing (digest recomputed, as anyone can): the signature fails.
    let mut bytes = std::fs::read(&signed).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let tampered = reseal_signed(bytes);
    let tampered_path = dir.join("tampered.mdm");
    std::fs::write(&tampered_path, tampered).unwrap();
    fails_with(&["verify", s(&tampered_path), "--pub", s(&a_pub)], &["UNTRUSTED", "does not verify", &id]);
    // A plain flipped byte: the digest catches it first, and the message says so.
    let mut bytes = std::fs::read(&signed).unwrap();
    bytes[n / 2] ^= 1;
    std::fs::write(&tampered_path, bytes).unwrap();
    fails_with(&["verify", s(&tampered_path), "--pub", s(&a_pub)], &["BAD_MODEL", "corrupt"]);
    // Keys swapped or missing.
    fails_with(&["verify", s(&signed), "--pub", s(&a_key)], &["secret key", ".pub"]);
    fails_with(&["sign", "models/mnist-mlp.mdm", "--key", s(&a_pub)], &["public key", ".key"]);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_with(&["verify", s(&signed), "--pub", s(&empty)], &["no .pub files"]);
    let out = mdeploy(&["verify", s(&signed)]);
    assert!(!out.status.success(), "--pub is required");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recomputes a signed file's digest as someone without the key could (the SIGNATURE section,
/// the last 80 bytes, is not covered).
fn reseal_signed(mut b: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let end = b.len() - 80;
    let mut h = Sha256::new();
    h.update(&b[..32]);
    h.update(&b[64..end]);
    let d = h.finalize();
    b[32..64].copy_from_slice(&d);
    b
}

#[test]
fn help_teaches_the_key_workflow() {
    for (cmd, needles) in [
        ("keygen", &["NAME.key", "0600", "NAME.pub", "mdeploy sign"][..]),
        ("sign", &["--key", "--out", "in place", "mdeploy info"][..]),
        ("verify", &["--pub", "Exit status", "folder"][..]),
    ] {
        let help = ok(&[cmd, "--help"]);
        for n in needles {
            assert!(help.contains(n), "mdeploy {cmd} --help should mention {n:?}: {help}");
        }
    }
}

#[test]
fn encrypt_sign_verify_decrypt_and_info_through_the_binary() {
    let dir = tmp_dir("trust-encrypt");
    let out = ok(&["keygen", "--out", s(&dir), "--name", "model", "--encryption"]);
    let enckey = dir.join("model.enckey");
    assert!(out.contains("key id") && !dir.join("model.pub").exists(), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&enckey).unwrap().permissions().mode() & 0o777, 0o600);
    }
    ok(&["keygen", "--out", s(&dir), "--name", "release"]);
    let sealed = dir.join("cnn.enc.mdm");
    ok(&["encrypt", "models/mnist-cnn.mdm", "--key", s(&enckey), "--out", s(&sealed)]);
    // Encrypt-then-sign, and verify without the decryption key.
    ok(&["sign", s(&sealed), "--key", s(&dir.join("release.key"))]);
    let v = ok_json(&["verify", s(&sealed), "--pub", s(&dir.join("release.pub")), "--json"]);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["name"], "mnist-cnn", "{v}");

    // info reads the clear metadata and names the key; nothing about layers.
    let info = ok_json(&["info", s(&sealed), "--json"]);
    assert_eq!(info["encrypted"]["algorithm"], "chacha20-poly1305", "{info}");
    assert_eq!(info["name"], "mnist-cnn");
    assert!(info.get("nodes").is_none(), "{info}");
    let key_id = info["encrypted"]["key_id"].as_str().unwrap().to_string();
    assert!(ok(&["info", s(&sealed)]).contains(&format!("encrypted chacha20-poly1305 for key id {key_id}")));

    // Commands that run models say how to get a plain one.
    fails_with(&["eval", s(&sealed)], &["DECRYPT_FAILED", &key_id, "mdeploy decrypt"]);

    // Decrypt gives a model that scores what the original scores.
    let plain = dir.join("cnn.mdm");
    ok(&["decrypt", s(&sealed), "--key", s(&enckey), "--out", s(&plain)]);
    assert_eq!(ok_json(&["eval", s(&plain), "--json"])["accuracy"], ok_json(&["eval", "models/mnist-cnn.mdm", "--json"])["accuracy"]);

    // Another key, a signing key in its place, a tampered file.
    ok(&["keygen", "--out", s(&dir), "--name", "other", "--encryption"]);
    fails_with(&["decrypt", s(&sealed), "--key", s(&dir.join("other.enckey")), "--out", s(&plain)], &["DECRYPT_FAILED", &key_id]);
    fails_with(&["decrypt", s(&sealed), "--key", s(&dir.join("release.key")), "--out", s(&plain)], &["signing key", ".enckey"]);
    let mut bytes = std::fs::read(&sealed).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 4;
    let tampered = dir.join("tampered.mdm");
    std::fs::write(&tampered, &bytes).unwrap();
    fails_with(&["decrypt", s(&tampered), "--key", s(&enckey), "--out", s(&plain)], &["corrupt"]);
    fails_with(&["verify", s(&tampered), "--pub", s(&dir.join("release.pub"))], &["corrupt"]);
    let _ = std::fs::remove_dir_all(&dir);
}

mod serve_trust {
    use super::support::{ok, s, spawn_serve, tmp_dir};

    #[test]
    fn serve_with_a_trust_dir_keeps_the_signed_version_when_an_unsigned_one_arrives() {
        let dir = tmp_dir("trust-serve");
        let keys = dir.join("keys");
        ok(&["keygen", "--out", s(&keys), "--name", "release"]);
        // The secret key must not sit in the trust folder: move it out.
        let secret = dir.join("release.key");
        std::fs::rename(keys.join("release.key"), &secret).unwrap();
        let repo = dir.join("repo");
        std::fs::create_dir_all(repo.join("mnist-mlp/1")).unwrap();
        std::fs::create_dir_all(repo.join("mnist-cnn/1")).unwrap();
        let v1 = repo.join("mnist-mlp/1/model.mdm");
        ok(&["sign", "models/mnist-mlp.mdm", "--key", s(&secret), "--out", s(&v1)]);
        // An unsigned model next to it is not served at all.
        std::fs::copy(super::support::root().join("models/mnist-cnn.mdm"), repo.join("mnist-cnn/1/model.mdm")).unwrap();

        let srv = spawn_serve(&["--repository", s(&repo), "--http", "127.0.0.1:0", "--no-grpc", "--poll-ms", "0", "--trust-dir", s(&keys)], 3);
        let text = srv.banner.clone();
        assert!(text.contains("only models signed by") && text.contains("key ids"), "{text}");
        let request = |method: &str, path: &str, body: &str| srv.request(method, path, body);
        let result = std::panic::catch_unwind(|| {
            let ready = |m: &str, v: u32| request("GET", &format!("/v2/models/{m}/versions/{v}/ready"), "");
            assert!(ready("mnist-mlp", 1).starts_with("HTTP/1.1 200"), "the signed version serves");
            assert!(!ready("mnist-cnn", 1).starts_with("HTTP/1.1 200"), "the unsigned model does not");
            let index = request("POST", "/v2/repository/index", "{}");
            assert!(index.contains("UNTRUSTED") && index.contains("not signed"), "{index}");

            // An unsigned version 2 arrives: refused, version 1 keeps serving.
            std::fs::create_dir_all(repo.join("mnist-mlp/2")).unwrap();
            let v2 = repo.join("mnist-mlp/2/model.mdm");
            std::fs::copy(super::support::root().join("models/mnist-mlp-student.mdm"), &v2).unwrap();
            let load = request("POST", "/v2/repository/models/mnist-mlp/load", "{}");
            assert!(load.starts_with("HTTP/1.1 400") && load.contains("UNTRUSTED"), "{load}");
            assert!(ready("mnist-mlp", 1).starts_with("HTTP/1.1 200"), "version 1 still serves");
            assert!(!ready("mnist-mlp", 2).starts_with("HTTP/1.1 200"), "the unsigned version 2 does not");

            // Signed, the same version 2 loads (and replaces 1 under the default policy).
            ok(&["sign", s(&v2), "--key", s(&secret)]);
            let load = request("POST", "/v2/repository/models/mnist-mlp/load", "{}");
            assert!(load.starts_with("HTTP/1.1 200"), "{load}");
            assert!(ready("mnist-mlp", 2).starts_with("HTTP/1.1 200"), "signed version 2 serves");
        });
        drop(srv);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }

    #[test]
    fn serve_with_a_decryption_key_serves_encrypted_versions_and_refuses_another_key() {
        let dir = tmp_dir("trust-serve-decrypt");
        let keys = dir.join("keys");
        ok(&["keygen", "--out", s(&keys), "--name", "model", "--encryption"]);
        ok(&["keygen", "--out", s(&keys), "--name", "other", "--encryption"]);
        let repo = dir.join("repo");
        std::fs::create_dir_all(repo.join("mnist-mlp/1")).unwrap();
        std::fs::create_dir_all(repo.join("mnist-mlp/2")).unwrap();
        let v1 = repo.join("mnist-mlp/1/model.mdm");
        ok(&["encrypt", "models/mnist-mlp.mdm", "--key", s(&keys.join("model.enckey")), "--out", s(&v1)]);

        let srv = spawn_serve(
            &["--repository", s(&repo), "--http", "127.0.0.1:0", "--no-grpc", "--poll-ms", "0", "--decryption-key", s(&keys.join("model.enckey"))],
            3,
        );
        let text = srv.banner.clone();
        assert!(text.contains("decrypting encrypted models with key id"), "{text}");
        let request = |method: &str, path: &str, body: &str| srv.request(method, path, body);
        let result = std::panic::catch_unwind(|| {
            let ready = |v: u32| request("GET", &format!("/v2/models/mnist-mlp/versions/{v}/ready"), "");
            assert!(ready(1).starts_with("HTTP/1.1 200"), "the encrypted version serves");
            let zeros = vec!["0"; 784].join(",");
            let infer = request(
                "POST",
                "/v2/models/mnist-mlp/infer",
                &format!(r#"{{"inputs":[{{"name":"input","shape":[1,784],"datatype":"FP32","data":[{zeros}]}}]}}"#),
            );
            assert!(infer.starts_with("HTTP/1.1 200"), "{infer}");

            // Version 2, encrypted for another key: refused, version 1 keeps serving.
            let v2 = repo.join("mnist-mlp/2/model.mdm");
            ok(&["encrypt", "models/mnist-mlp-student.mdm", "--key", s(&keys.join("other.enckey")), "--out", s(&v2)]);
            let load = request("POST", "/v2/repository/models/mnist-mlp/load", "{}");
            assert!(load.starts_with("HTTP/1.1 400") && load.contains("DECRYPT_FAILED"), "{load}");
            assert!(ready(1).starts_with("HTTP/1.1 200"), "version 1 still serves");
            assert!(!ready(2).starts_with("HTTP/1.1 200"), "version 2 does not");
            let metrics = request("GET", "/metrics", "");
            assert!(metrics.contains("mdeploy_model_load_failures_total{model=\"mnist-mlp\",version=\"2\"} 1"), "{metrics}");
        });
        drop(srv);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    }
}
