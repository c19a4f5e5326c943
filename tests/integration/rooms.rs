//! Rooms: a session takes one ingest per participant (`speaker` in `start`), each
//! with its own engine; viewers, the journal and transcripts get every speaker's
//! finals in one sequence of ids, labelled.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::net::SocketAddr;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::*;
use crate::common::*;

const ANN_1: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const BOB: &str = "Thank you. The new release is ready for testing on Monday.";
const ANN_2: &str = "Please send your comments to the shared folder before Friday.";

/// espeak-ng speech of `text` at 16 kHz.
fn said(dir: &std::path::Path, name: &str, text: &str) -> Vec<f32> {
    let wav = dir.join(format!("{name}.wav"));
    speak("en", text, &wav);
    cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap()
}

/// s16le bytes of a track: each piece either speech or that many samples of silence.
fn track(pieces: &[Result<&[f32], usize>]) -> Vec<u8> {
    let mut samples = Vec::new();
    for piece in pieces {
        match piece {
            Ok(speech) => samples.extend_from_slice(speech),
            Err(n) => samples.extend(std::iter::repeat_n(0.0f32, *n)),
        }
    }
    samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
}

/// Every final a viewer gets until its socket closes or `n` finals have come.
async fn finals_seen(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut finals = Vec::new();
    while finals.len() < n {
        let m = next(ws).await;
        if m.get("close").is_some() {
            break;
        }
        if m["type"] == "final" {
            finals.push(m);
        }
    }
    finals
}

/// A `start` refused: the error message's code.
async fn refused(addr: SocketAddr, session: &str, speaker: &str) -> Value {
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/{session}")).await;
    let start =
        json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le","speaker":speaker});
    ws.send(Message::text(start.to_string())).await.unwrap();
    next(&mut ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_in_turn_reach_one_viewer_in_time_order_with_their_names() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ann_1, bob, ann_2) =
        (said(dir.path(), "a1", ANN_1), said(dir.path(), "b", BOB), said(dir.path(), "a2", ANN_2));
    // Taking turns, with 1.5 s between turns: each track is silent while the other
    // participant talks.
    let gap = 24_000;
    let ann = track(&[Err(gap), Ok(&ann_1), Err(gap + bob.len() + gap), Ok(&ann_2), Err(gap)]);
    let bob = track(&[Err(gap + ann_1.len() + gap), Ok(&bob), Err(gap + ann_2.len() + gap)]);

    let mut config = config(Some(&data));
    config.limits.max_speakers_per_room = 2;
    let server = start(config).await;
    let addr = server.local_addr();
    let mut ann_ws = ingest(addr, "meeting", json!({"speaker": "Ann"})).await;
    let mut bob_ws = ingest(addr, "meeting", json!({"speaker": "Bob"})).await;
    let (mut view, ready) = viewer(addr, "meeting").await;
    assert_eq!(ready["type"], "ready", "{ready}");

    // One ingest per participant, and no more participants than the room allows.
    let busy = refused(addr, "meeting", "Ann").await;
    assert_eq!(busy["code"], "session_busy", "{busy}");
    let full = refused(addr, "meeting", "Cy").await;
    assert_eq!(full["code"], "too_many_sessions", "{full}");
    assert!(full["message"].as_str().unwrap().contains("2 speakers"), "{full}");

    // Both talk at their own pace (real time, as a meeting server sends).
    let (ann_finals, bob_finals) = tokio::join!(
        async {
            stream(&mut ann_ws, &ann, 1.0).await;
            stop(&mut ann_ws).await
        },
        async {
            stream(&mut bob_ws, &bob, 1.0).await;
            stop(&mut bob_ws).await
        }
    );
    assert_eq!((ann_finals.1, bob_finals.1), (1000, 1000));
    let n = ann_finals.0.len() + bob_finals.0.len();
    let seen = finals_seen(&mut view, n).await;
    assert_eq!(seen.len(), n, "the viewer got every final: {seen:?}");

    // One sequence of ids, in time order, each final labelled with its speaker.
    let ids: Vec<u64> = seen.iter().map(|f| f["segment"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let starts: Vec<u64> = seen.iter().map(|f| f["start_ms"].as_u64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "time order: {seen:?}");
    let mut turns: Vec<&str> = seen.iter().map(|f| f["speaker"].as_str().unwrap()).collect();
    turns.dedup();
    assert_eq!(turns, ["Ann", "Bob", "Ann"], "{seen:?}");
    let spoken_by = |who: &str| {
        let texts: Vec<&str> = seen
            .iter()
            .filter(|f| f["speaker"] == who)
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        texts.join(" ")
    };
    assert!(wer(&format!("{ANN_1} {ANN_2}"), &spoken_by("Ann")) < 0.3, "{seen:?}");
    assert!(wer(BOB, &spoken_by("Bob")) < 0.3, "{seen:?}");
    // Each participant's own connection got its own finals, with the room's ids.
    assert!(ann_finals.0.iter().all(|f| f["speaker"] == "Ann"));
    assert!(bob_finals.0.iter().all(|f| f["speaker"] == "Bob"));

    // The journal keeps the speakers; transcripts label them in each format.
    let journal = std::fs::read_to_string(data.join("meeting.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), n);
    assert!(journal.lines().all(|l| l.contains(r#""speaker":"#)), "{journal}");
    let (status, vtt) = get(addr, "/v1/sessions/meeting/transcript?format=vtt").await;
    assert_eq!(status, 200);
    assert!(vtt.contains("<v Ann>") && vtt.contains("<v Bob>"), "{vtt}");
    let (_, srt) = get(addr, "/v1/sessions/meeting/transcript?format=srt").await;
    assert!(srt.contains("\nAnn: ") && srt.contains("\nBob: "), "{srt}");
    let (_, jsonl) = get(addr, "/v1/sessions/meeting/transcript?format=jsonl").await;
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut labelled: Vec<&str> = lines.iter().map(|l| l["speaker"].as_str().unwrap()).collect();
    labelled.dedup();
    assert_eq!(labelled, ["Ann", "Bob", "Ann"], "{jsonl}");

    // The overlay names the speakers with speakers=1.
    crate::overlay::chromium();
    let url = format!("http://{addr}/?session=meeting&script=raw&lines={n}&speakers=1");
    let named = |dom: &str| dom.matches(r#"<span class="speaker">"#).count() == n;
    let dom = crate::overlay::page(&url, named).await;
    assert!(named(&dom), "page:\n{dom}");
    assert!(dom.contains(r#"<span class="speaker">Bob: </span>"#), "page:\n{dom}");
    leave(view).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_labels_that_would_break_a_transcript_are_refused() {
    let server = start(config(None)).await;
    let addr = server.local_addr();
    for bad in ["", "<b>Ann</b>", "Ann\nBob", &"x".repeat(65)] {
        let error = refused(addr, "labels", bad).await;
        assert_eq!(error["code"], "bad_start", "{bad:?}: {error}");
        assert!(error["message"].as_str().unwrap().contains("speaker"), "{error}");
    }
    // A name with spaces and CJK is fine.
    let ws = ingest(addr, "labels", json!({"speaker": "陳大文 (Chair)"})).await;
    leave(ws).await;
    server.shutdown().await;
}
