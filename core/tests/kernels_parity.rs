//! Kernel suite: every available kernel set (SIMD and generic) against a naive f64 reference
//! and against each other, over edge sizes (0, 1, tile ± 1, KC ± 1) and random strided views.

use mdeploy_core::kernels::{gemm, KernelSet, MatRef, PoolGeom};
use mdeploy_testkit::{Rng, RngExt};
use proptest::prelude::*;

/// A `rows × cols` matrix stored either row-major or transposed, with `pad` extra elements per
/// leading dimension, so the kernels see every stride pattern training uses.
struct Strided {
    data: Vec<f32>,
    rs: usize,
    cs: usize,
}
impl Strided {
    fn new(rng: &mut Rng, rows: usize, cols: usize, transposed: bool, pad: usize) -> Strided {
        let (rs, cs, len) = if transposed {
            let ld = rows + pad;
            (1, ld, ld * cols.max(1))
        } else {
            let ld = cols + pad;
            (ld, 1, ld * rows.max(1))
        };
        Strided {
            data: rng.signed(len, 1.0),
            rs,
            cs,
        }
    }
    fn view(&self) -> MatRef<'_> {
        MatRef {
            data: &self.data,
            rs: self.rs,
            cs: self.cs,
        }
    }
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    pad: usize,
    accumulate: bool,
    seed: u64,
}

/// Runs one case on every kernel set; checks each against the f64 reference with an error
/// bound relative to Σ|a·b| (+|c|), that padding columns of C are untouched, and that C is not
/// read when `accumulate` is false (it starts as NaN then).
fn check(case: &Case) {
    let Case {
        m,
        n,
        k,
        ta,
        tb,
        pad,
        accumulate,
        seed,
    } = *case;
    let mut rng = Rng::new(seed);
    let a = Strided::new(&mut rng, m, k, ta, pad);
    let b = Strided::new(&mut rng, k, n, tb, pad);
    let ldc = n + pad;
    let c_len = if m == 0 { 0 } else { (m - 1) * ldc + n + pad };
    let c0: Vec<f32> = if accumulate {
        rng.signed(c_len, 1.0)
    } else {
        vec![f32::NAN; c_len]
    };
    let mut outs = Vec::new();
    for ks in KernelSet::available() {
        let mut c = c0.clone();
        ks.gemm(m, n, k, a.view(), b.view(), &mut c, ldc, accumulate);
        for i in 0..m {
            for j in 0..ldc {
                let idx = i * ldc + j;
                if idx >= c_len {
                    continue;
                }
                let got = c[idx];
                if j >= n {
                    assert!(
                        got.to_bits() == c0[idx].to_bits(),
                        "{}: wrote outside C's {m}x{n} region at ({i},{j}) for m{m} n{n} k{k}",
                        ks.name()
                    );
                    continue;
                }
                let mut want = if accumulate { c0[idx] as f64 } else { 0.0 };
                let mut scale = want.abs();
                for p in 0..k {
                    let prod = a.at(i, p) as f64 * b.at(p, j) as f64;
                    want += prod;
                    scale += prod.abs();
                }
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * scale + 1e-6,
                    "{} ({}): C[{i},{j}] = {got}, want {want} (m{m} n{n} k{k} ta{ta} tb{tb} pad{pad} acc{accumulate})",
                    ks.name(),
                    ks.mmm_name()
                );
            }
        }
        outs.push((ks.name(), c));
    }
    // SIMD vs generic directly (the last set is always generic).
    if let Some((_, gen)) = outs.last() {
        for (name, c) in &outs {
            for (idx, (x, y)) in c.iter().zip(gen).enumerate() {
                let tol = 1e-5 * (1.0 + y.abs()) * (k as f32).sqrt().max(1.0);
                assert!(
                    (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
                    "{name} vs generic at {idx}: {x} vs {y} (m{m} n{n} k{k})"
                );
            }
        }
    }
}

#[test]
fn best_kernel_set_is_the_simd_one_when_the_cpu_has_it() {
    let best = KernelSet::best();
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        assert_eq!(best.name(), "x86_64-avx512");
        assert_eq!(best.mmm_name(), "avx512_mmm_f32_12x32");
        assert_eq!((best.mr(), best.nr()), (12, 32));
        // AVX2 is still offered (and tested) beside it, then generic.
        let names: Vec<_> = KernelSet::available().iter().map(|k| k.name()).collect();
        assert_eq!(names, ["x86_64-avx512", "x86_64-avx512-narrow", "x86_64-avx2-fma", "generic"]);
        // Ops with at most 32 columns go to the 24x16 sibling, wider ones stay on 12x32.
        assert_eq!(best.for_width(16).mmm_name(), "avx512_mmm_f32_24x16");
        assert_eq!(best.for_width(10).nr(), 16);
        assert_eq!(best.for_width(32).mmm_name(), "avx512_mmm_f32_24x16");
        assert_eq!(best.for_width(33).mmm_name(), "avx512_mmm_f32_12x32");
        assert_eq!(best.for_width(128).nr(), 32);
        // The other sets never hand ops elsewhere.
        let avx2 = KernelSet::avx2_fma().expect("checked above");
        assert_eq!(avx2.for_width(10).name(), "x86_64-avx2-fma");
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert_eq!(best.name(), "x86_64-avx2-fma");
        assert_eq!(best.mmm_name(), "avx2_mmm_f32_6x16");
        assert_eq!((best.mr(), best.nr()), (6, 16));
        // Otherwise the parity tests below would compare generic with itself.
        assert!(KernelSet::available().len() >= 2);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        assert_eq!(best.name(), "wasm-simd128");
        assert_eq!(best.mmm_name(), "wasm_mmm_f32_4x8");
    }
    let _ = best;
    let generic = KernelSet::generic();
    assert_eq!(generic.name(), "generic");
    assert_eq!(
        KernelSet::available().last().map(|k| k.name()),
        Some("generic")
    );
}

#[test]
fn gemm_edge_sizes_all_kernel_sets() {
    let ms = [0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 19, 23, 24, 25, 49];
    let ns = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47];
    let ks = [0, 1, 2, 5, 255, 256, 257, 520];
    let mut seed = 1;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                seed += 1;
                let case = Case {
                    m,
                    n,
                    k,
                    ta: seed % 2 == 0,
                    tb: seed % 3 == 0,
                    pad: (seed % 3) as usize,
                    accumulate: seed % 5 < 2,
                    seed,
                };
                check(&case);
            }
        }
    }
}

#[test]
fn public_gemm_matches_generic_for_training_shapes() {
    // Shapes training uses: forward X·W, backward dY·Wᵀ and Xᵀ·dY (transposed views).
    let mut rng = Rng::new(42);
    let (batch, fin, fout) = (37, 784, 128);
    let x = rng.signed(batch * fin, 1.0);
    let w = rng.signed(fin * fout, 1.0);
    let dy = rng.signed(batch * fout, 1.0);
    let generic = KernelSet::generic();
    let cases: [(usize, usize, usize, MatRef, MatRef); 3] = [
        (
            batch,
            fout,
            fin,
            MatRef::row_major(&x, fin),
            MatRef::row_major(&w, fout),
        ),
        (
            batch,
            fin,
            fout,
            MatRef::row_major(&dy, fout),
            MatRef::transposed(&w, fout),
        ),
        (
            fin,
            fout,
            batch,
            MatRef::transposed(&x, fin),
            MatRef::row_major(&dy, fout),
        ),
    ];
    for (m, n, k, a, b) in cases {
        let mut c1 = vec![0.5f32; m * n];
        let mut c2 = c1.clone();
        gemm(m, n, k, a, b, &mut c1, n, true);
        generic.gemm(m, n, k, a, b, &mut c2, n, true);
        for (x, y) in c1.iter().zip(&c2) {
            assert!(
                (x - y).abs() <= 1e-5 * (k as f32).sqrt() * (1.0 + y.abs()),
                "{x} vs {y} for {m}x{n}x{k}"
            );
        }
    }
}

#[test]
fn gemv_matches_reference_all_kernel_sets() {
    let mut rng = Rng::new(7);
    for &(k, n) in &[
        (1, 1),
        (3, 5),
        (784, 128),
        (128, 10),
        (17, 33),
        (5, 16),
        (512, 64),
        (9, 32),
        (7, 31),
        (20, 47),
    ] {
        let w = rng.signed(k * n, 1.0);
        let dense_x = rng.signed(k, 1.0);
        // Also a mostly-zero input (like a digit's background) to take the sparse-input path,
        // and an all-zero one (nothing to read at all).
        let sparse_x: Vec<f32> = dense_x
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 5 == 2 { v } else { 0.0 })
            .collect();
        let zero_x = vec![0.0f32; k];
        let bias = rng.signed(n, 1.0);
        for (x, relu) in [
            (&dense_x, false),
            (&dense_x, true),
            (&sparse_x, false),
            (&sparse_x, true),
            (&zero_x, false),
        ] {
            for ks in KernelSet::available() {
                let packed = ks.pack_b(k, n, MatRef::row_major(&w, n));
                let mut y = vec![f32::NAN; n + 3];
                ks.gemv(&x, &packed, Some(&bias), relu, &mut y);
                for j in 0..n {
                    let mut want = bias[j] as f64;
                    let mut scale = want.abs();
                    for i in 0..k {
                        want += x[i] as f64 * w[i * n + j] as f64;
                        scale += (x[i] * w[i * n + j]).abs() as f64;
                    }
                    if relu {
                        want = want.max(0.0);
                    }
                    assert!(
                        (y[j] as f64 - want).abs() <= 1e-5 * scale + 1e-6,
                        "{}: y[{j}] = {}, want {want} (k{k} n{n} relu{relu})",
                        ks.name(),
                        y[j]
                    );
                }
                assert!(
                    y[n..].iter().all(|v| v.is_nan()),
                    "{}: gemv wrote past n",
                    ks.name()
                );
            }
        }
    }
}

#[test]
fn maxpool_matches_reference_all_kernel_sets() {
    let mut rng = Rng::new(9);
    let geoms = [
        (16, 24, 24, [2, 2], [2, 2]),
        (32, 8, 8, [2, 2], [2, 2]),
        // 2x2 windows with whole 8-channel vectors take the written-out x86 path: other
        // strides, odd sizes, 8 and 24 channels.
        (24, 7, 9, [2, 2], [1, 1]),
        (8, 5, 6, [2, 2], [2, 1]),
        (40, 5, 5, [2, 2], [3, 2]),
        (1, 28, 28, [2, 2], [2, 2]),
        (17, 9, 7, [3, 3], [2, 2]),
        (12, 14, 14, [3, 2], [1, 3]),
        (3, 5, 5, [5, 5], [1, 1]),
    ];
    for &(c, h, w, kernel, stride) in &geoms {
        let g = PoolGeom::new(c, h, w, kernel, stride).expect("test geometry fits");
        let src = rng.signed(c * h * w, 1.0);
        for ks in KernelSet::available() {
            let mut dst = vec![f32::NAN; g.out_len()];
            ks.maxpool_hwc(&src, &g, &mut dst);
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for ch in 0..c {
                        let mut want = f32::NEG_INFINITY;
                        for ky in 0..kernel[0] {
                            for kx in 0..kernel[1] {
                                want = want.max(
                                    src[((oy * stride[0] + ky) * w + ox * stride[1] + kx) * c + ch],
                                );
                            }
                        }
                        assert_eq!(
                            dst[(oy * g.ow + ox) * c + ch],
                            want,
                            "{} pool {c}x{h}x{w} {kernel:?}",
                            ks.name()
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn gemm_random_strided_views(
        m in 0usize..40, n in 0usize..70, k in 0usize..300,
        ta: bool, tb: bool, pad in 0usize..4, accumulate: bool, seed: u64,
    ) {
        check(&Case { m, n, k, ta, tb, pad, accumulate, seed });
    }
}
