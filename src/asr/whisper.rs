//! One Whisper model, loaded once, transcribing 16 kHz mono audio into segments.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::gpu::{self, Device};
use super::guards;
use super::language::{plan_language, LanguageChoice, LanguagePlan, ModelCaps};
use crate::audio::{SileroVad, WHISPER_SAMPLE_RATE};
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
    /// Language code (`yue`, `zh`, `en`, … or `auto`), or several joined by `+`
    /// (`yue+en`): each utterance is then decoded in the one it sounds most like.
    /// `None` (default): `yue+en` on a multilingual model, English on an
    /// English-only one. See [`plan_language`] for how `yue` is handled on models
    /// without that token.
    pub language: Option<String>,
    /// Initial prompt, for every language. `None` (default): the automatic one (the
    /// Cantonese prompt for Cantonese utterances when Cantonese goes through `zh`,
    /// none for the others); `Some("")`: no prompt.
    pub prompt: Option<String>,
    /// CPU threads for decoding. Default: the number of cores, at most 4.
    pub threads: usize,
    /// With [`logprob_threshold`](Self::logprob_threshold): a segment is dropped
    /// when its text is unsure (average token log-probability below that) and its
    /// no-speech probability is above half this. Default 0.6.
    ///
    /// This is OpenAI's rule (skip when no-speech is above the threshold and the
    /// text is unsure), made stricter on unsure text. Confident text is kept
    /// whatever the no-speech probability: a window that starts with a second or
    /// two of silence before the speech scores 0.6 and more on no-speech, and
    /// dropping its words for that loses real speech.
    pub no_speech_threshold: f32,
    /// See [`no_speech_threshold`](Self::no_speech_threshold). Default -1.0.
    pub logprob_threshold: f32,
    /// Suppress non-speech tokens (music notes, brackets, speaker marks). Default true.
    pub suppress_non_speech: bool,
    /// Drop the subtitle-credit lines Whisper invents on silence and cut repetition
    /// loops (see [`super::guards`]). Default true.
    pub guards: bool,
    /// With the guards on: when a window decoded with the automatic Cantonese
    /// prompt (or yours) still holds runs of the prompt's characters once its echoes
    /// are dropped ([`guards::echo_suspects`]), decode it again without the prompt
    /// and keep those runs only where that decode has them too
    /// ([`guards::unconfirmed_echoes`]). Only such windows pay the second decode.
    /// Default true.
    pub echo_check: bool,
    /// When a decode looks bad (repetitive or improbable), retry it at higher
    /// temperatures, as Whisper does. Default true. Costs up to six decodes of a
    /// window; the streaming engine turns it off (a bad window is decoded again a
    /// step later anyway).
    pub temperature_fallback: bool,
    /// Skip audio in which voice activity detection finds no speech: nothing is
    /// decoded for all-silent input, and segments over silence are dropped (Whisper
    /// invents text there, more so with a prompt). Default true.
    pub vad: bool,
    /// A Silero VAD model in whisper.cpp's ggml format (see
    /// [`crate::model::silero`]): voice activity comes from Silero instead of the
    /// built-in energy detector, in file transcription (when `vad` is on) and in the
    /// streaming engine. Default `None` (the built-in detector): the library does
    /// not look for files. The `cantocap` command uses Silero by default, from
    /// [`find_default_model`](crate::audio::silero::find_default_model); do the same
    /// to match it.
    pub vad_model: Option<PathBuf>,
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
            echo_check: true,
            temperature_fallback: true,
            vad: true,
            vad_model: None,
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
    device: Device,
    /// Windows decoded again without the prompt (see [`TranscribeOptions::echo_check`]).
    echo_redecodes: AtomicU64,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("device", &self.device)
            .finish()
    }
}

use crate::model::quiet_whisper_logs;

impl WhisperModel {
    /// Load a ggml model file, to run on the CPU. The header is checked first, so a
    /// missing, foreign or damaged file gets a clear [`Error::BadModel`] instead of
    /// an abort inside whisper.cpp.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(path, Device::Cpu)
    }

    /// [`load`](Self::load) onto a device. A GPU needs a build with a GPU feature
    /// ([`Error::GpuNotBuilt`]) and must exist ([`Error::NoGpu`]; see [`gpu::check`]).
    pub fn load_on(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let path = path.as_ref();
        let header = read_ggml_header(path)?;
        gpu::check(device)?;
        quiet_whisper_logs();
        let mut params = WhisperContextParameters::default();
        match device {
            Device::Cpu => params.use_gpu(false),
            Device::Gpu(index) => {
                params.use_gpu(true).gpu_device(i32::try_from(index).unwrap_or(i32::MAX))
            }
        };
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| Error::BadModel {
            path: path.to_path_buf(),
            reason: format!("whisper.cpp refused it ({e})"),
        })?;
        Ok(Self {
            ctx,
            header,
            path: path.to_path_buf(),
            device,
            echo_redecodes: AtomicU64::new(0),
        })
    }

    /// Where the model runs.
    pub fn device(&self) -> Device {
        self.device
    }

    /// How many windows were decoded a second time, without the prompt, to check
    /// for its echoes (see [`TranscribeOptions::echo_check`]), by every user of this
    /// model since it was loaded.
    pub fn echo_redecodes(&self) -> u64 {
        self.echo_redecodes.load(Ordering::Relaxed)
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
        let plan = self.plan(opts)?;
        check_samples(samples)?;
        let mask = if opts.vad {
            let vad_opts = crate::audio::VadOptions::default();
            // whisper.cpp's own VAD (`FullParams::enable_vad`) runs only in
            // `whisper_full`; whisper-rs decodes with `whisper_full_with_state`, which
            // ignores it. So Silero runs here, as the mask.
            let mask = match &opts.vad_model {
                Some(path) => SileroVad::load(path, &vad_opts)?.speech_mask(samples)?,
                None => crate::audio::vad::speech_mask(samples, &vad_opts),
            };
            if !mask.iter().any(|&s| s) {
                return Ok(Vec::new());
            }
            Some(mask)
        } else {
            None
        };
        let frame_ms = (crate::audio::vad::FRAME * 1000 / WHISPER_SAMPLE_RATE as usize) as u64;
        let has_speech = |s: &Segment| match &mask {
            None => true,
            Some(mask) => {
                let first = (s.start_ms / frame_ms) as usize;
                let last = (s.end_ms.div_ceil(frame_ms) as usize).min(mask.len());
                mask.get(first..last.max(first + 1).min(mask.len()))
                    .is_some_and(|m| m.iter().any(|&v| v))
            }
        };
        let mut state = self.new_state()?;
        if !plan.is_mixed() {
            let choice = &plan.choices[0];
            let request = DecodeRequest::whole(choice, samples.len());
            let (kept, _) = self.decode_kept_with_progress(
                &mut state,
                samples,
                opts,
                &request,
                request.prompt,
                progress,
            )?;
            return Ok(kept.into_iter().map(|d| d.segment).filter(|s| has_speech(s)).collect());
        }
        // Several languages: each utterance's is detected, then runs of utterances in
        // the same language are decoded together (Whisper writes a sentence better
        // after the one before it), each run in its language.
        let mut progress = progress;
        let spans = match &mask {
            Some(mask) => utterance_spans(mask, samples.len()),
            None => fixed_spans(samples.len()),
        };
        let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // from, to, choice
        let mut detector = self.new_detection_state(opts, 10_000)?;
        for &(from, to) in &spans {
            let probs = self.detect_language(&mut detector, &samples[from..to], opts)?;
            let language = plan.choose_index(&probs);
            match runs.last_mut() {
                Some(last) if last.2 == language => last.1 = to,
                _ => runs.push((from, to, language)),
            }
        }
        let mut segments = Vec::new();
        for (i, &(from, to, language)) in runs.iter().enumerate() {
            let request = DecodeRequest::whole(&plan.choices[language], to - from);
            let offset_ms = from as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
            let (kept, _) =
                self.decode_kept(&mut state, &samples[from..to], opts, &request, request.prompt)?;
            segments.extend(
                kept.into_iter()
                    .map(|d| Segment {
                        start_ms: d.segment.start_ms + offset_ms,
                        end_ms: d.segment.end_ms + offset_ms,
                        text: d.segment.text,
                    })
                    .filter(|s| has_speech(s)),
            );
            progress(((i + 1) * 100 / runs.len()) as i32);
        }
        Ok(segments)
    }

    /// The language an utterance (16 kHz mono) is decoded in: with one choice in the
    /// plan, that one; with several, the one Whisper's language detection finds
    /// likeliest among them. Detection costs an encoder pass over as much audio as
    /// the state's last decode took (see [`new_detection_state`](Self::new_detection_state)).
    pub fn choose_language<'p>(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
        plan: &'p LanguagePlan,
    ) -> Result<&'p LanguageChoice> {
        if !plan.is_mixed() {
            return Ok(&plan.choices[0]);
        }
        Ok(plan.choose(&self.detect_language(state, samples, opts)?))
    }

    /// A decoding state for language detection alone, hearing the first `window_ms`
    /// of each utterance. whisper.cpp's detection encodes as much audio as the
    /// state's last decode did (all 30 s on a new state), and only a decode sets
    /// that: so a one-token decode of a second of silence sets it here, once.
    pub fn new_detection_state(
        &self,
        opts: &TranscribeOptions,
        window_ms: u64,
    ) -> Result<DecodeState> {
        let mut state = self.new_state()?;
        let request = DecodeRequest {
            language: Some("en"),
            audio_ctx: ((window_ms / 20) as i32).clamp(160, 1500),
            max_tokens: 1,
            ..Default::default()
        };
        let silence = vec![0.0; WHISPER_SAMPLE_RATE as usize];
        self.decode(&mut state, &silence, opts, &request)?;
        Ok(state)
    }

    /// Whisper's language probabilities for 16 kHz mono audio, indexed by language
    /// id (`en` 0, `zh` 1, …; see [`crate::asr::language`] for the `yue` trap).
    pub fn detect_language(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Vec<f32>> {
        if samples.is_empty() {
            return Err(Error::EmptyAudio);
        }
        let threads = opts.threads.max(1);
        // Less than a second of audio: pad with silence, as decoding does.
        let min = WHISPER_SAMPLE_RATE as usize;
        let padded;
        let audio = if samples.len() < min {
            let mut audio = samples.to_vec();
            audio.resize(min, 0.0);
            padded = audio;
            &padded
        } else {
            samples
        };
        state.state.pcm_to_mel(audio, threads).map_err(|e| Error::Whisper(e.to_string()))?;
        let (_, probs) =
            state.state.lang_detect(0, threads).map_err(|e| Error::Whisper(e.to_string()))?;
        Ok(probs)
    }

    /// A decoding state for this model: whisper.cpp's working memory for one
    /// stream. Make one per thread or stream and reuse it.
    pub fn new_state(&self) -> Result<DecodeState> {
        let state = self.ctx.create_state().map_err(|e| Error::Whisper(e.to_string()))?;
        Ok(DecodeState { state })
    }

    /// One decode of a window of 16 kHz mono audio, unfiltered: every segment
    /// Whisper wrote, with its no-speech probability and average log-probability,
    /// and (if asked) its text split into timed units. The building block of both
    /// [`transcribe`](Self::transcribe) and the streaming engine.
    pub fn decode(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
        request: &DecodeRequest<'_>,
    ) -> Result<Vec<Decoded>> {
        self.decode_with_progress(state, samples, opts, request, |_| {})
    }

    /// One decode of a window with the guards applied ([`keep_all`]), checked for
    /// echoes of `echo_prompt`: the fixed prompt (Cantonese, or the user's) at the
    /// start of the request's prompt, whose echoes are looked for. When the guards
    /// and [`TranscribeOptions::echo_check`] are on and a kept segment holds runs
    /// that may be copied from it ([`guards::echo_suspects`]), the window is decoded
    /// again with the request's prompt less `echo_prompt`, and in each segment the
    /// runs that decode does not confirm around the segment's time (a second either
    /// side) are dropped ([`guards::unconfirmed_echoes`]). The one building block of
    /// both [`transcribe`](Self::transcribe) and the streaming engine.
    ///
    /// Returns the kept segments, and whether the second decode ran.
    pub fn decode_kept(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
        request: &DecodeRequest<'_>,
        echo_prompt: &str,
    ) -> Result<(Vec<Decoded>, bool)> {
        self.decode_kept_with_progress(state, samples, opts, request, echo_prompt, |_| {})
    }

    fn decode_kept_with_progress(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
        request: &DecodeRequest<'_>,
        echo_prompt: &str,
        progress: impl FnMut(i32) + 'static,
    ) -> Result<(Vec<Decoded>, bool)> {
        let decoded = self.decode_with_progress(state, samples, opts, request, progress)?;
        let mut kept = keep_all(decoded, opts, echo_prompt);
        let rest = match request.prompt.strip_prefix(echo_prompt) {
            Some(rest) if opts.guards && opts.echo_check && !echo_prompt.is_empty() => rest,
            _ => return Ok((kept, false)),
        };
        if kept.iter().all(|d| guards::echo_suspects(&d.segment.text, echo_prompt).is_empty()) {
            return Ok((kept, false));
        }
        let unprompted_request = DecodeRequest { prompt: rest, units: false, ..request.clone() };
        let unprompted = self.decode(state, samples, opts, &unprompted_request)?;
        self.echo_redecodes.fetch_add(1, Ordering::Relaxed);
        for d in &mut kept {
            let (from, to) = (d.segment.start_ms.saturating_sub(1000), d.segment.end_ms + 1000);
            let heard: Vec<&str> = unprompted
                .iter()
                .filter(|u| u.segment.start_ms <= to && u.segment.end_ms >= from)
                .map(|u| u.segment.text.as_str())
                .collect();
            let heard = heard.join(" ");
            let dropped = guards::unconfirmed_echoes(&d.segment.text, &heard, echo_prompt);
            if !dropped.is_empty() {
                drop_units(&mut d.units, &dropped);
                d.segment.text =
                    guards::drop_unconfirmed_echoes(&d.segment.text, &heard, echo_prompt);
            }
        }
        kept.retain(|d| !d.segment.text.is_empty());
        Ok((kept, true))
    }

    fn decode_with_progress(
        &self,
        state: &mut DecodeState,
        samples: &[f32],
        opts: &TranscribeOptions,
        request: &DecodeRequest<'_>,
        progress: impl FnMut(i32) + 'static,
    ) -> Result<Vec<Decoded>> {
        check_samples(samples)?;
        let strategy = if opts.beam_size > 1 {
            SamplingStrategy::BeamSearch { beam_size: opts.beam_size as i32, patience: -1.0 }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_language(request.language);
        params.set_detect_language(false);
        params.set_translate(false);
        // whisper-rs panics on interior NUL bytes in the prompt.
        let prompt = request.prompt.replace('\0', "");
        if !prompt.is_empty() {
            params.set_initial_prompt(&prompt);
        }
        params.set_no_context(true);
        params.set_suppress_nst(opts.suppress_non_speech);
        params.set_suppress_blank(true);
        params.set_no_speech_thold(opts.no_speech_threshold);
        params.set_logprob_thold(opts.logprob_threshold);
        if !opts.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        params.set_token_timestamps(request.units);
        params.set_audio_ctx(request.audio_ctx);
        params.set_max_tokens(request.max_tokens);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_progress_callback_safe(progress);

        state.state.full(params, samples).map_err(|e| Error::Whisper(e.to_string()))?;

        let eot = self.ctx.token_eot();
        let audio_ms = samples.len() as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
        let mut out = Vec::new();
        for segment in state.state.as_iter() {
            let text = segment.to_str_lossy().map_err(|e| Error::Whisper(e.to_string()))?;
            let (mut logprob_sum, mut counted) = (0.0f32, 0);
            let mut units = UnitBuilder::default();
            for t in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(t) else { continue };
                let data = token.token_data();
                // Special tokens (timestamps, markers) sit at or above end-of-text.
                if data.id >= eot {
                    continue;
                }
                logprob_sum += data.plog;
                counted += 1;
                if request.units {
                    let bytes = token.to_bytes().map_err(|e| Error::Whisper(e.to_string()))?;
                    let t0 = (data.t0.max(0) as u64 * 10).min(audio_ms);
                    let t1 = (data.t1.max(0) as u64 * 10).clamp(t0, audio_ms.max(t0));
                    units.push(bytes, t0, t1);
                }
            }
            let start_ms = (segment.start_timestamp().max(0) as u64 * 10).min(audio_ms);
            let end_ms = (segment.end_timestamp().max(0) as u64 * 10)
                .clamp(start_ms, audio_ms.max(start_ms));
            out.push(Decoded {
                segment: Segment { start_ms, end_ms, text: text.trim().to_string() },
                no_speech_prob: segment.no_speech_probability(),
                avg_logprob: if counted > 0 { logprob_sum / counted as f32 } else { 0.0 },
                units: units.finish(),
            });
        }
        Ok(out)
    }
}

/// Audio Whisper can take: some samples, all finite.
fn check_samples(samples: &[f32]) -> Result<()> {
    if samples.is_empty() {
        return Err(Error::EmptyAudio);
    }
    if let Some((index, &value)) = samples.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(Error::NonFiniteSample { index, value });
    }
    Ok(())
}

/// [`keep`] for each segment of one decode, also dropping a segment that repeats
/// the one before it (see [`guards::repeats_previous`]).
pub fn keep_all(decoded: Vec<Decoded>, opts: &TranscribeOptions, prompt: &str) -> Vec<Decoded> {
    let mut kept: Vec<Decoded> = Vec::with_capacity(decoded.len());
    for d in decoded.into_iter().filter_map(|d| keep(d, opts, prompt)) {
        let repeat = opts.guards
            && kept
                .last()
                .is_some_and(|p| guards::repeats_previous(&p.segment.text, &d.segment.text));
        if !repeat {
            kept.push(d);
        }
    }
    kept
}

/// Should this decoded segment be kept, under the options' thresholds and guards?
/// Returns it with its text cleaned (repetition loops cut) if so.
/// `prompt` is the prompt the decode was given (its echoes are dropped).
pub fn keep(mut decoded: Decoded, opts: &TranscribeOptions, prompt: &str) -> Option<Decoded> {
    let no_speech = decoded.no_speech_prob;
    if decoded.avg_logprob < opts.logprob_threshold && no_speech > opts.no_speech_threshold / 2.0 {
        return None;
    }
    if opts.guards {
        if guards::is_known_hallucination(&decoded.segment.text)
            || guards::is_prompt_echo(&decoded.segment.text, prompt)
        {
            return None;
        }
        let echoes = guards::prompt_echoes(&decoded.segment.text, prompt);
        if !echoes.is_empty() {
            drop_units(&mut decoded.units, &echoes);
            decoded.segment.text = guards::strip_prompt_echoes(&decoded.segment.text, prompt);
        }
        let trimmed = guards::trim_repetition(&decoded.segment.text);
        if trimmed.len() != decoded.segment.text.len() {
            let keep_chars = trimmed.chars().filter(|c| !c.is_whitespace()).count();
            let mut seen = 0;
            decoded.units.retain(|u| {
                seen += u.text.chars().count();
                seen <= keep_chars
            });
            decoded.segment.text = trimmed;
        }
    }
    (!decoded.segment.text.is_empty()).then_some(decoded)
}

/// Drop the units whose characters all lie in `ranges` (over the text's non-space
/// characters, which the units hold in order).
fn drop_units(units: &mut Vec<Unit>, ranges: &[std::ops::Range<usize>]) {
    let mut at = 0;
    units.retain(|u| {
        let len = u.text.chars().count();
        let range = at..at + len;
        at += len;
        !range.clone().all(|i| ranges.iter().any(|e| e.contains(&i)))
    });
}

/// What one decode is asked to do.
#[derive(Debug, Clone, Default)]
pub struct DecodeRequest<'a> {
    /// Initial prompt (committed text, a Cantonese prompt); may be empty.
    pub prompt: &'a str,
    /// Language code for whisper.cpp; `None` detects.
    pub language: Option<&'a str>,
    /// Encoder frames to use (50 per second of audio; 0 = the full 1500, 30 s).
    /// Smaller is much faster for short windows.
    pub audio_ctx: i32,
    /// Split the text into timed [`Unit`]s (token timestamps; a little slower).
    pub units: bool,
    /// Stop a window's decode after this many tokens (0 = Whisper's own limit, 224).
    /// A bound proportional to the audio stops repetition loops from costing a
    /// full-length decode.
    pub max_tokens: i32,
}

impl<'a> DecodeRequest<'a> {
    /// A whole-file decode of `samples` 16 kHz samples in one language: its token
    /// and prompt, the encoder window of [`whole_audio_ctx`], no units, Whisper's
    /// own token limit.
    pub fn whole(choice: &'a LanguageChoice, samples: usize) -> Self {
        Self {
            prompt: choice.prompt.as_deref().unwrap_or(""),
            language: choice.whisper.as_deref(),
            audio_ctx: whole_audio_ctx(samples),
            ..Default::default()
        }
    }
}

/// The encoder window for decoding `samples` 16 kHz samples whole: audio shorter
/// than 15 s is encoded in a window twice its length (at least its length plus
/// 2.56 s, and 3.2 s), not Whisper's full 30 s, so a 2 s clip costs about an eighth
/// of a full window. A window ending close behind the speech makes Whisper invent
/// an ending; twice the audio kept the words of whole-sentence clips (see
/// BENCHMARKS.md). Longer audio gets the full window (0): whisper.cpp keeps one
/// window size for all of a decode's 30 s windows, so the last window of a long
/// file is not scaled.
pub fn whole_audio_ctx(samples: usize) -> i32 {
    let ms = samples as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
    let frames = (ms / 20) as i32;
    let ctx = frames + frames.max(SPARE_FRAMES);
    if ctx >= 1500 {
        0
    } else {
        ctx.max(160)
    }
}

/// Encoder frames given beyond the audio's own (2.56 s): a window that ends right
/// where the speech does makes Whisper invent an ending or loop.
pub(crate) const SPARE_FRAMES: i32 = 128;

/// Utterances to decode one by one, as sample ranges: the runs of speech in a
/// voice-activity mask (one flag per [`FRAME`](crate::audio::vad::FRAME) of
/// samples), joined across pauses shorter than half a second, with a fifth of a
/// second of the audio around each.
fn utterance_spans(mask: &[bool], total: usize) -> Vec<(usize, usize)> {
    const FRAME: usize = crate::audio::vad::FRAME;
    let per_ms = WHISPER_SAMPLE_RATE as usize / 1000;
    let (join, margin) = (500 * per_ms, 200 * per_ms);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < mask.len() {
        if !mask[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < mask.len() && mask[i] {
            i += 1;
        }
        let (from, to) = ((start * FRAME).saturating_sub(margin), (i * FRAME + margin).min(total));
        match spans.last_mut() {
            Some(last) if from <= last.1 + join => last.1 = to,
            _ => spans.push((from, to)),
        }
    }
    spans
}

/// Without voice activity detection: 30-second pieces (Whisper's window).
fn fixed_spans(total: usize) -> Vec<(usize, usize)> {
    let window = 30 * WHISPER_SAMPLE_RATE as usize;
    (0..total).step_by(window).map(|from| (from, (from + window).min(total))).collect()
}

/// whisper.cpp's working memory for one stream; see [`WhisperModel::new_state`].
pub struct DecodeState {
    state: whisper_rs::WhisperState,
}

impl std::fmt::Debug for DecodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecodeState")
    }
}

/// One segment as Whisper wrote it, before any filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Times (relative to the decoded window) and trimmed text.
    pub segment: Segment,
    /// Whisper's probability that the window holds no speech.
    pub no_speech_prob: f32,
    /// Average log-probability of the text tokens.
    pub avg_logprob: f32,
    /// The text as timed units (when asked for): one per CJK character or
    /// punctuation mark, one per Latin word or number.
    pub units: Vec<Unit>,
}

/// The smallest piece of text the streaming engine agrees on and commits: a CJK
/// character, a punctuation mark, or a Latin word or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The text, without surrounding spaces.
    pub text: String,
    /// Whether a space separates it from the previous unit.
    pub space_before: bool,
    /// Start, in ms from the start of the decoded window.
    pub start_ms: u64,
    /// End, in ms from the start of the decoded window.
    pub end_ms: u64,
}

/// Join units back into text, spacing Latin words as Whisper did.
pub fn join_units(units: &[Unit]) -> String {
    let mut text = String::new();
    for (i, u) in units.iter().enumerate() {
        if i > 0 && u.space_before {
            text.push(' ');
        }
        text.push_str(&u.text);
    }
    text
}

/// Is this character written as a unit of its own (CJK ideographs, kana, hangul,
/// full-width and CJK punctuation)?
fn stands_alone(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}' | '\u{FF00}'..='\u{FFEF}' | '\u{20000}'..='\u{3FFFF}')
}

/// Builds units from token bytes (a token may hold part of a UTF-8 character).
#[derive(Default)]
struct UnitBuilder {
    units: Vec<Unit>,
    bytes: Vec<u8>,
    bytes_start: Option<u64>,
    pending_space: bool,
    in_word: bool,
}

impl UnitBuilder {
    fn push(&mut self, token: &[u8], t0: u64, t1: u64) {
        if self.bytes.is_empty() {
            self.bytes_start = Some(t0);
        }
        self.bytes.extend_from_slice(token);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => self.bytes.len(), // invalid: take it lossily
            Err(e) => e.valid_up_to(),
        };
        if valid == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&self.bytes[..valid]).into_owned();
        self.bytes.drain(..valid);
        let start = self.bytes_start.unwrap_or(t0);
        self.bytes_start = if self.bytes.is_empty() { None } else { Some(t0) };
        for c in text.chars() {
            if c.is_whitespace() {
                self.pending_space = true;
                self.in_word = false;
            } else if stands_alone(c) {
                self.units.push(Unit {
                    text: c.to_string(),
                    space_before: std::mem::take(&mut self.pending_space),
                    start_ms: start,
                    end_ms: t1,
                });
                self.in_word = false;
            } else if self.in_word {
                let last = self.units.last_mut().expect("in a word");
                last.text.push(c);
                last.end_ms = t1;
            } else {
                self.units.push(Unit {
                    text: c.to_string(),
                    space_before: std::mem::take(&mut self.pending_space),
                    start_ms: start,
                    end_ms: t1,
                });
                self.in_word = true;
            }
        }
    }

    fn finish(self) -> Vec<Unit> {
        self.units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_files_under_30_s_get_a_window_scaled_to_their_length() {
        let s = |secs: f64| (secs * f64::from(WHISPER_SAMPLE_RATE)) as usize;
        // 2 s: 100 frames of audio and 128 spare.
        assert_eq!(whole_audio_ctx(s(2.0)), 228);
        // Very short audio still gets 3.2 s.
        assert_eq!(whole_audio_ctx(s(0.2)), 160);
        assert_eq!(whole_audio_ctx(0), 160);
        // Past 2.56 s the window is twice the audio: 10 s, 500 frames of audio and
        // 500 spare.
        assert_eq!(whole_audio_ctx(s(10.0)), 1000);
        assert_eq!(whole_audio_ctx(s(14.9)), 1490);
        // From 15 s that reaches the full window: whisper.cpp's default.
        assert_eq!(whole_audio_ctx(s(15.0)), 0);
        assert_eq!(whole_audio_ctx(s(27.5)), 0);
        assert_eq!(whole_audio_ctx(s(30.0)), 0);
        assert_eq!(whole_audio_ctx(s(600.0)), 0);
    }

    #[test]
    fn units_split_cjk_by_character_and_latin_by_word() {
        let mut b = UnitBuilder::default();
        b.push("我哋".as_bytes(), 0, 100);
        b.push(" send".as_bytes(), 100, 200);
        b.push(" e".as_bytes(), 200, 250);
        b.push("mail".as_bytes(), 250, 300);
        b.push("俾你。".as_bytes(), 300, 400);
        let units = b.finish();
        let texts: Vec<&str> = units.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(texts, ["我", "哋", "send", "email", "俾", "你", "。"]);
        assert_eq!(join_units(&units), "我哋 send email俾你。");
        assert_eq!(units[3].start_ms, 200);
        assert_eq!(units[3].end_ms, 300);
    }

    #[test]
    fn utterances_are_the_speech_runs_joined_across_short_pauses() {
        const FRAME: usize = crate::audio::vad::FRAME; // 20 ms
        let ms = |n: usize| n * 16;
        // Speech 1.0–2.0 s, a 0.3 s pause, 2.3–3.0 s, a 2 s pause, 5.0–6.0 s.
        let mut mask = vec![false; 400];
        for range in [50..100, 115..150, 250..300] {
            mask[range].iter_mut().for_each(|m| *m = true);
        }
        let total = 400 * FRAME;
        let spans = utterance_spans(&mask, total);
        assert_eq!(spans, [(ms(800), ms(3200)), (ms(4800), ms(6200))]);
        // Margins stop at the ends of the audio.
        let mut edge = vec![true; 10];
        edge.extend([false; 10]);
        assert_eq!(utterance_spans(&edge, 20 * FRAME), [(0, ms(400))]);
        assert_eq!(utterance_spans(&[false; 10], 10 * FRAME), []);
        assert_eq!(fixed_spans(ms(65_000)).len(), 3);
        assert_eq!(fixed_spans(ms(65_000))[2], (ms(60_000), ms(65_000)));
    }

    #[test]
    fn a_character_split_across_tokens_is_rebuilt() {
        let bytes = "嘅".as_bytes();
        let mut b = UnitBuilder::default();
        b.push(&bytes[..1], 0, 10);
        b.push(&bytes[1..], 10, 20);
        let units = b.finish();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].text, "嘅");
        assert_eq!(units[0].start_ms, 0);
        assert_eq!(units[0].end_ms, 20);
    }
}
