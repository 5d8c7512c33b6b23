//! Input drift: a few statistics of each input row, a reference distribution of them recorded
//! in the model file, and the Population Stability Index (PSI) of live rows against it.
//!
//! The statistics ([`FEATURES`]) are chosen for image-like inputs in `0..=1` (ink = 1), cheap
//! enough for the serving hot path (one pass over the row) and each sensitive to one kind of
//! change a deployed digit model meets:
//!
//! | feature | what | moves when |
//! |---|---|---|
//! | `mean` | mean value | inverted colours, brighter/darker scans, noise |
//! | `std` | standard deviation | noise, blur, contrast |
//! | `ink` | fraction of values > 0.5 | inverted colours, thicker/thinner strokes |
//! | `row_centre`, `col_centre` | centre of mass, 0..1 of the side | a digit not centred (cropping, offsets) |
//!
//! Centre of mass stands in for a coarse 4×4 spatial mass: two numbers rather than 16 correlated
//! ones, and MNIST digits are centred by exactly that measure, so a shift moves it directly.
//! A row that is not a square image (its length not a perfect square) is read as one row of
//! pixels (`row_centre` is then 0).
//!
//! The reference is stored as one provenance extra, key [`META_KEY`], so files that carry it
//! stay readable by every reader (no format change). Its text (`Reference::to_text`):
//!
//! ```text
//! mdm-monitor-ref 1 rows=8000
//! mean <edge>,<edge>,... | <share>,<share>,...
//! std ...
//! ```
//!
//! one line per feature: the bin edges (quantiles of the reference, deduplicated, so 10 bins or
//! fewer when values tie) and the share of reference rows in each bin (`edges + 1` shares). A
//! value `v` falls in bin `i` = the number of edges `< v`. PSI as Evidently computes it:
//! `sum (a - e) * ln(a / e)` over bins, an empty bin's share replaced by [`EPS`].

use std::fmt::Write as _;

/// The provenance extra (`Provenance::extra`) that holds a model's reference.
pub const META_KEY: &str = "monitor.reference";

/// The statistics of one row, in this order.
pub const FEATURES: [&str; 5] = ["mean", "std", "ink", "row_centre", "col_centre"];

/// Number of quantile bins a reference asks for.
pub const BINS: usize = 10;

/// Share given to an empty bin, so `ln(a / e)` stays finite (Evidently's value).
pub const EPS: f64 = 1e-4;

/// PSI at or above which drift is "moderate" / "significant" (the usual rule of thumb).
pub const MODERATE: f64 = 0.1;
pub const SIGNIFICANT: f64 = 0.25;

const MAGIC: &str = "mdm-monitor-ref 1";
/// Bounds for a reference read from a file (untrusted): more bins than this is refused.
const MAX_BINS: usize = 64;

/// The [`FEATURES`] of one input row.
pub fn row_stats(row: &[f32]) -> [f32; 5] {
    let n = row.len();
    if n == 0 {
        return [0.0; 5];
    }
    let side = (n as f64).sqrt().round() as usize;
    let width = if side * side == n { side } else { n };
    let (mut sum, mut sq, mut ink, mut mr, mut mc) = (0f64, 0f64, 0usize, 0f64, 0f64);
    for (i, &v) in row.iter().enumerate() {
        // A NaN or infinite input is counted as 0: it must not poison the window.
        let v = if v.is_finite() { v as f64 } else { 0.0 };
        sum += v;
        sq += v * v;
        ink += usize::from(v > 0.5);
        // Centre of mass of the positive values (ink); negative values carry no mass.
        let w = v.max(0.0);
        mr += w * (i / width) as f64;
        mc += w * (i % width) as f64;
    }
    let mean = sum / n as f64;
    let std = (sq / n as f64 - mean * mean).max(0.0).sqrt();
    let mass: f64 = row.iter().map(|&v| if v.is_finite() { (v as f64).max(0.0) } else { 0.0 }).sum();
    let rows = (n / width).max(1);
    // A blank row has no centre: call it the middle, where a centred digit's is.
    let (rc, cc) = if mass > 0.0 {
        (mr / mass / (rows.max(2) - 1) as f64, mc / mass / (width.max(2) - 1) as f64)
    } else {
        (0.5, 0.5)
    };
    let rc = if rows == 1 { 0.0 } else { rc };
    [mean as f32, std as f32, ink as f32 / n as f32, rc as f32, cc as f32]
}

/// One feature's bins: `edges` ascending, `shares` (one more than the edges) summing to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureRef {
    pub name: String,
    pub edges: Vec<f32>,
    pub shares: Vec<f64>,
}

impl FeatureRef {
    fn bin(&self, v: f32) -> usize {
        self.edges.partition_point(|&e| e < v)
    }

    /// PSI of `values` against this reference (0 for no values).
    pub fn psi(&self, values: impl Iterator<Item = f32>) -> f64 {
        let mut counts = vec![0usize; self.shares.len()];
        let mut n = 0usize;
        for v in values {
            counts[self.bin(v)] += 1;
            n += 1;
        }
        if n == 0 {
            return 0.0;
        }
        counts
            .iter()
            .zip(&self.shares)
            .map(|(&c, &e)| {
                let a = (c as f64 / n as f64).max(EPS);
                let e = e.max(EPS);
                (a - e) * (a / e).ln()
            })
            .sum()
    }
}

/// The reference distribution of the [`FEATURES`] over a data set (the training split).
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// Rows it was computed from.
    pub rows: usize,
    pub features: Vec<FeatureRef>,
}

/// Drift level of a PSI value.
pub fn status(psi: f64) -> &'static str {
    if psi >= SIGNIFICANT {
        "significant"
    } else if psi >= MODERATE {
        "moderate"
    } else {
        "none"
    }
}

impl Reference {
    /// The reference of `rows` (each one input row): [`BINS`] quantile bins per feature.
    /// `None` when there are no rows.
    pub fn from_rows<'a>(rows: impl Iterator<Item = &'a [f32]>) -> Option<Reference> {
        let stats: Vec<[f32; 5]> = rows.map(row_stats).collect();
        Reference::from_stats(&stats)
    }

    /// The same from precomputed [`row_stats`].
    pub fn from_stats(stats: &[[f32; 5]]) -> Option<Reference> {
        if stats.is_empty() {
            return None;
        }
        let features = FEATURES
            .iter()
            .enumerate()
            .map(|(f, name)| {
                let mut v: Vec<f32> = stats.iter().map(|s| s[f]).collect();
                v.sort_by(f32::total_cmp);
                let mut edges: Vec<f32> = (1..BINS).map(|q| v[(q * v.len() / BINS).min(v.len() - 1)]).collect();
                edges.dedup();
                let mut fr = FeatureRef { name: name.to_string(), edges, shares: Vec::new() };
                let mut counts = vec![0usize; fr.edges.len() + 1];
                for &x in &v {
                    counts[fr.bin(x)] += 1;
                }
                fr.shares = counts.iter().map(|&c| c as f64 / v.len() as f64).collect();
                fr
            })
            .collect();
        Some(Reference { rows: stats.len(), features })
    }

    /// PSI of every feature for the rows' [`row_stats`], in [`FEATURES`] order.
    pub fn psi(&self, stats: &[[f32; 5]]) -> Vec<(String, f64)> {
        self.features
            .iter()
            .map(|fr| {
                let f = FEATURES.iter().position(|n| *n == fr.name).unwrap_or(0);
                (fr.name.clone(), fr.psi(stats.iter().map(|s| s[f])))
            })
            .collect()
    }

    /// The text stored under [`META_KEY`] (module docs). `f32` edges and shares are written with
    /// Rust's shortest round-trip formatting, so `parse(to_text())` gives the same reference.
    pub fn to_text(&self) -> String {
        let mut s = format!("{MAGIC} rows={}\n", self.rows);
        for f in &self.features {
            let edges: Vec<String> = f.edges.iter().map(|e| e.to_string()).collect();
            let shares: Vec<String> = f.shares.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(s, "{} {} | {}", f.name, edges.join(","), shares.join(","));
        }
        s
    }

    /// Reads a reference from a model file's [`META_KEY`] value. The text is untrusted: every
    /// number must be finite, edges strictly ascending, shares in 0..=1 summing to 1 (±1e-3),
    /// features known and not repeated; errors name the line and what is wrong.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let mut lines = text.lines();
        let head = lines.next().unwrap_or("");
        let rows = head
            .strip_prefix(MAGIC)
            .and_then(|r| r.trim().strip_prefix("rows="))
            .and_then(|r| r.parse::<usize>().ok())
            .ok_or_else(|| format!("{META_KEY}: the first line must be '{MAGIC} rows=N', not '{}'", clip(head)))?;
        let mut features: Vec<FeatureRef> = Vec::new();
        for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = i + 2;
            let bad = |what: &str| format!("{META_KEY} line {at}: {what}; recompute it with `mdeploy monitor-ref`");
            let (name, rest) = line.split_once(' ').ok_or_else(|| bad("expected 'feature edges | shares'"))?;
            if !FEATURES.contains(&name) {
                return Err(bad(&format!("unknown feature '{}' (known: {})", clip(name), FEATURES.join(", "))));
            }
            if features.iter().any(|f| f.name == name) {
                return Err(bad(&format!("feature '{name}' appears twice")));
            }
            let (edges, shares) = rest.split_once('|').ok_or_else(|| bad("no '|' between the edges and the shares"))?;
            fn list<T: std::str::FromStr + Copy>(s: &str, finite: fn(T) -> bool, bad: &dyn Fn(&str) -> String) -> Result<Vec<T>, String> {
                let s = s.trim();
                if s.is_empty() {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                for x in s.split(',') {
                    if out.len() > MAX_BINS {
                        return Err(bad(&format!("more than {MAX_BINS} bins")));
                    }
                    match x.trim().parse::<T>() {
                        Ok(v) if finite(v) => out.push(v),
                        _ => return Err(bad(&format!("'{}' is not a finite number", clip(x)))),
                    }
                }
                Ok(out)
            }
            // Edges are parsed as the f32 they were written from (no double rounding).
            let edges: Vec<f32> = list(edges, f32::is_finite, &bad)?;
            let shares: Vec<f64> = list(shares, f64::is_finite, &bad)?;
            if edges.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad("the edges are not strictly ascending"));
            }
            if shares.len() != edges.len() + 1 {
                return Err(bad(&format!("{} edges need {} shares, found {}", edges.len(), edges.len() + 1, shares.len())));
            }
            if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || (shares.iter().sum::<f64>() - 1.0).abs() > 1e-3 {
                return Err(bad("the shares must each be in 0..=1 and sum to 1"));
            }
            features.push(FeatureRef { name: name.to_string(), edges, shares });
        }
        if features.is_empty() {
            return Err(format!("{META_KEY}: no feature lines after the first line"));
        }
        Ok(Reference { rows, features })
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(60);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(seed: u32, n: usize, f: impl Fn(u32) -> f32) -> Vec<Vec<f32>> {
        // A small LCG: test data only, deterministic.
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..784)
                    .map(|_| {
                        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        f(s >> 8)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn stats_of_known_rows() {
        let mut r = vec![0.0f32; 784];
        // One ink pixel at row 0, column 27: centre (0, 1).
        r[27] = 1.0;
        let s = row_stats(&r);
        assert!((s[0] - 1.0 / 784.0).abs() < 1e-6);
        assert!((s[2] - 1.0 / 784.0).abs() < 1e-6);
        assert_eq!((s[3], s[4]), (0.0, 1.0));
        let s = row_stats(&vec![1.0; 784]);
        assert_eq!((s[0], s[1], s[2]), (1.0, 0.0, 1.0));
        assert!((s[3] - 0.5).abs() < 1e-6 && (s[4] - 0.5).abs() < 1e-6);
        // NaN counts as 0, not as poison.
        let mut r = vec![0.0f32; 784];
        r[0] = f32::NAN;
        assert!(row_stats(&r).iter().all(|x| x.is_finite()));
    }

    #[test]
    fn same_distribution_is_stable_and_a_shifted_one_drifts() {
        let u = |x: u32| (x % 1000) as f32 / 1000.0;
        let reference = Reference::from_rows(rows(1, 2000, u).iter().map(|r| r.as_slice())).unwrap();
        let same: Vec<[f32; 5]> = rows(2, 500, u).iter().map(|r| row_stats(r)).collect();
        let psi = reference.psi(&same);
        assert!(psi.iter().all(|(_, p)| *p < MODERATE), "{psi:?}");
        let brighter: Vec<[f32; 5]> = rows(3, 500, |x| (u(x) + 0.05).min(1.0)).iter().map(|r| row_stats(r)).collect();
        let psi = reference.psi(&brighter);
        assert!(psi[0].1 >= SIGNIFICANT, "{psi:?}");
    }

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let u = |x: u32| (x % 1000) as f32 / 1000.0;
        let r = Reference::from_rows(rows(1, 300, u).iter().map(|r| r.as_slice())).unwrap();
        let t = r.to_text();
        assert_eq!(Reference::parse(&t).unwrap(), r);
        for (bad, says) in [
            ("", "first line"),
            ("mdm-monitor-ref 1 rows=5\n", "no feature"),
            ("mdm-monitor-ref 1 rows=5\nmean 0.5 | 1\n", "need 2 shares"),
            ("mdm-monitor-ref 1 rows=5\nmean 0.5,0.4 | 0.2,0.3,0.5\n", "ascending"),
            ("mdm-monitor-ref 1 rows=5\nmean 0.5 | 0.7,0.7\n", "sum to 1"),
            ("mdm-monitor-ref 1 rows=5\nmean NaN | 0.5,0.5\n", "finite"),
            ("mdm-monitor-ref 1 rows=5\nfoo 0.5 | 0.5,0.5\n", "unknown feature"),
            ("mdm-monitor-ref 1 rows=5\nmean 0.5 | 0.5,0.5\nmean 0.5 | 0.5,0.5\n", "twice"),
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let many = format!("mdm-monitor-ref 1 rows=5\nmean {} | 1\n", vec!["1"; 100].join(","));
        assert!(Reference::parse(&many).unwrap_err().contains("more than"));
    }
}
