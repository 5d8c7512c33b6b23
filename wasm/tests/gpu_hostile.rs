//! A hostile model of about 300 KB cannot make the WebGPU engine allocate more than a small
//! multiple of its size, on the host or on the device, from the first byte read to the engine
//! being ready (read → lower → budget → buffers and weights uploaded): the same files and the same
//! bound as the native Plan's test (`mdeploy_testkit::hostile`, `core/tests/hostile_alloc.rs`).
//! Host bytes are counted by a peak-tracking global allocator; device bytes are the sizes of the
//! buffers the engine created (lavapipe allocates them in C, out of the allocator's sight).
//!
//! `XDG_RUNTIME_DIR=<a 0700 dir> cargo test -p mdeploy-wasm --release --features native-gpu --test gpu_hostile`

use mdeploy_core::format;
use mdeploy_testkit::hostile::{self, bound};
use mdeploy_wasm::gpu::GpuCore;
use mdeploy_testkit::alloc::{peak_during, Peak};
use mdeploy_testkit::block_on;

#[global_allocator]
static GLOBAL: Peak = Peak;

#[test]
fn every_hostile_file_loads_or_fails_within_the_bound_on_the_gpu() {
    // A first engine outside the measurement: the Vulkan instance, the driver and the shader
    // compiler are set up once per process, whatever the model (not the file's doing).
    let warm = format::read(&hostile::all()[1].bytes).expect("the 1-bit model reads");
    match block_on(GpuCore::load(&warm, 1)) {
        Ok(_) => {}
        Err(e) if e.code == "NO_WEBGPU" => panic!("no Vulkan adapter: install mesa-vulkan-drivers (lavapipe): {}", e.message),
        Err(e) => panic!("the 1-bit model must load on the GPU: {}", e.message),
    }
    for h in hostile::all() {
        for max_batch in [1, 64, 1 << 20] {
            let (host, r) = peak_during(|| {
                format::read(&h.bytes).map_err(|e| e.to_string()).and_then(|m| {
                    block_on(GpuCore::load(&m, max_batch)).map_err(|e| format!("{}: {}", e.code, e.message))
                })
            });
            let device = r.as_ref().map_or(0, |g| g.device_bytes() as usize);
            println!(
                "{}: {} bytes, max_batch {max_batch}: host peak {host} ({:.1}x), device {device} ({:.1}x), {}",
                h.name,
                h.bytes.len(),
                host as f64 / h.bytes.len() as f64,
                device as f64 / h.bytes.len() as f64,
                match &r {
                    Ok(g) => format!("loaded, {} per submit", g.chunk()),
                    Err(e) => e.clone(),
                }
            );
            let limit = bound(h.bytes.len());
            assert!(host <= limit, "{}: host peak {host} > bound {limit}", h.name);
            assert!(device <= limit, "{}: device buffers {device} > bound {limit}", h.name);
            assert_eq!(r.is_ok(), h.loads, "{}: {:?}", h.name, r.as_ref().err());
            if let Err(e) = &r {
                // Refused as a bad model, naming what it asked for: never a device OOM.
                assert!(e.starts_with("BAD_MODEL"), "{}: {e}", h.name);
            }
        }
    }
}
