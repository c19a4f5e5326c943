//! `cantocap serve`: the caption server for meeting platforms (see
//! `cantocap::server` and docs/PROTOCOL.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use cantocap::asr::TranscribeOptions;
use cantocap::server::retention::Retention;
use cantocap::server::webhook::{WebhookConfig, SECRET_ENV};
use cantocap::server::{ClusterConfig, ConfigFile, IpNet, Server, ServerConfig, TlsFiles};

/// Options of `cantocap serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Without tokens, only a loopback address is allowed
    /// (unless --allow-anonymous).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Also serve the WhisperLive protocol on its own port (its clients connect to
    /// ws://HOST:9090 by default: --whisperlive-listen 0.0.0.0:9090). The main
    /// address serves it at / too. See docs/INTEGRATIONS.md.
    #[arg(long, value_name = "ADDR")]
    pub whisperlive_listen: Option<SocketAddr>,
    /// Whisper model in ggml format [default: $CANTOCAP_MODEL, else models/ggml-base.bin].
    #[arg(short, long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub gpu: crate::cli::gpu::GpuArgs,
    /// CPU threads per decode [default: cores, at most 4].
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Default language of sessions: yue, en, zh, … or several joined by + (each
    /// utterance in the one it sounds most like) [default: yue+en on multilingual
    /// models]. A session's start message may choose another.
    #[arg(short, long, value_name = "LANG[+LANG…]")]
    pub language: Option<String>,
    #[command(flatten)]
    pub vad: crate::cli::vad::VadArgs,
    /// Concurrent ingest sessions; more are refused with 1013 [default: 8].
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Sessions decoding at the same time [default: cores / threads].
    #[arg(long)]
    pub decode_slots: Option<usize>,
    /// Viewers per session [default: 1000].
    #[arg(long)]
    pub max_viewers: Option<usize>,
    /// Largest WebSocket frame in bytes [default: 131072].
    #[arg(long)]
    pub max_frame_bytes: Option<usize>,
    /// End an ingest connection after this many seconds without a message [default: 30].
    #[arg(long)]
    pub idle_secs: Option<u64>,
    /// Longest ingest connection, in seconds of audio [default: 14400].
    #[arg(long)]
    pub max_session_secs: Option<u64>,
    /// Seconds an ended session (no ingest, no viewers) stays in memory; with
    /// --data-dir its journal reloads on demand [default: 600].
    #[arg(long, value_name = "SECS")]
    pub session_linger_secs: Option<u64>,
    /// New audio between decodes, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(200..=10_000))]
    pub step_ms: u64,
    /// Share of real time partial decodes may take (0–1): after a slow partial the
    /// next waits longer, so partials cost at most this much and thin out on a slow
    /// machine or model; finals never wait. 0: a partial every --step-ms.
    #[arg(long, default_value_t = 0.15, value_name = "SHARE", value_parser = crate::cli::parse_budget)]
    pub partial_budget: f32,
    /// Journal folder: finals of each session are appended to SESSION.jsonl as they
    /// are emitted, and transcripts survive restarts. Without it finals live in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with tokens (roles ingest, view, admin), allowed origins and limits.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// POST each final and session close, signed, to this http(s) URL (repeatable;
    /// secret from $CANTOCAP_WEBHOOK_SECRET; more options in --config, see
    /// docs/WEBHOOKS.md).
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,
    /// Deliveries queued per webhook before new ones are dropped [default: 1000].
    #[arg(long, value_name = "N")]
    pub webhook_queue: Option<usize>,
    /// Accept clients without tokens on a non-loopback address.
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Only these peer addresses may connect (an address or CIDR, repeatable, e.g.
    /// 10.0.0.0/8 or ::1); others are refused before the request is read. Replaces
    /// allow_ips of the config file [default: every address].
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ip: Vec<IpNet>,
    /// Serve https and wss with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Append an audit record (JSON lines, hash-chained; never caption text or
    /// tokens) for every session, viewer, refusal, transcript download and purge.
    /// Check it with `cantocap audit verify`.
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Delete session journals and recordings in --data-dir not modified for this
    /// long: 90m, 12h, 30d, 2w (checked at start and every min(1h, DURATION/10))
    /// [default: keep forever].
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<Retention>,
    /// Also write each ingest connection's audio to DATA_DIR/SESSION.N.wav (16 kHz
    /// mono). Without it, audio is never written to disk. Needs --data-dir.
    #[arg(long)]
    pub record_audio: bool,
    /// Join a cluster of cantocap nodes through NATS with JetStream (nats-server
    /// -js): any node serves any room's viewers and transcripts, a room's ingests
    /// run on one node at a time, finals are stored in JetStream. Repeat for several
    /// NATS servers; more settings in --config's [cluster] table. See docs/DEPLOY.md.
    #[arg(long, value_name = "nats://HOST:4222")]
    pub cluster: Vec<String>,
    /// This node's name in the cluster [default: the host name].
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub node_name: Option<String>,
    /// Do not log connections to stderr (the start, ready and shutdown lines,
    /// warnings and errors are still logged).
    #[arg(short, long)]
    pub quiet: bool,
    /// Log lines as plain text or as JSON objects (one per line, with the
    /// connection's span: peer address). Filter with RUST_LOG, e.g.
    /// RUST_LOG=cantocap=debug [default: text].
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Personal data is redacted from every caption (viewers, transcripts, journal)
    /// by default; these flags override the config file's [redact] table.
    #[command(flatten)]
    pub redact: crate::cli::redact::RedactFlags,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to stderr through a lossy background writer: a full pipe drops lines
/// instead of stalling the server, and a closed stderr (`serve … 2>&1 | head`) is
/// ignored rather than panicking. Keep the guard alive until the server stops.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    guard
}

/// Run the server until SIGTERM or Ctrl-C, then shut down gracefully.
pub fn run(args: ServeArgs) -> Result<()> {
    let _logs = init_logging(args.log_format);
    let mut config = ServerConfig {
        listen: args.listen,
        whisperlive_listen: args.whisperlive_listen,
        model: crate::resolve_model(args.model)?,
        device: args.gpu.device(),
        step_ms: args.step_ms,
        partial_budget: args.partial_budget,
        data_dir: args.data_dir,
        allow_anonymous: args.allow_anonymous,
        log: !args.quiet,
        ..Default::default()
    };
    let vad = args.vad.resolve(&config.model)?;
    if let Some(note) = &vad.note {
        tracing::warn!("{note}");
    }
    let mut transcribe =
        TranscribeOptions { language: args.language, vad_model: vad.model, ..Default::default() };
    if let Some(threads) = args.threads {
        transcribe.threads = threads.max(1);
        config.limits.decode_slots = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .div_ceil(transcribe.threads)
            .max(1);
    }
    config.transcribe = transcribe;
    if let Some(path) = &args.config {
        ConfigFile::read(path)?.apply(&mut config);
    }
    args.redact.apply(&mut config.redact);
    // Flags override the config file.
    if !args.cluster.is_empty() {
        let mut cluster =
            config.cluster.take().unwrap_or_else(|| ClusterConfig::new(&args.cluster[0]));
        cluster.urls = args.cluster;
        config.cluster = Some(cluster);
    }
    if let (Some(name), Some(cluster)) = (args.node_name, config.cluster.as_mut()) {
        cluster.node_name = Some(name);
    }
    let limits = &mut config.limits;
    for (flag, value) in [
        (args.max_sessions, &mut limits.max_sessions),
        (args.decode_slots, &mut limits.decode_slots),
        (args.max_viewers, &mut limits.max_viewers_per_session),
        (args.max_frame_bytes, &mut limits.max_frame_bytes),
    ] {
        if let Some(v) = flag {
            *value = v;
        }
    }
    if let Some(v) = args.idle_secs {
        limits.idle_secs = v;
    }
    if let Some(v) = args.max_session_secs {
        limits.max_session_secs = v;
    }
    if let Some(v) = args.session_linger_secs {
        limits.session_linger_secs = v;
    }
    if !args.allow_ip.is_empty() {
        config.allow_ips = args.allow_ip;
    }
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsFiles { cert, key });
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    if let Some(path) = args.audit_log {
        config.audit_log = Some(path);
    }
    if let Some(retention) = args.retention {
        config.retention = Some(retention.0);
    }
    config.record_audio |= args.record_audio;
    let secret = std::env::var(SECRET_ENV).unwrap_or_default();
    config.webhooks.extend(args.webhook.into_iter().map(|url| WebhookConfig::new(url, "")));
    for hook in &mut config.webhooks {
        if hook.secret.is_empty() {
            hook.secret.clone_from(&secret);
        }
        if let Some(n) = args.webhook_queue {
            hook.queue = n;
        }
    }
    config.check()?;
    let config_redact = config.redact.clone();
    let cluster_node = config.cluster.as_ref().map(|c| (c.node(), c.urls.join(",")));
    let device = config.device;
    if let Some(gpu) = crate::cli::gpu::describe(device) {
        tracing::info!("{gpu}");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        tracing::info!("listening on {scheme}://{}", server.local_addr());
        if let Some(at) = server.whisperlive_addr() {
            tracing::info!("WhisperLive protocol on {scheme}://{at}");
        }
        tracing::info!("{}", cantocap::server::redaction::describe(&config_redact));
        if let Some((node, urls)) = &cluster_node {
            tracing::info!("cluster node {node} on NATS {urls}");
        }
        let handle = server.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down (finalizing sessions)");
            handle.shutdown();
        });
        server.ready().await?;
        tracing::info!("model loaded on the {device}; ready");
        server.wait().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
