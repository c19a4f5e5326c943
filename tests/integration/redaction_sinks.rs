//! Redaction in every sink, on real speech: `cantocap transcribe`, `cantocap live`
//! and a viewer of `cantocap serve` never get a phone number the speaker read out.
//!
//! espeak-ng reads "Please call me on nine one two three, four five six seven" and
//! the base model writes the number in digits (`Please call me on 91234567.`, and
//! partials such as `Please call me on 912.` while streaming); the tests check
//! that the model did write a number the redactor recognises (with `--redact none`)
//! before checking that no sink shows it.

// Each test has its own runtime; holding the global decode lock across awaits is the
// point (one test decodes at a time on a small machine).
#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cantocap::server::{Limits, Server, ServerConfig};
use cantocap::text::Redactor;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

const CALL: &str = "Please call me on nine one two three, four five six seven.";

fn call_wav(dir: &Path) -> PathBuf {
    let spoken = dir.join("call.wav");
    speak("en", CALL, &spoken);
    // Silence around it, so streaming ends the utterance at a pause.
    let padded = dir.join("call-padded.wav");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    sox(&[&s(&spoken), &s(&padded), "pad", "0.5", "2"]);
    padded
}

fn cantocap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(args)
        .env_remove("CANTOCAP_MODEL")
        .output()
        .expect("run cantocap")
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The longest run of ASCII digits in `text`.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

/// Nothing a redactor would still find, and no 8 digits in a row.
fn assert_clean(text: &str) {
    let left = Redactor::default().redact(text);
    assert!(left.counts.is_empty(), "personal data left in {text:?}");
    assert!(longest_digit_run(text) < 8, "a phone-length number in {text:?}");
}

#[test]
fn transcribe_redacts_a_spoken_phone_number_in_every_format() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = call_wav(dir.path());
    let (wav, model) = (wav.to_str().unwrap(), base());
    let model = model.to_str().unwrap();
    let common = ["transcribe", wav, "-l", "en", "-t", "2", "-m", model];

    let raw =
        stdout_of(&cantocap(&[&common[..], &["--format", "txt", "--redact", "none"]].concat()));
    let found = Redactor::default().redact(&raw);
    assert_eq!(found.counts.phone, 1, "the model did not write the phone number: {raw:?}");
    assert!(longest_digit_run(&raw) >= 8 || raw.contains(' '), "{raw:?}");

    let txt = stdout_of(&cantocap(&[&common[..], &["--format", "txt"]].concat()));
    assert_clean(&txt);
    assert!(txt.contains("[電話號碼]"), "{txt:?}");
    // One segment: the same text `cantocap redact` makes of the raw transcript.
    assert_eq!(txt, found.text);

    let srt =
        stdout_of(&cantocap(&[&common[..], &["--format", "srt", "--english-labels"]].concat()));
    assert_clean(&srt.replace("-->", ""));
    assert!(srt.contains("[PHONE]"), "{srt}");
    let captions = cantocap::caption::parse_srt(&srt).unwrap();
    assert!(!captions.is_empty());

    let jsonl =
        stdout_of(&cantocap(&[&common[..], &["--format", "jsonl", "--mask-keep", "4"]].concat()));
    for line in jsonl.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap_or_default();
        assert_clean(text);
    }
    assert!(jsonl.contains("****4567"), "{jsonl}");
}

#[test]
fn live_redacts_partials_and_finals_in_every_output() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = call_wav(dir.path());
    let jsonl = dir.path().join("events.jsonl");
    let srt = dir.path().join("live.srt");
    let vtt = dir.path().join("live.vtt");
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    let out = cantocap(&[
        "live",
        "--input",
        &p(&wav),
        "--speed",
        "max",
        "-l",
        "en",
        "-t",
        "2",
        "-m",
        &p(&base()),
        "--step-ms",
        "500",
        "--jsonl",
        &p(&jsonl),
        "--srt",
        &p(&srt),
        "--vtt",
        &p(&vtt),
    ]);
    let terminal = stdout_of(&out);
    assert_clean(&terminal);
    let events: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["type"] == "partial"), "{events:?}");
    for e in &events {
        assert_clean(e["text"].as_str().unwrap());
    }
    let finals: String = events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(finals.contains("[電話號碼]"), "the number was not redacted as a phone: {finals:?}");
    // Segment ids still go up by one, empty finals (text held back) included.
    let ids: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["segment"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    for file in [&srt, &vtt] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("[電話號碼]"), "{text}");
        assert_clean(&text.replace("-->", ""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_transcripts_and_metrics_get_redacted_captions() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = call_wav(dir.path());
    let samples = cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap();
    let audio: Vec<u8> =
        samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: base(),
        data_dir: Some(dir.path().join("data")),
        log: false,
        limits: Limits { max_realtime_factor: 20.0, ..Limits::default() },
        step_ms: 500,
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    config.transcribe.threads = 2;
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();

    let connect = |path: String| async move {
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.unwrap().0
    };
    let mut ingest = connect("/v1/ingest/call".into()).await;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    ingest.send(Message::text(start.to_string())).await.unwrap();
    let ready = ingest.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("\"ready\""), "{ready:?}");
    let mut viewer = connect("/v1/captions/call?script=hk".into()).await;

    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        let due = Duration::from_secs_f64(i as f64 * 0.1 / 4.0);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        ingest.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    ingest.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    // The ingest client's own copy of the events, until the close.
    let mut ingest_texts = Vec::new();
    let mut ingest_finals = 0;
    while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(120), ingest.next())
        .await
        .expect("the ingest connection went quiet")
    {
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "partial" || v["type"] == "final" {
                    ingest_texts.push(v["text"].as_str().unwrap().to_owned());
                }
                ingest_finals += usize::from(v["type"] == "final");
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    for text in &ingest_texts {
        assert_clean(text);
    }

    // The viewer: every partial and final, until the ingest's last final.
    let mut viewer_finals = Vec::new();
    while viewer_finals.len() < ingest_finals {
        let m = tokio::time::timeout(Duration::from_secs(60), viewer.next())
            .await
            .expect("the viewer went quiet");
        let Some(Ok(Message::Text(t))) = m else { break };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "partial" || v["type"] == "final" {
            let text = v["text"].as_str().unwrap().to_owned();
            assert_clean(&text);
            if v["type"] == "final" {
                viewer_finals.push(text);
            }
        }
    }
    let all = viewer_finals.join(" ");
    assert!(all.contains("[電話號碼]"), "the viewer did not get the label: {all:?}");

    // The transcript (from the journal) and the metrics.
    let transcript = http_get(addr, "/v1/sessions/call/transcript?format=txt").await;
    assert!(transcript.contains("[電話號碼]"), "{transcript}");
    assert_clean(&transcript);
    let journal = std::fs::read_to_string(dir.path().join("data").join("call.jsonl")).unwrap();
    for line in journal.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_clean(v["text"].as_str().unwrap());
    }
    assert!(journal.contains("[電話號碼]"), "{journal}");
    let metrics = http_get(addr, "/metrics").await;
    assert!(metrics.contains("cantocap_redactions_total{kind=\"phone\"} 1\n"), "{metrics}");
    server.shutdown().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}
