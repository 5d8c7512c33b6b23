//! Issue 13: prediction monitoring and input drift, through the real HTTP server with real
//! digits. Version 1 carries an input reference computed from the training split (as
//! `mdeploy monitor-ref` writes it); version 2 has none.

mod support;

use mdeploy_core::monitor::{Reference, META_KEY};
use mdeploy_core::{format, Plan};
use mdeploy_testkit::mnist;
use serde_json::Value;
use support::*;

/// The CNN with a reference of the 8,000 training digits in its provenance.
fn cnn_with_reference() -> Vec<u8> {
    let train = &mnist::split().train;
    let reference = Reference::from_rows((0..train.n).map(|i| train.image(i))).expect("rows");
    let mut m = format::read(CNN).expect("model");
    m.meta.provenance.extra.push((META_KEY.to_string(), reference.to_text()));
    format::write(&m).expect("written")
}

/// 500 test digits, 50 of each class interleaved (a prefix of the window mixes classes).
fn test_rows() -> Vec<Vec<f32>> {
    let t = &mnist::split().test;
    mnist::interleaved_test_indices(50).into_iter().map(|i| t.image(i).to_vec()).collect()
}

/// Sends `rows` to `path` as KServe v2 requests of 10 digits; every answer must be 200.
async fn send(a: std::net::SocketAddr, path: &str, rows: &[Vec<f32>]) {
    for chunk in rows.chunks(10) {
        let data: Vec<f32> = chunk.concat();
        let body = serde_json::json!({
            "inputs": [{ "name": "input", "shape": [chunk.len(), 784], "datatype": "FP32", "data": data }]
        });
        let r = post(a, path, &serde_json::to_vec(&body).expect("json")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// Moves the digit `dy` rows down and `dx` columns right (ink pushed off the edge is lost).
fn shift(row: &[f32], dy: usize, dx: usize) -> Vec<f32> {
    let mut out = vec![0.0; 784];
    for y in 0..28 - dy {
        for x in 0..28 - dx {
            out[(y + dy) * 28 + x + dx] = row[y * 28 + x];
        }
    }
    out
}

async fn monitor(a: std::net::SocketAddr, path: &str) -> Value {
    let r = get(a, path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_are_counted_and_drift_alarms_on_shifted_inverted_and_noisy_digits() {
    let dir = temp_repo("monitor");
    let with_ref = cnn_with_reference();
    put(&dir, "digits", 1, &with_ref);
    put(&dir, "digits", 2, MLP);
    config(&dir, "digits", "version_policy = { all = true }\n");
    let srv = start(&dir, false, None).await;
    let a = srv.http;
    let v1 = "/v2/models/digits/versions/1/infer";
    let m1 = "/v2/models/digits/versions/1/monitor";

    // Adding the reference changes no answer: the model's outputs are bit for bit the original's.
    let rows = test_rows();
    let flat: Vec<f32> = rows.concat();
    let run = |bytes: &[u8]| {
        let mut p = Plan::new(&format::read(bytes).expect("model"), 1).expect("plan");
        let mut out = vec![0.0; rows.len() * 10];
        p.run(&flat, rows.len(), &mut out).expect("run");
        out
    };
    let expected = run(CNN);
    assert_eq!(run(&with_ref), expected);

    // Before any request: zeros, not an error.
    let j = monitor(a, m1).await;
    assert_eq!(j["predictions"], 0);

    // 1. Real test digits: every prediction counted per class, confidence histogram, no drift.
    send(a, v1, &rows).await;
    let j = monitor(a, m1).await;
    assert_eq!(j["model_version"], "1");
    assert_eq!(j["predictions"], 500);
    let mut per_class = [0u64; 10];
    for r in expected.chunks(10) {
        let best = (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b });
        per_class[best] += 1;
    }
    let counted: Vec<u64> = j["classes"].as_array().expect("classes").iter().map(|c| c["count"].as_u64().unwrap_or(0)).collect();
    assert_eq!(counted, per_class, "{j}");
    let buckets = j["confidence"]["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.last().map(|b| b["count"].as_u64()), Some(Some(500)));
    let top1_sum: f64 = expected.chunks(10).map(|r| r.iter().cloned().fold(0.0f32, f32::max) as f64).sum();
    let sum = j["confidence"]["sum"].as_f64().unwrap_or(0.0);
    assert!((sum - top1_sum).abs() < 1e-3, "{sum} vs {top1_sum}");
    let at_most_half: u64 = expected.chunks(10).filter(|r| r.iter().cloned().fold(0.0f32, f32::max) <= 0.5).count() as u64;
    assert_eq!(buckets[4]["count"].as_u64(), Some(at_most_half), "le=0.5 bucket");
    let d = &j["drift"];
    assert_eq!(d["window_rows"], 500);
    assert_eq!(d["status"], "none", "real test digits must not alarm: {d}");
    eprintln!("monitor test: real digits max PSI {}", d["max_psi"]);

    // The same numbers in /metrics.
    let text = get(a, "/metrics").await.text();
    let line = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(-1.0)
    };
    assert_eq!(line("mdeploy_prediction_class_total{model=\"digits\",version=\"1\",class=\"3\"} "), per_class[3] as f64);
    assert_eq!(line("mdeploy_prediction_confidence_count{model=\"digits\",version=\"1\"} "), 500.0);
    let max = line("mdeploy_input_drift_psi{model=\"digits\",version=\"1\",feature=\"max\"} ");
    assert!((0.0..0.1).contains(&max), "{max}");

    // 2. Each shift of the input alarms, and the feature that moved says why.
    let cases: Vec<(&str, Vec<Vec<f32>>, &[&str])> = vec![
        ("shifted", rows.iter().map(|r| shift(r, 4, 4)).collect(), &["row_centre", "col_centre"]),
        ("inverted", rows.iter().map(|r| r.iter().map(|v| 1.0 - v).collect()).collect(), &["mean", "ink"]),
        (
            "noisy",
            rows.iter()
                .enumerate()
                .map(|(i, r)| {
                    // Deterministic uniform noise in -0.3..0.3, clamped to 0..1.
                    let mut s = i as u32 * 2_654_435_761;
                    r.iter()
                        .map(|v| {
                            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                            (v + ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.6).clamp(0.0, 1.0)
                        })
                        .collect()
                })
                .collect(),
            &["mean"],
        ),
    ];
    for (what, shifted, moved) in cases {
        // 500 rows replace the whole window.
        send(a, v1, &shifted).await;
        let d = monitor(a, m1).await["drift"].clone();
        assert_eq!(d["status"], "significant", "{what}: {d}");
        for f in moved {
            let p = d["psi"][f].as_f64().unwrap_or(0.0);
            assert!(p >= 0.25, "{what}: {f} PSI {p}: {d}");
        }
        eprintln!("monitor test: {what} digits PSI {}", d["psi"]);
        let text = get(a, "/metrics").await.text();
        let max: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("mdeploy_input_drift_psi{model=\"digits\",version=\"1\",feature=\"max\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(max >= 0.25, "{what}: /metrics max {max}");
    }
    // Real digits again: the window forgets the drift.
    send(a, v1, &rows).await;
    assert_eq!(monitor(a, m1).await["drift"]["status"], "none");
    assert_eq!(monitor(a, m1).await["predictions"], 2000 + 500);

    // Version 2 has no reference: counted, drift says why it is absent; no version picks 2.
    send(a, "/v2/models/digits/infer", &rows[..20]).await;
    let j = monitor(a, "/v2/models/digits/monitor").await;
    assert_eq!((j["model_version"].as_str(), j["predictions"].as_u64()), (Some("2"), Some(20)));
    assert_eq!(j["drift"]["status"], "no_reference");
    assert!(j["drift"]["reason"].as_str().unwrap_or("").contains("monitor-ref"), "{j}");
    // Other routes count too (TF Serving).
    let inst = serde_json::json!({ "instances": [rows[0].clone()] }).to_string();
    assert_eq!(post(a, "/v1/models/digits/versions/2:predict", inst.as_bytes()).await.status, 200);
    assert_eq!(monitor(a, "/v2/models/digits/versions/2/monitor").await["predictions"], 21);

    // Errors: unknown model, version, method.
    let r = get(a, "/v2/models/nope/monitor").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("this server has: digits"), "{}", r.text());
    let r = get(a, "/v2/models/digits/versions/9/monitor").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("versions: 2, 1"), "{}", r.text());
    assert_eq!(post(a, m1, b"{}").await.status, 405);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model file without a reference uses the server's (`Options::drift_reference`, what
/// `mdeploy serve` computes from the training split at start): real digits do not alarm,
/// inverted ones do, and the JSON says where the reference came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_reference_uses_the_servers_fallback() {
    let dir = temp_repo("monitor-fallback");
    put(&dir, "mlp", 1, MLP);
    // A malformed reference turns drift off for its model (even with a fallback); it still serves.
    let mut bad = format::read(MLP).expect("model");
    bad.meta.provenance.extra.push((META_KEY.to_string(), "mdm-monitor-ref 1 rows=5\nmean 0.5 | 2,-1\n".to_string()));
    put(&dir, "bad", 1, &format::write(&bad).expect("written"));
    let train = &mnist::split().train;
    let reference = Reference::from_rows((0..train.n).map(|i| train.image(i))).expect("rows");
    let local = "127.0.0.1:0".parse().expect("address");
    let opts = mdeploy_server::Options {
        drift_reference: Some(mdeploy_server::monitor::Fallback { reference, row_len: 784 }),
        ..mdeploy_server::Options::new(&dir, local)
    };
    let srv = mdeploy_server::start(opts).await.expect("server starts");
    let a = srv.http;
    let rows = test_rows();
    send(a, "/v2/models/mlp/infer", &rows).await;
    let d = monitor(a, "/v2/models/mlp/monitor").await["drift"].clone();
    assert_eq!((d["status"].as_str(), d["reference"].as_str()), (Some("none"), Some("server")), "{d}");
    let inverted: Vec<Vec<f32>> = rows.iter().map(|r| r.iter().map(|v| 1.0 - v).collect()).collect();
    send(a, "/v2/models/mlp/infer", &inverted).await;
    assert_eq!(monitor(a, "/v2/models/mlp/monitor").await["drift"]["status"], "significant");
    send(a, "/v2/models/bad/infer", &rows[..10]).await;
    let d = monitor(a, "/v2/models/bad/monitor").await["drift"].clone();
    assert_eq!(d["status"], "no_reference", "{d}");
    assert!(d["reason"].as_str().unwrap_or("").contains("shares"), "{d}");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
