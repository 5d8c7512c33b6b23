//! The floor of `wasmtime serve`: a component that answers a constant 12-byte JSON body.
//! bench/serverless/run.sh measures mdeploy-worker against it in the same run, so the ratio
//! says what our own work costs on top of a fresh instance per request.

#[cfg(not(target_os = "wasi"))]
fn main() {
    eprintln!("build with `cargo build -p mdeploy-bench-hello --release --target wasm32-wasip2`");
    std::process::exit(2);
}

#[cfg(target_os = "wasi")]
#[wstd::http_server]
async fn main(_req: wstd::http::Request<wstd::http::Body>) -> Result<wstd::http::Response<wstd::http::Body>, wstd::http::Error> {
    let mut r = wstd::http::Response::new(wstd::http::Body::from("{\"ok\":true}\n"));
    r.headers_mut().insert("content-type", wstd::http::HeaderValue::from_static("application/json"));
    Ok(r)
}
