//! Audio in: WAV files, downmixing and resampling to 16 kHz mono.

mod resample;

pub use resample::{
    downmix, to_16k_mono, StreamResampler, FILTER_TAPS, MAX_CHANNELS, MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE, WHISPER_SAMPLE_RATE,
};
