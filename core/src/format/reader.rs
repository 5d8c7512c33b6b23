//! Reading `.mdm` bytes that nobody vouches for.
//!
//! Order of checks (each failure names what and where):
//! 1. magic, then the major version (so a future layout gets "upgrade mdeploy", not "corrupt");
//! 2. the declared file length against the actual length (truncation / appended bytes);
//! 3. the SHA-256 digest (any change to any byte fails here with "corrupt or modified");
//! 4. flags, the section table, then each section with a bounds-checked [`Cursor`];
//! 5. tensors: buffer lengths are compared with what the shape implies *before* copying, and
//!    payloads are checked with [`Tensor::check_data`];
//! 6. [`Model::validate`] on the assembled graph.
//!
//! Digest-valid but hostile files (someone can always recompute a SHA-256) are still handled by
//! steps 4–6: every count is compared with the bytes left before anything is allocated for it.

use crate::error::{Error, Result};
use crate::format::codes::{self, dtype, encoding, flag, layer, quant, section};
use crate::format::cursor::Cursor;
use crate::format::digest;
use crate::format::tensor::{packed_len, qtype_bits};
use crate::format::{FileInfo, SectionInfo, TensorInfo, FORMAT_MAJOR, FORMAT_MINOR};
use crate::graph::{Graph, Node, Op, ValueId, MAX_NODES, MAX_NODE_INPUTS};
use crate::model::{
    Metadata, Model, Preprocessing, Provenance, Quant, QuantType, Tensor, TensorData, MAX_ACTIVATION_ELEMS,
};

pub(crate) struct Header {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
    pub section_count: usize,
    pub digest: [u8; 32],
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks magic, version, length and digest; returns the header. Shared by [`read`] and
/// [`crate::format::digest_hex`].
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header> {
    parse_header_opts(bytes, true)
}

/// [`parse_header`], with the SHA-256 check optional (`verify_digest = false` only for bytes
/// whose digest was checked earlier, e.g. at build time: see [`crate::format::read_trusted`]).
pub(crate) fn parse_header_opts(bytes: &[u8], verify_digest: bool) -> Result<Header> {
    let magic = &codes::MAGIC;
    if bytes.len() < magic.len() || bytes[..magic.len()] != magic[..] {
        if bytes.len() < magic.len() && magic.starts_with(bytes) {
            return Err(Error::bad_model(format!(
                "truncated: the file is {} bytes, shorter than the .mdm header ({} bytes)",
                bytes.len(),
                codes::HEADER_LEN
            )));
        }
        return Err(Error::bad_model(
            "not an .mdm model file (wrong magic bytes at offset 0); export the model with `mdeploy` to get one",
        ));
    }
    if bytes.len() < codes::HEADER_LEN {
        return Err(Error::bad_model(format!(
            "truncated: the file is {} bytes, shorter than the .mdm header ({} bytes)",
            bytes.len(),
            codes::HEADER_LEN
        )));
    }
    let major = le_u16(bytes, 8);
    let minor = le_u16(bytes, 10);
    if major != FORMAT_MAJOR {
        return Err(Error::unsupported(format!(
            "this model uses .mdm format version {major}.{minor}, but this mdeploy ({}) reads version {FORMAT_MAJOR}.x only: upgrade mdeploy to load it",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let flags = le_u32(bytes, 12);
    let file_len = le_u64(bytes, 16);
    let actual = bytes.len() as u64;
    if file_len > actual {
        return Err(Error::bad_model(format!(
            "truncated: the header says the file is {file_len} bytes but only {actual} are present (the download or copy was cut short)"
        )));
    }
    if file_len < actual {
        return Err(Error::bad_model(format!(
            "the header says the file is {file_len} bytes but {actual} are present: {} extra bytes were appended, or the file is corrupt",
            actual - file_len
        )));
    }
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[codes::DIGEST_OFFSET..codes::DIGEST_OFFSET + codes::DIGEST_LEN]);
    let computed = if verify_digest { digest::content_digest(bytes) } else { stored };
    if computed != stored {
        return Err(Error::bad_model(format!(
            "the file is corrupt or was modified after it was written: its SHA-256 digest does not match (stored {}, computed {}); re-export or re-download the model",
            digest::hex(&stored),
            digest::hex(&computed)
        )));
    }
    let section_count = le_u32(bytes, 24) as usize;
    let reserved = le_u32(bytes, 28);
    if flags & (flag::SIGNED | flag::ENCRYPTED) != 0 {
        return Err(Error::unsupported(format!(
            "this model is {} (header flags {flags:#x}); this mdeploy cannot verify signatures or decrypt yet: upgrade mdeploy or export an unsigned, unencrypted model",
            match (flags & flag::SIGNED != 0, flags & flag::ENCRYPTED != 0) {
                (true, true) => "signed and encrypted",
                (true, false) => "signed",
                _ => "encrypted",
            }
        )));
    }
    if flags != 0 {
        return Err(Error::unsupported(format!(
            "header flags {flags:#x} use bits this mdeploy does not know (format {major}.{minor}); upgrade mdeploy"
        )));
    }
    if reserved != 0 {
        return Err(Error::bad_model(format!(
            "header field at offset 28 is reserved and must be 0, found {reserved:#x}"
        )));
    }
    Ok(Header {
        major,
        minor,
        flags,
        section_count,
        digest: stored,
    })
}

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    offset: usize,
    len: usize,
}

impl Section {
    fn end(&self) -> usize {
        self.offset + self.len // checked when parsed
    }
}

struct Sections {
    meta: Section,
    graph: Section,
    tensors: Section,
    data: Section,
    all: Vec<SectionInfo>,
}

fn parse_sections(bytes: &[u8], h: &Header) -> Result<Sections> {
    let n = h.section_count;
    if n == 0 || n > codes::MAX_SECTIONS {
        return Err(Error::bad_model(format!(
            "header declares {n} sections; a file has 4 to {} (META, GRAPH, TENSORS, DATA)",
            codes::MAX_SECTIONS
        )));
    }
    let table_len = n * codes::SECTION_ENTRY_LEN; // <= 32 * 24
    let table_end = codes::HEADER_LEN + table_len;
    if table_end > bytes.len() {
        return Err(Error::bad_model(format!(
            "truncated: the section table ({n} entries, bytes {}..{table_end}) runs past the end of the {}-byte file",
            codes::HEADER_LEN,
            bytes.len()
        )));
    }
    let mut c = Cursor::new(
        &bytes[codes::HEADER_LEN..table_end],
        codes::HEADER_LEN,
        "section table",
    );
    let mut found: [Option<Section>; 4] = [None; 4];
    let mut all = Vec::with_capacity(n);
    let mut prev_end = table_end;
    for i in 0..n {
        let at = c.offset();
        let kind = c.u32(format_args!("entry {i} kind"))?;
        let sflags = c.u32(format_args!("entry {i} flags"))?;
        let offset = c.u64(format_args!("entry {i} offset"))?;
        let len = c.u64(format_args!("entry {i} length"))?;
        let name = section::name(kind);
        let loc = || format!("section table entry {i} (kind {kind} {name}, at file offset {at})");
        if sflags & !section::FLAG_REQUIRED != 0 {
            return Err(Error::bad_model(format!(
                "{}: unknown section flag bits {sflags:#x}",
                loc()
            )));
        }
        let end = offset.checked_add(len).filter(|&e| e <= bytes.len() as u64);
        let (Some(end), Ok(offset)) = (end, usize::try_from(offset)) else {
            return Err(Error::bad_model(format!(
                "{}: bytes {offset}+{len} run past the end of the {}-byte file (truncated or corrupt)",
                loc(),
                bytes.len()
            )));
        };
        let end = end as usize; // <= bytes.len()
        let align = if kind == section::DATA {
            codes::DATA_ALIGN
        } else {
            codes::SECTION_ALIGN
        };
        if offset % align != 0 {
            return Err(Error::bad_model(format!(
                "{}: offset {offset} is not a multiple of {align}",
                loc()
            )));
        }
        if offset < prev_end {
            return Err(Error::bad_model(format!(
                "{}: offset {offset} overlaps the header, the section table or the previous section (which ends at {prev_end}); sections must be in file order",
                loc()
            )));
        }
        prev_end = end;
        let s = Section {
            kind,
            offset,
            len: end - offset,
        };
        all.push(SectionInfo {
            kind,
            name,
            offset: offset as u64,
            len: s.len as u64,
        });
        match kind {
            section::META | section::GRAPH | section::TENSORS | section::DATA => {
                let slot = &mut found[(kind - 1) as usize];
                if slot.is_some() {
                    return Err(Error::bad_model(format!(
                        "{}: duplicate {name} section",
                        loc()
                    )));
                }
                *slot = Some(s);
            }
            section::SIGNATURE | section::ENCRYPTION => {
                return Err(Error::unsupported(format!(
                    "{}: this model carries a {name} section; signed or encrypted models need a newer mdeploy: upgrade mdeploy",
                    loc()
                )));
            }
            _ if sflags & section::FLAG_REQUIRED != 0 => {
                return Err(Error::unsupported(format!(
                    "{}: a section this mdeploy does not know is marked required (written by a newer version, format {}.{}): upgrade mdeploy",
                    loc(),
                    h.major,
                    h.minor
                )));
            }
            _ => {} // optional section from a newer minor version: skipped, still digest-covered
        }
    }
    let get = |k: u32| {
        found[(k - 1) as usize].ok_or_else(|| {
            Error::bad_model(format!(
                "the {} section is missing from the section table",
                section::name(k)
            ))
        })
    };
    Ok(Sections {
        meta: get(section::META)?,
        graph: get(section::GRAPH)?,
        tensors: get(section::TENSORS)?,
        data: get(section::DATA)?,
        all,
    })
}

fn cursor<'a>(bytes: &'a [u8], s: Section) -> Cursor<'a> {
    Cursor::new(&bytes[s.offset..s.end()], s.offset, section::name(s.kind))
}

fn parse_bool(c: &mut Cursor, what: &str) -> Result<bool> {
    match c.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(c.err(format_args!("{what} must be 0 or 1, found {v}"))),
    }
}

fn parse_meta(c: &mut Cursor, allow_trailing: bool) -> Result<Metadata> {
    let name = c.string("model name")?;
    let version = c.string("model version")?;
    let rank = c.u8("input rank")? as usize;
    if rank > codes::MAX_RANK {
        return Err(c.err(format_args!(
            "input rank {rank} is more than the limit of {}",
            codes::MAX_RANK
        )));
    }
    let mut input_shape = Vec::with_capacity(rank);
    for d in 0..rank {
        input_shape.push(c.usize32(format_args!("input dimension {d}"))?);
    }
    // Model::validate bounds every layer's output but not the input itself (a graph with no
    // layers would let a host size an input buffer from an unchecked product).
    let input_elems = input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if input_elems.is_none_or(|n| n > MAX_ACTIVATION_ELEMS) {
        return Err(c.err(format_args!(
            "input shape {input_shape:?} has more than {MAX_ACTIVATION_ELEMS} elements per sample"
        )));
    }
    let n_labels = c.count("label count", codes::MAX_LABELS, 4)?;
    let mut labels = Vec::new();
    for i in 0..n_labels {
        labels.push(c.string(format_args!("label {i}"))?);
    }
    let recipe = c.string("preprocessing recipe")?;
    let range = [
        c.finite_f32("preprocessing range low")?,
        c.finite_f32("preprocessing range high")?,
    ];
    let ink_high = parse_bool(c, "preprocessing ink_high")?;
    let data = c.string("provenance data")?;
    let split = c.string("provenance split")?;
    let arch = c.string("provenance arch")?;
    let epochs = c.u32("provenance epochs")?;
    let seed = c.u64("provenance seed")?;
    let has_acc = parse_bool(c, "provenance test accuracy presence")?;
    let at = c.offset();
    let acc = c.f32("provenance test accuracy")?;
    let test_accuracy = if has_acc {
        if !(0.0..=1.0).contains(&acc) {
            return Err(Error::bad_model(format!(
                "META section, file offset {at}: test accuracy {acc} is outside 0..=1"
            )));
        }
        Some(acc)
    } else {
        if acc.to_bits() != 0 {
            return Err(Error::bad_model(format!(
                "META section, file offset {at}: absent test accuracy must be stored as 0"
            )));
        }
        None
    };
    let n_extra = c.count("extra provenance count", codes::MAX_EXTRA, 8)?;
    let mut extra = Vec::new();
    for i in 0..n_extra {
        let k = c.string(format_args!("extra provenance key {i}"))?;
        let v = c.string(format_args!("extra provenance value {i}"))?;
        extra.push((k, v));
    }
    c.finish(allow_trailing)?;
    Ok(Metadata {
        name,
        version,
        input_shape,
        labels,
        preprocessing: Preprocessing {
            recipe,
            range,
            ink_high,
        },
        provenance: Provenance {
            data,
            split,
            arch,
            epochs,
            seed,
            test_accuracy,
            extra,
        },
    })
}

/// A tensor record from the TENSORS table, its buffers already checked to lie inside DATA,
/// aligned and in order.
struct Record {
    dtype: u8,
    bits: u8,
    encoding: u8,
    quant: Option<Quant>,
    shape: Vec<usize>,
    numel: usize,
    /// (file offset, length) of each buffer.
    buffers: Vec<(usize, usize)>,
    at: usize,
}

fn dtype_name(dtype: u8, bits: u8) -> String {
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

fn parse_record(c: &mut Cursor, i: usize, data: Section, prev_end: &mut usize) -> Result<Record> {
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

fn le_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
fn le_u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Builds the tensor of record `r`: lengths are compared with what the shape implies before
/// any copy, then the payload is checked.
fn decode(bytes: &[u8], r: Record, i: usize, owner: &str) -> Result<Tensor> {
    let ctx = format!(
        "TENSORS section, tensor {i} ({owner}) at file offset {}",
        r.at
    );
    let buf = |b: usize| {
        let (off, len) = r.buffers[b];
        &bytes[off..off + len] // checked inside DATA when parsed
    };
    let len_err = |b: usize, want: String| {
        Error::bad_model(format!(
            "{ctx}: buffer {b} is {} bytes, but {want}",
            r.buffers[b].1
        ))
    };
    let numel = r.numel;
    let data = match r.encoding {
        encoding::DENSE => {
            if r.dtype == dtype::F32 {
                if Some(r.buffers[0].1) != numel.checked_mul(4) {
                    return Err(len_err(
                        0,
                        format!("shape {:?} needs {numel} f32 values", r.shape),
                    ));
                }
                TensorData::F32(le_f32s(buf(0)))
            } else {
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
                    raw: buf(0).to_vec(),
                }
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
                    row_ptr: le_u32s(buf(0)),
                    col_idx: le_u32s(buf(1)),
                    values: le_f32s(buf(2)),
                }
            } else {
                let want = packed_len(numel, 1).unwrap_or(usize::MAX);
                if r.buffers[0].1 != want {
                    return Err(len_err(
                        0,
                        format!("a bitmask of {numel} elements needs {want}"),
                    ));
                }
                if r.buffers[1].1 % 4 != 0 {
                    return Err(len_err(1, "values are 4-byte f32s".into()));
                }
                TensorData::SparseBitmask {
                    mask: buf(0).to_vec(),
                    values: le_f32s(buf(1)),
                }
            }
        }
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

/// A node as parsed: its op with empty placeholder tensors, and the table indices that fill
/// them (in `Op::tensors_mut` order) once the tensors are decoded.
struct NodeSpec {
    node: Node,
    tensors: Vec<usize>,
}

fn placeholder() -> Tensor {
    Tensor::f32(Vec::new(), Vec::new())
}

/// Parses the GRAPH section: the 1.0 layer list (`minor == 0`) or the 1.1 node list.
fn parse_graph(
    c: &mut Cursor,
    minor: u16,
    n_tensors: usize,
    owners: &mut [Option<(usize, &'static str)>],
) -> Result<(Vec<NodeSpec>, ValueId)> {
    let v11 = minor >= 1;
    let what = if v11 { "node" } else { "layer" };
    // 1.0: a layer is at least its u16 code; 1.1: code + name length + input count.
    let n = c.count(format_args!("{what} count"), MAX_NODES, if v11 { 7 } else { 2 })?;
    let output = if v11 { c.u32("graph output value")? } else { n as ValueId };
    let mut specs = Vec::new();
    for i in 0..n {
        let at = c.offset();
        let code = c.u16(format_args!("{what} {i} code"))?;
        let (name, inputs) = if v11 {
            let name = c.string(format_args!("node {i} name"))?;
            let k = c.u8(format_args!("node {i} input count"))? as usize;
            if k > MAX_NODE_INPUTS {
                return Err(c.err(format_args!("node {i} has {k} inputs, more than the limit of {MAX_NODE_INPUTS}")));
            }
            let mut inputs = Vec::with_capacity(k);
            for j in 0..k {
                inputs.push(c.u32(format_args!("node {i} input {j}"))?);
            }
            (name, inputs)
        } else {
            (String::new(), vec![i as ValueId])
        };
        let mut idx = Vec::new();
        let mut tensor = |c: &mut Cursor, role: &'static str| -> Result<Tensor> {
            let t = c.u32(format_args!("{what} {i} {role} tensor index"))? as usize;
            match owners.get_mut(t) {
                None => Err(c.err(format_args!(
                    "{what} {i} {role} refers to tensor {t}, but the table has {n_tensors} tensors"
                ))),
                Some(Some((other, r))) => Err(c.err(format_args!(
                    "{what} {i} {role} refers to tensor {t}, already used as {what} {other} {r}; each tensor belongs to exactly one {what}"
                ))),
                Some(slot) => {
                    *slot = Some((i, role));
                    idx.push(t);
                    Ok(placeholder())
                }
            }
        };
        let pair = |c: &mut Cursor, f: &str| -> Result<[usize; 2]> {
            Ok([c.usize32(format_args!("{what} {i} {f}[0]"))?, c.usize32(format_args!("{what} {i} {f}[1]"))?])
        };
        let quad = |c: &mut Cursor, f: &str| -> Result<[usize; 4]> {
            let mut q = [0; 4];
            for (j, v) in q.iter_mut().enumerate() {
                *v = c.usize32(format_args!("{what} {i} {f}[{j}]"))?;
            }
            Ok(q)
        };
        let flag = |c: &mut Cursor, f: &str| -> Result<bool> { parse_bool(c, &format!("{what} {i} {f}")) };
        let unknown = || {
            Error::unsupported(format!(
                "GRAPH section, file offset {at}: {what} {i} has unknown op code {code} for format 1.{minor}; upgrade mdeploy if this file was written by a newer version"
            ))
        };
        let op = match code {
            layer::DENSE => Op::Dense { weight: tensor(c, "weight")?, bias: tensor(c, "bias")? },
            layer::CONV2D => {
                let (weight, bias) = (tensor(c, "weight")?, tensor(c, "bias")?);
                let stride = pair(c, "stride")?;
                if v11 {
                    let padding = quad(c, "padding")?;
                    let dilation = pair(c, "dilation")?;
                    let groups = c.usize32(format_args!("node {i} groups"))?;
                    Op::Conv2d { weight, bias, stride, padding, dilation, groups }
                } else {
                    Op::conv2d(weight, bias, stride, pair(c, "padding")?)
                }
            }
            layer::MAXPOOL2D => {
                let (kernel, stride) = (pair(c, "kernel")?, pair(c, "stride")?);
                if v11 {
                    let padding = quad(c, "padding")?;
                    Op::MaxPool2d { kernel, stride, padding, ceil_mode: flag(c, "ceil_mode")? }
                } else {
                    Op::maxpool2d(kernel, stride)
                }
            }
            layer::RELU => Op::Relu,
            layer::SOFTMAX => Op::Softmax,
            layer::FLATTEN => Op::Flatten,
            layer::DROPOUT => Op::Dropout { rate: c.finite_f32(format_args!("{what} {i} dropout rate"))? },
            _ if !v11 => return Err(unknown()),
            layer::BATCHNORM => Op::BatchNorm {
                gamma: tensor(c, "gamma")?,
                beta: tensor(c, "beta")?,
                mean: tensor(c, "mean")?,
                var: tensor(c, "var")?,
                eps: c.finite_f32(format_args!("node {i} eps"))?,
            },
            layer::ADD => Op::Add,
            layer::MUL => Op::Mul,
            layer::CONCAT => Op::Concat,
            layer::AVGPOOL2D => {
                let (kernel, stride, padding) = (pair(c, "kernel")?, pair(c, "stride")?, quad(c, "padding")?);
                let ceil_mode = flag(c, "ceil_mode")?;
                Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad: flag(c, "count_include_pad")? }
            }
            layer::GLOBAL_AVGPOOL => Op::GlobalAvgPool,
            layer::RESHAPE => {
                let rank = c.u8(format_args!("node {i} reshape rank"))? as usize;
                if !(1..=3).contains(&rank) {
                    return Err(c.err(format_args!("node {i}: a Reshape target has 1 to 3 dimensions, not {rank}")));
                }
                let mut shape = Vec::with_capacity(rank);
                for j in 0..rank {
                    shape.push(c.usize32(format_args!("node {i} reshape dim {j}"))?);
                }
                Op::Reshape { shape }
            }
            layer::CLIP => Op::Clip {
                min: c.f32(format_args!("node {i} clip min"))?,
                max: c.f32(format_args!("node {i} clip max"))?,
            },
            layer::LEAKY_RELU => Op::LeakyRelu { alpha: c.finite_f32(format_args!("node {i} alpha"))? },
            layer::SIGMOID => Op::Sigmoid,
            layer::TANH => Op::Tanh,
            layer::HARDSWISH => Op::HardSwish,
            layer::IDENTITY => Op::Identity,
            _ => return Err(unknown()),
        };
        specs.push(NodeSpec { node: Node { op, inputs, name }, tensors: idx });
    }
    c.finish(false)?;
    if let Some(t) = owners.iter().position(Option::is_none) {
        return Err(Error::bad_model(format!(
            "TENSORS section: tensor {t} is not used by any {what} (each tensor belongs to exactly one {what})"
        )));
    }
    Ok((specs, output))
}

/// Parses and validates a whole file; see [`crate::format::read`].
pub(crate) fn read_with_info(bytes: &[u8]) -> Result<(Model, FileInfo)> {
    read_with_info_opts(bytes, true)
}

/// [`read_with_info`] with the digest check optional; every structural check still runs.
pub(crate) fn read_with_info_opts(bytes: &[u8], verify_digest: bool) -> Result<(Model, FileInfo)> {
    let h = parse_header_opts(bytes, verify_digest)?;
    let s = parse_sections(bytes, &h)?;
    let newer_minor = h.minor > FORMAT_MINOR;
    let meta = parse_meta(&mut cursor(bytes, s.meta), newer_minor)?;

    let mut tc = cursor(bytes, s.tensors);
    // A record is at least 5 code bytes + one buffer (16 bytes).
    let n_tensors = tc.count("tensor count", codes::MAX_TENSORS, 21)?;
    let mut records = Vec::new();
    let mut prev_end = s.data.offset;
    for i in 0..n_tensors {
        records.push(parse_record(&mut tc, i, s.data, &mut prev_end)?);
    }
    tc.finish(false)?;

    let mut owners = vec![None; n_tensors];
    let (specs, output) = parse_graph(&mut cursor(bytes, s.graph), h.minor, n_tensors, &mut owners)?;

    let mut infos = Vec::with_capacity(n_tensors);
    let mut tensors = Vec::with_capacity(n_tensors);
    for (i, r) in records.into_iter().enumerate() {
        let (layer, role) = owners[i].unwrap_or((0, "unused"));
        infos.push(TensorInfo {
            layer,
            role,
            dtype: dtype_name(r.dtype, r.bits),
            encoding: encoding::name(r.encoding),
            quantization: match &r.quant {
                None => "none",
                Some(Quant::PerTensor { .. }) => "per-tensor",
                Some(Quant::PerChannel { .. }) => "per-channel",
            },
            shape: r.shape.clone(),
            offset: r.buffers.first().map_or(0, |b| b.0 as u64),
            stored_bytes: r.buffers.iter().map(|b| b.1 as u64).sum(),
        });
        let owner = format!("{} {layer} {role}", if h.minor >= 1 { "node" } else { "layer" });
        tensors.push(Some(decode(bytes, r, i, &owner)?));
    }
    // Each index was checked in range and used exactly once by parse_graph.
    let mut take = |t: usize| {
        tensors[t]
            .take()
            .ok_or_else(|| Error::bad_model(format!("tensor {t} used twice")))
    };
    let mut nodes = Vec::with_capacity(specs.len());
    for NodeSpec { mut node, tensors: idx } in specs {
        for (slot, t) in node.op.tensors_mut().into_iter().zip(idx) {
            *slot = take(t)?;
        }
        nodes.push(node);
    }
    let model = Model { meta, graph: Graph { nodes, output } };
    model.validate().map_err(|e| Error {
        kind: e.kind,
        message: format!(
            "the file parses but its model is inconsistent: {}",
            e.message
        ),
    })?;
    let info = FileInfo {
        version: (h.major, h.minor),
        flags: h.flags,
        file_len: bytes.len() as u64,
        digest_hex: digest::hex(&h.digest),
        sections: s.all,
        tensors: infos,
    };
    Ok((model, info))
}
