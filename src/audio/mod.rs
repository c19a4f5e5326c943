//! Audio in: audio files (WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC), downmixing and
//! resampling to 16 kHz mono.
//!
//! Everything meets here on its way to Whisper: [`read_audio_file`] and [`decode_audio`]
//! turn a file into an [`AudioBuffer`] of interleaved `f32` ([`read_wav`] for WAV alone), and [`AudioBuffer::to_whisper_input`] (or
//! [`to_16k_mono`] for plain slices) averages the channels and resamples to 16 kHz. Live
//! input (microphone, WebSocket) arrives in pieces and goes through a
//! [`StreamResampler`] instead, which gives the same samples as the whole-buffer path.
//!
//! Resampling uses rubato's windowed-sinc resampler with a filter of [`FILTER_TAPS`] taps
//! at the lower of the two rates, stretched to match when downsampling: from any rate
//! the output is flat to 7.2 kHz and more than 130 dB down from 8 kHz up (nothing aliases
//! into the band), time-aligned with the input to within half an output sample, and
//! `round(frames * 16000 / rate)` samples long.
//!
//! ```
//! use cantocap::audio::{to_16k_mono, AudioBuffer};
//!
//! // One second of a 440 Hz tone, 44.1 kHz stereo.
//! let samples: Vec<f32> = (0..44_100)
//!     .flat_map(|i| {
//!         let s = (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5;
//!         [s, s]
//!     })
//!     .collect();
//! let audio = AudioBuffer { samples, sample_rate: 44_100, channels: 2 };
//! assert_eq!(audio.duration_ms(), 1_000);
//! let input = audio.to_whisper_input()?;
//! assert_eq!(input.len(), 16_000);
//! # Ok::<(), cantocap::Error>(())
//! ```

mod decode;
#[cfg(feature = "mic")]
pub mod mic;
mod resample;
pub mod silero;
pub mod vad;
mod wav;

pub use decode::{
    decode_audio, decode_audio_with_info, read_audio_file, AudioFormat, SUPPORTED_FORMATS,
};
pub use resample::{
    downmix, to_16k_mono, StreamResampler, FILTER_TAPS, MAX_CHANNELS, MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE, WHISPER_SAMPLE_RATE,
};
pub use silero::SileroVad;
pub use vad::{EnergyVad, Vad, VadOptions};
pub use wav::{read_wav, read_wav_from, read_wav_with_info, WavInfo, WavSampleFormat};

use crate::{Error, Result};

/// Decoded audio: interleaved `f32` samples, nominally in -1..1, at any rate.
///
/// [`read_wav`] only returns buffers with a supported rate and channel count and at least
/// one frame. Built by hand, a buffer is checked when converted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioBuffer {
    /// Interleaved samples: frame 0 channel 0, frame 0 channel 1, … Full scale is ±1.0.
    pub samples: Vec<f32>,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl AudioBuffer {
    /// Whole frames (one sample per channel); 0 if `channels` is 0.
    pub fn frames(&self) -> usize {
        match self.channels {
            0 => 0,
            n => self.samples.len() / usize::from(n),
        }
    }

    /// Duration in whole milliseconds; 0 if `sample_rate` is 0.
    pub fn duration_ms(&self) -> u64 {
        match self.sample_rate {
            0 => 0,
            rate => {
                let ms = self.frames() as u128 * 1000 / u128::from(rate);
                u64::try_from(ms).unwrap_or(u64::MAX)
            }
        }
    }

    /// The audio as Whisper takes it: 16 kHz mono, via [`to_16k_mono`].
    ///
    /// Fails like [`to_16k_mono`] on an unsupported rate or channel count or a non-finite
    /// sample, and with [`Error::EmptyAudio`] when there is not even one output sample.
    pub fn to_whisper_input(&self) -> Result<Vec<f32>> {
        let out = to_16k_mono(&self.samples, self.sample_rate, self.channels)?;
        if out.is_empty() {
            return Err(Error::EmptyAudio);
        }
        Ok(out)
    }
}
