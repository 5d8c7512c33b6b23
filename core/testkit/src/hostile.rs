//! Hostile model files of about 300 KB, shared by every host's allocation test (the native
//! Plan in `core/tests/hostile_alloc.rs`, the WebGPU engine in `wasm/tests/gpu_hostile.rs`):
//! the expansions the format allows at their limit, and files that declare more than they store.
//!
//! [`bound`] is what any host may allocate to load one: 96 × the file + 9 MiB. Dense weights may
//! be 32× their stored bytes (1-bit weights become f32, the densest expansion the format allows,
//! `format/codes.rs`) and a load may hold them twice while packing or uploading (64×);
//! activation buffers are capped by `budget.rs` (8 MiB + 16 × stored bytes per chunk).

use mdeploy_core::format;
use mdeploy_core::lower::{Kernel, Program, Step};
use mdeploy_core::model::{Metadata, Model, Quant, QuantType, Tensor, TensorData};
use mdeploy_core::{Graph, GraphBuilder, Op};

/// The most a host may allocate (host heap, or device buffers) to load a file of `file` bytes.
pub fn bound(file: usize) -> usize {
    96 * file + (9 << 20)
}

/// One hostile file and whether a host must load it (`false`: it must refuse it, cleanly).
pub struct Hostile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub loads: bool,
}

fn meta(input_shape: Vec<usize>) -> Metadata {
    Metadata { name: "hostile".into(), input_shape, ..Default::default() }
}

/// The example: a Dense weight [65520, 4097] stored as CSR with no entries (262 KB of
/// row pointers) that describes a gigabyte of dense floats. The writer refuses to write it, so
/// this forges it as an attacker would: written as [65520, 1], the record's second dimension
/// patched to 4097 and the header resealed.
pub fn forged_empty_csr() -> Vec<u8> {
    let (rows, cols) = (65_520usize, 4097u32);
    let narrow = Model {
        meta: meta(vec![rows]),
        graph: Graph::sequential([Op::Dense {
            weight: Tensor {
                shape: vec![rows, 1],
                data: TensorData::SparseCsr { row_ptr: vec![0; rows + 1], col_idx: vec![], values: vec![] },
            },
            bias: Tensor::f32(vec![1], vec![0.0]),
        }]),
    };
    let mut bytes = format::write(&narrow).expect("a [65520, 1] CSR weight is writable");
    let dims: Vec<u8> = [rows as u32, 1u32].iter().flat_map(|d| d.to_le_bytes()).collect();
    let at = bytes.windows(8).position(|w| w == &dims[..]).expect("the CSR record's dims");
    bytes[at + 4..at + 8].copy_from_slice(&cols.to_le_bytes());
    crate::reseal(bytes)
}

/// 300 KB of 1-bit weights: 2.4 M binary values, the densest honest expansion (32× as f32).
pub fn one_bit_dense() -> Model {
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
    Model {
        meta: meta(vec![fin]),
        graph: Graph::sequential([Op::Dense { weight, bias: Tensor::f32(vec![fout], vec![0.0; fout]) }, Op::Softmax]),
    }
}

/// A ~300 KB file (one 75k-float Dense weight makes up the size) whose `side × side` input is
/// widened to 16 channels by a 1×1 convolution, then pooled by `pool × pool` windows:
/// `side = 1000` declares 64 MB per value.
pub fn wide_activations(side: usize, pool: usize) -> Model {
    let w = |n: usize| (0..n).map(|i| (i % 7) as f32 * 0.01).collect::<Vec<f32>>();
    let mut b = GraphBuilder::new();
    let c = b.push(Op::conv2d(Tensor::f32(vec![16, 1, 1, 1], w(16)), Tensor::f32(vec![16], w(16)), [1, 1], [0, 0]), &[0]);
    let p = b.push(Op::maxpool2d([pool, pool], [pool, pool]), &[c]);
    let f = b.push(Op::Flatten, &[p]);
    b.push(Op::Dense { weight: Tensor::f32(vec![1024, 73], w(1024 * 73)), bias: Tensor::f32(vec![73], w(73)) }, &[f]);
    Model { meta: meta(vec![1, side, side]), graph: b.finish() }
}

/// Every hostile file, with what a host must do with it.
pub fn all() -> Vec<Hostile> {
    let write = |m: &Model| format::write(m).expect("the hostile models are writable");
    vec![
        Hostile { name: "forged empty CSR", bytes: forged_empty_csr(), loads: false },
        Hostile { name: "1-bit dense", bytes: write(&one_bit_dense()), loads: true },
        // 64 MB and 16 MB per value: beyond the budget (8 MiB + 16 × 0.3 MB) for one sample.
        Hostile { name: "64 MB per value", bytes: write(&wide_activations(1000, 125)), loads: false },
        Hostile { name: "16 MB per value", bytes: write(&wide_activations(500, 62)), loads: false },
        // 4 MB per value fits: it loads at any max_batch, the batch shrinking to the budget.
        Hostile { name: "4 MB per value", bytes: write(&wide_activations(256, 32)), loads: true },
    ]
}

/// A program of one step, `kernel`, from a `k`-wide input slot to an `out`-wide output slot: how
/// the hostile-program tests hand `Plan::from_program` a kernel with forged weights directly,
/// bypassing the lowering (which would never build them).
pub fn one_step_program(kernel: Kernel, k: usize, out: usize) -> Program {
    Program {
        input_shape: vec![k],
        input_len: k,
        output_len: out,
        slots: vec![k, out],
        input_slot: 0,
        output_slot: 1,
        steps: vec![Step { kernel, inputs: vec![0], output: 1, node: 0 }],
    }
}

/// A plan over `model` refuses a NaN or an infinity anywhere in the input (the first value, a
/// sample's last value, a middle sample, the batch's last value) with the same error, naming its
/// index, at a max_batch that holds the 5-digit batch and at two that split it (so the plan's
/// own scan and any check a step makes on its read must agree); `out` is untouched, and the plan
/// still runs a good batch afterwards. `label` names the model in failures.
pub fn refuses_non_finite_inputs_like_the_scan(model: &Model, ks: mdeploy_core::kernels::KernelSet, label: &str) {
    let n = 5;
    let (xs, _) = crate::mnist::test_subset(&crate::mnist::interleaved_test_indices(1)[..n]).expect("digits");
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for at in [0, 783, 2 * 784 + 400, n * 784 - 1] {
            let mut x = xs.clone();
            x[at] = bad;
            let mut msgs = vec![];
            for max_batch in [n, 64, 2] {
                let mut plan = mdeploy_core::Plan::with_kernels(model, max_batch, ks).expect("plan");
                let mut out = vec![7.0f32; n * 10];
                let e = plan.run(&x, n, &mut out).expect_err("a non-finite input is refused");
                assert_eq!(e.kind, mdeploy_core::ErrorKind::BadInput, "{label} {}: {e}", ks.name());
                assert!(out.iter().all(|&v| v == 7.0), "{label} {}: out written on error", ks.name());
                msgs.push(e.to_string());
                plan.run(&xs, n, &mut out).expect("good batch");
            }
            assert!(msgs.iter().all(|m| *m == msgs[0] && m.contains(&format!("index {at} "))), "{label} {}: {msgs:?}", ks.name());
        }
    }
}
