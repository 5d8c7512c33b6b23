//! Slice 4: `GET /metrics` scraped by a real Prometheus (Debian's `prometheus`, installed by the
//! bootstrap), checked with PromQL against the requests this test sent.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// The Prometheus process, killed when the test ends (also on a failed assertion).
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // Bound then released: Prometheus takes it a moment later (a race no test here loses in practice).
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Percent-encodes a PromQL query for a URL query string.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn promql(prom: std::net::SocketAddr, q: &str) -> Option<f64> {
    let r = http(prom, "GET", &format!("/api/v1/query?query={}", encode(q)), &[], b"").await.ok()?;
    let v: Value = r.json();
    v.pointer("/data/result/0/value/1")?.as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_triton_metrics_that_match_the_requests_sent() {
    let dir = temp_repo("metrics");
    put(&dir, "digits", 1, CNN);
    put(&dir, "digits", 2, MLP);
    config(&dir, "digits", "version_policy = { all = true }\n");
    let srv = start(&dir, true, None).await;
    let a = srv.http;

    // Known traffic: 12 successes on version 1 (1 + 2 + 3 digits, repeated 2×: 12 inferences),
    // 5 on version 2 through TF Serving (1 digit each), 3 failures on version 1 (wrong shape),
    // and requests that must not be counted per model (unknown model, metadata).
    for _ in 0..2 {
        for n in 1..=3 {
            for _ in 0..2 {
                assert_eq!(post(a, "/v2/models/digits/versions/1/infer", &v2_body(n * 5, n)).await.status, 200);
            }
        }
    }
    let inst = serde_json::json!({ "instances": [digits()[9].1.clone()] }).to_string();
    for _ in 0..5 {
        assert_eq!(post(a, "/v1/models/digits/versions/2:predict", inst.as_bytes()).await.status, 200);
    }
    let bad = br#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#;
    for _ in 0..3 {
        assert_eq!(post(a, "/v2/models/digits/versions/1/infer", bad).await.status, 400);
    }
    assert_eq!(post(a, "/v2/models/nope/infer", bad).await.status, 404);
    assert_eq!(get(a, "/v2/models/digits").await.status, 200);

    // The exposition itself.
    let m = get(a, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap_or("").starts_with("text/plain; version=0.0.4"), "{:?}", m.headers);
    let text = m.text();
    for name in [
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "mdeploy_inference_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(&format!("{name}{{")), "{name} missing:\n{text}");
    }
    assert!(!text.contains("nope"), "a client's model name must not become a label");

    // A real Prometheus scrapes it every second.
    let tmp = dir.join("prometheus");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let cfg = tmp.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mdeploy\n    static_configs:\n      - targets: ['{a}']\n"),
    )
    .expect("config");
    let port = free_port();
    let prom_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", tmp.join("data").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (Debian's `prometheus`, installed by scripts/bootstrap.sh)"),
    );
    let queries: [(&str, f64); 7] = [
        (r#"up{job="mdeploy"}"#, 1.0),
        (r#"nv_inference_request_success{model="digits",version="1"}"#, 12.0),
        (r#"nv_inference_count{model="digits",version="1"}"#, 24.0),
        (r#"nv_inference_request_failure{model="digits",version="1"}"#, 3.0),
        (r#"sum(nv_inference_request_success{model="digits"})"#, 17.0),
        (r#"nv_inference_exec_count{model="digits",version="2"}"#, 5.0),
        (r#"sum(mdeploy_inference_request_duration_seconds_count{model="digits"})"#, 20.0),
    ];
    let mut last = Vec::new();
    for _ in 0..120 {
        last.clear();
        for (q, _) in &queries {
            last.push(promql(prom_addr, q).await);
        }
        if queries.iter().zip(&last).all(|((_, want), got)| *got == Some(*want)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for ((q, want), got) in queries.iter().zip(&last) {
        assert_eq!(*got, Some(*want), "PromQL {q}");
    }
    // Latency is recorded: the summed request time is positive and the median is inside the buckets.
    let us = promql(prom_addr, r#"sum(nv_inference_request_duration_us{model="digits"})"#).await.unwrap_or(0.0);
    assert!(us > 0.0, "request duration {us}");
    let p50 = promql(
        prom_addr,
        r#"histogram_quantile(0.5, sum by (le) (mdeploy_inference_request_duration_seconds_bucket{model="digits"}))"#,
    )
    .await
    .unwrap_or(f64::NAN);
    assert!(p50 > 0.0 && p50 <= 2.5, "median latency {p50}");
    eprintln!("prometheus: 20 requests, {us} µs in total, median ≈ {:.3} ms", p50 * 1e3);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
