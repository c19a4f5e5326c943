//! Voice activity from Silero VAD, run by whisper.cpp from a ggml model (make one with
//! `cantocap model import-vad`, see [`crate::model::silero`]).
//!
//! Silero gives one speech probability per 32 ms chunk ([`SILERO_WINDOW`] samples at
//! 16 kHz). It tells speech from noise, music and breathing far better than the
//! built-in [`EnergyVad`](super::EnergyVad), for well under a millisecond of CPU per
//! chunk.
//!
//! whisper.cpp restarts Silero's recurrent state at every call, so the streaming
//! [`SileroVad`] classifies audio in hops of [`HOP_CHUNKS`] chunks, each run preceded by
//! [`CONTEXT_CHUNKS`] chunks already classified, which brings the state back to where a
//! continuous run would have it. The result does not depend on how the audio is pushed.
//!
//! The library uses Silero only when told to ([`TranscribeOptions::vad_model`]); the
//! `cantocap` command uses it by default, found by [`find_default_model`], which
//! embedders can call to do the same.
//!
//! [`TranscribeOptions::vad_model`]: crate::asr::TranscribeOptions::vad_model

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use super::vad::{VadOptions, FRAME};
use super::WHISPER_SAMPLE_RATE;
use crate::model::silero::{read_vad_model, SILERO_WINDOW};
use crate::{Error, Result};

/// Chunks classified per run while streaming (128 ms): the detector's added latency.
pub const HOP_CHUNKS: usize = 4;
/// Chunks of already classified audio run again before each hop (0.5 s), to warm
/// Silero's state up.
pub const CONTEXT_CHUNKS: usize = 16;

/// A chunk is speech from this probability up (Silero's and whisper.cpp's default).
const THRESHOLD: f32 = 0.5;
/// Once in speech, chunks stay speech down to this probability (Silero's hysteresis).
const NEG_THRESHOLD: f32 = THRESHOLD - 0.15;

/// Streaming (and whole-buffer) Silero voice activity over 16 kHz mono samples, with
/// the interface of [`EnergyVad`](super::EnergyVad).
pub struct SileroVad {
    ctx: WhisperVadContext,
    hangover_chunks: u32,
    /// Classified audio kept as context for the next hop.
    history: Vec<f32>,
    /// Audio not yet classified (less than a hop).
    pending: Vec<f32>,
    input: Vec<f32>,
    chunks: u64,
    speech_chunks: u64,
    hangover_left: u32,
    in_speech: bool,
    /// Whether the last chunk was speech before hangover.
    voiced: bool,
    last_speech_end: Option<u64>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("chunks", &self.chunks)
            .field("in_speech", &self.in_speech)
            .finish()
    }
}

/// Checks that `path` is a ggml Silero VAD model whisper.cpp can load, without loading
/// it: the check to run before accepting the path (a server's start, a CLI flag).
///
/// Fails with [`Error::BadVadModel`] saying what is wrong.
pub fn check_model(path: &Path) -> Result<()> {
    read_vad_model(path).map(|_| ())
}

/// The file name of the Silero model the set-up makes (`models/fetch-test-model.sh`,
/// `cantocap model import-vad`), looked for beside the Whisper model and in `models/`.
pub const DEFAULT_MODEL_FILE: &str = "ggml-silero-vad.bin";

/// The environment variable that names the Silero model to use by default; it wins
/// over the places [`default_model_candidates`] lists.
pub const MODEL_ENV: &str = "CANTOCAP_VAD_MODEL";

/// Where the default Silero model is, or where it was looked for: the answer of
/// [`find_default_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultModel {
    /// [`MODEL_ENV`] names this file. It is not checked for existence: it is the
    /// user's explicit choice, and a missing file should be an error
    /// ([`check_model`]), not a silent fallback.
    FromEnv(PathBuf),
    /// This file of [`default_model_candidates`] exists (the first one that does).
    Found(PathBuf),
    /// [`MODEL_ENV`] is unset and none of these files exists.
    NotFound(Vec<PathBuf>),
}

impl DefaultModel {
    /// The model to use, if there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::FromEnv(path) | Self::Found(path) => Some(path),
            Self::NotFound(_) => None,
        }
    }
}

/// The places the default Silero model is looked for, in order:
/// [`DEFAULT_MODEL_FILE`] beside `whisper_model` (the Whisper model file in use), then
/// in `models/` under the working directory.
pub fn default_model_candidates(whisper_model: &Path) -> Vec<PathBuf> {
    let beside = whisper_model.parent().unwrap_or(Path::new("")).join(DEFAULT_MODEL_FILE);
    let in_models = Path::new("models").join(DEFAULT_MODEL_FILE);
    let mut candidates = vec![beside];
    if candidates[0] != in_models {
        candidates.push(in_models);
    }
    candidates
}

/// The default Silero model from the value of [`MODEL_ENV`] (`env`; an empty value
/// counts as unset), the Whisper model in use and a test for whether a file exists: no
/// I/O of its own. [`find_default_model`] is this with the real environment and file
/// system.
pub fn locate_default_model(
    env: Option<&OsStr>,
    whisper_model: &Path,
    exists: impl Fn(&Path) -> bool,
) -> DefaultModel {
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return DefaultModel::FromEnv(PathBuf::from(path));
    }
    let candidates = default_model_candidates(whisper_model);
    match candidates.iter().find(|p| exists(p)) {
        Some(path) => DefaultModel::Found(path.clone()),
        None => DefaultModel::NotFound(candidates),
    }
}

/// The Silero model the `cantocap` command uses when not told otherwise:
/// `$CANTOCAP_VAD_MODEL` if set, else [`DEFAULT_MODEL_FILE`] beside `whisper_model`,
/// else in `./models/`. Pass the result's [`path`](DefaultModel::path) as
/// [`TranscribeOptions::vad_model`](crate::asr::TranscribeOptions::vad_model) to get
/// the command's behaviour; [`check_model`] it first for an early, clear error.
///
/// ```
/// use cantocap::asr::TranscribeOptions;
/// use cantocap::audio::silero::find_default_model;
/// use std::path::Path;
///
/// let whisper = Path::new("models/ggml-base.bin");
/// let opts = TranscribeOptions {
///     vad_model: find_default_model(whisper).path().map(Path::to_path_buf),
///     ..Default::default()
/// };
/// # let _ = opts;
/// ```
pub fn find_default_model(whisper_model: &Path) -> DefaultModel {
    let env = std::env::var_os(MODEL_ENV);
    locate_default_model(env.as_deref(), whisper_model, Path::is_file)
}

impl SileroVad {
    /// Load the ggml Silero model at `path`. Of `opts`, only `hangover_ms` applies.
    ///
    /// Fails with [`Error::BadVadModel`] when the file is missing or not a Silero VAD
    /// model (it is checked before whisper.cpp sees it).
    pub fn load(path: &Path, opts: &VadOptions) -> Result<Self> {
        check_model(path)?;
        let Some(path_str) = path.to_str().filter(|s| !s.contains('\0')) else {
            return Err(Error::BadVadModel {
                path: path.to_path_buf(),
                reason: "whisper.cpp needs a UTF-8 path".into(),
            });
        };
        crate::model::quiet_whisper_logs();
        let mut params = WhisperVadContextParams::default();
        // One thread: the graph is tiny, and waking more costs more than it saves.
        params.set_n_threads(1);
        params.set_use_gpu(false);
        let ctx = WhisperVadContext::new(path_str, params).map_err(|e| Error::BadVadModel {
            path: path.to_path_buf(),
            reason: format!("whisper.cpp refused it ({e})"),
        })?;
        let chunk_ms = (SILERO_WINDOW * 1000 / WHISPER_SAMPLE_RATE as usize) as u32;
        Ok(Self {
            ctx,
            hangover_chunks: opts.hangover_ms.div_ceil(chunk_ms),
            history: Vec::with_capacity(CONTEXT_CHUNKS * SILERO_WINDOW),
            pending: Vec::with_capacity(HOP_CHUNKS * SILERO_WINDOW),
            input: Vec::with_capacity((CONTEXT_CHUNKS + HOP_CHUNKS) * SILERO_WINDOW),
            chunks: 0,
            speech_chunks: 0,
            hangover_left: 0,
            in_speech: false,
            voiced: false,
            last_speech_end: None,
        })
    }

    /// Speech probability of each [`SILERO_WINDOW`]-sample chunk of `samples` (16 kHz
    /// mono; a short last chunk is padded with silence), in one continuous run. Does not
    /// touch the streaming state.
    pub fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        check_finite(samples)?;
        self.ctx
            .detect_speech(samples)
            .map_err(|e| Error::Whisper(format!("Silero VAD failed: {e}")))?;
        Ok(self.ctx.probabilities().to_vec())
    }

    /// Stretches of speech in `samples` (16 kHz mono), as `(start_ms, end_ms)`, found by
    /// whisper.cpp's own segmentation with its defaults (threshold 0.5, speech of at
    /// least 250 ms, pauses of at least 100 ms, 30 ms padding). Does not touch the
    /// streaming state.
    pub fn speech_segments(&mut self, samples: &[f32]) -> Result<Vec<(u64, u64)>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        check_finite(samples)?;
        let segments = self
            .ctx
            .segments_from_samples(WhisperVadParams::default(), samples)
            .map_err(|e| Error::Whisper(format!("Silero VAD failed: {e}")))?;
        // whisper.cpp gives centiseconds.
        Ok(segments
            .map(|s| ((s.start.max(0.0) * 10.0) as u64, (s.end.max(0.0) * 10.0) as u64))
            .filter(|(start, end)| end > start)
            .collect())
    }

    /// Speech or not for each [`FRAME`] (20 ms) of `samples`, from
    /// [`speech_segments`](Self::speech_segments): the Silero form of
    /// [`speech_mask`](super::vad::speech_mask).
    pub fn speech_mask(&mut self, samples: &[f32]) -> Result<Vec<bool>> {
        let frame_ms = (FRAME * 1000 / WHISPER_SAMPLE_RATE as usize) as u64;
        let mut mask = vec![false; samples.len() / FRAME];
        for (start, end) in self.speech_segments(samples)? {
            let first = (start / frame_ms) as usize;
            let last = (end.div_ceil(frame_ms) as usize).min(mask.len());
            if first < last {
                mask[first..last].fill(true);
            }
        }
        Ok(mask)
    }

    /// Feed samples; whole hops are classified, the remainder waits.
    ///
    /// Fails with [`Error::NonFiniteSample`] on NaN or infinite samples, and with
    /// [`Error::Whisper`] if whisper.cpp cannot run the model.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        check_finite(samples)?;
        let hop = HOP_CHUNKS * SILERO_WINDOW;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (hop - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == hop {
                self.classify_hop()?;
            }
        }
        Ok(())
    }

    fn classify_hop(&mut self) -> Result<()> {
        self.input.clear();
        self.input.extend_from_slice(&self.history);
        self.input.extend_from_slice(&self.pending);
        self.ctx
            .detect_speech(&self.input)
            .map_err(|e| Error::Whisper(format!("Silero VAD failed: {e}")))?;
        let probs = self.ctx.probabilities();
        let new = &probs[probs.len().saturating_sub(HOP_CHUNKS)..];
        for &p in new {
            self.chunks += 1;
            let speech = p >= THRESHOLD || (self.voiced && p >= NEG_THRESHOLD);
            self.voiced = speech;
            if speech {
                self.speech_chunks += 1;
                self.in_speech = true;
                self.hangover_left = self.hangover_chunks;
                self.last_speech_end = Some(self.chunks * SILERO_WINDOW as u64);
            } else if self.hangover_left > 0 {
                self.hangover_left -= 1;
            } else {
                self.in_speech = false;
            }
        }
        let keep = self.input.len().min(CONTEXT_CHUNKS * SILERO_WINDOW);
        self.history.clear();
        self.history.extend_from_slice(&self.input[self.input.len() - keep..]);
        self.pending.clear();
        Ok(())
    }

    /// Is the most recent classified audio speech (hangover included)?
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Sample index (from the start of the stream) where the last speech chunk ended,
    /// if there was any speech.
    pub fn last_speech_end(&self) -> Option<u64> {
        self.last_speech_end
    }

    /// Samples classified so far (whole hops).
    pub fn samples_seen(&self) -> u64 {
        self.chunks * SILERO_WINDOW as u64
    }

    /// Chunks ([`SILERO_WINDOW`] samples) classified as speech so far.
    pub fn speech_chunks(&self) -> u64 {
        self.speech_chunks
    }
}

fn check_finite(samples: &[f32]) -> Result<()> {
    match samples.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        Some((index, &value)) => Err(Error::NonFiniteSample { index, value }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists_only(files: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p| files.iter().any(|f| Path::new(f) == p)
    }

    #[test]
    fn the_environment_wins_even_over_existing_files() {
        let found = locate_default_model(
            Some(OsStr::new("/opt/vad.bin")),
            Path::new("/m/ggml-base.bin"),
            |_| true,
        );
        assert_eq!(found, DefaultModel::FromEnv("/opt/vad.bin".into()));
        // Not checked for existence: a wrong setting must fail, not fall back.
        let found =
            locate_default_model(Some(OsStr::new("/nope.bin")), Path::new("m.bin"), |_| false);
        assert_eq!(found.path(), Some(Path::new("/nope.bin")));
    }

    #[test]
    fn an_empty_environment_value_counts_as_unset() {
        let found = locate_default_model(
            Some(OsStr::new("")),
            Path::new("/m/ggml-base.bin"),
            exists_only(&["/m/ggml-silero-vad.bin"]),
        );
        assert_eq!(found, DefaultModel::Found("/m/ggml-silero-vad.bin".into()));
    }

    #[test]
    fn beside_the_whisper_model_comes_before_models_dir() {
        let both = exists_only(&["/m/ggml-silero-vad.bin", "models/ggml-silero-vad.bin"]);
        let found = locate_default_model(None, Path::new("/m/ggml-small.bin"), both);
        assert_eq!(found, DefaultModel::Found("/m/ggml-silero-vad.bin".into()));
        let found = locate_default_model(
            None,
            Path::new("/m/ggml-small.bin"),
            exists_only(&["models/ggml-silero-vad.bin"]),
        );
        assert_eq!(found, DefaultModel::Found("models/ggml-silero-vad.bin".into()));
    }

    #[test]
    fn nothing_found_lists_each_place_once() {
        let found = locate_default_model(None, Path::new("/m/ggml-base.bin"), |_| false);
        assert_eq!(
            found,
            DefaultModel::NotFound(vec![
                "/m/ggml-silero-vad.bin".into(),
                "models/ggml-silero-vad.bin".into()
            ])
        );
        assert_eq!(found.path(), None);
        // The set-up's default model sits in models/: one place, not the same twice.
        let found = locate_default_model(None, Path::new("models/ggml-base.bin"), |_| false);
        assert_eq!(found, DefaultModel::NotFound(vec!["models/ggml-silero-vad.bin".into()]));
        // A bare file name: beside it is the working directory.
        let found = locate_default_model(None, Path::new("ggml-base.bin"), |_| false);
        assert_eq!(
            found,
            DefaultModel::NotFound(vec![
                "ggml-silero-vad.bin".into(),
                "models/ggml-silero-vad.bin".into()
            ])
        );
    }
}
