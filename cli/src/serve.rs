//! `mdeploy serve`: a thin wrapper around `mdeploy-server` (serve/server/, design in SERVER.md).

/// The banner and the drain messages. A closed stdout or stderr is ignored: the lines are for
/// whoever started the server, and a server must keep serving when nobody reads them any more
/// (`mdeploy serve | head -1`, a supervisor that closed its end). `println!` would panic on the
/// EPIPE that a write then gets, since this command ignores SIGPIPE (below).
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! tell_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(after_help = "Repository layout (Triton's):\n  \
    DIR/<model>/<version>/model.mdm   version: a positive integer folder\n  \
    DIR/<model>/config.toml           optional: version_policy, [labels], max_batch, [dynamic_batching]\n\n\
    Example:\n  mkdir -p repo/mnist-cnn/1 && cp models/mnist-cnn.mdm repo/mnist-cnn/1/model.mdm\n  \
    mdeploy serve --repository repo\n  \
    mdeploy serve --repository repo --tls-cert cert.pem --tls-key key.pem   # HTTPS and gRPC over TLS\n  \
    curl -s 127.0.0.1:8000/v2/models/mnist-cnn    # KServe v2 REST; gRPC on 127.0.0.1:8001")]
pub struct ServeArgs {
    /// The model repository folder.
    #[arg(long, value_name = "DIR")]
    repository: PathBuf,
    /// REST address (KServe v2, TF Serving, /predict, /metrics, the repository API); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:8000")]
    http: SocketAddr,
    /// KServe v2 gRPC address; port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:8001")]
    grpc: SocketAddr,
    /// Serve no gRPC.
    #[arg(long)]
    no_grpc: bool,
    /// How often to look for new, changed or removed versions, in milliseconds (0: never; the
    /// repository API still reloads).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// API keys file (TOML: [[key]] name, sha256, scopes = ["infer", "admin"], optional models);
    /// without it every route is open. See serve/server/SERVER.md.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// Most requests answered at once; one more gets 429 / RESOURCE_EXHAUSTED (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_inflight: usize,
    /// Folder with the mnist package's 0.json..9.json: its training split is the input-drift
    /// reference of 784-value models whose file has none (`mdeploy monitor-ref` stores one).
    /// Default: found as other commands find it; if not found, such models report no drift.
    #[arg(long, value_name = "DIR")]
    drift_data: Option<PathBuf>,
    /// Serve only models signed by a key in this folder (its *.pub files, from `mdeploy keygen`):
    /// an unsigned or modified version is refused and the signed version before it keeps serving.
    #[arg(long, value_name = "DIR")]
    trust_dir: Option<PathBuf>,
    /// Decrypt encrypted versions with this key (the .enckey file from `mdeploy keygen
    /// --encryption`), in memory only; a version encrypted for another key is refused and the
    /// version before it keeps serving. Checked after --trust-dir's signature.
    #[arg(long, value_name = "FILE")]
    decryption_key: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C: stop accepting at once, then let the requests in progress (REST and
    /// gRPC) finish for at most this many seconds before exiting.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    drain_timeout_s: u64,
    /// TLS on both ports: the server's PEM certificate chain (its own certificate first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS on both ports: the PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub fn run(a: &ServeArgs) -> Result<(), String> {
    // main() restores SIGPIPE's default (die) for the pipeline commands; a server must not die
    // when a client goes away while an answer is being written (hyper's vectored writes are
    // plain `writev`, which raises SIGPIPE on a reset socket: seen as exit status 141 when
    // h2load closed its 32 connections, bench/serve/run.sh). Ignored, the write fails with
    // EPIPE and only that connection ends.
    #[cfg(unix)]
    // SAFETY: setting one signal's disposition before the runtime starts any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let api_keys = match &a.api_keys {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read the API keys file {}: {e}", p.display()))?;
            Some(std::sync::Arc::new(
                mdeploy_server::auth::ApiKeys::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?,
            ))
        }
        None => None,
    };
    // An explicit folder must work; a default one is used only if it is there.
    let drift_dir = match &a.drift_data {
        Some(d) => Some(crate::data::mnist_dir(Some(d))?),
        None => crate::data::mnist_dir(None).ok(),
    };
    let drift_reference = match &drift_dir {
        Some(d) => {
            let split = crate::data::load_split(d)?;
            let reference = crate::monitor_ref::training_reference(&split.train)?;
            Some(mdeploy_server::monitor::Fallback { reference, row_len: split.train.sample_len() })
        }
        None => None,
    };
    let trusted_keys = match &a.trust_dir {
        Some(d) => {
            let keys = crate::trust::read_public_keys(std::slice::from_ref(d))?;
            let ids: Vec<String> = keys.iter().map(|(_, k)| k.key_id().to_string()).collect();
            tell!("mdeploy serve: only models signed by {} (key ids {})", d.display(), ids.join(", "));
            Some(keys.into_iter().map(|(_, k)| k).collect())
        }
        None => None,
    };
    let decryption_key = match &a.decryption_key {
        Some(p) => {
            let key = crate::trust::read_decryption_key(p)?;
            tell!("mdeploy serve: decrypting encrypted models with key id {} ({})", key.key_id(), p.display());
            Some(key)
        }
        None => None,
    };
    // Read and checked before anything listens, so a bad file stops the start naming it.
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(mdeploy_server::tls::Tls::from_pem_files(c, k)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let result = rt.block_on(async {
        let opts = mdeploy_server::Options {
            repository: a.repository.clone(),
            http: a.http,
            grpc: (!a.no_grpc).then_some(a.grpc),
            poll: (a.poll_ms > 0).then(|| Duration::from_millis(a.poll_ms)),
            api_keys,
            max_inflight: (a.max_inflight > 0).then_some(a.max_inflight),
            drift_reference,
            trusted_keys,
            decryption_key,
            tls,
        };
        let running = mdeploy_server::start(opts).await?;
        // Listen for SIGTERM before announcing the address: a supervisor (or a test) that stops
        // us as soon as it reads the address must get the clean stop, not the default kill.
        #[cfg(unix)]
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(not(unix))]
        let term = ();
        let served: Vec<String> =
            running.repository().current().served.iter().map(|(m, v)| format!("{m} v{v}")).collect();
        tell!("mdeploy serve: REST on {scheme}://{} (KServe v2 /v2, TF Serving /v1, /predict, /metrics)", running.http);
        if let Some(g) = running.grpc {
            tell!("mdeploy serve: gRPC (KServe v2) on {g}{}", if scheme == "https" { " (TLS)" } else { "" });
        }
        tell!(
            "mdeploy serve: repository {}: {}",
            a.repository.display(),
            if served.is_empty() { "no model serves yet".to_string() } else { served.join(", ") }
        );
        match &drift_dir {
            Some(d) => tell!(
                "mdeploy serve: input drift of models without their own reference: against the MNIST training split ({})",
                d.display()
            ),
            None => tell!("mdeploy serve: no MNIST digits found (--drift-data): models without their own reference report no drift"),
        }
        shutdown_signal(term).await;
        let limit = Duration::from_secs(a.drain_timeout_s);
        tell_err!(
            "mdeploy serve: stopping: no new connections; waiting up to {} s for the requests in progress",
            a.drain_timeout_s
        );
        if running.drain(limit).await {
            tell_err!("mdeploy serve: drained; every request in progress was answered");
        } else {
            tell_err!(
                "mdeploy serve: the drain timeout ({} s) passed with requests still running; they are cut \
                 (raise --drain-timeout-s to wait longer)",
                a.drain_timeout_s
            );
        }
        Ok::<(), String>(())
    });
    // A computation cut by the drain timeout may still hold a worker thread: do not wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

#[cfg(unix)]
async fn shutdown_signal(term: Option<tokio::signal::unix::Signal>) {
    if let Some(mut term) = term {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(not(unix))]
async fn shutdown_signal(_term: ()) {
    let _ = tokio::signal::ctrl_c().await;
}
