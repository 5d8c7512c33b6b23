//! The WebGPU backend: executes the shared lowering's [`Program`](mdeploy_core::lower::Program)
//! (the same one the CPU plan runs), so the two backends cannot drift apart.
//!
//! * `engine.rs`: [`GpuCore`], the engine in plain async Rust over wgpu (no wasm-bindgen types):
//!   slot buffers, weights, pipelines, one compute pass per batch, async readback. Runs in the
//!   browser and, with `--features native-gpu`, natively on Vulkan (tests/gpu.rs on lavapipe).
//! * `kernels.rs` + one WGSL file per `Kernel` variant (`transpose.wgsl`, `dense.wgsl`,
//!   `conv2d.wgsl`, `pool.wgsl`, `global_avg_pool.wgsl`, `binary.wgsl`, `concat.wgsl`,
//!   `act.wgsl`, `affine.wgsl`, `softmax.wgsl`, `copy.wgsl`, the integer `qdense.wgsl`,
//!   `qconv2d.wgsl` with their shared epilogue `qepi.wgsl`, `quantize.wgsl` (a Quantize of an
//!   intermediate value), and the binary `sign.wgsl`, `bdense.wgsl` (XOR + `countOneBits`)):
//!   the generated declarations around each file and the fused activation epilogue. Integer and
//!   binary programs are bit-identical to the CPU engine; how, and what runs on the CPU around
//!   them: `core/runtime/QUANT.md`, "WebGPU".
//! * `params.rs`: each kernel's uniform described once (field names and types), from which the
//!   WGSL struct and the bytes are both generated.
//! * `bindings.rs` (wasm32 only): the `#[wasm_bindgen] GpuEngine` class `index.js` uses.
//!
//! Why not the `Backend` trait: its `run` is synchronous and GPU readback is not. `GpuEngine`
//! is its own async class; `index.js` keeps a CPU `Engine` beside it for metadata, for
//! `predictSync`, and to switch to when the device is lost. Design notes: `wasm/DESIGN.md`.

#[cfg(target_arch = "wasm32")]
mod bindings;
pub mod engine;
pub mod kernels;
pub mod params;
pub mod program;

#[cfg(target_arch = "wasm32")]
pub use bindings::GpuEngine;
pub use engine::GpuCore;
pub use program::program_for;
