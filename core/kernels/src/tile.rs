//! What every micro-kernel shares: the output [`Tile`] with its fused epilogue, the kernel
//! signatures the dispatch table holds, and the scalar edge-tile store.

use crate::geometry::{PoolGeom, Window};

/// One output tile handed to a micro-kernel: where to write, how much of the `MR × NR`
/// register tile is real, and what to do on the way out (the fused epilogue).
pub(crate) struct Tile {
    pub c: *mut f32,
    pub ldc: usize,
    /// Valid rows (`<= MR`) and columns (`<= NR`); the rest of the register tile is padding.
    pub rows: usize,
    pub cols: usize,
    /// Add to what is in `C` instead of overwriting it (never reads `C` otherwise, so NaN
    /// garbage in an output buffer cannot leak in).
    pub accumulate: bool,
    /// Null, or `cols` (and, for a full tile, `NR`) per-column values added after the product.
    pub bias: *const f32,
    /// Clamp every value to `[lo, hi]` last (ReLU is `[0, inf]`, ReLU6 `[0, 6]`).
    pub clamp: bool,
    pub lo: f32,
    pub hi: f32,
}

/// `C_tile (op)= A[MR × k] · B_panel[k × NR]`: A as MR rows, element `(r, p)` at `a[r*rsa + p]`
/// (rows of the caller's row-major matrix, or of a scratch panel), B packed k-major with NR
/// values per step. Safety: all MR rows valid for `k` values, `b` for `k*NR`, the tile as documented.
pub(crate) type MmmFn = unsafe fn(k: usize, a: *const f32, rsa: usize, b: *const f32, tile: &Tile);
/// Indirect variant for convolutions: A element `(r, p)` is `rows[r][offs[p]]`.
/// Safety: `rows` holds MR pointers, each valid at every `offs[..k]`; `b` for `k*NR`; the tile.
pub(crate) type ConvFn =
    unsafe fn(k: usize, rows: *const *const f32, offs: *const u32, b: *const f32, tile: &Tile);
/// `y[..cols] = x[..k] · B_panel[k × NR] (+ bias) (ReLU)` for one packed NR-column panel.
/// Safety: `x` valid for `k`, `b` for `k*NR`, `bias` null or valid for `cols`, `y` for `cols`.
/// `rows` null: rows `0..k`; otherwise the `k` row indices it points to (the non-zero inputs).
pub(crate) type GemvFn = unsafe fn(
    k: usize,
    rows: *const u32,
    x: *const f32,
    b: *const f32,
    bias: *const f32,
    y: *mut f32,
    cols: usize,
    relu: bool,
);
/// Max pooling on one HWC sample. Safety: slices sized per `PoolGeom` (checked by the caller).
pub(crate) type PoolFn = unsafe fn(src: &[f32], dst: &mut [f32], g: &PoolGeom);
/// Depthwise convolution of one HWC sample, `w` as `[kh·kw × C]`, output clamped to
/// `[lo, hi]`. Safety: slices sized per the window (checked by `KernelSet::dwconv_hwc`).
pub(crate) type DwConvFn =
    unsafe fn(src: &[f32], w: &[f32], bias: &[f32], dst: &mut [f32], g: &Window, lo: f32, hi: f32);


/// Scalar epilogue shared by all micro-kernels for edge tiles (and by the generic kernel for
/// every tile): `acc` is the full `MR × NR` register tile, row-major.
///
/// # Safety
/// `t.c` must be valid for `t.rows` rows of `t.cols` values at stride `t.ldc`; `t.bias` null
/// or valid for `t.cols` values.
#[inline(always)]
pub(crate) unsafe fn store_tile_scalar(acc: &[f32], nr: usize, t: &Tile) {
    for r in 0..t.rows {
        let crow = t.c.add(r * t.ldc);
        for j in 0..t.cols {
            let mut v = acc[r * nr + j];
            if t.accumulate {
                v += *crow.add(j);
            }
            if !t.bias.is_null() {
                v += *t.bias.add(j);
            }
            if t.clamp {
                v = v.max(t.lo).min(t.hi);
            }
            *crow.add(j) = v;
        }
    }
}

/// Sparse × dense block, rows as the vector axis: for every column `j < cols`,
/// `yt[j·NB .. j·NB+NB] = clamp(bias[j] + Σ_{p in ptr[j]..ptr[j+1]} val[p] · xt[off[p] .. off[p]+NB])`,
/// clamped with `max(lo, ·)` then `min(hi, ·)` in the order that lets NaN through. `off[p]` is
/// where entry `p`'s input row starts in `xt` (`row · NB` for a transposed block; a tap's
/// shift for the direct convolution).
/// Safety: `ptr` valid for `cols + 1` entries, `off`/`val` for `ptr[cols]`, `xt` for
/// `NB` floats at every `off[p]`, `bias` for `cols`, `yt` for `cols·NB` floats.
pub(crate) type SpmmFn = unsafe fn(
    cols: usize,
    ptr: *const u32,
    off: *const u32,
    val: *const f32,
    xt: *const f32,
    bias: *const f32,
    lo: f32,
    hi: f32,
    yt: *mut f32,
);
