//! Every route and every error status of the API, on real MNIST test digits, compared with the
//! core's own Plan (bit for bit: same kernels, same process).

use std::sync::OnceLock;

use mdeploy_core::preprocess::{self, Polarity};
use mdeploy_core::{format, Plan};
use mdeploy_serve::{ModelEntry, Request, Response, Server, MAX_BODY_BYTES};
use serde_json::{json, Value};

const CNN: &[u8] = include_bytes!("../../models/mnist-cnn.mdm");
const MLP: &[u8] = include_bytes!("../../models/mnist-mlp.mdm");

/// The test split: the last 200 digits of each class, as (label, 784 floats in 0..1) (the
/// testkit's one loader).
fn test_digits() -> &'static Vec<(usize, Vec<f32>)> {
    static D: OnceLock<Vec<(usize, Vec<f32>)>> = OnceLock::new();
    D.get_or_init(|| {
        let t = &mdeploy_testkit::mnist::split().test;
        (0..t.n).map(|i| (t.labels[i] as usize, t.image(i).to_vec())).collect()
    })
}

fn gray8(img: &[f32]) -> Vec<u8> {
    img.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
}

fn plan(bytes: &[u8]) -> Plan {
    Plan::new(&format::read(bytes).unwrap(), 1).unwrap()
}

fn server() -> Server {
    Server::new(ModelEntry::embedded())
}

fn call(s: &mut Server, method: &str, path: &str, body: &[u8]) -> (Response, Value) {
    let r = s.handle(&Request { method, path, content_type: Some("application/json"), headers: &[], body });
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, v)
}

fn get(s: &mut Server, path: &str) -> (Response, Value) {
    call(s, "GET", path, b"")
}

fn post(s: &mut Server, path: &str, body: &Value) -> (Response, Value) {
    call(s, "POST", path, &serde_json::to_vec(body).unwrap())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// An error answer: status, JSON `{"error": non-empty}`, and the server still works after it.
fn assert_error(s: &mut Server, r: &Response, v: &Value, status: u16, needle: &str) {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.content_type, "application/json");
    let msg = v["error"].as_str().unwrap_or_else(|| panic!("no error field in {}", r.text()));
    assert!(msg.to_lowercase().contains(&needle.to_lowercase()), "{msg:?} should mention {needle:?}");
    let (ok, _) = get(s, "/v2/health/live");
    assert_eq!(ok.status, 200);
    let (ok, v) = post(s, "/v2/models/mnist-mlp/infer", &infer_body(&test_digits()[0].1, "FP32"));
    assert_eq!(ok.status, 200, "good request after an error: {v}");
}

fn infer_body(img: &[f32], dtype: &str) -> Value {
    let data: Value = if dtype == "UINT8" { json!(gray8(img)) } else { json!(img) };
    json!({ "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": dtype, "data": data }] })
}

#[test]
fn health_and_server_metadata() {
    let mut s = server();
    let (r, v) = get(&mut s, "/v2/health/live");
    assert_eq!((r.status, v["live"].as_bool()), (200, Some(true)));
    let (r, v) = get(&mut s, "/v2/health/ready");
    assert_eq!((r.status, v["ready"].as_bool()), (200, Some(true)));
    let (r, v) = get(&mut s, "/v2");
    assert_eq!(r.status, 200);
    assert_eq!(v["name"], "mdeploy");
    assert!(v["extensions"].is_array());
    assert_eq!(r.headers.iter().find(|h| h.0 == "access-control-allow-origin").map(|h| h.1.as_str()), Some("*"));
    let (r, _) = get(&mut s, "/openapi.yaml");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("openapi: 3.1"));
}

#[test]
fn model_metadata_and_ready() {
    let mut s = server();
    for (name, shape) in [("mnist-cnn", json!([-1, 1, 28, 28])), ("mnist-mlp", json!([-1, 1, 28, 28]))] {
        for path in [format!("/v2/models/{name}"), format!("/v2/models/{name}/versions/1")] {
            let (r, v) = get(&mut s, &path);
            assert_eq!(r.status, 200, "{path}: {v}");
            assert_eq!(v["name"], name);
            assert_eq!(v["versions"], json!(["1"]));
            assert_eq!(v["platform"], "mdeploy");
            assert_eq!(v["inputs"], json!([{ "name": "input", "datatype": "FP32", "shape": shape }]));
            assert_eq!(v["outputs"][0], json!({ "name": "probabilities", "datatype": "FP32", "shape": [-1, 10] }));
            assert_eq!(v["outputs"][1], json!({ "name": "label", "datatype": "BYTES", "shape": [-1] }));
            let (r, v) = get(&mut s, &format!("{path}/ready"));
            assert_eq!((r.status, v["ready"].as_bool(), v["name"].as_str()), (200, Some(true), Some(name)));
        }
    }
}

#[test]
fn kserve_infer_matches_the_core_on_test_digits() {
    let mut s = server();
    let mut cnn = plan(CNN);
    let mut mlp = plan(MLP);
    let mut correct = 0;
    // Every 10th test digit (200), FP32 for the CNN and UINT8 for the MLP.
    for (k, (label, img)) in test_digits().iter().enumerate().step_by(10) {
        let (r, v) = post(&mut s, "/v2/models/mnist-cnn/infer", &json!({
            "id": format!("req-{k}"),
            "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": img }],
        }));
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["model_name"], "mnist-cnn");
        assert_eq!(v["model_version"], "1");
        assert_eq!(v["id"], format!("req-{k}"));
        let want = cnn.predict(img).unwrap().to_vec();
        assert_eq!(v["outputs"][0]["name"], "probabilities");
        assert_eq!(v["outputs"][0]["shape"], json!([1, 10]));
        assert_eq!(floats(&v["outputs"][0]["data"]), want, "digit {k}");
        let class = (0..10).max_by(|&a, &b| want[a].total_cmp(&want[b]).then(b.cmp(&a))).unwrap();
        assert_eq!(v["outputs"][1], json!({ "name": "label", "datatype": "BYTES", "shape": [1], "data": [class.to_string()] }));
        correct += usize::from(class == *label);

        let (r, v) = post(&mut s, "/v2/models/mnist-mlp/versions/1/infer", &infer_body(img, "UINT8"));
        assert_eq!(r.status, 200, "{v}");
        let scaled: Vec<f32> = gray8(img).iter().map(|&b| b as f32 / 255.0).collect();
        assert_eq!(floats(&v["outputs"][0]["data"]), mlp.predict(&scaled).unwrap().to_vec());
        assert!(v.get("id").is_none());
    }
    assert!(correct >= 190, "the CNN got only {correct}/200 test digits right");
}

#[test]
fn kserve_batches_nested_data_and_output_filter() {
    let mut s = server();
    let mut cnn = plan(CNN);
    let imgs: Vec<&Vec<f32>> = test_digits().iter().step_by(200).map(|(_, i)| i).collect(); // one per class
    let nested: Vec<Value> = imgs.iter().map(|i| json!([i.chunks(28).collect::<Vec<_>>()])).collect();
    let (r, v) = post(&mut s, "/v2/models/mnist-cnn/infer", &json!({
        "parameters": { "sequence_id": 0, "priority": 1 },
        "inputs": [{ "name": "input", "shape": [10, 1, 28, 28], "datatype": "FP32", "data": nested }],
        "outputs": [{ "name": "label" }],
    }));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 1, "only the requested output");
    assert_eq!(v["outputs"][0]["shape"], json!([10]));
    let labels: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let got: Vec<String> = v["outputs"][0]["data"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    let want: Vec<String> = imgs
        .iter()
        .map(|i| {
            let p = cnn.predict(i).unwrap();
            labels[(0..10).fold(0, |b, j| if p[j] > p[b] { j } else { b })].clone()
        })
        .collect();
    assert_eq!(got, want);
    // [n, 784] and a bare [784] are accepted too.
    let flat: Vec<f32> = imgs[..2].iter().flat_map(|i| i.iter().copied()).collect();
    let (r, v) = post(&mut s, "/v2/models/mnist-cnn/infer", &json!({
        "inputs": [{ "name": "input", "shape": [2, 784], "datatype": "FP32", "data": flat }] }));
    assert_eq!((r.status, &v["outputs"][0]["shape"]), (200, &json!([2, 10])), "{v}");
    let (r, v) = post(&mut s, "/v2/models/mnist-mlp/infer", &json!({
        "inputs": [{ "name": "input", "shape": [784], "datatype": "FP32", "data": imgs[3] }] }));
    assert_eq!((r.status, &v["outputs"][1]["shape"]), (200, &json!([1])), "{v}");
}

#[test]
fn tf_serving_routes() {
    let mut s = server();
    let mut mlp = plan(MLP);
    for path in ["/v1/models/mnist-cnn", "/v1/models/mnist-cnn/versions/1"] {
        let (r, v) = get(&mut s, path);
        assert_eq!(r.status, 200);
        assert_eq!(v["model_version_status"][0]["state"], "AVAILABLE");
        assert_eq!(v["model_version_status"][0]["version"], "1");
    }
    let (r, v) = get(&mut s, "/v1/models/mnist-mlp/metadata");
    assert_eq!(r.status, 200);
    assert_eq!(v["model_spec"]["name"], "mnist-mlp");
    let sig = &v["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["input"]["dtype"], "DT_FLOAT");
    assert_eq!(sig["inputs"]["input"]["tensor_shape"]["dim"][0]["size"], "-1");
    assert_eq!(sig["outputs"]["probabilities"]["tensor_shape"]["dim"][1]["size"], "10");

    let a = &test_digits()[5].1;
    let b = &test_digits()[1500].1;
    let (pa, pb) = (mlp.predict(a).unwrap().to_vec(), mlp.predict(b).unwrap().to_vec());
    // Row format: one nested, one named flat instance.
    let (r, v) = post(&mut s, "/v1/models/mnist-mlp:predict", &json!({
        "signature_name": "serving_default",
        "instances": [ a.chunks(28).collect::<Vec<_>>(), { "input": b } ] }));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(floats(&v["predictions"][0]["probabilities"]), pa);
    assert_eq!(floats(&v["predictions"][1]["probabilities"]), pb);
    let argmax = |p: &[f32]| (0..p.len()).fold(0, |b, j| if p[j] > p[b] { j } else { b }).to_string();
    assert_eq!(v["predictions"][1]["label"], argmax(&pb));
    // Columnar format, versioned path.
    let (r, v) = post(&mut s, "/v1/models/mnist-mlp/versions/1:predict", &json!({ "inputs": { "input": [a, b] } }));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(floats(&v["outputs"]["probabilities"][1]), pb);
    assert_eq!(v["outputs"]["label"][0], argmax(&pa));
    let (r, v) = post(&mut s, "/v1/models/mnist-mlp:predict", &json!({ "inputs": [a] }));
    assert_eq!((r.status, v["outputs"]["label"].as_array().map(|l| l.len())), (200, Some(1)));
}

#[test]
fn predict_raw_bytes_equals_the_core_bit_for_bit() {
    let mut s = server();
    let mut cnn = plan(CNN);
    let mut mlp = plan(MLP);
    for (label, img) in test_digits().iter().step_by(20) {
        let raw = gray8(img);
        let input = preprocess::from_gray8(28, 28, &raw, Polarity::InkHigh).unwrap();
        let (r, v) = call(&mut s, "POST", "/predict", &raw);
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["model"], "mnist-cnn");
        let want = cnn.predict(&input).unwrap().to_vec();
        let got = floats(&v["probs"]);
        assert_eq!(got.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), want.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
        let class = v["class"].as_u64().unwrap() as usize;
        assert_eq!(v["label"], class.to_string());
        let _ = label;
        let (r, v) = call(&mut s, "POST", "/predict?model=mnist-mlp", &raw);
        assert_eq!((r.status, &v["model"]), (200, &json!("mnist-mlp")));
        assert_eq!(floats(&v["probs"]), mlp.predict(&input).unwrap().to_vec());
    }
}

#[test]
fn predict_png_dark_on_light() {
    // A real digit drawn dark on a white 56×56 page, as a PNG: preprocessing must invert,
    // crop and centre it, and the CNN must read it right.
    let (label, img) = &test_digits()[7 * 200 + 3];
    let mut page = vec![255u8; 56 * 56];
    for y in 0..28 {
        for x in 0..28 {
            page[(y + 10) * 56 + x + 20] = 255 - (img[y * 28 + x] * 255.0).round() as u8;
        }
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 56, 56);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&page).unwrap();
    }
    let mut s = server();
    let (r, v) = call(&mut s, "POST", "/predict", &png_bytes);
    assert_eq!(r.status, 200, "{v}");
    let luma: Vec<f32> = page.iter().map(|&g| g as f32 / 255.0).collect();
    let input = preprocess::from_luma(56, 56, &luma, Polarity::Auto).unwrap();
    assert_eq!(floats(&v["probs"]), plan(CNN).predict(&input).unwrap().to_vec());
    assert_eq!(v["label"], label.to_string());
    // A broken PNG is a 400 that says so.
    let (r, v) = call(&mut s, "POST", "/predict", &png_bytes[..60]);
    assert_error(&mut s, &r, &v, 400, "PNG");
}

#[test]
fn every_error_status() {
    let mut s = server();
    let img = &test_digits()[0].1;
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/v2/models/mnist-cnn/infer", b"{not json".to_vec(), 400, "not a valid"),
        ("POST", "/v2/models/mnist-cnn/infer", b"".to_vec(), 400, "empty"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [1, 1, 27, 28], "datatype": "FP32", "data": &img[..756] }] })).unwrap(), 400, "shape"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [2, 784], "datatype": "FP32", "data": img }] })).unwrap(), 400, "needs 1568 values"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP16", "data": img }] })).unwrap(), 400, "datatype"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "UINT8", "data": img }] })).unwrap(), 400, "UINT8"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [1, -1], "datatype": "FP32", "data": img }] })).unwrap(), 400, "positive"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": img }] })).unwrap(), 400, "unknown input"),
        ("POST", "/v2/models/mnist-cnn/infer", serde_json::to_vec(&json!({
            "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img }],
            "outputs": [{ "name": "logits" }] })).unwrap(), 400, "unknown output"),
        // NaN is not JSON; as a string it is not a number; 1e39 overflows f32.
        ("POST", "/v2/models/mnist-cnn/infer", br#"{"inputs":[{"name":"input","shape":[1],"datatype":"FP32","data":[NaN]}]}"#.to_vec(), 400, "not a valid"),
        ("POST", "/v2/models/mnist-cnn/infer", br#"{"inputs":[{"name":"input","shape":[1],"datatype":"FP32","data":["NaN"]}]}"#.to_vec(), 400, "number"),
        ("POST", "/v2/models/mnist-cnn/infer", {
            let mut d: Vec<String> = img.iter().map(|v| v.to_string()).collect();
            d[5] = "1e39".into();
            format!(r#"{{"inputs":[{{"name":"input","shape":[1,784],"datatype":"FP32","data":[{}]}}]}}"#, d.join(",")).into_bytes()
        }, 400, "finite"),
        ("POST", "/v2/models/mnist-gpt/infer", b"{}".to_vec(), 404, "unknown model"),
        ("GET", "/v2/models/mnist-cnn/versions/2", b"".to_vec(), 404, "no version"),
        ("GET", "/v2/models/mnist-cnn/versions/2/ready", b"".to_vec(), 404, "no version"),
        ("GET", "/v2/models/mnist-cnn/explain", b"".to_vec(), 404, "no KServe"),
        ("GET", "/v3/anything", b"".to_vec(), 404, "no route"),
        ("GET", "/v2/models/mnist-cnn/infer", b"".to_vec(), 405, "POST"),
        ("POST", "/v2/health/live", b"".to_vec(), 405, "GET"),
        ("DELETE", "/v2/models/mnist-cnn", b"".to_vec(), 405, "GET"),
        ("GET", "/predict", b"".to_vec(), 405, "POST"),
        ("POST", "/v1/models/mnist-cnn", b"".to_vec(), 405, "GET"),
        ("GET", "/v1/models/mnist-cnn:predict", b"".to_vec(), 405, "POST"),
        ("POST", "/v1/models/mnist-cnn:classify", b"{}".to_vec(), 404, ":predict"),
        ("GET", "/v1/models/nope/metadata", b"".to_vec(), 404, "unknown model"),
        ("POST", "/v1/models/mnist-cnn/versions/7:predict", b"{}".to_vec(), 404, "no version"),
        ("POST", "/v1/models/mnist-cnn:predict", b"{}".to_vec(), 400, "instances"),
        ("POST", "/v1/models/mnist-cnn:predict", b"".to_vec(), 400, "empty"),
        ("POST", "/v1/models/mnist-cnn:predict", b"[1,2".to_vec(), 400, "not a valid"),
        ("POST", "/v1/models/mnist-cnn:predict", br#"{"instances":[[1,2,3]]}"#.to_vec(), 400, "784"),
        ("POST", "/v1/models/mnist-cnn:predict", br#"{"instances":[]}"#.to_vec(), 400, "empty"),
        ("POST", "/v1/models/mnist-cnn:predict", br#"{"inputs":[1,2,3]}"#.to_vec(), 400, "n ×"),
        ("POST", "/v1/models/mnist-cnn:predict", br#"{"inputs":{"x":[1]}}"#.to_vec(), 400, "named 'x'"),
        ("POST", "/v1/models/mnist-cnn:predict", br#"{"signature_name":"other","inputs":[1]}"#.to_vec(), 400, "signature"),
        ("POST", "/predict", b"".to_vec(), 400, "empty"),
        ("POST", "/predict", vec![7u8; 783], 415, "784"),
        ("POST", "/predict", vec![0u8; 784], 400, "no ink"),
        ("POST", "/predict?model=mnist-xl", vec![9u8; 784], 404, "unknown model"),
        ("POST", "/predict?size=3", vec![9u8; 784], 400, "query"),
    ];
    for (method, path, body, status, needle) in cases {
        let (r, v) = call(&mut s, method, path, &body);
        assert_error(&mut s, &r, &v, status, needle);
        if status == 405 {
            let allow = r.headers.iter().find(|h| h.0 == "allow").map(|h| h.1.clone());
            assert!(allow.is_some_and(|a| a.contains("GET") || a.contains("POST")), "{method} {path}: no Allow header");
        }
    }
}

#[test]
fn too_large_body_is_413_then_a_good_request_works() {
    let mut s = server();
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let (r, v) = call(&mut s, "POST", "/v2/models/mnist-cnn/infer", &big);
    assert_error(&mut s, &r, &v, 413, "limit");
    let r = Response::payload_too_large();
    assert_eq!(r.status, 413);
    assert!(r.text().contains("\"error\""));
}

#[test]
fn a_corrupt_model_is_a_500_that_names_it_and_other_models_still_work() {
    let mut bytes = MLP.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut s = Server::new(vec![ModelEntry::new("broken", "1", bytes), ModelEntry::new("mnist-mlp", "1", MLP)]);
    let (r, v) = get(&mut s, "/v2/models/broken");
    assert_eq!(r.status, 500);
    assert!(v["error"].as_str().unwrap().contains("broken"), "{v}");
    let (r, v) = get(&mut s, "/v2/health/ready");
    assert_eq!((r.status, &v["ready"]), (503, &json!(false)));
    let (r, v) = get(&mut s, "/v2/models/broken/ready");
    assert_eq!((r.status, &v["ready"]), (503, &json!(false)));
    let (r, _) = post(&mut s, "/v2/models/mnist-mlp/infer", &infer_body(&test_digits()[9].1, "FP32"));
    assert_eq!(r.status, 200);
}

#[test]
fn preload_gives_the_same_answers_as_lazy_loading() {
    let mut lazy = server();
    let mut pre = server();
    assert_eq!(pre.preload(), Ok(()));
    for (i, (_, img)) in test_digits().iter().step_by(97).enumerate() {
        let model = if i % 2 == 0 { "mnist-cnn" } else { "mnist-mlp" };
        let path = format!("/v2/models/{model}/infer");
        let (a, va) = post(&mut lazy, &path, &infer_body(img, "FP32"));
        let (b, vb) = post(&mut pre, &path, &infer_body(img, "FP32"));
        assert_eq!((a.status, b.status), (200, 200), "{va} / {vb}");
        assert_eq!(a.body, b.body, "{path}: preloaded and lazy answers differ");
    }
    let (r, v) = get(&mut pre, "/v2/health/ready");
    assert_eq!((r.status, v["ready"].as_bool()), (200, Some(true)));
}

#[test]
fn preload_names_a_broken_model_and_keeps_serving_the_others() {
    let mut bytes = MLP.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut s = Server::new(vec![ModelEntry::new("broken", "1", bytes), ModelEntry::new("mnist-mlp", "1", MLP)]);
    let err = s.preload().unwrap_err();
    assert!(err.contains("'broken'") && !err.contains("mnist-mlp"), "{err}");
    let (r, _) = get(&mut s, "/v2/models/broken");
    assert_eq!(r.status, 500);
    let (r, _) = post(&mut s, "/v2/models/mnist-mlp/infer", &infer_body(&test_digits()[9].1, "FP32"));
    assert_eq!(r.status, 200);
}

#[test]
fn options_preflight() {
    let mut s = server();
    let r = s.handle(&Request { method: "OPTIONS", path: "/predict", content_type: None, headers: &[], body: b"" });
    assert_eq!(r.status, 204);
    assert!(r.headers.iter().any(|h| h.0 == "access-control-allow-methods" && h.1.contains("POST")));
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    fn paths() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/v2/models/mnist-cnn/infer".to_string()),
            Just("/v2/models/mnist-mlp/versions/1/infer".to_string()),
            Just("/v1/models/mnist-cnn:predict".to_string()),
            Just("/predict".to_string()),
            "/[a-z0-9:/?=&%.-]{0,40}",
            "\\PC{0,30}",
        ]
    }

    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        let valid = serde_json::to_vec(&infer_body(&vec![0.5; 784], "FP32")).unwrap();
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2000),
            // A valid request with bytes flipped, cut short or spliced.
            (proptest::collection::vec((0..valid.len(), any::<u8>()), 0..8), 0..=valid.len()).prop_map(move |(flips, cut)| {
                let mut b = valid.clone();
                for (i, x) in flips {
                    b[i] = x;
                }
                b.truncate(cut);
                b
            }),
            Just(br#"{"inputs":[{"name":"input","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}"#.to_vec()),
            Just(br#"{"instances":[{"input":[[[[[[1]]]]]]}]}"#.to_vec()),
            Just(vec![b'['; 5000]),
        ]
    }

    /// A binary-extension request (JSON + 784 floats) with bytes flipped or cut short.
    fn binary_bodies() -> impl Strategy<Value = Vec<u8>> {
        let (valid, _) = binary_body(&vec![0.5; 784], "FP32", &json!([{ "name": "label", "parameters": { "binary_data": true } }]));
        (proptest::collection::vec((0..valid.len(), any::<u8>()), 0..8), 0..=valid.len()).prop_map(move |(flips, cut)| {
            let mut b = valid.clone();
            for (i, x) in flips {
                b[i] = x;
            }
            b.truncate(cut);
            b
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn never_panics(
            method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), Just("PUT".to_string()), "[A-Z]{0,6}"],
            path in paths(),
            body in prop_oneof![bodies(), binary_bodies()],
            // Inference-Header-Content-Length: absent, any number (often inside the body), or junk.
            header in prop_oneof![Just(None), (0usize..4000).prop_map(|n| Some(n.to_string())), "\\PC{0,12}".prop_map(Some)],
        ) {
            let mut s = server();
            let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Inference-Header-Content-Length", h.as_str())).collect();
            let r = s.handle(&Request { method: &method, path: &path, content_type: None, headers: &headers, body: &body });
            prop_assert!([200, 204, 400, 404, 405, 413, 415].contains(&r.status), "status {} for {method} {path}", r.status);
            if r.status >= 400 {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                prop_assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
}

#[test]
fn predict_the_sample_pngs() {
    // samples/digit-<d>.png are the pictures the README's curl example posts.
    let mut s = server();
    for d in 0..10 {
        let path = format!("{}/../samples/digit-{d}.png", env!("CARGO_MANIFEST_DIR"));
        let png_bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (r, v) = call(&mut s, "POST", "/predict", &png_bytes);
        assert_eq!(r.status, 200, "{path}: {v}");
        assert_eq!(v["label"], d.to_string(), "{path}");
    }
}

// ---- Triton's binary tensor extension (what tritonclient.http sends and asks for by default) ----

const HDR: &str = "Inference-Header-Content-Length";

/// A binary-extension request for one image: the JSON (input with `binary_data_size`, the given
/// `outputs`) then the image as little-endian FP32 or UINT8. Returns the body and the JSON length.
fn binary_body(img: &[f32], dtype: &str, outputs: &Value) -> (Vec<u8>, usize) {
    let raw: Vec<u8> = if dtype == "UINT8" { gray8(img) } else { img.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let mut req = json!({ "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": dtype,
        "parameters": { "binary_data_size": raw.len() } }] });
    if !outputs.is_null() {
        req["outputs"] = outputs.clone();
    }
    let mut body = serde_json::to_vec(&req).unwrap();
    let n = body.len();
    body.extend_from_slice(&raw);
    (body, n)
}

fn call_h(s: &mut Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    s.handle(&Request { method: "POST", path, content_type: Some("application/octet-stream"), headers, body })
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|h| h.0 == name).map(|h| h.1.as_str())
}

/// A response's JSON and, per output name, its decoded binary data (FP32 floats or BYTES strings),
/// checking the framing the way tritonclient's InferResult reads it.
fn decode_binary_response(r: &Response) -> (Value, Vec<(String, Value)>) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "application/octet-stream");
    let n: usize = header(r, "inference-header-content-length").expect("inference-header-content-length").parse().unwrap();
    assert!(header(r, "access-control-expose-headers").is_some_and(|h| h.contains("inference-header-content-length")));
    let v: Value = serde_json::from_slice(&r.body[..n]).expect("JSON part");
    let mut rest = &r.body[n..];
    let mut out = Vec::new();
    for o in v["outputs"].as_array().unwrap() {
        let Some(size) = o["parameters"]["binary_data_size"].as_u64() else { continue };
        assert!(o.get("data").is_none(), "a binary output has no data: {o}");
        let (bytes, tail) = rest.split_at(size as usize);
        rest = tail;
        let data = match o["datatype"].as_str().unwrap() {
            "FP32" => json!(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()),
            "BYTES" => {
                let mut items = Vec::new();
                let mut b = bytes;
                while !b.is_empty() {
                    let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
                    items.push(String::from_utf8(b[4..4 + len].to_vec()).unwrap());
                    b = &b[4 + len..];
                }
                json!(items)
            }
            other => panic!("unexpected datatype {other}"),
        };
        out.push((o["name"].as_str().unwrap().to_string(), data));
    }
    assert!(rest.is_empty(), "{} bytes after the last binary output", rest.len());
    (v, out)
}

#[test]
fn server_metadata_lists_the_binary_extension_and_preflight_allows_its_header() {
    let mut s = server();
    let (_, v) = get(&mut s, "/v2");
    assert!(v["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")), "{v}");
    let r = s.handle(&Request { method: "OPTIONS", path: "/v2/models/mnist-cnn/infer", content_type: None, headers: &[], body: b"" });
    assert!(header(&r, "access-control-allow-headers").is_some_and(|h| h.contains("inference-header-content-length")));
}

#[test]
fn binary_input_answers_exactly_like_json_input() {
    let mut s = server();
    let json_outputs = json!([{ "name": "probabilities", "parameters": { "binary_data": false } }, { "name": "label" }]);
    for (k, (_, img)) in test_digits().iter().enumerate().step_by(100) {
        for (model, dtype) in [("mnist-cnn", "FP32"), ("mnist-mlp", "UINT8"), ("mnist-cnn", "UINT8")] {
            let path = format!("/v2/models/{model}/infer");
            let (body, n) = binary_body(img, dtype, &json_outputs);
            let len = n.to_string();
            // The header name in any case, as HTTP allows.
            let hname = if k % 200 == 0 { HDR } else { "inference-header-content-length" };
            let bin = call_h(&mut s, &path, &[("content-type", "x"), (hname, &len)], &body);
            let mut want = infer_body(img, dtype);
            want["outputs"] = json_outputs.clone();
            let (js, _) = post(&mut s, &path, &want);
            assert_eq!(bin.status, 200, "digit {k} {model} {dtype}: {}", bin.text());
            assert_eq!(bin.content_type, "application/json", "JSON outputs stay JSON");
            assert_eq!(bin.body, js.body, "digit {k} {model} {dtype}: binary and JSON input differ");
        }
    }
}

#[test]
fn binary_outputs_decode_to_the_core_answer_bit_for_bit() {
    let mut s = server();
    let mut cnn = plan(CNN);
    // tritonclient's defaults: binary input, no `outputs` list, binary_data_output: true.
    for (k, (_, img)) in test_digits().iter().enumerate().step_by(150) {
        let (body, n) = binary_body(img, "FP32", &Value::Null);
        let mut req: Value = serde_json::from_slice(&body[..n]).unwrap();
        req["parameters"] = json!({ "binary_data_output": true });
        req["id"] = json!(format!("bin-{k}"));
        let mut full = serde_json::to_vec(&req).unwrap();
        let len = full.len().to_string();
        full.extend_from_slice(&body[n..]);
        let r = call_h(&mut s, "/v2/models/mnist-cnn/infer", &[(HDR, &len)], &full);
        let (v, data) = decode_binary_response(&r);
        assert_eq!(v["id"], format!("bin-{k}"));
        let want = cnn.predict(img).unwrap().to_vec();
        assert_eq!(data[0].0, "probabilities");
        assert_eq!(floats(&data[0].1), want, "digit {k}");
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 40);
        assert_eq!(v["outputs"][0]["shape"], json!([1, 10]));
        let class = (0..10).max_by(|&a, &b| want[a].total_cmp(&want[b]).then(b.cmp(&a))).unwrap();
        assert_eq!(data[1], ("label".to_string(), json!([class.to_string()])));
        assert_eq!(v["outputs"][1]["parameters"]["binary_data_size"], 5, "4-byte length + one digit");
    }
    // A batch of 10 with JSON input: per-output binary_data overrides binary_data_output.
    let imgs: Vec<&Vec<f32>> = test_digits().iter().step_by(200).map(|(_, i)| i).collect();
    let flat: Vec<f32> = imgs.iter().flat_map(|i| i.iter().copied()).collect();
    let (r, v) = post(&mut s, "/v2/models/mnist-cnn/infer", &json!({
        "parameters": { "binary_data_output": true },
        "inputs": [{ "name": "input", "shape": [10, 784], "datatype": "FP32", "data": flat }],
        "outputs": [{ "name": "label" }, { "name": "probabilities", "parameters": { "binary_data": false } }],
    }));
    assert_eq!(r.status, 200);
    assert_eq!(v, Value::Null, "the body is not pure JSON");
    let (v, data) = decode_binary_response(&r);
    let want: Vec<f32> = imgs.iter().flat_map(|i| cnn.predict(i).unwrap().to_vec()).collect();
    assert_eq!(floats(&v["outputs"][1]["data"]), want, "probabilities stay JSON");
    assert!(v["outputs"][1].get("parameters").is_none());
    let labels: Vec<String> = want
        .chunks(10)
        .map(|p| (0..10).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a))).unwrap().to_string())
        .collect();
    assert_eq!(data, vec![("label".to_string(), json!(labels))]);
}

#[test]
fn mixed_binary_and_json_tensors() {
    let mut s = server();
    let img = &test_digits()[1234].1;
    let (_, js) = post(&mut s, "/v2/models/mnist-mlp/infer", &infer_body(img, "FP32"));
    let want_probs = floats(&js["outputs"][0]["data"]);
    let want_label = js["outputs"][1]["data"].clone();
    // Binary input, probabilities binary, label JSON (listed first).
    let outs = json!([{ "name": "label", "parameters": { "binary_data": false } }, { "name": "probabilities", "parameters": { "binary_data": true } }]);
    let (body, n) = binary_body(img, "FP32", &outs);
    let r = call_h(&mut s, "/v2/models/mnist-mlp/infer", &[(HDR, &n.to_string())], &body);
    let (v, data) = decode_binary_response(&r);
    assert_eq!(v["outputs"][0]["data"], want_label);
    assert_eq!(data.len(), 1);
    assert_eq!(floats(&data[0].1), want_probs);
    // JSON input with the header (= the whole body): answered as plain JSON.
    let body = serde_json::to_vec(&infer_body(img, "FP32")).unwrap();
    let r = call_h(&mut s, "/v2/models/mnist-mlp/infer", &[(HDR, &body.len().to_string())], &body);
    assert_eq!((r.status, r.content_type), (200, "application/json"), "{}", r.text());
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), js);
}

#[test]
fn malformed_binary_requests_are_400_and_the_next_request_works() {
    let mut s = server();
    let img = &test_digits()[7].1;
    let (good, n) = binary_body(img, "FP32", &Value::Null);
    let with_input = |params: Value, dtype: &str, extra: &[u8]| -> (Vec<u8>, usize) {
        let mut b = serde_json::to_vec(&json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": dtype, "parameters": params }] })).unwrap();
        let n = b.len();
        b.extend_from_slice(extra);
        (b, n)
    };
    let raw = &good[n..];
    let mut nan = raw.to_vec();
    nan[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    let json_body = serde_json::to_vec(&infer_body(img, "FP32")).unwrap();
    let mut cases: Vec<(Vec<u8>, Option<String>, &str)> = vec![
        (good.clone(), Some((good.len() + 1).to_string()), "at most the body length"),
        (good.clone(), Some("abc".into()), "not a byte count"),
        (good.clone(), Some("-5".into()), "not a byte count"),
        (good.clone(), Some("".into()), "not a byte count"),
        (good.clone(), Some("99999999999999999999999".into()), "not a byte count"),
        (good.clone(), None, "header is missing"),
        (good.clone(), Some((n - 3).to_string()), "not a valid"),
        (good[..good.len() - 1].to_vec(), Some(n.to_string()), "only 3135 bytes follow"),
        ([good.as_slice(), &[0u8; 4]].concat(), Some(n.to_string()), "4 bytes follow the binary data"),
        ([json_body.as_slice(), b"xyz"].concat(), Some(json_body.len().to_string()), "no input has"),
        (nan, None, "finite"),
    ];
    // The NaN body needs its own JSON length.
    cases[10].1 = Some(n.to_string());
    cases[10].0 = [&good[..n], &cases[10].0[..]].concat();
    for (params, dtype, extra, needle) in [
        (json!({ "binary_data_size": 3135 }), "FP32", &raw[..3135], "needs 784 × 4 = 3136 bytes"),
        (json!({ "binary_data_size": 784 }), "FP32", &raw[..784], "3136"),
        (json!({ "binary_data_size": 3136 }), "UINT8", raw, "needs 784 × 1 = 784"),
        (json!({ "binary_data_size": 1568 }), "FP16", &raw[..1568], "datatype 'FP16'"),
        (json!({ "binary_data_size": -4 }), "FP32", raw, "non-negative integer"),
        (json!({ "binary_data_size": "3136" }), "FP32", raw, "non-negative integer"),
        (json!({ "binary_data_size": 3136.5 }), "FP32", raw, "non-negative integer"),
    ] {
        let (b, n) = with_input(params, dtype, extra);
        cases.push((b, Some(n.to_string()), needle));
    }
    // Both data and binary_data_size; a huge batch (checked before any allocation).
    let mut both = infer_body(img, "FP32");
    both["inputs"][0]["parameters"] = json!({ "binary_data_size": 3136 });
    let mut b = serde_json::to_vec(&both).unwrap();
    let bn = b.len();
    b.extend_from_slice(raw);
    cases.push((b, Some(bn.to_string()), "one way only"));
    let (huge, hn) = {
        let mut b = serde_json::to_vec(&json!({ "inputs": [{ "name": "input", "shape": [1000000, 784], "datatype": "FP32",
            "parameters": { "binary_data_size": 3136000000u64 } }] })).unwrap();
        let n = b.len();
        b.extend_from_slice(raw);
        (b, n)
    };
    cases.push((huge, Some(hn.to_string()), "only 3136 bytes follow"));
    // Output parameters that are not booleans.
    for (req, needle) in [
        (json!({ "parameters": { "binary_data_output": 1 }, "inputs": infer_body(img, "FP32")["inputs"] }), "binary_data_output"),
        (json!({ "inputs": infer_body(img, "FP32")["inputs"], "outputs": [{ "name": "label", "parameters": { "binary_data": "yes" } }] }), "true or false"),
    ] {
        cases.push((serde_json::to_vec(&req).unwrap(), None, needle));
    }
    for (body, h, needle) in cases {
        let headers: Vec<(&str, &str)> = h.iter().map(|h| (HDR, h.as_str())).collect();
        let r = call_h(&mut s, "/v2/models/mnist-cnn/infer", &headers, &body);
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert_error(&mut s, &r, &v, 400, needle);
        // ...and a good binary request right after it.
        let ok = call_h(&mut s, "/v2/models/mnist-cnn/infer", &[(HDR, &n.to_string())], &good);
        assert_eq!(ok.status, 200, "after {needle:?}: {}", ok.text());
    }
}

/// Version labels (TF Serving's `/labels/` paths, and in place of a version in KServe v2 paths)
/// and the per-model batch cap, which the native server (`serve/server/`) sets from config.toml.
#[test]
fn labels_stand_for_versions_and_max_batch_caps_a_request() {
    let mut s = Server::new(vec![ModelEntry::new("mnist-mlp", "2", MLP), ModelEntry::new("mnist-mlp", "1", CNN)]);
    assert!(s.set_label("mnist-mlp", "stable", "3").unwrap_err().contains("not served"));
    assert!(s.set_label("mnist-mlp", "7", "1").unwrap_err().contains("not a number"));
    s.set_label("mnist-mlp", "stable", "1").unwrap();
    s.set_label("mnist-mlp", "canary", "2").unwrap();
    let img = test_digits()[3].1.clone();
    let body = json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img }] });
    let (v1, _) = post(&mut s, "/v2/models/mnist-mlp/versions/1/infer", &body);
    let (stable, sv) = post(&mut s, "/v2/models/mnist-mlp/versions/stable/infer", &body);
    let (canary, _) = post(&mut s, "/v2/models/mnist-mlp/versions/canary/infer", &body);
    let (v2, _) = post(&mut s, "/v2/models/mnist-mlp/versions/2/infer", &body);
    assert_eq!(stable.body, v1.body);
    assert_eq!(sv["model_version"], "1");
    assert_eq!(canary.body, v2.body);
    assert_ne!(v1.body, v2.body);
    let inst = json!({ "instances": [test_digits()[3].1.clone()] });
    let (tf_label, _) = post(&mut s, "/v1/models/mnist-mlp/labels/stable:predict", &inst);
    let (tf_version, _) = post(&mut s, "/v1/models/mnist-mlp/versions/1:predict", &inst);
    assert_eq!(tf_label.status, 200, "{}", tf_label.text());
    assert_eq!(tf_label.body, tf_version.body);
    let (r, v) = post(&mut s, "/v1/models/mnist-mlp/labels/beta:predict", &inst);
    assert_error(&mut s, &r, &v, 404, "stable -> 1");
    // Moving a label takes effect at once.
    s.set_label("mnist-mlp", "stable", "2").unwrap();
    let (moved, _) = post(&mut s, "/v2/models/mnist-mlp/versions/stable/infer", &body);
    assert_eq!(moved.body, v2.body);

    s.set_max_batch("mnist-mlp", 2);
    let two: Vec<f32> = [test_digits()[0].1.clone(), test_digits()[1].1.clone()].concat();
    let three: Vec<f32> = [two.clone(), test_digits()[2].1.clone()].concat();
    let (ok, _) = post(&mut s, "/v2/models/mnist-mlp/infer", &json!({ "inputs": [{ "name": "input", "shape": [2, 784], "datatype": "FP32", "data": two }] }));
    assert_eq!(ok.status, 200);
    let (r, v) = post(&mut s, "/v2/models/mnist-mlp/infer", &json!({ "inputs": [{ "name": "input", "shape": [3, 784], "datatype": "FP32", "data": three }] }));
    assert_error(&mut s, &r, &v, 400, "max_batch");
}

/// A 404 for an unknown model names each served model once, however many versions it has.
#[test]
fn unknown_model_lists_each_model_once() {
    let mut s = Server::new(vec![
        ModelEntry::new("mnist-mlp", "3", MLP),
        ModelEntry::new("mnist-mlp", "2", MLP),
        ModelEntry::new("mnist-mlp", "1", CNN),
        ModelEntry::new("mnist-cnn", "1", CNN),
    ]);
    let (r, v) = get(&mut s, "/v2/models/nope");
    assert_error(&mut s, &r, &v, 404, "unknown model");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.ends_with("this server has: mnist-mlp, mnist-cnn"), "{msg}");
}

/// The host's observer sees every successful run, from every route, with the model's input
/// and output rows; failed requests are not observed and answers do not change.
#[test]
fn observer_sees_every_successful_run_and_answers_do_not_change() {
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, String, usize, Vec<f32>, Vec<f32>)>>);
    impl mdeploy_serve::Observer for Seen {
        fn observe(&self, model: &str, version: &str, info: &mdeploy_core::ModelInfo, input: &[f32], output: &[f32], n: usize) {
            assert_eq!(input.len(), n * info.input_len);
            assert_eq!(output.len(), n * info.output_len);
            self.0.lock().unwrap().push((model.into(), version.into(), n, input.to_vec(), output.to_vec()));
        }
    }
    let entries = vec![ModelEntry::new("mnist-mlp", "2", MLP), ModelEntry::new("mnist-mlp", "1", CNN)];
    let mut plain = Server::new(entries.clone());
    let mut watched = Server::new(entries);
    // Set after one model is already loaded, so both paths (loaded before, loaded after) count.
    let img = test_digits()[5].1.clone();
    let one = json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": img }] });
    let (r0, _) = post(&mut watched, "/v2/models/mnist-mlp/versions/2/infer", &one);
    let seen = Arc::new(Seen::default());
    watched.set_observer(seen.clone());
    let two: Vec<f32> = [test_digits()[0].1.clone(), test_digits()[1].1.clone()].concat();
    let reqs: Vec<(&str, Value)> = vec![
        ("/v2/models/mnist-mlp/versions/2/infer", one.clone()),
        ("/v2/models/mnist-mlp/versions/1/infer", json!({ "inputs": [{ "name": "input", "shape": [2, 784], "datatype": "FP32", "data": two }] })),
        ("/v1/models/mnist-mlp/versions/1:predict", json!({ "instances": [test_digits()[7].1.clone()] })),
        ("/v2/models/mnist-mlp/infer", json!({ "inputs": [{ "name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3] }] })),
    ];
    for (path, body) in &reqs {
        let (a, _) = post(&mut plain, path, body);
        let (b, _) = post(&mut watched, path, body);
        assert_eq!(a, b, "{path}");
    }
    assert_eq!(r0.status, 200);
    let seen = seen.0.lock().unwrap();
    let got: Vec<(&str, &str, usize)> = seen.iter().map(|(m, v, n, _, _)| (m.as_str(), v.as_str(), *n)).collect();
    assert_eq!(got, [("mnist-mlp", "2", 1), ("mnist-mlp", "1", 2), ("mnist-mlp", "1", 1)]);
    assert_eq!(seen[0].3, test_digits()[5].1);
    // The observed output is the answer's probabilities.
    let (_, v) = post(&mut plain, reqs[0].0, &reqs[0].1);
    let probs = floats(&v["outputs"][0]["data"]);
    assert_eq!(seen[0].4, probs);
}
