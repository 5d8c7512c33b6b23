//! mdeploy as a `wasi:http/proxy` component: a thin shim from wasi:http to
//! [`mdeploy_serve::Server::handle`], the pure function that holds the whole API.
//!
//! Per request: read the body up to [`MAX_BODY_BYTES`] (one byte more means 413, and we stop
//! reading: memory stays bounded whatever a client sends), hand method/path/content type/body to
//! the server, write its answer. `wasmtime serve` gives every request a fresh instance, so the
//! server lives in a thread-local: free to create, and kept when a host reuses the instance
//! (`--max-instance-reuse-count`; Spin and wasmCloud are untested), so loaded models then survive.
//!
//! Start-up work done at build time: the component also exports `wizer-initialize`, which
//! reads and plans every embedded model into that thread-local ([`Server::preload`]).
//! `worker/build.sh` runs it once under `wasmtime wizer` and writes the resulting memory image
//! as `mdeploy-worker.wizer.wasm`, so every fresh instance starts with the plans ready instead
//! of spending ≈ 0.45 ms (CNN) to 0.75 ms (MLP) per request on them.
//! Without the snapshot (`mdeploy-worker.wasm`, hosts without wizer) the models load lazily.
//!
//! Extra models: with `MDEPLOY_MODEL_DIR` set (and the folder mounted, `--dir HOST::GUEST`),
//! every `.mdm` file in it is served too, untrusted and planned on first use (`model_dir.rs`).
//! They are added per instance, on its first request, never in the snapshot: the files are the
//! host's, not the build's.

//!
//! Built for any other target (e.g. by `cargo test --workspace`) it is a stub that says how to
//! build it, so the workspace stays buildable natively.

// Natively only its tests use it (the binary is a stub there).
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
mod model_dir;

// Sealing the snapshot's heap, so requests allocate past its memory image (why: heap.rs).
#[cfg(target_os = "wasi")]
mod heap;

// The bump arena of the snapshot's init (heap.rs); natively only its tests use it.
#[cfg_attr(not(target_os = "wasi"), allow(dead_code))]
mod arena;

// The snapshot's blocks placed by what a request touches (why: heap.rs, `SnapshotAlloc`).
#[cfg(target_os = "wasi")]
#[global_allocator]
static ALLOC: heap::SnapshotAlloc = heap::SnapshotAlloc;

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!(
        "mdeploy-worker is a wasi:http component: build it with \
         `cargo build -p mdeploy-worker --release --target wasm32-wasip2` and run it with \
         `wasmtime serve -Scli --addr 127.0.0.1:8080 <target>/wasm32-wasip2/release/mdeploy-worker.wasm`"
    );
    std::process::exit(2);
}

#[cfg(target_os = "wasi")]
use std::cell::{Cell, RefCell};

#[cfg(target_os = "wasi")]
use mdeploy_serve::{ModelEntry, Request as ApiRequest, Response as ApiResponse, Server, MAX_BODY_BYTES};
#[cfg(target_os = "wasi")]
use wstd::http::body::util::BodyExt;
#[cfg(target_os = "wasi")]
use wstd::http::{Body, Error, HeaderValue, Request, Response, StatusCode};

#[cfg(target_os = "wasi")]
thread_local! {
    static SERVER: RefCell<Server> = RefCell::new(Server::new(ModelEntry::embedded()));
    /// Whether this instance added `MDEPLOY_MODEL_DIR`'s models to [`SERVER`] yet. False in the
    /// Wizer snapshot (its init never adds them), so every instance reads the host's folder.
    static EXTRA_ADDED: Cell<bool> = const { Cell::new(false) };
}

/// Adds the models of `MDEPLOY_MODEL_DIR` (if set) to `server`; what was skipped goes to stderr,
/// which `wasmtime serve` prints with the request's log.
#[cfg(target_os = "wasi")]
fn add_extra_models(server: &mut Server) {
    let Some(dir) = std::env::var_os(model_dir::ENV) else { return };
    for note in model_dir::add_models(server, std::path::Path::new(&dir)) {
        eprintln!("mdeploy-worker: {note}");
    }
}

/// The `wizer-initialize` export (a component-level function next to wstd's
/// `wasi:http/incoming-handler`), for `wasmtime wizer --init-func wizer-initialize`.
#[cfg(target_os = "wasi")]
mod init {
    wit_bindgen::generate!({
        inline: "package mdeploy:worker;\n\
                 world snapshot { export wizer-initialize: func(); }",
    });

    struct Init;

    impl Guest for Init {
        /// Loads and plans every embedded model into [`super::SERVER`]. `Server::preload` calls
        /// no import (no clock, no randomness, no printing), so the snapshot does not depend on
        /// the machine or moment it was built on (`wasmtime wizer` links the host's WASI, it
        /// would not stop us). A model that fails to load aborts (a trap, no import needed),
        /// so a broken embedded model fails the build instead of shipping a snapshot that
        /// answers 500. Called again on a snapshot it finds everything loaded and does nothing.
        fn wizer_initialize() {
            super::heap::snapshot_layout(true);
            let ok = super::SERVER.with(|s| {
                s.try_borrow_mut().map(|mut s| s.preload().is_ok() && warm_up(&mut s))
            });
            if !matches!(ok, Ok(true)) {
                std::process::abort();
            }
            super::heap::snapshot_layout(false);
            // Last: take the heap's free blocks, so requests allocate past the snapshot's image.
            super::heap::seal();
        }
    }

    /// One JSON infer per model, as a client would send it (784 zeros). It leaves the heap
    /// grown to a request's working set and the kernels' scratch buffers sized, so a fresh
    /// instance of the snapshot serves its request from memory it already has: no
    /// `memory.grow` (an mprotect per call in wasmtime) and fewer first-touch page faults.
    fn warm_up(s: &mut mdeploy_serve::Server) -> bool {
        let zeros = ["0"; 784].join(",");
        let body = format!(
            r#"{{"inputs":[{{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":[{zeros}]}}]}}"#
        );
        let models: Vec<String> = s.models().map(|(name, _)| name.to_string()).collect();
        models.iter().all(|name| {
            let path = format!("/v2/models/{name}/infer");
            let req = mdeploy_serve::Request {
                method: "POST",
                path: &path,
                content_type: Some("application/json"),
                headers: &[],
                body: body.as_bytes(),
            };
            s.handle(&req).status == 200
        })
    }

    export!(Init);
}

#[cfg(target_os = "wasi")]
#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok());
    // A GET or HEAD without Content-Length or Transfer-Encoding has no body (RFC 9112, 6.3): not
    // reading it saves the seven host calls of opening, reading and finishing an empty stream
    // (`GET /v2/health/live`: 27 host calls → 20; hello makes 18).
    let no_body = matches!(parts.method.as_str(), "GET" | "HEAD")
        && !parts.headers.contains_key("content-length")
        && !parts.headers.contains_key("transfer-encoding");
    let read = if no_body { Ok(Some(Vec::new())) } else { read_bounded(body).await };
    let answer = match read {
        Ok(Some(bytes)) => {
            // Every header with a UTF-8 value (a handful): the API looks up the few it reads.
            let headers: Vec<(&str, &str)> =
                parts.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
            let req = ApiRequest { method: parts.method.as_str(), path, content_type, headers: &headers, body: &bytes };
            SERVER.with(|s| match s.try_borrow_mut() {
                Ok(mut s) => {
                    if !EXTRA_ADDED.replace(true) {
                        add_extra_models(&mut s);
                    }
                    s.handle(&req)
                }
                // Only reachable if a host ran two requests at once on one instance.
                Err(_) => {
                    let mut s = Server::new(ModelEntry::embedded());
                    add_extra_models(&mut s);
                    s.handle(&req)
                }
            })
        }
        Ok(None) => ApiResponse::payload_too_large(),
        Err(e) => return Err(e),
    };
    respond(answer)
}

#[cfg(target_os = "wasi")]
/// The body, or `None` as soon as it grows past [`MAX_BODY_BYTES`] (the rest is never read).
async fn read_bounded(body: Body) -> Result<Option<Vec<u8>>, Error> {
    let declared = body.content_length();
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Ok(None);
    }
    let mut body = body.into_boxed_body();
    // One allocation of the declared size (bounded just above) instead of a doubling series of
    // copies: each copy writes fresh pages, and every fresh page is a page fault per request.
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > MAX_BODY_BYTES {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
            // All the declared bytes are here (the host frames the body by its Content-Length,
            // so no more can come): stop without the end-of-stream read and the trailers
            // (`incoming-body.finish`, `future-trailers` subscribe/ready/get), five host calls
            // per request that carry nothing here.
            if declared.is_some_and(|n| buf.len() as u64 >= n) {
                break;
            }
        }
    }
    Ok(Some(buf))
}

#[cfg(target_os = "wasi")]
fn respond(r: ApiResponse) -> Result<Response<Body>, Error> {
    let mut out = Response::new(Body::from(r.body));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(r.content_type));
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    Ok(out)
}
