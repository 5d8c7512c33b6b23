//! The finiteness scan every load runs over every f32 weight (reader, graph validation, lowering).

/// Index of the first NaN or infinity in `v`, if any.
///
/// Why not `v.iter().position(|x| !x.is_finite())`: that early-exit loop does not vectorize, and on
/// a cold wasm start it runs in V8's baseline code, where it was the largest single cost of
/// `Model.load` for the MLP (wasm/DESIGN.md, "Cold start"). Here each block of 256 values is
/// OR-reduced without branches (an all-ones exponent means NaN or infinity), which LLVM turns
/// into SIMD on every target; only a block that holds a bad value is searched element by element.
///
/// Never inlined: the loop is hot on a cold start (every weight, up to three times), so V8
/// optimizes whatever function holds it; kept apart, that is these few hundred bytes and not the
/// graph validation or reader around it (wasm/DESIGN.md, "Cold start").
#[inline(never)]
pub fn first_non_finite(v: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    const BLOCK: usize = 256;
    for (b, block) in v.chunks(BLOCK).enumerate() {
        let mut bad = 0u32;
        for x in block {
            bad |= u32::from(x.to_bits() & EXP == EXP);
        }
        if bad != 0 {
            return block.iter().position(|x| !x.is_finite()).map(|i| b * BLOCK + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn finds_the_first_bad_value_at_every_position_of_a_block() {
        assert_eq!(first_non_finite(&[]), None);
        for n in [1usize, 255, 256, 257, 1000] {
            let ok: Vec<f32> = (0..n).map(|i| i as f32 * -1.5e30).collect();
            assert_eq!(first_non_finite(&ok), None, "n={n}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0x7fc0_0001)] {
                for at in [0, n / 2, n - 1] {
                    let mut v = ok.clone();
                    v[at] = bad;
                    if at + 1 < n {
                        v[n - 1] = f32::NAN; // a later bad value must not win
                    }
                    assert_eq!(first_non_finite(&v), Some(at), "n={n} at={at} bad={bad}");
                }
            }
        }
        // The largest finite values and subnormals are finite.
        assert_eq!(first_non_finite(&[f32::MAX, f32::MIN, f32::MIN_POSITIVE, f32::from_bits(1)]), None);
    }
}
