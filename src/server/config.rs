//! Server settings: listening address, model, limits, and the TOML file of tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::allow::IpNet;
use super::auth::TokenEntry;
use super::cluster::ClusterConfig;
use super::jitsi::JitsiConfig;
use super::protocol::valid_session_id;
use super::redaction::RedactSection;
use super::retention::Retention;
use super::tls::TlsFiles;
use super::webhook::WebhookConfig;
use crate::asr::{Device, TranscribeOptions};
use crate::text::RedactOptions;
use crate::{Error, Result};

/// Limits on everything a client controls, with documented defaults. In the TOML
/// config they go in a `[limits]` table with the same names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent ingest connections in all rooms together (each participant of a
    /// room is one); more are refused (1013), not queued. A connection counts once
    /// its `start` is accepted. Default 8.
    pub max_sessions: usize,
    /// Concurrent ingest connections (participants, each with its own engine) in
    /// one room; more are refused (1013 `room_full`). Default 16.
    pub max_speakers_per_room: usize,
    /// Ingest connections that have not sent `start` yet, counted apart from
    /// `max_sessions` (so idle sockets cannot lock sessions out); more are refused
    /// (1013). Default 32.
    pub max_unstarted_ingests: usize,
    /// … and from any one client address. Default 4.
    pub max_unstarted_per_address: usize,
    /// Largest WebSocket message, in bytes (1009 above it). Default 131 072
    /// (0.68 s of 48 kHz stereo s16le).
    pub max_frame_bytes: usize,
    /// Messages per second per ingest connection, counted over one-second windows
    /// (1008 above it). Default 200 (frames of 5 ms and up are fine).
    pub max_messages_per_sec: u32,
    /// Audio may arrive at most this many times faster than real time … Default 2.0.
    pub max_realtime_factor: f64,
    /// … after a head start of this much audio, in ms (1008 `too_fast` past it).
    /// Default 10 000.
    pub burst_ms: u64,
    /// Longest ingest connection, in seconds of audio (1008 `session_too_long`);
    /// the client may reconnect to continue. Default 14 400 (4 h).
    pub max_session_secs: u64,
    /// An ingest connection that sends nothing for this long is ended (1008
    /// `idle_timeout`). Default 30.
    pub idle_secs: u64,
    /// Seconds a new ingest connection has to send `start`. Default 10.
    pub start_secs: u64,
    /// Viewers per session (1013 above it). Default 1000.
    pub max_viewers_per_session: usize,
    /// Seconds a viewer of a session that has not started yet waits for it (it
    /// gets `{"type":"waiting"}` first); then it is closed with 4404. 0 refuses such
    /// viewers at once. Waiting viewers are limited to `max_viewers_per_session` in
    /// all. Default 3600.
    pub viewer_wait_secs: u64,
    /// Finals a newly connected viewer receives first (the latest ones). Default 200.
    pub viewer_backlog: usize,
    /// Caption events buffered per session for viewers; a viewer further behind
    /// skips partials (finals are re-sent). Default 256.
    pub broadcast_capacity: usize,
    /// Seconds a write to a viewer may take before the viewer is dropped. Default 10.
    pub viewer_write_secs: u64,
    /// Sessions decoding at the same time; the others wait, and the engine then
    /// decodes longer steps (lag grows visibly instead of a queue). Default: CPU
    /// cores / decode threads, at least 1.
    pub decode_slots: usize,
    /// Seconds a session stays in memory once it has no ingest connection and no
    /// viewers; then it is dropped. With a data dir its finals stay in the journal
    /// and are read back when a viewer, a transcript request or an ingest asks for
    /// the session again; without one they are gone (viewers then get
    /// `unknown_session`). Default 600 (10 min).
    pub session_linger_secs: u64,
    /// Largest file `POST /v1/audio/transcriptions` accepts, in bytes (413 above
    /// it). Default 26 214 400 (25 MiB, OpenAI's own limit).
    pub max_upload_bytes: usize,
    /// Longest audio that endpoint transcribes, in seconds (400 `audio_too_long`
    /// above it; a small compressed file can hold hours). Default 7200 (2 h).
    pub max_upload_secs: u64,
    /// File transcriptions at the same time (each also takes a decode slot while it
    /// decodes); more get 429. Default 2.
    pub max_concurrent_uploads: usize,
    /// At shutdown, seconds to wait for active sessions to finalize their last
    /// audio before every client is closed anyway. Default 60.
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = TranscribeOptions::default().threads.max(1);
        Self {
            max_sessions: 8,
            max_speakers_per_room: 16,
            max_unstarted_ingests: 32,
            max_unstarted_per_address: 4,
            max_frame_bytes: 131_072,
            max_messages_per_sec: 200,
            max_realtime_factor: 2.0,
            burst_ms: 10_000,
            max_session_secs: 4 * 3600,
            idle_secs: 30,
            start_secs: 10,
            max_viewers_per_session: 1000,
            viewer_wait_secs: 3600,
            viewer_backlog: 200,
            broadcast_capacity: 256,
            viewer_write_secs: 10,
            decode_slots: (cores / threads).max(1),
            session_linger_secs: 600,
            max_upload_bytes: 25 * 1024 * 1024,
            max_upload_secs: 2 * 3600,
            max_concurrent_uploads: 2,
            shutdown_grace_secs: 60,
        }
    }
}

impl Limits {
    pub(crate) fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs.max(1))
    }
}

/// Everything the server needs. Build with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on. Default 127.0.0.1:8787; port 0 picks a free port.
    pub listen: SocketAddr,
    /// A second address serving only the WhisperLive protocol, on every path (its
    /// clients connect to `ws://HOST:9090`). The main address serves it at `/` too.
    pub whisperlive_listen: Option<SocketAddr>,
    /// The Whisper model (ggml), loaded once after binding and shared by all sessions.
    pub model: PathBuf,
    /// Where the model runs. Default: the CPU. A GPU is checked by [`check`](Self::check).
    pub device: Device,
    /// Decoding settings for every session (language, threads …); a session's
    /// `start` may choose another language.
    pub transcribe: TranscribeOptions,
    /// New audio between decodes, in ms. Default 1000.
    pub step_ms: u64,
    /// Share of real time a session's partial decodes may take
    /// ([`StreamOptions::partial_budget`](crate::asr::StreamOptions::partial_budget)).
    /// Default 0.15.
    pub partial_budget: f32,
    /// Folder of per-session journals (`SESSION.jsonl`); `None` keeps finals in
    /// memory only (lost on restart).
    pub data_dir: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Bearer tokens and their roles. Empty: no authentication (only on loopback
    /// unless `allow_anonymous`).
    pub tokens: Vec<TokenEntry>,
    /// Browser origins allowed to open WebSockets besides the server's own
    /// (`http://HOST` of the request); `"*"` allows any.
    pub allowed_origins: Vec<String>,
    /// Accept anonymous clients on a non-loopback address.
    pub allow_anonymous: bool,
    /// Peer addresses that may connect at all, checked before a request is read;
    /// empty allows every address.
    pub allow_ips: Vec<IpNet>,
    /// Serve https and wss with this certificate and key; `None` is plain http.
    pub tls: Option<TlsFiles>,
    /// Log connections to stderr (never tokens or caption text). Default true.
    pub log: bool,
    /// Append-only audit log (JSON lines, hash-chained; see [`super::audit`]).
    /// Default: none.
    pub audit_log: Option<PathBuf>,
    /// Delete session journals and recordings not modified for this long (see
    /// [`super::retention`]). Default: keep forever.
    pub retention: Option<Duration>,
    /// Write each ingest connection's audio to `DATA_DIR/SESSION.N.wav` (needs
    /// `data_dir`). Default false: audio never touches the disk.
    pub record_audio: bool,
    /// Signed webhooks for finals and session closes (see `docs/WEBHOOKS.md`).
    pub webhooks: Vec<WebhookConfig>,
    /// Personal data redacted from every caption before it leaves the engine.
    /// Default: every kind, Chinese labels.
    pub redact: RedactOptions,
    /// Join a cluster of nodes on NATS JetStream (see [`super::cluster`]); `None`:
    /// a single node.
    pub cluster: Option<ClusterConfig>,
    /// Jigasi's streaming transcription (`/streaming-whisper/ws/{meeting}`); `None`
    /// answers that path with 404.
    pub jitsi: Option<JitsiConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            whisperlive_listen: None,
            model: PathBuf::from("models/ggml-base.bin"),
            device: Device::Cpu,
            transcribe: TranscribeOptions::default(),
            step_ms: 1000,
            partial_budget: 0.15,
            data_dir: None,
            limits: Limits::default(),
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            allow_anonymous: false,
            allow_ips: Vec::new(),
            tls: None,
            log: true,
            audit_log: None,
            retention: None,
            record_audio: false,
            webhooks: Vec::new(),
            redact: RedactOptions::default(),
            cluster: None,
            jitsi: None,
        }
    }
}

/// The TOML configuration file (`--config`):
///
/// ```toml
/// allowed_origins = ["https://meet.example.org"]
/// allow_ips = ["127.0.0.0/8", "::1/128", "10.20.0.0/16"]   # empty or absent: all
/// tls_cert = "/etc/cantocap/fullchain.pem"                  # both or neither
/// tls_key = "/etc/cantocap/privkey.pem"
/// audit_log = "/var/log/cantocap/audit.jsonl"
/// retention = "30d"               # delete journals and recordings after 30 days idle
/// record_audio = false            # true writes DATA_DIR/SESSION.N.wav (needs --data-dir)
///
/// [[tokens]]
/// name = "jitsi-gateway"          # for logs; the token itself is never logged
/// token = "s3cret-ingest"
/// roles = ["ingest"]
///
/// [[tokens]]
/// name = "viewers"
/// token = "s3cret-view"
/// roles = ["view"]
///
/// [[tokens]]
/// name = "guest-room-42"
/// token = "s3cret-guest-42"
/// roles = ["view"]
/// session = "room-42"             # only this session
/// expires = "2026-12-31T23:59:59Z"
///
/// [limits]
/// max_sessions = 4
/// max_upload_bytes = 52428800     # POST /v1/audio/transcriptions: 50 MiB files
/// max_upload_secs = 3600          # … of at most an hour of audio
///
/// [[webhooks]]                    # signed POSTs of finals; see docs/WEBHOOKS.md
/// url = "https://erp.example.org/hooks/captions"
/// secret = "at-least-16-characters"
///
/// [cluster]                       # several nodes on NATS JetStream; see docs/DEPLOY.md
/// urls = ["nats://nats-1:4222", "nats://nats-2:4222"]
/// node_name = "node-a"            # default: the host name
/// replicas = 3                    # copies of the finals and leases in JetStream
/// [jitsi]                         # Jigasi's WhisperTranscriptionService; see JitsiConfig
/// audiences = ["jitsi"]
/// keys_dir = "/etc/cantocap/jitsi-keys"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Tokens and roles.
    pub tokens: Vec<TokenEntry>,
    /// Extra allowed browser origins.
    pub allowed_origins: Vec<String>,
    /// Peer addresses allowed to connect (CIDR or bare addresses).
    pub allow_ips: Vec<IpNet>,
    /// TLS certificate chain (PEM); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Limits (each optional).
    pub limits: Option<Limits>,
    /// The audit log.
    pub audit_log: Option<PathBuf>,
    /// How long session files are kept (`30d`, `12h`, `90m`).
    pub retention: Option<Retention>,
    /// Record audio.
    pub record_audio: Option<bool>,
    /// Webhooks (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    /// Redaction (see [`RedactSection`]).
    pub redact: Option<RedactSection>,
    /// The cluster (`[cluster]`, see [`ClusterConfig`]).
    pub cluster: Option<ClusterConfig>,
    /// Jitsi (`[jitsi]`, see [`JitsiConfig`]).
    pub jitsi: Option<JitsiConfig>,
}

impl ConfigFile {
    /// Read and check a config file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|reason| Error::ServerConfig {
            reason: format!("{}: {reason}", path.display()),
        })
    }

    /// Parse and check config text. Errors name the line and column, never the
    /// line's text: it may hold a token.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        for (i, t) in file.tokens.iter().enumerate() {
            if file.tokens[..i].iter().any(|u| u.token == t.token) {
                return Err(format!(
                    "token {} ({}) has the same value as an earlier token: each token must be unique",
                    i + 1,
                    t.name
                ));
            }
            if t.token.len() < 8 {
                return Err(format!("token {} ({}) is shorter than 8 characters", i + 1, t.name));
            }
            if t.roles.is_empty() {
                return Err(format!("token {} ({}) has no roles", i + 1, t.name));
            }
            if let Some(id) = t.session.as_deref().filter(|id| !valid_session_id(id)) {
                return Err(format!(
                    "token {} ({}): session {id:?} is not a session id (1-64 of A-Z a-z 0-9 _ - .)",
                    i + 1,
                    t.name
                ));
            }
        }
        if file.tls_cert.is_some() != file.tls_key.is_some() {
            return Err("tls_cert and tls_key go together: give both or neither".into());
        }
        if let Some(jitsi) = &file.jitsi {
            jitsi.check()?;
        }
        Ok(file)
    }

    /// Put the file's settings into a server configuration.
    pub fn apply(self, config: &mut ServerConfig) {
        config.tokens = self.tokens;
        config.allowed_origins = self.allowed_origins;
        config.allow_ips = self.allow_ips;
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(TlsFiles { cert, key });
        }
        config.webhooks.extend(self.webhooks);
        if let Some(limits) = self.limits {
            config.limits = limits;
        }
        config.audit_log = self.audit_log.or(config.audit_log.take());
        config.retention = self.retention.map(|r| r.0).or(config.retention);
        config.record_audio = self.record_audio.unwrap_or(config.record_audio);
        if let Some(redact) = &self.redact {
            redact.apply(&mut config.redact);
        }
        if self.cluster.is_some() {
            config.cluster = self.cluster;
        }
        config.jitsi = self.jitsi.or(config.jitsi.take());
    }
}

impl ServerConfig {
    /// Refuse configurations that would expose the server (anonymous access on a
    /// non-loopback address without `allow_anonymous`) or cannot run (a GPU this
    /// build cannot use: [`crate::asr::gpu::check`]).
    pub fn check(&self) -> Result<()> {
        crate::asr::gpu::check(self.device)?;
        for listen in std::iter::once(self.listen).chain(self.whisperlive_listen) {
            if self.tokens.is_empty() && !listen.ip().is_loopback() && !self.allow_anonymous {
                return Err(Error::ServerConfig {
                    reason: format!(
                        "refusing to listen on {listen} without tokens: anyone who can reach it could send audio and read captions; \
                         configure tokens (--config) or pass --allow-anonymous"
                    ),
                });
            }
        }
        if self.limits.max_sessions == 0
            || self.limits.max_frame_bytes < 64
            || self.limits.broadcast_capacity == 0
        {
            return Err(Error::ServerConfig { reason: "limits: max_sessions, broadcast_capacity must be above 0 and max_frame_bytes at least 64".into() });
        }
        if self.retention.is_some() && self.data_dir.is_none() {
            return Err(Error::ServerConfig {
                reason: "retention applies to the data folder (without one, finals live in memory until the server stops): pass --data-dir DIR with --retention".into(),
            });
        }
        if self.record_audio && self.data_dir.is_none() {
            return Err(Error::ServerConfig {
                reason: "recording audio needs a data folder to write it to: pass --data-dir DIR with --record-audio".into(),
            });
        }
        if let Some(jitsi) = &self.jitsi {
            jitsi.check().map_err(|reason| Error::ServerConfig { reason })?;
        }
        self.webhooks.iter().try_for_each(WebhookConfig::check)
    }
}

/// A TOML error without the source excerpt toml's `Display` adds (which would
/// print a token on a malformed token line): the message and where it is.
fn parse_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", error.message())
        }
        None => error.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::Role;

    #[test]
    fn config_file_parses_tokens_and_limits() {
        let file = ConfigFile::parse(
            r#"
allowed_origins = ["https://a.example"]
[[tokens]]
name = "gw"
token = "0123456789"
roles = ["ingest", "view"]
[limits]
max_sessions = 3
"#,
        )
        .unwrap();
        assert_eq!(file.tokens[0].roles, [Role::Ingest, Role::View]);
        let limits = file.limits.clone().unwrap();
        assert_eq!(limits.max_sessions, 3);
        assert_eq!(limits.idle_secs, Limits::default().idle_secs);
        assert!(ConfigFile::parse("[[tokens]]\ntoken = \"short\"\nroles = [\"view\"]").is_err());
        assert!(
            ConfigFile::parse("[[tokens]]\ntoken = \"0123456789\"\nroles = [\"root\"]").is_err()
        );
        assert!(ConfigFile::parse("bogus = 1").is_err());
        let file =
            ConfigFile::parse("retention = \"12h\"\nrecord_audio = true\naudit_log = \"a.jsonl\"")
                .unwrap();
        let mut config = ServerConfig::default();
        file.apply(&mut config);
        assert_eq!(config.retention, Some(Duration::from_secs(12 * 3600)));
        assert!(config.record_audio && config.audit_log.is_some());
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("--data-dir") && err.contains("--retention"), "{err}");
        config.retention = None;
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("--data-dir") && err.contains("--record-audio"), "{err}");
        config.data_dir = Some(PathBuf::from("data"));
        assert!(config.check().is_ok());
        let err = ConfigFile::parse("retention = \"soon\"").unwrap_err();
        assert!(err.contains("not a duration"), "{err}");
    }

    #[test]
    fn config_file_network_settings() {
        let file = ConfigFile::parse(
            r#"
allow_ips = ["127.0.0.0/8", "::1/128", "192.0.2.7"]
tls_cert = "cert.pem"
tls_key = "key.pem"
[[tokens]]
name = "guest"
token = "0123456789"
roles = ["view"]
session = "room-1"
expires = "2026-12-31T23:59:59Z"
"#,
        )
        .unwrap();
        let mut config = ServerConfig::default();
        file.apply(&mut config);
        let ips: Vec<String> = config.allow_ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["127.0.0.0/8", "::1/128", "192.0.2.7/32"]);
        let tls = config.tls.unwrap();
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("cert.pem"), Some("key.pem")));
        assert_eq!(config.tokens[0].session.as_deref(), Some("room-1"));
        let expires = config.tokens[0].expires.unwrap();
        let secs = expires.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_798_761_599);

        let err = |text: &str| ConfigFile::parse(text).unwrap_err();
        let e = err(r#"allow_ips = ["10.0.0.0/8", "10.0.0.0/33"]"#);
        assert!(e.contains("\"10.0.0.0/33\"") && e.contains("at most 32"), "{e}");
        let e = err(r#"allow_ips = ["localhost"]"#);
        assert!(e.contains("\"localhost\""), "{e}");
        let e = err(r#"tls_cert = "cert.pem""#);
        assert!(e.contains("both or neither"), "{e}");
        let token = |extra: &str| {
            format!("[[tokens]]\nname = \"t\"\ntoken = \"0123456789\"\nroles = [\"view\"]\n{extra}")
        };
        let e = err(&token(r#"expires = "2026-12-31""#));
        assert!(e.contains("RFC 3339"), "{e}");
        let e = err(&token(r#"session = "../etc""#));
        assert!(e.contains("token 1 (t)") && e.contains("\"../etc\""), "{e}");
        assert!(ConfigFile::parse(&token(r#"expires = 2026-12-31T23:59:59+08:00"#)).is_ok());
    }

    #[test]
    fn config_file_jitsi_table() {
        let keys = std::env::temp_dir();
        let table =
            |extra: &str| format!("[jitsi]\nkeys_dir = {:?}\n{extra}", keys.display().to_string());
        let text = table(
            "audiences = [\"jitsi\"]\nzh_means = \"zh\"\n[jitsi.secrets]\n\"jigasi\" = \"0123456789abcdef0123456789abcdef\"",
        );
        let mut config = ServerConfig::default();
        ConfigFile::parse(&text).unwrap().apply(&mut config);
        let jitsi = config.jitsi.unwrap();
        assert_eq!(jitsi.zh_means, super::super::jitsi::ZhMeans::Zh);
        assert_eq!(jitsi.secrets.len(), 1);
        let e = ConfigFile::parse(&table("audiences = []")).unwrap_err();
        assert!(e.contains("audiences"), "{e}");
        let e = ConfigFile::parse(&table("audiences = [\"jitsi\"]\nzh_means = \"cantonese\""))
            .unwrap_err();
        assert!(e.contains("cantonese") && e.contains("line 4"), "{e}");
        let e = ConfigFile::parse("[jitsi]\naudiences = [\"jitsi\"]\nkeys_dir = \"/no/such/keys\"")
            .unwrap_err();
        assert!(e.contains("keys_dir") && e.contains("/no/such/keys"), "{e}");
    }

    #[test]
    fn anonymous_only_on_loopback() {
        let mut c = ServerConfig { listen: "0.0.0.0:0".parse().unwrap(), ..Default::default() };
        assert!(c.check().is_err());
        c.allow_anonymous = true;
        assert!(c.check().is_ok());
        c.allow_anonymous = false;
        c.listen = "[::1]:0".parse().unwrap();
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_malformed_token_line_is_reported_without_its_value() {
        let text = "[[tokens]]\nname = \"ops\"\ntoken=\"TOPSECRET-123456\nroles = [\"admin\"]\n";
        let e = ConfigFile::parse(text).unwrap_err();
        assert!(!e.contains("TOPSECRET"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn two_tokens_with_the_same_value_are_refused() {
        let text = "[[tokens]]\nname = \"a\"\ntoken = \"same-secret-1\"\nroles = [\"view\"]\n\
                    [[tokens]]\nname = \"b\"\ntoken = \"same-secret-1\"\nroles = [\"admin\"]\n";
        let e = ConfigFile::parse(text).unwrap_err();
        assert!(e.contains("token 2 (b)") && e.contains("unique"), "{e}");
        assert!(!e.contains("same-secret"), "{e}");
    }
}
