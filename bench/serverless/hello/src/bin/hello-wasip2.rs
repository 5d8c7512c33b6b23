//! The same constant answer as `hello` (src/main.rs), written on the generated `wasip2` bindings
//! the way `worker/src/main.rs` now is: no async runtime, the response headers in one
//! `fields.from-list`. Not the reference of `run.sh`/`ab.sh` (that stays `hello`, the floor issue 15
//! names); it says how much of that floor is wstd's runtime (worker/README.md, session 20).
//!
//!   cargo build -p mdeploy-bench-hello --release --target wasm32-wasip2 --bin hello-wasip2

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("build with `cargo build -p mdeploy-bench-hello --release --target wasm32-wasip2 --bin hello-wasip2`");
    std::process::exit(2);
}

#[cfg(target_os = "wasi")]
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

#[cfg(target_os = "wasi")]
struct Hello;

#[cfg(target_os = "wasi")]
impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
            .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        let Ok(stream) = body.write() else { return };
        // 12 bytes: far below what check-write grants (1 MiB under wasmtime serve).
        if stream.check_write().is_ok_and(|n| n >= 12) {
            let _ = stream.write(b"{\"ok\":true}\n");
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

#[cfg(target_os = "wasi")]
wasip2::http::proxy::export!(Hello with_types_in wasip2);

/// Never called: the component is entered through `handle`.
#[cfg(target_os = "wasi")]
fn main() {}
