//! Signed webhooks: each final caption and each session close POSTed as JSON to
//! the URLs the operator configured (an ERP, a CRM, a records system).
//!
//! ```text
//! engine thread ──on_final / on_session_closed──► bounded queue ──► worker task ──POST──► receiver
//!                 (try_send: never waits)           (one per webhook)  (retries, backoff)
//! ```
//!
//! - Every request carries `Cantocap-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
//!   of "<t>.<body>">` and `Cantocap-Delivery: <id>` (the same on every retry, for
//!   dedupe). Receivers check the signature with [`verify`].
//! - A full queue drops the delivery (counted), so a slow receiver never slows
//!   captions. Connection errors, timeouts, 5xx and 429 are retried with
//!   exponential backoff ([`backoff`]); other statuses are not. Order per webhook is
//!   kept: a delivery is finished (or given up) before the next one starts.
//! - The HTTP client is reqwest over rustls with the ring provider for `https://`,
//!   trusting the webpki roots plus an optional `ca_file`.
//!
//! `docs/WEBHOOKS.md` documents payloads, headers and retries for receiver authors.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::{self, pki_types};

use super::metrics::WebhookCounters;
use crate::asr::CaptionEvent;
use crate::text::{Script, ScriptConverter};
use crate::{Error, Result};

/// The environment variable `cantocap serve` reads a webhook secret from when the
/// config file gives none.
pub const SECRET_ENV: &str = "CANTOCAP_WEBHOOK_SECRET";

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// How long a receiver should accept a signature's timestamp, either side of its
/// clock (what `docs/WEBHOOKS.md` recommends).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// What a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// Each final caption of every session.
    Final,
    /// The end of each ingest connection of a session.
    SessionClosed,
}

/// One webhook. In the TOML config: a `[[webhooks]]` table with the same names.
///
/// ```toml
/// [[webhooks]]
/// url = "https://erp.example.org/hooks/captions"
/// secret = "at-least-16-characters"   # or $CANTOCAP_WEBHOOK_SECRET
/// script = "hk"
/// events = ["final", "session_closed"]
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL to POST to.
    pub url: String,
    /// The HMAC key the requests are signed with (at least 16 bytes). `cantocap
    /// serve` fills it from `$CANTOCAP_WEBHOOK_SECRET` when the file has none.
    #[serde(default)]
    pub secret: String,
    /// Script of the caption text. Default `hk`.
    #[serde(default)]
    pub script: Script,
    /// What to send. Default: both `final` and `session_closed`.
    #[serde(default = "all_events")]
    pub events: Vec<WebhookEvent>,
    /// PEM file of extra CA certificates to trust for `https` (a private CA), on top
    /// of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Deliveries waiting for this webhook; more are dropped (and counted). Default 1000.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Attempts per delivery, the first included. Default 5.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Seconds one attempt (connect, TLS, request, status line) may take. Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn all_events() -> Vec<WebhookEvent> {
    vec![WebhookEvent::Final, WebhookEvent::SessionClosed]
}
fn default_queue() -> usize {
    1000
}
fn default_attempts() -> u32 {
    5
}
fn default_timeout() -> u64 {
    10
}

impl std::fmt::Debug for WebhookConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("script", &self.script)
            .field("events", &self.events)
            .field("ca_file", &self.ca_file)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("timeout_secs", &self.timeout_secs)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// A webhook for `url` signed with `secret`, everything else default.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            script: Script::default(),
            events: all_events(),
            ca_file: None,
            queue: default_queue(),
            max_attempts: default_attempts(),
            timeout_secs: default_timeout(),
        }
    }

    /// Check the URL, secret and numbers; the error says what to change.
    pub fn check(&self) -> Result<()> {
        let bad =
            |why: String| Error::ServerConfig { reason: format!("webhook {}: {why}", self.url) };
        Target::parse(&self.url).map_err(bad)?;
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(bad(format!(
                "the secret must be at least {MIN_SECRET_LEN} characters (set `secret` or ${SECRET_ENV})"
            )));
        }
        if self.events.is_empty() {
            return Err(bad("`events` is empty: give final, session_closed or both".into()));
        }
        if self.queue == 0 || !(1..=20).contains(&self.max_attempts) || self.timeout_secs == 0 {
            return Err(bad("queue and timeout_secs must be above 0, max_attempts 1..=20".into()));
        }
        Ok(())
    }

    fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }
}

/// Wait before retry number `retry` (1 for the first retry): 0.5 s, 1 s, 2 s, 4 s …,
/// at most 60 s.
pub fn backoff(retry: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << retry.saturating_sub(1).min(20));
    Duration::from_millis(ms.min(60_000))
}

/// The `Cantocap-Signature` header value for `body` sent at `timestamp` (unix
/// seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mac = mac_for(secret, timestamp, body).finalize().into_bytes();
    let mut out = format!("t={timestamp},v1=");
    for b in mac {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn mac_for(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<digits>,v1=<64 hex digits>[,v1=…]`.
    #[error("malformed Cantocap-Signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a clock
    /// that is off).
    #[error("signature timestamp {timestamp} is outside the tolerance (now {now})")]
    OutsideTolerance {
        /// The header's `t`.
        timestamp: u64,
        /// The receiver's clock.
        now: u64,
    },
    /// No `v1` matches: the body was changed or the secret is not the sender's.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Check a `Cantocap-Signature` header against the raw request body, as a receiver
/// does: the timestamp must be within `tolerance` of `now` (unix seconds) and one
/// `v1` must be the HMAC-SHA256 of `"<t>.<body>"` with `secret` (compared in
/// constant time). Returns the timestamp.
///
/// ```
/// use std::time::Duration;
/// use cantocap::server::webhook::{sign, verify, VerifyError};
///
/// let header = sign(b"0123456789abcdef", 1_700_000_000, b"{}");
/// let ok = verify(b"0123456789abcdef", &header, b"{}", 1_700_000_060, Duration::from_secs(300));
/// assert_eq!(ok, Ok(1_700_000_000));
/// let tampered = verify(b"0123456789abcdef", &header, b"{ }", 1_700_000_060, Duration::from_secs(300));
/// assert_eq!(tampered, Err(VerifyError::Mismatch));
/// ```
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> std::result::Result<u64, VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                timestamp = Some(t.parse::<u64>().map_err(|_| VerifyError::Malformed)?);
            }
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(VerifyError::Malformed)?),
            // Other schemes may be added later; ignore them.
            Some((k, _)) if k != "t" => {}
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else {
        return Err(VerifyError::Malformed);
    };
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance { timestamp, now });
    }
    let expected = mac_for(secret, timestamp, body);
    // `verify_slice` compares in constant time.
    if signatures.iter().any(|sig| expected.clone().verify_slice(sig).is_ok()) {
        Ok(timestamp)
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What is waiting to be delivered.
#[derive(Debug, Clone)]
enum Payload {
    Final { session: String, event: CaptionEvent, speaker: Option<String> },
    Closed { session: String, finals: usize, audio_ms: u64 },
}

#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    payload: Payload,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Body<'a> {
    Final { session: &'a str, delivery: &'a str, event: &'a super::journal::Entry<'a> },
    SessionClosed { session: &'a str, delivery: &'a str, finals: usize, audio_s: f64 },
}

/// The webhooks of a server: one queue and worker task per webhook.
pub struct Webhooks {
    hooks: Vec<Hook>,
    counters: Arc<WebhookCounters>,
    abandon: watch::Sender<bool>,
}

struct Hook {
    config: Arc<WebhookConfig>,
    /// `None` once shutting down.
    queue: Mutex<Option<mpsc::Sender<Delivery>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let configs: Vec<_> = self.hooks.iter().map(|h| &h.config).collect();
        f.debug_struct("Webhooks").field("hooks", &configs).finish()
    }
}

impl Webhooks {
    /// Check the webhooks, set up TLS and start one worker task each (within a tokio
    /// runtime). `log` sends failures (never secrets or caption text) to stderr.
    pub fn start(
        configs: &[WebhookConfig],
        counters: Arc<WebhookCounters>,
        log: bool,
    ) -> Result<Self> {
        let (abandon, _) = watch::channel(false);
        let mut hooks = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            config.check()?;
            let target = Target::parse(&config.url).expect("checked");
            let client = http_client(config)?;
            let converter = ScriptConverter::new(config.script)?;
            let config = Arc::new(config.clone());
            let (tx, rx) = mpsc::channel(config.queue);
            let worker = Worker {
                index: index + 1,
                config: Arc::clone(&config),
                target,
                client,
                converter,
                counters: Arc::clone(&counters),
                abandon: abandon.subscribe(),
                log,
            };
            hooks.push(Hook {
                config,
                queue: Mutex::new(Some(tx)),
                worker: Mutex::new(Some(tokio::spawn(worker.run(rx)))),
            });
        }
        Ok(Self { hooks, counters, abandon })
    }

    /// No webhooks (nothing is sent).
    pub fn none() -> Self {
        Self { hooks: Vec::new(), counters: Arc::default(), abandon: watch::channel(false).0 }
    }

    /// Queue a final of `session` for every webhook that wants finals; partials are
    /// ignored. Never waits: a full queue drops the delivery and counts it.
    pub fn on_final(&self, session: &str, event: &CaptionEvent, speaker: Option<&str>) {
        if !event.is_final() {
            return;
        }
        self.offer(WebhookEvent::Final, || Payload::Final {
            session: session.to_string(),
            event: event.clone(),
            speaker: speaker.map(str::to_string),
        });
    }

    /// Queue the close of an ingest connection of `session`, with the session's
    /// finals so far and its stream time in ms.
    pub fn on_session_closed(&self, session: &str, finals: usize, audio_ms: u64) {
        self.offer(WebhookEvent::SessionClosed, || Payload::Closed {
            session: session.to_string(),
            finals,
            audio_ms,
        });
    }

    fn offer(&self, kind: WebhookEvent, payload: impl Fn() -> Payload) {
        for hook in self.hooks.iter().filter(|h| h.config.wants(kind)) {
            let delivery = Delivery { id: delivery_id(), payload: payload() };
            let queue = hook.queue.lock().unwrap_or_else(|e| e.into_inner());
            enqueue(queue.as_ref(), delivery, &self.counters);
        }
    }

    /// Stop taking deliveries and let the workers finish what is queued, for at most
    /// `within`; what is still undelivered then is dropped and counted.
    pub async fn shutdown(&self, within: Duration) {
        let mut workers = Vec::new();
        for hook in &self.hooks {
            // Dropping the sender lets the worker end once its queue is empty.
            hook.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
            workers.extend(hook.worker.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut late = Vec::new();
        for mut worker in workers {
            if tokio::time::timeout_at(deadline, &mut worker).await.is_err() {
                late.push(worker);
            }
        }
        // Out of time: the late workers count what they still hold as dropped.
        let _ = self.abandon.send(true);
        for worker in late {
            let _ = worker.await;
        }
    }
}

/// Queue without waiting; count a drop when the queue is full or closed.
fn enqueue(queue: Option<&mpsc::Sender<Delivery>>, delivery: Delivery, counters: &WebhookCounters) {
    // Counted before the send, so the worker's decrement never comes first.
    counters.queued.fetch_add(1, Relaxed);
    if queue.is_none_or(|q| q.try_send(delivery).is_err()) {
        counters.queued.fetch_sub(1, Relaxed);
        counters.dropped.fetch_add(1, Relaxed);
    }
}

/// 128 random bits as hex: unique per delivery, kept across retries.
fn delivery_id() -> String {
    let mut bytes = [0u8; 16];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut bytes).is_err() {
        // Never expected; fall back to time and a counter, still unique per process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Relaxed).to_le_bytes());
    }
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The webhook's HTTP client: rustls (ring provider, given explicitly, so no
/// process-wide default is needed or changed), webpki roots plus `ca_file`; no
/// redirects (a receiver that moves must be reconfigured), no proxies from the
/// environment (captions never leave by a route the operator did not name).
fn http_client(config: &WebhookConfig) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = &config.ca_file {
        use pki_types::pem::PemObject;
        let bad = |why: String| Error::ServerConfig {
            reason: format!("webhook {}: ca_file {}: {why}", config.url, path.display()),
        };
        let certs = pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificates in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    // The ring provider, explicitly: no process-wide default is needed or changed.
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::ServerConfig { reason: format!("webhook TLS: {e}") })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("cantocap/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::ServerConfig { reason: format!("webhook {}: {e}", config.url) })
}

/// Where a webhook URL points.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
    /// The `Host` header.
    authority: String,
}

impl Target {
    fn parse(url: &str) -> std::result::Result<Self, String> {
        // Anything that could break the request head (CR, LF, spaces) is refused.
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the URL must be ASCII without spaces or control characters".into());
        }
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err("the URL must start with http:// or https://".into()),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if authority.contains('@') {
            return Err(
                "credentials in the URL are not supported; the signature authenticates the server"
                    .into(),
            );
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or("bad port")?,
        };
        if host.is_empty() {
            return Err("no host in the URL".into());
        }
        Ok(Self { tls, host: host.to_string(), port, path, authority: authority.to_string() })
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
enum Attempt {
    Ok,
    /// Worth retrying: connection error, timeout, 5xx, 429.
    Retry(String),
    /// Not worth retrying: other statuses.
    Fail(String),
}

fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Ok,
        429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
        _ => Attempt::Fail(format!("HTTP {status}")),
    }
}

struct Worker {
    index: usize,
    config: Arc<WebhookConfig>,
    target: Target,
    client: reqwest::Client,
    converter: ScriptConverter,
    counters: Arc<WebhookCounters>,
    abandon: watch::Receiver<bool>,
    log: bool,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Delivery>) {
        let mut abandon = self.abandon.clone();
        while let Some(delivery) = rx.recv().await {
            self.counters.queued.fetch_sub(1, Relaxed);
            tokio::select! {
                biased;
                _ = super::signalled(&mut abandon) => {
                    // Out of time at shutdown: this one and all queued are dropped.
                    let mut left = 1;
                    while rx.try_recv().is_ok() {
                        self.counters.queued.fetch_sub(1, Relaxed);
                        left += 1;
                    }
                    self.counters.dropped.fetch_add(left, Relaxed);
                    self.note(format_args!("shutdown: {left} undelivered deliveries dropped"));
                    return;
                }
                _ = self.deliver(&delivery) => {}
            }
        }
    }

    fn note(&self, args: std::fmt::Arguments<'_>) {
        if self.log {
            tracing::warn!("webhook {} ({}): {args}", self.index, self.target.authority);
        }
    }

    fn body(&self, delivery: &Delivery) -> Vec<u8> {
        let body = match &delivery.payload {
            Payload::Final { session, event, speaker } => {
                let mut event = event.clone();
                *event.text_mut() = self.converter.caption(event.text());
                let event = super::journal::Entry { event, speaker: speaker.as_deref() };
                serde_json::to_vec(&Body::Final { session, delivery: &delivery.id, event: &event })
            }
            Payload::Closed { session, finals, audio_ms } => {
                serde_json::to_vec(&Body::SessionClosed {
                    session,
                    delivery: &delivery.id,
                    finals: *finals,
                    audio_s: *audio_ms as f64 / 1000.0,
                })
            }
        };
        body.unwrap_or_default()
    }

    async fn deliver(&self, delivery: &Delivery) {
        let body = self.body(delivery);
        let timeout = Duration::from_secs(self.config.timeout_secs);
        for attempt in 1..=self.config.max_attempts {
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let outcome = match tokio::time::timeout(timeout, self.post(&delivery.id, &body)).await
            {
                Ok(Ok(status)) => classify(status),
                Ok(Err(e)) => Attempt::Retry(e.to_string()),
                Err(_) => Attempt::Retry(format!("no answer within {} s", timeout.as_secs())),
            };
            match outcome {
                Attempt::Ok => {
                    self.counters.ok.fetch_add(1, Relaxed);
                    return;
                }
                Attempt::Fail(why) => {
                    self.note(format_args!("delivery {} refused: {why}; not retried", delivery.id));
                    self.counters.failed.fetch_add(1, Relaxed);
                    return;
                }
                Attempt::Retry(why) if attempt == self.config.max_attempts => {
                    self.note(format_args!(
                        "delivery {} failed after {attempt} attempts: {why}",
                        delivery.id
                    ));
                    self.counters.failed.fetch_add(1, Relaxed);
                    return;
                }
                Attempt::Retry(_) => {}
            }
        }
    }

    /// One POST; the response's status.
    async fn post(&self, id: &str, body: &[u8]) -> reqwest::Result<u16> {
        let signature = sign(self.config.secret.as_bytes(), unix_now(), body);
        let response = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("cantocap-signature", signature)
            .header("cantocap-delivery", id)
            .body(body.to_vec())
            .send()
            .await?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef";
    const T: u64 = 1_700_000_000;
    const TOL: Duration = Duration::from_secs(300);

    #[test]
    fn signature_format() {
        let header = sign(SECRET, T, b"{\"a\":1}");
        let (t, v1) = header.split_once(',').unwrap();
        assert_eq!(t, "t=1700000000");
        let hex = v1.strip_prefix("v1=").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // RFC 4231 test case 2, to pin the HMAC itself.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn verify_good_tampered_wrong_secret_old_malformed() {
        let body = br#"{"type":"final"}"#;
        let header = sign(SECRET, T, body);
        assert_eq!(verify(SECRET, &header, body, T + 299, TOL), Ok(T));
        assert_eq!(verify(SECRET, &header, body, T - 299, TOL), Ok(T));
        assert_eq!(
            verify(SECRET, &header, br#"{"type":"finaL"}"#, T, TOL),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"another-secret-xyz", &header, body, T, TOL),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, body, T + 301, TOL),
            Err(VerifyError::OutsideTolerance { timestamp: T, now: T + 301 })
        );
        // Replaying the body under a fresh timestamp does not verify.
        let v1 = header.split_once(",v1=").unwrap().1;
        assert_eq!(
            verify(SECRET, &format!("t={},v1={v1}", T + 1), body, T, TOL),
            Err(VerifyError::Mismatch)
        );
        // A rotated secret: any v1 may match.
        let other = sign(b"old-secret-0123456", T, body);
        let both = format!("{},v1={}", header, other.split_once(",v1=").unwrap().1);
        assert_eq!(verify(b"old-secret-0123456", &both, body, T, TOL), Ok(T));
        for bad in [
            "",
            "t=,v1=00",
            &format!("v1={v1}"),
            "t=1700000000",
            &format!("t=17x,v1={v1}"),
            &format!("t=1700000000,v1={}", &v1[..63]),
            &format!("t=1700000000,v1={}zz", &v1[..62]),
            "garbage",
        ] {
            assert_eq!(verify(SECRET, bad, body, T, TOL), Err(VerifyError::Malformed), "{bad}");
        }
    }

    #[test]
    fn backoff_schedule() {
        let secs: Vec<f64> = (1..=8).map(|r| backoff(r).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn statuses_retried_or_not() {
        assert_eq!(classify(204), Attempt::Ok);
        for s in [429, 500, 502, 503] {
            assert!(matches!(classify(s), Attempt::Retry(_)), "{s}");
        }
        for s in [301, 400, 401, 404, 410] {
            assert!(matches!(classify(s), Attempt::Fail(_)), "{s}");
        }
    }

    #[test]
    fn queue_overflow_is_counted_and_never_waits() {
        let counters = WebhookCounters::default();
        let (tx, _rx) = mpsc::channel(2);
        let d = Delivery {
            id: delivery_id(),
            payload: Payload::Closed { session: "s".into(), finals: 0, audio_ms: 0 },
        };
        for _ in 0..5 {
            enqueue(Some(&tx), d.clone(), &counters);
        }
        assert_eq!((counters.queued.load(Relaxed), counters.dropped.load(Relaxed)), (2, 3));
        enqueue(None, d, &counters);
        assert_eq!(counters.dropped.load(Relaxed), 4);
    }

    #[test]
    fn delivery_ids_are_unique_hex() {
        let a = delivery_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, delivery_id());
    }

    #[test]
    fn urls() {
        let t = Target::parse("https://erp.example.org/hooks/c?x=1#frag").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str(), t.authority.as_str()),
            (true, "erp.example.org", 443, "/hooks/c?x=1", "erp.example.org")
        );
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (false, 8080, "/"));
        let t = Target::parse("HTTP://[::1]:9/h").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("::1", 9, "[::1]:9"));
        assert_eq!(Target::parse("http://h?q").unwrap().path, "/?q");
        for bad in [
            "ftp://h/",
            "h/path",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://user:pw@h/",
            "http://h/a\r\nX-Evil: 1",
            "http://h/a b",
            "http://[::1/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_checks() {
        let mut c = WebhookConfig::new("http://127.0.0.1:1/", "short");
        assert!(c.check().unwrap_err().to_string().contains(SECRET_ENV));
        c.secret = "0123456789abcdef".into();
        assert!(c.check().is_ok());
        c.events.clear();
        assert!(c.check().is_err());
        let c: WebhookConfig = toml::from_str(
            "url = \"https://x.example/\"\nsecret = \"0123456789abcdef\"\nscript = \"cn\"\nevents = [\"session_closed\"]",
        )
        .unwrap();
        assert_eq!(
            (c.script, c.events.as_slice(), c.queue),
            (Script::Cn, &[WebhookEvent::SessionClosed][..], 1000)
        );
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert!(toml::from_str::<WebhookConfig>("url = \"http://x/\"\nsekret = \"a\"").is_err());
    }
}
