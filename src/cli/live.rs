//! `cantocap live`: live captions from a microphone, or a WAV file at real-time pace.
//!
//! Threads, as in the design: the source (this thread) reads the microphone ring or
//! the file and sends chunks at their own rate; the ASR worker owns the
//! [`CaptionPipeline`] (which resamples once, decodes, redacts, converts and writes
//! to the terminal and files as events come).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use cantocap::asr::{Device, StreamOptions, TranscribeOptions, WhisperModel};
use cantocap::caption::{self, CaptionFormat, LayoutOptions};
use cantocap::pipeline::{CaptionFileSink, CaptionPipeline, JsonlSink, Summary, TerminalSink};
use cantocap::text::{CaptionRedactor, RedactOptions, Redactor, Script};

/// How fast a file is streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// This many times real time.
    Times(f64),
    /// As fast as decoding allows.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(Speed::Times(x)),
            _ => Err(format!("{s:?} is not a speed: use a number above 0 (1 = real time) or max")),
        }
    }
}

/// Everything `live` needs, from the command line.
pub struct LiveConfig {
    pub input: Option<PathBuf>,
    #[cfg_attr(not(feature = "mic"), allow(dead_code))]
    pub device: Option<String>,
    pub speed: Speed,
    pub model: PathBuf,
    /// Where the model runs (--gpu); `device` is the microphone.
    pub model_device: Device,
    pub script: Script,
    pub transcribe: TranscribeOptions,
    pub step_ms: u64,
    /// See [`StreamOptions::partial_budget`].
    pub partial_budget: f32,
    pub srt: Option<PathBuf>,
    pub vtt: Option<PathBuf>,
    pub jsonl: Option<PathBuf>,
    pub layout: LayoutOptions,
    /// Applied to every event before any sink sees it.
    pub redact: RedactOptions,
}

const CHUNK_MS: u64 = 100;

pub fn run(cfg: LiveConfig) -> Result<()> {
    // Open the source first: no device or a bad file fails before the model loads.
    enum Source {
        File(cantocap::audio::AudioBuffer),
        #[cfg(feature = "mic")]
        Mic(cantocap::audio::mic::Microphone),
    }
    let source = match &cfg.input {
        Some(path) => Source::File(crate::read_audio(path)?),
        None => {
            #[cfg(feature = "mic")]
            {
                Source::Mic(cantocap::audio::mic::Microphone::open(cfg.device.as_deref())?)
            }
            #[cfg(not(feature = "mic"))]
            anyhow::bail!("this cantocap was built without microphone support (feature `mic`); use --input FILE.wav")
        }
    };
    // The engine takes the source as it is: the pipeline resamples, once.
    let (rate, channels) = match &source {
        Source::File(audio) => (audio.sample_rate, audio.channels),
        #[cfg(feature = "mic")]
        Source::Mic(mic) => (mic.sample_rate(), mic.channels()),
    };

    let model = Arc::new(WhisperModel::load_on(&cfg.model, cfg.model_device)?);
    let opts = StreamOptions {
        transcribe: cfg.transcribe.clone(),
        step_ms: cfg.step_ms,
        partial_budget: cfg.partial_budget,
        ..Default::default()
    };
    let redactor = CaptionRedactor::new(Redactor::new(cfg.redact.clone()));
    let mut pipeline = CaptionPipeline::new(Arc::clone(&model), rate, channels, opts, redactor)?;
    if pipeline.engine().plan().cantonese_via_zh {
        eprintln!(
            "note: the model has no Cantonese (yue) token; Cantonese is decoded as zh with a Cantonese prompt"
        );
    }
    let merge = !matches!((&source, cfg.speed), (Source::File(_), Speed::Max));
    let started = Instant::now();
    if merge {
        // Live pace: events carry the wall clock.
        pipeline = pipeline.with_clock(started);
    }
    add_sinks(&mut pipeline, &cfg)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_handler(move || stop.store(true, Ordering::SeqCst));
    }

    let (tx, rx) = mpsc::channel::<Vec<f32>>();
    let worker =
        std::thread::Builder::new().name("asr".into()).spawn(move || -> Result<Summary> {
            while let Ok(mut chunk) = rx.recv() {
                if merge {
                    // Catch up: everything that arrived while decoding goes in one push.
                    while let Ok(more) = rx.try_recv() {
                        chunk.extend(more);
                    }
                }
                if let Err(e) = pipeline.push(&chunk) {
                    let _ = pipeline.abandon();
                    return Err(e.into());
                }
            }
            Ok(pipeline.finish()?)
        })?;

    match source {
        Source::File(audio) => {
            let frame = usize::from(audio.channels.max(1));
            let chunk = (audio.sample_rate as u64 * CHUNK_MS / 1000) as usize * frame;
            for (i, piece) in audio.samples.chunks(chunk.max(frame)).enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Speed::Times(x) = cfg.speed {
                    let due = Duration::from_secs_f64((i as u64 * CHUNK_MS) as f64 / 1000.0 / x);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if tx.send(piece.to_vec()).is_err() {
                    break; // the worker stopped: its error is reported below
                }
            }
        }
        #[cfg(feature = "mic")]
        Source::Mic(mut mic) => {
            eprintln!(
                "listening on {} ({} Hz, {} ch); Ctrl-C to stop",
                mic.name(),
                mic.sample_rate(),
                mic.channels()
            );
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(CHUNK_MS / 2));
                let mut raw = Vec::with_capacity(mic.sample_rate() as usize);
                if mic.read(&mut raw) == 0 {
                    continue;
                }
                if tx.send(raw).is_err() {
                    break;
                }
            }
            if mic.dropped_samples() > 0 {
                eprintln!(
                    "warning: {} samples were dropped: decoding could not keep up",
                    mic.dropped_samples()
                );
            }
        }
    }
    drop(tx);
    let summary = worker.join().map_err(|_| anyhow::anyhow!("the ASR worker crashed"))??;
    let stats = summary.stats.unwrap_or_default();
    if io::stderr().is_terminal() {
        eprintln!(
            "{} finals from {:.1} s of audio; {} decodes, {:.1} s compute (RTF {:.2})",
            summary.finals,
            stats.pushed_ms as f64 / 1000.0,
            stats.decodes,
            stats.compute_ms as f64 / 1000.0,
            stats.compute_ms as f64 / stats.pushed_ms.max(1) as f64
        );
        if !summary.redactions.is_empty() {
            eprintln!("redacted: {}", summary.redactions);
        }
    }
    Ok(())
}

/// The terminal, and the caption and JSON lines files asked for.
fn add_sinks(pipeline: &mut CaptionPipeline, cfg: &LiveConfig) -> Result<()> {
    let create = |path: &PathBuf| {
        File::create(path)
            .map(BufWriter::new)
            .with_context(|| format!("cannot create {}", path.display()))
    };
    for (path, format) in [(&cfg.srt, CaptionFormat::Srt), (&cfg.vtt, CaptionFormat::Vtt)] {
        if let Some(path) = path {
            let writer = caption::writer_for(format, create(path)?);
            pipeline.add_sink(CaptionFileSink::incremental(
                writer,
                cfg.script,
                cfg.layout.clone(),
            ))?;
        }
    }
    if let Some(path) = &cfg.jsonl {
        pipeline.add_sink(JsonlSink::new(create(path)?, cfg.script))?;
    }
    pipeline.add_sink(TerminalSink::new(io::stdout(), cfg.script, io::stdout().is_terminal()))?;
    Ok(())
}

fn ctrlc_handler(f: impl Fn() + Send + 'static) {
    let _ = ctrlc::set_handler(f);
}
