//! One Whisper model, loaded once, transcribing 16 kHz mono audio into segments.

use std::path::{Path, PathBuf};
use std::sync::Once;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::guards;
use super::language::{plan_language, LanguagePlan, ModelCaps};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::model::{read_ggml_header, GgmlHeader};
use crate::{Error, Result, Segment};

/// How to transcribe. Every field has a documented default:
///
/// ```
/// let opts = cantocap::asr::TranscribeOptions { threads: 2, ..Default::default() };
/// assert_eq!(opts.language, None); // Cantonese on multilingual models
/// ```
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Language code (`yue`, `zh`, `en`, … or `auto`). `None` (default): Cantonese
    /// on a multilingual model, English on an English-only one. See
    /// [`plan_language`] for how `yue` is handled on models without that token.
    pub language: Option<String>,
    /// Initial prompt. `None` (default): the automatic one (the Cantonese prompt when
    /// Cantonese goes through `zh`); `Some("")`: no prompt.
    pub prompt: Option<String>,
    /// CPU threads for decoding. Default: the number of cores, at most 4.
    pub threads: usize,
    /// Drop a segment whose no-speech probability is above this. Default 0.6.
    pub no_speech_threshold: f32,
    /// Drop a segment whose average token log-probability is below this while its
    /// no-speech probability is also above half the threshold (OpenAI's rule,
    /// softened). Default -1.0.
    pub logprob_threshold: f32,
    /// Suppress non-speech tokens (music notes, brackets, speaker marks). Default true.
    pub suppress_non_speech: bool,
    /// Drop the subtitle-credit lines Whisper invents on silence and cut repetition
    /// loops ([`guards`](super::guards)). Default true.
    pub guards: bool,
    /// Beam size; 1 (default) means greedy decoding, the fastest.
    pub beam_size: usize,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            prompt: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            suppress_non_speech: true,
            guards: true,
            beam_size: 1,
        }
    }
}

/// A Whisper model in whisper.cpp's ggml format, loaded once and shareable
/// between threads (each transcription makes its own decoding state).
pub struct WhisperModel {
    ctx: WhisperContext,
    header: GgmlHeader,
    path: PathBuf,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").field("path", &self.path).field("header", &self.header).finish()
    }
}

static QUIET: Once = Once::new();

impl WhisperModel {
    /// Load a ggml model file. The header is checked first, so a missing, foreign
    /// or damaged file gets a clear [`Error::BadModel`] instead of an abort inside
    /// whisper.cpp.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let header = read_ggml_header(path)?;
        // whisper.cpp logs every load detail to stderr; route it away (through
        // whisper-rs's hooks, which discard it without a logging backend).
        QUIET.call_once(whisper_rs::install_logging_hooks);
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("whisper.cpp refused it ({e})"),
        })?;
        Ok(Self { ctx, header, path: path.to_path_buf() })
    }

    /// The model file's header (sizes, vocabulary, mel bins).
    pub fn header(&self) -> &GgmlHeader {
        &self.header
    }

    /// Where the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the model knows about languages.
    pub fn caps(&self) -> ModelCaps {
        ModelCaps::from_n_vocab(self.header.n_vocab)
    }

    /// The language token and prompt these options lead to on this model.
    pub fn plan(&self, opts: &TranscribeOptions) -> Result<LanguagePlan> {
        plan_language(opts.language.as_deref(), opts.prompt.as_deref(), self.caps())
    }

    /// Transcribe 16 kHz mono samples (see [`crate::audio::to_16k_mono`]).
    pub fn transcribe(&self, samples: &[f32], opts: &TranscribeOptions) -> Result<Vec<Segment>> {
        self.transcribe_with_progress(samples, opts, |_| {})
    }

    /// [`transcribe`](Self::transcribe), calling `progress` with 0–100 as decoding
    /// moves through the audio.
    pub fn transcribe_with_progress(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        progress: impl FnMut(i32) + 'static,
    ) -> Result<Vec<Segment>> {
        if samples.is_empty() {
            return Err(Error::EmptyAudio);
        }
        if let Some((index, &value)) = samples.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err(Error::NonFiniteSample { index, value });
        }
        let plan = self.plan(opts)?;
        let strategy = if opts.beam_size > 1 {
            SamplingStrategy::BeamSearch { beam_size: opts.beam_size as i32, patience: -1.0 }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_language(plan.language.as_deref());
        params.set_detect_language(plan.language.is_none());
        params.set_translate(false);
        // Whisper panics on interior NUL bytes in the prompt.
        let prompt = plan.initial_prompt.as_deref().unwrap_or("").replace('\0', "");
        if !prompt.is_empty() {
            params.set_initial_prompt(&prompt);
        }
        params.set_suppress_nst(opts.suppress_non_speech);
        params.set_suppress_blank(true);
        params.set_no_speech_thold(opts.no_speech_threshold);
        params.set_logprob_thold(opts.logprob_threshold);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_progress_callback_safe(progress);

        let mut state = self.ctx.create_state().map_err(|e| Error::Whisper(e.to_string()))?;
        state.full(params, samples).map_err(|e| Error::Whisper(e.to_string()))?;

        let audio_ms = samples.len() as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment.to_str_lossy().map_err(|e| Error::Whisper(e.to_string()))?;
            let mut text = text.trim().to_string();
            let no_speech = segment.no_speech_probability();
            let n_tokens = segment.n_tokens();
            let (mut logprob_sum, mut counted) = (0.0f32, 0);
            for t in 0..n_tokens {
                if let Some(token) = segment.get_token(t) {
                    let data = token.token_data();
                    // Special tokens (timestamps, markers) sit at or above eot.
                    if data.id < self.ctx.token_eot() {
                        logprob_sum += data.plog;
                        counted += 1;
                    }
                }
            }
            let avg_logprob = if counted > 0 { logprob_sum / counted as f32 } else { 0.0 };
            if no_speech > opts.no_speech_threshold
                || (avg_logprob < opts.logprob_threshold && no_speech > opts.no_speech_threshold / 2.0)
            {
                continue;
            }
            if opts.guards {
                if guards::is_known_hallucination(&text) {
                    continue;
                }
                text = guards::trim_repetition(&text);
            }
            if text.is_empty() {
                continue;
            }
            let start_ms = (segment.start_timestamp().max(0) as u64 * 10).min(audio_ms);
            let end_ms = (segment.end_timestamp().max(0) as u64 * 10).clamp(start_ms, audio_ms.max(start_ms));
            segments.push(Segment { start_ms, end_ms, text });
        }
        Ok(segments)
    }
}
