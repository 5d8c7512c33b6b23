//! Optimizers and learning-rate schedules.

/// One trainable tensor and its gradient, as handed to an [`Optimizer`].
pub struct Param<'a> {
    pub value: &'a mut [f32],
    pub grad: &'a [f32],
    /// Biases are not weight-decayed.
    pub is_bias: bool,
}

/// Updates parameters from their gradients. The trainer always passes the parameters in the
/// same order (layer order, weight before bias), so an optimizer may key its state (moments,
/// velocities) by position.
pub trait Optimizer {
    /// One update with learning rate `lr` (already scheduled).
    fn step(&mut self, params: &mut [Param<'_>], lr: f32);
    /// Short description stored in model provenance.
    fn describe(&self) -> String;
}

fn ensure_state(state: &mut Vec<Vec<f32>>, params: &[Param<'_>]) {
    if state.len() != params.len() {
        *state = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
    }
}

/// Adam with bias correction; weight decay is decoupled (AdamW: `w −= lr·wd·w`).
#[derive(Clone, Debug)]
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    pub fn new(weight_decay: f32) -> Adam {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay,
            t: 0,
            m: vec![],
            v: vec![],
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [Param<'_>], lr: f32) {
        ensure_state(&mut self.m, params);
        ensure_state(&mut self.v, params);
        self.t = self.t.saturating_add(1);
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let step = lr * c2.sqrt() / c1;
        let eps_hat = self.eps * c2.sqrt();
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let decay = if p.is_bias {
                0.0
            } else {
                lr * self.weight_decay
            };
            for (((w, &g), m), v) in p
                .value
                .iter_mut()
                .zip(p.grad)
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= step * *m / (v.sqrt() + eps_hat) + decay * *w;
            }
        }
    }
    fn describe(&self) -> String {
        format!(
            "adam(beta1={}, beta2={}, eps={}, weight_decay={})",
            self.beta1, self.beta2, self.eps, self.weight_decay
        )
    }
}

/// SGD with (heavy-ball) momentum and L2 weight decay added to the gradient.
#[derive(Clone, Debug)]
pub struct Sgd {
    pub momentum: f32,
    pub weight_decay: f32,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    pub fn new(momentum: f32, weight_decay: f32) -> Sgd {
        Sgd {
            momentum,
            weight_decay,
            velocity: vec![],
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [Param<'_>], lr: f32) {
        ensure_state(&mut self.velocity, params);
        for (p, vel) in params.iter_mut().zip(&mut self.velocity) {
            let wd = if p.is_bias { 0.0 } else { self.weight_decay };
            for ((w, &g), v) in p.value.iter_mut().zip(p.grad).zip(vel.iter_mut()) {
                *v = self.momentum * *v + g + wd * *w;
                *w -= lr * *v;
            }
        }
    }
    fn describe(&self) -> String {
        format!(
            "sgd(momentum={}, weight_decay={})",
            self.momentum, self.weight_decay
        )
    }
}

/// How the learning rate moves over training. `progress` is in epochs (fractional).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Linear warm-up over `warmup_epochs`, then cosine decay to `min_factor × lr` at the end.
    Cosine {
        warmup_epochs: f32,
        min_factor: f32,
    },
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        every_epochs: u32,
        gamma: f32,
    },
}

impl Schedule {
    /// Learning rate at `progress` epochs into a run of `total_epochs`.
    pub fn lr(&self, base: f32, progress: f32, total_epochs: u32) -> f32 {
        let total = total_epochs.max(1) as f32;
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine {
                warmup_epochs,
                min_factor,
            } => {
                if progress < warmup_epochs {
                    return base * (progress + 1e-3).min(warmup_epochs) / warmup_epochs;
                }
                let t = ((progress - warmup_epochs) / (total - warmup_epochs).max(1e-6))
                    .clamp(0.0, 1.0);
                let f = min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos());
                base * f
            }
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                let k = (progress as u32) / every_epochs.max(1);
                base * gamma.powi(k as i32)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Constant => "constant".into(),
            Schedule::Cosine {
                warmup_epochs,
                min_factor,
            } => {
                format!("cosine(warmup_epochs={warmup_epochs}, min_factor={min_factor})")
            }
            Schedule::Step {
                every_epochs,
                gamma,
            } => format!("step(every_epochs={every_epochs}, gamma={gamma})"),
        }
    }
}
