//! Signed webhooks: a local receiver (a tokio TcpListener speaking minimal HTTP)
//! checks signatures, retries, drops and the `/metrics` counters. Delivery is driven
//! through `cantocap::server::webhook::Webhooks` directly with caption events made
//! here; one test runs the real server and model end to end.

// Holding the global decode lock across awaits is the point (one decode at a time).
#![allow(clippy::await_holding_lock)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cantocap::asr::CaptionEvent;
use cantocap::server::metrics::WebhookCounters;
use cantocap::server::webhook::{verify, WebhookConfig, WebhookEvent, Webhooks, DEFAULT_TOLERANCE};
use cantocap::server::{Limits, Server, ServerConfig};
use cantocap::text::Script;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

const SECRET: &str = "test-webhook-secret-0123";
const WAIT: Duration = Duration::from_secs(120);

/// A request the receiver got.
#[derive(Debug)]
struct Received {
    request_line: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Check the signature as a receiver would, and that the delivery header matches
    /// the body.
    fn verified(&self) -> Value {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let signature = self.header("cantocap-signature");
        verify(SECRET.as_bytes(), signature, &self.body, now, DEFAULT_TOLERANCE)
            .unwrap_or_else(|e| panic!("{e}: {signature}"));
        let json = self.json();
        assert_eq!(json["delivery"], self.header("cantocap-delivery"));
        json
    }
}

/// A receiver answering the n-th request (from 0) with `status(n)`.
async fn receiver(
    status: impl Fn(usize) -> u16 + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(status);
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, status, count) = (tx.clone(), Arc::clone(&status), Arc::clone(&count));
            tokio::spawn(async move {
                let _ = answer(stream, |_| status(count.fetch_add(1, Relaxed)), tx).await;
            });
        }
    });
    (addr, rx)
}

/// Read one request, record it, answer with a status.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: impl FnOnce(&Received) -> u16,
    tx: mpsc::UnboundedSender<Received>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers["content-length"].parse().unwrap();
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        assert!(n > 0, "body cut short");
        body.extend_from_slice(&chunk[..n]);
    }
    let received = Received { request_line, headers, body };
    let code = status(&received);
    let _ = tx.send(received);
    let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no webhook request in time").unwrap()
}

fn hook(addr: SocketAddr) -> WebhookConfig {
    WebhookConfig::new(format!("http://{addr}/hooks/captions?org=7"), SECRET)
}

fn final_(segment: u64, text: &str) -> CaptionEvent {
    CaptionEvent::Final {
        segment,
        text: text.into(),
        start_ms: 1000 * segment,
        end_ms: 1000 * segment + 900,
        emitted_ms: 1000 * segment + 1500,
        lag_ms: 0,
    }
}

/// Poll until `done`, for at most `within`.
async fn until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finals_and_session_closed_arrive_signed_in_the_webhooks_script() {
    let (addr, mut rx) = receiver(|_| 204).await;
    let counters = Arc::new(WebhookCounters::default());
    let config = WebhookConfig { script: Script::Cn, ..hook(addr) };
    let hooks = Webhooks::start(&[config], Arc::clone(&counters), false).unwrap();

    let partial = CaptionEvent::Partial {
        segment: 2,
        revision: 1,
        text: "x".into(),
        start_ms: 0,
        end_ms: 1,
        emitted_ms: 1,
        lag_ms: 0,
    };
    hooks.on_final("room-1", &partial, None); // partials are not sent
    hooks.on_final("room-1", &final_(1, "我們發佈了軟件"), None);
    hooks.on_session_closed("room-1", 1, 2500);

    let first = recv(&mut rx).await;
    assert_eq!(first.request_line, "POST /hooks/captions?org=7 HTTP/1.1");
    assert_eq!(first.header("content-type"), "application/json");
    assert_eq!(first.header("host"), addr.to_string());
    let body = first.verified();
    assert_eq!(body["type"], "final");
    assert_eq!(body["session"], "room-1");
    assert_eq!(
        body["event"],
        json!({"type":"final","segment":1,"text":"我们发布了软件","start_ms":1000,"end_ms":1900,"emitted_ms":2500,"lag_ms":0})
    );

    let second = recv(&mut rx).await;
    let body = second.verified();
    assert_eq!(
        (&body["type"], &body["session"], &body["finals"], &body["audio_s"]),
        (&json!("session_closed"), &json!("room-1"), &json!(1), &json!(2.5))
    );
    assert_ne!(first.header("cantocap-delivery"), second.header("cantocap-delivery"));

    // A signature does not carry over to another body.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(verify(
        SECRET.as_bytes(),
        first.header("cantocap-signature"),
        &second.body,
        now,
        DEFAULT_TOLERANCE
    )
    .is_err());
    assert!(until(Duration::from_secs(5), || counters.ok.load(Relaxed) == 2).await);
    hooks.shutdown(Duration::from_secs(1)).await;
    assert_eq!(counters.retries.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_with_the_same_delivery_id() {
    let (addr, mut rx) = receiver(|n| if n == 0 { 500 } else { 200 }).await;
    let counters = Arc::new(WebhookCounters::default());
    let hooks = Webhooks::start(&[hook(addr)], Arc::clone(&counters), false).unwrap();
    hooks.on_final("s", &final_(1, "one"), None);
    hooks.on_final("s", &final_(2, "two"), None);

    let failed = recv(&mut rx).await;
    let started = Instant::now();
    let retried = recv(&mut rx).await;
    // The first backoff is 0.5 s.
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(failed.header("cantocap-delivery"), retried.header("cantocap-delivery"));
    assert_eq!(failed.body, retried.body);
    retried.verified();
    // Order is kept: the second final comes after the first one's retry.
    let next = recv(&mut rx).await;
    assert_eq!(next.verified()["event"]["segment"], 2);
    assert!(until(Duration::from_secs(5), || counters.ok.load(Relaxed) == 2).await);
    assert_eq!((counters.retries.load(Relaxed), counters.failed.load(Relaxed)), (1, 0));
    hooks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried() {
    let (addr, mut rx) = receiver(|_| 400).await;
    let counters = Arc::new(WebhookCounters::default());
    let hooks = Webhooks::start(&[hook(addr)], Arc::clone(&counters), false).unwrap();
    hooks.on_session_closed("s", 0, 0);
    recv(&mut rx).await;
    assert!(until(Duration::from_secs(5), || counters.failed.load(Relaxed) == 1).await);
    // Past the first backoff: still one request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(rx.try_recv().is_err());
    assert_eq!(counters.retries.load(Relaxed), 0);
    hooks.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_blocking() {
    // A receiver that accepts and never answers: the worker is stuck on its first
    // delivery for the whole timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = held_tx.send(stream);
        }
    });
    let counters = Arc::new(WebhookCounters::default());
    let config = WebhookConfig { queue: 1, timeout_secs: 60, ..hook(addr) };
    let hooks = Webhooks::start(&[config], Arc::clone(&counters), false).unwrap();
    hooks.on_final("s", &final_(1, "first"), None);
    // Wait until the worker holds the first delivery (its connection is open).
    let _stuck = tokio::time::timeout(WAIT, held.recv()).await.unwrap();

    let started = Instant::now();
    for i in 2..=21 {
        hooks.on_final("s", &final_(i, "more"), None);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "enqueueing waited: {:?}",
        started.elapsed()
    );
    // One in flight, one queued, the other 19 dropped.
    assert_eq!(counters.queued.load(Relaxed), 1);
    assert_eq!(counters.dropped.load(Relaxed), 19);

    // Shutdown gives up after the drain time: what was left is dropped too.
    let started = Instant::now();
    hooks.shutdown(Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(counters.dropped.load(Relaxed), 21);
    assert_eq!((counters.ok.load(Relaxed), counters.queued.load(Relaxed)), (0, 0));
    // After shutdown nothing is queued any more, and that is counted.
    hooks.on_final("s", &final_(30, "late"), None);
    assert_eq!(counters.dropped.load(Relaxed), 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    let dir = root().join("tests/data/webhook-tls");
    let acceptor = tls_acceptor(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = answer(tls, |_| 200, tx).await;
                }
            });
        }
    });
    let url = format!("https://127.0.0.1:{}/in", addr.port());

    // Without the private CA the certificate is not trusted: retried, then failed.
    let counters = Arc::new(WebhookCounters::default());
    let untrusted = WebhookConfig { max_attempts: 1, ..WebhookConfig::new(url.clone(), SECRET) };
    let hooks = Webhooks::start(&[untrusted], Arc::clone(&counters), false).unwrap();
    hooks.on_session_closed("s", 0, 0);
    assert!(until(Duration::from_secs(10), || counters.failed.load(Relaxed) == 1).await);
    hooks.shutdown(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err());

    let counters = Arc::new(WebhookCounters::default());
    let trusted = WebhookConfig {
        ca_file: Some(dir.join("ca.pem")),
        events: vec![WebhookEvent::Final],
        ..WebhookConfig::new(url, SECRET)
    };
    let hooks = Webhooks::start(&[trusted], Arc::clone(&counters), false).unwrap();
    hooks.on_session_closed("s", 0, 0); // not subscribed
    hooks.on_final("s", &final_(1, "secure"), None);
    let got = recv(&mut rx).await;
    assert_eq!(got.verified()["event"]["text"], "secure");
    assert!(until(Duration::from_secs(5), || counters.ok.load(Relaxed) == 1).await);
    hooks.shutdown(Duration::from_secs(1)).await;

    // A ca_file that is not PEM is a configuration error at start.
    let bad = WebhookConfig {
        ca_file: Some(dir.join("missing.pem")),
        ..WebhookConfig::new("https://127.0.0.1:1/", SECRET)
    };
    let err = Webhooks::start(&[bad], Arc::default(), false).unwrap_err().to_string();
    assert!(err.contains("ca_file"), "{err}");
}

fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A GET; the body.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_posts_its_finals_and_counts_failed_deliveries_in_metrics() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let sentence = "Please send your comments to the shared folder before Friday.";
    let wav = dir.path().join("s.wav");
    speak("en", sentence, &wav);
    let mut samples = vec![0.0f32; 4000];
    samples.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
    samples.extend(std::iter::repeat_n(0.0, 16_000));
    let audio: Vec<u8> =
        samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect();

    let (good, mut rx) = receiver(|_| 200).await;
    let (bad, mut bad_rx) = receiver(|_| 503).await;
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: model("ggml-tiny.en.bin"),
        log: false,
        limits: Limits { max_realtime_factor: 20.0, ..Limits::default() },
        webhooks: vec![
            WebhookConfig { script: Script::Raw, ..hook(good) },
            WebhookConfig {
                max_attempts: 2,
                events: vec![WebhookEvent::SessionClosed],
                ..hook(bad)
            },
        ],
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();

    let url = format!("ws://{addr}/v1/ingest/hooked");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(r#"{"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}"#))
        .await
        .unwrap();
    for frame in audio.chunks(3200) {
        ws.send(Message::binary(frame.to_vec())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    let mut finals = Vec::new();
    while let Some(Ok(m)) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "final" {
                    finals.push(v);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    assert!(!finals.is_empty());
    let spoken: Vec<&str> = finals.iter().map(|f| f["text"].as_str().unwrap()).collect();
    assert!(wer(sentence, &spoken.join(" ")) < 0.3, "{spoken:?}");

    // The receiver gets the very events the ingest client got, then the close.
    let mut posted = Vec::new();
    let closed = loop {
        let body = recv(&mut rx).await.verified();
        assert_eq!(body["session"], "hooked");
        match body["type"].as_str() {
            Some("final") => posted.push(body["event"].clone()),
            Some("session_closed") => break body,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(posted, finals);
    assert_eq!(closed["finals"], finals.len());
    let audio_s = closed["audio_s"].as_f64().unwrap();
    assert!((audio_s - samples.len() as f64 / 16_000.0).abs() < 0.2, "{audio_s}");

    // The failing receiver: two attempts, then the delivery is failed and counted.
    let first = recv(&mut bad_rx).await;
    let second = recv(&mut bad_rx).await;
    assert_eq!(first.header("cantocap-delivery"), second.header("cantocap-delivery"));
    let mut metrics;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        metrics = get(addr, "/metrics").await;
        if metrics.contains("cantocap_webhook_deliveries_total{result=\"failed\"} 1\n")
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains("cantocap_webhook_deliveries_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
    let ok = format!("cantocap_webhook_deliveries_total{{result=\"ok\"}} {}\n", finals.len() + 1);
    assert!(metrics.contains(&ok), "{metrics}");
    assert!(metrics.contains("cantocap_webhook_retries_total 1\n"), "{metrics}");
    assert!(metrics.contains("cantocap_webhook_deliveries_total{result=\"dropped\"} 0\n"));
    server.shutdown().await;
}
