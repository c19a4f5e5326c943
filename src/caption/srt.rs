//! SubRip (`.srt`): numbered cues with `HH:MM:SS,mmm --> HH:MM:SS,mmm` times.
//!
//! ```text
//! 1
//! 00:00:01,000 --> 00:00:03,500
//! 我哋聽日用 Zoom 開會，
//! 記得 send 個 agenda 俾我。
//!
//! ```

use std::io::Write;

use super::writer::{check_times, cue_lines};
use super::{Caption, CaptionWriter};
use crate::{Error, Result};

/// Writes SubRip, UTF-8 without a byte-order mark, one complete cue per caption.
///
/// Cues are numbered by the writer from 1, whatever the captions' own indices, so
/// the file stays valid when captions come from several [`layout`](super::layout)
/// calls. A caption without visible text is skipped; `-->` inside text, which
/// players would take for a timing line, is written as `->`.
#[derive(Debug)]
pub struct SrtWriter<W> {
    out: W,
    written: usize,
}

impl<W: Write> SrtWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// The underlying output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> CaptionWriter for SrtWriter<W> {
    fn write_caption(&mut self, caption: &Caption) -> Result<()> {
        check_times(caption)?;
        let lines = cue_lines(caption);
        if lines.is_empty() {
            return Ok(());
        }
        let mut cue = format!(
            "{}\n{} --> {}\n",
            self.written + 1,
            format_srt_time(caption.start_ms),
            format_srt_time(caption.end_ms)
        );
        for (i, line) in lines.iter().enumerate() {
            if let (0, Some(speaker)) = (i, &caption.speaker) {
                cue.push_str(&format!("{speaker}: "));
            }
            cue.push_str(&line.replace("-->", "->"));
            cue.push('\n');
        }
        cue.push('\n');
        self.out.write_all(cue.as_bytes())?;
        self.out.flush()?;
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// `ms` as an SRT time, `HH:MM:SS,mmm`; hours take more digits past 99.
pub fn format_srt_time(ms: u64) -> String {
    format_time(ms, ',')
}

pub(super) fn format_time(ms: u64, separator: char) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    format!("{h:02}:{:02}:{:02}{separator}{:03}", rest / 60_000, rest % 60_000 / 1000, rest % 1000)
}

/// Parse `H:MM:SS<separator>mmm` (any number of hour digits); where
/// `hours_optional`, `MM:SS<separator>mmm` too.
pub(super) fn parse_time(s: &str, separator: char, hours_optional: bool) -> Option<u64> {
    let digits = |s: &str, len: Option<usize>| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && len.is_none_or(|len| s.len() == len)
    };
    let (hms, millis) = s.split_once(separator)?;
    let parts: Vec<&str> = hms.split(':').collect();
    let (hours, minutes, seconds) = match parts[..] {
        [h, m, s] if digits(h, None) => (h, m, s),
        [m, s] if hours_optional => ("0", m, s),
        _ => return None,
    };
    if !digits(minutes, Some(2)) || !digits(seconds, Some(2)) || !digits(millis, Some(3)) {
        return None;
    }
    let (minutes, seconds): (u64, u64) = (minutes.parse().ok()?, seconds.parse().ok()?);
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    let hours: u64 = hours.parse().ok()?;
    hours
        .checked_mul(3_600_000)?
        .checked_add(minutes * 60_000 + seconds * 1000)?
        .checked_add(millis.parse().ok()?)
}

/// Parse `start --> end`; where `settings_allowed` (WebVTT), anything after
/// whitespace following the end time.
pub(super) fn parse_timing(
    line: &str,
    separator: char,
    hours_optional: bool,
    settings_allowed: bool,
) -> std::result::Result<(u64, u64), String> {
    let (start, rest) = line
        .split_once("-->")
        .ok_or_else(|| format!("expected a timing line `start --> end`, found {line:?}"))?;
    let rest = rest.trim_start();
    let (end, settings) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !settings_allowed && !settings.trim().is_empty() {
        return Err(format!("unexpected text after the end time: {:?}", settings.trim()));
    }
    let time = |s: &str| {
        parse_time(s.trim(), separator, hours_optional)
            .ok_or_else(|| format!("bad time {:?} in {line:?}", s.trim()))
    };
    let (start, end) = (time(start)?, time(end)?);
    if end < start {
        return Err(format!("the cue ends before it starts: {line:?}"));
    }
    Ok((start, end))
}

pub(super) fn bad(line: usize, reason: impl Into<String>) -> Error {
    Error::BadCaptionFile { line, reason: reason.into() }
}

/// Numbered non-blank lines, and a way to read a blank-line-separated block.
pub(super) struct Lines<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>,
    /// Number of the last line read (1-based).
    pub(super) at: usize,
}

impl<'a> Lines<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        Self { lines: text.lines().enumerate().peekable(), at: 0 }
    }

    /// The next line, if any, with its number.
    pub(super) fn next(&mut self) -> Option<(usize, &'a str)> {
        let (i, line) = self.lines.next()?;
        self.at = i + 1;
        Some((i + 1, line))
    }

    /// The next line if it is not blank (the current block goes on).
    pub(super) fn next_in_block(&mut self) -> Option<(usize, &'a str)> {
        let (i, line) = self.lines.next_if(|(_, l)| !l.trim().is_empty())?;
        self.at = i + 1;
        Some((i + 1, line))
    }

    /// Skip blank lines; the first line of the next block.
    pub(super) fn next_block(&mut self) -> Option<(usize, &'a str)> {
        while self.lines.next_if(|(_, l)| l.trim().is_empty()).is_some() {}
        self.next()
    }
}

/// Parse SubRip written by [`SrtWriter`] or anything as strict.
///
/// Cues must be numbered from 1 without gaps, have a `HH:MM:SS,mmm --> HH:MM:SS,mmm`
/// line that does not end before it starts, at least one line of text, and a blank
/// line before the next cue. A byte-order mark and CRLF line ends are accepted;
/// text lines are trimmed. Errors give the 1-based line number.
pub fn parse_srt(text: &str) -> Result<Vec<Caption>> {
    let mut lines = Lines::new(text);
    let mut captions = Vec::new();
    while let Some((n, line)) = lines.next_block() {
        let expected = captions.len() + 1;
        let index: usize = line
            .trim()
            .parse()
            .map_err(|_| bad(n, format!("expected caption number {expected}, found {line:?}")))?;
        if index != expected {
            return Err(bad(
                n,
                format!("caption number {index} is out of sequence: expected {expected}"),
            ));
        }
        let (n, timing) = lines
            .next_in_block()
            .ok_or_else(|| bad(n + 1, format!("caption {index} has no timing line")))?;
        let (start_ms, end_ms) =
            parse_timing(timing, ',', false, false).map_err(|reason| bad(n, reason))?;
        let mut text_lines = Vec::new();
        while let Some((n, line)) = lines.next_in_block() {
            if parse_timing(line, ',', false, false).is_ok() {
                return Err(bad(n, "a timing line inside caption text: a blank line is missing before the caption number"));
            }
            text_lines.push(line.trim().to_string());
        }
        if text_lines.is_empty() {
            return Err(bad(n, format!("caption {index} has no text")));
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
        let mut writer = SrtWriter::new(Vec::new());
        super::super::write_all(&mut writer, captions).unwrap();
        String::from_utf8(writer.into_inner()).unwrap()
    }

    #[test]
    fn times_format() {
        assert_eq!(format_srt_time(0), "00:00:00,000");
        assert_eq!(format_srt_time(999), "00:00:00,999");
        assert_eq!(format_srt_time(62_345), "00:01:02,345");
        assert_eq!(format_srt_time(3_600_000), "01:00:00,000");
        assert_eq!(format_srt_time(3_600_000 + 59 * 60_000 + 59_999), "01:59:59,999");
        assert_eq!(format_srt_time(100 * 3_600_000 + 1), "100:00:00,001");
        assert_eq!(format_srt_time(u64::MAX), "5124095576030:25:51,615");
    }

    #[test]
    fn times_parse_back() {
        for ms in [0, 999, 1000, 62_345, 3_600_000, 3_600_000 * 123 + 4_567, u64::MAX] {
            assert_eq!(parse_time(&format_srt_time(ms), ',', false), Some(ms));
        }
        for bad in [
            "00:00:00.000",
            "0:0:00,000",
            "00:60:00,000",
            "00:00:60,000",
            "00:00:00,00",
            "00:00,000",
            "x:00:00,000",
            "99999999999999:00:00,000",
        ] {
            assert_eq!(parse_time(bad, ',', false), None, "{bad}");
        }
        assert_eq!(parse_time("1:00:00,000", ',', false), Some(3_600_000));
    }

    #[test]
    fn writes_numbered_cues() {
        let captions = [
            caption(1, 1000, 3500, &["我哋聽日用 Zoom 開會，", "記得 send 個 agenda 俾我。"]),
            caption(7, 3_600_000, 3_601_000, &["好"]),
        ];
        assert_eq!(
            write(&captions),
            "1\n00:00:01,000 --> 00:00:03,500\n我哋聽日用 Zoom 開會，\n記得 send 個 agenda 俾我。\n\n2\n01:00:00,000 --> 01:00:01,000\n好\n\n"
        );
    }

    #[test]
    fn round_trips() {
        let captions = [
            caption(1, 0, 999, &["一", "two & <three>"]),
            caption(2, 999, 100 * 3_600_000, &["123"]),
        ];
        assert_eq!(parse_srt(&write(&captions)).unwrap(), captions);
        assert_eq!(parse_srt("").unwrap(), []);
    }

    #[test]
    fn odd_text_cannot_break_the_file() {
        let captions = [
            caption(1, 0, 1000, &["", "a\nb", "  ", "x --> y"]),
            caption(2, 1000, 2000, &[" "]),
            caption(3, 2000, 3000, &["c"]),
        ];
        let text = write(&captions);
        assert_eq!(
            parse_srt(&text).unwrap(),
            [caption(1, 0, 1000, &["a b", "x -> y"]), caption(2, 2000, 3000, &["c"])]
        );
    }

    #[test]
    fn accepts_bom_and_crlf() {
        let text = "\u{FEFF}1\r\n00:00:01,000 --> 00:00:02,000\r\nhello\r\n\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\nworld";
        let captions = parse_srt(text).unwrap();
        assert_eq!(
            captions,
            [caption(1, 1000, 2000, &["hello"]), caption(2, 2000, 3000, &["world"])]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let line_of = |text: &str| match parse_srt(text) {
            Err(Error::BadCaptionFile { line, reason }) => (line, reason),
            other => panic!("{other:?}"),
        };
        let ok = "1\n00:00:01,000 --> 00:00:02,000\nhello\n\n";
        assert_eq!(line_of(&format!("{ok}3\n00:00:01,000 --> 00:00:02,000\nx\n")).0, 5);
        assert_eq!(line_of("0\n00:00:01,000 --> 00:00:02,000\nx\n").0, 1);
        assert_eq!(line_of("hello\n").0, 1);
        assert_eq!(line_of("1\n00:00:01.000 --> 00:00:02,000\nx\n").0, 2);
        assert_eq!(line_of("1\n00:00:03,000 --> 00:00:02,000\nx\n").0, 2);
        assert_eq!(line_of("1\n00:00:01,000 --> 00:00:02,000 X1:0\nx\n").0, 2);
        assert_eq!(line_of("1\n00:00:01,000 --> 00:00:02,000\n\n").0, 2);
        assert_eq!(line_of("1\n").0, 2);
        let (line, reason) =
            line_of("1\n00:00:01,000 --> 00:00:02,000\nx\n2\n00:00:02,000 --> 00:00:03,000\ny\n");
        assert_eq!(line, 5);
        assert!(reason.contains("blank line is missing"), "{reason}");
    }
}
