//! The wire protocol: client messages, server messages, error codes and close codes.
//!
//! Everything here is plain data with serde; `docs/PROTOCOL.md` documents it for
//! client authors.

use serde::{Deserialize, Serialize};

use crate::audio::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use crate::text::Script;

/// Lowest sample rate an ingest client may send.
pub const MIN_INGEST_RATE: u32 = 8_000;
/// Highest sample rate an ingest client may send.
pub const MAX_INGEST_RATE: u32 = 48_000;
/// Most interleaved channels an ingest client may send.
pub const MAX_INGEST_CHANNELS: u16 = 2;

// The ingest range must be one the resampler accepts.
const _: () = assert!(MIN_INGEST_RATE >= MIN_SAMPLE_RATE && MAX_INGEST_RATE <= MAX_SAMPLE_RATE);

/// How the binary audio frames of an ingest session are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// Signed 16-bit little-endian integers, interleaved.
    S16le,
    /// 32-bit little-endian floats in -1..1, interleaved.
    F32le,
}

impl SampleFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::S16le => 2,
            Self::F32le => 4,
        }
    }

    /// Decode one frame of bytes into `out` (appending). The caller has checked that
    /// the length is a whole number of samples.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Self::S16le => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
            ),
            Self::F32le => out.extend(bytes.chunks_exact(4).map(|b| {
                let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                // NaN or infinity from a broken client must not reach the engine.
                if x.is_finite() {
                    x.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })),
        }
    }
}

/// The `start` message that opens an ingest session.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// Frames per second, 8000..=48000.
    pub sample_rate: u32,
    /// Interleaved channels, 1 or 2.
    pub channels: u16,
    /// Sample encoding of the binary frames.
    pub format: SampleFormat,
    /// Whisper language code for this session (default: the server's).
    #[serde(default)]
    pub language: Option<String>,
    /// The participant speaking on this connection: a room (session) takes one
    /// ingest per speaker, each with its own engine, and every event, journal line
    /// and transcript line carries it. 1–64 characters, no control characters or
    /// `<>`; see [`check_speaker`].
    #[serde(default)]
    pub speaker: Option<String>,
    /// Script of the caption events sent back to the ingest client (default raw).
    #[serde(default)]
    pub script: Option<Script>,
}

/// Messages a client sends as WebSocket text frames.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Open an ingest session.
    Start(Start),
    /// End the ingest session: the server finalizes what is left, then closes with 1000.
    Stop,
}

/// Everything that makes the server refuse or end a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The first message was not a valid `start`.
    BadStart,
    /// A text message that is not valid JSON or not a known message.
    BadMessage,
    /// Sample rate, channel count or sample format not supported.
    UnsupportedAudio,
    /// A text frame where audio was expected after `start`.
    TextNotAudio,
    /// A binary frame that is not a whole number of samples.
    BadAudio,
    /// A frame larger than the frame limit.
    FrameTooBig,
    /// Audio arrives much faster than real time.
    TooFast,
    /// Too many messages per second.
    RateLimited,
    /// The session reached its maximum length.
    SessionTooLong,
    /// Nothing was received for the idle time.
    IdleTimeout,
    /// The server has as many ingest sessions as it allows.
    TooManySessions,
    /// Another ingest connection is already feeding this session.
    SessionBusy,
    /// The session already has as many viewers as allowed.
    TooManyViewers,
    /// No such session (viewers, transcripts).
    UnknownSession,
    /// The session id is not 1–64 characters of `A-Z a-z 0-9 _ - .`.
    BadSessionId,
    /// The model is still loading.
    NotReady,
    /// The server is shutting down.
    ShuttingDown,
    /// The server failed (decoding, the journal); the session's finals so far are kept.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 18] = [
        Self::BadStart,
        Self::BadMessage,
        Self::UnsupportedAudio,
        Self::TextNotAudio,
        Self::BadAudio,
        Self::FrameTooBig,
        Self::TooFast,
        Self::RateLimited,
        Self::SessionTooLong,
        Self::IdleTimeout,
        Self::TooManySessions,
        Self::SessionBusy,
        Self::TooManyViewers,
        Self::UnknownSession,
        Self::BadSessionId,
        Self::NotReady,
        Self::ShuttingDown,
        Self::Internal,
    ];

    /// The snake_case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadStart => "bad_start",
            Self::BadMessage => "bad_message",
            Self::UnsupportedAudio => "unsupported_audio",
            Self::TextNotAudio => "text_not_audio",
            Self::BadAudio => "bad_audio",
            Self::FrameTooBig => "frame_too_big",
            Self::TooFast => "too_fast",
            Self::RateLimited => "rate_limited",
            Self::SessionTooLong => "session_too_long",
            Self::IdleTimeout => "idle_timeout",
            Self::TooManySessions => "too_many_sessions",
            Self::SessionBusy => "session_busy",
            Self::TooManyViewers => "too_many_viewers",
            Self::UnknownSession => "unknown_session",
            Self::BadSessionId => "bad_session_id",
            Self::NotReady => "not_ready",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
        }
    }

    /// The WebSocket close code that follows the error message.
    pub fn close_code(self) -> u16 {
        match self {
            Self::BadStart
            | Self::BadMessage
            | Self::TooFast
            | Self::RateLimited
            | Self::SessionTooLong
            | Self::IdleTimeout
            | Self::SessionBusy
            | Self::BadSessionId => close::POLICY,
            Self::UnsupportedAudio | Self::TextNotAudio | Self::BadAudio => close::UNSUPPORTED,
            Self::FrameTooBig => close::TOO_BIG,
            Self::TooManySessions | Self::TooManyViewers | Self::NotReady => close::TRY_AGAIN,
            Self::UnknownSession => close::UNKNOWN_SESSION,
            Self::ShuttingDown => close::GOING_AWAY,
            Self::Internal => close::INTERNAL,
        }
    }

    /// Position in [`ErrorCode::ALL`] (for counters).
    pub fn ordinal(self) -> usize {
        Self::ALL.iter().position(|&c| c == self).unwrap_or(0)
    }
}

/// WebSocket close codes the server uses (RFC 6455 section 7.4, plus 4404).
pub mod close {
    /// The session ended normally (after `stop`).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A cluster node is stopping: reconnect (to another node) to continue.
    pub const SERVICE_RESTART: u16 = 1012;
    /// Data the server cannot take: unsupported audio, text instead of audio.
    pub const UNSUPPORTED: u16 = 1003;
    /// A rule was broken: no `start`, bad JSON, too fast, too long, idle.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
    /// Try again later: too many sessions or viewers, model still loading.
    pub const TRY_AGAIN: u16 = 1013;
    /// No such session (viewers).
    pub const UNKNOWN_SESSION: u16 = 4404;
}

/// An `{"type":"error",…}` message.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The error code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: &'a str,
}

impl<'a> ErrorMessage<'a> {
    /// An error message.
    pub fn new(code: ErrorCode, message: &'a str) -> Self {
        Self { kind: "error", code, message }
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Check a `start` message against what the server supports.
pub fn check_start(start: &Start) -> Result<(), String> {
    if !(MIN_INGEST_RATE..=MAX_INGEST_RATE).contains(&start.sample_rate) {
        return Err(format!(
            "sample_rate {} is not supported (supported: {MIN_INGEST_RATE}..={MAX_INGEST_RATE})",
            start.sample_rate
        ));
    }
    if !(1..=MAX_INGEST_CHANNELS).contains(&start.channels) {
        return Err(format!(
            "channels {} is not supported (supported: 1..={MAX_INGEST_CHANNELS})",
            start.channels
        ));
    }
    Ok(())
}

/// Longest speaker label, in characters.
pub const MAX_SPEAKER_CHARS: usize = 64;

/// Check a `start` message's speaker label: 1–[`MAX_SPEAKER_CHARS`] characters, not
/// only spaces, without control characters or `<`, `>` (it is written into WebVTT
/// voice tags and SRT lines as it is).
pub fn check_speaker(speaker: Option<&str>) -> Result<(), String> {
    let Some(speaker) = speaker else { return Ok(()) };
    let chars = speaker.chars().count();
    if speaker.trim().is_empty() || chars > MAX_SPEAKER_CHARS {
        return Err(format!(
            "speaker must be 1-{MAX_SPEAKER_CHARS} characters, not only spaces (got {chars})"
        ));
    }
    if let Some(c) = speaker.chars().find(|c| c.is_control() || matches!(c, '<' | '>')) {
        return Err(format!("speaker may not contain {c:?}"));
    }
    Ok(())
}

pub use crate::privacy::retention::valid_session_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_labels_are_checked() {
        assert!(check_speaker(None).is_ok());
        assert!(check_speaker(Some("陳大文 (Chair)")).is_ok());
        for bad in ["", "  ", "a\nb", "<b>x</b>", &"x".repeat(65)] {
            assert!(check_speaker(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn start_parses_with_and_without_options() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}"#,
        )
        .unwrap();
        let ClientMessage::Start(s) = m else { panic!() };
        assert_eq!(
            (s.sample_rate, s.channels, s.format, s.script),
            (16000, 1, SampleFormat::S16le, None)
        );
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"start","sample_rate":48000,"channels":2,"format":"f32le","language":"en","speaker":"A","script":"hk"}"#,
        )
        .unwrap();
        assert!(matches!(m, ClientMessage::Start(Start { script: Some(Script::Hk), .. })));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"start","sample_rate":16000}"#)
            .is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"stop"}"#).is_ok());
    }

    #[test]
    fn start_limits() {
        let mut s = Start {
            sample_rate: 7999,
            channels: 1,
            format: SampleFormat::S16le,
            language: None,
            speaker: None,
            script: None,
        };
        assert!(check_start(&s).is_err());
        s.sample_rate = 48_000;
        assert!(check_start(&s).is_ok());
        s.channels = 3;
        assert!(check_start(&s).is_err());
    }

    #[test]
    fn decodes_samples() {
        let mut out = Vec::new();
        SampleFormat::S16le.decode_into(&[0x00, 0x80, 0xff, 0x7f], &mut out);
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 32767.0 / 32768.0).abs() < 1e-6);
        out.clear();
        let mut bytes = 0.5f32.to_le_bytes().to_vec();
        bytes.extend(f32::NAN.to_le_bytes());
        SampleFormat::F32le.decode_into(&bytes, &mut out);
        assert_eq!(out, [0.5, 0.0]);
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("room-1_a.b"));
        for bad in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(!valid_session_id(bad), "{bad}");
        }
    }

    #[test]
    fn error_messages_are_tagged() {
        let json = ErrorMessage::new(ErrorCode::FrameTooBig, "too big").to_json();
        assert_eq!(json, r#"{"type":"error","code":"frame_too_big","message":"too big"}"#);
        assert_eq!(ErrorCode::FrameTooBig.close_code(), 1009);
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(c.ordinal(), i);
        }
    }
}
