//! The graph suite of `core/tests/plan_graph.rs` on the GPU: every graph (residual blocks with
//! BatchNorm, MobileNetV2 blocks, squeeze-and-excitation, Concat, padded/ceil pools, grouped and
//! dilated convolutions, every activation, layout edge cases, seeded random graphs) through the
//! shared `lower()` and the WebGPU engine, against the same f64 NCHW reference, at max_batch 1,
//! 4 (chunks) and n. The graphs and the reference are the runtime's (`graph_support`), included
//! by path so both backends are held to one definition.
//!
//! `XDG_RUNTIME_DIR=<0700 dir> cargo test -p mdeploy-wasm --release --features native-gpu --test gpu_graph`.

#[path = "../../core/tests/graph_support/mod.rs"]
mod graph_support;

use graph_support::*;
use mdeploy_core::graph::{Graph, GraphBuilder, Node, Op};

const TOL: f64 = 2e-4;

/// Runs `g` on `inputs` (n samples) on the GPU through lower() at max_batch 1, 4 (chunks) and n,
/// and checks every sample against the f64 reference.
fn check(name: &str, g: &Graph, shape: &[usize], inputs: &[f32]) {
    let il: usize = shape.iter().product();
    let n = inputs.len() / il;
    let refs: Vec<Vec<f64>> = inputs.chunks_exact(il).map(|x| reference(g, shape, x)).collect();
    let ol = refs[0].len();
    let program = mdeploy_core::lower::lower(g, shape).unwrap_or_else(|e| panic!("{name}: lower: {e}"));
    for max_batch in [1, 4, n] {
        let e = block_on(mdeploy_wasm::gpu::GpuCore::new(&program, max_batch)).unwrap_or_else(|e| panic!("{name}: gpu: {e}"));
        let out = block_on(e.run(inputs, n)).unwrap_or_else(|e| panic!("{name}: run: {e}"));
        for (s, (o, r)) in out.chunks_exact(ol).zip(&refs).enumerate() {
            let err = rel_err(o, r);
            assert!(err < TOL, "{name}: GPU max_batch {max_batch} sample {s}: relative error {err:e}\n got {:?}\nwant {:?}", &o[..ol.min(8)], &r[..ol.min(8)]);
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    }
}

const MNIST: [usize; 3] = [1, 28, 28];

include!("../../core/tests/graph_support/cases.rs");
