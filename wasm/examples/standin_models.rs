//! Writes random-weight stand-ins with the default models' architectures (for developing the
//! package before trained models exist; never used by the tests).
//! `cargo run -p mdeploy-wasm --example standin_models -- <dir>`
use mdeploy_core::format;
use mdeploy_core::model::{Layer, Metadata, Model, Tensor};

fn t(shape: Vec<usize>, seed: &mut u64) -> Tensor {
    let n: usize = shape.iter().product();
    let fan_in = if shape.len() > 1 { n / shape[if shape.len() == 2 { 1 } else { 0 }] } else { 1 };
    let s = (2.0 / fan_in as f32).sqrt();
    let v = (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * s
        })
        .collect();
    Tensor::f32(shape, v)
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: standin_models <dir>");
    let mut seed = 7u64;
    let meta = |name: &str, shape: Vec<usize>| Metadata {
        name: name.into(),
        version: "0".into(),
        input_shape: shape,
        labels: (0..10).map(|i| i.to_string()).collect(),
        ..Metadata::default()
    };
    let mlp = Model {
        meta: meta("mnist-mlp", vec![1, 28, 28]),
        layers: vec![
            Layer::Flatten,
            Layer::Dense { weight: t(vec![784, 128], &mut seed), bias: Tensor::f32(vec![128], vec![0.0; 128]) },
            Layer::Relu,
            Layer::Dense { weight: t(vec![128, 10], &mut seed), bias: Tensor::f32(vec![10], vec![0.0; 10]) },
            Layer::Softmax,
        ],
    };
    let cnn = Model {
        meta: meta("mnist-cnn", vec![1, 28, 28]),
        layers: vec![
            Layer::Conv2d { weight: t(vec![16, 1, 5, 5], &mut seed), bias: Tensor::f32(vec![16], vec![0.0; 16]), stride: [1, 1], padding: [0, 0] },
            Layer::Relu,
            Layer::MaxPool2d { kernel: [2, 2], stride: [2, 2] },
            Layer::Conv2d { weight: t(vec![32, 16, 5, 5], &mut seed), bias: Tensor::f32(vec![32], vec![0.0; 32]), stride: [1, 1], padding: [0, 0] },
            Layer::Relu,
            Layer::MaxPool2d { kernel: [2, 2], stride: [2, 2] },
            Layer::Flatten,
            Layer::Dense { weight: t(vec![512, 64], &mut seed), bias: Tensor::f32(vec![64], vec![0.0; 64]) },
            Layer::Relu,
            Layer::Dense { weight: t(vec![64, 10], &mut seed), bias: Tensor::f32(vec![10], vec![0.0; 10]) },
            Layer::Softmax,
        ],
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/mnist-mlp.mdm"), format::write(&mlp).unwrap()).unwrap();
    std::fs::write(format!("{dir}/mnist-cnn.mdm"), format::write(&cnn).unwrap()).unwrap();
}
