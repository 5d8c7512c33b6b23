//! Portable reference kernels: plain Rust over fixed-size arrays, which LLVM vectorizes for
//! whatever baseline the target has (SSE2 on x86_64, nothing on wasm without `simd128`).
//! Every SIMD kernel is tested against these.

pub(crate) mod dwconv_f32;
pub(crate) mod eltwise_f32;
pub(crate) mod gemv_f32;
pub(crate) mod maxpool_f32;
pub(crate) mod mmm_f32;
pub(crate) mod pool_f32;
pub(crate) mod softmax_f32;
