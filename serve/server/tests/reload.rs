//! Slice 3: reload without losing a request. Clients keep sending real digits while versions are
//! added through the watcher and the repository API, a corrupt file is dropped in (refused, logged,
//! counted; the old version keeps serving), and a slow request spans a swap.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

const RESNET: &[u8] = include_bytes!("../../../models/mnist-resnet.mdm");

/// Writes a version the way a deploy should: into a temporary folder, then renamed into place.
fn deploy(dir: &std::path::Path, model: &str, version: u64, bytes: &[u8]) {
    let tmp = dir.join(format!(".incoming-{model}-{version}"));
    std::fs::create_dir_all(&tmp).expect("tmp");
    std::fs::write(tmp.join("model.mdm"), bytes).expect("write");
    std::fs::create_dir_all(dir.join(model)).expect("model folder");
    std::fs::rename(&tmp, dir.join(model).join(version.to_string())).expect("rename");
}

async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request_and_refuse_a_corrupt_file() {
    let dir = temp_repo("reload");
    put(&dir, "digits", 1, CNN);
    let srv = start(&dir, false, Some(Duration::from_millis(100))).await;
    let a = srv.http;

    // What each version answers for the digits the clients send (one request each, v1 now; v2
    // from the pure function, since it is not served yet).
    let n_digits = 20;
    let body = |i: usize| v2_body(i, 1);
    let mut want_v1 = Vec::new();
    for i in 0..n_digits {
        let r = post(a, "/v2/models/digits/infer", &body(i)).await;
        assert_eq!(r.status, 200);
        want_v1.push(r.json()["outputs"][0]["data"].clone());
    }
    let mut pure = mdeploy_serve::Server::new(vec![mdeploy_serve::ModelEntry::new("digits", "2", MLP.to_vec())]);
    let want_v2: Vec<Value> = (0..n_digits)
        .map(|i| {
            let r = pure.handle(&mdeploy_serve::Request { method: "POST", path: "/v2/models/digits/infer", content_type: None, headers: &[], body: &body(i) });
            serde_json::from_slice::<Value>(&r.body).expect("json")["outputs"][0]["data"].clone()
        })
        .collect();
    let (want_v1, want_v2) = (Arc::new(want_v1), Arc::new(want_v2));

    // Four clients, each sending one request after another until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, sent, w1, w2) = (stop.clone(), sent.clone(), want_v1.clone(), want_v2.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut seen = [0usize; 3];
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let k = i % n_digits;
                i += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                match http(a, "POST", "/v2/models/digits/infer", &[], &body(k)).await {
                    Ok(r) if r.status == 200 => {
                        let v = r.json();
                        let ver = v["model_version"].as_str().unwrap_or("").to_string();
                        let probs = &v["outputs"][0]["data"];
                        let ok = match ver.as_str() {
                            "1" => *probs == w1[k],
                            "2" => *probs == w2[k],
                            _ => false,
                        };
                        if ok {
                            seen[ver.parse::<usize>().unwrap_or(0)] += 1;
                        } else {
                            failures.push(format!("digit {k}: version {ver} answered {probs}"));
                        }
                    }
                    Ok(r) => failures.push(format!("status {}: {}", r.status, r.text())),
                    Err(e) => failures.push(e),
                }
            }
            (failures, seen)
        }));
    }
    let sent_now = || sent.load(Ordering::Relaxed);
    let mark = sent_now();
    wait_for("traffic", async || sent_now() > mark + 20).await;

    // 1. The watcher finds version 2 (latest = 1 by default: 2 replaces 1).
    deploy(&dir, "digits", 2, MLP);
    wait_for("version 2 to serve", async || get(a, "/v2/models/digits").await.json()["versions"] == json!(["2"])).await;
    let mark = sent_now();
    wait_for("traffic on v2", async || sent_now() > mark + 20).await;

    // 2. A corrupt version 3 (one byte of a real model flipped: the digest fails) is refused:
    // a log line, a metric, the index says why, and version 2 keeps serving.
    let mut bad = CNN.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    deploy(&dir, "digits", 3, &bad);
    wait_for("the refusal in /metrics", async || {
        metric(&get(a, "/metrics").await.text(), "mdeploy_model_load_failures_total", "digits", "3") == 1.0
    })
    .await;
    let idx = post(a, "/v2/repository/index", b"").await.json();
    let row = idx.as_array().expect("index").iter().find(|r| r["name"] == "digits" && r["version"] == "3").cloned().expect("row for v3");
    assert_eq!(row["state"], "UNAVAILABLE", "{idx}");
    assert!(!row["reason"].as_str().unwrap_or("").is_empty(), "{row}");
    assert_eq!(get(a, "/v2/models/digits").await.json()["versions"], json!(["2"]));
    // Polls go on; the same bad bytes are not retried (still one refusal).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(&get(a, "/metrics").await.text(), "mdeploy_model_load_failures_total", "digits", "3"), 1.0);

    // 3. The repository API: an explicit load of the same bad version is a 400 naming it.
    let r = post(a, "/v2/repository/models/digits/load", b"").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("version 3"), "{}", r.text());
    assert_eq!(get(a, "/v2/models/digits").await.json()["versions"], json!(["2"]));
    // Fixed in place: the next poll serves it... as version 3 = the CNN, so remove it instead
    // (the clients only know versions 1 and 2): the policy falls back to version 2.
    std::fs::remove_dir_all(dir.join("digits").join("3")).expect("rm v3");
    let mark = sent_now();
    wait_for("more traffic", async || sent_now() > mark + 20).await;

    stop.store(true, Ordering::Relaxed);
    let mut total_failures = Vec::new();
    let mut seen = [0usize; 3];
    for c in clients {
        let (f, s) = c.await.expect("client");
        total_failures.extend(f);
        for k in 0..3 {
            seen[k] += s[k];
        }
    }
    assert!(total_failures.is_empty(), "{} failed requests of {}: {:?}", total_failures.len(), sent_now(), &total_failures[..total_failures.len().min(5)]);
    assert!(seen[1] > 0 && seen[2] > 0, "answers by version: {seen:?}");
    eprintln!("reload test: {} requests, by version {:?}, zero failures", sent_now(), &seen[1..]);

    // 4. Unload and load through the API.
    assert_eq!(post(a, "/v2/repository/models/digits/unload", b"").await.status, 200);
    assert_eq!(post(a, "/v2/models/digits/infer", &body(0)).await.status, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post(a, "/v2/models/digits/infer", &body(0)).await.status, 404, "the watcher leaves an unloaded model alone");
    let idx = post(a, "/v2/repository/index", b"").await.json();
    assert!(idx.as_array().expect("index").iter().any(|r| r["name"] == "digits" && r["state"] == "UNAVAILABLE" && r["reason"] == "unloaded"), "{idx}");
    assert_eq!(post(a, "/v2/repository/models/digits/load", b"").await.status, 200);
    let r = post(a, "/v2/models/digits/infer", &body(0)).await;
    assert_eq!((r.status, r.json()["model_version"].clone()), (200, json!("2")));
    let r = post(a, "/v2/repository/models/nope/load", b"").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no model folder 'nope'"), "{}", r.text());
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_version_it_started_on() {
    let dir = temp_repo("inflight");
    put(&dir, "slow", 1, RESNET);
    let srv = start(&dir, false, None).await;
    let a = srv.http;
    // A large batch (binary tensors: 2,000 digits, 6.3 MB) takes a while through the ResNet.
    let n = 2000;
    let (body, len) = binary_request(n);
    let slow = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let r = http(a, "POST", "/v2/models/slow/infer", &[("inference-header-content-length", len.as_str())], &body).await;
        (r, t.elapsed())
    });
    // Once it is running (Triton's pending-request gauge says so), version 2, a different model,
    // is loaded and swapped in.
    wait_for("the slow request to be in progress", async || {
        metric(&get(a, "/metrics").await.text(), "nv_inference_pending_request_count", "slow", "1") == 1.0
    })
    .await;
    put(&dir, "slow", 2, CNN);
    let t = std::time::Instant::now();
    let r = post(a, "/v2/repository/models/slow/load", b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let swapped_after = t.elapsed();
    assert_eq!(get(a, "/v2/models/slow").await.json()["versions"], json!(["2"]));
    let (r, took) = slow.await.expect("join");
    let r = r.expect("slow request");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_version"], "1", "the request finished on the version it started on");
    assert_eq!(r.json()["outputs"][0]["shape"], json!([n]));
    eprintln!("in-flight: the slow request took {took:?}; the swap finished {swapped_after:?} after the load call");
    // The new request goes to version 2.
    let r = post(a, "/v2/models/slow/infer", &v2_body(0, 1)).await;
    assert_eq!(r.json()["model_version"], "2");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Replaces `path` whole: written next to the repository folder, then renamed over it.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = std::env::temp_dir().join(format!("mdeploy-server-{}-replace.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).expect("temporary copy");
    std::fs::rename(&tmp, path).expect("rename into place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_file_overwritten_with_garbage_keeps_its_old_bytes_serving() {
    let dir = temp_repo("overwrite");
    let path = put(&dir, "digits", 1, CNN);
    let srv = start(&dir, false, Some(Duration::from_millis(50))).await;
    let a = srv.http;
    let before = post(a, "/v2/models/digits/infer", &v2_body(3, 2)).await;
    assert_eq!(before.status, 200);
    // A truncated copy put in place (as a copy that stopped half way, then was renamed in). The
    // test writes beside the repository and renames, so the watcher never reads a file the test
    // is still writing: an in-place write of 400 KB could be polled half-written and counted as
    // a second refusal, which made this test fail once under load.
    replace(&path, &CNN[..CNN.len() / 2]);
    wait_for("the refusal", async || {
        metric(&get(a, "/metrics").await.text(), "mdeploy_model_load_failures_total", "digits", "1") == 1.0
    })
    .await;
    let after = post(a, "/v2/models/digits/infer", &v2_body(3, 2)).await;
    assert_eq!(after.body, before.body, "the old bytes keep serving");
    assert_eq!(metric(&get(a, "/metrics").await.text(), "mdeploy_model_ready", "digits", "1"), 1.0);
    // A good file replaces it: the next poll serves it (another model here, so it shows), no new refusal.
    replace(&path, MLP);
    wait_for("the new bytes", async || post(a, "/v2/models/digits/infer", &v2_body(3, 2)).await.body != before.body).await;
    assert_eq!(metric(&get(a, "/metrics").await.text(), "mdeploy_model_load_failures_total", "digits", "1"), 1.0);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
