//! The integer GEMM: `C[m × n] (i32) = A[m × k] (u8) · B[k × n] (i8)`, exact.
//!
//! ```text
//!   B (weights, i8 in −127..=127) packed once into 16-column panels, k padded to a multiple of 4:
//!     Quad layout (generic, AVX-512 VNNI): per k-quad g, 16 columns × 4 bytes   = 64 bytes
//!     Pair layout (AVX2, wasm simd128):    per k-pair p, 16 columns × 2 i16      = 64 bytes
//!     Dot7 layout (wasm relaxed SIMD, weights all in −64..=63, chosen per matrix at packing):
//!                                          16 i32 column constants (64 bytes), then per k-quad
//!                                          g, 16 columns × 4 bytes of w + 64 (0..=127; 0 in the
//!                                          rows past k) = 64 bytes (wasm_relaxed_qmmm_i7.rs)
//!   A (activations, u8) is packed per MR-row panel into i32 words:
//!     Quad (row-minor): word (g, r) = bytes a[r][4g..4g+4]   (broadcast, then vpdpbusd)
//!     Pair (row-major): word (p, r) = a[r][2p] | a[r][2p+1] << 16, i.e. the row widened to u16
//!                                     (broadcast, then vpmaddwd / i32x4.dot_i16x8_s)
//!     Dot7 (row-major): word (g, r) = quad ^ 0x80808080 (a − 128 per byte, the i8 operand of
//!                                     i32x4.relaxed_dot_i8x16_i7x16_add_s), then one word
//!                                     per row: −64 · Σ_{p<k} a[r][p] (the row constant)
//!   micro-kernel <isa>_qmmm_i8_<MR>x16: MR rows × 16 columns of i32 accumulators
//! ```
//!
//! Every kernel computes the same exact sums (no instruction here saturates for operands in
//! these ranges, and `k <= MAX_QK` keeps the sums inside i32), so the summation order does not
//! matter and the outputs are bit-identical across kernel sets. See `core/runtime/QUANT.md`.

use crate::quant::{QEpi, QParams, MAX_QK};
use crate::set::KernelSet;

/// Columns of every integer micro-kernel's tile = width of a packed B panel.
pub const QNR: usize = 16;
/// Largest MR of any integer micro-kernel (the A panel scratch is sized with it).
pub const QMAX_MR: usize = 12;

/// How a kernel set wants B and A laid out (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QLayout {
    Quad,
    Pair,
    /// 7-bit weights shifted to `w + 64` (the 7-bit operand of relaxed SIMD's dot),
    /// activations as `a − 128`, a constant per column and per row
    /// (`wasm/wasm_relaxed_qmmm_i7.rs`). Only for a set with that tile (`qmmm7`), only for a
    /// weight matrix whose values all lie in −64..=63; every other matrix keeps the set's layout.
    Dot7,
}

/// `C_tile = A_panel · B_panel`: A word `(g, r)` (see the layouts) is the i32 at `a + g·ws +
/// r·rs`, read unaligned: a packed panel (`rs = 1`, `ws = MR`) or, for the quad layout, the A
/// rows themselves (`rs = lda / 4`, `ws = 1`: a quad word is 4 consecutive bytes of a row, so
/// whole panels of rows need no packing); `b` one packed panel (`words × 64` bytes); the
/// tile's `rows × cols` go to `c` at stride `ldc`.
/// Safety: pointers valid for those extents; `rows <= MR`, `cols <= 16`.
/// `KernelSet::qgemm`'s AMX entry (`x86_64/amx_qmmm_i8.rs`): 16 rows of A read in place (`rs`
/// i32 words apart) times every panel of B (`n` columns, `panel_bytes` apart) into C (`ldc`).
pub(crate) type QAmxFn = unsafe fn(words: usize, a: *const i32, rs: usize, b: *const u8, panel_bytes: usize, n: usize, c: *mut i32, ldc: usize);
pub(crate) type QmmmFn = unsafe fn(
    words: usize,
    a: *const i32,
    rs: usize,
    ws: usize,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    rows: usize,
    cols: usize,
);

/// Zero-word skipping for the quad layout's whole tiles read in place (`KernelSet::qgemm`):
/// `list` writes the words at which any of the tile's MR rows (`a + r·rs`) is nonzero (its
/// `out` holds `words` rounded up to 16) and returns their count; `tile` is the set's tile over
/// those words only (`list`, `len`, then A, B, C as for [`QmmmFn`] with `ws = 1`). Exact sums:
/// a word that is zero in every row adds nothing.
#[derive(Clone, Copy)]
pub(crate) struct QSkip {
    pub(crate) list: unsafe fn(a: *const i32, rs: usize, words: usize, out: *mut u32) -> usize,
    #[allow(clippy::type_complexity)]
    pub(crate) tile: unsafe fn(list: *const u32, len: usize, a: *const i32, rs: usize, b: *const u8, c: *mut i32, ldc: usize, rows: usize, cols: usize),
}

/// [`QmmmFn`] with the A rows gathered: A word `(g, r)` is the i32 (unaligned) at byte `rows[r]
/// + offs[g]`, so a convolution's rows are read straight from its input (no im2col, no A
/// panel). `rows` holds MR pointers (rows past `nrows` repeat a valid one: computed, not
/// stored); `offs` one byte offset per word (`words` of them).
/// Safety: every `rows[r] + offs[g] .. + 4` readable; `b`, `c` as for [`QmmmFn`].
pub(crate) type QmmmGatherFn = unsafe fn(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    c: *mut i32,
    ldc: usize,
    nrows: usize,
    cols: usize,
);

/// [`QmmmGatherFn`] with a max over the tile's rows in groups of `group` (a pool window's
/// pixels, `group` in {1, 2, 4}): the kernel computes its MR rows × `16 · NV` columns (NV
/// panels of `b`, `panel_bytes` apart) and stores only each group's per-column max, `nout <=
/// MR / group` rows of `cols <= 16 · NV` columns at `c` (stride `ldc`). All MR row pointers
/// valid (rows past the last group repeat a valid one: computed, not stored).
/// Safety: as [`QmmmGatherFn`], and NV panels readable from `b`.
pub(crate) type QmmmGatherMaxFn = unsafe fn(
    words: usize,
    rows: *const *const u8,
    offs: *const u32,
    b: *const u8,
    panel_bytes: usize,
    c: *mut i32,
    ldc: usize,
    group: usize,
    nout: usize,
    cols: usize,
);

/// A set's pooling gather tiles ([`QmmmGatherMaxFn`]): one of MR rows × 16 columns, one of
/// MR rows × 32 columns (two panels), with their MR.
#[derive(Clone, Copy)]
pub(crate) struct QGatherMax {
    pub(crate) t16: (QmmmGatherMaxFn, usize),
    pub(crate) t32: (QmmmGatherMaxFn, usize),
}

/// Int8 weights `[k × n]` packed for one kernel set (see the module docs), plus what the
/// epilogue needs: per-column sums of the weights (to fold the input zero point into the bias).
#[derive(Clone, Debug)]
pub struct PackedQB {
    k: usize,
    n: usize,
    layout: QLayout,
    /// `ceil(n / 16)` panels of `panel_bytes()` each (i16 pairs stored little-endian).
    data: Vec<u8>,
    col_sums: Vec<i32>,
    /// wasm simd128, pair layout: the panels without the pair words whose weights are all zero
    /// in every column, when there are such words (`gather_pair` skips them). Always `None`
    /// in other builds.
    #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
    nonzero: Option<NonzeroPairs>,
}

/// [`PackedQB`]'s pair words that are not all zero: their indices and the panels of those
/// words alone (`panels × words.len() × 64` bytes). A conv whose kernel rows are padded to 4
/// bytes (`runtime/src/exec/qconv.rs`) has whole zero pair words: the CNN's first conv (C = 1,
/// 5 taps padded to 8 bytes) 5 of its 20. Dropping a product by zero keeps the sums exact.
#[derive(Clone, Debug)]
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
struct NonzeroPairs {
    words: Vec<u32>,
    data: Vec<u8>,
}

/// The [`NonzeroPairs`] of pair panels (`words` pair words each), or `None` when every word has
/// a non-zero weight.
fn nonzero_pairs(data: &[u8], panels: usize, words: usize) -> Option<NonzeroPairs> {
    let pb = words * 64;
    let kept: Vec<u32> = (0..words).filter(|&p| (0..panels).any(|pi| data[pi * pb + p * 64..][..64].iter().any(|&v| v != 0))).map(|p| p as u32).collect();
    if kept.len() == words {
        return None;
    }
    let mut out = Vec::with_capacity(panels * kept.len() * 64);
    for pi in 0..panels {
        for &p in &kept {
            out.extend_from_slice(&data[pi * pb + p as usize * 64..][..64]);
        }
    }
    Some(NonzeroPairs { words: kept, data: out })
}

impl PackedQB {
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
    /// The layout the weights were packed in: the set's own, or `Dot7` where the set has a
    /// 7-bit tile and every weight lies in −64..=63.
    pub fn layout(&self) -> QLayout {
        self.layout
    }
    /// `Σ_k w[k][c]` for every column.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }
    /// k rounded up to a multiple of 4: the row length of a quantized A matrix.
    pub fn k_padded(&self) -> usize {
        self.k.div_ceil(4) * 4
    }
    fn words(&self) -> usize {
        match self.layout {
            QLayout::Quad | QLayout::Dot7 => self.k_padded() / 4,
            QLayout::Pair => self.k_padded() / 2,
        }
    }
    /// Bytes of one 16-column panel.
    fn panel_bytes(&self) -> usize {
        match self.layout {
            QLayout::Quad | QLayout::Pair => self.words() * 64,
            QLayout::Dot7 => 64 + self.words() * 64,
        }
    }
}

impl KernelSet {
    /// Name of the integer micro-kernel, e.g. `"avx512vnni_qmmm_i8_12x16"`.
    pub fn qmmm_name(&self) -> &'static str {
        self.qmmm_name
    }

    /// The integer epilogue (`quant::QEpi`, the same bits as `quant::epilogue_row` on every
    /// set): `rows` rows of `e.n()` sums at stride `ldc` into `y` at stride `ldy`. Panics when
    /// a slice is short.
    pub fn qepilogue(&self, e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [f32], ldy: usize) {
        let n = e.n();
        if rows == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n && c.len() >= (rows - 1) * ldc + n, "qepilogue: sums too short");
        assert!(ldy >= n && y.len() >= (rows - 1) * ldy + n, "qepilogue: output too short");
        // SAFETY: holding the set proves the CPU has its features; lengths checked above.
        unsafe { (self.qepi)(e, c, ldc, rows, y, ldy) }
    }

    /// [`KernelSet::qepilogue`] writing the u8 codes instead of f32 (see `quant::QElem`).
    /// Panics on a dequantizing epilogue (it has no codes) or short slices.
    pub fn qepilogue_u8(&self, e: &QEpi, c: &[i32], ldc: usize, rows: usize, y: &mut [u8], ldy: usize) {
        let n = e.n();
        assert!(e.out_params().is_some(), "qepilogue_u8: a dequantizing step has no u8 codes");
        if rows == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n && c.len() >= (rows - 1) * ldc + n, "qepilogue: sums too short");
        assert!(ldy >= n && y.len() >= (rows - 1) * ldy + n, "qepilogue: output too short");
        // SAFETY: holding the set proves the CPU has its features; lengths checked above.
        unsafe { (self.qepi8)(e, c, ldc, rows, y, ldy) }
    }

    /// `q[i] = p.quantize(x[i])` (`quant::quantize_slice`, the same bytes on every set).
    pub fn quantize(&self, p: QParams, x: &[f32], q: &mut [u8]) {
        assert_eq!(x.len(), q.len(), "quantize: lengths differ");
        // SAFETY: holding the set proves the CPU has its features.
        unsafe { (self.qquant)(p, x, q) }
    }

    /// [`KernelSet::quantize`] that also checks `x` on the same read: `Some(true)` when every
    /// value was finite, `None` when this set has no such quantizer (then `q` is untouched;
    /// see [`KernelSet::quantize_checks`]). Natively on x86_64 with FMA the one pass replaces
    /// an input scan that cost as much as the quantizer itself.
    pub fn quantize_checked(&self, p: QParams, x: &[f32], q: &mut [u8]) -> Option<bool> {
        assert_eq!(x.len(), q.len(), "quantize: lengths differ");
        // SAFETY: holding the set proves the CPU has its features.
        self.qquantc.map(|f| unsafe { f(p, x, q) })
    }

    /// Whether [`KernelSet::quantize_checked`] checks (the x86_64 AVX2 and AVX-512 sets).
    pub fn quantize_checks(&self) -> bool {
        self.qquantc.is_some()
    }

    /// `y[i] = p.dequantize(p.quantize(y[i]))` (`quant::fake_quantize_slice`, the same bits on
    /// every set).
    pub fn fake_quantize(&self, p: QParams, y: &mut [f32]) {
        // SAFETY: holding the set proves the CPU has its features.
        unsafe { (self.qfake)(p, y) }
    }

    /// Whether [`KernelSet::qpack_b`] packs `w` in the `Dot7` layout: the set has the 7-bit
    /// tile and every weight lies in −64..=63. Then a Dense on the program input quantizes
    /// its floats itself ([`KernelSet::qgemm_quantize_dot7`]) and the runtime drops the
    /// Quantize step before it (`exec.rs`, `drop_dot7_input_quantize`).
    pub fn packs_dot7(&self, w: &[i8]) -> bool {
        self.qmmm7.is_some() && w.iter().all(|&v| (-64..=63).contains(&v))
    }

    /// Packs `w` (`k × n` row-major, values in −127..=127) for this set's integer kernel: the
    /// set's 7-bit tile (`Dot7`) when it has one and every weight lies in −64..=63, decided
    /// here from the values (not from how the file stored them), else the set's own layout.
    /// Panics on a length mismatch, `k > MAX_QK` or a −128 weight: the lowering checks these
    /// and names the node first.
    #[inline(never)] // load path: its own wasm function, so V8 optimizes this packing loop alone (wasm/DESIGN.md, "Cold start")
    pub fn qpack_b(&self, k: usize, n: usize, w: &[i8]) -> PackedQB {
        assert_eq!(w.len(), k * n, "qpack_b: weight length");
        assert!(k <= MAX_QK, "qpack_b: k = {k} exceeds MAX_QK");
        assert!(w.iter().all(|&v| v != i8::MIN), "qpack_b: weights must lie in -127..=127");
        let layout = if self.packs_dot7(w) { QLayout::Dot7 } else { self.qlayout };
        let kp = k.div_ceil(4) * 4;
        let panels = n.div_ceil(QNR);
        let panel_bytes = match layout {
            QLayout::Quad => kp * QNR,
            QLayout::Pair => kp * QNR * 2,
            QLayout::Dot7 => 64 + kp * QNR,
        };
        let mut data = vec![0u8; panels * panel_bytes];
        let mut col_sums = vec![0i32; n];
        for c in 0..n {
            col_sums[c] = (0..k).map(|p| i32::from(w[p * n + c])).sum();
        }
        for pi in 0..panels {
            let panel = &mut data[pi * panel_bytes..(pi + 1) * panel_bytes];
            for j in 0..QNR {
                let c = pi * QNR + j;
                if c >= n {
                    continue;
                }
                for p in 0..k {
                    let v = w[p * n + c];
                    match layout {
                        QLayout::Quad => panel[(p / 4) * 64 + j * 4 + p % 4] = v as u8,
                        QLayout::Pair => {
                            let at = (p / 2) * 64 + (j * 2 + p % 2) * 2;
                            panel[at..at + 2].copy_from_slice(&i16::from(v).to_le_bytes());
                        }
                        // w + 64 in 0..=127; the rows past k stay 0, so they add nothing.
                        QLayout::Dot7 => panel[64 + (p / 4) * 64 + j * 4 + p % 4] = (i16::from(v) + 64) as u8,
                    }
                }
                if layout == QLayout::Dot7 {
                    // Σ a·w = Σ (a − 128)(w + 64) + 128·Σ w + 8192·k − 64·Σ a (wasm_relaxed_qmmm_i7.rs);
                    // wrapping: only the final sum must fit, and i32 adds are exact modulo 2^32.
                    let corr = col_sums[c].wrapping_mul(128).wrapping_add((8192 * k) as i32);
                    panel[4 * j..4 * j + 4].copy_from_slice(&corr.to_le_bytes());
                }
            }
        }
        // Only the simd128 pair tile's gathering form reads it (`gather_pair`).
        let nonzero = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && layout == QLayout::Pair { nonzero_pairs(&data, panels, kp / 2) } else { None };
        PackedQB { k, n, layout, data, col_sums, nonzero }
    }

    /// The tile and its MR for weights packed in `layout` (the set's own or its 7-bit tile's).
    /// Panics when the set has no tile for that layout (weights packed for another set).
    fn qtile(&self, layout: QLayout, what: &str) -> (QmmmFn, usize) {
        match self.qmmm7 {
            Some(t) if layout == QLayout::Dot7 => t,
            _ => {
                assert_eq!(layout, self.qlayout, "{what}: weights packed for another kernel set");
                (self.qmmm, self.qmr)
            }
        }
    }

    /// `c[i·ldc + j] = Σ_p a[i·lda + p] · w[p][j]` for `i < m`, `j < n`: exact int32 sums.
    /// `a` holds `m` rows of at least `k` bytes at stride `lda` (bytes past `k` are ignored).
    /// `apanel`: scratch of at least `QMAX_MR · k_padded / 2` i32. Panics when `b` was packed
    /// for another layout or the slices are short.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm(&self, m: usize, a: &[u8], lda: usize, b: &PackedQB, c: &mut [i32], ldc: usize, apanel: &mut [i32]) {
        let (k, n) = (b.k, b.n);
        let (qmmm, mr) = self.qtile(b.layout, "qgemm");
        if m == 0 || n == 0 {
            return;
        }
        assert!(lda >= k && a.len() >= (m - 1) * lda + k, "qgemm: A too short");
        assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "qgemm: C too short");
        let words = b.words();
        assert!(apanel.len() >= panel_words(b.layout, mr, words), "qgemm: A panel scratch too short");
        let panel_bytes = b.panel_bytes();
        let kp = b.k_padded();
        // AMX (where the set has it): whole 16-row blocks read in place, at least one 64-byte
        // tile step deep; the rows after the last such block go to the set's tile below.
        let mut first = 0;
        if let Some(amx) = self.qamx.filter(|_| b.layout == QLayout::Quad && words >= 16 && lda.is_multiple_of(4) && lda >= kp) {
            const AMR: usize = 16;
            while first + AMR <= m && a.len() >= (first + AMR - 1) * lda + kp {
                // SAFETY: rows first..first + 16 of `a` hold kp = 4·words bytes each (checked
                // above), every B panel panel_bytes = 64·words, C rows 16 × n at ldc lie inside
                // `c` (first + 16 <= m, checked against m and n at entry).
                unsafe { amx(words, a[first * lda..].as_ptr() as *const i32, lda / 4, b.data.as_ptr(), panel_bytes, n, c[first * ldc..].as_mut_ptr(), ldc) };
                first += AMR;
            }
        }
        let mut try_skip = true;
        for row0 in (first..m).step_by(mr) {
            let rows = mr.min(m - row0);
            let words_fit = lda.is_multiple_of(4) && lda >= kp && a.len() >= (row0 + rows - 1) * lda + kp;
            // The quad layout reads full panels of rows in place (no packing pass), and single
            // rows too: its kernels read and compute only row 0 when `rows == 1`.
            let in_place = b.layout == QLayout::Quad && words_fit && (rows == mr || rows == 1);
            // Whole tiles read in place skip the words that are zero in all their rows, when
            // that leaves out at least one word in eight (the list costs about one pass over
            // the tile's A rows, reused by every B panel). After a tile whose list did not pay,
            // the rest of the call stops listing: A whose words are rarely zero (a hidden
            // layer's codes, the CNN's dense layer) then pays for one list per call, not per tile.
            if let Some(skip) = self.qskip.filter(|_| try_skip && in_place && rows == mr && words >= 16) {
                let list = &mut apanel[..words.next_multiple_of(16)];
                let ap = a[row0 * lda..].as_ptr() as *const i32;
                // SAFETY: rows row0..row0 + mr of `a` hold kp = 4·words bytes each (words_fit);
                // `list` holds words rounded up to 16 (sliced above: panic if short).
                let len = unsafe { (skip.list)(ap, lda / 4, words, list.as_mut_ptr() as *mut u32) };
                if len * 8 <= words * 7 {
                    for pi in 0..n.div_ceil(QNR) {
                        let cols = QNR.min(n - pi * QNR);
                        let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
                        let c0 = row0 * ldc + pi * QNR;
                        // SAFETY: the listed words are below `words` (the list function only
                        // writes indices it read); A and C as for the tile below.
                        unsafe { (skip.tile)(list.as_ptr() as *const u32, len, ap, lda / 4, bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, rows, cols) };
                    }
                    continue;
                }
                try_skip = false;
            }
            let (ap, rs, ws) = if in_place {
                (a[row0 * lda..].as_ptr() as *const i32, lda / 4, 1)
            } else {
                if words_fit {
                    pack_a_words(b.layout, &a[row0 * lda..], lda, k, kp, rows, mr, apanel);
                } else {
                    pack_a(b.layout, &a[row0 * lda..], lda, k, rows, mr, words, apanel);
                }
                let (rs, ws) = panel_strides(b.layout, mr, words);
                (apanel.as_ptr(), rs, ws)
            };
            for pi in 0..n.div_ceil(QNR) {
                let cols = QNR.min(n - pi * QNR);
                let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
                let c0 = row0 * ldc + pi * QNR;
                // SAFETY: A words (g < words, r < mr) lie in the panel (`panel_words`: checked
                // above) or, read in place, in rows row0..row0 + mr of `a` within their first
                // kp = 4·words bytes (checked: words_fit); the B panel holds panel_bytes; C
                // rows..cols at ldc lie inside `c` (checked above: row0 + rows <= m, col < n).
                unsafe { qmmm(words, ap, rs, ws, bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, rows, cols) };
            }
        }
    }
}

impl KernelSet {
    /// `c[i·ldc + j] = Σ_g Σ_t x[base[i] + offs[g] + t] · w[4g + t][j]` for `i < base.len()`,
    /// `j < n`: the integer GEMM whose A row `i` is gathered from `x`, 4 bytes at a time, at
    /// `base[i] + offs[g]` (`b` has `k = 4 · offs.len()` rows). A convolution's im2col without the
    /// copy: `base[i]` is output pixel i's window corner in the input, `offs[g]` where the
    /// window's g-th 4 bytes lie from there (`core/runtime/QUANT.md`, "Integer kernels"). Sets
    /// with a gathering kernel (AVX-512 VNNI, the wasm pair and 7-bit tiles) read the words in
    /// place; the others gather them into their packed A panel (`apanel`, at least `QMAX_MR ·
    /// k_padded / 2` i32) and run their usual kernel. Exact sums either way. Panics when a word lies past the end of `x`, `b` was
    /// packed for another set or has another k, or `c` is short.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm_gather(&self, x: &[u8], base: &[u32], offs: &[u32], b: &PackedQB, c: &mut [i32], ldc: usize, apanel: &mut [i32]) {
        let (k, n, m) = (b.k, b.n, base.len());
        let (qmmm, mr) = self.qtile(b.layout, "qgemm_gather");
        // The in-place gathering tile reads the set's own layout only.
        let qgather = self.qgather.filter(|_| b.layout == self.qlayout);
        assert_eq!(k, 4 * offs.len(), "qgemm_gather: B must have 4 rows per gathered word");
        if m == 0 || n == 0 {
            return;
        }
        let reach = base.iter().max().map_or(0, |&v| v as usize) + offs.iter().max().map_or(0, |&v| v as usize) + 4;
        assert!(reach <= x.len(), "qgemm_gather: a gathered word lies past the end of x");
        assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "qgemm_gather: C too short");
        let words = b.words();
        assert!(apanel.len() >= panel_words(b.layout, mr, words), "qgemm_gather: A panel scratch too short");
        let panel_bytes = b.panel_bytes();
        let (rs, ws) = panel_strides(b.layout, mr, words);
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        if b.layout == QLayout::Dot7 {
            gather_dot7(x, base, offs, b, c, ldc, 1);
            return;
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if b.layout == QLayout::Pair {
            gather_pair(x, base, offs, b, c, ldc, 1);
            return;
        }
        let runs = dot7_runs(b.layout, offs);
        let mut rows = [x.as_ptr(); QMAX_MR];
        for row0 in (0..m).step_by(mr) {
            let nrows = mr.min(m - row0);
            for (r, p) in rows.iter_mut().enumerate().take(mr) {
                // Rows past the last one repeat it: computed by the tile, never stored.
                // SAFETY: base[..] + offs[..] + 4 <= x.len() (checked above).
                *p = unsafe { x.as_ptr().add(base[(row0 + r).min(m - 1)] as usize) };
            }
            if qgather.is_none() {
                gather_a(b.layout, &rows[..mr], offs, &runs, apanel);
            }
            for pi in 0..n.div_ceil(QNR) {
                let cols = QNR.min(n - pi * QNR);
                let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
                let c0 = row0 * ldc + pi * QNR;
                // SAFETY: every gathered word is inside x (checked: reach), the A panel holds
                // words × mr i32, the B panel words × 64 bytes, C rows..cols at ldc lie inside
                // `c` (row0 + nrows <= m, col < n).
                unsafe {
                    match qgather {
                        Some(f) => f(offs.len(), rows.as_ptr(), offs.as_ptr(), bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, nrows, cols),
                        None => qmmm(words, apanel.as_ptr(), rs, ws, bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, nrows, cols),
                    }
                }
            }
        }
    }
}

impl KernelSet {
    /// [`KernelSet::qgemm_gather`] followed by a max over consecutive groups of `group` rows:
    /// `c[p·ldc + j] = max over i in p·group..(p + 1)·group of row i's sum in column j`, for
    /// `p < base.len() / group`. A convolution with a max pool after it: the caller lists each
    /// pool window's conv pixels one window after the other (`core/runtime/exec/qconv.rs`).
    /// Exact (the max of exact sums), so the same bits as the GEMM and a separate window max.
    /// Sets with pooling tiles (AVX-512 VNNI, `group` in {1, 2, 4}) keep the un-pooled sums in
    /// registers; the others compute each group's rows with their usual tile into a small
    /// scratch tile and take the max there (slow; the runtime uses this only where
    /// [`KernelSet::qgather_max_native`] says so). Panics as `qgemm_gather`, and when `group`
    /// is 0 or does not divide `base.len()`.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm_gather_max(&self, x: &[u8], base: &[u32], group: usize, offs: &[u32], b: &PackedQB, c: &mut [i32], ldc: usize, apanel: &mut [i32]) {
        let (k, n, m) = (b.k, b.n, base.len());
        let (qmmm, mr) = self.qtile(b.layout, "qgemm_gather_max");
        let qgather = self.qgather.filter(|_| b.layout == self.qlayout);
        assert_eq!(k, 4 * offs.len(), "qgemm_gather_max: B must have 4 rows per gathered word");
        assert!(group > 0 && m.is_multiple_of(group), "qgemm_gather_max: {m} rows are not groups of {group}");
        if m == 0 || n == 0 {
            return;
        }
        let mp = m / group;
        let reach = max_u32(base) as usize + max_u32(offs) as usize + 4;
        assert!(reach <= x.len(), "qgemm_gather_max: a gathered word lies past the end of x");
        assert!(ldc >= n && c.len() >= (mp - 1) * ldc + n, "qgemm_gather_max: C too short");
        let words = b.words();
        let panel_bytes = b.panel_bytes();
        let panels = n.div_ceil(QNR);
        // wasm: the gathering tiles take a 2 × 2 window as their 4 rows and store its max.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if self.qgather_max_native(group) {
            match b.layout {
                QLayout::Pair => return gather_pair(x, base, offs, b, c, ldc, group),
                #[cfg(target_feature = "relaxed-simd")]
                QLayout::Dot7 => return gather_dot7(x, base, offs, b, c, ldc, group),
                _ => {}
            }
        }
        let mut rows = [x.as_ptr(); QMAX_MR];
        if let Some(gm) = self.qgmax.filter(|_| self.qgather_max_native(group) && b.layout == self.qlayout) {
            let mut pi = 0;
            while pi < panels {
                // Two panels at a time while at least 17 columns remain.
                let two = n - pi * QNR > QNR;
                let (f, mr) = if two { gm.t32 } else { gm.t16 };
                let cols = (if two { 2 * QNR } else { QNR }).min(n - pi * QNR);
                let gpt = mr / group;
                let bp = &b.data[pi * panel_bytes..(pi + if two { 2 } else { 1 }) * panel_bytes];
                for p0 in (0..mp).step_by(gpt) {
                    let nout = gpt.min(mp - p0);
                    // The tile's rows; past the last one they repeat it (computed, not stored).
                    let bs = &base[p0 * group..(p0 * group + mr).min(m)];
                    let last = bs[bs.len() - 1];
                    for (r, p) in rows.iter_mut().enumerate().take(mr) {
                        // SAFETY: base[..] + offs[..] + 4 <= x.len() (checked above).
                        *p = unsafe { x.as_ptr().add(*bs.get(r).unwrap_or(&last) as usize) };
                    }
                    // SAFETY: every gathered word is inside x (checked: reach); `bp` holds the
                    // one or two panels the tile reads; C rows p0..p0 + nout (< mp) and columns
                    // pi·16..pi·16 + cols (<= n) lie inside `c` (checked above).
                    unsafe { f(words, rows.as_ptr(), offs.as_ptr(), bp.as_ptr(), panel_bytes, c[p0 * ldc + pi * QNR..].as_mut_ptr(), ldc, group, nout, cols) };
                }
                pi += if two { 2 } else { 1 };
            }
            return;
        }
        // Any set, any group: one group at a time, in pieces of at most MR rows.
        let runs = dot7_runs(b.layout, offs);
        assert!(apanel.len() >= panel_words(b.layout, mr, words), "qgemm_gather_max: A panel scratch too short");
        let (rs, ws) = panel_strides(b.layout, mr, words);
        let mut tile = [0i32; QMAX_MR * QNR];
        for p in 0..mp {
            for r0 in (0..group).step_by(mr) {
                let nrows = mr.min(group - r0);
                for (r, ptr) in rows.iter_mut().enumerate().take(mr) {
                    // SAFETY: as above.
                    *ptr = unsafe { x.as_ptr().add(base[p * group + r0 + r.min(nrows - 1)] as usize) };
                }
                if qgather.is_none() {
                    gather_a(b.layout, &rows[..mr], offs, &runs, apanel);
                }
                for pi in 0..panels {
                    let cols = QNR.min(n - pi * QNR);
                    let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
                    // SAFETY: as in `qgemm_gather`; the tile holds MR × 16 i32 at stride 16.
                    unsafe {
                        match qgather {
                            Some(f) => f(offs.len(), rows.as_ptr(), offs.as_ptr(), bp.as_ptr(), tile.as_mut_ptr(), QNR, nrows, cols),
                            None => qmmm(words, apanel.as_ptr(), rs, ws, bp.as_ptr(), tile.as_mut_ptr(), QNR, nrows, cols),
                        }
                    }
                    let out = &mut c[p * ldc + pi * QNR..][..cols];
                    for r in 0..nrows {
                        for (j, o) in out.iter_mut().enumerate() {
                            let v = tile[r * QNR + j];
                            *o = if r0 == 0 && r == 0 { v } else { (*o).max(v) };
                        }
                    }
                }
            }
        }
    }

    /// Whether [`KernelSet::qgemm_gather_max`] keeps a pool of `group` pixels in its tile's
    /// registers on this set (AVX-512 VNNI: groups of 1, 2 or 4; the wasm simd128 set, whose
    /// pair and 7-bit gathering tiles have 4 rows: groups of 4, i.e. 2 × 2 windows).
    pub fn qgather_max_native(&self, group: usize) -> bool {
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && self.qlayout == QLayout::Pair {
            return group == 4;
        }
        self.qgmax.is_some() && matches!(group, 1 | 2 | 4)
    }
}

impl KernelSet {
    /// [`KernelSet::qgemm`] of `p.quantize(x)` for weights packed in the Dot7 layout: each row
    /// of `m` floats (`k` of them at stride `ldx`) is quantized straight into the tile's packed
    /// A panel (`a − 128` per byte, then the row constant `−64 · Σ a`, summed in the same
    /// pass), so the float batch is read once instead of quantized into bytes and then packed
    /// (11–14 % and 6–8 % of the int7 MLP in wasm, wasm/DESIGN.md "Outside the GEMM"). The
    /// same read tells whether every value is finite: returns `false` when one is NaN or ±∞
    /// (all of `c` is computed either way, with the bytes `quantize` gives them: NaN the zero
    /// point, ±∞ clamped). Same bytes as `quantize` then `qgemm` (`QParams::quantize`). `apanel` as for `qgemm`. Panics when `b` is not Dot7 (sets without
    /// the 7-bit tile never pack it) or the slices are short.
    #[allow(clippy::too_many_arguments)]
    pub fn qgemm_quantize_dot7(&self, p: QParams, m: usize, x: &[f32], ldx: usize, b: &PackedQB, c: &mut [i32], ldc: usize, apanel: &mut [i32]) -> bool {
        assert_eq!(b.layout, QLayout::Dot7, "qgemm_quantize_dot7: weights not in the Dot7 layout");
        let (k, n) = (b.k, b.n);
        let (qmmm, mr) = self.qtile(b.layout, "qgemm_quantize_dot7");
        if m == 0 {
            return true;
        }
        assert!(ldx >= k && x.len() >= (m - 1) * ldx + k, "qgemm_quantize_dot7: x too short");
        assert!(n == 0 || (ldc >= n && c.len() >= (m - 1) * ldc + n), "qgemm_quantize_dot7: C too short");
        let words = b.words();
        assert!(apanel.len() >= panel_words(b.layout, mr, words), "qgemm_quantize_dot7: A panel scratch too short");
        let panel_bytes = b.panel_bytes();
        let (rs, ws) = panel_strides(b.layout, mr, words);
        let mut bad = false;
        for row0 in (0..m).step_by(mr) {
            let rows = mr.min(m - row0);
            for r in 0..rows {
                let dst = &mut apanel[r * (words + 1)..(r + 1) * (words + 1)];
                let src = &x[(row0 + r) * ldx..(row0 + r) * ldx + k];
                let (sum, finite) = quantize_dot7_row(p, src, word_bytes(&mut dst[..words]));
                dst[words] = dot7_row(sum);
                bad |= !finite;
            }
            // Rows past `rows` keep whatever the scratch held: computed by the tile, never stored.
            for pi in 0..n.div_ceil(QNR) {
                let cols = QNR.min(n - pi * QNR);
                let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
                let c0 = row0 * ldc + pi * QNR;
                // SAFETY: A words (g < words, r < mr) and the row constants lie in the panel
                // (`panel_words`: checked above); the B panel holds panel_bytes; C rows..cols at
                // ldc lie inside `c` (checked above: row0 + rows <= m, col < n).
                unsafe { qmmm(words, apanel.as_ptr(), rs, ws, bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, rows, cols) };
            }
        }
        !bad
    }
}

/// The bytes of a run of A words (little-endian, as the tile reads them).
fn word_bytes(w: &mut [i32]) -> &mut [u8] {
    // SAFETY: i32 has no invalid bit patterns and alignment 4 >= 1; the byte slice covers
    // exactly the words' memory and borrows it mutably for as long as `w`.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), w.len() * 4) }
}

/// One row of floats quantized into Dot7 bytes (`q ^ 0x80`) in `out` (4·words bytes, k used;
/// the bytes past k are set to 0x80, i.e. a = 0: they meet B's zero rows and add nothing).
/// Returns `(Σ q, every value finite)`. The simd128 kernel where the Dot7 layout exists (the
/// relaxed build: LLVM did not vectorize the loop below for wasm32), else plain loops on
/// `QParams::quantize`, the one quantizer, so the codes are those of `KernelSet::quantize`.
#[inline(always)]
fn quantize_dot7_row(p: QParams, x: &[f32], out: &mut [u8]) -> (u32, bool) {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        crate::wasm::wasm_quantize_dot7_f32::wasm_quantize_dot7_f32(p, x, out)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    {
        quantize_dot7_row_scalar(p, x, out)
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
fn quantize_dot7_row_scalar(p: QParams, x: &[f32], out: &mut [u8]) -> (u32, bool) {
    let k = x.len();
    let (mut sum, mut inf) = (0u32, 0u32);
    let mut blocks = x.chunks_exact(16);
    let mut dsts = out[..k - k % 16].chunks_exact_mut(16);
    for (xs, ds) in (&mut blocks).zip(&mut dsts) {
        let (mut s, mut e) = (0u32, 0u32);
        for (d, &v) in ds.iter_mut().zip(xs) {
            let q = p.quantize(v);
            s += u32::from(q);
            // Exponent all ones: ±∞ or NaN.
            e |= u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000);
            *d = q ^ 0x80;
        }
        sum = sum.wrapping_add(s);
        inf |= e;
    }
    for (d, &v) in out[k - k % 16..k].iter_mut().zip(blocks.remainder()) {
        let q = p.quantize(v);
        sum = sum.wrapping_add(u32::from(q));
        inf |= u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000);
        *d = q ^ 0x80;
    }
    out[k..].fill(0x80);
    (sum, inf == 0)
}


/// [`KernelSet::qgemm_gather`] on the 7-bit gathering tile (`wasm_relaxed_qmmm_gather_i7_4x16`),
/// which reads A where it lies: no A panel. The input is flipped to `a ^ 0x80` once (the tile's
/// i8 operand; per gathered word it would be done `words · m / len` times over, about 30× for
/// the CNN's first conv), and the row constants `−64 · Σ a` come from prefix sums of the
/// input, two reads per run of consecutive words ([`dot7_runs`]). Profiled before this, the
/// per-word gather took 22 % of the int7 CNN in wasm (QUANT.md, "Speed"). The caller checked
/// the shapes and that every word lies inside `x`.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
fn gather_dot7(x: &[u8], base: &[u32], offs: &[u32], b: &PackedQB, c: &mut [i32], ldc: usize, group: usize) {
    use crate::wasm::wasm_relaxed_qmmm_i7::{wasm_relaxed_qmmm_gather_i7_4x16 as tile, MR};
    let (n, m, words) = (b.n, base.len(), b.words());
    let (lo, hi) = gathered_reach(base, offs);
    let x = &x[lo..hi];
    let flipped: Vec<u8> = x.iter().map(|&v| v ^ 0x80).collect();
    // pre[i] = Σ x[..i] (wrapping: only differences are used, and they are exact).
    let mut pre = Vec::with_capacity(x.len() + 1);
    pre.push(0u32);
    pre.extend(x.iter().scan(0u32, |acc, &v| {
        *acc = acc.wrapping_add(u32::from(v));
        Some(*acc)
    }));
    let runs = dot7_runs(QLayout::Dot7, offs);
    let panel_bytes = b.panel_bytes();
    let mut rows = [flipped.as_ptr(); MR];
    let mut rowc = [0i32; MR];
    for row0 in (0..m).step_by(MR) {
        let nrows = MR.min(m - row0);
        for r in 0..MR {
            // Rows past the last one repeat it: computed by the tile, never stored.
            let at = base[(row0 + r).min(m - 1)] as usize - lo;
            let sum = runs.iter().fold(0u32, |s, &(o, len)| {
                let o = at + o as usize;
                // Every word lies inside x (checked by the caller), so o + 4·len <= x.len().
                s.wrapping_add(pre[o + 4 * len as usize].wrapping_sub(pre[o]))
            });
            rowc[r] = dot7_row(sum);
            // SAFETY: at + offs[g] + 4 <= x.len() = flipped.len() for every g (checked by the caller).
            rows[r] = unsafe { flipped.as_ptr().add(at) };
        }
        for pi in 0..n.div_ceil(QNR) {
            let cols = QNR.min(n - pi * QNR);
            let bp = &b.data[pi * panel_bytes..(pi + 1) * panel_bytes];
            let c0 = row0 / group * ldc + pi * QNR;
            // SAFETY: every gathered word is inside `flipped` (as above); the panel holds
            // panel_bytes (64 of column constants, words × 64 of weights); C rows..cols at ldc
            // lie inside `c` (the caller checked: row0 + nrows <= m, col < n).
            unsafe { tile(words, rows.as_ptr(), offs.as_ptr(), rowc.as_ptr(), bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, nrows, cols, group == MR) };
        }
    }
}

/// The bytes `lo..hi` of `x` that the gathered words (`base[i] + offs[g] .. + 4`) reach: the
/// wasm gathering tiles copy only those (flipped or widened), as `x` may be a whole slot, far
/// longer than one sample.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn gathered_reach(base: &[u32], offs: &[u32]) -> (usize, usize) {
    let lo = base.iter().fold(u32::MAX, |a, &v| a.min(v)) as usize;
    let hi = base.iter().fold(0u32, |a, &v| a.max(v)) as usize + offs.iter().fold(0u32, |a, &v| a.max(v)) as usize + 4;
    (lo, hi)
}

/// [`KernelSet::qgemm_gather`] on the simd128 pair tile's gathering form
/// (`wasm_qmmm_gather_i8_4x16`): the bytes the words reach are widened to u16 once per call,
/// so each pair word (two codes as u16) is 4 bytes of that copy, splatted by the tile where it
/// lies: no A panel. Per gathered word, `gather_a` had built two pair words with shifts and
/// ors and stored them (21 % of the int8 CNN's plan time in Node 20 on AMD EPYC (Zen 4), the
/// tile 56 %: QUANT.md, "Speed"); a conv's first layer reads each input byte about 25 times.
/// The caller checked the shapes and that every word lies inside `x`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn gather_pair(x: &[u8], base: &[u32], offs: &[u32], b: &PackedQB, c: &mut [i32], ldc: usize, group: usize) {
    use crate::wasm::wasm_qmmm_i8::{wasm_qmmm_gather_i8_4x16 as tile, MR};
    let (n, m, words) = (b.n, base.len(), b.words());
    let (lo, hi) = gathered_reach(base, offs);
    let wide: Vec<u16> = x[lo..hi].iter().map(|&v| u16::from(v)).collect();
    // Quad word g at byte offset o is pair words 2g and 2g + 1: codes o, o + 1 and o + 2, o + 3,
    // at byte offsets 2·o and 2·o + 4 of the widened copy (little-endian u16: a | b << 16).
    // Pair words whose weights are all zero are skipped (`NonzeroPairs`).
    let (offs2, bdata, words): (Vec<u32>, &[u8], usize) = match &b.nonzero {
        Some(nz) => (nz.words.iter().map(|&p| 2 * offs[p as usize / 2] + 4 * (p % 2)).collect(), &nz.data, nz.words.len()),
        None => (offs.iter().flat_map(|&o| [2 * o, 2 * o + 4]).collect(), &b.data, words),
    };
    debug_assert_eq!(offs2.len(), words);
    let wp = wide.as_ptr().cast::<u8>();
    let panel_bytes = words * 64;
    let mut rows = [wp; MR];
    for row0 in (0..m).step_by(MR) {
        let nrows = MR.min(m - row0);
        for (r, p) in rows.iter_mut().enumerate() {
            // Rows past the last one repeat it: computed by the tile, never stored.
            let at = base[(row0 + r).min(m - 1)] as usize - lo;
            // SAFETY: at + offs[g] + 4 <= hi − lo = wide.len() for every g (the caller checked
            // every word against x), so 2·at + offs2[p] + 4 <= 2·wide.len() bytes.
            *p = unsafe { wp.add(2 * at) };
        }
        for pi in 0..n.div_ceil(QNR) {
            let cols = QNR.min(n - pi * QNR);
            let bp = &bdata[pi * panel_bytes..(pi + 1) * panel_bytes];
            let c0 = row0 / group * ldc + pi * QNR;
            // SAFETY: every pair word is inside `wide` (as above); the panel holds words × 64
            // bytes; C rows..cols at ldc lie inside `c` (the caller checked: row0 + nrows <= m,
            // col < n; pooled, row row0 / 4 < m / 4).
            unsafe { tile(words, rows.as_ptr(), offs2.as_ptr(), bp.as_ptr(), c[c0..].as_mut_ptr(), ldc, nrows, cols, group == MR) };
        }
    }
}

/// `(rs, ws)` of a packed A panel for [`QmmmFn`]: word `(g, r)` at `g·ws + r·rs` (Dot7: row
/// r's constant at `words·ws + r·rs`, after its words). Pair and Dot7 panels are row-major, so
/// that a row packs as one contiguous run (the u8 → u16 widening of the row for Pair), which
/// LLVM vectorizes.
fn panel_strides(layout: QLayout, mr: usize, words: usize) -> (usize, usize) {
    match layout {
        QLayout::Quad => (1, mr),
        QLayout::Pair => (words, 1),
        QLayout::Dot7 => (words + 1, 1),
    }
}

/// i32 of a packed A panel of `mr` rows: `mr · words`, plus one constant per row for Dot7
/// (within the documented scratch `QMAX_MR · k_padded / 2` for every set's MR: 4 · (kp/4 + 1)
/// ≤ 6 · kp for kp ≥ 4).
fn panel_words(layout: QLayout, mr: usize, words: usize) -> usize {
    match layout {
        QLayout::Quad | QLayout::Pair => mr * words,
        QLayout::Dot7 => mr * (words + 1),
    }
}

/// The Dot7 layout's word of one quad of activation bytes: `a − 128` per byte as i8.
#[inline(always)]
fn dot7_word(q: u32) -> i32 {
    (q ^ 0x8080_8080) as i32
}

/// The Dot7 row constant: `−64 · Σ a` (wrapping, see `qpack_b`).
#[inline(always)]
fn dot7_row(sum: u32) -> i32 {
    (sum as i32).wrapping_mul(-64)
}

/// The largest value (0 for none): the gathered GEMMs' bound check over a conv's row bases
/// (576 for the int8 CNN's first conv, every sample). The crate is built for baseline x86_64,
/// whose SSE2 has no unsigned max (LLVM's fold was four compare-and-blend steps per 4 lanes, a
/// third of `qgemm_gather_max`'s own time in the CNN's profile): AVX2's `vpmaxud` where the CPU
/// has it (every x86_64 SIMD set needs it).
fn max_u32(v: &[u32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(v: &[u32]) -> u32 {
            v.iter().fold(0u32, |a, &b| a.max(b))
        }
        // SAFETY: AVX2 was detected just above.
        return unsafe { avx2(v) };
    }
    v.iter().fold(0u32, |a, &b| a.max(b))
}

/// The A panel of [`KernelSet::qgemm_gather`] for kernels without a gathering form: word `(g,
/// r)` of the set's layout from the 4 bytes at `rows[r] + offs[g]`. `runs`: for Dot7, the
/// words as runs of consecutive offsets ([`dot7_runs`]), copied a run at a time.
fn gather_a(layout: QLayout, rows: &[*const u8], offs: &[u32], runs: &[(u32, u32)], out: &mut [i32]) {
    let mr = rows.len();
    let words = offs.len();
    if layout == QLayout::Dot7 {
        for (r, &p) in rows.iter().enumerate() {
            let dst = &mut out[r * (words + 1)..(r + 1) * (words + 1)];
            let (mut g, mut sum) = (0usize, 0u32);
            for &(o, len) in runs {
                let len = len as usize;
                assert!(g + len <= words, "gather_a: runs longer than the words");
                // SAFETY: the run's words are offs[g..g + len] (dot7_runs), each of whose 4
                // bytes the caller checked against its slice; dst holds them (asserted).
                sum = sum.wrapping_add(unsafe { dot7_run(p.add(o as usize), len, dst[g..].as_mut_ptr()) });
                g += len;
            }
            assert_eq!(g, words, "gather_a: runs do not cover the words");
            dst[words] = dot7_row(sum);
        }
        return;
    }
    for (r, &p) in rows.iter().enumerate() {
        for (g, &o) in offs.iter().enumerate() {
            // SAFETY: the caller checked every rows[r] + offs[g] + 4 against its slice.
            let q = unsafe { p.add(o as usize).cast::<[u8; 4]>().read_unaligned() };
            match layout {
                QLayout::Quad => out[g * mr + r] = i32::from_le_bytes(q),
                QLayout::Pair => {
                    let at = 2 * (r * words + g);
                    out[at] = i32::from(q[0]) | i32::from(q[1]) << 16;
                    out[at + 1] = i32::from(q[2]) | i32::from(q[3]) << 16;
                }
                QLayout::Dot7 => unreachable!("handled above"),
            }
        }
    }
}

/// The gathered words as runs `(offset of the first, words)` of consecutive offsets (each 4
/// bytes after the one before): a conv's window row is one run of `run4 / 4` words in HWC
/// (`runtime/src/exec/qconv.rs`). Only for the Dot7 layout (empty otherwise: no allocation).
fn dot7_runs(layout: QLayout, offs: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    if layout != QLayout::Dot7 {
        return runs;
    }
    for &o in offs {
        match runs.last_mut() {
            Some((first, len)) if u64::from(*first) + 4 * u64::from(*len) == u64::from(o) => *len += 1,
            _ => runs.push((o, 1)),
        }
    }
    runs
}

/// Dot7 words of `words` 4-byte words at `src` into `dst`, returning the sum of their bytes:
/// the simd128 kernel where the Dot7 layout exists (the relaxed build), else the same in
/// scalar code.
/// Safety: `src` readable for `4 · words` bytes, `dst` writable for `words` i32.
#[inline(always)]
unsafe fn dot7_run(src: *const u8, words: usize, dst: *mut i32) -> u32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        crate::wasm::wasm_qpack_i7::wasm_qpack_i7_run(src, words, dst)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    {
        let mut sum = 0u32;
        for g in 0..words {
            let q = src.add(4 * g).cast::<[u8; 4]>().read_unaligned();
            dst.add(g).write_unaligned(dot7_word(u32::from_le_bytes(q)));
            sum += q.iter().map(|&v| u32::from(v)).sum::<u32>();
        }
        sum
    }
}

/// [`pack_a`] for rows that hold `kp` (k rounded up to 4) readable bytes at a stride that is
/// a multiple of 4: whole 4-byte words, no per-byte tests. The bytes between k and kp may be
/// anything: they meet the zero rows B is padded with, so they add exactly 0 (and Dot7's row
/// constant sums the first k bytes only).
#[allow(clippy::too_many_arguments)]
fn pack_a_words(layout: QLayout, a: &[u8], lda: usize, k: usize, kp: usize, rows: usize, mr: usize, out: &mut [i32]) {
    let quads = kp / 4;
    // Every kernel reads only row 0 of a one-row panel: no zero rows to write then.
    let fill = if rows == 1 { 1 } else { mr };
    for r in 0..fill {
        if r >= rows {
            match layout {
                QLayout::Quad => (0..quads).for_each(|w| out[w * mr + r] = 0),
                // Rows past `rows` are computed, never stored: any bytes do.
                QLayout::Pair | QLayout::Dot7 => {}
            }
            continue;
        }
        let row = &a[r * lda..r * lda + kp];
        match layout {
            QLayout::Quad => {
                for (g, q) in row.chunks_exact(4).enumerate() {
                    out[g * mr + r] = i32::from_le_bytes([q[0], q[1], q[2], q[3]]);
                }
            }
            QLayout::Pair => {
                // The row widened to u16: one contiguous run (row-major panel).
                let dst = &mut out[2 * r * quads..2 * (r + 1) * quads];
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                crate::wasm::wasm_qpack_pair_u8::wasm_qpack_pair_u8(row, dst);
                #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
                for (d, q) in dst.iter_mut().zip(row.chunks_exact(2)) {
                    *d = i32::from(q[0]) | i32::from(q[1]) << 16;
                }
            }
            QLayout::Dot7 => {
                // One contiguous run per row (row-major panel), which LLVM vectorizes, then
                // the row's constant.
                let dst = &mut out[r * (quads + 1)..(r + 1) * (quads + 1)];
                // SAFETY: `row` holds kp = 4·quads bytes, `dst` quads + 1 i32.
                let sum = unsafe { dot7_run(row.as_ptr(), quads, dst.as_mut_ptr()) };
                // The row constant sums the first k bytes only (the rest meet B's zero rows).
                let past_k: u32 = row[k..].iter().map(|&v| u32::from(v)).sum();
                dst[quads] = dot7_row(sum.wrapping_sub(past_k));
            }
        }
    }
}

/// Packs `rows` rows of A (k bytes each at stride `lda`) into `words × mr` i32, zero past k
/// and past `rows`.
#[allow(clippy::too_many_arguments)]
fn pack_a(layout: QLayout, a: &[u8], lda: usize, k: usize, rows: usize, mr: usize, words: usize, out: &mut [i32]) {
    let byte = |r: usize, p: usize| if r < rows && p < k { i32::from(a[r * lda + p]) } else { 0 };
    for w in 0..words {
        for r in 0..mr {
            match layout {
                QLayout::Quad => {
                    let p = 4 * w;
                    out[w * mr + r] = byte(r, p) | byte(r, p + 1) << 8 | byte(r, p + 2) << 16 | byte(r, p + 3) << 24;
                }
                QLayout::Pair => out[r * words + w] = byte(r, 2 * w) | byte(r, 2 * w + 1) << 16,
                QLayout::Dot7 => {
                    let p = 4 * w;
                    let q = byte(r, p) | byte(r, p + 1) << 8 | byte(r, p + 2) << 16 | byte(r, p + 3) << 24;
                    out[r * (words + 1) + w] = dot7_word(q as u32);
                }
            }
        }
    }
    if layout == QLayout::Dot7 {
        for r in 0..mr {
            out[r * (words + 1) + words] = dot7_row((0..k).map(|p| byte(r, p) as u32).sum());
        }
    }
}

/// Stores the per-column max of a 4-row tile (one 2 × 2 pool window's conv pixels: the wasm
/// gathering tiles' fused pool) as one row of `cols` at `c`.
/// Safety: `c` valid for `cols` writes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(crate) unsafe fn store_qtile_max(acc: &[[i32; QNR]; 4], c: *mut i32, cols: usize) {
    let mut m = acc[0];
    for row in &acc[1..] {
        for (v, &w) in m.iter_mut().zip(row) {
            *v = (*v).max(w);
        }
    }
    store_qtile(&[m], c, 0, 1, cols);
}

/// Copies a full `MR × 16` accumulator tile's valid part to C (edge tiles and the generic
/// kernel). Safety: `c` valid for `rows` rows of `cols` at `ldc`.
#[inline(always)]
pub(crate) unsafe fn store_qtile(acc: &[[i32; QNR]], c: *mut i32, ldc: usize, rows: usize, cols: usize) {
    for (r, row) in acc.iter().enumerate().take(rows) {
        if cols == QNR {
            // A whole row as one fixed-size copy, which the compiler inlines (four v128 stores
            // in wasm). The variable-length copy became a `memory.copy`, which V8 runs as a call
            // to the host's memmove: 9 % of the int8 CNN's samples in Node 20 (QUANT.md, "Speed").
            c.add(r * ldc).cast::<[i32; QNR]>().write_unaligned(*row);
        } else {
            std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(r * ldc), cols);
        }
    }
}
