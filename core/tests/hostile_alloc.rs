//! A hostile model of about 300 KB cannot make the load path (read → plan) allocate more than a
//! small multiple of its size: a peak-tracking global allocator measures every byte allocated
//! from the first byte read to the plan being ready (issue 9, "untrusted models, again").
//! The files and the bound (96 × the file + 9 MiB, reasons in `mdeploy_testkit::hostile`) are
//! shared with the WebGPU engine's test (`wasm/tests/gpu_hostile.rs`).

use mdeploy_core::{format, Plan};
use mdeploy_testkit::hostile::{self, bound};
use mdeploy_testkit::alloc::{peak_during, Peak};
use std::sync::Mutex;

#[global_allocator]
static GLOBAL: Peak = Peak;

/// The tests share one allocator: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak bytes allocated (above what was live before) while loading `bytes` as a host does:
/// read, then plan for `max_batch`. Returns the peak and whether the load succeeded.
fn load_peak(bytes: &[u8], max_batch: usize) -> (usize, Result<(), String>) {
    peak_during(|| format::read(bytes).and_then(|m| Plan::new(&m, max_batch).map(|_| ())).map_err(|e| e.to_string()))
}

#[test]
fn every_hostile_file_loads_or_fails_within_the_bound_at_any_max_batch() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for h in hostile::all() {
        assert!((250_000..330_000).contains(&h.bytes.len()), "{}: {} bytes", h.name, h.bytes.len());
        for max_batch in [1, 64, 1 << 20] {
            let (peak, r) = load_peak(&h.bytes, max_batch);
            println!(
                "{}: {} bytes, max_batch {max_batch}: peak {peak} bytes ({:.1}x), {r:?}",
                h.name,
                h.bytes.len(),
                peak as f64 / h.bytes.len() as f64
            );
            assert!(peak <= bound(h.bytes.len()), "{}: peak {peak} > bound {}", h.name, bound(h.bytes.len()));
            assert_eq!(r.is_ok(), h.loads, "{}: {r:?}", h.name);
        }
    }
}

#[test]
fn the_errors_say_what_the_file_asked_for() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The forged CSR is caught by the format's expansion rule, before anything expands; the
    // writer refuses to write the honest version of it in the first place.
    let e = load_peak(&hostile::forged_empty_csr(), 64).1.unwrap_err();
    assert!(e.contains("sparser than the format allows") && e.contains("bitmask"), "{e}");
    // Activations beyond the budget: refused naming the memory they need.
    let m = hostile::wide_activations(1000, 125);
    let e = Plan::new(&m, 1).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("MB of activations for one sample"), "{e}");
}
