//! Portable reference kernels: plain Rust over fixed-size arrays, which LLVM vectorizes for
//! whatever baseline the target has (SSE2 on x86_64, nothing on wasm without `simd128`).
//! Every SIMD kernel is tested against these.

pub mod generic_dwconv_f32;
pub mod generic_eltwise_f32;
pub mod generic_gemv_f32;
pub mod generic_maxpool_f32;
pub mod generic_mmm_f32;
pub mod generic_pool_f32;
pub mod generic_softmax_f32;
pub mod generic_spmm_f32;
pub(crate) mod generic_bspmv_f32;
pub mod generic_qmmm_i8;
pub mod generic_maxpool_u8;
pub(crate) mod generic_bmmm_b1;
pub(crate) mod generic_bpack_f32;
