//! Streaming latency, compute and accuracy at real-time pace; prints a table.
//!
//! ```sh
//! cargo bench --bench stream          # needs models/fetch-test-model.sh; takes ~6 minutes
//! cargo bench --bench stream -- --pace max   # as fast as it goes: deterministic events
//! cargo bench --bench stream -- --model base --set step_ms=1500   # try a policy
//! cargo bench --bench stream -- --model base --set partial_budget=0   # per cent; 0: off
//! cargo bench --bench stream -- --pace max --model base --show   # print the texts
//! cargo bench --bench stream -- --pace max --model base --clip-secs 40 --no-offline
//! cargo bench --bench stream -- --pace max --model /tmp/ggml-base-q5_0.bin   # any model file
//! ```
//!
//! `--model` picks the test models whose file name holds it, or names a model file.
//!
//! With `--pace max` the clip is pushed in 100 ms chunks without waiting, so the
//! events depend only on the audio: latencies are then in stream time (audio pushed
//! when the event came, minus the end of the utterance), which shows the policy's
//! own delay without the decoding time, and the figures do not move with the load
//! on the machine (compute does).
//!
//! A feeder thread sends a 2-minute multi-utterance clip (espeak-ng English, 1.5 s
//! pauses) in 100 ms chunks at real-time pace; a worker thread, like `cantocap live`,
//! pushes whatever has arrived into the engine. Latencies are wall-clock:
//! - final latency: end of an utterance's audio → the first final ending within
//!   1.2 s of it (Whisper's word times run early): the one holding its last word;
//! - partial latency: end of the newest word in a partial → that partial;
//! - flicker: characters changed between successive partials of one segment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cantocap::asr::{
    CaptionEvent, StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel,
};

const SENTENCES: &[&str] = &[
    "Good morning everyone, and welcome to the weekly project meeting.",
    "First, we will review the budget for the next quarter.",
    "The marketing team needs two more weeks to finish the campaign.",
    "Please send your comments to the shared folder before Friday.",
    "We will meet the client in Hong Kong at the end of the month.",
    "The new office opens in January, near the harbour.",
    "Thank you all for your hard work this year.",
    "Our next meeting is on Tuesday at ten in the morning.",
    "The design review has moved to Thursday afternoon.",
    "Sales in the first half of the year were better than we expected.",
    "Can everyone hear me clearly, or should I move closer to the microphone?",
    "We still need a volunteer to write the minutes for today.",
    "The server upgrade will take place over the weekend.",
    "Please remember to lock the door when you leave the office.",
    "Our customers have asked for a simpler way to pay their bills.",
    "The training course for new staff starts next Monday.",
    "I would like to thank Mary for organising the dinner last week.",
    "The report must be finished before the board meets in March.",
    "If there are no more questions, we can end the meeting here.",
    "See you all next week, and have a good day.",
];

/// The clip: each sentence spoken by espeak-ng, then 1.5 s of silence, until it is
/// `seconds` long (cycling through the sentences). With `trim`, each sentence is cut
/// to its speech (espeak's own lead-in and tail silence removed), so speech starts
/// right at the end of a pause, as people talk. Returns the audio, each utterance's
/// end (ms) and the reference text.
fn clip(dir: &Path, seconds: usize, trim: bool) -> (Vec<f32>, Vec<u64>, String) {
    let mut audio = vec![0.0f32; 8000];
    let (mut ends, mut text) = (Vec::new(), Vec::new());
    let mut i = 0;
    // Seconds 0: each sentence once.
    while if seconds == 0 { i < SENTENCES.len() } else { audio.len() < seconds * 16_000 } {
        let s = SENTENCES[i % SENTENCES.len()];
        let wav = dir.join(format!("s{i}.wav"));
        let ok = Command::new("espeak-ng")
            .args(["-v", "en", "-s", "150", "-w"])
            .arg(&wav)
            .arg(s)
            .status();
        assert!(ok.expect("espeak-ng is needed").success());
        let speech = cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap();
        audio.extend_from_slice(if trim { trimmed(&speech) } else { &speech });
        ends.push(audio.len() as u64 / 16);
        audio.extend(std::iter::repeat_n(0.0, 24_000));
        text.push(s);
        i += 1;
    }
    (audio, ends, text.join(" "))
}

/// `speech` from its first to its last sample louder than -40 dBFS.
fn trimmed(speech: &[f32]) -> &[f32] {
    let loud = |x: &f32| x.abs() > 0.01;
    let start = speech.iter().position(loud).unwrap_or(0);
    let end = speech.iter().rposition(loud).map_or(speech.len(), |i| i + 1);
    &speech[start..end.max(start)]
}

/// CPU time (user + system) this process has used so far, in ms: every thread,
/// spinning ones too. Linux only (`/proc/self/stat`, 100 ticks a second).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0)) * 10
}

/// Writes the clip as `clip.wav` (16 kHz mono), `clip.txt` (the reference) and
/// `clip.ends` (each utterance's end in ms, one a line) for `benches/peer`.
fn write_clip(dir: &Path, audio: &[f32], ends: &[u64], reference: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(dir.join("clip.wav"), spec).unwrap();
    for &x in audio {
        wav.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16).unwrap();
    }
    wav.finalize().unwrap();
    std::fs::write(dir.join("clip.txt"), format!("{reference}\n")).unwrap();
    let ends: Vec<String> = ends.iter().map(u64::to_string).collect();
    std::fs::write(dir.join("clip.ends"), ends.join("\n") + "\n").unwrap();
    println!("wrote {}/clip.wav, clip.txt, clip.ends", dir.display());
}

fn words(t: &str) -> Vec<String> {
    t.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("stream: run with `cargo bench --bench stream`");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let max_pace = args.iter().any(|a| a == "max");
    // `--set NAME=MS` overrides a StreamOptions field, for trying policies.
    let setting = |name: &str| {
        args.windows(2)
            .filter(|w| w[0] == "--set")
            .find_map(|w| w[1].strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
    };
    let only = args.windows(2).find(|w| w[0] == "--model").map(|w| w[1].clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let secs = args.windows(2).find(|w| w[0] == "--clip-secs").and_then(|w| w[1].parse().ok());
    let trim = args.iter().any(|a| a == "--trim");
    let (audio, ends, reference) = clip(dir.path(), secs.unwrap_or(0), trim);
    if let Some(out) = args.windows(2).find(|w| w[0] == "--write-clip") {
        write_clip(Path::new(&out[1]), &audio, &ends, &reference);
        return;
    }
    let audio_ms = audio.len() as u64 / 16;

    println!("clip: {:.0} s, {} utterances", audio_ms as f64 / 1000.0, ends.len());
    println!();
    println!("| model | threads | final p50 (ms) | final p90 (ms) | partial p50 (ms) | RTF | flicker (chars/partial) | WER stream | WER offline | compute stream/offline | CPU stream/offline |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let models: Vec<PathBuf> = match &only {
        Some(file) if Path::new(file).is_file() => vec![file.into()],
        _ => ["ggml-base.bin", "ggml-tiny.en.bin"]
            .into_iter()
            .filter(|name| only.as_ref().is_none_or(|m| name.contains(m.as_str())))
            .map(|name| root.join("models").join(name))
            .collect(),
    };
    for path in models {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let name = name.as_str();
        let threads = 2;
        assert!(path.is_file(), "{} missing: run models/fetch-test-model.sh", path.display());
        let model = Arc::new(WhisperModel::load(&path).unwrap());
        let transcribe =
            TranscribeOptions { language: Some("en".into()), threads, ..Default::default() };

        let started = Instant::now();
        let cpu_started = cpu_ms();
        let offline = if args.iter().any(|a| a == "--no-offline") {
            Vec::new()
        } else {
            model.transcribe(&audio, &transcribe).unwrap()
        };
        let offline_ms = started.elapsed().as_millis() as u64;
        let offline_cpu = cpu_ms() - cpu_started;
        let offline_text: Vec<String> = offline.into_iter().map(|s| s.text).collect();

        let mut transcribe = transcribe;
        if args.iter().any(|a| a == "--silero") {
            // As the `cantocap` command streams: Silero VAD.
            let vad = root.join("models/ggml-silero-vad.bin");
            assert!(vad.is_file(), "{} missing: run ./setup.sh", vad.display());
            transcribe.vad_model = Some(vad);
        }
        let mut opts = StreamOptions { transcribe, ..Default::default() };
        opts.step_ms = setting("step_ms").unwrap_or(opts.step_ms);
        opts.endpoint_ms = setting("endpoint_ms").unwrap_or(opts.endpoint_ms);
        opts.commit_after_ms = setting("commit_after_ms").unwrap_or(opts.commit_after_ms);
        opts.prompt_chars = setting("prompt_chars").map_or(opts.prompt_chars, |n| n as usize);
        opts.context_ms = setting("context_ms").unwrap_or(opts.context_ms);
        // Per cent: `--set partial_budget=25` is 0.25; 0 turns it off.
        opts.partial_budget =
            setting("partial_budget").map_or(opts.partial_budget, |p| p as f32 / 100.0);
        opts.trim_after_ms = setting("trim_after_ms").unwrap_or(opts.trim_after_ms);
        opts.max_buffer_ms = setting("max_buffer_ms").unwrap_or(opts.max_buffer_ms);
        let mut engine = StreamingTranscriber::new(Arc::clone(&model), 16_000, 1, opts).unwrap();
        let (tx, rx) = mpsc::channel::<Vec<f32>>();
        let start = Instant::now();
        let cpu_started = cpu_ms();
        let offline = Offline { text: &offline_text, ms: offline_ms, cpu_ms: offline_cpu };
        if max_pace {
            let mut events: Vec<(u64, CaptionEvent)> = Vec::new();
            for chunk in audio.chunks(1600) {
                events.extend(engine.push(chunk).unwrap().into_iter().map(|e| (e.emitted_ms(), e)));
            }
            events.extend(engine.finish().unwrap().into_iter().map(|e| (e.emitted_ms(), e)));
            let stats = engine.stats().clone();
            let cpu = cpu_ms() - cpu_started;
            report(name, threads, &events, &stats, cpu, &ends, &reference, &offline);
            continue;
        }
        let worker = std::thread::spawn(move || {
            let mut events: Vec<(u64, CaptionEvent)> = Vec::new();
            while let Ok(mut chunk) = rx.recv() {
                while let Ok(more) = rx.try_recv() {
                    chunk.extend(more);
                }
                for e in engine.push(&chunk).unwrap() {
                    events.push((start.elapsed().as_millis() as u64, e));
                }
            }
            for e in engine.finish().unwrap() {
                events.push((start.elapsed().as_millis() as u64, e));
            }
            (events, engine.stats().clone())
        });
        for (i, chunk) in audio.chunks(1600).enumerate() {
            let due = Duration::from_millis(i as u64 * 100);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            tx.send(chunk.to_vec()).unwrap();
        }
        drop(tx);
        let (events, stats) = worker.join().unwrap();
        let cpu = cpu_ms() - cpu_started;
        report(name, threads, &events, &stats, cpu, &ends, &reference, &offline);
    }
}

/// The offline decode of the clip: its text, wall time and CPU time (ms).
struct Offline<'a> {
    text: &'a [String],
    ms: u64,
    cpu_ms: u64,
}

/// Prints one table row from events stamped with their time (wall or stream, ms);
/// `cpu` is the process's CPU time while streaming.
#[allow(clippy::too_many_arguments)]
fn report(
    name: &str,
    threads: usize,
    events: &[(u64, CaptionEvent)],
    stats: &cantocap::asr::StreamStats,
    cpu: u64,
    ends: &[u64],
    reference: &str,
    offline: &Offline,
) {
    let (offline_text, offline_ms) = (offline.text, offline.ms);
    let audio_ms = stats.pushed_ms;
    let finals: Vec<&(u64, CaptionEvent)> = events.iter().filter(|(_, e)| e.is_final()).collect();
    let mut final_latency: Vec<u64> = ends
        .iter()
        .filter_map(|&end| {
            finals
                .iter()
                // Whisper's word times run early by up to a second; utterances
                // are 1.5 s apart, so a final ending within 1.2 s of the end
                // holds the utterance's last word.
                .find(|(_, e)| e.span().1 + 1200 >= end)
                .map(|(wall, _)| wall.saturating_sub(end))
        })
        .collect();
    let mut partial_latency: Vec<u64> = events
        .iter()
        .filter(|(_, e)| !e.is_final())
        .map(|(wall, e)| wall.saturating_sub(e.span().1))
        .collect();
    let (mut changed, mut partials, mut last): (usize, usize, Option<(u64, String)>) = (0, 0, None);
    for (_, e) in events {
        if let CaptionEvent::Partial { segment, text, .. } = e {
            let chars: Vec<char> = text.chars().collect();
            if let Some((seg, prev)) = &last {
                if seg == segment {
                    changed += edit_distance(&prev.chars().collect::<Vec<_>>(), &chars);
                    partials += 1;
                }
            }
            last = Some((*segment, text.clone()));
        }
    }
    let streamed: Vec<&str> = finals.iter().map(|(_, e)| e.text()).collect();
    println!(
        "| {name} | {threads} | {} | {} | {} | {:.3} | {:.1} | {:.3} | {:.3} | {:.2} | {:.2} |",
        percentile(&mut final_latency, 0.5),
        percentile(&mut final_latency, 0.9),
        percentile(&mut partial_latency, 0.5),
        stats.compute_ms as f64 / audio_ms as f64,
        changed as f64 / partials.max(1) as f64,
        wer(reference, &streamed.join(" ")),
        wer(reference, &offline_text.join(" ")),
        stats.compute_ms as f64 / offline_ms.max(1) as f64,
        cpu as f64 / offline.cpu_ms.max(1) as f64,
    );
    eprintln!(
            "{name}: {} finals for {} utterances, {} decodes ({} at endpoints, {} ms) of {} s of audio, max buffer {} ms, offline {} ms ({} ms CPU), stream {} ms ({} ms CPU)",
            finals.len(),
            ends.len(),
            stats.decodes,
            stats.endpoint_decodes,
            stats.endpoint_compute_ms,
            stats.decoded_audio_ms / 1000,
            stats.max_buffer_ms,
            offline_ms,
            offline.cpu_ms,
            stats.compute_ms,
            cpu
        );
    if std::env::args().any(|a| a == "--show") {
        eprintln!("offline:\n  {}", offline_text.join("\n  "));
        eprintln!("streamed finals:");
        for (t, e) in &finals {
            let (start, end) = e.span();
            eprintln!("  [{start}-{end} @{t}] {}", e.text());
        }
    }
}
