//! The library's error type.

use std::path::PathBuf;

/// `Result` with [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cantocap's library.
///
/// Each variant says what the caller can do about it. None of them is worth
/// retrying unchanged except [`Error::Io`] on a flaky filesystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed. Check the path and its permissions.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// Writing output (captions, a model) to a stream failed.
    #[error("writing output: {0}")]
    Write(#[from] std::io::Error),

    /// The input is not audio cantocap can read. The message names what is wrong
    /// and what is supported; convert the file (for example with `sox` or `ffmpeg`).
    #[error("{}: {reason}", path.display())]
    BadAudio {
        /// The audio file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The audio holds no samples at all.
    #[error("the audio is empty: there is nothing to transcribe")]
    EmptyAudio,

    /// A sample is NaN or infinite; the producer of the audio is broken.
    #[error(
        "sample {index} is not a finite number ({value}); audio must be finite floats in -1..1"
    )]
    NonFiniteSample {
        /// Position of the first bad sample (interleaved index).
        index: usize,
        /// Its value.
        value: f32,
    },

    /// The sample rate cannot be resampled. Resample the audio first.
    #[error("unsupported sample rate {rate} Hz (supported: {min}..={max} Hz)")]
    UnsupportedSampleRate {
        /// The rate given.
        rate: u32,
        /// Lowest supported rate.
        min: u32,
        /// Highest supported rate.
        max: u32,
    },

    /// The channel count is zero or absurd.
    #[error("unsupported channel count {channels} (supported: 1..={max})")]
    UnsupportedChannels {
        /// The count given.
        channels: u16,
        /// Highest supported count.
        max: u16,
    },

    /// The resampler failed; this is a bug in cantocap or rubato, please report it.
    #[error("resampling failed: {0}")]
    Resample(String),

    /// A folder given to the importer is not a CTranslate2 Whisper model, or is damaged.
    #[error("{}: not an importable CTranslate2 Whisper model: {reason}", path.display())]
    BadCt2Model {
        /// The folder or file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A folder given to the importer is not a Hugging Face transformers Whisper model
    /// (`config.json`, safetensors weights, `vocab.json` or `tokenizer.json`), or is
    /// damaged. The reason names the missing or wrong file, field or tensor.
    #[error("{}: not an importable Hugging Face Whisper model: {reason}", path.display())]
    BadHfModel {
        /// The folder or file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The ggml model file is missing, not a Whisper model, or damaged.
    /// Run `cantocap model import` or `models/download.sh` to get a good one.
    #[error("{}: cannot load the Whisper model: {reason}", path.display())]
    BadModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The Silero VAD model (or the safetensors weights given to convert) is missing,
    /// not what was expected, or damaged. Make a model with `cantocap model import-vad`
    /// from the `silero-vad` PyPI package's `silero_vad_16k.safetensors`, or run
    /// `models/fetch-test-model.sh`.
    #[error("{}: cannot use it as a Silero VAD model: {reason}", path.display())]
    BadVadModel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A GPU was asked for, but this build has no GPU backend. Rebuild with one
    /// (`cargo build --release --features vulkan`, or `cuda`, `metal`), or use the CPU.
    #[error(
        "this cantocap was built without GPU support: rebuild it with `cargo build --release \
         --features vulkan` (NVIDIA, AMD and Intel GPUs; or --features cuda, or metal on macOS), \
         or run on the CPU"
    )]
    GpuNotBuilt,

    /// The GPU asked for is not among those the GPU backend finds. Pick one of
    /// `found` by its index, or install the GPU's driver.
    #[error("{}", describe_missing_gpu(*index, found))]
    NoGpu {
        /// The GPU index asked for.
        index: usize,
        /// The GPUs found, in index order, named by their drivers.
        found: Vec<String>,
    },

    /// whisper.cpp failed while decoding.
    #[error("whisper failed: {0}")]
    Whisper(String),

    /// A language code Whisper does not know.
    #[error(
        "unknown language {code:?}: use Whisper language codes such as yue, zh or en, several \
         joined by + (yue+en), or auto"
    )]
    UnknownLanguage {
        /// The code given.
        code: String,
    },

    /// The loaded model cannot transcribe the language asked for.
    #[error("language {code:?} cannot be used: {reason}")]
    LanguageNotInModel {
        /// The code asked for.
        code: String,
        /// Why not.
        reason: String,
    },

    /// The audio device (microphone) is missing or cannot be used. Check that one is
    /// connected and not in use; `cantocap devices` lists what the system offers.
    #[error("audio input: {reason}")]
    Device {
        /// What went wrong.
        reason: String,
    },

    /// OpenCC could not be set up for a conversion.
    #[error("script conversion {config} unavailable: {reason}")]
    Opencc {
        /// The OpenCC configuration, such as `s2hk`.
        config: String,
        /// What went wrong.
        reason: String,
    },

    /// A caption file could not be parsed.
    #[error("line {line}: {reason}")]
    BadCaptionFile {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// The caption server cannot start as configured (bad config file, an address it
    /// cannot listen on, anonymous access on a public address). The message says what
    /// to change.
    #[error("server: {reason}")]
    ServerConfig {
        /// What is wrong.
        reason: String,
    },

    /// The audit log cannot be continued: its last record is cut short or does not
    /// match its hash. Run `cantocap audit verify` on it and move it aside.
    #[error("audit log {}: {reason}", path.display())]
    AuditLog {
        /// The audit log.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// [`Error::NoGpu`]'s message: what was asked for, and what there is to choose from.
fn describe_missing_gpu(index: usize, found: &[String]) -> String {
    if found.is_empty() {
        return format!(
            "GPU {index} asked for, but no GPU was found: install its driver (for Vulkan: \
             NVIDIA's, or Mesa's mesa-vulkan-drivers for AMD and Intel; a CPU driver such as \
             Mesa's lavapipe counts only when GGML_VK_VISIBLE_DEVICES names it, =0)"
        );
    }
    let list: Vec<String> =
        found.iter().enumerate().map(|(i, name)| format!("{i}: {name}")).collect();
    format!(
        "GPU {index} asked for, but {} GPU{} found: {}",
        found.len(),
        if found.len() == 1 { " was" } else { "s were" },
        list.join(", ")
    )
}
