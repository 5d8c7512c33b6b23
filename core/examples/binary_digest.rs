//! FNV-1a digest of all 2,000 × 10 output bits of a model on the fixed test split, on every
//! kernel set at max batch 1 and 256 (as `wasm/examples/native_ref.rs` computes the bitexact
//! digests), printed per set: a before/after check of an executor change without building the
//! wasm crate.
//!
//! `cargo run --release -p mdeploy-core --example binary_digest -- MODEL.mdm...`
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use mdeploy_testkit::mnist;

fn main() {
    let (digits, labels) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let n = labels.len();
    for path in std::env::args().skip(1) {
        let m = mdeploy_core::format::read(&std::fs::read(&path).expect("read")).expect("model");
        for ks in KernelSet::available().into_iter().flat_map(|k| k.binary_variants()) {
            for mb in [1usize, 256] {
                let mut plan = Plan::with_kernels(&m, mb, ks).expect("plan");
                let mut out = vec![0.0f32; n * plan.output_len()];
                plan.run(&digits, n, &mut out).expect("run");
                let h = out.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3));
                println!("{path} {} {} {} max_batch {mb}: {h:016x}", ks.name(), ks.bmmm_name(), ks.bpack_name());
            }
        }
    }
}
