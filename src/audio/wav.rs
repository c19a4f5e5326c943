//! Reading WAV files.
//!
//! Supported: integer PCM in 8-, 16-, 24- and 32-bit containers and 32-bit IEEE float,
//! plain or `WAVE_FORMAT_EXTENSIBLE`, 1 to [`MAX_CHANNELS`] channels at
//! [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] Hz. Everything else (A-law, µ-law, ADPCM,
//! MP3-in-WAV, 64-bit float, big-endian RIFX, RF64) is refused with a one-line error that
//! names the format.
//!
//! The RIFF chunks are walked here rather than by hound (which writes the test files):
//! hound refuses files that are common in practice and readable (a data chunk cut short
//! by a crashed recorder or an interrupted copy, the open-ended length ffmpeg writes to a
//! pipe, odd-sized chunks padded as RIFF requires, a 20-byte `fmt ` chunk), and reads
//! sample by sample. This reader streams the data in 64 KiB blocks and never trusts a
//! length in the header for an allocation.
//!
//! **Truncated files** are read as far as they go: the whole frames present are returned,
//! and [`WavInfo::truncated`] says the data chunk was shorter than its header declared.
//! [`read_wav`] and [`read_wav_from`] accept such files silently; a caller that wants to
//! warn uses [`read_wav_with_info`].

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::resample::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use super::AudioBuffer;
use crate::{Error, Result};

/// What the reader supports, for error messages.
const SUPPORTED: &str = "supported: PCM 8/16/24/32-bit integer, 32-bit float";

/// Bytes of sample data read at a time.
const BLOCK_BYTES: usize = 64 * 1024;

/// Samples reserved up front when the input's size is unknown (16 MiB of `f32`); a header
/// can claim up to 4 GiB, which is no reason to allocate it before the data arrives.
const MAX_RESERVE_SAMPLES: u64 = 1 << 22;

/// How samples are stored in a WAV file that [`read_wav`] can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WavSampleFormat {
    /// Unsigned 8-bit integers.
    Int8,
    /// Signed 16-bit little-endian integers.
    Int16,
    /// Signed 24-bit little-endian integers, packed in 3 bytes.
    Int24,
    /// Signed 32-bit little-endian integers (also 24 valid bits in 4 bytes).
    Int32,
    /// 32-bit little-endian IEEE floats.
    Float32,
}

impl WavSampleFormat {
    /// Bytes per sample.
    fn bytes(self) -> usize {
        match self {
            WavSampleFormat::Int8 => 1,
            WavSampleFormat::Int16 => 2,
            WavSampleFormat::Int24 => 3,
            WavSampleFormat::Int32 | WavSampleFormat::Float32 => 4,
        }
    }
}

impl fmt::Display for WavSampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WavSampleFormat::Int8 => "8-bit integer PCM",
            WavSampleFormat::Int16 => "16-bit integer PCM",
            WavSampleFormat::Int24 => "24-bit integer PCM",
            WavSampleFormat::Int32 => "32-bit integer PCM",
            WavSampleFormat::Float32 => "32-bit float PCM",
        })
    }
}

/// What [`read_wav_with_info`] learnt about a file besides its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WavInfo {
    /// How the samples were stored.
    pub sample_format: WavSampleFormat,
    /// Frames the data chunk's header declared; `None` when it left the length open
    /// (`0xFFFFFFFF`, as ffmpeg writes to a pipe), in which case the data ran to the end.
    pub declared_frames: Option<u64>,
    /// The data ended before its declared length, or in the middle of a frame: the file
    /// was cut short. The whole frames that were there have been read.
    pub truncated: bool,
}

/// Reads a WAV file into interleaved `f32` samples in -1..1.
///
/// Supported: integer PCM in 8-, 16-, 24- and 32-bit containers and 32-bit IEEE float,
/// plain or `WAVE_FORMAT_EXTENSIBLE`, 1 to [`MAX_CHANNELS`] channels at
/// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] Hz. Float samples are returned as stored
/// (they may exceed ±1).
///
/// A **truncated** file (its data chunk shorter than the header says: an interrupted
/// copy, a recorder that crashed) gives the whole frames present, as does a data chunk
/// of open length (`0xFFFFFFFF`, as ffmpeg writes to a pipe). Use [`read_wav_with_info`]
/// to learn that a file was truncated.
///
/// Errors, each one line: [`Error::Io`] when the file cannot be opened or read;
/// [`Error::BadAudio`] when it is not a WAV file (`not a WAV file (no RIFF/WAVE header…`),
/// holds no audio (`contains no audio …`), is in an unsupported format (`unsupported WAV
/// format: A-law (format tag 0x0006); supported: …`: also µ-law, ADPCM, 64-bit float,
/// big-endian RIFX, RF64), or has an unsupported rate or channel count; and
/// [`Error::NonFiniteSample`] for a NaN or infinite float sample.
pub fn read_wav(path: &Path) -> Result<AudioBuffer> {
    let io_error = |source| Error::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    read(file, path, Some(size)).map(|(audio, _)| audio)
}

/// Reads a WAV file from `reader`, like [`read_wav`]; `name` only labels errors.
///
/// The reader is read up to the end of the data chunk and no further; it needs no
/// buffering (reads are 64 KiB) and no `Seek`, so standard input works.
pub fn read_wav_from<R: Read>(reader: R, name: &Path) -> Result<AudioBuffer> {
    read(reader, name, None).map(|(audio, _)| audio)
}

/// Reads a WAV file like [`read_wav_from`], and says how it was stored and whether it
/// was truncated (so a caller can warn that the end of the recording is missing).
pub fn read_wav_with_info<R: Read>(reader: R, name: &Path) -> Result<(AudioBuffer, WavInfo)> {
    read(reader, name, None)
}

/// The parts of the `fmt ` chunk the reader uses.
#[derive(Debug, Clone, Copy)]
struct Format {
    sample_format: WavSampleFormat,
    /// Bits that carry the signal, at most the container's.
    valid_bits: u16,
    channels: u16,
    sample_rate: u32,
}

/// `size_hint` is the input's total size in bytes when known (a file), to size the sample
/// buffer from the data actually there rather than from the header's claims.
fn read<R: Read>(reader: R, name: &Path, size_hint: Option<u64>) -> Result<(AudioBuffer, WavInfo)> {
    let mut src = Source { reader, name, position: 0 };
    let bad = |reason: String| Error::BadAudio { path: name.to_path_buf(), reason };

    let mut header = [0u8; 12];
    let got = src.read_up_to(&mut header)?;
    check_riff_header(&header[..got]).map_err(bad)?;

    let mut format: Option<Format> = None;
    loop {
        let mut chunk = [0u8; 8];
        if src.read_up_to(&mut chunk)? < chunk.len() {
            return Err(bad(match format {
                None => "no fmt chunk: the file is cut short or damaged".to_string(),
                Some(_) => "no data chunk: the file holds no audio, or is cut short".to_string(),
            }));
        }
        let id = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &id {
            b"fmt " => {
                // 40 bytes is WAVE_FORMAT_EXTENSIBLE; anything longer is extra we ignore.
                let mut fmt = [0u8; 40];
                let want = fmt.len().min(size as usize);
                let got = src.read_up_to(&mut fmt[..want])?;
                if got < want {
                    return Err(bad("the file ends inside its fmt chunk".to_string()));
                }
                let parsed = parse_fmt(&fmt[..got]).map_err(bad)?;
                let rest = u64::from(size) - got as u64 + u64::from(size & 1);
                src.skip(rest)?;
                format = Some(parsed);
            }
            b"data" => {
                let Some(format) = format else {
                    return Err(bad("the data chunk comes before the fmt chunk".to_string()));
                };
                let remaining = size_hint.map(|total| total.saturating_sub(src.position));
                return read_data(&mut src, format, size, remaining);
            }
            _ => {
                // RIFF pads chunks to an even length.
                let len = u64::from(size) + u64::from(size & 1);
                if src.skip(len)? < u64::from(size) {
                    return Err(bad(format!(
                        "the file ends inside its {:?} chunk, before any audio",
                        String::from_utf8_lossy(&id)
                    )));
                }
            }
        }
    }
}

/// Checks the 12-byte RIFF header (shorter if the input was); if it is not a WAV file,
/// says what it looks like instead.
fn check_riff_header(header: &[u8]) -> std::result::Result<(), String> {
    if header.len() == 12 && &header[0..4] == b"RIFF" && &header[8..12] == b"WAVE" {
        return Ok(());
    }
    let starts = |magic: &[u8]| header.starts_with(magic);
    let hint = if header.is_empty() {
        "; the file is empty"
    } else if header.len() == 12 && &header[8..12] == b"WAVE" && starts(b"RIFX") {
        return Err(format!("big-endian WAV (RIFX) is not supported; {SUPPORTED}, little-endian"));
    } else if header.len() == 12
        && &header[8..12] == b"WAVE"
        && (starts(b"RF64") || starts(b"BW64"))
    {
        return Err(format!("RF64 WAV (over 4 GiB) is not supported; {SUPPORTED}, up to 4 GiB"));
    } else if starts(b"fLaC") {
        "; it looks like FLAC"
    } else if starts(b"OggS") {
        "; it looks like Ogg"
    } else if starts(b"ID3") || (header.len() >= 2 && header[0] == 0xFF && header[1] & 0xE0 == 0xE0)
    {
        "; it looks like MP3"
    } else if header.len() >= 8 && &header[4..8] == b"ftyp" {
        "; it looks like MP4/M4A"
    } else if starts(b"FORM") {
        "; it looks like AIFF"
    } else if starts(b"RIFF") {
        "; it is a RIFF file of another kind"
    } else {
        ""
    };
    Err(format!(
        "not a WAV file (no RIFF/WAVE header{hint}); convert it first, for example with \
         `ffmpeg -i INPUT -ar 16000 -ac 1 OUTPUT.wav`"
    ))
}

/// Parses a `fmt ` chunk (at least its first 16 bytes) into a supported [`Format`].
fn parse_fmt(fmt: &[u8]) -> std::result::Result<Format, String> {
    if fmt.len() < 16 {
        return Err(format!("the fmt chunk is too short ({} bytes, at least 16)", fmt.len()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let block_align = u16_at(12);
    let mut bits = u16_at(14);

    const EXTENSIBLE: u16 = 0xFFFE;
    // The sub-format GUID is the format tag followed by this fixed tail.
    const GUID_TAIL: [u8; 14] =
        [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71];
    if tag == EXTENSIBLE {
        if fmt.len() < 40 {
            return Err(format!(
                "the WAVE_FORMAT_EXTENSIBLE fmt chunk is too short ({} bytes, 40 needed)",
                fmt.len()
            ));
        }
        if fmt[26..40] != GUID_TAIL {
            return Err(format!(
                "unsupported WAV format: an unknown WAVE_FORMAT_EXTENSIBLE sub-format; {SUPPORTED}"
            ));
        }
        tag = u16_at(24);
        // wValidBitsPerSample; the samples are left-justified in their containers, so
        // decoding the whole container gives the right value whatever it says.
        let valid_bits = u16_at(18);
        if valid_bits > bits {
            return Err(format!(
                "inconsistent fmt chunk: {valid_bits} valid bits in {bits}-bit samples"
            ));
        }
        if valid_bits != 0 {
            bits = valid_bits;
        }
    }

    let container = match (block_align, channels) {
        (_, 0) => return Err("the fmt chunk says the audio has 0 channels".to_string()),
        (0, _) => return Err("inconsistent fmt chunk: block align is 0".to_string()),
        (align, ch) if align % ch != 0 => {
            return Err(format!(
                "inconsistent fmt chunk: block align {align} is not a whole number of bytes per sample for {ch} channels"
            ))
        }
        (align, ch) => align / ch,
    };

    const PCM: u16 = 0x0001;
    const IEEE_FLOAT: u16 = 0x0003;
    let sample_format = match tag {
        PCM => {
            if bits == 0 {
                bits = container.saturating_mul(8);
            }
            if u32::from(bits) > u32::from(container) * 8 {
                return Err(format!(
                    "inconsistent fmt chunk: {bits}-bit samples in {container}-byte containers"
                ));
            }
            match container {
                1 => WavSampleFormat::Int8,
                2 => WavSampleFormat::Int16,
                3 => WavSampleFormat::Int24,
                4 => WavSampleFormat::Int32,
                _ => {
                    return Err(format!(
                        "unsupported WAV format: {bits}-bit integer PCM in {container}-byte samples; {SUPPORTED}"
                    ))
                }
            }
        }
        IEEE_FLOAT => match (bits, container) {
            (32, 4) => WavSampleFormat::Float32,
            (64, _) | (_, 8) => {
                return Err(format!("unsupported WAV format: 64-bit float; {SUPPORTED}"))
            }
            (bits, _) => {
                return Err(format!("unsupported WAV format: {bits}-bit float; {SUPPORTED}"))
            }
        },
        other => {
            return Err(format!(
                "unsupported WAV format: {} (format tag 0x{other:04X}); {SUPPORTED}",
                format_tag_name(other)
            ))
        }
    };

    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(format!(
            "unsupported sample rate {sample_rate} Hz (supported: {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
        ));
    }
    if channels > MAX_CHANNELS {
        return Err(format!(
            "unsupported channel count {channels} (supported: 1..={MAX_CHANNELS})"
        ));
    }
    Ok(Format { sample_format, valid_bits: bits, channels, sample_rate })
}

/// A name for the common WAV format tags nobody should be surprised are unsupported.
fn format_tag_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x00FF | 0x1610 => "AAC",
        0xF1AC => "FLAC",
        _ => "an unknown encoding",
    }
}

/// Reads and decodes the data chunk; `remaining` is how many bytes the input has left
/// when known.
fn read_data<R: Read>(
    src: &mut Source<'_, R>,
    format: Format,
    size: u32,
    remaining: Option<u64>,
) -> Result<(AudioBuffer, WavInfo)> {
    let sample_bytes = format.sample_format.bytes();
    let frame_bytes = sample_bytes * usize::from(format.channels);
    // ffmpeg writing to a pipe cannot go back to fill in the length.
    let declared = (size != u32::MAX).then_some(u64::from(size));

    let known = match (declared, remaining) {
        (Some(d), Some(r)) => d.min(r),
        (Some(d), None) => d.min(MAX_RESERVE_SAMPLES * sample_bytes as u64),
        (None, Some(r)) => r,
        (None, None) => MAX_RESERVE_SAMPLES * sample_bytes as u64,
    };
    let mut samples: Vec<f32> = Vec::with_capacity((known / sample_bytes as u64) as usize);

    let block_len = (BLOCK_BYTES / frame_bytes).max(1) * frame_bytes;
    let mut block = vec![0u8; block_len];
    let mut left = declared.unwrap_or(u64::MAX);
    let mut truncated = false;
    let container_bits = 8 * sample_bytes as u32;
    let mut justify = (format.sample_format != WavSampleFormat::Float32
        && u32::from(format.valid_bits) < container_bits)
        .then(|| Justification::new(format.valid_bits, container_bits));
    while left > 0 {
        let want = block_len.min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = src.read_up_to(&mut block[..want])?;
        left -= got as u64;
        let whole = got / frame_bytes * frame_bytes;
        decode(format.sample_format, &block[..whole], &mut samples, &mut justify)?;
        if got < want {
            // The input ended: early if the header gave a length, and in any case if it
            // ended mid-frame.
            truncated = declared.is_some() || whole != got;
            break;
        }
    }

    if let Some(justify) = justify {
        justify.fix(&mut samples);
    }
    if samples.is_empty() {
        return Err(Error::BadAudio {
            path: src.name.to_path_buf(),
            reason: if truncated {
                "contains no audio (the file ends where its audio should begin)".to_string()
            } else {
                "contains no audio (the data chunk is empty)".to_string()
            },
        });
    }
    let info = WavInfo {
        sample_format: format.sample_format,
        declared_frames: declared.map(|d| d / frame_bytes as u64),
        truncated,
    };
    let audio = AudioBuffer { samples, sample_rate: format.sample_rate, channels: format.channels };
    Ok((audio, info))
}

/// Appends `bytes` (whole samples) decoded to `f32` in -1..1.
fn decode(
    format: WavSampleFormat,
    bytes: &[u8],
    samples: &mut Vec<f32>,
    justify: &mut Option<Justification>,
) -> Result<()> {
    // Integers are decoded into the top of an i32 (the container's top bit in bit 31),
    // so one scale maps every width to -1..1.
    match format {
        WavSampleFormat::Int8 => {
            extend_ints(samples, justify, bytes.iter().map(|&b| i32::from(b as i8 ^ i8::MIN) << 24))
        }
        WavSampleFormat::Int16 => extend_ints(
            samples,
            justify,
            bytes.chunks_exact(2).map(|b| i32::from_le_bytes([0, 0, b[0], b[1]])),
        ),
        WavSampleFormat::Int24 => extend_ints(
            samples,
            justify,
            bytes.chunks_exact(3).map(|b| i32::from_le_bytes([0, b[0], b[1], b[2]])),
        ),
        WavSampleFormat::Int32 => extend_ints(
            samples,
            justify,
            bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        WavSampleFormat::Float32 => {
            let start = samples.len();
            samples.extend(
                bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            if let Some(i) = samples[start..].iter().position(|s| !s.is_finite()) {
                return Err(Error::NonFiniteSample { index: start + i, value: samples[start + i] });
            }
        }
    }
    Ok(())
}

/// Appends top-aligned integer samples scaled to -1..1.
fn extend_ints(
    samples: &mut Vec<f32>,
    justify: &mut Option<Justification>,
    ints: impl Iterator<Item = i32>,
) {
    const SCALE: f32 = 1.0 / 2_147_483_648.0;
    match justify {
        None => samples.extend(ints.map(|x| x as f32 * SCALE)),
        Some(justify) => samples.extend(ints.map(|x| {
            justify.observe(x);
            x as f32 * SCALE
        })),
    }
}

/// Where the valid bits sit in containers wider than them.
///
/// WAVE_FORMAT_EXTENSIBLE puts them at the top (left-justified, low bits zero), and that
/// is how samples are decoded. Some writers (hound among them, for 24 bits in 4 bytes)
/// put them at the bottom instead, with the top bits zero or a copy of the sign; such a
/// file decodes 2^(container - valid) times too quiet, negative samples as positive. It
/// is recognised afterwards and corrected: some sample has bits set below the valid ones,
/// and every sample's bits above the valid ones are all zero or all one.
#[derive(Debug)]
struct Justification {
    /// The bits below the valid ones if left-justified, in the decoded (top-aligned) i32.
    low_mask: i32,
    /// Shifting a decoded sample right by this leaves the bits above the valid ones if
    /// right-justified.
    top_shift: u32,
    /// The factor that corrects a right-justified sample.
    factor: f32,
    any_low_bits: bool,
    all_padded: bool,
}

impl Justification {
    fn new(valid_bits: u16, container_bits: u32) -> Self {
        let valid = u32::from(valid_bits).clamp(1, container_bits);
        let padding = container_bits - valid;
        // Decoded samples sit this far up in the i32 already.
        let shift = 32 - container_bits;
        Justification {
            low_mask: ((1u64 << (padding + shift)) - 1) as u32 as i32,
            top_shift: shift + valid,
            factor: (1u64 << padding) as f32,
            any_low_bits: false,
            all_padded: true,
        }
    }

    #[inline]
    fn observe(&mut self, x: i32) {
        self.any_low_bits |= x & self.low_mask != 0;
        let top = x.checked_shr(self.top_shift).unwrap_or(0);
        self.all_padded &= top == 0 || top == -1;
    }

    fn fix(self, samples: &mut [f32]) {
        if !(self.any_low_bits && self.all_padded) {
            return;
        }
        for s in samples {
            *s *= self.factor;
            // A negative sample whose top bits were zero comes out in 1..2.
            if *s >= 1.0 {
                *s -= 2.0;
            }
        }
    }
}

/// The input, with its name for errors and a count of bytes read.
struct Source<'a, R> {
    reader: R,
    name: &'a Path,
    position: u64,
}

impl<R: Read> Source<'_, R> {
    fn io_error(&self, source: io::Error) -> Error {
        Error::Io { path: self.name.to_path_buf(), source }
    }

    /// Fills `buf` unless the input ends first; returns the bytes read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        self.position += filled as u64;
        Ok(filled)
    }

    /// Skips `n` bytes unless the input ends first; returns the bytes skipped.
    fn skip(&mut self, n: u64) -> Result<u64> {
        let skipped = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())
            .map_err(|e| self.io_error(e))?;
        self.position += skipped;
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::PathBuf;

    fn name() -> PathBuf {
        PathBuf::from("test.wav")
    }

    /// Writes `samples` with hound, which picks WAVE_FORMAT_EXTENSIBLE for more than 16
    /// bits or more than 2 channels.
    fn hound_wav<S: hound::Sample + Copy>(spec: hound::WavSpec, samples: &[S]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    /// A WAV file made by hand: a `fmt ` chunk holding `fmt`, then `data`, with the data
    /// chunk declaring `data_len` bytes.
    fn raw_wav(fmt: &[u8], data: &[u8], data_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(20 + fmt.len() as u32).wrapping_add(data_len).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        out.extend_from_slice(fmt);
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// A 16-byte `fmt ` chunk body.
    fn fmt16(tag: u16, channels: u16, rate: u32, block_align: u16, bits: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        f.extend_from_slice(&block_align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    /// A 40-byte WAVE_FORMAT_EXTENSIBLE `fmt ` chunk body for sub-format `tag`.
    fn fmt_ext(tag: u16, channels: u16, rate: u32, container: u16, valid: u16) -> Vec<u8> {
        let mut f = fmt16(0xFFFE, channels, rate, channels * container / 8, container);
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&valid.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
        f
    }

    fn read_bytes(bytes: &[u8]) -> Result<AudioBuffer> {
        read_wav_from(bytes, &name())
    }

    fn error_line(bytes: &[u8]) -> String {
        let message = read_bytes(bytes).unwrap_err().to_string();
        assert!(!message.contains('\n'), "{message}");
        message
    }

    #[test]
    fn reads_8_bit_unsigned() {
        let bytes = hound_wav(spec(1, 8000, 8, false), &[-128i8, 0, 127, -64]);
        let audio = read_bytes(&bytes).unwrap();
        assert_eq!(audio.samples, [-1.0, 0.0, 127.0 / 128.0, -0.5]);
        assert_eq!((audio.sample_rate, audio.channels), (8000, 1));
    }

    #[test]
    fn reads_16_bit_stereo() {
        let bytes = hound_wav(spec(2, 44_100, 16, false), &[i16::MIN, i16::MAX, 0, 16_384]);
        let audio = read_bytes(&bytes).unwrap();
        assert_eq!(audio.samples, [-1.0, 32_767.0 / 32_768.0, 0.0, 0.5]);
        assert_eq!((audio.channels, audio.frames()), (2, 2));
    }

    #[test]
    fn reads_24_bit_extensible() {
        let bytes =
            hound_wav(spec(1, 48_000, 24, false), &[-8_388_608i32, 8_388_607, 4_194_304, -1]);
        assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 0xFFFE);
        let audio = read_bytes(&bytes).unwrap();
        assert_eq!(audio.samples, [-1.0, 8_388_607.0 / 8_388_608.0, 0.5, -1.0 / 8_388_608.0]);
    }

    #[test]
    fn reads_32_bit_integer() {
        let bytes = hound_wav(spec(1, 16_000, 32, false), &[i32::MIN, 1 << 30, 0]);
        assert_eq!(read_bytes(&bytes).unwrap().samples, [-1.0, 0.5, 0.0]);
    }

    #[test]
    fn reads_32_bit_float_extensible_and_plain() {
        let values = [0.25f32, -1.0, 1.5, 0.0];
        let bytes = hound_wav(spec(1, 22_050, 32, true), &values);
        assert_eq!(read_bytes(&bytes).unwrap().samples, values);

        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let plain = raw_wav(&fmt16(3, 1, 22_050, 4, 32), &data, data.len() as u32);
        let (audio, info) = read_wav_with_info(&plain[..], &name()).unwrap();
        assert_eq!(audio.samples, values);
        assert_eq!(info.sample_format, WavSampleFormat::Float32);
        assert_eq!(info.declared_frames, Some(4));
        assert!(!info.truncated);
    }

    #[test]
    fn reads_24_bits_in_4_bytes_either_justification() {
        let values = [4_194_304i32, -8_388_608, 1, 0];
        let expected = [0.5f32, -1.0, 1.0 / 8_388_608.0, 0.0];
        // As WAVE_FORMAT_EXTENSIBLE says: valid bits at the top.
        let left: Vec<u8> = values.iter().flat_map(|v| (v << 8).to_le_bytes()).collect();
        let bytes = raw_wav(&fmt_ext(1, 1, 48_000, 32, 24), &left, left.len() as u32);
        assert_eq!(read_bytes(&bytes).unwrap().samples, expected);
        // At the bottom, sign-extended.
        let right: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = raw_wav(&fmt_ext(1, 1, 48_000, 32, 24), &right, right.len() as u32);
        assert_eq!(read_bytes(&bytes).unwrap().samples, expected);
        // As hound writes it: at the bottom, top byte zero.
        let spec_ex = hound::WavSpecEx { spec: spec(1, 48_000, 24, false), bytes_per_sample: 4 };
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new_with_spec_ex(&mut cursor, spec_ex).unwrap();
        for v in values {
            writer.write_sample(v).unwrap();
        }
        writer.finalize().unwrap();
        assert_eq!(read_bytes(cursor.get_ref()).unwrap().samples, expected);
    }

    #[test]
    fn reads_many_channels() {
        for channels in [1u16, 2, 3, 6, 8, MAX_CHANNELS] {
            let samples: Vec<i16> = (0..channels * 10).map(|i| i as i16 * 100).collect();
            let bytes = hound_wav(spec(channels, 16_000, 16, false), &samples);
            let audio = read_bytes(&bytes).unwrap();
            assert_eq!(audio.channels, channels);
            assert_eq!(audio.frames(), 10);
            // Frame 1 in mono, channel 1 of frame 0 otherwise.
            assert_eq!(audio.samples[1], 100.0 / 32_768.0);
        }
        let data = vec![0u8; 2 * 33];
        let bytes = raw_wav(&fmt16(1, 33, 16_000, 66, 16), &data, data.len() as u32);
        let message = error_line(&bytes);
        assert!(message.contains("unsupported channel count 33"), "{message}");
    }

    #[test]
    fn reads_a_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        std::fs::write(&path, hound_wav(spec(1, 16_000, 16, false), &[1000i16; 160])).unwrap();
        let audio = read_wav(&path).unwrap();
        assert_eq!((audio.frames(), audio.duration_ms()), (160, 10));

        let missing = dir.path().join("missing.wav");
        let error = read_wav(&missing).unwrap_err();
        assert!(matches!(&error, Error::Io { path, .. } if path == &missing), "{error:?}");
        assert!(error.to_string().contains("missing.wav"));

        let error = read_wav(dir.path()).unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error:?}");
    }

    #[test]
    fn not_a_wav() {
        let message = error_line(b"hello, this is plain text, not audio at all");
        assert!(message.starts_with("test.wav: not a WAV file (no RIFF/WAVE header"), "{message}");
        assert!(error_line(b"").contains("the file is empty"));
        assert!(error_line(b"RIFF").contains("no RIFF/WAVE header"));
        assert!(error_line(b"fLaC\0\0\0\x22rest of a flac").contains("looks like FLAC"));
        assert!(error_line(b"ID3\x04\0\0\0\0\0\0").contains("looks like MP3"));
        assert!(error_line(b"RIFF\0\0\0\0AVI LIST").contains("RIFF file of another kind"));
        assert!(error_line(b"RIFX\0\0\0\0WAVEfmt ").contains("big-endian"));
        assert!(error_line(b"RF64\xff\xff\xff\xffWAVEds64").contains("RF64"));
    }

    #[test]
    fn empty_wav() {
        let bytes = hound_wav::<i16>(spec(1, 16_000, 16, false), &[]);
        let message = error_line(&bytes);
        assert_eq!(message, "test.wav: contains no audio (the data chunk is empty)");
    }

    #[test]
    fn missing_chunks() {
        let mut bytes = b"RIFF\x04\0\0\0WAVE".to_vec();
        assert!(error_line(&bytes).contains("no fmt chunk"));
        bytes.extend_from_slice(b"fmt \x10\0\0\0");
        bytes.extend_from_slice(&fmt16(1, 1, 16_000, 2, 16));
        assert!(error_line(&bytes).contains("no data chunk"));

        let mut data_first = b"RIFF\x04\0\0\0WAVEdata\x02\0\0\0\0\0".to_vec();
        data_first.extend_from_slice(b"fmt \x10\0\0\0");
        data_first.extend_from_slice(&fmt16(1, 1, 16_000, 2, 16));
        assert!(error_line(&data_first).contains("data chunk comes before the fmt chunk"));

        let short_fmt = raw_wav(&fmt16(1, 1, 16_000, 2, 16)[..14], &[0, 0], 2);
        assert!(error_line(&short_fmt).contains("fmt chunk is too short"));
    }

    #[test]
    fn truncated_wav_reads_what_is_there() {
        let samples: Vec<i16> = (0..1000).collect();
        let bytes = hound_wav(spec(2, 16_000, 16, false), &samples);
        // Cut in the middle of a frame: 300 whole frames and one sample more.
        let cut = &bytes[..44 + 300 * 4 + 2];
        let (audio, info) = read_wav_with_info(cut, &name()).unwrap();
        assert_eq!(audio.frames(), 300);
        assert_eq!(audio.samples.len(), 600);
        assert_eq!(audio.samples[599], 599.0 / 32_768.0);
        assert!(info.truncated);
        assert_eq!(info.declared_frames, Some(500));
        // Plain read_wav_from accepts it too.
        assert_eq!(read_bytes(cut).unwrap().frames(), 300);
        // Cut before the first sample.
        let message = error_line(&bytes[..44]);
        assert!(message.contains("contains no audio (the file ends"), "{message}");
    }

    #[test]
    fn open_ended_data_chunk() {
        // ffmpeg writing to a pipe leaves the length at 0xFFFFFFFF.
        let data: Vec<u8> = (0..100i16).flat_map(|v| v.to_le_bytes()).collect();
        let bytes = raw_wav(&fmt16(1, 1, 16_000, 2, 16), &data, u32::MAX);
        let (audio, info) = read_wav_with_info(&bytes[..], &name()).unwrap();
        assert_eq!(audio.frames(), 100);
        assert_eq!(info.declared_frames, None);
        assert!(!info.truncated);
    }

    #[test]
    fn skips_odd_sized_chunks_and_their_padding() {
        let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
        bytes.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // 3 bytes and a pad byte
        bytes.extend_from_slice(b"fmt \x12\0\0\0"); // WAVEFORMATEX: cbSize follows
        bytes.extend_from_slice(&fmt16(1, 1, 16_000, 2, 16));
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(b"data\x04\0\0\0\x00\x40\x00\xc0");
        bytes.extend_from_slice(b"LIST\x02\0\0\0zz");
        assert_eq!(read_bytes(&bytes).unwrap().samples, [0.5, -0.5]);
    }

    #[test]
    fn unsupported_formats_name_themselves() {
        let cases: [(Vec<u8>, &str); 8] = [
            (fmt16(6, 1, 8000, 1, 8), "A-law (format tag 0x0006)"),
            (fmt16(7, 1, 8000, 1, 8), "µ-law (format tag 0x0007)"),
            (fmt16(2, 1, 8000, 256, 4), "Microsoft ADPCM"),
            (fmt16(0x11, 1, 8000, 256, 4), "IMA ADPCM"),
            (fmt16(3, 1, 8000, 8, 64), "64-bit float"),
            (fmt16(3, 1, 8000, 1, 8), "8-bit float"),
            (fmt_ext(3, 2, 48_000, 64, 64), "64-bit float"),
            (fmt_ext(6, 1, 8000, 8, 8), "A-law"),
        ];
        for (fmt, what) in cases {
            let message = error_line(&raw_wav(&fmt, &[0; 16], 16));
            assert!(message.starts_with("test.wav: unsupported WAV format: "), "{message}");
            assert!(message.contains(what), "{message}");
            assert!(
                message.ends_with("supported: PCM 8/16/24/32-bit integer, 32-bit float"),
                "{message}"
            );
        }
        let mut unknown_guid = fmt_ext(1, 1, 16_000, 16, 16);
        unknown_guid[39] ^= 1;
        assert!(error_line(&raw_wav(&unknown_guid, &[0; 2], 2))
            .contains("unknown WAVE_FORMAT_EXTENSIBLE"));
        let wide = fmt16(1, 1, 16_000, 8, 64);
        assert!(error_line(&raw_wav(&wide, &[0; 8], 8)).contains("64-bit integer PCM"));
    }

    #[test]
    fn implausible_headers() {
        let zero_channels = raw_wav(&fmt16(1, 0, 16_000, 2, 16), &[0; 4], 4);
        assert!(error_line(&zero_channels).contains("0 channels"));
        for rate in [0, 3999, 384_001, u32::MAX / 4] {
            let bytes = raw_wav(&fmt16(1, 1, rate, 2, 16), &[0; 4], 4);
            let message = error_line(&bytes);
            assert!(message.contains(&format!("unsupported sample rate {rate} Hz")), "{message}");
        }
        let zero_align = raw_wav(&fmt16(1, 1, 16_000, 0, 16), &[0; 4], 4);
        assert!(error_line(&zero_align).contains("block align is 0"));
        let bits_too_wide = raw_wav(&fmt16(1, 1, 16_000, 2, 24), &[0; 4], 4);
        assert!(error_line(&bits_too_wide).contains("inconsistent fmt chunk"));
    }

    #[test]
    fn non_finite_floats_are_refused() {
        for (bad, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")]
        {
            let bytes = hound_wav(spec(2, 16_000, 32, true), &[0.0, 0.5, -0.5, bad]);
            let error = read_bytes(&bytes).unwrap_err();
            assert!(matches!(error, Error::NonFiniteSample { index: 3, .. }), "{error:?}");
            assert!(error.to_string().contains(shown), "{error}");
        }
    }

    /// A tiny xorshift generator, so the test needs no dependency and is repeatable.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn never_panics_on_damaged_input() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let samples: Vec<i16> = (0..200).map(|i| (i * 150) as i16).collect();
        let valid = [
            hound_wav(spec(2, 44_100, 16, false), &samples),
            hound_wav(spec(3, 48_000, 24, false), &[1i32; 30]),
            hound_wav(spec(1, 8000, 32, true), &[0.5f32; 20]),
        ];
        // Every truncation of valid files.
        for wav in &valid {
            for len in 0..wav.len() {
                let _ = read_bytes(&wav[..len]);
            }
        }
        // Valid files with bytes of the header changed at random.
        for _ in 0..20_000 {
            let mut wav = valid[(rng.next() % 3) as usize].clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() % 72) as usize % wav.len();
                wav[i] = rng.next() as u8;
            }
            let _ = read_bytes(&wav);
        }
        // Random bytes after a RIFF/WAVE header, and with no header at all.
        for _ in 0..5_000 {
            let len = (rng.next() % 200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = read_bytes(&bytes);
            let mut with_header = b"RIFF\0\0\0\0WAVE".to_vec();
            with_header.append(&mut bytes);
            let _ = read_bytes(&with_header);
        }
    }

    #[test]
    fn reader_errors_are_io_errors() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let error = read_wav_from(Failing, &name()).unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error:?}");
        assert_eq!(error.to_string(), "test.wav: disk on fire");
    }
}
