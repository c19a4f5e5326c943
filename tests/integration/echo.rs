//! Prompt echoes the text-level guard cannot judge (issue 12): Whisper base, given
//! the Cantonese prompt, writes pieces of it instead of what was said (`係啱啱` for
//! `你小心啲，地下好滑。`), and some look like speech. With
//! `TranscribeOptions::echo_check` such windows are decoded again without the
//! prompt and the pieces that decode lacks go. The audio is espeak-ng's Cantonese of
//! the sentences in tests/data/recorded-base-yue-prompt.tsv, made as its header
//! says, through the real model and pipeline, with the guards on.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cantocap::asr::{StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel};
use cantocap::audio::read_wav;

use crate::common::*;

/// (spoken, what base wrote with the prompt and the guards off) as recorded.
fn recorded() -> Vec<(String, String)> {
    let path = root().join("tests/data/recorded-base-yue-prompt.tsv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(s, w)| (s.to_string(), w.to_string()))
        .collect()
}

/// The measure of the recorded test in src/asr/guards.rs: pieces of the Cantonese
/// prompt found in base's outputs, and not in what was said.
const PROMPT_PIECES: &[&str] = &["傾咗", "廣東話", "錄音", "逐字", "係啱", "喺度傾", "度傾"];

fn letters(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

fn unsaid_pieces(spoken: &str, text: &str) -> Vec<&'static str> {
    let (spoken, text) = (letters(spoken), letters(text));
    PROMPT_PIECES.iter().copied().filter(|p| text.contains(p) && !spoken.contains(p)).collect()
}

/// espeak-ng's Cantonese of `text`, as the recording's header says
/// (`espeak-ng -v yue -w N.wav "SENTENCE"`), as 16 kHz mono.
fn cantonese(text: &str, path: &Path) -> Vec<f32> {
    let status = Command::new("espeak-ng")
        .args(["-v", "yue", "-w"])
        .arg(path)
        .arg(text)
        .status()
        .expect("espeak-ng is needed for the speech tests: apt-get install espeak-ng");
    assert!(status.success(), "espeak-ng failed for {text:?}");
    read_wav(path).unwrap().to_whisper_input().unwrap()
}

/// `cantocap transcribe --language yue -t 2` with the guards on (Silero VAD, as the
/// command uses it), with or without the unprompted check.
fn opts(echo_check: bool) -> TranscribeOptions {
    TranscribeOptions {
        language: Some("yue".into()),
        threads: 2,
        vad_model: Some(model("ggml-silero-vad.bin")),
        echo_check,
        ..Default::default()
    }
}

fn text_of(model: &WhisperModel, audio: &[f32], opts: &TranscribeOptions) -> (String, Duration) {
    let started = Instant::now();
    let segments = model.transcribe(audio, opts).unwrap();
    let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
    (text, started.elapsed())
}

#[test]
fn decoding_again_without_the_prompt_removes_echoes_the_text_guard_keeps() {
    let _lock = whisper_lock();
    default_models();
    let dir = tempfile::tempdir().unwrap();
    let model = WhisperModel::load(base()).unwrap();
    let recorded = recorded();
    assert!(recorded.len() >= 30, "the recording is there");
    let (mut echoed, mut guard_alone, mut checked) = (0, 0, 0);
    let (mut time_alone, mut time_checked) = (Duration::ZERO, Duration::ZERO);
    let mut redecoded = 0;
    for (i, (spoken, written)) in recorded.iter().enumerate() {
        let audio = cantonese(spoken, &dir.path().join(format!("{}.wav", i + 1)));
        let (alone, t) = text_of(&model, &audio, &opts(false));
        time_alone += t;
        let before = model.echo_redecodes();
        let (with_check, t) = text_of(&model, &audio, &opts(true));
        time_checked += t;
        let again = model.echo_redecodes() - before;
        redecoded += again;
        let changed = if alone == with_check { "" } else { " (changed)" };
        eprintln!("{spoken}\t{alone:?} → {with_check:?}, {again} re-decode{changed}");
        if unsaid_pieces(spoken, written).is_empty() {
            // Not an echo: what the check changes is never what was said.
            for c in letters(&alone).chars().filter(|c| !letters(&with_check).contains(*c)) {
                assert!(!spoken.contains(c), "{c} was said: {alone:?} → {with_check:?}");
            }
            assert!(unsaid_pieces(spoken, &with_check).is_empty(), "{with_check:?}");
            continue;
        }
        echoed += 1;
        guard_alone += usize::from(!unsaid_pieces(spoken, &alone).is_empty());
        checked += usize::from(!unsaid_pieces(spoken, &with_check).is_empty());
    }
    eprintln!(
        "{echoed} echoing sentences; still echoing: {guard_alone} with the text guard alone, \
         {checked} with the check. Windows decoded again: {redecoded} of {}. Time: {:.1} s \
         alone, {:.1} s with the check",
        recorded.len(),
        time_alone.as_secs_f64(),
        time_checked.as_secs_f64()
    );
    assert!(echoed >= 8, "only {echoed} recorded outputs echo the prompt");
    assert!(guard_alone > 0, "the text guard alone caught every echo: nothing to compare");
    assert!(
        checked < guard_alone,
        "{checked} echoing outputs with the check, {guard_alone} without"
    );
    assert!(redecoded > 0 && redecoded < recorded.len() as u64, "{redecoded} re-decodes");
}

#[test]
fn the_live_engine_counts_its_unprompted_decodes() {
    let _lock = whisper_lock();
    default_models();
    let dir = tempfile::tempdir().unwrap();
    // Sentences whose prompted outputs held prompt pieces the text guard kept.
    let mut audio = Vec::new();
    for (i, spoken) in
        ["你講慢少少得唔得？", "你覺得點呀？", "你小心啲，地下好滑。"].iter().enumerate()
    {
        audio.extend(cantonese(spoken, &dir.path().join(format!("{i}.wav"))));
        audio.extend(std::iter::repeat_n(0.0, 16_000));
    }
    let model = Arc::new(WhisperModel::load(base()).unwrap());
    let spoken = "你講慢少少得唔得你覺得點呀你小心啲地下好滑";
    let mut echoing = Vec::new();
    for echo_check in [false, true] {
        let stream_opts = StreamOptions { transcribe: opts(echo_check), ..Default::default() };
        let mut engine = StreamingTranscriber::new(model.clone(), 16_000, 1, stream_opts).unwrap();
        let mut events = Vec::new();
        for piece in audio.chunks(1600) {
            events.extend(engine.push(piece).unwrap());
        }
        events.extend(engine.finish().unwrap());
        let finals: Vec<&str> = events.iter().filter(|e| e.is_final()).map(|e| e.text()).collect();
        let stats = engine.stats();
        eprintln!("echo check {echo_check}: finals {finals:?}, {stats:?}");
        if echo_check {
            assert!(stats.echo_redecodes > 0, "no window was checked: {stats:?}");
            assert!(stats.echo_redecodes <= stats.decodes, "{stats:?}");
        } else {
            assert_eq!(stats.echo_redecodes, 0, "{stats:?}");
        }
        echoing.push(finals.iter().filter(|t| !unsaid_pieces(spoken, t).is_empty()).count());
    }
    assert!(echoing[1] <= echoing[0], "finals echoing the prompt: {echoing:?} without/with");
}
