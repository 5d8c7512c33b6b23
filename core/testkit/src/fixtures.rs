//! Model files committed as test fixtures (`models/test/`), each made by a function here from a
//! seed and the real digits, so the bytes in the repository can be regenerated and compared
//! (`tests/fixtures.rs` fails when they drift; `examples/fixtures.rs` rewrites them).
//!
//! They are **not** default models: no host ships them, the npm package does not list them. The
//! parity suites load them from `models/test/` (`models/parity.json` names them) and the
//! serverless hosts get them the way a user adds a model (a mounted folder, a Worker binding).

use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::model::{Metadata, Model, Preprocessing, Provenance};

use crate::{mnist, reference};

/// Where the MobileNetV2-style fixture lives, relative to `models/`.
pub const MOBILENET_BLOCK_FILE: &str = "test/mobilenet-block.mdm";

/// The seed of `arch::mobilenet_graph` for the fixture. Any seed works; this one is fixed so
/// the file is reproducible.
pub const MOBILENET_BLOCK_SEED: u64 = 1;

/// Train digits whose pooled features set the classifier's centring (spread over the split).
const CENTRING_DIGITS: usize = 500;

/// Logit scale after centring: with Glorot-uniform weights over 16 unit-variance features the
/// logits spread by about ±1, enough for the top class to vary from digit to digit. Not more:
/// the centring amplifies the f32 rounding of the pooled features by the same factor, and at 2.0
/// the Plan sat 1.7e-5 from the f64 reference (wasm and native 1.0e-5 apart, over the JS suites'
/// 1e-5 between engines); at 1.0 it is 6e-6.
const LOGIT_SCALE: f64 = 1.0;

/// The MobileNetV2-style parity fixture: `arch::mobilenet_graph(MOBILENET_BLOCK_SEED)` (stem,
/// three inverted-residual blocks with depthwise 3×3 convolutions, one strided with "SAME"
/// padding, two residual Adds, random BatchNorm statistics and biases), with MNIST metadata.
///
/// Random weights alone give the same answer for every digit (the pooled features hardly vary
/// next to the classifier's fixed preference), which would make "same top-1 as the reference"
/// a test of nothing. So the classifier is centred and scaled on the pooled features of
/// [`CENTRING_DIGITS`] train digits, `w'ᵢⱼ = s·wᵢⱼ/σᵢ`, `b'ⱼ = bⱼ − Σᵢ w'ᵢⱼ·μᵢ` (a BatchNorm
/// folded into the Dense by hand): still random weights, but the top class now depends on the
/// input. μ and s/σ are rounded to multiples of 2⁻¹², so a last-bit change in the f64
/// reference that computes them cannot change the file.
pub fn mobilenet_block() -> Result<Model, String> {
    let seed = MOBILENET_BLOCK_SEED;
    let mut graph = mdeploy_core::arch::mobilenet_graph(seed);
    centre_classifier(&mut graph)?;
    let model = Model {
        meta: Metadata {
            name: "mobilenet-block".into(),
            version: "1.0.0".into(),
            input_shape: vec![1, 28, 28],
            labels: (0..10).map(|d| d.to_string()).collect(),
            preprocessing: Preprocessing { recipe: "mnist-digit".into(), range: [0.0, 1.0], ink_high: true },
            provenance: Provenance {
                data: "none: random weights (a parity fixture, not a classifier)".into(),
                split: String::new(),
                arch: "mobilenet_graph: Conv 1-8 3x3 > BN > ReLU6 > InvertedResidual 8 (expand 4, + skip) > \
                       InvertedResidual 8-16 (expand 4, depthwise stride 2, SAME padding) > InvertedResidual 16 \
                       (expand 1, + skip) > GlobalAvgPool > Dense 16-10 > Softmax"
                    .into(),
                epochs: 0,
                seed,
                test_accuracy: None,
                extra: vec![
                    (
                        "purpose".into(),
                        "random-weight parity fixture (depthwise + inverted residual) for every backend and host; \
                         its answers mean nothing"
                            .into(),
                    ),
                    (
                        "classifier".into(),
                        format!(
                            "Dense centred and scaled (x{LOGIT_SCALE}) on the pooled features of {CENTRING_DIGITS} \
                             train digits, so the top class depends on the input"
                        ),
                    ),
                    ("generator".into(), "cargo run -p mdeploy-testkit --example fixtures".into()),
                ],
            },
        },
        graph,
    };
    model.validate().map_err(|e| format!("the mobilenet-block fixture does not validate: {e}"))?;
    Ok(model)
}

/// The fixture's `.mdm` bytes, as committed in `models/`[`MOBILENET_BLOCK_FILE`].
pub fn mobilenet_block_bytes() -> Result<Vec<u8>, String> {
    mdeploy_core::format::write(&mobilenet_block()?).map_err(|e| format!("cannot encode the mobilenet-block fixture: {e}"))
}

fn round(v: f64) -> f32 {
    ((v * 4096.0).round() / 4096.0) as f32
}

/// Rewrites the last Dense of `graph` as described on [`mobilenet_block`].
fn centre_classifier(graph: &mut Graph) -> Result<(), String> {
    let at = graph
        .nodes
        .iter()
        .rposition(|n| matches!(n.op, Op::Dense { .. }))
        .ok_or("mobilenet_graph has no Dense classifier")?;
    let feature = *graph.nodes[at].inputs.first().ok_or("the classifier has no input")? as usize;

    let train = mnist::spread_subset(&mnist::try_split()?.train, CENTRING_DIGITS);
    let mut feats: Vec<Vec<f64>> = Vec::with_capacity(train.n);
    for i in 0..train.n {
        let mut values = reference::forward_values(graph, &[1, 28, 28], train.image(i))?;
        feats.push(std::mem::take(&mut values[feature].data));
    }
    let dims = feats.first().map_or(0, Vec::len);
    let n = feats.len() as f64;
    let mean: Vec<f64> = (0..dims).map(|i| feats.iter().map(|f| f[i]).sum::<f64>() / n).collect();
    let std: Vec<f64> =
        (0..dims).map(|i| (feats.iter().map(|f| (f[i] - mean[i]).powi(2)).sum::<f64>() / n).sqrt()).collect();

    let Op::Dense { weight, bias } = &mut graph.nodes[at].op else { unreachable!("found as a Dense above") };
    if weight.shape.first() != Some(&dims) {
        return Err(format!("classifier weight {:?} does not take the {dims} pooled features", weight.shape));
    }
    let classes = weight.shape.get(1).copied().ok_or("classifier weight is not 2-D")?;
    let w = weight.as_f32_mut().ok_or("classifier weight is not f32")?;
    let b = bias.as_f32_mut().ok_or("classifier bias is not f32")?;
    for i in 0..dims {
        // A feature that never varies (a ReLU6 stuck at 0 or 6) keeps its weights unscaled.
        let scale = if std[i] > 1e-6 { round(LOGIT_SCALE / std[i]) } else { 1.0 };
        let mu = round(mean[i]);
        for j in 0..classes {
            w[i * classes + j] *= scale;
            b[j] -= w[i * classes + j] * mu;
        }
    }
    Ok(())
}
