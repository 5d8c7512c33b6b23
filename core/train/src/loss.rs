//! Losses. A [`Loss`] sees the logits (the network output before its final `Softmax`) and
//! the whole batch, inputs included, so a distillation loss can run its teacher on exactly the
//! (augmented) images the student saw.

use super::network::softmax_in_place;
use crate::error::{Error, Result};

/// One mini-batch as the loss sees it.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// `n × C×H×W` inputs, after augmentation.
    pub inputs: &'a [f32],
    pub labels: &'a [u8],
    pub n: usize,
}

/// A training objective over logits.
pub trait Loss {
    /// Returns the mean loss over the batch and writes `∂loss/∂logits` into `grad`
    /// (`n × classes`, already divided by `n`). `logits` is `n × classes`.
    fn loss_and_grad(
        &mut self,
        logits: &[f32],
        classes: usize,
        batch: &Batch,
        grad: &mut [f32],
    ) -> Result<f32>;
    /// Short description stored in model provenance, e.g. `"cross-entropy"`.
    fn describe(&self) -> String;
}

/// Softmax cross-entropy against SOFT targets, fused: with `p = softmax(z / T)`,
/// `loss = −Σ t·log p` per row, `∂loss/∂z = (p − t) / T`. Returns the mean loss over rows and
/// writes the gradient divided by the number of rows. Targets must be probability rows.
///
/// Distillation (Hinton et al.) multiplies this term by `T²` so its gradient scale does not
/// shrink with the temperature; that factor is the caller's choice.
#[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the MSRV is 1.85
pub fn soft_cross_entropy(
    logits: &[f32],
    targets: &[f32],
    classes: usize,
    temperature: f32,
    grad: &mut [f32],
) -> Result<f32> {
    if classes == 0
        || logits.len() % classes != 0
        || targets.len() != logits.len()
        || grad.len() != logits.len()
    {
        return Err(Error::bad_input(format!(
            "cross-entropy: {} logits, {} targets, {} gradient slots for {classes} classes do not match",
            logits.len(),
            targets.len(),
            grad.len()
        )));
    }
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(Error::bad_input(format!(
            "cross-entropy: temperature {temperature} must be > 0"
        )));
    }
    let rows = logits.len() / classes;
    let scale = 1.0 / (rows as f32 * temperature);
    let mut total = 0.0f64;
    for ((z, t), g) in logits
        .chunks_exact(classes)
        .zip(targets.chunks_exact(classes))
        .zip(grad.chunks_exact_mut(classes))
    {
        g.iter_mut().zip(z).for_each(|(g, z)| *g = z / temperature);
        // log p_j = z_j − max − log Σ exp(z − max): computed before `g` becomes `p`.
        let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + g.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        total += t
            .iter()
            .zip(g.iter())
            .map(|(&t, &v)| {
                if t > 0.0 {
                    -(t as f64) * (v - lse) as f64
                } else {
                    0.0
                }
            })
            .sum::<f64>();
        softmax_in_place(g);
        g.iter_mut().zip(t).for_each(|(g, t)| *g = (*g - t) * scale);
    }
    Ok((total / rows as f64) as f32)
}

/// Softmax cross-entropy against the batch's hard labels, with optional label smoothing
/// (the target puts `1 − ε` on the label and spreads `ε` uniformly over all classes).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy {
    pub label_smoothing: f32,
    targets: Vec<f32>,
}

impl CrossEntropy {
    pub fn new(label_smoothing: f32) -> CrossEntropy {
        CrossEntropy {
            label_smoothing,
            targets: Vec::new(),
        }
    }
}

impl Loss for CrossEntropy {
    fn loss_and_grad(
        &mut self,
        logits: &[f32],
        classes: usize,
        batch: &Batch,
        grad: &mut [f32],
    ) -> Result<f32> {
        if batch.labels.len() != batch.n || logits.len() != batch.n * classes {
            return Err(Error::bad_input(format!(
                "cross-entropy: {} labels and {} logits for a batch of {} with {classes} classes",
                batch.labels.len(),
                logits.len(),
                batch.n
            )));
        }
        let eps = self.label_smoothing;
        let off = eps / classes as f32;
        self.targets.clear();
        self.targets.resize(logits.len(), off);
        for (row, &label) in self.targets.chunks_exact_mut(classes).zip(batch.labels) {
            let slot = row.get_mut(label as usize).ok_or_else(|| {
                Error::bad_input(format!(
                    "label {label} is out of range for a model with {classes} outputs"
                ))
            })?;
            *slot += 1.0 - eps;
        }
        soft_cross_entropy(logits, &self.targets, classes, 1.0, grad)
    }

    fn describe(&self) -> String {
        if self.label_smoothing > 0.0 {
            format!("cross-entropy (label smoothing {})", self.label_smoothing)
        } else {
            "cross-entropy".into()
        }
    }
}

/// A teacher for [`Distillation`]: runs `n` inputs and writes `n × classes` **probabilities**
/// (the runtime's `Plan::run` has exactly this shape; the train crate does not depend on it).
pub type Teacher<'t> = Box<dyn FnMut(&[f32], usize, &mut [f32]) -> Result<()> + 't>;

/// Hinton et al.'s knowledge-distillation loss:
///
/// ```text
/// loss = alpha · CE(softmax(z), label) + (1 − alpha) · T² · CE(softmax(z / T), q)
/// q    = softmax(log p / T)   (p: the teacher's probabilities; = p^(1/T), renormalised)
/// ∂/∂z = alpha · (softmax(z) − onehot) + (1 − alpha) · T · (softmax(z / T) − q)      (/ n)
/// ```
///
/// `alpha` weights the hard labels (Keras' convention); `alpha = 1` is plain training on the
/// labels, bit for bit. The `T²` keeps the soft term's gradient at the same scale whatever
/// the temperature. The teacher sees the batch inputs after augmentation, the student's own.
pub struct Distillation<'t> {
    teacher: Teacher<'t>,
    pub temperature: f32,
    pub alpha: f32,
    probs: Vec<f32>,
    soft_grad: Vec<f32>,
    hard: CrossEntropy,
}

impl<'t> Distillation<'t> {
    pub fn new(teacher: Teacher<'t>, temperature: f32, alpha: f32) -> Result<Distillation<'t>> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::bad_input(format!(
                "distillation: temperature {temperature} must be a positive number (Hinton used 2..20)"
            )));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::bad_input(format!(
                "distillation: alpha {alpha} must be in [0, 1] (the weight of the hard labels)"
            )));
        }
        Ok(Distillation {
            teacher,
            temperature,
            alpha,
            probs: Vec::new(),
            soft_grad: Vec::new(),
            hard: CrossEntropy::new(0.0),
        })
    }

    /// The soft targets `q = softmax(log p / T)` of one row of teacher probabilities, in place.
    pub fn soften(p: &mut [f32], temperature: f32) {
        // log 0 = −inf gives exp(−inf) = 0: a class the teacher rules out stays out.
        p.iter_mut().for_each(|v| *v = v.ln() / temperature);
        softmax_in_place(p);
    }
}

impl Loss for Distillation<'_> {
    fn loss_and_grad(
        &mut self,
        logits: &[f32],
        classes: usize,
        batch: &Batch,
        grad: &mut [f32],
    ) -> Result<f32> {
        let hard = self.hard.loss_and_grad(logits, classes, batch, grad)?;
        if self.alpha == 1.0 {
            // Plain training: the teacher is not consulted.
            return Ok(hard);
        }
        self.probs.resize(logits.len(), 0.0);
        (self.teacher)(batch.inputs, batch.n, &mut self.probs)?;
        for row in self.probs.chunks_exact_mut(classes) {
            if row.iter().any(|p| !(p.is_finite() && *p >= 0.0)) || row.iter().all(|&p| p == 0.0) {
                return Err(Error::bad_input(
                    "distillation: the teacher returned a row that is not probabilities (NaN, negative or all zero); \
                     is it a classifier ending in Softmax?",
                ));
            }
            Distillation::soften(row, self.temperature);
        }
        self.soft_grad.resize(logits.len(), 0.0);
        let t = self.temperature;
        let soft = soft_cross_entropy(logits, &self.probs, classes, t, &mut self.soft_grad)?;
        let (a, s) = (self.alpha, (1.0 - self.alpha) * t * t);
        grad.iter_mut()
            .zip(&self.soft_grad)
            .for_each(|(g, sg)| *g = a * *g + s * sg);
        Ok(a * hard + s * soft)
    }

    fn describe(&self) -> String {
        format!(
            "distillation (Hinton: alpha {} x hard cross-entropy + (1 - alpha) x T^2 x soft cross-entropy, T = {})",
            self.alpha, self.temperature
        )
    }
}
