//! A timed piece of recognised text: what ASR produces and captions are made of.

use serde::{Deserialize, Serialize};

/// Recognised text with its place in the stream, in milliseconds from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Start of the speech, in ms from the start of the audio.
    pub start_ms: u64,
    /// End of the speech, in ms from the start of the audio.
    pub end_ms: u64,
    /// The text, already trimmed.
    pub text: String,
}

impl Segment {
    /// A segment from its parts.
    pub fn new(start_ms: u64, end_ms: u64, text: impl Into<String>) -> Self {
        Self { start_ms, end_ms, text: text.into() }
    }
}
