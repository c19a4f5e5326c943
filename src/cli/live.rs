//! `cantocap live`: live captions from a microphone, or a WAV file at real-time pace.
//!
//! Threads, as in the design: the source (this thread) reads the microphone ring or
//! the file, resamples to 16 kHz and sends chunks; the ASR worker owns the
//! [`StreamingTranscriber`] and turns chunks into events; events are converted to the
//! chosen script and written to the terminal and files as they come.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use cantocap::asr::{
    CaptionEvent, StreamOptions, StreamingTranscriber, TranscribeOptions, WhisperModel,
};
#[cfg(feature = "mic")]
use cantocap::audio::StreamResampler;
use cantocap::audio::WHISPER_SAMPLE_RATE;
use cantocap::caption::{self, CaptionFormat, CaptionWriter, LayoutOptions};
use cantocap::text::{
    CaptionRedactor, RedactOptions, RedactionCounts, Redactor, Script, ScriptConverter,
};

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
    pub script: Script,
    pub transcribe: TranscribeOptions,
    pub step_ms: u64,
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
        File(Vec<f32>),
        #[cfg(feature = "mic")]
        Mic(cantocap::audio::mic::Microphone),
    }
    let source = match &cfg.input {
        Some(path) => Source::File(cantocap::audio::read_wav(path)?.to_whisper_input()?),
        None => {
            #[cfg(feature = "mic")]
            {
                Source::Mic(cantocap::audio::mic::Microphone::open(cfg.device.as_deref())?)
            }
            #[cfg(not(feature = "mic"))]
            anyhow::bail!("this cantocap was built without microphone support (feature `mic`); use --input FILE.wav")
        }
    };

    let mut sinks = Sinks::open(&cfg)?;
    let model = Arc::new(WhisperModel::load(&cfg.model)?);
    let opts = StreamOptions {
        transcribe: cfg.transcribe.clone(),
        step_ms: cfg.step_ms,
        ..Default::default()
    };
    let mut engine = StreamingTranscriber::new(Arc::clone(&model), WHISPER_SAMPLE_RATE, 1, opts)?;
    if engine.plan().cantonese_via_zh {
        eprintln!(
            "note: the model has no Cantonese (yue) token; decoding as zh with a Cantonese prompt"
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_handler(move || stop.store(true, Ordering::SeqCst));
    }

    let (tx, rx) = mpsc::channel::<Vec<f32>>();
    let merge = !matches!((&source, cfg.speed), (Source::File(_), Speed::Max));
    let started = Instant::now();
    let live_clock = merge;
    let mut redactor = CaptionRedactor::new(Redactor::new(cfg.redact.clone()));
    let worker = std::thread::Builder::new().name("asr".into()).spawn(
        move || -> Result<(StreamingTranscriber, Sinks, RedactionCounts)> {
            while let Ok(mut chunk) = rx.recv() {
                if merge {
                    // Catch up: everything that arrived while decoding goes in one push.
                    while let Ok(more) = rx.try_recv() {
                        chunk.extend(more);
                    }
                }
                for event in redactor.redact_all(engine.push(&chunk)?) {
                    sinks.emit(event, live_clock.then(|| started.elapsed()))?;
                }
            }
            let mut last = redactor.redact_all(engine.finish()?);
            last.extend(redactor.finish());
            for event in last {
                sinks.emit(event, live_clock.then(|| started.elapsed()))?;
            }
            sinks.finish()?;
            Ok((engine, sinks, redactor.counts()))
        },
    )?;

    match source {
        Source::File(samples) => {
            let chunk = (WHISPER_SAMPLE_RATE as u64 * CHUNK_MS / 1000) as usize;
            for (i, piece) in samples.chunks(chunk).enumerate() {
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
            let mut resampler = StreamResampler::new(mic.sample_rate(), mic.channels())?;
            let mut raw = Vec::with_capacity(mic.sample_rate() as usize);
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(CHUNK_MS / 2));
                raw.clear();
                if mic.read(&mut raw) == 0 {
                    continue;
                }
                let mut out = Vec::with_capacity(raw.len());
                resampler.push(&raw, &mut out)?;
                if tx.send(out).is_err() {
                    break;
                }
            }
            let mut out = Vec::new();
            resampler.flush(&mut out)?;
            let _ = tx.send(out);
            if mic.dropped_samples() > 0 {
                eprintln!(
                    "warning: {} samples were dropped: decoding could not keep up",
                    mic.dropped_samples()
                );
            }
        }
    }
    drop(tx);
    let (engine, _sinks, redacted) =
        worker.join().map_err(|_| anyhow::anyhow!("the ASR worker crashed"))??;
    let stats = engine.stats();
    if io::stderr().is_terminal() {
        eprintln!(
            "{} finals from {:.1} s of audio; {} decodes, {:.1} s compute (RTF {:.2})",
            stats.finals,
            stats.pushed_ms as f64 / 1000.0,
            stats.decodes,
            stats.compute_ms as f64 / 1000.0,
            stats.compute_ms as f64 / stats.pushed_ms.max(1) as f64
        );
        if !redacted.is_empty() {
            eprintln!("redacted: {redacted}");
        }
    }
    Ok(())
}

/// Where events go: terminal, caption files, JSON lines.
struct Sinks {
    converter: ScriptConverter,
    layout: LayoutOptions,
    files: Vec<Box<dyn CaptionWriter + Send>>,
    jsonl: Option<BufWriter<File>>,
    terminal: bool,
    partial_shown: bool,
    next_index: usize,
}

impl Sinks {
    fn open(cfg: &LiveConfig) -> Result<Self> {
        let mut files = Vec::new();
        for (path, format) in [(&cfg.srt, CaptionFormat::Srt), (&cfg.vtt, CaptionFormat::Vtt)] {
            if let Some(path) = path {
                let file = File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                files.push(caption::writer_for(format, BufWriter::new(file)));
            }
        }
        let jsonl = match &cfg.jsonl {
            Some(path) => Some(BufWriter::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => None,
        };
        Ok(Self {
            converter: ScriptConverter::new(cfg.script)?,
            layout: cfg.layout.clone(),
            files,
            jsonl,
            terminal: io::stdout().is_terminal(),
            partial_shown: false,
            next_index: 1,
        })
    }

    fn emit(&mut self, mut event: CaptionEvent, wall: Option<Duration>) -> Result<()> {
        if let Some(wall) = wall {
            event.set_emitted_ms(wall.as_millis() as u64);
        }
        let text = self.converter.convert(event.text());
        *event.text_mut() = text;
        if let Some(out) = &mut self.jsonl {
            serde_json::to_writer(&mut *out, &event)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        let mut stdout = io::stdout().lock();
        match &event {
            CaptionEvent::Partial { text, .. } => {
                if self.terminal {
                    // Rewrite the partial in place, dimmed.
                    write!(stdout, "\r\x1b[2K\x1b[2m{}\x1b[0m", tail_chars(text, 60))?;
                    stdout.flush()?;
                    self.partial_shown = true;
                }
            }
            // A final whose text the redactor holds back whole (it may be the start
            // of a number): the next final carries it.
            CaptionEvent::Final { text, .. } if text.is_empty() => {}
            CaptionEvent::Final { text, start_ms, .. } => {
                if self.partial_shown {
                    write!(stdout, "\r\x1b[2K")?;
                    self.partial_shown = false;
                }
                writeln!(stdout, "[{}] {}", clock(*start_ms), text)?;
                stdout.flush()?;
                let segment = event.to_segment();
                for mut c in caption::layout(std::slice::from_ref(&segment), &self.layout) {
                    c.index = self.next_index;
                    self.next_index += 1;
                    for file in &mut self.files {
                        file.write_caption(&c)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.partial_shown {
            print!("\r\x1b[2K");
        }
        for file in &mut self.files {
            file.finish()?;
        }
        Ok(())
    }
}

fn clock(ms: u64) -> String {
    format!("{:02}:{:02}:{:02}.{}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms / 100 % 10)
}

fn tail_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}

/// Ctrl-C stops capture cleanly (finals are flushed) instead of killing the process.
fn ctrlc_handler(f: impl Fn() + Send + 'static) {
    let _ = ctrlc::set_handler(f);
}
