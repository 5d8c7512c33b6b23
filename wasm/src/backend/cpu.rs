//! The CPU backend: the core's inference [`Plan`] with the best kernels of this build
//! (`wasm-simd128` in the shipped package; `wasm-relaxed-simd` in the relaxed-SIMD variant: the
//! same code compiled with `+relaxed-simd`, whose multiply-adds fuse, see `DESIGN.md`).

use super::Backend;
use crate::error::WasmError;
use mdeploy_core::{Model, Plan};

pub struct CpuBackend {
    plan: Plan,
}

impl CpuBackend {
    pub fn new(model: &Model, max_batch: usize) -> Result<CpuBackend, WasmError> {
        Ok(CpuBackend { plan: Plan::new(model, max_batch)? })
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn kernel(&self) -> &'static str {
        self.plan.kernel_name()
    }
    fn max_batch(&self) -> usize {
        self.plan.max_batch()
    }
    fn run(&mut self, input: &[f32], n: usize, out: &mut [f32]) -> Result<(), WasmError> {
        Ok(self.plan.run(input, n, out)?)
    }
}
