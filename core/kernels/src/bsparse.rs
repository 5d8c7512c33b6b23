//! Block-sparse weights for batch 1: [`BlockW`] (a `[rows × cols]` matrix as `1 × bw` blocks
//! along the columns, listed by row) and [`KernelSet::bspmv`], the batch-1 Dense that reads them.
//!
//! A Dense weight `[k × out]` pruned in `1 × bw` blocks (`mdeploy prune --structure
//! block:1x16`: one input × 16 consecutive outputs kept or dropped together) keeps, per input
//! row, a few whole blocks. For one sample the kernel `<isa>_bspmv_f32` does
//!
//! ```text
//!   acc[0..out] = bias, acc[out..padded] = 0
//!   for each input i with x[i] != 0:            (found 64 at a time as a bit mask)
//!       for each block b of row i:              (ptr[i]..ptr[i+1])
//!           acc[col[b] .. col[b]+bw] += x[i] · val[b·bw .. b·bw+bw]   (bw/16 zmm, bw/4 v128)
//!   y = clamp(acc[0..out])
//! ```
//!
//! no gather and no scatter of single floats: one vector load, FMA and store per block and
//! vector, against ~bw scalar updates for the same weights in the unstructured `spmv`.
//!
//! ```text
//!   BlockW:  ptr [rows+1] ─┐  blocks of row i: ptr[i]..ptr[i+1]
//!            col [nblocks]    first column of each block: a multiple of bw, < cols, increasing per row
//!            val [nblocks·bw] the block's bw values; columns ≥ cols of a ragged last block hold 0
//! ```
//!
//! Built once at plan build from the lowering's [`SparseW`] ([`BlockW::from_sparse`]); any
//! weight can be written this way (zeros inside a kept block are stored), so the blocks are a
//! speed choice, never a correctness one: `lower` picks them when the blocks are full enough
//! ([`block_fill`]). Design and numbers: "Block-sparse batch 1" in KERNELS.md.

use crate::{AlignedBuf, KernelSet, SparseW};

/// Block widths a [`BlockW`] may have (outputs per block): whole `v128`s, `ymm`s or `zmm`s.
pub const BLOCK_WIDTHS: [usize; 3] = [16, 8, 4];

/// A `[rows × cols]` f32 matrix as `1 × bw` blocks by row (module docs for the layout).
/// One made elsewhere than [`BlockW::from_sparse`] must pass [`BlockW::check`] before a kernel
/// reads it (the kernels index with `col` unchecked).
#[derive(Clone, Debug, Default)]
pub struct BlockW {
    pub rows: usize,
    pub cols: usize,
    pub bw: usize,
    pub ptr: Vec<u32>,
    pub col: Vec<u32>,
    /// Bit `i % 64` of word `i / 64`: row `i` has at least one block. The kernels AND it with
    /// the non-zero inputs, so a row pruned whole costs nothing and every row visited runs its
    /// first block without a loop test.
    pub live: Vec<u64>,
    /// 64-byte aligned by [`BlockW::from_sparse`], so a 16-wide block is exactly one cache
    /// line (kernels still load unaligned: a clone of an `AlignedBuf` keeps the old offset).
    pub val: AlignedBuf,
}

/// Stored entries of `w` over the slots of its non-empty `1 × bw` blocks (columns past
/// `w.cols` in a ragged last block not counted): 1.0 when every kept block is full, ~0.12 for
/// unstructured 90 % sparsity at `bw` = 16. 0 for an empty matrix. Panics as
/// [`BlockW::from_sparse`].
pub fn block_fill(w: &SparseW, bw: usize) -> f64 {
    let b = BlockW::from_sparse(w, bw);
    let slots: usize = b.col.iter().map(|&c| bw.min(w.cols - c as usize)).sum();
    if slots == 0 { 0.0 } else { w.nnz() as f64 / slots as f64 }
}

impl BlockW {
    /// The `1 × bw` blocks of `w` that hold a stored entry, by row. Panics (caller bug) if `bw`
    /// is not in [`BLOCK_WIDTHS`] or `w` is malformed (it must pass [`SparseW::check`]).
    pub fn from_sparse(w: &SparseW, bw: usize) -> BlockW {
        assert!(BLOCK_WIDTHS.contains(&bw), "BlockW: block width {bw} not in {BLOCK_WIDTHS:?}");
        let t = w.transpose(); // by row: t's column i = row i of w, its idx = columns of w
        let (mut ptr, mut col, mut val) = (Vec::with_capacity(w.rows + 1), Vec::new(), Vec::new());
        ptr.push(0u32);
        for i in 0..w.rows {
            let (a, b) = (t.ptr[i] as usize, t.ptr[i + 1] as usize);
            for (&j, &v) in t.idx[a..b].iter().zip(&t.val[a..b]) {
                let c0 = j as usize / bw * bw;
                if col.last().is_none_or(|&c| (c as usize) != c0) || ptr.last().is_some_and(|&p| p as usize == col.len()) {
                    col.push(c0 as u32);
                    val.extend(std::iter::repeat_n(0.0f32, bw));
                }
                let base = val.len() - bw;
                val[base + j as usize - c0] = v;
            }
            ptr.push(u32::try_from(col.len()).expect("BlockW: 2^32 blocks or more"));
        }
        let mut aligned = AlignedBuf::zeros(val.len());
        aligned.as_mut_slice().copy_from_slice(&val);
        let mut live = vec![0u64; w.rows.div_ceil(64)];
        for i in 0..w.rows {
            live[i / 64] |= u64::from(ptr[i + 1] > ptr[i]) << (i % 64);
        }
        BlockW { rows: w.rows, cols: w.cols, bw, ptr, col, live, val: aligned }
    }

    /// Count of blocks.
    pub fn blocks(&self) -> usize {
        self.col.len()
    }

    /// The row-major dense matrix (for tests).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0.0f32; self.rows * self.cols];
        for i in 0..self.rows {
            for b in self.ptr[i] as usize..self.ptr[i + 1] as usize {
                let c0 = self.col[b] as usize;
                for (t, &v) in self.val.as_slice()[b * self.bw..(b + 1) * self.bw].iter().enumerate().take(self.cols - c0) {
                    d[i * self.cols + c0 + t] = v;
                }
            }
        }
        d
    }

    /// Checks what the kernels rely on: `bw` in [`BLOCK_WIDTHS`], `ptr` has `rows + 1`
    /// non-decreasing entries from 0 to the block count, `val` holds `bw` values per block, every
    /// block starts at a multiple of `bw` below `cols`, increasing within its row, and every
    /// value is finite. The error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !BLOCK_WIDTHS.contains(&self.bw) {
            return Err(format!("block width {} (want one of {BLOCK_WIDTHS:?})", self.bw));
        }
        if self.ptr.len() != self.rows + 1 {
            return Err(format!("{} row pointers for {} rows (want rows + 1)", self.ptr.len(), self.rows));
        }
        if self.ptr[0] != 0 || self.ptr[self.rows] as usize != self.col.len() {
            return Err(format!("row pointers run {}..{}, want 0..{}", self.ptr[0], self.ptr[self.rows], self.col.len()));
        }
        if self.col.len().checked_mul(self.bw) != Some(self.val.as_slice().len()) {
            return Err(format!("{} values for {} blocks of {}", self.val.as_slice().len(), self.col.len(), self.bw));
        }
        for i in 0..self.rows {
            let (a, b) = (self.ptr[i] as usize, self.ptr[i + 1] as usize);
            if a > b || b > self.col.len() {
                return Err(format!("row pointers decrease or pass the {} blocks at row {i}", self.col.len()));
            }
            let mut prev: Option<u32> = None;
            for &c in &self.col[a..b] {
                if c as usize >= self.cols || !(c as usize).is_multiple_of(self.bw) || prev.is_some_and(|p| p >= c) {
                    return Err(format!("row {i}: block column {c} out of range 0..{}, not a multiple of {} or not increasing", self.cols, self.bw));
                }
                prev = Some(c);
            }
        }
        let mut live = vec![0u64; self.rows.div_ceil(64)];
        for i in 0..self.rows {
            live[i / 64] |= u64::from(self.ptr[i + 1] > self.ptr[i]) << (i % 64);
        }
        if live != self.live {
            return Err("the live-row mask does not match the row pointers".into());
        }
        if let Some(v) = self.val.as_slice().iter().find(|v| !v.is_finite()) {
            return Err(format!("non-finite weight {v}"));
        }
        Ok(())
    }

    /// Accumulator floats [`KernelSet::bspmv`] needs: the columns rounded up to whole blocks.
    pub fn acc_len(&self) -> usize {
        self.cols.div_ceil(self.bw) * self.bw
    }
}

impl KernelSet {
    /// The block-sparse batch-1 kernel's name, e.g. `"avx512_bspmv_f32"`.
    pub fn bspmv_name(&self) -> &'static str {
        self.bspmv_name
    }

    /// One row: `y[j] = clamp(bias[j] + Σ_i x[i] · w[i, j])`, rows of zero inputs skipped
    /// whole, each kept block added as whole vectors into `acc` (at least
    /// [`BlockW::acc_len`] floats of scratch). `clamp` (lo, hi) lets NaN through. Panics
    /// (caller bug) on short slices; `w` must have passed [`BlockW::check`].
    pub fn bspmv(&self, x: &[f32], w: &BlockW, bias: &[f32], clamp: Option<(f32, f32)>, acc: &mut [f32], y: &mut [f32]) {
        let (k, n) = (w.rows, w.cols);
        assert!(x.len() >= k && y.len() >= n && bias.len() >= n && acc.len() >= w.acc_len(), "bspmv: short x, y, bias or acc");
        assert!(
            BLOCK_WIDTHS.contains(&w.bw)
                && w.ptr.len() == k + 1
                && w.ptr[k] as usize == w.col.len()
                && w.val.as_slice().len() == w.col.len() * w.bw
                && w.live.len() == k.div_ceil(64),
            "bspmv: malformed BlockW"
        );
        let acc = &mut acc[..w.acc_len()];
        acc[..n].copy_from_slice(&bias[..n]);
        acc[n..].fill(0.0);
        // SAFETY: ptr has k+1 entries ending at the block count (checked above), non-decreasing,
        // live bits set exactly for rows with blocks, every col[b] + bw <= acc_len (BlockW::check,
        // the caller's contract); x has k values, live ⌈k/64⌉ words, acc acc_len floats, val bw
        // per block.
        unsafe { (self.bspmv)(w.bw, k, x.as_ptr(), w.live.as_ptr(), w.ptr.as_ptr(), w.col.as_ptr(), w.val.as_slice().as_ptr(), acc.as_mut_ptr()) };
        let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        for (o, &a) in y[..n].iter_mut().zip(acc.iter()) {
            *o = crate::generic::generic_spmm_f32::clamp_nan(a, lo, hi);
        }
    }
}

/// `acc[col[b]..col[b]+bw] += x[i] · val[b·bw..]` for every block `b` of every row `i` with a
/// non-zero `x[i]`.
///
/// # Safety
/// `x` holds `k` values, `live` ⌈k/64⌉ words whose bit `i` is set exactly when `ptr[i] <
/// ptr[i+1]`, `ptr` `k + 1` non-decreasing block indices, and every block `b <
/// ptr[k]` has `bw` values in `val` and `col[b] + bw` within `acc` (what [`BlockW::check`] and
/// [`KernelSet::bspmv`] ensure). `bw` is one of [`BLOCK_WIDTHS`].
pub(crate) type BspmvFn =
    unsafe fn(bw: usize, k: usize, x: *const f32, live: *const u64, ptr: *const u32, col: *const u32, val: *const f32, acc: *mut f32);

/// Calls `f(i, x[i])` for every non-zero `x[i]` whose row has blocks (bit `i` of `live`), in
/// order. The non-zero inputs are found 64 at a time as a bit mask (a branch-free compare LLVM
/// vectorizes; a branch per input was mispredicted along a digit's strokes, see
/// `generic_spmv_f32`). Inlined into each kernel.
///
/// # Safety
/// `live` holds ⌈x.len()/64⌉ words.
#[inline(always)]
pub(crate) unsafe fn for_each_nonzero(x: &[f32], live: *const u64, mut f: impl FnMut(usize, f32)) {
    for (c, xs) in x.chunks(64).enumerate() {
        let mut bits = 0u64;
        for (b, &v) in xs.iter().enumerate() {
            bits |= u64::from(v != 0.0) << b;
        }
        bits &= *live.add(c);
        while bits != 0 {
            let t = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(c * 64 + t, xs[t]);
        }
    }
}

/// `f(b)` for `b` in `a..e`, where `a < e` (a row [`for_each_nonzero`] visits has a block): the
/// first call without a test, so a row of one block (most rows of the pruned MLP) has no loop
/// exit to mispredict.
#[inline(always)]
pub(crate) fn each_block(a: usize, e: usize, mut f: impl FnMut(usize)) {
    let mut b = a;
    loop {
        f(b);
        b += 1;
        if b >= e {
            break;
        }
    }
}
