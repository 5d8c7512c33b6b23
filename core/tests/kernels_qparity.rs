//! Integer kernel suite: every available kernel set's int8 GEMM (`<isa>_qmmm_i8`) against a
//! scalar i64 reference, on edge sizes (k not a multiple of 4/16/64, batch 1, 3, 17, 1024,
//! widths around the 16-column panel) and on extreme values (activations 0/255, weights
//! ±127), where a saturating instruction would show. Sums must be equal, not close.

use mdeploy_core::kernels::qgemm::QMAX_MR;
use mdeploy_core::kernels::quant::MAX_QK;
use mdeploy_core::kernels::KernelSet;
use mdeploy_testkit::Rng;

fn reference(m: usize, k: usize, n: usize, a: &[u8], lda: usize, w: &[i8]) -> Vec<i32> {
    let mut c = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: i64 = (0..k).map(|p| i64::from(a[i * lda + p]) * i64::from(w[p * n + j])).sum();
            c[i * n + j] = i32::try_from(s).expect("reference sum fits i32");
        }
    }
    c
}

/// Runs every set on one case; `fill` picks the operands.
fn check(m: usize, k: usize, n: usize, a: &[u8], lda: usize, w: &[i8], what: &str) {
    let want = reference(m, k, n, a, lda, w);
    for ks in KernelSet::available() {
        let b = ks.qpack_b(k, n, w);
        assert_eq!(b.col_sums().len(), n);
        // Output with a row stride wider than n, pre-filled with garbage that must survive
        // outside the written columns.
        let ldc = n + 3;
        let mut c = vec![i32::MIN; m * ldc];
        let mut apanel = vec![0i32; QMAX_MR * b.k_padded()];
        ks.qgemm(m, a, lda, &b, &mut c, ldc, &mut apanel);
        for i in 0..m {
            assert_eq!(&c[i * ldc..i * ldc + n], &want[i * n..(i + 1) * n], "{} ({}) {what}: m {m} k {k} n {n}, row {i}", ks.name(), ks.qmmm_name());
            assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == i32::MIN), "{} wrote past n", ks.name());
        }
    }
}

fn random_case(rng: &mut Rng, m: usize, k: usize, n: usize, extreme: bool) {
    let lda = k + rng.below(5);
    let a: Vec<u8> = (0..m * lda)
        .map(|_| if extreme { [0u8, 255][rng.below(2)] } else { rng.below(256) as u8 })
        .collect();
    let w: Vec<i8> = (0..k * n)
        .map(|_| if extreme { [-127i8, 127][rng.below(2)] } else { (rng.below(255) as i32 - 127) as i8 })
        .collect();
    check(m, k, n, &a, lda, &w, if extreme { "extreme" } else { "random" });
}

#[test]
fn every_set_matches_the_scalar_reference_on_edge_sizes() {
    let mut rng = Rng::new(12);
    for &k in &[1usize, 2, 3, 4, 5, 7, 15, 16, 17, 63, 64, 65, 255, 400, 784] {
        for &n in &[1usize, 10, 15, 16, 17, 33, 64] {
            for &m in &[1usize, 3, 5, 6, 7, 12, 13, 17] {
                random_case(&mut rng, m, k, n, false);
            }
        }
    }
    // Rows at a stride that is a multiple of 4 with random bytes between k and the next
    // multiple of 4: the word-wise A packing reads them, the zero-padded weights cancel them.
    for &k in &[1usize, 5, 17, 63, 785] {
        let kp = k.div_ceil(4) * 4;
        let (m, n) = (13, 17);
        let a: Vec<u8> = (0..m * kp).map(|_| rng.below(256) as u8).collect();
        let w: Vec<i8> = (0..k * n).map(|_| (rng.below(255) as i32 - 127) as i8).collect();
        check(m, k, n, &a, kp, &w, "word-wise A");
    }
    // Batch 1024 on the MLP's shapes.
    random_case(&mut rng, 1024, 784, 128, false);
    random_case(&mut rng, 1024, 128, 10, false);
}

#[test]
fn extreme_values_never_saturate() {
    let mut rng = Rng::new(13);
    for &(m, k, n) in &[(1usize, 1usize, 1usize), (3, 17, 16), (17, 65, 17), (13, 784, 33)] {
        random_case(&mut rng, m, k, n, true);
    }
    // The worst case of every instruction: all 255 × all 127 (and × −127) at the largest k,
    // where the sum reaches 255 · 127 · 32768 = 1,061,191,680.
    let (m, k, n) = (3, MAX_QK, 17);
    let a = vec![255u8; m * k];
    for wv in [127i8, -127] {
        let w = vec![wv; k * n];
        check(m, k, n, &a, k, &w, "worst case");
    }
    // 255 × 127 in both of a pair: vpmaddubsw would saturate at 32,767 here.
    let a = vec![255u8; 2 * 4];
    let w = vec![127i8; 4];
    check(2, 4, 1, &a, 4, &w, "pair");
}

#[test]
fn packing_refuses_what_the_kernels_cannot_take() {
    let ks = KernelSet::generic();
    // −128 is outside the symmetric range (−128 · 255 pairs could saturate an i16 sum).
    let r = std::panic::catch_unwind(|| ks.qpack_b(1, 1, &[i8::MIN]));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(|| ks.qpack_b(MAX_QK + 1, 1, &vec![0i8; MAX_QK + 1]));
    assert!(r.is_err());
}
