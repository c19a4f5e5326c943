//! A timed piece of recognised text ([`Segment`]: what ASR produces and captions are
//! made of) and the live form of it ([`CaptionEvent`]: partials and finals).

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

/// A caption event, as JSON: `{"type":"partial",…}` or `{"type":"final",…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CaptionEvent {
    /// The uncommitted tail of speech: replaces the previous partial of its segment.
    Partial {
        /// The segment id this partial will become when it is committed.
        segment: u64,
        /// Counts up from 1 within a segment.
        revision: u32,
        /// The text so far.
        text: String,
        /// Start of the text, in ms of stream time.
        start_ms: u64,
        /// End of the text, in ms of stream time.
        end_ms: u64,
        /// Stream time (ms of audio pushed so far) when this was emitted.
        emitted_ms: u64,
        /// How far decoding was behind its schedule when this was made, in ms.
        lag_ms: u64,
    },
    /// Committed text: emitted once, never changes. Segment ids increase by one.
    Final {
        /// The segment id.
        segment: u64,
        /// The text.
        text: String,
        /// Start of the text, in ms of stream time.
        start_ms: u64,
        /// End of the text, in ms of stream time.
        end_ms: u64,
        /// Stream time (ms of audio pushed so far) when this was emitted.
        emitted_ms: u64,
        /// How far decoding was behind its schedule when this was made, in ms.
        lag_ms: u64,
    },
}

impl CaptionEvent {
    /// The segment id.
    pub fn segment(&self) -> u64 {
        match self {
            Self::Partial { segment, .. } | Self::Final { segment, .. } => *segment,
        }
    }

    /// The text.
    pub fn text(&self) -> &str {
        match self {
            Self::Partial { text, .. } | Self::Final { text, .. } => text,
        }
    }

    /// Mutable text, for converting scripts or redacting in place.
    pub fn text_mut(&mut self) -> &mut String {
        match self {
            Self::Partial { text, .. } | Self::Final { text, .. } => text,
        }
    }

    /// Is this a final?
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Final { .. })
    }

    /// (start_ms, end_ms).
    pub fn span(&self) -> (u64, u64) {
        match self {
            Self::Partial { start_ms, end_ms, .. } | Self::Final { start_ms, end_ms, .. } => {
                (*start_ms, *end_ms)
            }
        }
    }

    /// Stream time of emission.
    pub fn emitted_ms(&self) -> u64 {
        match self {
            Self::Partial { emitted_ms, .. } | Self::Final { emitted_ms, .. } => *emitted_ms,
        }
    }

    /// Set the emission time: live drivers stamp events with the wall clock.
    pub fn set_emitted_ms(&mut self, ms: u64) {
        match self {
            Self::Partial { emitted_ms, .. } | Self::Final { emitted_ms, .. } => *emitted_ms = ms,
        }
    }

    /// A final as a [`Segment`](Segment), for caption layout and files.
    pub fn to_segment(&self) -> Segment {
        let (start_ms, end_ms) = self.span();
        Segment { start_ms, end_ms, text: self.text().to_string() }
    }
}
