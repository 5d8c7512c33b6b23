//! The one comparison rule between an engine's `f32` outputs and the f64 [`reference`](crate::reference).
//!
//! Per sample: every probability within [`PROB_TOL`] of the reference, and the same argmax
//! wherever the reference's top-2 margin exceeds [`MARGIN`] (a near-tie may legitimately flip
//! in f32). The JS suites apply the same rule (`wasm/test/reference.mjs`).

/// Largest allowed |engine − reference| for any output value.
pub const PROB_TOL: f64 = 1e-4;
/// Top-2 margin of the reference above which the argmax must agree.
pub const MARGIN: f64 = 1e-4;

/// Index of the largest value (the first on ties).
pub fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b })
}

/// The reference's top-2 margin of one sample (0 for a single output).
pub fn top2_margin(row: &[f64]) -> f64 {
    let best = argmax(row);
    let second = row.iter().enumerate().filter(|&(j, _)| j != best).map(|(_, &v)| v).fold(f64::NEG_INFINITY, f64::max);
    if second.is_finite() { row[best] - second } else { 0.0 }
}

/// What a comparison measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub samples: usize,
    /// Largest |engine − reference| over every value.
    pub max_abs_diff: f64,
    /// Samples whose argmax had to agree (reference margin > [`MARGIN`]).
    pub argmax_checked: usize,
    /// Samples where the engine's argmax equals the label (when labels were given).
    pub correct: usize,
}

/// Compares `got` (engine, `n × classes`) with `want` (reference, same layout). `Err` names the
/// first sample that breaks the rule; `labels` (optional) only feeds [`Report::correct`].
pub fn compare(what: &str, got: &[f32], want: &[f64], classes: usize, labels: Option<&[u8]>) -> Result<Report, String> {
    if classes == 0 || got.len() != want.len() || got.len() % classes != 0 {
        return Err(format!("{what}: {} engine values vs {} reference values ({classes} per sample)", got.len(), want.len()));
    }
    let mut r = Report { samples: got.len() / classes, ..Report::default() };
    for s in 0..r.samples {
        let (g, w) = (&got[s * classes..(s + 1) * classes], &want[s * classes..(s + 1) * classes]);
        for (j, (&a, &b)) in g.iter().zip(w).enumerate() {
            let d = (a as f64 - b).abs();
            if !(d <= PROB_TOL) {
                return Err(format!("{what}: sample {s} output {j} is {a}, the reference says {b} (|diff| {d:.3e} > {PROB_TOL})"));
            }
            r.max_abs_diff = r.max_abs_diff.max(d);
        }
        if top2_margin(w) > MARGIN {
            r.argmax_checked += 1;
            if argmax(g) != argmax(w) {
                return Err(format!("{what}: sample {s} argmax {} but the reference's is {} (margin {:.3e})", argmax(g), argmax(w), top2_margin(w)));
            }
        }
        if labels.and_then(|l| l.get(s)).is_some_and(|&l| l as usize == argmax(g)) {
            r.correct += 1;
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_catches_drift_and_flips_but_not_near_ties() {
        let want = [0.2, 0.8, 0.5, 0.50005];
        let r = compare("t", &[0.2, 0.8, 0.50005, 0.5], &want, 2, Some(&[1, 0])).unwrap();
        assert_eq!((r.samples, r.argmax_checked, r.correct), (2, 1, 2));
        assert!(compare("t", &[0.2002, 0.8, 0.5, 0.5], &want, 2, None).unwrap_err().contains("sample 0 output 0"));
        assert!(compare("t", &[0.2, 0.8, f32::NAN, 0.5], &want, 2, None).is_err());
        let flip = compare("t", &[0.50001, 0.49999], &[0.499925, 0.500075], 2, None).unwrap_err();
        assert!(flip.contains("argmax"), "{flip}");
        assert!(compare("t", &[0.5], &want, 2, None).is_err());
    }
}
