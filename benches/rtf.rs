//! Real-time factor of offline transcription and model import time; prints a table.
//!
//! ```sh
//! cargo bench --bench rtf            # needs the test models: models/fetch-test-model.sh
//! cargo bench --bench rtf -- --short # only the short clips
//! cargo bench --bench rtf -- --quant --show   # f16, q8_0, q5_0 (with their texts)
//! cargo bench --bench rtf -- --quant # base as f16, q8_0 and q5_0: speed and WER
//! ```
//!
//! The clip: 60 s of English speech made by espeak-ng (several sentences with pauses).
//! Short clips: its first 2, 10 and 30 s (cut where they fall, mid-word too), each
//! decoded whole with base on 2 threads with the full 30 s encoder window and with
//! the one scaled to the audio, best of 3 runs; then 50 clips of 2–27 s cut every
//! 1.7 s, counting the words the scaled window changes (`--show` prints them).
//!
//! `--quant` imports base from its CTranslate2 folder as f16, q8_0 and q5_0 and, on the
//! clip cut after its last whole sentence, measures each offline (2 threads, best of 3,
//! and the WER) and streamed at `--pace max` (100 ms chunks pushed without waiting, so
//! the text depends only on the audio; compute is the engine's decode time). Each row
//! shows the 1-minute load average before its timings: compare rows taken on a quiet
//! machine only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cantocap::asr::whisper::{whole_audio_ctx, DecodeRequest};
use cantocap::asr::{StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel};
use cantocap::eval::{score, Metric, NormaliseOptions, Normaliser};
use cantocap::model::{import_ct2, Quantize};
use cantocap::text::Script;

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

/// 60 s of 16 kHz mono speech with pauses between sentences, and the sentences that
/// end within it, each with the length of the clip up to its pause's end.
fn clip(dir: &Path) -> (Vec<f32>, Vec<(usize, &'static str)>) {
    let mut out = Vec::new();
    let mut spoken = Vec::new();
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
        spoken.push((out.len(), SENTENCES[i % SENTENCES.len()]));
        i += 1;
    }
    out.truncate(60 * 16_000);
    spoken.retain(|&(end, _)| end <= out.len());
    (out, spoken)
}

/// Short clips (issue 13, item 4): a decode of audio under 30 s encodes only the
/// frames it needs ([`whole_audio_ctx`]) instead of Whisper's full 30 s window.
/// Prints the decode times of the first 2, 10 and 30 s of the clip both ways (best of
/// 3), then a sweep of clips cut at many points (mid-word too) with the words the
/// scaled window changes against the full one.
fn short_clips(samples: &[f32], spoken: &[(usize, &str)]) {
    let model = WhisperModel::load(model("ggml-base.bin")).unwrap();
    // Greedy without temperature fallback: the fallback samples at random, so the
    // same clip can decode differently twice and the two windows would differ by
    // chance alone.
    let opts = TranscribeOptions {
        language: Some("en".into()),
        threads: 2,
        temperature_fallback: false,
        ..Default::default()
    };
    let mut state = model.new_state().unwrap();
    let mut decode = |clip: &[f32], audio_ctx: i32| {
        let request = DecodeRequest { language: Some("en"), audio_ctx, ..Default::default() };
        let started = Instant::now();
        let (kept, _) = model.decode_kept(&mut state, clip, &opts, &request, "").unwrap();
        let text = kept.iter().map(|d| d.segment.text.trim()).collect::<Vec<_>>().join(" ");
        (started.elapsed().as_secs_f64(), text)
    };
    let normaliser = Normaliser::new(NormaliseOptions { fold: Script::Raw, ..Default::default() })
        .expect("a normaliser without a script fold needs no dictionaries");
    let show = std::env::args().any(|a| a == "--show");

    println!(
        "base, 2 threads; each clip decoded with the full 30 s window and with the scaled one"
    );
    println!();
    println!("| clip (s) | full window (s), best of 3 | scaled window (s), best of 3 | audio_ctx | same words | text (scaled) |");
    println!("|---|---|---|---|---|---|");
    for secs in [2, 10, 30] {
        let clip = &samples[..secs * 16_000];
        let ctx = whole_audio_ctx(clip.len());
        let (mut full_s, mut scaled_s) = (f64::MAX, f64::MAX);
        let (mut full, mut scaled) = (String::new(), String::new());
        for _ in 0..3 {
            let (t, text) = decode(clip, 0);
            (full_s, full) = (full_s.min(t), text);
            let (t, text) = decode(clip, ctx);
            (scaled_s, scaled) = (scaled_s.min(t), text);
        }
        let same = normaliser.tokens(&full) == normaliser.tokens(&scaled);
        println!("| {secs} | {full_s:.2} | {scaled_s:.2} | {ctx} | {same} | {scaled} |");
    }
    println!();

    // Cut points 1.7 s apart: they fall mid-word, mid-pause, anywhere.
    let (mut words, mut edits, mut clips, mut differ) = (0u64, 0u64, 0, 0);
    let (mut full_total, mut scaled_total) = (0.0, 0.0);
    for secs in [2.0, 3.0, 5.0, 8.0, 12.0] {
        for k in 0..8 {
            let from = (k as f64 * 1.7 * 16_000.0) as usize;
            let to = from + (secs * 16_000.0) as usize;
            let Some(clip) = samples.get(from..to) else { continue };
            let (full_s, full) = decode(clip, 0);
            let (scaled_s, scaled) = decode(clip, whole_audio_ctx(clip.len()));
            let (a, b) = (normaliser.tokens(&full), normaliser.tokens(&scaled));
            let e = score(Metric::Wer, &a, &b);
            words += a.len() as u64;
            edits += e.errors();
            clips += 1;
            differ += usize::from(a != b);
            full_total += full_s;
            scaled_total += scaled_s;
            if show && a != b {
                println!(
                    "{secs} s from {:.1} s:\n  full:   {full}\n  scaled: {scaled}",
                    from as f64 / 16_000.0
                );
            }
        }
    }
    println!("| clips (2–12 s, cut every 1.7 s) | words (full window) | words changed by the scaled window | clips that differ | compute full (s) | compute scaled (s) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {clips} | {words} | {edits} ({:.1} %) | {differ} | {full_total:.1} | {scaled_total:.1} |",
        100.0 * edits as f64 / words.max(1) as f64
    );
    println!();

    // Clips as files come: whole sentences (1 to 3, each with its pause), scored
    // against what was said.
    let (mut words, mut full_errors, mut scaled_errors, mut clips) = (0u64, 0u64, 0u64, 0);
    let (mut full_total, mut scaled_total) = (0.0, 0.0);
    for k in 1..=3 {
        for i in 0..spoken.len().saturating_sub(k - 1) {
            let from = if i == 0 { 0 } else { spoken[i - 1].0 };
            let clip = &samples[from..spoken[i + k - 1].0];
            let said: Vec<&str> = spoken[i..i + k].iter().map(|(_, s)| *s).collect();
            let reference = normaliser.tokens(&said.join(" "));
            let (full_s, full) = decode(clip, 0);
            let (scaled_s, scaled) = decode(clip, whole_audio_ctx(clip.len()));
            words += reference.len() as u64;
            full_errors += score(Metric::Wer, &reference, &normaliser.tokens(&full)).errors();
            scaled_errors += score(Metric::Wer, &reference, &normaliser.tokens(&scaled)).errors();
            clips += 1;
            full_total += full_s;
            scaled_total += scaled_s;
            if show && full != scaled {
                println!("{k} sentences from {i}:\n  full:   {full}\n  scaled: {scaled}");
            }
        }
    }
    println!("| whole-sentence clips (1–3 sentences) | words said | WER full window | WER scaled window | compute full (s) | compute scaled (s) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {clips} | {words} | {:.1} % | {:.1} % | {full_total:.1} | {scaled_total:.1} |",
        100.0 * full_errors as f64 / words.max(1) as f64,
        100.0 * scaled_errors as f64 / words.max(1) as f64
    );
    println!();
}

/// Speed and accuracy of base as f16, q8_0 and q5_0, offline and streamed (`--quant`).
fn quantizations(dir: &Path, samples: &[f32], spoken: &[(usize, &str)]) {
    let (end, _) = *spoken.last().expect("the clip holds whole sentences");
    let samples = &samples[..end];
    let audio_s = samples.len() as f64 / 16_000.0;
    let reference = spoken.iter().map(|(_, s)| *s).collect::<Vec<_>>().join(" ");
    let normaliser = Normaliser::new(NormaliseOptions { fold: Script::Raw, ..Default::default() })
        .expect("a normaliser without a script fold needs no dictionaries");
    let wer = |text: &str| {
        let edits = score(Metric::Wer, &normaliser.tokens(&reference), &normaliser.tokens(text));
        100.0 * edits.rate().unwrap_or(0.0)
    };
    let opts = TranscribeOptions { language: Some("en".into()), threads: 2, ..Default::default() };

    println!("base, 2 threads, {audio_s:.1} s clip of {} sentences", spoken.len());
    println!();
    println!("| weights | size (MB) | offline compute (s) | offline RTF | offline WER (%) | stream compute (s) | stream RTF | stream WER (%) | load before |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for q in [Quantize::F16, Quantize::Q8_0, Quantize::Q5_0] {
        let path = dir.join(format!("ggml-base-{q}.bin"));
        import_ct2(&root().join("models/ct2/whisper-base"), &path, q).unwrap();
        let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let model = Arc::new(WhisperModel::load(&path).unwrap());
        let load = load_average();

        let mut best = f64::MAX;
        let mut offline = String::new();
        for _ in 0..3 {
            let started = Instant::now();
            let segments = model.transcribe(samples, &opts).unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            offline = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        }

        let stream_opts = StreamOptions { transcribe: opts.clone(), ..Default::default() };
        let mut engine = StreamingTranscriber::new(model, 16_000, 1, stream_opts).unwrap();
        let mut events = Vec::new();
        for chunk in samples.chunks(1600) {
            events.extend(engine.push(chunk).unwrap());
        }
        events.extend(engine.finish().unwrap());
        let streamed: Vec<&str> =
            events.iter().filter(|e| e.is_final()).map(|e| e.text()).collect();
        let stream_s = engine.stats().compute_ms as f64 / 1000.0;
        println!(
            "| {q} | {mb:.1} | {best:.2} | {:.3} | {:.1} | {stream_s:.2} | {:.3} | {:.1} | {load} |",
            best / audio_s,
            wer(&offline),
            stream_s / audio_s,
            wer(&streamed.join(" ")),
        );
        if std::env::args().any(|a| a == "--show") {
            println!("{q} offline: {offline}\n{q} streamed: {}", streamed.join(" "));
        }
    }
}

/// The 1-minute load average, as `uptime` shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
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
    let (samples, spoken) = clip(dir.path());
    if std::env::args().any(|a| a == "--quant") {
        quantizations(dir.path(), &samples, &spoken);
        return;
    }
    let audio_s = samples.len() as f64 / 16_000.0;
    short_clips(&samples, &spoken);
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
