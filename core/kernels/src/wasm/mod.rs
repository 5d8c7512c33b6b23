//! wasm `simd128` kernels, compiled only with `-C target-feature=+simd128`: a wasm module either
//! validates with its SIMD instructions or does not load at all, so there is nothing to detect
//! at run time (hosts pick the SIMD or the scalar build with `WebAssembly.validate`).
//! No FMA here: `f32x4_relaxed_madd` needs relaxed SIMD, which Node 20 rejects by default.

pub(crate) mod wasm_gemv_f32;
pub(crate) mod wasm_maxpool_f32;
pub(crate) mod wasm_mmm_f32;
pub(crate) mod wasm_qmmm_i8;
