//! Strided matrix views and the public `gemm` entry point (the training path).

use crate::KernelSet;

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
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
    /// Panics (caller bug) unless every element of the `rows × cols` view is inside `data`.
    pub(crate) fn check(&self, what: &str, rows: usize, cols: usize) {
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

