//! The streaming engine on real speech, pushed deterministically (time is the
//! audio pushed, so every run gives the same events).

use std::path::Path;
use std::sync::Arc;

use cantocap::asr::{
    CaptionEvent, StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel,
};
use cantocap::audio::read_wav;

use crate::common::*;

const UTTERANCES: &[&str] = &[
    "Good morning everyone, and welcome to the weekly project meeting.",
    "First, we will review the budget for the next quarter.",
    "The marketing team needs two more weeks to finish the campaign.",
    "Please send your comments to the shared folder before Friday.",
    "We will meet the client in Hong Kong at the end of the month.",
    "The new office opens in January, near the harbour.",
    "Thank you all for your hard work this year.",
    "Our next meeting is on Tuesday at ten in the morning.",
];

/// Several utterances separated by `pause_s` of silence, as 16 kHz mono, with the
/// end time (ms) of each utterance's audio.
fn utterances(dir: &Path, count: usize, pause_s: f32) -> (Vec<f32>, Vec<u64>, String) {
    let mut audio = vec![0.0f32; 8000];
    let mut ends = Vec::new();
    let mut text = Vec::new();
    for i in 0..count {
        let sentence = UTTERANCES[i % UTTERANCES.len()];
        let wav = dir.join(format!("u{i}.wav"));
        speak("en", sentence, &wav);
        audio.extend(read_wav(&wav).unwrap().to_whisper_input().unwrap());
        ends.push(audio.len() as u64 / 16);
        audio.extend(std::iter::repeat_n(0.0, (16_000.0 * pause_s) as usize));
        text.push(sentence);
    }
    (audio, ends, text.join(" "))
}

fn english(threads: usize) -> StreamOptions {
    StreamOptions {
        transcribe: TranscribeOptions {
            language: Some("en".into()),
            threads,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn run(
    model: &Arc<WhisperModel>,
    audio: &[f32],
    chunk: usize,
    opts: StreamOptions,
) -> (Vec<CaptionEvent>, StreamingTranscriber) {
    let mut engine = StreamingTranscriber::new(Arc::clone(model), 16_000, 1, opts).unwrap();
    let mut events = Vec::new();
    for piece in audio.chunks(chunk) {
        events.extend(engine.push(piece).unwrap());
    }
    events.extend(engine.finish().unwrap());
    (events, engine)
}

fn finals(events: &[CaptionEvent]) -> Vec<&CaptionEvent> {
    events.iter().filter(|e| e.is_final()).collect()
}

/// The invariants every event stream must keep.
fn assert_well_formed(events: &[CaptionEvent]) {
    let mut next_final = 1;
    let mut last_revision = 0;
    let mut last_emitted = 0;
    let mut last_final_end = 0;
    for e in events {
        assert!(e.emitted_ms() >= last_emitted, "emission times go back: {e:?}");
        last_emitted = e.emitted_ms();
        let (start, end) = e.span();
        assert!(start <= end, "{e:?}");
        match e {
            CaptionEvent::Final { segment, .. } => {
                assert_eq!(*segment, next_final, "finals must be numbered 1, 2, 3… once each");
                assert!(start >= last_final_end, "final overlaps the previous one: {e:?}");
                assert!(end > start, "a final spans no time: {e:?}");
                assert!(!e.text().trim().is_empty());
                last_final_end = end;
                next_final += 1;
                last_revision = 0;
            }
            CaptionEvent::Partial { segment, revision, .. } => {
                // A partial only ever revises the uncommitted tail: the next segment.
                assert_eq!(*segment, next_final, "partial for a committed segment: {e:?}");
                assert!(*revision > last_revision, "revisions must increase: {e:?}");
                assert!(start >= last_final_end, "partial reaches into committed text: {e:?}");
                last_revision = *revision;
            }
        }
    }
}

#[test]
fn a_minute_of_utterances_streams_close_to_the_offline_transcript() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let (audio, ends, reference) = utterances(dir.path(), 12, 2.0);
    assert!(audio.len() >= 60 * 16_000, "need at least 60 s, have {} s", audio.len() / 16_000);
    let model = Arc::new(WhisperModel::load(base()).unwrap());

    let opts = TranscribeOptions { language: Some("en".into()), threads: 2, ..Default::default() };
    let offline = model.transcribe(&audio, &opts).unwrap();
    let offline_text: Vec<&str> = offline.iter().map(|s| s.text.as_str()).collect();
    let offline_wer = wer(&reference, &offline_text.join(" "));

    let (events, engine) = run(&model, &audio, 1600, english(2));
    assert_well_formed(&events);
    let finals = finals(&events);
    let streamed: Vec<&str> = finals.iter().map(|e| e.text()).collect();
    let streamed_wer = wer(&reference, &streamed.join(" "));
    eprintln!("streaming WER {streamed_wer:.3}, offline {offline_wer:.3}");
    // The issue's bound: at most 5 points worse than offline. Each utterance is
    // decoded after the previous one at its endpoint (StreamOptions::context_ms);
    // without that, base loses about 7 points on espeak's voice.
    assert!(
        streamed_wer <= offline_wer + 0.05,
        "streaming WER {streamed_wer:.3} vs offline {offline_wer:.3}\nstreamed: {streamed:?}\noffline: {offline_text:?}"
    );
    assert!(finals.len() >= 4, "expected a final per utterance or so, got {streamed:?}");
    assert!(events.iter().any(|e| !e.is_final()), "expected partials too");
    // Every utterance is finalised soon after it ends (stream time, not wall time).
    let last_end = *ends.last().unwrap();
    let last_final = finals.last().unwrap();
    assert!(last_final.emitted_ms() <= last_end + 3000, "{last_final:?}");
    assert!(engine.stats().max_buffer_ms <= 21_000);
}

#[test]
fn chunk_size_does_not_matter_much() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let (audio, _, reference) = utterances(dir.path(), 3, 1.2);
    let model = Arc::new(WhisperModel::load(model("ggml-tiny.en.bin")).unwrap());
    for chunk in [160, 4410, 16_000] {
        let (events, _) = run(&model, &audio, chunk, english(2));
        assert_well_formed(&events);
        let text: Vec<&str> = finals(&events).iter().map(|e| e.text()).collect();
        let w = wer(&reference, &text.join(" "));
        assert!(w <= 0.2, "chunk {chunk}: WER {w:.2}: {text:?}");
    }
}

#[test]
fn a_minute_of_silence_or_low_noise_gives_no_events() {
    let _lock = whisper_lock();
    let model = Arc::new(WhisperModel::load(base()).unwrap());
    let silence = vec![0.0f32; 60 * 16_000];
    let (events, engine) = run(&model, &silence, 1600, english(2));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(engine.stats().decodes, 0, "silence must not be decoded");

    let mut x: u32 = 99;
    let noise: Vec<f32> = (0..60 * 16_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.01
        })
        .collect();
    let (events, _) = run(&model, &noise, 1600, StreamOptions::default());
    assert!(events.iter().all(|e| !e.is_final()), "noise gave finals: {events:?}");
    assert!(events.is_empty(), "noise gave partials: {events:?}");
}

#[test]
fn ten_minutes_keep_the_buffer_and_memory_bounded() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    // One utterance every 20 s: long enough to show growth, cheap enough to run.
    let (block, _, _) = utterances(dir.path(), 1, 15.5);
    let model = Arc::new(WhisperModel::load(model("ggml-tiny.en.bin")).unwrap());
    let opts = StreamOptions { step_ms: 2000, ..english(2) };
    let mut engine = StreamingTranscriber::new(Arc::clone(&model), 16_000, 1, opts).unwrap();
    let mut finals = 0;
    let mut pushed = 0;
    let mut rss_after_first_minute = 0;
    while pushed < 10 * 60 * 16_000 {
        for piece in block.chunks(3200) {
            finals += engine.push(piece).unwrap().iter().filter(|e| e.is_final()).count();
            pushed += piece.len();
        }
        if rss_after_first_minute == 0 && pushed >= 60 * 16_000 {
            rss_after_first_minute = rss_kib();
        }
    }
    finals += engine.finish().unwrap().iter().filter(|e| e.is_final()).count();
    let stats = engine.stats().clone();
    assert!(stats.max_buffer_ms <= 21_000, "buffer grew to {} ms", stats.max_buffer_ms);
    assert!(finals >= 20, "only {finals} finals in 10 minutes");
    // Decode cost stays flat: audio decoded per decode does not grow with time.
    let per_decode = stats.decoded_audio_ms / stats.decodes.max(1);
    assert!(per_decode <= 12_000, "{per_decode} ms decoded per decode");
    let growth = rss_kib().saturating_sub(rss_after_first_minute);
    assert!(growth < 64 * 1024, "memory grew by {growth} KiB over 9 minutes");
}

#[test]
fn stereo_44k_input_is_resampled_inside_the_engine() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("s.wav");
    speak("en", "Please send the report before Friday.", &wav);
    let stereo = dir.path().join("stereo.wav");
    sox(&[
        wav.to_str().unwrap(),
        "-r",
        "44100",
        "-c",
        "2",
        stereo.to_str().unwrap(),
        "pad",
        "0.5",
        "1.5",
    ]);
    let audio = read_wav(&stereo).unwrap();
    let model = Arc::new(WhisperModel::load(model("ggml-tiny.en.bin")).unwrap());
    let mut engine = StreamingTranscriber::new(model, 44_100, 2, english(2)).unwrap();
    let mut events = Vec::new();
    for piece in audio.samples.chunks(999) {
        events.extend(engine.push(piece).unwrap());
    }
    events.extend(engine.finish().unwrap());
    assert_well_formed(&events);
    let text: Vec<&str> = finals(&events).iter().map(|e| e.text()).collect();
    let w = wer("Please send the report before Friday.", &text.join(" "));
    assert!(w <= 0.2, "WER {w}: {text:?}");
    let (_, end) = finals(&events).last().unwrap().span();
    assert!((1500..=4000).contains(&end), "times must be in 16 kHz stream ms, got end {end}");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A server engine that waited for a decode slot gets seconds of audio at once.
/// Speech after a long silence, arriving in pieces of any size, is never lost
/// (Whisper scores such windows high on no-speech: only unsure text may be dropped
/// for that), and with pieces up to 3 s its final is timed near where it was said.
#[test]
fn speech_after_silence_arriving_in_big_pieces_is_not_lost() {
    let _lock = whisper_lock();
    let model = Arc::new(WhisperModel::load(model("ggml-tiny.en.bin")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("b.wav");
    let said = "Thank you. The new release is ready for testing on Monday.";
    speak("en", said, &wav);
    let speech = cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap();
    let mut audio = vec![0.0f32; 118_000];
    audio.extend_from_slice(&speech);
    audio.extend(std::iter::repeat_n(0.0, 108_000));
    for chunk in [16_000, 48_000, 96_000, 160_000] {
        let (events, _) = run(&model, &audio, chunk, english(2));
        assert_well_formed(&events);
        let finals = finals(&events);
        let text: Vec<&str> = finals.iter().map(|e| e.text()).collect();
        assert!(wer(said, &text.join(" ")) < 0.3, "pieces of {chunk}: {text:?}");
        if chunk <= 48_000 {
            let start = finals[0].span().0;
            // Whisper may time the first word from the window's start: the 300 ms
            // kept before the silence trim (5.7 s) at the earliest.
            assert!((5_400..=8_400).contains(&start), "pieces of {chunk}: starts at {start} ms");
        }
    }
}
