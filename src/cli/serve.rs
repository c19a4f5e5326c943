//! `cantocap serve`: the caption server for meeting platforms (see
//! `cantocap::server` and docs/PROTOCOL.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use cantocap::asr::TranscribeOptions;
use cantocap::server::{ConfigFile, Server, ServerConfig};

/// Options of `cantocap serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Without tokens, only a loopback address is allowed
    /// (unless --allow-anonymous).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Whisper model in ggml format [default: $CANTOCAP_MODEL, else models/ggml-base.bin].
    #[arg(short, long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// CPU threads per decode [default: cores, at most 4].
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Default language of sessions: yue (default), zh, en, … (a session's start
    /// message may choose another).
    #[arg(short, long)]
    pub language: Option<String>,
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
    /// New audio between decodes, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(200..=10_000))]
    pub step_ms: u64,
    /// Journal folder: finals of each session are appended to SESSION.jsonl as they
    /// are emitted, and transcripts survive restarts. Without it finals live in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with tokens (roles ingest, view, admin), allowed origins and limits.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accept clients without tokens on a non-loopback address.
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Do not log connections to stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Personal data is redacted from every caption (viewers, transcripts, journal)
    /// by default; these flags override the config file's [redact] table.
    #[command(flatten)]
    pub redact: crate::cli::redact::RedactFlags,
}

/// Run the server until SIGTERM or Ctrl-C, then shut down gracefully.
pub fn run(args: ServeArgs) -> Result<()> {
    let mut config = ServerConfig {
        listen: args.listen,
        model: crate::resolve_model(args.model)?,
        step_ms: args.step_ms,
        data_dir: args.data_dir,
        allow_anonymous: args.allow_anonymous,
        log: !args.quiet,
        ..Default::default()
    };
    let mut transcribe = TranscribeOptions { language: args.language, ..Default::default() };
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
    config.check()?;
    let config_redact = config.redact.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        eprintln!(
            "cantocap serve: listening on http://{}; {}",
            server.local_addr(),
            cantocap::server::redaction::describe(&config_redact)
        );
        server.ready().await?;
        eprintln!("cantocap serve: model loaded; ready");
        let handle = server.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("cantocap serve: shutting down (finalizing sessions)");
            handle.shutdown();
        });
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
