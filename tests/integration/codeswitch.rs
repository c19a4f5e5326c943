//! Code-switching: in the default mode (`yue+en`) each utterance is decoded in its
//! own language. English speech comes out in English, with no Cantonese prompt in
//! it; Chinese speech stays in Chinese. (Whisper base cannot write Cantonese, so
//! espeak-ng's Mandarin stands in for Chinese speech: the test is which language
//! each utterance was decoded in, not the Chinese words.)

use std::path::Path;
use std::sync::Arc;

use cantocap::asr::{StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel};
use cantocap::audio::read_wav;

use crate::common::*;

const ENGLISH: [&str; 5] = [
    "Good morning everyone, thank you for coming today.",
    "The meeting will start at three o'clock this afternoon.",
    "Please send your report to the office before Friday.",
    "We need to discuss the budget for next year.",
    "Can everyone hear me clearly on the video call?",
];
const MANDARIN: &str = "我们今天下午开会，讨论这个问题。";

/// Sentences spoken one after another with 0.8 s pauses, as 16 kHz mono.
fn spoken(dir: &Path, sentences: &[(&str, &str)]) -> Vec<f32> {
    let mut audio = Vec::new();
    for (i, (voice, text)) in sentences.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        speak(voice, text, &wav);
        audio.extend(read_wav(&wav).unwrap().to_whisper_input().unwrap());
        audio.extend(std::iter::repeat_n(0.0, 12_800));
    }
    audio
}

fn has_cjk(text: &str) -> bool {
    text.chars()
        .any(|c| ('\u{2E80}'..='\u{9FFF}').contains(&c) || ('\u{FF00}'..='\u{FFEF}').contains(&c))
}

fn opts(language: Option<&str>) -> TranscribeOptions {
    TranscribeOptions { language: language.map(str::to_string), threads: 2, ..Default::default() }
}

fn text_of(model: &WhisperModel, audio: &[f32], opts: &TranscribeOptions) -> String {
    let segments = model.transcribe(audio, opts).unwrap();
    for pair in segments.windows(2) {
        assert!(pair[0].start_ms <= pair[1].start_ms, "segments out of order: {segments:?}");
    }
    segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
}

#[test]
fn english_in_the_default_mode_is_as_good_as_asking_for_english() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = spoken(dir.path(), &ENGLISH.map(|s| ("en", s)));
    let model = WhisperModel::load(base()).unwrap();
    let reference = ENGLISH.join(" ");
    let default = text_of(&model, &audio, &opts(None));
    let english = text_of(&model, &audio, &opts(Some("en")));
    assert!(!has_cjk(&default), "Chinese in English speech: {default:?}");
    let (wer_default, wer_english) = (wer(&reference, &default), wer(&reference, &english));
    assert!(
        wer_default <= wer_english + 0.05,
        "default WER {wer_default:.3} ({default:?}) vs --language en {wer_english:.3}"
    );
}

#[test]
fn each_utterance_is_decoded_in_its_own_language() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = spoken(
        dir.path(),
        &[("en", ENGLISH[0]), ("cmn-latn-pinyin", MANDARIN), ("en", ENGLISH[3])],
    );
    let model = WhisperModel::load(base()).unwrap();
    let segments = model.transcribe(&audio, &opts(None)).unwrap();
    let first = segments.first().expect("segments");
    let last = segments.last().expect("segments");
    assert!(!has_cjk(&first.text) && wer(ENGLISH[0], &first.text) <= 0.2, "{segments:?}");
    assert!(!has_cjk(&last.text) && wer(ENGLISH[3], &last.text) <= 0.2, "{segments:?}");
    assert!(
        segments.iter().any(|s| has_cjk(&s.text)),
        "the Chinese sentence was not decoded as Chinese: {segments:?}"
    );
}

#[test]
fn the_live_engine_chooses_each_utterances_language() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = spoken(
        dir.path(),
        &[("en", ENGLISH[0]), ("cmn-latn-pinyin", MANDARIN), ("en", ENGLISH[3])],
    );
    let model = Arc::new(WhisperModel::load(base()).unwrap());
    // No prompt: with it, base's Chinese here is mostly the prompt written back,
    // which the echo guard rightly drops; the test is the language it was decoded in.
    let transcribe = TranscribeOptions { prompt: Some(String::new()), ..opts(None) };
    let stream_opts = StreamOptions { transcribe, ..Default::default() };
    let mut engine = StreamingTranscriber::new(model, 16_000, 1, stream_opts).unwrap();
    assert_eq!(engine.plan().describe(), "yue+en");
    let mut events = Vec::new();
    for piece in audio.chunks(1600) {
        events.extend(engine.push(piece).unwrap());
    }
    events.extend(engine.finish().unwrap());
    let finals: Vec<&str> = events.iter().filter(|e| e.is_final()).map(|e| e.text()).collect();
    let english: Vec<&&str> = finals.iter().filter(|t| !has_cjk(t)).collect();
    assert!(finals.iter().any(|t| has_cjk(t)), "no Chinese final: {finals:?}");
    let english_text = english.iter().map(|t| **t).collect::<Vec<_>>().join(" ");
    assert!(
        wer(&format!("{} {}", ENGLISH[0], ENGLISH[3]), &english_text) <= 0.3,
        "English finals {english_text:?} of {finals:?}"
    );
    let stats = engine.stats();
    assert!(stats.language_detections >= 3, "{stats:?}");
    assert!(stats.language_detections <= stats.decodes, "{stats:?}");
}
