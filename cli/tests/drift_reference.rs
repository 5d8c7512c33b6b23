//! The input-drift reference recorded when a model is made (issue 13): `mdeploy train` stores the
//! training split's `monitor.reference`, `quantize` and `prune` keep the source's, `convert
//! --reference-data` computes one, and `mdeploy serve` reports drift for a freshly trained model
//! against the model's own reference (`"reference": "model"`), with no `--drift-data`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mdeploy_core::format;
use mdeploy_core::monitor::{Reference, META_KEY};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy")).args(args).current_dir(root()).output().expect("mdeploy runs")
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = mdeploy(args);
    assert!(out.status.success(), "mdeploy {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn reference_of(path: &Path) -> Option<String> {
    let m = format::read(&std::fs::read(path).expect("model file")).expect("model reads");
    m.meta.provenance.extra.iter().find(|(k, _)| k == META_KEY).map(|(_, v)| v.clone())
}

fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("body");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn a_trained_model_carries_its_reference_and_serve_reports_drift_against_it() {
    let dir = std::env::temp_dir().join(format!("mdeploy-cli-drift-ref-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("repo/fresh/1")).expect("folders");
    let trained = dir.join("repo/fresh/1/model.mdm");
    let t = trained.to_str().expect("utf-8 path");

    // train: the reference of the 8,000 training digits.
    let v = ok_json(&["train", "--arch", "mlp", "--epochs", "1", "--out", t, "--json"]);
    assert_eq!(v["drift_reference"], "computed from the training split", "{v}");
    assert!(v["config"].get(META_KEY).is_none(), "the reference is not part of the training config: {v}");
    let text = reference_of(&trained).expect("a freshly trained model carries monitor.reference");
    let r = Reference::parse(&text).expect("the stored reference parses");
    assert_eq!(r.rows, 8000, "made from the 8,000 training digits");

    // quantize and prune keep the source's reference text as it is.
    let q = dir.join("q.mdm");
    let out = mdeploy(&["quantize", t, "--out", q.to_str().expect("path"), "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("input-drift reference: kept from the source model"));
    assert_eq!(reference_of(&q).as_deref(), Some(text.as_str()));
    let p = dir.join("p.mdm");
    let v = ok_json(&["prune", t, "--sparsity", "0.5", "--out", p.to_str().expect("path"), "--json"]);
    assert_eq!(v["drift_reference"], "kept from the source model", "{v}");
    assert_eq!(reference_of(&p).as_deref(), Some(text.as_str()));
    // A shipped model without one: prune computes it from the training split.
    let v = ok_json(&["prune", "models/mnist-mlp.mdm", "--sparsity", "0.5", "--out", p.to_str().expect("path"), "--json"]);
    assert_eq!(v["drift_reference"], "computed from the training split", "{v}");
    assert_eq!(reference_of(&p).as_deref(), Some(text.as_str()), "the same split gives the same reference");

    // serve, no --drift-data: 500 real test digits (50 of each class), then the monitor names the model's own
    // reference and finds no drift.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["serve", "--repository"])
        .arg(dir.join("repo"))
        .args(["--http", "127.0.0.1:0", "--no-grpc", "--poll-ms", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mdeploy serve starts");
    // Kept open to the end: the server prints more lines, and a closed pipe would fail them.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_string();
    let test = &mdeploy_testkit::mnist::split().test;
    for k in 0..50 {
        let data: Vec<f32> = (0..10).flat_map(|i| test.image((i * 200 + k) % test.n).to_vec()).collect();
        let body = serde_json::json!({ "inputs": [{ "name": "input", "shape": [10, 784], "datatype": "FP32", "data": data }] });
        let (status, answer) = request(&addr, "POST", "/v2/models/fresh/infer", body.to_string().as_bytes());
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = request(&addr, "GET", "/v2/models/fresh/monitor", b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{answer}");
    let m: serde_json::Value = serde_json::from_str(&answer).expect("monitor JSON");
    assert_eq!(m["drift"]["reference"], "model", "{m}");
    assert_eq!(m["drift"]["window_rows"], 500, "{m}");
    assert_eq!(m["drift"]["status"], "none", "real digits against the training split's reference: {m}");
    let _ = std::fs::remove_dir_all(&dir);
}
