//! Plain text (`.txt`): one line per final, without times.

use std::io::Write;

use super::layout::{first_visible, join_needs_space, last_visible};
use super::{Caption, CaptionWriter};
use crate::Result;

/// Writes captions' [`text`](Caption::text) as lines: the captions laid out from one
/// final ([`Caption::segment`]) share a line, so a transcript has one line per final
/// however the layout cut it into screens; captions without a segment id get a line
/// each. A caption without visible text is skipped; line breaks inside text become
/// spaces.
///
/// A line's end is written when the next line starts (or at
/// [`finish`](CaptionWriter::finish)), so a live file holds every caption written so
/// far, its last line possibly without its newline yet.
#[derive(Debug)]
pub struct TxtWriter<W> {
    out: W,
    /// The line still open: its final's id and its last visible character.
    open: Option<(Option<u64>, char)>,
}

impl<W: Write> TxtWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out, open: None }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> CaptionWriter for TxtWriter<W> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        let text = caption.text().replace(['\r', '\n'], " ");
        let text = text.trim();
        let (Some(first), Some(last)) = (first_visible(text), last_visible(text)) else {
            return Ok(());
        };
        let mut piece = String::with_capacity(text.len() + 1);
        match self.open {
            Some((segment, before)) if segment.is_some() && segment == caption.segment => {
                piece.extend(join_needs_space(before, first).then_some(' '));
            }
            Some(_) => piece.push('\n'),
            None => {}
        }
        piece.push_str(text);
        self.out.write_all(piece.as_bytes())?;
        self.out.flush()?;
        self.open = Some((caption.segment, last));
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.open.take().is_some() {
            self.out.write_all(b"\n")?;
        }
        Ok(self.out.flush()?)
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
            },
            Caption {
                segment: None,
                index: 2,
                start_ms: 1000,
                end_ms: 2000,
                lines: vec![" ".into()],
            },
            Caption {
                segment: None,
                index: 3,
                start_ms: 2000,
                end_ms: 3000,
                lines: vec!["a\nb".into()],
            },
        ];
        super::super::write_all(&mut writer, &captions).unwrap();
        assert_eq!(String::from_utf8(writer.into_inner()).unwrap(), "我哋聽日用 Zoom 開會\na b\n");
    }

    #[test]
    fn captions_of_one_final_share_a_line() {
        // The layout of one long final (a real decode of slow speech gave such a
        // final, `我 门 间 下 ...` over 28 s) is several captions with its id: the
        // text file gets one line for it, not one per caption.
        use crate::caption::{layout_finals, LayoutOptions};
        use crate::Segment;
        let finals = [
            (1, Segment::new(0, 28_000, "我哋今日去飲茶然後去行街再去睇戲")),
            (2, Segment::new(30_000, 40_000, "OK, see you later then, bye bye.")),
            (3, Segment::new(45_000, 46_000, "好。")),
        ];
        let captions = layout_finals(&finals, &LayoutOptions::default());
        assert!(captions.len() > 3, "the layout splits the long finals: {captions:?}");
        let mut writer = TxtWriter::new(Vec::new());
        super::super::write_all(&mut writer, &captions).unwrap();
        assert_eq!(
            String::from_utf8(writer.into_inner()).unwrap(),
            "我哋今日去飲茶然後去行街再去睇戲\nOK, see you later then, bye bye.\n好。\n"
        );
    }
}
