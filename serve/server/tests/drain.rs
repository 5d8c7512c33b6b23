//! Graceful drain over gRPC (`Running::drain`, what `mdeploy serve` does on SIGTERM;
//! cli/tests/serve.rs drives the same drain through the signal with a REST request): a slow
//! KServe v2 ModelInfer from `tritonclient.grpc` that is running when the drain starts is still
//! answered, with the right labels, while new connections on both ports are refused.
//! Python: `$MDEPLOY_PY_VENV/bin/python` (default `~/.cache/mdeploy/py-venv`, made by the bootstrap).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const RESNET: &[u8] = include_bytes!("../../../models/mnist-resnet.mdm");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_answers_a_grpc_request_in_flight_and_refuses_new_connections() {
    let dir = temp_repo("drain-grpc");
    put(&dir, "slow", 1, RESNET);
    let srv = start(&dir, true, None).await;
    let (http, grpc) = (srv.http, srv.grpc.expect("gRPC listener"));

    // 2,000 real test digits through the ResNet: seconds of work, so the drain starts mid-request.
    let d = digits();
    let n = 2000.min(d.len());
    let raw: Vec<u8> = d[..n].iter().flat_map(|(_, img)| img.iter().flat_map(|x| x.to_le_bytes())).collect();
    let file = dir.join("digits.f32");
    std::fs::write(&file, raw).expect("digits file");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_slow.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(grpc.to_string())
        .arg("slow")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs (the bootstrap makes the venv with tritonclient)");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::task::block_in_place(|| out.next()).and_then(|l| l.ok()).unwrap_or_default();
    assert_eq!(first, "sending", "grpc_slow.py did not start its call");

    // Wait until the server itself counts the request as pending.
    let t0 = Instant::now();
    while metric(&get(http, "/metrics").await.text(), "nv_inference_pending_request_count", "slow", "1") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the gRPC request never showed as pending");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let drain = tokio::spawn(srv.drain(Duration::from_secs(120)));
    // The listeners close within moments, while the request is still running.
    let t1 = Instant::now();
    let refused = |a: std::net::SocketAddr| std::net::TcpStream::connect(a).is_err();
    while !(refused(http) && refused(grpc)) {
        assert!(t1.elapsed() < Duration::from_secs(5), "new connections still accepted 5 s into the drain");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(child.try_wait().expect("try_wait").is_none(), "the gRPC call ended before the listeners closed; the test proves nothing");

    let all_answered = drain.await.expect("drain task");
    let status = tokio::task::block_in_place(|| child.wait()).expect("wait");
    let answer = tokio::task::block_in_place(|| out.next()).and_then(|l| l.ok()).unwrap_or_default();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "the gRPC call failed during the drain: {err}");
    assert!(all_answered, "drain() reported a request it had to abandon");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer} {err}"));
    let labels = v["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), n);
    let right = labels.iter().zip(d).filter(|(l, (y, _))| l.as_u64() == Some(*y as u64)).count();
    assert!(right * 100 >= n * 95, "{right} of {n} right");
    let _ = std::fs::remove_dir_all(&dir);
}
