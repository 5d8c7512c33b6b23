//! `generic_maxpool_u8`: max pooling over one HWC sample of u8 codes (an int8 value between
//! integer steps, `core/runtime/QUANT.md`). Dequantizing is increasing in the code (`scale > 0`),
//! so the max of the codes dequantizes to the max of the f32 values: the same bits as pooling
//! the f32 grid values. One kernel for every set: the channel loop is byte lanes that LLVM
//! vectorizes (`pmaxub` on x86_64's SSE2 baseline, `i8x16.max_u` with simd128).

use crate::PoolGeom;

/// Panics when `src` or `dst` is shorter than `g` says.
pub fn generic_maxpool_u8(src: &[u8], dst: &mut [u8], g: &PoolGeom) {
    let c = g.c;
    assert!(src.len() >= g.h * g.w * c && dst.len() >= g.oh * g.ow * c, "maxpool_u8: slices too short");
    assert!(g.oh == 0 || (g.oh - 1) * g.sh + g.kh <= g.h, "maxpool_u8: window rows past the input");
    assert!(g.ow == 0 || (g.ow - 1) * g.sw + g.kw <= g.w, "maxpool_u8: window columns past the input");
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let out = &mut dst[(oy * g.ow + ox) * c..][..c];
            out.fill(0);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let at = ((oy * g.sh + ky) * g.w + ox * g.sw + kx) * c;
                    for (o, &v) in out.iter_mut().zip(&src[at..at + c]) {
                        *o = (*o).max(v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pooling_the_dequantized_values() {
        // 2 channels, 5×5, 2×2 windows at stride 2 (floor): codes vs their f32 grid values.
        let g = PoolGeom { c: 2, h: 5, w: 5, kh: 2, kw: 2, sh: 2, sw: 2, oh: 2, ow: 2 };
        let src: Vec<u8> = (0..50u32).map(|i| (i * 97 % 256) as u8).collect();
        let mut dst = vec![7u8; 8];
        generic_maxpool_u8(&src, &mut dst, &g);
        let deq = |q: u8| (i32::from(q) - 3) as f32 * 0.02;
        let fsrc: Vec<f32> = src.iter().map(|&q| deq(q)).collect();
        let mut fdst = vec![0.0f32; 8];
        // SAFETY: slices fit g.
        unsafe { crate::generic::generic_maxpool_f32::generic_maxpool_f32(&fsrc, &mut fdst, &g) };
        let got: Vec<u32> = dst.iter().map(|&q| deq(q).to_bits()).collect();
        let want: Vec<u32> = fdst.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }
}
