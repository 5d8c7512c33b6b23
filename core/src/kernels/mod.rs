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

use std::cell::RefCell;
use std::sync::OnceLock;

pub(crate) mod generic;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
/// Transposes are free: swap `rs` and `cs`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// Row-major `rows × cols` matrix with `ld` elements between rows.
    pub fn row_major(data: &'a [f32], ld: usize) -> Self {
        MatRef {
            data,
            rs: ld,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        MatRef {
            data,
            rs: 1,
            cs: ld,
        }
    }
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
    /// Panics (caller bug) unless every element of the `rows × cols` view is inside `data`.
    fn check(&self, what: &str, rows: usize, cols: usize) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1).checked_mul(self.rs).and_then(|r| {
            (cols - 1)
                .checked_mul(self.cs)
                .and_then(|c| r.checked_add(c))
        });
        match last {
            Some(l) if l < self.data.len() => {}
            _ => panic!(
                "gemm: {what} view {rows}x{cols} (rs {}, cs {}) needs more than the {} values given",
                self.rs,
                self.cs,
                self.data.len()
            ),
        }
    }
}

/// `C[m×n] = A[m×k] · B[k×n]` (or `+=` when `accumulate`), `C` row-major with leading dim `ldc`.
/// Panics only on caller bugs (slices too short for the given dims), never on data values.
///
/// Uses [`KernelSet::best`]; packs both operands into thread-local scratch (it allocates only
/// when a call needs more scratch than any earlier call on the same thread).
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    KernelSet::best().gemm(m, n, k, a, b, c, ldc, accumulate)
}

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
    unsafe fn(src: &[f32], w: &[f32], bias: &[f32], dst: &mut [f32], g: &crate::lower::Window, lo: f32, hi: f32);

/// Geometry of a max pooling over one sample stored HWC (channels innermost, so every window
/// element is a contiguous `c`-vector: SIMD runs across channels, whatever the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// Output size follows the model's rule (no padding, floor): `(h - kh) / sh + 1`.
    /// `None` when the window does not fit or a size is zero.
    pub fn new(
        c: usize,
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Option<PoolGeom> {
        let [kh, kw] = kernel;
        let [sh, sw] = stride;
        if c == 0 || kh == 0 || kw == 0 || sh == 0 || sw == 0 || h < kh || w < kw {
            return None;
        }
        Some(PoolGeom {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            oh: (h - kh) / sh + 1,
            ow: (w - kw) / sw + 1,
        })
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }
}

/// The dispatch table: one micro-kernel family for one instruction set, chosen once.
///
/// Holding a `KernelSet` is the proof that the CPU supports its instructions: the only ways
/// to get one are [`KernelSet::generic`], [`KernelSet::best`] and the per-ISA constructors,
/// which check the CPU first. That is why the raw function pointers stay private.
#[derive(Clone, Copy)]
pub struct KernelSet {
    name: &'static str,
    mmm_name: &'static str,
    mr: usize,
    nr: usize,
    mmm: MmmFn,
    conv: ConvFn,
    gemv: GemvFn,
    maxpool: PoolFn,
    dwconv: DwConvFn,
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelSet({}, {})", self.name, self.mmm_name)
    }
}

/// K is cut into blocks of this many steps so that one A panel (`MR × KC`) and one B panel
/// (`KC × NR`) stay in L1 (6·256·4 = 6 KiB and 16·256·4 = 16 KiB for AVX2) while the tile's
/// accumulators stay in registers. See KERNELS.md.
const KC: usize = 256;

/// Bytes to which packed buffers are aligned: a cache line, so NR-wide loads never split one.
const ALIGN_FLOATS: usize = 16;

/// An `f32` buffer whose start is 64-byte aligned (allocated once, never grown by the kernels).
#[derive(Clone, Debug, Default)]
pub(crate) struct AlignedBuf {
    raw: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeros(len: usize) -> AlignedBuf {
        let raw = vec![0.0f32; len + ALIGN_FLOATS];
        let addr = raw.as_ptr() as usize;
        let off = ((64 - addr % 64) % 64) / 4;
        AlignedBuf { raw, off, len }
    }
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.raw[self.off..self.off + self.len]
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// A `k × n` matrix packed for a [`KernelSet`]: `ceil(n / NR)` panels, each `k × NR`,
/// k-major (the NR values of one k step are contiguous), the last panel zero-padded.
/// The same layout feeds both the GEMM micro-kernel and the batch-1 GEMV kernel.
#[derive(Clone, Debug)]
pub struct PackedB {
    buf: AlignedBuf,
    k: usize,
    n: usize,
    nr: usize,
}

impl PackedB {
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
    /// Columns rounded up to whole panels.
    pub fn n_padded(&self) -> usize {
        self.n.div_ceil(self.nr) * self.nr
    }
    pub(crate) fn data(&self) -> &[f32] {
        self.buf.as_slice()
    }
}

/// Pack `B[k × n]` (any strides) into `dst`, NR-column panels, k-major, zero-padded.
fn pack_b_into(k: usize, n: usize, nr: usize, b: &MatRef, dst: &mut [f32]) {
    let panels = n.div_ceil(nr);
    for p in 0..panels {
        let col0 = p * nr;
        let cols = nr.min(n - col0);
        let panel = &mut dst[p * k * nr..(p + 1) * k * nr];
        for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < cols { b.at(kk, col0 + j) } else { 0.0 };
            }
        }
    }
}

/// Where the micro-kernel reads one MR-row panel of A from.
pub(crate) enum APanel<'a> {
    /// MR full rows straight from the caller's matrix: row r at `data[r * rs..]`, `k` values
    /// each (no copy: the common case for row-major activations).
    Direct { data: &'a [f32], rs: usize },
    /// The panel was written into the driver's scratch, MR rows of `k` values, row-major.
    Packed,
    /// Indirect (convolution without im2col): element `(r, p)` at `rows[r] + offs[p]`. The
    /// producer guarantees every `rows[r]` (r < MR) is valid at every offset in `offs[..k]`.
    Indirect {
        rows: [*const f32; MAX_MR],
        offs: &'a [u32],
    },
}

/// Largest MR of any kernel set (the indirect panel's pointer array).
pub(crate) const MAX_MR: usize = 24;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    x86_64::avx512_mmm_f32::MR <= MAX_MR
        && x86_64::avx512_mmm_f32::MR_NARROW <= MAX_MR
        && x86_64::avx2_mmm_f32::MR <= MAX_MR
);

/// The A panel for rows `row0..row0+MR` of `A[m × k]` (any strides): direct when the rows are
/// contiguous and all MR exist, else copied into `dst` (`MR × k`, zero rows past `m`).
pub(crate) fn a_panel<'a>(
    m: usize,
    k: usize,
    mr: usize,
    row0: usize,
    a: &MatRef<'a>,
    dst: &mut [f32],
) -> APanel<'a> {
    let rows = mr.min(m - row0);
    if a.cs == 1 && rows == mr {
        return APanel::Direct {
            data: &a.data[row0 * a.rs..],
            rs: a.rs,
        };
    }
    for r in 0..mr {
        let row = &mut dst[r * k..(r + 1) * k];
        if r >= rows {
            row.fill(0.0);
        } else if a.cs == 1 {
            let base = (row0 + r) * a.rs;
            row.copy_from_slice(&a.data[base..base + k]);
        } else {
            for (p, v) in row.iter_mut().enumerate() {
                *v = a.at(row0 + r, p);
            }
        }
    }
    APanel::Packed
}

thread_local! {
    /// Scratch for the public `gemm` (training path): packed B then one packed A panel.
    static GEMM_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Indices of the non-zero inputs for the sparse-input GEMV.
    static NONZERO_ROWS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

impl KernelSet {
    /// The portable reference kernels (`generic_mmm_f32_4x8`): always available.
    pub fn generic() -> KernelSet {
        KernelSet {
            name: "generic",
            mmm_name: "generic_mmm_f32_4x8",
            mr: generic::generic_mmm_f32::MR,
            nr: generic::generic_mmm_f32::NR,
            mmm: generic::generic_mmm_f32::generic_mmm_f32_4x8,
            conv: generic::generic_mmm_f32::generic_conv_f32_4x8,
            gemv: generic::generic_gemv_f32::generic_gemv_f32_8,
            maxpool: generic::generic_maxpool_f32::generic_maxpool_f32,
            dwconv: generic::generic_dwconv_f32::generic_dwconv_f32,
        }
    }

    /// AVX2 + FMA kernels (`avx2_mmm_f32_6x16`), or `None` when this CPU lacks them.
    #[cfg(target_arch = "x86_64")]
    pub fn avx2_fma() -> Option<KernelSet> {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Some(KernelSet {
                name: "x86_64-avx2-fma",
                mmm_name: "avx2_mmm_f32_6x16",
                mr: x86_64::avx2_mmm_f32::MR,
                nr: x86_64::avx2_mmm_f32::NR,
                mmm: x86_64::avx2_mmm_f32::avx2_mmm_f32_6x16,
                conv: x86_64::avx2_mmm_f32::avx2_conv_f32_6x16,
                gemv: x86_64::avx2_gemv_f32::avx2_gemv_f32_16,
                maxpool: x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
                dwconv: x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
            })
        } else {
            None
        }
    }

    /// AVX-512F kernels (`avx512_mmm_f32_12x32`), or `None` when this CPU lacks AVX-512F (or
    /// AVX2 + FMA, which the shared max pool uses: its 8-channel vectors already keep up with
    /// the loads, so a 16-channel version would not pay for itself).
    #[cfg(target_arch = "x86_64")]
    pub fn avx512() -> Option<KernelSet> {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            Some(KernelSet {
                name: "x86_64-avx512",
                mmm_name: "avx512_mmm_f32_12x32",
                mr: x86_64::avx512_mmm_f32::MR,
                nr: x86_64::avx512_mmm_f32::NR,
                mmm: x86_64::avx512_mmm_f32::avx512_mmm_f32_12x32,
                conv: x86_64::avx512_mmm_f32::avx512_conv_f32_12x32,
                gemv: x86_64::avx512_gemv_f32::avx512_gemv_f32_32,
                maxpool: x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
                dwconv: x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
            })
        } else {
            None
        }
    }

    /// The AVX-512F set's narrow sibling (`avx512_mmm_f32_24x16`, 16-column panels) for ops
    /// with at most 16 output columns, where 32-wide tiles would do half their FMAs on padding.
    /// Batch-1 GEMV on 16-wide panels is `avx2_gemv_f32_16` (it only depends on NR).
    /// `None` when this CPU lacks AVX-512F, AVX2 or FMA.
    #[cfg(target_arch = "x86_64")]
    pub fn avx512_narrow() -> Option<KernelSet> {
        KernelSet::avx512().map(|_| KernelSet {
            name: "x86_64-avx512-narrow",
            mmm_name: "avx512_mmm_f32_24x16",
            mr: x86_64::avx512_mmm_f32::MR_NARROW,
            nr: x86_64::avx512_mmm_f32::NR_NARROW,
            mmm: x86_64::avx512_mmm_f32::avx512_mmm_f32_24x16,
            conv: x86_64::avx512_mmm_f32::avx512_conv_f32_24x16,
            gemv: x86_64::avx2_gemv_f32::avx2_gemv_f32_16,
            maxpool: x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
            dwconv: x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
        })
    }

    /// The set to pack and run one op with `n` output columns. Usually `self`; the AVX-512F set
    /// hands ops with `n <= 32` to its 24×16 sibling (see `avx512_mmm_f32.rs`). Use the same
    /// answer for packing and running: the packed panel width is the set's NR.
    ///
    /// Why 32 and not 16: at `n <= 16` the 12×32 tile wastes half its FMAs on padding. At
    /// `n = 32` both tiles do the same FMAs, yet 24×16 was measured ~13 % faster on the whole
    /// CNN (its 32-channel conv: 24 rows per pass re-stream the B panel half as often as 12).
    /// From 64 columns up (the MLP's 128) 12×32 wins: it needs half the A broadcasts per FMA,
    /// 14 loads per 24 FMAs against 25 (see KERNELS.md for the numbers).
    pub fn for_width(&self, n: usize) -> KernelSet {
        #[cfg(target_arch = "x86_64")]
        if self.name == "x86_64-avx512" && n <= 2 * x86_64::avx512_mmm_f32::NR_NARROW {
            if let Some(narrow) = KernelSet::avx512_narrow() {
                return narrow;
            }
        }
        let _ = n;
        *self
    }

    /// wasm `simd128` kernels (`wasm_mmm_f32_4x8`); only in builds with `+simd128`, where every
    /// engine that loaded the module supports them.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn wasm_simd128() -> KernelSet {
        KernelSet {
            name: "wasm-simd128",
            mmm_name: "wasm_mmm_f32_4x8",
            mr: wasm::wasm_mmm_f32::MR,
            nr: wasm::wasm_mmm_f32::NR,
            mmm: wasm::wasm_mmm_f32::wasm_mmm_f32_4x8,
            conv: wasm::wasm_mmm_f32::wasm_conv_f32_4x8,
            gemv: wasm::wasm_gemv_f32::wasm_gemv_f32_8,
            maxpool: wasm::wasm_maxpool_f32::wasm_maxpool_f32,
            dwconv: generic::generic_dwconv_f32::generic_dwconv_f32,
        }
    }

    /// Every kernel set this CPU/build can run, best first; the last is always `generic`.
    pub fn available() -> Vec<KernelSet> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx512() {
            v.push(k);
        }
        // Listed on its own too, so the parity tests run its kernels on every shape.
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx512_narrow() {
            v.push(k);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx2_fma() {
            v.push(k);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        v.push(KernelSet::wasm_simd128());
        v.push(KernelSet::generic());
        v
    }

    /// The fastest set for this CPU/build, detected once per process.
    pub fn best() -> KernelSet {
        static BEST: OnceLock<KernelSet> = OnceLock::new();
        *BEST.get_or_init(|| KernelSet::available()[0])
    }

    /// `"x86_64-avx512"`, `"x86_64-avx2-fma"`, `"wasm-simd128"` or `"generic"`.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The GEMM micro-kernel's tract-style name, e.g. `"avx2_mmm_f32_6x16"`.
    pub fn mmm_name(&self) -> &'static str {
        self.mmm_name
    }
    /// Rows of the register tile (M direction).
    pub fn mr(&self) -> usize {
        self.mr
    }
    /// Columns of the register tile (N direction) = width of a packed B panel.
    pub fn nr(&self) -> usize {
        self.nr
    }

    /// Pack `B[k × n]` (any strides) once, for repeated [`KernelSet::gemv`] / plan use.
    pub fn pack_b(&self, k: usize, n: usize, b: MatRef) -> PackedB {
        b.check("B", k, n);
        let mut buf = AlignedBuf::zeros(k * n.div_ceil(self.nr) * self.nr);
        pack_b_into(k, n, self.nr, &b, buf.as_mut_slice());
        PackedB {
            buf,
            k,
            n,
            nr: self.nr,
        }
    }

    /// `y[n] = x[k] · B (+ bias) (ReLU)`: one row against pre-packed weights, streaming each
    /// panel once. Panics (caller bug) if `b` was packed by another set or lengths disagree.
    pub fn gemv(&self, x: &[f32], b: &PackedB, bias: Option<&[f32]>, relu: bool, y: &mut [f32]) {
        assert_eq!(b.nr, self.nr, "gemv: B was packed for another kernel set");
        assert!(
            x.len() >= b.k && y.len() >= b.n,
            "gemv: x or y shorter than B's k or n"
        );
        if let Some(bias) = bias {
            assert!(bias.len() >= b.n, "gemv: bias shorter than n");
        }
        self.gemv_unchecked(x, b.data(), b.k, b.n, bias, relu, y);
    }

    /// Like [`KernelSet::gemv`] but on a raw packed slice; lengths checked by the caller.
    pub(crate) fn gemv_unchecked(
        &self,
        x: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
    ) {
        let nr = self.nr;
        let panels = n.div_ceil(nr);
        assert!(x.len() >= k && y.len() >= n && b.len() >= panels * k * nr);
        let x = &x[..k];
        // Inputs that are mostly exact zeros (a digit is ~80 % background, a ReLU output about
        // half) only need the weight rows of their non-zero entries. Skipping 0·w terms changes
        // nothing but the summation order: weights are finite (Model::validate).
        let nnz = x.iter().filter(|&&v| v != 0.0).count();
        if nnz * 3 <= k * 2 {
            NONZERO_ROWS.with(|cell| {
                let mut rows = cell.borrow_mut();
                rows.clear();
                // Reserve the whole k once, so no later input can make it grow (no allocation
                // in steady state, see tests/plan_alloc.rs).
                rows.reserve(k);
                rows.extend((0..k as u32).filter(|&i| x[i as usize] != 0.0));
                self.gemv_panels(nnz, rows.as_ptr(), x, b, k, n, bias, relu, y);
            });
        } else {
            self.gemv_panels(k, std::ptr::null(), x, b, k, n, bias, relu, y);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gemv_panels(
        &self,
        count: usize,
        rows: *const u32,
        x: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
    ) {
        let nr = self.nr;
        for p in 0..n.div_ceil(nr) {
            let cols = nr.min(n - p * nr);
            let bias_ptr = match bias {
                Some(bv) => bv[p * nr..p * nr + cols].as_ptr(),
                None => std::ptr::null(),
            };
            // SAFETY: the caller asserted x, y and b lengths for k rows and n columns; `rows`
            // is null or holds `count` indices < k; the set's constructor checked the CPU.
            unsafe {
                (self.gemv)(
                    count,
                    rows,
                    x.as_ptr(),
                    b.as_ptr().add(p * k * nr),
                    bias_ptr,
                    y.as_mut_ptr().add(p * nr),
                    cols,
                    relu,
                )
            };
        }
    }

    /// Max pooling of one HWC sample. Panics (caller bug) if the slices do not fit `g`.
    pub fn maxpool_hwc(&self, src: &[f32], g: &PoolGeom, dst: &mut [f32]) {
        assert!(
            src.len() >= g.in_len() && dst.len() >= g.out_len(),
            "maxpool: slices too short"
        );
        assert!(
            g.kh >= 1
                && g.kw >= 1
                && (g.oh - 1) * g.sh + g.kh <= g.h
                && (g.ow - 1) * g.sw + g.kw <= g.w
        );
        // SAFETY: geometry and lengths checked above; the set's constructor checked the CPU.
        unsafe { (self.maxpool)(src, dst, g) }
    }

    /// Depthwise convolution (`groups == C == out_c`) of one HWC sample: `w` is `[kh·kw × C]`
    /// (tap-major, channels innermost), the output clamped to `[lo, hi]` (ReLU, ReLU6 or none).
    /// Panics (caller bug) if the slices do not fit `g`.
    #[allow(clippy::too_many_arguments)]
    pub fn dwconv_hwc(&self, src: &[f32], w: &[f32], bias: &[f32], dst: &mut [f32], g: &crate::lower::Window, lo: f32, hi: f32) {
        let c = g.c;
        assert!(
            src.len() >= g.h * g.w * c
                && w.len() >= g.kh * g.kw * c
                && bias.len() >= c
                && dst.len() >= g.oh * g.ow * c,
            "dwconv: slices too short for the window"
        );
        // Every tap the kernels read passes `tap()`, i.e. lies inside the h × w input; the
        // output pixels are the oh × ow checked above.
        // SAFETY: lengths checked above; the set's constructor checked the CPU.
        unsafe { (self.dwconv)(src, w, bias, dst, g, lo, hi) }
    }

    /// `C[m×n] (+)= A[m×k] · B[k×n]` with any strides, through this set's micro-kernel.
    /// See [`gemm`].
    pub fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: MatRef,
        b: MatRef,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n, "gemm: ldc {ldc} < n {n}");
        let c_needed = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
        assert!(
            matches!(c_needed, Some(need) if need <= c.len()),
            "gemm: C needs {c_needed:?} values for {m}x{n} with ldc {ldc}, got {}",
            c.len()
        );
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    c[i * ldc..i * ldc + n].fill(0.0);
                }
            }
            return;
        }
        a.check("A", m, k);
        b.check("B", k, n);
        let (mr, nr) = (self.mr, self.nr);
        let b_len = k * n.div_ceil(nr) * nr;
        let need = b_len + mr * k + 2 * ALIGN_FLOATS;
        let mut run = |scratch: &mut Vec<f32>| {
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            let off = ((64 - scratch.as_ptr() as usize % 64) % 64) / 4;
            let (bp, rest) = scratch[off..].split_at_mut(b_len);
            pack_b_into(k, n, nr, &b, bp);
            let ap_off = ((64 - rest.as_ptr() as usize % 64) % 64) / 4;
            let ap = &mut rest[ap_off..ap_off + mr * k];
            self.drive(
                m,
                n,
                k,
                ap,
                |row0, dst| a_panel(m, k, mr, row0, &a, dst),
                bp,
                None,
                None,
                c,
                ldc,
                accumulate,
            );
        };
        GEMM_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => run(&mut s),
            // Only reachable if a kernel re-entered gemm on this thread; stay correct anyway.
            Err(_) => run(&mut Vec::new()),
        });
    }

    /// The blocked driver shared by `gemm`, Dense and Conv2d: for each MR-row panel of A (given
    /// by `panel(row0, scratch)`, either rows of the source or rows written into `apanel`,
    /// `MR × k`), for each KC block, for each NR panel of the pre-packed `bp`, run the
    /// micro-kernel. Bias and the clamp `[lo, hi]` (ReLU, ReLU6) are applied by the
    /// micro-kernel's epilogue on the last KC block only. Allocates nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn drive<'a>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        apanel: &mut [f32],
        mut panel: impl FnMut(usize, &mut [f32]) -> APanel<'a>,
        bp: &[f32],
        bias: Option<&[f32]>,
        clamp: Option<(f32, f32)>,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        let (mr, nr) = (self.mr, self.nr);
        if m == 0 || n == 0 {
            return;
        }
        let panels_n = n.div_ceil(nr);
        // Every pointer below stays inside these bounds (checked once, not per tile).
        assert!(
            ldc >= n && c.len() >= (m - 1) * ldc + n,
            "drive: C too short"
        );
        assert!(
            apanel.len() >= mr * k && bp.len() >= panels_n * nr * k,
            "drive: packed buffers too short"
        );
        if let Some(bv) = bias {
            assert!(bv.len() >= n, "drive: bias too short");
        }
        if k == 0 {
            // No product: C = (accumulate ? C : 0) + bias, then the clamp.
            for i in 0..m {
                for j in 0..n {
                    let mut v = if accumulate { c[i * ldc + j] } else { 0.0 };
                    if let Some(bv) = bias {
                        v += bv[j];
                    }
                    c[i * ldc + j] = match clamp {
                        Some((lo, hi)) => v.max(lo).min(hi),
                        None => v,
                    };
                }
            }
            return;
        }
        // Equal KC blocks (784 → 4 × 196, not 3 × 256 + 16): no tiny tail block whose C
        // load/store would cost as much as its arithmetic.
        let kblocks = k.div_ceil(KC);
        let kc_len = k.div_ceil(kblocks);
        let cptr = c.as_mut_ptr();
        for row0 in (0..m).step_by(mr) {
            let rows = mr.min(m - row0);
            let a = match panel(row0, &mut apanel[..mr * k]) {
                APanel::Direct { data, rs } => {
                    assert!(
                        rows == mr && rs >= k && data.len() >= (mr - 1) * rs + k,
                        "drive: direct A panel too short"
                    );
                    (data.as_ptr(), rs, None)
                }
                APanel::Packed => (apanel.as_ptr(), k, None),
                APanel::Indirect { rows, offs } => {
                    assert!(offs.len() >= k, "drive: offset table shorter than k");
                    (std::ptr::null(), 0, Some((rows, offs)))
                }
            };
            let mut k0 = 0;
            while k0 < k {
                let kc = kc_len.min(k - k0);
                let last = k0 + kc == k;
                for p in 0..panels_n {
                    let col0 = p * nr;
                    let cols = nr.min(n - col0);
                    let tile = Tile {
                        // SAFETY: row0 < m, col0 < n, and C covers (m-1)*ldc + n.
                        c: unsafe { cptr.add(row0 * ldc + col0) },
                        ldc,
                        rows,
                        cols,
                        accumulate: accumulate || k0 > 0,
                        bias: match (bias, last) {
                            (Some(bv), true) => bv[col0..].as_ptr(),
                            _ => std::ptr::null(),
                        },
                        clamp: clamp.is_some() && last,
                        lo: clamp.map_or(0.0, |c| c.0),
                        hi: clamp.map_or(0.0, |c| c.1),
                    };
                    // SAFETY: the A rows hold k values at stride rsa (asserted above), B panel p
                    // holds k*NR values from p*k*NR; the tile lies inside C (asserted above);
                    // full tiles read NR bias values only when cols == NR, covered by bias >= n.
                    let bpanel = unsafe { bp.as_ptr().add(p * k * nr + k0 * nr) };
                    match a {
                        (aptr, rsa, None) => unsafe {
                            (self.mmm)(kc, aptr.add(k0), rsa, bpanel, &tile)
                        },
                        // SAFETY (indirect): the producer vouched for rows × offs (see APanel).
                        (_, _, Some((rows, offs))) => unsafe {
                            (self.conv)(kc, rows.as_ptr(), offs.as_ptr().add(k0), bpanel, &tile)
                        },
                    }
                }
                k0 += kc;
            }
        }
    }
}

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
