//! The native reference for the serverless hosts' tests (`tests/serverless/`): answers a list of
//! HTTP requests with `mdeploy_serve::Server` compiled natively (the host's best kernels), so a
//! test can send the same requests to a Worker (workerd) or a wasi:http component (wasmtime) and
//! check that every host gives the same answers as the native core.
//!
//! ```text
//! cargo run --release -p mdeploy-wasm-server --example native_answers -- <requests.json> <answers.json> <name>=<model.mdm>...
//! ```
//! `requests.json`: `[{ "method", "path", "contentType": string|null, "headers"?: [[name, value]], "bodyHex": string }]`.
//! `answers.json`: `[{ "status", "contentType", "headers": [[name, value]], "body": string (UTF-8, lossy) }]`.
//! Every model is served as version `"1"`, as `mdeploy-wasm/server` does by default.

use mdeploy_serve::{ModelEntry, Request, Server};
use serde_json::{json, Value};
use std::process::ExitCode;

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("bodyHex has an odd length ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("bodyHex: not hex at offset {i}"))
        })
        .collect()
}

fn run() -> Result<(), String> {
    let usage = "usage: native_answers <requests.json> <answers.json> <name>=<model.mdm>...";
    let mut args = std::env::args().skip(1);
    let req_path = args.next().ok_or(usage)?;
    let out_path = args.next().ok_or(usage)?;
    let mut models = Vec::new();
    for a in args {
        let (name, path) = a.split_once('=').ok_or_else(|| format!("{a}: expected <name>=<model.mdm>; {usage}"))?;
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        models.push(ModelEntry::new(name, "1", bytes));
    }
    let text = std::fs::read_to_string(&req_path).map_err(|e| format!("cannot read {req_path}: {e}"))?;
    let reqs: Value = serde_json::from_str(&text).map_err(|e| format!("{req_path}: not JSON ({e})"))?;
    let reqs = reqs.as_array().ok_or_else(|| format!("{req_path}: expected a JSON array of requests"))?;
    let mut server = Server::new(models);
    let mut answers = Vec::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        let field = |k: &str| r.get(k).and_then(Value::as_str);
        let method = field("method").ok_or_else(|| format!("request {i}: no \"method\""))?;
        let path = field("path").ok_or_else(|| format!("request {i}: no \"path\""))?;
        let body = hex(field("bodyHex").unwrap_or(""))?;
        // Optional extra request headers, `[[name, value], ...]` (e.g. Inference-Header-Content-Length).
        let headers: Vec<(&str, &str)> = r
            .get("headers")
            .and_then(Value::as_array)
            .map(|hs| hs.iter().filter_map(|h| Some((h.get(0)?.as_str()?, h.get(1)?.as_str()?))).collect())
            .unwrap_or_default();
        let resp = server.handle(&Request { method, path, content_type: field("contentType"), headers: &headers, body: &body });
        answers.push(json!({
            "status": resp.status,
            "contentType": resp.content_type,
            "headers": resp.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&resp.body),
        }));
    }
    std::fs::write(&out_path, Value::Array(answers).to_string()).map_err(|e| format!("cannot write {out_path}: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    mdeploy_testkit::tool_main("native_answers", run)
}
