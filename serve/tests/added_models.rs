//! Models a host adds at run time (`Server::add`, `Server::add_unavailable`, `with_source`): they
//! serve beside the embedded ones, a taken name is refused without touching the model there, and
//! a model that does not load says where its bytes came from, on its own routes only.

use mdeploy_serve::{ModelEntry, Request, Server};
use serde_json::Value;

const MLP: &[u8] = include_bytes!("../../models/mnist-mlp.mdm");
const MOBILENET: &[u8] = include_bytes!("../../models/test/mobilenet-block.mdm");

fn get(s: &mut Server, path: &str) -> (u16, Value) {
    let r = s.handle(&Request { method: "GET", path, content_type: None, headers: &[], body: &[] });
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

fn infer_label(s: &mut Server, model: &str) -> (u16, Value) {
    let body = serde_json::json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5f32; 784] }] });
    let body = serde_json::to_vec(&body).expect("JSON");
    let path = format!("/v2/models/{model}/infer");
    let r = s.handle(&Request { method: "POST", path: &path, content_type: Some("application/json"), headers: &[], body: &body });
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

/// The embedded models' names, as `models/defaults.json` lists them: its default first.
fn defaults() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/defaults.json")).expect("models/defaults.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let default = v["default"].as_str().expect("a default").to_string();
    let mut names = vec![default.clone()];
    names.extend(v["models"].as_array().expect("a list").iter().filter_map(|m| m["name"].as_str()).filter(|n| *n != default).map(String::from));
    names
}

#[test]
fn the_embedded_models_are_the_default_list() {
    let names: Vec<String> = ModelEntry::embedded().into_iter().map(|e| e.name).collect();
    assert_eq!(names, defaults());
    let mut s = Server::new(ModelEntry::embedded());
    for name in defaults() {
        assert_eq!(get(&mut s, &format!("/v2/models/{name}/ready")).0, 200, "{name}");
    }
}

/// `models/defaults.json` states each model's test accuracy (the npm package's `builtinCatalog`
/// and the demo page show it before loading): it must be what the file's provenance records.
#[test]
fn the_default_list_states_each_files_accuracy() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    let text = std::fs::read_to_string(format!("{root}/defaults.json")).expect("models/defaults.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    for m in v["models"].as_array().expect("a list") {
        let (name, file) = (m["name"].as_str().expect("name"), m["file"].as_str().expect("file"));
        let bytes = std::fs::read(format!("{root}/{file}")).expect("the model file");
        let model = mdeploy_core::format::read(&bytes).expect("a default model loads");
        let recorded = model.meta.provenance.test_accuracy.expect("a default model records its accuracy") as f64;
        let stated = m["accuracy"].as_f64().expect("accuracy");
        assert!((recorded - stated).abs() < 5e-5, "{name}: defaults.json says {stated}, the file records {recorded}");
    }
}

#[test]
fn an_added_model_serves_beside_the_embedded_ones() {
    let mut s = Server::new(ModelEntry::embedded());
    s.add(ModelEntry::new("mobilenet-block", "1", MOBILENET).with_source("/models/mobilenet-block.mdm")).expect("a free name");
    let names: Vec<String> = s.models().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, [defaults(), vec!["mobilenet-block".to_string()]].concat());
    let (status, v) = infer_label(&mut s, "mobilenet-block");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model_name"], "mobilenet-block");
    assert_eq!(get(&mut s, "/v2/health/ready").0, 200);
}

#[test]
fn a_taken_name_is_refused_and_the_model_there_keeps_serving() {
    let mut s = Server::new(ModelEntry::embedded());
    let before = infer_label(&mut s, "mnist-cnn").1;
    let err = s.add(ModelEntry::new("mnist-cnn", "1", MLP).with_source("/models/mnist-cnn.mdm")).expect_err("taken");
    assert!(err.contains("/models/mnist-cnn.mdm") && err.contains("already served") && err.contains("the build"), "{err}");
    assert_eq!(s.models().count(), defaults().len(), "the embedded models, no more");
    assert_eq!(infer_label(&mut s, "mnist-cnn").1, before, "still the embedded CNN");
}

#[test]
fn broken_added_models_name_their_source_and_leave_the_others_alone() {
    let mut s = Server::new(ModelEntry::embedded());
    let mut flipped = MLP.to_vec();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    s.add(ModelEntry::new("flipped", "1", flipped).with_source("binding MDEPLOY_MODEL_flipped")).expect("a free name");
    s.add_unavailable("huge", "1", "/models/huge.mdm", "/models/huge.mdm: 70000000 bytes, over the limit").expect("a free name");

    let (status, v) = get(&mut s, "/v2/models/flipped");
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["code"], "BAD_MODEL");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("(binding MDEPLOY_MODEL_flipped)") && msg.to_lowercase().contains("digest"), "{msg}");

    let (status, v) = infer_label(&mut s, "huge");
    assert_eq!(status, 500, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("/models/huge.mdm: 70000000 bytes, over the limit"), "{v}");
    assert_eq!(get(&mut s, "/v2/models/huge/ready").0, 503);

    // The embedded models are untouched; the server as a whole is not ready (strict, as Triton).
    assert_eq!(infer_label(&mut s, "mnist-mlp").0, 200);
    assert_eq!(get(&mut s, "/v2/models/mnist-resnet/ready").0, 200);
    assert_eq!(get(&mut s, "/v2/health/ready").0, 503);
    // Preload reports both, by name and source.
    let e = s.preload().expect_err("two broken models");
    assert!(e.contains("flipped") && e.contains("huge.mdm"), "{e}");
}

#[test]
fn the_repository_index_lists_every_model_with_its_state() {
    let mut s = Server::new(ModelEntry::embedded());
    s.add(ModelEntry::new("mobilenet-block", "1", MOBILENET).with_source("/models/mobilenet-block.mdm")).expect("free");
    s.add_unavailable("huge", "1", "/models/huge.mdm", "/models/huge.mdm: too large").expect("free");
    let index = |s: &mut Server, body: &[u8]| {
        let r = s.handle(&Request { method: "POST", path: "/v2/repository/index", content_type: Some("application/json"), headers: &[], body });
        (r.status, serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null))
    };
    let (status, v) = index(&mut s, b"");
    assert_eq!(status, 200, "{v}");
    let rows: Vec<(String, String)> = v
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or_default().to_string(), m["state"].as_str().unwrap_or_default().to_string()))
        .collect();
    let n = defaults().len();
    let mut want: Vec<(String, String)> = defaults().into_iter().map(|d| (d, "READY".to_string())).collect();
    want.push(("mobilenet-block".into(), "READY".into()));
    want.push(("huge".into(), "UNAVAILABLE".into()));
    assert_eq!(rows, want);
    assert!(v[n + 1]["reason"].as_str().unwrap_or_default().contains("/models/huge.mdm: too large"), "{v}");
    assert!(v[0].get("reason").is_none(), "{v}");
    let (_, ready_only) = index(&mut s, br#"{"ready": true}"#);
    assert_eq!(ready_only.as_array().map(Vec::len), Some(n + 1));
    let (status, v) = index(&mut s, br#"{"ready": 1}"#);
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap_or_default().contains("repository index"), "{v}");
    let r = s.handle(&Request { method: "GET", path: "/v2/repository/index", content_type: None, headers: &[], body: &[] });
    assert_eq!(r.status, 405);
}
