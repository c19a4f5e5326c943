//! The ingest socket loop: one WebSocket of audio in, caption events out.
//!
//! The connection's task admits the client (limits, the `start` message, a session
//! slot), reads frames, checks them against the limits, decodes PCM to `f32` and
//! sends it over a channel to the session's engine thread (`server::engine`: one
//! `std::thread` per active stream, as the design says). Events come back from the
//! engine's sinks and go to the client through a writer task.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::viewers::{refuse, truncate};
use crate::server::audit::{Client, Event};
use crate::server::engine::{Input, Out};
use crate::server::feed::Feed;
use crate::server::protocol::{self, close, ClientMessage, ErrorCode, ErrorMessage, Start};
use crate::server::{signalled, Hub};
use crate::text::Script;

use super::ws::Ws;

/// Why the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Stop,
    Shutdown,
    Dropped,
    /// With the error sent, when the connection's task sent it.
    Failed(Option<ErrorCode>),
}

impl End {
    /// The `detail` of the `session_closed` audit record.
    fn detail(self) -> &'static str {
        match self {
            End::Stop => "stop",
            End::Shutdown => "shutdown",
            End::Dropped => "dropped",
            End::Failed(Some(code)) => code.name(),
            End::Failed(None) => "failed",
        }
    }
}

/// Errors that mean a client ran into a limit (audited as `limit_hit`).
fn is_limit(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FrameTooBig
            | ErrorCode::TooFast
            | ErrorCode::RateLimited
            | ErrorCode::SessionTooLong
            | ErrorCode::IdleTimeout
            | ErrorCode::TooManySessions
    )
}

/// Holds one unstarted place until `start` arrives (or the connection ends).
struct UnstartedPlace<'a>(&'a Hub, std::net::IpAddr);

impl<'a> UnstartedPlace<'a> {
    /// A place, unless `max_unstarted_ingests` or `max_unstarted_per_address` is reached.
    fn take(hub: &'a Hub, ip: std::net::IpAddr) -> Option<Self> {
        let limits = &hub.config.limits;
        let mut unstarted = hub.unstarted_ingests.lock().unwrap_or_else(|e| e.into_inner());
        let mine = unstarted.by_address.get(&ip).copied().unwrap_or(0);
        if unstarted.total >= limits.max_unstarted_ingests
            || mine >= limits.max_unstarted_per_address
        {
            return None;
        }
        unstarted.total += 1;
        *unstarted.by_address.entry(ip).or_default() += 1;
        Some(Self(hub, ip))
    }
}

impl Drop for UnstartedPlace<'_> {
    fn drop(&mut self) {
        let mut unstarted = self.0.unstarted_ingests.lock().unwrap_or_else(|e| e.into_inner());
        unstarted.total -= 1;
        if let Some(n) = unstarted.by_address.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                unstarted.by_address.remove(&self.1);
            }
        }
    }
}

/// Serve one ingest connection for session `id`.
pub(crate) async fn run(mut ws: Ws, hub: Arc<Hub>, id: String, client: Client) {
    let Some(start) = admit(&mut ws, &hub, &id, &client).await else { return };
    let (out, out_rx) = mpsc::unbounded_channel();
    let feed = match hub.join(&id, &start, out.clone()).await {
        Ok(feed) => feed,
        Err((code, msg)) => {
            if is_limit(code) {
                hub.audit(client.entry(Event::LimitHit).session(&id).detail(code.name()));
            }
            refuse(&mut ws, &hub, code, &msg).await;
            return;
        }
    };
    hub.audit(client.entry(Event::SessionOpened).session(&id));

    let (sink, mut stream) = ws.split();
    let script = start.script.unwrap_or(Script::Raw);
    let writer = tokio::spawn(write_loop(sink, out_rx, script, Arc::clone(&hub)));
    // For the audit record at the close: redaction counts, never the items.
    let audited = Arc::clone(&feed.session);
    let end = read_loop(&mut stream, &hub, &start, &feed, &out).await;
    // The engine thread sends its last events before this returns.
    let (audio_ms, finals) = feed.finish().await;
    // Let go of the session now: an unused session leaves memory (see `linger`).
    let redactions = audited.redactions();
    drop(audited);
    // A cluster node tells its clients to reconnect (to another node).
    let going = if hub.cluster.is_some() { close::SERVICE_RESTART } else { close::GOING_AWAY };
    let close_code = close(end, going, out, writer, &mut stream).await;
    if let End::Failed(Some(code)) = end {
        if is_limit(code) {
            hub.audit(client.entry(Event::LimitHit).session(&id).detail(code.name()));
        }
    }
    let mut closed = client.entry(Event::SessionClosed).session(&id).detail(end.detail());
    closed.audio_s = Some(audio_ms as f64 / 1000.0);
    closed.captions = Some(finals);
    closed.redactions = Some(redactions);
    closed.close_code = close_code;
    hub.audit(closed);
}

/// Everything before joining the room: shutdown and model checks, the unstarted
/// bound, then the `start` message. `None` after refusing the socket.
async fn admit(ws: &mut Ws, hub: &Arc<Hub>, id: &str, client: &Client) -> Option<Start> {
    let limits = &hub.config.limits;
    if *hub.shutdown.borrow() {
        refuse(ws, hub, ErrorCode::ShuttingDown, "the server is shutting down").await;
        return None;
    }
    if hub.model.get().is_none() {
        let msg = "the model is still loading; try again shortly";
        refuse(ws, hub, ErrorCode::NotReady, msg).await;
        return None;
    }
    let start = match UnstartedPlace::take(hub, client.addr.ip()) {
        None => {
            let code = ErrorCode::TooManySessions;
            hub.audit(client.entry(Event::LimitHit).session(id).detail(code.name()));
            let msg = "too many ingest connections are waiting to start; try again later";
            Err((code, msg.to_string()))
        }
        // The place is held while waiting for `start`, and given back here.
        Some(_place) => read_start(ws, limits.start_secs).await?,
    };
    match start {
        Ok(start) => Some(start),
        Err((code, msg)) => {
            refuse(ws, hub, code, &msg).await;
            None
        }
    }
}

/// The first message, which must be a valid `start`; `None` if the client left.
async fn read_start(ws: &mut Ws, start_secs: u64) -> Option<Result<Start, (ErrorCode, String)>> {
    let first = tokio::time::timeout(Duration::from_secs(start_secs.max(1)), ws.next()).await;
    Some(match first {
        Err(_) => Err((ErrorCode::BadStart, "no start message in time".to_string())),
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Start(start)) => protocol::check_start(&start)
                .map_err(|m| (ErrorCode::UnsupportedAudio, m))
                .and_then(|()| {
                    protocol::check_speaker(start.speaker.as_deref())
                        .map_err(|m| (ErrorCode::BadStart, m))
                })
                .map(|()| start),
            Ok(ClientMessage::Stop) => Err((ErrorCode::BadStart, "stop before start".to_string())),
            Err(e) => Err(bad_start(&text, &e)),
        },
        Ok(Some(Ok(Message::Binary(_)))) => Err((
            ErrorCode::BadStart,
            "audio before the start message; send {\"type\":\"start\",…} first".to_string(),
        )),
        Ok(Some(Ok(_))) => {
            Err((ErrorCode::BadStart, "the first message must be a start message".to_string()))
        }
        Ok(Some(Err(_)) | None) => return None,
    })
}

/// Close the connection as `end` says, let the client's close frame arrive
/// (completing the closing handshake); the close code sent, if any.
async fn close(
    end: End,
    going: u16,
    out: mpsc::UnboundedSender<Out>,
    writer: tokio::task::JoinHandle<Option<u16>>,
    stream: &mut futures_util::stream::SplitStream<Ws>,
) -> Option<u16> {
    match end {
        End::Stop => {
            let _ = out.send(Out::Close(close::NORMAL, "stopped"));
        }
        End::Shutdown => {
            let _ = out.send(Out::Close(going, "server shutting down"));
        }
        End::Dropped | End::Failed(_) => {}
    }
    drop(out);
    if end != End::Dropped {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while stream.next().await.is_some() {}
        })
        .await;
    }
    tokio::time::timeout(Duration::from_secs(5), writer).await.ok().and_then(Result::ok).flatten()
}

/// Why a first message is not a usable `start`: an unsupported sample format is
/// unsupported audio (1003); anything else is a bad start (1008).
fn bad_start(text: &str, error: &serde_json::Error) -> (ErrorCode, String) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    match value["format"].as_str() {
        Some(format) if value["type"] == "start" && !matches!(format, "s16le" | "f32le") => (
            ErrorCode::UnsupportedAudio,
            format!("format {format:?} is not supported (supported: s16le, f32le)"),
        ),
        _ => (ErrorCode::BadStart, format!("the first message must be a start message: {error}")),
    }
}

/// The pace and size checks of one connection's audio (every ingest protocol's).
pub(super) struct Pace<'a> {
    limits: &'a crate::server::Limits,
    start: &'a Start,
    /// Bytes of one sample frame (all channels).
    frame_bytes: usize,
    started: Instant,
    /// Sample frames received.
    frames: u64,
    /// Messages in the current one-second window.
    window: (Instant, u32),
}

impl<'a> Pace<'a> {
    /// The checks for audio in `start`'s rate, channels and format, from now.
    pub(super) fn new(limits: &'a crate::server::Limits, start: &'a Start) -> Self {
        let frame_bytes = start.format.bytes() * usize::from(start.channels);
        let now = Instant::now();
        Self { limits, start, frame_bytes, started: now, frames: 0, window: (now, 0) }
    }

    /// Count a message against `max_messages_per_sec`.
    pub(super) fn message(&mut self) -> Result<(), (ErrorCode, String)> {
        if self.window.0.elapsed() >= Duration::from_secs(1) {
            self.window = (Instant::now(), 0);
        }
        self.window.1 += 1;
        if self.window.1 > self.limits.max_messages_per_sec {
            let n = self.limits.max_messages_per_sec;
            return Err((ErrorCode::RateLimited, format!("more than {n} messages per second")));
        }
        Ok(())
    }

    /// Check and decode a binary frame; the audio for the engine and its ms.
    pub(super) fn audio(&mut self, bytes: &[u8]) -> Result<(Input, u64), (ErrorCode, String)> {
        let (limits, start) = (self.limits, self.start);
        if bytes.len() > limits.max_frame_bytes {
            return Err((
                ErrorCode::FrameTooBig,
                format!(
                    "a frame of {} bytes is over the limit of {} bytes",
                    bytes.len(),
                    limits.max_frame_bytes
                ),
            ));
        }
        if !bytes.len().is_multiple_of(self.frame_bytes) {
            return Err((
                ErrorCode::BadAudio,
                format!(
                    "a frame of {} bytes is not a whole number of {}-byte sample frames ({:?}, {} channel(s))",
                    bytes.len(),
                    self.frame_bytes,
                    start.format,
                    start.channels
                ),
            ));
        }
        let mut samples = Vec::with_capacity(bytes.len() / start.format.bytes());
        start.format.decode_into(bytes, &mut samples);
        let before_ms = self.frames * 1000 / u64::from(start.sample_rate);
        self.frames += (bytes.len() / self.frame_bytes) as u64;
        let end_ms = self.frames * 1000 / u64::from(start.sample_rate);
        let allowed = self.started.elapsed().as_millis() as f64 * limits.max_realtime_factor
            + limits.burst_ms as f64;
        if end_ms as f64 > allowed {
            return Err((
                ErrorCode::TooFast,
                format!(
                    "audio arrives faster than {}x real time; send it at its own pace",
                    limits.max_realtime_factor
                ),
            ));
        }
        if end_ms > limits.max_session_secs * 1000 {
            return Err((
                ErrorCode::SessionTooLong,
                format!(
                    "the connection reached {} s of audio; reconnect to continue the session",
                    limits.max_session_secs
                ),
            ));
        }
        Ok((Input::Audio { samples, end_ms, at: Instant::now() }, end_ms - before_ms))
    }
}

/// Read frames until `stop`, an error, a dropped connection or shutdown.
async fn read_loop(
    stream: &mut futures_util::stream::SplitStream<Ws>,
    hub: &Hub,
    start: &Start,
    feed: &Feed,
    out: &mpsc::UnboundedSender<Out>,
) -> End {
    let limits = &hub.config.limits;
    let mut shutdown = hub.shutdown.clone();
    let mut pace = Pace::new(limits, start);
    let fail = |(code, msg): (ErrorCode, String)| {
        let _ = out.send(Out::Fail(code, msg));
        End::Failed(Some(code))
    };
    loop {
        let next = tokio::select! {
            _ = signalled(&mut shutdown) => return End::Shutdown,
            next = tokio::time::timeout(limits.idle(), stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                let why = format!("nothing received for {} s", limits.idle_secs);
                return fail((ErrorCode::IdleTimeout, why));
            }
            Ok(None) => return End::Dropped,
            Ok(Some(Err(tungstenite::Error::Capacity(_)))) => {
                let why = format!("a frame is over the limit of {} bytes", limits.max_frame_bytes);
                return fail((ErrorCode::FrameTooBig, why));
            }
            Ok(Some(Err(_))) => return End::Dropped,
            Ok(Some(Ok(m))) => m,
        };
        if let Err(e) = pace.message() {
            return fail(e);
        }
        match message {
            Message::Binary(bytes) => match pace.audio(&bytes) {
                Ok((audio, ms)) => {
                    hub.metrics.audio_ms.fetch_add(ms, Relaxed);
                    if !feed.push(audio) {
                        return End::Failed(None); // the engine failed and has said so
                    }
                }
                Err(e) => return fail(e),
            },
            Message::Text(text) => {
                return match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Stop) => End::Stop,
                    Ok(ClientMessage::Start(_)) => fail((ErrorCode::TextNotAudio, "the session has already started".into())),
                    Err(_) => fail((
                        ErrorCode::TextNotAudio,
                        "a text frame where audio was expected: send audio as binary frames, or {\"type\":\"stop\"}".into(),
                    )),
                };
            }
            Message::Close(_) => return End::Dropped,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Returns the close code it sent, if it sent one.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    script: Script,
    hub: Arc<Hub>,
) -> Option<u16> {
    while let Some(out) = rx.recv().await {
        let sent = match out {
            Out::Text(text) => sink.send(Message::text(text)).await,
            Out::Event(p) => sink.send(Message::Text(p.json(script, &hub.converters))).await,
            Out::Fail(code, message) => {
                hub.metrics.error(code);
                let _ = sink.send(Message::text(ErrorMessage::new(code, &message).to_json())).await;
                let frame = CloseFrame {
                    code: CloseCode::from(code.close_code()),
                    reason: Utf8Bytes::from(truncate(&message)),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return Some(code.close_code());
            }
            // The native protocol says the language in `ready`.
            Out::Language { .. } | Out::TurnEnded { .. } => continue,
            Out::Close(code, reason) => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    })))
                    .await;
                return Some(code);
            }
        };
        if sent.is_err() {
            break;
        }
    }
    None
}
