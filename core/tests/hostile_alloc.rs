//! A hostile model of about 300 KB cannot make the load path (read → plan) allocate more than a
//! small multiple of its size: a peak-tracking global allocator measures every byte allocated
//! from the first byte read to the plan being ready (issue 9, "untrusted models, again").
//!
//! The bound asserted is 96 × the file + 9 MiB: dense weights may be 32× their stored bytes
//! (1-bit weights become f32, the densest expansion the format allows, `format/codes.rs`) and the
//! lowering and the plan hold them twice while packing (64×); activation buffers are capped by
//! `budget.rs` (8 MiB + 16 × stored bytes per chunk, whatever max_batch was asked for).

use mdeploy_core::format;
use mdeploy_core::model::{Metadata, Model, Quant, QuantType, Tensor, TensorData};
use mdeploy_core::{Graph, GraphBuilder, Op, Plan};
use mdeploy_testkit::reseal;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Peak;
static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = CUR.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CUR.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = CUR.fetch_add(new - l.size(), Ordering::Relaxed) + (new - l.size());
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CUR.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// The tests share one allocator: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak bytes allocated (above what was live before) while loading `bytes` as a host does:
/// read, then plan for `max_batch`. Returns the peak and whether the load succeeded.
fn load_peak(bytes: &[u8], max_batch: usize) -> (usize, Result<(), String>) {
    let base = CUR.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = format::read(bytes)
        .and_then(|m| Plan::new(&m, max_batch).map(|_| ()))
        .map_err(|e| e.to_string());
    (PEAK.load(Ordering::Relaxed) - base, r)
}

fn bound(file: usize) -> usize {
    96 * file + (9 << 20)
}

fn meta(input_shape: Vec<usize>) -> Metadata {
    Metadata { name: "hostile".into(), input_shape, ..Default::default() }
}

fn check(what: &str, bytes: &[u8], expect_ok: bool) {
    for max_batch in [1, 64, 1 << 20] {
        let (peak, r) = load_peak(bytes, max_batch);
        println!("{what}: {} bytes, max_batch {max_batch}: peak {peak} bytes ({:.1}x), {r:?}", bytes.len(), peak as f64 / bytes.len() as f64);
        assert!(peak <= bound(bytes.len()), "{what}: peak {peak} > bound {}", bound(bytes.len()));
        assert_eq!(r.is_ok(), expect_ok, "{what}: {r:?}");
    }
}

#[test]
fn an_empty_csr_weight_is_refused_before_it_expands() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The example: a Dense weight [65520, 4097] stored as CSR with no entries (262 KB of
    // row pointers) used to describe a gigabyte of dense floats.
    let (rows, cols) = (65_520, 4097);
    let weight = Tensor {
        shape: vec![rows, cols],
        data: TensorData::SparseCsr { row_ptr: vec![0; rows + 1], col_idx: vec![], values: vec![] },
    };
    let m = Model {
        meta: meta(vec![rows]),
        graph: Graph::sequential([Op::Dense { weight, bias: Tensor::f32(vec![cols], vec![0.0; cols]) }]),
    };
    // The writer refuses to write it...
    let e = format::write(&m).unwrap_err();
    assert!(e.message.contains("expansion limit"), "{e}");
    // ...so forge the file: write it as [65520, 1] (which fits), patch the second dimension in
    // the tensor record to 4097 and recompute the digest, as an attacker would.
    let mut narrow = m.clone();
    let Op::Dense { weight, bias } = &mut narrow.graph.nodes[0].op else { unreachable!() };
    weight.shape = vec![rows, 1];
    *bias = Tensor::f32(vec![1], vec![0.0]);
    let mut bytes = format::write(&narrow).unwrap();
    let dims = [rows as u32, 1u32].iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<u8>>();
    let at = bytes.windows(8).position(|w| w == &dims[..]).expect("the CSR record's dims");
    bytes[at + 4..at + 8].copy_from_slice(&(cols as u32).to_le_bytes());
    let bytes = reseal(bytes);
    assert!((250_000..300_000).contains(&bytes.len()), "{}", bytes.len());
    let (_, r) = load_peak(&bytes, 64);
    let e = r.unwrap_err();
    assert!(e.contains("sparser than the format allows") && e.contains("bitmask"), "{e}");
    check("forged empty CSR", &bytes, false);
}

#[test]
fn one_bit_weights_of_300_kb_load_within_the_bound() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 300 KB of 1-bit weights: 2.4 M binary values, the densest honest expansion (32x as f32).
    let (fin, fout) = (2400, 1024);
    let raw: Vec<u8> = (0..fin * fout / 8).map(|i| (i * 37 % 251) as u8).collect();
    let weight = Tensor {
        shape: vec![fin, fout],
        data: TensorData::Quantized {
            qtype: QuantType::Packed { bits: 1, signed: true },
            quant: Quant::PerTensor { scale: 0.01, zero_point: 0 },
            raw,
        },
    };
    let m = Model {
        meta: meta(vec![fin]),
        graph: Graph::sequential([Op::Dense { weight, bias: Tensor::f32(vec![fout], vec![0.0; fout]) }, Op::Softmax]),
    };
    let bytes = format::write(&m).unwrap();
    assert!((290_000..330_000).contains(&bytes.len()), "{}", bytes.len());
    check("1-bit dense", &bytes, true);
}

#[test]
fn huge_declared_activations_are_refused_or_chunked() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A ~300 KB file (one 75k-float Dense weight to make up the size) that declares a
    // 1 x 1000 x 1000 input, widened to 16 channels by a 1x1 convolution: 64 MB per value.
    let w = |n: usize| (0..n).map(|i| (i % 7) as f32 * 0.01).collect::<Vec<f32>>();
    let mut b = GraphBuilder::new();
    let c = b.push(Op::conv2d(Tensor::f32(vec![16, 1, 1, 1], w(16)), Tensor::f32(vec![16], w(16)), [1, 1], [0, 0]), &[0]);
    let p = b.push(Op::maxpool2d([125, 125], [125, 125]), &[c]);
    let f = b.push(Op::Flatten, &[p]);
    b.push(Op::Dense { weight: Tensor::f32(vec![1024, 73], w(1024 * 73)), bias: Tensor::f32(vec![73], w(73)) }, &[f]);
    let m = Model { meta: meta(vec![1, 1000, 1000]), graph: b.finish() };
    let bytes = format::write(&m).unwrap();
    assert!((290_000..330_000).contains(&bytes.len()), "{}", bytes.len());
    check("huge activations", &bytes, false);

    // The same graph on a 1 x 500 x 500 input (16 MB per value) does not fit either (budget
    // 8 MiB + 16 x 0.3 MB), and 1 x 256 x 256 (4 MB per value) loads, at any max_batch, within
    // the bound.
    let mut small = m.clone();
    small.meta.input_shape = vec![1, 500, 500];
    small.graph.nodes[1].op = Op::maxpool2d([62, 62], [62, 62]);
    check("16 MB per value", &format::write(&small).unwrap(), false);
    small.meta.input_shape = vec![1, 256, 256];
    small.graph.nodes[1].op = Op::maxpool2d([32, 32], [32, 32]);
    check("4 MB per value", &format::write(&small).unwrap(), true);
}
