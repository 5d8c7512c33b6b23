//! Binary kernel suite: every available kernel set's binary GEMM (`<isa>_bmmm_b1`) against a
//! scalar reference that multiplies ±1 values as i64 (no bits, no popcount), on edge sizes
//! (k = 1, 63, 64, 65, 127, 784: a partial, exact and one-past word; n around the 8-column
//! panel; m = 1, 3, around every set's MR, and 1024). Sums must be equal, not close. Every
//! binary kernel the CPU can run (`KernelSet::binary_variants`), not only the ones a set picks.

use mdeploy_core::kernels::{bpack_rows, KernelSet, MAX_BK};
use mdeploy_testkit::Rng;

/// `Σ_p sign(x[i][p]) · w[p][j]` with sign(x) = +1 for x >= 0 else −1, in i64.
fn reference(m: usize, k: usize, n: usize, x: &[f32], ldx: usize, plus: &[bool]) -> Vec<i32> {
    let pm = |b: bool| if b { 1i64 } else { -1 };
    let mut c = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: i64 = (0..k).map(|p| pm(x[i * ldx + p] >= 0.0) * pm(plus[p * n + j])).sum();
            c[i * n + j] = i32::try_from(s).expect("fits");
        }
    }
    c
}

fn check(m: usize, k: usize, n: usize, x: &[f32], ldx: usize, plus: &[bool], what: &str) {
    let want = reference(m, k, n, x, ldx, plus);
    let words = k.div_ceil(64);
    // A rows at a stride one word wider than needed, the spare word full of ones: a kernel that
    // read past `words` would count them.
    let lda = words + 1;
    let mut a = vec![u64::MAX; m * lda];
    let mut packed = vec![0u64; m * words];
    bpack_rows(m, k, x, ldx, &mut packed);
    for i in 0..m {
        a[i * lda..i * lda + words].copy_from_slice(&packed[i * words..(i + 1) * words]);
        // Padding bits past k are zero (the kernels rely on it: see bgemm.rs).
        if k % 64 != 0 {
            assert_eq!(packed[i * words + words - 1] >> (k % 64), 0, "bpack_rows left a bit past k");
        }
    }
    for ks in KernelSet::available().iter().flat_map(|k| k.binary_variants()) {
        let b = ks.bpack_b(k, n, plus);
        let ldc = n + 3;
        let mut c = vec![i32::MIN; m * ldc];
        ks.bgemm(m, &a, lda, &b, &mut c, ldc);
        for i in 0..m {
            assert_eq!(&c[i * ldc..i * ldc + n], &want[i * n..(i + 1) * n], "{} ({}) {what}: m {m} k {k} n {n}, row {i}", ks.name(), ks.bmmm_name());
            assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == i32::MIN), "{} wrote past n", ks.bmmm_name());
        }
    }
}

fn random_case(rng: &mut Rng, m: usize, k: usize, n: usize, what: &str, fill: &dyn Fn(&mut Rng) -> (f32, bool)) {
    let ldx = k + rng.below(3);
    let mut x = Vec::with_capacity(m * ldx);
    for _ in 0..m * ldx {
        x.push(fill(rng).0);
    }
    let plus: Vec<bool> = (0..k * n).map(|_| fill(rng).1).collect();
    check(m, k, n, &x, ldx, &plus, what);
}

fn uniform(rng: &mut Rng) -> (f32, bool) {
    (rng.below(2001) as f32 / 1000.0 - 1.0, rng.below(2) == 1)
}

#[test]
fn every_set_matches_the_scalar_reference_on_edge_sizes() {
    let mut rng = Rng::new(21);
    for &k in &[1usize, 2, 63, 64, 65, 127, 128, 129, 511, 784] {
        for &n in &[1usize, 7, 8, 9, 15, 16, 17, 33] {
            for &m in &[1usize, 2, 3, 4, 5, 7, 8, 9, 17] {
                random_case(&mut rng, m, k, n, "random", &uniform);
            }
        }
    }
    // Batch 1024 on a binary MLP layer's shapes.
    random_case(&mut rng, 1024, 512, 512, "batch 1024", &uniform);
    random_case(&mut rng, 1024, 784, 10, "batch 1024", &uniform);
    for ks in KernelSet::available() {
        eprintln!("{}: {}", ks.name(), ks.bmmm_name());
    }
}

#[test]
fn all_agree_all_differ_and_signed_zeros() {
    let mut rng = Rng::new(22);
    // Every product +1 (dot = k), every product −1 (dot = −k), and −0.0 counted as +1.
    random_case(&mut rng, 5, 129, 9, "all +1", &|_| (0.5, true));
    random_case(&mut rng, 5, 129, 9, "all -1", &|_| (-0.5, true));
    random_case(&mut rng, 3, 65, 8, "-0 is +1", &|_| (-0.0, true));
    // NaN packs as −1 (it is not >= 0), the same on every set.
    random_case(&mut rng, 3, 70, 8, "NaN", &|r| (if r.below(2) == 0 { f32::NAN } else { 1.0 }, r.below(2) == 0));
    // Hand case: k = 3, x = (1, -1, 0) → (+1, −1, +1); w column (+1, +1, −1) → 1 − 1 − 1 = −1.
    for ks in KernelSet::available().iter().flat_map(|k| k.binary_variants()) {
        let mut a = [0u64];
        bpack_rows(1, 3, &[1.0, -1.0, 0.0], 3, &mut a);
        assert_eq!(a[0], 0b101);
        let b = ks.bpack_b(3, 1, &[true, true, false]);
        let mut c = [0i32];
        ks.bgemm(1, &a, 1, &b, &mut c, 1);
        assert_eq!(c[0], -1, "{}", ks.bmmm_name());
    }
}

#[test]
fn largest_k_is_exact() {
    // k = MAX_BK with every product −1: the dot is −65,536, where a narrow accumulator would wrap.
    let mut rng = Rng::new(23);
    random_case(&mut rng, 3, MAX_BK, 9, "MAX_BK all -1", &|_| (-1.0, true));
    random_case(&mut rng, 2, MAX_BK, 8, "MAX_BK random", &uniform);
}

/// Every set's sign-packer (`<isa>_bpack_f32`, `KernelSet::bpack_rows`), with and without a
/// fused affine, against a scalar reference that sets one bit per value from `x · s + t >= 0`
/// (f32 product, then f32 sum: the Affine step's rounding). Edge lengths around the packers'
/// 4-, 8- and 16-lane chunks and the 64-bit word, 784 (the pixels: 12 words and 16 bits);
/// values hitting the threshold exactly (`x · s + t` = +0 or −0), NaN, and the spare words after
/// each row full of ones (bits past k must be written 0, and nothing past the row touched).
#[test]
fn every_sign_packer_matches_the_scalar_rule_with_and_without_an_affine() {
    let mut rng = Rng::new(24);
    for &k in &[1usize, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 70, 100, 127, 129, 784] {
        let m = 3;
        let ldx = k + rng.below(5);
        let words = k.div_ceil(64);
        let s: Vec<f32> = (0..k).map(|_| rng.below(4001) as f32 / 1000.0 - 2.0).collect();
        let t: Vec<f32> = (0..k).map(|_| rng.below(2001) as f32 / 1000.0 - 1.0).collect();
        let x: Vec<f32> = (0..m * ldx)
            .map(|i| match rng.below(8) {
                // x · s + t = 0 exactly where s = 1 and x = −t (and x = t = 0 gives +0).
                0 => -t[i % ldx % k],
                1 => 0.0,
                2 => -0.0,
                3 => f32::NAN,
                _ => rng.below(2001) as f32 / 1000.0 - 1.0,
            })
            .collect();
        // Some positions with scale 1 so the exact-threshold values above hit 0.
        let s: Vec<f32> = s.iter().enumerate().map(|(p, &v)| if p % 3 == 0 { 1.0 } else { v }).collect();
        for pre in [None, Some((s.as_slice(), t.as_slice()))] {
            let mut want = vec![0u64; m * words];
            for r in 0..m {
                for p in 0..k {
                    let v = x[r * ldx + p];
                    let v = match pre {
                        Some((s, t)) => v * s[p] + t[p],
                        None => v,
                    };
                    if v >= 0.0 {
                        want[r * words + p / 64] |= 1 << (p % 64);
                    }
                }
            }
            for ks in KernelSet::available() {
                let mut got = vec![u64::MAX; m * words + 2];
                ks.bpack_rows(m, k, &x, ldx, pre, &mut got);
                let what = format!("{} ({}) k {k} affine {}", ks.name(), ks.bpack_name(), pre.is_some());
                assert_eq!(&got[..m * words], &want[..], "{what}");
                assert_eq!(&got[m * words..], &[u64::MAX; 2], "{what}: wrote past the rows");
            }
        }
    }
}

/// Every sign-packer reports whether the values it read were all finite (the binary-input
/// plan's input check rides on it: `Plan::run`): one NaN, +inf or −inf at each position of
/// rows around every lane count and word (the vector body, the masked or scalar tail), the
/// largest finite values and subnormals (finite), and values outside the rows (the stride's
/// gap, never read) that must not count.
#[test]
fn sign_packers_report_non_finite_values() {
    for &k in &[1usize, 3, 4, 5, 8, 15, 16, 17, 63, 64, 65, 100, 784] {
        let (m, ldx) = (2usize, k + 3);
        let base: Vec<f32> = (0..m * ldx).map(|i| match i % 4 { 0 => f32::MAX, 1 => -f32::MIN_POSITIVE / 2.0, 2 => 0.5, _ => -0.0 }).collect();
        let mut gap = base.clone();
        for r in 0..m {
            gap[r * ldx + k..(r + 1) * ldx].fill(f32::NAN);
        }
        let mut out = vec![0u64; m * k.div_ceil(64)];
        for ks in KernelSet::available() {
            let what = format!("{} ({}) k {k}", ks.name(), ks.bpack_name());
            assert!(ks.bpack_rows(m, k, &gap[..(m - 1) * ldx + k], ldx, None, &mut out), "{what}: finite rows (NaN only in the gaps)");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for r in 0..m {
                    for p in 0..k {
                        let mut x = base.clone();
                        x[r * ldx + p] = bad;
                        for pre in [None, Some((&vec![1.0f32; k][..], &vec![0.0f32; k][..]))] {
                            assert!(!ks.bpack_rows(m, k, &x, ldx, pre, &mut out), "{what}: {bad} at row {r} position {p} missed");
                        }
                    }
                }
            }
        }
    }
}

/// Every set's `bgemm_sign` (the `vpopcntq` and wasm sign tiles, the generic compare of the
/// others) against the set's own `bgemm` products put through the rule by hand: bit j of row i
/// is `lo[j] <= dot <= hi[j]`. Rules at the products' own values (ties on both ends), empty
/// intervals, "always" (MIN..=MAX), one-sided ones; n around the 8-column panel and across a
/// 64-bit output word; the output's spare words full of ones must come back 0 past n and
/// untouched past the row's words.
#[test]
fn every_sign_tile_matches_its_products_through_the_rule() {
    use mdeploy_core::kernels::bgemm::b_words;
    let mut rng = Rng::new(25);
    for &(m, k, n) in &[(1usize, 1usize, 1usize), (3, 63, 7), (5, 65, 8), (9, 784, 9), (17, 256, 70), (8, 2048, 16), (4, 1985, 130)] {
        let x: Vec<f32> = (0..m * k).map(|_| uniform(&mut rng).0).collect();
        let plus: Vec<bool> = (0..k * n).map(|_| rng.below(2) == 1).collect();
        let words = k.div_ceil(64);
        let mut a = vec![0u64; m * words];
        bpack_rows(m, k, &x, k, &mut a);
        for ks in KernelSet::available().iter().flat_map(|k| k.binary_variants()) {
            let b = ks.bpack_b(k, n, &plus);
            let mut dot = vec![0i32; m * n];
            ks.bgemm(m, &a, words, &b, &mut dot, n);
            // Per column a rule built from a product of that column (so ties occur).
            let (mut lo, mut hi) = (Vec::new(), Vec::new());
            for j in 0..n {
                let d = dot[rng.below(m) * n + j];
                let (l, h) = match rng.below(6) {
                    0 => (d, d),
                    1 => (d, i32::MAX),
                    2 => (i32::MIN, d),
                    3 => (d + 1, d),
                    4 => (i32::MIN, i32::MAX),
                    _ => (d - 2, d + 2),
                };
                lo.push(l);
                hi.push(h);
            }
            let rule = mdeploy_core::kernels::BSignRule::new(lo.clone(), hi.clone());
            let owords = b_words(n);
            let ldo = owords + 1;
            let mut out = vec![u64::MAX; m * ldo];
            ks.bgemm_sign(m, &a, words, &b, &rule, &mut out, ldo);
            for i in 0..m {
                for j in 0..owords * 64 {
                    let want = j < n && lo[j] <= dot[i * n + j] && dot[i * n + j] <= hi[j];
                    let got = out[i * ldo + j / 64] >> (j % 64) & 1 == 1;
                    assert_eq!(got, want, "{} ({}): m {m} k {k} n {n}, row {i}, column {j}", ks.name(), ks.bmmm_name());
                }
                assert_eq!(out[i * ldo + owords], u64::MAX, "{} wrote past the row's words", ks.bmmm_name());
            }
        }
    }
}

/// Every set's fused binary epilogue + quantizer (`KernelSet::bepilogue_q`: the AVX-512 and
/// wasm kernels; the others decline) against the scalar chain the unfused steps compute: `y =
/// act(alpha · dot + bias)`, `y = act'(y · scale + shift)` (f32 products then sums), `code =
/// q.quantize(y)` (the division). Row lengths around 4 and 16 lanes; alpha 0, bias NaN and −0,
/// scale 0, products on the quantizer's half-way points, each activation none or ReLU, with
/// and without the post; a scale outside the FMA quantizer's range must decline or be exact.
#[test]
fn binary_epilogue_codes_match_the_scalar_chain() {
    use mdeploy_core::kernels::quant::QParams;
    use mdeploy_core::kernels::Act;
    let mut rng = Rng::new(26);
    let f = |r: &mut Rng| (r.below(4001) as f32 - 2000.0) / 256.0;
    for &n in &[1usize, 3, 4, 5, 15, 16, 17, 31, 33, 64, 256, 10] {
        for case in 0..24 {
            let dot: Vec<i32> = (0..n).map(|_| rng.below(1569) as i32 - 784).collect();
            let alpha: Vec<f32> = (0..n).map(|c| if c % 7 == 3 { 0.0 } else { f(&mut rng).abs() / 64.0 }).collect();
            let bias: Vec<f32> = (0..n).map(|c| match c % 11 { 5 => f32::NAN, 6 => -0.0, _ => f(&mut rng) }).collect();
            let scale: Vec<f32> = (0..n).map(|c| if c % 5 == 2 { 0.0 } else { f(&mut rng) / 8.0 }).collect();
            let shift: Vec<f32> = (0..n).map(|c| if c % 9 == 4 { -0.0 } else { f(&mut rng) }).collect();
            // Scales of 2^-3 put many y on half-way points (y has few fraction bits).
            let q = match case % 4 {
                0 => QParams { scale: 0.125, zero_point: 0 },
                1 => QParams { scale: 0.0390625, zero_point: 17 },
                2 => QParams { scale: 1e-30, zero_point: 128 },
                _ => QParams { scale: 0.07, zero_point: 255 },
            };
            let act = if case & 4 == 0 { Act::None } else { Act::Relu };
            let pact = if case & 8 == 0 { Act::None } else { Act::Relu };
            let with_post = case & 16 == 0;
            let relu = |a: Act, y: f32| if a == Act::Relu { y.max(0.0) } else { y };
            let want: Vec<u8> = (0..n)
                .map(|c| {
                    let mut y = relu(act, alpha[c] * dot[c] as f32 + bias[c]);
                    if with_post {
                        y = relu(pact, y * scale[c] + shift[c]);
                    }
                    q.quantize(y)
                })
                .collect();
            let post = with_post.then(|| (scale.as_slice(), shift.as_slice(), pact));
            for ks in KernelSet::available() {
                let mut out = vec![0xa5u8; n];
                if ks.bepilogue_q(&dot, &alpha, &bias, act, post, q, &mut out) {
                    assert_eq!(out, want, "{}: n {n} case {case}", ks.name());
                } else {
                    assert!(out.iter().all(|&b| b == 0xa5), "{} declined but wrote", ks.name());
                }
            }
        }
    }
}
