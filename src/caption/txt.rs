//! Plain text (`.txt`): one caption per line, without times.
//!
//! It has no times ([`CaptionWriter::timed`] is false), so caption files lay out its
//! captions without the time limit: a slowly spoken final is one line, not a line
//! per few characters.

use std::io::Write;

use super::{Caption, CaptionWriter};
use crate::Result;

/// Writes each caption's [`text`](Caption::text) on a line of its own. A caption
/// without visible text is skipped; line breaks inside text become spaces.
#[derive(Debug)]
pub struct TxtWriter<W> {
    out: W,
}

impl<W: Write> TxtWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> CaptionWriter for TxtWriter<W> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        let mut line = caption.text().replace(['\r', '\n'], " ");
        if line.trim().is_empty() {
            return Ok(());
        }
        if let Some(speaker) = &caption.speaker {
            line = format!("{speaker}: {line}");
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }

    fn timed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_caption_per_line() {
        let mut writer = TxtWriter::new(Vec::new());
        let captions = [
            Caption {
                segment: None,
                index: 1,
                start_ms: 0,
                end_ms: 1000,
                lines: vec!["我哋聽日用".into(), "Zoom 開會".into()],
                speaker: None,
            },
            Caption {
                segment: None,
                index: 2,
                start_ms: 1000,
                end_ms: 2000,
                lines: vec![" ".into()],
                speaker: None,
            },
            Caption {
                segment: None,
                index: 3,
                start_ms: 2000,
                end_ms: 3000,
                lines: vec!["a\nb".into()],
                speaker: None,
            },
        ];
        super::super::write_all(&mut writer, &captions).unwrap();
        assert_eq!(String::from_utf8(writer.into_inner()).unwrap(), "我哋聽日用 Zoom 開會\na b\n");
    }
}
