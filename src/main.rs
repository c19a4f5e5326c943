//! The `cantocap` command: CLI definition and glue over the library.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use cantocap::asr::{Device, TranscribeOptions, WhisperModel};
use cantocap::caption::{self, CaptionFormat, LayoutOptions};
use cantocap::model::{self, Quantize};
use cantocap::pipeline::{CaptionFileSink, Output, Summary};
use cantocap::text::{CaptionRedactor, Redactor, Script, ScriptConverter};

mod cli;

/// Cantonese speech to captions, entirely on this machine.
///
/// Transcribes speech with Whisper (whisper.cpp) and writes captions in Hong Kong
/// Traditional, Taiwan Traditional or Simplified Chinese.
#[derive(Parser)]
#[command(name = "cantocap", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Examples:
  cantocap transcribe meeting.wav -o meeting.srt
  cantocap transcribe meeting.wav --format vtt --script tw
  cantocap model import ./whisper-small-cantonese -o models/ggml-small-yue.bin
  echo '我们今天发布' | cantocap convert --script hk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant (serve's options) is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Transcribe an audio file (WAV, FLAC, MP3, Ogg Vorbis, M4A) into captions.
    #[command(after_help = "Examples:
  cantocap transcribe talk.wav                       SRT on stdout, Hong Kong script
  cantocap transcribe interview.m4a -o interview.srt
  cantocap transcribe talk.wav -o talk.vtt           format from the extension
  cantocap transcribe talk.wav --format jsonl --script cn
  cantocap transcribe english.wav --language en --model models/ggml-tiny.en.bin

Input: WAV (PCM 8/16/24/32-bit integer or 32-bit float), FLAC, MP3, Ogg Vorbis or
M4A (AAC-LC), told apart by their contents, not their names; any sample rate (4 to
384 kHz) and channel count, downmixed and resampled to 16 kHz. Convert other formats
(Opus, AIFF, WebM, video files) first, e.g. `ffmpeg -i in.webm -ar 16000 -ac 1 out.wav`.

Personal data (HKID, phone, email, card and bank account numbers) is redacted in every
format by default; --redact none keeps it, --redact phone,hkid chooses kinds.")]
    Transcribe(TranscribeArgs),
    /// Live captions from the microphone, or from an audio file at real-time pace.
    #[command(after_help = "Examples:
  cantocap live                                   default microphone, captions in the terminal
  cantocap live --device USB --srt talk.srt       a named input, SRT written as you speak
  cantocap live --input talk.wav --speed 4        a file, four times real time (demos, tests)
  cantocap live --input talk.wav --speed max --jsonl events.jsonl

The terminal shows the partial (the words still being decided, dimmed) rewritten in
place, and each final as a timestamped line. --jsonl writes every event (partials and
finals) with its times, for latency measurements; --srt and --vtt are valid at every
moment. Ctrl-C stops and flushes.

Personal data (HKID, phone, email, card and bank account numbers) is redacted in the
terminal and every file, partials included, by default; --redact none keeps it. A final
ending in what may be the start of a number is shown without it, and the number with the
next final.")]
    Live(LiveArgs),
    /// Caption server: audio in over WebSocket per session, captions out to viewers.
    #[cfg(feature = "server")]
    Serve(cli::serve::ServeArgs),
    /// Check the server's audit log.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Delete session journals and recordings older than a limit (server stopped).
    Purge(cli::purge::PurgeArgs),
    /// Measure a model on your own recordings: CER, WER and mixed error rate against
    /// reference texts, RTF, and streaming latency; compare two runs.
    #[command(after_help = cli::eval::AFTER_HELP)]
    Eval(cli::eval::EvalArgs),
    /// List audio input devices and their sample rates.
    Devices,
    /// Redact personal data (HKID, phone, email, card and bank account numbers) from
    /// text on stdin.
    Redact(cli::redact::RedactArgs),
    /// Manage Whisper models (import Hugging Face or CTranslate2 folders, inspect).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Convert Chinese text on stdin to a script (the same conversion captions get).
    Convert {
        /// Target script: hk (Hong Kong Traditional), tw (Taiwan), cn (Simplified), raw.
        #[arg(long, default_value = "hk")]
        script: Script,
    },
}

#[derive(Args)]
struct TranscribeArgs {
    /// The audio file: WAV, FLAC, MP3, Ogg Vorbis or M4A/AAC.
    file: PathBuf,
    /// Write captions here instead of stdout (written whole when done; an existing
    /// file is replaced only on success).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Caption format: srt, vtt, jsonl or txt. Default: from the -o extension, else srt.
    #[arg(short, long)]
    format: Option<CaptionFormat>,
    /// Script: hk (Hong Kong Traditional), tw (Taiwan Traditional), cn (Simplified),
    /// raw (as Whisper wrote it).
    #[arg(short, long, default_value = "hk")]
    script: Script,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Beam size (1 = greedy, fastest).
    #[arg(long, default_value_t = 1)]
    beam_size: usize,
    /// Caption lines per screen.
    #[arg(long, default_value_t = 2)]
    max_lines: usize,
    /// Caption line width in full-width characters (Latin letters count half).
    #[arg(long, default_value_t = 16.0)]
    line_width: f32,
    /// Keep what the hallucination guards would drop (credit lines, loops).
    #[arg(long)]
    no_guards: bool,
    #[command(flatten)]
    redact: cli::redact::RedactFlags,
}

#[derive(Args)]
struct LiveArgs {
    /// Stream this audio file (WAV, FLAC, MP3, Ogg Vorbis, M4A) instead of the microphone.
    #[arg(short, long, value_name = "FILE.wav")]
    input: Option<PathBuf>,
    /// Microphone to use (part of its name, see `cantocap devices`) [default: the system default].
    #[arg(short, long, conflicts_with = "input")]
    device: Option<String>,
    /// With --input: 1 = real time, 4 = four times, max = as fast as decoding goes.
    #[arg(long, default_value = "1", requires = "input")]
    speed: cli::live::Speed,
    /// Script: hk, tw, cn or raw.
    #[arg(short, long, default_value = "hk")]
    script: Script,
    #[command(flatten)]
    decode: DecodeArgs,
    /// New audio between decodes, in ms (shorter: quicker partials, more compute).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(200..=10_000))]
    step_ms: u64,
    /// Share of real time partial decodes may take (0–1): after a slow partial the
    /// next waits longer, so partials cost at most this much and thin out on a slow
    /// machine or model; finals never wait. 0: a partial every --step-ms.
    #[arg(long, default_value_t = 0.15, value_name = "SHARE", value_parser = cli::parse_budget)]
    partial_budget: f32,
    /// Write SRT captions here as finals arrive.
    #[arg(long, value_name = "FILE")]
    srt: Option<PathBuf>,
    /// Write WebVTT captions here as finals arrive.
    #[arg(long, value_name = "FILE")]
    vtt: Option<PathBuf>,
    /// Write every event (partial and final) here as JSON lines.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    #[command(flatten)]
    redact: cli::redact::RedactFlags,
}

/// Whisper flags shared by `transcribe` and `live`.
#[derive(Args)]
struct DecodeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Language: yue (Cantonese), en, zh (Mandarin), … or auto; or several joined by +,
    /// each utterance then decoded in the one it sounds most like [default: yue+en on
    /// multilingual models, en on .en models]. On models without a yue token, Cantonese
    /// is decoded as zh with a Cantonese prompt (and cannot be told from zh).
    #[arg(short, long, value_name = "LANG[+LANG…]")]
    language: Option<String>,
    /// Initial prompt for Whisper (overrides the automatic Cantonese prompt; "" for none).
    #[arg(long)]
    prompt: Option<String>,
    /// CPU threads for decoding [default: cores, at most 4].
    #[arg(short, long)]
    threads: Option<usize>,
    #[command(flatten)]
    vad: cli::vad::VadArgs,
}

impl DecodeArgs {
    /// The model path, where it runs, and the decoding options these flags stand for.
    /// A fallback to the built-in voice activity detector is noted on stderr.
    fn resolve(self) -> Result<(PathBuf, Device, TranscribeOptions)> {
        let device = self.model.gpu.device();
        let model = resolve_model(self.model.model)?;
        let vad = self.vad.resolve(&model)?;
        if let Some(note) = &vad.note {
            eprintln!("note: {note}");
        }
        if let Some(gpu) = cli::gpu::describe(device) {
            eprintln!("note: {gpu}");
        }
        let mut opts = TranscribeOptions {
            language: self.language,
            prompt: self.prompt,
            vad_model: vad.model,
            ..Default::default()
        };
        if let Some(threads) = self.threads {
            opts.threads = threads.max(1);
        }
        Ok((model, device, opts))
    }
}

#[derive(Args)]
struct ModelArgs {
    /// Whisper model in ggml format [default: $CANTOCAP_MODEL, else models/ggml-base.bin].
    #[arg(short, long, value_name = "PATH")]
    model: Option<PathBuf>,
    #[command(flatten)]
    gpu: cli::gpu::GpuArgs,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Convert a Hugging Face transformers or CTranslate2 Whisper folder into a ggml model.
    #[command(after_help = "Two kinds of folder are read, told apart by their files:
  Hugging Face transformers (most Cantonese fine-tunes): config.json, model.safetensors
    (or model-0000N-of-0000M.safetensors shards and model.safetensors.index.json),
    vocab.json and added_tokens.json, or tokenizer.json
  CTranslate2 / faster-whisper: model.bin, config.json, vocabulary.txt (or .json)
Examples:
  git clone https://huggingface.co/alvanlii/whisper-small-cantonese
  cantocap model import ./whisper-small-cantonese -o models/ggml-small-yue.bin
  cantocap model import ./faster-whisper-small-ct2 -o models/ggml-small.bin --quantize q8_0")]
    Import {
        /// The model folder (transformers or CTranslate2).
        dir: PathBuf,
        /// The ggml file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Weight type: f16 (exact), q8_0 (55 % of the size, faster, slightly less exact) or
        /// q5_0 (37 % of the size, less exact; see models/README.md).
        #[arg(short, long, default_value = "f16")]
        quantize: Quantize,
    },
    /// Convert Silero VAD weights (safetensors) into whisper.cpp's VAD model, for --vad.
    #[command(
        name = "import-vad",
        after_help = "The weights come with the silero-vad package on PyPI (6.x):
  pip download --no-deps -d /tmp/silero silero-vad
  unzip -j /tmp/silero/silero_vad-*.whl 'silero_vad/data/silero_vad_16k.safetensors' -d /tmp/silero
  cantocap model import-vad /tmp/silero/silero_vad_16k.safetensors -o models/ggml-silero-vad.bin
models/fetch-test-model.sh does the same."
    )]
    ImportVad {
        /// Silero's silero_vad_16k.safetensors.
        safetensors: PathBuf,
        /// The ggml VAD model to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Silero version to record in the header (whisper.cpp only logs it).
        #[arg(long, default_value = "6.0.0", value_name = "X.Y.Z")]
        silero_version: model::SileroVersion,
    },
    /// Show what a ggml model file holds and which language settings it gets.
    Info {
        /// The ggml model file [default: the default model].
        path: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Transcribe(args) => transcribe(args),
        Command::Model(ModelCommand::Import { dir, output, quantize }) => {
            import(&dir, &output, quantize)
        }
        Command::Model(ModelCommand::ImportVad { safetensors, output, silero_version }) => {
            import_vad(&safetensors, &output, silero_version)
        }
        Command::Model(ModelCommand::Info { path }) => info(path),
        Command::Convert { script } => convert(script),
        Command::Live(args) => live(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Devices => devices(),
        #[cfg(feature = "server")]
        Command::Serve(args) => cli::serve::run(args),
        Command::Audit(command) => cli::audit::run(command),
        Command::Purge(args) => cli::purge::run(args),
        Command::Redact(args) => cli::redact::run(args),
    }
}

/// The model to use: the flag, then $CANTOCAP_MODEL, then the set-up's default.
fn resolve_model(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os("CANTOCAP_MODEL") {
        return Ok(PathBuf::from(path));
    }
    let candidates = [
        PathBuf::from("models/ggml-base.bin"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base.bin"),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Ok(path.clone()),
        None => bail!(
            "no Whisper model found (looked for {} and {}); run ./setup.sh, pass --model, or set CANTOCAP_MODEL",
            candidates[0].display(),
            candidates[1].display()
        ),
    }
}

fn transcribe(args: TranscribeArgs) -> Result<()> {
    let format = match (args.format, &args.output) {
        (Some(f), _) => f,
        (None, Some(out)) => CaptionFormat::from_path(out).unwrap_or(CaptionFormat::Srt),
        (None, None) => CaptionFormat::Srt,
    };
    // Cheap checks first: a bad file or script should not wait for the model to load.
    let audio = read_audio(&args.file)?;
    let (model_path, device, opts) = args.decode.resolve()?;
    let model = WhisperModel::load_on(&model_path, device)?;
    let opts =
        TranscribeOptions { beam_size: args.beam_size.max(1), guards: !args.no_guards, ..opts };
    let plan = model.plan(&opts)?;
    if plan.cantonese_via_zh {
        eprintln!(
            "note: {} has no Cantonese (yue) token; Cantonese is decoded as zh with a Cantonese prompt",
            model_path.display()
        );
    }

    let samples = audio.to_whisper_input()?;
    let started = Instant::now();
    let bar = progress_bar(audio.duration_ms());
    let segments = {
        let bar = bar.clone();
        model.transcribe_with_progress(&samples, &opts, move |pct| {
            bar.set_position(pct.clamp(0, 100) as u64)
        })?
    };
    bar.finish_and_clear();
    let audio_s = audio.duration_ms() as f64 / 1000.0;
    let compute_s = started.elapsed().as_secs_f64();

    // One pipeline, as `live` and `serve`: redacted before script conversion (labels
    // get converted too), then laid out as a whole file.
    let layout = LayoutOptions {
        max_lines: args.max_lines.max(1),
        line_width: args.line_width.max(4.0),
        ..Default::default()
    };
    let redact = args.redact.options();
    let write = |out: Box<dyn Write + Send>| -> Result<Summary> {
        let mut output = Output::new(CaptionRedactor::new(Redactor::new(redact.clone())));
        let writer = caption::writer_for(format, out);
        output.add_sink(CaptionFileSink::whole(writer, args.script, layout.clone()))?;
        Ok(output.emit_segments(segments.clone())?)
    };
    let summary = match &args.output {
        Some(path) => {
            let mut summary = None;
            write_atomically(path, |out| {
                summary = Some(write(out)?);
                Ok(())
            })?;
            summary.expect("written")
        }
        None => write(Box::new(io::stdout()))?,
    };
    if io::stderr().is_terminal() {
        eprintln!(
            "{} finals from {:.1} s of audio in {:.1} s (RTF {:.2})",
            summary.finals,
            audio_s,
            compute_s,
            compute_s / audio_s.max(0.001)
        );
        if !summary.redactions.is_empty() {
            eprintln!("redacted: {}", summary.redactions);
        }
    }
    Ok(())
}

/// Read an audio file (WAV, FLAC, MP3, Ogg Vorbis, M4A), saying on stderr when a WAV
/// file was cut short (an interrupted copy, a crashed recorder): what is there is still
/// transcribed.
pub(crate) fn read_audio(path: &Path) -> Result<cantocap::audio::AudioBuffer> {
    if let Err(e) = File::open(path) {
        return Err(e).with_context(|| format!("cannot open {}", path.display()));
    }
    let (audio, info) = cantocap::audio::read_audio_file(path)?;
    if let Some(info) = info.filter(|i| i.truncated) {
        let held = audio.duration_ms() as f64 / 1000.0;
        let declared = info
            .declared_frames
            .map(|frames| {
                format!(
                    " of the {:.1} s its header declares",
                    frames as f64 / f64::from(audio.sample_rate)
                )
            })
            .unwrap_or_default();
        eprintln!(
            "warning: {} is cut short: it holds {held:.1} s of audio{declared}; transcribing what is there",
            path.display()
        );
    }
    Ok(audio)
}

/// A progress bar on stderr for files longer than a few seconds; hidden when
/// stderr is not a terminal.
fn progress_bar(audio_ms: u64) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() || audio_ms < 10_000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} transcribing [{bar:30}] {pos}% ({elapsed})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Write through a temporary file beside `path`, renamed over it on success, so a
/// failure never leaves a half-written file or destroys the previous one.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(Box<dyn Write + Send>) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(dir, path)?;
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = write(Box::new(BufWriter::new(file)));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path, path: &Path) -> Result<PathBuf> {
    let name = path.file_name().context("the output path has no file name")?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".{}.tmp", std::process::id()));
    Ok(dir.join(tmp))
}

fn import(dir: &Path, output: &Path, quantize: Quantize) -> Result<()> {
    let started = Instant::now();
    let out_dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(out_dir, output)?;
    let kind = model::ModelKind::detect(dir)?;
    let report = model::import_model(dir, &tmp, quantize).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "imported {} ({} {}, {}, {} tokens, {} mel bins) as {quantize}: {} in {:.1} s",
        dir.display(),
        kind.name(),
        report.source_dtype,
        if report.multilingual { "multilingual" } else { "English-only" },
        report.n_vocab,
        report.n_mels,
        output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn import_vad(input: &Path, output: &Path, version: model::SileroVersion) -> Result<()> {
    let out_dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(out_dir, output)?;
    let report = model::import_silero(input, &tmp, version)
        .and_then(|report| model::read_vad_model(&tmp).map(|_| report))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "converted {} (Silero VAD {version}): {} tensors, {} bytes in {}",
        input.display(),
        report.tensors,
        report.bytes_written,
        output.display()
    );
    Ok(())
}

fn info(path: Option<PathBuf>) -> Result<()> {
    let path = resolve_model(path)?;
    let header = model::read_ggml_header(&path)?;
    let caps = cantocap::asr::ModelCaps::from_n_vocab(header.n_vocab);
    let plan = cantocap::asr::plan_language(None, None, caps)?;
    println!("model:        {}", path.display());
    println!("size:         {}", header.size_name());
    println!(
        "vocabulary:   {} tokens ({})",
        header.n_vocab,
        if caps.multilingual { "multilingual" } else { "English-only" }
    );
    println!("mel bins:     {}", header.n_mels);
    println!("layers:       {} encoder, {} decoder", header.n_audio_layer, header.n_text_layer);
    println!("weights:      {}", header.ftype_name());
    println!(
        "default:      language {}{}",
        plan.describe(),
        if plan.cantonese_via_zh {
            " (no yue token: Cantonese is decoded as zh with the Cantonese prompt)"
        } else {
            ""
        }
    );
    Ok(())
}

fn live(args: LiveArgs) -> Result<()> {
    let (model, model_device, transcribe) = args.decode.resolve()?;
    cli::live::run(cli::live::LiveConfig {
        input: args.input,
        device: args.device,
        speed: args.speed,
        model,
        model_device,
        script: args.script,
        transcribe,
        step_ms: args.step_ms,
        partial_budget: args.partial_budget,
        srt: args.srt,
        vtt: args.vtt,
        jsonl: args.jsonl,
        layout: LayoutOptions::default(),
        redact: args.redact.options(),
    })
}

#[cfg(feature = "mic")]
fn devices() -> Result<()> {
    let devices = cantocap::audio::mic::input_devices()?;
    if devices.is_empty() {
        bail!("no audio input devices found (is a microphone connected? on Linux, check `arecord -l`)");
    }
    for d in devices {
        println!(
            "{}{}  ({} Hz, {} ch; rates {}–{} Hz)",
            d.name,
            if d.is_default { " [default]" } else { "" },
            d.sample_rate,
            d.channels,
            d.rate_range.0,
            d.rate_range.1
        );
    }
    Ok(())
}

#[cfg(not(feature = "mic"))]
fn devices() -> Result<()> {
    bail!("this cantocap was built without microphone support (Cargo feature `mic`)")
}

fn convert(script: Script) -> Result<()> {
    let converter = ScriptConverter::new(script)?;
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).context("stdin is not UTF-8 text")?;
    let mut out = io::stdout().lock();
    out.write_all(converter.convert(&input).as_bytes())?;
    Ok(())
}
