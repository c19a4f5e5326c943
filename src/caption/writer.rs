//! The caption sink trait, the output formats, and picking a writer for one.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;

use super::{Caption, JsonlWriter, SrtWriter, TxtWriter, VttWriter};
use crate::{Error, Result};

/// Somewhere captions go, one at a time, as they become final.
///
/// Implementations write each caption completely and flush it before returning, so
/// what has been written is a valid file at every moment (live captioning writes
/// finals as they arrive). Only [`write_caption`](Self::write_caption) is required;
/// call [`finish`](Self::finish) once after the last caption.
pub trait CaptionWriter {
    /// Write one caption.
    fn write_caption(&mut self, caption: &Caption) -> Result<()>;

    /// Finish the output after the last caption (write what an empty file still
    /// needs, flush). Writing more captions afterwards is allowed but unusual.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether this format shows times. Untimed formats (plain text) get captions
    /// laid out without the time limit, which would otherwise cut a slowly spoken
    /// final into pieces. Default true.
    fn timed(&self) -> bool {
        true
    }
}

impl<T: CaptionWriter + ?Sized> CaptionWriter for &mut T {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        (**self).write_caption(caption)
    }

    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }

    fn timed(&self) -> bool {
        (**self).timed()
    }
}

impl<T: CaptionWriter + ?Sized> CaptionWriter for Box<T> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        (**self).write_caption(caption)
    }

    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }

    fn timed(&self) -> bool {
        (**self).timed()
    }
}

/// Write every caption, then [`finish`](CaptionWriter::finish).
pub fn write_all(writer: &mut dyn CaptionWriter, captions: &[Caption]) -> Result<()> {
    for caption in captions {
        writer.write_caption(caption)?;
    }
    writer.finish()
}

/// A caption file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptionFormat {
    /// SubRip (`.srt`): numbered cues, `00:01:02,345` times.
    Srt,
    /// WebVTT (`.vtt`): for browsers and the HTML `<track>` element.
    Vtt,
    /// JSON lines (`.jsonl`): one `{"type":"final",...}` object per caption.
    Jsonl,
    /// Plain text (`.txt`): one caption per line, no times.
    Txt,
}

impl CaptionFormat {
    /// Every format, in the order they are listed to users.
    pub const ALL: [CaptionFormat; 4] = [Self::Srt, Self::Vtt, Self::Jsonl, Self::Txt];

    /// The format's name, which is also its file extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::Jsonl => "jsonl",
            Self::Txt => "txt",
        }
    }

    /// The format a file name's extension names (case-insensitive), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        Self::ALL.into_iter().find(|f| f.extension().eq_ignore_ascii_case(ext))
    }
}

impl fmt::Display for CaptionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// A caption format name that is not one of [`CaptionFormat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCaptionFormat(
    /// The name given.
    pub String,
);

impl fmt::Display for UnknownCaptionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown caption format {:?} (choose one of ", self.0)?;
        for (i, format) in CaptionFormat::ALL.iter().enumerate() {
            f.write_str(if i == 0 { "" } else { ", " })?;
            f.write_str(format.extension())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownCaptionFormat {}

impl FromStr for CaptionFormat {
    type Err = UnknownCaptionFormat;

    /// Parses `srt`, `vtt`, `jsonl` or `txt`, in any case.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.extension().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCaptionFormat(s.to_string()))
    }
}

/// A writer of `format` into `out`.
pub fn writer_for<W: Write + Send + 'static>(
    format: CaptionFormat,
    out: W,
) -> Box<dyn CaptionWriter + Send> {
    match format {
        CaptionFormat::Srt => Box::new(SrtWriter::new(out)),
        CaptionFormat::Vtt => Box::new(VttWriter::new(out)),
        CaptionFormat::Jsonl => Box::new(JsonlWriter::new(out)),
        CaptionFormat::Txt => Box::new(TxtWriter::new(out)),
    }
}

/// A caption's lines as a cue may hold them: no line breaks inside a line, no
/// surrounding or blank lines (a blank line would end the cue).
pub(super) fn cue_lines(caption: &Caption) -> Vec<String> {
    caption
        .lines
        .iter()
        .map(|line| line.replace(['\r', '\n'], " ").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Refuse a caption that ends before it starts: no player would show it.
pub(super) fn check_times(caption: &Caption) -> Result<()> {
    if caption.end_ms < caption.start_ms {
        return Err(Error::Write(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "caption {} ends ({} ms) before it starts ({} ms)",
                caption.index, caption.end_ms, caption.start_ms
            ),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_print_and_come_from_paths() {
        for format in CaptionFormat::ALL {
            assert_eq!(format.to_string().parse::<CaptionFormat>().unwrap(), format);
            assert_eq!(format.to_string(), format.extension());
            let path = format!("out/meeting.{}", format.extension().to_uppercase());
            assert_eq!(CaptionFormat::from_path(Path::new(&path)), Some(format));
        }
        assert_eq!(" VTT ".parse::<CaptionFormat>(), Ok(CaptionFormat::Vtt));
        let err = "ass".parse::<CaptionFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown caption format "ass" (choose one of srt, vtt, jsonl, txt)"#
        );
        assert_eq!(CaptionFormat::from_path(Path::new("meeting")), None);
        assert_eq!(CaptionFormat::from_path(Path::new("meeting.ass")), None);
        assert_eq!(CaptionFormat::from_path(Path::new("srt")), None);
    }

    #[test]
    fn boxed_writers_are_object_safe_and_send() {
        fn assert_send<T: Send>(_: &T) {}
        let mut writers: Vec<Box<dyn CaptionWriter + Send>> =
            CaptionFormat::ALL.into_iter().map(|f| writer_for(f, Vec::new())).collect();
        for writer in &mut writers {
            assert_send(writer);
            let caption = Caption {
                segment: None,
                index: 1,
                start_ms: 0,
                end_ms: 1000,
                lines: vec!["好".into()],
                speaker: None,
            };
            write_all(writer.as_mut(), &[caption]).unwrap();
        }
    }

    #[test]
    fn backwards_captions_are_refused() {
        let caption = Caption {
            segment: None,
            index: 3,
            start_ms: 2000,
            end_ms: 1000,
            lines: vec!["好".into()],
            speaker: None,
        };
        for format in [CaptionFormat::Srt, CaptionFormat::Vtt] {
            let err = writer_for(format, Vec::new()).write_caption(&caption).unwrap_err();
            assert!(err.to_string().contains("caption 3 ends"), "{err}");
        }
    }
}
