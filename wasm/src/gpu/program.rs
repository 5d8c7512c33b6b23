//! A model's [`Program`] for the GPU engine.
//!
//! TEMPORARY (issue 9): until the shared `mdeploy_core::lower::lower()` lands, this builds the
//! program itself for chains of the 1.0 layers (`Graph::as_sequential`: Dense, Conv2d without
//! groups/dilation, unpadded MaxPool2d, ReLU, Flatten, Dropout, Identity, Softmax), so the
//! WebGPU backend keeps running the MNIST models while it already executes Programs. It is
//! deliberately naive (a fresh slot per value, no liveness reuse) and is deleted once `lower()`
//! exists: `program_for` then becomes `lower(&model.graph, &model.meta.input_shape)`.

use crate::error::WasmError;
use mdeploy_core::lower::{Act, Kernel, PoolKind, Program, Step, Window};
use mdeploy_core::graph::Op;
use mdeploy_core::Model;

/// The program the GPU engine runs for `model`: the shared lowering, the same the CPU runs.
pub fn program_for(model: &Model) -> Result<Program, WasmError> {
    match mdeploy_core::lower::lower(&model.graph, &model.meta.input_shape) {
        Ok(p) => Ok(p),
        // TEMPORARY: while `lower()` is still the stub on this branch, chains of 1.0 layers go
        // through the adapter below. Remove this arm and `sequential` once lower() is merged.
        Err(e) if e.message.contains("lower() is being written") => sequential(model),
        Err(e) => Err(e.into()),
    }
}

fn f32s(t: &mdeploy_core::model::Tensor, layer: usize, what: &str) -> Result<Vec<f32>, WasmError> {
    t.to_f32_dense().map_err(|e| WasmError::new("BAD_MODEL", format!("layer {layer} {what}: {}", e.message)))
}

fn unsupported(layer: usize, op: &Op) -> WasmError {
    WasmError::new(
        "UNSUPPORTED",
        format!("layer {layer}: {} (with these parameters) is not implemented on WebGPU yet; load this model with {{ backend: 'cpu' }} (or 'auto')", op.name()),
    )
}

struct Builder {
    slots: Vec<usize>,
    steps: Vec<Step>,
    /// The current value: its slot, NCHW shape, and whether a 3-D value is stored HWC.
    slot: usize,
    shape: Vec<usize>,
    hwc: bool,
}

impl Builder {
    fn push(&mut self, kernel: Kernel, node: usize, len: usize) {
        self.slots.push(len);
        let output = self.slots.len() - 1;
        self.steps.push(Step { kernel, inputs: vec![self.slot], output, node });
        self.slot = output;
    }

    /// Brings a 3-D value to HWC (`to_hwc`) or back to CHW; free when C = 1 (same bytes).
    fn layout(&mut self, to_hwc: bool, node: usize) {
        if self.shape.len() != 3 || self.hwc == to_hwc {
            return;
        }
        let (c, hw) = (self.shape[0], self.shape[1] * self.shape[2]);
        if c > 1 {
            self.push(Kernel::Transpose { c, hw, to_hwc }, node, c * hw);
        }
        self.hwc = to_hwc;
    }
}

fn sequential(model: &Model) -> Result<Program, WasmError> {
    let shapes = model.shapes()?;
    let input_len = model.input_len();
    let mut b = Builder { slots: vec![input_len], steps: vec![], slot: 0, shape: model.meta.input_shape.clone(), hwc: false };
    // Index in `b.steps` of a Dense/Conv2d whose output is the current value and may take a ReLU.
    let mut fusable: Option<usize> = None;
    let layers: Vec<&Op> = model.graph.as_sequential().ok_or_else(|| {
        WasmError::new("UNSUPPORTED", "branching graphs need the shared lowering on WebGPU (not here yet); load this model with { backend: 'cpu' } (or 'auto')")
    })?;
    for (i, &layer) in layers.iter().enumerate() {
        let (input, output) = (&shapes[i], &shapes[i + 1]);
        match layer {
            Op::Dropout { .. } | Op::Identity => continue,
            Op::Flatten => b.layout(false, i),
            Op::Relu => {
                let fused = match fusable.and_then(|s| b.steps.get_mut(s)) {
                    Some(Step { kernel: Kernel::Dense { act, .. } | Kernel::Conv2d { act, .. }, .. }) if *act == Act::None => {
                        *act = Act::Relu;
                        true
                    }
                    _ => false,
                };
                if !fused {
                    let len = input.iter().product();
                    b.steps.push(Step { kernel: Kernel::Act { act: Act::Relu, len }, inputs: vec![b.slot], output: b.slot, node: i });
                }
            }
            Op::Softmax => {
                let len = input.iter().product();
                b.steps.push(Step { kernel: Kernel::Softmax { len }, inputs: vec![b.slot], output: b.slot, node: i });
            }
            Op::Dense { weight, bias } => {
                let (k, out) = (input.iter().product::<usize>(), output[0]);
                b.layout(false, i);
                let kernel = Kernel::Dense { k, out, weight: f32s(weight, i, "Dense weight")?, bias: f32s(bias, i, "Dense bias")?, act: Act::None };
                b.push(kernel, i, out);
            }
            Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
                if *dilation != [1, 1] || *groups != 1 {
                    return Err(unsupported(i, layer));
                }
                b.layout(true, i);
                let (oc, ic, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3]);
                let w = f32s(weight, i, "Conv2d weight")?;
                // [oc, ic, kh, kw] → the [(ky, kx, ci) × oc] matrix the HWC kernel reads.
                let mut wp = vec![0.0f32; w.len()];
                for o in 0..oc {
                    for ci in 0..ic {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                wp[((ky * kw + kx) * ic + ci) * oc + o] = w[((o * ic + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                }
                let win = Window {
                    c: input[0],
                    h: input[1],
                    w: input[2],
                    kh,
                    kw,
                    sh: stride[0],
                    sw: stride[1],
                    pad: *padding,
                    dh: 1,
                    dw: 1,
                    oh: output[1],
                    ow: output[2],
                };
                let kernel = Kernel::Conv2d { win, out_c: oc, groups: 1, weight: wp, bias: f32s(bias, i, "Conv2d bias")?, act: Act::None };
                b.push(kernel, i, output.iter().product());
            }
            Op::MaxPool2d { kernel, stride, padding, ceil_mode } => {
                if *padding != [0; 4] || *ceil_mode {
                    return Err(unsupported(i, layer));
                }
                b.layout(true, i);
                let win = Window {
                    c: input[0],
                    h: input[1],
                    w: input[2],
                    kh: kernel[0],
                    kw: kernel[1],
                    sh: stride[0],
                    sw: stride[1],
                    pad: [0; 4],
                    dh: 1,
                    dw: 1,
                    oh: output[1],
                    ow: output[2],
                };
                b.push(Kernel::Pool { kind: PoolKind::Max, win }, i, output.iter().product());
            }
            other => return Err(unsupported(i, other)),
        }
        fusable = match layer {
            Op::Dense { .. } | Op::Conv2d { .. } => Some(b.steps.len() - 1),
            _ => None,
        };
        b.shape = output.clone();
    }
    b.layout(false, layers.len());
    let output_len = model.output_len();
    if b.slot == 0 {
        // The model is the identity: give the output its own slot.
        b.push(Kernel::Copy { len: input_len }, layers.len(), input_len);
    }
    Ok(Program {
        input_shape: model.meta.input_shape.clone(),
        input_len,
        output_len,
        slots: b.slots,
        input_slot: 0,
        output_slot: b.slot,
        steps: b.steps,
    })
}
