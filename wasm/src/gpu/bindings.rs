//! The `#[wasm_bindgen]` shell around [`GpuCore`]: promises in, promises out. Everything else
//! lives in `engine.rs` (testable natively).

use super::engine::GpuCore;
use crate::error::WasmError;
use mdeploy_core::{format, Model};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A model compiled for WebGPU. Used by `index.js`; not part of the documented API.
#[wasm_bindgen]
pub struct GpuEngine {
    inner: Rc<GpuCore>,
    // Serialises batches: they share the slot and readback buffers.
    busy: Rc<RefCell<bool>>,
}

#[wasm_bindgen]
impl GpuEngine {
    /// Resolves to a `GpuEngine` for `.mdm` bytes (validated like the CPU engine does), or
    /// rejects with `NO_WEBGPU` (no adapter/device), `BAD_MODEL` or `UNSUPPORTED`.
    pub fn create(bytes: Vec<u8>, max_batch: u32) -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            if bytes.is_empty() {
                return Err(WasmError::new("BAD_MODEL", "the model is 0 bytes: check the URL or path").into());
            }
            let model: Model = format::read(&bytes).map_err(WasmError::from)?;
            let inner = GpuCore::load(&model, max_batch as usize).await?;
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
        self.inner.lost()
    }

    #[wasm_bindgen(getter, js_name = lostReason)]
    pub fn lost_reason(&self) -> String {
        self.inner.lost_reason()
    }

    /// Samples per GPU submit.
    #[wasm_bindgen(getter)]
    pub fn chunk(&self) -> u32 {
        self.inner.chunk() as u32
    }

    /// Destroys the device as a driver reset would: lets tests exercise the lost-device path.
    #[wasm_bindgen(js_name = loseDeviceForTesting)]
    pub fn lose_device_for_testing(&self) {
        self.inner.lose_device_for_testing();
    }

    /// Frees the GPU buffers and the device now instead of at garbage collection.
    pub fn dispose(&self) {
        self.inner.dispose();
    }
}
