//! Slice 5 (part): limits. A full server refuses at once (429 + Retry-After, gRPC
//! RESOURCE_EXHAUSTED through tritonclient.grpc) instead of queueing; a body over 10 MiB is a
//! 413 without being read.

mod support;

use std::time::Duration;

use support::*;

const RESNET: &[u8] = include_bytes!("../../../models/mnist-resnet.mdm");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_inflight_limit_is_429_and_resource_exhausted() {
    let dir = temp_repo("limits");
    put(&dir, "slow", 1, RESNET);
    let local = "127.0.0.1:0".parse().expect("address");
    let srv = mdeploy_server::start(mdeploy_server::Options {
        grpc: Some(local),
        max_inflight: Some(1),
        ..mdeploy_server::Options::new(&dir, local)
    })
    .await
    .expect("server starts");
    let a = srv.http;
    // The gRPC client starts first (importing tritonclient takes a while) and waits for "go".
    let grpc = srv.grpc.expect("grpc").to_string();
    let code = "import sys, numpy as np, tritonclient.grpc as g\n\
                from tritonclient.utils import InferenceServerException\n\
                c = g.InferenceServerClient(sys.argv[1]); i = g.InferInput('input', [1, 784], 'FP32')\n\
                i.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))\n\
                print('ready', flush=True); sys.stdin.readline()\n\
                try:\n    c.infer('slow', [i]); print('OK')\nexcept InferenceServerException as e:\n    print(e.status())\n";
    let mut py = std::process::Command::new(python())
        .arg("-c")
        .arg(code)
        .arg(grpc)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut py_out = std::io::BufReader::new(py.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut py_out, &mut line).expect("python says ready");
    assert_eq!(line.trim(), "ready");

    let (body, len) = binary_request(2000);
    let slow = tokio::spawn(async move {
        http(a, "POST", "/v2/models/slow/infer", &[("inference-header-content-length", len.as_str())], &body).await
    });
    let mut running = false;
    for _ in 0..400 {
        if metric(&get(a, "/metrics").await.text(), "nv_inference_pending_request_count", "slow", "1") == 1.0 {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(running, "the slow request never showed as pending");
    // gRPC first (the slot is surely still taken), then REST.
    let mut stdin = py.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("go");
    let said = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        let _ = std::io::BufRead::read_line(&mut py_out, &mut l);
        let _ = py.wait();
        l.trim().to_string()
    })
    .await
    .expect("join");
    let r = post(a, "/v2/models/slow/infer", &v2_body(0, 1)).await;
    let still_running = !slow.is_finished();
    let done = slow.await.expect("join").expect("slow request");
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(still_running, "the slow request ended before the probes: make it slower");
    assert_eq!(said, "StatusCode.RESOURCE_EXHAUSTED");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("--max-inflight"), "{}", r.text());
    assert_eq!(get(a, "/v2/health/ready").await.status, 200, "probes are not limited");
    // Free again.
    assert_eq!(post(a, "/v2/models/slow/infer", &v2_body(0, 1)).await.status, 200);
    assert!(metric(&get(a, "/metrics").await.text(), "nv_inference_request_failure", "slow", "1") >= 1.0);

    // 10 MiB + 1 byte: 413 (the REST host stops reading at the limit).
    let big = vec![b' '; mdeploy_serve::MAX_BODY_BYTES + 1];
    let r = post(a, "/v2/models/slow/infer", &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
