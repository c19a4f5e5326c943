//! One caption pipeline for every front end: `transcribe`, `live`, `serve` and the
//! crate's users.
//!
//! ```text
//! samples (any rate, any channels)
//!   └─► StreamResampler (16 kHz mono, once) ─► AudioTap (optional recording)
//!   └─► StreamingTranscriber (voice activity, Whisper)
//!         or a whole-file decode (Segments → finals)
//!   └─► end-of-stream rule ─► CaptionRedactor ─► segment/time offsets
//!   └─► one conversion per script the sinks ask for ─► CaptionSink, CaptionSink, …
//! ```
//!
//! **The end-of-stream rule**, the same for every front end: when the stream ends, a
//! partial still on screen that the engine's last decode did not commit becomes a
//! final (same segment id, text and times). A viewer never sees words vanish because
//! the speaker stopped mid-sentence, and the file, the journal and the terminal hold
//! the same words as the screen did.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cantocap::asr::{StreamOptions, WhisperModel};
//! use cantocap::pipeline::{CaptionPipeline, CaptionSink};
//! use cantocap::text::{CaptionRedactor, Redactor, RedactOptions, Script};
//! use cantocap::CaptionEvent;
//!
//! struct Print;
//! impl CaptionSink for Print {
//!     fn script(&self) -> Script { Script::Hk }
//!     fn event(&mut self, event: &CaptionEvent) -> cantocap::Result<()> {
//!         if event.is_final() { println!("{}", event.text()); }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> cantocap::Result<()> {
//! let model = Arc::new(WhisperModel::load("models/ggml-base.bin")?);
//! let redactor = CaptionRedactor::new(Redactor::new(RedactOptions::default()));
//! // 44.1 kHz stereo in: the pipeline resamples.
//! let mut pipeline =
//!     CaptionPipeline::new(model, 44_100, 2, StreamOptions::default(), redactor)?;
//! pipeline.add_sink(Print)?;
//! pipeline.push(&vec![0.0; 44_100 * 2])?;
//! let summary = pipeline.finish()?;
//! println!("{} finals", summary.finals);
//! # Ok(()) }
//! ```

mod sink;

pub use sink::{CaptionFileSink, CaptionSink, JsonlSink, TerminalSink};

use std::sync::Arc;

use crate::asr::{StreamOptions, StreamStats, StreamingTranscriber, WhisperModel};
use crate::audio::{StreamResampler, WHISPER_SAMPLE_RATE};
use crate::text::{CaptionRedactor, RedactionCounts, Script, ScriptConverter};
use crate::{CaptionEvent, Result, Segment};

/// Where a continued stream's segment ids and times start (a session that an
/// ingest resumes): added to every event before the sinks see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offset {
    /// Added to segment ids.
    pub segment: u64,
    /// Added to start, end and emission times, in ms.
    pub time_ms: u64,
}

/// What a finished pipeline did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Finals given to the sinks.
    pub finals: u64,
    /// Personal data redacted.
    pub redactions: RedactionCounts,
    /// The engine's figures (none for a whole-file decode).
    pub stats: Option<StreamStats>,
}

/// The output half of the pipeline: redaction, offsets, conversion, sinks. Used on
/// its own by whole-file decodes (`transcribe`), and by [`CaptionPipeline`].
pub struct Output {
    redactor: CaptionRedactor,
    offset: Offset,
    /// One converter per script some sink asked for, in the order first asked.
    converters: Vec<ScriptConverter>,
    sinks: Vec<Box<dyn CaptionSink>>,
    finals: u64,
    /// Stamp `emitted_ms` with the wall time since this instant (live input).
    clock: Option<std::time::Instant>,
    /// Start of the last final delivered (offset applied): while the redactor
    /// holds back the end of a final, the next one may start no earlier.
    last_final_start_ms: u64,
}

impl Output {
    /// No sinks yet; events are redacted by `redactor` before anything leaves.
    pub fn new(redactor: CaptionRedactor) -> Self {
        Self {
            redactor,
            offset: Offset::default(),
            converters: Vec::new(),
            sinks: Vec::new(),
            finals: 0,
            clock: None,
            last_final_start_ms: 0,
        }
    }

    /// Where text still to come may start, at the earliest, given what the
    /// redactor holds back: `None` when it holds nothing.
    pub fn held_from_ms(&self) -> Option<u64> {
        self.redactor.is_holding().then_some(self.last_final_start_ms)
    }

    /// Stamp every event's `emitted_ms` with the wall time since `since` instead of
    /// stream time: for live input, where the two differ by the decoding delay.
    pub fn set_clock(&mut self, since: std::time::Instant) {
        self.clock = Some(since);
    }

    /// Add `offset` to every event's segment id and times.
    pub fn set_offset(&mut self, offset: Offset) {
        self.offset = offset;
    }

    /// Add a sink; its script's converter is built once, here, and shared with every
    /// other sink of the same script.
    ///
    /// # Errors
    /// [`Error::Opencc`](crate::Error::Opencc) if the script's dictionaries cannot load.
    pub fn add_sink(&mut self, sink: impl CaptionSink + 'static) -> Result<()> {
        let script = sink.script();
        if !self.converters.iter().any(|c| c.script() == script) {
            self.converters.push(ScriptConverter::new(script)?);
        }
        self.sinks.push(Box::new(sink));
        Ok(())
    }

    /// Personal data redacted so far.
    pub fn redactions(&self) -> RedactionCounts {
        self.redactor.counts()
    }

    /// Redact, offset, convert and deliver `events`; with `last`, also what the
    /// redactor still holds back, then every sink's `finish`.
    ///
    /// # Errors
    /// The first sink error; later sinks still get the event.
    pub fn emit(&mut self, events: Vec<CaptionEvent>, last: bool) -> Result<()> {
        let mut events = self.redactor.redact_all(events);
        if last {
            events.extend(self.redactor.finish());
        }
        self.deliver(events, last)
    }

    /// Offset, convert and deliver redacted events; with `last`, finish the sinks.
    fn deliver(&mut self, events: Vec<CaptionEvent>, last: bool) -> Result<()> {
        let mut failed = None;
        for mut event in events {
            self.shift(&mut event);
            if let Some(since) = self.clock {
                event.set_emitted_ms(since.elapsed().as_millis() as u64);
            }
            self.finals += u64::from(event.is_final());
            if event.is_final() {
                self.last_final_start_ms = event.span().0;
            }
            // Convert once per script, not once per sink.
            let converted: Vec<(Script, CaptionEvent)> = self
                .converters
                .iter()
                .map(|c| {
                    let mut e = event.clone();
                    *e.text_mut() = c.caption(event.text());
                    (c.script(), e)
                })
                .collect();
            for sink in &mut self.sinks {
                let script = sink.script();
                let event = converted.iter().find(|(s, _)| *s == script).map(|(_, e)| e);
                if let Err(e) = sink.event(event.expect("a converter per sink script")) {
                    failed.get_or_insert(e);
                }
            }
        }
        if last {
            for sink in &mut self.sinks {
                if let Err(e) = sink.finish() {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// A whole transcription's segments as a stream of finals (ids from 1), then the
    /// end of the stream. Redacted as a whole file: a number cut between segments is
    /// caught, and a tail held at the end goes back onto its segment.
    ///
    /// # Errors
    /// As [`emit`](Self::emit).
    pub fn emit_segments(&mut self, segments: Vec<Segment>) -> Result<Summary> {
        let finals = self
            .redactor
            .redact_segments(segments)
            .into_iter()
            .enumerate()
            .map(|(i, s)| CaptionEvent::Final {
                segment: i as u64 + 1,
                emitted_ms: s.end_ms,
                text: s.text,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                lag_ms: 0,
            })
            .collect();
        self.deliver(finals, true)?;
        Ok(Summary { finals: self.finals, redactions: self.redactions(), stats: None })
    }

    fn shift(&self, event: &mut CaptionEvent) {
        let Offset { segment: s, time_ms: t } = self.offset;
        match event {
            CaptionEvent::Partial { segment, start_ms, end_ms, emitted_ms, .. }
            | CaptionEvent::Final { segment, start_ms, end_ms, emitted_ms, .. } => {
                *segment += s;
                *start_ms += t;
                *end_ms += t;
                *emitted_ms += t;
            }
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("offset", &self.offset)
            .field("sinks", &self.sinks.len())
            .field("finals", &self.finals)
            .finish_non_exhaustive()
    }
}

/// Gets the audio as the engine hears it (16 kHz mono), e.g. to record it. A tap
/// handles its own errors: it may stop, never the captions.
pub trait AudioTap: Send {
    /// The next piece of 16 kHz mono audio.
    fn audio(&mut self, samples: &[f32]);
    /// The stream ended.
    fn finish(&mut self) {}
}

/// A live stream's pipeline: push samples at any rate, sinks get events.
pub struct CaptionPipeline {
    resampler: StreamResampler,
    /// Reused buffer of 16 kHz mono audio.
    mono: Vec<f32>,
    tap: Option<Box<dyn AudioTap>>,
    engine: StreamingTranscriber,
    output: Output,
    /// The last final's segment id and the partial on screen, as the engine made
    /// them (before redaction: the end-of-stream rule commits the engine's text).
    last_final: u64,
    partial: Option<CaptionEvent>,
}

impl CaptionPipeline {
    /// A pipeline for interleaved input at `sample_rate` with `channels`, decoded by
    /// `model` with `opts`; `redactor` runs before anything reaches a sink.
    ///
    /// # Errors
    /// An unsupported rate or channel count
    /// ([`Error::UnsupportedSampleRate`](crate::Error::UnsupportedSampleRate) …), a
    /// language the model lacks.
    pub fn new(
        model: Arc<WhisperModel>,
        sample_rate: u32,
        channels: u16,
        opts: StreamOptions,
        redactor: CaptionRedactor,
    ) -> Result<Self> {
        let resampler = StreamResampler::new(sample_rate, channels)?;
        let engine = StreamingTranscriber::new(model, WHISPER_SAMPLE_RATE, 1, opts)?;
        Ok(Self {
            resampler,
            mono: Vec::new(),
            tap: None,
            engine,
            output: Output::new(redactor),
            last_final: 0,
            partial: None,
        })
    }

    /// Stream time (offset applied) before which this pipeline will deliver no more
    /// final: the engine's uncommitted audio starts there, and nothing the redactor
    /// holds back starts earlier. A room orders several speakers' finals by it.
    pub fn watermark_ms(&self) -> u64 {
        let engine = self.engine.pending_from_ms() + self.output.offset.time_ms;
        self.output.held_from_ms().map_or(engine, |held| held.min(engine))
    }

    /// Give `tap` the 16 kHz mono audio (recording).
    pub fn with_tap(mut self, tap: impl AudioTap + 'static) -> Self {
        self.tap = Some(Box::new(tap));
        self
    }

    /// Continue a stream: add `offset` to segment ids and times.
    pub fn with_offset(mut self, offset: Offset) -> Self {
        self.output.set_offset(offset);
        self
    }

    /// Stamp `emitted_ms` with wall time (see [`Output::set_clock`]).
    pub fn with_clock(mut self, since: std::time::Instant) -> Self {
        self.output.set_clock(since);
        self
    }

    /// Add a sink (see [`Output::add_sink`]).
    ///
    /// # Errors
    /// As [`Output::add_sink`].
    pub fn add_sink(&mut self, sink: impl CaptionSink + 'static) -> Result<()> {
        self.output.add_sink(sink)
    }

    /// The engine (its plan, its figures so far).
    pub fn engine(&self) -> &StreamingTranscriber {
        &self.engine
    }

    /// Personal data redacted so far.
    pub fn redactions(&self) -> RedactionCounts {
        self.output.redactions()
    }

    /// Push interleaved samples at the engine's input rate; events go to the sinks.
    ///
    /// # Errors
    /// A decoding error (nothing already delivered is lost), or a sink's error.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        self.mono.clear();
        self.resampler.push(samples, &mut self.mono)?;
        if let Some(tap) = &mut self.tap {
            tap.audio(&self.mono);
        }
        let events = self.engine.push(&self.mono)?;
        self.track(&events);
        self.output.emit(events, false)
    }

    /// End the speaker's turn without ending the stream (see
    /// [`StreamingTranscriber::end_turn`]): what was pushed is decoded and
    /// committed. Text the redactor holds back (a number that may go on) waits for
    /// the next turn's final or the stream's end.
    ///
    /// # Errors
    /// A decoding error (nothing already delivered is lost), or a sink's error.
    pub fn end_turn(&mut self) -> Result<()> {
        let events = self.engine.end_turn()?;
        self.track(&events);
        self.output.emit(events, false)
    }

    /// Forget the current turn's audio that is not committed yet (see
    /// [`StreamingTranscriber::discard_turn`]).
    pub fn discard_turn(&mut self) {
        self.engine.discard_turn();
        self.partial = None;
    }

    /// Finals delivered to the sinks so far.
    pub fn finals(&self) -> u64 {
        self.output.finals
    }

    /// End the stream: the engine's last events, the end-of-stream rule (see the
    /// module docs), what the redactor holds, then every sink's `finish`.
    ///
    /// # Errors
    /// A decoding error (what the redactor holds and the sinks' `finish` still run),
    /// or a sink's error.
    pub fn finish(mut self) -> Result<Summary> {
        self.mono.clear();
        let flushed = self.resampler.flush(&mut self.mono);
        if let Some(tap) = &mut self.tap {
            tap.audio(&self.mono);
            tap.finish();
        }
        let mono = std::mem::take(&mut self.mono);
        let decoded = flushed.and_then(|()| self.engine.push(&mono)).and_then(|mut events| {
            events.extend(self.engine.finish()?);
            Ok(events)
        });
        let events = match &decoded {
            Ok(events) => {
                let mut events = events.clone();
                self.commit_partial(&mut events);
                events
            }
            Err(_) => Vec::new(),
        };
        let emitted = self.output.emit(events, true);
        decoded?;
        emitted?;
        Ok(Summary {
            finals: self.output.finals,
            redactions: self.output.redactions(),
            stats: Some(self.engine.stats().clone()),
        })
    }

    /// End the stream after a failure elsewhere: only what the redactor holds and
    /// the sinks' `finish` (no more decoding).
    ///
    /// # Errors
    /// A sink's error.
    pub fn abandon(mut self) -> Result<Summary> {
        if let Some(tap) = &mut self.tap {
            tap.finish();
        }
        self.output.emit(Vec::new(), true)?;
        Ok(Summary {
            finals: self.output.finals,
            redactions: self.output.redactions(),
            stats: Some(self.engine.stats().clone()),
        })
    }

    fn track(&mut self, events: &[CaptionEvent]) {
        // (The end-of-stream rule needs the engine's own view, before redaction.)
        for event in events {
            if event.is_final() {
                self.last_final = event.segment();
                self.partial = None;
            } else {
                self.partial = Some(event.clone());
            }
        }
    }

    /// The end-of-stream rule: the partial on screen becomes a final unless the last
    /// decode committed it.
    fn commit_partial(&mut self, events: &mut Vec<CaptionEvent>) {
        self.track(events);
        let Some(CaptionEvent::Partial { segment, text, start_ms, end_ms, lag_ms, .. }) =
            self.partial.take()
        else {
            return;
        };
        if segment > self.last_final && !text.trim().is_empty() {
            let emitted_ms = self.engine.stats().pushed_ms;
            events.push(CaptionEvent::Final {
                segment,
                text,
                start_ms,
                end_ms,
                emitted_ms,
                lag_ms,
            });
        }
    }
}

impl std::fmt::Debug for CaptionPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionPipeline")
            .field("engine", &self.engine)
            .field("output", &self.output)
            .field("tap", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::text::{RedactOptions, Redactor};

    /// Records what it gets, in its script.
    struct Collect(Script, Arc<Mutex<Vec<CaptionEvent>>>, Arc<Mutex<bool>>);

    impl CaptionSink for Collect {
        fn event(&mut self, event: &CaptionEvent) -> Result<()> {
            self.1.lock().unwrap().push(event.clone());
            Ok(())
        }
        fn script(&self) -> Script {
            self.0
        }
        fn finish(&mut self) -> Result<()> {
            *self.2.lock().unwrap() = true;
            Ok(())
        }
    }

    fn collect(
        output: &mut Output,
        script: Script,
    ) -> (Arc<Mutex<Vec<CaptionEvent>>>, Arc<Mutex<bool>>) {
        let (events, finished) = (Arc::default(), Arc::default());
        output.add_sink(Collect(script, Arc::clone(&events), Arc::clone(&finished))).unwrap();
        (events, finished)
    }

    fn final_(segment: u64, text: &str) -> CaptionEvent {
        CaptionEvent::Final {
            segment,
            text: text.into(),
            start_ms: segment * 1000,
            end_ms: segment * 1000 + 900,
            emitted_ms: segment * 1000 + 950,
            lag_ms: 0,
        }
    }

    #[test]
    fn sinks_get_redacted_offset_events_in_their_own_scripts() {
        let mut output = Output::new(CaptionRedactor::new(Redactor::new(RedactOptions::default())));
        output.set_offset(Offset { segment: 10, time_ms: 60_000 });
        let (hk, hk_done) = collect(&mut output, Script::Hk);
        let (cn, _) = collect(&mut output, Script::Cn);
        let (raw, _) = collect(&mut output, Script::Raw);
        assert_eq!(output.converters.len(), 3);
        output.emit(vec![final_(1, "我哋开会，电话 9123 4567。")], false).unwrap();
        assert!(!*hk_done.lock().unwrap());
        output.emit(Vec::new(), true).unwrap();
        assert!(*hk_done.lock().unwrap(), "finish reaches the sinks");
        let (hk, cn, raw) = (hk.lock().unwrap(), cn.lock().unwrap(), raw.lock().unwrap());
        // The number may be held back to the end of the stream: join what came.
        let joined = |events: &[CaptionEvent]| events.iter().map(|e| e.text()).collect::<String>();
        assert!(joined(&hk).starts_with("我哋開會"), "{}", joined(&hk));
        assert!(joined(&cn).starts_with("我哋开会"), "{}", joined(&cn));
        assert!(joined(&raw).starts_with("我哋开会"), "{}", joined(&raw));
        for e in hk.iter().chain(cn.iter()).chain(raw.iter()) {
            assert!(!e.text().contains("9123"), "redacted before any sink: {}", e.text());
            assert!(e.segment() >= 11 && e.span().0 >= 61_000, "offset: {e:?}");
        }
        assert_eq!((hk[0].segment(), hk[0].span()), (11, (61_000, 61_900)));
        assert_eq!(output.finals, hk.len() as u64);
        assert_eq!(output.redactions().total(), 1);
    }

    #[test]
    fn a_whole_file_becomes_finals_numbered_from_one() {
        let mut output = Output::new(CaptionRedactor::new(Redactor::new(RedactOptions::default())));
        let (raw, done) = collect(&mut output, Script::Raw);
        let segments = vec![Segment::new(0, 900, "one"), Segment::new(1000, 1900, "two")];
        let summary = output.emit_segments(segments).unwrap();
        assert_eq!(summary.finals, 2);
        assert!(*done.lock().unwrap());
        let raw = raw.lock().unwrap();
        assert_eq!(raw.iter().map(CaptionEvent::segment).collect::<Vec<_>>(), [1, 2]);
        assert!(raw.iter().all(CaptionEvent::is_final));
    }

    #[test]
    fn caption_files_carry_the_finals_ids() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut output = Output::new(CaptionRedactor::new(Redactor::new(RedactOptions::default())));
        output.set_offset(Offset { segment: 40, time_ms: 0 });
        let buf = Buf::default();
        let writer = crate::caption::writer_for(crate::caption::CaptionFormat::Jsonl, buf.clone());
        let layout = crate::caption::LayoutOptions::default();
        output.add_sink(CaptionFileSink::whole(writer, Script::Raw, layout)).unwrap();
        let segments = vec![Segment::new(0, 900, "One."), Segment::new(5000, 5900, "Two.")];
        output.emit_segments(segments).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let ids: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["segment"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(ids, [41, 42], "{text}");
    }

    #[test]
    fn text_files_get_a_line_per_caption_without_time_limits() {
        // Finals written for this test: a long one the layout would cut into several
        // timed screens (it did, a character each, for a real decode of noise).
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let segments = vec![
            Segment::new(0, 28_000, "我 哋 今日 去 飲茶 , 然後 去 行街 再去 睇戲 ."),
            Segment::new(30_000, 40_000, "OK, see you later then, bye bye."),
            Segment::new(45_000, 46_000, "我 哋 係 咪 。"),
            // Per-token finals (base decoded `Pho` `太` `Cure` so): one line.
            Segment::new(50_000, 50_400, "Pho"),
            Segment::new(50_400, 50_800, "太"),
            Segment::new(50_800, 51_200, "Cure"),
        ];
        // A whole file (transcribe); live files lay out each final as it comes.
        {
            let buf = Buf::default();
            let mut output =
                Output::new(CaptionRedactor::new(Redactor::new(RedactOptions::default())));
            let format = crate::caption::CaptionFormat::Txt;
            let writer = crate::caption::writer_for(format, buf.clone());
            let layout = crate::caption::LayoutOptions::default();
            output.add_sink(CaptionFileSink::whole(writer, Script::Hk, layout)).unwrap();
            output.emit_segments(segments.clone()).unwrap();
            let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert_eq!(
                text,
                "我哋今日去飲茶，然後去行街再去睇戲。\nOK, see you later then, bye bye.\n我哋係咪。\nPho太Cure\n"
            );
        }
    }

    #[test]
    fn a_failing_sink_does_not_starve_the_others() {
        struct Broken;
        impl CaptionSink for Broken {
            fn event(&mut self, _: &CaptionEvent) -> Result<()> {
                Err(crate::Error::Write(std::io::Error::other("disk full")))
            }
        }
        let mut output = Output::new(CaptionRedactor::new(Redactor::new(RedactOptions::default())));
        output.add_sink(Broken).unwrap();
        let (raw, _) = collect(&mut output, Script::Raw);
        let err = output.emit(vec![final_(1, "hello")], false).unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(raw.lock().unwrap().len(), 1);
    }
}
