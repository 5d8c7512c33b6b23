//! `mdeploy serve` end to end: the binary on a real repository, a real HTTP request, SIGTERM.
//! (The server itself is tested in serve/server/tests/.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn serve_answers_on_the_address_it_prints_and_stops_on_sigterm() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::env::temp_dir().join(format!("mdeploy-cli-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("mnist-cnn/1")).expect("repo");
    std::fs::copy(root.join("models/mnist-cnn.mdm"), repo.join("mnist-cnn/1/model.mdm")).expect("model");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["serve", "--repository"])
        .arg(&repo)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mdeploy serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(lines.next().expect("a line").expect("utf-8"));
    }
    let text = printed.join("\n");
    assert!(text.contains("gRPC (KServe v2) on 127.0.0.1:"), "{text}");
    assert!(text.contains("mnist-cnn v1"), "{text}");
    let addr = printed[0]
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {text}"))
        .to_string();
    let ready = get(&addr, "/v2/models/mnist-cnn/ready");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#"{"name":"mnist-cnn","ready":true}"#), "{ready}");

    // SIGTERM: a clean stop, exit status 0.
    #[cfg(unix)]
    {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
    let _ = std::fs::remove_dir_all(&repo);
}

/// `GET /metrics` and the value of one series (0 if absent).
fn metric(addr: &str, series: &str) -> f64 {
    let text = get(addr, "/metrics");
    text.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// SIGTERM while a slow request (2,000 real digits through the ResNet) is running: new
/// connections are refused at once (REST and gRPC), the request still gets its 200 with every
/// label, and the process exits 0 saying it drained.
#[cfg(unix)]
#[test]
fn sigterm_drains_the_request_in_flight_and_refuses_new_connections() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::env::temp_dir().join(format!("mdeploy-cli-drain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("slow/1")).expect("repo");
    std::fs::copy(root.join("models/mnist-resnet.mdm"), repo.join("slow/1/model.mdm")).expect("model");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["serve", "--repository"])
        .arg(&repo)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--drain-timeout-s", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mdeploy serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let printed: Vec<String> = (0..2).map(|_| lines.next().expect("a line").expect("utf-8")).collect();
    let after = |line: &str, marker: &str| -> String {
        line.split(marker).nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("{line}")).to_string()
    };
    let addr = after(&printed[0], "http://");
    let grpc = after(&printed[1], " on ");

    // 2,000 real test digits as Triton binary tensors, labels asked for as JSON.
    let t = &mdeploy_testkit::mnist::split().test;
    let n = 2000.min(t.n);
    let raw: Vec<u8> = (0..n).flat_map(|i| t.image(i).iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).collect();
    let head = format!(
        r#"{{"inputs":[{{"name":"input","shape":[{n},784],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}}],"outputs":[{{"name":"label"}}]}}"#,
        raw.len()
    );
    let done = Arc::new(AtomicBool::new(false));
    let slow = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            write!(
                s,
                "POST /v2/models/slow/infer HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\n\
                 inference-header-content-length: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                head.len(),
                head.len() + raw.len()
            )
            .expect("write head");
            s.write_all(head.as_bytes()).and_then(|()| s.write_all(&raw)).expect("write body");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read answer");
            done.store(true, Ordering::SeqCst);
            out
        })
    };
    let t0 = Instant::now();
    while metric(&addr, "nv_inference_pending_request_count{model=\"slow\",version=\"1\"} ") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the slow request never showed as pending");
        std::thread::sleep(Duration::from_millis(5));
    }

    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    // The listeners close within moments; the request is still running then.
    let t1 = Instant::now();
    let refused = |a: &str| TcpStream::connect(a).is_err();
    while !(refused(&addr) && refused(&grpc)) {
        assert!(t1.elapsed() < Duration::from_secs(5), "new connections still accepted 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!done.load(Ordering::SeqCst), "the slow request ended before the listeners closed; the test proves nothing");
    let answer = slow.join().expect("slow client");
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(300)]);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {}", &body[..body.len().min(300)]));
    let labels = v["outputs"][0]["data"].as_array().expect("labels");
    assert_eq!(labels.len(), n);
    let right = labels.iter().zip(&t.labels).filter(|(l, &y)| l.as_str() == Some(y.to_string().as_str())).count();
    assert!(right * 100 >= n * 95, "{right} of {n} right");

    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status after the drain: {status}");
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    assert!(err.contains("drained; every request in progress was answered"), "{err}");
    let _ = std::fs::remove_dir_all(&repo);
}

/// `--tls-cert/--tls-key`: the printed address is https://, curl trusting the test CA gets 200,
/// plain HTTP gets the 400 naming https://; a key file that holds a certificate stops the start
/// with an error naming it, and one flag without the other is a usage error.
#[test]
fn serve_with_tls_flags() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::env::temp_dir().join(format!("mdeploy-cli-serve-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("mnist-cnn/1")).expect("repo");
    std::fs::copy(root.join("models/mnist-cnn.mdm"), repo.join("mnist-cnn/1/model.mdm")).expect("model");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: rcgen's default one on both would make the leaf look self-signed.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mdeploy CLI test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params").signed_by(&key, &ca).expect("cert");
    let (ca_pem, cert_pem, key_pem) = (repo.join("ca.pem"), repo.join("cert.pem"), repo.join("key.pem"));
    std::fs::write(&ca_pem, ca.pem()).expect("write");
    std::fs::write(&cert_pem, cert.pem()).expect("write");
    std::fs::write(&key_pem, key.serialize_pem()).expect("write");
    let serve = |cert: &std::path::Path, key: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mdeploy"));
        c.args(["serve", "--repository"]).arg(&repo).args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--tls-cert"]).arg(cert);
        if let Some(k) = key {
            c.arg("--tls-key").arg(k);
        }
        c
    };

    // The key file holds the certificate: refused before listening, naming the file.
    let out = serve(&cert_pem, Some(&cert_pem)).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("TLS key file") && err.contains("cert.pem") && err.contains("no PEM private key"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("REST on"), "it must not have started listening");
    let out = serve(&cert_pem, None).output().expect("runs");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--tls-key"), "one flag alone must be refused");

    let mut child = serve(&cert_pem, Some(&key_pem)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let printed: Vec<String> = (0..3).map(|_| lines.next().expect("a line").expect("utf-8")).collect();
    let text = printed.join("\n");
    assert!(text.contains("REST on https://127.0.0.1:") && text.contains("(TLS)"), "{text}");
    let addr = printed[0].split("https://").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_string();
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca_pem)
        .arg(format!("https://{addr}/v2/models/mnist-cnn/ready"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), r#"{"name":"mnist-cnn","ready":true}"#, "{}", String::from_utf8_lossy(&curl.stderr));
    let plain = get(&addr, "/v2/models/mnist-cnn/ready");
    assert!(plain.starts_with("HTTP/1.1 400") && plain.contains("TLS_REQUIRED"), "{plain}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&repo);
}
