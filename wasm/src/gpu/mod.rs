//! The WebGPU backend (browser only: compiled for wasm32, through `wgpu`'s WebGPU backend).
//!
//! One WGSL file per op beside this file (`dense.wgsl`, `conv2d.wgsl`, `maxpool2d.wgsl`,
//! `softmax.wgsl`), loaded with `include_str!`. At load, every weight is uploaded once (as dense
//! f32: quantized/sparse tensors are expanded like the CPU plan does) and the pipelines and bind
//! groups are built once. A batch then costs: one `write_buffer` of the input, one of each
//! layer's small uniform, ONE command encoder with one compute pass (a dispatch per layer, the
//! activations ping-pong between two GPU buffers and never leave the GPU), a copy of the final
//! output into a mappable buffer, and one asynchronous `map_async` awaited as a future: the
//! browser never blocks (TOOLCHAIN.md: never block on a map in wasm).
//!
//! Why not the `Backend` trait: its `run` is synchronous and GPU readback is not. `GpuEngine`
//! is its own async class; `index.js` keeps a CPU `Engine` beside it for metadata, for
//! `predictSync`, and to switch to when the device is lost.

use crate::error::{WasmError, NO_WEBGPU};
use mdeploy_core::graph::Op as GraphOp;
use mdeploy_core::model::{Tensor, TensorData};
use mdeploy_core::{format, Model};
use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use wasm_bindgen::prelude::*;
use wgpu::util::DeviceExt;

const DENSE: &str = include_str!("dense.wgsl");
const CONV2D: &str = include_str!("conv2d.wgsl");
const MAXPOOL2D: &str = include_str!("maxpool2d.wgsl");
const SOFTMAX: &str = include_str!("softmax.wgsl");
/// `@workgroup_size` of every shader: one invocation per output value.
const WG: u64 = 64;

/// What one layer dispatch needs besides the shared pipelines.
struct Op {
    kind: Kind,
    bind: [wgpu::BindGroup; 2], // [reads act 0 → writes act 1, reads act 1 → writes act 0]
    params: wgpu::Buffer,
    /// Invocations per sample (outputs per sample; 1 for softmax, which loops over its row).
    per_sample: u64,
    /// The uniform's words except the batch size (word 0), written per batch.
    words: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dense,
    Conv,
    Pool,
    Softmax,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipelines: [wgpu::ComputePipeline; 4],
    ops: Vec<Op>,
    act: [wgpu::Buffer; 2],
    readback: wgpu::Buffer,
    weights: Vec<wgpu::Buffer>,
    input_len: usize,
    input_shape: Vec<usize>,
    output_len: usize,
    /// Samples per submit: `max_batch`, lowered if the activations would not fit the device's
    /// largest storage binding.
    chunk: usize,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<String>>,
    gpu_error: Arc<Mutex<Option<String>>>,
    disposed: AtomicBool,
}

/// A model compiled for WebGPU. Used by `index.js`; not part of the documented API.
#[wasm_bindgen]
pub struct GpuEngine {
    inner: Rc<Inner>,
    // Serialises batches: they share the activation and readback buffers.
    busy: Rc<RefCell<bool>>,
}

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn words_bytes(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s<'a>(t: &'a Tensor, layer: usize, what: &str) -> Result<Cow<'a, [f32]>, WasmError> {
    match &t.data {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        _ => t.to_f32_dense().map(Cow::Owned).map_err(|e| {
            WasmError::new("BAD_MODEL", format!("layer {layer} {what}: {}", e.message))
        }),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32, WasmError> {
    u32::try_from(v).map_err(|_| WasmError::new("UNSUPPORTED", format!("{what} = {v} is too large for the WebGPU kernels (limit 2^32-1); use {{ backend: 'cpu' }}")))
}

fn unsupported(msg: String) -> WasmError {
    WasmError::new("UNSUPPORTED", format!("{msg}; load this model with {{ backend: 'cpu' }} (or 'auto')"))
}

impl Inner {
    async fn new(bytes: &[u8], max_batch: usize) -> Result<Inner, WasmError> {
        if bytes.is_empty() {
            return Err(WasmError::new("BAD_MODEL", "the model is 0 bytes: check the URL or path"));
        }
        let model: Model = format::read(bytes)?;
        let shapes = model.shapes()?;
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::BROWSER_WEBGPU,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance.request_adapter(&wgpu::RequestAdapterOptions::default()).await.map_err(|e| {
            WasmError::new(
                NO_WEBGPU,
                format!("no WebGPU adapter ({e}); use {{ backend: 'cpu' }} or 'auto', or enable WebGPU in the browser (Chromium: a GPU or --enable-unsafe-webgpu)"),
            )
        })?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mdeploy"),
                required_features: wgpu::Features::empty(),
                // WebGPU's defaults are what every adapter offers; the chunk size adapts to them.
                required_limits: wgpu::Limits::default(),
                ..Default::default()
            })
            .await
            .map_err(|e| WasmError::new(NO_WEBGPU, format!("the WebGPU adapter refused a device ({e}); use {{ backend: 'cpu' }} or 'auto'")))?;

        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(String::new()));
        {
            let (lost, why) = (lost.clone(), lost_reason.clone());
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut w) = why.lock() {
                    *w = format!("{reason:?}: {msg}");
                }
                lost.store(true, Ordering::SeqCst);
            });
        }
        // wgpu's default handler panics on a validation error, and a panic traps the whole wasm
        // instance (the CPU engine too). Record it instead; the batch then fails with a message.
        let gpu_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        {
            let slot = gpu_error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut s) = slot.lock() {
                    s.get_or_insert_with(|| e.to_string());
                }
            }));
        }

        let pipeline = |src: &str, label: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let pipelines = [
            pipeline(DENSE, "dense"),
            pipeline(CONV2D, "conv2d"),
            pipeline(MAXPOOL2D, "maxpool2d"),
            pipeline(SOFTMAX, "softmax"),
        ];

        // Activation buffers: the largest per-sample shape × the chunk size.
        let max_elems = shapes.iter().map(|s| s.iter().product::<usize>()).max().unwrap_or(1) as u64;
        let limits = device.limits();
        let cap = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let fit = (cap / (max_elems * 4)).max(1) as usize;
        let chunk = max_batch.clamp(1, fit);
        let act_size = max_elems * 4 * chunk as u64;
        let act = [0, 1].map(|i| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(if i == 0 { "act0" } else { "act1" }),
                size: act_size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        });
        let output_len = model.output_len();
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (output_len * 4 * chunk) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut ops: Vec<Op> = Vec::new();
        let mut weights = Vec::new();
        let storage = |label: &str, data: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &bytes_of(data),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        // Whether the last op may take a ReLU (Flatten/Dropout in between change nothing on NCHW).
        let mut fusable = false;
        // Until this engine executes the shared lowering (issue 9): chains of the 1.0 layers.
        let layers: Vec<&GraphOp> = model
            .graph
            .as_sequential()
            .ok_or_else(|| unsupported("branching graphs are not implemented on WebGPU yet".into()))?;
        for (i, &layer) in layers.iter().enumerate() {
            let input = &shapes[i];
            let output = &shapes[i + 1];
            let (kind, words, extra): (Kind, Vec<u32>, Option<(wgpu::Buffer, wgpu::Buffer)>) = match layer {
                GraphOp::Flatten | GraphOp::Dropout { .. } | GraphOp::Identity => continue,
                GraphOp::Relu => {
                    match ops.last_mut() {
                        Some(op) if fusable => {
                            let relu_at = match op.kind {
                                Kind::Dense => 3,
                                Kind::Conv => 13,
                                Kind::Pool => 10,
                                Kind::Softmax => return Err(unsupported(format!("layer {i}: a ReLU after Softmax is not implemented on WebGPU"))),
                            };
                            op.words[relu_at] = 1;
                        }
                        _ => return Err(unsupported(format!("layer {i}: a ReLU that does not follow a Dense, Conv2d or MaxPool2d layer is not implemented on WebGPU"))),
                    }
                    continue;
                }
                GraphOp::Dense { weight, bias } => {
                    let (fin, fout) = (input[0], output[0]);
                    let w = storage("dense.w", &f32s(weight, i, "Dense weight")?);
                    let b = storage("dense.b", &f32s(bias, i, "Dense bias")?);
                    (Kind::Dense, vec![0, u32_of(fin, "Dense inputs")?, u32_of(fout, "Dense outputs")?, 0], Some((w, b)))
                }
                GraphOp::Conv2d { weight, bias, stride, padding, dilation, groups } => {
                    if *dilation != [1, 1] || *groups != 1 || padding[0] != padding[2] || padding[1] != padding[3] {
                        return Err(unsupported(format!("layer {i}: Conv2d with dilation, groups or asymmetric padding is not implemented on WebGPU yet")));
                    }
                    let (kh, kw) = (weight.shape[2], weight.shape[3]);
                    let w = storage("conv.w", &f32s(weight, i, "Conv2d weight")?);
                    let b = storage("conv.b", &f32s(bias, i, "Conv2d bias")?);
                    let v = [input[0], input[1], input[2], output[0], output[1], output[2], kh, kw, stride[0], stride[1], padding[0], padding[1]];
                    let mut words = vec![0];
                    for x in v {
                        words.push(u32_of(x, "Conv2d size")?);
                    }
                    words.extend([0, 0, 0]);
                    (Kind::Conv, words, Some((w, b)))
                }
                GraphOp::MaxPool2d { kernel, stride, padding, ceil_mode } => {
                    if *padding != [0; 4] || *ceil_mode {
                        return Err(unsupported(format!("layer {i}: MaxPool2d with padding or ceil mode is not implemented on WebGPU yet")));
                    }
                    let v = [input[0], input[1], input[2], output[1], output[2], kernel[0], kernel[1], stride[0], stride[1]];
                    let mut words = vec![0];
                    for x in v {
                        words.push(u32_of(x, "MaxPool2d size")?);
                    }
                    words.extend([0, 0]);
                    (Kind::Pool, words, None)
                }
                GraphOp::Softmax => (Kind::Softmax, vec![0, u32_of(input[0], "Softmax length")?, 0, 0], None),
                other => return Err(unsupported(format!("layer {i}: {} is not implemented on WebGPU yet", other.name()))),
            };
            fusable = kind != Kind::Softmax;
            let per_sample = match kind {
                Kind::Softmax => 1,
                _ => output.iter().product::<usize>() as u64,
            };
            let params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: (words.len() * 4) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let pl = &pipelines[kind as usize];
            let layout = pl.get_bind_group_layout(0);
            let bind = [0usize, 1].map(|src| {
                let mut entries = vec![
                    wgpu::BindGroupEntry { binding: 0, resource: act[src].as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: act[1 - src].as_entire_binding() },
                ];
                match &extra {
                    Some((w, b)) => {
                        entries.push(wgpu::BindGroupEntry { binding: 2, resource: w.as_entire_binding() });
                        entries.push(wgpu::BindGroupEntry { binding: 3, resource: b.as_entire_binding() });
                        entries.push(wgpu::BindGroupEntry { binding: 4, resource: params.as_entire_binding() });
                    }
                    None => entries.push(wgpu::BindGroupEntry { binding: 2, resource: params.as_entire_binding() }),
                }
                device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
            });
            if let Some((w, b)) = extra {
                weights.push(w);
                weights.push(b);
            }
            ops.push(Op { kind, bind, params, per_sample, words });
        }
        if layers.first().is_some_and(|l| matches!(l, GraphOp::Relu)) {
            return Err(unsupported("a model that starts with ReLU is not implemented on WebGPU".into()));
        }
        if ops.is_empty() {
            return Err(unsupported("this model has no Dense, Conv2d, MaxPool2d or Softmax layer to run".into()));
        }
        if let Some(e) = gpu_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(WasmError::new("UNSUPPORTED", format!("WebGPU rejected the model's pipelines: {e}; use {{ backend: 'cpu' }}")));
        }
        Ok(Inner {
            device,
            queue,
            pipelines,
            ops,
            act,
            readback,
            weights,
            input_len: model.input_len(),
            input_shape: model.meta.input_shape.clone(),
            output_len,
            chunk,
            lost,
            lost_reason,
            gpu_error,
            disposed: AtomicBool::new(false),
        })
    }

    fn check_alive(&self) -> Result<(), WasmError> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(WasmError::new("DISPOSED", "this model's GPU engine was disposed; load the model again"));
        }
        if self.lost.load(Ordering::SeqCst) {
            let why = self.lost_reason.lock().map(|s| s.clone()).unwrap_or_default();
            return Err(WasmError::new(NO_WEBGPU, format!("the WebGPU device was lost ({why}); the model continues on the CPU")));
        }
        Ok(())
    }

    async fn run(&self, input: &[f32], n: usize) -> Result<Vec<f32>, WasmError> {
        let il = self.input_len;
        crate::error::check_batch(input.len(), n, il, &self.input_shape)?;
        if let Some(bad) = input.iter().position(|v| !v.is_finite()) {
            return Err(WasmError::new(
                "BAD_INPUT",
                format!(
                    "input value at index {bad} (sample {}, element {}) is {}; inputs must be finite numbers \
                     (check the preprocessing, e.g. a division by zero during normalisation)",
                    bad / il,
                    bad % il,
                    input[bad]
                ),
            ));
        }
        let ol = self.output_len;
        let mut out = vec![0.0f32; n * ol];
        let mut done = 0;
        while done < n {
            self.check_alive()?;
            let nb = (n - done).min(self.chunk);
            self.queue.write_buffer(&self.act[0], 0, &bytes_of(&input[done * il..(done + nb) * il]));
            let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
            let mut src = 0;
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                for op in &self.ops {
                    let mut words = op.words.clone();
                    words[0] = nb as u32; // nb ≤ chunk, which fits a u32-sized buffer
                    self.queue.write_buffer(&op.params, 0, &words_bytes(&words));
                    let groups = (nb as u64 * op.per_sample).div_ceil(WG);
                    let x = groups.clamp(1, 65535);
                    let y = groups.div_ceil(x);
                    pass.set_pipeline(&self.pipelines[op.kind as usize]);
                    pass.set_bind_group(0, &op.bind[src], &[]);
                    pass.dispatch_workgroups(x as u32, y as u32, 1);
                    src = 1 - src;
                }
            }
            let bytes = (nb * ol * 4) as u64;
            enc.copy_buffer_to_buffer(&self.act[src], 0, &self.readback, 0, bytes);
            self.queue.submit([enc.finish()]);

            let (tx, rx) = futures_channel::oneshot::channel();
            self.readback.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
            let mapped = rx.await;
            if let Some(e) = self.gpu_error.lock().ok().and_then(|mut s| s.take()) {
                if matches!(mapped, Ok(Ok(()))) {
                    self.readback.unmap();
                }
                return Err(WasmError::new("UNSUPPORTED", format!("WebGPU reported an error running the model: {e}; use {{ backend: 'cpu' }}")));
            }
            match mapped {
                Ok(Ok(())) => {}
                _ => {
                    self.check_alive()?;
                    return Err(WasmError::new(NO_WEBGPU, "reading the result back from the GPU failed; use { backend: 'cpu' }"));
                }
            }
            {
                let view = self.readback.get_mapped_range(0..bytes).map_err(|e| {
                    WasmError::new(NO_WEBGPU, format!("reading the result back from the GPU failed ({e}); use {{ backend: 'cpu' }}"))
                })?;
                for (o, c) in out[done * ol..(done + nb) * ol].iter_mut().zip(view.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            self.readback.unmap();
            done += nb;
        }
        Ok(out)
    }
}

#[wasm_bindgen]
impl GpuEngine {
    /// Resolves to a `GpuEngine` for `.mdm` bytes (validated like the CPU engine does), or
    /// rejects with `NO_WEBGPU` (no adapter/device), `BAD_MODEL` or `UNSUPPORTED`.
    pub fn create(bytes: Vec<u8>, max_batch: u32) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let inner = Inner::new(&bytes, max_batch as usize).await?;
            Ok(JsValue::from(GpuEngine { inner: Rc::new(inner), busy: Rc::new(RefCell::new(false)) }))
        })
    }

    /// Resolves to `n × outputLen` probabilities (a `Float32Array`). One batch at a time per
    /// engine: `index.js` queues calls.
    pub fn run(&self, input: Vec<f32>, n: u32) -> js_sys::Promise {
        let inner = self.inner.clone();
        let busy = self.busy.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if busy.replace(true) {
                return Err(WasmError::new("UNSUPPORTED", "a GPU batch is already running on this model; await it first").into());
            }
            let r = inner.run(&input, n as usize).await;
            busy.replace(false);
            Ok(js_sys::Float32Array::from(&r?[..]).into())
        })
    }

    /// `true` once the device is lost (driver reset, tab in the background too long, ...).
    #[wasm_bindgen(getter)]
    pub fn lost(&self) -> bool {
        self.inner.lost.load(Ordering::SeqCst)
    }

    #[wasm_bindgen(getter, js_name = lostReason)]
    pub fn lost_reason(&self) -> String {
        self.inner.lost_reason.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Samples per GPU submit.
    #[wasm_bindgen(getter)]
    pub fn chunk(&self) -> u32 {
        self.inner.chunk as u32
    }

    /// Destroys the device as a driver reset would: lets tests exercise the lost-device path.
    #[wasm_bindgen(js_name = loseDeviceForTesting)]
    pub fn lose_device_for_testing(&self) {
        self.inner.device.destroy();
    }

    /// Frees the GPU buffers and the device now instead of at garbage collection.
    pub fn dispose(&self) {
        let i = &self.inner;
        if i.disposed.swap(true, Ordering::SeqCst) {
            return;
        }
        for b in i.weights.iter().chain(i.act.iter()).chain(i.ops.iter().map(|o| &o.params)) {
            b.destroy();
        }
        i.readback.destroy();
        i.device.destroy();
    }
}
