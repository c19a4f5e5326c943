//! Silero VAD through whisper.cpp: the converted model loads, finds speech where it is
//! and not in silence or noise, and drives the streaming engine and the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cantocap::asr::{StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel};
use cantocap::audio::{read_wav, SileroVad, Vad, VadOptions};
use cantocap::model::{import_silero, read_vad_model, SileroVersion};
use cantocap::Error;

use crate::common::*;

/// The converted model made by models/fetch-test-model.sh.
fn silero() -> PathBuf {
    model("ggml-silero-vad.bin")
}

/// Silence, then each sentence followed by a pause, as 16 kHz mono; with each
/// sentence's speech span in ms (where espeak's samples are audible).
fn clip(dir: &Path, sentences: &[&str], pause_s: f32) -> (Vec<f32>, Vec<(u64, u64)>) {
    let pause = vec![0.0f32; (16_000.0 * pause_s) as usize];
    let mut audio = pause.clone();
    let mut spans = Vec::new();
    for (i, sentence) in sentences.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        speak("en", sentence, &wav);
        let speech = read_wav(&wav).unwrap().to_whisper_input().unwrap();
        let first = speech.iter().position(|s| s.abs() > 0.01).unwrap();
        let last = speech.iter().rposition(|s| s.abs() > 0.01).unwrap();
        let start = audio.len();
        spans.push(((start + first) as u64 / 16, (start + last) as u64 / 16));
        audio.extend_from_slice(&speech);
        audio.extend_from_slice(&pause);
    }
    (audio, spans)
}

const SENTENCES: [&str; 2] = [
    "Good morning everyone, and welcome to the weekly project meeting.",
    "Please send your comments to the shared folder before Friday.",
];

/// How much of `span` (ms) the segments cover, 0..1.
fn covered(span: (u64, u64), segments: &[(u64, u64)]) -> f64 {
    let inside: u64 =
        segments.iter().map(|&(s, e)| e.min(span.1).saturating_sub(s.max(span.0))).sum();
    inside as f64 / (span.1 - span.0) as f64
}

/// Deterministic white noise at `amp` peak.
fn noise(seconds: usize, amp: f32) -> Vec<f32> {
    let mut seed = 12_345u32;
    (0..16_000 * seconds)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            amp * ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

#[test]
fn the_converted_model_loads_in_whisper_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let weights = root().join("models/silero/silero_vad_16k.safetensors");
    assert!(weights.is_file(), "{} is missing: run models/fetch-test-model.sh", weights.display());
    let fresh = dir.path().join("silero.bin");
    let version = SileroVersion { major: 6, minor: 2, patch: 3 };
    let report = import_silero(&weights, &fresh, version).unwrap();
    assert_eq!(report.tensors, 15);
    assert_eq!(read_vad_model(&fresh).unwrap().version, version);

    // whisper.cpp loads both the fresh file and the set-up's, and they agree.
    let audio = noise(1, 0.1);
    let mut a = SileroVad::load(&fresh, &VadOptions::default()).unwrap();
    let mut b = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
    let (pa, pb) = (a.probabilities(&audio).unwrap(), b.probabilities(&audio).unwrap());
    assert_eq!(pa.len(), 32, "one probability per 512 samples");
    assert_eq!(pa, pb);
    assert!(pa.iter().all(|p| (0.0..=1.0).contains(p)), "{pa:?}");
}

#[test]
fn a_whisper_model_or_a_missing_file_is_refused_clearly() {
    for path in [base(), PathBuf::from("/no/such/silero.bin")] {
        let err = SileroVad::load(&path, &VadOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadVadModel { .. }), "{err}");
        let err = Vad::new(&VadOptions::default(), Some(&path)).unwrap_err();
        assert!(err.to_string().contains("Silero VAD model"), "{err}");
    }
}

#[test]
fn silero_marks_the_speech_and_not_the_silences() {
    let dir = tempfile::tempdir().unwrap();
    let (audio, spans) = clip(dir.path(), &SENTENCES, 2.5);
    let mut vad = SileroVad::load(&silero(), &VadOptions::default()).unwrap();

    // Whole-buffer segments.
    let segments = vad.speech_segments(&audio).unwrap();
    assert!(!segments.is_empty());
    for &span in &spans {
        assert!(covered(span, &segments) > 0.9, "{span:?} not covered by {segments:?}");
    }
    let near_speech = |t: u64| spans.iter().any(|&(s, e)| t + 300 >= s && t <= e + 300);
    for &(s, e) in &segments {
        assert!(near_speech(s) && near_speech(e), "segment {s}..{e} ms outside {spans:?}");
    }
    let mask = vad.speech_mask(&audio).unwrap();
    assert_eq!(mask.len(), audio.len() / 320);
    assert!(!mask[..75].iter().any(|&m| m), "the first 1.5 s are silence");

    // Streaming, in 10 ms pieces: speech inside the spans, silence well outside.
    let mut vad = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
    let (mut inside, mut inside_speech, mut outside_speech) = (0, 0, Vec::new());
    for piece in audio.chunks(160) {
        vad.push(piece).unwrap();
        let t = vad.samples_seen() / 16;
        let in_span = spans.iter().any(|&(s, e)| t >= s + 200 && t <= e);
        let far = spans.iter().all(|&(s, e)| t + 300 < s || t > e + 600);
        if in_span {
            inside += 1;
            inside_speech += usize::from(vad.in_speech());
        } else if far && vad.in_speech() {
            outside_speech.push(t);
        }
    }
    assert!(inside_speech * 10 >= inside * 9, "{inside_speech} of {inside} in speech");
    assert!(outside_speech.is_empty(), "speech in silence at {outside_speech:?} ms");
    let end = vad.last_speech_end().unwrap() / 16;
    let last = spans.last().unwrap().1;
    assert!(end + 200 >= last && end <= last + 300, "speech ended at {end}, not {last} ms");
}

#[test]
fn any_chunking_gives_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let (audio, _) = clip(dir.path(), &SENTENCES[..1], 1.0);
    let mut whole = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
    whole.push(&audio).unwrap();
    let mut pieces = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
    for piece in audio.chunks(37) {
        pieces.push(piece).unwrap();
    }
    assert!(whole.speech_chunks() > 50);
    assert_eq!(whole.speech_chunks(), pieces.speech_chunks());
    assert_eq!(whole.last_speech_end(), pieces.last_speech_end());
}

#[test]
fn thirty_seconds_of_silence_and_low_noise_hold_no_speech() {
    for (name, audio) in [("silence", vec![0.0; 16_000 * 30]), ("noise", noise(30, 0.003))] {
        let mut vad = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
        assert_eq!(vad.speech_segments(&audio).unwrap(), [], "{name}");
        vad.push(&audio).unwrap();
        assert_eq!(vad.speech_chunks(), 0, "{name}");
        assert_eq!(vad.last_speech_end(), None, "{name}");
    }
}

#[test]
fn non_finite_samples_are_refused() {
    let mut vad = SileroVad::load(&silero(), &VadOptions::default()).unwrap();
    let err = vad.push(&[0.0, f32::NAN]).unwrap_err();
    assert!(matches!(err, Error::NonFiniteSample { index: 1, .. }), "{err}");
}

#[test]
fn streaming_with_silero_gives_finals_per_utterance() {
    let dir = tempfile::tempdir().unwrap();
    let sentences = [SENTENCES[0], "The new office opens in January.", SENTENCES[1]];
    let (audio, spans) = clip(dir.path(), &sentences, 1.5);
    let opts = StreamOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            threads: 2,
            vad_model: Some(silero()),
            ..Default::default()
        },
        ..Default::default()
    };
    let _lock = whisper_lock();
    let model = Arc::new(WhisperModel::load(model("ggml-tiny.en.bin")).unwrap());
    let mut engine = StreamingTranscriber::new(model, 16_000, 1, opts).unwrap();
    let mut events = Vec::new();
    for piece in audio.chunks(1600) {
        events.extend(engine.push(piece).unwrap());
    }
    events.extend(engine.finish().unwrap());
    let finals: Vec<_> = events.iter().filter(|e| e.is_final()).collect();
    assert!(finals.len() >= 3, "{finals:?}");
    // Each utterance's end is committed before the next utterance ends (endpointing
    // works with Silero), not only at the end of the stream.
    for &(_, end) in &spans[..2] {
        assert!(
            finals.iter().any(|f| f.span().1 + 1000 >= end && f.emitted_ms() < end + 1500),
            "no final for the utterance ending at {end} ms: {finals:?}"
        );
    }
    let text: Vec<&str> = finals.iter().map(|f| f.text()).collect();
    let error = wer(&sentences.join(" "), &text.join(" "));
    assert!(error < 0.25, "WER {error:.2}: {text:?}");
}

#[test]
fn transcribe_with_vad_model_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (audio, _) = clip(dir.path(), &SENTENCES, 3.0);
    let wav = dir.path().join("clip.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).unwrap();
    for s in &audio {
        writer.write_sample((s * 32_767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    let tiny = model("ggml-tiny.en.bin");
    let cantocap = |vad_model: &Path| {
        Command::new(env!("CARGO_BIN_EXE_cantocap"))
            .arg("transcribe")
            .arg(&wav)
            .args(["-l", "en", "-t", "2", "--format", "txt", "--script", "raw", "-m"])
            .arg(&tiny)
            .arg("--vad-model")
            .arg(vad_model)
            .output()
            .unwrap()
    };

    let out = {
        let _lock = whisper_lock();
        cantocap(&silero())
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let error = wer(&SENTENCES.join(" "), &text);
    assert!(error < 0.2, "WER {error:.2}: {text}");

    // A Whisper model given as the VAD model: one clear line, before any decoding.
    let out = cantocap(&tiny);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("not a VAD model"), "{stderr}");
}
