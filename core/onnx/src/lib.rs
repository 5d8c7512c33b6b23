//! The ONNX bridge of mdeploy (native only): ONNX file → tract → mdeploy [`Graph`].
//! The other way, [`export`] writes a [`Model`] as standard ONNX (`export.rs`, `mdeploy export`).
//!
//! ```text
//!  .onnx bytes ──prost (tract_onnx::pb)──► ModelProto ──external weights read in, checked
//!      (external.rs)──► checks (proto.rs): sizes, opset, which output──► tract InferenceModel
//!      ──input fact fixed (batch axis symbolic)──►
//!      into_typed + declutter (tract folds constants, Shape/Gather/Concat/Reshape chains,
//!      Dropout, Identity, BatchNormalization → Mul/Add)──► TypedModel
//!      ──map.rs: one tract node at a time──► mdeploy Graph ──► Model
//! ```
//!
//! tract does the hard part (ONNX semantics, broadcasting, shape inference, constant folding);
//! this crate only maps what tract leaves after declutter onto mdeploy's 20 ops, and refuses
//! everything else with an error that names the ONNX op type, node name and opset. The design
//! note is `ONNX.md` beside this file's crate.
//!
//! Nothing here trusts the file: prost decoding errors, tract errors and even tract panics
//! (caught) become [`ImportError`]s; sizes are checked before tract allocates.
//!
//! tract is large (8-16 MB of wasm): only the `mdeploy` CLI depends on this crate, never a
//! wasm artifact.

use std::path::Path;

use mdeploy_model::model::{Metadata, Preprocessing, Provenance};
use mdeploy_model::{Graph, Model};

mod error;
mod export;
mod external;
mod map;
mod proto;
mod quant;

pub use error::ImportError;
pub use export::{export, export_proto, ExportError, ExportOptions, DEFAULT_OPSET, OPSETS};

/// What `import` needs besides the file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The input shape with its batch axis first (`[1, 1, 28, 28]`); `None`: the model's own
    /// declared shape, whose batch axis may be symbolic. The batch size given here is not
    /// kept: mdeploy runs any batch, so the batch axis stays symbolic during conversion.
    pub input_shape: Option<Vec<usize>>,
    /// Which graph output to keep when the model has several (skl2onnx writes a label and the
    /// probabilities); `None`: the only one, else the only floating-point one.
    pub output: Option<String>,
}

/// An ONNX model mapped onto the mdeploy graph, and what the conversion learnt about it.
#[derive(Clone, Debug)]
pub struct Imported {
    pub graph: Graph,
    /// Per-sample input shape (no batch axis), as the graph expects it.
    pub input_shape: Vec<usize>,
    pub input_name: String,
    pub output_name: String,
    /// The default-domain (`ai.onnx`) opset the file declares.
    pub opset: i64,
    /// `producer_name producer_version` from the file, e.g. `"tf2onnx 1.17.0"`.
    pub producer: String,
    /// The ONNX graph's name, when it has one.
    pub graph_name: String,
    /// How a quantized file's weights were stored; `None` for a float file.
    pub quantized: Option<Quantized>,
}

/// A quantized ONNX file (QDQ, QOperator or dynamic, as onnxruntime's quantizer writes them):
/// what its weights and activations became (see quant.rs and ONNX.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantized {
    /// `"QDQ"`, `"QOperator"`, `"dynamic"` (joined with `+` when mixed).
    pub format: String,
    /// Dense/Conv2d weights in the mdeploy graph, and how many of them are stored as integers.
    pub weights: usize,
    pub stored_int: usize,
    pub per_channel: usize,
    pub int8: usize,
    pub uint8: usize,
    /// `Op::Quantize` nodes in the graph: uint8 activation grids (QuantizeLinear, QLinear*
    /// outputs) that the lowering runs on the integer kernels.
    pub activations: usize,
    /// Activation ranges kept as a Clip only (int8 activations): computed in f32.
    pub clipped: usize,
}

impl Quantized {
    /// One line for the model's provenance and `mdeploy info`.
    pub fn describe(&self) -> String {
        let ty = match (self.int8, self.uint8) {
            (_, 0) => "int8",
            (0, _) => "uint8",
            _ => "int8/uint8",
        };
        let how = match (self.per_channel, self.stored_int - self.per_channel) {
            (0, _) => "per-tensor",
            (_, 0) => "per-channel",
            _ => "per-tensor and per-channel",
        };
        let acts = match (self.activations, self.clipped) {
            (0, 0) => "activations computed in f32 (not quantized)".to_string(),
            (0, c) => format!("activations computed in f32, clipped to {c} int8 ranges (mdeploy quantizes activations to uint8 only)"),
            (a, 0) => format!("activations quantized to uint8 ({a} Quantize nodes)"),
            (a, c) => format!("activations quantized to uint8 ({a} Quantize nodes), {c} int8 ranges clipped in f32"),
        };
        format!("{}: {} of {} Dense/Conv2d weights stored as {ty} ({how}); {acts}", self.format, self.stored_int, self.weights)
    }
}

impl Imported {
    /// A [`Model`] around the graph: metadata from the file and `name`; labels and
    /// preprocessing are left to the caller (the CLI's `--labels`, `--preprocess`).
    pub fn into_model(self, name: &str, source: &str) -> Result<Model, ImportError> {
        let meta = Metadata {
            name: name.to_string(),
            version: "1".to_string(),
            input_shape: self.input_shape,
            labels: Vec::new(),
            preprocessing: Preprocessing { recipe: "none".to_string(), range: [0.0, 1.0], ink_high: true },
            provenance: Provenance {
                data: String::new(),
                split: String::new(),
                arch: format!("onnx ({})", if self.producer.is_empty() { "unknown producer" } else { &self.producer }),
                epochs: 0,
                seed: 0,
                test_accuracy: None,
                extra: vec![
                    ("source".to_string(), source.to_string()),
                    ("onnx.opset".to_string(), self.opset.to_string()),
                    ("onnx.producer".to_string(), self.producer.clone()),
                    ("onnx.input".to_string(), self.input_name),
                    ("onnx.output".to_string(), self.output_name),
                    ("converter".to_string(), format!("mdeploy-onnx {} (tract-onnx 0.23)", env!("CARGO_PKG_VERSION"))),
                ],
            },
        };
        let mut meta = meta;
        if let Some(q) = &self.quantized {
            meta.provenance.extra.push(("onnx.quantization".to_string(), q.describe()));
        }
        let model = Model { meta, graph: self.graph };
        model.validate().map_err(|e| ImportError::new(format!("the converted model does not validate: {e}")))?;
        Ok(model)
    }
}

/// Imports an ONNX file. Weights stored outside it (`model.onnx.data`, ONNX external data) are
/// read from the file's folder; their names may not leave that folder (`external.rs`).
pub fn import_path(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let cannot = |e: std::io::Error| {
        ImportError::new(format!("cannot read {}: {e} (check the path and its permissions)", path.display()))
    };
    // The size limit holds before the file is read, not after a 10 GB file sits in memory.
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > proto::MAX_FILE_BYTES as u64 {
        return Err(ImportError::new(format!(
            "{} is {size} bytes, more than the {} this converter reads; mdeploy targets small models",
            path.display(),
            proto::MAX_FILE_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
    import_impl(&bytes, dir, opts)
}

/// Imports ONNX bytes held in memory; a model that keeps its weights in external files is
/// refused with an error that says to use [`import_path`].
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Imported, ImportError> {
    import_impl(bytes, None, opts)
}

fn import_impl(bytes: &[u8], dir: Option<&Path>, opts: &ImportOptions) -> Result<Imported, ImportError> {
    // tract is not written for hostile input: a malformed file could reach an indexing panic
    // somewhere in its parsing or shape inference. A panic there must still end as an error
    // that names the file as the problem, never as a crash of the converter.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| import_unguarded(bytes, dir, opts))) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(ImportError::new(format!(
                "tract failed on this file ({what}); the ONNX file is probably malformed: check it with \
                 `python -m onnx.checker` or re-export it"
            )))
        }
    }
}

fn import_unguarded(bytes: &[u8], dir: Option<&Path>, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let loaded = proto::load(bytes, dir, opts)?;
    let (mut graph, input_shape) = map::map_model(&loaded)?;
    let quantized = if loaded.quant.format.is_empty() {
        None
    } else {
        let s = quant::store_weights(&mut graph, &loaded.quant.sources);
        let activations = quant::quantize_activations(&mut graph, &loaded.quant.grids);
        Some(Quantized {
            activations,
            clipped: loaded.quant.clip_only,
            format: loaded.quant.format.clone(),
            weights: s.weights,
            stored_int: s.quantized,
            per_channel: s.per_channel,
            int8: s.int8,
            uint8: s.uint8,
        })
    };
    graph
        .validate(&input_shape)
        .map_err(|e| ImportError::new(format!("the converted graph does not validate: {e}")))?;
    Ok(Imported {
        graph,
        input_shape,
        input_name: loaded.input_name,
        output_name: loaded.output_name,
        opset: loaded.opset,
        producer: loaded.producer,
        graph_name: loaded.graph_name,
        quantized,
    })
}
