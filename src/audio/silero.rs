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

use std::path::Path;

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
