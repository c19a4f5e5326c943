//! The WhisperLive protocol: a client written to collabora/WhisperLive's protocol
//! (its Python client's messages and framing) against `cantocap serve`.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::*;
use crate::common::*;

const ONE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const TWO: &str = "Please send your comments to the shared folder before Friday.";

/// 16 kHz mono speech of the sentences, with pauses.
fn samples(dir: &std::path::Path) -> Vec<f32> {
    let bytes = speech(dir, &[ONE, TWO], 1000);
    bytes.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect()
}

/// Every text message as JSON until the server closes; the close code last.
async fn until_close(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut messages = Vec::new();
    loop {
        let m = next(ws).await;
        if let Some(code) = m["close"].as_u64() {
            return (messages, code as u16);
        }
        messages.push(m);
    }
}

/// Connect as WhisperLive's client does and send its options.
async fn open(url: &str, options: Value) -> Ws {
    let mut ws = connect(url).await;
    ws.send(Message::text(options.to_string())).await.unwrap();
    ws
}

/// Stream as WhisperLive's client does: 4096-sample packets, then END_OF_AUDIO.
async fn play(ws: &mut Ws, samples: &[f32], int16: bool, speed: f64) {
    let started = std::time::Instant::now();
    for (i, packet) in samples.chunks(4096).enumerate() {
        let due = Duration::from_secs_f64(i as f64 * 4096.0 / 16_000.0 / speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let bytes: Vec<u8> = if int16 {
            packet.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
        } else {
            packet.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        ws.send(Message::binary(bytes)).await.unwrap();
    }
    ws.send(Message::binary(b"END_OF_AUDIO".to_vec())).await.unwrap();
}

/// The transcript a WhisperLive client keeps: completed segments, each once
/// (as its Python client does, by start time), then the last one shown.
fn transcript(messages: &[Value]) -> String {
    let mut kept: Vec<(f64, String)> = Vec::new();
    for m in messages {
        for s in m["segments"].as_array().into_iter().flatten() {
            let start: f64 = s["start"].as_str().unwrap().parse().unwrap();
            if s["completed"] == true && kept.last().is_none_or(|(at, _)| start > *at) {
                kept.push((start, s["text"].as_str().unwrap().to_string()));
            }
        }
    }
    kept.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whisperlive_client_gets_server_ready_its_segments_and_its_words() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = samples(dir.path());
    let mut config = config(Some(&dir.path().join("data")));
    config.whisperlive_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(config).await;
    let port = server.whisperlive_addr().expect("the WhisperLive port");

    // Float32 on the WhisperLive port, language null (detect), as its client sends.
    let options = json!({"uid": "client-1", "language": null, "task": "transcribe",
        "model": "small", "use_vad": true, "send_last_n_segments": 10,
        "no_speech_thresh": 0.45, "clip_audio": false, "same_output_threshold": 10});
    let mut ws = open(&format!("ws://{port}"), options).await;
    let ready = next(&mut ws).await;
    assert_eq!(
        ready,
        json!({"uid":"client-1","message":"SERVER_READY","backend":"faster_whisper"})
    );
    // At its own pace, as WhisperLive's client plays a file.
    play(&mut ws, &audio, false, 1.0).await;
    let (messages, code) = until_close(&mut ws).await;
    assert_eq!(code, 1000, "{messages:?}");
    assert!(messages.iter().all(|m| m["uid"] == "client-1"), "{messages:?}");
    let language =
        messages.iter().find(|m| m.get("language").is_some()).expect("a language message");
    assert_eq!(language["language"], "en", "{language}");
    assert!(language["language_prob"].as_f64().is_some_and(|p| p > 0.0 && p <= 1.0), "{language}");
    let segments: Vec<&Value> =
        messages.iter().filter_map(|m| m["segments"].as_array()).flatten().collect();
    assert!(segments.iter().any(|s| s["completed"] == false), "partials are shown in progress");
    for s in &segments {
        for key in ["start", "end"] {
            let t = s[key].as_str().expect("times are strings");
            assert!(t.split_once('.').is_some_and(|(_, ms)| ms.len() == 3), "{s}");
        }
        let (start, end): (f64, f64) = (
            s["start"].as_str().unwrap().parse().unwrap(),
            s["end"].as_str().unwrap().parse().unwrap(),
        );
        assert!(0.0 <= start && start <= end && end <= audio.len() as f64 / 16_000.0 + 0.1, "{s}");
    }
    let last = messages.iter().rev().find_map(|m| m["segments"].as_array()).unwrap();
    assert!(last.iter().all(|s| s["completed"] == true), "nothing left in progress: {last:?}");
    let heard = transcript(&messages);
    assert!(wer(&format!("{ONE} {TWO}"), &heard) < 0.3, "{heard}");

    // The room is the uid: viewers and transcripts have it, labelled with the uid.
    let (_, text) = get(addr_of(&server), "/v1/sessions/client-1/transcript?format=txt").await;
    assert!(text.lines().all(|l| l.starts_with("client-1: ")), "{text}");

    // On the main port at `/`, int16, in a room named by ?session=, two clients.
    let main = addr_of(&server);
    let url = format!("ws://{main}/?session=standup");
    let short = &audio[..audio.len() / 2];
    let mut a = open(&url, json!({"uid": "amy", "language": "en", "audio_format": "int16"})).await;
    let mut b =
        open(&url, json!({"uid": "ben", "language": "en", "send_last_n_segments": 1})).await;
    assert_eq!(next(&mut a).await["message"], "SERVER_READY");
    assert_eq!(next(&mut b).await["message"], "SERVER_READY");
    let ((a_messages, a_code), (b_messages, b_code)) = tokio::join!(
        async {
            play(&mut a, short, true, 4.0).await;
            until_close(&mut a).await
        },
        async {
            play(&mut b, short, false, 4.0).await;
            until_close(&mut b).await
        },
    );
    assert_eq!((a_code, b_code), (1000, 1000));
    assert!(a_messages.iter().all(|m| m.get("language").is_none()), "a language was given");
    assert!(wer(ONE, &transcript(&a_messages)) < 0.3, "{a_messages:?}");
    assert!(b_messages.iter().filter_map(|m| m["segments"].as_array()).all(|s| s.len() <= 2));
    let (_, jsonl) = get(main, "/v1/sessions/standup/transcript?format=jsonl").await;
    assert!(
        jsonl.contains(r#""speaker":"amy""#) && jsonl.contains(r#""speaker":"ben""#),
        "{jsonl}"
    );
    server.shutdown().await;
}

fn addr_of(server: &cantocap::server::Server) -> SocketAddr {
    server.local_addr()
}

/// The first message of a refused client, and the close code.
async fn refusal(ws: &mut Ws) -> (Value, u16) {
    let (messages, code) = until_close(ws).await;
    (messages.into_iter().next().unwrap_or_default(), code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whisperlive_clients_get_errors_in_its_shape_and_a_full_server_says_wait() {
    let mut config = config(None);
    config.limits.max_sessions = 1;
    let server = start(config).await;
    let url = format!("ws://{}/", server.local_addr());

    for (first, expect) in [
        (Message::text("{not json"), "uid"),
        (Message::text(r#"{"language":"en"}"#), "uid"),
        (Message::binary(vec![0u8; 64]), "options"),
        (Message::text(r#"{"uid":"x","task":"translate"}"#), "translate"),
        (Message::text(r#"{"uid":"x","audio_format":"mp3"}"#), "audio_format"),
        (Message::text(r#"{"uid":"../etc"}"#), "room"),
    ] {
        let mut ws = connect(&url).await;
        ws.send(first.clone()).await.unwrap();
        let (m, code) = refusal(&mut ws).await;
        assert_eq!(m["status"], "ERROR", "{first:?}: {m}");
        assert!(m["message"].as_str().unwrap().contains(expect), "{first:?}: {m}");
        assert!(code >= 1003, "{first:?}: {code}");
    }
    // After SERVER_READY: text instead of audio; a float32 frame cut mid-sample.
    for frame in [Message::text("hello"), Message::binary(vec![0u8; 4097])] {
        let mut ws = open(&url, json!({"uid": "y", "language": "en"})).await;
        assert_eq!(next(&mut ws).await["message"], "SERVER_READY");
        ws.send(frame.clone()).await.unwrap();
        let (m, _) = refusal(&mut ws).await;
        assert_eq!(
            (m["uid"].as_str(), m["status"].as_str()),
            (Some("y"), Some("ERROR")),
            "{frame:?}: {m}"
        );
    }
    // A full server: WAIT with the minutes to wait, in WhisperLive's shape.
    let mut held = open(&url, json!({"uid": "held", "language": "en"})).await;
    assert_eq!(next(&mut held).await["message"], "SERVER_READY");
    let mut ws = open(&url, json!({"uid": "late", "language": "en"})).await;
    let (m, code) = refusal(&mut ws).await;
    assert_eq!((m["uid"].as_str(), m["status"].as_str()), (Some("late"), Some("WAIT")), "{m}");
    assert!(m["message"].as_f64().is_some_and(|minutes| minutes > 0.0), "{m}");
    assert_eq!(code, 1013);
    // The held client was not disturbed.
    held.send(Message::binary(vec![0u8; 16_000])).await.unwrap();
    held.send(Message::binary(b"END_OF_AUDIO".to_vec())).await.unwrap();
    assert_eq!(until_close(&mut held).await.1, 1000);
    let _ = held.next().await;
    server.shutdown().await;
}
