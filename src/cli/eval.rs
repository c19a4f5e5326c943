//! `cantocap eval`: error rates, speed and latency of a model on your own recordings
//! (see `cantocap::eval`). The decoding is `transcribe`'s (offline) or the live
//! pipeline's (streaming); this file only feeds it and collects the text.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use cantocap::asr::{StreamOptions, TranscribeOptions, WhisperModel};
use cantocap::audio::AudioBuffer;
use cantocap::eval::{self, Entry, NormaliseOptions, Normaliser, Report, Settings, Utterance};
use cantocap::pipeline::{CaptionPipeline, CaptionSink};
use cantocap::text::{
    CaptionRedactor, RedactOptions, RedactionTypes, Redactor, Script, ScriptConverter,
};
use cantocap::CaptionEvent;

pub const AFTER_HELP: &str = "Example:
  $ cat recordings/manifest.tsv
  # audio (relative to this file, or absolute) <TAB> what was said
  path	text
  greeting.wav	早晨，今日天氣幾好。
  zoom.wav	我哋用 Zoom 開會，send 個 email 俾你。
  english.wav	Please send the report before Friday.
  $ cantocap eval recordings/manifest.tsv --json base.json
  $ cantocap eval recordings/manifest.tsv -m models/ggml-small-yue.bin --json small.json
  $ cantocap eval --compare base.json small.json
  $ cantocap eval recordings/manifest.tsv --streaming --pace 4x

Manifest: one utterance per line, tab-separated: `AUDIO<TAB>TEXT`, or
`ID<TAB>AUDIO<TAB>TEXT`. A header line and # comments are allowed. An AUDIO without an
extension that names no file is tried as AUDIO.wav (so `id<TAB>text` lists with ID.wav
files beside them work).

Scoring: both sides are normalised (full-width to half-width, lower case, punctuation
dropped, Chinese folded to one script: --fold), then each utterance gets the metric its
reference calls for: CER if it is Chinese (every character a token), WER if it has no
Chinese (words), MER if it mixes both (each Chinese character and each Latin word one
token). Totals are the sum of edits (substitutions + deletions + insertions) over the
sum of reference tokens, per metric and overall (mixed tokens).

RTF is decoding time over audio time. With --streaming, each recording goes through the
live engine (as `live` and `serve`) followed by --tail-ms of silence, and final latency
is measured per final: from its last audio reaching the engine to the final (wall time;
at --pace max, audio time: the engine's own delay without decoding time).

Personal data is not redacted here: references hold it too.";

/// Options of `cantocap eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The manifest: a TSV of audio paths and reference texts (see below).
    #[arg(required_unless_present = "compare", value_name = "MANIFEST")]
    manifest: Option<PathBuf>,
    /// Compare two result files written by --json: totals side by side, and the
    /// utterances whose errors differ, as Markdown.
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"], conflicts_with = "manifest")]
    compare: Vec<PathBuf>,
    /// Script the hypotheses are written in (as `transcribe`): hk, tw, cn or raw.
    #[arg(short, long, default_value = "hk")]
    script: Script,
    #[command(flatten)]
    decode: crate::DecodeArgs,
    /// Beam size (1 = greedy, fastest).
    #[arg(long, default_value_t = 1)]
    beam_size: usize,
    /// Keep what the hallucination guards would drop (credit lines, loops).
    #[arg(long)]
    no_guards: bool,
    /// Decode through the live streaming engine instead of whole files.
    #[arg(long)]
    streaming: bool,
    /// With --streaming: how fast audio is fed: realtime, a multiple such as 4x, or
    /// max (as fast as decoding goes; events then depend only on the audio).
    #[arg(long, default_value = "realtime", requires = "streaming")]
    pace: Pace,
    /// With --streaming: new audio between decodes, in ms (as `live --step-ms`).
    #[arg(long, default_value_t = 1000, requires = "streaming",
          value_parser = clap::value_parser!(u64).range(200..=10_000))]
    step_ms: u64,
    /// With --streaming: silence fed after each recording, in ms, as a pause before
    /// the next speaker: the engine ends the utterance as it would live.
    #[arg(long, default_value_t = 2000, requires = "streaming")]
    tail_ms: u64,
    /// Script both sides are folded to before scoring: cn (merges the most variants),
    /// hk, tw, or raw (no folding).
    #[arg(long, default_value = "cn")]
    fold: Script,
    /// Before scoring, write numbers in words on both sides: in English (101 → one
    /// hundred one, 21st → twenty first, 3.5 → three point five, 50% → fifty percent)
    /// and, next to Chinese characters, in Chinese (9點 → 九點, 105 → 一百零五,
    /// 2024年 → 二零二四年).
    #[arg(long)]
    spell_numbers: bool,
    /// Also write the results as JSON here (for --compare).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
}

/// What `eval` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A per-utterance table and totals.
    Markdown,
    /// The results file (as --json writes it).
    Json,
}

/// How fast recordings are fed to the streaming engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// This many times real time.
    Times(f64),
    /// As fast as decoding goes.
    Max,
}

impl std::str::FromStr for Pace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "max" => return Ok(Pace::Max),
            "realtime" | "real-time" => return Ok(Pace::Times(1.0)),
            _ => {}
        }
        match lower.strip_suffix('x').unwrap_or(&lower).parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(Pace::Times(x)),
            _ => Err(format!(
                "{s:?} is not a pace: use realtime, a multiple of real time such as 2x or 0.5x, or max"
            )),
        }
    }
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pace::Times(x) if *x == 1.0 => f.write_str("realtime"),
            Pace::Times(x) => write!(f, "{x}x"),
            Pace::Max => f.write_str("max"),
        }
    }
}

/// Audio is fed to the streaming engine in pieces this long.
const CHUNK_MS: u64 = 100;

pub fn run(args: EvalArgs) -> Result<()> {
    if let [a, b] = &args.compare[..] {
        return compare(a, b);
    }
    let manifest = args.manifest.clone().context("a manifest is needed")?;
    // Cheap checks first: a bad manifest should not wait for the model to load.
    let entries = eval::read_manifest(&manifest)?;
    let normaliser =
        Normaliser::new(NormaliseOptions { fold: args.fold, spell_numbers: args.spell_numbers })?;
    let converter = ScriptConverter::new(args.script)?;
    let (model_path, device, opts) = args.decode.resolve()?;
    let model = Arc::new(WhisperModel::load_on(&model_path, device)?);
    let opts =
        TranscribeOptions { beam_size: args.beam_size.max(1), guards: !args.no_guards, ..opts };
    if model.plan(&opts)?.cantonese_via_zh {
        eprintln!(
            "note: {} has no Cantonese (yue) token; Cantonese is decoded as zh with a Cantonese prompt",
            model_path.display()
        );
    }

    let mut extra = vec![format!("{} threads", opts.threads), format!("beam {}", opts.beam_size)];
    if args.streaming {
        extra.push(format!("step {} ms", args.step_ms));
        extra.push(format!("tail {} ms", args.tail_ms));
    }
    let settings = Settings {
        manifest: manifest.display().to_string(),
        model: model_path.display().to_string(),
        mode: if args.streaming { "streaming" } else { "offline" }.to_owned(),
        pace: if args.streaming { args.pace.to_string() } else { String::new() },
        language: opts.language.clone().unwrap_or_else(|| "default".to_owned()),
        script: args.script.to_string(),
        fold: args.fold.to_string(),
        spell_numbers: args.spell_numbers,
        extra,
    };
    let streaming = args.streaming.then_some((args.pace, args.tail_ms));
    let stream_opts =
        StreamOptions { transcribe: opts.clone(), step_ms: args.step_ms, ..Default::default() };

    let progress = io::stderr().is_terminal();
    let mut utterances = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let decoded = decode(entry, &model, &opts, &stream_opts, streaming).with_context(|| {
            format!("{} line {} ({})", manifest.display(), entry.line, entry.audio.display())
        })?;
        let hypothesis = converter.convert(&decoded.text);
        let mut u = Utterance::score(
            &normaliser,
            &entry.id,
            &entry.audio.display().to_string(),
            &entry.reference,
            &hypothesis,
        );
        u.audio_ms = decoded.audio_ms;
        u.compute_ms = decoded.compute_ms;
        u.latency_ms = decoded.latency_ms;
        if progress {
            let rate = u.edits.rate().map_or("–".to_owned(), |r| format!("{:.1}%", r * 100.0));
            eprintln!("[{}/{}] {}: {} {rate}", i + 1, entries.len(), u.id, u.metric);
        }
        utterances.push(u);
    }
    let report = Report::new(settings, utterances);

    if let Some(path) = &args.json {
        crate::write_atomically(path, |mut out| {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            out.flush()?;
            Ok(())
        })?;
    }
    let mut stdout = io::stdout().lock();
    match args.format {
        Format::Markdown => stdout.write_all(report.markdown().as_bytes())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}

/// What one recording gave.
struct Decoded {
    /// As decoded (before the script conversion).
    text: String,
    audio_ms: u64,
    compute_ms: u64,
    latency_ms: Vec<u64>,
}

fn decode(
    entry: &Entry,
    model: &Arc<WhisperModel>,
    opts: &TranscribeOptions,
    stream_opts: &StreamOptions,
    streaming: Option<(Pace, u64)>,
) -> Result<Decoded> {
    let audio = crate::read_audio(&entry.audio)?;
    if let Some((pace, tail_ms)) = streaming {
        return stream(&audio, model, stream_opts, pace, tail_ms);
    }
    // As `transcribe`: the whole file in one decode.
    let samples = audio.to_whisper_input()?;
    let started = Instant::now();
    let segments = model.transcribe(&samples, opts)?;
    Ok(Decoded {
        text: join(segments.iter().map(|s| s.text.as_str())),
        audio_ms: audio.duration_ms(),
        compute_ms: started.elapsed().as_millis() as u64,
        latency_ms: Vec::new(),
    })
}

/// Finals, as the engine made them.
struct Finals(Arc<Mutex<Vec<CaptionEvent>>>);

impl CaptionSink for Finals {
    fn event(&mut self, event: &CaptionEvent) -> cantocap::Result<()> {
        if event.is_final() {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
        }
        Ok(())
    }
}

/// The recording through the live pipeline, fed in 100 ms pieces at `pace` (a
/// decode that falls behind gets everything that arrived meanwhile in one push, as
/// `live` does), then `tail_ms` of silence.
fn stream(
    audio: &AudioBuffer,
    model: &Arc<WhisperModel>,
    opts: &StreamOptions,
    pace: Pace,
    tail_ms: u64,
) -> Result<Decoded> {
    let keep_all = RedactOptions { types: RedactionTypes::NONE, ..Default::default() };
    let redactor = CaptionRedactor::new(Redactor::new(keep_all));
    let mut pipeline = CaptionPipeline::new(
        Arc::clone(model),
        audio.sample_rate,
        audio.channels,
        opts.clone(),
        redactor,
    )?;
    let finals = Arc::new(Mutex::new(Vec::new()));
    pipeline.add_sink(Finals(Arc::clone(&finals)))?;

    let frame = usize::from(audio.channels.max(1));
    let chunk = (u64::from(audio.sample_rate) * CHUNK_MS / 1000).max(1) as usize * frame;
    let tail = (u64::from(audio.sample_rate) * tail_ms / 1000) as usize * frame;
    let mut samples = audio.samples.clone();
    samples.resize(samples.len() + tail, 0.0);
    let pieces: Vec<&[f32]> = samples.chunks(chunk).collect();

    let started = Instant::now();
    if let Pace::Times(_) = pace {
        // Paced: events carry the wall clock since the first piece.
        pipeline = pipeline.with_clock(started);
    }
    let mut next = 0;
    while next < pieces.len() {
        let upto = match pace {
            Pace::Max => next + 1,
            Pace::Times(x) => {
                let due_ms = |piece: usize| (piece as u64 * CHUNK_MS) as f64 / x;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                if due_ms(next) > elapsed {
                    std::thread::sleep(Duration::from_secs_f64((due_ms(next) - elapsed) / 1000.0));
                    continue;
                }
                // Every piece due by now.
                ((elapsed * x / CHUNK_MS as f64) as usize + 1).clamp(next + 1, pieces.len())
            }
        };
        pipeline.push(&pieces[next..upto].concat())?;
        next = upto;
    }
    let summary = pipeline.finish()?;

    let finals = std::mem::take(&mut *finals.lock().unwrap_or_else(|e| e.into_inner()));
    let latency_ms = finals
        .iter()
        .map(|f| {
            let end = f.span().1;
            let arrived = match pace {
                Pace::Times(x) => (end as f64 / x).round() as u64,
                Pace::Max => end,
            };
            f.emitted_ms().saturating_sub(arrived)
        })
        .collect();
    Ok(Decoded {
        text: join(finals.iter().map(|f| f.text())),
        audio_ms: audio.duration_ms(),
        compute_ms: summary.stats.map_or(0, |s| s.compute_ms),
        latency_ms,
    })
}

/// Pieces of text as one: a space between them, except between two non-ASCII ends
/// (Chinese characters and full-width punctuation take none).
fn join<'a>(pieces: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for piece in pieces.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let wide = |c: Option<char>| c.is_some_and(|c| !c.is_ascii());
        let both_wide = wide(out.chars().last()) && wide(piece.chars().next());
        if !out.is_empty() && !both_wide {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

fn compare(a: &Path, b: &Path) -> Result<()> {
    let read = |path: &Path| -> Result<Report> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let report: Report = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a result file of `cantocap eval --json`", path.display())
        })?;
        if report.format != eval::report::FORMAT {
            bail!(
                "{} is in result format {}; this cantocap reads format {}",
                path.display(),
                report.format,
                eval::report::FORMAT
            );
        }
        Ok(report)
    };
    let (ra, rb) = (read(a)?, read(b)?);
    let names = [a.display().to_string(), b.display().to_string()];
    let md = eval::compare(&ra, &rb, [names[0].as_str(), names[1].as_str()]);
    io::stdout().lock().write_all(md.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces() {
        assert_eq!("realtime".parse::<Pace>(), Ok(Pace::Times(1.0)));
        assert_eq!("4x".parse::<Pace>(), Ok(Pace::Times(4.0)));
        assert_eq!("0.5X".parse::<Pace>(), Ok(Pace::Times(0.5)));
        assert_eq!("2".parse::<Pace>(), Ok(Pace::Times(2.0)));
        assert_eq!("MAX".parse::<Pace>(), Ok(Pace::Max));
        for bad in ["0x", "-1", "fast", "x", "infx"] {
            let err = bad.parse::<Pace>().unwrap_err();
            assert!(err.contains("realtime"), "{bad}: {err}");
        }
        assert_eq!(Pace::Times(1.0).to_string(), "realtime");
        assert_eq!(Pace::Times(2.5).to_string(), "2.5x");
    }

    #[test]
    fn joined_text() {
        assert_eq!(
            join(["我哋今日", " 去飲茶。", "Then we", "left."]),
            "我哋今日去飲茶。 Then we left."
        );
        assert_eq!(join(["", " ", "one"]), "one");
    }
}
