//! Privacy: the audit log and its verifier, retention and `cantocap purge`, and
//! audio recorded only when asked (`cantocap serve --record-audio`).

// One test decodes at a time: the global decode lock is held across awaits.
#![allow(clippy::await_holding_lock)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use cantocap::server::audit::{self, AuditLog, Entry, Event, Record, Verdict};
use cantocap::server::{Limits, Role, Server, ServerConfig, TokenEntry};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SENTENCE: &str = "Please send your comments to the shared folder before Friday.";
const DAY: Duration = Duration::from_secs(86_400);

fn cantocap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cantocap")).args(args).output().expect("run cantocap")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn touch(path: &Path, age: Duration) {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn audit_verify_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for id in ["a", "b", "c"] {
        log.append(Entry::new(Event::SessionOpened).session(id).client("10.0.0.1:4000")).unwrap();
    }
    drop(log);
    let out = cantocap(&["audit", "verify", s(&path)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("3 records, chain intact"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);

    let good = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let cases: [(String, &[&str]); 4] = [
        (good.replace("\"b\"", "\"x\""), &["line 2 (seq 2)", "bad hash"]),
        (format!("{}\n{}\n", lines[1], lines[2]), &["line 1 (seq 2)", "seq gap"]),
        (format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]), &["line 2 (seq 3)", "seq gap"]),
        (good[..good.len() - 10].to_string(), &["line 3", "truncated"]),
    ];
    for (text, needles) in cases {
        std::fs::write(&path, text).unwrap();
        let out = cantocap(&["audit", "verify", s(&path)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        }
    }
    let out = cantocap(&["audit", "verify", s(&dir.path().join("none.jsonl"))]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn deleting_the_last_record_is_caught_with_expect_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for id in ["a", "b", "c"] {
        log.append(Entry::new(Event::SessionOpened).session(id)).unwrap();
    }
    let anchor = log.last_hash();
    drop(log);
    let ok = cantocap(&["audit", "verify", s(&path), "--expect-last", &anchor]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The last record deleted: the chain alone still verifies, the anchor does not.
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, kept).unwrap();
    assert!(cantocap(&["audit", "verify", s(&path)]).status.success());
    let out = cantocap(&["audit", "verify", s(&path), "--expect-last", &anchor]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("removed from the end") && stderr.contains(&anchor), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_over_a_cut_audit_log_and_anchors_its_last_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    for id in ["a", "b"] {
        log.append(Entry::new(Event::SessionOpened).session(id)).unwrap();
    }
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 25]).unwrap(); // a crash mid-write
    let config = cantocap::server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: dir.path().join("no-model.bin"),
        audit_log: Some(path.clone()),
        log: false,
        ..Default::default()
    };
    let server = cantocap::server::Server::bind(config).await.expect("starts over a damaged log");
    let (status, metrics) = crate::client::get(server.local_addr(), "/metrics").await;
    assert_eq!(status, 200);
    let hash = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cantocap_audit_last_hash_info{hash=\""))
        .and_then(|l| l.split('"').next())
        .expect("the last hash in /metrics")
        .to_string();
    server.shutdown().await;
    let out = cantocap(&["audit", "verify", s(&path), "--expect-last", &hash]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("restarted after record 1") && stdout.contains(".damaged-"),
        "{stdout}"
    );
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".damaged-"))
        .count();
    assert_eq!(aside, 1, "the damaged log is kept");
}

#[test]
fn purge_removes_exactly_the_old_files_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let log = dir.path().join("audit.jsonl");
    let old = ["old.jsonl", "old.1.wav", "old.2.wav", "gone.jsonl"];
    let new = ["new.jsonl", "new.1.wav", "old.3.wav"];
    for name in old {
        touch(&data.join(name), DAY * 31);
    }
    for name in new {
        touch(&data.join(name), DAY * 29);
    }
    touch(&data.join("notes.txt"), DAY * 400);

    let args = ["purge", "--data-dir", s(&data), "--older-than", "30d", "--audit-log", s(&log)];
    let out = cantocap(&[&args[..], &["--dry-run"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would remove 2 session(s), 4 file(s)"));
    assert!(data.join("old.jsonl").exists() && !log.exists());

    let out = cantocap(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("removed 2 session(s), 4 file(s)"), "{stdout}");
    for name in old {
        assert!(!data.join(name).exists(), "{name} kept");
    }
    for name in new.iter().chain(&["notes.txt"]) {
        assert!(data.join(name).exists(), "{name} removed");
    }
    let records = records(&log);
    assert!(records.iter().all(|r| r.event == Event::Purge));
    let sessions: Vec<_> = records.iter().filter_map(|r| r.session.as_deref()).collect();
    assert_eq!(sessions, ["gone", "old"]);
    let run = records.last().unwrap().detail.as_deref().unwrap();
    assert!(run.starts_with("sessions=2 files=4 older_than=30d"), "{run}");
    assert!(matches!(audit::verify(&log).unwrap(), Verdict::Intact { records: 3, .. }));

    let out = cantocap(&["purge", "--data-dir", s(&data), "--older-than", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

#[test]
fn record_audio_needs_a_data_dir() {
    let out = cantocap(&["serve", "--record-audio", "--model", s(&model("ggml-tiny.en.bin"))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--data-dir"), "{stderr}");
}

// The helpers below talk to a server as in server.rs.

async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(120), ws.next()).await.expect("in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                return json!({"close": frame.map_or(1005, |f| u16::from(f.code))})
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return json!({"close": 1006}),
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out[9..12].parse().unwrap()
}

/// Stream 16 kHz mono s16le to a new session, stop, and return the finals' texts.
async fn session(addr: SocketAddr, id: &str, token: &str, audio: &[u8]) -> Vec<String> {
    let url = format!("ws://{addr}/v1/ingest/{id}?token={token}");
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    ws.send(Message::text(start.to_string())).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "ready");
    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        // Four times real time.
        if let Some(wait) = Duration::from_millis(i as u64 * 25).checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        ws.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    let mut finals = Vec::new();
    loop {
        let m = next(&mut ws).await;
        if let Some(code) = m["close"].as_u64() {
            assert_eq!(code, 1000);
            return finals;
        }
        if m["type"] == "final" {
            finals.push(m["text"].as_str().unwrap().to_string());
        }
    }
}

fn wavs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_audited_and_audio_is_recorded_only_when_asked() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("audit.jsonl");
    let wav = dir.path().join("speech.wav");
    speak("en", SENTENCE, &wav);
    let samples = cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap();
    let audio: Vec<u8> =
        samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect();
    let token = |name: &str, roles| TokenEntry {
        name: name.into(),
        token: format!("{name}-secret-123"),
        roles,
        ..Default::default()
    };
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: model("ggml-tiny.en.bin"),
        data_dir: Some(data.clone()),
        log: false,
        limits: Limits { max_realtime_factor: 20.0, idle_secs: 1, ..Limits::default() },
        tokens: vec![token("gw", vec![Role::Ingest]), token("view", vec![Role::View])],
        audit_log: Some(log.clone()),
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());

    // Without --record-audio: no audio file, ever.
    let server = Server::bind(config.clone()).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();
    let quiet = session(addr, "quiet", "gw-secret-123", &audio).await;
    assert!(!quiet.is_empty());
    server.shutdown().await;
    assert_eq!(wavs(&data), Vec::<PathBuf>::new());
    assert!(data.join("quiet.jsonl").is_file());

    // With it, a recording per connection; the audit log continues; an old session
    // is purged at start.
    touch(&data.join("quiet.jsonl"), DAY * 40);
    config.record_audio = true;
    config.retention = Some(DAY * 30);
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();
    let deadline = Instant::now() + Duration::from_secs(30);
    while data.join("quiet.jsonl").exists() {
        assert!(Instant::now() < deadline, "the old session was not purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(addr, "/v1/sessions/quiet/transcript?token=view-secret-123").await, 404);
    assert_eq!(get(addr, "/v1/sessions/rec/transcript?token=wrong-token-000").await, 401);
    let url = format!("ws://{addr}/v1/captions/rec?token=view-secret-123");
    let finals = session(addr, "rec", "gw-secret-123", &audio).await;
    let mut viewer = tokio_tungstenite::connect_async(url).await.unwrap().0;
    assert_eq!(next(&mut viewer).await["type"], "ready");
    viewer.close(None).await.unwrap();
    assert_eq!(get(addr, "/v1/sessions/rec/transcript?token=view-secret-123").await, 200);
    // An idle connection runs into a limit.
    let url = format!("ws://{addr}/v1/ingest/idle?token=gw-secret-123");
    let mut idle = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    idle.send(Message::text(start.to_string())).await.unwrap();
    assert_eq!(next(&mut idle).await["type"], "ready");
    assert_eq!(next(&mut idle).await["code"], "idle_timeout");
    server.shutdown().await;

    // The recording: 16 kHz mono 16-bit, as long as what was sent.
    assert_eq!(wavs(&data), [data.join("idle.1.wav"), data.join("rec.1.wav")]);
    let recorded = cantocap::audio::read_wav(&data.join("rec.1.wav")).unwrap();
    assert_eq!((recorded.sample_rate, recorded.channels), (16_000, 1));
    assert_eq!(recorded.samples.len(), samples.len());

    // The audit log: intact, continued across the restart, no text, no secrets.
    assert!(matches!(audit::verify(&log).unwrap(), Verdict::Intact { .. }));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("secret"), "{text}");
    for caption in quiet.iter().chain(&finals) {
        assert!(!text.contains(caption.trim()), "caption text in the audit log: {caption}");
    }
    let records = records(&log);
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());
    let find = |event: Event, session: Option<&str>| {
        records
            .iter()
            .find(|r| r.event == event && r.session.as_deref() == session)
            .unwrap_or_else(|| panic!("no {event:?} {session:?} in {text}"))
    };
    let loaded: Vec<_> = records.iter().filter(|r| r.event == Event::ConfigLoaded).collect();
    assert_eq!(loaded.len(), 2);
    assert!(loaded[1].detail.as_deref().unwrap().contains("record_audio=on"));
    let opened = find(Event::SessionOpened, Some("rec"));
    assert_eq!(opened.token.as_deref(), Some(audit::token_hash("gw").as_str()));
    assert!(opened.client.as_deref().unwrap().starts_with("127.0.0.1:"));
    let closed = find(Event::SessionClosed, Some("rec"));
    let sent_s = samples.len() as f64 / 16_000.0;
    assert!((closed.audio_s.unwrap() - sent_s).abs() < 0.01, "{closed:?}");
    assert_eq!(closed.captions, Some(finals.len() as u64));
    // Redaction counts by kind (the speech has no personal data: all zero), never text.
    assert_eq!(closed.redactions.map(|r| r.total()), Some(0), "{closed:?}");
    assert_eq!((closed.close_code, closed.detail.as_deref()), (Some(1000), Some("stop")));
    find(Event::SessionClosed, Some("quiet"));
    find(Event::Purge, Some("quiet"));
    assert!(find(Event::Purge, None).detail.as_deref().unwrap().starts_with("sessions=1 files=1"));
    assert_eq!(find(Event::AuthFailed, Some("rec")).detail.as_deref(), Some("unauthorized"));
    let joined = find(Event::ViewerJoined, Some("rec"));
    assert_eq!(joined.token.as_deref(), Some(audit::token_hash("view").as_str()));
    find(Event::ViewerLeft, Some("rec"));
    assert_eq!(find(Event::TranscriptRead, Some("rec")).captions.map(|n| n > 0), Some(true));
    assert_eq!(find(Event::LimitHit, Some("idle")).detail.as_deref(), Some("idle_timeout"));
    let idle_closed = find(Event::SessionClosed, Some("idle"));
    assert_eq!((idle_closed.close_code, idle_closed.audio_s), (Some(1008), Some(0.0)));
}
