//! Metrics from model outputs: accuracy, per-class precision and recall, confusion matrix.
//!
//! [`evaluate`] takes the inference as a closure with the `Plan` (`mdeploy-runtime`) calling
//! convention, `run(input, n, out)`, so the same code scores a loaded plan, the training
//! [`crate::Predictor`], or any other backend.

use std::fmt;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::argmax;

/// Scores of a classifier on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Class names for display (`"0".."9"` for MNIST).
    pub class_names: Vec<String>,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub n: usize,
}

impl Evaluation {
    /// Scores `n × classes` outputs (probabilities or logits: only the argmax matters) against labels.
    pub fn from_outputs(outputs: &[f32], labels: &[u8], classes: usize) -> Result<Evaluation> {
        if classes == 0 || outputs.len() != labels.len() * classes {
            return Err(Error::bad_input(format!(
                "{} outputs do not match {} labels × {classes} classes",
                outputs.len(),
                labels.len()
            )));
        }
        let mut e = Evaluation {
            class_names: (0..classes).map(|c| c.to_string()).collect(),
            confusion: vec![vec![0; classes]; classes],
            n: 0,
        };
        e.add(outputs, labels)?;
        Ok(e)
    }

    /// Adds more scored samples.
    pub fn add(&mut self, outputs: &[f32], labels: &[u8]) -> Result<()> {
        let classes = self.confusion.len();
        for (row, &l) in outputs.chunks_exact(classes).zip(labels) {
            let actual = self.confusion.get_mut(l as usize).ok_or_else(|| {
                Error::bad_input(format!(
                    "label {l} is out of range for a model with {classes} outputs"
                ))
            })?;
            actual[argmax(row)] += 1;
            self.n += 1;
        }
        Ok(())
    }

    pub fn classes(&self) -> usize {
        self.confusion.len()
    }

    pub fn correct(&self) -> usize {
        (0..self.classes()).map(|c| self.confusion[c][c]).sum()
    }

    /// Fraction correct, 0..1 (0 when empty).
    pub fn accuracy(&self) -> f32 {
        if self.n == 0 {
            0.0
        } else {
            self.correct() as f32 / self.n as f32
        }
    }

    /// Of the samples predicted as `c`, the fraction that are `c` (`None` if none predicted).
    pub fn precision(&self, c: usize) -> Option<f32> {
        let predicted: usize = self.confusion.iter().map(|r| r[c]).sum();
        (predicted > 0).then(|| self.confusion[c][c] as f32 / predicted as f32)
    }

    /// Of the samples that are `c`, the fraction predicted as `c` (`None` if there are none).
    pub fn recall(&self, c: usize) -> Option<f32> {
        let actual: usize = self.confusion[c].iter().sum();
        (actual > 0).then(|| self.confusion[c][c] as f32 / actual as f32)
    }

    /// Samples of class `c`.
    pub fn support(&self, c: usize) -> usize {
        self.confusion[c].iter().sum()
    }
}

/// Runs `run(input, n, out)` over `data` in batches of at most `batch` and scores the outputs.
pub fn evaluate(
    data: &Dataset,
    classes: usize,
    batch: usize,
    mut run: impl FnMut(&[f32], usize, &mut [f32]) -> Result<()>,
) -> Result<Evaluation> {
    let per = data.sample_len();
    let batch = batch.max(1);
    let mut e = Evaluation::from_outputs(&[], &[], classes)?;
    let mut out = vec![0.0; batch * classes];
    let mut start = 0;
    while start < data.n {
        let n = batch.min(data.n - start);
        let out = &mut out[..n * classes];
        run(&data.images[start * per..(start + n) * per], n, out)?;
        e.add(out, &data.labels[start..start + n])?;
        start += n;
    }
    Ok(e)
}

fn pct(v: Option<f32>) -> String {
    v.map(|v| format!("{:6.2}%", v * 100.0))
        .unwrap_or_else(|| "     -".into())
}

impl fmt::Display for Evaluation {
    /// A per-class table (precision, recall, support) followed by the confusion matrix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accuracy: {:.2}% ({} / {})",
            self.accuracy() * 100.0,
            self.correct(),
            self.n
        )?;
        writeln!(f)?;
        writeln!(f, "class  precision   recall  support")?;
        for c in 0..self.classes() {
            writeln!(
                f,
                "{:>5}  {:>9}  {:>7}  {:>7}",
                self.class_names[c],
                pct(self.precision(c)),
                pct(self.recall(c)),
                self.support(c)
            )?;
        }
        writeln!(f)?;
        writeln!(f, "confusion matrix (rows: actual, columns: predicted)")?;
        write!(f, "      ")?;
        for name in &self.class_names {
            write!(f, "{name:>5}")?;
        }
        writeln!(f)?;
        for (c, row) in self.confusion.iter().enumerate() {
            write!(f, "{:>5} ", self.class_names[c])?;
            for v in row {
                write!(f, "{v:>5}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_the_confusion_matrix() {
        // Three classes; one "2" is predicted as "0".
        let outputs = [
            0.9, 0.05, 0.05, // 0 -> 0
            0.1, 0.8, 0.1, // 1 -> 1
            0.7, 0.1, 0.2, // 2 -> 0
            0.0, 0.1, 0.9, // 2 -> 2
        ];
        let e = Evaluation::from_outputs(&outputs, &[0, 1, 2, 2], 3).unwrap();
        assert_eq!(e.accuracy(), 0.75);
        assert_eq!(e.precision(0), Some(0.5));
        assert_eq!(e.recall(2), Some(0.5));
        assert_eq!(e.recall(0), Some(1.0));
        assert_eq!(e.confusion[2], vec![1, 0, 1]);
        let text = e.to_string();
        assert!(text.contains("accuracy: 75.00% (3 / 4)"), "{text}");
        assert!(Evaluation::from_outputs(&outputs, &[0, 1, 5, 2], 3).is_err());
    }
}
