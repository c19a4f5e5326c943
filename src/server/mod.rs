//! The caption server behind `cantocap serve`: audio in per session over WebSocket,
//! captions out to any number of viewers, each in its own script.
//!
//! ```text
//! meeting server ──/v1/ingest/{session}──► ingest task ──channel──► engine thread
//!   (PCM frames)                                                   (StreamingTranscriber)
//!                                                                         │ events
//!                                          journal (DATA_DIR/{session}.jsonl) ◄─┤
//! viewers ◄──/v1/captions/{session}?script=── viewer tasks ◄── broadcast ◄──┘
//! ```
//!
//! - [`protocol`]: the messages, error codes and close codes (see also
//!   `docs/PROTOCOL.md`).
//! - [`config`]: [`ServerConfig`], [`Limits`] and the TOML [`ConfigFile`].
//! - [`auth`]: bearer tokens with roles, expiry and session scope, and the Origin
//!   check.
//! - [`allow`]: the IP allow-list, checked before a request is read; TLS with
//!   rustls when [`ServerConfig::tls`] names a certificate.
//! - [`journal`]: finals as JSON lines, written as they are emitted.
//! - [`audit`]: the hash-chained audit log; [`retention`]: deleting old sessions.
//! - [`metrics`]: the Prometheus counters.
//! - [`webhook`]: signed POSTs of finals and session closes (`docs/WEBHOOKS.md`).
//!
//! Start one in-process (tests, embedding) with [`Server::bind`]:
//!
//! ```no_run
//! # async fn demo() -> cantocap::Result<()> {
//! use cantocap::server::{Server, ServerConfig};
//!
//! let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
//! let server = Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.ready().await?; // the model is loaded
//! server.shutdown().await; // finalizes sessions, flushes journals, closes clients
//! # Ok(()) }
//! ```

pub mod allow;
pub mod audit;
pub mod auth;
pub mod config;
mod conn;
mod http;
mod ingest;
pub mod journal;
mod linger;
pub mod metrics;
pub mod protocol;
mod recording;
pub mod redaction;
pub mod retention;
mod rfc3339;
mod session;
mod tls;
mod viewers;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use allow::IpNet;
pub use auth::{Role, TokenEntry};
pub use config::{ConfigFile, Limits, ServerConfig};
pub use redaction::RedactSection;
pub use tls::TlsFiles;

use self::auth::{Denied, Scope};
use self::metrics::Metrics;
use self::protocol::{valid_session_id, ErrorCode};
use self::session::{ComputePool, Converters, Registry};
use crate::asr::WhisperModel;
use crate::caption::{self, CaptionFormat, LayoutOptions};
use crate::text::Script;
use crate::{Error, Result};

/// The overlay page served at `/`.
const OVERLAY: &str = include_str!("overlay.html");

/// State shared by every connection.
pub(crate) struct Shared {
    config: ServerConfig,
    model: OnceLock<Arc<WhisperModel>>,
    converters: Converters,
    metrics: Metrics,
    sessions: Registry,
    active_ingests: AtomicUsize,
    pool: ComputePool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
    viewers_off: watch::Receiver<bool>,
    audit: Option<audit::AuditLog>,
    webhooks: webhook::Webhooks,
}

impl Shared {
    fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.config.log {
            eprintln!("cantocap serve: {args}");
        }
    }

    /// [`Registry::get`] off the async workers: it may read a journal.
    async fn session(
        self: &Arc<Self>,
        id: &str,
        create: bool,
    ) -> Result<Option<Arc<session::Session>>> {
        let shared = Arc::clone(self);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            shared.sessions.get(&id, shared.config.data_dir.as_deref(), create)
        })
        .await
        // A panic in the lookup is a bug: let it surface as one.
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Load {
    Loading,
    Ready,
    Failed(String),
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<watch::Sender<bool>>,
    viewers_off: watch::Sender<bool>,
    load: watch::Receiver<Load>,
    accept: JoinHandle<()>,
    tasks: mpsc::Receiver<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Starts a graceful shutdown of a [`Server`] from anywhere (a signal handler).
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Stop accepting connections and finalize every session.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Server {
    /// Check the configuration, bind the listener and start serving; the model
    /// loads in the background (`/readyz` says when; see [`Server::ready`]). Must be
    /// called within a multi-threaded tokio runtime.
    pub async fn bind(config: ServerConfig) -> Result<Server> {
        config.check()?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|source| Error::Io { path: dir.clone(), source })?;
        }
        let audit = config.audit_log.as_deref().map(audit::AuditLog::open).transpose()?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| Error::ServerConfig {
            reason: format!("cannot listen on {}: {e}", config.listen),
        })?;
        let addr = listener.local_addr().map_err(Error::Write)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (viewers_off_tx, viewers_off_rx) = watch::channel(false);
        let (load_tx, load_rx) = watch::channel(Load::Loading);
        let metrics = Metrics::default();
        let webhooks =
            webhook::Webhooks::start(&config.webhooks, Arc::clone(&metrics.webhooks), config.log)?;
        let shared = Arc::new(Shared {
            converters: Converters::new()?,
            metrics,
            webhooks,
            sessions: Registry::new(config.limits.broadcast_capacity),
            active_ingests: AtomicUsize::new(0),
            pool: ComputePool::new(config.limits.decode_slots),
            model: OnceLock::new(),
            tls,
            shutdown: shutdown_rx,
            viewers_off: viewers_off_rx,
            config,
            audit,
        });
        shared.audit(
            audit::Entry::new(audit::Event::ConfigLoaded)
                .detail(audit::config_summary(&shared.config, addr)),
        );
        if let Some(retention) = shared.config.retention {
            tokio::spawn(retention::run(Arc::clone(&shared), retention));
        }
        {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || {
                let path = shared.config.model.clone();
                match WhisperModel::load(&path) {
                    Ok(model) => {
                        let _ = shared.model.set(Arc::new(model));
                        let _ = load_tx.send(Load::Ready);
                    }
                    Err(e) => {
                        let _ = load_tx.send(Load::Failed(e.to_string()));
                    }
                }
            });
        }
        tokio::spawn(linger::sweep(Arc::clone(&shared)));
        let (task_tx, tasks) = mpsc::channel(1);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), task_tx));
        Ok(Server {
            addr,
            shared,
            shutdown: Arc::new(shutdown_tx),
            viewers_off: viewers_off_tx,
            load: load_rx,
            accept,
            tasks,
        })
    }

    /// The address it listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait until the model is loaded; an error if it could not be.
    pub async fn ready(&self) -> Result<()> {
        let mut load = self.load.clone();
        let state = load
            .wait_for(|l| *l != Load::Loading)
            .await
            .map(|l| l.clone())
            .unwrap_or(Load::Loading);
        match state {
            Load::Ready => Ok(()),
            Load::Failed(reason) => Err(Error::ServerConfig { reason }),
            Load::Loading => Err(Error::ServerConfig { reason: "the model loader stopped".into() }),
        }
    }

    /// A handle that starts the shutdown (for signal handlers).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(Arc::clone(&self.shutdown))
    }

    /// Wait until a shutdown is started (by a [`ShutdownHandle`]), then finish it.
    pub async fn wait(self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|&s| s).await;
        self.shutdown().await;
    }

    /// Graceful shutdown: stop accepting, finalize and journal every active session
    /// (ingest clients get their last finals, then close 1001); each session's
    /// viewers are closed with 1001 once it has finalized. Webhooks get up to 5 s
    /// to deliver what is queued. Gives up waiting for sessions after
    /// [`Limits::shutdown_grace_secs`].
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
        let grace = Duration::from_secs(self.shared.config.limits.shutdown_grace_secs);
        let deadline = Instant::now() + grace;
        while self.shared.active_ingests.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.viewers_off.send(true);
        let remaining =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(2));
        let _ = tokio::time::timeout(remaining, self.tasks.recv()).await;
        self.shared.webhooks.shutdown(Duration::from_secs(5)).await;
        self.shared.log(format_args!("stopped"));
    }
}

/// Resolves once the flag is set (never, if its sender is gone).
pub(crate) async fn signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&s| s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: mpsc::Sender<()>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = signalled(&mut shutdown) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = Arc::clone(&shared);
                let task = tasks.clone();
                tokio::spawn(async move {
                    if let Some(conn) = conn::admit(stream, peer, &shared).await {
                        handle(conn, peer, shared).await;
                    }
                    drop(task);
                });
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn handle(mut stream: tls::Conn, peer: SocketAddr, shared: Arc<Shared>) {
    let Ok((request, leftover)) = http::read_request(&mut stream, Duration::from_secs(10)).await
    else {
        return http::respond(stream, 400, "text/plain", b"bad request\n").await;
    };
    if request.method != "GET" {
        return http::respond(stream, 405, "text/plain", b"only GET\n").await;
    }
    let config = &shared.config;
    // Split before decoding, so an escaped slash stays inside its segment.
    let decoded: Vec<String> =
        request.path.trim_start_matches('/').split('/').map(http::percent_decode).collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let needs = match parts.as_slice() {
        ["livez"] | ["readyz"] => None,
        ["metrics"] => Some((Role::Admin, Scope::Server)),
        ["v1", "ingest", id] => Some((Role::Ingest, Scope::Session(id))),
        [""] => Some((Role::View, Scope::Page)),
        ["v1", "captions", id] | ["v1", "sessions", id, "transcript"] => {
            Some((Role::View, Scope::Session(id)))
        }
        _ => {
            return http::respond(
                stream,
                404,
                "application/json",
                &http::json_error("not_found", "no such endpoint"),
            )
            .await
        }
    };
    let session_in_path = match parts.as_slice() {
        ["v1", _, id] | ["v1", "sessions", id, _] if valid_session_id(id) => Some(*id),
        _ => None,
    };
    let refused = |why: &str| {
        let mut entry = audit::Entry::new(audit::Event::AuthFailed).client(peer).detail(why);
        entry.session = session_in_path.map(str::to_string);
        shared.audit(entry);
    };
    let who = match needs {
        None => "anonymous",
        Some((role, scope)) => {
            let token =
                auth::presented_token(request.header("authorization"), request.query("token"));
            match auth::authorize(&config.tokens, token, role, scope) {
                Ok(who) => who,
                Err(Denied::Unauthorized) => {
                    shared.log(format_args!("{peer}: {} refused: no valid token", request.path));
                    refused("unauthorized");
                    let body = http::json_error(
                        "unauthorized",
                        "a valid bearer token is needed (Authorization: Bearer or ?token=)",
                    );
                    return http::respond(stream, 401, "application/json", &body).await;
                }
                Err(Denied::Expired) => {
                    shared.log(format_args!("{peer}: {} refused: token expired", request.path));
                    refused("token_expired");
                    let body = http::json_error(
                        "token_expired",
                        "this token has expired; ask the operator for a new one",
                    );
                    return http::respond(stream, 401, "application/json", &body).await;
                }
                Err(Denied::Forbidden(why)) => {
                    shared.log(format_args!("{peer}: {} refused: {why}", request.path));
                    refused("forbidden_role");
                    return http::respond(
                        stream,
                        403,
                        "application/json",
                        &http::json_error("forbidden", why),
                    )
                    .await;
                }
            }
        }
    };
    if request.is_websocket()
        && !auth::origin_allowed(
            request.header("origin"),
            request.header("host"),
            &config.allowed_origins,
        )
    {
        shared.log(format_args!("{peer}: {} refused: origin not allowed", request.path));
        refused("origin_not_allowed");
        return http::respond(
            stream,
            403,
            "application/json",
            &http::json_error("forbidden", "this Origin is not allowed"),
        )
        .await;
    }
    let client =
        audit::Client { addr: peer, token: (!config.tokens.is_empty()).then(|| who.to_string()) };
    let ready = shared.model.get().is_some();
    match parts.as_slice() {
        ["livez"] => http::respond(stream, 200, "text/plain", b"ok\n").await,
        ["readyz"] if ready => http::respond(stream, 200, "text/plain", b"ready\n").await,
        ["readyz"] => http::respond(stream, 503, "text/plain", b"loading the model\n").await,
        ["metrics"] => {
            http::respond(
                stream,
                200,
                "text/plain; version=0.0.4",
                shared.metrics.render(ready).as_bytes(),
            )
            .await;
        }
        [""] => http::respond(stream, 200, "text/html; charset=utf-8", OVERLAY.as_bytes()).await,
        ["v1", "sessions", id, "transcript"] => {
            transcript(stream, &request, &shared, id, &client).await
        }
        ["v1", kind @ ("ingest" | "captions"), id] => {
            if !request.is_websocket() {
                return http::respond(stream, 426, "text/plain", b"this endpoint is a WebSocket\n")
                    .await;
            }
            let script = match request.query("script").map(str::parse::<Script>) {
                None => Script::Hk,
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    return http::respond(
                        stream,
                        400,
                        "application/json",
                        &http::json_error("bad_script", &e.to_string()),
                    )
                    .await
                }
            };
            let max_message = if *kind == "ingest" {
                config.limits.max_frame_bytes.saturating_mul(4).max(1 << 16)
            } else {
                1 << 12
            };
            let Some(mut ws) = http::upgrade(stream, &request, leftover, max_message).await else {
                return;
            };
            let id = id.to_string();
            if !valid_session_id(&id) {
                let msg = "a session id is 1-64 characters of A-Z a-z 0-9 _ - . (not starting with a dot)";
                return viewers::refuse(&mut ws, &shared, ErrorCode::BadSessionId, msg).await;
            }
            shared.log(format_args!("{peer}: {kind} {id} ({who})"));
            if *kind == "ingest" {
                ingest::run(ws, shared, id, client).await;
            } else {
                match shared.session(&id, false).await {
                    Ok(Some(session)) => {
                        viewers::run(ws, Arc::clone(&shared), session, script, client).await
                    }
                    Ok(None) => {
                        viewers::refuse(
                            &mut ws,
                            &shared,
                            ErrorCode::UnknownSession,
                            &format!("no session {id}"),
                        )
                        .await
                    }
                    Err(e) => {
                        shared.log(format_args!("session {id}: {e}"));
                        viewers::refuse(
                            &mut ws,
                            &shared,
                            ErrorCode::Internal,
                            "the session journal cannot be read",
                        )
                        .await
                    }
                }
            }
        }
        _ => http::respond(stream, 404, "text/plain", b"not found\n").await,
    }
}

/// `GET /v1/sessions/{id}/transcript?format=srt|vtt|jsonl|txt&script=…`
async fn transcript(
    stream: tls::Conn,
    request: &http::Request,
    shared: &Arc<Shared>,
    id: &str,
    client: &audit::Client,
) {
    let bad = |msg: &str| http::json_error("bad_request", msg);
    let format = match request.query("format").unwrap_or("srt").parse::<CaptionFormat>() {
        Ok(f) => f,
        Err(e) => {
            return http::respond(stream, 400, "application/json", &bad(&e.to_string())).await
        }
    };
    let script = match request.query("script").unwrap_or("hk").parse::<Script>() {
        Ok(s) => s,
        Err(e) => {
            return http::respond(stream, 400, "application/json", &bad(&e.to_string())).await
        }
    };
    if !valid_session_id(id) {
        return http::respond(stream, 400, "application/json", &bad("bad session id")).await;
    }
    let session = match shared.session(id, false).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return http::respond(
                stream,
                404,
                "application/json",
                &http::json_error("unknown_session", "no such session"),
            )
            .await
        }
        Err(_) => {
            return http::respond(
                stream,
                500,
                "application/json",
                &http::json_error("internal", "journal unreadable"),
            )
            .await
        }
    };
    let converter = shared.converters.get(script);
    let segments: Vec<_> = session
        .finals()
        .iter()
        .map(|f| {
            let mut s = f.to_segment();
            s.text = converter.convert(&s.text);
            s
        })
        .collect();
    let captions = caption::layout(&segments, &LayoutOptions::default());
    let body = SharedBuf::default();
    let written = {
        let mut writer = caption::writer_for(format, body.clone());
        caption::write_all(writer.as_mut(), &captions)
    };
    let body = std::mem::take(&mut *body.0.lock().unwrap_or_else(|e| e.into_inner()));
    if written.is_err() {
        return http::respond(
            stream,
            500,
            "application/json",
            &http::json_error("internal", "cannot write the transcript"),
        )
        .await;
    }
    let content_type = match format {
        CaptionFormat::Srt => "application/x-subrip; charset=utf-8",
        CaptionFormat::Vtt => "text/vtt; charset=utf-8",
        CaptionFormat::Jsonl => "application/jsonl; charset=utf-8",
        CaptionFormat::Txt => "text/plain; charset=utf-8",
    };
    let mut entry =
        client.entry(audit::Event::TranscriptRead).session(id).detail(format.to_string());
    entry.captions = Some(segments.len() as u64);
    shared.audit(entry);
    http::respond(stream, 200, content_type, &body).await
}

/// A `Write` into memory that a `'static` caption writer can own.
#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
