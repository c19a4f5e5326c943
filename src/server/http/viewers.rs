//! Caption viewers: one task per WebSocket, reading the session's broadcast.
//!
//! A viewer first gets `ready`, then the latest finals (the backlog), then live
//! events in its script. A viewer that is behind (events queue up while its socket
//! is slow) gets every queued final but only the newest queued partial; one that
//! falls out of the broadcast (`RecvError::Lagged`) gets every final it missed
//! again from the session and skips the partials; it never receives a partial older
//! than one already sent, nor the same final twice. A viewer whose socket stalls is dropped after
//! `viewer_write_secs`; the broadcast never waits for anyone, so viewers cannot slow
//! ingest.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::server::audit::{Client, Event};
use crate::server::protocol::{close, ErrorCode, ErrorMessage};
use crate::server::session::{Published, Session};
use crate::server::{signalled, Hub};
use crate::text::Script;

use super::ws::Ws;

/// Send an error and a close frame, best effort.
pub(crate) async fn refuse(ws: &mut Ws, hub: &Hub, code: ErrorCode, message: &str) {
    hub.metrics.error(code);
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

struct ViewerGuard<'a>(&'a Hub, &'a Session, &'a Client);

impl Drop for ViewerGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.viewers.fetch_sub(1, Relaxed);
        self.1.viewers.fetch_sub(1, Relaxed);
        self.0.audit(self.2.entry(Event::ViewerLeft).session(&self.1.id));
    }
}

/// Serve a viewer of session `id`: at once if the session exists, else after
/// `{"type":"waiting"}` once its ingest starts (a viewer may arrive before the
/// meeting), within [`Limits::viewer_wait_secs`](crate::server::Limits::viewer_wait_secs).
pub(crate) async fn serve(mut ws: Ws, hub: Arc<Hub>, id: String, script: Script, client: Client) {
    let session = match hub.session(&id, false).await {
        Ok(Some(session)) => session,
        Ok(None) => match wait_for(&mut ws, &hub, &id).await {
            Some(session) => session,
            None => return,
        },
        Err(e) => {
            hub.log(format_args!("session {id}: {e}"));
            let msg = "the session journal cannot be read";
            return refuse(&mut ws, &hub, ErrorCode::Internal, msg).await;
        }
    };
    run(ws, hub, session, script, client).await
}

/// Holds one of the waiting viewers' places.
struct Waiting<'a>(&'a Hub);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting_viewers.fetch_sub(1, Relaxed);
    }
}

/// Tell the viewer to wait, then wait for the session to appear; `None` after
/// closing the socket (time limit, shutdown, the viewer left, too many waiting).
async fn wait_for(ws: &mut Ws, hub: &Hub, id: &str) -> Option<Arc<Session>> {
    let limits = &hub.config.limits;
    if limits.viewer_wait_secs == 0 {
        refuse(ws, hub, ErrorCode::UnknownSession, &format!("no session {id}")).await;
        return None;
    }
    if hub.waiting_viewers.fetch_add(1, Relaxed) >= limits.max_viewers_per_session {
        hub.waiting_viewers.fetch_sub(1, Relaxed);
        let msg =
            format!("{} viewers are already waiting for sessions", limits.max_viewers_per_session);
        refuse(ws, hub, ErrorCode::TooManyViewers, &msg).await;
        return None;
    }
    let _place = Waiting(hub);
    let waiting = serde_json::json!({"type": "waiting", "session": id});
    ws.send(Message::text(waiting.to_string())).await.ok()?;
    let mut shutdown = hub.shutdown.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.viewer_wait_secs);
    loop {
        let created = hub.sessions.created();
        if let Some(session) = hub.sessions.held(id) {
            return Some(session);
        }
        tokio::select! {
            _ = created => {}
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            },
            _ = signalled(&mut shutdown) => {
                refuse(ws, hub, ErrorCode::ShuttingDown, "the server is shutting down").await;
                return None;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let msg = format!("no session {id} started within {} s", limits.viewer_wait_secs);
                refuse(ws, hub, ErrorCode::UnknownSession, &msg).await;
                return None;
            }
        }
    }
}

/// Count the viewer in (audited), or refuse it past `max_viewers_per_session`.
async fn join<'a>(
    ws: &mut Ws,
    hub: &'a Hub,
    session: &'a Session,
    client: &'a Client,
    script: Script,
) -> Option<ViewerGuard<'a>> {
    let limits = &hub.config.limits;
    if session.viewers.fetch_add(1, Relaxed) >= limits.max_viewers_per_session {
        session.viewers.fetch_sub(1, Relaxed);
        let msg = format!(
            "session {} already has {} viewers",
            session.id, limits.max_viewers_per_session
        );
        let code = ErrorCode::TooManyViewers;
        hub.audit(client.entry(Event::LimitHit).session(&session.id).detail(code.name()));
        refuse(ws, hub, code, &msg).await;
        return None;
    }
    hub.metrics.viewers.fetch_add(1, Relaxed);
    hub.audit(client.entry(Event::ViewerJoined).session(&session.id).detail(script.name()));
    Some(ViewerGuard(hub, session, client))
}

/// Resolves when this viewer should be closed at shutdown: once its session has
/// finalized, or when the server gives up waiting for all sessions.
async fn closing(hub: &Hub, session: &Session) {
    let mut all_off = hub.viewers_off.clone();
    let mut stopping = hub.shutdown.clone();
    let this_session = async {
        signalled(&mut stopping).await;
        while session.is_ingesting() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        _ = signalled(&mut all_off) => {}
        _ = this_session => {}
    }
}

/// The writing half of a viewer: sends events in its script, never a stale one.
struct Feed<'a> {
    sink: SplitSink<Ws, Message>,
    hub: &'a Hub,
    script: Script,
    write_timeout: Duration,
    last_final: u64,
    /// The last partial sent, per speaker: each speaker of a room has a partial on
    /// screen of its own.
    last_partial: HashMap<Option<Arc<str>>, (u64, u32)>,
}

impl Feed<'_> {
    /// Send one event unless it is stale; false when the viewer is gone.
    async fn send(&mut self, p: &Published) -> bool {
        let fresh = if p.event.is_final() {
            p.segment() > self.last_final
        } else {
            p.segment() > self.last_final
                && self.last_partial.get(&p.speaker).is_none_or(|&last| p.version() > last)
        };
        if !fresh {
            return true;
        }
        if p.event.is_final() {
            self.last_final = p.segment();
        } else {
            self.last_partial.insert(p.speaker.clone(), p.version());
        }
        let text = p.json(self.script, &self.hub.converters);
        let sent = tokio::time::timeout(self.write_timeout, self.sink.send(Message::Text(text)));
        matches!(sent.await, Ok(Ok(())))
    }

    async fn send_all(&mut self, events: impl IntoIterator<Item = Arc<Published>>) -> bool {
        for p in events {
            if !self.send(&p).await {
                return false;
            }
        }
        true
    }

    async fn close_going_away(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::from(close::GOING_AWAY),
            reason: "server shutting down".into(),
        };
        let closed = self.sink.send(Message::Close(Some(frame)));
        let _ = tokio::time::timeout(self.write_timeout, closed).await;
    }
}

/// Serve one viewer until it leaves or the server shuts down.
async fn run(mut ws: Ws, hub: Arc<Hub>, session: Arc<Session>, script: Script, client: Client) {
    let Some(_guard) = join(&mut ws, &hub, &session, &client, script).await else { return };
    let limits = &hub.config.limits;
    let closing = closing(&hub, &session);
    tokio::pin!(closing);
    let (mut rx, backlog) = session.subscribe(limits.viewer_backlog);
    let ready = serde_json::json!({
        "type": "ready",
        "session": session.id,
        "script": script.name(),
        "backlog": backlog.len(),
    });
    let (sink, mut stream) = ws.split();
    let write_timeout = Duration::from_secs(limits.viewer_write_secs.max(1));
    let mut feed = Feed {
        sink,
        hub: &hub,
        script,
        write_timeout,
        last_final: 0,
        last_partial: HashMap::new(),
    };
    if feed.sink.send(Message::text(ready.to_string())).await.is_err()
        || !feed.send_all(backlog).await
    {
        return;
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
            event = rx.recv() => {
                let (queued, lagged) = match event {
                    Ok(p) => queued_after(p, &mut rx),
                    Err(RecvError::Lagged(_)) => (Vec::new(), true),
                    Err(RecvError::Closed) => return,
                };
                if !feed.send_all(without_stale_partials(queued)).await {
                    return;
                }
                if lagged {
                    hub.metrics.viewer_lagged.fetch_add(1, Relaxed);
                    if !feed.send_all(session.finals_after(feed.last_final)).await {
                        return;
                    }
                }
            },
            _ = &mut closing => return feed.close_going_away().await,
        }
    }
}

/// `first` and every event already waiting behind it; true if the receiver lagged
/// (events were lost after those).
fn queued_after(
    first: Arc<Published>,
    rx: &mut Receiver<Arc<Published>>,
) -> (Vec<Arc<Published>>, bool) {
    let mut queued = vec![first];
    loop {
        match rx.try_recv() {
            Ok(p) => queued.push(p),
            Err(TryRecvError::Lagged(_)) => return (queued, true),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (queued, false),
        }
    }
}

/// Every final, in order, and only each speaker's last partial: the earlier ones
/// would be replaced on screen before anyone could read them.
fn without_stale_partials(mut queued: Vec<Arc<Published>>) -> Vec<Arc<Published>> {
    let mut last_partial = HashMap::new();
    for (i, p) in queued.iter().enumerate().filter(|(_, p)| !p.event.is_final()) {
        last_partial.insert(p.speaker.clone(), i);
    }
    let mut i = 0;
    queued.retain(|p| {
        i += 1;
        p.event.is_final() || last_partial.get(&p.speaker) == Some(&(i - 1))
    });
    queued
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::CaptionEvent;

    fn partial(segment: u64, revision: u32) -> Arc<Published> {
        said(None, segment, revision)
    }

    fn said(speaker: Option<&str>, segment: u64, revision: u32) -> Arc<Published> {
        let speaker = speaker.map(Arc::from);
        Published::spoken(
            CaptionEvent::Partial {
                segment,
                revision,
                text: format!("{}{segment}.{revision}", speaker.as_deref().unwrap_or("")),
                start_ms: 0,
                end_ms: 0,
                emitted_ms: 0,
                lag_ms: 0,
            },
            speaker,
        )
    }

    fn final_(segment: u64) -> Arc<Published> {
        Published::new(CaptionEvent::Final {
            segment,
            text: segment.to_string(),
            start_ms: 0,
            end_ms: 0,
            emitted_ms: 0,
            lag_ms: 0,
        })
    }

    #[test]
    fn a_viewer_behind_gets_every_final_and_only_the_newest_partial() {
        let queued =
            vec![partial(1, 1), partial(1, 2), final_(1), partial(2, 1), partial(2, 2), final_(2)];
        let sent: Vec<_> =
            without_stale_partials(queued).iter().map(|p| p.event.text().to_string()).collect();
        assert_eq!(sent, ["1", "2.2", "2"]);
        let queued = vec![final_(3), partial(4, 1), partial(4, 2), partial(4, 3)];
        let sent: Vec<_> =
            without_stale_partials(queued).iter().map(|p| p.event.text().to_string()).collect();
        assert_eq!(sent, ["3", "4.3"]);
        // Each speaker keeps its newest partial.
        let queued = vec![said(Some("A"), 5, 1), said(Some("B"), 5, 1), said(Some("A"), 5, 2)];
        let sent: Vec<_> =
            without_stale_partials(queued).iter().map(|p| p.event.text().to_string()).collect();
        assert_eq!(sent, ["B5.1", "A5.2"]);
    }

    #[tokio::test]
    async fn queued_events_are_taken_at_once_and_a_lag_is_reported() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(4);
        for r in 1..=3 {
            assert!(tx.send(partial(1, r)).is_ok());
        }
        let first = rx.recv().await.unwrap();
        let (queued, lagged) = queued_after(first, &mut rx);
        assert_eq!((queued.len(), lagged), (3, false));
        for r in 4..=9 {
            assert!(tx.send(partial(1, r)).is_ok());
        }
        assert!(tx.send(final_(1)).is_ok());
        let first = partial(1, 3);
        let (queued, lagged) = queued_after(first, &mut rx);
        assert!(lagged);
        assert_eq!(queued.len(), 1);
    }
}
