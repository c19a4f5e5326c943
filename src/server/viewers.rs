//! Caption viewers: one task per WebSocket, reading the session's broadcast.
//!
//! A viewer first gets `ready`, then the latest finals (the backlog), then live
//! events in its script. A viewer that falls behind the broadcast
//! (`RecvError::Lagged`) gets every final it missed again from the session and
//! skips the stale partials; it never receives a partial older than one already
//! sent, nor the same final twice. A viewer whose socket stalls is dropped after
//! `viewer_write_secs`; the broadcast never waits for anyone, so viewers cannot slow
//! ingest.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::audit::{Client, Event};
use super::protocol::{close, ErrorCode, ErrorMessage};
use super::session::{Published, Session};
use super::{signalled, Shared};
use crate::text::Script;

type Ws = WebSocketStream<super::tls::Conn>;

/// Send an error and a close frame, best effort.
pub(crate) async fn refuse(ws: &mut Ws, shared: &Shared, code: ErrorCode, message: &str) {
    shared.metrics.error(code);
    let _ = ws.send(Message::text(ErrorMessage::new(code, message).to_json())).await;
    let frame = CloseFrame {
        code: CloseCode::from(code.close_code()),
        reason: Utf8Bytes::from(truncate(message)),
    };
    let _ = ws.close(Some(frame)).await;
}

/// Close reasons are limited to 123 bytes.
pub(crate) fn truncate(message: &str) -> String {
    let mut end = message.len().min(120);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

struct ViewerGuard<'a>(&'a Shared, &'a Session, &'a Client);

impl Drop for ViewerGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.viewers.fetch_sub(1, Relaxed);
        self.1.viewers.fetch_sub(1, Relaxed);
        self.0.audit(self.2.entry(Event::ViewerLeft).session(&self.1.id));
    }
}

/// Serve one viewer until it leaves or the server shuts down.
pub(crate) async fn run(
    mut ws: Ws,
    shared: Arc<Shared>,
    session: Arc<Session>,
    script: Script,
    client: Client,
) {
    let limits = &shared.config.limits;
    if session.viewers.fetch_add(1, Relaxed) >= limits.max_viewers_per_session {
        session.viewers.fetch_sub(1, Relaxed);
        let msg = format!(
            "session {} already has {} viewers",
            session.id, limits.max_viewers_per_session
        );
        let code = ErrorCode::TooManyViewers;
        shared.audit(client.entry(Event::LimitHit).session(&session.id).detail(code.name()));
        refuse(&mut ws, &shared, code, &msg).await;
        return;
    }
    shared.metrics.viewers.fetch_add(1, Relaxed);
    shared.audit(client.entry(Event::ViewerJoined).session(&session.id).detail(script.name()));
    let _guard = ViewerGuard(&shared, &session, &client);
    let write_timeout = Duration::from_secs(limits.viewer_write_secs.max(1));
    // Viewers stay until the ingest sessions have finalized at shutdown.
    let mut shutdown = shared.viewers_off.clone();

    let (mut rx, backlog) = session.subscribe(limits.viewer_backlog);
    let ready = serde_json::json!({
        "type": "ready",
        "session": session.id,
        "script": script.name(),
        "backlog": backlog.len(),
    });
    let (mut sink, mut stream) = ws.split();
    let mut last_final = 0u64;
    let mut last_partial = (0u64, 0u32);

    // Sends one event unless it is stale; false when the viewer is gone.
    macro_rules! send {
        ($p:expr) => {{
            let p: &Published = $p;
            let fresh = if p.event.is_final() {
                p.segment() > last_final
            } else {
                p.segment() > last_final && p.version() > last_partial
            };
            if fresh {
                if p.event.is_final() {
                    last_final = p.segment();
                } else {
                    last_partial = p.version();
                }
                let text = p.json(script, &shared.converters);
                match tokio::time::timeout(write_timeout, sink.send(Message::Text(text))).await {
                    Ok(Ok(())) => true,
                    _ => false,
                }
            } else {
                true
            }
        }};
    }

    if sink.send(Message::text(ready.to_string())).await.is_err() {
        return;
    }
    for p in &backlog {
        if !send!(p) {
            return;
        }
    }
    loop {
        // Biased: events already published go out before the shutdown close.
        tokio::select! {
            biased;
            incoming = stream.next() => match incoming {
                // Viewers have nothing to say; pings are answered by tungstenite.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            event = rx.recv() => match event {
                Ok(p) => {
                    if !send!(&p) {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    shared.metrics.viewer_lagged.fetch_add(1, Relaxed);
                    for p in session.finals_after(last_final) {
                        if !send!(&p) {
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            },
            _ = signalled(&mut shutdown) => {
                let frame = CloseFrame { code: CloseCode::from(close::GOING_AWAY), reason: "server shutting down".into() };
                let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(frame)))).await;
                return;
            }
        }
    }
}
