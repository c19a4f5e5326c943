//! OpenAI's Realtime API, transcription sessions: `GET /v1/realtime?intent=transcription`,
//! so the OpenAI SDKs' realtime clients (and what is built on them) caption through
//! cantocap with `base_url` pointed here.
//!
//! ```text
//! client                                              server
//!                                                     ◄─ session.created
//! session.update {type: transcription, audio.input…} ─►
//!   (or transcription_session.update, the older API)  ◄─ session.updated (transcription_session.updated)
//! input_audio_buffer.append {audio: base64 PCM16}     ─►
//!                                                     ◄─ input_audio_buffer.speech_started   (server VAD)
//!                                                     ◄─ conversation.item.input_audio_transcription.delta …
//!                                                     ◄─ input_audio_buffer.speech_stopped, .committed
//!                                                     ◄─ conversation.item.input_audio_transcription.completed
//! input_audio_buffer.commit / .clear                  ─►  (turn_detection: null: the client ends turns)
//! ```
//!
//! One connection is one participant (`?speaker=`, else unnamed) of the room
//! `?session=`, else of a room named by the session id it is given: viewers,
//! journals, transcripts, redaction, audit and webhooks are the native protocol's.
//!
//! Turns. With server VAD (the default, `turn_detection: {"type": "server_vad"}`)
//! each final of cantocap's streaming engine is an item: `speech_started` when its
//! first partial appears, `speech_stopped`, `committed` and `completed` when it is
//! final. With `turn_detection: null` an item is everything between two
//! `input_audio_buffer.commit`s: the commit makes the engine decode and commit all it
//! has heard (it ends the utterance), and `completed` carries every final of the
//! turn. Partials become `delta` events while each extends the text already sent;
//! when the engine revises earlier words, deltas pause and `completed` has the
//! revised text, which is always the one to keep.
//!
//! Errors have OpenAI's shape (`{"type":"error","error":{"type","code","message",
//! "param","event_id"}}`). A bad event (unknown `type`, invalid JSON, base64
//! garbage, an oversize chunk) is answered and the session goes on; limits that
//! protect the server (pace, message rate, session length) and engine failures end
//! it with a close code.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::ingest::Pace;
use super::ws::Ws;
use crate::asr::CaptionEvent;
use crate::server::audit::{Client, Event};
use crate::server::engine::{Input, Out};
use crate::server::feed::Feed;
use crate::server::protocol::{self, close, ErrorCode, SampleFormat, Start};
use crate::server::{signalled, Hub};
use crate::text::Script;

/// The path, for the guard and the route table.
pub(super) const PATH: &str = "/v1/realtime";

/// OpenAI refuses a commit of less audio than this.
const MIN_COMMIT_MS: u64 = 100;

/// The audio the client says it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// PCM16 little-endian mono at the rate (`audio/pcm`, `pcm16`).
    Pcm16(u32),
    /// G.711 μ-law, 8 kHz (`audio/pcmu`, `g711_ulaw`).
    Ulaw,
    /// G.711 A-law, 8 kHz (`audio/pcma`, `g711_alaw`).
    Alaw,
}

impl Encoding {
    fn rate(self) -> u32 {
        match self {
            Self::Pcm16(rate) => rate,
            Self::Ulaw | Self::Alaw => 8000,
        }
    }

    /// The GA API's `audio.input.format`.
    fn format(self) -> Value {
        match self {
            Self::Pcm16(rate) => json!({"type": "audio/pcm", "rate": rate}),
            Self::Ulaw => json!({"type": "audio/pcmu"}),
            Self::Alaw => json!({"type": "audio/pcma"}),
        }
    }

    /// The older API's `input_audio_format`.
    fn legacy_name(self) -> &'static str {
        match self {
            Self::Pcm16(_) => "pcm16",
            Self::Ulaw => "g711_ulaw",
            Self::Alaw => "g711_alaw",
        }
    }

    /// The chunk as s16le bytes (G.711 expanded).
    fn to_s16le(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Self::Pcm16(_) => bytes,
            Self::Ulaw => bytes.iter().flat_map(|&b| ulaw(b).to_le_bytes()).collect(),
            Self::Alaw => bytes.iter().flat_map(|&b| alaw(b).to_le_bytes()).collect(),
        }
    }
}

/// G.711 μ-law to linear PCM16.
fn ulaw(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 7;
    let magnitude = ((i32::from(b & 0x0f) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    (if b & 0x80 != 0 { -sample } else { sample }) as i16
}

/// G.711 A-law to linear PCM16.
fn alaw(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let exponent = (b >> 4) & 7;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if b & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// The session as the client configured it.
#[derive(Debug, Clone)]
struct Config {
    id: String,
    encoding: Encoding,
    model: String,
    language: Option<String>,
    prompt: String,
    /// `None`: the client commits turns itself.
    turn_detection: Option<Value>,
    noise_reduction: Value,
    include: Value,
}

impl Config {
    fn new(id: String) -> Self {
        Self {
            id,
            encoding: Encoding::Pcm16(24_000),
            model: "whisper-1".into(),
            language: None,
            prompt: String::new(),
            turn_detection: Some(json!({
                "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            })),
            noise_reduction: Value::Null,
            include: Value::Null,
        }
    }

    fn transcription(&self) -> Value {
        json!({"model": self.model, "language": self.language, "prompt": self.prompt})
    }

    /// The session object of the GA API.
    fn session(&self) -> Value {
        json!({
            "type": "transcription",
            "id": self.id,
            "object": "realtime.transcription_session",
            "audio": {"input": {
                "format": self.encoding.format(),
                "transcription": self.transcription(),
                "turn_detection": self.turn_detection,
                "noise_reduction": self.noise_reduction,
            }},
            "include": self.include,
        })
    }

    /// The session object of the older `transcription_session.*` API.
    fn legacy_session(&self) -> Value {
        json!({
            "id": self.id,
            "object": "realtime.transcription_session",
            "input_audio_format": self.encoding.legacy_name(),
            "input_audio_transcription": self.transcription(),
            "turn_detection": self.turn_detection,
            "input_audio_noise_reduction": self.noise_reduction,
            "include": self.include,
        })
    }

    /// Apply a `session.update`'s session (GA shape, or the older one when
    /// `legacy`); an error names the offending parameter. Audio format and
    /// language cannot change once audio has started (`started`).
    fn update(&mut self, session: &Value, legacy: bool, started: bool) -> Result<(), BadEvent> {
        let mut next = self.clone();
        if legacy {
            if let Some(format) = session.get("input_audio_format") {
                next.encoding = match format.as_str() {
                    Some("pcm16") => Encoding::Pcm16(24_000),
                    Some("g711_ulaw") => Encoding::Ulaw,
                    Some("g711_alaw") => Encoding::Alaw,
                    _ => {
                        return Err(BadEvent::value(
                            "session.input_audio_format",
                            "input_audio_format must be pcm16, g711_ulaw or g711_alaw",
                        ))
                    }
                };
            }
            if let Some(t) = session.get("input_audio_transcription") {
                next.transcription_from(t, "session.input_audio_transcription")?;
            }
            if let Some(t) = session.get("turn_detection") {
                next.turn_detection_from(t, "session.turn_detection")?;
            }
            if let Some(n) = session.get("input_audio_noise_reduction") {
                next.noise_reduction = n.clone();
            }
        } else {
            match session.get("type").and_then(Value::as_str) {
                None | Some("transcription") => {}
                Some(other) => {
                    return Err(BadEvent::value(
                        "session.type",
                        &format!("session type {other:?} is not supported: cantocap serves transcription sessions (connect with ?intent=transcription)"),
                    ))
                }
            }
            let input = &session["audio"]["input"];
            if let Some(format) = input.get("format") {
                next.encoding = format_of(format)?;
            }
            if let Some(t) = input.get("transcription") {
                next.transcription_from(t, "session.audio.input.transcription")?;
            }
            if let Some(t) = input.get("turn_detection") {
                next.turn_detection_from(t, "session.audio.input.turn_detection")?;
            }
            if let Some(n) = input.get("noise_reduction") {
                next.noise_reduction = n.clone();
            }
        }
        if let Some(include) = session.get("include") {
            next.include = include.clone();
        }
        if started && (next.encoding != self.encoding || next.language != self.language) {
            return Err(BadEvent::value(
                "session",
                "the audio format and the language cannot change once audio has been sent; open a new session",
            ));
        }
        *self = next;
        Ok(())
    }

    fn transcription_from(&mut self, t: &Value, param: &str) -> Result<(), BadEvent> {
        if t.is_null() {
            return Ok(());
        }
        if let Some(model) = t.get("model").and_then(Value::as_str) {
            self.model = model.to_string();
        }
        match t.get("language") {
            None | Some(Value::Null) => {}
            Some(Value::String(l)) if l.is_empty() => self.language = None,
            Some(Value::String(l)) => self.language = Some(l.clone()),
            Some(_) => {
                return Err(BadEvent::value(
                    &format!("{param}.language"),
                    "language must be a string",
                ))
            }
        }
        if let Some(prompt) = t.get("prompt").and_then(Value::as_str) {
            self.prompt = prompt.to_string();
        }
        Ok(())
    }

    fn turn_detection_from(&mut self, t: &Value, param: &str) -> Result<(), BadEvent> {
        self.turn_detection = match t.get("type").and_then(Value::as_str) {
            _ if t.is_null() => None,
            Some("server_vad" | "semantic_vad") => Some(t.clone()),
            _ => {
                return Err(BadEvent::value(
                    &format!("{param}.type"),
                    "turn_detection must be null, server_vad or semantic_vad",
                ))
            }
        };
        Ok(())
    }
}

/// The GA API's `audio.input.format`.
fn format_of(format: &Value) -> Result<Encoding, BadEvent> {
    let param = "session.audio.input.format";
    match format.get("type").and_then(Value::as_str) {
        Some("audio/pcm") => {
            let rate = format.get("rate").map_or(Some(24_000), Value::as_u64);
            match rate {
                Some(rate @ 8000..=48_000) => Ok(Encoding::Pcm16(rate as u32)),
                _ => Err(BadEvent::value(
                    &format!("{param}.rate"),
                    "rate must be a sample rate from 8000 to 48000 (24000 by default)",
                )),
            }
        }
        Some("audio/pcmu") => Ok(Encoding::Ulaw),
        Some("audio/pcma") => Ok(Encoding::Alaw),
        _ => Err(BadEvent::value(
            &format!("{param}.type"),
            "format type must be audio/pcm, audio/pcmu or audio/pcma",
        )),
    }
}

/// An error event for a bad client event; the session goes on.
#[derive(Debug)]
struct BadEvent {
    code: &'static str,
    message: String,
    param: Option<String>,
}

impl BadEvent {
    fn value(param: &str, message: &str) -> Self {
        Self { code: "invalid_value", message: message.into(), param: Some(param.into()) }
    }

    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), param: None }
    }
}

/// One transcription item: one turn of the speaker.
#[derive(Debug)]
struct Item {
    id: String,
    /// Its finals, joined.
    text: String,
    /// Text already sent as deltas (its finals and then the partial).
    sent: String,
    /// Sent `speech_started` (server VAD).
    started: bool,
    /// The engine's count of finals that ends this turn, once it has said
    /// (`Out::TurnEnded`); until then every final is this turn's.
    last_final: Option<u64>,
    audio_start_ms: u64,
}

/// Where the connection is in its turns.
struct Turns {
    /// The item audio is going into now.
    open: Option<Item>,
    /// Items the client committed whose transcription is not complete yet.
    committed: VecDeque<Item>,
    /// Id of the last item committed (for `previous_item_id`).
    previous: Option<String>,
    /// Finals received from the engine.
    finals: u64,
    next_item: u64,
    prefix: String,
    /// Audio since the last commit, ms.
    uncommitted_ms: u64,
}

/// Text of several finals, with a space only between Latin words (as the
/// transcript file joins them).
fn join(into: &mut String, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let latin_end =
        into.chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || ".,!?;:".contains(c));
    let latin_start = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !into.is_empty() && latin_end && latin_start {
        into.push(' ');
    }
    into.push_str(text);
}

/// The messages to send.
type Events = Vec<Value>;

impl Turns {
    fn new(prefix: String) -> Self {
        Self {
            open: None,
            committed: VecDeque::new(),
            previous: None,
            finals: 0,
            next_item: 0,
            prefix,
            uncommitted_ms: 0,
        }
    }

    fn new_item(&mut self, audio_start_ms: u64) -> Item {
        self.next_item += 1;
        Item {
            id: format!("item_{}_{:03}", self.prefix, self.next_item),
            text: String::new(),
            sent: String::new(),
            started: false,
            last_final: None,
            audio_start_ms,
        }
    }

    /// A partial or final of this speaker, text in the client's script; `vad`:
    /// the server ends turns. `start_ms`, `end_ms`: the event's span in this
    /// connection's audio.
    fn event(&mut self, event: &CaptionEvent, text: &str, vad: bool, span: (u64, u64)) -> Events {
        let mut out = Events::new();
        if event.is_final() {
            self.finals += 1;
            // A turn the client committed takes the finals up to its end.
            let finals = self.finals;
            if let Some(item) =
                self.committed.iter_mut().find(|i| i.last_final.is_none_or(|last| finals <= last))
            {
                join(&mut item.text, text);
                let full = item.text.clone();
                delta(item, &full, &mut out);
                self.complete_due(&mut out);
                return out;
            }
        } else if let Some(item) = self.committed.iter_mut().find(|i| i.last_final.is_none()) {
            // The engine has not reached the end of that turn yet: its partials
            // are still that turn's (partials are never held back by the room).
            let mut full = item.text.clone();
            join(&mut full, text);
            delta(item, &full, &mut out);
            return out;
        }
        let item = match &mut self.open {
            Some(item) => item,
            None => {
                let item = self.new_item(span.0);
                self.open.insert(item)
            }
        };
        if vad && !item.started {
            item.started = true;
            out.push(json!({
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": item.audio_start_ms, "item_id": item.id,
            }));
        }
        if event.is_final() {
            join(&mut item.text, text);
            let full = item.text.clone();
            delta(item, &full, &mut out);
            if vad {
                let item = self.open.take().expect("open");
                out.push(json!({
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": span.1, "item_id": item.id,
                }));
                self.uncommitted_ms = 0;
                out.push(self.committed_event(&item.id));
                out.push(completed(&item));
            }
        } else {
            let mut full = item.text.clone();
            join(&mut full, text);
            delta(item, &full, &mut out);
        }
        out
    }

    fn committed_event(&mut self, item_id: &str) -> Value {
        let previous = self.previous.replace(item_id.to_string());
        json!({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
    }

    /// The client committed the buffer: the open turn (or a new, empty one) waits
    /// for the engine's end of turn.
    fn commit(&mut self, at_ms: u64) -> Result<Events, BadEvent> {
        if self.uncommitted_ms < MIN_COMMIT_MS && self.open.is_none() {
            return Err(BadEvent::new(
                "input_audio_buffer_commit_empty",
                format!(
                    "Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms of audio, but buffer only has {}ms of audio.",
                    self.uncommitted_ms
                ),
            ));
        }
        self.uncommitted_ms = 0;
        let item = match self.open.take() {
            Some(item) => item,
            None => self.new_item(at_ms),
        };
        let event = self.committed_event(&item.id);
        self.committed.push_back(item);
        Ok(vec![event])
    }

    /// The engine ended a committed turn after its `finals`-th final.
    fn turn_ended(&mut self, finals: u64) -> Events {
        if let Some(item) = self.committed.iter_mut().find(|i| i.last_final.is_none()) {
            item.last_final = Some(finals);
        }
        let mut out = Events::new();
        self.complete_due(&mut out);
        out
    }

    /// `completed` for the committed turns, in order, whose finals are all in.
    fn complete_due(&mut self, out: &mut Events) {
        while self.committed.front().is_some_and(|i| i.last_final.is_some_and(|l| self.finals >= l))
        {
            let item = self.committed.pop_front().expect("front");
            out.push(completed(&item));
        }
    }

    /// The client cleared the buffer: the open turn is dropped.
    fn clear(&mut self) {
        self.open = None;
        self.uncommitted_ms = 0;
    }
}

/// A delta for what `full` adds to what the item has sent, when it extends it.
fn delta(item: &mut Item, full: &str, out: &mut Events) {
    if let Some(rest) = full.strip_prefix(item.sent.as_str()) {
        if !rest.is_empty() {
            out.push(json!({
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item.id, "content_index": 0, "delta": rest,
            }));
            item.sent = full.to_string();
        }
    }
}

fn completed(item: &Item) -> Value {
    json!({
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item.id, "content_index": 0, "transcript": item.text,
        "usage": {"type": "duration", "seconds": 0},
    })
}

/// A random-enough id suffix (session and item ids; not a secret).
fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:016x}", RandomState::new().hash_one(nanos))
}

/// One realtime connection: the socket, the session, its event ids.
struct Conn {
    ws: Ws,
    config: Config,
    /// The names the client used: `transcription_session.*` after its first
    /// `transcription_session.update`.
    legacy: bool,
    next_event: u64,
    /// The close frame was sent.
    closed: bool,
}

impl Conn {
    async fn send(&mut self, mut event: Value) -> bool {
        self.next_event += 1;
        event["event_id"] = json!(format!("event_{}_{}", &self.config.id[5..], self.next_event));
        self.ws.send(Message::text(event.to_string())).await.is_ok()
    }

    async fn send_all(&mut self, events: Events) -> bool {
        for event in events {
            if !self.send(event).await {
                return false;
            }
        }
        true
    }

    async fn error(&mut self, bad: BadEvent, client_event: Option<&str>) -> bool {
        self.send(json!({"type": "error", "error": {
            "type": "invalid_request_error", "code": bad.code, "message": bad.message,
            "param": bad.param, "event_id": client_event,
        }}))
        .await
    }

    /// A server-side failure, then a close with its code.
    async fn fail(&mut self, hub: &Hub, code: ErrorCode, message: &str) {
        hub.metrics.error(code);
        let kind =
            if code == ErrorCode::Internal { "server_error" } else { "invalid_request_error" };
        let _ = self
            .send(json!({"type": "error", "error": {
                "type": kind, "code": code.name(), "message": message, "param": null, "event_id": null,
            }}))
            .await;
        self.close(code.close_code(), code.name()).await;
    }

    async fn close(&mut self, code: u16, reason: &str) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.ws.next().await.is_some() {}
        })
        .await;
    }

    async fn session_answer(&mut self) -> bool {
        let (name, session) = if self.legacy {
            ("transcription_session.updated", self.config.legacy_session())
        } else {
            ("session.updated", self.config.session())
        };
        self.send(json!({"type": name, "session": session})).await
    }
}

/// What a client event asks of the audio side.
enum Request {
    /// Nothing (answered already, or an error was sent).
    None,
    Append(Vec<u8>),
    Commit,
    Clear,
}

/// Read one client event: answer the session ones; the audio ones are returned.
/// `false` in the second place: the client is gone.
async fn client_event(conn: &mut Conn, text: &str, started: bool) -> (Request, bool) {
    let event: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let bad = BadEvent::new(
                "invalid_json",
                "every client event must be a JSON object with a \"type\"",
            );
            return (Request::None, conn.error(bad, None).await);
        }
    };
    let event_id = event.get("event_id").and_then(Value::as_str).map(str::to_string);
    let event_id = event_id.as_deref();
    let kind = event.get("type").and_then(Value::as_str).unwrap_or_default();
    let bad = match kind {
        "session.update" | "transcription_session.update" => {
            let legacy = kind == "transcription_session.update";
            let session = event.get("session").cloned().unwrap_or(Value::Null);
            match conn.config.update(&session, legacy, started) {
                Ok(()) => {
                    conn.legacy = legacy;
                    return (Request::None, conn.session_answer().await);
                }
                Err(bad) => bad,
            }
        }
        "input_audio_buffer.append" => {
            match event.get("audio").and_then(Value::as_str).map(|a| {
                base64::engine::general_purpose::STANDARD.decode(a.trim().as_bytes())
            }) {
                Some(Ok(bytes)) => return (Request::Append(bytes), true),
                _ => BadEvent::value(
                    "audio",
                    "Invalid 'audio': expected base64-encoded audio in the session's input format",
                ),
            }
        }
        "input_audio_buffer.commit" => return (Request::Commit, true),
        "input_audio_buffer.clear" => return (Request::Clear, true),
        "" => BadEvent::value("type", "every client event needs a \"type\""),
        "response.create" | "response.cancel" | "conversation.item.create"
        | "conversation.item.delete" | "conversation.item.truncate"
        | "conversation.item.retrieve" | "output_audio_buffer.clear" => BadEvent::value(
            "type",
            &format!("{kind} is not available in a transcription session"),
        ),
        other => BadEvent::value(
            "type",
            &format!("Invalid value: {other:?}. Supported values are: 'session.update', 'transcription_session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit' and 'input_audio_buffer.clear'."),
        ),
    };
    (Request::None, conn.error(bad, event_id).await)
}

/// Serve one realtime connection. `query`: the upgrade request's (`session`,
/// `speaker`, `script`), checked by [`check_query`].
pub(crate) async fn run(ws: Ws, hub: Arc<Hub>, query: HashMap<String, String>, client: Client) {
    let suffix = random_suffix();
    let config = Config::new(format!("sess_{suffix}"));
    let mut conn = Conn { ws, config, legacy: false, next_event: 0, closed: false };
    let room = query.get("session").cloned().unwrap_or_else(|| conn.config.id.clone());
    let speaker = query.get("speaker").cloned();
    let script = query.get("script").and_then(|s| s.parse::<Script>().ok()).unwrap_or(Script::Hk);
    let created = json!({"type": "session.created", "session": conn.config.session()});
    if !conn.send(created).await {
        return;
    }
    let limits = &hub.config.limits;
    let mut shutdown = hub.shutdown.clone();
    let mut turns = Turns::new(suffix);

    // Until the first audio: the session may be configured.
    let first = loop {
        let message = tokio::select! {
            _ = signalled(&mut shutdown) => {
                return conn.close(close::GOING_AWAY, "shutdown").await;
            }
            m = tokio::time::timeout(limits.idle(), conn.ws.next()) => m,
        };
        let text = match message {
            Err(_) => return conn.fail(&hub, ErrorCode::IdleTimeout, "no audio in time").await,
            Ok(None | Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Binary(_)))) => {
                if !conn.error(binary_frame(), None).await {
                    return;
                }
                continue;
            }
            Ok(Some(Ok(_))) => continue,
        };
        match client_event(&mut conn, &text, false).await {
            (_, false) => return,
            (Request::Append(bytes), _) if !bytes.is_empty() => break bytes,
            (Request::Commit, _) => {
                let bad = turns.commit(0).expect_err("nothing appended");
                if !conn.error(bad, None).await {
                    return;
                }
            }
            (Request::Clear, _) => {
                let cleared = conn.send(json!({"type": "input_audio_buffer.cleared"})).await;
                if !cleared {
                    return;
                }
            }
            _ => {}
        }
    };

    let start = Start {
        sample_rate: conn.config.encoding.rate(),
        channels: 1,
        format: SampleFormat::S16le,
        language: conn.config.language.clone(),
        speaker: speaker.clone(),
        script: Some(script),
    };
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let feed = match hub.join(&room, &start, out.clone()).await {
        Ok(feed) => feed,
        Err((code, msg)) => {
            if code == ErrorCode::TooManySessions {
                hub.audit(client.entry(Event::LimitHit).session(&room).detail("too_many_sessions"));
            }
            return conn.fail(&hub, code, &msg).await;
        }
    };
    hub.audit(client.entry(Event::SessionOpened).session(&room).detail("openai_realtime"));
    let offset_ms = feed.continuation.time_offset_ms;
    let audited = Arc::clone(&feed.session);
    let mut pace = Pace::new(limits, &start);
    let mut pending = Some(first);
    let mut audio_ms: u64 = 0;
    let end = loop {
        if let Some(bytes) = pending.take() {
            match append(&mut conn, &hub, &mut pace, &feed, bytes).await {
                Appended::Ms(ms) => {
                    audio_ms += ms;
                    turns.uncommitted_ms += ms;
                }
                Appended::Refused(true) => {}
                Appended::Refused(false) => {
                    break "dropped";
                }
                Appended::Fatal(code) => {
                    break code.name();
                }
            }
        }
        tokio::select! {
            biased;
            Some(o) = out_rx.recv() => {
                if !engine_out(&mut conn, &hub, &mut turns, o, script, offset_ms).await {
                    break "failed";
                }
            }
            _ = signalled(&mut shutdown) => { break "shutdown"; }
            incoming = tokio::time::timeout(limits.idle(), conn.ws.next()) => {
                let text = match incoming {
                    Err(_) => { break "idle_timeout"; }
                    Ok(Some(Err(tungstenite::Error::Capacity(_)))) => {
                        let msg = format!("a message is over the limit of {} bytes", super::routes::ingest_message(&hub));
                        conn.fail(&hub, ErrorCode::FrameTooBig, &msg).await;
                        break "frame_too_big";
                    }
                    Ok(None | Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => { break "dropped"; }
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(Message::Binary(_)))) => {
                        if !conn.error(binary_frame(), None).await { break "dropped"; }
                        continue;
                    }
                    Ok(Some(Ok(_))) => continue,
                };
                if let Err((code, msg)) = pace.message() {
                    conn.fail(&hub, code, &msg).await;
                    break code.name();
                }
                let alive = match client_event(&mut conn, &text, true).await {
                    (_, false) => false,
                    (Request::Append(bytes), _) => { pending = Some(bytes); true }
                    (Request::Commit, _) => match turns.commit(audio_ms) {
                        Ok(events) => {
                            // After the audio before it: the engine reads its input in order.
                            let _ = feed.push(Input::EndTurn);
                            conn.send_all(events).await
                        }
                        Err(bad) => conn.error(bad, None).await,
                    },
                    (Request::Clear, _) => {
                        turns.clear();
                        let _ = feed.push(Input::DiscardTurn);
                        conn.send(json!({"type": "input_audio_buffer.cleared"})).await
                    }
                    (Request::None, _) => true,
                };
                if !alive { break "dropped"; }
            }
        }
    };
    let (received_ms, finals) = feed.finish().await;
    // What the engine said last (the client may be gone: then this fails quietly).
    if end != "dropped" {
        while let Ok(o) = out_rx.try_recv() {
            if !engine_out(&mut conn, &hub, &mut turns, o, script, offset_ms).await {
                break;
            }
        }
        let code = if end == "shutdown" { close::GOING_AWAY } else { close::NORMAL };
        conn.close(code, end).await;
    }
    drop(out);
    let mut closed = client.entry(Event::SessionClosed).session(&room).detail(end);
    closed.audio_s = Some(received_ms as f64 / 1000.0);
    closed.captions = Some(finals);
    closed.redactions = Some(audited.redactions());
    hub.audit(closed);
}

fn binary_frame() -> BadEvent {
    BadEvent::new(
        "invalid_event",
        "binary frames are not part of the Realtime API: send audio as input_audio_buffer.append with base64 audio",
    )
}

/// What became of an append.
enum Appended {
    /// Given to the engine: its ms.
    Ms(u64),
    /// Refused with an error event; false: the client is gone.
    Refused(bool),
    /// A limit that ends the session (closed already).
    Fatal(ErrorCode),
}

/// Check and hand one chunk of audio to the engine.
async fn append(
    conn: &mut Conn,
    hub: &Hub,
    pace: &mut Pace<'_>,
    feed: &Feed,
    bytes: Vec<u8>,
) -> Appended {
    let encoding = conn.config.encoding;
    if matches!(encoding, Encoding::Pcm16(_)) && !bytes.len().is_multiple_of(2) {
        let bad = BadEvent::value("audio", "PCM16 audio must be whole 2-byte samples");
        return Appended::Refused(conn.error(bad, None).await);
    }
    match pace.audio(&encoding.to_s16le(bytes)) {
        Ok((input, ms)) => {
            hub.metrics.audio_ms.fetch_add(ms, Relaxed);
            if !feed.push(input) {
                // The engine stopped; its failure is on the way.
                return Appended::Ms(0);
            }
            Appended::Ms(ms)
        }
        Err((ErrorCode::FrameTooBig | ErrorCode::BadAudio, msg)) => {
            hub.metrics.error(ErrorCode::FrameTooBig);
            Appended::Refused(conn.error(BadEvent::value("audio", &msg), None).await)
        }
        Err((code, msg)) => {
            conn.fail(hub, code, &msg).await;
            Appended::Fatal(code)
        }
    }
}

/// Turn what the engine sent into realtime events; false when the client is gone
/// or the engine failed.
async fn engine_out(
    conn: &mut Conn,
    hub: &Hub,
    turns: &mut Turns,
    out: Out,
    script: Script,
    offset_ms: u64,
) -> bool {
    match out {
        Out::Text(_) | Out::Language { .. } => true,
        Out::Event(p) => {
            let text = hub.converters.get(script).caption(p.event.text());
            let (start, end) = p.event.span();
            let span = (start.saturating_sub(offset_ms), end.saturating_sub(offset_ms));
            let vad = conn.config.turn_detection.is_some();
            let events = turns.event(&p.event, &text, vad, span);
            conn.send_all(events).await
        }
        Out::TurnEnded { finals } => {
            let events = turns.turn_ended(finals);
            conn.send_all(events).await
        }
        Out::Fail(code, message) => {
            conn.fail(hub, code, &message).await;
            false
        }
        Out::Close(..) => false,
    }
}

/// Refuse an upgrade whose query cannot make a transcription session: OpenAI's
/// error body, before the WebSocket opens.
pub(super) fn check_query(query: &HashMap<String, String>) -> Result<(), String> {
    match query.get("intent").map(String::as_str) {
        Some("transcription") => {}
        None if !query.contains_key("model") => {}
        _ => {
            return Err(
                "cantocap serves realtime transcription sessions only: connect to /v1/realtime?intent=transcription".into(),
            )
        }
    }
    if let Some(room) = query.get("session") {
        if !protocol::valid_session_id(room) {
            return Err(
                "session: 1-64 characters of A-Z a-z 0-9 _ - . (not starting with a dot)".into()
            );
        }
    }
    if let Err(e) = protocol::check_speaker(query.get("speaker").map(String::as_str)) {
        return Err(format!("speaker: {e}"));
    }
    if let Some(script) = query.get("script") {
        script.parse::<Script>().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(text: &str, start_ms: u64, end_ms: u64) -> CaptionEvent {
        CaptionEvent::Partial {
            segment: 1,
            revision: 1,
            text: text.into(),
            start_ms,
            end_ms,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    fn final_(text: &str, start_ms: u64, end_ms: u64) -> CaptionEvent {
        CaptionEvent::Final {
            segment: 1,
            text: text.into(),
            start_ms,
            end_ms,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    fn feed(turns: &mut Turns, event: CaptionEvent, vad: bool) -> Vec<Value> {
        let span = event.span();
        let text = event.text().to_string();
        turns.event(&event, &text, vad, span)
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn with_server_vad_each_final_is_an_item() {
        let mut turns = Turns::new("x".into());
        let e = feed(&mut turns, partial("Good", 500, 900), true);
        assert_eq!(
            types(&e),
            [
                "input_audio_buffer.speech_started",
                "conversation.item.input_audio_transcription.delta"
            ]
        );
        assert_eq!(e[0]["audio_start_ms"], 500);
        assert_eq!(e[1]["delta"], "Good");
        let e = feed(&mut turns, partial("Good morning", 500, 1400), true);
        assert_eq!(e[0]["delta"], " morning");
        // A revision of earlier words: no delta.
        assert!(feed(&mut turns, partial("Could morning", 500, 1500), true).is_empty());
        let e = feed(&mut turns, final_("Good morning everyone.", 500, 2000), true);
        assert_eq!(
            types(&e),
            [
                "conversation.item.input_audio_transcription.delta",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.input_audio_transcription.completed"
            ]
        );
        assert_eq!(e[0]["delta"], " everyone.");
        assert_eq!(e[1]["audio_end_ms"], 2000);
        assert_eq!(e[2]["previous_item_id"], Value::Null);
        assert_eq!(e[3]["transcript"], "Good morning everyone.");
        let first = e[3]["item_id"].clone();
        let e = feed(&mut turns, final_("Welcome.", 2500, 3000), true);
        assert_eq!(e[0]["type"], "input_audio_buffer.speech_started");
        let committed = e.iter().find(|e| e["type"] == "input_audio_buffer.committed").unwrap();
        assert_eq!(committed["previous_item_id"], first);
        assert_ne!(committed["item_id"], first);
    }

    #[test]
    fn without_turn_detection_a_turn_is_everything_between_commits() {
        let mut turns = Turns::new("x".into());
        let empty = turns.commit(0).unwrap_err();
        assert_eq!(empty.code, "input_audio_buffer_commit_empty");
        turns.uncommitted_ms = 3000;
        let e = feed(&mut turns, final_("Good morning.", 0, 1000), false);
        assert_eq!(types(&e), ["conversation.item.input_audio_transcription.delta"]);
        feed(&mut turns, partial("Welcome", 1200, 1500), false);
        let e = turns.commit(3000).unwrap();
        assert_eq!(types(&e), ["input_audio_buffer.committed"]);
        let item = e[0]["item_id"].clone();
        // The engine's end of turn: one more final, then TurnEnded after 2 finals.
        let e = feed(&mut turns, final_("Welcome all.", 1200, 2000), false);
        assert_eq!(e[0]["delta"], " all.");
        let e = turns.turn_ended(2);
        assert_eq!(types(&e), ["conversation.item.input_audio_transcription.completed"]);
        assert_eq!(e[0]["item_id"], item);
        assert_eq!(e[0]["transcript"], "Good morning. Welcome all.");
        // A final held back by the room arrives after the end of its turn.
        turns.uncommitted_ms = 500;
        let e = turns.commit(3500).unwrap();
        let second = e[0]["item_id"].clone();
        assert!(turns.turn_ended(3).is_empty());
        let e = feed(&mut turns, final_("Late.", 3000, 3400), false);
        let done = e.iter().find(|e| e["type"].as_str().unwrap().ends_with("completed")).unwrap();
        assert_eq!(done["item_id"], second);
        assert_eq!(done["transcript"], "Late.");
    }

    #[test]
    fn session_updates_in_both_shapes() {
        let mut config = Config::new("sess_1".into());
        let ga = json!({"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 16000},
            "transcription": {"model": "gpt-4o-transcribe", "language": "yue"},
            "turn_detection": null}}});
        config.update(&ga, false, false).unwrap();
        assert_eq!(config.encoding, Encoding::Pcm16(16_000));
        assert_eq!(config.language.as_deref(), Some("yue"));
        assert!(config.turn_detection.is_none());
        assert_eq!(config.session()["audio"]["input"]["format"]["rate"], 16000);
        let legacy = json!({"input_audio_format": "g711_ulaw",
            "turn_detection": {"type": "server_vad"}});
        config.update(&legacy, true, false).unwrap();
        assert_eq!(config.encoding, Encoding::Ulaw);
        assert_eq!(config.legacy_session()["input_audio_format"], "g711_ulaw");
        assert!(config.turn_detection.is_some());
        let bad = config.update(&json!({"input_audio_format": "opus"}), true, false).unwrap_err();
        assert_eq!(bad.param.as_deref(), Some("session.input_audio_format"));
        let rate = json!({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 96000}}}});
        assert!(config.update(&rate, false, false).is_err());
        let conversation = json!({"type": "realtime"});
        assert!(config.update(&conversation, false, false).is_err());
        // Once audio flows, the format stays.
        let pcm = json!({"audio": {"input": {"format": {"type": "audio/pcm"}}}});
        assert!(config.update(&pcm, false, true).is_err());
        assert_eq!(config.encoding, Encoding::Ulaw);
    }

    #[test]
    fn g711_decodes_to_the_standard_values() {
        // ITU-T G.711: μ-law 0xFF and A-law 0xD5 are (near) zero; the extremes.
        assert_eq!(ulaw(0xFF), 0);
        assert_eq!(ulaw(0x00), -32124);
        assert_eq!(ulaw(0x80), 32124);
        assert_eq!(alaw(0xD5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xAA), 32256);
        assert_eq!(alaw(0x2A), -32256);
    }

    #[test]
    fn queries_that_cannot_make_a_transcription_session_are_refused() {
        let q = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()
        };
        assert!(check_query(&q(&[("intent", "transcription")])).is_ok());
        assert!(check_query(&q(&[])).is_ok());
        assert!(check_query(&q(&[("model", "gpt-realtime")])).is_err());
        assert!(check_query(&q(&[("intent", "transcription"), ("session", "../x")])).is_err());
        assert!(check_query(&q(&[("intent", "transcription"), ("script", "klingon")])).is_err());
    }
}
