//! The inference plan: load a [`Model`] once, lower it to a [`Program`](crate::lower::Program)
//! (`lower::lower`: BatchNorm folded, activations fused, HWC layouts, slots by liveness), pack
//! its weights for one [`KernelSet`] and size the buffers for `max_batch` samples (`exec.rs`),
//! then [`Plan::run`] any number of times without allocating.
//!
//! ```text
//!  Model ──lower()──► Program ──Exec::new(ks, max_batch)──► Plan
//!                                                           │ run(input, n, out)
//!  input (NCHW, n samples) ─ checks (lengths, NaN) ─ chunks of ≤ max_batch ─► Exec::run_chunk
//!  (the NaN check is the first step's sign-packing when it reads the whole input: one chunk)
//! ```
//!
//! How a chunk runs (details in `exec.rs`): the steps before the first Dense run one sample at a
//! time, so a convolution's activations stay in L1/L2; from the first Dense on, each step runs
//! over the whole chunk (Dense: GEMV at one sample, the packed GEMM otherwise, so the weights
//! are read once per chunk instead of once per sample).

use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::graph::Graph;
use crate::kernels::KernelSet;
use crate::lower::lower;
use crate::model::Model;

/// A compiled model: packed weights, fused epilogues and a preallocated arena.
pub struct Plan {
    exec: Exec,
    /// Output of [`Plan::predict`].
    pred: Vec<f32>,
}

impl Plan {
    /// Compile `model` for the best kernels of this CPU/build, with an arena for `max_batch`
    /// samples per chunk (larger `run` batches are processed in chunks).
    pub fn new(model: &Model, max_batch: usize) -> Result<Plan> {
        Plan::with_kernels(model, max_batch, KernelSet::best())
    }

    /// Like [`Plan::new`] with an explicit kernel set (tests compare SIMD with `generic`).
    pub fn with_kernels(model: &Model, max_batch: usize, ks: KernelSet) -> Result<Plan> {
        if max_batch == 0 {
            return Err(Error::bad_input(
                "max_batch is 0; a plan needs room for at least 1 sample (use 1 for single predictions)",
            ));
        }
        // `lower` validates the graph (shapes, payload sizes, finite weights): the full
        // `model.validate()` here as well checked every weight twice per load (three times with
        // the reader's); only the labels are left to check.
        let program = lower(&model.graph, &model.meta.input_shape)?;
        model.check_labels(program.output_len)?;
        Plan::from_program(program, max_batch, ks, crate::budget::arena_budget(&model.graph))
    }

    /// A plan for a bare graph (tests and tools that have no [`Model`] metadata around it):
    /// `lower(graph, input_shape)` run by this CPU executor.
    pub fn from_graph(graph: &Graph, input_shape: &[usize], max_batch: usize, ks: KernelSet) -> Result<Plan> {
        if max_batch == 0 {
            return Err(Error::bad_input(
                "max_batch is 0; a plan needs room for at least 1 sample (use 1 for single predictions)",
            ));
        }
        let program = lower(graph, input_shape)?;
        // Memory bounded by what the graph stores (budget.rs): a chunk gets at most as many
        // samples as the budget allows, and a sample that alone exceeds it is refused.
        Plan::from_program(program, max_batch, ks, crate::budget::arena_budget(graph))
    }

    /// A plan for an already lowered `program` (tests compare a sparse program with its
    /// [`Program::densified`](crate::lower::Program::densified) twin); `budget` bytes of
    /// activations at most (see `budget.rs`, e.g. `arena_budget(graph)`).
    pub fn from_program(program: crate::lower::Program, max_batch: usize, ks: KernelSet, budget: usize) -> Result<Plan> {
        let exec = Exec::new(program, max_batch, ks, budget)?;
        Ok(Plan { pred: vec![0.0; exec.output_len()], exec })
    }

    /// Floats per input sample (product of the model's input shape).
    pub fn input_len(&self) -> usize {
        self.exec.input_len()
    }
    /// Floats per output sample.
    pub fn output_len(&self) -> usize {
        self.exec.output_len()
    }
    /// Samples processed per chunk; `run` accepts more and chunks them.
    pub fn max_batch(&self) -> usize {
        self.exec.max_batch()
    }
    /// The kernel set in use: `"x86_64-avx512"`, `"x86_64-avx2-fma"`, `"wasm-simd128"` or `"generic"`.
    pub fn kernel_name(&self) -> &'static str {
        self.exec.kernel_set().name()
    }

    /// Run `n >= 1` samples (`input`: `n × input_len` floats, NCHW) into `out`
    /// (`n × output_len`). Allocates nothing. Rejects wrong lengths and NaN/infinite inputs with
    /// a `BadInput` error before writing `out`, so `out` is untouched on error (a binary-input
    /// plan finds a bad value while packing its first step, into its own buffers).
    pub fn run(&mut self, input: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        if n == 0 {
            return Err(Error::bad_input("batch size n is 0; pass at least one sample"));
        }
        let (il, ol) = (self.input_len(), self.output_len());
        match n.checked_mul(il) {
            Some(want) if want == input.len() => {}
            _ => {
                return Err(Error::bad_input(format!(
                    "input has {} values but {n} samples of {il} values each need {}; check the batch size and \
                     the input shape ({il} = the model's input shape flattened)",
                    input.len(),
                    n.saturating_mul(il)
                )))
            }
        }
        match n.checked_mul(ol) {
            Some(want) if want == out.len() => {}
            _ => {
                return Err(Error::bad_input(format!(
                    "output buffer has {} values but {n} samples of {ol} outputs need {}",
                    out.len(),
                    n.saturating_mul(ol)
                )))
            }
        }
        let non_finite = |bad: usize| {
            Error::bad_input(format!(
                "input value at index {bad} (sample {}, element {}) is {}; inputs must be finite numbers \
                 (check the preprocessing, e.g. a division by zero during normalisation)",
                bad / il,
                bad % il,
                input[bad]
            ))
        };
        let mb = self.exec.max_batch();
        // A plan whose first step sign-packs the whole input (a binary-input model), quantizes
        // it into the 7-bit tile's panel (an int7 first layer) or through a quantizer that
        // checks (the x86_64 FMA sets: an int8 first layer) checks it on that read, which is
        // the plan's only pass over the floats; in one chunk, so `out` is still untouched when
        // a value is bad (the scan below then names it).
        if n <= mb && self.exec.checks_input() {
            if self.exec.run_chunk(input, n, out) {
                return Ok(());
            }
            return Err(mdeploy_model::first_non_finite(input).map_or_else(|| Error::bad_input("an input value is not finite"), non_finite));
        }
        // The block-wise scan the reader uses for weights (vectorized, searched only when a block
        // is bad): at batch 1 a per-value `position` scan cost about as much as a sparse layer
        // (KERNELS.md, "Sparse kernels").
        if let Some(bad) = mdeploy_model::first_non_finite(input) {
            return Err(non_finite(bad));
        }
        let mut done = 0;
        while done < n {
            let nb = (n - done).min(mb);
            self.exec.run_chunk(&input[done * il..(done + nb) * il], nb, &mut out[done * ol..(done + nb) * ol]);
            done += nb;
        }
        Ok(())
    }

    /// One sample: `input` holds `input_len` floats; returns the `output_len` outputs (for a
    /// classifier ending in Softmax, the class probabilities). Allocates nothing.
    pub fn predict(&mut self, input: &[f32]) -> Result<&[f32]> {
        // Take the buffer out so `run` can borrow `self` mutably; `take` leaves an empty Vec,
        // which does not allocate.
        let mut pred = std::mem::take(&mut self.pred);
        let r = self.run(input, 1, &mut pred);
        self.pred = pred;
        r.map(|()| &self.pred[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Op;
    use crate::model::TensorData;

    /// `Plan::new` validates the graph once (in `lower`) plus the labels: a model the reader
    /// would refuse is still refused, whichever part is wrong.
    #[test]
    fn plan_refuses_what_validate_refuses() {
        let good = mdeploy_train::arch::mlp(1);
        assert!(Plan::new(&good, 4).is_ok());

        let mut labels = good.clone();
        labels.meta.labels = vec!["a".into(); 3];
        assert!(labels.validate().is_err());
        let e = Plan::new(&labels, 4).err().expect("3 labels for 10 outputs");
        assert!(e.message.contains("class labels"), "{}", e.message);

        let mut nan = good.clone();
        let Op::Dense { weight, .. } = &mut nan.graph.nodes[1].op else { panic!("Flatten, then a Dense") };
        let TensorData::F32(v) = &mut weight.data else { panic!("f32 weights") };
        v[7] = f32::NAN;
        assert!(nan.validate().is_err());
        let e = Plan::new(&nan, 4).err().expect("a NaN weight");
        assert!(e.message.contains("NaN"), "{}", e.message);
    }
}
