//! `GET /v1/realtime?intent=transcription`, OpenAI's realtime transcription: the
//! official `openai` Python SDK's realtime client against the server
//! (tests/clients/openai_realtime.py), and bad events and refusals in OpenAI's
//! shapes over a raw WebSocket.

// Each test has its own runtime; holding the global decode lock across awaits is the
// point (one test decodes at a time on a small machine).
#![allow(clippy::await_holding_lock)]

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use cantocap::server::{Role, ServerConfig, TokenEntry};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::client::*;
use crate::common::*;

const ONE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const TWO: &str = "Please send your comments to the shared folder before Friday.";
const KEY: &str = "realtime-ingest-secret";

fn realtime_config(dir: &Path) -> ServerConfig {
    let mut config = config(Some(&dir.join("data")));
    config.tokens = vec![
        TokenEntry {
            name: "sdk".into(),
            token: KEY.into(),
            roles: vec![Role::Ingest, Role::View],
            ..Default::default()
        },
        TokenEntry {
            name: "viewer".into(),
            token: "realtime-view-only".into(),
            roles: vec![Role::View],
            ..Default::default()
        },
    ];
    config.limits.max_frame_bytes = 64_000;
    config
}

/// Speech as raw PCM16 mono at 24 kHz, OpenAI's default input format.
fn speech_24k(dir: &Path, name: &str, sentences: &[&str]) -> std::path::PathBuf {
    let raw16 = dir.join(format!("{name}-16k.raw"));
    std::fs::write(&raw16, speech(dir, sentences, 800)).unwrap();
    let raw24 = dir.join(format!("{name}-24k.raw"));
    let (from, to) = (raw16.to_str().unwrap(), raw24.to_str().unwrap());
    sox(&["-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", from]
        .into_iter()
        .chain(["-t", "raw", "-r", "24000", "-e", "signed", "-b", "16", "-c", "1", to])
        .collect::<Vec<_>>());
    raw24
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_realtime_client_transcribes_with_server_vad_and_its_own_turns() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let both = speech_24k(dir.path(), "both", &[ONE, TWO]);
    let one = speech_24k(dir.path(), "one", &[ONE]);
    let two = speech_24k(dir.path(), "two", &[TWO]);
    let server = start(realtime_config(dir.path())).await;
    let base_url = format!("http://{}/v1", server.local_addr());
    // ./setup.sh test installs the SDK and its realtime transport under target/py.
    let mut path = root().join("target/py").into_os_string();
    if let Some(more) = std::env::var_os("PYTHONPATH") {
        path.push(":");
        path.push(more);
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/clients/openai_realtime.py"))
        .args(["--base-url", &base_url, "--api-key", KEY, "--session", "standup"])
        .args(["--expect", &format!("{ONE} {TWO}")])
        .arg("--audio")
        .arg(&both)
        .arg("--turn-audio")
        .arg(&one)
        .args(["--turn-expect", ONE])
        .arg("--turn-audio")
        .arg(&two)
        .args(["--turn-expect", TWO])
        .env("PYTHONPATH", path);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python3 is needed for the OpenAI SDK test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OpenAI SDK realtime client failed (pip3 install --target target/py openai==3.60.0 websockets==15.0.1 if missing; ./setup.sh test does):\n{stdout}\n{stderr}"
    );
    eprint!("{stdout}");
    assert_eq!(stdout.lines().last(), Some("ok"), "{stdout}");

    // The room is an ordinary room: its transcript has the speaker's words, labelled.
    let addr = server.local_addr();
    let (status, text) = get_with(addr, "/v1/sessions/standup/transcript?format=txt", KEY).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.lines().all(|l| l.starts_with("Amy: ")), "{text}");
    let heard: String = text.lines().map(|l| &l[5..]).collect::<Vec<_>>().join(" ");
    assert!(wer(&format!("{ONE} {TWO}"), &heard) < 0.3, "{heard}");
    server.shutdown().await;
}

/// A GET with a bearer token; (status, body).
async fn get_with(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

async fn open(addr: std::net::SocketAddr, query: &str) -> Ws {
    let mut request = format!("ws://{addr}/v1/realtime?{query}").into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {KEY}").parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(request).await.unwrap().0;
    assert_eq!(next(&mut ws).await["type"], "session.created");
    ws
}

/// Send one event (or raw text) and read the answer.
async fn ask(ws: &mut Ws, message: Message) -> Value {
    ws.send(message).await.unwrap();
    next(ws).await
}

/// An OpenAI error event, checked for its shape; its `error`.
fn error_of(event: &Value) -> &Value {
    assert_eq!(event["type"], "error", "{event}");
    assert!(event["event_id"].is_string(), "{event}");
    let e = &event["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{event}");
    assert!(e["type"].is_string() && e["code"].is_string(), "{event}");
    assert!(e.get("param").is_some() && e.get("event_id").is_some(), "{event}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_realtime_events_get_openai_errors_and_the_session_goes_on() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let server = start(realtime_config(dir.path())).await;
    let addr = server.local_addr();

    // Refused before the upgrade, in OpenAI's error shape.
    let upgrade = |query: &str, token: Option<&str>| {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        format!(
            "GET /v1/realtime?{query} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    for (request, status, code) in [
        (upgrade("intent=transcription", None), "401", "invalid_api_key"),
        (upgrade("intent=transcription", Some("realtime-view-only")), "403", ""),
        (upgrade("model=gpt-realtime", Some(KEY)), "400", "invalid_value"),
        (upgrade("intent=transcription&script=klingon", Some(KEY)), "400", "invalid_value"),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(&out[9..12], status, "{out}");
        let body: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        if !code.is_empty() {
            assert_eq!(body["error"]["code"], code, "{body}");
        }
    }

    let mut ws = open(addr, "intent=transcription&session=bad-events").await;
    let e = ask(&mut ws, Message::text("{not json")).await;
    assert_eq!(error_of(&e)["code"], "invalid_json");
    let e = ask(&mut ws, Message::text(r#"{"type":"bogus.event","event_id":"ev-1"}"#)).await;
    assert_eq!(error_of(&e)["param"], "type");
    assert_eq!(error_of(&e)["event_id"], "ev-1", "the client's event is named");
    let e = ask(&mut ws, Message::binary(vec![0u8; 320])).await;
    assert_eq!(error_of(&e)["code"], "invalid_event");
    let garbage = json!({"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"});
    let e = ask(&mut ws, Message::text(garbage.to_string())).await;
    assert_eq!(error_of(&e)["param"], "audio");
    let bad_format = json!({"type": "session.update", "session": {"type": "transcription",
        "audio": {"input": {"format": {"type": "audio/opus"}}}}});
    let e = ask(&mut ws, Message::text(bad_format.to_string())).await;
    assert_eq!(error_of(&e)["param"], "session.audio.input.format.type");

    // Audio flows (silence); then odd-length PCM, an oversize chunk and a format
    // change are refused, each alone.
    let append = |bytes: &[u8]| {
        let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
        Message::text(json!({"type": "input_audio_buffer.append", "audio": audio}).to_string())
    };
    ws.send(append(&[0u8; 4800])).await.unwrap();
    let e = ask(&mut ws, append(&[0u8; 4801])).await;
    assert_eq!(error_of(&e)["param"], "audio");
    let e = ask(&mut ws, append(&vec![0u8; 64_002])).await;
    assert!(error_of(&e)["message"].as_str().unwrap().contains("64000"), "{e}");
    let to_ulaw = json!({"type": "session.update", "session": {"type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcmu"}}}}});
    let e = ask(&mut ws, Message::text(to_ulaw.to_string())).await;
    assert_eq!(error_of(&e)["param"], "session");
    // Still going: turn detection may change mid-session, and is answered.
    let manual = json!({"type": "session.update", "session": {"type": "transcription",
        "audio": {"input": {"turn_detection": null}}}});
    let updated = ask(&mut ws, Message::text(manual.to_string())).await;
    assert_eq!(updated["type"], "session.updated", "{updated}");
    assert_eq!(updated["session"]["audio"]["input"]["turn_detection"], Value::Null);
    assert_eq!(updated["session"]["audio"]["input"]["format"]["rate"], 24000);
    let cleared = ask(&mut ws, Message::text(r#"{"type":"input_audio_buffer.clear"}"#)).await;
    assert_eq!(cleared["type"], "input_audio_buffer.cleared");

    // A message far over the socket's limit ends the session with an error.
    let huge = "x".repeat(1 << 20);
    let _ = ws.send(Message::text(huge)).await;
    let mut last = next(&mut ws).await;
    if last["type"] == "error" {
        assert_eq!(error_of(&last)["code"], "frame_too_big");
        last = next(&mut ws).await;
    }
    assert_eq!(last["close"], 1009, "{last}");
    server.shutdown().await;
}
