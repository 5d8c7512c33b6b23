//! Writing `.mdm` bytes. The writer refuses anything the reader would refuse (it validates the
//! model, checks every tensor payload and every format limit), so whatever it writes loads.
//!
//! Layout it produces (the reader accepts any order-respecting layout, see `MDM_FORMAT.md`):
//!
//! ```text
//! 0      header (64 bytes, digest at 32..64)
//! 64     section table: META, GRAPH, TENSORS, DATA (4 × 24 bytes)
//! 160    META      \
//! 8k     GRAPH      } each starting at a multiple of 8, zero padding between
//! 8k     TENSORS   /
//! 64k    DATA: tensor buffers, each starting at a multiple of 64, zero padding between
//! ```

use crate::error::{Error, Result};
use crate::format::codes::{self, dtype, encoding, layer, quant, section};
use crate::format::digest;
use crate::format::{FORMAT_MAJOR, FORMAT_MINOR};
use crate::graph::{Graph, Op};
use crate::model::{Metadata, Model, Quant, QuantType, Tensor, TensorData, MAX_ACTIVATION_ELEMS};

fn cannot(msg: impl std::fmt::Display) -> Error {
    Error::bad_model(format!("cannot write the model: {msg}"))
}

fn u32_of(v: usize, what: impl std::fmt::Display) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        cannot(format_args!(
            "{what} is {v}, more than the format's u32 fields hold"
        ))
    })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_f32(out: &mut Vec<u8>, v: f32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &str) -> Result<()> {
    if s.len() > codes::MAX_STRING_BYTES {
        return Err(cannot(format_args!(
            "{what} is {} bytes, more than the limit of {}",
            s.len(),
            codes::MAX_STRING_BYTES
        )));
    }
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while out.len() % align != 0 {
        out.push(0);
    }
}

pub(crate) fn encode_meta(m: &Metadata) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_str(&mut out, &m.name, "model name")?;
    put_str(&mut out, &m.version, "model version")?;
    if m.input_shape.len() > codes::MAX_RANK {
        return Err(cannot(format_args!(
            "input rank {} is more than {}",
            m.input_shape.len(),
            codes::MAX_RANK
        )));
    }
    let input_elems = m
        .input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if input_elems.is_none_or(|n| n > MAX_ACTIVATION_ELEMS) {
        return Err(cannot(format_args!(
            "input shape {:?} has more than {MAX_ACTIVATION_ELEMS} elements per sample",
            m.input_shape
        )));
    }
    out.push(m.input_shape.len() as u8);
    for &d in &m.input_shape {
        put_u32(&mut out, u32_of(d, "an input dimension")?);
    }
    if m.labels.len() > codes::MAX_LABELS {
        return Err(cannot(format_args!(
            "{} labels is more than {}",
            m.labels.len(),
            codes::MAX_LABELS
        )));
    }
    put_u32(&mut out, m.labels.len() as u32);
    for l in &m.labels {
        put_str(&mut out, l, "a label")?;
    }
    let p = &m.preprocessing;
    put_str(&mut out, &p.recipe, "preprocessing recipe")?;
    if !p.range.iter().all(|v| v.is_finite()) {
        return Err(cannot(format_args!(
            "preprocessing range {:?} must be finite",
            p.range
        )));
    }
    put_f32(&mut out, p.range[0]);
    put_f32(&mut out, p.range[1]);
    out.push(u8::from(p.ink_high));
    let pv = &m.provenance;
    put_str(&mut out, &pv.data, "provenance data")?;
    put_str(&mut out, &pv.split, "provenance split")?;
    put_str(&mut out, &pv.arch, "provenance arch")?;
    put_u32(&mut out, pv.epochs);
    put_u64(&mut out, pv.seed);
    match pv.test_accuracy {
        Some(a) if (0.0..=1.0).contains(&a) => {
            out.push(1);
            put_f32(&mut out, a);
        }
        Some(a) => return Err(cannot(format_args!("test accuracy {a} is outside 0..=1"))),
        None => {
            out.push(0);
            put_f32(&mut out, 0.0);
        }
    }
    if pv.extra.len() > codes::MAX_EXTRA {
        return Err(cannot(format_args!(
            "{} extra provenance entries is more than {}",
            pv.extra.len(),
            codes::MAX_EXTRA
        )));
    }
    put_u32(&mut out, pv.extra.len() as u32);
    for (k, v) in &pv.extra {
        put_str(&mut out, k, "an extra provenance key")?;
        put_str(&mut out, v, "an extra provenance value")?;
    }
    Ok(out)
}

/// The buffers of a tensor, in record order, as little-endian bytes.
fn buffers(t: &Tensor) -> Vec<Vec<u8>> {
    fn le32<T: Copy>(v: &[T], f: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }
    match &t.data {
        TensorData::F32(v) => vec![le32(v, f32::to_le_bytes)],
        TensorData::Quantized { raw, .. } => vec![raw.clone()],
        TensorData::SparseCsr {
            row_ptr,
            col_idx,
            values,
        } => vec![
            le32(row_ptr, u32::to_le_bytes),
            le32(col_idx, u32::to_le_bytes),
            le32(values, f32::to_le_bytes),
        ],
        TensorData::SparseBitmask { mask, values } => {
            vec![mask.clone(), le32(values, f32::to_le_bytes)]
        }
    }
}

/// One tensor record; `bufs` are (file offset, length).
fn encode_record(out: &mut Vec<u8>, t: &Tensor, bufs: &[(u64, u64)], ctx: &str) -> Result<()> {
    let (dt, bits, enc, q) = match &t.data {
        TensorData::F32(_) => (dtype::F32, 32, encoding::DENSE, None),
        TensorData::Quantized { qtype, quant, .. } => {
            let (dt, bits) = match *qtype {
                QuantType::I8 => (dtype::I8, 8),
                QuantType::U8 => (dtype::U8, 8),
                QuantType::Packed {
                    bits,
                    signed: false,
                } => (dtype::UPACKED, bits),
                QuantType::Packed { bits, signed: true } => (dtype::SPACKED, bits),
            };
            (dt, bits, encoding::DENSE, Some(quant))
        }
        TensorData::SparseCsr { .. } => (dtype::F32, 32, encoding::SPARSE_CSR, None),
        TensorData::SparseBitmask { .. } => (dtype::F32, 32, encoding::SPARSE_BITMASK, None),
    };
    out.extend_from_slice(&[dt, bits, enc]);
    out.push(match q {
        None => quant::NONE,
        Some(Quant::PerTensor { .. }) => quant::PER_TENSOR,
        Some(Quant::PerChannel { .. }) => quant::PER_CHANNEL,
    });
    if t.shape.len() > codes::MAX_RANK {
        return Err(cannot(format_args!(
            "{ctx}: rank {} is more than {}",
            t.shape.len(),
            codes::MAX_RANK
        )));
    }
    out.push(t.shape.len() as u8);
    for &d in &t.shape {
        put_u32(out, u32_of(d, format_args!("{ctx}: a dimension"))?);
    }
    match q {
        None => {}
        Some(Quant::PerTensor { scale, zero_point }) => {
            put_f32(out, *scale);
            out.extend_from_slice(&zero_point.to_le_bytes());
        }
        Some(Quant::PerChannel {
            axis,
            scales,
            zero_points,
        }) => {
            put_u32(
                out,
                u32_of(*axis, format_args!("{ctx}: the quantization axis"))?,
            );
            for &s in scales {
                put_f32(out, s);
            }
            for &z in zero_points {
                out.extend_from_slice(&z.to_le_bytes());
            }
        }
    }
    for &(off, len) in bufs {
        put_u64(out, off);
        put_u64(out, len);
    }
    Ok(())
}

/// Serializes `model`; see [`crate::format::write`].
pub(crate) fn write(model: &Model) -> Result<Vec<u8>> {
    write_with(
        model,
        &Options {
            minor: FORMAT_MINOR,
            flags: 0,
            extra: &[],
        },
    )
}

/// Knobs for producing files this build would not normally write (tests of forward
/// compatibility: a newer minor version, reserved flags, extra sections after DATA).
pub(crate) struct Options<'a> {
    pub minor: u16,
    pub flags: u32,
    /// (kind, section flags, contents), placed after DATA.
    pub extra: &'a [(u32, u32, &'a [u8])],
}

pub(crate) fn write_with(model: &Model, opts: &Options) -> Result<Vec<u8>> {
    model.validate()?;
    let meta = encode_meta(&model.meta)?;

    // GRAPH, collecting tensors in node order (the table order). The oldest version that can
    // express the graph is written, so files stay readable by older mdeploy builds.
    let minor = if opts.minor == FORMAT_MINOR { minimal_minor(&model.graph) } else { opts.minor };
    let (graph, tensors) = encode_graph(&model.graph, minor)?;

    // DATA, with offsets relative to its start (itself 64-aligned, so alignment carries over).
    let mut data = Vec::new();
    let mut rel_bufs: Vec<Vec<(usize, usize)>> = Vec::with_capacity(tensors.len());
    for (t, ctx) in &tensors {
        t.check_data()
            .map_err(|e| cannot(format_args!("{ctx}: {}", e.message)))?;
        let bufs = buffers(t);
        if !matches!(t.data, TensorData::F32(_) | TensorData::Quantized { .. }) {
            let stored: usize = bufs.iter().map(Vec::len).sum();
            let bound = codes::SPARSE_FREE_ELEMS
                .saturating_add(codes::SPARSE_MAX_RATIO.saturating_mul(stored));
            if t.numel() > bound {
                return Err(cannot(format_args!(
                    "{ctx}: a sparse tensor of {} elements stored in {stored} bytes exceeds the format's expansion limit; store it dense",
                    t.numel()
                )));
            }
        }
        let mut rel = Vec::with_capacity(bufs.len());
        for b in bufs {
            pad_to(&mut data, codes::DATA_ALIGN);
            rel.push((data.len(), b.len()));
            data.extend_from_slice(&b);
        }
        rel_bufs.push(rel);
    }

    // TENSORS: encode once to learn its length (offsets are fixed-width), then for real.
    let encode_table = |data_off: usize| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        put_u32(&mut out, tensors.len() as u32);
        for ((t, ctx), rel) in tensors.iter().zip(&rel_bufs) {
            let abs: Vec<(u64, u64)> = rel
                .iter()
                .map(|&(o, l)| ((data_off + o) as u64, l as u64))
                .collect();
            encode_record(&mut out, t, &abs, ctx)?;
        }
        Ok(out)
    };
    let table_len = encode_table(0)?.len();

    let align = |v: usize, a: usize| v.div_ceil(a) * a;
    let n_sections = 4 + opts.extra.len();
    let meta_off = codes::HEADER_LEN + n_sections * codes::SECTION_ENTRY_LEN;
    let graph_off = align(meta_off + meta.len(), codes::SECTION_ALIGN);
    let tensors_off = align(graph_off + graph.len(), codes::SECTION_ALIGN);
    let data_off = align(tensors_off + table_len, codes::DATA_ALIGN);
    let table = encode_table(data_off)?;
    let mut sections = vec![
        (section::META, section::FLAG_REQUIRED, meta_off, &meta[..]),
        (
            section::GRAPH,
            section::FLAG_REQUIRED,
            graph_off,
            &graph[..],
        ),
        (
            section::TENSORS,
            section::FLAG_REQUIRED,
            tensors_off,
            &table[..],
        ),
        (section::DATA, section::FLAG_REQUIRED, data_off, &data[..]),
    ];
    let mut end = data_off + data.len();
    for &(kind, flags, bytes) in opts.extra {
        let off = align(end, codes::SECTION_ALIGN);
        sections.push((kind, flags, off, bytes));
        end = off + bytes.len();
    }
    let file_len = end;

    let mut out = Vec::with_capacity(file_len);
    out.extend_from_slice(&codes::MAGIC);
    out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    put_u32(&mut out, opts.flags);
    put_u64(&mut out, file_len as u64);
    put_u32(&mut out, n_sections as u32);
    put_u32(&mut out, 0); // reserved
    out.extend_from_slice(&[0u8; codes::DIGEST_LEN]); // sealed below
    for &(kind, flags, off, bytes) in &sections {
        put_u32(&mut out, kind);
        put_u32(&mut out, flags);
        put_u64(&mut out, off as u64);
        put_u64(&mut out, bytes.len() as u64);
    }
    for &(_, _, off, bytes) in &sections {
        out.resize(off, 0);
        out.extend_from_slice(bytes);
    }
    debug_assert_eq!(out.len(), file_len);
    digest::seal(&mut out);
    Ok(out)
}

/// A file of the given sections, in order, each at the next multiple of 8 (no DATA: used for the
/// outer file of an encrypted model), digest sealed. A SIGNATURE placeholder, if any, is filled
/// and the digest re-sealed by `trust::seal_signed`.
pub(crate) fn assemble(minor: u16, flags: u32, sections: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let align = |v: usize, a: usize| v.div_ceil(a) * a;
    let mut end = codes::HEADER_LEN + sections.len() * codes::SECTION_ENTRY_LEN;
    let mut placed = Vec::with_capacity(sections.len());
    for &(kind, sflags, bytes) in sections {
        let off = align(end, codes::SECTION_ALIGN);
        placed.push((kind, sflags, off, bytes));
        end = off + bytes.len();
    }
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(&codes::MAGIC);
    out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    put_u32(&mut out, flags);
    put_u64(&mut out, end as u64);
    put_u32(&mut out, sections.len() as u32);
    put_u32(&mut out, 0);
    out.extend_from_slice(&[0u8; codes::DIGEST_LEN]);
    for &(kind, sflags, off, bytes) in &placed {
        put_u32(&mut out, kind);
        put_u32(&mut out, sflags);
        put_u64(&mut out, off as u64);
        put_u64(&mut out, bytes.len() as u64);
    }
    for &(_, _, off, bytes) in &placed {
        out.resize(off, 0);
        out.extend_from_slice(bytes);
    }
    digest::seal(&mut out);
    out
}

/// `0` when the graph is a chain of the 1.0 layers with their 1.0 attributes, else `1`.
fn minimal_minor(g: &Graph) -> u16 {
    let v10 = g.as_sequential().is_some_and(|ops| {
        ops.iter().all(|op| match op {
            Op::Dense { .. } | Op::Relu | Op::Softmax | Op::Flatten | Op::Dropout { .. } => true,
            Op::Conv2d { padding, dilation, groups, .. } => {
                padding[0] == padding[2] && padding[1] == padding[3] && *dilation == [1, 1] && *groups == 1
            }
            Op::MaxPool2d { padding, ceil_mode, .. } => *padding == [0; 4] && !ceil_mode,
            _ => false,
        })
    });
    if v10 {
        0
    } else {
        1
    }
}

/// The GRAPH section of format `1.minor` (`minor` from [`minimal_minor`] or a test's choice)
/// and the tensors in table order, each with a description for error messages.
fn encode_graph(g: &Graph, minor: u16) -> Result<(Vec<u8>, Vec<(&Tensor, String)>)> {
    let v11 = minor >= 1;
    let mut out = Vec::new();
    let mut tensors: Vec<(&Tensor, String)> = Vec::new();
    put_u32(&mut out, g.nodes.len() as u32); // <= MAX_NODES, checked by validate
    if v11 {
        put_u32(&mut out, g.output);
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let op = &node.op;
        let what = if v11 { "node" } else { "layer" };
        let code = op_code(op);
        out.extend_from_slice(&code.to_le_bytes());
        if v11 {
            put_str(&mut out, &node.name, &format!("node {i} name"))?;
            out.push(node.inputs.len() as u8); // <= MAX_NODE_INPUTS (64), checked by validate
            for &v in &node.inputs {
                put_u32(&mut out, v);
            }
        }
        let u = |out: &mut Vec<u8>, v: usize, f: &str| -> Result<()> {
            put_u32(out, u32_of(v, format_args!("{what} {i} {f}"))?);
            Ok(())
        };
        let all = |out: &mut Vec<u8>, v: &[usize], f: &str| -> Result<()> { v.iter().try_for_each(|&x| u(out, x, f)) };
        let roles: &[&str] = match op {
            Op::BatchNorm { .. } => &["gamma", "beta", "mean", "var"],
            _ => &["weight", "bias"],
        };
        for (t, role) in op.tensors().into_iter().zip(roles) {
            put_u32(&mut out, tensors.len() as u32); // <= 4 * MAX_NODES
            tensors.push((t, format!("{what} {i} ({}) {role}", op.name())));
        }
        match op {
            Op::Conv2d { stride, padding, dilation, groups, .. } => {
                all(&mut out, stride, "stride")?;
                if v11 {
                    all(&mut out, padding, "padding")?;
                    all(&mut out, dilation, "dilation")?;
                    u(&mut out, *groups, "groups")?;
                } else {
                    all(&mut out, &padding[..2], "padding")?;
                }
            }
            Op::MaxPool2d { kernel, stride, padding, ceil_mode } => {
                all(&mut out, kernel, "kernel")?;
                all(&mut out, stride, "stride")?;
                if v11 {
                    all(&mut out, padding, "padding")?;
                    out.push(*ceil_mode as u8);
                }
            }
            Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad } => {
                all(&mut out, kernel, "kernel")?;
                all(&mut out, stride, "stride")?;
                all(&mut out, padding, "padding")?;
                out.push(*ceil_mode as u8);
                out.push(*count_include_pad as u8);
            }
            Op::Dropout { rate } => put_f32(&mut out, *rate), // validate: in [0, 1)
            Op::BatchNorm { eps, .. } => put_f32(&mut out, *eps),
            Op::Reshape { shape } => {
                out.push(shape.len() as u8); // 1..=3, checked by validate
                all(&mut out, shape, "reshape dim")?;
            }
            Op::Clip { min, max } => {
                put_f32(&mut out, *min);
                put_f32(&mut out, *max);
            }
            Op::LeakyRelu { alpha } => put_f32(&mut out, *alpha),
            Op::Quantize { scale, zero_point } => {
                put_f32(&mut out, *scale);
                out.extend_from_slice(&zero_point.to_le_bytes());
            }
            _ => {}
        }
    }
    Ok((out, tensors))
}

fn op_code(op: &Op) -> u16 {
    match op {
        Op::Dense { .. } => layer::DENSE,
        Op::Conv2d { .. } => layer::CONV2D,
        Op::MaxPool2d { .. } => layer::MAXPOOL2D,
        Op::Relu => layer::RELU,
        Op::Softmax => layer::SOFTMAX,
        Op::Flatten => layer::FLATTEN,
        Op::Dropout { .. } => layer::DROPOUT,
        Op::BatchNorm { .. } => layer::BATCHNORM,
        Op::Add => layer::ADD,
        Op::Mul => layer::MUL,
        Op::Concat => layer::CONCAT,
        Op::AvgPool2d { .. } => layer::AVGPOOL2D,
        Op::GlobalAvgPool => layer::GLOBAL_AVGPOOL,
        Op::Reshape { .. } => layer::RESHAPE,
        Op::Clip { .. } => layer::CLIP,
        Op::LeakyRelu { .. } => layer::LEAKY_RELU,
        Op::Sigmoid => layer::SIGMOID,
        Op::Tanh => layer::TANH,
        Op::HardSwish => layer::HARDSWISH,
        Op::Identity => layer::IDENTITY,
        Op::Quantize { .. } => layer::QUANTIZE,
        Op::Sign => layer::SIGN,
    }
}
