//! `mdeploy serve` end to end: the binary on a real repository, a real HTTP request, SIGTERM.
//! (The server itself is tested in serve/server/tests/.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use support::spawn_serve;

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

    let mut srv = spawn_serve(&["--repository", support::s(&repo), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"], 3);
    let text = srv.banner.clone();
    assert!(text.contains("gRPC (KServe v2) on 127.0.0.1:"), "{text}");
    assert!(text.contains("mnist-cnn v1"), "{text}");
    let addr = srv.http.clone();
    let ready = get(&addr, "/v2/models/mnist-cnn/ready");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#"{"name":"mnist-cnn","ready":true}"#), "{ready}");

    // SIGTERM: a clean stop, exit status 0.
    #[cfg(unix)]
    {
        srv.sigterm();
        let status = srv.child.wait().expect("wait");
        assert!(status.success(), "exit status after SIGTERM: {status}");
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
    let mut srv = spawn_serve(
        &["--repository", support::s(&repo), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--drain-timeout-s", "120"],
        2,
    );
    let addr = srv.http.clone();
    let grpc = srv.grpc.clone().expect("a gRPC line");

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

    srv.sigterm();
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

    let status = srv.child.wait().expect("wait");
    assert!(status.success(), "exit status after the drain: {status}");
    let err = srv.stderr();
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

    let srv = spawn_serve(
        &["--repository", support::s(&repo), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]
            .into_iter()
            .chain(["--tls-cert", support::s(&cert_pem), "--tls-key", support::s(&key_pem)])
            .collect::<Vec<_>>(),
        3,
    );
    let text = srv.banner.clone();
    assert!(text.contains("REST on https://127.0.0.1:") && text.contains("(TLS)"), "{text}");
    let addr = srv.http.clone();
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca_pem)
        .arg(format!("https://{addr}/v2/models/mnist-cnn/ready"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), r#"{"name":"mnist-cnn","ready":true}"#, "{}", String::from_utf8_lossy(&curl.stderr));
    let plain = get(&addr, "/v2/models/mnist-cnn/ready");
    assert!(plain.starts_with("HTTP/1.1 400") && plain.contains("TLS_REQUIRED"), "{plain}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&repo);
}

/// `main()` restores SIGPIPE's default action (die) so that `mdeploy predict … | head` stops
/// quietly; `mdeploy serve` must ignore it again, or a client that resets its connection while
/// an answer is being written kills the server (seen as exit status 141 under h2load). And with
/// SIGPIPE ignored, a write to a closed stdout or stderr fails instead, which must not stop the
/// server either. Checked three ways on a server whose stdout and stderr are closed before it
/// prints its banner: the kernel's record of the process's ignored signals (fails at once if the
/// `SIG_IGN` in cli/src/serve.rs goes); 30 clients that hang up or reset in the middle of a large
/// answer; then the same server still answers and is still running (whether a given hang-up
/// raises SIGPIPE depends on timing, so that half alone could pass by luck).
#[cfg(target_os = "linux")]
#[test]
fn closed_pipes_and_clients_that_hang_up_mid_answer_do_not_kill_the_server() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::env::temp_dir().join(format!("mdeploy-cli-sigpipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("mnist-mlp/1")).expect("repo");
    std::fs::copy(root.join("models/mnist-mlp.mdm"), repo.join("mnist-mlp/1/model.mdm")).expect("model");
    // No banner to read the address from (stdout and stderr are closed): the server binds port 0
    // and the test finds the port in the kernel's socket table, matched to the child's own file
    // descriptors. Picking a free port here first raced with the other tests' servers, which
    // could take it in between, so the checks below then talked to a different process.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["serve", "--repository", support::s(&repo), "--http", "127.0.0.1:0", "--no-grpc"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mdeploy serve starts");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let t0 = Instant::now();
    let port = loop {
        if let Some(p) = listening_port_of(child.id()) {
            break p;
        }
        let exited = child.try_wait().expect("try_wait");
        assert!(exited.is_none(), "mdeploy serve with closed stdout/stderr exited before listening: {exited:?}");
        assert!(t0.elapsed() < Duration::from_secs(120), "mdeploy serve (pid {}) did not listen", child.id());
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut srv = support::Served { child, banner: String::new(), http: format!("127.0.0.1:{port}"), grpc: None, log: std::path::PathBuf::new() };

    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.child.id())).expect("/proc status");
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("SigIgn line");
    assert_ne!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "mdeploy serve does not ignore SIGPIPE (SigIgn {ignored:#x})");

    // 2,000 real digits, every output as JSON: an answer of a few hundred KB, written in pieces.
    let t = &mdeploy_testkit::mnist::split().test;
    let n = 2000.min(t.n);
    let raw: Vec<u8> = (0..n).flat_map(|i| t.image(i).iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).collect();
    let head = format!(
        r#"{{"inputs":[{{"name":"input","shape":[{n},784],"datatype":"FP32","parameters":{{"binary_data_size":{}}}}}]}}"#,
        raw.len()
    );
    let send = |s: &mut TcpStream| {
        write!(
            s,
            "POST /v2/models/mnist-mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\n\
             inference-header-content-length: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            head.len(),
            head.len() + raw.len()
        )
        .and_then(|()| s.write_all(head.as_bytes()))
        .and_then(|()| s.write_all(&raw))
    };
    for i in 0..30 {
        let Ok(mut s) = TcpStream::connect(&srv.http) else { break };
        if send(&mut s).is_err() {
            continue;
        }
        if i % 2 == 1 {
            // Read the start of the answer, then reset (SO_LINGER 0 makes close() send RST).
            let mut first = [0u8; 1024];
            let _ = s.read(&mut first);
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: setsockopt on a socket this function owns, with a valid `linger`.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        drop(s); // even i: hang up (FIN) without reading a byte
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let exited = srv.child.try_wait().expect("try_wait");
    assert!(exited.is_none(), "mdeploy serve died: {exited:?}");
    let ready = srv.request("GET", "/v2/models/mnist-mlp/ready", "");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let mut s = TcpStream::connect(&srv.http).expect("connect");
    send(&mut s).expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(300)]);
    drop(srv);
    let _ = std::fs::remove_dir_all(&repo);
}

/// The TCP port that process `pid` listens on, if it has one yet: its socket inodes (from
/// `/proc/PID/fd`) matched against the LISTEN rows (state 0A) of `/proc/PID/net/tcp`.
#[cfg(target_os = "linux")]
fn listening_port_of(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|row| {
        let f: Vec<&str> = row.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
        if *state != "0A" || !inodes.iter().any(|i| i == inode) {
            return None;
        }
        u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
    })
}
