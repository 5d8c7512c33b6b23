//! Per-output-channel symmetric weight grids for 2- to 8-bit weights (`core/runtime/QUANT.md`,
//! "n-bit weights"): the one rule both the post-training quantizer (`mdeploy quantize`) and
//! quantization-aware training (the trainer's fake-quantized forward) use, so a model trained
//! with QAT is stored on exactly the grid it was trained on.
//!
//! Codes are `q = clamp(round_half_even(w / s), −qmax, qmax)` with `qmax = 2^(bits−1) − 1`
//! (zero point 0: the integer kernels' inner loop stays a plain dot product, and the grid is
//! symmetric, so a channel's sign does not matter). Two's complement `bits` bits could also
//! hold `−2^(bits−1)`, but only on the negative side; a symmetric grid cannot use it, so 2 bits
//! are ternary (−1, 0, +1) and 4 bits are −7..=7.
//!
//! The scale:
//! * 8 bits: `s = max|w| / 127` (the int8 rule since the first slice; its outputs are pinned by
//!   digests in `plan_int8.rs`).
//! * fewer bits: the clip that minimises the squared error `Σ (w − s·q)²` over the channel,
//!   searched over `s = (j / 100) · max|w| / qmax` for `j` in 1..=100 (smallest error wins,
//!   ties to the larger clip). With 3 or 15 levels, clipping the few largest weights buys a
//!   finer step for the many small ones; `max|w|` alone leaves most 2-bit weights at 0.
//! * a channel of zeros (or without a finite non-zero weight) gets scale 1 and codes 0.

/// Largest code of a symmetric `bits`-bit grid: `2^(bits−1) − 1` (1 for 2 bits, 7 for 4).
pub fn qmax(bits: u8) -> i32 {
    (1i32 << (bits.clamp(2, 8) - 1)) - 1
}

/// The code of `w` on the grid of step `s` (`s` finite and positive).
#[inline]
pub fn code(w: f32, s: f32, qmax: i32) -> i8 {
    let q = (w / s).round_ties_even();
    // NaN (not produced by a finite w) would cast to 0: the clamp keeps the rest in range.
    q.clamp(-(qmax as f32), qmax as f32) as i8
}

/// Per-channel scales and codes of a weight tensor whose element `i` belongs to channel
/// `(i / inner) % channels` (Dense `[in, out]`: `inner` 1, `channels` = out; Conv2d OIHW:
/// `inner` = I·H·W, `channels` = O). `bits` in 2..=8. Returns `(codes, scales)`.
pub fn channel_grid(w: &[f32], channels: usize, inner: usize, bits: u8) -> (Vec<i8>, Vec<f32>) {
    assert!((2..=8).contains(&bits), "weight bits {bits} outside 2..=8");
    let channels = channels.max(1);
    let inner = inner.max(1);
    let qm = qmax(bits);
    let chan = |i: usize| (i / inner) % channels;
    let mut maxabs = vec![0.0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        if v.is_finite() {
            let c = chan(i);
            maxabs[c] = maxabs[c].max(v.abs());
        }
    }
    let scales: Vec<f32> = if bits == 8 {
        maxabs.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect()
    } else {
        // Gather each channel's weights once (a Dense channel is a strided column).
        let mut per: Vec<Vec<f32>> = vec![Vec::new(); channels];
        for (i, &v) in w.iter().enumerate() {
            per[chan(i)].push(v);
        }
        per.iter()
            .zip(&maxabs)
            .map(|(ws, &m)| {
                // maxabs is over finite values from 0: never NaN.
                if m <= 0.0 {
                    return 1.0;
                }
                let mut best = (f64::INFINITY, 1.0f32);
                for j in (1..=100u32).rev() {
                    let s = (j as f32 / 100.0) * m / qm as f32;
                    if !(s > 0.0 && s.is_finite()) {
                        continue;
                    }
                    let err: f64 = ws
                        .iter()
                        .map(|&v| {
                            let d = f64::from(v) - f64::from(s * f32::from(code(v, s, qm)));
                            d * d
                        })
                        .sum();
                    if err < best.0 {
                        best = (err, s);
                    }
                }
                best.1
            })
            .collect()
    };
    let codes = w.iter().enumerate().map(|(i, &v)| code(v, scales[chan(i)], qm)).collect();
    (codes, scales)
}

/// Fake quantization for training (straight-through estimator): replaces `w` by its
/// dequantized grid values `s·q` and returns the per-element mask of the STE, 1.0 where
/// `|w| ≤ qmax·s` (inside the clip range: the gradient passes) and 0.0 where the weight was
/// clipped (the gradient of a clamp is zero there).
pub fn fake_quantize_weights(w: &mut [f32], channels: usize, inner: usize, bits: u8) -> Vec<f32> {
    let (codes, scales) = channel_grid(w, channels, inner, bits);
    let qm = qmax(bits) as f32;
    let channels = channels.max(1);
    let inner = inner.max(1);
    let mut pass = Vec::with_capacity(w.len());
    for (i, (v, q)) in w.iter_mut().zip(codes).enumerate() {
        let s = scales[(i / inner) % channels];
        pass.push(if v.abs() <= qm * s { 1.0 } else { 0.0 });
        *v = s * f32::from(q);
    }
    pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ternary_scale_hand_case() {
        // One channel (1, .5, .5, .5, .5) at 2 bits (codes −1..=1). With step s in (0.5, 1):
        // codes (1, 1, 1, 1, 1), error (1 − s)² + 4·(0.5 − s)², least at s = 0.6 (error 0.2);
        // s = max = 1 would round the 0.5s to 0 (half to even): error 1.0.
        let (q, s) = channel_grid(&[1.0, 0.5, 0.5, 0.5, 0.5], 1, 5, 2);
        assert_eq!(s, vec![0.6]);
        assert_eq!(q, vec![1, 1, 1, 1, 1]);
        // (1, 0.1): clipping only loses, s = max = 1, codes (1, 0).
        let (q, s) = channel_grid(&[1.0, 0.1], 1, 2, 2);
        assert_eq!((q, s), (vec![1, 0], vec![1.0]));
    }

    #[test]
    fn eight_bits_keep_the_maxabs_rule_and_zero_channels_get_scale_one() {
        // Dense [2 in, 3 out] (inner 1): column 1 is all zeros.
        let w = [1.0, 0.0, -0.2, -0.5, 0.0, 0.1];
        let (q, s) = channel_grid(&w, 3, 1, 8);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 0.2 / 127.0]);
        assert_eq!(q, vec![127, 0, -127, -64, 0, 64]);
        let (q, s) = channel_grid(&w, 3, 1, 4);
        assert_eq!(s[1], 1.0);
        assert_eq!((q[1], q[4]), (0, 0));
        assert!(q.iter().all(|&c| (-7..=7).contains(&c)), "{q:?}");
    }

    #[test]
    fn ste_mask_is_one_inside_the_clip_range_and_zero_outside() {
        // 2 bits, one channel (1, .5, .5, .5, .5): s = 0.6, clip range |w| ≤ 0.6. The 1.0 is
        // clipped (gradient 0), the 0.5s are inside (gradient 1); values become s·q.
        let mut w = [1.0, 0.5, 0.5, -0.5, 0.5];
        let pass = fake_quantize_weights(&mut w, 1, 5, 2);
        assert_eq!(pass, vec![0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(w, [0.6, 0.6, 0.6, -0.6, 0.6]);
    }
}
