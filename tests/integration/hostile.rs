//! What a hostile test of the wave-1 server found, each kept fixed here (issue 9):
//! a closed stderr, idle ingest sockets, DNS rebinding, floods of bad tokens,
//! anonymous servers on public addresses; and viewers who arrive before the meeting.

// The Whisper lock is held for a whole test on purpose: one decode at a time.
#![allow(clippy::await_holding_lock)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cantocap::server::{Limits, Role, Server, ServerConfig, TokenEntry};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, connect, next, stop, stream};
use crate::common::{model, whisper_lock};

/// A raw GET with the given Host and extra headers; (status, whole response).
async fn get_as(addr: SocketAddr, path: &str, host: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    (out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0), out)
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn no_model(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: dir.join("no-model.bin"),
        log: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_a_foreign_host_name_is_refused_on_an_anonymous_loopback_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::bind(no_model(dir.path())).await.unwrap();
    let addr = server.local_addr();
    let port = addr.port();
    let evil = format!("evil.example:{port}");
    let origin = format!("Origin: http://evil.example:{port}\r\n");
    for path in ["/v1/captions/s1", "/v1/ingest/s1"] {
        let (status, out) = get_as(addr, path, &evil, &format!("{origin}{UPGRADE}")).await;
        assert_eq!(status, 403, "{path}: {out}");
        assert!(out.contains("loopback") || out.contains("localhost"), "{out}");
    }
    let (status, _) = get_as(addr, "/v1/sessions/s1/transcript", &evil, &origin).await;
    assert_eq!(status, 403);
    // Loopback names, with or without the port, still work.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "localhost".into()] {
        let (status, out) = get_as(addr, "/v1/sessions/s1/transcript", &host, "").await;
        assert_eq!(status, 404, "{host}: {out}");
        assert!(out.contains("unknown_session"), "{out}");
    }
    let (status, _) = get_as(addr, "/livez", &evil, "").await;
    assert_eq!(status, 200, "health checks need no Host check");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_gets_429_and_few_audit_records() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let config = ServerConfig {
        tokens: vec![TokenEntry {
            name: "viewer".into(),
            token: "good-token-123".into(),
            roles: vec![Role::View],
            ..Default::default()
        }],
        audit_log: Some(audit.clone()),
        ..no_model(dir.path())
    };
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let (status, out) =
            get_as(addr, "/v1/sessions/s/transcript?token=wrong-token", "localhost", "").await;
        if status == 429 {
            let retry = out.lines().find(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
            let secs: u64 =
                retry.expect("Retry-After").split(':').nth(1).unwrap().trim().parse().unwrap();
            assert!((1..=10).contains(&secs), "{out}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 50, "{statuses:?}");
    // Another address is not limited, and a good token from it works.
    let mut s = crate::network::connect_from("127.0.0.2", addr).await.unwrap();
    s.write_all(b"GET /v1/sessions/s/transcript?token=good-token-123 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    server.shutdown().await;
    let records = std::fs::read_to_string(&audit).unwrap();
    let refused = records.lines().filter(|l| l.contains("auth_failed")).count();
    assert!(refused <= 11, "{refused} audit records for one burst:\n{records}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unstarted_ingest_sockets_do_not_lock_sessions_out() {
    let _lock = whisper_lock();
    let mut config = client::config(None);
    config.limits = Limits { max_sessions: 2, max_unstarted_per_address: 4, ..config.limits };
    let server = client::start(config).await;
    let addr = server.local_addr();
    // Eight sockets from one address that never send start: four wait (none holds
    // a session), four are refused at once.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let mut ws = connect(&format!("ws://{addr}/v1/ingest/idle")).await;
        let first = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
        if let Ok(Some(Ok(Message::Text(t)))) = first {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["code"], "too_many_sessions", "{v}");
            refused += 1;
        }
        idle.push(ws);
    }
    assert_eq!(refused, 4);
    // Real sessions from other addresses still start, up to max_sessions.
    let a = ingest_from("127.0.0.2", addr, "a").await;
    let b = ingest_from("127.0.0.3", addr, "b").await;
    let mut c = ws_from("127.0.0.4", addr, "c").await;
    c.send(Message::text(r#"{"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}"#))
        .await
        .unwrap();
    let full = raw_next(&mut c).await;
    assert_eq!(full["code"], "too_many_sessions", "{full}");
    drop((a, b, idle));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_arrives_before_the_meeting_waits_and_then_gets_its_captions() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = client::speech(dir.path(), &["Good morning everyone."], 800);
    let server = client::start(client::config(None)).await;
    let addr = server.local_addr();
    let (mut early, first) = client::viewer(addr, "later").await;
    assert_eq!(first["type"], "waiting", "{first}");
    let mut ingest = client::ingest(addr, "later", json!({})).await;
    stream(&mut ingest, &audio, 8.0).await;
    let (finals, code) = stop(&mut ingest).await;
    assert_eq!(code, 1000);
    assert!(!finals.is_empty());
    let ready = next(&mut early).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    let mut seen = Vec::new();
    while seen.len() < finals.len() {
        let m = next(&mut early).await;
        assert!(m.get("close").is_none(), "{m}");
        if m["type"] == "final" {
            seen.push(m["text"].clone());
        }
    }
    let sent: Vec<_> = finals.iter().map(|f| f["text"].clone()).collect();
    assert_eq!(seen, sent);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_viewer_is_closed_with_4404_after_viewer_wait_secs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = no_model(dir.path());
    config.limits.viewer_wait_secs = 1;
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (mut ws, first) = client::viewer(addr, "never").await;
    assert_eq!(first["type"], "waiting");
    let started = Instant::now();
    let error = next(&mut ws).await;
    assert_eq!(error["code"], "unknown_session", "{error}");
    assert_eq!(next(&mut ws).await["close"], 4404);
    assert!(started.elapsed() < Duration::from_secs(10));
    server.shutdown().await;
}

type RawWs = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_from(source: &str, addr: SocketAddr, session: &str) -> RawWs {
    let tcp = crate::network::connect_from(source, addr).await.unwrap();
    let url = format!("ws://{addr}/v1/ingest/{session}");
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

async fn ingest_from(source: &str, addr: SocketAddr, session: &str) -> RawWs {
    let mut ws = ws_from(source, addr, session).await;
    ws.send(Message::text(r#"{"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}"#))
        .await
        .unwrap();
    let ready = raw_next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

async fn raw_next(ws: &mut RawWs) -> Value {
    match tokio::time::timeout(client::WAIT, ws.next()).await.expect("no message") {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// A child process that is killed if the test fails before it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_neither_drops_sockets_nor_blocks_sigterm() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = client::speech(dir.path(), &["The meeting starts at three."], 600);
    let port = free_port();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_cantocap"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--language",
                "en",
                "--model",
            ])
            .arg(model("ggml-tiny.en.bin"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Like `serve 2>&1 | head -3`: read three lines, then close the pipe.
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next();
    }
    drop(lines);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while client::get(addr, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every connection logs; none may fail for it.
    for round in 0..2 {
        let mut ws = client::ingest(addr, &format!("s{round}"), json!({"language": "en"})).await;
        stream(&mut ws, &audio, 8.0).await;
        let (finals, code) = stop(&mut ws).await;
        assert_eq!(code, 1000, "round {round}");
        assert!(!finals.is_empty(), "round {round}");
    }
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "SIGTERM was ignored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn anonymous_access_on_a_public_address_is_announced_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_cantocap"))
            .args(["serve", "--listen", "0.0.0.0:0", "--allow-anonymous", "--model"])
            .arg(dir.path().join("missing.bin"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let warned = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let hit = line.contains("ANONYMOUS ACCESS") && line.contains("WARN");
                seen.push(line);
                if hit {
                    break true;
                }
            }
            _ => break false,
        }
    };
    drop(child);
    assert!(warned, "{seen:#?}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--model"])
        .arg(dir.path().join("missing.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing model is an error");
    let err = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let listening = logs.iter().find(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on http://127.0.0.1:"))
    });
    let listening = listening.unwrap_or_else(|| panic!("{err}"));
    assert_eq!(listening["level"], "INFO");
    assert!(err.contains("missing.bin"), "the error names the model: {err}");
}
