//! Winograd convolution F(2×2, 5×5): a stride-1, undilated, one-group 5×5 convolution of one
//! HWC sample with 36 multiplies per 2×2 output tile and input channel instead of 100.
//!
//! ```text
//!  src HWC ─ input transform (per 6×6 input tile, CH channels at a time) ─▶ U[ξ][tile][ic]
//!                                                  36 GEMMs on the set's tiles, one per ξ:
//!  U[ξ] [tiles × ic] · V[ξ] [ic × oc] (V = G·g·Gᵀ, packed once at plan time) ─▶ M[ξ][tile][oc]
//!  M ─ output transform (Aᵀ·m·A, + bias, clamp) ─▶ dst HWC (2×2 pixels per tile)
//! ```
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A` per tile, summed over input channels inside the GEMMs.
//! The matrices come from Toom-Cook at the points 0, 1, −1, 2, −2 and ∞ (Bᵀ's rows scaled to
//! integers, the factors moved into G); the weight transform runs once, in f64, rounded once.
//! Tiles are processed in blocks of [`block_tiles`] so the scratch stays bounded for any image.
//! Tiles reaching past the input (padding, or an output size that is not a multiple of 2)
//! read zeros there, and their outputs past `oh × ow` are dropped.
//!
//! The two transforms are one Rust body over `CH`-channel arrays, compiled per instruction set
//! (`#[target_feature]` wrappers in `x86_64/avx_winograd_f32.rs`; the generic and the wasm
//! sets run the plain function, which the `+simd128` build vectorizes). AVX-512 has its own
//! intrinsic version for tiles inside the image (the same operations in the same order, so the
//! same bits) and runs this body for border tiles, one tile at a time. Why this
//! variant, the numerics and the measured speed: "Winograd" in KERNELS.md.

use crate::gemm::MatRef;
use crate::geometry::Window;
use crate::pack::{a_panel, PackedB};
use crate::KernelSet;

/// Output tile side (m) and kernel side (r) of the one variant; `N = m + r − 1` input tile.
pub const WINO_M: usize = 2;
pub const WINO_R: usize = 5;
pub(crate) const N: usize = WINO_M + WINO_R - 1;
/// Tile elements ξ: one GEMM each.
pub(crate) const NN: usize = N * N;

/// Channels a transform handles per pass: one zmm, two ymm, four v128.
const CH: usize = 16;

/// Bᵀ (input transform), integers: exact in f32. The kernels use it written out (`bt6`); the
/// unit tests check that against this matrix.
#[cfg_attr(not(test), allow(dead_code))]
const BT: [[f32; N]; N] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, 4.0, 4.0, -1.0, -1.0, 0.0],
    [0.0, -4.0, 4.0, 1.0, -1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// Aᵀ (output transform): the points 0, 1, −1, 2, −2 to the powers 0 and 1, and ∞ (written
/// out in `at6`).
#[cfg_attr(not(test), allow(dead_code))]
const AT: [[f32; N]; WINO_M] = [[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, 2.0, -2.0, 1.0]];

/// G (weight transform), with the row factors taken out of Bᵀ; used once per weight, in f64.
const G: [[f64; WINO_R]; N] = [
    [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
    [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
    [1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// Whether this build has Winograd at all. Browser and npm builds (`wasm32-unknown-unknown`)
/// leave it out: it is off in the wasm sets anyway (slower there, KERNELS.md) and cost ~8 KB
/// gzip against the package's size bound. Native and WASI builds (where its tests also run
/// under Node) have it.
pub const WINOGRAD_BUILT: bool = !cfg!(all(target_arch = "wasm32", target_os = "unknown"));

/// Can [`KernelSet::winograd_pack`] take this convolution? Stride 1, dilation 1, one group,
/// a 5×5 kernel; any padding, any input size (and a build with [`WINOGRAD_BUILT`]).
pub fn winograd_supported(win: &Window, groups: usize) -> bool {
    WINOGRAD_BUILT && groups == 1 && win.kh == WINO_R && win.kw == WINO_R && win.sh == 1 && win.sw == 1 && win.dh == 1 && win.dw == 1
}

/// (Input, output) channels from which the x86 sets prefer Winograd to the direct
/// (indirect-GEMM) convolution. Measured (KERNELS.md, "Winograd"): with 8 or fewer input
/// channels the 36 GEMMs have almost no depth (`k = ic`) and the transforms cost more than the
/// multiplies they save (0.2–0.8×); 16 → 16 broke even (0.93–1.13×); 16 → 32, 32 → 32 and
/// 32 → 64 won (1.17–2.10×).
pub const WINO_MIN: (usize, usize) = (16, 32);


/// Tiles per block for a set with `mr`-row tiles: whole register tiles, about 64.
fn block_tiles(mr: usize) -> usize {
    (64 / mr).max(1) * mr
}

/// Transformed weights of one convolution, packed for one kernel set: per tile element ξ the
/// `[ic × oc]` matrix `V[ξ]`, as the set's B panels.
#[derive(Clone, Debug)]
pub struct WinogradW {
    w: Vec<PackedB>,
    ic: usize,
    oc: usize,
    nr: usize,
}

impl WinogradW {
    pub fn ic(&self) -> usize {
        self.ic
    }
    pub fn oc(&self) -> usize {
        self.oc
    }
}

/// One block of the input transform: tiles `t0 .. t0 + nt` (row-major over `tw` tiles per
/// row) of `src` (HWC, `h × w × c`, padding `pt`, `pl` before it), written to
/// `u[(t·NN + ξ)·c + ci]` (t counted from `t0`).
#[derive(Clone, Copy)]
pub(crate) struct InJob<'a> {
    pub src: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pt: usize,
    pub pl: usize,
    pub tw: usize,
    pub t0: usize,
    pub nt: usize,
}

/// One block of the output transform: tiles `t0 .. t0 + nt` from `m[(t·NN + ξ)·oc + co]` to
/// `dst` (HWC, `oh × ow × oc`), adding `bias` and clamping to `[lo, hi]` when `clamp`.
#[derive(Clone, Copy)]
pub(crate) struct OutJob<'a> {
    pub oh: usize,
    pub ow: usize,
    pub oc: usize,
    pub tw: usize,
    pub t0: usize,
    pub nt: usize,
    pub bias: &'a [f32],
    pub clamp: bool,
    pub lo: f32,
    pub hi: f32,
}

/// The input transform of one block (the set's build of [`input_body`]).
/// Safety: the set's constructor checked the CPU; lengths are checked inside (safe indexing).
pub(crate) type WinoInFn = unsafe fn(j: &InJob, u: &mut [f32]);
/// The output transform of one block (the set's build of [`output_body`]).
pub(crate) type WinoOutFn = unsafe fn(j: &OutJob, m: &[f32], dst: &mut [f32]);

/// `CH` floats from `src` (the first `cw` of them when `cw < CH`, zeros after).
#[inline(always)]
fn load(src: &[f32], cw: usize) -> [f32; CH] {
    let mut v = [0.0f32; CH];
    if cw == CH {
        if let Ok(a) = <&[f32; CH]>::try_from(&src[..CH]) {
            v = *a;
        }
    } else {
        for (d, s) in v.iter_mut().zip(&src[..cw]) {
            *d = *s;
        }
    }
    v
}

#[inline(always)]
fn store(dst: &mut [f32], v: &[f32; CH], cw: usize) {
    if cw == CH {
        if let Ok(a) = <&mut [f32; CH]>::try_from(&mut dst[..CH]) {
            *a = *v;
        }
    } else {
        dst[..cw].copy_from_slice(&v[..cw]);
    }
}

/// `Bᵀ d` for one column (or row) of 6 values: the rows of [`BT`], written out so that only
/// its 22 non-zero terms are computed (the compiler may not drop `0·x` itself: it is NaN for
/// infinite x) and shared sums are formed once.
#[inline(always)]
fn bt6(d: [f32; N]) -> [f32; N] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let (s12, s34) = (d1 + d2, d3 + d4);
    let (m21, m34) = (d2 - d1, d3 - d4);
    let (m31, m42) = (d3 - d1, d4 - d2);
    [
        4.0 * d0 - 5.0 * d2 + d4,
        4.0 * s12 - s34,
        4.0 * m21 + m34,
        2.0 * m31 + m42,
        m42 - 2.0 * m31,
        4.0 * d1 - 5.0 * d3 + d5,
    ]
}

/// `Aᵀ m` for one column (or row) of 6 values: the rows of [`AT`].
#[inline(always)]
fn at6(m: [f32; N]) -> [f32; WINO_M] {
    let [m0, m1, m2, m3, m4, m5] = m;
    [m0 + (m1 + m2) + (m3 + m4), (m1 - m2) + 2.0 * (m3 - m4) + m5]
}

/// The input transform, `u = Bᵀ d B` per tile and channel; see [`InJob`]. Tile `t` of the
/// block gets `NN · c` floats at `u[t·NN·c..]`, element ξ of channel ci at `ξ·c + ci`.
///
/// Per tile and `CH` channels: the 36 input vectors are copied into a local array (zeros where
/// the tile reaches past the input), transformed lane by lane in a fixed `CH`-trip loop over
/// local arrays (which the compiler vectorizes: nothing in it can alias), and copied out.
#[inline(always)]
pub(crate) fn input_body(j: &InJob, u: &mut [f32]) {
    let (h, w, c) = (j.h, j.w, j.c);
    // Declared once per block, not per tile: zeroing them costs a `memset` call each.
    let mut d = [[0.0f32; CH]; NN];
    let mut o = [[0.0f32; CH]; NN];
    for t in 0..j.nt {
        let tile = j.t0 + t;
        let (ty, tx) = (tile / j.tw, tile % j.tw);
        // Top-left input pixel of the tile, in padded coordinates.
        let (py, px) = (ty * WINO_M, tx * WINO_M);
        let ut = &mut u[t * NN * c..(t + 1) * NN * c];
        for c0 in (0..c).step_by(CH) {
            let cw = CH.min(c - c0);
            for i in 0..N {
                let y = (py + i).checked_sub(j.pt).filter(|&y| y < h);
                for k in 0..N {
                    let x = (px + k).checked_sub(j.pl).filter(|&x| x < w);
                    d[i * N + k] = match (y, x) {
                        (Some(y), Some(x)) => load(&j.src[(y * w + x) * c + c0..], cw),
                        _ => [0.0; CH],
                    };
                }
            }
            for l in 0..CH {
                // Columns (Bᵀ d), then rows (· B).
                let mut cols = [[0.0f32; N]; N];
                for k in 0..N {
                    let r = bt6(std::array::from_fn(|i| d[i * N + k][l]));
                    for i in 0..N {
                        cols[i][k] = r[i];
                    }
                }
                for i in 0..N {
                    let r = bt6(cols[i]);
                    for k in 0..N {
                        o[i * N + k][l] = r[k];
                    }
                }
            }
            for (x, v) in o.iter().enumerate() {
                store(&mut ut[x * c + c0..], v, cw);
            }
        }
    }
}

/// The output transform, `y = Aᵀ m A` per tile and channel, then bias and clamp; see
/// [`OutJob`]. Tile `t` of the block reads `NN · oc` floats at `m[t·NN·oc..]`.
#[inline(always)]
pub(crate) fn output_body(j: &OutJob, m: &[f32], dst: &mut [f32]) {
    let oc = j.oc;
    // Declared once per block (see `input_body`).
    let mut mm = [[0.0f32; CH]; NN];
    let mut y = [[0.0f32; CH]; WINO_M * WINO_M];
    for t in 0..j.nt {
        let tile = j.t0 + t;
        let (ty, tx) = (tile / j.tw, tile % j.tw);
        let mt = &m[t * NN * oc..(t + 1) * NN * oc];
        for c0 in (0..oc).step_by(CH) {
            let cw = CH.min(oc - c0);
            for (x, v) in mm.iter_mut().enumerate() {
                *v = load(&mt[x * oc + c0..], cw);
            }
            let bias = load(&j.bias[c0..], cw);
            for l in 0..CH {
                let mut half = [[0.0f32; N]; WINO_M];
                for k in 0..N {
                    let r = at6(std::array::from_fn(|i| mm[i * N + k][l]));
                    for a in 0..WINO_M {
                        half[a][k] = r[a];
                    }
                }
                for a in 0..WINO_M {
                    let r = at6(half[a]);
                    for b in 0..WINO_M {
                        let v = r[b] + bias[l];
                        y[a * WINO_M + b][l] = if j.clamp { v.max(j.lo).min(j.hi) } else { v };
                    }
                }
            }
            for a in 0..WINO_M {
                let oy = ty * WINO_M + a;
                for b in 0..WINO_M {
                    let ox = tx * WINO_M + b;
                    if oy < j.oh && ox < j.ow {
                        store(&mut dst[(oy * j.ow + ox) * oc + c0..], &y[a * WINO_M + b], cw);
                    }
                }
            }
        }
    }
}

/// The generic (and wasm `simd128`) build of the input transform.
/// # Safety
/// None beyond the signature's: safe indexing throughout.
pub(crate) unsafe fn generic_wino_in_f32(j: &InJob, u: &mut [f32]) {
    // Unreachable without WINOGRAD_BUILT (nothing is packed); the test lets the body go.
    if WINOGRAD_BUILT {
        input_body(j, u)
    }
}

/// The generic (and wasm `simd128`) build of the output transform.
/// # Safety
/// As [`generic_wino_in_f32`].
pub(crate) unsafe fn generic_wino_out_f32(j: &OutJob, m: &[f32], dst: &mut [f32]) {
    if WINOGRAD_BUILT {
        output_body(j, m, dst)
    }
}

/// Tiles per side: ceil(out / 2).
fn tiles(win: &Window) -> (usize, usize) {
    (win.oh.div_ceil(WINO_M), win.ow.div_ceil(WINO_M))
}

impl KernelSet {
    /// Does the executor run this convolution (`oc` output channels) through Winograd with
    /// this set? When [`winograd_supported`] and it has at least the set's (input, output)
    /// channels: [`WINO_MIN`] in the x86 sets, never in the generic and wasm ones (slower
    /// there), unless changed by [`KernelSet::winograd_from`].
    pub fn winograd_pays(&self, win: &Window, groups: usize, oc: usize) -> bool {
        winograd_supported(win, groups) && win.c >= self.wino_min.0 && oc >= self.wino_min.1
    }

    /// This set with Winograd taken from `min_ic` input and `min_oc` output channels on
    /// (`usize::MAX`: never; `(1, 1)`: every supported convolution), so that tests and benches
    /// can run the same model both ways in one process. Kernels, name and packing are unchanged.
    pub fn winograd_from(self, min_ic: usize, min_oc: usize) -> KernelSet {
        KernelSet { wino_min: (min_ic, min_oc), ..self }
    }

    /// Transforms and packs a convolution weight for [`KernelSet::winograd_conv`]: `weight` is
    /// the `[(ky, kx, ci) × oc]` matrix (row-major, the executor's conv layout). `None` when
    /// the window is not one Winograd takes ([`winograd_supported`] with one group). Panics
    /// (caller bug) when `weight` is not `25 · win.c · oc` long.
    #[inline(never)] // load path: its own wasm function, so V8 optimizes this packing loop alone (wasm/DESIGN.md, "Cold start")
    pub fn winograd_pack(&self, win: &Window, oc: usize, weight: &[f32]) -> Option<WinogradW> {
        if !winograd_supported(win, 1) || oc == 0 {
            return None;
        }
        let ic = win.c;
        assert_eq!(weight.len(), WINO_R * WINO_R * ic * oc, "winograd_pack: weight is not 5·5·ic·oc");
        let ks = self.winograd_gemm(oc);
        // V[ξ][ci][co] = (G g Gᵀ)[ξ] for the 5×5 kernel g of (ci, co), in f64, rounded once.
        let mut v = vec![0.0f32; NN * ic * oc];
        for ci in 0..ic {
            for co in 0..oc {
                let g = |ky: usize, kx: usize| weight[((ky * WINO_R + kx) * ic + ci) * oc + co] as f64;
                // G g: N × R
                let mut gg = [[0.0f64; WINO_R]; N];
                for (i, row) in gg.iter_mut().enumerate() {
                    for (kx, cell) in row.iter_mut().enumerate() {
                        *cell = (0..WINO_R).map(|ky| G[i][ky] * g(ky, kx)).sum();
                    }
                }
                for i in 0..N {
                    for k in 0..N {
                        let s: f64 = (0..WINO_R).map(|kx| gg[i][kx] * G[k][kx]).sum();
                        v[((i * N + k) * ic + ci) * oc + co] = s as f32;
                    }
                }
            }
        }
        let w = (0..NN).map(|x| ks.pack_b(ic, oc, MatRef::row_major(&v[x * ic * oc..(x + 1) * ic * oc], oc))).collect();
        Some(WinogradW { w, ic, oc, nr: ks.nr() })
    }

    /// Scratch floats [`KernelSet::winograd_conv`] needs for `w` (the transformed input and
    /// output of one block of tiles).
    pub fn winograd_scratch(&self, w: &WinogradW) -> usize {
        let tb = block_tiles(self.winograd_gemm(w.oc).mr());
        NN * tb * (w.ic + w.oc)
    }

    /// `dst = clamp(conv(src, w) + bias)` for one HWC sample (`win.h × win.w × ic` in,
    /// `win.oh × win.ow × oc` out), `clamp` as `(lo, hi)` (ReLU `(0, inf)`) or none. `apanel`
    /// is the GEMM driver's A-panel scratch (`MR × ic`), `scratch` at least
    /// [`KernelSet::winograd_scratch`]. Panics (caller bug) when `w` was packed by another set
    /// or for another window, or a slice is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn winograd_conv(
        &self,
        w: &WinogradW,
        win: &Window,
        src: &[f32],
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        dst: &mut [f32],
        apanel: &mut [f32],
        scratch: &mut [f32],
    ) {
        if !WINOGRAD_BUILT {
            // No `WinogradW` exists in such a build (`winograd_pack` returns None); this lets
            // the compiler drop the rest.
            return;
        }
        let ks = self.winograd_gemm(w.oc);
        let (ic, oc, mr) = (w.ic, w.oc, ks.mr());
        assert_eq!(w.nr, ks.nr(), "winograd_conv: weights packed for another kernel set");
        assert!(winograd_supported(win, 1) && win.c == ic, "winograd_conv: window does not match the weights");
        assert!(
            src.len() >= win.h * win.w * ic && dst.len() >= win.oh * win.ow * oc && bias.len() >= oc,
            "winograd_conv: slices too short for the window"
        );
        let tb = block_tiles(mr);
        assert!(scratch.len() >= NN * tb * (ic + oc) && apanel.len() >= mr * ic, "winograd_conv: scratch too short");
        let (th, tw) = tiles(win);
        let total = th * tw;
        let (u, rest) = scratch.split_at_mut(NN * tb * ic);
        let m = &mut rest[..NN * tb * oc];
        let (lo, hi) = clamp.unwrap_or((0.0, 0.0));
        for t0 in (0..total).step_by(tb) {
            let nt = tb.min(total - t0);
            let job = InJob { src, h: win.h, w: win.w, c: ic, pt: win.pad[0], pl: win.pad[1], tw, t0, nt };
            // SAFETY: holding `ks` proves its CPU features; the body indexes safely.
            unsafe { (ks.wino_in)(&job, u) };
            // U[ξ] is rows t of `u` at stride NN·ic from ξ·ic; M[ξ] likewise in `m`. The GEMMs
            // run over whole MR-row panels (`tb` is a multiple of MR): every panel is read in
            // place, none copied; rows past `nt` hold stale values whose products are never read.
            let rows = nt.div_ceil(mr) * mr;
            for x in 0..NN {
                let ux = MatRef { data: &u[x * ic..], rs: NN * ic, cs: 1 };
                ks.drive(
                    rows,
                    oc,
                    ic,
                    apanel,
                    |row0, panel| a_panel(rows, ic, mr, row0, &ux, panel),
                    w.w[x].data(),
                    None,
                    None,
                    &mut m[x * oc..],
                    NN * oc,
                    false,
                );
            }
            let job = OutJob { oh: win.oh, ow: win.ow, oc, tw, t0, nt, bias, clamp: clamp.is_some(), lo, hi };
            // SAFETY: as above.
            unsafe { (ks.wino_out)(&job, m, dst) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrices compute the 1-D correlation exactly (in f64): y_a = Σ_k g_k d_{a+k}.
    #[test]
    fn transforms_compute_the_correlation() {
        let d: [f64; N] = [0.3, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g: [f64; WINO_R] = [0.5, -0.25, 1.5, 0.125, -2.0];
        let gg: Vec<f64> = (0..N).map(|i| (0..WINO_R).map(|k| G[i][k] * g[k]).sum()).collect();
        let bd: Vec<f64> = (0..N).map(|i| (0..N).map(|k| BT[i][k] as f64 * d[k]).sum()).collect();
        for a in 0..WINO_M {
            let y: f64 = (0..N).map(|i| AT[a][i] as f64 * gg[i] * bd[i]).sum();
            let want: f64 = (0..WINO_R).map(|k| g[k] * d[a + k]).sum();
            assert!((y - want).abs() < 1e-12, "output {a}: {y} vs {want}");
        }
    }

    /// The written-out transforms are the matrices: applied to each unit vector they give
    /// the matrices' columns.
    #[test]
    fn written_out_transforms_are_the_matrices() {
        for k in 0..N {
            let e: [f32; N] = std::array::from_fn(|i| (i == k) as u8 as f32);
            let (b, a) = (bt6(e), at6(e));
            for i in 0..N {
                assert_eq!(b[i], BT[i][k], "Bᵀ[{i}][{k}]");
            }
            for i in 0..WINO_M {
                assert_eq!(a[i], AT[i][k], "Aᵀ[{i}][{k}]");
            }
        }
    }
}
