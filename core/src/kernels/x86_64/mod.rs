//! AVX2 + FMA kernels. Every function here is `#[target_feature(enable = "avx2,fma")]` and is
//! reachable only through a `KernelSet` built by `KernelSet::avx2_fma`, which checks the CPU.

pub(crate) mod gemv_f32;
pub(crate) mod maxpool_f32;
pub(crate) mod mmm_f32;
