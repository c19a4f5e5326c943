//! Voice activity: which stretches of 16 kHz mono audio hold speech.
//!
//! A small energy-and-spectrum detector, enough to keep Whisper away from silence
//! and steady noise (where it invents text) and to find the pauses that end an
//! utterance. Each 20 ms frame is speech when it is
//! - loud enough in absolute terms (above `min_speech_dbfs`),
//! - clearly above the tracked noise floor (by `margin_db`), and
//! - not spectrally flat (steady broadband noise, such as fans, hiss or rain, has a
//!   flatness above 0.5 however loud it is; speech is far below).
//!
//! A hangover keeps short gaps between syllables inside one stretch of speech.
//!
//! [`Vad`] holds either this detector or [`SileroVad`] (whisper.cpp's Silero VAD, when
//! the user has its model), behind one streaming interface.

use std::path::Path;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use super::silero::SileroVad;
use crate::Result;

/// Frame length in samples at 16 kHz (20 ms).
pub const FRAME: usize = 320;
const FFT_LEN: usize = 512;

/// Detector settings. The defaults suit speech captured by an ordinary microphone.
#[derive(Debug, Clone, PartialEq)]
pub struct VadOptions {
    /// Frames quieter than this (dB relative to full scale) are never speech. Default -50.
    pub min_speech_dbfs: f32,
    /// How far above the noise floor a frame must be, in dB. Default 9.
    pub margin_db: f32,
    /// Spectral flatness above which a frame is treated as noise. Default 0.45.
    pub max_flatness: f32,
    /// Speech continues this long after the last speech frame. Default 200 ms.
    pub hangover_ms: u32,
}

impl Default for VadOptions {
    fn default() -> Self {
        Self { min_speech_dbfs: -50.0, margin_db: 9.0, max_flatness: 0.45, hangover_ms: 200 }
    }
}

/// Streaming voice activity detector over 16 kHz mono samples.
pub struct EnergyVad {
    opts: VadOptions,
    fft: Arc<dyn RealToComplex<f32>>,
    fft_in: Vec<f32>,
    fft_out: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
    window: Vec<f32>,
    pending: Vec<f32>,
    noise_db: f32,
    frames: u64,
    hangover_left: u32,
    in_speech: bool,
    last_speech_end: Option<u64>,
    speech_frames: u64,
}

impl std::fmt::Debug for EnergyVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnergyVad")
            .field("noise_db", &self.noise_db)
            .field("in_speech", &self.in_speech)
            .finish()
    }
}

impl EnergyVad {
    /// A detector with these settings.
    pub fn new(opts: VadOptions) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(FFT_LEN);
        let fft_in = fft.make_input_vec();
        let fft_out = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        let window = (0..FRAME)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / (FRAME - 1) as f32).cos())
            .collect();
        Self {
            opts,
            fft,
            fft_in,
            fft_out,
            scratch,
            window,
            pending: Vec::with_capacity(FRAME),
            noise_db: -70.0,
            frames: 0,
            hangover_left: 0,
            in_speech: false,
            last_speech_end: None,
            speech_frames: 0,
        }
    }

    /// Feed samples; complete frames are classified, the remainder waits.
    pub fn push(&mut self, samples: &[f32]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME {
                let frame = std::mem::take(&mut self.pending);
                self.classify(&frame);
                self.pending = frame;
                self.pending.clear();
            }
        }
    }

    fn classify(&mut self, frame: &[f32]) {
        let energy = frame.iter().map(|s| s * s).sum::<f32>() / FRAME as f32;
        let db = 10.0 * (energy + 1e-12).log10();
        let flatness = self.flatness(frame);
        let above = db - self.noise_db;
        let speech = db > self.opts.min_speech_dbfs
            && above > self.opts.margin_db
            && flatness < self.opts.max_flatness;

        // Track the noise floor: fall fast, rise slowly (and only outside speech).
        if db < self.noise_db {
            self.noise_db = 0.7 * self.noise_db + 0.3 * db;
        } else if !speech {
            self.noise_db += 0.05 * (db - self.noise_db).min(6.0);
        } else {
            self.noise_db += 0.002 * (db - self.noise_db).min(6.0);
        }

        self.frames += 1;
        let hangover_frames = self.opts.hangover_ms * 16 / FRAME as u32;
        if speech {
            self.speech_frames += 1;
            self.in_speech = true;
            self.hangover_left = hangover_frames;
            self.last_speech_end = Some(self.frames * FRAME as u64);
        } else if self.hangover_left > 0 {
            self.hangover_left -= 1;
        } else {
            self.in_speech = false;
        }
    }

    fn flatness(&mut self, frame: &[f32]) -> f32 {
        for (i, v) in self.fft_in.iter_mut().enumerate() {
            *v = if i < FRAME { frame[i] * self.window[i] } else { 0.0 };
        }
        if self
            .fft
            .process_with_scratch(&mut self.fft_in, &mut self.fft_out, &mut self.scratch)
            .is_err()
        {
            return 1.0;
        }
        // 100 Hz .. 5 kHz, where speech lives.
        let lo = 100 * FFT_LEN / 16_000;
        let hi = 5_000 * FFT_LEN / 16_000;
        let bins = &self.fft_out[lo..hi];
        let n = bins.len() as f32;
        let (mut log_sum, mut sum) = (0.0f32, 0.0f32);
        for c in bins {
            let p = c.norm_sqr() + 1e-12;
            log_sum += p.ln();
            sum += p;
        }
        (log_sum / n).exp() / (sum / n)
    }

    /// Is the most recent audio speech (hangover included)?
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Sample index (from the start of the stream) where the last speech frame
    /// ended, if there was any speech.
    pub fn last_speech_end(&self) -> Option<u64> {
        self.last_speech_end
    }

    /// Samples classified so far (whole frames).
    pub fn samples_seen(&self) -> u64 {
        self.frames * FRAME as u64
    }

    /// Number of frames classified as speech so far.
    pub fn speech_frames(&self) -> u64 {
        self.speech_frames
    }

    /// The tracked noise floor, in dBFS.
    pub fn noise_floor_db(&self) -> f32 {
        self.noise_db
    }
}

/// Either voice activity detector, for the streaming engine: the built-in
/// [`EnergyVad`], or [`SileroVad`] when a Silero model is given.
#[derive(Debug)]
pub enum Vad {
    /// The built-in energy and spectral-flatness detector.
    Energy(EnergyVad),
    /// Silero VAD through whisper.cpp.
    Silero(Box<SileroVad>),
}

impl Vad {
    /// [`SileroVad`] from the ggml model at `silero_model` if given, else [`EnergyVad`].
    ///
    /// Fails with [`Error::BadVadModel`](crate::Error::BadVadModel) when the Silero
    /// model cannot be used.
    pub fn new(opts: &VadOptions, silero_model: Option<&Path>) -> Result<Self> {
        Ok(match silero_model {
            Some(path) => Self::Silero(Box::new(SileroVad::load(path, opts)?)),
            None => Self::Energy(EnergyVad::new(opts.clone())),
        })
    }

    /// Feed 16 kHz mono samples.
    ///
    /// Fails only with Silero, on non-finite samples or if whisper.cpp cannot run it.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        match self {
            Self::Energy(vad) => {
                vad.push(samples);
                Ok(())
            }
            Self::Silero(vad) => vad.push(samples),
        }
    }

    /// Is the most recent audio speech (hangover included)?
    pub fn in_speech(&self) -> bool {
        match self {
            Self::Energy(vad) => vad.in_speech(),
            Self::Silero(vad) => vad.in_speech(),
        }
    }

    /// Sample index (from the start of the stream) where the last speech ended, if
    /// there was any speech.
    pub fn last_speech_end(&self) -> Option<u64> {
        match self {
            Self::Energy(vad) => vad.last_speech_end(),
            Self::Silero(vad) => vad.last_speech_end(),
        }
    }

    /// Samples classified so far (the detector may hold back a little).
    pub fn samples_seen(&self) -> u64 {
        match self {
            Self::Energy(vad) => vad.samples_seen(),
            Self::Silero(vad) => vad.samples_seen(),
        }
    }
}

/// Speech or not for each [`FRAME`] of `samples` (16 kHz mono), hangover included:
/// the whole-buffer form of [`EnergyVad`].
pub fn speech_mask(samples: &[f32], opts: &VadOptions) -> Vec<bool> {
    let mut vad = EnergyVad::new(opts.clone());
    samples
        .chunks_exact(FRAME)
        .map(|frame| {
            vad.push(frame);
            vad.in_speech()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u32) -> f32 {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }

    /// A crude voiced sound: a 150 Hz pulse train through harmonics, amplitude-modulated.
    fn vowel(seconds: f32, amp: f32) -> Vec<f32> {
        let n = (seconds * 16_000.0) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let env = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
                let s: f32 = (1..12)
                    .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                amp * env * s / 2.0
            })
            .collect()
    }

    #[test]
    fn silence_is_not_speech() {
        let mut vad = EnergyVad::new(VadOptions::default());
        vad.push(&vec![0.0; 16_000 * 5]);
        assert_eq!(vad.speech_frames(), 0);
        assert!(!vad.in_speech());
    }

    #[test]
    fn steady_white_noise_is_not_speech_even_when_loud() {
        for amp in [0.003, 0.03, 0.2] {
            let mut seed = 7;
            let noise: Vec<f32> = (0..16_000 * 10).map(|_| amp * lcg(&mut seed)).collect();
            let mut vad = EnergyVad::new(VadOptions::default());
            vad.push(&noise);
            // Allow the first frames while the floor adapts.
            assert!(vad.speech_frames() < 30, "amp {amp}: {} speech frames", vad.speech_frames());
        }
    }

    #[test]
    fn voiced_sound_after_silence_is_speech_and_its_end_is_found() {
        let mut vad = EnergyVad::new(VadOptions::default());
        vad.push(&vec![0.0; 16_000]);
        vad.push(&vowel(1.0, 0.3));
        assert!(vad.in_speech());
        vad.push(&vec![0.0; 16_000]);
        assert!(!vad.in_speech());
        let end = vad.last_speech_end().unwrap();
        assert!((31_000..=32_640).contains(&end), "speech ended at {end}");
    }

    #[test]
    fn speech_over_noise_is_found() {
        let mut seed = 3;
        let mut audio: Vec<f32> = (0..16_000 * 3).map(|_| 0.01 * lcg(&mut seed)).collect();
        let v = vowel(1.0, 0.2);
        let start = audio.len();
        audio.extend(v.iter().map(|s| s + 0.01 * lcg(&mut seed)));
        let mut vad = EnergyVad::new(VadOptions::default());
        vad.push(&audio[..start]);
        let before = vad.speech_frames();
        vad.push(&audio[start..]);
        assert!(vad.speech_frames() - before > 30, "only {} frames", vad.speech_frames() - before);
    }

    #[test]
    fn the_mask_marks_the_speech() {
        let audio = [vec![0.0; 16_000], vowel(1.0, 0.3), vec![0.0; 16_000]].concat();
        let mask = speech_mask(&audio, &VadOptions::default());
        assert_eq!(mask.len(), audio.len() / FRAME);
        assert!(!mask[..45].iter().any(|&s| s), "silence before");
        assert!(mask[55..95].iter().all(|&s| s), "the vowel");
        assert!(!mask[120..].iter().any(|&s| s), "silence after");
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        let audio = [vec![0.0; 8000], vowel(0.7, 0.3), vec![0.0; 8000]].concat();
        let mut whole = EnergyVad::new(VadOptions::default());
        whole.push(&audio);
        let mut pieces = EnergyVad::new(VadOptions::default());
        for chunk in audio.chunks(37) {
            pieces.push(chunk);
        }
        assert_eq!(whole.speech_frames(), pieces.speech_frames());
        assert_eq!(whole.last_speech_end(), pieces.last_speech_end());
    }
}
