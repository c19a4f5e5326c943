//! Microphone capture (Cargo feature `mic`, on by default; needs ALSA on Linux).
//!
//! The cpal callback only converts samples to f32 and copies them into a
//! preallocated single-producer ring (rtrb): it never allocates, locks or logs.
//! Whoever owns the [`Microphone`] drains the ring with [`Microphone::read`].
//! If the reader falls behind by more than the ring holds (4 s), the newest
//! samples are dropped and counted in [`Microphone::dropped_samples`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::{Error, Result};

/// Seconds of audio the ring between the callback and the reader holds.
const RING_SECONDS: usize = 4;

/// An audio input the system offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDevice {
    /// The name to pass to [`Microphone::open`].
    pub name: String,
    /// Whether this is the system's default input.
    pub is_default: bool,
    /// Its default sample rate, in Hz.
    pub sample_rate: u32,
    /// Its default channel count.
    pub channels: u16,
    /// The lowest and highest rates it supports, in Hz.
    pub rate_range: (u32, u32),
}

fn device_error(reason: impl std::fmt::Display) -> Error {
    Error::Device { reason: reason.to_string() }
}

fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_string())
        .or_else(|_| device.id().map(|id| id.to_string()))
        .unwrap_or_else(|_| "unknown device".into())
}

/// The inputs (microphones, line-ins) of the default audio host.
pub fn input_devices() -> Result<Vec<InputDevice>> {
    let host = cpal::default_host();
    let default_name = host.default_input_device().map(|d| device_name(&d));
    let devices =
        host.input_devices().map_err(|e| device_error(format!("cannot list audio inputs: {e}")))?;
    let mut out = Vec::new();
    for device in devices {
        let Ok(config) = device.default_input_config() else { continue };
        let (mut lo, mut hi) = (u32::MAX, 0);
        if let Ok(configs) = device.supported_input_configs() {
            for c in configs {
                lo = lo.min(c.min_sample_rate());
                hi = hi.max(c.max_sample_rate());
            }
        }
        if lo > hi {
            (lo, hi) = (config.sample_rate(), config.sample_rate());
        }
        let name = device_name(&device);
        out.push(InputDevice {
            is_default: default_name.as_deref() == Some(name.as_str()),
            name,
            sample_rate: config.sample_rate(),
            channels: config.channels(),
            rate_range: (lo, hi),
        });
    }
    Ok(out)
}

/// A running microphone capture.
pub struct Microphone {
    // Kept alive: dropping the stream stops capture.
    _stream: cpal::Stream,
    consumer: rtrb::Consumer<f32>,
    sample_rate: u32,
    channels: u16,
    name: String,
    dropped: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("name", &self.name)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl Microphone {
    /// Open an input by name (a case-insensitive substring of a name from
    /// [`input_devices`]), or the default input, at its default rate; capture starts
    /// at once.
    pub fn open(name: Option<&str>) -> Result<Self> {
        let host = cpal::default_host();
        let device = match name {
            None => host.default_input_device().ok_or_else(|| {
                device_error("no audio input device found (is a microphone connected? `cantocap devices` lists inputs)")
            })?,
            Some(wanted) => {
                let wanted_lc = wanted.to_lowercase();
                host.input_devices()
                    .map_err(|e| device_error(format!("cannot list audio inputs: {e}")))?
                    .find(|d| device_name(d).to_lowercase().contains(&wanted_lc))
                    .ok_or_else(|| device_error(format!("no audio input named {wanted:?} (`cantocap devices` lists inputs)")))?
            }
        };
        let name = device_name(&device);
        let config = device
            .default_input_config()
            .map_err(|e| device_error(format!("{name}: cannot use it for input: {e}")))?;
        let sample_rate = config.sample_rate();
        let channels = config.channels();
        let capacity = sample_rate as usize * channels as usize * RING_SECONDS;
        let (producer, consumer) = rtrb::RingBuffer::new(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let stream_config: cpal::StreamConfig = config.into();
        let stream = match config.sample_format() {
            SampleFormat::I16 => build::<i16>(&device, stream_config, producer, &dropped, &errors),
            SampleFormat::I32 => build::<i32>(&device, stream_config, producer, &dropped, &errors),
            SampleFormat::U16 => build::<u16>(&device, stream_config, producer, &dropped, &errors),
            SampleFormat::F32 => build::<f32>(&device, stream_config, producer, &dropped, &errors),
            other => {
                return Err(device_error(format!("{name}: unsupported sample format {other}")))
            }
        }
        .map_err(|e| device_error(format!("{name}: cannot open it: {e}")))?;
        stream.play().map_err(|e| device_error(format!("{name}: cannot start capture: {e}")))?;
        Ok(Self { _stream: stream, consumer, sample_rate, channels, name, dropped, errors })
    }

    /// Append all captured samples (interleaved) to `out`; returns how many.
    pub fn read(&mut self, out: &mut Vec<f32>) -> usize {
        let n = self.consumer.slots();
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = self.consumer.read_chunk(n) else { return 0 };
        let (a, b) = chunk.as_slices();
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        chunk.commit_all();
        n
    }

    /// The device's sample rate, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The device's channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Samples lost because the reader fell more than the ring's length behind.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stream errors reported by the audio system (device unplugged, overruns).
    pub fn stream_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut producer: rtrb::Producer<f32>,
    dropped: &Arc<AtomicU64>,
    errors: &Arc<AtomicU64>,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let dropped = Arc::clone(dropped);
    let errors = Arc::clone(errors);
    device.build_input_stream(
        config,
        // Real-time: no allocation, no locks, no logging.
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let n = producer.slots().min(data.len());
            if let Ok(chunk) = producer.write_chunk_uninit(n) {
                chunk.fill_from_iter(data[..n].iter().map(|s| s.to_sample::<f32>()));
            }
            if n < data.len() {
                dropped.fetch_add((data.len() - n) as u64, Ordering::Relaxed);
            }
        },
        move |_err| {
            errors.fetch_add(1, Ordering::Relaxed);
        },
        None,
    )
}
