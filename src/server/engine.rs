//! The engine thread of an ingest connection: it owns the connection's
//! [`CaptionPipeline`] (resample, decode, redact) and hands events to the hub
//! through its sinks: the session (journal, viewers, metrics, the ingest echo) and
//! the webhooks. Audio comes in as [`Input`] from the transport's ingest loop;
//! what the client should be sent goes back as [`Out`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::protocol::{ErrorCode, Start};
use super::recording::Recorder;
use super::session::{Continuation, Released, Session};
use super::Hub;
use crate::asr::StreamOptions;
use crate::pipeline::{AudioTap, CaptionPipeline, CaptionSink, Offset};
use crate::text::{CaptionRedactor, RedactionCounts, Redactor};
use crate::{CaptionEvent, Error};

/// What the writer task sends to the ingest client.
pub(crate) enum Out {
    Text(String),
    Event(Arc<super::session::Published>),
    /// An error message, then a close with the error's code; the writer stops.
    Fail(ErrorCode, String),
    /// A close frame; the writer stops.
    Close(u16, &'static str),
    /// The language of the participant's first committed text (Whisper's code)
    /// and how sure detection was (1.0 when it was not detected but given).
    Language {
        code: String,
        probability: f32,
    },
    /// An [`Input::EndTurn`] was decoded: the participant's engine has published
    /// `finals` finals in all (the turn's last is among them, though the room may
    /// still hold it back for time order).
    TurnEnded {
        finals: u64,
    },
}

/// Audio for the engine thread.
pub(crate) enum Input {
    Audio {
        samples: Vec<f32>,
        end_ms: u64,
        at: Instant,
    },
    /// The speaker's turn is over: commit everything so far (answered by
    /// [`Out::TurnEnded`]).
    EndTurn,
    /// Forget the turn's audio that is not committed yet.
    DiscardTurn,
    Finish,
}

/// Where a batch of input stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// More audio may come.
    More,
    EndTurn,
    DiscardTurn,
    Finish,
}

/// Everything the engine thread owns.
pub(crate) struct Job {
    pub(crate) hub: Arc<Hub>,
    pub(crate) session: Arc<Session>,
    pub(crate) start: Start,
    pub(crate) continuation: Continuation,
    pub(crate) input: std_mpsc::Receiver<Input>,
    pub(crate) out: mpsc::UnboundedSender<Out>,
    pub(crate) model: Arc<crate::asr::WhisperModel>,
}

/// Arrival times of the audio, by stream ms, for the final latency metric: pushed
/// by the engine thread, read by the [`SessionSink`].
type Arrivals = Arc<std::sync::Mutex<VecDeque<(u64, Instant)>>>;

/// The server's session sink: each event is published to the session (numbered by
/// the room, journaled, then broadcast to its viewers, who convert it once per
/// script), counted in the metrics, echoed to the ingest client (sharing the
/// viewers' conversions) and, for finals, offered to the webhooks.
struct SessionSink {
    hub: Arc<Hub>,
    session: Arc<Session>,
    speaker: Option<Arc<str>>,
    arrivals: Arrivals,
    /// Where this connection's stream time starts in the session's.
    time_offset_ms: u64,
}

impl CaptionSink for SessionSink {
    fn event(&mut self, event: &CaptionEvent) -> crate::Result<()> {
        let metrics = &self.hub.metrics;
        if event.is_final() {
            // Final latency: from the arrival of the audio that ends the utterance.
            let local_end = event.span().1.saturating_sub(self.time_offset_ms);
            let mut arrivals = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
            while arrivals.len() > 1 && arrivals[0].0 < local_end {
                arrivals.pop_front();
            }
            if let Some((_, at)) = arrivals.front() {
                metrics.final_latency.observe_ms(at.elapsed().as_millis() as u64);
            }
            metrics.finals.fetch_add(1, Relaxed);
        } else {
            metrics.partials.fetch_add(1, Relaxed);
        }
        let (CaptionEvent::Partial { lag_ms, .. } | CaptionEvent::Final { lag_ms, .. }) = event;
        metrics.decode_lag.observe_ms(*lag_ms);
        let released = self.session.publish(event.clone(), self.speaker.as_ref());
        if let (Some(cluster), Some(partial)) = (&self.hub.cluster, &released.partial) {
            cluster.publish_partial(&self.session.id, partial);
        }
        released_finals(&self.hub, &self.session, released);
        Ok(())
    }
}

/// Finals the room released (from any participant's engine) go to the webhooks,
/// each once; a journal error is logged (the room has told its speaker's client).
fn released_finals(hub: &Hub, session: &Session, released: Released) {
    if let Some(e) = released.journal {
        hub.log(format_args!("session {}: journal: {e}", session.id));
    }
    for published in released.finals {
        if let Some(cluster) = &hub.cluster {
            cluster.publish_final(hub, &session.id, &published);
        }
        // Each webhook converts to its own script and signs.
        hub.webhooks.on_final(&session.id, &published.event, published.speaker());
    }
}

impl Job {
    /// The engine and its pipeline, or `None` after telling the client why not.
    fn pipeline(&self, arrivals: &Arrivals) -> Option<CaptionPipeline> {
        let mut transcribe = self.hub.config.transcribe.clone();
        if let Some(language) = &self.start.language {
            transcribe.language = Some(language.clone());
        }
        let opts = StreamOptions {
            transcribe,
            step_ms: self.hub.config.step_ms,
            partial_budget: self.hub.config.partial_budget,
            decode_slots: Some(Arc::clone(&self.hub.pool)),
            ..Default::default()
        };
        let (rate, channels) = (self.start.sample_rate, self.start.channels);
        let redactor = CaptionRedactor::new(Redactor::new(self.hub.config.redact.clone()));
        let model = Arc::clone(&self.model);
        let pipeline = match CaptionPipeline::new(model, rate, channels, opts, redactor) {
            Ok(p) => p,
            Err(e) => {
                let code = match e {
                    Error::UnknownLanguage { .. } | Error::LanguageNotInModel { .. } => {
                        ErrorCode::BadStart
                    }
                    _ => ErrorCode::Internal,
                };
                let _ = self.out.send(Out::Fail(code, e.to_string()));
                return None;
            }
        };
        let c = self.continuation;
        let offset = Offset { segment: c.segment_offset, time_ms: c.time_offset_ms };
        let mut pipeline = pipeline.with_offset(offset);
        if let Some(tap) = self.recording() {
            pipeline = pipeline.with_tap(tap);
        }
        let sink = SessionSink {
            hub: Arc::clone(&self.hub),
            session: Arc::clone(&self.session),
            speaker: self.start.speaker.as_deref().map(Arc::from),
            arrivals: Arc::clone(arrivals),
            time_offset_ms: c.time_offset_ms,
        };
        // Raw: viewers and the echo convert per script, once per event (`Published`).
        pipeline.add_sink(sink).expect("the raw script needs no dictionaries");
        Some(pipeline)
    }

    /// The `ready` message, once the engine has chosen its language.
    fn ready(&self, pipeline: &CaptionPipeline) -> String {
        let limits = &self.hub.config.limits;
        serde_json::json!({
            "type": "ready",
            "session": self.session.id,
            "sample_rate": self.start.sample_rate,
            "channels": self.start.channels,
            "format": self.start.format,
            "language": pipeline.engine().plan().describe(),
            "speaker": self.start.speaker,
            "next_segment": self.continuation.segment_offset + 1,
            "limits": {
                "max_frame_bytes": limits.max_frame_bytes,
                "max_messages_per_sec": limits.max_messages_per_sec,
                "max_realtime_factor": limits.max_realtime_factor,
                "max_session_secs": limits.max_session_secs,
                "idle_secs": limits.idle_secs,
            },
        })
        .to_string()
    }

    /// Decode until the input ends; returns the ms of audio received and the
    /// finals published.
    pub(crate) fn run(self) -> (u64, u64) {
        let arrivals = Arrivals::default();
        let Some(mut pipeline) = self.pipeline(&arrivals) else {
            let released =
                self.session.end_ingest(self.speaker(), self.continuation.time_offset_ms);
            released_finals(&self.hub, &self.session, released);
            self.session.forget_echo(self.speaker(), &self.out);
            return (0, 0);
        };
        let _ = self.out.send(Out::Text(self.ready(&pipeline)));
        let id = &self.session.id;
        let (rate, channels) = (self.start.sample_rate, self.start.channels);
        self.hub.log(format_args!("session {id}: ingest started ({rate} Hz, {channels} ch)"));
        let mut failed = None;
        let mut announced = false;
        while let Some((audio, mark)) = self.next_audio(&arrivals) {
            let before = pipeline.redactions();
            // Decodes take a slot of the hub's pool (StreamOptions::decode_slots).
            let pushed = pipeline.push(&audio).and_then(|()| match mark {
                Mark::EndTurn => pipeline.end_turn(),
                Mark::DiscardTurn => {
                    pipeline.discard_turn();
                    Ok(())
                }
                Mark::More | Mark::Finish => Ok(()),
            });
            self.count_redactions(pipeline.redactions() - before);
            if let Err(e) = pushed {
                failed = Some(e);
                break;
            }
            // The room may now publish other participants' finals that waited for
            // this engine to pass their start.
            let watermark = pipeline.watermark_ms();
            let released = self.session.advance(self.speaker(), watermark);
            released_finals(&self.hub, &self.session, released);
            if !announced {
                if let Some((code, probability)) = pipeline.engine().committed_language() {
                    announced = true;
                    let code = code.to_string();
                    let _ = self.out.send(Out::Language { code, probability });
                }
            }
            match mark {
                Mark::More | Mark::DiscardTurn => {}
                Mark::EndTurn => {
                    let _ = self.out.send(Out::TurnEnded { finals: pipeline.finals() });
                }
                Mark::Finish => break,
            }
        }
        let before = pipeline.redactions();
        let stats = pipeline.engine().stats().clone();
        let summary = match failed {
            None => pipeline.finish(),
            Some(e) => {
                self.fail(&e);
                // The text the redactor still holds back is not lost with the engine.
                pipeline.abandon()
            }
        };
        let summary = summary.unwrap_or_else(|e| {
            self.fail(&e);
            Default::default()
        });
        self.count_redactions(summary.redactions - before);
        let pushed_ms = summary.stats.as_ref().unwrap_or(&stats).pushed_ms;
        let end_ms = self.continuation.time_offset_ms + pushed_ms;
        let released = self.session.end_ingest(self.speaker(), end_ms);
        released_finals(&self.hub, &self.session, released);
        // This participant's last finals may wait for others' engines (time order,
        // at most MAX_HOLD): its client gets them before it is closed.
        while self.session.holds(self.speaker()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            released_finals(&self.hub, &self.session, self.session.release_due());
        }
        self.session.forget_echo(self.speaker(), &self.out);
        self.hub.webhooks.on_session_closed(id, self.session.final_count(), end_ms);
        self.hub.log(format_args!(
            "session {id}: ingest ended after {:.1} s of audio; redacted {}",
            pushed_ms as f64 / 1000.0,
            summary.redactions
        ));
        (pushed_ms, summary.finals)
    }

    /// Everything queued up to the next turn's end, in one piece (a session that
    /// waited for a decode slot decodes a longer step rather than building a
    /// queue), and where it stops; `None` once the input has ended.
    fn next_audio(&self, arrivals: &Arrivals) -> Option<(Vec<f32>, Mark)> {
        let first = self.input.recv().ok()?;
        let mut audio = Vec::new();
        let mut mark = Mark::More;
        for item in std::iter::once(first).chain(std::iter::from_fn(|| self.input.try_recv().ok()))
        {
            match item {
                Input::Audio { samples, end_ms, at } => {
                    audio.extend_from_slice(&samples);
                    arrivals.lock().unwrap_or_else(|e| e.into_inner()).push_back((end_ms, at));
                }
                Input::EndTurn => {
                    mark = Mark::EndTurn;
                    break;
                }
                Input::DiscardTurn => {
                    mark = Mark::DiscardTurn;
                    break;
                }
                Input::Finish => {
                    mark = Mark::Finish;
                    break;
                }
            }
        }
        Some((audio, mark))
    }

    /// The participant's key in the room (`""` when the ingest named none).
    fn speaker(&self) -> &str {
        self.start.speaker.as_deref().unwrap_or("")
    }

    fn count_redactions(&self, redacted: RedactionCounts) {
        if !redacted.is_empty() {
            self.session.add_redactions(redacted);
            self.hub.metrics.redacted(redacted);
        }
    }

    fn fail(&self, e: &Error) {
        self.hub.log(format_args!("session {}: decoding failed: {e}", self.session.id));
        let _ = self.out.send(Out::Fail(ErrorCode::Internal, format!("decoding failed: {e}")));
    }

    /// The recording of this connection's audio, with `record_audio` only.
    fn recording(&self) -> Option<Recording> {
        let config = &self.hub.config;
        let dir = config.data_dir.as_deref().filter(|_| config.record_audio)?;
        let recorder = Recorder::create(dir, &self.session.id)
            .inspect_err(|e| {
                self.hub.log(format_args!("session {}: cannot record: {e}", self.session.id))
            })
            .ok()?;
        Some(Recording {
            recorder: Some(recorder),
            hub: Arc::clone(&self.hub),
            session: self.session.id.clone(),
        })
    }
}

/// `--record-audio`: the pipeline's 16 kHz mono audio to `DATA_DIR/SESSION.N.wav`.
/// A write error stops the recording (logged), never the captions.
struct Recording {
    recorder: Option<Recorder>,
    hub: Arc<Hub>,
    session: String,
}

impl AudioTap for Recording {
    fn audio(&mut self, samples: &[f32]) {
        if let Some(Err(e)) = self.recorder.as_mut().map(|r| r.push(samples)) {
            self.hub.log(format_args!("session {}: recording stopped: {e}", self.session));
            self.recorder = None;
        }
    }

    fn finish(&mut self) {
        if let Some(Err(e)) = self.recorder.as_mut().map(Recorder::finish) {
            self.hub.log(format_args!("session {}: recording: {e}", self.session));
        }
    }
}
