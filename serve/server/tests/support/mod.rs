//! What the server suites share: a model repository in a temporary folder, the server on
//! 127.0.0.1:0, a small HTTP/1.1 client (hyper's), and the real test digits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use mdeploy_server::{Options, Running};
use serde_json::Value;

pub const CNN: &[u8] = include_bytes!("../../../../models/mnist-cnn.mdm");
pub const MLP: &[u8] = include_bytes!("../../../../models/mnist-mlp.mdm");

/// A fresh, empty folder for one test (removed first if a previous run left it).
pub fn temp_repo(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdeploy-server-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

/// Writes `DIR/<model>/<version>/model.mdm`.
pub fn put(dir: &Path, model: &str, version: u64, bytes: &[u8]) -> PathBuf {
    let d = dir.join(model).join(version.to_string());
    std::fs::create_dir_all(&d).expect("version folder");
    let p = d.join("model.mdm");
    std::fs::write(&p, bytes).expect("model file");
    p
}

pub fn config(dir: &Path, model: &str, text: &str) {
    std::fs::create_dir_all(dir.join(model)).expect("model folder");
    std::fs::write(dir.join(model).join("config.toml"), text).expect("config.toml");
}

pub async fn start(dir: &Path, grpc: bool, poll: Option<Duration>) -> Running {
    let local = "127.0.0.1:0".parse().expect("address");
    mdeploy_server::start(Options { grpc: grpc.then_some(local), poll, ..Options::new(dir, local) })
        .await
        .expect("server starts")
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a new connection.
pub async fn http(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut b = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::copy_from_slice(body))).map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
    Ok(Reply { status, headers, body })
}

pub async fn get(addr: std::net::SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, &[], b"").await.expect("GET")
}

pub async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> Reply {
    http(addr, "POST", path, &[("content-type", "application/json")], body).await.expect("POST")
}

/// The test split: (label, 784 floats in 0..1), the testkit's one loader.
pub fn digits() -> &'static Vec<(usize, Vec<f32>)> {
    static D: OnceLock<Vec<(usize, Vec<f32>)>> = OnceLock::new();
    D.get_or_init(|| {
        let t = &mdeploy_testkit::mnist::split().test;
        (0..t.n).map(|i| (t.labels[i] as usize, t.image(i).to_vec())).collect()
    })
}

/// A KServe v2 JSON request for `n` digits from `start` (every 7th, so all classes appear).
pub fn v2_body(start: usize, n: usize) -> Vec<u8> {
    let d = digits();
    let data: Vec<f32> = (0..n).flat_map(|i| d[(start + 7 * i) % d.len()].1.clone()).collect();
    serde_json::to_vec(&serde_json::json!({
        "id": format!("req-{start}"),
        "inputs": [{ "name": "input", "shape": [n, 784], "datatype": "FP32", "data": data }]
    }))
    .expect("json")
}

/// The bootstrap's Python with tritonclient: `$MDEPLOY_PY_VENV/bin/python`, default
/// `~/.cache/mdeploy/py-venv`.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("MDEPLOY_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mdeploy/py-venv"));
    venv.join("bin/python")
}

/// A KServe v2 request of `n` real digits as Triton binary tensors (JSON header + raw f32),
/// asking only for labels: `(body, header length)` for `inference-header-content-length`.
pub fn binary_request(n: usize) -> (Vec<u8>, String) {
    let d = digits();
    let raw: Vec<u8> = (0..n).flat_map(|i| d[i % d.len()].1.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).collect();
    let head = serde_json::json!({
        "inputs": [{ "name": "input", "shape": [n, 784], "datatype": "FP32", "parameters": { "binary_data_size": raw.len() } }],
        "outputs": [{ "name": "label" }]
    })
    .to_string();
    let len = head.len().to_string();
    let mut body = head.into_bytes();
    body.extend_from_slice(&raw);
    (body, len)
}

pub fn metric(text: &str, name: &str, model: &str, version: &str) -> f64 {
    let series = format!("{name}{{model=\"{model}\",version=\"{version}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(series.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}
