//! Jitsi's skynet streaming protocol, so Jigasi's `WhisperTranscriptionService`
//! streams a meeting into cantocap: a WebSocket at
//! `/streaming-whisper/ws/{meeting}` on the main port, authorized by a Jitsi JWT
//! (see [`crate::server::jitsi`]; the guard checks it before the upgrade).
//!
//! ```text
//! Jigasi                                             server
//! binary: "participant|lang" NUL-padded to 60 bytes,
//!         then s16le mono 16 kHz PCM (1.5 s)       ─►
//!                                                   ◄─ {"id","participant_id","ts","text","type":"interim","variance":0.5}
//!                                                   ◄─ {"id","participant_id","ts","text","type":"final","variance":1.0}
//! binary: one 0x00 byte (the meeting ended)        ─►
//!                                                   ◄─ every participant's last finals, then a close (1000)
//! ```
//!
//! One connection carries a whole meeting: each participant named in the frame
//! headers is a speaker of the room `meeting`, with its own engine, joined on its
//! first frame and finished after `limits.idle_secs` without audio (a participant
//! who speaks again joins again once its engine has finished; audio before that is
//! dropped). Its language is the header's, `xx-YY` cut to `xx`, `zh` as
//! `zh_means` says, an unknown one the server's; it is fixed when the participant
//! joins. Captions are in `?script=` (Hong Kong by default).
//!
//! - `id`: a UUID (version 8, made from the connection, participant and a counter;
//!   older Jigasi parses it as a UUID), the same for an utterance's interims and
//!   its final.
//! - `ts`: wall-clock epoch ms of the event's start (when the room's time began,
//!   plus the event's start in room time).
//! - `variance`: 1.0 for finals, 0.5 for interims (Jigasi passes it on as
//!   stability).
//!
//! skynet has no error message: cantocap sends `{"type":"error","code","message"}`
//! with the reply's fields as well (empty `text`, nil `id`, `variance` 0.0, so
//! Jigasi ignores it as an empty result), then closes with the error's code. A
//! participant the room has no place for (`max_sessions`, `max_speakers_per_room`)
//! gets that error with its `participant_id` once, and its audio is dropped until
//! a place frees; broken frames end the connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::ws::Ws;
use crate::asr::CaptionEvent;
use crate::server::audit::{Client, Event};
use crate::server::engine::{Input, Out};
use crate::server::feed::Feed;
use crate::server::protocol::{self, close, ErrorCode, SampleFormat, Start};
use crate::server::session::Published;
use crate::server::{signalled, Hub};
use crate::text::Script;

/// The route.
pub(crate) const PATH: &str = "/streaming-whisper/ws/{meeting}";

/// Bytes of `participant|lang` before each frame's audio.
const HEADER_BYTES: usize = 60;

/// The frame that ends the meeting.
const END: &[u8] = &[0];

/// `variance` of a final and of an interim.
const FINAL_VARIANCE: f64 = 1.0;
const INTERIM_VARIANCE: f64 = 0.5;

/// Utterances of one participant shown but not finalized, kept at most.
const MAX_OPEN: usize = 16;

/// The meeting id of a Jitsi path, if it is one.
pub(crate) fn meeting_of(path: &str) -> Option<&str> {
    path.strip_prefix("/streaming-whisper/ws/").filter(|m| !m.is_empty() && !m.contains('/'))
}

/// One audio frame, parsed.
#[derive(Debug, PartialEq)]
struct Frame<'a> {
    participant: &'a str,
    language: &'a str,
    pcm: &'a [u8],
}

/// Split a frame into its header and s16le audio.
fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "a frame of {} bytes is shorter than its {HEADER_BYTES}-byte participant|language header",
            bytes.len()
        ));
    }
    let (header, pcm) = bytes.split_at(HEADER_BYTES);
    let header = std::str::from_utf8(header)
        .map_err(|_| "the frame header is not UTF-8 text".to_string())?
        .trim_end_matches(['\0', ' ']);
    let Some((participant, language)) = header.rsplit_once('|') else {
        return Err("the frame header is not participant|language".into());
    };
    if pcm.len() % 2 != 0 {
        return Err(format!(
            "{} bytes of audio after the header are not whole 16-bit samples",
            pcm.len()
        ));
    }
    Ok(Frame { participant, language, pcm })
}

/// The ids of one participant's utterances. Interims of an utterance share an id
/// until the final: a partial whose revision does not follow the last one starts
/// a new utterance (the engine counts revisions from 1 after each commit), and a
/// final closes the latest utterance that started before its end (finals can
/// arrive after the next utterance's first interims: the room holds them until
/// the other participants' engines have caught up).
#[derive(Default)]
struct Utterances {
    open: Vec<Open>,
}

struct Open {
    id: String,
    start_ms: u64,
    revision: u32,
}

impl Utterances {
    fn id(&mut self, event: &CaptionEvent, mut mint: impl FnMut() -> String) -> String {
        let (start_ms, end_ms) = event.span();
        match event {
            CaptionEvent::Partial { revision, .. } => {
                if let Some(last) = self.open.last_mut().filter(|u| *revision > u.revision) {
                    last.revision = *revision;
                    return last.id.clone();
                }
                let id = mint();
                self.open.push(Open { id: id.clone(), start_ms, revision: *revision });
                if self.open.len() > MAX_OPEN {
                    self.open.remove(0);
                }
                id
            }
            CaptionEvent::Final { .. } => match self.open.iter().rposition(|u| u.start_ms < end_ms)
            {
                Some(i) => {
                    let id = self.open[i].id.clone();
                    self.open.drain(..=i);
                    id
                }
                None => mint(),
            },
        }
    }
}

/// A UUID (version 8) from the SHA-256 of `parts`.
fn uuid(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let mut b: [u8; 16] = hash.finalize()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A participant with a running engine.
struct Speaker {
    feed: Feed,
    /// Samples received.
    frames: u64,
    last: Instant,
}

/// What came of a participant's first frame.
enum Joined {
    Yes,
    /// No place for it now: its audio is dropped; the error to send, the first time.
    Refused(Option<String>),
}

/// Why the connection ends: a reason for the close frame and the audit, and the
/// error to send first, if any.
type End = (&'static str, Option<(ErrorCode, String)>);

/// One meeting connection.
struct Meeting {
    hub: Arc<Hub>,
    room: String,
    script: Script,
    client: Client,
    out: mpsc::UnboundedSender<Out>,
    speakers: HashMap<String, Speaker>,
    utterances: HashMap<String, Utterances>,
    /// Participants refused a place, told once until they get one.
    refused: HashSet<String>,
    /// Participants being finished (their last finals, then the audit).
    finishing: Vec<(String, JoinHandle<()>)>,
    /// Wall-clock epoch ms at room time 0.
    epoch_base_ms: u64,
    /// Connection seed and counter for utterance ids.
    seed: u64,
    minted: u64,
    started: Instant,
}

impl Meeting {
    /// A binary frame that is not the end: its audio to the participant's engine.
    /// `Ok(Some(message))` is an error for one participant only.
    async fn frame(&mut self, bytes: &[u8]) -> Result<Option<String>, (ErrorCode, String)> {
        let hub = Arc::clone(&self.hub);
        let limits = &hub.config.limits;
        if bytes.len() > limits.max_frame_bytes {
            let msg = format!(
                "a frame of {} bytes is over the limit of {} bytes",
                bytes.len(),
                limits.max_frame_bytes
            );
            return Err((ErrorCode::FrameTooBig, msg));
        }
        let frame = parse_frame(bytes).map_err(|msg| (ErrorCode::BadAudio, msg))?;
        protocol::check_speaker(Some(frame.participant))
            .map_err(|e| (ErrorCode::BadStart, format!("participant: {e}")))?;
        if !self.speakers.contains_key(frame.participant) {
            // Back before its engine has finished: until then its place is taken.
            if self.finishing.iter().any(|(p, h)| p == frame.participant && !h.is_finished()) {
                return Ok(None);
            }
            if let Joined::Refused(error) = self.join(frame.participant, frame.language).await? {
                return Ok(error);
            }
        }
        let max_ms = limits.max_session_secs * 1000;
        let speaker = self.speakers.get_mut(frame.participant).expect("joined");
        let mut samples = Vec::with_capacity(frame.pcm.len() / 2);
        SampleFormat::S16le.decode_into(frame.pcm, &mut samples);
        let before = speaker.frames * 1000 / 16_000;
        speaker.frames += samples.len() as u64;
        speaker.last = Instant::now();
        let end_ms = speaker.frames * 1000 / 16_000;
        self.hub.metrics.audio_ms.fetch_add(end_ms - before, Relaxed);
        if end_ms > max_ms || self.started.elapsed().as_millis() as u64 > max_ms {
            let msg = format!(
                "the connection reached the limit of {} s; reconnect to continue",
                limits.max_session_secs
            );
            return Err((ErrorCode::SessionTooLong, msg));
        }
        // An engine that stopped has sent its failure, which ends the connection.
        speaker.feed.push(Input::Audio { samples, end_ms, at: Instant::now() });
        Ok(None)
    }

    /// Start `participant`'s engine; `Err` when no one can join.
    async fn join(
        &mut self,
        participant: &str,
        language: &str,
    ) -> Result<Joined, (ErrorCode, String)> {
        let jitsi = self.hub.config.jitsi.as_ref().expect("the guard checked [jitsi]");
        let start = Start {
            sample_rate: 16_000,
            channels: 1,
            format: SampleFormat::S16le,
            language: jitsi.language(language),
            speaker: Some(participant.to_string()),
            script: Some(self.script),
        };
        match self.hub.join(&self.room, &start, self.out.clone()).await {
            Ok(feed) => {
                if self.speakers.is_empty() {
                    self.epoch_base_ms =
                        epoch_ms().saturating_sub(feed.continuation.time_offset_ms);
                }
                self.refused.remove(participant);
                let entry = self.client.entry(Event::SessionOpened).session(&self.room);
                self.hub.audit(entry.detail("jitsi"));
                self.hub.log(format_args!(
                    "jitsi {}: participant {participant} joined ({})",
                    self.room,
                    start.language.as_deref().unwrap_or("the server's languages")
                ));
                let speaker = Speaker { feed, frames: 0, last: Instant::now() };
                self.speakers.insert(participant.to_string(), speaker);
                Ok(Joined::Yes)
            }
            Err((code @ (ErrorCode::TooManySessions | ErrorCode::SessionBusy), msg)) => {
                if !self.refused.insert(participant.to_string()) {
                    return Ok(Joined::Refused(None));
                }
                self.hub.metrics.error(code);
                let entry = self.client.entry(Event::LimitHit).session(&self.room);
                self.hub.audit(entry.detail(code.name()));
                self.hub.log(format_args!("jitsi {}: {participant} refused: {msg}", self.room));
                Ok(Joined::Refused(Some(error_message(code, &msg, participant))))
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// Finish the participants quiet for `idle`, in the background (their engines
    /// decode what is left; the room may hold their finals for the others').
    fn retire_quiet(&mut self, idle: Duration) {
        let quiet: Vec<String> = self
            .speakers
            .iter()
            .filter(|(_, s)| s.last.elapsed() >= idle)
            .map(|(p, _)| p.clone())
            .collect();
        for participant in quiet {
            self.hub.log(format_args!("jitsi {}: {participant} went quiet", self.room));
            self.finish(&participant, "quiet");
        }
        self.finishing.retain(|(_, task)| !task.is_finished());
    }

    fn finish(&mut self, participant: &str, end: &'static str) {
        let Some(speaker) = self.speakers.remove(participant) else { return };
        let (hub, client, room) = (Arc::clone(&self.hub), self.client.clone(), self.room.clone());
        let task = tokio::spawn(async move {
            let audited = Arc::clone(&speaker.feed.session);
            let (audio_ms, finals) = speaker.feed.finish().await;
            let mut closed = client.entry(Event::SessionClosed).session(&room).detail(end);
            closed.audio_s = Some(audio_ms as f64 / 1000.0);
            closed.captions = Some(finals);
            closed.redactions = Some(audited.redactions());
            hub.audit(closed);
        });
        self.finishing.push((participant.to_string(), task));
    }

    /// Finish everyone and wait for their engines.
    async fn finish_all(&mut self, end: &'static str) {
        let everyone: Vec<String> = self.speakers.keys().cloned().collect();
        for participant in everyone {
            self.finish(&participant, end);
        }
        for (_, task) in self.finishing.drain(..) {
            let _ = task.await;
        }
    }

    /// The message for what an engine sent; `Err` for a failure that ends the
    /// connection.
    fn reply(&mut self, out: Out) -> Result<Option<String>, (ErrorCode, String)> {
        match out {
            Out::Event(published) => Ok(self.caption(&published)),
            Out::Fail(code, message) => Err((code, message)),
            Out::Text(_) | Out::Language { .. } | Out::TurnEnded { .. } | Out::Close(..) => {
                Ok(None)
            }
        }
    }

    fn caption(&mut self, published: &Published) -> Option<String> {
        let event = &published.event;
        let text = self.hub.converters.get(self.script).caption(event.text());
        let participant = published.speaker().unwrap_or_default().to_string();
        let (seed, room) = (self.seed.to_le_bytes(), self.room.as_bytes());
        let minted = &mut self.minted;
        let id = self.utterances.entry(participant.clone()).or_default().id(event, || {
            *minted += 1;
            uuid(&[&seed, room, participant.as_bytes(), &minted.to_le_bytes()])
        });
        if text.trim().is_empty() {
            return None;
        }
        let (kind, variance) = if event.is_final() {
            ("final", FINAL_VARIANCE)
        } else {
            ("interim", INTERIM_VARIANCE)
        };
        let message = json!({
            "id": id,
            "participant_id": participant,
            "ts": self.epoch_base_ms + event.span().0,
            "text": text,
            "type": kind,
            "variance": variance,
        });
        Some(message.to_string())
    }
}

/// An error in the reply's shape (see the module docs).
fn error_message(code: ErrorCode, message: &str, participant: &str) -> String {
    json!({
        "type": "error",
        "code": code.name(),
        "message": message,
        "id": "00000000-0000-0000-0000-000000000000",
        "participant_id": participant,
        "ts": epoch_ms(),
        "text": "",
        "variance": 0.0,
    })
    .to_string()
}

/// Serve one Jigasi connection for meeting `room`.
pub(crate) async fn run(mut ws: Ws, hub: Arc<Hub>, room: String, script: Script, client: Client) {
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let mut meeting = Meeting {
        hub: Arc::clone(&hub),
        room,
        script,
        client,
        out,
        speakers: HashMap::new(),
        utterances: HashMap::new(),
        refused: HashSet::new(),
        finishing: Vec::new(),
        epoch_base_ms: epoch_ms(),
        seed: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
        minted: 0,
        started: Instant::now(),
    };
    let idle = hub.config.limits.idle();
    let mut shutdown = hub.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_frame = Instant::now();
    let (reason, failure): End = loop {
        tokio::select! {
            biased;
            Some(o) = out_rx.recv() => match meeting.reply(o) {
                Ok(Some(message)) => {
                    if ws.send(Message::text(message)).await.is_err() {
                        break ("dropped", None);
                    }
                }
                Ok(None) => {}
                Err(failure) => break (failure.0.name(), Some(failure)),
            },
            _ = signalled(&mut shutdown) => break ("shutdown", None),
            _ = tick.tick() => {
                if last_frame.elapsed() >= idle {
                    let msg = format!("no audio for {} s", idle.as_secs());
                    break ("idle_timeout", Some((ErrorCode::IdleTimeout, msg)));
                }
                meeting.retire_quiet(idle);
            }
            incoming = ws.next() => {
                let message = match incoming {
                    Some(Ok(m)) => m,
                    Some(Err(tungstenite::Error::Capacity(_))) => {
                        let msg = format!("a frame is over the limit of {} bytes", hub.config.limits.max_frame_bytes);
                        break ("frame_too_big", Some((ErrorCode::FrameTooBig, msg)));
                    }
                    None | Some(Err(_)) => break ("dropped", None),
                };
                match message {
                    Message::Binary(bytes) if bytes.as_ref() == END => break ("stop", None),
                    Message::Binary(bytes) => {
                        last_frame = Instant::now();
                        match meeting.frame(&bytes).await {
                            Ok(None) => {}
                            Ok(Some(refusal)) => {
                                if ws.send(Message::text(refusal)).await.is_err() {
                                    break ("dropped", None);
                                }
                            }
                            Err(failure) => break (failure.0.name(), Some(failure)),
                        }
                    }
                    Message::Text(_) => {
                        let msg = "a text frame: send audio as binary frames (a 60-byte participant|language header, then s16le PCM), and one 0x00 byte at the end";
                        break ("text_not_audio", Some((ErrorCode::TextNotAudio, msg.into())));
                    }
                    Message::Close(_) => break ("dropped", None),
                    _ => {}
                }
            }
        }
    };
    // Every participant's last finals, then the error (if any) and the close.
    meeting.finish_all(reason).await;
    // The engines have ended; this drops the last sender, so the queue ends.
    meeting.out = mpsc::unbounded_channel().0;
    while let Ok(Some(o)) = tokio::time::timeout(Duration::from_secs(5), out_rx.recv()).await {
        if let Ok(Some(message)) = meeting.reply(o) {
            if ws.send(Message::text(message)).await.is_err() {
                break;
            }
        }
    }
    let code = match &failure {
        Some((code, message)) => {
            hub.metrics.error(*code);
            let _ = ws.send(Message::text(error_message(*code, message, ""))).await;
            code.close_code()
        }
        None if reason == "shutdown" => close::GOING_AWAY,
        None => close::NORMAL,
    };
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
    let _ = ws.close(Some(frame)).await;
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while ws.next().await.is_some() {} })
            .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: &[u8], pcm: &[u8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.resize(HEADER_BYTES, 0);
        bytes.extend_from_slice(pcm);
        bytes
    }

    #[test]
    fn frames_are_a_header_and_whole_samples() {
        let bytes = frame(b"amy|en-US", &[1, 0, 2, 0]);
        let parsed = parse_frame(&bytes).unwrap();
        assert_eq!(parsed, Frame { participant: "amy", language: "en-US", pcm: &[1, 0, 2, 0] });
        // Space padding, a bar in the name, no language, no audio.
        let mut spaced = b"a|b|zh".to_vec();
        spaced.resize(HEADER_BYTES, b' ');
        let parsed = parse_frame(&spaced).unwrap();
        assert_eq!((parsed.participant, parsed.language, parsed.pcm.len()), ("a|b", "zh", 0));
        assert_eq!(parse_frame(&frame(b"amy|", &[])).unwrap().language, "");
        // The 61-byte frame: half a sample.
        let e = parse_frame(&frame(b"amy|en", &[7])).unwrap_err();
        assert!(e.contains("16-bit"), "{e}");
        assert!(parse_frame(&[0; 59]).unwrap_err().contains("shorter"));
        assert!(parse_frame(&frame(b"amy en", &[])).unwrap_err().contains("participant|language"));
        assert!(parse_frame(&frame(&[0xff, b'|'], &[])).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn jitsi_paths() {
        assert_eq!(meeting_of("/streaming-whisper/ws/abc-1"), Some("abc-1"));
        assert_eq!(meeting_of("/streaming-whisper/ws/"), None);
        assert_eq!(meeting_of("/streaming-whisper/ws/a/b"), None);
        assert_eq!(meeting_of("/v1/ingest/a"), None);
    }

    fn partial(revision: u32, start_ms: u64, end_ms: u64) -> CaptionEvent {
        let text = String::from("words");
        let (emitted_ms, lag_ms, segment) = (0, 0, 1);
        CaptionEvent::Partial { segment, revision, text, start_ms, end_ms, emitted_ms, lag_ms }
    }

    fn final_(start_ms: u64, end_ms: u64) -> CaptionEvent {
        let text = String::from("words");
        CaptionEvent::Final { segment: 1, text, start_ms, end_ms, emitted_ms: 0, lag_ms: 0 }
    }

    #[test]
    fn an_utterance_keeps_its_id_until_its_final() {
        let mut u = Utterances::default();
        let mut n = 0;
        let mut id = |e: &CaptionEvent| {
            u.id(e, || {
                n += 1;
                format!("u{n}")
            })
        };
        assert_eq!(id(&partial(1, 0, 500)), "u1");
        assert_eq!(id(&partial(2, 0, 900)), "u1");
        assert_eq!(id(&final_(0, 1200)), "u1");
        // The next utterance's interims come before the room releases its final.
        assert_eq!(id(&partial(1, 1300, 1800)), "u2");
        assert_eq!(id(&partial(2, 1300, 2500)), "u2");
        assert_eq!(id(&partial(1, 2600, 3000)), "u3");
        assert_eq!(id(&final_(1300, 2500)), "u2");
        assert_eq!(id(&partial(2, 2600, 3400)), "u3");
        assert_eq!(id(&final_(2600, 3400)), "u3");
        // A final nothing was shown of; an interim the engine dropped (noise) is
        // closed by the next final.
        assert_eq!(id(&final_(3500, 4000)), "u4");
        assert_eq!(id(&partial(1, 4100, 4300)), "u5");
        assert_eq!(id(&partial(1, 4500, 4900)), "u6");
        assert_eq!(id(&final_(4500, 5000)), "u6");
        assert_eq!(id(&partial(1, 5100, 5300)), "u7");
    }

    #[test]
    fn ids_are_uuids() {
        let id = uuid(&[b"seed", b"room", b"amy", &1u64.to_le_bytes()]);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('8'), "version 8: {id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "RFC 9562 variant: {id}");
        assert_ne!(id, uuid(&[b"seed", b"room", b"amy", &2u64.to_le_bytes()]));
    }
}
