//! JSON lines (`.jsonl`): one final caption event per line.
//!
//! ```text
//! {"type":"final","segment":1,"text":"我哋聽日用 Zoom 開會，記得 send 個 agenda 俾我。","start_ms":1000,"end_ms":3500}
//! ```

use std::io::{self, Write};

use serde::Serialize;

use super::writer::check_times;
use super::{Caption, CaptionWriter};
use crate::Result;

/// Writes one JSON object per caption: `type` (always `"final"`), `segment` (the id
/// of the final it came from, [`Caption::segment`], else the caption's index), `text` (its lines joined by [`Caption::text`]), `start_ms`,
/// `end_ms` and `speaker` when the caption has one ([`Caption::speaker`]), in that
/// order, with non-ASCII text as UTF-8.
#[derive(Debug)]
pub struct JsonlWriter<W> {
    out: W,
}

/// The wire form; field order is the output order.
#[derive(Serialize)]
struct Final<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    segment: u64,
    text: &'a str,
    start_ms: u64,
    end_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker: Option<&'a str>,
}

impl<W: Write> JsonlWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> CaptionWriter for JsonlWriter<W> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        check_times(caption)?;
        let text = caption.text();
        let event = Final {
            kind: "final",
            segment: caption.segment.unwrap_or(caption.index as u64),
            text: &text,
            start_ms: caption.start_ms,
            end_ms: caption.end_ms,
            speaker: caption.speaker.as_deref(),
        };
        let mut line = serde_json::to_vec(&event).map_err(io::Error::from)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_object_per_line_in_field_order() {
        let mut writer = JsonlWriter::new(Vec::new());
        let captions = [
            Caption {
                segment: None,
                index: 1,
                start_ms: 1000,
                end_ms: 3500,
                lines: vec!["我哋聽日用 Zoom 開會，".into(), "記得 \"send\"\n".into()],
                speaker: None,
            },
            Caption {
                segment: None,
                index: 2,
                start_ms: 3500,
                end_ms: 4500,
                lines: vec![],
                speaker: None,
            },
            Caption {
                segment: Some(41),
                index: 3,
                start_ms: 4500,
                end_ms: 5000,
                lines: vec!["x".into()],
                speaker: None,
            },
        ];
        super::super::write_all(&mut writer, &captions).unwrap();
        let out = String::from_utf8(writer.into_inner()).unwrap();
        assert_eq!(
            out,
            "{\"type\":\"final\",\"segment\":1,\"text\":\"我哋聽日用 Zoom 開會，記得 \\\"send\\\"\",\"start_ms\":1000,\"end_ms\":3500}\n\
             {\"type\":\"final\",\"segment\":2,\"text\":\"\",\"start_ms\":3500,\"end_ms\":4500}\n\
             {\"type\":\"final\",\"segment\":41,\"text\":\"x\",\"start_ms\":4500,\"end_ms\":5000}\n"
        );
    }
}
