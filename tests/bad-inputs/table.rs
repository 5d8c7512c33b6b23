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
    let mut b = std::fs::read(models_dir.join(format!("{from}.mdm"))).expect("default model");
    for op in row["ops"].as_array().expect("ops") {
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
