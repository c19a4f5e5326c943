//! Whisper on real speech, with the real test models (made by espeak-ng).

use cantocap::asr::{TranscribeOptions, WhisperModel};
use cantocap::audio::read_wav;
use cantocap::text::{Script, ScriptConverter};
use cantocap::Error;

use crate::common::*;

const ENGLISH: &str = "Captions should appear on the screen within a second. \
    Please send your comments to the shared folder before Friday.";
const MANDARIN: &str = "我们今天下午开会，讨论这个问题。请大家准时参加。";

fn english_wav(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("english.wav");
    speak("en", ENGLISH, &path);
    path
}

fn transcript(model: &WhisperModel, wav: &std::path::Path, opts: &TranscribeOptions) -> String {
    let audio = read_wav(wav).unwrap();
    let samples = audio.to_whisper_input().unwrap();
    let segments = model.transcribe(&samples, opts).unwrap();
    for pair in segments.windows(2) {
        assert!(pair[0].start_ms <= pair[1].start_ms, "segments out of order: {segments:?}");
    }
    for s in &segments {
        assert!(s.start_ms <= s.end_ms && s.end_ms <= audio.duration_ms() + 10, "bad times {s:?}");
    }
    segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
}

fn english_opts() -> TranscribeOptions {
    TranscribeOptions { language: Some("en".into()), threads: 2, ..Default::default() }
}

fn assert_english_within(model_name: &str, limit: f64) {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let model = WhisperModel::load(model(model_name)).unwrap();
    let text = transcript(&model, &wav, &english_opts());
    let wer = wer(ENGLISH, &text);
    assert!(wer <= limit, "{model_name}: WER {wer:.2} > {limit} for {text:?}");
}

#[test]
fn base_f16_transcribes_english() {
    assert_english_within("ggml-base.bin", 0.10);
}

#[test]
fn base_q8_0_transcribes_english() {
    assert_english_within("ggml-base-q8_0.bin", 0.10);
}

#[test]
fn tiny_en_transcribes_english() {
    assert_english_within("ggml-tiny.en.bin", 0.10);
}

#[test]
fn mandarin_comes_out_in_the_chosen_script() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("mandarin.wav");
    speak("cmn-latn-pinyin", MANDARIN, &wav);
    let model = WhisperModel::load(base()).unwrap();
    let opts = TranscribeOptions { language: Some("zh".into()), threads: 2, ..Default::default() };
    let raw = transcript(&model, &wav, &opts);
    let cjk = raw.chars().filter(|c| is_cjk(*c)).count();
    assert!(cjk >= 8, "expected Chinese text, got {raw:?}");

    let hk = ScriptConverter::new(Script::Hk).unwrap().convert(&raw);
    assert!(simplified_only(&hk).is_empty(), "simplified left in {hk:?} (from {raw:?})");
    let cn = ScriptConverter::new(Script::Cn).unwrap().convert(&raw);
    assert!(traditional_only(&cn).is_empty(), "traditional left in {cn:?} (from {raw:?})");
    assert_eq!(hk.chars().filter(|c| is_cjk(*c)).count(), cjk, "conversion lost characters");
}

#[test]
fn cantonese_on_base_decodes_as_zh_and_never_translates() {
    // Whisper base has no yue token: asking for Cantonese must not reach id 99
    // (<|translate|> on this model) and must give Chinese characters, not English.
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("cmn.wav");
    speak("cmn-latn-pinyin", MANDARIN, &wav);
    let model = WhisperModel::load(base()).unwrap();
    // Guards off: the Cantonese prompt makes base echo it on speech it cannot follow,
    // and the echo guard would leave nothing to look at.
    let opts = TranscribeOptions {
        threads: 2,
        guards: false,
        language: Some("yue".into()),
        ..Default::default()
    };
    let plan = model.plan(&opts).unwrap();
    assert_eq!(plan.choices[0].whisper.as_deref(), Some("zh"));
    assert!(plan.cantonese_via_zh);
    let text = transcript(&model, &wav, &opts);
    let cjk = text.chars().filter(|c| is_cjk(*c)).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    assert!(cjk >= 8 && latin < cjk, "expected Chinese, not a translation: {text:?}");
}

#[test]
fn silence_and_low_noise_produce_no_segments() {
    let _lock = whisper_lock();
    let model = WhisperModel::load(base()).unwrap();
    let opts = TranscribeOptions { threads: 2, ..Default::default() };
    let silence = vec![0.0f32; 16_000 * 20];
    let segments = model.transcribe(&silence, &opts).unwrap();
    assert!(segments.is_empty(), "silence gave {segments:?}");
    // Low white noise from a fixed generator (about -50 dBFS).
    let mut x: u32 = 12345;
    let noise: Vec<f32> = (0..16_000 * 20)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.006
        })
        .collect();
    let segments = model.transcribe(&noise, &opts).unwrap();
    assert!(segments.is_empty(), "noise gave {segments:?}");
}

#[test]
fn non_finite_and_empty_samples_are_refused() {
    let _lock = whisper_lock();
    let model = WhisperModel::load(base()).unwrap();
    let opts = TranscribeOptions::default();
    let mut samples = vec![0.1f32; 16_000];
    samples[500] = f32::NAN;
    assert!(matches!(
        model.transcribe(&samples, &opts),
        Err(Error::NonFiniteSample { index: 500, .. })
    ));
    assert!(matches!(model.transcribe(&[], &opts), Err(Error::EmptyAudio)));
}

#[test]
fn bad_model_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.bin");
    let err = WhisperModel::load(&missing).unwrap_err();
    assert!(matches!(err, Error::BadModel { .. } | Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.bin"), "{err}");

    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not a whisper model at all, just text").unwrap();
    let err = WhisperModel::load(&garbage).unwrap_err();
    assert!(matches!(err, Error::BadModel { .. }), "{err}");

    // A real model cut short.
    let truncated = dir.path().join("truncated.bin");
    let bytes = std::fs::read(base()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = WhisperModel::load(&truncated).unwrap_err();
    assert!(matches!(err, Error::BadModel { .. }), "{err}");
}
