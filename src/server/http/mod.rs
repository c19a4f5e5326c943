//! The transport: an accept loop of our own (the IP allow-list refuses a
//! connection before a byte is read, then TLS), hyper serving each connection, and
//! an axum route table whose handlers turn requests into hub calls.
//!
//! ```text
//! TcpListener ─► allow-list ─► TLS? ─► hyper http1 ─► guard layer ─► routes
//!                (403 / close)          (head timeout)  (Host, auth,     ├ /livez /readyz /metrics /
//!                                                        rate limit,     ├ /v1/sessions/{id}/transcript
//!                                                        Origin)         ├ /v1/ingest|captions/{id} ─► ws loops
//!                                                                        ├ GET /v1/realtime (OpenAI realtime) ─► ws loop
//!                                                                        ├ POST /v1/audio/transcriptions (OpenAI)
//!                                                                        └ /streaming-whisper/ws/{meeting} (Jitsi, JWT)
//! ```
//! Nothing here holds captioning logic: the WebSocket loops in `ingest` and
//! `viewers` call the hub.

mod guard;
mod ingest;
mod jitsi;
mod openai;
mod realtime;
mod routes;
mod viewers;
mod whisperlive;
pub(crate) mod ws;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tower::ServiceExt;
use tracing::Instrument;

pub(crate) use guard::AuthLimiter;

use super::tls::Conn;
use super::{allow, signalled, Hub};

/// Time a client has to finish the TLS handshake, and to send a request head.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A clone held by every connection and socket task; shutdown waits for all.
pub(crate) type TaskToken = mpsc::Sender<()>;

/// What the transport's handlers share: the hub, plus what only the transport
/// needs.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) hub: Arc<Hub>,
    pub(crate) tasks: TaskToken,
    pub(crate) limiter: Arc<AuthLimiter>,
    /// The `--whisperlive-listen` port: every path is WhisperLive's WebSocket.
    pub(crate) whisperlive_only: bool,
    /// File transcriptions in progress (`POST /v1/audio/transcriptions`).
    pub(crate) uploads: Arc<openai::Uploads>,
}

/// A JSON error body, as every refused HTTP request gets.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"type": "error", "code": code, "message": message});
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

/// Accept until shutdown; each connection gets its own task (holding `tasks`).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tasks: TaskToken,
    whisperlive_only: bool,
) {
    let app = App {
        hub: Arc::clone(&hub),
        tasks: tasks.clone(),
        limiter: Default::default(),
        whisperlive_only,
        uploads: Default::default(),
    };
    let router = routes::router(app);
    let mut shutdown = hub.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = signalled(&mut shutdown) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (hub, tls, router, task) =
                    (Arc::clone(&hub), tls.clone(), router.clone(), tasks.clone());
                let span = tracing::info_span!("conn", peer = %peer);
                tokio::spawn(
                    async move {
                        if let Some(conn) = admit(stream, peer, &hub, tls.as_ref()).await {
                            serve(conn, peer, router).await;
                        }
                        drop(task);
                    }
                    .instrument(span),
                );
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serve HTTP/1.1 requests on one connection until it closes or is upgraded.
async fn serve(conn: Conn, peer: SocketAddr, router: axum::Router) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(conn), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("connection ended: {e}");
    }
}

/// The connection to serve, or `None` when the peer is refused (not on the
/// allow-list: a plain `403` on a plain port, a bare close on a TLS port) or its
/// TLS handshake fails. Both are counted and logged with the peer's address only.
async fn admit(
    mut stream: TcpStream,
    peer: SocketAddr,
    hub: &Hub,
    tls: Option<&tokio_rustls::TlsAcceptor>,
) -> Option<Conn> {
    if !allow::allowed(&hub.config.allow_ips, peer.ip()) {
        hub.metrics.ip_denied.fetch_add(1, Relaxed);
        hub.log(format_args!("{}: refused: address not in allow_ips", peer.ip()));
        if tls.is_none() {
            let body = serde_json::json!({"type": "error", "code": "forbidden", "message": "this address may not connect"}).to_string();
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
        }
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection, and the client
        // might never see the 403: discard a little of what it sent, unparsed.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                if matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        return None;
    }
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return Some(Conn::Plain(stream));
    };
    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(Conn::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            hub.metrics.tls_failed.fetch_add(1, Relaxed);
            hub.log(format_args!("{}: TLS handshake failed: {e}", peer.ip()));
            None
        }
        Err(_) => {
            hub.metrics.tls_failed.fetch_add(1, Relaxed);
            hub.log(format_args!("{}: TLS handshake timed out", peer.ip()));
            None
        }
    }
}
