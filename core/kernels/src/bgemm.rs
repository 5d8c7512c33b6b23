//! The binary GEMM: `C[m × n] (i32) = A[m × k] (±1) · B[k × n] (±1)`, exact, by XOR + popcount.
//!
//! ```text
//!   a value ±1 is one bit: 1 = +1, 0 = −1 (the .mdm's SPACKED 1-bit convention)
//!   A (activations): each row packed 64 bits per u64 along k, bit p % 64 of word p / 64
//!   B (weights): 8-column panels, per k-word w the 8 columns' words side by side:
//!     panel word (w, j) = bits k = 64w .. 64w + 63 of column 8·panel + j   (8 u64 = one zmm)
//!   micro-kernel <isa>_bmmm_b1_<MR>x8: MR rows × 8 columns, Σ_w popcount(a[r][w] XOR b[w][j])
//!   C[r][j] = k − 2 · mismatches
//! ```
//!
//! Why `k − 2 · popcount(a XOR b)`: a product of two ±1 values is +1 where the bits agree and
//! −1 where they differ, so the dot product is `agree − differ = k − 2 · differ`. **Padding**:
//! bits past k in the last word are 0 in both A and B (the packers write them so; `bpack_rows`
//! and `bpack_b` never leave a stale bit), so their XOR is 0: they add no mismatch, and `k` (the
//! true length, not 64 · words) is what the differences are subtracted from. XNOR-popcount
//! would count the padding as agreements instead, which is why it is not used here.
//! Columns past n in the last panel are all-zero words; their sums are never stored.
//!
//! Every kernel computes these same integers (popcounts and an i64/i32 sum of at most
//! `MAX_BK` bits), so outputs are bit-identical across kernel sets and batch sizes.

use crate::set::KernelSet;

/// Columns of every binary micro-kernel's tile = width of a packed B panel.
pub const BNR: usize = 8;
/// Largest MR of any binary micro-kernel.
pub const BMAX_MR: usize = 8;
/// Largest k: 2^16 keeps every kernel's accumulators exact (the wasm kernel's byte lanes are
/// widened every 31 words into u32 sums; the others count in u32/u64 lanes) and the dot
/// product inside i32.
pub const MAX_BK: usize = 1 << 16;

/// `C_tile = k − 2 · popcount(A XOR B)`: A row r, word w is `*a.add(r·lda + w)`; `b` one packed
/// panel (`words × 8` u64); the tile's `rows × cols` go to `c` at stride `ldc`.
/// Safety: pointers valid for those extents; `rows <= MR`, `cols <= 8`, `words ≤ MAX_BK / 64`.
pub(crate) type BmmmFn = unsafe fn(
    words: usize,
    a: *const u64,
    lda: usize,
    b: *const u64,
    k: i32,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
);

/// [`BmmmFn`] whose tile becomes bits (`KernelSet::bgemm_sign`): row r's byte at
/// `out + r·ldo` gets bit j = `lo[j] <= dot[r][j] <= hi[j]` for the panel's 8 columns (`lo`,
/// `hi`: 8 values each, padded with "never" past n). Safety: as `BmmmFn`, `rows <= MR`.
pub(crate) type BmmmSignFn =
    unsafe fn(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, lo: *const i32, hi: *const i32, out: *mut u8, ldo: usize, rows: usize);

/// The last epilogue of a binary layer whose output is read as u8 codes (the executor's
/// fused BDense → Affine → Quantize, exec/bfuse.rs "codes"), one pass over a row of `n =
/// out.len()` columns: `y = act(alpha[c] · dot[c] + bias[c])`, then with `post = (scale,
/// shift, act')` `y = act'(y · scale[c] + shift[c])`, then `out[c] = q.quantize(y)`; each act is
/// ReLU (`true`) or none. Returns false, writing nothing, where the kernel cannot give the
/// quantizer's codes (a scale outside the FMA quantizer's range): the caller takes the
/// unfused path. Safety: the set's CPU features; the slices hold at least `n` values.
pub(crate) type BEpiQFn = unsafe fn(dot: &[i32], alpha: &[f32], bias: &[f32], relu: bool, post: Option<(&[f32], &[f32], bool)>, q: crate::quant::QParams, out: &mut [u8]) -> bool;

/// Sign-packs one row: `x` (k values) into `out` (`ceil(k / 64)` words), bit `p % 64` of word
/// `p / 64` = `v >= 0` (+0 and −0 included; NaN → 0), where `v = x[p]`, or with `pre = (scale,
/// shift)` (each k long) `v = x[p] · scale[p] + shift[p]` rounded as an `Affine` step rounds
/// it (product, then sum; never an FMA). Bits past k are 0. Returns whether every `x[p]` is
/// finite (the packer of a plan's first step is its input check: `Plan::run`).
/// Safety: the set's CPU features (the slices carry their own lengths, checked by the caller).
pub(crate) type BPackFn = unsafe fn(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool;

/// u64 words per packed row of `k` bits.
pub fn b_words(k: usize) -> usize {
    k.div_ceil(64)
}

/// Binary weights `[k × n]` packed into 8-column panels (see the module docs).
#[derive(Clone, Debug)]
pub struct PackedBB {
    k: usize,
    n: usize,
    words: usize,
    /// `ceil(n / 8)` panels of `words × 8` u64.
    data: Vec<u64>,
}

impl PackedBB {
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
    /// u64 words per packed row of A (`ceil(k / 64)`).
    pub fn words(&self) -> usize {
        self.words
    }
    /// Bytes of packed weights (for size reports).
    pub fn bytes(&self) -> usize {
        self.data.len() * 8
    }
}

/// Packs `m` rows of `k` f32 values (row stride `ldx`) into sign bits: `x >= 0` (+0 and −0
/// included) → 1 (+1), else (negative or NaN) → 0 (−1); `words` u64 per row at stride
/// `words`, bits past k zero. Panics when a slice is short. The scalar reference
/// (`generic_bpack_f32`); plans pack with their set's [`KernelSet::bpack_rows`].
pub fn bpack_rows(m: usize, k: usize, x: &[f32], ldx: usize, out: &mut [u64]) {
    KernelSet::generic().bpack_rows(m, k, x, ldx, None, out);
}

impl KernelSet {
    /// Name of the binary micro-kernel, e.g. `"avx512vpopcnt_bmmm_b1_8x8"`.
    pub fn bmmm_name(&self) -> &'static str {
        self.bmmm_name
    }

    /// [`BEpiQFn`] through the set's fused kernel, where it has one (AVX-512, wasm) and the
    /// activations are none or ReLU: `true` when `out` was written, `false` (nothing written)
    /// when the caller must run the separate loops and the set's quantizer. The same codes
    /// either way (`kernels_bparity`, `binary_epilogue_codes_match_the_scalar_chain`). Panics when a
    /// slice is shorter than `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn bepilogue_q(&self, dot: &[i32], alpha: &[f32], bias: &[f32], act: crate::Act, post: Option<(&[f32], &[f32], crate::Act)>, q: crate::quant::QParams, out: &mut [u8]) -> bool {
        let relu = |a: crate::Act| match a {
            crate::Act::None => Some(false),
            crate::Act::Relu => Some(true),
            _ => None,
        };
        let (Some(f), Some(r)) = (self.bepiq, relu(act)) else {
            return false;
        };
        let post = match post {
            None => None,
            Some((s, t, a)) => match relu(a) {
                Some(pr) => Some((s, t, pr)),
                None => return false,
            },
        };
        let n = out.len();
        assert!(dot.len() >= n && alpha.len() >= n && bias.len() >= n, "bepilogue_q: short row");
        if let Some((s, t, _)) = post {
            assert!(s.len() >= n && t.len() >= n, "bepilogue_q: short post");
        }
        // SAFETY: holding the set proves the CPU has its features; lengths checked above.
        unsafe { f(&dot[..n], &alpha[..n], &bias[..n], r, post.map(|(s, t, pr)| (&s[..n], &t[..n], pr)), q, out) }
    }

    /// Name of the sign-packer, e.g. `"avx512_bpack_f32"`.
    pub fn bpack_name(&self) -> &'static str {
        self.bpack_name
    }

    /// Packs `m` rows of `k` f32 values (row stride `ldx`) into sign bits, as [`bpack_rows`],
    /// optionally through a per-position affine first: with `pre = Some((scale, shift))` (each
    /// `k` long) bit p is `x[p] · scale[p] + shift[p] >= 0`, rounded as an `Affine` step followed
    /// by a `Sign` step compute it (a BatchNorm and a Sign fused into the packing). The same
    /// bits on every set. Returns whether every value read (`x`'s m rows of k) is finite.
    /// Panics when a slice is short.
    pub fn bpack_rows(&self, m: usize, k: usize, x: &[f32], ldx: usize, pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
        let words = b_words(k);
        if m == 0 {
            return true;
        }
        assert!(ldx >= k && x.len() >= (m - 1) * ldx + k, "bpack_rows: input too short");
        assert!(out.len() >= m * words, "bpack_rows: output too short");
        let pre = pre.map(|(s, t)| {
            assert!(s.len() >= k && t.len() >= k, "bpack_rows: affine too short");
            (&s[..k], &t[..k])
        });
        let mut finite = true;
        for r in 0..m {
            // SAFETY: holding the set proves the CPU has its features; the slices are exact.
            finite &= unsafe { (self.bpack)(&x[r * ldx..r * ldx + k], pre, &mut out[r * words..(r + 1) * words]) };
        }
        finite
    }

    /// Packs ±1 weights `[k × n]` row-major (`plus[p·n + c]` true = +1). The layout is the
    /// same for every set. Panics on a length mismatch or `k > MAX_BK`: the lowering checks
    /// these and names the node first.
    #[inline(never)] // load path: its own wasm function, so V8 optimizes this packing loop alone (wasm/DESIGN.md, "Cold start")
    pub fn bpack_b(&self, k: usize, n: usize, plus: &[bool]) -> PackedBB {
        assert_eq!(plus.len(), k * n, "bpack_b: weight length");
        assert!(k <= MAX_BK, "bpack_b: k = {k} exceeds MAX_BK");
        let words = b_words(k);
        let panels = n.div_ceil(BNR);
        let mut data = vec![0u64; panels * words * BNR];
        for p in 0..k {
            for c in 0..n {
                if plus[p * n + c] {
                    data[((c / BNR) * words + p / 64) * BNR + c % BNR] |= 1u64 << (p % 64);
                }
            }
        }
        PackedBB { k, n, words, data }
    }

    /// `c[i·ldc + j] = Σ_p ±1 · ±1` for `i < m`, `j < n`: A holds `m` rows packed by
    /// [`bpack_rows`] at a stride of `lda >= b.words()` u64 (bits past k must be 0). Exact.
    /// Panics when the slices are short.
    pub fn bgemm(&self, m: usize, a: &[u64], lda: usize, b: &PackedBB, c: &mut [i32], ldc: usize) {
        let (k, n, words) = (b.k, b.n, b.words);
        if m == 0 || n == 0 {
            return;
        }
        assert!(lda >= words && a.len() >= (m - 1) * lda + words, "bgemm: A too short");
        assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "bgemm: C too short");
        let mr = self.bmr;
        let panel = words * BNR;
        for row0 in (0..m).step_by(mr) {
            let rows = mr.min(m - row0);
            for pi in 0..n.div_ceil(BNR) {
                let cols = BNR.min(n - pi * BNR);
                let bp = &b.data[pi * panel..(pi + 1) * panel];
                let c0 = row0 * ldc + pi * BNR;
                // SAFETY: rows row0..row0 + rows of A hold `words` u64 each inside `a` (checked
                // above); the panel holds words × 8 u64; C rows × cols at ldc lie inside `c`;
                // k <= MAX_BK (bpack_b); holding the set proves the CPU has its features.
                unsafe {
                    (self.bmmm)(words, a[row0 * lda..].as_ptr(), lda, bp.as_ptr(), k as i32, c[c0..].as_mut_ptr(), ldc, rows, cols)
                };
            }
        }
    }
}

/// The bits a binary layer hands the next one without writing its f32 values (the CPU
/// executor's fused `BDense → Affine → Sign → BDense`): column `c`'s output bit is 1 exactly
/// when its dot product lies in `lo[c]..=hi[c]`. The executor derives the interval from the f32
/// epilogue, BatchNorm and Sign (exec/bfuse.rs), so it is any monotone rule: `dot >= T`
/// (`hi = i32::MAX`), `dot <= T` (`lo = i32::MIN`), always (both) or never (`lo > hi`).
#[derive(Clone, Debug)]
pub struct BSignRule {
    lo: Vec<i32>,
    hi: Vec<i32>,
}

impl BSignRule {
    /// The rule `lo[c] <= dot <= hi[c]` per column (equal lengths), padded to whole panels
    /// with "never" so columns past n give 0 bits without a test per column.
    pub fn new(mut lo: Vec<i32>, mut hi: Vec<i32>) -> BSignRule {
        assert_eq!(lo.len(), hi.len(), "BSignRule: lengths");
        let padded = lo.len().div_ceil(BNR) * BNR;
        lo.resize(padded, i32::MAX);
        hi.resize(padded, i32::MIN);
        BSignRule { lo, hi }
    }
    /// Column c's interval.
    pub fn interval(&self, c: usize) -> (i32, i32) {
        (self.lo[c], self.hi[c])
    }
}

impl KernelSet {
    /// [`KernelSet::bgemm`] whose products become bits instead of i32: row `i`, bit `j` (bit
    /// `j % 64` of word `j / 64`, at `out[i·ldo..]`) is `rule.lo[j] <= dot <= rule.hi[j]`, i.e.
    /// the packed ±1 input of the next binary layer. Bits past n are 0 (the padding rule of the
    /// next product). Exact, so the same bits on every set. Panics when a slice is short.
    #[allow(clippy::too_many_arguments)]
    pub fn bgemm_sign(&self, m: usize, a: &[u64], lda: usize, b: &PackedBB, rule: &BSignRule, out: &mut [u64], ldo: usize) {
        let (k, n, words) = (b.k, b.n, b.words);
        let owords = b_words(n);
        if m == 0 || n == 0 {
            return;
        }
        assert!(lda >= words && a.len() >= (m - 1) * lda + words, "bgemm_sign: A too short");
        assert!(ldo >= owords && out.len() >= (m - 1) * ldo + owords, "bgemm_sign: out too short");
        assert!(rule.lo.len() >= n.div_ceil(BNR) * BNR, "bgemm_sign: rule too short");
        for r in 0..m {
            out[r * ldo..r * ldo + owords].fill(0);
        }
        let mr = self.bmr;
        let panel = words * BNR;
        // A set with a sign tile writes the bytes itself (little-endian: byte b of a row's
        // words holds bits 8b..8b + 7, the layout above).
        #[cfg(target_endian = "little")]
        if let Some(f) = self.bmmm_sign {
            let bytes = out.as_mut_ptr().cast::<u8>();
            for row0 in (0..m).step_by(mr) {
                let rows = mr.min(m - row0);
                for pi in 0..n.div_ceil(BNR) {
                    let bp = &b.data[pi * panel..(pi + 1) * panel];
                    // SAFETY: as in `bgemm`; the rule holds whole panels (asserted); byte pi of
                    // rows row0.. lies in their `owords` words (pi < ceil(n / 8) <= 8·owords).
                    unsafe {
                        f(words, a[row0 * lda..].as_ptr(), lda, bp.as_ptr(), k as i32, rule.lo[pi * BNR..].as_ptr(), rule.hi[pi * BNR..].as_ptr(), bytes.add(row0 * ldo * 8 + pi), ldo * 8, rows)
                    };
                }
            }
            return;
        }
        // One tile of i32 products on the stack: the products never reach memory beyond L1.
        let mut tile = [0i32; BMAX_MR * BNR];
        for row0 in (0..m).step_by(mr) {
            let rows = mr.min(m - row0);
            for pi in 0..n.div_ceil(BNR) {
                let cols = BNR.min(n - pi * BNR);
                let bp = &b.data[pi * panel..(pi + 1) * panel];
                // SAFETY: as in `bgemm`; the tile holds MR <= BMAX_MR rows of 8 at stride 8.
                unsafe { (self.bmmm)(words, a[row0 * lda..].as_ptr(), lda, bp.as_ptr(), k as i32, tile.as_mut_ptr(), BNR, rows, cols) };
                // Whole panels (the rule is padded with "never"; the tile's columns past `cols`
                // are ignored by it): a fixed 8-wide compare the compiler vectorizes.
                let lo: &[i32; BNR] = rule.lo[pi * BNR..pi * BNR + BNR].try_into().expect("8");
                let hi: &[i32; BNR] = rule.hi[pi * BNR..pi * BNR + BNR].try_into().expect("8");
                // 8 columns = one byte of the output row; BNR divides 64, so it never straddles words.
                let (w, sh) = (pi * BNR / 64, pi * BNR % 64);
                for r in 0..rows {
                    let t: &[i32; BNR] = tile[r * BNR..r * BNR + BNR].try_into().expect("8");
                    let mut byte = 0u64;
                    for j in 0..BNR {
                        byte |= u64::from((lo[j] <= t[j]) & (t[j] <= hi[j])) << j;
                    }
                    out[(row0 + r) * ldo + w] |= byte << sh;
                }
            }
        }
    }
}

/// Stores a tile of mismatch counts as `k − 2 · count`. Safety: `c` valid for `rows` rows of
/// `cols` at `ldc`.
#[inline(always)]
pub(crate) unsafe fn store_btile<const MR: usize>(acc: &[[u32; BNR]; MR], k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    for (r, row) in acc.iter().enumerate().take(rows) {
        for (j, &d) in row.iter().enumerate().take(cols) {
            *c.add(r * ldc + j) = k - 2 * d as i32;
        }
    }
}

/// The scalar body every non-SIMD set compiles (generic; the AVX2 set with `popcnt`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn bmmm_scalar<const MR: usize>(words: usize, a: *const u64, lda: usize, b: *const u64, k: i32, c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    let mut acc = [[0u32; BNR]; MR];
    for w in 0..words {
        let bw = std::slice::from_raw_parts(b.add(w * BNR), BNR);
        for (r, row) in acc.iter_mut().enumerate().take(rows) {
            let x = *a.add(r * lda + w);
            for (s, &y) in row.iter_mut().zip(bw) {
                *s += (x ^ y).count_ones();
            }
        }
    }
    store_btile(&acc, k, c, ldc, rows, cols);
}
