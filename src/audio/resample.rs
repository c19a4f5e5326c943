//! Downmixing and resampling to Whisper's 16 kHz mono.
//!
//! There is one implementation for whole buffers and live streams: [`to_16k_mono`] is a
//! [`StreamResampler`] fed once and flushed, so a file and a microphone giving the same
//! samples give the same output, sample for sample, whatever the chunk sizes.
//!
//! # The resampler
//! rubato's asynchronous sinc resampler (`Async::new_sinc`) at a fixed ratio, with a
//! Blackman-Harris² windowed sinc. The filter is [`FILTER_TAPS`] taps long measured at
//! the lower of the two rates, so it is stretched when downsampling (768 taps at 48 kHz,
//! 3 072 at 192 kHz) and its anti-aliasing is the same at every input rate. Measured at
//! 48 kHz: flat to 7.2 kHz, -0.3 dB at 7.4 kHz, -6 dB near 7.6 kHz, -41 dB at 7.8 kHz,
//! and more than 130 dB down from 8 kHz up, so nothing folds back into the band.
//!
//! For the usual rates the filter phases needed are few (1 at 48 kHz, 160 at 44.1 kHz),
//! so all are precomputed and each output sample is one dot product (rubato's `Nearest`
//! at an oversampling of `16000 / gcd(rate, 16000)`): exact, and 3 to 4 times cheaper
//! than interpolating. Odd rates (44 057 Hz would need 16 000 phases) interpolate
//! cubically between 128 phases per tap instead, rubato's default.
//!
//! rubato's FFT resampler works in blocks of `rate / gcd(rate, 16000)` frames: 441 at
//! 44.1 kHz but 44 057 (a whole second) at 44 057 Hz, which would make delay and memory
//! depend on the rate's arithmetic. The sinc resampler has the same quality (rubato
//! README) and the same small delay at any ratio.
//!
//! # Timing
//! The filter delays its output by half its length (8 ms when downsampling).
//! [`StreamResampler`] drops that many output samples at the start, so output sample `n`
//! is the input at time `n / 16000` s (within half an output sample), and
//! [`StreamResampler::flush`] drains the filter so the output holds
//! `round(input_frames * 16000 / rate)` samples.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    calculate_cutoff, Async, FixedAsync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use crate::{Error, Result};

/// The sample rate Whisper expects, in Hz.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// The lowest input sample rate accepted, in Hz.
///
/// Telephone audio is 8 kHz; below 4 kHz (a 2 kHz audio band) speech is not intelligible.
pub const MIN_SAMPLE_RATE: u32 = 4_000;

/// The highest input sample rate accepted, in Hz.
///
/// 384 kHz is the highest rate audio interfaces offer. Anything above it is far more likely
/// a corrupt header than audio.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// The most interleaved channels accepted.
///
/// Enough for multichannel recorders and conference rigs (the WAV channel mask names 18
/// speakers); more is more likely a corrupt header than audio.
pub const MAX_CHANNELS: u16 = 32;

/// Length of the anti-aliasing filter in taps at the lower of the input and output rates.
///
/// 256 taps put the filter's -6 dB point at 7.6 kHz when downsampling to 16 kHz, at a cost
/// of 8 ms of delay.
pub const FILTER_TAPS: usize = 256;

/// Interpolation phases precomputed per tap when interpolating between them (rubato's
/// default).
const OVERSAMPLING: usize = 128;

/// The largest filter table (phases × taps, in `f32`) built to avoid interpolating: 4 MiB.
const MAX_EXACT_TABLE: usize = 1 << 20;

/// The filter's window; rubato's default, with sidelobes far below what 16-bit audio holds.
const WINDOW: WindowFunction = WindowFunction::BlackmanHarris2;

/// How much input the resampler processes at a time, in milliseconds: it bounds the
/// latency a live stream gets from the resampler (on top of the filter delay).
const CHUNK_MS: u32 = 10;

/// Checks that `rate` is within [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
pub(crate) fn check_rate(rate: u32) -> Result<()> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(Error::UnsupportedSampleRate { rate, min: MIN_SAMPLE_RATE, max: MAX_SAMPLE_RATE })
    }
}

/// Checks that `channels` is within 1..=[`MAX_CHANNELS`].
pub(crate) fn check_channels(channels: u16) -> Result<()> {
    if (1..=MAX_CHANNELS).contains(&channels) {
        Ok(())
    } else {
        Err(Error::UnsupportedChannels { channels, max: MAX_CHANNELS })
    }
}

/// Fails on the first NaN or infinite sample; `offset` is added to the reported index.
fn check_finite(samples: &[f32], offset: u64) -> Result<()> {
    match samples.iter().position(|s| !s.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFiniteSample {
            index: usize::try_from(offset).unwrap_or(usize::MAX).saturating_add(i),
            value: samples[i],
        }),
    }
}

/// Averages interleaved channels into one.
///
/// `channels == 1` returns a copy. A trailing incomplete frame is ignored, and
/// `channels == 0` gives an empty result (nothing can be made of it). Nothing is validated:
/// NaN in gives NaN out.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => interleaved.to_vec(),
        n => {
            let scale = 1.0 / f32::from(n);
            interleaved
                .chunks_exact(usize::from(n))
                .map(|frame| frame.iter().fold(0.0f32, |sum, &s| sum + s) * scale)
                .collect()
        }
    }
}

/// Converts interleaved audio at any supported rate and channel count to 16 kHz mono.
///
/// Validates first: the rate must be within [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`], the
/// channels within 1..=[`MAX_CHANNELS`], and every sample finite. Then averages the
/// channels ([`downmix`]) and resamples with a [`StreamResampler`]; 16 kHz input is only
/// downmixed, and 16 kHz mono comes back unchanged. The output has
/// `round(frames * 16000 / sample_rate)` samples, time-aligned with the input. A trailing
/// incomplete frame is ignored; empty input gives empty output.
pub fn to_16k_mono(interleaved: &[f32], sample_rate: u32, channels: u16) -> Result<Vec<f32>> {
    let mut resampler = StreamResampler::new(sample_rate, channels)?;
    let frames = interleaved.len() / usize::from(channels);
    let expected =
        usize::try_from(expected_output_frames(frames as u64, sample_rate)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(expected);
    resampler.push(interleaved, &mut out)?;
    resampler.flush(&mut out)?;
    Ok(out)
}

/// `round(frames * 16000 / rate)`, the output length for `frames` input frames.
fn expected_output_frames(frames: u64, rate: u32) -> u64 {
    let rate = u128::from(rate);
    let out = (u128::from(frames) * u128::from(WHISPER_SAMPLE_RATE) + rate / 2) / rate;
    u64::try_from(out).unwrap_or(u64::MAX)
}

/// Resamples a live stream of interleaved audio to 16 kHz mono, chunk by chunk.
///
/// Push any number of samples at a time, even one sample or part of a frame: whatever does
/// not yet make a whole frame, or a whole internal chunk (10 ms), waits for the next push.
/// The output is the same whatever the chunk sizes, and the same as [`to_16k_mono`] gives
/// for the whole stream. After the internal buffers are made in [`new`](Self::new),
/// [`push`](Self::push) allocates nothing itself (only `out` grows if it lacks room).
///
/// Output is time-aligned with the input (output sample `n` is input time `n / 16000` s,
/// to within 31 µs) but arrives later: the filter needs 128 frames of look-ahead at the
/// lower of the two rates (8 ms from rates above 16 kHz, 16 ms at 8 kHz), plus up to one
/// chunk. Call [`flush`](Self::flush) at the end of a stream to get the rest. At 16 kHz
/// the resampler only downmixes, with no delay.
///
/// ```
/// use cantocap::audio::StreamResampler;
///
/// let mut resampler = StreamResampler::new(48_000, 2)?;
/// let mut out = Vec::new();
/// for _ in 0..100 {
///     resampler.push(&[0.0; 2 * 480], &mut out)?; // 10 ms of 48 kHz stereo
/// }
/// resampler.flush(&mut out)?;
/// assert_eq!(out.len(), 16_000); // 1 s at 16 kHz
/// # Ok::<(), cantocap::Error>(())
/// ```
#[derive(Debug)]
pub struct StreamResampler {
    input_rate: u32,
    channels: u16,
    /// `1 / channels`, to average a frame.
    scale: f32,
    /// Sum of the samples of the frame being collected.
    frame_sum: f32,
    /// How many samples of that frame have arrived.
    frame_fill: u16,
    /// Interleaved samples accepted since the stream began, to place errors.
    samples_seen: u64,
    /// `None` at 16 kHz, where only downmixing is needed.
    engine: Option<Engine>,
}

/// The resampling half of [`StreamResampler`]: mono in, 16 kHz mono out.
#[derive(Debug)]
struct Engine {
    resampler: Async<f32>,
    /// One chunk of mono input; the first `filled` frames are valid.
    input: Vec<f32>,
    filled: usize,
    /// Room for the most output one chunk can give.
    output: Vec<f32>,
    /// Output frames that precede the first input frame (the filter delay).
    delay: usize,
    /// Of those, how many are still to be dropped.
    to_skip: usize,
    /// Mono frames taken in and output frames given out since the stream began.
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// Makes a resampler for interleaved input at `sample_rate` Hz with `channels` channels.
    ///
    /// Fails with [`Error::UnsupportedSampleRate`] or [`Error::UnsupportedChannels`] outside
    /// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] and 1..=[`MAX_CHANNELS`]. Building the
    /// filter takes a few milliseconds; reuse the resampler for streams of the same format
    /// (each [`flush`](Self::flush) readies it for the next).
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
        check_rate(sample_rate)?;
        check_channels(channels)?;
        let engine =
            if sample_rate == WHISPER_SAMPLE_RATE { None } else { Some(Engine::new(sample_rate)?) };
        Ok(StreamResampler {
            input_rate: sample_rate,
            channels,
            scale: 1.0 / f32::from(channels),
            frame_sum: 0.0,
            frame_fill: 0,
            samples_seen: 0,
            engine,
        })
    }

    /// The input sample rate, in Hz.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// The number of interleaved input channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Takes interleaved samples and appends the 16 kHz mono output they complete to `out`.
    ///
    /// Any length is fine, including one sample or a partial frame. If a sample is NaN or
    /// infinite, fails with [`Error::NonFiniteSample`] (its index counted from the start
    /// of the stream) and takes none of `interleaved`; the stream can go on.
    pub fn push(&mut self, interleaved: &[f32], out: &mut Vec<f32>) -> Result<()> {
        check_finite(interleaved, self.samples_seen)?;
        self.samples_seen += interleaved.len() as u64;
        let channels = usize::from(self.channels);
        let mut rest = interleaved;

        // Finish the frame an earlier push left incomplete.
        while self.frame_fill > 0 {
            let Some((&sample, tail)) = rest.split_first() else {
                return Ok(());
            };
            rest = tail;
            self.frame_sum += sample;
            self.frame_fill += 1;
            if self.frame_fill == self.channels {
                let mono = self.frame_sum * self.scale;
                self.frame_sum = 0.0;
                self.frame_fill = 0;
                self.emit(mono, out)?;
            }
        }

        let mut frames = rest.chunks_exact(channels);
        if channels == 1 {
            match &mut self.engine {
                None => out.extend_from_slice(rest),
                Some(engine) => engine.push_mono(rest, out)?,
            }
            return Ok(());
        }
        for frame in frames.by_ref() {
            let mono = frame.iter().fold(0.0f32, |sum, &s| sum + s) * self.scale;
            self.emit(mono, out)?;
        }
        for &sample in frames.remainder() {
            self.frame_sum += sample;
            self.frame_fill += 1;
        }
        Ok(())
    }

    /// Ends the stream: appends the output still held in the filter to `out`, and readies
    /// the resampler for a new stream.
    ///
    /// The input is padded with silence internally, and only output that belongs to real
    /// input is given, so a whole stream yields `round(frames * 16000 / rate)` samples. An
    /// incomplete last frame (fewer samples than channels) is dropped.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.frame_sum = 0.0;
        self.frame_fill = 0;
        self.samples_seen = 0;
        match &mut self.engine {
            None => Ok(()),
            Some(engine) => engine.flush(self.input_rate, out),
        }
    }

    /// Passes one mono frame on.
    #[inline]
    fn emit(&mut self, mono: f32, out: &mut Vec<f32>) -> Result<()> {
        match &mut self.engine {
            None => {
                out.push(mono);
                Ok(())
            }
            Some(engine) => engine.push_mono(&[mono], out),
        }
    }
}

impl Engine {
    fn new(rate: u32) -> Result<Self> {
        let ratio = f64::from(WHISPER_SAMPLE_RATE) / f64::from(rate);
        // Stretch the filter when downsampling so it is FILTER_TAPS long at 16 kHz. rubato
        // scales the cutoff by the ratio when downsampling, so the cutoff for FILTER_TAPS
        // taps lands where a filter of this length can reach full attenuation by 8 kHz.
        let sinc_len = if rate > WHISPER_SAMPLE_RATE {
            (FILTER_TAPS as u64 * u64::from(rate)).div_ceil(u64::from(WHISPER_SAMPLE_RATE)) as usize
        } else {
            FILTER_TAPS
        }
        .next_multiple_of(8);
        // Output frame k falls on input position k * rate / 16000, whose fractional part
        // is a multiple of 1 / phases. With that many phases precomputed, every output
        // frame is one dot product with an exact filter phase (rubato's `Nearest`): 4 times
        // less work than cubic interpolation between phases, and no interpolation error.
        // Odd rates (44 057 Hz needs 16 000 phases) would need too big a table.
        let phases = (WHISPER_SAMPLE_RATE / gcd(rate, WHISPER_SAMPLE_RATE)) as usize;
        let (interpolation, oversampling_factor) = if phases * sinc_len <= MAX_EXACT_TABLE {
            (SincInterpolationType::Nearest, phases)
        } else {
            (SincInterpolationType::Cubic, OVERSAMPLING)
        };
        let parameters = SincInterpolationParameters {
            sinc_len,
            f_cutoff: Some(calculate_cutoff::<f32>(FILTER_TAPS, WINDOW)),
            oversampling_factor,
            interpolation,
            window: WINDOW,
        };
        let chunk = (rate * CHUNK_MS / 1000) as usize;
        let resampler =
            Async::<f32>::new_sinc(ratio, 1.0, &parameters, chunk, 1, FixedAsync::Input)
                .map_err(|e| Error::Resample(e.to_string()))?;
        let delay = startup_delay(sinc_len, oversampling_factor, ratio);
        Ok(Engine {
            input: vec![0.0; resampler.input_frames_max()],
            filled: 0,
            output: vec![0.0; resampler.output_frames_max()],
            delay,
            to_skip: delay,
            frames_in: 0,
            frames_out: 0,
            resampler,
        })
    }

    /// Buffers mono frames, resampling each full chunk.
    fn push_mono(&mut self, mut mono: &[f32], out: &mut Vec<f32>) -> Result<()> {
        while !mono.is_empty() {
            let n = mono.len().min(self.input.len() - self.filled);
            self.input[self.filled..self.filled + n].copy_from_slice(&mono[..n]);
            self.filled += n;
            self.frames_in += n as u64;
            mono = &mono[n..];
            if self.filled == self.input.len() {
                self.filled = 0;
                self.process(None, u64::MAX, out)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, rate: u32, out: &mut Vec<f32>) -> Result<()> {
        let expected = expected_output_frames(self.frames_in, rate);
        let mut valid = self.filled;
        self.filled = 0;
        // The filter delay is 128 input frames when upsampling (up to 4 chunks at 4 kHz)
        // and 128 output frames when downsampling (under one chunk), so a few rounds of
        // silence drain it; the bound only guards against a rubato surprise.
        let mut rounds = 0;
        while self.frames_out < expected {
            if rounds > 4 + self.delay {
                return Err(Error::Resample(format!(
                    "the filter did not drain: {} of {expected} frames after {rounds} rounds",
                    self.frames_out
                )));
            }
            self.process(Some(valid), expected, out)?;
            valid = 0;
            rounds += 1;
        }
        self.resampler.reset();
        self.to_skip = self.delay;
        self.frames_in = 0;
        self.frames_out = 0;
        Ok(())
    }

    /// Resamples the input chunk, of which only the first `valid` frames are real when
    /// given (silence follows), and appends the output, less the startup delay, to `out`,
    /// stopping at `limit` frames in all.
    fn process(&mut self, valid: Option<usize>, limit: u64, out: &mut Vec<f32>) -> Result<()> {
        let in_frames = self.input.len();
        let out_frames = self.output.len();
        let input = InterleavedSlice::new(&self.input[..], 1, in_frames)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, out_frames)
            .map_err(|e| Error::Resample(e.to_string()))?;
        let indexing = valid.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = self
            .resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| Error::Resample(e.to_string()))?;
        let skip = self.to_skip.min(produced);
        self.to_skip -= skip;
        let room = usize::try_from(limit.saturating_sub(self.frames_out)).unwrap_or(usize::MAX);
        let end = produced.min(skip.saturating_add(room));
        out.extend_from_slice(&self.output[skip..end]);
        self.frames_out += (end - skip) as u64;
        Ok(())
    }
}

/// Greatest common divisor.
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Output frames the sinc filter puts before the first input frame.
///
/// rubato centres output frame `k` on input position
/// `(k + 1) / ratio - sinc_len / 2 + 1 / oversampling` (its filter phases are offset by
/// one step), which is input position 0 for `k = (sinc_len / 2 - 1 / oversampling) *
/// ratio - 1`. Checked with an impulse at every rate in the tests; rounding leaves the
/// output at most half an output sample (31 µs) off.
fn startup_delay(sinc_len: usize, oversampling: usize, ratio: f64) -> usize {
    let exact = (sinc_len as f64 / 2.0 - 1.0 / oversampling as f64) * ratio - 1.0;
    exact.round().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lengths_round_to_nearest() {
        assert_eq!(expected_output_frames(44_100, 44_100), 16_000);
        assert_eq!(expected_output_frames(1, 44_100), 0); // 0.36
        assert_eq!(expected_output_frames(2, 44_100), 1); // 0.73
        assert_eq!(expected_output_frames(3, 48_000), 1);
        assert_eq!(expected_output_frames(1, 8000), 2);
        assert_eq!(expected_output_frames(u64::MAX, 4000), u64::MAX);
    }

    #[test]
    fn buffers_are_made_once() {
        let mut resampler = StreamResampler::new(44_100, 2).unwrap();
        let buffers = |r: &StreamResampler| {
            let engine = r.engine.as_ref().unwrap();
            (
                engine.input.as_ptr(),
                engine.input.capacity(),
                engine.output.as_ptr(),
                engine.output.capacity(),
            )
        };
        let before = buffers(&resampler);
        let mut out = Vec::with_capacity(100_000);
        for size in [1, 7, 160, 1024, 4096, 3, 20_000] {
            resampler.push(&vec![0.25; size], &mut out).unwrap();
            assert_eq!(buffers(&resampler), before);
        }
        resampler.flush(&mut out).unwrap();
        assert_eq!(buffers(&resampler), before);
    }

    #[test]
    fn the_filter_delay_is_a_few_chunks_at_most() {
        // flush() relies on it to drain in a few rounds.
        for rate in [MIN_SAMPLE_RATE, 8000, 11_025, 44_100, 48_000, MAX_SAMPLE_RATE] {
            let engine = Engine::new(rate).unwrap();
            assert!(engine.delay <= 4 * engine.output.len(), "{rate} Hz");
            assert!(engine.delay > 0, "{rate} Hz");
        }
    }
}
