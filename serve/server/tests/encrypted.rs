//! `mdeploy serve --decryption-key`: encrypted versions in the repository are decrypted in
//! memory and serve like plain ones; a version encrypted for another key (or with no key given)
//! is refused with a log line and the `load_failures` metric, and the version before it keeps
//! serving. Real models (models/), real HTTP.

mod support;

use mdeploy_core::format::{self, DecryptionKey, PublicKey, SecretKey};
use mdeploy_server::Repository;
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn encrypted(bytes: &[u8], key: &DecryptionKey, nonce: u8) -> Vec<u8> {
    format::encrypt(bytes, key, &[nonce; 12]).expect("encrypts")
}

async fn infer(a: std::net::SocketAddr, model: &str, x: &[f32]) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": x }] });
    let r = post(a, &format!("/v2/models/{model}/infer"), body.to_string().as_bytes()).await;
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_versions_decrypt_with_the_key_and_a_wrong_key_is_a_refused_version() {
    let dir = temp_repo("encrypted");
    let key = DecryptionKey::from_bytes(&[7; 32]);
    let other = DecryptionKey::from_bytes(&[8; 32]);
    put(&dir, "mlp", 1, &encrypted(MLP, &key, 1));
    // Encrypted, no key on the server: refused at start, naming the key id it needs.
    let plain_dir = temp_repo("encrypted-nokey");
    put(&plain_dir, "mlp", 1, &encrypted(MLP, &key, 2));
    let metrics = Arc::new(mdeploy_server::metrics::Metrics::new());
    let repo = Repository::open(&plain_dir, metrics.clone()).expect("opens");
    assert!(repo.current().served.is_empty(), "nothing serves without the key");
    let text = String::from_utf8_lossy(&metrics.render()).into_owned();
    assert_eq!(metric(&text, "mdeploy_model_load_failures_total", "mlp", "1"), 1.0, "{text}");

    let local = "127.0.0.1:0".parse().expect("address");
    let srv = mdeploy_server::start(mdeploy_server::Options {
        poll: Some(Duration::from_millis(50)),
        decryption_key: Some(key.clone()),
        ..mdeploy_server::Options::new(&dir, local)
    })
    .await
    .expect("server starts");
    let a = srv.http;
    // The same answers as the plain model, through the decrypted one.
    let mut plain = mdeploy_core::Plan::new(&format::read(MLP).expect("model"), 1).expect("plan");
    for i in [0usize, 250, 1999] {
        let x = &digits()[i].1;
        let (status, body) = infer(a, "mlp", x).await;
        assert_eq!(status, 200, "{body}");
        let mut want = vec![0.0f32; 10];
        plain.run(x, 1, &mut want).expect("runs");
        let got: Vec<f32> = body["outputs"][0]["data"].as_array().expect("data").iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got, want, "digit {i}");
    }

    // Version 2 encrypted for another key: refused (metric), version 1 keeps serving.
    put(&dir, "mlp", 2, &encrypted(MLP, &other, 3));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = get(a, "/metrics").await.text();
        if metric(&m, "mdeploy_model_load_failures_total", "mlp", "2") >= 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "version 2 was never refused:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(a, "/v2/models/mlp/versions/2").await.status, 404, "version 2 is not served");
    // The repository index says why (the same text as the log line).
    let body = post(a, "/v2/repository/index", b"").await.text();
    assert!(body.contains("DECRYPT_FAILED") && body.contains(&other.key_id().to_string()), "names the key id it needs: {body}");
    let (status, body) = infer(a, "mlp", &digits()[3].1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"], "1", "{body}");

    // Encrypt-then-sign under a policy: checked before decrypting.
    let signer = SecretKey::from_seed(&[9; 32]);
    let signed = format::sign(&encrypted(MLP, &key, 4), &signer).expect("signs");
    let pdir = temp_repo("encrypted-signed");
    put(&pdir, "mlp", 1, &signed);
    put(&pdir, "unsigned", 1, &encrypted(MLP, &key, 5));
    let trusted: Vec<PublicKey> = vec![signer.public_key()];
    let repo = Repository::open_with_keys(&pdir, Arc::new(mdeploy_server::metrics::Metrics::new()), Some(trusted), Some(key.clone()))
        .expect("opens");
    let served: Vec<String> = repo.current().served.iter().map(|(m, v)| format!("{m} v{v}")).collect();
    assert_eq!(served, ["mlp v1"], "the signed encrypted version serves, the unsigned one is refused");
    srv.stop().await;
    for d in [dir, plain_dir, pdir] {
        std::fs::remove_dir_all(d).ok();
    }
}
