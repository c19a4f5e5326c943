//! The caption server behind `cantocap serve`: audio in per session over WebSocket,
//! captions out to any number of viewers, each in its own script.
//!
//! ```text
//!            transport (http/)                          hub (no HTTP types)
//! meeting server ─/v1/ingest/{session}─► ingest loop ─channel─► engine thread: CaptionPipeline
//!   (PCM frames)  accept → guard → route   (limits, pace)        (resample, decode, redact)
//!                                                                  │ sinks: session, webhooks
//!                                 journal (DATA_DIR/{session}.jsonl) ◄─┤
//! viewers ◄─/v1/captions/{session}?script=─ viewer loops ◄─ broadcast ◄─┘
//! ```
//!
//! - The hub ([`Server`] holds it): sessions and their journals, the decode pool,
//!   viewers' subscriptions, webhooks, audit and retention; it knows nothing of HTTP.
//! - `http`: the transport: an accept loop of our own (the IP allow-list refuses a
//!   connection before a byte is read, then TLS), hyper serving each connection, an
//!   axum route table behind a guard layer (Host check, tokens, failed-auth rate
//!   limit, Origin), WebSocket upgrades handing tungstenite sockets to the ingest
//!   and viewer loops. Logs are `tracing` spans per connection.
//! - [`protocol`]: the messages, error codes and close codes (see also
//!   `docs/PROTOCOL.md`).
//! - [`config`]: [`ServerConfig`], [`Limits`] and the TOML [`ConfigFile`].
//! - [`auth`]: bearer tokens with roles, expiry and session scope, and the Origin
//!   check.
//! - [`allow`]: the IP allow-list; TLS with rustls when [`ServerConfig::tls`] names a
//!   certificate.
//! - [`journal`]: finals as JSON lines, written as they are emitted.
//! - [`audit`], [`retention`]: the server's side of [`crate::privacy`].
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
pub mod cluster;
pub mod config;
mod engine;
mod feed;
mod http;
pub mod jitsi;
pub mod journal;
mod linger;
pub mod metrics;
pub mod protocol;
mod recording;
pub mod redaction;
pub mod retention;
mod session;
mod tls;
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
pub use cluster::ClusterConfig;
pub use config::{ConfigFile, Limits, ServerConfig};
pub use jitsi::JitsiConfig;
pub use redaction::RedactSection;
pub use tls::TlsFiles;

use self::metrics::Metrics;
use self::session::{Converters, Registry};
use crate::asr::WhisperModel;
use crate::{Error, Result};

/// The session hub: sessions and their journals, the decode pool, viewers'
/// subscriptions, webhooks, audit and retention. It knows nothing of HTTP or
/// WebSocket; the transport (`http`) turns requests into calls on it.
pub(crate) struct Hub {
    config: ServerConfig,
    model: OnceLock<Arc<WhisperModel>>,
    converters: Converters,
    metrics: Metrics,
    sessions: Registry,
    active_ingests: AtomicUsize,
    pool: Arc<crate::asr::DecodeSlots>,
    /// Ingest sockets upgraded but not started yet (bounded by
    /// [`Limits::max_unstarted_ingests`], apart from `max_sessions`).
    unstarted_ingests: std::sync::Mutex<session::Unstarted>,
    /// Viewers waiting for a session that has not started yet.
    waiting_viewers: AtomicUsize,
    shutdown: watch::Receiver<bool>,
    viewers_off: watch::Receiver<bool>,
    audit: Option<audit::AuditLog>,
    webhooks: webhook::Webhooks,
    /// The cluster link, with `--cluster`.
    cluster: Option<Arc<cluster::Cluster>>,
}

impl Hub {
    /// A log line (never a token or caption text), in the connection's span. Goes
    /// through `tracing`: it never blocks or panics, whatever stderr is.
    fn log(&self, args: std::fmt::Arguments<'_>) {
        if self.config.log {
            tracing::info!("{args}");
        }
    }

    /// Whether new ingests may start here: not in a cluster whose NATS is away.
    pub(crate) fn cluster_ok(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.connected())
    }

    /// [`Registry::get`] off the async workers: it may read a journal. In a
    /// cluster, a session not in memory is loaded from the stream of finals.
    async fn session(
        self: &Arc<Self>,
        id: &str,
        create: bool,
    ) -> Result<Option<Arc<session::Session>>> {
        let Some(cluster) = &self.cluster else { return self.local_session(id, create).await };
        if let Some(held) = self.sessions.held(id) {
            return Ok(Some(held));
        }
        let finals = cluster.backlog(id).await.map_err(|reason| Error::ServerConfig { reason })?;
        if finals.is_empty() && !create {
            return Ok(None);
        }
        let session = self.sessions.insert_loaded(id, finals);
        // Finals stored while the backlog was read are in a second read (the
        // session keeps each segment once).
        if let Ok(more) = cluster.backlog(id).await {
            for f in more {
                session.mirror(session::Published::spoken(f.event, f.speaker.map(Arc::from)));
            }
        }
        Ok(Some(session))
    }

    /// [`Registry::get`] off the async workers: it may read a journal.
    async fn local_session(
        self: &Arc<Self>,
        id: &str,
        create: bool,
    ) -> Result<Option<Arc<session::Session>>> {
        let hub = Arc::clone(self);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            hub.sessions.get(&id, hub.config.data_dir.as_deref(), create)
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
    whisperlive_addr: Option<SocketAddr>,
    hub: Arc<Hub>,
    shutdown: Arc<watch::Sender<bool>>,
    viewers_off: watch::Sender<bool>,
    load: watch::Receiver<Load>,
    accept: Vec<JoinHandle<()>>,
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
        if let Some(why) = audit.as_ref().and_then(|log| log.restarted()) {
            tracing::warn!("audit log: the chain was damaged and has been restarted: {why}");
        }
        let cluster = match &config.cluster {
            Some(c) => Some(
                cluster::Cluster::connect(c)
                    .await
                    .map_err(|e| Error::ServerConfig { reason: e.to_string() })?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| Error::ServerConfig {
            reason: format!("cannot listen on {}: {e}", config.listen),
        })?;
        let addr = listener.local_addr().map_err(Error::Write)?;
        let whisperlive = match config.whisperlive_listen {
            Some(at) => Some(TcpListener::bind(at).await.map_err(|e| Error::ServerConfig {
                reason: format!("cannot listen on {at} (--whisperlive-listen): {e}"),
            })?),
            None => None,
        };
        let whisperlive_addr =
            whisperlive.as_ref().map(|l| l.local_addr()).transpose().map_err(Error::Write)?;
        if config.tokens.is_empty() && !addr.ip().is_loopback() {
            tracing::warn!(
                "ANONYMOUS ACCESS on {addr}: anyone who can reach this address may send audio, \
                 watch every session's captions and download transcripts; configure tokens \
                 (--config) or listen on 127.0.0.1"
            );
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (viewers_off_tx, viewers_off_rx) = watch::channel(false);
        let (load_tx, load_rx) = watch::channel(Load::Loading);
        let metrics = Metrics::default();
        let webhooks =
            webhook::Webhooks::start(&config.webhooks, Arc::clone(&metrics.webhooks), config.log)?;
        let hub = Arc::new(Hub {
            converters: Converters::new()?,
            metrics,
            webhooks,
            sessions: Registry::new(config.limits.broadcast_capacity),
            active_ingests: AtomicUsize::new(0),
            pool: Arc::new(crate::asr::DecodeSlots::new(config.limits.decode_slots)),
            unstarted_ingests: Default::default(),
            waiting_viewers: AtomicUsize::new(0),
            model: OnceLock::new(),
            shutdown: shutdown_rx,
            viewers_off: viewers_off_rx,
            config,
            audit,
            cluster,
        });
        if let Some(cluster) = &hub.cluster {
            tokio::spawn(Arc::clone(cluster).mirror(Arc::clone(&hub)));
        }
        hub.audit(
            audit::Entry::new(audit::Event::ConfigLoaded)
                .detail(audit::config_summary(&hub.config, addr)),
        );
        if let Some(retention) = hub.config.retention {
            tokio::spawn(retention::run(Arc::clone(&hub), retention));
        }
        {
            let hub = Arc::clone(&hub);
            tokio::task::spawn_blocking(move || {
                let path = hub.config.model.clone();
                match WhisperModel::load_on(&path, hub.config.device) {
                    Ok(model) => {
                        let _ = hub.model.set(Arc::new(model));
                        let _ = load_tx.send(Load::Ready);
                    }
                    Err(e) => {
                        let _ = load_tx.send(Load::Failed(e.to_string()));
                    }
                }
            });
        }
        tokio::spawn(linger::sweep(Arc::clone(&hub)));
        let (task_tx, tasks) = mpsc::channel(1);
        let mut accept = vec![tokio::spawn(http::accept_loop(
            listener,
            Arc::clone(&hub),
            tls.clone(),
            task_tx.clone(),
            false,
        ))];
        if let Some(listener) = whisperlive {
            accept.push(tokio::spawn(http::accept_loop(
                listener,
                Arc::clone(&hub),
                tls,
                task_tx,
                true,
            )));
        }
        Ok(Server {
            addr,
            whisperlive_addr,
            hub,
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

    /// The WhisperLive-only address ([`ServerConfig::whisperlive_listen`]), if any.
    pub fn whisperlive_addr(&self) -> Option<SocketAddr> {
        self.whisperlive_addr
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
        for accept in std::mem::take(&mut self.accept) {
            let _ = accept.await;
        }
        let grace = Duration::from_secs(self.hub.config.limits.shutdown_grace_secs);
        let deadline = Instant::now() + grace;
        while self.hub.active_ingests.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.viewers_off.send(true);
        let remaining =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(2));
        let _ = tokio::time::timeout(remaining, self.tasks.recv()).await;
        self.hub.webhooks.shutdown(Duration::from_secs(5)).await;
        if let Some(log) = &self.hub.audit {
            // Keep it elsewhere: `cantocap audit verify --expect-last HASH`.
            tracing::info!("audit log {}: last hash {}", log.path().display(), log.last_hash());
        }
        self.hub.log(format_args!("stopped"));
    }
}

/// Resolves once the flag is set (never, if its sender is gone).
pub(crate) async fn signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|&s| s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
