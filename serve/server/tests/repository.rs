//! Slice 1: the repository layout, version policies, labels and max_batch over real HTTP, and
//! REST answers byte-identical to the pure `mdeploy_serve::Server::handle` (the function the
//! wasi:http component and the Worker run) on real test digits.

mod support;

use mdeploy_serve::{ModelEntry, Request, Server};
use support::*;

/// The pure function over the same files, with the same labels: what every host answers.
fn pure(entries: &[(&str, u64, &[u8])], labels: &[(&str, &str, u64)]) -> Server {
    let mut s = Server::new(entries.iter().map(|(m, v, b)| ModelEntry::new(*m, v.to_string(), b.to_vec())).collect());
    for (m, l, v) in labels {
        s.set_label(m, l, &v.to_string()).expect("label");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_are_the_pure_functions_byte_for_byte() {
    let dir = temp_repo("identical");
    // Two different models as two versions of one name, so a wrong version shows in the answer.
    put(&dir, "digits", 1, CNN);
    put(&dir, "digits", 2, MLP);
    config(&dir, "digits", "version_policy = { all = true }\n[labels]\nstable = 1\ncanary = 2\n");
    put(&dir, "mnist-mlp", 1, MLP);
    let srv = start(&dir, false, None).await;
    // Highest version first and labels by name, as the server sets them up (the default version is
    // the highest).
    let mut want = pure(&[("digits", 2, MLP), ("digits", 1, CNN), ("mnist-mlp", 1, MLP)], &[("digits", "canary", 2), ("digits", "stable", 1)]);

    let mut paths = vec![
        ("GET", "/v2/health/live".to_string(), Vec::new()),
        ("GET", "/v2/health/ready".to_string(), Vec::new()),
        ("GET", "/v2/models/digits".to_string(), Vec::new()),
        ("GET", "/v2/models/digits/versions/1/ready".to_string(), Vec::new()),
        ("GET", "/v1/models/digits/labels/canary".to_string(), Vec::new()),
        ("GET", "/v2/models/nope".to_string(), Vec::new()),
        ("POST", "/v2/models/digits/versions/3/infer".to_string(), v2_body(0, 1)),
        ("POST", "/v2/models/digits/infer".to_string(), b"{not json".to_vec()),
    ];
    // 40 requests of 1..4 real digits each, on every version spelling.
    for i in 0..40 {
        let p = match i % 5 {
            0 => "/v2/models/digits/versions/1/infer",
            1 => "/v2/models/digits/versions/stable/infer",
            2 => "/v2/models/digits/infer",
            3 => "/v2/models/mnist-mlp/infer",
            _ => "/v2/models/digits/versions/canary/infer",
        };
        paths.push(("POST", p.to_string(), v2_body(i * 37, 1 + i % 4)));
    }
    for (method, path, body) in &paths {
        let got = http(srv.http, method, path, &[("content-type", "application/json")], body).await.expect("request");
        let w = want.handle(&Request { method, path, content_type: Some("application/json"), headers: &[], body });
        assert_eq!(got.status, w.status, "{method} {path}: {}", got.text());
        assert_eq!(got.header("content-type"), Some(w.content_type), "{method} {path}");
        assert_eq!(got.body, w.body, "{method} {path}: the native server's bytes differ from the pure function's");
    }
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_labels_and_max_batch() {
    let dir = temp_repo("versions");
    put(&dir, "digits", 1, CNN);
    put(&dir, "digits", 2, MLP);
    config(&dir, "digits", "version_policy = { all = true }\nmax_batch = 3\n[labels]\nstable = 1\ncanary = 2\n");
    // No config: Triton's default policy, the latest version only.
    put(&dir, "latest", 1, CNN);
    put(&dir, "latest", 7, MLP);
    put(&dir, "latest", 3, CNN);
    // `specific`: only version 1 of 1 and 2.
    put(&dir, "pinned", 1, CNN);
    put(&dir, "pinned", 2, MLP);
    config(&dir, "pinned", "version_policy = { specific = [1] }\n");
    let srv = start(&dir, false, None).await;
    let a = srv.http;

    let probs = |r: &Reply| r.json()["outputs"][0]["data"].clone();
    let body = v2_body(11, 2);
    let v1 = post(a, "/v2/models/digits/versions/1/infer", &body).await;
    let v2 = post(a, "/v2/models/digits/versions/2/infer", &body).await;
    assert_eq!(v1.status, 200, "{}", v1.text());
    assert_ne!(probs(&v1), probs(&v2), "versions 1 and 2 are different models");
    let stable = post(a, "/v2/models/digits/versions/stable/infer", &body).await;
    let canary = post(a, "/v2/models/digits/versions/canary/infer", &body).await;
    let default = post(a, "/v2/models/digits/infer", &body).await;
    assert_eq!(probs(&stable), probs(&v1));
    assert_eq!(probs(&canary), probs(&v2));
    assert_eq!(probs(&default), probs(&v2), "no version: the highest");
    assert_eq!(stable.json()["model_version"], "1", "a label answers with the version it stands for");

    // TF Serving paths with labels and versions.
    let inst = serde_json::json!({ "instances": [digits()[5].1.clone()] }).to_string();
    let tf_stable = post(a, "/v1/models/digits/labels/stable:predict", inst.as_bytes()).await;
    let tf_v1 = post(a, "/v1/models/digits/versions/1:predict", inst.as_bytes()).await;
    let tf_canary = post(a, "/v1/models/digits/labels/canary:predict", inst.as_bytes()).await;
    assert_eq!(tf_stable.status, 200, "{}", tf_stable.text());
    assert_eq!(tf_stable.body, tf_v1.body);
    assert_ne!(tf_stable.body, tf_canary.body);
    let nolabel = post(a, "/v1/models/digits/labels/beta:predict", inst.as_bytes()).await;
    assert_eq!(nolabel.status, 404);
    assert!(nolabel.text().contains("stable -> 1"), "the 404 lists the labels: {}", nolabel.text());

    // max_batch = 3: 3 passes, 4 is refused with the cap named.
    assert_eq!(post(a, "/v2/models/digits/infer", &v2_body(0, 3)).await.status, 200);
    let big = post(a, "/v2/models/digits/infer", &v2_body(0, 4)).await;
    assert_eq!(big.status, 400);
    assert!(big.text().contains("max_batch"), "{}", big.text());

    // latest = 1 by default: only version 7 of {1, 3, 7}.
    let meta = get(a, "/v2/models/latest").await.json();
    assert_eq!(meta["versions"], serde_json::json!(["7"]));
    assert_eq!(post(a, "/v2/models/latest/versions/3/infer", &body).await.status, 404);
    assert_eq!(get(a, "/v2/models/pinned").await.json()["versions"], serde_json::json!(["1"]));

    // The repository index lists every served version.
    let idx = post(a, "/v2/repository/index", b"").await.json();
    let rows: Vec<(String, String, String)> = idx
        .as_array()
        .expect("index array")
        .iter()
        .map(|r| (r["name"].as_str().unwrap_or("").into(), r["version"].as_str().unwrap_or("").into(), r["state"].as_str().unwrap_or("").into()))
        .collect();
    for (m, v) in [("digits", "1"), ("digits", "2"), ("latest", "7"), ("pinned", "1")] {
        assert!(rows.contains(&(m.into(), v.into(), "READY".into())), "{m} {v} in {idx}");
    }
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_is_not_a_folder_is_refused_with_the_layout() {
    let local = "127.0.0.1:0".parse().expect("address");
    let e = mdeploy_server::start(mdeploy_server::Options::new(std::env::temp_dir().join("mdeploy-server-no-such-folder"), local))
    .await
    .err()
    .expect("refused");
    assert!(e.contains("DIR/<model>/<version>/model.mdm"), "{e}");
}
