//! The TENSORS section's records and the DATA they point into: every length compared with what
//! the shape implies before anything is copied, every payload checked.

use crate::error::{Error, Result};
use crate::format::codes::{self, dtype, encoding, quant};
use crate::format::cursor::Cursor;
use crate::format::tensor::{packed_len, qtype_bits};
use crate::model::{Quant, QuantType, Tensor, TensorData};
use super::Section;

/// A tensor record from the TENSORS table, its buffers already checked to lie inside DATA,
/// aligned and in order.
pub(super) struct Record {
    pub(super) dtype: u8,
    pub(super) bits: u8,
    pub(super) encoding: u8,
    pub(super) quant: Option<Quant>,
    pub(super) shape: Vec<usize>,
    pub(super) numel: usize,
    /// (file offset, length) of each buffer.
    pub(super) buffers: Vec<(usize, usize)>,
    pub(super) at: usize,
}

pub(super) fn dtype_name(dtype: u8, bits: u8) -> String {
    match dtype {
        dtype::F32 => "f32".into(),
        dtype::I8 => "i8".into(),
        dtype::U8 => "u8".into(),
        dtype::UPACKED => format!("u{bits}"),
        dtype::SPACKED if bits == 1 => "binary".into(),
        dtype::SPACKED => format!("i{bits}"),
        _ => format!("dtype {dtype}"),
    }
}

pub(super) fn parse_record(c: &mut Cursor, i: usize, data: Section, prev_end: &mut usize) -> Result<Record> {
    let at = c.offset();
    let dt = c.u8(format_args!("tensor {i} dtype"))?;
    let bits = c.u8(format_args!("tensor {i} bits"))?;
    let enc = c.u8(format_args!("tensor {i} encoding"))?;
    let qk = c.u8(format_args!("tensor {i} quantization kind"))?;
    let rank = c.u8(format_args!("tensor {i} rank"))? as usize;
    let here = |msg: String| {
        Error::bad_model(format!(
            "TENSORS section, tensor {i} at file offset {at}: {msg}"
        ))
    };
    let unsupported = |msg: String| {
        Error::unsupported(format!("TENSORS section, tensor {i} at file offset {at}: {msg}; upgrade mdeploy if this file was written by a newer version"))
    };
    let want_bits = match dt {
        dtype::F32 => 32,
        dtype::I8 | dtype::U8 => 8,
        dtype::UPACKED | dtype::SPACKED => {
            if !(1..=7).contains(&bits) {
                return Err(here(format!(
                    "packed dtype {dt} with {bits} bits (must be 1..=7)"
                )));
            }
            bits
        }
        _ => return Err(unsupported(format!("unknown dtype code {dt}"))),
    };
    if bits != want_bits {
        return Err(here(format!(
            "dtype {} must declare {want_bits} bits, found {bits}",
            dtype_name(dt, bits)
        )));
    }
    let n_buffers = match enc {
        encoding::DENSE => 1,
        encoding::SPARSE_CSR => 3,
        encoding::SPARSE_BITMASK => 2,
        _ => return Err(unsupported(format!("unknown encoding code {enc}"))),
    };
    if enc != encoding::DENSE && dt != dtype::F32 {
        return Err(unsupported(format!(
            "{} encoding of {} values (sparse tensors hold f32 values in this version)",
            encoding::name(enc),
            dtype_name(dt, bits)
        )));
    }
    match (dt == dtype::F32, qk) {
        (true, quant::NONE) | (false, quant::PER_TENSOR | quant::PER_CHANNEL) => {}
        (_, quant::NONE | quant::PER_TENSOR | quant::PER_CHANNEL) => {
            return Err(here(format!(
            "quantization kind {qk} does not fit dtype {} (f32 takes none, integers need scales)",
            dtype_name(dt, bits)
        )))
        }
        _ => return Err(unsupported(format!("unknown quantization kind code {qk}"))),
    }
    if rank > codes::MAX_RANK {
        return Err(here(format!(
            "rank {rank} is more than the limit of {}",
            codes::MAX_RANK
        )));
    }
    let mut shape = Vec::with_capacity(rank);
    for d in 0..rank {
        shape.push(c.usize32(format_args!("tensor {i} dimension {d}"))?);
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= codes::MAX_TENSOR_ELEMS)
        .ok_or_else(|| {
            here(format!(
                "shape {shape:?} has more than {} elements",
                codes::MAX_TENSOR_ELEMS
            ))
        })?;
    let quant = match qk {
        quant::PER_TENSOR => {
            let scale = c.finite_f32(format_args!("tensor {i} scale"))?;
            let zero_point = c.i32(format_args!("tensor {i} zero point"))?;
            Some(Quant::PerTensor { scale, zero_point })
        }
        quant::PER_CHANNEL => {
            let axis = c.u32(format_args!("tensor {i} quantization axis"))? as usize;
            let Some(&channels) = shape.get(axis) else {
                return Err(here(format!(
                    "per-channel axis {axis} is outside rank {rank}"
                )));
            };
            if channels.checked_mul(8).is_none_or(|n| n > c.remaining()) {
                return Err(c.err(format_args!(
                    "tensor {i}: {channels} per-channel scales and zero points need {} bytes, only {} remain",
                    channels.saturating_mul(8),
                    c.remaining()
                )));
            }
            let mut scales = Vec::with_capacity(channels);
            for k in 0..channels {
                scales.push(c.finite_f32(format_args!("tensor {i} scale {k}"))?);
            }
            let mut zero_points = Vec::with_capacity(channels);
            for k in 0..channels {
                zero_points.push(c.i32(format_args!("tensor {i} zero point {k}"))?);
            }
            Some(Quant::PerChannel {
                axis,
                scales,
                zero_points,
            })
        }
        _ => None,
    };
    let mut buffers = Vec::with_capacity(n_buffers);
    for b in 0..n_buffers {
        let boff = c.u64(format_args!("tensor {i} buffer {b} offset"))?;
        let blen = c.u64(format_args!("tensor {i} buffer {b} length"))?;
        let in_data = boff >= data.offset as u64
            && boff
                .checked_add(blen)
                .is_some_and(|e| e <= data.end() as u64);
        if !in_data {
            return Err(here(format!(
                "buffer {b} (bytes {boff}+{blen}) is not inside the DATA section (bytes {}..{})",
                data.offset,
                data.end()
            )));
        }
        let (boff, blen) = (boff as usize, blen as usize); // inside the file
        if boff % codes::DATA_ALIGN != 0 {
            return Err(here(format!(
                "buffer {b} offset {boff} is not a multiple of {}",
                codes::DATA_ALIGN
            )));
        }
        if boff < *prev_end {
            return Err(here(format!(
                "buffer {b} at {boff} overlaps the previous buffer (ending at {}); buffers must be in table order without overlap",
                *prev_end
            )));
        }
        *prev_end = boff + blen;
        buffers.push((boff, blen));
    }
    Ok(Record {
        dtype: dt,
        bits,
        encoding: enc,
        quant,
        shape,
        numel,
        buffers,
        at,
    })
}

pub(super) fn le_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
pub(super) fn le_u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Which node (format 1.1) or layer (1.0) uses a tensor, and as what: named in the reader's errors.
#[derive(Clone, Copy)]
pub(super) struct Owner {
    pub(super) node: bool,
    pub(super) layer: usize,
    pub(super) role: &'static str,
}

/// "TENSORS section, tensor i (node 3 weights) at file offset N", written only when an error is.
#[derive(Clone, Copy)]
struct Ctx {
    i: usize,
    owner: Owner,
    at: usize,
}

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Owner { node, layer, role } = self.owner;
        let kind = if node { "node" } else { "layer" };
        write!(f, "TENSORS section, tensor {} ({kind} {layer} {role}) at file offset {}", self.i, self.at)
    }
}

/// Builds the tensor of record `r`: lengths are compared with what the shape implies before
/// any copy, then the payload is checked.
#[inline(never)] // its own wasm function: the reader V8 compiles on a cold start stays small (wasm/DESIGN.md, "Cold start")
pub(super) fn decode(bytes: &[u8], r: Record, i: usize, owner: Owner) -> Result<Tensor> {
    // Formatted only into an error: a load that succeeds builds no string here.
    let ctx = Ctx { i, owner, at: r.at };
    let numel = r.numel;
    // Plain f32 inline; the quantized and sparse forms in `decode_stored`, which an f32 model's
    // load never calls, so V8 never compiles it (wasm/DESIGN.md, "What the load path compiles").
    let data = if r.encoding == encoding::DENSE && r.dtype == dtype::F32 {
        if Some(r.buffers[0].1) != numel.checked_mul(4) {
            return Err(len_err(&r, ctx, 0, format!("shape {:?} needs {numel} f32 values", r.shape)));
        }
        TensorData::F32(le_f32s(buffer(bytes, &r, 0)))
    } else {
        decode_stored(bytes, &r, ctx)?
    };
    let t = Tensor {
        shape: r.shape,
        data,
    };
    t.check_data().map_err(|e| Error {
        kind: e.kind,
        message: format!("{ctx}: {}", e.message),
    })?;
    Ok(t)
}

/// [`decode`] for the quantized (dense integer) and sparse encodings.
#[inline(never)]
fn decode_stored(bytes: &[u8], r: &Record, ctx: Ctx) -> Result<TensorData> {
    let numel = r.numel;
    Ok(match r.encoding {
        encoding::DENSE => {
            let qtype = match r.dtype {
                dtype::I8 => QuantType::I8,
                dtype::U8 => QuantType::U8,
                d => QuantType::Packed {
                    bits: r.bits,
                    signed: d == dtype::SPACKED,
                },
            };
            let want = packed_len(numel, qtype_bits(qtype));
            if Some(r.buffers[0].1) != want {
                return Err(len_err(
                    r,
                    ctx,
                    0,
                    format!(
                        "{numel} values of {} bits need {}",
                        qtype_bits(qtype),
                        want.unwrap_or(usize::MAX)
                    ),
                ));
            }
            let quant = r
                .quant
                .clone()
                .ok_or_else(|| Error::bad_model(format!("{ctx}: missing quantization")))?;
            TensorData::Quantized {
                qtype,
                quant,
                raw: buffer(bytes, r, 0).to_vec(),
            }
        }
        enc => {
            let stored: usize = r.buffers.iter().map(|b| b.1).sum(); // each within the file
            let bound = codes::SPARSE_FREE_ELEMS
                .saturating_add(codes::SPARSE_MAX_RATIO.saturating_mul(stored));
            if numel > bound {
                return Err(Error::bad_model(format!(
                    "{ctx}: a sparse tensor of {numel} elements stored in {stored} bytes is sparser than the format allows (at most {} + {} elements per stored byte): refusing to expand it (store it as a bitmask, which always fits)",
                    codes::SPARSE_FREE_ELEMS,
                    codes::SPARSE_MAX_RATIO
                )));
            }
            if enc == encoding::SPARSE_CSR {
                let rows = r.shape.first().copied().ok_or_else(|| {
                    Error::bad_model(format!("{ctx}: a CSR tensor needs rank >= 1"))
                })?;
                if Some(r.buffers[0].1) != rows.checked_add(1).and_then(|n| n.checked_mul(4)) {
                    return Err(len_err(
                        r,
                        ctx,
                        0,
                        format!(
                            "{rows} rows need {} row pointers of 4 bytes",
                            rows.saturating_add(1)
                        ),
                    ));
                }
                if r.buffers[1].1 % 4 != 0 || r.buffers[2].1 != r.buffers[1].1 {
                    return Err(Error::bad_model(format!(
                        "{ctx}: CSR column indices ({} bytes) and values ({} bytes) must hold the same number of 4-byte entries",
                        r.buffers[1].1, r.buffers[2].1
                    )));
                }
                TensorData::SparseCsr {
                    row_ptr: le_u32s(buffer(bytes, r, 0)),
                    col_idx: le_u32s(buffer(bytes, r, 1)),
                    values: le_f32s(buffer(bytes, r, 2)),
                }
            } else {
                let want = packed_len(numel, 1).unwrap_or(usize::MAX);
                if r.buffers[0].1 != want {
                    return Err(len_err(
                        r,
                        ctx,
                        0,
                        format!("a bitmask of {numel} elements needs {want}"),
                    ));
                }
                if r.buffers[1].1 % 4 != 0 {
                    return Err(len_err(r, ctx, 1, "values are 4-byte f32s".into()));
                }
                TensorData::SparseBitmask {
                    mask: buffer(bytes, r, 0).to_vec(),
                    values: le_f32s(buffer(bytes, r, 1)),
                }
            }
        }
    })
}

/// Buffer `b` of record `r` (checked inside DATA when parsed).
fn buffer<'a>(bytes: &'a [u8], r: &Record, b: usize) -> &'a [u8] {
    let (off, len) = r.buffers[b];
    &bytes[off..off + len]
}

fn len_err(r: &Record, ctx: Ctx, b: usize, want: String) -> Error {
    Error::bad_model(format!("{ctx}: buffer {b} is {} bytes, but {want}", r.buffers[b].1))
}


#[cfg(test)]
mod tests {
    use super::{Ctx, Owner};

    #[test]
    fn error_context_reads_as_the_eager_string_did() {
        let owner = Owner { node: true, layer: 2, role: "weights" };
        let ctx = Ctx { i: 3, owner, at: 4160 };
        assert_eq!(format!("{ctx}: x"), "TENSORS section, tensor 3 (node 2 weights) at file offset 4160: x");
        let ctx = Ctx { owner: Owner { node: false, ..owner }, ..ctx };
        assert_eq!(ctx.to_string(), "TENSORS section, tensor 3 (layer 2 weights) at file offset 4160");
    }
}
