//! Real-time factor of offline transcription and model import time; prints a table.
//!
//! ```sh
//! cargo bench --bench rtf            # needs the test models: models/fetch-test-model.sh
//! cargo bench --bench rtf -- --short # only the short clips
//! ```
//!
//! The clip: 60 s of English speech made by espeak-ng (several sentences with pauses).
//! Short clips: its first 2, 10 and 30 s (cut where they fall, mid-word too), each
//! decoded whole with base on 2 threads, best of 3 runs, with the text.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cantocap::asr::{TranscribeOptions, WhisperModel};
use cantocap::model::{import_ct2, Quantize};

const SENTENCES: &[&str] = &[
    "Good morning everyone, and welcome to the weekly project meeting.",
    "First, let us review the budget for the next quarter.",
    "The marketing team needs two more weeks to finish the campaign.",
    "Please send your comments to the shared folder before Friday.",
    "We will meet the client in Hong Kong at the end of the month.",
    "The new office opens in January, near the harbour.",
    "Thank you all for your hard work this year.",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// 60 s of 16 kHz mono speech with pauses between sentences.
fn clip(dir: &Path) -> Vec<f32> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < 60 * 16_000 {
        let wav = dir.join(format!("s{i}.wav"));
        let ok = Command::new("espeak-ng")
            .args(["-v", "en", "-s", "150", "-w"])
            .arg(&wav)
            .arg(SENTENCES[i % SENTENCES.len()])
            .status()
            .expect("espeak-ng is needed: apt-get install espeak-ng")
            .success();
        assert!(ok, "espeak-ng failed");
        let audio = cantocap::audio::read_wav(&wav).unwrap();
        out.extend(audio.to_whisper_input().unwrap());
        out.extend(std::iter::repeat_n(0.0, 16_000 * 4 / 5)); // 0.8 s pause
        i += 1;
    }
    out.truncate(60 * 16_000);
    out
}

/// Decode times of short clips: Whisper encodes a 30 s window whatever the audio's
/// length (issue 13: scale the encoder window to short audio).
fn short_clips(samples: &[f32]) {
    let model = WhisperModel::load(model("ggml-base.bin")).unwrap();
    let opts = TranscribeOptions { language: Some("en".into()), threads: 2, ..Default::default() };
    println!("| clip (s) | compute (s), best of 3 | text |");
    println!("|---|---|---|");
    for secs in [2, 10, 30] {
        let clip = &samples[..secs * 16_000];
        let mut best = f64::MAX;
        let mut text = String::new();
        for _ in 0..3 {
            let started = Instant::now();
            let segments = model.transcribe(clip, &opts).unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            text = segments.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join(" ");
        }
        println!("| {secs} | {best:.2} | {text} |");
    }
    println!();
}

fn model(name: &str) -> PathBuf {
    let path = root().join("models").join(name);
    assert!(path.is_file(), "{} missing: run models/fetch-test-model.sh", path.display());
    path
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: then only smoke-run.
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        println!("rtf: run with `cargo bench --bench rtf`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let samples = clip(dir.path());
    let audio_s = samples.len() as f64 / 16_000.0;
    short_clips(&samples);
    if std::env::args().any(|a| a == "--short") {
        return;
    }

    println!("| model | threads | audio (s) | compute (s) | RTF |");
    println!("|---|---|---|---|---|");
    for name in ["ggml-base.bin", "ggml-base-q8_0.bin", "ggml-tiny.en.bin"] {
        let model = WhisperModel::load(model(name)).unwrap();
        for threads in [1, 2] {
            let opts =
                TranscribeOptions { language: Some("en".into()), threads, ..Default::default() };
            let started = Instant::now();
            let segments = model.transcribe(&samples, &opts).unwrap();
            let compute = started.elapsed().as_secs_f64();
            assert!(!segments.is_empty());
            println!(
                "| {name} | {threads} | {audio_s:.0} | {compute:.2} | {:.3} |",
                compute / audio_s
            );
        }
    }

    println!();
    println!("| import | quantize | time (s) | size (MB) |");
    println!("|---|---|---|---|");
    for (ct2, q) in [
        ("whisper-base", Quantize::F16),
        ("whisper-base", Quantize::Q8_0),
        ("whisper-tiny.en", Quantize::F16),
    ] {
        let src = root().join("models/ct2").join(ct2);
        let out = dir.path().join(format!("{ct2}-{q}.bin"));
        let started = Instant::now();
        import_ct2(&src, &out, q).unwrap();
        let secs = started.elapsed().as_secs_f64();
        let mb = std::fs::metadata(&out).unwrap().len() as f64 / 1e6;
        println!("| {ct2} | {q} | {secs:.2} | {mb:.1} |");
    }
}
