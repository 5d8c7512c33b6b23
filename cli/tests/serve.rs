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
