//! Streaming: Whisper made live.
//!
//! Whisper decodes windows of up to 30 s; it has no notion of a stream. The
//! [`StreamingTranscriber`] makes it one, with the policy of ufal's
//! whisper_streaming, adapted for captions:
//!
//! - Audio is pushed at any rate and channel count, resampled to 16 kHz and kept in
//!   a rolling buffer of *uncommitted* audio.
//! - Every step (default 1 s of new audio) the buffer is decoded, with the
//!   committed text as prompt and the encoder window (`audio_ctx`) scaled to the
//!   buffer, so a 3 s buffer costs a tenth of a 30 s one.
//! - **LocalAgreement-2**: the prefix on which two consecutive hypotheses agree is
//!   stable. It is committed up to its last sentence punctuation (or whole, once it
//!   is older than `commit_after_ms`), so finals read as sentences, not word
//!   fragments.
//! - **Endpoint**: when voice activity has seen a pause of `endpoint_ms` after speech,
//!   the whole hypothesis is committed. That decode replays the previous utterance
//!   first (`context_ms`): Whisper hears a sentence that follows another far better
//!   than one alone (on the test clip, streaming word error rate 5.6 % instead of
//!   8.8 %, offline 1.6 %). The words it re-decodes are cut off by aligning them
//!   with what was committed, not by Whisper's rough word times, and the prompt then
//!   leaves that text out, or Whisper would take the audio as already transcribed.
//! - A step with no new speech since the last decode is skipped.
//! - Committed text is emitted once as a [`CaptionEvent::Final`] and never changes;
//!   the rest is a [`CaptionEvent::Partial`] that replaces the previous partial.
//! - Committed audio stays in the buffer (cutting at a word boundary that Whisper's
//!   timestamps place only roughly would garble the next word); new hypotheses drop
//!   what was already committed, by time and by matching the last committed words.
//!   The buffer is trimmed at endpoints, and at the last commit once it passes
//!   `trim_after_ms`, so cost stays flat for hours; a hard cap (`max_buffer_ms`)
//!   forces a commit at the widest gap between words.
//! - Guards: no decoding without speech; Whisper's no-speech and log-probability
//!   signals, the subtitle-credit filter, the prompt-echo check (a window whose
//!   text follows the Cantonese prompt is decoded again without it, counted in
//!   [`StreamStats::echo_redecodes`]) and the loop cutter from
//!   [`guards`](super::guards).
//!
//! Time inside is the audio pushed, so the same samples always give the same events.
//! Pushing much audio at once (because decoding fell behind) makes the next step
//! longer: the engine catches up instead of queueing decodes, and reports how far
//! behind it was as `lag_ms`.

use std::sync::Arc;
use std::time::Instant;

use super::language::LanguagePlan;
use super::slots::DecodeSlots;
use super::whisper::{
    join_units, DecodeRequest, DecodeState, TranscribeOptions, Unit, WhisperModel, SPARE_FRAMES,
};
use crate::audio::{StreamResampler, Vad, VadOptions, WHISPER_SAMPLE_RATE};
pub use crate::segment::CaptionEvent;
use crate::Result;

const SAMPLES_PER_MS: u64 = WHISPER_SAMPLE_RATE as u64 / 1000;

/// Audio kept with an utterance past the end of its speech, at most (half the
/// silence after it when that is shorter).
const END_PAD_MS: u64 = 300;

/// Streaming settings, with documented defaults.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Decoding settings (language, threads, thresholds, guards). The engine always
    /// decodes without temperature fallback, whatever this says.
    pub transcribe: TranscribeOptions,
    /// Voice activity settings. With `transcribe.vad_model` set, Silero VAD replaces
    /// the built-in detector (and only `hangover_ms` applies); the `cantocap` command
    /// sets it by default (see
    /// [`TranscribeOptions::vad_model`](crate::asr::TranscribeOptions::vad_model)).
    pub vad: VadOptions,
    /// New audio between decodes. Default 1000 ms.
    pub step_ms: u64,
    /// The share of real time partial decodes may take: after a partial decode
    /// that took `t` of wall-clock time, the next one waits for `t / partial_budget`
    /// of new audio when that is longer than `step_ms`. Partials then cost a bounded
    /// share of the compute, and thin out by themselves on a slow machine, a large
    /// model or a busy server; finals (decoded when an utterance ends) do not wait.
    /// 0 turns it off: a partial every `step_ms`, and the same audio always gives
    /// the same events, however fast the machine. Default 0.15.
    pub partial_budget: f32,
    /// Decode slots this stream shares with others (a server's streams, say): its
    /// decodes run only in a slot, finals queue for one, partials are skipped when
    /// none is free. `None` (the default): the stream decodes whenever it needs to.
    pub decode_slots: Option<Arc<DecodeSlots>>,
    /// A pause this long after speech ends an utterance: commit it. Default 600 ms.
    pub endpoint_ms: u64,
    /// Agreed text is committed even without sentence punctuation once it started
    /// this long before the end of the buffer. Default 5000 ms.
    pub commit_after_ms: u64,
    /// Once the buffer is this long, committed audio is trimmed from it. Default 12 000 ms.
    pub trim_after_ms: u64,
    /// Hard cap on buffered audio; past it a commit is forced. Default 20 000 ms.
    pub max_buffer_ms: u64,
    /// Characters of committed text given to Whisper as prompt. Default 100.
    pub prompt_chars: usize,
    /// The previous utterance, if it is no longer than this, is decoded again
    /// before the next one when that ends, and the words it gives are matched
    /// against what was committed and dropped: Whisper hears a lone sentence much
    /// worse than one that follows another. 0 turns it off. Default 8000 ms.
    pub context_ms: u64,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            transcribe: TranscribeOptions::default(),
            vad: VadOptions::default(),
            step_ms: 1000,
            partial_budget: 0.15,
            decode_slots: None,
            endpoint_ms: 600,
            commit_after_ms: 6000,
            trim_after_ms: 12_000,
            max_buffer_ms: 20_000,
            prompt_chars: 100,
            context_ms: 8000,
        }
    }
}

/// Counters for benchmarks and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    /// Audio pushed, in ms (16 kHz).
    pub pushed_ms: u64,
    /// Decodes run.
    pub decodes: u64,
    /// Wall time spent decoding, in ms.
    pub compute_ms: u64,
    /// Audio decoded, summed over decodes (a measure of the work), in ms.
    pub decoded_audio_ms: u64,
    /// Of `decodes`, those at an utterance's end (or a turn's, or the stream's),
    /// which commit everything; the rest are partial decodes.
    pub endpoint_decodes: u64,
    /// Of `compute_ms`, the time spent in endpoint decodes.
    pub endpoint_compute_ms: u64,
    /// Windows decoded a second time, without the Cantonese prompt, because their
    /// text held runs of its characters (see
    /// [`TranscribeOptions::echo_check`](crate::asr::TranscribeOptions::echo_check)).
    /// Not counted in `decodes`; their time is in `compute_ms`, their audio in
    /// `decoded_audio_ms`.
    pub echo_redecodes: u64,
    /// Language detections run (with several languages, until an utterance's is
    /// settled; each costs about an encoder pass).
    pub language_detections: u64,
    /// Uncommitted audio now, in ms.
    pub buffer_ms: u64,
    /// Largest uncommitted buffer seen, in ms.
    pub max_buffer_ms: u64,
    /// Finals emitted.
    pub finals: u64,
    /// Partials emitted.
    pub partials: u64,
    /// Partial decodes skipped because every shared decode slot was busy or a final
    /// was waiting for one (see [`StreamOptions::decode_slots`]). A skipped partial
    /// is tried again with each push until it runs, and each try counts.
    pub partials_skipped: u64,
}

/// Live transcription of one audio stream. See the [module docs](self).
pub struct StreamingTranscriber {
    model: Arc<WhisperModel>,
    state: DecodeState,
    opts: StreamOptions,
    plan: LanguagePlan,
    /// The current utterance's language (an index into `plan.choices`), and whether
    /// it is settled (heard long enough, or text already committed in it).
    language: Option<usize>,
    language_settled: bool,
    /// How sure the last detection was of `language` (`None`: not detected).
    language_probability: Option<f32>,
    /// The language of the last commit: committed text is prompt and context only
    /// for an utterance in the same language.
    committed_language: Option<usize>,
    /// How sure detection was of the committed language (1.0 when given).
    committed_probability: f32,
    resampler: StreamResampler,
    vad: Vad,
    scratch: Vec<f32>,
    /// Uncommitted 16 kHz audio; `buffer[0]` is sample `buffer_start` of the stream.
    buffer: Vec<f32>,
    buffer_start: u64,
    pushed: u64,
    last_decode: u64,
    /// New audio the next partial decode waits for (`step_ms`, or longer after a
    /// slow partial: see [`StreamOptions::partial_budget`]), in samples.
    next_step: u64,
    /// Stream sample up to which the last decode heard the audio.
    decoded_to: u64,
    /// The end of the previous utterance (already committed, trimmed from the
    /// buffer), replayed before the next one at its endpoint; and its units.
    context: Vec<f32>,
    context_units: Vec<Unit>,
    /// Hypothesis of the previous decode, units after the commit point, absolute ms.
    previous: Vec<Unit>,
    /// Committed text whose audio has left the buffer: the prompt.
    committed_text: String,
    /// Committed units whose audio is still in the buffer.
    committed_in_buffer: Vec<Unit>,
    /// Last committed units (for removing re-decoded overlap).
    committed_tail: Vec<Unit>,
    committed_end_ms: u64,
    next_segment: u64,
    revision: u32,
    partial_text: String,
    stats: StreamStats,
}

impl std::fmt::Debug for StreamingTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingTranscriber").field("stats", &self.stats).finish()
    }
}

impl StreamingTranscriber {
    /// A stream of audio at `sample_rate` Hz with `channels` interleaved channels.
    pub fn new(
        model: Arc<WhisperModel>,
        sample_rate: u32,
        channels: u16,
        opts: StreamOptions,
    ) -> Result<Self> {
        let mut opts = opts;
        opts.transcribe.temperature_fallback = false;
        let plan = model.plan(&opts.transcribe)?;
        let state = model.new_state()?;
        let first_step = opts.step_ms * SAMPLES_PER_MS;
        Ok(Self {
            resampler: StreamResampler::new(sample_rate, channels)?,
            vad: Vad::new(&opts.vad, opts.transcribe.vad_model.as_deref())?,
            model,
            state,
            plan,
            language: None,
            language_settled: false,
            language_probability: None,
            committed_language: None,
            committed_probability: 1.0,
            opts,
            scratch: Vec::with_capacity(WHISPER_SAMPLE_RATE as usize),
            buffer: Vec::with_capacity(WHISPER_SAMPLE_RATE as usize * 32),
            buffer_start: 0,
            pushed: 0,
            last_decode: 0,
            next_step: first_step,
            decoded_to: 0,
            context: Vec::new(),
            context_units: Vec::new(),
            previous: Vec::new(),
            committed_text: String::new(),
            committed_in_buffer: Vec::new(),
            committed_tail: Vec::new(),
            committed_end_ms: 0,
            next_segment: 1,
            revision: 0,
            partial_text: String::new(),
            stats: StreamStats::default(),
        })
    }

    /// Stream time (ms) where the uncommitted audio starts: no final still to come
    /// starts before it.
    pub fn pending_from_ms(&self) -> u64 {
        self.buffer_start / SAMPLES_PER_MS
    }

    /// The language of the last committed text, as the user names it (`yue`, `en`),
    /// with how sure detection was (1.0 when the language was given, not detected);
    /// `None` before the first commit.
    pub fn committed_language(&self) -> Option<(&str, f32)> {
        let choice = &self.plan.choices[self.committed_language?];
        Some((choice.code.as_str(), self.committed_probability))
    }

    /// The language plan in use (for telling the user about `zh` + prompt).
    pub fn plan(&self) -> &LanguagePlan {
        &self.plan
    }

    /// Counters so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Push interleaved samples (any amount, even part of a frame); returns the
    /// events this audio caused.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<CaptionEvent>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = self.resampler.push(samples, &mut scratch);
        let events = result.and_then(|()| self.push_16k(&scratch, false));
        self.scratch = scratch;
        events
    }

    /// The speaker's turn ended (a client said so, e.g. OpenAI's
    /// `input_audio_buffer.commit`): decode what was pushed, commit all of it as at
    /// an utterance's end, and return the events; the stream goes on, and the next
    /// audio starts a new utterance.
    pub fn end_turn(&mut self) -> Result<Vec<CaptionEvent>> {
        self.push_16k(&[], true)
    }

    /// Forget the audio of the current turn that is not committed yet (a client
    /// cleared its input buffer, e.g. OpenAI's `input_audio_buffer.clear`): what
    /// is committed stays; the partial on screen is not finalised, and the next
    /// utterance's partials take its segment id.
    pub fn discard_turn(&mut self) {
        self.flush_committed();
        self.trim_to(self.pushed);
        self.context.clear();
        self.context_units.clear();
        self.previous.clear();
        self.partial_text.clear();
        self.revision = 0;
        self.language = None;
        self.language_probability = None;
        self.language_settled = false;
        self.last_decode = self.pushed;
        self.decoded_to = self.pushed;
        self.update_buffer_stats();
    }

    /// The stream ended: decode what is left, commit everything, and return the
    /// last events. The transcriber can not be used after this.
    pub fn finish(&mut self) -> Result<Vec<CaptionEvent>> {
        let mut tail = Vec::new();
        self.resampler.flush(&mut tail)?;
        self.push_16k(&tail, true)
    }

    fn push_16k(&mut self, samples: &[f32], finish: bool) -> Result<Vec<CaptionEvent>> {
        self.vad.push(samples)?;
        self.buffer.extend_from_slice(samples);
        self.pushed += samples.len() as u64;
        self.stats.pushed_ms = self.pushed / SAMPLES_PER_MS;
        let mut events = Vec::new();

        let since = self.pushed - self.last_decode;
        let step = self.next_step;
        let speech_end = self.vad.last_speech_end().filter(|&end| end > self.buffer_start);
        // An utterance just ended: decode now rather than at the next step, which
        // keeps final latency down.
        let endpoint = speech_end.is_some_and(|end| {
            !self.vad.in_speech()
                && self.pushed.saturating_sub(end) >= self.opts.endpoint_ms * SAMPLES_PER_MS
        });
        if since < step && !finish && !endpoint {
            return Ok(events);
        }
        let lag_ms = since.saturating_sub(step) / SAMPLES_PER_MS;
        let decoded_before = self.last_decode;
        self.last_decode = self.pushed;

        let Some(speech_end) = speech_end else {
            // No speech in the buffer: nothing to decode. Keep a little audio so a
            // word starting right now is not clipped.
            self.trim_to(self.pushed.saturating_sub(300 * SAMPLES_PER_MS));
            self.language = None;
            self.language_probability = None;
            self.language_settled = false;
            if finish {
                self.finalize_partial(&mut events, lag_ms);
            }
            self.update_buffer_stats();
            return Ok(events);
        };

        let quiet_since_last_decode = !self.vad.in_speech() && speech_end <= self.decoded_to;
        if quiet_since_last_decode && !finish && !endpoint {
            // The last decode heard all the speech there is: the same audio plus
            // silence would decode the same. Wait for the endpoint.
            self.update_buffer_stats();
            return Ok(events);
        }
        // Shared decode slots: a final waits its turn; a partial takes a free slot
        // or is skipped, and the next audio tries again.
        let slots = self.opts.decode_slots.clone();
        let _slot = match &slots {
            None => None,
            Some(slots) if finish || endpoint => Some(slots.acquire()),
            Some(slots) => match slots.try_acquire() {
                Some(slot) => Some(slot),
                None => {
                    self.last_decode = decoded_before;
                    self.stats.partials_skipped += 1;
                    self.update_buffer_stats();
                    return Ok(events);
                }
            },
        };
        let units = self.decode(finish || endpoint)?;

        if finish || endpoint {
            // The last decode may come back empty (a guard dropped it, Whisper gave
            // up on a short tail): the partial on screen is then the best we have,
            // and a partial is never left unfinalised.
            let units = if units.is_empty() { std::mem::take(&mut self.previous) } else { units };
            self.commit(&units, units.len(), &mut events, lag_ms);
            self.previous.clear();
            // The next utterance may be in another language.
            self.language = None;
            self.language_probability = None;
            self.language_settled = false;
            // Everything up to the end of speech is done: it is the next utterance's
            // context, and the buffer starts over a little after it. Voice activity
            // ends speech where the voice falls under its threshold, often inside
            // the fading tail of the last word; left in the buffer, that tail opens
            // the next utterance and Whisper hears a word in it ("today." closing
            // one sentence, "day." opening the next). The context does not take
            // the tail either: its re-decoded words are matched to what was
            // committed, and a longer context changes what Whisper hears after it.
            let end = if finish { self.pushed } else { speech_end.max(self.buffer_start) };
            self.keep_context(end);
            let pad = (END_PAD_MS * SAMPLES_PER_MS).min(self.pushed.saturating_sub(end) / 2);
            self.trim_to(end + pad);
            // The utterance is over: words Whisper timed past its end are committed
            // text all the same, not audio the next utterance must skip.
            self.flush_committed();
        } else {
            let agreed = agreed_prefix(&self.previous, &units);
            let buffer_end_ms = self.pushed / SAMPLES_PER_MS;
            let mut cut = commit_point(&units[..agreed], buffer_end_ms, self.opts.commit_after_ms);
            let over_cap = self.buffer.len() as u64 > self.opts.max_buffer_ms * SAMPLES_PER_MS;
            if cut == 0 && over_cap && self.committed_in_buffer.is_empty() {
                cut = forced_cut(&units, buffer_end_ms);
            }
            if cut > 0 {
                self.commit(&units, cut, &mut events, lag_ms);
            }
            let long = self.buffer.len() as u64 > self.opts.trim_after_ms * SAMPLES_PER_MS;
            if (long || over_cap) && !self.committed_in_buffer.is_empty() {
                self.trim_to(self.committed_end_ms * SAMPLES_PER_MS);
            } else if over_cap && units.is_empty() {
                // Speech-like noise that decodes to nothing: let the oldest part go.
                self.trim_to(self.pushed - self.opts.max_buffer_ms * SAMPLES_PER_MS / 2);
            }
            self.previous = units[cut..].to_vec();
            self.emit_partial(&units[cut..], &mut events, lag_ms);
        }
        self.update_buffer_stats();
        Ok(events)
    }

    fn update_buffer_stats(&mut self) {
        self.stats.buffer_ms = self.buffer.len() as u64 / SAMPLES_PER_MS;
        self.stats.max_buffer_ms = self.stats.max_buffer_ms.max(self.stats.buffer_ms);
    }

    /// Before trimming the buffer to stream sample `end` at an endpoint: keep the
    /// utterance's audio and the units committed from it as the next one's
    /// context, if it is no longer than `context_ms` (Whisper's word times are too
    /// rough to cut a longer one into audio and words that match).
    fn keep_context(&mut self, end: u64) {
        let end = end.clamp(self.buffer_start, self.pushed);
        let len = (end - self.buffer_start) as usize;
        self.context.clear();
        self.context_units.clear();
        if len as u64 > self.opts.context_ms * SAMPLES_PER_MS || self.committed_in_buffer.is_empty()
        {
            return;
        }
        self.context.extend_from_slice(&self.buffer[..len]);
        self.context_units.extend_from_slice(&self.committed_in_buffer);
    }

    /// Decode the buffer (at an utterance's end, after the previous utterance's
    /// audio: see [`StreamOptions::context_ms`]); the units of what survives the
    /// guards, in absolute ms, with any overlap with already committed text removed.
    fn decode(&mut self, last: bool) -> Result<Vec<Unit>> {
        self.decoded_to = self.pushed;
        let started = Instant::now();
        let language = self.utterance_language(last)?;
        let same_language = self.committed_language.is_none_or(|l| l == language);
        let with_context = same_language
            && last
            && !self.context.is_empty()
            && self.committed_in_buffer.is_empty();
        // The context, a short gap, then the buffer.
        const GAP: usize = 200 * SAMPLES_PER_MS as usize;
        let lead = if with_context { self.context.len() + GAP } else { 0 };
        let lead_ms = lead as u64 / SAMPLES_PER_MS;
        let buffer_ms = self.buffer.len() as u64 / SAMPLES_PER_MS;
        let window_ms = lead_ms + buffer_ms;
        // 50 encoder frames per second of audio, plus a margin; 1500 is the full 30 s.
        // Too tight a window makes Whisper loop or invent an ending: keep 2.5 s
        // spare, and at least 3.2 s in all.
        let audio_ctx = ((window_ms / 20) as i32 + SPARE_FRAMES).clamp(160, 1500);
        let choice = &self.plan.choices[language];
        let mut prompt = choice.prompt.clone().unwrap_or_default();
        // The context's own text is left out of the prompt: given it, Whisper
        // takes that audio as transcribed already and skips it.
        let mut committed = self.committed_text.as_str();
        if with_context {
            let context_text = join_units(&self.context_units);
            committed =
                committed.trim_end().strip_suffix(context_text.as_str()).unwrap_or(committed);
        }
        if same_language {
            let tail_start = committed.chars().count().saturating_sub(self.opts.prompt_chars);
            prompt.extend(committed.chars().skip(tail_start));
        }
        let request = DecodeRequest {
            prompt: &prompt,
            language: choice.whisper.as_deref(),
            audio_ctx,
            units: true,
            // Fast Cantonese runs about 6 characters (8 tokens) a second.
            max_tokens: (12 * window_ms / 1000 + 16) as i32,
        };
        // Whisper needs at least a little audio; pad very short buffers with silence.
        let min = WHISPER_SAMPLE_RATE as usize;
        let joined;
        let audio: &[f32] = if with_context || self.buffer.len() < min {
            let mut audio = Vec::with_capacity((lead + self.buffer.len()).max(min));
            if with_context {
                audio.extend_from_slice(&self.context);
                audio.resize(lead, 0.0);
            }
            audio.extend_from_slice(&self.buffer);
            audio.resize(audio.len().max(min), 0.0);
            joined = audio;
            &joined
        } else {
            &self.buffer
        };
        // Echoes are judged against the fixed prompt only: a speaker may well
        // repeat what was committed. The check for them decodes again with the
        // committed text alone as prompt.
        let initial_prompt = choice.prompt.as_deref().unwrap_or("");
        let (kept, redecoded) = self.model.decode_kept(
            &mut self.state,
            audio,
            &self.opts.transcribe,
            &request,
            initial_prompt,
        )?;
        self.stats.decodes += 1;
        self.stats.echo_redecodes += u64::from(redecoded);
        let spent = started.elapsed().as_millis() as u64;
        self.stats.compute_ms += spent;
        let step_ms = self.opts.step_ms;
        self.next_step = SAMPLES_PER_MS
            * if last {
                self.stats.endpoint_decodes += 1;
                self.stats.endpoint_compute_ms += spent;
                // A new utterance starts: its first partial comes a step in.
                step_ms
            } else if self.opts.partial_budget > 0.0 {
                step_ms.max((spent as f64 / f64::from(self.opts.partial_budget)) as u64)
            } else {
                step_ms
            };
        self.stats.decoded_audio_ms += window_ms * (1 + u64::from(redecoded));

        let offset_ms = self.buffer_start / SAMPLES_PER_MS;
        let mut units: Vec<Unit> = kept
            .into_iter()
            .flat_map(|d| d.units)
            .filter(|u| u.start_ms <= window_ms) // nothing from the padding
            .collect();
        if with_context {
            let n = context_overlap(&self.context_units, &units, lead_ms);
            units.drain(..n);
        }
        let mut units: Vec<Unit> = units
            .into_iter()
            .map(|mut u| {
                u.start_ms = u.start_ms.saturating_sub(lead_ms);
                u.end_ms = u.end_ms.saturating_sub(lead_ms);
                u.start_ms += offset_ms;
                u.end_ms = (u.end_ms.min(buffer_ms)) + offset_ms;
                u
            })
            // Committed audio is still in the buffer: skip what it decodes to.
            .filter(|u| {
                u.start_ms + 100 > self.committed_end_ms || self.committed_in_buffer.is_empty()
            })
            .collect();
        self.drop_overlap(&mut units);
        Ok(units)
    }

    /// The current utterance's language, detected on the buffer (not the previous
    /// utterance's context) until it is settled: once detected on 2 s of audio, or
    /// once text was committed in it. Under 1.5 s (unless the utterance is over)
    /// there is too little to tell: the last utterance's language is used meanwhile.
    fn utterance_language(&mut self, last: bool) -> Result<usize> {
        if !self.plan.is_mixed() || self.buffer.is_empty() {
            return Ok(*self.language.get_or_insert(0));
        }
        if let (Some(language), true) = (self.language, self.language_settled) {
            return Ok(language);
        }
        if !last && (self.buffer.len() as u64) < 1500 * SAMPLES_PER_MS {
            return Ok(self.language.or(self.committed_language).unwrap_or(0));
        }
        let probs =
            self.model.detect_language(&mut self.state, &self.buffer, &self.opts.transcribe)?;
        self.stats.language_detections += 1;
        let language = self.plan.choose_index(&probs);
        self.language = Some(language);
        self.language_probability = Some(self.plan.score(language, &probs));
        self.language_settled = self.buffer.len() as u64 >= 2000 * SAMPLES_PER_MS
            || !self.committed_in_buffer.is_empty();
        Ok(language)
    }

    /// Whisper often repeats the last committed words at the start of the next
    /// window (the cut falls inside a word). Drop a leading run of up to 5 units
    /// that equals the end of the committed text.
    fn drop_overlap(&self, units: &mut Vec<Unit>) {
        let tail = &self.committed_tail;
        for n in (1..=5.min(tail.len()).min(units.len())).rev() {
            let same = tail[tail.len() - n..].iter().zip(&units[..n]).all(|(a, b)| same_unit(a, b));
            let early = units[0].start_ms < self.committed_end_ms + 1000;
            if same && early {
                units.drain(..n);
                return;
            }
        }
    }

    fn commit(&mut self, units: &[Unit], n: usize, events: &mut Vec<CaptionEvent>, lag_ms: u64) {
        let chosen = &units[..n];
        let text = join_units(chosen);
        if text.trim().is_empty() {
            self.finalize_partial(events, lag_ms);
            return;
        }
        let Some((start_ms, end_ms)) = final_span(chosen, self.committed_end_ms) else {
            // Several words in no time: nothing under them but audio already
            // captioned or none at all. Whisper invents such text (on noise, past
            // the end of the audio).
            self.finalize_partial(events, lag_ms);
            return;
        };
        events.push(CaptionEvent::Final {
            segment: self.next_segment,
            text: text.clone(),
            start_ms,
            end_ms,
            emitted_ms: self.pushed / SAMPLES_PER_MS,
            lag_ms,
        });
        self.stats.finals += 1;
        self.next_segment += 1;
        self.revision = 0;
        self.partial_text.clear();
        self.committed_in_buffer.extend_from_slice(chosen);
        self.committed_tail.extend_from_slice(chosen);
        let keep_from = self.committed_tail.len().saturating_sub(5);
        self.committed_tail.drain(..keep_from);
        self.committed_end_ms = end_ms;
        self.committed_language = self.language;
        self.committed_probability = self.language_probability.unwrap_or(1.0);
        // Text is out in this language: the utterance keeps it.
        self.language_settled = true;
    }

    /// The stream ended with a partial showing but nothing to commit: the partial
    /// was not speech after all. Nothing is emitted; viewers drop partials when a
    /// later segment id or the end arrives.
    fn finalize_partial(&mut self, _events: &mut [CaptionEvent], _lag_ms: u64) {
        self.partial_text.clear();
        self.revision = 0;
    }

    fn emit_partial(&mut self, units: &[Unit], events: &mut Vec<CaptionEvent>, lag_ms: u64) {
        let text = join_units(units);
        if text == self.partial_text || units.is_empty() {
            return;
        }
        self.revision += 1;
        self.partial_text = text.clone();
        self.stats.partials += 1;
        events.push(CaptionEvent::Partial {
            segment: self.next_segment,
            revision: self.revision,
            text,
            start_ms: units[0].start_ms.max(self.committed_end_ms),
            end_ms: units[units.len() - 1].end_ms,
            emitted_ms: self.pushed / SAMPLES_PER_MS,
            lag_ms,
        });
    }

    /// Drop buffered audio before stream sample `sample`; committed text whose
    /// audio goes becomes prompt.
    fn trim_to(&mut self, sample: u64) {
        let sample = sample.clamp(self.buffer_start, self.pushed);
        let n = (sample - self.buffer_start) as usize;
        self.buffer.drain(..n);
        self.buffer_start = sample;
        let gone = self
            .committed_in_buffer
            .iter()
            .take_while(|u| u.start_ms * SAMPLES_PER_MS < sample)
            .count();
        self.flush_committed_units(gone);
    }

    /// All committed units become prompt text.
    fn flush_committed(&mut self) {
        self.flush_committed_units(self.committed_in_buffer.len());
    }

    /// The first `gone` committed units become prompt text.
    fn flush_committed_units(&mut self, gone: usize) {
        for u in self.committed_in_buffer.drain(..gone) {
            if !self.committed_text.is_empty() && u.space_before {
                self.committed_text.push(' ');
            }
            self.committed_text.push_str(&u.text);
        }
        // Keep the prompt source bounded.
        let excess = self.committed_text.chars().count().saturating_sub(self.opts.prompt_chars * 4);
        if excess > 0 {
            self.committed_text = self.committed_text.chars().skip(excess).collect();
        }
    }
}

fn normalized(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '，' => ',',
            '。' => '.',
            '！' => '!',
            '？' => '?',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn same_unit(a: &Unit, b: &Unit) -> bool {
    normalized(&a.text) == normalized(&b.text)
}

/// A unit's words for matching: lower case, letters and digits only (empty for
/// punctuation).
fn key(unit: &Unit) -> String {
    unit.text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// How many leading units of a decode re-decode the context: `decoded` is the
/// hypothesis for the context's audio, a gap and the new audio (which starts at
/// `lead_ms`); `context` is what was committed from that audio.
///
/// Text decides, not time: Whisper's word times drift by hundreds of ms, and a
/// wrong cut either repeats committed words or drops new ones. The cut is where
/// the context's words align best with a prefix of the decode (edit distance over
/// words; punctuation is free), ties going to the cut nearest `lead_ms`. When the
/// words do not align (Whisper skipped or garbled the context) the cut falls back
/// to time.
fn context_overlap(context: &[Unit], decoded: &[Unit], lead_ms: u64) -> usize {
    let c: Vec<String> = context.iter().map(key).filter(|k| !k.is_empty()).collect();
    let d: Vec<String> = decoded.iter().map(key).collect();
    // cost[j]: the cheapest alignment of all of `c` seen so far with d[..j].
    let mut cost: Vec<usize> = Vec::with_capacity(d.len() + 1);
    cost.push(0);
    for k in &d {
        cost.push(cost.last().unwrap() + usize::from(!k.is_empty()));
    }
    for (i, word) in c.iter().enumerate() {
        let mut next = vec![i + 1; d.len() + 1];
        for (j, k) in d.iter().enumerate() {
            next[j + 1] = if k.is_empty() {
                next[j].min(cost[j + 1] + 1)
            } else {
                let mut best =
                    (cost[j] + usize::from(word != k)).min(cost[j + 1] + 1).min(next[j] + 1);
                // A word heard as two ("today" as "to day.") matches both.
                if j > 0
                    && word.len() == d[j - 1].len() + k.len()
                    && word.starts_with(&d[j - 1])
                    && word.ends_with(k.as_str())
                {
                    best = best.min(cost[j - 1]);
                }
                best
            };
        }
        cost = next;
    }
    // Among equally good cuts, one whose first new word starts inside the context
    // is a poor one: that word is the context's last, heard differently ("pay their
    // bills" again as "pay their meals").
    // And a context that closed a sentence is best cut after a sentence's end:
    // Whisper punctuates the re-decoded context much as it did the first time.
    let starts_early = |j: usize| decoded.get(j).is_some_and(|u| u.start_ms + 100 < lead_ms);
    let closed = context.last().is_some_and(is_sentence_end);
    let mid_sentence = |j: usize| {
        let closes = decoded[..j].iter().rev().find(|u| !key(u).is_empty() || is_sentence_end(u));
        closed && !closes.is_some_and(is_sentence_end)
    };
    let boundary = |j: usize| decoded.get(j).map_or(u64::MAX, |u| u.start_ms).abs_diff(lead_ms);
    let best = (0..=d.len())
        .min_by_key(|&j| (cost[j], mid_sentence(j), starts_early(j), boundary(j)))
        .unwrap_or(0);
    let mut cut = if cost[best] * 2 <= c.len() + 1 {
        best
    } else {
        decoded.iter().take_while(|u| u.start_ms + 300 < lead_ms).count()
    };
    // Punctuation closing the context belongs to it.
    while d.get(cut).is_some_and(|k| k.is_empty()) {
        cut += 1;
    }
    cut
}

/// The shortest span a final gets: a single word whose token times coincide.
const MIN_FINAL_MS: u64 = 100;

/// The stream span of a final made of `units` (not empty), starting no earlier
/// than `committed_end_ms`; never empty. When the units span no time there:
/// one word (Whisper's token times for a short word can coincide) is real speech
/// and gets [`MIN_FINAL_MS`]; several words are not speech (`None`).
fn final_span(units: &[Unit], committed_end_ms: u64) -> Option<(u64, u64)> {
    let start = units.first()?.start_ms.max(committed_end_ms);
    let end = units.last()?.end_ms;
    if end > start {
        return Some((start, end));
    }
    let words = units.iter().filter(|u| !key(u).is_empty()).count();
    (words <= 1).then_some((start, start + MIN_FINAL_MS))
}

/// How many leading units two hypotheses agree on (LocalAgreement-2).
fn agreed_prefix(previous: &[Unit], current: &[Unit]) -> usize {
    previous.iter().zip(current).take_while(|(a, b)| same_unit(a, b)).count()
}

fn is_sentence_end(unit: &Unit) -> bool {
    matches!(unit.text.chars().last(), Some('。' | '！' | '？' | '.' | '!' | '?' | '；' | ';'))
}

fn is_clause_end(unit: &Unit) -> bool {
    is_sentence_end(unit)
        || matches!(unit.text.chars().last(), Some('，' | ',' | '、' | '：' | ':'))
}

/// How many of the agreed units to commit now: through the last sentence end; or
/// through the last clause end, or all of them, once the oldest is older than
/// `commit_after_ms`.
fn commit_point(agreed: &[Unit], buffer_end_ms: u64, commit_after_ms: u64) -> usize {
    if let Some(i) = agreed.iter().rposition(is_sentence_end) {
        return i + 1;
    }
    let old =
        agreed.first().is_some_and(|u| buffer_end_ms.saturating_sub(u.start_ms) >= commit_after_ms);
    if !old {
        return 0;
    }
    match agreed.iter().rposition(is_clause_end) {
        Some(i) => i + 1,
        None => agreed.len(),
    }
}

/// The buffer is over its cap with no agreement: commit through the widest gap
/// between units, keeping the last 3 s uncommitted.
fn forced_cut(units: &[Unit], buffer_end_ms: u64) -> usize {
    let limit = buffer_end_ms.saturating_sub(3000);
    let candidates = units.len().saturating_sub(1);
    let best = (0..candidates)
        .filter(|&i| units[i].end_ms <= limit)
        .max_by_key(|&i| units[i + 1].start_ms.saturating_sub(units[i].end_ms));
    match best {
        Some(i) => i + 1,
        None => units.iter().take_while(|u| u.end_ms <= limit).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(text: &str, start_ms: u64, end_ms: u64) -> Unit {
        Unit { text: text.into(), space_before: false, start_ms, end_ms }
    }

    #[test]
    fn a_final_never_spans_zero_time() {
        // Times as decoded, and clamped to what was committed.
        assert_eq!(
            final_span(&[u("Good", 100, 300), u("morning.", 300, 700)], 0),
            Some((100, 700))
        );
        assert_eq!(final_span(&[u("好", 100, 300)], 200), Some((200, 300)));
        // One word whose token times coincide: real, given the minimal span.
        assert_eq!(final_span(&[u("OK", 500, 500), u(".", 500, 500)], 0), Some((500, 600)));
        assert_eq!(final_span(&[u("好", 100, 300)], 300), Some((300, 400)));
        // Several words in no time (placed at the end of the audio, or inside
        // audio already captioned): dropped.
        let invented = [u("I'm", 9000, 9000), u("going", 9000, 9000), u("home.", 9000, 9000)];
        assert_eq!(final_span(&invented, 0), None);
        let before_commit = [u("我", 100, 200), u("哋", 200, 300), u("係", 300, 400)];
        assert_eq!(final_span(&before_commit, 400), None);
        for (units, committed) in
            [(&invented[..], 0), (&before_commit[..], 0), (&before_commit[..], 250)]
        {
            if let Some((start, end)) = final_span(units, committed) {
                assert!(start >= committed && end > start, "{start}..{end}");
            }
        }
    }

    #[test]
    fn agreement_is_a_common_prefix_ignoring_case_and_width() {
        let a = [u("我", 0, 1), u("哋", 1, 2), u("，", 2, 3), u("Go", 3, 4)];
        let b = [u("我", 0, 1), u("哋", 1, 2), u(",", 2, 3), u("go", 3, 4), u("去", 4, 5)];
        assert_eq!(agreed_prefix(&a, &b), 4);
        assert_eq!(agreed_prefix(&a[..1], &b), 1);
        assert_eq!(agreed_prefix(&[], &b), 0);
    }

    #[test]
    fn commits_through_the_last_sentence_end() {
        let units = [u("好", 0, 100), u("。", 100, 100), u("我", 200, 300), u("哋", 300, 400)];
        assert_eq!(commit_point(&units, 1000, 5000), 2);
    }

    #[test]
    fn waits_for_a_sentence_end_until_the_text_is_old() {
        let units = [u("好", 0, 100), u("，", 100, 100), u("我", 200, 300)];
        assert_eq!(commit_point(&units, 1000, 5000), 0);
        assert_eq!(commit_point(&units, 6000, 5000), 2);
        let words = [u("hello", 0, 100), u("there", 200, 300)];
        assert_eq!(commit_point(&words, 6000, 5000), 2);
    }

    #[test]
    fn forced_cuts_use_the_widest_gap_and_keep_the_tail() {
        let units = [
            u("a", 0, 100),
            u("b", 150, 200),
            u("c", 900, 1000),
            u("d", 1050, 1100),
            u("e", 9500, 9600),
        ];
        // The widest gap (d → e) ends before the last 3 s: cut there.
        assert_eq!(forced_cut(&units, 10_000), 4);
        // A unit ending in the last 3 s is never a cut point, however wide its gap.
        let late = [u("f", 0, 100), u("g", 200, 300), u("h", 8000, 8100), u("i", 9900, 9950)];
        assert_eq!(forced_cut(&late, 10_000), 2);
        assert_eq!(forced_cut(&units[..1], 10_000), 1);
        assert_eq!(forced_cut(&units[4..], 10_000), 0);
    }

    fn words(text: &str, from_ms: u64) -> Vec<Unit> {
        text.split(' ')
            .enumerate()
            .map(|(i, w)| {
                let at = from_ms + 300 * i as u64;
                Unit { text: w.into(), space_before: i > 0, start_ms: at, end_ms: at + 250 }
            })
            .collect()
    }

    fn after_context(context: &str, decoded: &str, lead_ms: u64) -> String {
        let decoded = words(decoded, 0);
        let n = context_overlap(&words(context, 0), &decoded, lead_ms);
        join_units(&decoded[n..])
    }

    #[test]
    fn the_re_decoded_context_is_cut_off_by_its_words() {
        let context = "at the end of the month.";
        // Word for word, whatever the times say.
        assert_eq!(
            after_context(context, "at the end of the month. The new office", 0),
            "The new office"
        );
        assert_eq!(
            after_context(context, "at the end of the month. The new office", 9000),
            "The new office"
        );
        // Decoded a little differently this time.
        assert_eq!(after_context(context, "at the end of this month . The new", 1800), "The new");
        assert_eq!(
            after_context(context, "end of the month the new office", 1500),
            "the new office"
        );
        // Whisper dropped the context: nothing of the new speech is lost.
        assert_eq!(after_context(context, "The new office opens", 0), "The new office opens");
        // Garbled beyond matching: time decides.
        assert_eq!(after_context(context, "a b c d e f The new", 2000), "The new");
    }

    #[test]
    fn the_context_s_last_word_heard_differently_stays_with_the_context() {
        // "meals." (600 ms) re-hears "bills.": as good a match as leaving it out,
        // and nearer the new audio (720 ms) than "The" (900 ms), but it starts inside
        // the context.
        assert_eq!(
            after_context("pay their bills.", "pay their meals. The training", 720),
            "The training"
        );
        // The context's last word skipped: the new speech's first word stays.
        assert_eq!(
            after_context("pay their bills.", "pay their The training", 620),
            "The training"
        );
        // Heard differently and timed into the new audio: the sentence's end decides.
        assert_eq!(after_context("photo today.", "photo name. The server", 350), "The server");
        // One word heard as two.
        assert_eq!(after_context("photo today.", "photo to day. The server", 900), "The server");
    }

    #[test]
    fn a_repeated_phrase_in_the_new_speech_is_kept() {
        let context = "the end of the month.";
        assert_eq!(
            after_context(context, "the end of the month. the end of the month again", 1500),
            "the end of the month again"
        );
    }

    #[test]
    fn chinese_context_is_matched_character_by_character() {
        let context: Vec<Unit> = "我 哋 聽 日 開 會 。"
            .split(' ')
            .enumerate()
            .map(|(i, c)| u(c, 100 * i as u64, 100 * i as u64 + 90))
            .collect();
        let decoded: Vec<Unit> = "我 哋 聽 日 開 會 。 好 呀"
            .split(' ')
            .enumerate()
            .map(|(i, c)| u(c, 100 * i as u64, 100 * i as u64 + 90))
            .collect();
        assert_eq!(context_overlap(&context, &decoded, 700), 7);
    }

    #[test]
    fn events_serialise_with_their_type_first() {
        let e = CaptionEvent::Final {
            segment: 3,
            text: "你好".into(),
            start_ms: 10,
            end_ms: 20,
            emitted_ms: 900,
            lag_ms: 0,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with(r#"{"type":"final","segment":3,"text":"你好""#), "{json}");
        let back: CaptionEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
