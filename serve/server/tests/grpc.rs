//! Slice 2: KServe v2 gRPC through Python's `tritonclient.grpc` (raw and typed tensors, labels,
//! errors, deadlines) on real test digits, against the same server's REST answers.
//! Python: `$MDEPLOY_PY_VENV/bin/python` (default `~/.cache/mdeploy/py-venv`, made by the bootstrap).

mod support;

use serde_json::{json, Value};
use support::*;

const RESNET: &[u8] = include_bytes!("../../../models/mnist-resnet.mdm");

async fn rest_answer(addr: std::net::SocketAddr, version: &str, datatype: &str, data: Value) -> Value {
    let body = json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": datatype, "data": data }] });
    let r = post(addr, &format!("/v2/models/digits/versions/{version}/infer"), body.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    json!({ "probs": v["outputs"][0]["data"], "label": v["outputs"][1]["data"][0] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_grpc_on_real_digits_matches_rest() {
    let dir = temp_repo("grpc");
    put(&dir, "digits", 1, CNN);
    put(&dir, "digits", 2, MLP);
    config(&dir, "digits", "version_policy = { all = true }\n[labels]\nstable = 1\ncanary = 2\n");
    put(&dir, "slow", 1, RESNET);
    let srv = start(&dir, true, None).await;
    let grpc = srv.grpc.expect("gRPC listener");

    // 50 real test digits (5 of each class), answered by the REST route.
    let d = digits();
    let mut cases = Vec::new();
    for i in 0..50 {
        let (_, img) = &d[(i % 10) * 200 + i / 10];
        let u8s: Vec<u8> = img.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
        let u8_v1 = rest_answer(srv.http, "1", "UINT8", json!(u8s)).await;
        cases.push(json!({
            "image": img,
            "v1": rest_answer(srv.http, "1", "FP32", json!(img)).await,
            "v2": rest_answer(srv.http, "2", "FP32", json!(img)).await,
            "u8": u8s,
            "u8_v1": u8_v1["probs"],
        }));
    }
    let file = dir.join("cases.json");
    // 1,500 digits through the ResNet take far longer than the client's 50 ms deadline.
    std::fs::write(&file, json!({ "digits": cases, "slow_model": "slow", "slow_batch": 1500 }).to_string()).expect("cases");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_client.py");
    let f2 = file.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python()).arg(script).arg(grpc.to_string()).arg(&f2).output()
    })
    .await
    .expect("join")
    .expect("python runs (the bootstrap makes the venv with tritonclient)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "grpc_client.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("grpc_client.py: {}", stdout.trim());
    let summary: Value = serde_json::from_str(stdout.trim()).expect("summary line");
    assert_eq!(summary["grpc_inferences"], 50 * 5 + 10 + 1, "{summary}");

    // The deadline was honoured by the server, not only by the client: it stopped waiting and
    // counted the request as a failure (had it finished, it would be a success).
    // The batch keeps its blocking thread until it finishes (SERVER.md, "Deadlines"), which on a
    // loaded 2-core machine took over the 5 s this loop used to allow: wait up to a minute.
    let mut failures = 0.0;
    for _ in 0..1200 {
        let m = get(srv.http, "/metrics").await.text();
        failures = metric(&m, "nv_inference_request_failure", "slow", "1");
        if failures >= 1.0 {
            assert_eq!(metric(&m, "nv_inference_request_success", "slow", "1"), 0.0, "{m}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(failures, 1.0, "the slow request was not counted as failed by its deadline");
    let m = get(srv.http, "/metrics").await.text();
    // 50 × 3 (stable, 1, REST) on version 1 + 10 UINT8 + 50 REST UINT8 + 1 typed batch of 50 ...
    assert_eq!(metric(&m, "nv_inference_request_success", "digits", "1"), (50 + 50 * 2 + 50 + 10 + 1) as f64, "{m}");
    assert_eq!(metric(&m, "nv_inference_count", "digits", "1"), (50 + 50 * 2 + 50 + 10 + 50) as f64);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
