//! # mdeploy-server
//!
//! `mdeploy serve`: the native model server. A long-lived process over a Triton-style model
//! repository that answers REST (the pure `mdeploy_serve::Server::handle`, so its answers are
//! the serverless component's), KServe v2 gRPC, Triton's repository API and `GET /metrics`.
//! Design: `SERVER.md` beside this crate.
//!
//! ```text
//!  HTTP/1.1 (hyper) ──┬─ GET /metrics ─────────────────────────────> metrics.rs (Prometheus text)
//!                     ├─ POST /v2/repository/{index, models/m/load|unload} ──> repo.rs
//!                     └─ anything else ─┐
//!  gRPC (tonic) ── grpc.rs: the request as a KServe v2 REST one ─┴─> call(): current Generation
//!         (ArcSwap) ─> a pooled mdeploy_serve::Server (spawn_blocking) ─> handle() ─> Response
//!  watcher (poll) ── repo.poll(): changed files read, checked, planned, warmed ─> swap generation
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mdeploy_serve::{Request, Response, MAX_BODY_BYTES};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One line on stderr for the operator. A closed stderr is ignored: a server keeps serving when
/// nobody reads its log any more, whereas `eprintln!` panics on EPIPE (`mdeploy serve` ignores
/// SIGPIPE, so a write to a closed pipe fails instead of killing the process).
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod auth;
pub mod batch;
mod grpc;
pub mod metrics;
pub mod monitor;
pub mod repo;
pub mod tls;

pub use batch::DynamicBatching;
pub use repo::{ModelConfig, Repository, VersionPolicy};

/// The generated KServe v2 gRPC types (`proto/grpc_predict_v2.proto`).
pub mod pb {
    tonic::include_proto!("inference");
}

/// How to run the server (the flags of `mdeploy serve`).
#[derive(Clone, Debug)]
pub struct Options {
    /// `DIR/<model>/<version>/model.mdm`.
    pub repository: PathBuf,
    /// REST; port 0 picks a free one.
    pub http: SocketAddr,
    /// gRPC (KServe v2); `None` serves no gRPC.
    pub grpc: Option<SocketAddr>,
    /// How often the watcher looks at the repository; `None`: only the repository API reloads.
    pub poll: Option<Duration>,
    /// API keys every route but health needs (`auth.rs`); `None`: no checks.
    pub api_keys: Option<Arc<auth::ApiKeys>>,
    /// Most requests answered at once (REST and gRPC together); one more is refused at once with
    /// 429 / RESOURCE_EXHAUSTED instead of queueing without bound. `None`: no limit.
    pub max_inflight: Option<usize>,
    /// Input-drift reference for models whose file has none (`monitor.rs`); `None`: such
    /// models report drift status `no_reference`.
    pub drift_reference: Option<monitor::Fallback>,
    /// A trust policy (`--trust-dir`): only model versions signed by one of these keys load.
    pub trusted_keys: Option<Vec<mdeploy_core::format::PublicKey>>,
    /// `--decryption-key`: encrypted versions are decrypted with it, in memory (`repo.rs`).
    pub decryption_key: Option<mdeploy_core::format::DecryptionKey>,
    /// TLS on both ports (`tls.rs`); `None`: plain HTTP/1.1 and h2c.
    pub tls: Option<tls::Tls>,
}

impl Options {
    /// REST on `http`, nothing else: no gRPC, no watcher, no keys, no limit.
    pub fn new(repository: impl Into<PathBuf>, http: SocketAddr) -> Options {
        Options {
            repository: repository.into(),
            http,
            grpc: None,
            poll: None,
            api_keys: None,
            max_inflight: None,
            drift_reference: None,
            trusted_keys: None,
            decryption_key: None,
            tls: None,
        }
    }
}

/// State every connection shares.
pub(crate) struct Shared {
    pub repo: Repository,
    pub metrics: Arc<metrics::Metrics>,
    pub keys: Option<Arc<auth::ApiKeys>>,
    pub inflight: Option<(Arc<tokio::sync::Semaphore>, usize)>,
}

/// A running server: where it listens, and how to stop it.
pub struct Running {
    pub http: SocketAddr,
    pub grpc: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn repository(&self) -> &Repository {
        &self.shared.repo
    }

    /// Stops accepting and waits for every request in progress (REST and gRPC) to be answered.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// A graceful drain (`mdeploy serve` on SIGTERM): the listeners close at once, so new
    /// connections are refused; idle keep-alive connections are closed; requests in progress,
    /// REST and gRPC, are answered, for at most `timeout`. `true` if all of them were.
    pub async fn drain(self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        tokio::time::timeout(timeout, async move {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Opens the repository (every model read, checked and planned), binds the listeners and starts
/// serving on the current tokio runtime.
pub async fn start(opts: Options) -> Result<Running, String> {
    let metrics = Arc::new(metrics::Metrics::with_monitors(monitor::Monitors::with_fallback(opts.drift_reference.clone())));
    let dir = opts.repository.clone();
    let m2 = metrics.clone();
    let trusted = opts.trusted_keys.clone();
    let key = opts.decryption_key.clone();
    let repo = tokio::task::spawn_blocking(move || Repository::open_with_keys(&dir, m2, trusted, key))
        .await
        .map_err(|e| format!("loading the repository stopped: {e}"))??;
    let inflight = opts.max_inflight.map(|n| (Arc::new(tokio::sync::Semaphore::new(n.max(1))), n.max(1)));
    let shared = Arc::new(Shared { repo, metrics, keys: opts.api_keys.clone(), inflight });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    let listener = TcpListener::bind(opts.http)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {}: {e}; pick another --http address", opts.http))?;
    let http = listener.local_addr().map_err(|e| e.to_string())?;
    tasks.push(tokio::spawn(serve_http(listener, shared.clone(), stopped.clone(), opts.tls.clone())));

    let grpc = match opts.grpc {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for gRPC on {addr}: {e}; pick another --grpc address"))?;
            let a = l.local_addr().map_err(|e| e.to_string())?;
            tasks.push(tokio::spawn(grpc::serve(l, shared.clone(), stopped.clone(), opts.tls.as_ref().map(|t| t.grpc.clone()))));
            Some(a)
        }
        None => None,
    };

    if let Some(every) = opts.poll {
        tasks.push(tokio::spawn(watch_repository(shared.clone(), every, stopped.clone())));
    }
    Ok(Running { http, grpc, shared, stop, tasks })
}

/// The watcher: polls (see SERVER.md for why not inotify) and swaps in what changed.
async fn watch_repository(shared: Arc<Shared>, every: Duration, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        let s = shared.clone();
        // Reading and planning models is blocking work; keep it off the request threads.
        let _ = tokio::task::spawn_blocking(move || s.repo.poll()).await;
    }
}

async fn serve_http(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>, tls: Option<tls::Tls>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    // Every connection is watched, so a stop can wait for the requests in progress (the drain).
    // A connection still in its TLS handshake holds its watcher too (at most HANDSHAKE_TIMEOUT).
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = stopped.changed() => break,
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        // The handshake runs in the connection's own task, so a slow or silent client never
        // holds up the accept loop.
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, shared, watcher).await,
                Some(tls) => match tls::opening(&stream).await {
                    tls::Opening::Tls => {
                        if let Ok(Ok(s)) = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, tls.rest.accept(stream)).await {
                            serve_connection(s, shared, watcher).await
                        }
                    }
                    tls::Opening::Plain => tls::refuse_plain(stream, port).await,
                    tls::Opening::Gone => {}
                },
            }
        });
    }
    // Closed now, before the drain: a new connection is refused rather than left waiting.
    drop(listener);
    // Idle connections close; each one with a request in progress answers it, then closes.
    graceful.shutdown().await;
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>, watcher: hyper_util::server::graceful::Watcher)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(http_request(&shared, req).await) }
    });
    let _ = watcher.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), svc)).await;
}

type HttpResponse = hyper::Response<Full<Bytes>>;

fn to_hyper(r: Response) -> HttpResponse {
    let mut b = hyper::Response::builder().status(r.status).header("content-type", r.content_type);
    for (k, v) in &r.headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(Bytes::from(r.body))).unwrap_or_else(|_| {
        // Only a header value with bytes HTTP forbids gets here; ours are ASCII.
        hyper::Response::new(Full::new(Bytes::from_static(b"{\"error\":\"bad response header\"}")))
    })
}

fn denied(d: auth::Denied) -> Response {
    match d {
        auth::Denied::Unauthenticated(m) => {
            let mut r = json_error(401, "UNAUTHENTICATED", &m);
            r.headers.push(("www-authenticate", "Bearer".to_string()));
            r
        }
        auth::Denied::Forbidden(m) => json_error(403, "FORBIDDEN", &m),
    }
}

pub(crate) fn json_error(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message, "code": code })).unwrap_or_default();
    Response {
        status,
        content_type: "application/json",
        headers: vec![("access-control-allow-origin", "*".to_string())],
        body,
    }
}

async fn http_request(shared: &Arc<Shared>, req: hyper::Request<Incoming>) -> HttpResponse {
    let arrival = Instant::now();
    let (parts, body) = req.into_parts();
    // Never buffer more than the API takes: past the limit, 413 without reading the rest.
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return to_hyper(Response::payload_too_large())
        }
        Err(e) => return to_hyper(json_error(400, "BAD_INPUT", &format!("could not read the request body: {e}"))),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.clone());

    let plain_path = path.split('?').next().unwrap_or("");
    if let Some(keys) = &shared.keys {
        // CORS preflights carry no credentials; the pure function answers them.
        if let (false, Some((scope, model))) = (method == "OPTIONS", auth::rest_needs(&path)) {
            let authz = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
            if let Err(d) = keys.check(authz, scope, model.as_deref()) {
                return to_hyper(denied(d));
            }
        }
    }
    if plain_path == "/metrics" {
        if method != "GET" {
            return to_hyper(json_error(405, "METHOD_NOT_ALLOWED", "GET /metrics only"));
        }
        let mut r = hyper::Response::new(Full::new(Bytes::from(shared.metrics.render())));
        if let Ok(v) = "text/plain; version=0.0.4; charset=utf-8".parse() {
            r.headers_mut().insert("content-type", v);
        }
        return r;
    }
    if let Some((model, version)) = monitor_route(plain_path) {
        return to_hyper(monitor_answer(shared, &method, &model, version.as_deref()));
    }
    if let Some(rest) = plain_path.strip_prefix("/v2/repository/") {
        return to_hyper(repository_api(shared, &method, rest, &body).await);
    }
    let call = Call { method, path, content_type, headers, body: body.to_vec(), arrival, deadline: None };
    to_hyper(call.run(shared).await)
}

/// `GET /v2/models/{m}/monitor` or `/v2/models/{m}/versions/{v}/monitor`: `(m, v)`.
fn monitor_route(path: &str) -> Option<(String, Option<String>)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v2", "models", m, "monitor"] => Some((m.to_string(), None)),
        ["v2", "models", m, "versions", v, "monitor"] => Some((m.to_string(), Some(v.to_string()))),
        _ => None,
    }
}

/// The prediction and drift monitor of a served version (`monitor.rs`) as JSON.
fn monitor_answer(shared: &Arc<Shared>, method: &str, model: &str, version: Option<&str>) -> Response {
    if method != "GET" {
        let mut r = json_error(405, "METHOD_NOT_ALLOWED", &format!("{method} is not allowed here; use GET"));
        r.headers.push(("allow", "GET".to_string()));
        return r;
    }
    let gen = shared.repo.current();
    let Some(v) = gen.resolve(model, version) else {
        let served: Vec<String> = gen.served.iter().filter(|(m, _)| m == model).map(|(_, v)| v.to_string()).collect();
        let msg = if served.is_empty() {
            let mut names: Vec<&str> = gen.served.iter().map(|(m, _)| m.as_str()).collect();
            names.dedup();
            format!("unknown model '{}'; this server has: {}", clip(model), names.join(", "))
        } else {
            format!("model '{}' has no version or label '{}'; versions: {}", clip(model), clip(version.unwrap_or("")), served.join(", "))
        };
        return json_error(404, "NOT_FOUND", &msg);
    };
    let body = serde_json::to_vec(&shared.metrics.monitors.json(model, v)).unwrap_or_default();
    Response { status: 200, content_type: "application/json", headers: vec![("access-control-allow-origin", "*".to_string())], body }
}

/// Triton's model repository extension: index, load, unload.
async fn repository_api(shared: &Arc<Shared>, method: &str, rest: &str, body: &[u8]) -> Response {
    if method != "POST" {
        let mut r = json_error(405, "METHOD_NOT_ALLOWED", &format!("{method} is not allowed here; use POST"));
        r.headers.push(("allow", "POST".to_string()));
        return r;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        ["index"] => {
            let only_ready = match mdeploy_serve::index_request_ready(body) {
                Ok(r) => r,
                Err(e) => return json_error(400, "BAD_INPUT", &e),
            };
            let s = shared.clone();
            let rows = match tokio::task::spawn_blocking(move || s.repo.index()).await {
                Ok(r) => r,
                Err(e) => return json_error(500, "INTERNAL", &format!("the index failed: {e}")),
            };
            let rows: Vec<_> = rows.into_iter().filter(|r| !only_ready || r.state == "READY").collect();
            let body = serde_json::to_vec(&rows).unwrap_or_default();
            Response {
                status: 200,
                content_type: "application/json",
                headers: vec![("access-control-allow-origin", "*".to_string())],
                body,
            }
        }
        ["models", name, action @ ("load" | "unload")] => {
            let (name, load) = (name.to_string(), *action == "load");
            let s = shared.clone();
            let r = tokio::task::spawn_blocking(move || if load { s.repo.load(&name) } else { s.repo.unload(&name) }).await;
            match r {
                Ok(Ok(())) => Response {
                    status: 200,
                    content_type: "application/json",
                    headers: vec![("access-control-allow-origin", "*".to_string())],
                    body: b"{}".to_vec(),
                },
                Ok(Err(e)) => json_error(400, "BAD_INPUT", &e),
                Err(e) => json_error(500, "INTERNAL", &format!("the {} failed: {e}", if load { "load" } else { "unload" })),
            }
        }
        _ => json_error(
            404,
            "NOT_FOUND",
            &format!(
                "no repository route /v2/repository/{}; there are POST /v2/repository/index and \
                 POST /v2/repository/models/{{model}}/load|unload",
                clip(rest)
            ),
        ),
    }
}

/// One request for the pure API, owned so it can move to a blocking thread.
pub(crate) struct Call {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub arrival: Instant,
    /// gRPC's deadline: not started after it, answered 504 `DEADLINE_EXCEEDED` when past it.
    pub deadline: Option<Instant>,
}

pub(crate) const DEADLINE_STATUS: u16 = 504;

impl Call {
    /// Runs the request on the current generation (kept alive until the answer is built, so a
    /// reload meanwhile does not touch it) and records the metrics of an inference.
    pub async fn run(self, shared: &Arc<Shared>) -> Response {
        let gen = shared.repo.current();
        let target = infer_target(&self.method, &self.path)
            .and_then(|(m, v)| gen.resolve(&m, v.as_deref()).map(|ver| (m, ver)));
        if let Some((m, v)) = &target {
            shared.metrics.pending(m, *v, 1);
        }
        // Its executions are counted by its batch thread (`batch.rs`), not per request.
        let batched_version = target.as_ref().is_some_and(|(m, v)| gen.batched(m, *v));
        let deadline = self.deadline;
        let arrival = self.arrival;
        // The permit travels with the work: it is released when the computation ends, even if
        // the client's deadline has already been answered.
        // Health probes are never refused: a busy server is still live and ready.
        let limit = shared.inflight.as_ref().filter(|_| !self.path.starts_with("/v2/health/"));
        let permit = match limit {
            None => None,
            Some((sem, n)) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let mut r = json_error(
                        429,
                        "RESOURCE_EXHAUSTED",
                        &format!("{n} requests are being answered, the server's limit (--max-inflight); retry shortly"),
                    );
                    r.headers.push(("retry-after", "1".to_string()));
                    if let Some((m, v)) = &target {
                        shared.metrics.pending(m, *v, -1);
                        let t = metrics::Timing {
                            total: arrival.elapsed(),
                            queue: Duration::ZERO,
                            compute: Duration::ZERO,
                            batched: false,
                        };
                        shared.metrics.observe(m, *v, None, &t);
                    }
                    return r;
                }
            },
        };
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let queue = arrival.elapsed();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return (deadline_response(), queue, Duration::ZERO);
            }
            let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let req = Request {
                method: &self.method,
                path: &self.path,
                content_type: self.content_type.as_deref(),
                headers: &headers,
                body: &self.body,
            };
            let mut server = gen.take_server();
            batch::begin(deadline);
            let t0 = Instant::now();
            let resp = server.handle(&req);
            // Time in a batch queue (`batch.rs`) is queueing, not computing.
            let batched = batch::queued();
            let compute = t0.elapsed().saturating_sub(batched);
            gen.give_back(server);
            // A request answered after its deadline (it ran, or waited in a batch queue, past
            // it) is a deadline error, whatever the run gave.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return (deadline_response(), queue + batched, compute);
            }
            (resp, queue + batched, compute)
        });
        let outcome = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), work).await {
                Ok(r) => r.ok(),
                Err(_) => Some((deadline_response(), arrival.elapsed(), Duration::ZERO)),
            },
            None => work.await.ok(),
        };
        let (resp, queue, compute) = match outcome {
            Some(r) => r,
            None => (json_error(500, "INTERNAL", "the request's worker stopped unexpectedly"), arrival.elapsed(), Duration::ZERO),
        };
        if let Some((model, version)) = target {
            shared.metrics.pending(&model, version, -1);
            let ok = (resp.status == 200).then(|| batch_size(&resp));
            // A request refused before its run (a bad input) was no execution either way.
            let t = metrics::Timing { total: arrival.elapsed(), queue, compute, batched: batched_version };
            shared.metrics.observe(&model, version, ok, &t);
        }
        resp
    }
}

fn deadline_response() -> Response {
    json_error(DEADLINE_STATUS, "DEADLINE_EXCEEDED", "the request's deadline passed before it was answered; allow more time")
}

/// The model and version (or label) an inference route names, if `path` is one.
fn infer_target(method: &str, path: &str) -> Option<(String, Option<String>)> {
    if method != "POST" {
        return None;
    }
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    let (m, v) = match segs.as_slice() {
        ["v2", "models", m, "infer"] => (*m, None),
        ["v2", "models", m, "versions", v, "infer"] => (*m, Some(*v)),
        ["v1", "models", last] => (last.strip_suffix(":predict")?, None),
        ["v1", "models", m, "versions" | "labels", last] => (*m, Some(last.strip_suffix(":predict")?)),
        ["predict"] => {
            let m = query.split('&').find_map(|kv| kv.strip_prefix("model=")).unwrap_or("mnist-cnn");
            (m, None)
        }
        _ => return None,
    };
    Some((m.to_string(), v.map(str::to_string)))
}

/// How many samples a successful inference answered (1 when the answer does not say).
fn batch_size(r: &Response) -> usize {
    let json_len = r
        .headers
        .iter()
        .find(|(k, _)| *k == "inference-header-content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(r.body.len())
        .min(r.body.len());
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body[..json_len]) else { return 1 };
    if let Some(n) = v.pointer("/outputs/0/shape/0").and_then(|x| x.as_u64()) {
        return n as usize;
    }
    if let Some(p) = v.get("predictions").and_then(|p| p.as_array()) {
        return p.len();
    }
    if let Some(o) = v.get("outputs").and_then(|o| o.as_object()).and_then(|o| o.values().next()).and_then(|x| x.as_array()) {
        return o.len();
    }
    1
}

/// At most 100 bytes of a client string, for error messages.
pub(crate) fn clip(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
