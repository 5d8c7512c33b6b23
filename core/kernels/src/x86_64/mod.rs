//! x86_64 kernels, two sets:
//!
//! * AVX2 + FMA (`avx2_*`): `#[target_feature(enable = "avx2,fma")]`, reachable only through a
//!   `KernelSet` built by `KernelSet::avx2_fma`, which checks the CPU.
//! * AVX-512F (`avx512_*`): `#[target_feature(enable = "avx512f")]`, reachable only through
//!   `KernelSet::avx512`, which checks AVX-512F (and AVX2 + FMA, for the shared max pool).

pub(crate) mod avx512_gemv_f32;
pub(crate) mod avx512_mmm_f32;
pub(crate) mod avx2_dwconv_f32;
pub(crate) mod avx2_gemv_f32;
pub(crate) mod avx2_maxpool_f32;
pub(crate) mod avx2_mmm_f32;
pub(crate) mod avx2_spmm_f32;
pub(crate) mod avx512_spmm_f32;
pub(crate) mod avx2_bspmv_f32;
pub(crate) mod avx512_bspmv_f32;
pub(crate) mod avx2_qmmm_i8;
pub(crate) mod amx_qmmm_i8;
pub(crate) mod avx512vnni_qmmm_i8;
pub(crate) mod avx512vnni_qconvpool_i8;
pub(crate) mod avx512_quantize_f32;
pub(crate) mod avx_requant_i32;
pub(crate) mod avx512_requant_u8;
pub(crate) mod avx_winograd_f32;
pub(crate) mod popcnt_bmmm_b1;
pub(crate) mod avx512vpopcnt_bmmm_b1;
pub(crate) mod avx512vpopcnt_bmmmsign_b1;
pub(crate) mod avx2_bmmm_b1;
pub(crate) mod avx512_bepilogue_i32;
pub(crate) mod avx512_bpack_f32;
pub(crate) mod avx2_bpack_f32;
