//! Reading audio files of any supported format: WAV with cantocap's own reader
//! ([`read_wav`](super::read_wav)), FLAC, MP3, Ogg Vorbis and M4A/AAC with symphonia
//! (pure Rust).
//!
//! The format is told from the first bytes, never from the file name (uploads are often
//! named `audio` or `blob`). Corrupt input gets an [`Error::BadAudio`] naming the format
//! and what failed; a few damaged packets in an otherwise good file are skipped, as
//! players do, but a file that is mostly damaged is refused rather than half
//! transcribed.

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    CodecType, DecoderOptions, CODEC_TYPE_AAC, CODEC_TYPE_ALAC, CODEC_TYPE_FLAC, CODEC_TYPE_MP3,
    CODEC_TYPE_NULL, CODEC_TYPE_OPUS, CODEC_TYPE_SPEEX, CODEC_TYPE_VORBIS,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::resample::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use super::{read_wav_with_info, AudioBuffer, WavInfo};
use crate::{Error, Result};

/// The formats [`decode_audio`] reads, for error messages and `--help`.
pub const SUPPORTED_FORMATS: &str = "WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC";

/// Packets that may fail to decode before a file counts as corrupt (beyond that, a
/// tenth of the packets).
const TOLERATED_BAD_PACKETS: usize = 3;

/// An audio container [`decode_audio`] can read, as told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioFormat {
    /// RIFF/WAVE, read by cantocap's own WAV reader.
    Wav,
    /// FLAC (`fLaC`).
    Flac,
    /// MPEG audio layer III, with or without an ID3v2 tag.
    Mp3,
    /// Ogg; only Vorbis inside is decoded (not Opus or FLAC-in-Ogg).
    Ogg,
    /// MPEG-4 audio (`ftyp`): M4A with AAC-LC inside.
    M4a,
}

impl AudioFormat {
    /// The format of a file starting with `head` (its first 12 bytes suffice), or
    /// `None` when it is none of the supported ones.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let starts = |magic: &[u8]| head.starts_with(magic);
        if head.len() >= 12 && starts(b"RIFF") && &head[8..12] == b"WAVE" {
            Some(Self::Wav)
        } else if starts(b"fLaC") {
            Some(Self::Flac)
        } else if starts(b"OggS") {
            Some(Self::Ogg)
        } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
            Some(Self::M4a)
        } else if starts(b"ID3") || is_mpeg_frame_sync(head) {
            Some(Self::Mp3)
        } else {
            None
        }
    }

    /// A file name extension symphonia takes as a hint.
    fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::M4a => "m4a",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wav => "WAV",
            Self::Flac => "FLAC",
            Self::Mp3 => "MP3",
            Self::Ogg => "Ogg",
            Self::M4a => "M4A",
        })
    }
}

/// An MPEG audio layer III frame header: 11 sync bits, a valid version, layer III.
fn is_mpeg_frame_sync(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && {
        let version = (head[1] >> 3) & 0b11;
        let layer = (head[1] >> 1) & 0b11;
        version != 0b01 && layer == 0b01
    }
}

/// What the first bytes of an unsupported file look like, for its error message.
fn looks_like(head: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if head.is_empty() {
        "; the file is empty"
    } else if starts(b"RIFF") {
        "; it is a RIFF file of another kind (not WAVE)"
    } else if starts(b"FORM") {
        "; it looks like AIFF"
    } else if starts(b"\x1A\x45\xDF\xA3") {
        "; it looks like Matroska/WebM"
    } else if starts(b"#!AMR") {
        "; it looks like AMR"
    } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xF6 == 0xF0 {
        "; it looks like raw AAC (ADTS): put it in an M4A container"
    } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 {
        "; it looks like MPEG layer I/II audio"
    } else if head.iter().take(64).all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "; it is text, not audio"
    } else {
        ""
    }
}

/// Decodes a whole audio file held in memory (WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC,
/// told apart by their first bytes) into interleaved `f32` samples; `name` only labels
/// errors.
///
/// Errors, each one line: [`Error::BadAudio`] for a format that is not supported (the
/// message says what the file looks like and lists [`SUPPORTED_FORMATS`]), an
/// unsupported codec inside a supported container (Opus in Ogg, ALAC in M4A), damaged
/// data (`corrupt MP3: …`), no audio at all, or an unsupported sample rate or channel
/// count; as [`read_wav`](super::read_wav) for WAV.
pub fn decode_audio(bytes: &[u8], name: &Path) -> Result<AudioBuffer> {
    decode_audio_with_info(bytes, name).map(|(audio, _)| audio)
}

/// [`decode_audio`], plus what the WAV reader learnt (`None` for other formats), so a
/// caller can warn that a WAV file was cut short.
pub fn decode_audio_with_info(bytes: &[u8], name: &Path) -> Result<(AudioBuffer, Option<WavInfo>)> {
    let bad = |reason: String| Error::BadAudio { path: name.to_path_buf(), reason };
    let Some(format) = AudioFormat::sniff(bytes) else {
        if bytes.len() >= 12 && (bytes.starts_with(b"RIFX") || bytes.starts_with(b"RF64")) {
            // The WAV reader explains these variants best.
            return read_wav_with_info(bytes, name).map(|(a, i)| (a, Some(i)));
        }
        return Err(bad(format!(
            "not a supported audio format{}; supported: {SUPPORTED_FORMATS}",
            looks_like(bytes)
        )));
    };
    if format == AudioFormat::Wav {
        return read_wav_with_info(bytes, name).map(|(a, i)| (a, Some(i)));
    }
    decode_compressed(bytes.to_vec(), format, name).map(|a| (a, None))
}

/// Reads an audio file of any supported format (see [`decode_audio`]). WAV files are
/// streamed (see [`read_wav_with_info`]); the others are read into memory first.
pub fn read_audio_file(path: &Path) -> Result<(AudioBuffer, Option<WavInfo>)> {
    let io_error = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(io_error)?;
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    if AudioFormat::sniff(&head[..got]) == Some(AudioFormat::Wav) {
        let reader = io::BufReader::new(Cursor::new(head).chain(file));
        return read_wav_with_info(reader, path).map(|(a, i)| (a, Some(i)));
    }
    let mut bytes = head[..got].to_vec();
    file.read_to_end(&mut bytes).map_err(io_error)?;
    decode_audio_with_info(&bytes, path)
}

/// FLAC, MP3, Ogg Vorbis or M4A/AAC through symphonia.
fn decode_compressed(bytes: Vec<u8>, format: AudioFormat, name: &Path) -> Result<AudioBuffer> {
    let bad = |reason: String| Error::BadAudio { path: name.to_path_buf(), reason };
    let corrupt = |what: &str, e: SymError| bad(format!("corrupt {format} file: {what}: {e}"));
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(format.extension());
    let probed = symphonia::default::get_probe()
        // Gapless: the encoder's delay and padding are cut where the container says
        // how much (MP3 with a LAME header, Ogg); symphonia 0.5 does not read M4A's
        // edit list, so M4A keeps its encoder delay (1024 to 2112 samples).
        .format(&hint, stream, &gapless(), &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => bad(format!(
                "it starts like {format} but its container cannot be read ({e}); supported: {SUPPORTED_FORMATS}"
            )),
            e => corrupt("reading its header", e),
        })?;
    let mut reader = probed.format;
    let Some(track) = reader.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
    else {
        return Err(bad(format!("the {format} file holds no audio track")));
    };
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| {
            let codec = codec_name(track.codec_params.codec);
            match e {
                SymError::Unsupported(_) => bad(format!(
                    "the {format} file holds audio in {codec}, which cannot be decoded; \
                     supported: {SUPPORTED_FORMATS} (Vorbis in Ogg, AAC-LC in M4A)"
                )),
                e => corrupt("setting up its decoder", e),
            }
        })?;

    let mut samples: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, u16)> = None;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let (mut packets, mut failed) = (0usize, 0usize);
    let mut first_failure: Option<SymError> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // The normal end of a stream, or one cut short: what was read is kept.
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) if samples.is_empty() => return Err(corrupt("reading its packets", e)),
            // Damage after good audio: stop there, as with a truncated WAV.
            Err(_) => break,
        };
        if packet.track_id() != track_id {
            continue;
        }
        packets += 1;
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(e @ SymError::DecodeError(_)) => {
                failed += 1;
                first_failure.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(corrupt("decoding", e)),
        };
        let signal = *decoded.spec();
        let channels = signal.channels.count() as u16;
        match spec {
            None => {
                check_spec(signal.rate, channels).map_err(&bad)?;
                spec = Some((signal.rate, channels));
            }
            Some(s) if s != (signal.rate, channels) => {
                return Err(bad(format!(
                    "the {format} stream changes from {} Hz, {} channels to {} Hz, {channels} channels mid-stream; convert it first",
                    s.0, s.1, signal.rate
                )))
            }
            Some(_) => {}
        }
        let needed = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * usize::from(channels) => b,
            _ => buffer.insert(SampleBuffer::new(needed, signal)),
        };
        buf.copy_interleaved_ref(decoded);
        samples.extend_from_slice(buf.samples());
    }
    if failed > TOLERATED_BAD_PACKETS.max(packets / 10) || (samples.is_empty() && failed > 0) {
        let first = first_failure.map_or_else(String::new, |e| format!(" (first: {e})"));
        return Err(bad(format!(
            "corrupt {format} file: {failed} of {packets} packets could not be decoded{first}"
        )));
    }
    let Some((sample_rate, channels)) = spec.filter(|_| !samples.is_empty()) else {
        return Err(bad(format!("the {format} file contains no audio samples")));
    };
    Ok(AudioBuffer { samples, sample_rate, channels })
}

fn gapless() -> FormatOptions {
    FormatOptions { enable_gapless: true, ..Default::default() }
}

/// A codec's name, also for codecs not compiled in (which symphonia cannot name).
fn codec_name(codec: CodecType) -> String {
    let known = [
        (CODEC_TYPE_OPUS, "Opus"),
        (CODEC_TYPE_ALAC, "ALAC"),
        (CODEC_TYPE_FLAC, "FLAC"),
        (CODEC_TYPE_SPEEX, "Speex"),
        (CODEC_TYPE_MP3, "MP3"),
        (CODEC_TYPE_AAC, "AAC"),
        (CODEC_TYPE_VORBIS, "Vorbis"),
    ];
    known.iter().find(|(c, _)| *c == codec).map_or_else(
        || {
            symphonia::default::get_codecs()
                .get_codec(codec)
                .map_or("an unknown codec".to_string(), |c| c.short_name.to_string())
        },
        |(_, name)| name.to_string(),
    )
}

fn check_spec(rate: u32, channels: u16) -> std::result::Result<(), String> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(format!(
            "unsupported sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
        ));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(format!(
            "unsupported channel count {channels} (supported: 1..={MAX_CHANNELS})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_from_their_first_bytes() {
        assert_eq!(AudioFormat::sniff(b"RIFF\0\0\0\0WAVEfmt "), Some(AudioFormat::Wav));
        assert_eq!(AudioFormat::sniff(b"fLaC\0\0\0\x22"), Some(AudioFormat::Flac));
        assert_eq!(AudioFormat::sniff(b"OggS\0\x02"), Some(AudioFormat::Ogg));
        assert_eq!(AudioFormat::sniff(b"\0\0\0\x20ftypM4A "), Some(AudioFormat::M4a));
        assert_eq!(AudioFormat::sniff(b"ID3\x04\0"), Some(AudioFormat::Mp3));
        assert_eq!(AudioFormat::sniff(&[0xFF, 0xFB, 0x90, 0x64]), Some(AudioFormat::Mp3));
        // ADTS AAC (layer bits 00) is not MP3.
        assert_eq!(AudioFormat::sniff(&[0xFF, 0xF1, 0x50, 0x80]), None);
        assert_eq!(AudioFormat::sniff(b""), None);
        assert_eq!(AudioFormat::sniff(b"FORM\0\0\0\0AIFF"), None);
    }

    #[test]
    fn unsupported_and_corrupt_input_get_one_line_errors_that_name_the_format() {
        let err = |bytes: &[u8]| decode_audio(bytes, Path::new("x")).unwrap_err().to_string();
        let e = err(b"FORM\0\0\0\x04AIFF");
        assert!(e.contains("looks like AIFF") && e.contains(SUPPORTED_FORMATS), "{e}");
        let e = err(b"hello, this is a text file\n");
        assert!(e.contains("text, not audio"), "{e}");
        assert!(err(b"").contains("empty"));
        let e = err(b"fLaC\x00\x00\x00\x22garbage garbage garbage garbage");
        assert!(e.contains("FLAC"), "{e}");
        let e = err(b"OggS\0\x02\0\0\0\0\0\0\0\0 not really ogg at all");
        assert!(e.contains("Ogg"), "{e}");
        let mut mp3 = b"ID3\x04\0\0\0\0\0\0".to_vec();
        mp3.extend(std::iter::repeat_n(0x55, 4000));
        let e = err(&mp3);
        assert!(e.contains("MP3") && !e.contains('\n'), "{e}");
        let e = err(b"\0\0\0\x20ftypM4A \0\0\0\0M4A mp42isom\0\0\0\x08free");
        assert!(e.contains("M4A"), "{e}");
    }

    #[test]
    fn wav_goes_to_the_wav_reader() {
        let mut wav = Vec::new();
        let spec = [1u16.to_le_bytes(), 1u16.to_le_bytes()].concat(); // PCM, mono
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36u32 + 8).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&spec);
        wav.extend_from_slice(&16_000u32.to_le_bytes());
        wav.extend_from_slice(&32_000u32.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&8u32.to_le_bytes());
        for s in [0i16, 16_384, -16_384, 0] {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        let (audio, info) = decode_audio_with_info(&wav, Path::new("x.wav")).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (16_000, 1));
        assert_eq!(audio.samples, [0.0, 0.5, -0.5, 0.0]);
        assert!(info.is_some_and(|i| !i.truncated));
    }
}
