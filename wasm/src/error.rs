//! Errors as JS sees them: an `Error` whose `name` is `"MdeployError"` and whose `code` is a
//! stable string. The core's kinds keep their codes (`BAD_MODEL`, `BAD_INPUT`, `UNSUPPORTED`);
//! this layer adds the ones only a host can hit (`NO_WEBGPU`, `DISPOSED`, ...).
//!
//! `WasmError` is plain Rust so the engine logic stays testable natively; the conversion to a
//! `JsValue` happens only at the `#[wasm_bindgen]` boundary.

use wasm_bindgen::JsValue;

/// Codes this crate adds to the core's. Keep in sync with `js/index.d.ts` (`ErrorCode`).
pub const NO_WEBGPU: &str = "NO_WEBGPU";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmError {
    pub code: &'static str,
    pub message: String,
}

impl WasmError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        WasmError { code, message: message.into() }
    }
}

/// The batch check every backend makes before sizing anything: `n ≥ 1` and exactly `n × il`
/// values (checked multiplication, so a bogus `n` cannot request a huge output buffer).
pub fn check_batch(got: usize, n: usize, il: usize, input_shape: &[usize]) -> Result<(), WasmError> {
    if n == 0 {
        return Err(WasmError::new("BAD_INPUT", "batch size is 0: pass at least one sample"));
    }
    if n.checked_mul(il) != Some(got) {
        return Err(WasmError::new(
            "BAD_INPUT",
            format!(
                "got {got} input values for {n} sample(s), but this model takes {il} values per sample \
                 (input shape {input_shape:?}), so {n} sample(s) need {}",
                n.saturating_mul(il)
            ),
        ));
    }
    Ok(())
}

impl From<mdeploy_core::Error> for WasmError {
    fn from(e: mdeploy_core::Error) -> Self {
        WasmError { code: e.code(), message: e.message }
    }
}

impl std::fmt::Display for WasmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// A JS `Error` with `name = "MdeployError"` and the stable `code` property.
pub fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("MdeployError");
    // Reflect::set only fails on frozen/proxy objects; a fresh Error is neither.
    let _ = js_sys::Reflect::set(&e, &JsValue::from_str("code"), &JsValue::from_str(code));
    e.into()
}

impl From<WasmError> for JsValue {
    fn from(e: WasmError) -> JsValue {
        js_error(e.code, &e.message)
    }
}
