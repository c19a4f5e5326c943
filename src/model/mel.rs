//! The mel filterbank Whisper was trained with, computed rather than shipped.
//!
//! Whisper's `assets/mel_filters.npz` holds `librosa.filters.mel(sr=16000, n_fft=400,
//! n_mels=80 or 128)`: triangular filters on the Slaney mel scale (linear below 1 kHz,
//! logarithmic above), each scaled to unit area (`norm="slaney"`). This module follows
//! librosa's arithmetic step by step, including its float32 storage, so the values match
//! the file whisper.cpp's converters copy into every ggml model.

/// Whisper's sample rate in Hz.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's FFT size (25 ms windows at 16 kHz).
pub const N_FFT: usize = 400;

/// Slaney mel scale: 3 mels per 200 Hz below 1 kHz ...
const F_SP: f64 = 200.0 / 3.0;
/// ... and logarithmic above it.
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hertz → mels on the Slaney scale (librosa's `hz_to_mel` with `htk=False`).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Mels → hertz on the Slaney scale (librosa's `mel_to_hz` with `htk=False`).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// A mel filterbank: `n_mels` rows of `n_freqs` weights, one per FFT bin.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilters {
    /// Number of mel bands (rows).
    pub n_mels: usize,
    /// Number of FFT bins (columns): `n_fft / 2 + 1`.
    pub n_freqs: usize,
    /// The weights, row-major: `data[mel * n_freqs + bin]`.
    pub data: Vec<f32>,
}

impl MelFilters {
    /// The weights of mel band `mel`.
    pub fn row(&self, mel: usize) -> &[f32] {
        &self.data[mel * self.n_freqs..(mel + 1) * self.n_freqs]
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels)` with its defaults: `fmin` 0, `fmax` sr/2,
/// Slaney scale, Slaney (unit area) normalisation, float32.
pub fn slaney_filterbank(sample_rate: u32, n_fft: usize, n_mels: usize) -> MelFilters {
    let sr = f64::from(sample_rate);
    let n_freqs = n_fft / 2 + 1;
    // np.fft.rfftfreq(n_fft, 1/sr)
    let bin_hz = 1.0 / (n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..n_freqs).map(|i| i as f64 * bin_hz).collect();
    // mel_frequencies(n_mels + 2, 0, sr/2): np.linspace in mels, back to Hz.
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let n_points = n_mels + 2;
    let step = (hi - lo) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            let m = if i == n_points - 1 { hi } else { i as f64 * step + lo };
            mel_to_hz(m)
        })
        .collect();

    let mut data = vec![0f32; n_mels * n_freqs];
    for i in 0..n_mels {
        let fdiff_lo = mel_f[i + 1] - mel_f[i];
        let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (j, &f) in fft_freqs.iter().enumerate() {
            let lower = -(mel_f[i] - f) / fdiff_lo;
            let upper = (mel_f[i + 2] - f) / fdiff_hi;
            // librosa stores the triangle in a float32 array, then scales it in float64.
            let w = lower.min(upper).max(0.0) as f32;
            data[i * n_freqs + j] = (f64::from(w) * enorm) as f32;
        }
    }
    MelFilters { n_mels, n_freqs, data }
}

/// The filterbank Whisper uses with `n_mels` bands (80, or 128 for large-v3).
pub fn whisper_filters(n_mels: usize) -> MelFilters {
    slaney_filterbank(SAMPLE_RATE, N_FFT, n_mels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(row: &[f32]) -> Vec<usize> {
        row.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(j, _)| j).collect()
    }

    #[test]
    fn mel_scale_is_linear_below_1khz_and_inverts() {
        assert_eq!(hz_to_mel(0.0), 0.0);
        assert!((hz_to_mel(200.0) - 3.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        // 6.4 kHz is 27 log-steps above 1 kHz.
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
        for hz in [0.0, 50.0, 999.0, 1000.0, 2500.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn filters_have_whisper_shape_and_are_non_negative() {
        for n_mels in [80, 128] {
            let f = whisper_filters(n_mels);
            assert_eq!((f.n_mels, f.n_freqs, f.data.len()), (n_mels, 201, n_mels * 201));
            assert!(f.data.iter().all(|w| w.is_finite() && *w >= 0.0));
            // The DC bin is in no band (the first band peaks at bin 1).
            assert!((0..n_mels).all(|m| f.row(m)[0] == 0.0));
            for m in 0..n_mels {
                let s = support(f.row(m));
                assert!(!s.is_empty(), "band {m} is empty");
                // A triangle: one contiguous run of bins.
                assert_eq!(s.len(), s[s.len() - 1] - s[0] + 1, "band {m}");
            }
            // Bands move up in frequency.
            for m in 1..n_mels {
                assert!(support(f.row(m))[0] >= support(f.row(m - 1))[0]);
            }
        }
    }

    /// Values worked out from the Slaney formulas above (in float64, then rounded to
    /// float32), which match librosa.filters.mel(sr=16000, n_fft=400, n_mels=80):
    /// Whisper's mel_filters.npz starts with row 0 = [0, 0.02486259, 0, ...].
    #[test]
    fn spot_values_match_librosa() {
        let f = whisper_filters(80);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-7 * b.abs().max(1e-3);
        assert_eq!(support(f.row(0)), vec![1]);
        assert!(close(f.row(0)[1], 0.024_862_595), "{}", f.row(0)[1]);
        assert_eq!(support(f.row(1)), vec![1, 2]);
        assert!(close(f.row(1)[1], 0.001_990_822));
        assert!(close(f.row(1)[2], 0.022_871_772));
        assert_eq!(support(f.row(40)), vec![42, 43, 44]);
        assert!(close(f.row(40)[43], 0.014_735_566));
        assert_eq!(support(f.row(79)), (186..=199).collect::<Vec<_>>());
        assert!(close(f.row(79)[192], 0.003_164_711_6));
        // The sum of all weights, from the same reference computation: a check on the
        // normalisation of every band at once.
        let total: f64 = f.data.iter().map(|w| f64::from(*w)).sum();
        assert!((total - 1.999_024_1).abs() < 1e-5, "{total}");

        let f = whisper_filters(128);
        assert!(close(f.row(0)[1], 0.012_373_987));
        assert!(close(f.row(1)[1], 0.030_392_565));
        assert_eq!(support(f.row(127)), (191..=199).collect::<Vec<_>>());
        assert!(close(f.row(127)[195], 0.005_041_601_6));
    }
}
