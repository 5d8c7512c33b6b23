//! Sparse weights: [`SparseW`] (a `[rows × cols]` matrix compressed by column), its checks,
//! and the two drivers behind [`KernelSet`]:
//!
//! * [`KernelSet::spmm`]: `Y[m × cols] = clamp(X · W + bias)` for many rows (samples of a
//!   Dense, output pixels of a convolution). The rows are the vector axis, as in XNNPACK's
//!   sparse inference: a block of `NB` rows is written transposed (`xt[rows × NB]`, by the
//!   caller's `fill`: a transpose for Dense, an im2col for Conv2d), then per output column the
//!   micro-kernel `<isa>_spmm_f32_<NB>` broadcasts each non-zero weight and FMAs it into `NB`
//!   accumulators with the matching `xt` row. Only the non-zero weights are ever touched.
//! * [`KernelSet::spmv`]: one row (batch-1 Dense). The weight is read by input row
//!   ([`SparseW::transpose`], built once at load) so that the zero inputs (a digit's
//!   background, a ReLU's negatives) skip their whole row: `y[j] += x[i] · w` over the
//!   non-zeros of the non-zero inputs' rows. Scalar scatter, one kernel for every set.
//!
//! ```text
//!   SparseW (by column = output):  ptr [cols+1] ─┐
//!                                  idx [nnz] row indices, increasing within a column
//!                                  val [nnz] values
//!   column j = { (idx[p], val[p]) : ptr[j] <= p < ptr[j+1] }
//! ```
//!
//! Design and numbers: "Sparse kernels" in KERNELS.md.

use crate::KernelSet;

/// A `[rows × cols]` f32 matrix compressed by column (CSC): column `j` holds the entries
/// `ptr[j]..ptr[j+1]` of `idx` (row indices, strictly increasing) and `val`.
///
/// In a Dense or Conv2d weight `[k × out]` a column is one output: its non-zero inputs.
/// Built by [`SparseW::from_dense`]; one made elsewhere (a deserialized program) must pass
/// [`SparseW::check`] before a kernel reads it (the kernels index with `idx` unchecked).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SparseW {
    pub rows: usize,
    pub cols: usize,
    pub ptr: Vec<u32>,
    pub idx: Vec<u32>,
    pub val: Vec<f32>,
}

impl SparseW {
    /// The non-zero entries of row-major `w[rows × cols]` (exact zeros are dropped; NaN is kept).
    /// Panics (caller bug) if `w.len() != rows·cols` or there are 2^32 or more non-zeros.
    pub fn from_dense(rows: usize, cols: usize, w: &[f32]) -> SparseW {
        assert_eq!(w.len(), rows * cols, "SparseW::from_dense: {} values for {rows}x{cols}", w.len());
        let nnz = w.iter().filter(|&&v| v != 0.0).count();
        assert!(nnz < u32::MAX as usize && rows <= u32::MAX as usize, "SparseW: too large for u32 indices");
        let mut s = SparseW { rows, cols, ptr: Vec::with_capacity(cols + 1), idx: Vec::with_capacity(nnz), val: Vec::with_capacity(nnz) };
        s.ptr.push(0);
        for j in 0..cols {
            for i in 0..rows {
                let v = w[i * cols + j];
                if v != 0.0 {
                    s.idx.push(i as u32);
                    s.val.push(v);
                }
            }
            s.ptr.push(s.idx.len() as u32);
        }
        s
    }

    /// Count of stored entries.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// Stored entries over `rows·cols` (0 for an empty matrix).
    pub fn density(&self) -> f64 {
        let n = self.rows * self.cols;
        if n == 0 { 0.0 } else { self.nnz() as f64 / n as f64 }
    }

    /// The row-major dense matrix (for backends that densify, and for tests).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut w = vec![0.0f32; self.rows * self.cols];
        for j in 0..self.cols {
            for p in self.ptr[j] as usize..self.ptr[j + 1] as usize {
                w[self.idx[p] as usize * self.cols + j] = self.val[p];
            }
        }
        w
    }

    /// The transposed matrix, still compressed by column: i.e. this matrix by row.
    pub fn transpose(&self) -> SparseW {
        let mut count = vec![0u32; self.rows + 1];
        for &i in &self.idx {
            count[i as usize + 1] += 1;
        }
        for i in 0..self.rows {
            count[i + 1] += count[i];
        }
        let ptr = count.clone();
        let mut next = count;
        let (mut idx, mut val) = (vec![0u32; self.nnz()], vec![0.0f32; self.nnz()]);
        for j in 0..self.cols {
            for p in self.ptr[j] as usize..self.ptr[j + 1] as usize {
                let i = self.idx[p] as usize;
                let q = next[i] as usize;
                idx[q] = j as u32;
                val[q] = self.val[p];
                next[i] += 1;
            }
        }
        SparseW { rows: self.cols, cols: self.rows, ptr, idx, val }
    }

    /// Checks the structure a kernel relies on: `ptr` has `cols + 1` non-decreasing entries
    /// from 0 to `nnz`, `idx` and `val` have `nnz` entries, every index is `< rows` and
    /// increasing within its column, and every value is finite. The error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.ptr.len() != self.cols + 1 {
            return Err(format!("{} column pointers for {} columns (want columns + 1)", self.ptr.len(), self.cols));
        }
        if self.idx.len() != self.val.len() {
            return Err(format!("{} indices but {} values", self.idx.len(), self.val.len()));
        }
        if self.ptr[0] != 0 || self.ptr[self.cols] as usize != self.idx.len() {
            return Err(format!("column pointers run {}..{}, want 0..{}", self.ptr[0], self.ptr[self.cols], self.idx.len()));
        }
        for j in 0..self.cols {
            let (a, b) = (self.ptr[j] as usize, self.ptr[j + 1] as usize);
            if a > b {
                return Err(format!("column pointers decrease at column {j}"));
            }
            let mut prev: Option<u32> = None;
            for &i in &self.idx[a..b] {
                if i as usize >= self.rows || prev.is_some_and(|p| p >= i) {
                    return Err(format!("column {j}: row index {i} out of range 0..{} or not increasing", self.rows));
                }
                prev = Some(i);
            }
        }
        if let Some(v) = self.val.iter().find(|v| !v.is_finite()) {
            return Err(format!("non-finite weight {v}"));
        }
        Ok(())
    }
}

/// Per stored entry of a [`SparseW`], where its input row starts in a block (floats), for one
/// kernel set; built once ([`KernelSet::spmm_offsets`]), checked against the block on every call.
#[derive(Clone, Debug)]
pub struct SparseOffsets {
    offs: Vec<u32>,
    /// Largest offset + NB: the block must hold this many floats.
    span: usize,
    nb: usize,
}

impl SparseOffsets {
    /// Floats a block read through these offsets must hold.
    pub fn span(&self) -> usize {
        self.span
    }
}

impl KernelSet {
    /// Rows per sparse block (`NB`, the vector axis of `<isa>_spmm_f32_<NB>`).
    pub fn spmm_nb(&self) -> usize {
        self.spmm_nb
    }

    /// The sparse micro-kernel's name, e.g. `"avx512_spmm_f32_64"`.
    pub fn spmm_name(&self) -> &'static str {
        self.spmm_name
    }

    /// Where each stored entry of `w` reads its input row: `row_off(i)` floats into the block
    /// (`i · NB` for a transposed block, [`KernelSet::spmm_rows`]). Built once per weight.
    pub fn spmm_offsets(&self, w: &SparseW, row_off: impl Fn(usize) -> usize) -> SparseOffsets {
        let offs: Vec<u32> = w.idx.iter().map(|&i| u32::try_from(row_off(i as usize)).expect("spmm offset beyond u32")).collect();
        let span = offs.iter().map(|&o| o as usize + self.spmm_nb).max().unwrap_or(0);
        SparseOffsets { offs, span, nb: self.spmm_nb }
    }

    /// [`KernelSet::spmm_offsets`] for a transposed block `xt[i·NB + r]`.
    pub fn spmm_rows(&self, w: &SparseW) -> SparseOffsets {
        let nb = self.spmm_nb;
        self.spmm_offsets(w, |i| i * nb)
    }

    /// Scratch floats [`KernelSet::spmm`] needs for `w`: the transposed input block and the
    /// transposed output block.
    pub fn spmm_scratch(&self, w: &SparseW) -> usize {
        (w.rows + w.cols) * self.spmm_nb
    }

    /// One block: `yt[j·NB + r] = clamp(bias[j] + Σ_p val[p] · x[offs[p] + r])` for every
    /// column `j < w.cols`, `r < NB`. Panics (caller bug) on short slices, or offsets made
    /// for another set or another weight.
    pub fn spmm_block(&self, w: &SparseW, offs: &SparseOffsets, x: &[f32], bias: &[f32], clamp: Option<(f32, f32)>, yt: &mut [f32]) {
        let n = w.cols;
        assert!(offs.nb == self.spmm_nb && offs.offs.len() == w.val.len(), "spmm_block: offsets made for another set or weight");
        assert!(x.len() >= offs.span && bias.len() >= n && yt.len() >= n * self.spmm_nb, "spmm_block: short x, bias or yt");
        assert!(w.ptr.len() == n + 1 && w.ptr[n] as usize == w.val.len(), "spmm_block: malformed SparseW");
        assert!(w.ptr.windows(2).all(|p| p[0] <= p[1]), "spmm_block: column pointers decrease");
        let (lo, hi) = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        // SAFETY: ptr has n+1 non-decreasing entries ending at nnz = offs/val lengths; every
        // offset + NB <= span <= x.len(); bias n values; yt n·NB floats.
        unsafe {
            (self.spmm)(n, w.ptr.as_ptr(), offs.offs.as_ptr(), w.val.as_ptr(), x.as_ptr(), bias.as_ptr(), lo, hi, yt.as_mut_ptr());
        }
    }

    /// `y[r·ldc + j] = clamp(bias[j] + Σ_i x(r, i) · w[i, j])` for rows `r < m`, columns `j <
    /// w.cols`, where `fill(row0, rows, xt)` writes rows `row0..row0+rows` of X transposed:
    /// `xt[i·NB + r] = x(row0 + r, i)` for every `i < w.rows`, `r < rows` (lanes `rows..NB` may
    /// hold anything: they are computed and dropped). `offs` = [`KernelSet::spmm_rows`]`(w)`.
    /// `clamp` (lo, hi) is applied last and lets NaN through. Panics (caller bug) on short slices.
    #[allow(clippy::too_many_arguments)]
    pub fn spmm(
        &self,
        m: usize,
        w: &SparseW,
        offs: &SparseOffsets,
        bias: &[f32],
        clamp: Option<(f32, f32)>,
        mut fill: impl FnMut(usize, usize, &mut [f32]),
        scratch: &mut [f32],
        y: &mut [f32],
        ldc: usize,
    ) {
        let nb = self.spmm_nb;
        let (k, n) = (w.rows, w.cols);
        assert!(ldc >= n && scratch.len() >= (k + n) * nb, "spmm: short scratch");
        assert!(m == 0 || y.len() >= (m - 1) * ldc + n, "spmm: short output");
        let (xt, rest) = scratch.split_at_mut(k * nb);
        let yt = &mut rest[..n * nb];
        let mut row0 = 0;
        while row0 < m {
            let rows = nb.min(m - row0);
            fill(row0, rows, xt);
            self.spmm_block(w, offs, xt, bias, clamp, yt);
            // Back to rows in strips of 16 columns (the 16 yt rows being read stay in L1 while
            // each output row's 16 values are written contiguously).
            for j0 in (0..n).step_by(16) {
                let j1 = (j0 + 16).min(n);
                for r in 0..rows {
                    let out = &mut y[(row0 + r) * ldc + j0..(row0 + r) * ldc + j1];
                    for (j, o) in (j0..j1).zip(out) {
                        *o = yt[j * nb + r];
                    }
                }
            }
            row0 += rows;
        }
    }

    /// One row: `y[j] = clamp(bias[j] + Σ_i x[i] · w[i, j])` with `wt` = `w` by row
    /// ([`SparseW::transpose`]): rows of zero inputs are skipped whole. Panics (caller bug) on
    /// short slices; `wt` must have passed [`SparseW::check`].
    pub fn spmv(&self, x: &[f32], wt: &SparseW, bias: &[f32], clamp: Option<(f32, f32)>, y: &mut [f32]) {
        let (n, k) = (wt.rows, wt.cols);
        assert!(x.len() >= k && y.len() >= n && bias.len() >= n, "spmv: short x, y or bias");
        assert!(wt.ptr.len() == k + 1 && wt.idx.len() == wt.val.len(), "spmv: malformed SparseW");
        crate::generic::generic_spmm_f32::generic_spmv_f32(&x[..k], wt, &bias[..n], clamp, &mut y[..n]);
    }
}
