//! Nobody speaking gives no captions in the default mode (issue 12): pink noise at room
//! level, silence and mains hum through `transcribe` and `live` with no flags but the
//! file, so Silero VAD is found beside the default model. The built-in detector wrote
//! `我` `哋` `係` `咪。` for the pink noise. `serve` has the same test in `server.rs`.
//! Speech in the same noise is still captioned, and only where it is.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The command succeeded, and did not fall back to the built-in detector.
fn assert_ran_with_silero(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
    assert!(!stderr.contains("Silero VAD model not found"), "{what}: {stderr}");
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn default_transcribe_writes_nothing_for_noise_silence_or_hum() {
    default_models();
    let dir = tempfile::tempdir().unwrap();
    for (what, wav) in quiet_rooms(dir.path()) {
        let out = {
            let _lock = whisper_lock();
            cantocap_default().args(["transcribe", s(&wav), "--format", "txt"]).output().unwrap()
        };
        assert_ran_with_silero(&out, what);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim().is_empty(), "{what} was captioned: {text:?}");
    }
}

#[test]
fn default_live_emits_nothing_for_noise_silence_or_hum() {
    default_models();
    let dir = tempfile::tempdir().unwrap();
    for (what, wav) in quiet_rooms(dir.path()) {
        let events = dir.path().join("events.jsonl");
        let out = {
            let _lock = whisper_lock();
            cantocap_default()
                .args(["live", "--input", s(&wav), "--speed", "max", "--jsonl", s(&events)])
                .output()
                .unwrap()
        };
        assert_ran_with_silero(&out, what);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.trim().is_empty(), "{what} was captioned: {stdout:?}");
        // Not even a partial.
        assert_eq!(jsonl(&events), Vec::<Value>::new(), "{what}");
    }
}

const SPEECH: &str = "Good morning. Today we will review the quarterly budget.";

/// English speech with 3 s of the pink noise before and after it; the speech span in ms.
fn speech_in_noise(dir: &Path) -> (std::path::PathBuf, (u64, u64)) {
    let (raw, speech, padded) =
        (dir.join("raw.wav"), dir.join("speech.wav"), dir.join("padded.wav"));
    speak("en", SPEECH, &raw);
    sox(&[s(&raw), "-r", "16000", "-b", "16", s(&speech)]);
    sox(&[s(&speech), s(&padded), "pad", "3", "3"]);
    let samples = cantocap::audio::read_wav(&padded).unwrap().samples.len();
    let (noise, mixed) = (dir.join("noise.wav"), dir.join("speech-in-noise.wav"));
    let length = format!("{samples}s");
    sox(&["-R", "-n", "-r", "16000", "-c", "1", "-b", "16", s(&noise)]
        .into_iter()
        .chain(["synth", &length, "pinknoise", "vol", "0.0192"])
        .collect::<Vec<_>>());
    sox(&["-m", "-v", "1", s(&padded), "-v", "1", s(&noise), s(&mixed)]);
    let speech_ms = cantocap::audio::read_wav(&speech).unwrap().duration_ms();
    (mixed, (3000, 3000 + speech_ms))
}

/// The default voice activity detector (no --vad), with the tiny English model to
/// keep decoding quick: the base model takes minutes on a small shared machine.
#[test]
fn default_mode_still_captions_speech_in_room_noise() {
    default_models();
    let dir = tempfile::tempdir().unwrap();
    let (wav, (start, end)) = speech_in_noise(dir.path());
    let tiny = model("ggml-tiny.en.bin");
    let english = ["-m", s(&tiny), "-l", "en", "--script", "raw"];
    let _lock = whisper_lock();

    let out = cantocap_default()
        .args(["transcribe", s(&wav), "--format", "jsonl"])
        .args(english)
        .output()
        .unwrap();
    assert_ran_with_silero(&out, "transcribe");
    let captions: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events = dir.path().join("events.jsonl");
    let out = cantocap_default()
        .args(["live", "--input", s(&wav), "--speed", "max", "--jsonl", s(&events)])
        .args(english)
        .output()
        .unwrap();
    assert_ran_with_silero(&out, "live");
    let finals: Vec<Value> = jsonl(&events).into_iter().filter(|e| e["type"] == "final").collect();

    for (what, items) in [("transcribe", &captions), ("live", &finals)] {
        let text: Vec<&str> = items.iter().map(|c| c["text"].as_str().unwrap()).collect();
        let error = wer(SPEECH, &text.join(" "));
        assert!(error <= 0.25, "{what}: WER {error:.2} for the speech: {items:?}");
        // Nothing captioned over the noise after the speech. (A whole-file decode
        // dates its segment from the start of the file, so only `live`'s start times
        // say where the speech began.)
        for c in items {
            let (s, e) = (c["start_ms"].as_u64().unwrap(), c["end_ms"].as_u64().unwrap());
            assert!(e > s, "{what}: a caption spans no time: {c}");
            assert!(e <= end + 1500, "{what}: {c} after the speech ({start}..{end} ms)");
            if what == "live" {
                assert!(s + 1000 >= start, "{what}: {c} before the speech ({start}..{end} ms)");
            }
        }
    }
}
