//! `POST /v1/audio/transcriptions`, the OpenAI-compatible file transcription: the
//! official `openai` Python SDK against the server (tests/clients/openai_files.py), and
//! the refusals in OpenAI's error shape, over raw HTTP.

// Each test has its own runtime; holding the global decode lock across awaits is the
// point (one test decodes at a time on a small machine).
#![allow(clippy::await_holding_lock)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use cantocap::server::{Limits, Role, Server, ServerConfig, TokenEntry};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const SENTENCE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const INGEST: &str = "ingest-secret-123";

fn token(name: &str, token: &str, roles: Vec<Role>, session: Option<&str>) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        token: token.into(),
        roles,
        session: session.map(str::to_string),
        ..Default::default()
    }
}

fn config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: model("ggml-tiny.en.bin"),
        log: false,
        audit_log: Some(dir.join("audit.jsonl")),
        tokens: vec![
            token("uploader", INGEST, vec![Role::Ingest], None),
            token("viewer", "view-secret-123", vec![Role::View], None),
            token("room", "room-secret-123", vec![Role::Ingest], Some("room-1")),
        ],
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

/// A multipart/form-data body of text fields and one file (when given).
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----cantocap-test-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// POST a body; (status, headers and body as text).
async fn post(
    addr: SocketAddr,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(out.len() > 12, "no answer: {out:?}");
    (out[9..12].parse().unwrap(), out)
}

/// The OpenAI error object of a response, checked for its shape.
fn openai_error(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
    let e = v["error"].clone();
    assert_eq!(e["type"], "invalid_request_error", "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e.get("param").is_some() && e["code"].is_string(), "{v}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_gets_every_response_format() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    speak("en", SENTENCE, &wav);
    // M4A, as phones and browsers record; the formats test covers the others.
    let m4a = dir.path().join("speech.m4a");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args(["-c:a", "aac"])
        .arg(&m4a)
        .status()
        .expect("ffmpeg is needed: apt-get install ffmpeg (./setup.sh does)");
    assert!(status.success());
    let not_audio = dir.path().join("notes.txt");
    std::fs::write(&not_audio, "meeting notes, not audio\n").unwrap();

    let server = start(config(dir.path())).await;
    let base_url = format!("http://{}/v1", server.local_addr());
    // ./setup.sh test installs the SDK under target/py.
    let mut path = root().join("target/py").into_os_string();
    if let Some(more) = std::env::var_os("PYTHONPATH") {
        path.push(":");
        path.push(more);
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/clients/openai_files.py"))
        .args(["--base-url", &base_url, "--api-key", INGEST, "--expect", SENTENCE])
        .arg("--audio")
        .arg(&m4a)
        .arg("--not-audio")
        .arg(&not_audio)
        .env("PYTHONPATH", path);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python3 is needed for the OpenAI SDK test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OpenAI SDK client failed (pip3 install --target target/py openai==3.60.0 if it is missing; ./setup.sh test does):\n{stdout}\n{stderr}"
    );
    assert!(stdout.lines().last() == Some("ok"), "{stdout}");
    server.shutdown().await;

    // Each transcription is in the audit log, with its format and length, never its text.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let done: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "file_transcribed")
        .collect();
    let formats: Vec<&str> = done.iter().filter_map(|r| r["detail"].as_str()).collect();
    for f in ["json", "text", "srt", "vtt", "verbose_json", "unsupported_format"] {
        assert!(formats.contains(&f), "{f} not audited: {formats:?}");
    }
    assert!(done.iter().any(|r| r["audio_s"].as_f64().is_some_and(|s| s > 2.0)), "{audit}");
    assert!(!audit.to_lowercase().contains("morning"), "caption text in the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_openais_error_shape_and_status() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    speak("en", SENTENCE, &wav);
    let wav = std::fs::read(&wav).unwrap();
    let mut config = config(dir.path());
    config.limits = Limits { max_upload_bytes: 300_000, max_upload_secs: 3, ..Limits::default() };
    let server = start(config).await;
    let addr = server.local_addr();
    let file = Some(("speech.wav", &wav[..]));

    // Authentication first: no token, a view token, a token for one session only.
    let (ct, body) = multipart(&[("model", "whisper-1")], file);
    let (status, r) = post(addr, None, &ct, &body).await;
    assert_eq!(status, 401, "{r}");
    assert_eq!(openai_error(&r)["code"], "invalid_api_key");
    assert!(r.to_lowercase().contains("www-authenticate: bearer"), "{r}");
    let (status, r) = post(addr, Some("not-a-token-at-all"), &ct, &body).await;
    assert_eq!((status, openai_error(&r)["code"].clone()), (401, "invalid_api_key".into()));
    let (status, r) = post(addr, Some("view-secret-123"), &ct, &body).await;
    assert_eq!(status, 403, "{r}");
    openai_error(&r);
    let (status, r) = post(addr, Some("room-secret-123"), &ct, &body).await;
    assert_eq!(status, 403, "{r}");
    assert!(openai_error(&r)["message"].as_str().unwrap().contains("one session"), "{r}");

    let refused = |fields: &[(&str, &str)], file: Option<(&str, &[u8])>| {
        let (ct, body) = multipart(fields, file);
        async move { post(addr, Some(INGEST), &ct, &body).await }
    };
    let expect = |(status, r): (u16, String), want: u16, code: &str, param: Option<&str>| {
        assert_eq!(status, want, "{r}");
        let e = openai_error(&r);
        assert_eq!(e["code"], code, "{r}");
        if let Some(param) = param {
            assert_eq!(e["param"], param, "{r}");
        }
        e["message"].as_str().unwrap().to_string()
    };

    expect(refused(&[("model", "whisper-1")], None).await, 400, "missing_file", Some("file"));
    let m = expect(
        refused(&[("response_format", "xml")], file).await,
        400,
        "invalid_value",
        Some("response_format"),
    );
    assert!(m.contains("verbose_json"), "{m}");
    expect(
        refused(&[("temperature", "hot")], file).await,
        400,
        "invalid_value",
        Some("temperature"),
    );
    expect(refused(&[("script", "latin")], file).await, 400, "invalid_value", Some("script"));
    expect(
        refused(&[("language", "klingon")], file).await,
        400,
        "invalid_language",
        Some("language"),
    );
    let m = expect(
        refused(&[], Some(("notes.mp3", b"meeting notes, not audio"))).await,
        400,
        "unsupported_format",
        Some("file"),
    );
    assert!(m.contains("FLAC") && m.contains("M4A"), "{m}");
    let mut corrupt = b"fLaC\0\0\0\x22".to_vec();
    corrupt.extend(std::iter::repeat_n(0xA5, 4000));
    let m =
        expect(refused(&[], Some(("a.flac", &corrupt))).await, 400, "invalid_audio", Some("file"));
    assert!(m.contains("FLAC"), "{m}");
    // espeak's sentence is about 4 s, over the 3 s limit.
    let m = expect(refused(&[], file).await, 400, "audio_too_long", Some("file"));
    assert!(m.contains("at most 3 s"), "{m}");
    // Past the limit while it is read (the body is drained so the client sees the 413).
    let big = vec![0u8; 340_000];
    expect(refused(&[], Some(("big.wav", &big))).await, 413, "file_too_large", Some("file"));
    let (status, r) = post(addr, Some(INGEST), "application/json", b"{\"file\":1}").await;
    assert_eq!(status, 400, "{r}");
    openai_error(&r);

    // Other methods: 405 with Allow: POST, in the same shape.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /v1/audio/transcriptions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {INGEST}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 405") && r.to_lowercase().contains("allow: post"), "{r}");
    openai_error(&r);

    // The server still transcribes after all that.
    let shorter = dir.path().join("short.wav");
    speak("en", "Good morning.", &shorter);
    let short = std::fs::read(&shorter).unwrap();
    let (status, r) = refused(&[("response_format", "text")], Some(("short.wav", &short))).await;
    assert_eq!(status, 200, "{r}");
    assert!(r.to_lowercase().contains("good morning"), "{r}");
    server.shutdown().await;
}
