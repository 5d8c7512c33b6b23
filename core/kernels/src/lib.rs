//! CPU kernels, found by path: `kernels/<isa dir>/<isa>_<op>_<dtype>.rs`, named like the functions in them.
//!
//! * `generic/`: portable Rust, the reference every SIMD kernel is tested against.
//! * `x86_64/`: AVX-512F (`avx512_*`, preferred) and AVX2 + FMA (`avx2_*`), chosen at run time
//!   (`is_x86_feature_detected!`, which is a compile-time `true` when the build already enables
//!   the features). The AVX-512 set picks its tile per op ([`KernelSet::for_width`]).
//! * `wasm/`: `simd128`, chosen at compile time (`-C target-feature=+simd128`).
//!
//! Everything goes through one dispatch point, [`KernelSet`]: a small `Copy` table of function
//! pointers picked once ([`KernelSet::best`]) or explicitly ([`KernelSet::generic`]) so tests
//! can compare SIMD against the reference. Design notes (tile sizes, packing, dispatch) are in
//! `KERNELS.md` beside this file.
//!
//! ```text
//!   gemm(m,n,k, A view, B view)            Plan (inference)
//!          │ pack B fully, A per panel        │ B (weights) packed once at load
//!          ▼                                  ▼ A packed per MR-row panel into the arena
//!   driver: for each MR-row panel of A ─ for each KC block ─ for each NR-col panel of B
//!                                               └─► micro-kernel <isa>_mmm_f32_<MR>x<NR>
//!                                                   (+ accumulate / bias / ReLU epilogue)
//! ```

pub mod generic;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
pub mod geometry;
mod drive;
mod gemm;
mod pack;
pub mod bgemm;
pub mod qgemm;
pub mod quant;
pub mod qweights;
mod set;
mod sparse;
mod bsparse;
mod tile;
pub mod winograd;

pub use gemm::{gemm, MatRef};
pub use geometry::{Act, BinOp, PoolGeom, PoolKind, Window};
pub use pack::{a_panel, APanel, AlignedBuf, PackedB, MAX_MR};
pub use bgemm::{bpack_rows, BSignRule, PackedBB, BNR, MAX_BK};
pub use qgemm::{PackedQB, QLayout, QNR};
pub use set::KernelSet;
pub use winograd::{winograd_supported, WinogradW};
pub use sparse::{SparseOffsets, SparseW};
pub use bsparse::{block_fill, BlockW, BLOCK_WIDTHS};
pub(crate) use tile::{store_tile_scalar, Tile};
