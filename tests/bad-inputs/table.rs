//! tests/bad-inputs/table.json for Rust test suites (`#[path]`-included by serve/tests/bad_inputs.rs
//! and serve/server/tests/bad_inputs.rs); table.mjs does the same for the Node suites.
#![allow(dead_code)]

use serde_json::Value;

const TABLE: &str = include_str!("table.json");

pub fn table() -> Value {
    serde_json::from_str(TABLE).expect("tests/bad-inputs/table.json is JSON")
}

pub fn s<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or_else(|| panic!("row {}: no string {key}", row["name"]))
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
}

/// `{{repeat TEXT N}}` → TEXT repeated N times (the table's one template).
fn expand(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("{{repeat ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 9..];
        let end = tail.find("}}").expect("}} closes {{repeat");
        let (text, n) = tail[..end].rsplit_once(' ').expect("{{repeat TEXT N}}");
        out.push_str(&text.repeat(n.parse().expect("N")));
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The bytes a request row sends.
pub fn request_body(row: &Value) -> Vec<u8> {
    if let Some(b) = row.get("body") {
        expand(b.as_str().expect("body is text")).into_bytes()
    } else if let Some(b) = row.get("bodyBytes") {
        vec![b["fill"].as_u64().expect("fill") as u8; b["len"].as_u64().expect("len") as usize]
    } else if let Some(h) = row.get("bodyHex") {
        unhex(h.as_str().expect("hex"))
    } else {
        Vec::new()
    }
}

/// The bytes of a bad model row: a default model's file with the row's operations applied.
pub fn model_bytes(row: &Value, models_dir: &std::path::Path) -> Vec<u8> {
    let from = s(row, "from");
    let b = std::fs::read(models_dir.join(format!("{from}.mdm"))).expect("default model");
    apply_ops(row, b)
}

/// A row's `ops`, in order, on `b`.
fn apply_ops(row: &Value, mut b: Vec<u8>) -> Vec<u8> {
    for op in row["ops"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let at = |v: &Value, len: usize| -> usize {
            let i = v.as_i64().expect("offset");
            if i < 0 { len - (-i) as usize } else { i as usize }
        };
        if let Some(n) = op.get("truncate") {
            let n = at(n, b.len());
            b.truncate(n);
        } else if let Some(t) = op.get("text") {
            b = t.as_str().expect("text").as_bytes().to_vec();
        } else if let Some(h) = op.get("hex") {
            b = unhex(h.as_str().expect("hex"));
        } else if let Some(i) = op.get("flip") {
            let i = at(i, b.len());
            b[i] ^= 1;
        } else if let Some(n) = op.get("append") {
            b.extend(std::iter::repeat_n(0u8, n.as_u64().expect("append") as usize));
        } else if let Some(set) = op.get("set") {
            let at = set["at"].as_u64().expect("at") as usize;
            let v = unhex(s(set, "hex"));
            b[at..at + v.len()].copy_from_slice(&v);
        } else if op.get("reseal").is_some() {
            // A valid digest again (MDM_FORMAT.md), so the reader gets past it to the check the
            // row is about.
            b = mdeploy_testkit::reseal(b);
        } else if op.get("resealSigned").is_some() {
            b = mdeploy_testkit::reseal_signed(b);
        } else {
            panic!("row {}: unknown op {op}", row["name"]);
        }
    }
    b
}

/// Checks an error answer: status, JSON `{"error", "code"}`, a message that says what to fix
/// and mentions the row's `says`.
pub fn check_error(name: &str, status: u16, body: &[u8], want_status: u64, want_code: &str, says: &str) {
    assert_eq!(u64::from(status), want_status, "{name}: {}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("{name}: not JSON"));
    assert_eq!(v["code"], want_code, "{name}: {v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.len() > 10, "{name}: an error that says what to fix: {msg:?}");
    assert!(msg.to_lowercase().contains(&says.to_lowercase()), "{name}: {msg:?} should mention {says:?}");
}

// ---- The `keys` section: signed and encrypted models and key files ----------------------------
//
// A key row names how its file is made from a default model with the real library calls that
// `mdeploy sign` / `mdeploy encrypt` run (`format::encrypt`, then `format::sign`), then the row's
// `ops` (the model rows' ops, plus `resealSigned`: a valid digest again over a signed file, as an
// attacker without the secret key would make it), and the host's configuration: `trust` (the
// trusted public keys) and `decryptWith` (the decryption key). A `keyFile` row is a damaged key
// file handed to the host instead (`for`: "trust" or "decryption"). The keys come from fixed
// seeds: test keys, nobody's.

use mdeploy_core::format::{self, DecryptionKey, PublicKey, SecretKey};

/// The signing keys the rows name.
pub const SIGNERS: [(&str, u8); 2] = [("publisher", 0xa1), ("stranger", 0xb2)];
/// The encryption keys the rows name.
pub const ENCRYPTION_KEYS: [(&str, u8); 2] = [("model-key", 0xc3), ("other-key", 0xd4)];

pub fn signer(name: &str) -> SecretKey {
    let (_, seed) = SIGNERS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no signing key {name:?} in SIGNERS"));
    SecretKey::from_seed(&[*seed; 32])
}

pub fn encryption_key(name: &str) -> DecryptionKey {
    let (_, b) = ENCRYPTION_KEYS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no encryption key {name:?}"));
    DecryptionKey::from_bytes(&[*b; 32])
}

/// One key row made concrete: the file, the good file a host loads after it under the same
/// configuration, and that configuration as key file texts (what hosts are given).
pub struct KeyCase {
    pub bytes: Vec<u8>,
    pub good: Vec<u8>,
    /// `.pub` texts of the trusted keys (`None`: no trust policy).
    pub trusted: Option<Vec<String>>,
    /// The `.enckey` text of the decryption key (`None`: no key given).
    pub decryption_key: Option<String>,
    /// A `keyFile` row: which key file is damaged ("trust" or "decryption") and its text.
    pub key_file: Option<(String, String)>,
}

/// `mdeploy encrypt` then `mdeploy sign` as the row says, on `plain`.
fn protect(row: &Value, plain: &[u8]) -> Vec<u8> {
    let mut b = plain.to_vec();
    if let Some(k) = row["encrypt"].as_str() {
        // A fixed nonce: each fixture is encrypted once per key, and these keys are test keys.
        b = format::encrypt(&b, &encryption_key(k), &[7; 12]).unwrap_or_else(|e| panic!("row {}: encrypt: {e}", row["name"]));
    }
    if let Some(k) = row["sign"].as_str() {
        b = format::sign(&b, &signer(k)).unwrap_or_else(|e| panic!("row {}: sign: {e}", row["name"]));
    }
    b
}

/// The bytes, good file and host configuration of a `keys` row.
pub fn key_case(row: &Value, models_dir: &std::path::Path) -> KeyCase {
    let plain = std::fs::read(models_dir.join(format!("{}.mdm", s(row, "from")))).expect("default model");
    let trust: Option<Vec<&str>> = row["trust"].as_array().map(|a| a.iter().map(|k| k.as_str().expect("key name")).collect());
    let decrypt_with = row["decryptWith"].as_str();
    let mut bytes = apply_ops(row, protect(row, &plain));
    // The good file under the same configuration: signed by the first trusted key, encrypted for
    // the key the host holds.
    let mut good = plain.clone();
    if let Some(k) = decrypt_with {
        good = format::encrypt(&good, &encryption_key(k), &[9; 12]).expect("encrypts");
    }
    if let Some(k) = trust.as_ref().and_then(|t| t.first()) {
        good = format::sign(&good, &signer(k)).expect("signs");
    }
    let key_file = row.get("keyFile").map(|k| {
        let text = s(k, "text");
        let text = if let Some(name) = text.strip_prefix("{{secret ").and_then(|t| t.strip_suffix("}}")) {
            signer(name).to_text().to_string()
        } else {
            text.to_string()
        };
        (s(k, "for").to_string(), text)
    });
    if key_file.is_some() {
        // The file is the good one: the host refuses the key, not the model.
        bytes = good.clone();
    }
    KeyCase {
        bytes,
        good,
        trusted: trust.map(|t| t.iter().map(|k| signer(k).public_key().to_text()).collect()),
        decryption_key: decrypt_with.map(|k| encryption_key(k).to_text().to_string()),
        key_file,
    }
}

/// What the native reader says about a key row: the error of reading its file under its
/// configuration (key files parsed as hosts parse them). `Ok` if it loads.
pub fn key_case_error(case: &KeyCase) -> Result<(), mdeploy_core::Error> {
    let mut opts = format::ReadOptions::default();
    if let Some(t) = &case.trusted {
        opts.trusted_keys = Some(t.iter().map(|k| PublicKey::from_text(k)).collect::<Result<_, _>>()?);
    }
    if let Some(k) = &case.decryption_key {
        opts.decryption_key = Some(DecryptionKey::from_text(k)?);
    }
    match &case.key_file {
        Some((f, text)) if f == "trust" => {
            PublicKey::from_text(text)?;
        }
        Some((_, text)) => {
            DecryptionKey::from_text(text)?;
        }
        None => {}
    }
    format::read_with_options(&case.bytes, &opts).map(|_| ())
}
