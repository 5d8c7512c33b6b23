//! CPU kernels, found by path: `kernels/<isa>/<op>_<dtype>.rs`.
//!
//! * `generic/`: portable Rust, the reference every SIMD kernel is tested against.
//! * `x86_64/`: AVX2 + FMA, chosen at run time (`is_x86_feature_detected!`).
//! * `wasm/`: `simd128`, chosen at compile time (`-C target-feature=+simd128`).
//!
//! PLACEHOLDER: the naive reference gemm below is the interface training builds on; the
//! kernels work replaces the body with the dispatching, packed implementation.

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
        MatRef { data, rs: ld, cs: 1 }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        MatRef { data, rs: 1, cs: ld }
    }
}

/// `C[m×n] = A[m×k] · B[k×n]` (or `+=` when `accumulate`), `C` row-major with leading dim `ldc`.
/// Panics only on caller bugs (slices too short for the given dims), never on data values.
pub fn gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], ldc: usize, accumulate: bool) {
    for i in 0..m {
        let crow = &mut c[i * ldc..i * ldc + n];
        if !accumulate {
            crow.iter_mut().for_each(|x| *x = 0.0);
        }
        for p in 0..k {
            let av = a.data[i * a.rs + p * a.cs];
            for (j, cv) in crow.iter_mut().enumerate() {
                *cv += av * b.data[p * b.rs + j * b.cs];
            }
        }
    }
}
