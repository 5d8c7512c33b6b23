//! TLS on both ports (`Options::tls`, `mdeploy serve --tls-cert/--tls-key`), with real clients:
//! a rustls HTTPS client (hyper over tokio-rustls, trusting only the test's CA), `curl --cacert`
//! (OpenSSL) and `tritonclient.grpc` with `ssl=True` (gRPC's own TLS, BoringSSL). A CA and a
//! server certificate for 127.0.0.1/localhost are made fresh by rcgen on every run.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use mdeploy_server::auth::{hash_key, ApiKeys};
use mdeploy_server::tls::Tls;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use support::*;
use tokio::io::AsyncWriteExt;

const KEY: &str = "tls-test-infer-key-7d41";

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A key of the same kind that belongs to no certificate here.
    other_key: PathBuf,
}

/// A throwaway CA, and a certificate it signs for 127.0.0.1 and localhost, as PEM files.
fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mdeploy test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &ca)
        .expect("server certificate");
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("PEM file");
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        // The chain as servers usually hold it: their own certificate, then the CA's.
        cert: write("cert.pem", format!("{}{}", leaf.pem(), ca.pem())),
        key: write("key.pem", leaf_key.serialize_pem()),
        other_key: write("other-key.pem", KeyPair::generate().expect("key").serialize_pem()),
    }
}

fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("CA certificate")).expect("root");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTPS request on a new connection: rustls (trusting only `tls`) under hyper's client.
async fn https(tls: &Arc<rustls::ClientConfig>, addr: SocketAddr, method: &str, path: &str, key: Option<&str>, body: &[u8]) -> Result<Reply, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut b = hyper::Request::builder().method(method).uri(path).header("host", "localhost").header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let resp = send.send_request(b.body(Full::new(Bytes::copy_from_slice(body))).map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
    Ok(Reply { status, headers, body })
}

fn one_digit(i: usize) -> Vec<u8> {
    let (_, img) = &digits()[(i % 10) * 200 + i / 10];
    json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img }] }).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_over_tls_with_real_clients() {
    let dir = temp_repo("tls");
    put(&dir, "digits", 1, CNN);
    let pki = make_pki(&dir);
    let keys = Arc::new(
        ApiKeys::parse(&format!("[[key]]\nname = \"app\"\nsha256 = \"{}\"\nscopes = [\"infer\"]\n", hash_key(KEY))).expect("keys"),
    );
    let local: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let srv = mdeploy_server::start(mdeploy_server::Options {
        grpc: Some(local),
        api_keys: Some(keys),
        tls: Some(Tls::from_pem_files(&pki.cert, &pki.key).expect("certificate and key load")),
        ..mdeploy_server::Options::new(&dir, local)
    })
    .await
    .expect("TLS server starts");
    // The same repository in plain HTTP without keys: the answers TLS must reproduce.
    let plain = start(&dir, false, None).await;
    let client = client_config(&pki.ca);
    let a = srv.http;

    // REST over TLS, keys as before: health open, 401 without a key, 20 real digits equal byte
    // for byte to the plain server's answers.
    assert_eq!(https(&client, a, "GET", "/v2/health/ready", None, b"").await.expect("health").status, 200);
    let r = https(&client, a, "POST", "/v2/models/digits/infer", None, &one_digit(0)).await.expect("no key");
    assert_eq!((r.status, r.json()["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{}", r.text());
    let mut cases = Vec::new();
    for i in 0..20 {
        let body = one_digit(i);
        let want = post(plain.http, "/v2/models/digits/infer", &body).await;
        assert_eq!(want.status, 200, "{}", want.text());
        let got = https(&client, a, "POST", "/v2/models/digits/infer", Some(KEY), &body).await.expect("HTTPS infer");
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.body, want.body, "digit {i}: the TLS answer differs from the plain one");
        let (_, img) = &digits()[(i % 10) * 200 + i / 10];
        cases.push(json!({ "image": img, "probs": want.json()["outputs"][0]["data"] }));
    }

    // curl (OpenSSL) trusting the test CA: the same bytes. Without the CA it refuses the
    // certificate (exit 60) before sending anything.
    let body_file = dir.join("digit.json");
    std::fs::write(&body_file, one_digit(3)).expect("body file");
    let url = format!("https://127.0.0.1:{}/v2/models/digits/infer", a.port());
    let (ca, bf, u) = (pki.ca.clone(), body_file.clone(), url.clone());
    let curl = tokio::task::spawn_blocking(move || {
        let args = |trust: bool| {
            let mut c = std::process::Command::new("curl");
            c.args(["-sS", "--max-time", "30", "-H", "content-type: application/json", "-H"])
                .arg(format!("authorization: Bearer {KEY}"))
                .arg("--data-binary")
                .arg(format!("@{}", bf.display()));
            if trust {
                c.arg("--cacert").arg(&ca);
            }
            c.arg(&u).output().expect("curl runs")
        };
        (args(true), args(false))
    })
    .await
    .expect("join");
    let want = post(plain.http, "/v2/models/digits/infer", &one_digit(3)).await;
    assert!(curl.0.status.success(), "curl: {}", String::from_utf8_lossy(&curl.0.stderr));
    assert_eq!(curl.0.stdout, want.body, "curl's answer differs from the plain one");
    assert_eq!(curl.1.status.code(), Some(60), "curl without the CA: {}", String::from_utf8_lossy(&curl.1.stderr));

    // Plain HTTP to the TLS port: a 400 that says to use https://, and the server goes on.
    let r = http(a, "GET", "/v2/health/ready", &[], b"").await.expect("plain HTTP gets an answer");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "TLS_REQUIRED");
    assert!(r.text().contains(&format!("https://HOST:{}/", a.port())), "{}", r.text());
    // A client that connects and says nothing, one that starts a handshake with garbage, and
    // one that hangs up at once: none of them holds up the next client.
    let _silent = tokio::net::TcpStream::connect(a).await.expect("connect");
    let mut garbage = tokio::net::TcpStream::connect(a).await.expect("connect");
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5]).await.expect("write");
    drop(tokio::net::TcpStream::connect(a).await.expect("connect"));
    let r = https(&client, a, "POST", "/v2/models/digits/infer", Some(KEY), &one_digit(5)).await.expect("HTTPS after bad clients");
    assert_eq!(r.status, 200, "{}", r.text());
    // A TLS client trusting only another CA fails its handshake.
    let other_dir = dir.join("other-ca");
    std::fs::create_dir_all(&other_dir).expect("folder");
    let other = make_pki(&other_dir);
    match https(&client_config(&other.ca), a, "GET", "/v2/health/ready", None, b"").await {
        Err(e) => assert!(e.starts_with("TLS:"), "{e}"),
        Ok(r) => panic!("a client trusting another CA got an answer: {}", r.status),
    }

    // gRPC over TLS with tritonclient.grpc: keys, the same probabilities, a plaintext and an
    // untrusting client refused (grpc_tls.py).
    let file = dir.join("cases.json");
    std::fs::write(&file, json!({ "digits": cases }).to_string()).expect("cases");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_tls.py");
    let grpc = srv.grpc.expect("gRPC listener").to_string();
    let ca = pki.ca.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python()).arg(script).arg(grpc).arg(ca).arg(KEY).arg(file).output()
    })
    .await
    .expect("join")
    .expect("python runs (the bootstrap makes the venv with tritonclient)");
    assert!(
        out.status.success(),
        "grpc_tls.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("tls test: {}", String::from_utf8_lossy(&out.stdout).trim());

    // REST still serves after all of the above.
    let r = https(&client, a, "POST", "/v2/models/digits/infer", Some(KEY), &one_digit(7)).await.expect("HTTPS at the end");
    assert_eq!(r.status, 200, "{}", r.text());
    srv.stop().await;
    plain.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every way the two files can be wrong gives an error naming the file and what is wrong.
#[test]
fn bad_certificate_or_key_files_are_named() {
    let dir = temp_repo("tls-bad");
    let pki = make_pki(&dir);
    let err = |cert: &Path, key: &Path| Tls::from_pem_files(cert, key).expect_err("must be refused");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::File::create(&p).and_then(|mut f| f.write_all(bytes)).expect("file");
        p
    };
    assert!(Tls::from_pem_files(&pki.cert, &pki.key).is_ok());

    let missing = dir.join("missing.pem");
    let e = err(&missing, &pki.key);
    assert!(e.contains("cannot read the TLS certificate file") && e.contains("missing.pem"), "{e}");
    let e = err(&pki.cert, &missing);
    assert!(e.contains("cannot read the TLS key file") && e.contains("missing.pem"), "{e}");

    // The two swapped.
    let e = err(&pki.key, &pki.cert);
    assert!(e.contains("key.pem") && e.contains("no `-----BEGIN CERTIFICATE-----`"), "{e}");
    let e = err(&pki.cert, &pki.cert);
    assert!(e.contains("TLS key file") && e.contains("cert.pem") && e.contains("holds no PEM private key"), "{e}");

    // A key that is not the certificate's.
    let e = err(&pki.cert, &pki.other_key);
    assert!(e.contains("other-key.pem") && e.contains("does not belong to the certificate"), "{e}");

    // A certificate file cut short, one with broken base64, one with no PEM at all, and a
    // PEM certificate section whose bytes are not a certificate.
    let text = std::fs::read_to_string(&pki.cert).expect("cert");
    let cut = write("cut.pem", &text.as_bytes()[..text.len() / 3]);
    let e = err(&cut, &pki.key);
    assert!(e.contains("cut.pem") && e.contains("cut short"), "{e}");
    let broken = write("broken.pem", text.replacen("MII", "M!I", 1).as_bytes());
    let e = err(&broken, &pki.key);
    assert!(e.contains("broken.pem") && e.contains("base64"), "{e}");
    let empty = write("empty.pem", b"");
    let e = err(&empty, &pki.key);
    assert!(e.contains("empty.pem") && e.contains("holds no `-----BEGIN CERTIFICATE-----`"), "{e}");
    let junk = write("junk.pem", b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcI\n-----END CERTIFICATE-----\n");
    let e = err(&junk, &pki.key);
    assert!(e.contains("junk.pem") && e.contains("cannot be used together"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
