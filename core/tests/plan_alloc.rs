//! Proof that `Plan::run` / `Plan::predict` never allocate in steady state (and neither does
//! the public `gemm` once its thread-local scratch has grown), using a counting global
//! allocator. Only allocations made by the test's own thread while counting is on are counted,
//! so the test harness's threads cannot disturb the result.

use mdeploy_core::kernels::{gemm, MatRef};
use mdeploy_core::model::{Metadata, Model, Tensor};
use mdeploy_core::{Graph, Op};
use mdeploy_core::Plan;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // `const` initialisation: reading it never allocates (no lazy init, no destructor).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread: tests run in parallel, and one test's allocations must not count in another's.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn count_allocs(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|a| a.get());
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get()) - before
}

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 0.2 - 0.1
        })
        .collect()
}

fn dense(fin: usize, fout: usize, seed: u64) -> Op {
    Op::Dense {
        weight: Tensor::f32(vec![fin, fout], seeded(fin * fout, seed)),
        bias: Tensor::f32(vec![fout], seeded(fout, seed + 1)),
    }
}

fn conv(ic: usize, oc: usize, k: usize, seed: u64) -> Op {
    Op::conv2d(Tensor::f32(vec![oc, ic, k, k], seeded(oc * ic * k * k, seed)), Tensor::f32(vec![oc], seeded(oc, seed + 1)), [1, 1], [0, 0])
}

fn models() -> Vec<Model> {
    let meta = Metadata {
        input_shape: vec![1, 28, 28],
        ..Default::default()
    };
    let pool = Op::maxpool2d([2, 2], [2, 2]);
    vec![
        Model {
            meta: meta.clone(),
            graph: Graph::sequential(vec![
                Op::Flatten,
                dense(784, 128, 1),
                Op::Relu,
                Op::Dropout { rate: 0.2 },
                dense(128, 10, 3),
                Op::Softmax,
            ]),
        },
        Model {
            meta,
            graph: Graph::sequential(vec![
                conv(1, 16, 5, 5),
                Op::Relu,
                pool.clone(),
                conv(16, 32, 5, 7),
                Op::Relu,
                pool,
                Op::Flatten,
                dense(512, 64, 9),
                Op::Relu,
                dense(64, 10, 11),
                Op::Softmax,
            ]),
        },
    ]
}

#[test]
fn run_and_predict_do_not_allocate() {
    for m in models() {
        let max_batch = 16;
        let mut plan = Plan::new(&m, max_batch).expect("plan");
        let (il, ol) = (plan.input_len(), plan.output_len());
        let dense = seeded(40 * il, 99)
            .iter()
            .map(|v| v + 0.1)
            .collect::<Vec<_>>();
        // Digit-like inputs: mostly exact zeros, with a non-zero count that grows from sample to
        // sample, so the sparse-input GEMV's index scratch is asked for more every time.
        let sparse: Vec<f32> = dense
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if (i % il) < (i / il + 1) * il / 50 {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        for input in [dense, sparse] {
            let mut out = vec![0.0f32; 40 * ol];
            // Warm-up: anything lazily initialised (CPU feature detection) happens here.
            plan.run(&input[..il], 1, &mut out[..ol]).expect("warm-up");
            let allocs = count_allocs(|| {
                // batch 1 (GEMV), 7, exactly max_batch, and 40 = 2.5 chunks.
                for n in [1usize, 7, max_batch, 40] {
                    plan.run(&input[..n * il], n, &mut out[..n * ol])
                        .expect("run");
                }
                for s in 0..3 {
                    let p = plan.predict(&input[s * il..(s + 1) * il]).expect("predict");
                    assert_eq!(p.len(), ol);
                }
            });
            assert_eq!(
                allocs,
                0,
                "Plan::run/predict allocated {allocs} times ({} layers)",
                m.graph.nodes.len()
            );
            // The counter does see allocations (guards against a test that cannot fail).
            assert!(count_allocs(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);
            assert!(
                out[..40 * ol].iter().all(|v| v.is_finite() && *v > 0.0),
                "softmax outputs are probabilities"
            );
        }
    }
}

#[test]
fn gemm_reuses_its_scratch() {
    let (m, n, k) = (33, 70, 300);
    let a = seeded(m * k, 1);
    let b = seeded(k * n, 2);
    let mut c = vec![0.0f32; m * n];
    gemm(
        m,
        n,
        k,
        MatRef::row_major(&a, k),
        MatRef::row_major(&b, n),
        &mut c,
        n,
        false,
    );
    let allocs = count_allocs(|| {
        gemm(
            m,
            n,
            k,
            MatRef::row_major(&a, k),
            MatRef::transposed(&b, k),
            &mut c,
            n,
            true,
        );
        gemm(
            m,
            n / 2,
            k / 3,
            MatRef::row_major(&a, k),
            MatRef::row_major(&b, n),
            &mut c,
            n,
            false,
        );
    });
    assert_eq!(allocs, 0, "gemm allocated {allocs} times after warm-up");
}

mod graph_support;

/// Every kernel of the graph lowering (grouped, depthwise and dilated convs, padded pools,
/// GAP, SE Mul, Concat, Add, unfolded BatchNorm, every activation, entry/exit transposes,
/// Dense in the middle of the graph) runs without allocating too.
#[test]
fn graph_ops_do_not_allocate() {
    use graph_support::{bn, conv, dense, Rng};
    use mdeploy_core::graph::{GraphBuilder, Op};
    use mdeploy_core::kernels::KernelSet;
    let rng = &mut Rng(21);
    let mut b = GraphBuilder::new();
    let x = b.chain(0, [conv(rng, 3, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), bn(rng, 8), Op::Clip { min: 0.0, max: 6.0 }]);
    let d = b.chain(x, [conv(rng, 8, 8, [3, 3], [2, 2], [1; 4], [1, 1], 8), Op::HardSwish]);
    let gconv = b.chain(d, [conv(rng, 8, 8, [3, 3], [1, 1], [2; 4], [2, 2], 2), Op::LeakyRelu { alpha: 0.1 }]);
    let s = b.push(Op::Add, &[d, gconv]);
    let s = b.push(bn(rng, 8), &[s]);
    let gate = b.chain(s, [Op::GlobalAvgPool, Op::Flatten, dense(rng, 8, 8), Op::Sigmoid]);
    let m = b.push(Op::Mul, &[s, gate]);
    let p1 = b.push(Op::AvgPool2d { kernel: [3, 3], stride: [2, 2], padding: [1; 4], ceil_mode: true, count_include_pad: false }, &[m]);
    let p2 = b.push(Op::MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [1; 4], ceil_mode: true }, &[m]);
    let c = b.push(Op::Concat, &[p1, p2]);
    let t = b.push(Op::Tanh, &[c]);
    b.chain(t, [Op::Flatten, dense(rng, 16 * 4 * 4, 10), Op::Softmax]);
    let g = b.finish();
    let shape = [3, 13, 13];
    let il: usize = shape.iter().product();
    let input = seeded(40 * il, 5);
    for ks in KernelSet::available() {
        let mut plan = Plan::from_graph(&g, &shape, 16, ks).expect("plan");
        let ol = plan.output_len();
        let mut out = vec![0.0f32; 40 * ol];
        plan.run(&input[..il], 1, &mut out[..ol]).expect("warm-up");
        let allocs = count_allocs(|| {
            for n in [1usize, 7, 16, 40] {
                plan.run(&input[..n * il], n, &mut out[..n * ol]).expect("run");
            }
            plan.predict(&input[..il]).expect("predict");
        });
        assert_eq!(allocs, 0, "graph plan ({}) allocated {allocs} times", ks.name());
        assert!(out.iter().all(|v| v.is_finite() && *v > 0.0));
    }
}
