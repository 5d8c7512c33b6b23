//! The ONNX bridge's integration tests, as one test binary: every binary that uses this crate
//! links tract with thin LTO (minutes each on a 2-core machine), so the suites share one.
//! `tests/node.rs` (it silences the panic hook while it runs onnx's cases) and
//! `tests/pytorch.rs` (its global allocator measures peak heap) stay binaries of their own.
//! Run one suite with a filter: `cargo test -p mdeploy-onnx --release --test onnx -- quantized::`.

mod export;
mod exporters;
mod ops;
mod quantized;
// The 2,000-digit parity helpers, shared with tests/pytorch.rs.
#[path = "../support/mod.rs"]
mod support;
mod wasm_stays_free_of_tract;
