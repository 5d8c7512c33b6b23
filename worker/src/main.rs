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
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
#[cfg(target_os = "wasi")]
use wasip2::io::streams::StreamError;

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

/// The `wizer-initialize` export (a component-level function next to the
/// `wasi:http/incoming-handler` export below), for `wasmtime wizer --init-func wizer-initialize`.
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

/// The `wasi:http/incoming-handler` export, written on the generated `wasip2` bindings, with no
/// async runtime and no `http` types in between.
///
/// Why not `wstd`'s `#[http_server]` (used until 2026-12-01): every fresh instance paid for its
/// machinery before our code ran, measured with `perf` under `wasmtime serve` (worker/README.md,
/// session 20): a reactor per request (`Reactor::new`: an `Arc`, a `Slab`, a `HashMap` whose
/// `RandomState` initialises std's hash-key thread-local and calls `wasi:random/insecure-seed`),
/// the request headers copied into an `http::HeaderMap` (header names parsed against `http`'s
/// tables in `.rodata`, hashed, then scanned again for the body's length) and the response's back
/// out of one, an async task and its waker. The request needs none of that: it is read once,
/// start to end, and answered once.
///
/// Host calls per request, JSON infer (17; wstd made 22, hello makes 18): method, path,
/// headers and their entries, consume and stream, one blocking read per 64 KiB of body, `get-environment` (for
/// `MDEPLOY_MODEL_DIR`), then `fields.from-list` (one call for every response header, where
/// wstd made a `fields` and appended each), the response, its status, its body,
/// `response-outparam.set`, and the body's write stream, check-write, write, finish. A `GET`
/// without a body skips consume, stream and read (14).
#[cfg(target_os = "wasi")]
struct Handler;

#[cfg(target_os = "wasi")]
impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = request.method();
        let method = method_str(&method);
        let path = request.path_with_query();
        // The request's headers, copied out of the host once (`fields.entries`); the handle is
        // a child of the request and is dropped at the end of this statement.
        let entries = request.headers().entries();
        // As `http::HeaderValue::to_str` (what the API saw through wstd): only values of
        // visible ASCII and tabs; a header with any other byte is left out.
        let headers: Vec<(&str, &str)> = entries
            .iter()
            .filter(|(_, v)| v.iter().all(|&b| b == b'\t' || (32..127).contains(&b)))
            .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v).ok()?)))
            .collect();
        let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|&(_, v)| v);
        let content_type = header("content-type");
        // A GET or HEAD without Content-Length or Transfer-Encoding has no body (RFC 9112, 6.3):
        // not opening it saves the host calls of consuming, opening and reading an empty stream.
        let no_body = matches!(method, "GET" | "HEAD")
            && header("content-length").is_none()
            && header("transfer-encoding").is_none();
        let declared = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let read = if no_body { Ok(Some(Vec::new())) } else { read_bounded(&request, declared) };
        let answer = match read {
            Ok(Some(bytes)) => {
                let req = ApiRequest { method, path: path.as_deref().unwrap_or("/"), content_type, headers: &headers, body: &bytes };
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
            // The body's stream failed (the client went away mid-body): no answer to give; the
            // host answers with an error, as wstd's `Responder::fail` had it do.
            Err(e) => return ResponseOutparam::set(out, Err(e)),
        };
        drop(request);
        respond(out, answer);
    }
}

#[cfg(target_os = "wasi")]
wasip2::http::proxy::export!(Handler with_types_in wasip2);

/// Never called: a `wasi:http` component is entered through `handle`, but a `src/main.rs` needs
/// a `main` (as wstd's macro provided one).
#[cfg(target_os = "wasi")]
fn main() {
    unreachable!("mdeploy-worker is a wasi:http component: it is called through `handle`, not `run`")
}

#[cfg(target_os = "wasi")]
fn method_str(m: &Method) -> &str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(s) => s,
    }
}

#[cfg(target_os = "wasi")]
/// The body, or `None` as soon as it grows past [`MAX_BODY_BYTES`] (the rest is never read).
fn read_bounded(request: &IncomingRequest, declared: Option<u64>) -> Result<Option<Vec<u8>>, ErrorCode> {
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Ok(None);
    }
    let body = request.consume().map_err(|()| ErrorCode::InternalError(Some("request body already taken".into())))?;
    let stream = body.stream().map_err(|()| ErrorCode::InternalError(Some("request body stream already taken".into())))?;
    let mut buf: Vec<u8> = Vec::new();
    let result = loop {
        // All the declared bytes are here (the host frames the body by its Content-Length, so no
        // more can come): stop without the end-of-stream read and the trailers
        // (`incoming-body.finish`, `future-trailers` subscribe/ready/get), host calls that carry
        // nothing here.
        if declared.is_some_and(|n| buf.len() as u64 >= n) {
            break Ok(Some(buf));
        }
        // One host call that waits for at least one byte; 64 KiB at most per call, or what is
        // still missing of the declared length.
        let want = declared.map_or(65536, |n| (n - buf.len() as u64).min(65536));
        match stream.blocking_read(want) {
            Ok(data) => {
                if buf.len() + data.len() > MAX_BODY_BYTES {
                    break Ok(None);
                }
                if buf.is_empty() {
                    // The first chunk is kept as it came from the host (the whole body, for
                    // one under 64 KiB that arrived at once) instead of copied: every byte
                    // copied is written to a fresh page, and each fresh page is a page fault.
                    buf = data;
                    // More to come: room for the rest of the declared length (bounded above)
                    // at once, not a doubling series of copies.
                    if let Some(n) = declared {
                        buf.reserve_exact((n as usize).saturating_sub(buf.len()));
                    }
                } else {
                    buf.extend_from_slice(&data);
                }
            }
            Err(StreamError::Closed) => break Ok(Some(buf)),
            Err(StreamError::LastOperationFailed(e)) => {
                break Err(ErrorCode::InternalError(Some(format!("reading the request body: {}", e.to_debug_string()))))
            }
        }
    };
    // The stream is a child of the body: dropped first.
    drop(stream);
    drop(body);
    result
}

#[cfg(target_os = "wasi")]
/// Whether `http::HeaderValue::from_str` takes `v` (what the response headers went through
/// with wstd): no control characters but tab, no DEL.
fn header_value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 32 && b != 127))
}

#[cfg(target_os = "wasi")]
fn respond(out: ResponseOutparam, r: ApiResponse) {
    // Content type first, then the API's headers; a later header of the same name replaces an
    // earlier one (as `HeaderMap::insert` did), one whose value is not a valid header value is
    // left out.
    let mut list: Vec<(String, Vec<u8>)> = Vec::with_capacity(1 + r.headers.len());
    let mut put = |name: &str, value: &str| {
        if !header_value_ok(value) {
            return;
        }
        match list.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(slot) => slot.1 = value.as_bytes().to_vec(),
            None => list.push((name.to_string(), value.as_bytes().to_vec())),
        }
    };
    put("content-type", r.content_type);
    for (name, value) in &r.headers {
        put(name, value);
    }
    // One host call for all of them. The API's header names are fixed lower-case names none of
    // which the host forbids, so this does not fail; if it ever did, the answer still goes out
    // with its content type alone rather than not at all.
    let fields = Fields::from_list(&list).unwrap_or_else(|_| {
        let f = Fields::new();
        let _ = f.append("content-type", r.content_type.as_bytes());
        f
    });
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(r.status).is_err() {
        let _ = response.set_status_code(500);
    }
    let Ok(body) = response.body() else {
        return ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some("response body already taken".into()))));
    };
    // The status and headers go out now; the body follows.
    ResponseOutparam::set(out, Ok(response));
    let Ok(stream) = body.write() else { return };
    let mut rest = &r.body[..];
    while !rest.is_empty() {
        match stream.check_write() {
            // The host's buffer is full (a slow client): wait until it takes more.
            Ok(0) => stream.subscribe().block(),
            Ok(n) => {
                let k = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                if stream.write(&rest[..k]).is_err() {
                    return;
                }
                rest = &rest[k..];
            }
            // The client went away: nothing more to do.
            Err(_) => return,
        }
    }
    // The stream is a child of the body: dropped before `finish`.
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
