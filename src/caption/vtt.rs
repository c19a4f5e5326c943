//! WebVTT (`.vtt`): the caption format of browsers and the HTML `<track>` element.
//!
//! ```text
//! WEBVTT
//!
//! 1
//! 00:00:01.000 --> 00:00:03.500
//! 我哋聽日用 Zoom 開會，
//! 記得 send 個 agenda 俾我。
//!
//! ```

use std::io::Write;

use super::srt::{bad, format_time, parse_timing, Lines};
use super::writer::{check_times, cue_lines};
use super::{Caption, CaptionWriter};
use crate::Result;

/// Writes WebVTT: the `WEBVTT` header, then one complete cue per caption.
///
/// The header is written with the first caption, or by
/// [`finish`](CaptionWriter::finish) when there is none. Cues are numbered by the
/// writer from 1; `&`, `<` and `>` in text are escaped (so `-->` cannot appear);
/// a caption without visible text is skipped.
#[derive(Debug)]
pub struct VttWriter<W> {
    out: W,
    written: usize,
    header_written: bool,
}

impl<W: Write> VttWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out, written: 0, header_written: false }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn header(&mut self) -> &'static str {
        if std::mem::replace(&mut self.header_written, true) {
            ""
        } else {
            "WEBVTT\n\n"
        }
    }
}

impl<W: Write> CaptionWriter for VttWriter<W> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        check_times(caption)?;
        let lines = cue_lines(caption);
        if lines.is_empty() {
            return Ok(());
        }
        let was_written = self.header_written;
        let mut cue = format!(
            "{}{}\n{} --> {}\n",
            self.header(),
            self.written + 1,
            format_vtt_time(caption.start_ms),
            format_vtt_time(caption.end_ms)
        );
        for (i, line) in lines.iter().enumerate() {
            // A voice span on the first line names the speaker for the whole cue.
            if let (0, Some(speaker)) = (i, &caption.speaker) {
                cue.push_str(&format!("<v {}>", escape(speaker)));
            }
            cue.push_str(&escape(line));
            cue.push('\n');
        }
        cue.push('\n');
        if let Err(err) = self.out.write_all(cue.as_bytes()).and_then(|()| self.out.flush()) {
            self.header_written = was_written;
            return Err(err.into());
        }
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let header = self.header();
        self.out.write_all(header.as_bytes())?;
        Ok(self.out.flush()?)
    }
}

/// `ms` as a WebVTT time, `HH:MM:SS.mmm`; hours take more digits past 99.
pub fn format_vtt_time(ms: u64) -> String {
    format_time(ms, '.')
}

/// Escape text for a cue: `&`, `<` and `>` become character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Cue text as plain text: tags (`<i>`, `<c.red>`, `<00:00:01.000>`) are dropped
/// and character references replaced. An `&` that starts no known reference stays.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('<') {
            match rest.find('>') {
                Some(end) => rest = &rest[end + 1..],
                None => {
                    out.push_str(rest);
                    rest = "";
                }
            }
            continue;
        }
        let reference = rest
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((reference(&rest[1..end])?, end)));
        match reference {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference (between `&` and `;`) names.
fn reference(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "lrm" => '\u{200E}',
        "rlm" => '\u{200F}',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    })
}

/// Parse WebVTT written by [`VttWriter`] or anything as strict.
///
/// The file must start with `WEBVTT` (after an optional byte-order mark) and a
/// blank line must end the header. `NOTE`, `STYLE` and `REGION` blocks are skipped.
/// Each cue has an optional identifier (a numeric one must equal the cue's
/// position, counted from 1), a `start --> end` line (`HH:MM:SS.mmm` or
/// `MM:SS.mmm`; cue settings after the end time are ignored) and at least one line
/// of text; text is unescaped, stripped of tags and trimmed. Captions are numbered
/// from 1 in file order. Errors give the 1-based line number.
pub fn parse_vtt(text: &str) -> Result<Vec<Caption>> {
    let mut lines = Lines::new(text);
    match lines.next() {
        Some((_, first))
            if first == "WEBVTT"
                || first.starts_with("WEBVTT ")
                || first.starts_with("WEBVTT\t") => {}
        _ => return Err(bad(1, "a WebVTT file starts with the line WEBVTT")),
    }
    while let Some((n, line)) = lines.next_in_block() {
        if line.contains("-->") {
            return Err(bad(n, "a blank line must end the header before the first cue"));
        }
    }
    let mut captions = Vec::new();
    while let Some((n, line)) = lines.next_block() {
        let keyword = line.split([' ', '\t']).next().unwrap_or("");
        if matches!(keyword, "NOTE" | "STYLE" | "REGION") && !line.contains("-->") {
            while lines.next_in_block().is_some() {}
            continue;
        }
        let index = captions.len() + 1;
        let (n, timing) = if line.contains("-->") {
            (n, line)
        } else {
            if let Ok(id) = line.trim().parse::<usize>() {
                if id != index {
                    return Err(bad(
                        n,
                        format!("cue number {id} is out of sequence: expected {index}"),
                    ));
                }
            }
            lines
                .next_in_block()
                .ok_or_else(|| bad(n + 1, format!("cue {line:?} has no timing line")))?
        };
        let (start_ms, end_ms) =
            parse_timing(timing, '.', true, true).map_err(|reason| bad(n, reason))?;
        let mut text_lines = Vec::new();
        while let Some((n, line)) = lines.next_in_block() {
            if line.contains("-->") {
                return Err(bad(
                    n,
                    "`-->` in cue text: a blank line is missing before the next cue",
                ));
            }
            text_lines.push(unescape(line).trim().to_string());
        }
        if text_lines.is_empty() {
            return Err(bad(n, format!("cue {index} has no text")));
        }
        captions.push(Caption {
            segment: None,
            index,
            start_ms,
            end_ms,
            lines: text_lines,
            speaker: None,
        });
    }
    Ok(captions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn caption(index: usize, start_ms: u64, end_ms: u64, lines: &[&str]) -> Caption {
        Caption {
            segment: None,
            index,
            start_ms,
            end_ms,
            lines: lines.iter().map(|s| s.to_string()).collect(),
            speaker: None,
        }
    }

    fn write(captions: &[Caption]) -> String {
        let mut writer = VttWriter::new(Vec::new());
        super::super::write_all(&mut writer, captions).unwrap();
        String::from_utf8(writer.into_inner()).unwrap()
    }

    #[test]
    fn times_format() {
        assert_eq!(format_vtt_time(0), "00:00:00.000");
        assert_eq!(format_vtt_time(999), "00:00:00.999");
        assert_eq!(format_vtt_time(62_345), "00:01:02.345");
        assert_eq!(format_vtt_time(3_600_000), "01:00:00.000");
        assert_eq!(format_vtt_time(3_723_004), "01:02:03.004");
        assert_eq!(format_vtt_time(1000 * 3_600_000), "1000:00:00.000");
    }

    #[test]
    fn escapes_and_unescapes() {
        assert_eq!(escape("a & b <i> --> c"), "a &amp; b &lt;i&gt; --&gt; c");
        assert_eq!(unescape(&escape("a & b <i> --> c &amp;")), "a & b <i> --> c &amp;");
        assert_eq!(
            unescape("<i>斜</i>體 <c.red>紅</c> &#x4F60;&#22909; &nbsp;& x &bogus; <00:01.000>"),
            "斜體 紅 你好 \u{A0}& x &bogus; "
        );
        assert_eq!(unescape("a <b"), "a <b");
    }

    #[test]
    fn writes_header_and_cues() {
        assert_eq!(write(&[]), "WEBVTT\n\n");
        let captions = [caption(4, 1000, 3500, &["Q&A 環節", "x<y"])];
        assert_eq!(
            write(&captions),
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.500\nQ&amp;A 環節\nx&lt;y\n\n"
        );
    }

    #[test]
    fn round_trips() {
        let captions = [
            caption(1, 0, 999, &["一", "two & <three> --> four"]),
            caption(2, 999, 100 * 3_600_000, &["NOTE this"]),
            caption(3, 100 * 3_600_000, 100 * 3_600_000 + 1, &["&amp;"]),
        ];
        assert_eq!(parse_vtt(&write(&captions)).unwrap(), captions);
        assert_eq!(parse_vtt("WEBVTT").unwrap(), []);
    }

    #[test]
    fn reads_what_other_tools_write() {
        let text = "\u{FEFF}WEBVTT - made elsewhere\r\nKind: captions\r\n\r\nNOTE a comment\r\nover two lines\r\n\r\nSTYLE\r\n::cue { color: red }\r\n\r\nintro\r\n00:01.000 --> 00:02.500 align:start line:0\r\n<v Ann>Hello\r\n\r\n00:00:03.000 --> 00:00:04.000\r\nworld\r\n";
        assert_eq!(
            parse_vtt(text).unwrap(),
            [caption(1, 1000, 2500, &["Hello"]), caption(2, 3000, 4000, &["world"])]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let line_of = |text: &str| match parse_vtt(text) {
            Err(Error::BadCaptionFile { line, .. }) => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line_of(""), 1);
        assert_eq!(line_of("WEBVTTX\n"), 1);
        assert_eq!(line_of("1\n00:00:01.000 --> 00:00:02.000\nx\n"), 1);
        assert_eq!(line_of("WEBVTT\n00:00:01.000 --> 00:00:02.000\nx\n"), 2);
        assert_eq!(line_of("WEBVTT\n\n2\n00:00:01.000 --> 00:00:02.000\nx\n"), 3);
        assert_eq!(line_of("WEBVTT\n\n1\n00:00:01,000 --> 00:00:02.000\nx\n"), 4);
        assert_eq!(line_of("WEBVTT\n\n1\nhello\n"), 4);
        assert_eq!(line_of("WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\n"), 4);
        assert_eq!(
            line_of(
                "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nx\n00:00:02.000 --> 00:00:03.000\ny\n"
            ),
            5
        );
    }
}
