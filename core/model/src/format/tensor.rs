//! Payload rules for every [`TensorData`] variant, shared by the reader, the writer and
//! runtimes: [`Tensor::check_data`] says whether a payload is consistent with its shape, and
//! [`Tensor::to_f32_dense`] dequantizes / densifies any variant into plain `f32`s.
//!
//! These live next to the format (rather than in `model.rs`) because they *are* the encoding
//! rules of `MDM_FORMAT.md`: packing order, the binary mapping, CSR canonical form.

use crate::error::{Error, Result};
use crate::format::codes::MAX_TENSOR_ELEMS;
use crate::model::{Quant, QuantType, Tensor, TensorData};

/// Bits one stored value takes.
pub(crate) fn qtype_bits(q: QuantType) -> u32 {
    match q {
        QuantType::I8 | QuantType::U8 => 8,
        QuantType::Packed { bits, .. } => u32::from(bits),
    }
}

/// Bytes needed for `numel` values of `bits` bits packed without row padding.
pub(crate) fn packed_len(numel: usize, bits: u32) -> Option<usize> {
    let total_bits = numel.checked_mul(bits as usize)?;
    Some(total_bits / 8 + usize::from(total_bits % 8 != 0))
}

/// Range of the integer `q` a quantized type stores (also the allowed zero points).
fn q_range(q: QuantType) -> (i64, i64) {
    match q {
        QuantType::I8 => (-128, 127),
        QuantType::U8 => (0, 255),
        // Binary: the stored bit means -1 or +1, and only a zero point of 0 makes sense.
        QuantType::Packed {
            bits: 1,
            signed: true,
        } => (0, 0),
        QuantType::Packed { bits, signed: true } => {
            let half = 1i64 << (bits.clamp(1, 7) - 1);
            (-half, half - 1)
        }
        QuantType::Packed {
            bits,
            signed: false,
        } => (0, (1i64 << bits.clamp(1, 7)) - 1),
    }
}

/// Packs `codes` (each the low `bits` bits of a value; two's complement for signed types) into
/// the `.mdm` packed layout: value `i` occupies bits `i*bits .. (i+1)*bits` of the stream, bit `k`
/// of the stream being bit `k % 8` of byte `k / 8` (LSB first), no row padding, unused high bits
/// of the last byte zero.
pub fn pack_bits(codes: &[u8], bits: u8) -> Result<Vec<u8>> {
    if !(1..=7).contains(&bits) {
        return Err(Error::bad_input(format!(
            "pack_bits: {bits} bits is outside 1..=7"
        )));
    }
    let len = packed_len(codes.len(), u32::from(bits))
        .ok_or_else(|| Error::bad_input("pack_bits: too many values"))?;
    let mask = (1u16 << bits) - 1;
    let mut out = vec![0u8; len];
    for (i, &c) in codes.iter().enumerate() {
        if u16::from(c) > mask {
            return Err(Error::bad_input(format!(
                "pack_bits: value {c} at index {i} does not fit in {bits} bits"
            )));
        }
        let bit = i * bits as usize;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(c) << shift;
        out[byte] |= v as u8;
        if shift + bits as usize > 8 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
    Ok(out)
}

/// The `bits`-bit code of value `i` in a packed buffer (the caller checked the length).
#[inline]
fn packed_code(raw: &[u8], i: usize, bits: u32) -> u8 {
    let bit = i * bits as usize;
    let (byte, shift) = (bit / 8, bit % 8);
    let lo = u16::from(raw.get(byte).copied().unwrap_or(0));
    let hi = u16::from(raw.get(byte + 1).copied().unwrap_or(0));
    (((lo | (hi << 8)) >> shift) & ((1u16 << bits) - 1)) as u8
}

/// Integer value of stored element `i`, before scale/zero point.
#[inline]
fn q_value(qtype: QuantType, raw: &[u8], i: usize) -> i64 {
    match qtype {
        QuantType::I8 => i64::from(raw[i] as i8),
        QuantType::U8 => i64::from(raw[i]),
        QuantType::Packed {
            bits: 1,
            signed: true,
        } => {
            if packed_code(raw, i, 1) == 1 {
                1
            } else {
                -1
            }
        }
        QuantType::Packed { bits, signed } => {
            let b = u32::from(bits);
            let code = i64::from(packed_code(raw, i, b));
            if signed && code >= 1 << (b - 1) {
                code - (1 << b)
            } else {
                code
            }
        }
    }
}

fn checked_numel(shape: &[usize]) -> Result<usize> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::bad_model(format!("tensor shape {shape:?} overflows")))?;
    if n > MAX_TENSOR_ELEMS {
        return Err(Error::bad_model(format!(
            "tensor shape {shape:?} has {n} elements, more than the limit of {MAX_TENSOR_ELEMS}"
        )));
    }
    Ok(n)
}

fn check_finite(what: &str, v: &[f32]) -> Result<()> {
    match crate::first_non_finite(v) {
        Some(i) => Err(Error::bad_model(format!(
            "{what} {i} is {} (must be finite)",
            v[i]
        ))),
        None => Ok(()),
    }
}

impl Tensor {
    /// Checks that the payload is consistent with the shape, whatever the variant: lengths,
    /// quantization parameters (finite scales, zero points in the stored range, per-channel
    /// axis and counts), zero padding bits, CSR structure (row pointers from 0, non-decreasing,
    /// column indices strictly increasing within a row and in range), bitmask popcount, finite
    /// values. Errors name what is wrong; callers add which tensor.
    pub fn check_data(&self) -> Result<()> {
        let numel = checked_numel(&self.shape)?;
        match &self.data {
            TensorData::F32(v) => {
                if v.len() != numel {
                    return Err(Error::bad_model(format!(
                        "shape {:?} needs {numel} values, the payload holds {}",
                        self.shape,
                        v.len()
                    )));
                }
                check_finite("value", v)
            }
            // The stored forms in a function of their own: an f32 model's load (the MNIST
            // defaults) never calls it, so V8 never compiles it (wasm/DESIGN.md, "What the
            // load path compiles").
            _ => self.check_stored(numel),
        }
    }

    /// [`Tensor::check_data`] for the quantized and sparse payloads.
    #[inline(never)]
    fn check_stored(&self, numel: usize) -> Result<()> {
        match &self.data {
            TensorData::F32(_) => Ok(()), // checked by check_data itself
            TensorData::Quantized { qtype, quant, raw } => {
                if let QuantType::Packed { bits, .. } = qtype {
                    if !(1..=7).contains(bits) {
                        return Err(Error::bad_model(format!(
                            "packed integers of {bits} bits: only 1 to 7 are defined (use I8/U8 for 8)"
                        )));
                    }
                }
                let bits = qtype_bits(*qtype);
                let want = packed_len(numel, bits)
                    .ok_or_else(|| Error::bad_model("quantized tensor size overflows"))?;
                if raw.len() != want {
                    return Err(Error::bad_model(format!(
                        "{numel} values of {bits} bits need {want} bytes, the payload holds {}",
                        raw.len()
                    )));
                }
                let used_bits = numel * bits as usize; // fits: want did not overflow
                if used_bits % 8 != 0 {
                    let last = raw[raw.len() - 1];
                    if last >> (used_bits % 8) != 0 {
                        return Err(Error::bad_model(
                            "unused high bits of the last packed byte must be zero",
                        ));
                    }
                }
                let (lo, hi) = q_range(*qtype);
                let check_zp = |zp: i32, what: &str| -> Result<()> {
                    if (lo..=hi).contains(&i64::from(zp)) {
                        Ok(())
                    } else {
                        Err(Error::bad_model(format!(
                            "{what}zero point {zp} is outside {lo}..={hi}, the range of {qtype:?}"
                        )))
                    }
                };
                match quant {
                    Quant::PerTensor { scale, zero_point } => {
                        check_finite("scale", &[*scale])?;
                        check_zp(*zero_point, "")
                    }
                    Quant::PerChannel {
                        axis,
                        scales,
                        zero_points,
                    } => {
                        let Some(&channels) = self.shape.get(*axis) else {
                            return Err(Error::bad_model(format!(
                                "per-channel axis {axis} is outside the rank-{} shape {:?}",
                                self.shape.len(),
                                self.shape
                            )));
                        };
                        if scales.len() != channels || zero_points.len() != channels {
                            return Err(Error::bad_model(format!(
                                "per-channel quantization along axis {axis} needs {channels} scales and zero points, got {} and {}",
                                scales.len(),
                                zero_points.len()
                            )));
                        }
                        check_finite("scale", scales)?;
                        for (c, &zp) in zero_points.iter().enumerate() {
                            check_zp(zp, &format!("channel {c} "))?;
                        }
                        Ok(())
                    }
                }
            }
            TensorData::SparseCsr {
                row_ptr,
                col_idx,
                values,
            } => {
                let Some((&rows, rest)) = self.shape.split_first() else {
                    return Err(Error::bad_model(
                        "a CSR tensor needs rank >= 1 (rows on axis 0)",
                    ));
                };
                let cols = rest.iter().product::<usize>(); // <= numel, no overflow
                if row_ptr.len() != rows.saturating_add(1) {
                    return Err(Error::bad_model(format!(
                        "CSR with {rows} rows needs {} row pointers, got {}",
                        rows.saturating_add(1),
                        row_ptr.len()
                    )));
                }
                let nnz = col_idx.len();
                if values.len() != nnz {
                    return Err(Error::bad_model(format!(
                        "CSR has {nnz} column indices but {} values",
                        values.len()
                    )));
                }
                if row_ptr.first() != Some(&0) || row_ptr.last().map(|&p| p as usize) != Some(nnz) {
                    return Err(Error::bad_model(format!(
                        "CSR row pointers must start at 0 and end at nnz = {nnz}"
                    )));
                }
                for r in 0..rows {
                    let (a, b) = (row_ptr[r] as usize, row_ptr[r + 1] as usize);
                    if a > b || b > nnz {
                        return Err(Error::bad_model(format!(
                            "CSR row pointers decrease or exceed nnz at row {r} ({a} -> {b})"
                        )));
                    }
                    let row = &col_idx[a..b];
                    for (k, &c) in row.iter().enumerate() {
                        if c as usize >= cols {
                            return Err(Error::bad_model(format!(
                                "CSR row {r}: column index {c} is outside 0..{cols}"
                            )));
                        }
                        if k > 0 && row[k - 1] >= c {
                            return Err(Error::bad_model(format!(
                                "CSR row {r}: column indices must be strictly increasing ({} then {c})",
                                row[k - 1]
                            )));
                        }
                    }
                }
                check_finite("value", values)
            }
            TensorData::SparseBitmask { mask, values } => {
                let want = packed_len(numel, 1).unwrap_or(usize::MAX);
                if mask.len() != want {
                    return Err(Error::bad_model(format!(
                        "bitmask for {numel} elements needs {want} bytes, got {}",
                        mask.len()
                    )));
                }
                if numel % 8 != 0 && mask[mask.len() - 1] >> (numel % 8) != 0 {
                    return Err(Error::bad_model(
                        "bitmask bits past the last element must be zero",
                    ));
                }
                let set: usize = mask.iter().map(|b| b.count_ones() as usize).sum();
                if set != values.len() {
                    return Err(Error::bad_model(format!(
                        "bitmask has {set} set bits but {} values",
                        values.len()
                    )));
                }
                check_finite("value", values)
            }
        }
    }

    /// The stored integers of a quantized tensor, one per element in row-major order, before
    /// scale and zero point: n-bit values unpacked and sign-extended, binary values as -1/+1.
    /// `None` for the other variants. Validates the payload first ([`Tensor::check_data`]).
    /// (The ONNX exporter writes these as int8/uint8 initializers for `DequantizeLinear`.)
    pub fn quantized_values(&self) -> Result<Option<Vec<i32>>> {
        self.check_data()?;
        Ok(match &self.data {
            TensorData::Quantized { qtype, raw, .. } => {
                Some((0..self.numel()).map(|i| q_value(*qtype, raw, i) as i32).collect())
            }
            _ => None,
        })
    }

    /// The tensor as dense row-major `f32`s, whatever its storage: dequantizes
    /// (`scale * (q - zero_point)`, per tensor or per channel), unpacks n-bit and binary values,
    /// densifies CSR and bitmask. Validates the payload first ([`Tensor::check_data`]), so a
    /// runtime can call it on anything the reader returned.
    pub fn to_f32_dense(&self) -> Result<Vec<f32>> {
        self.check_data()?;
        let numel = self.numel();
        Ok(match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::Quantized { qtype, quant, raw } => match quant {
                Quant::PerTensor { scale, zero_point } => (0..numel)
                    .map(|i| scale * (q_value(*qtype, raw, i) - i64::from(*zero_point)) as f32)
                    .collect(),
                Quant::PerChannel {
                    axis,
                    scales,
                    zero_points,
                } => {
                    // Element i belongs to channel (i / inner) % channels, inner being the
                    // product of the axes after `axis` (checked: <= numel).
                    let inner: usize = self.shape[axis + 1..].iter().product::<usize>().max(1);
                    let channels = scales.len().max(1);
                    (0..numel)
                        .map(|i| {
                            let c = (i / inner) % channels;
                            scales[c] * (q_value(*qtype, raw, i) - i64::from(zero_points[c])) as f32
                        })
                        .collect()
                }
            },
            TensorData::SparseCsr {
                row_ptr,
                col_idx,
                values,
            } => {
                let cols: usize = self.shape[1..].iter().product();
                let mut out = vec![0.0f32; numel];
                for r in 0..row_ptr.len() - 1 {
                    for k in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                        out[r * cols + col_idx[k] as usize] = values[k];
                    }
                }
                out
            }
            TensorData::SparseBitmask { mask, values } => {
                let mut out = vec![0.0f32; numel];
                let mut next = values.iter();
                for (i, o) in out.iter_mut().enumerate() {
                    if mask[i / 8] >> (i % 8) & 1 == 1 {
                        *o = next.next().copied().unwrap_or(0.0);
                    }
                }
                out
            }
        })
    }
}
