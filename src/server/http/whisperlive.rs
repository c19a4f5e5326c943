//! The WhisperLive protocol (collabora/WhisperLive), so its clients (the Python
//! client, the browser extensions, integrations built on them) caption through
//! cantocap unchanged: a WebSocket at `/` on the main port, or on every path of
//! `--whisperlive-listen`.
//!
//! ```text
//! client                                         server
//! {"uid","language","task","model","use_vad",…} ─►
//!                                                ◄─ {"uid","message":"SERVER_READY","backend":"faster_whisper"}
//! binary: float32 mono 16 kHz (or int16)        ─►
//!                                                ◄─ {"uid","segments":[{"start":"0.000","end":"1.234","text":…,"completed":true}, …]}
//!                                                ◄─ {"uid","language":"en","language_prob":0.97}   (language: null only)
//! binary: END_OF_AUDIO                          ─►
//!                                                ◄─ the last segments, then a close (1000)
//! ```
//!
//! Each connection is one participant (`speaker` = the client's `uid`) of the room
//! named by `?session=`, else of the room `uid`: viewers, journals, transcripts,
//! redaction, audit and webhooks are the native protocol's. Failures are
//! `{"uid","status":"ERROR","message":…}`, a full server `{"uid","status":"WAIT",
//! "message":minutes}`, the connection time limit `{"uid","message":"DISCONNECT"}`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::ws::Ws;
use crate::asr::CaptionEvent;
use crate::server::audit::{Client, Event};
use crate::server::engine::{Input, Out};
use crate::server::protocol::{self, close, ErrorCode, SampleFormat, Start};
use crate::server::{signalled, Hub};
use crate::text::Script;

/// What `SERVER_READY` says the backend is. WhisperLive's Python client keeps
/// completed segments (and writes its SRT file) only for `faster_whisper`, and
/// cantocap sends completed segments exactly as that backend does.
pub(crate) const BACKEND: &str = "faster_whisper";

/// The end-of-audio marker, a binary frame.
const END_OF_AUDIO: &[u8] = b"END_OF_AUDIO";

/// The client's first message. Unknown options are accepted and ignored, as
/// WhisperLive's server does.
#[derive(Debug, Deserialize)]
struct Options {
    uid: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    task: Option<String>,
    #[serde(default = "ten")]
    send_last_n_segments: usize,
    #[serde(default)]
    audio_format: Option<String>,
    #[serde(default)]
    initial_prompt: Option<String>,
}

fn ten() -> usize {
    10
}

/// Serve one WhisperLive connection. `query` is the upgrade request's query
/// (`session`, `script`).
pub(crate) async fn run(mut ws: Ws, hub: Arc<Hub>, query: HashMap<String, String>, client: Client) {
    let limits = &hub.config.limits;
    let first =
        tokio::time::timeout(Duration::from_secs(limits.start_secs.max(1)), ws.next()).await;
    let options = match first {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<Options>(&text) {
            Ok(options) => options,
            Err(e) => {
                let uid = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["uid"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let msg =
                    format!("the first message must be the options object with a \"uid\": {e}");
                return fail(&mut ws, &hub, &uid, ErrorCode::BadStart, &msg).await;
            }
        },
        Ok(Some(Ok(Message::Binary(_)))) => {
            let msg = "audio before the options; send {\"uid\":…,\"language\":…} first";
            return fail(&mut ws, &hub, "", ErrorCode::BadStart, msg).await;
        }
        Err(_) => return fail(&mut ws, &hub, "", ErrorCode::BadStart, "no options in time").await,
        _ => return,
    };
    let uid = options.uid.clone();
    let refuse = |code, msg: String| (code, msg);
    let checked = (|| {
        if let Err(e) = protocol::check_speaker(Some(&uid)) {
            return Err(refuse(ErrorCode::BadStart, format!("uid: {e}")));
        }
        let room = query.get("session").cloned().unwrap_or_else(|| uid.clone());
        if !protocol::valid_session_id(&room) {
            let msg = "the room (?session=, else the uid) must be 1-64 characters of A-Z a-z 0-9 _ - . (not starting with a dot)";
            return Err(refuse(ErrorCode::BadSessionId, msg.into()));
        }
        if options.task.as_deref().is_some_and(|t| t != "transcribe") {
            let msg = format!(
                "task {:?} is not supported: cantocap transcribes (captions in the spoken language, in the script asked for)",
                options.task.as_deref().unwrap_or_default()
            );
            return Err(refuse(ErrorCode::BadStart, msg));
        }
        let format = match options.audio_format.as_deref() {
            None | Some("float32" | "f32" | "f32le" | "pcm_f32le") => SampleFormat::F32le,
            Some("int16" | "s16" | "s16le" | "pcm_s16le") => SampleFormat::S16le,
            Some(other) => {
                let msg = format!("audio_format {other:?} is not supported (float32, int16)");
                return Err(refuse(ErrorCode::UnsupportedAudio, msg));
            }
        };
        let script = match query.get("script") {
            None => Script::Hk,
            Some(s) => {
                s.parse::<Script>().map_err(|e| refuse(ErrorCode::BadStart, e.to_string()))?
            }
        };
        Ok((room, format, script))
    })();
    let (room, format, script) = match checked {
        Ok(checked) => checked,
        Err((code, msg)) => return fail(&mut ws, &hub, &uid, code, &msg).await,
    };
    if options.initial_prompt.is_some() {
        hub.log(format_args!(
            "whisperlive {uid}: initial_prompt is ignored (cantocap keeps its own)"
        ));
    }
    let start = Start {
        sample_rate: 16_000,
        channels: 1,
        format,
        language: options.language.clone().filter(|l| !l.is_empty()),
        speaker: Some(uid.clone()),
        script: Some(script),
    };
    let (out, mut out_rx) = mpsc::unbounded_channel();
    let feed = match hub.join(&room, &start, out.clone()).await {
        Ok(feed) => feed,
        Err((ErrorCode::TooManySessions, _)) => {
            // WhisperLive's "server full": the client waits and retries.
            hub.audit(client.entry(Event::LimitHit).session(&room).detail("too_many_sessions"));
            let minutes = limits.max_session_secs as f64 / 60.0;
            let wait = json!({"uid": uid, "status": "WAIT", "message": minutes});
            let _ = ws.send(Message::text(wait.to_string())).await;
            let _ = ws.close(Some(close_frame(close::TRY_AGAIN, "server full"))).await;
            return;
        }
        Err((code, msg)) => return fail(&mut ws, &hub, &uid, code, &msg).await,
    };
    hub.audit(client.entry(Event::SessionOpened).session(&room).detail("whisperlive"));
    let ready = json!({"uid": uid, "message": "SERVER_READY", "backend": BACKEND});
    if ws.send(Message::text(ready.to_string())).await.is_err() {
        let _ = feed.finish().await;
        return;
    }

    let mut shown =
        Segments::new(uid.clone(), options.send_last_n_segments, feed.continuation.time_offset_ms);
    let announce_language = options.language.is_none();
    let started = Instant::now();
    let mut shutdown = hub.shutdown.clone();
    let mut frames: u64 = 0;
    let frame_bytes = format.bytes();
    let audited = Arc::clone(&feed.session);
    let mut end = "stop";
    loop {
        tokio::select! {
            biased;
            Some(o) = out_rx.recv() => {
                if !send_out(&mut ws, &hub, &mut shown, o, script, announce_language).await {
                    end = "failed";
                    break;
                }
            }
            _ = signalled(&mut shutdown) => { end = "shutdown"; break; }
            incoming = tokio::time::timeout(limits.idle(), ws.next()) => {
                let message = match incoming {
                    Err(_) => { end = "idle_timeout"; break; }
                    Ok(Some(Err(tungstenite::Error::Capacity(_)))) => {
                        let msg = format!("a frame is over the limit of {} bytes", limits.max_frame_bytes);
                        hub.metrics.error(ErrorCode::FrameTooBig);
                        let _ = send_error(&mut ws, &uid, &msg).await;
                        end = "frame_too_big";
                        break;
                    }
                    Ok(None | Some(Err(_))) => { end = "dropped"; break; }
                    Ok(Some(Ok(m))) => m,
                };
                match message {
                    Message::Binary(bytes) if bytes.as_ref() == END_OF_AUDIO => break,
                    Message::Binary(bytes) => {
                        if bytes.len() > limits.max_frame_bytes || bytes.len() % frame_bytes != 0 {
                            let msg = format!(
                                "a frame of {} bytes is not whole {}-byte samples within the limit of {} bytes",
                                bytes.len(), frame_bytes, limits.max_frame_bytes
                            );
                            hub.metrics.error(ErrorCode::BadAudio);
                            let _ = send_error(&mut ws, &uid, &msg).await;
                            end = "bad_audio";
                            break;
                        }
                        let mut samples = Vec::with_capacity(bytes.len() / frame_bytes);
                        format.decode_into(&bytes, &mut samples);
                        let before = frames * 1000 / 16_000;
                        frames += samples.len() as u64;
                        let end_ms = frames * 1000 / 16_000;
                        hub.metrics.audio_ms.fetch_add(end_ms - before, Relaxed);
                        if end_ms > limits.max_session_secs * 1000 || started.elapsed().as_secs() >= limits.max_session_secs {
                            // WhisperLive's connection time limit.
                            let bye = json!({"uid": uid, "message": "DISCONNECT"});
                            let _ = ws.send(Message::text(bye.to_string())).await;
                            end = "session_too_long";
                            break;
                        }
                        if !feed.push(Input::Audio { samples, end_ms, at: Instant::now() }) {
                            end = "failed";
                            break;
                        }
                    }
                    Message::Text(_) => {
                        let msg = "a text frame where audio was expected: send audio as binary frames, then the binary frame END_OF_AUDIO";
                        hub.metrics.error(ErrorCode::TextNotAudio);
                        let _ = send_error(&mut ws, &uid, msg).await;
                        end = "text_not_audio";
                        break;
                    }
                    Message::Close(_) => { end = "dropped"; break; }
                    _ => {}
                }
            }
        }
    }
    let (audio_ms, finals) = feed.finish().await;
    // The last segments, then the close.
    while let Ok(o) = out_rx.try_recv() {
        if !send_out(&mut ws, &hub, &mut shown, o, script, announce_language).await {
            break;
        }
    }
    drop(out);
    let code = if end == "shutdown" { close::GOING_AWAY } else { close::NORMAL };
    let _ = ws.close(Some(close_frame(code, end))).await;
    let _ =
        tokio::time::timeout(Duration::from_secs(5), async { while ws.next().await.is_some() {} })
            .await;
    let mut closed = client.entry(Event::SessionClosed).session(&room).detail(end);
    closed.audio_s = Some(audio_ms as f64 / 1000.0);
    closed.captions = Some(finals);
    closed.redactions = Some(audited.redactions());
    hub.audit(closed);
}

/// The segments a WhisperLive client is shown: the last `keep` completed ones and
/// the one in progress, in seconds of this connection's audio.
struct Segments {
    uid: String,
    keep: usize,
    completed: VecDeque<Value>,
    current: Option<Value>,
    /// Room time where this connection's audio starts.
    offset_ms: u64,
}

impl Segments {
    fn new(uid: String, keep: usize, offset_ms: u64) -> Self {
        Self { uid, keep: keep.max(1), completed: VecDeque::new(), current: None, offset_ms }
    }

    fn segment(&self, event: &CaptionEvent, text: &str, completed: bool) -> Value {
        let (start, end) = event.span();
        let secs = |ms: u64| format!("{:.3}", ms.saturating_sub(self.offset_ms) as f64 / 1000.0);
        json!({"start": secs(start), "end": secs(end), "text": text, "completed": completed})
    }

    /// Take an event; the message to send.
    fn update(&mut self, event: &CaptionEvent, text: &str) -> String {
        let segment = self.segment(event, text, event.is_final());
        if event.is_final() {
            self.current = None;
            if !text.trim().is_empty() {
                self.completed.push_back(segment);
                while self.completed.len() > self.keep {
                    self.completed.pop_front();
                }
            }
        } else {
            self.current = Some(segment);
        }
        let segments: Vec<&Value> = self.completed.iter().chain(self.current.iter()).collect();
        json!({"uid": self.uid, "segments": segments}).to_string()
    }
}

/// Turn what the engine sent into WhisperLive messages; false when the client is
/// gone or the engine failed.
async fn send_out(
    ws: &mut Ws,
    hub: &Hub,
    shown: &mut Segments,
    out: Out,
    script: Script,
    announce_language: bool,
) -> bool {
    match out {
        // The native `ready`: WhisperLive's SERVER_READY was sent already.
        Out::Text(_) | Out::TurnEnded { .. } => true,
        Out::Language { code, probability } => {
            if !announce_language {
                return true;
            }
            let m = json!({"uid": shown.uid, "language": code, "language_prob": probability});
            ws.send(Message::text(m.to_string())).await.is_ok()
        }
        Out::Event(p) => {
            let text = hub.converters.get(script).caption(p.event.text());
            let message = shown.update(&p.event, &text);
            ws.send(Message::text(message)).await.is_ok()
        }
        Out::Fail(code, message) => {
            hub.metrics.error(code);
            let _ = send_error(ws, &shown.uid, &message).await;
            false
        }
        Out::Close(..) => false,
    }
}

async fn send_error(ws: &mut Ws, uid: &str, message: &str) -> Result<(), tungstenite::Error> {
    let m = json!({"uid": uid, "status": "ERROR", "message": message});
    ws.send(Message::text(m.to_string())).await
}

/// An error in WhisperLive's shape, then a close with the error's code.
async fn fail(ws: &mut Ws, hub: &Hub, uid: &str, code: ErrorCode, message: &str) {
    hub.metrics.error(code);
    let _ = send_error(ws, uid, message).await;
    let _ = ws.close(Some(close_frame(code.close_code(), code.name()))).await;
    let _ =
        tokio::time::timeout(Duration::from_secs(2), async { while ws.next().await.is_some() {} })
            .await;
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame { code: CloseCode::from(code), reason: reason.to_string().into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(final_: bool, start_ms: u64, end_ms: u64, text: &str) -> CaptionEvent {
        if final_ {
            CaptionEvent::Final {
                segment: 1,
                text: text.into(),
                start_ms,
                end_ms,
                emitted_ms: 0,
                lag_ms: 0,
            }
        } else {
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
    }

    #[test]
    fn segments_are_the_last_completed_ones_and_the_one_in_progress() {
        let mut shown = Segments::new("u1".into(), 2, 10_000);
        let m: Value =
            serde_json::from_str(&shown.update(&event(false, 10_000, 11_234, "hel"), "hel"))
                .unwrap();
        assert_eq!(
            m,
            json!({"uid":"u1","segments":[{"start":"0.000","end":"1.234","text":"hel","completed":false}]})
        );
        for (i, word) in ["one", "two", "three"].iter().enumerate() {
            let at = 10_000 + 2000 * i as u64;
            shown.update(&event(true, at, at + 1500, word), word);
        }
        let m: Value =
            serde_json::from_str(&shown.update(&event(false, 17_000, 17_500, "fo"), "fo")).unwrap();
        let texts: Vec<_> =
            m["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["two", "three", "fo"]);
        assert_eq!(m["segments"][0]["start"], "2.000");
        assert_eq!(m["segments"][1]["completed"], true);
        assert_eq!(m["segments"][2]["completed"], false);
    }
}
