//! Audio in: resampling to 16 kHz mono over a matrix of rates, channel counts and chunk
//! sizes (in the manner of rubato's `test_matrix`), plus WAV files end to end.

use std::f64::consts::TAU;

use cantocap::audio::{
    downmix, read_wav, to_16k_mono, AudioBuffer, StreamResampler, MAX_CHANNELS, MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE, WHISPER_SAMPLE_RATE,
};
use cantocap::Error;

const OUT_RATE: f64 = WHISPER_SAMPLE_RATE as f64;

/// Rates a client might send; 16 kHz is the pass-through case.
const RATES: [u32; 8] = [8000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000];

/// Rates nobody should send but that must work anyway.
const ODD_RATES: [u32; 7] = [4000, 7999, 12_000, 44_056, 88_200, 192_000, 384_000];

/// Interleaved samples per push; `usize::MAX` is the whole input at once.
const CHUNKS: [usize; 5] = [1, 7, 160, 1024, usize::MAX];

/// `seconds` of interleaved audio where channel `c` is `tones[c % tones.len()]`, a list
/// of (frequency in Hz, amplitude) sines summed.
fn tones(rate: u32, channels: u16, seconds: f64, tones: &[&[(f64, f64)]]) -> Vec<f32> {
    let frames = (f64::from(rate) * seconds).round() as usize;
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..usize::from(channels) {
            let value: f64 =
                tones[c % tones.len()].iter().map(|&(f, a)| a * (TAU * f * t).sin()).sum();
            out.push(value as f32);
        }
    }
    out
}

/// The expected output length for `frames` input frames at `rate`.
fn expected_len(frames: usize, rate: u32) -> usize {
    (frames as f64 * OUT_RATE / f64::from(rate)).round() as usize
}

/// Pushes `input` through a fresh [`StreamResampler`] `chunk` samples at a time.
fn stream(input: &[f32], rate: u32, channels: u16, chunk: usize) -> Vec<f32> {
    let mut resampler = StreamResampler::new(rate, channels).unwrap();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.min(input.len()).max(1)) {
        resampler.push(piece, &mut out).unwrap();
    }
    resampler.flush(&mut out).unwrap();
    out
}

/// The middle of a 16 kHz signal, away from the filter's start and end transients.
fn middle(signal: &[f32]) -> &[f32] {
    let margin = signal.len() / 10;
    &signal[margin..signal.len() - margin]
}

fn rms(signal: &[f32]) -> f64 {
    (signal.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / signal.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// The amplitude of the `freq` Hz component of a 16 kHz signal (Hann-windowed DFT at
/// exactly that frequency, so a neighbouring tone does not leak in).
fn amplitude_at(signal: &[f32], freq: f64) -> f64 {
    let n = signal.len() as f64;
    let (mut re, mut im, mut weight) = (0.0, 0.0, 0.0);
    for (i, &s) in signal.iter().enumerate() {
        let w = 0.5 - 0.5 * (TAU * i as f64 / n).cos();
        let phase = TAU * freq * i as f64 / OUT_RATE;
        re += w * f64::from(s) * phase.cos();
        im -= w * f64::from(s) * phase.sin();
        weight += w;
    }
    2.0 * (re * re + im * im).sqrt() / weight
}

/// The frequency of a single tone at 16 kHz, from its zero crossings.
fn zero_crossing_frequency(signal: &[f32]) -> f64 {
    let mut crossings = Vec::new();
    for (i, pair) in signal.windows(2).enumerate() {
        let (a, b) = (f64::from(pair[0]), f64::from(pair[1]));
        if (a < 0.0) != (b < 0.0) {
            crossings.push(i as f64 + a / (a - b));
        }
    }
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 / 2.0 / ((last - first) / OUT_RATE)
}

/// The position of the largest sample, refined by a parabola through its neighbours.
fn peak_position(signal: &[f32]) -> f64 {
    let (i, _) = signal.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap();
    let (a, b, c) = (f64::from(signal[i - 1]), f64::from(signal[i]), f64::from(signal[i + 1]));
    i as f64 + 0.5 * (a - c) / (a - 2.0 * b + c)
}

fn assert_close(a: &[f32], b: &[f32], context: &str) {
    assert_eq!(a.len(), b.len(), "{context}: lengths differ");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "{context}: differs by up to {worst}");
}

#[test]
fn matrix_of_rates_channels_and_chunk_sizes() {
    // Mono: one 440 Hz tone. Stereo: 440 Hz on the left, 3 kHz on the right, so the
    // downmix must hold each at half its amplitude.
    let left: &[(f64, f64)] = &[(440.0, 0.6)];
    let right: &[(f64, f64)] = &[(3000.0, 0.4)];
    for rate in RATES {
        for channels in [1u16, 2] {
            let input = tones(rate, channels, 1.0, &[left, right]);
            let frames = input.len() / usize::from(channels);
            let whole = to_16k_mono(&input, rate, channels).unwrap();
            let context = format!("{rate} Hz, {channels} ch");
            assert_eq!(whole.len(), expected_len(frames, rate), "{context}");

            let signal = middle(&whole);
            if channels == 1 {
                let freq = zero_crossing_frequency(signal);
                assert!((freq - 440.0).abs() < 0.05, "{context}: 440 Hz came out at {freq} Hz");
                let gain = db(rms(signal) / (0.6 / 2f64.sqrt()));
                assert!(gain.abs() < 1.0, "{context}: RMS off by {gain:.2} dB");
            } else {
                for (freq, want) in [(440.0, 0.3), (3000.0, 0.2)] {
                    let gain = db(amplitude_at(signal, freq) / want);
                    assert!(gain.abs() < 1.0, "{context}: {freq} Hz off by {gain:.2} dB");
                }
            }

            for chunk in CHUNKS {
                let chunked = stream(&input, rate, channels, chunk);
                assert_close(&chunked, &whole, &format!("{context}, chunks of {chunk}"));
            }
        }
    }
}

#[test]
fn odd_rates_keep_length_and_frequency() {
    for rate in ODD_RATES {
        // Below the input's Nyquist frequency and the output's passband.
        let freq = if rate < 8000 { 440.0 } else { 3000.0 };
        let input = tones(rate, 1, 1.0, &[&[(freq, 0.5)]]);
        let out = to_16k_mono(&input, rate, 1).unwrap();
        assert_eq!(out.len(), expected_len(input.len(), rate), "{rate} Hz");
        let signal = middle(&out);
        let measured = zero_crossing_frequency(signal);
        assert!((measured - freq).abs() < 0.1, "{rate} Hz: {freq} Hz came out at {measured}");
        let gain = db(rms(signal) / (0.5 / 2f64.sqrt()));
        assert!(gain.abs() < 1.0, "{rate} Hz: RMS off by {gain:.2} dB");
        assert_close(&stream(&input, rate, 1, 333), &out, &format!("{rate} Hz"));
    }
}

#[test]
fn a_click_stays_where_it_was() {
    for rate in RATES.into_iter().chain(ODD_RATES) {
        for channels in [1u16, 2] {
            // A click at exactly 1.000 s in 2 s of silence, on every channel.
            let frames = 2 * rate as usize;
            let mut input = vec![0.0f32; frames * usize::from(channels)];
            let at = rate as usize * usize::from(channels);
            input[at..at + usize::from(channels)].fill(0.9);
            let out = to_16k_mono(&input, rate, channels).unwrap();
            let position = peak_position(&out);
            let error_ms = (position - OUT_RATE) / OUT_RATE * 1000.0;
            // The filter delay is compensated to within half an output sample (31 µs);
            // the parabola's estimate of the peak adds a little.
            assert!(
                error_ms.abs() < 0.05,
                "{rate} Hz, {channels} ch: the click moved by {error_ms:.3} ms"
            );
        }
    }
}

#[test]
fn no_drift_over_a_minute() {
    // An odd ratio accumulates any error in the step size; a minute would show it.
    for rate in [44_056, 22_050] {
        let mut input = vec![0.0f32; 60 * rate as usize];
        let at = 59 * rate as usize;
        input[at] = 1.0;
        let out = stream(&input, rate, 1, 4096);
        assert_eq!(out.len(), 60 * WHISPER_SAMPLE_RATE as usize, "{rate} Hz");
        let error = peak_position(&out) - 59.0 * OUT_RATE;
        assert!(error.abs() < 1.0, "{rate} Hz: the click drifted {error:.2} samples");
    }
}

#[test]
fn tones_above_8_khz_do_not_alias() {
    // Each would fold back into 0..8 kHz if the filter let it through.
    let cases = [
        (48_000, 10_000.0),
        (48_000, 8_500.0),
        (48_000, 15_000.0),
        (44_100, 9_000.0),
        (44_100, 12_000.0),
        (22_050, 9_000.0),
        (32_000, 11_000.0),
        (96_000, 20_000.0),
        (192_000, 40_000.0),
    ];
    for (rate, freq) in cases {
        let amplitude = 0.5;
        let input = tones(rate, 1, 1.0, &[&[(freq, amplitude)]]);
        let out = to_16k_mono(&input, rate, 1).unwrap();
        let level = db(rms(middle(&out)) / (amplitude / 2f64.sqrt()));
        // The filter reaches more than 130 dB; 100 dB leaves room for rounding.
        assert!(level < -100.0, "{rate} Hz: a {freq} Hz tone came through at {level:.1} dB");
    }
}

#[test]
fn the_passband_holds_speech() {
    // Whisper's features reach 8 kHz; the filter must keep the speech band level.
    for rate in [22_050, 44_100, 48_000, 96_000] {
        for freq in [100.0, 1000.0, 4000.0, 6000.0, 7000.0, 7300.0] {
            let input = tones(rate, 1, 1.0, &[&[(freq, 0.5)]]);
            let out = to_16k_mono(&input, rate, 1).unwrap();
            let gain = db(amplitude_at(middle(&out), freq) / 0.5);
            assert!(gain.abs() < 0.5, "{rate} Hz: {freq} Hz changed by {gain:.2} dB");
        }
    }
}

#[test]
fn sixteen_khz_mono_passes_through_exactly() {
    let input: Vec<f32> = (0..16_003).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
    assert_eq!(to_16k_mono(&input, 16_000, 1).unwrap(), input);
    for chunk in CHUNKS {
        assert_eq!(stream(&input, 16_000, 1, chunk), input, "chunks of {chunk}");
    }
    // At 16 kHz, stereo is only averaged.
    let stereo: Vec<f32> = input.iter().flat_map(|&s| [s, -0.5 * s]).collect();
    let expected: Vec<f32> = input.iter().map(|&s| (s + -0.5 * s) * 0.5).collect();
    assert_eq!(to_16k_mono(&stereo, 16_000, 2).unwrap(), expected);
    assert_eq!(stream(&stereo, 16_000, 2, 7), expected);
}

#[test]
fn downmix_averages_channels() {
    assert_eq!(downmix(&[1.0, 0.0, 0.5, -0.5], 2), [0.5, 0.0]);
    assert_eq!(downmix(&[0.3, 0.6, 0.9], 3), [0.6]);
    assert_eq!(downmix(&[0.1, 0.2, 0.3], 1), [0.1, 0.2, 0.3]);
    // An incomplete last frame is dropped; no channels means nothing to average.
    assert_eq!(downmix(&[1.0, 1.0, 1.0], 2), [1.0]);
    assert!(downmix(&[1.0], 0).is_empty());
}

#[test]
fn short_and_empty_inputs() {
    assert!(to_16k_mono(&[], 44_100, 2).unwrap().is_empty());
    assert!(to_16k_mono(&[0.5], 44_100, 1).unwrap().is_empty());
    assert_eq!(to_16k_mono(&[0.5; 3], 48_000, 1).unwrap().len(), 1);
    assert_eq!(to_16k_mono(&[0.5; 4], 8000, 1).unwrap().len(), 8);
    // Half a frame is not a frame.
    assert!(to_16k_mono(&[0.5], 16_000, 2).unwrap().is_empty());

    let mut resampler = StreamResampler::new(48_000, 2).unwrap();
    let mut out = Vec::new();
    resampler.flush(&mut out).unwrap();
    assert!(out.is_empty());

    let empty = AudioBuffer { samples: Vec::new(), sample_rate: 44_100, channels: 2 };
    assert!(matches!(empty.to_whisper_input(), Err(Error::EmptyAudio)));
    assert_eq!((empty.frames(), empty.duration_ms()), (0, 0));
}

#[test]
fn bad_rates_channels_and_samples_are_refused() {
    for rate in [0, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, u32::MAX] {
        let error = StreamResampler::new(rate, 1).unwrap_err();
        assert!(matches!(error, Error::UnsupportedSampleRate { .. }), "{error:?}");
        assert!(to_16k_mono(&[0.0; 10], rate, 1).is_err());
    }
    for channels in [0, MAX_CHANNELS + 1] {
        let error = StreamResampler::new(48_000, channels).unwrap_err();
        assert!(matches!(error, Error::UnsupportedChannels { .. }), "{error:?}");
    }
    let error = to_16k_mono(&[0.0, 0.1, f32::NAN, 0.2], 48_000, 2).unwrap_err();
    assert!(matches!(error, Error::NonFiniteSample { index: 2, .. }), "{error:?}");

    // In a stream the index counts from the start, and the stream survives the error.
    let mut resampler = StreamResampler::new(44_100, 2).unwrap();
    let mut out = Vec::new();
    resampler.push(&[0.0; 100], &mut out).unwrap();
    let error = resampler.push(&[0.0, f32::INFINITY], &mut out).unwrap_err();
    assert!(matches!(error, Error::NonFiniteSample { index: 101, .. }), "{error:?}");
    resampler.push(&[0.0; 100], &mut out).unwrap();
    resampler.flush(&mut out).unwrap();
    assert_eq!(out.len(), expected_len(100, 44_100));
}

#[test]
fn flush_readies_the_resampler_for_the_next_stream() {
    let input = tones(44_100, 2, 0.5, &[&[(440.0, 0.5)], &[(880.0, 0.25)]]);
    let mut resampler = StreamResampler::new(44_100, 2).unwrap();
    assert_eq!((resampler.input_rate(), resampler.channels()), (44_100, 2));
    let mut first = Vec::new();
    resampler.push(&input, &mut first).unwrap();
    // A stray half frame at the end is dropped, not carried into the next stream.
    resampler.push(&[0.7], &mut first).unwrap();
    resampler.flush(&mut first).unwrap();
    let mut second = Vec::new();
    resampler.push(&input, &mut second).unwrap();
    resampler.flush(&mut second).unwrap();
    assert_eq!(first, second);
    assert_eq!(first, to_16k_mono(&input, 44_100, 2).unwrap());
}

#[test]
fn the_resampler_can_move_to_another_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<StreamResampler>();
}

#[test]
fn wav_file_to_whisper_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..44_100 * 2 {
        let s = (TAU * 440.0 * i as f64 / 44_100.0).sin() * 0.5 * 32_767.0;
        writer.write_sample(s as i16).unwrap();
        writer.write_sample(s as i16).unwrap();
    }
    writer.finalize().unwrap();

    let audio = read_wav(&path).unwrap();
    assert_eq!((audio.sample_rate, audio.channels, audio.frames()), (44_100, 2, 88_200));
    assert_eq!(audio.duration_ms(), 2000);
    let input = audio.to_whisper_input().unwrap();
    assert_eq!(input.len(), 32_000);
    let freq = zero_crossing_frequency(middle(&input));
    assert!((freq - 440.0).abs() < 0.05, "{freq}");
}
