//! Dynamic batching (`[dynamic_batching]` in `config.toml`, `src/batch.rs`): 32 concurrent
//! clients with real test digits get, request for request, the bytes an unbatched server gives
//! the same requests one at a time (REST in four forms, bad requests among them, and gRPC from
//! tritonclient); the metrics show fewer executions than requests.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mdeploy_server::{DynamicBatching, ModelConfig};
use support::*;

const BATCHED: &str = "max_batch = 32\n[dynamic_batching]\nmax_queue_delay_us = 2000\n";
const CLIENTS: usize = 32;

/// One request of the mix: path, headers, body, and how many samples it carries if it is good.
struct Req {
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    samples: usize,
}

/// Request `i` for `model`: FP32 JSON `[1, 784]`, FP32 JSON `[2, 1, 28, 28]` asking for the
/// label only, UINT8 JSON, Triton binary (3 digits, labels), or (every 9th) a wrong shape.
fn request(model: &str, i: usize) -> Req {
    let d = digits();
    let path = format!("/v2/models/{model}/infer");
    let json = |v: serde_json::Value| Req {
        path: path.clone(),
        headers: vec![("content-type", "application/json".to_string())],
        body: v.to_string().into_bytes(),
        samples: 0,
    };
    let img = |k: usize| d[(i * 11 + k * 5) % d.len()].1.clone();
    if i % 9 == 8 {
        let r = json(serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 783], "datatype": "FP32", "data": vec![0.5f32; 783] }] }));
        return Req { samples: 0, ..r };
    }
    match i % 4 {
        0 => {
            let r = json(serde_json::json!({ "id": format!("r{i}"), "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img(0) }] }));
            Req { samples: 1, ..r }
        }
        1 => {
            let data: Vec<f32> = img(0).into_iter().chain(img(1)).collect();
            let r = json(serde_json::json!({
                "inputs": [{ "name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": data }],
                "outputs": [{ "name": "label" }]
            }));
            Req { samples: 2, ..r }
        }
        2 => {
            let data: Vec<u8> = img(0).iter().map(|v| (v * 255.0).round() as u8).collect();
            let r = json(serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "UINT8", "data": data }] }));
            Req { samples: 1, ..r }
        }
        _ => {
            let raw: Vec<u8> = (0..3).flat_map(img).flat_map(f32::to_le_bytes).collect();
            let head = serde_json::json!({
                "inputs": [{ "name": "input", "shape": [3, 784], "datatype": "FP32", "parameters": { "binary_data_size": raw.len() } }],
                "outputs": [{ "name": "probabilities", "parameters": { "binary_data": true } }, { "name": "label" }]
            })
            .to_string();
            let len = head.len().to_string();
            let mut body = head.into_bytes();
            body.extend_from_slice(&raw);
            Req { path: path.clone(), headers: vec![("inference-header-content-length", len)], body, samples: 3 }
        }
    }
}

async fn send(addr: std::net::SocketAddr, r: &Req) -> Reply {
    let h: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(addr, "POST", &r.path, &h, &r.body).await.expect("request answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_the_unbatched_answers_in_fewer_executions() {
    let plain = temp_repo("batch-plain");
    let batched = temp_repo("batch-on");
    for dir in [&plain, &batched] {
        put(dir, "mnist-cnn", 1, CNN);
        put(dir, "mnist-mlp", 1, MLP);
    }
    config(&batched, "mnist-cnn", BATCHED);
    config(&batched, "mnist-mlp", BATCHED);
    let a = start(&plain, false, None).await;
    let b = start(&batched, true, None).await;

    // The mix, answered one at a time by the unbatched server.
    let per_model = 160;
    let mut reqs = Vec::new();
    for model in ["mnist-cnn", "mnist-mlp"] {
        for i in 0..per_model {
            reqs.push(request(model, i));
        }
    }
    let mut want = Vec::new();
    for r in &reqs {
        want.push(send(a.http, r).await);
    }
    assert!(want.iter().all(|w| w.status == if w.body.starts_with(b"{\"error\"") { 400 } else { 200 }));
    assert_eq!(want.iter().filter(|w| w.status == 400).count(), 2 * (per_model / 9), "every 9th request is bad");

    // The same requests from 32 clients at once, interleaved over both models.
    let reqs = Arc::new(reqs);
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let addr = b.http;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (reqs, barrier) = (reqs.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut got = Vec::new();
            for k in (c..reqs.len()).step_by(CLIENTS) {
                got.push((k, send(addr, &reqs[k]).await));
            }
            got
        }));
    }
    let mut seen = 0;
    for t in tasks {
        for (k, g) in t.await.expect("client task") {
            let w = &want[k];
            assert_eq!(g.status, w.status, "request {k}: {}", g.text());
            assert_eq!(g.header("content-type"), w.header("content-type"), "request {k}");
            assert!(g.body == w.body, "request {k}: batched answer differs\n{}\n{}", g.text(), w.text());
            seen += 1;
        }
    }
    assert_eq!(seen, reqs.len());

    let text = get(b.http, "/metrics").await.text();
    for (model, bad) in [("mnist-cnn", per_model / 9), ("mnist-mlp", per_model / 9)] {
        let ok = (per_model - bad) as f64;
        let samples: usize = (0..per_model).map(|i| request(model, i).samples).sum();
        let m = |name| metric(&text, name, model, "1");
        assert_eq!(m("nv_inference_request_success"), ok, "{model}");
        assert_eq!(m("nv_inference_request_failure"), bad as f64, "{model}");
        assert_eq!(m("nv_inference_count"), samples as f64, "{model}: counts samples");
        let exec = m("nv_inference_exec_count");
        assert!(exec >= 1.0 && exec < ok, "{model}: {exec} executions for {ok} requests");
        assert!(m("nv_inference_queue_duration_us") > 0.0, "{model}: queueing measured");
        eprintln!("batching test: {model}: {ok} requests, {samples} samples, {exec} executions");
    }

    // gRPC from tritonclient, 32 clients at once, 256 single digits: the unbatched REST bits.
    let exec_before = metric(&text, "nv_inference_exec_count", "mnist-cnn", "1");
    let d = digits();
    let mut cases = Vec::new();
    for i in 0..256 {
        let img = d[(i * 13) % d.len()].1.clone();
        let body = serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img }] });
        let r = post(a.http, "/v2/models/mnist-cnn/infer", body.to_string().as_bytes()).await;
        assert_eq!(r.status, 200);
        let probs = r.json()["outputs"][0]["data"].clone();
        cases.push(serde_json::json!({ "image": img, "probs": probs }));
    }
    let spec = serde_json::json!({ "model": "mnist-cnn", "clients": CLIENTS, "cases": cases });
    let f = batched.join("grpc-cases.json");
    std::fs::write(&f, spec.to_string()).expect("cases");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_batch.py");
    let grpc = b.grpc.expect("grpc port");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python()).arg(script).arg(grpc.to_string()).arg(&f).output()
    })
    .await
    .expect("join")
    .expect("python runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    let text = get(b.http, "/metrics").await.text();
    let exec = metric(&text, "nv_inference_exec_count", "mnist-cnn", "1") - exec_before;
    assert!(exec >= 1.0 && exec < 256.0, "gRPC: {exec} executions for 256 requests");
    eprintln!("batching test: gRPC: 256 requests in {exec} executions");

    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(&plain);
    let _ = std::fs::remove_dir_all(&batched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_table_every_request_is_an_execution() {
    let dir = temp_repo("batch-off");
    put(&dir, "mnist-mlp", 1, MLP);
    config(&dir, "mnist-mlp", "max_batch = 32\n");
    let s = start(&dir, false, None).await;
    let addr = s.http;
    let tasks: Vec<_> = (0..16)
        .map(|i| tokio::spawn(async move { post(addr, "/v2/models/mnist-mlp/infer", &v2_body(i, 1)).await.status }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let text = get(addr, "/metrics").await.text();
    assert_eq!(metric(&text, "nv_inference_exec_count", "mnist-mlp", "1"), 16.0);
    assert_eq!(metric(&text, "nv_inference_request_success", "mnist-mlp", "1"), 16.0);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_table_is_read_with_tritons_names_and_checked() {
    let c = ModelConfig::parse("max_batch = 16\n[dynamic_batching]\nmax_queue_delay_us = 500\npreferred_batch_size = [8, 4, 8]\n")
        .expect("valid");
    assert_eq!(
        c.dynamic_batching,
        Some(DynamicBatching { max_queue_delay: Duration::from_micros(500), preferred: vec![4, 8] })
    );
    assert_eq!(ModelConfig::parse("max_batch = 4\n").expect("valid").dynamic_batching, None);
    let e = ModelConfig::parse("[dynamic_batching]\nmax_queue_delay_us = 100\n").expect_err("no cap");
    assert!(e.contains("needs max_batch"), "{e}");
    let e = ModelConfig::parse("max_batch = 4\n[dynamic_batching]\npreferred_batch_size = [8]\n").expect_err("past cap");
    assert!(e.contains("preferred_batch_size 8") && e.contains("max_batch (4)"), "{e}");
    let e = ModelConfig::parse("max_batch = 4\n[dynamic_batching]\nmax_queue_delay_us = 5000000\n").expect_err("5 s");
    assert!(e.contains("microseconds"), "{e}");
    let e = ModelConfig::parse("max_batch = 4\n[dynamic_batching]\nmax_queue_delay = 5\n").expect_err("unknown key");
    assert!(e.contains("max_queue_delay"), "{e}");
}

/// A gRPC request whose deadline (200 ms) passes while it waits in the batch queue (a 1 s delay
/// and no batch-mates) is answered as past its deadline and never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_holds_while_queued() {
    let dir = temp_repo("batch-deadline");
    put(&dir, "mnist-mlp", 1, MLP);
    config(&dir, "mnist-mlp", "max_batch = 32\n[dynamic_batching]\nmax_queue_delay_us = 1000000\n");
    let s = start(&dir, true, None).await;
    let grpc = s.grpc.expect("grpc port");
    let script = r#"
import sys, numpy as np, tritonclient.grpc as g
from tritonclient.utils import InferenceServerException
c = g.InferenceServerClient(sys.argv[1])
i = g.InferInput("input", [1, 784], "FP32"); i.set_data_from_numpy(np.full((1, 784), 0.5, dtype=np.float32))
try:
    c.infer("mnist-mlp", [i], client_timeout=0.2)
    print("answered")
except InferenceServerException as e:
    print(e.status())
"#;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python()).arg("-c").arg(script).arg(grpc.to_string()).output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Ours is DEADLINE_EXCEEDED; tonic's own timeout layer may answer CANCELLED first (SERVER.md).
    assert!(said == "StatusCode.DEADLINE_EXCEEDED" || said == "StatusCode.CANCELLED", "{said} {}", String::from_utf8_lossy(&out.stderr));
    // After the batch thread's 1 s wait: it dropped the request unrun.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = get(s.http, "/metrics").await.text();
    assert_eq!(metric(&text, "nv_inference_exec_count", "mnist-mlp", "1"), 0.0, "the late request ran");
    assert_eq!(metric(&text, "nv_inference_request_failure", "mnist-mlp", "1"), 1.0);
    assert_eq!(metric(&text, "nv_inference_request_success", "mnist-mlp", "1"), 0.0);
    // The queue still works: the next request (no deadline) is answered after the delay.
    assert_eq!(post(s.http, "/v2/models/mnist-mlp/infer", &v2_body(0, 1)).await.status, 200);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
