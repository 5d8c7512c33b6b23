//! The integer side of the lowering (`core/runtime/QUANT.md`): which Dense/Conv2d run on the
//! int8 kernels, and the integer bias and requantization multipliers they get. Everything is
//! derived here, once, in f64 from the file's f32 scales, so every backend that executes the
//! program gets the same integers.

use crate::error::{Error, Result};
use crate::kernels::quant::{QOut, QParams, Requant, MAX_QK};
use crate::model::{Quant, QuantType, Tensor, TensorData};

/// Int8 weights with one symmetric scale per output channel, as the integer kernels take
/// them: `Some((values, scales))` when `t` is stored as I8 or as signed packed 2..=7-bit
/// integers (widened here to int8 codes: the packed file gives the size, the int8 kernels the
/// speed), zero points all 0, quantized per tensor or per channel along `out_axis`. `None` for
/// any other tensor (it then runs in f32). Values of −128 are an error (the kernels' symmetric
/// range is −127..=127: say how to fix); packed values never reach it.
pub(crate) fn int8_weight(t: &Tensor, out_axis: usize, what: &str) -> Result<Option<(Vec<i8>, Vec<f32>)>> {
    let TensorData::Quantized { qtype, quant, raw } = &t.data else { return Ok(None) };
    let packed = match qtype {
        QuantType::I8 => false,
        QuantType::Packed { bits: 2..=7, signed: true } => true,
        _ => return Ok(None),
    };
    let n_out = t.shape.get(out_axis).copied().unwrap_or(0);
    let scales = match quant {
        Quant::PerTensor { scale, zero_point: 0 } => vec![*scale; n_out],
        Quant::PerChannel { axis, scales, zero_points } if *axis == out_axis && zero_points.iter().all(|&z| z == 0) => {
            scales.clone()
        }
        _ => return Ok(None),
    };
    if scales.len() != n_out || (!packed && raw.len() != t.numel()) {
        return Ok(None);
    }
    if let Some(c) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::bad_model(format!(
            "{what}: int8 scale of channel {c} is {}; scales must be finite and positive",
            scales[c]
        )));
    }
    let vals: Vec<i8> = if packed {
        // Unpacked and sign-extended by the format's one reader of the layout (which checks the
        // payload's length first); every signed value of 2..=7 bits fits i8.
        let Some(v) = t.quantized_values()? else { return Ok(None) };
        v.iter().map(|&q| q as i8).collect()
    } else {
        raw.iter().map(|&b| b as i8).collect()
    };
    if vals.contains(&i8::MIN) {
        return Err(Error::bad_model(format!(
            "{what}: an int8 weight is -128; the integer kernels take symmetric weights in -127..=127 \
             (re-quantize the model with `mdeploy quantize`, which never writes -128)"
        )));
    }
    Ok(Some((vals, scales)))
}

/// The integer bias and the epilogue of a quantized Dense/Conv2d: `sx` the input's scale,
/// `sw[c]` the weights', `b` the f32 bias, `col_sums[c] = Σ_k w[k][c]` (the input zero point
/// is folded into the bias: `Σ (q − zp)·w = Σ q·w − zp·Σ w`), `output` the quantization of
/// the value it writes (then requantized with a fixed-point multiplier; else dequantized).
#[allow(clippy::too_many_arguments)]
pub(crate) fn epilogue(
    what: &str,
    input: QParams,
    sw: &[f32],
    b: &[f32],
    col_sums: &[i64],
    k: usize,
    relu: bool,
    output: Option<QParams>,
) -> Result<(Vec<i32>, QOut)> {
    if k > MAX_QK {
        return Err(Error::unsupported(format!(
            "{what}: an int8 product over {k} inputs is longer than the integer kernels' limit of {MAX_QK}"
        )));
    }
    let mut bias = Vec::with_capacity(b.len());
    let mut real = Vec::with_capacity(b.len());
    for c in 0..b.len() {
        let m = f64::from(input.scale) * f64::from(sw[c]);
        let bq = (f64::from(b[c]) / m).round() as i64 - i64::from(input.zero_point) * col_sums[c];
        let bq = i32::try_from(bq).map_err(|_| {
            Error::bad_model(format!(
                "{what}: the bias of channel {c} ({}) is too large for int32 at input scale {} and weight scale {}",
                b[c], input.scale, sw[c]
            ))
        })?;
        bias.push(bq);
        real.push(m);
    }
    let epi = match output {
        Some(out) => {
            let mut mult = Vec::with_capacity(real.len());
            for (c, m) in real.iter().enumerate() {
                mult.push(Requant::from_real(m / f64::from(out.scale)).ok_or_else(|| {
                    Error::bad_model(format!(
                        "{what}: the requantization multiplier of channel {c} ({}) is out of range (0, 2^30)",
                        m / f64::from(out.scale)
                    ))
                })?);
            }
            QOut::Requant { out, mult, lo: if relu { out.zero_point } else { 0 } }
        }
        None => QOut::Dequant { scale: real.iter().map(|&m| m as f32).collect(), relu },
    };
    Ok((bias, epi))
}

/// `true` when `t` holds binary weights: 1-bit signed packed (`SPACKED`, 0 → −1, 1 → +1).
pub(crate) fn is_binary(t: &Tensor) -> bool {
    matches!(&t.data, TensorData::Quantized { qtype: QuantType::Packed { bits: 1, signed: true }, .. })
}

/// Binary Dense weights `[in, out]` as the binary kernels take them: the ±1 signs (true = +1,
/// row-major) and one scale per output column (`alpha`, finite and >= 0; per tensor repeated).
/// Zero points must be 0 and per-channel scales along axis 1 (the output), and `in` at most
/// `MAX_BK`: anything else is refused naming the node (a binary tensor has no f32 fallback
/// worth running: its values are ±scale either way, but a layout the kernels do not take is
/// a file this quantizer did not write).
pub(crate) fn binary_weight(t: &Tensor, what: &str) -> Result<(Vec<bool>, Vec<f32>)> {
    let TensorData::Quantized { quant, .. } = &t.data else {
        return Err(Error::bad_model(format!("{what}: not a binary tensor")));
    };
    let (k, n) = match t.shape[..] {
        [k, n] => (k, n),
        _ => return Err(Error::bad_model(format!("{what}: a binary Dense weight must be [in, out], got {:?}", t.shape))),
    };
    let alpha = match quant {
        Quant::PerTensor { scale, zero_point: 0 } => vec![*scale; n],
        Quant::PerChannel { axis: 1, scales, zero_points } if zero_points.iter().all(|&z| z == 0) && scales.len() == n => {
            scales.clone()
        }
        _ => {
            return Err(Error::bad_model(format!(
                "{what}: binary weights need zero points 0 and one scale per tensor or per output \
                 channel (axis 1); re-quantize with `mdeploy quantize --bits 1`"
            )))
        }
    };
    if let Some(c) = alpha.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::bad_model(format!(
            "{what}: binary scale of channel {c} is {}; scales must be finite and not negative",
            alpha[c]
        )));
    }
    if k == 0 || k > crate::kernels::MAX_BK {
        return Err(Error::unsupported(format!(
            "{what}: a binary product over {k} inputs is outside the binary kernels' range 1..={}",
            crate::kernels::MAX_BK
        )));
    }
    // The format's one reader of the packed layout (it checks the payload length first).
    let Some(v) = t.quantized_values()? else {
        return Err(Error::bad_model(format!("{what}: not a binary tensor")));
    };
    Ok((v.iter().map(|&q| q > 0).collect(), alpha))
}
