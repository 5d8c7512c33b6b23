//! Slice 5 (part): API keys. REST 401/403 and gRPC UNAUTHENTICATED/PERMISSION_DENIED
//! (tritonclient.grpc), scopes infer/admin, a per-key model allow list, health open.

mod support;

use std::sync::Arc;

use mdeploy_server::auth::{hash_key, ApiKeys};
use support::*;

const INFER_KEY: &str = "infer-key-for-tests-1f3a";
const ADMIN_KEY: &str = "admin-key-for-tests-9c2e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_rest_and_grpc() {
    let dir = temp_repo("auth");
    put(&dir, "digits", 1, CNN);
    put(&dir, "other", 1, MLP);
    let file = format!(
        "[[key]]\nname = \"app\"\nsha256 = \"{}\"\nscopes = [\"infer\"]\nmodels = [\"digits\"]\n\n\
         [[key]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"admin\", \"infer\"]\n",
        hash_key(INFER_KEY),
        hash_key(ADMIN_KEY)
    );
    let keys = Arc::new(ApiKeys::parse(&file).expect("keys file"));
    let local = "127.0.0.1:0".parse().expect("address");
    let srv = mdeploy_server::start(mdeploy_server::Options {
        grpc: Some(local),
        api_keys: Some(keys),
        ..mdeploy_server::Options::new(&dir, local)
    })
    .await
    .expect("server starts");
    let a = srv.http;
    let bearer = |k: &str| format!("Bearer {k}");
    let call = |path: &'static str, key: Option<String>| async move {
        let mut h = vec![("content-type", "application/json".to_string())];
        if let Some(k) = key {
            h.push(("authorization", k));
        }
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let method = if path.ends_with("infer") || path.starts_with("/v2/repository") { "POST" } else { "GET" };
        let body = if path.ends_with("infer") { v2_body(0, 1) } else { Vec::new() };
        http(a, method, path, &hv, &body).await.expect("request")
    };

    // Health is open; everything else needs a key.
    assert_eq!(call("/v2/health/ready", None).await.status, 200);
    let r = call("/v2/models/digits/infer", None).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["code"], "UNAUTHENTICATED");
    assert_eq!(call("/v2/models/digits/infer", Some(bearer("nope"))).await.status, 401);
    assert_eq!(call("/v2/models/digits/infer", Some(INFER_KEY.to_string())).await.status, 401, "no Bearer prefix");
    assert_eq!(call("/metrics", None).await.status, 401);
    // The infer key: its model, not the other, not the repository API.
    let ok = call("/v2/models/digits/infer", Some(bearer(INFER_KEY))).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let r = call("/v2/models/other/infer", Some(bearer(INFER_KEY))).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("may use: digits"), "{}", r.text());
    let r = call("/v2/repository/index", Some(bearer(INFER_KEY))).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("\\\"admin\\\" scope"), "{}", r.text());
    // The admin key (with infer too, no allow list): everything.
    assert_eq!(call("/v2/repository/index", Some(bearer(ADMIN_KEY))).await.status, 200);
    assert_eq!(call("/v2/models/other/infer", Some(bearer(ADMIN_KEY))).await.status, 200);
    assert_eq!(call("/metrics", Some(bearer(ADMIN_KEY))).await.status, 200);

    // gRPC through tritonclient.grpc.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc_auth.py");
    let grpc = srv.grpc.expect("grpc").to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::python()).arg(script).arg(grpc).arg(INFER_KEY).output()
    })
    .await
    .expect("join")
    .expect("python runs");
    assert!(
        out.status.success(),
        "grpc_auth.py:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
