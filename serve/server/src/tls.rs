//! TLS for both ports (`mdeploy serve --tls-cert PEM --tls-key PEM`): one rustls configuration
//! made from the two files at start, handed to REST (ALPN `http/1.1`) and to gRPC (ALPN `h2`).
//!
//! ```text
//!  TcpListener ── accept ── spawn: peek first byte ─┬─ 0x16 (TLS record): handshake (10 s cap) ─> hyper / tonic
//!                                                   └─ anything else (REST port): one plain 400 naming https://, close
//! ```
//!
//! Why our own acceptor rather than tonic's `tls` feature: both ports then load, check and
//! report the files once, at start, with the file names in the error (tonic would read its
//! `Identity` inside the serving task, after we had announced the address), and a client that
//! connects and says nothing holds only its own task, never the accept loop.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish its handshake before the connection is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's certificate chain and key, ready for both ports.
#[derive(Clone)]
pub struct Tls {
    pub(crate) rest: TlsAcceptor,
    pub(crate) grpc: TlsAcceptor,
    /// The files it was made from, for the start-up lines.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

impl Tls {
    /// Reads a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or
    /// SEC1). Every error names the file and what is wrong with it.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, String> {
        let cert_pem = std::fs::read(cert).map_err(|e| format!("cannot read the TLS certificate file {}: {e}", cert.display()))?;
        let key_pem = std::fs::read(key).map_err(|e| format!("cannot read the TLS key file {}: {e}", key.display()))?;
        let chain = certificates(&cert_pem).map_err(|e| format!("TLS certificate file {}: {e}", cert.display()))?;
        let private = private_key(&key_pem).map_err(|e| format!("TLS key file {}: {e}", key.display()))?;
        let config = |alpn: &[u8]| -> Result<TlsAcceptor, String> {
            let mut c = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), private.clone_key())
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => format!(
                        "the TLS key file {} does not belong to the certificate in {} (their public keys differ); \
                         pass the key the certificate was issued for",
                        key.display(),
                        cert.display()
                    ),
                    e => format!(
                        "the TLS certificate {} and key {} cannot be used together: {e}; the key must be RSA, \
                         ECDSA (P-256/P-384) or Ed25519 and the certificate's first entry its X.509 certificate",
                        cert.display(),
                        key.display()
                    ),
                })?;
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(TlsAcceptor::from(Arc::new(c)))
        };
        Ok(Tls { rest: config(b"http/1.1")?, grpc: config(b"h2")?, cert: cert.to_path_buf(), key: key.to_path_buf() })
    }
}

fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("a PEM section never ends (no `{}` line); the file looks cut short", String::from_utf8_lossy(&end_marker))
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed PEM line `{}`", String::from_utf8_lossy(&line[..line.len().min(80)]))
        }
        pem::Error::Base64Decode(m) => format!("a PEM section is not valid base64 ({m})"),
        e => format!("not readable as PEM: {e}"),
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(pem_problem)?;
    if chain.is_empty() {
        return Err("holds no `-----BEGIN CERTIFICATE-----` section; --tls-cert takes the server's PEM \
                    certificate chain, its own certificate first (was the key passed instead?)"
            .to_string());
    }
    Ok(chain)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => "holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
                                     `EC PRIVATE KEY`); --tls-key takes the certificate's unencrypted private key \
                                     (was the certificate passed instead?)"
            .to_string(),
        e => pem_problem(e),
    })
}

/// What the first bytes of a new connection say it speaks.
pub(crate) enum Opening {
    /// A TLS handshake record (content type 22).
    Tls,
    /// Anything else: most likely plain HTTP sent to the TLS port.
    Plain,
    /// Closed or silent past the handshake timeout.
    Gone,
}

/// Looks at the first byte without consuming it.
pub(crate) async fn opening(stream: &TcpStream) -> Opening {
    let mut b = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut b)).await {
        Ok(Ok(1)) if b[0] == 0x16 => Opening::Tls,
        Ok(Ok(1)) => Opening::Plain,
        _ => Opening::Gone,
    }
}

/// The one answer a plain HTTP request gets on the TLS REST port (nginx answers the same case
/// with a 400 too), then the connection closes. Nothing of the request is acted on, but its head
/// is read first (at most 16 KiB, for at most a few seconds) and what follows the answer is
/// drained briefly: closing a socket with unread bytes makes the kernel send a reset, which can
/// destroy the answer before the client reads it (seen with a client writing its request in
/// several pieces).
pub(crate) async fn refuse_plain(mut stream: TcpStream, port: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let body = format!(
        "{{\"error\":\"this port speaks HTTPS (TLS): a plain HTTP request was sent to it; use https://HOST:{port}/\",\
         \"code\":\"TLS_REQUIRED\"}}"
    );
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // Read what is left (a body, the rest of a pipeline) until the client closes, within limits.
    let mut left = 64 * 1024usize;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// A handshaken gRPC connection, as tonic takes it (`Connected` is what tonic reads the peer
/// address from; its own impl for rustls streams needs its `tls` feature, which we do not use).
pub(crate) struct GrpcTls(pub tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for GrpcTls {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for GrpcTls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcTls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
