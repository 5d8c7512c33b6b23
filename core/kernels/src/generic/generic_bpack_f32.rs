//! `generic_bpack_f32`: the scalar sign-packer (`bgemm.rs`), the reference every SIMD packer is
//! tested against. Bit `p % 64` of word `p / 64` is `v >= 0` where `v = x[p]`, or, with an
//! input affine, `v = x[p] · scale[p] + shift[p]` (the product rounded, then the sum: what an
//! `Affine` step followed by a `Sign` step computes, so the fused packer keeps their bits).

/// # Safety
/// As [`crate::bgemm::BPackFn`] (nothing beyond the slice lengths it checks).
pub(crate) unsafe fn generic_bpack_f32(x: &[f32], pre: Option<(&[f32], &[f32])>, out: &mut [u64]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    let mut bad = 0u32;
    for (w, o) in out.iter_mut().enumerate() {
        let lo = (w * 64).min(x.len());
        let hi = (lo + 64).min(x.len());
        let mut bits = 0u64;
        for &v in &x[lo..hi] {
            bad |= u32::from(v.to_bits() & EXP == EXP);
        }
        match pre {
            None => {
                for (i, &v) in x[lo..hi].iter().enumerate() {
                    bits |= u64::from(v >= 0.0) << i;
                }
            }
            Some((s, t)) => {
                for (i, ((&v, &s), &t)) in x[lo..hi].iter().zip(&s[lo..hi]).zip(&t[lo..hi]).enumerate() {
                    bits |= u64::from(v * s + t >= 0.0) << i;
                }
            }
        }
        *o = bits;
    }
    bad == 0
}
