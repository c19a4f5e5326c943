//! Where caption events go: the [`CaptionSink`] trait and the sinks of the
//! command-line front ends (caption files, JSON lines, the terminal). The server's
//! sinks (journal and viewers, webhooks, the ingest echo) live with the server.

use std::io::Write;

use crate::caption::{self, CaptionWriter, LayoutOptions};
use crate::text::Script;
use crate::{CaptionEvent, Error, Result, Segment};

/// Receives a pipeline's events, already redacted and converted to
/// [`script`](Self::script). One required method; object-safe.
pub trait CaptionSink: Send {
    /// A partial or final event, in this sink's script.
    ///
    /// # Errors
    /// Whatever the sink's output reports; the pipeline goes on with the other sinks
    /// and returns the first error.
    fn event(&mut self, event: &CaptionEvent) -> Result<()>;

    /// The script this sink wants text in. Default: [`Script::Raw`], as decoded.
    fn script(&self) -> Script {
        Script::Raw
    }

    /// The stream ended (after its last event). Default: nothing.
    ///
    /// # Errors
    /// As [`event`](Self::event).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<S: CaptionSink + ?Sized> CaptionSink for Box<S> {
    fn event(&mut self, event: &CaptionEvent) -> Result<()> {
        (**self).event(event)
    }
    fn script(&self) -> Script {
        (**self).script()
    }
    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }
}

/// Finals as caption files (SRT, WebVTT, JSON lines, text) through a
/// [`CaptionWriter`]: laid out as each final arrives (live: a file that is complete
/// up to the last final), or all at once at the end (a whole file: the layout may
/// then join short finals into one caption). Each caption carries the segment id of
/// the final it came from ([`Caption::segment`](crate::caption::Caption::segment)),
/// which JSON lines write.
pub struct CaptionFileSink {
    writer: Box<dyn CaptionWriter + Send>,
    script: Script,
    layout: LayoutOptions,
    /// `None` when laying out as finals arrive.
    whole: Option<Vec<(u64, Segment)>>,
    next_index: usize,
}

impl CaptionFileSink {
    /// Lay out and write each final as it arrives.
    pub fn incremental(
        writer: Box<dyn CaptionWriter + Send>,
        script: Script,
        layout: LayoutOptions,
    ) -> Self {
        Self { writer, script, layout, whole: None, next_index: 1 }
    }

    /// Keep the finals and lay them out together when the stream ends.
    pub fn whole(
        writer: Box<dyn CaptionWriter + Send>,
        script: Script,
        layout: LayoutOptions,
    ) -> Self {
        Self { writer, script, layout, whole: Some(Vec::new()), next_index: 1 }
    }

    fn write(&mut self, finals: &[(u64, Segment)]) -> Result<()> {
        let captions = if self.writer.timed() {
            caption::layout_finals(finals, &self.layout)
        } else {
            // Plain text: no time limit to cut a slowly spoken final into pieces.
            let layout = LayoutOptions { max_duration_ms: u64::MAX / 4, ..self.layout.clone() };
            caption::layout_finals(finals, &layout)
        };
        for mut c in captions {
            c.index = self.next_index;
            self.next_index += 1;
            self.writer.write_caption(&c)?;
        }
        Ok(())
    }
}

impl CaptionSink for CaptionFileSink {
    fn event(&mut self, event: &CaptionEvent) -> Result<()> {
        if !event.is_final() {
            return Ok(());
        }
        match &mut self.whole {
            Some(finals) => {
                finals.push((event.segment(), event.to_segment()));
                Ok(())
            }
            None => self.write(&[(event.segment(), event.to_segment())]),
        }
    }

    fn script(&self) -> Script {
        self.script
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(finals) = self.whole.take() {
            self.write(&finals)?;
        }
        self.writer.finish()
    }
}

/// Every event (partials too) as one JSON object per line, flushed per event.
pub struct JsonlSink<W: Write + Send> {
    out: W,
    script: Script,
}

impl<W: Write + Send> JsonlSink<W> {
    /// Events in `script` to `out`.
    pub fn new(out: W, script: Script) -> Self {
        Self { out, script }
    }
}

impl<W: Write + Send> CaptionSink for JsonlSink<W> {
    fn event(&mut self, event: &CaptionEvent) -> Result<()> {
        serde_json::to_writer(&mut self.out, event)
            .map_err(|e| Error::Write(std::io::Error::other(e)))?;
        self.out.write_all(b"\n").map_err(Error::Write)?;
        self.out.flush().map_err(Error::Write)
    }

    fn script(&self) -> Script {
        self.script
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::Write)
    }
}

/// Captions in a terminal: each final on its own line with its start time; on a
/// terminal (`rewrite`), the partial is shown dimmed and rewritten in place.
pub struct TerminalSink<W: Write + Send> {
    out: W,
    script: Script,
    rewrite: bool,
    partial_shown: bool,
}

impl<W: Write + Send> TerminalSink<W> {
    /// Captions in `script` to `out`; `rewrite` shows partials in place (ANSI).
    pub fn new(out: W, script: Script, rewrite: bool) -> Self {
        Self { out, script, rewrite, partial_shown: false }
    }
}

/// `hh:mm:ss.d` of stream time.
fn clock(ms: u64) -> String {
    format!("{:02}:{:02}:{:02}.{}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms / 100 % 10)
}

/// The last `n` characters of `text`.
fn tail_chars(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}

impl<W: Write + Send> CaptionSink for TerminalSink<W> {
    fn event(&mut self, event: &CaptionEvent) -> Result<()> {
        let out = &mut self.out;
        match event {
            CaptionEvent::Partial { text, .. } if self.rewrite => {
                write!(out, "\r\x1b[2K\x1b[2m{}\x1b[0m", tail_chars(text, 60))
                    .map_err(Error::Write)?;
                self.partial_shown = true;
            }
            CaptionEvent::Partial { .. } => return Ok(()),
            // A final whose text the redactor holds back whole (it may be the start
            // of a number): the next final carries it.
            CaptionEvent::Final { text, .. } if text.is_empty() => return Ok(()),
            CaptionEvent::Final { text, start_ms, .. } => {
                if self.partial_shown {
                    write!(out, "\r\x1b[2K").map_err(Error::Write)?;
                    self.partial_shown = false;
                }
                writeln!(out, "[{}] {}", clock(*start_ms), text).map_err(Error::Write)?;
            }
        }
        out.flush().map_err(Error::Write)
    }

    fn script(&self) -> Script {
        self.script
    }

    fn finish(&mut self) -> Result<()> {
        if self.partial_shown {
            write!(self.out, "\r\x1b[2K").map_err(Error::Write)?;
        }
        self.out.flush().map_err(Error::Write)
    }
}
