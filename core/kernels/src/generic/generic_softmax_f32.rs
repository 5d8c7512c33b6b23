//! Numerically stable softmax over rows. Not ISA-specific: the output layers here are
//! tiny (10 classes), so the `exp` calls, not the arithmetic, are the cost.

/// Softmax of each `len`-long row of `x`, in place: `exp(x - max) / sum`. Subtracting the row
/// maximum keeps `exp` in `(0, 1]`, so large logits cannot overflow to `inf`/NaN.
pub fn softmax_rows(x: &mut [f32], len: usize) {
    if len == 0 {
        return;
    }
    for row in x.chunks_exact_mut(len) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            // libm's expf, not `f32::exp` (the platform's libm, which differs between native
            // and wasm in the last bit of ~1 % of inputs): one exp on every host, so a model
            // whose other steps are exact (the int8 ones) gives the same bits everywhere.
            *v = libm::expf(*v - max);
            sum += *v;
        }
        // sum >= 1 (the max element contributes exp(0) = 1), so the division is safe.
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}
