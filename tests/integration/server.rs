//! `cantocap serve`: in-process through `cantocap::server::Server` and as the real
//! binary, talking through a real WebSocket client (tokio-tungstenite). English
//! speech from espeak-ng and the tiny.en model keep decoding quick.

// Each test has its own runtime; holding the global decode lock across awaits is the
// point (one test decodes at a time on a small machine).
#![allow(clippy::await_holding_lock)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cantocap::server::{Limits, Role, Server, ServerConfig, TokenEntry};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ONE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const TWO: &str = "Please send your comments to the shared folder before Friday.";
const WAIT: Duration = Duration::from_secs(120);

/// Sentences as 16 kHz mono s16le, each followed by `pause_ms` of silence.
fn speech(dir: &Path, sentences: &[&str], pause_ms: usize) -> Vec<u8> {
    let mut samples = vec![0.0f32; 4000];
    for (i, s) in sentences.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        speak("en", s, &wav);
        samples.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
        samples.extend(std::iter::repeat_n(0.0, pause_ms * 16));
    }
    samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
}

fn config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: model("ggml-tiny.en.bin"),
        data_dir: Some(dir.join("data")),
        log: false,
        limits: Limits { max_realtime_factor: 20.0, ..Limits::default() },
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    config
}

async fn start(config: ServerConfig) -> Server {
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    server
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next text message as JSON, or the close code (as `{"close":code}`).
async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                return json!({"close": frame.map_or(1005, |f| u16::from(f.code))})
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return json!({"close": 1006, "error": e.to_string()}),
            None => return json!({"close": 1006}),
        }
    }
}

/// Open an ingest session and wait for `ready`.
async fn ingest(addr: SocketAddr, session: &str, extra: Value) -> (Ws, Value) {
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/{session}")).await;
    let mut start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    for (k, v) in extra.as_object().unwrap() {
        start[k] = v.clone();
    }
    ws.send(Message::text(start.to_string())).await.unwrap();
    let ready = next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// Send audio in 100 ms frames at `speed` times real time.
async fn stream(ws: &mut Ws, audio: &[u8], speed: f64) {
    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        let due = Duration::from_secs_f64(i as f64 * 0.1 / speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        ws.send(Message::binary(frame.to_vec())).await.unwrap();
    }
}

/// Events until the close; returns (finals, close code).
async fn until_close(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut finals = Vec::new();
    loop {
        let m = next(ws).await;
        if let Some(code) = m["close"].as_u64() {
            return (finals, code as u16);
        }
        if m["type"] == "final" {
            finals.push(m);
        }
    }
}

/// Finals from a viewer until it has `n` of them.
async fn finals_from(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut finals = Vec::new();
    while finals.len() < n {
        let m = next(ws).await;
        assert!(m["close"].is_null(), "viewer closed early: {m}");
        if m["type"] == "final" {
            finals.push(m);
        }
    }
    finals
}

fn texts(finals: &[Value]) -> Vec<String> {
    finals.iter().map(|f| f["text"].as_str().unwrap().to_string()).collect()
}

async fn viewer(addr: SocketAddr, session: &str, script: &str) -> (Ws, Value) {
    let mut ws = connect(&format!("ws://{addr}/v1/captions/{session}?script={script}")).await;
    let ready = next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

/// A plain GET; (status, body).
async fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finals_reach_viewers_in_their_scripts_and_late_viewers_get_the_backlog() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), &[ONE, TWO], 1000);
    let server = start(config(dir.path())).await;
    let addr = server.local_addr();

    let (mut ws, ready) = ingest(addr, "room1", json!({"speaker": "chair"})).await;
    assert_eq!(
        (ready["next_segment"].as_u64(), ready["speaker"].as_str()),
        (Some(1), Some("chair"))
    );
    let (mut hk, _) = viewer(addr, "room1", "hk").await;
    let (mut cn, _) = viewer(addr, "room1", "cn").await;
    stream(&mut ws, &audio, 4.0).await;
    ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    let (finals, code) = until_close(&mut ws).await;
    assert_eq!(code, 1000);
    let all = texts(&finals).join(" ");
    assert!(wer(&format!("{ONE} {TWO}"), &all) < 0.3, "{all}");
    let ids: Vec<u64> = finals.iter().map(|f| f["segment"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());

    // Every viewer gets every final (English text is the same in every script).
    for v in [&mut hk, &mut cn] {
        assert_eq!(texts(&finals_from(v, finals.len()).await), texts(&finals));
    }
    // A late viewer gets the finals so far first.
    let (mut late, ready) = viewer(addr, "room1", "tw").await;
    assert_eq!(ready["backlog"].as_u64(), Some(finals.len() as u64));
    assert_eq!(texts(&finals_from(&mut late, finals.len()).await), texts(&finals));

    // Transcripts in every format, from the journal.
    let (status, srt) = get(addr, "/v1/sessions/room1/transcript?format=srt&script=hk", "").await;
    assert_eq!(status, 200);
    assert!(srt.starts_with("1\n00:00:"), "{srt}");
    let (_, vtt) = get(addr, "/v1/sessions/room1/transcript?format=vtt", "").await;
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let (_, txt) = get(addr, "/v1/sessions/room1/transcript?format=txt&script=cn", "").await;
    // The ingest named its speaker: transcripts label each caption.
    assert!(txt.lines().all(|l| l.starts_with("chair: ")), "{txt}");
    assert!(wer(&all, &txt.replace("chair: ", "")) < 0.05, "{txt}");
    assert_eq!(get(addr, "/v1/sessions/nobody/transcript", "").await.0, 404);
    let (_, metrics) = get(addr, "/metrics", "").await;
    assert!(metrics.contains(&format!("cantocap_finals_total {}", finals.len())), "{metrics}");
    assert!(metrics.contains("cantocap_viewers 3"), "{metrics}");
    server.shutdown().await;
}

/// Wait until only `n` ingest sessions are active (refused sessions give their slots
/// back once their engine threads have finalized, after waiting for the decode slot).
async fn settle(addr: SocketAddr, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = get(addr, "/metrics", "").await.1;
        let active = metrics
            .lines()
            .find_map(|l| l.strip_prefix("cantocap_sessions "))
            .unwrap()
            .parse::<u64>()
            .unwrap();
        if active <= n {
            return;
        }
        assert!(Instant::now() < deadline, "refused sessions never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_start(ws: &mut Ws) {
    let start =
        json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}).to_string();
    ws.send(Message::text(start)).await.unwrap();
}

/// One bad client: the error code in JSON, then the close code.
async fn expect_refusal(ws: &mut Ws, code: &str, close: u16) {
    let m = next(ws).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], code, "{m}");
    assert!(!m["message"].as_str().unwrap().is_empty());
    assert_eq!(next(ws).await["close"].as_u64(), Some(u64::from(close)), "after {code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_errors_and_close_codes_while_another_session_streams() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), &[ONE, TWO], 800);
    let mut config = config(dir.path());
    config.limits = Limits {
        max_sessions: 3,
        max_realtime_factor: 4.0,
        burst_ms: 1000,
        idle_secs: 2,
        ..Limits::default()
    };
    let max_frame = config.limits.max_frame_bytes;
    let server = start(config).await;
    let addr = server.local_addr();

    let (mut good, _) = ingest(addr, "good", json!({})).await;
    let good_task = tokio::spawn(async move {
        stream(&mut good, &audio, 2.0).await;
        good.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
        until_close(&mut good).await
    });
    let url = format!("ws://{addr}/v1/ingest/bad");
    // No start: audio first; malformed JSON.
    settle(addr, 1).await;
    let mut ws = connect(&format!("{url}-{}", line!())).await;
    ws.send(Message::binary(vec![0u8; 320])).await.unwrap();
    expect_refusal(&mut ws, "bad_start", 1008).await;
    settle(addr, 1).await;
    let mut ws = connect(&format!("{url}-{}", line!())).await;
    ws.send(Message::text("{not json")).await.unwrap();
    expect_refusal(&mut ws, "bad_start", 1008).await;
    // Unsupported audio.
    for start in [
        json!({"type":"start","sample_rate":7000,"channels":1,"format":"s16le"}),
        json!({"type":"start","sample_rate":16000,"channels":3,"format":"s16le"}),
        json!({"type":"start","sample_rate":16000,"channels":1,"format":"mp3"}),
    ] {
        settle(addr, 1).await;
        let mut ws = connect(&format!("{url}-{}", line!())).await;
        ws.send(Message::text(start.to_string())).await.unwrap();
        expect_refusal(&mut ws, "unsupported_audio", 1003).await;
    }
    // After start: text instead of audio, an odd byte count, an oversize frame.
    for (frame, code, close) in [
        (Message::text("hello"), "text_not_audio", 1003),
        (Message::binary(vec![0u8; 321]), "bad_audio", 1003),
        (Message::binary(vec![0u8; max_frame + 2]), "frame_too_big", 1009),
    ] {
        settle(addr, 1).await;
        let mut ws = connect(&format!("{url}-{}", line!())).await;
        send_start(&mut ws).await;
        assert_eq!(next(&mut ws).await["type"], "ready");
        ws.send(frame).await.unwrap();
        expect_refusal(&mut ws, code, close).await;
    }
    // Audio far faster than real time; too many messages; silence past the idle time.
    settle(addr, 1).await;
    let mut ws = connect(&format!("{url}-{}", line!())).await;
    send_start(&mut ws).await;
    next(&mut ws).await;
    for _ in 0..40 {
        if ws.send(Message::binary(vec![0u8; 3200])).await.is_err() {
            break;
        }
    }
    expect_refusal(&mut ws, "too_fast", 1008).await;
    settle(addr, 1).await;
    let mut ws = connect(&format!("{url}-{}", line!())).await;
    send_start(&mut ws).await;
    next(&mut ws).await;
    for _ in 0..300 {
        if ws.send(Message::binary(vec![0u8; 2])).await.is_err() {
            break;
        }
    }
    expect_refusal(&mut ws, "rate_limited", 1008).await;
    settle(addr, 1).await;
    let mut ws = connect(&format!("{url}-{}", line!())).await;
    send_start(&mut ws).await;
    next(&mut ws).await;
    expect_refusal(&mut ws, "idle_timeout", 1008).await;
    settle(addr, 1).await;
    // The session is busy; the server is full; viewers of unknown sessions; bad ids.
    // Held sessions send a little silence now and then, so the short idle limit
    // does not free their slots however slow the machine is.
    let hold = |mut ws: Ws| {
        tokio::spawn(async move {
            while ws.send(Message::binary(vec![0u8; 3200])).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let held = hold(ingest(addr, "other", json!({})).await.0);
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/other")).await;
    send_start(&mut ws).await;
    expect_refusal(&mut ws, "session_busy", 1008).await;
    // The refused connection gives its slot back once its close handshake is over.
    settle(addr, 2).await;
    let held2 = hold(ingest(addr, "third", json!({})).await.0);
    // A session counts once its start is accepted.
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/fourth")).await;
    send_start(&mut ws).await;
    expect_refusal(&mut ws, "too_many_sessions", 1013).await;
    // A viewer of a session that has not started waits for it.
    let mut ws = connect(&format!("ws://{addr}/v1/captions/nobody")).await;
    assert_eq!(next(&mut ws).await["type"], "waiting");
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/..%2Fetc")).await;
    expect_refusal(&mut ws, "bad_session_id", 1008).await;

    // Meanwhile the good session streamed on undisturbed.
    let (finals, code) = good_task.await.unwrap();
    assert_eq!(code, 1000);
    let all = texts(&finals).join(" ");
    assert!(wer(&format!("{ONE} {TWO}"), &all) < 0.3, "{all}");
    let (_, metrics) = get(addr, "/metrics", "").await;
    assert!(metrics.contains("cantocap_errors_total{kind=\"unsupported_audio\"} 3"), "{metrics}");
    held.abort();
    held2.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tokens_roles_and_origins() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let token = |name: &str, roles: Vec<Role>| TokenEntry {
        name: name.into(),
        token: format!("{name}-secret-123"),
        roles,
        ..Default::default()
    };
    config.tokens = vec![
        token("gw", vec![Role::Ingest]),
        token("viewer", vec![Role::View]),
        token("ops", vec![Role::Admin]),
    ];
    config.allowed_origins = vec!["https://meet.example".into()];
    let server = start(config).await;
    let addr = server.local_addr();
    let refused = |url: String, header: Option<(&'static str, &'static str)>| async move {
        let mut request = url.into_client_request().unwrap();
        if let Some((k, v)) = header {
            request.headers_mut().insert(k, v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Ok(_) => 101,
            Err(e) => panic!("{e}"),
        }
    };
    let ingest_url = format!("ws://{addr}/v1/ingest/s");
    assert_eq!(refused(ingest_url.clone(), None).await, 401);
    assert_eq!(
        refused(ingest_url.clone(), Some(("Authorization", "Bearer wrong-token-000"))).await,
        401
    );
    assert_eq!(
        refused(ingest_url.clone(), Some(("Authorization", "Bearer viewer-secret-123"))).await,
        403
    );
    assert_eq!(refused(format!("{ingest_url}?token=viewer-secret-123"), None).await, 403);

    // The ingest token opens a session; the view token watches it from an allowed origin.
    let mut request = ingest_url.clone().into_client_request().unwrap();
    request.headers_mut().insert("Authorization", "Bearer gw-secret-123".parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(request).await.unwrap().0;
    ws.send(Message::text(
        json!({"type":"start","sample_rate":48000,"channels":2,"format":"f32le"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["type"], "ready");
    let captions = format!("ws://{addr}/v1/captions/s");
    assert_eq!(refused(format!("{captions}?token=gw-secret-123"), None).await, 403);
    assert_eq!(
        refused(
            format!("{captions}?token=viewer-secret-123"),
            Some(("Origin", "https://evil.example"))
        )
        .await,
        403
    );
    assert_eq!(
        refused(
            format!("{captions}?token=viewer-secret-123"),
            Some(("Origin", "https://meet.example"))
        )
        .await,
        101
    );
    assert_eq!(refused(format!("{captions}?token=ops-secret-123"), None).await, 101);
    ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    assert_eq!(until_close(&mut ws).await.1, 1000);

    // Plain endpoints.
    assert_eq!(get(addr, "/livez", "").await.0, 200);
    assert_eq!(get(addr, "/readyz", "").await.0, 200);
    assert_eq!(get(addr, "/metrics", "").await.0, 401);
    assert_eq!(get(addr, "/metrics", "Authorization: Bearer viewer-secret-123\r\n").await.0, 403);
    assert_eq!(get(addr, "/metrics", "Authorization: Bearer ops-secret-123\r\n").await.0, 200);
    assert_eq!(get(addr, "/v1/sessions/s/transcript", "").await.0, 401);
    assert_eq!(get(addr, "/v1/sessions/s/transcript?token=viewer-secret-123", "").await.0, 200);
    let (status, page) = get(addr, "/?session=s&token=viewer-secret-123", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("background: transparent") && page.contains("new WebSocket"), "{page}");
    assert_eq!(get(addr, "/nothing", "").await.0, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finalizes_sessions_and_closes_with_1001() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), &[TWO], 0);
    let server = start(config(dir.path())).await;
    let addr = server.local_addr();
    let (mut ws, _) = ingest(addr, "talk", json!({})).await;
    let (mut view, _) = viewer(addr, "talk", "hk").await;
    stream(&mut ws, &audio, 10.0).await;
    // No stop: the shutdown must finalize what was said.
    server.shutdown_handle().shutdown();
    let done = tokio::spawn(server.shutdown());
    let (finals, code) = until_close(&mut ws).await;
    assert_eq!(code, 1001);
    let all = texts(&finals).join(" ");
    assert!(wer(TWO, &all) < 0.3, "{all}");
    let (seen, code) = until_close(&mut view).await;
    assert_eq!((texts(&seen), code), (texts(&finals), 1001));
    done.await.unwrap();
    let journal = std::fs::read_to_string(dir.path().join("data/talk.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), finals.len());
}

/// The server binary on a free port; returns it and its address.
fn spawn_binary(data: &Path) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cantocap"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--language", "en", "--quiet", "--data-dir"])
        .arg(data)
        .arg("--model")
        .arg(model("ggml-tiny.en.bin"));
    spawn_server(cmd).0
}

/// Start `serve` as `cmd` says; returns it, its address, and the log lines up to
/// `ready`.
fn spawn_server(mut cmd: Command) -> ((Child, SocketAddr), Vec<String>) {
    use std::io::BufRead;
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut addr, mut log) = (None, Vec::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.split("listening on http://").nth(1) {
            addr = Some(a.trim().parse().unwrap());
        }
        log.push(line);
        if log.last().unwrap().contains("ready") {
            break;
        }
    }
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    ((child, addr.unwrap_or_else(|| panic!("the server printed no address: {log:?}"))), log)
}

/// Every caption event (partial or final) an ingest connection gets until it closes.
async fn events_until_close(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut events = Vec::new();
    loop {
        let m = next(ws).await;
        if let Some(code) = m["close"].as_u64() {
            return (events, code as u16);
        }
        if m["type"] == "final" || m["type"] == "partial" {
            events.push(m);
        }
    }
}

/// Issue 12: pink noise at room level, silence and hum, streamed into `serve` as a user
/// starts it (default model, language and voice activity detector), give no caption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_serve_sends_no_caption_for_noise_silence_or_hum() {
    default_models();
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = cantocap_default();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let ((mut child, addr), log) = spawn_server(cmd);
    let log = log.join("\n");
    assert!(!log.contains("Silero VAD model not found"), "{log}");

    // The three rooms at once, as three sessions, 2.5 times real time (within the
    // server's default rate limit).
    let sessions = quiet_rooms(dir.path()).into_iter().map(|(what, wav)| async move {
        let samples = cantocap::audio::read_wav(&wav).unwrap().samples;
        let audio: Vec<u8> =
            samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect();
        let session = what.replace(' ', "-");
        let (mut ws, _) = ingest(addr, &session, json!({})).await;
        stream(&mut ws, &audio, 2.5).await;
        ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
        (what, events_until_close(&mut ws).await)
    });
    for (what, (events, code)) in futures_util::future::join_all(sessions).await {
        assert_eq!(code, 1000, "{what}");
        assert_eq!(events, Vec::<Value>::new(), "{what} was captioned");
    }
    let (_, metrics) = get(addr, "/metrics", "").await;
    for counter in ["cantocap_finals_total 0", "cantocap_partials_total 0"] {
        assert!(metrics.contains(counter), "{metrics}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_final_a_viewer_saw_and_sessions_continue_after_restart() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let audio = speech(dir.path(), &[ONE, TWO, ONE], 1500);
    let (mut child, addr) = spawn_binary(&data);

    let (mut ws, _) = ingest(addr, "crash", json!({})).await;
    let (mut view, _) = viewer(addr, "crash", "raw").await;
    let sender = tokio::spawn(async move {
        stream(&mut ws, &audio, 1.5).await;
        ws
    });
    let seen = finals_from(&mut view, 1).await;
    child.kill().unwrap(); // SIGKILL, mid-session
    child.wait().unwrap();
    let _ = sender.await;

    let (mut child, addr) = spawn_binary(&data);
    let (status, journal) =
        get(addr, "/v1/sessions/crash/transcript?format=jsonl&script=raw", "").await;
    assert_eq!(status, 200);
    // Every final the viewer saw is in the journal, word for word, and in the
    // transcript served after the restart (laid out as captions: compare words).
    let journaled = std::fs::read_to_string(data.join("crash.jsonl")).unwrap();
    // The transcript is laid out as captions, which may split a final in two: join
    // the caption texts before comparing.
    let caption_texts: Vec<String> = journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    let transcript = words(&caption_texts.join(" ")).join(" ");
    for f in &seen {
        let line =
            serde_json::to_string(&json!({"segment": f["segment"], "text": f["text"]})).unwrap();
        let (segment, text) =
            (&line[1..line.find(",\"text").unwrap()], f["text"].as_str().unwrap());
        assert!(
            journaled.contains(segment) && journaled.contains(text),
            "final {f} is not in the journal:\n{journaled}"
        );
        assert!(
            transcript.contains(&words(text).join(" ")),
            "final {text:?} is not in the transcript:\n{journal}"
        );
    }
    // Reconnecting continues the session; a dropped connection still finalizes.
    let last = seen.last().unwrap()["segment"].as_u64().unwrap();
    let (mut ws, ready) = ingest(addr, "crash", json!({})).await;
    let next_segment = ready["next_segment"].as_u64().unwrap();
    assert!(next_segment > last, "{ready}");
    let (mut view, ready) = viewer(addr, "crash", "raw").await;
    let backlog = ready["backlog"].as_u64().unwrap() as usize;
    finals_from(&mut view, backlog).await;
    stream(&mut ws, &speech(dir.path(), &[TWO], 0), 10.0).await;
    drop(ws); // no stop, no close: the connection just goes
    let after = finals_from(&mut view, 1).await;
    assert!(after[0]["segment"].as_u64().unwrap() >= next_segment);
    let (_, txt) = get(addr, "/v1/sessions/crash/transcript?format=txt&script=raw", "").await;
    assert!(txt.contains(after[0]["text"].as_str().unwrap().trim()), "{txt}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_listen_publicly_without_tokens() {
    let output = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["serve", "--listen", "0.0.0.0:0", "--model"])
        .arg(model("ggml-tiny.en.bin"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-anonymous"), "{stderr}");
    let config = ServerConfig { listen: "0.0.0.0:0".parse().unwrap(), ..Default::default() };
    assert!(Server::bind(config).await.is_err());
}
