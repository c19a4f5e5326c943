//! One participant's audio into a room: the hub's side of every ingest protocol.
//!
//! A transport (the native `/v1/ingest`, WhisperLive, Jitsi, …) reads its own
//! framing, then calls [`Hub::join`] with a [`Start`] (rate, channels, format,
//! language, speaker) and a channel for what its client should be sent. The hub
//! checks shutdown, the model and `max_sessions`, claims the participant's place in
//! the room (one ingest per speaker, `max_speakers_per_room`), and starts the
//! participant's engine thread; the transport then pushes [`Input`] and gets
//! [`Out`] (the native `ready` text, the room's events for this speaker, failures)
//! back until it calls [`Feed::finish`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::cluster::Cluster;
use super::engine::{Input, Job, Out};
use super::protocol::{ErrorCode, Start};
use super::session::{Claim, Continuation, Session};
use super::Hub;

/// Why a participant could not join: the error to send, in the transport's shape.
pub(crate) type Refusal = (ErrorCode, String);

/// Holds one of the `max_sessions` ingest slots.
struct Slot(Arc<Hub>);

impl Slot {
    /// A slot, unless `max_sessions` ingests are running.
    fn take(hub: &Arc<Hub>) -> Option<Slot> {
        if hub.active_ingests.fetch_add(1, Relaxed) >= hub.config.limits.max_sessions {
            hub.active_ingests.fetch_sub(1, Relaxed);
            return None;
        }
        hub.metrics.sessions.fetch_add(1, Relaxed);
        Some(Slot(Arc::clone(hub)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active_ingests.fetch_sub(1, Relaxed);
        self.0.metrics.sessions.fetch_sub(1, Relaxed);
    }
}

/// A participant's running engine in a room.
pub(crate) struct Feed {
    pub(crate) session: Arc<Session>,
    pub(crate) continuation: Continuation,
    input: std_mpsc::Sender<Input>,
    done: oneshot::Receiver<(u64, u64)>,
    /// The room's cluster lease, released when the feed is done.
    _lease: Option<Lease>,
}

/// This node's claim on a room in the cluster; released on drop.
struct Lease(Arc<Cluster>, String);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.release(&self.1);
    }
}

impl Feed {
    /// Hand audio to the engine; false once the engine has stopped (it has sent
    /// its failure on the `out` channel).
    pub(crate) fn push(&self, input: Input) -> bool {
        self.input.send(input).is_ok()
    }

    /// The end of the audio: the engine decodes what is left and sends its last
    /// events before this returns (ms of audio received, finals published). The
    /// room keeps the finals; the participant's place is free again.
    pub(crate) async fn finish(self) -> (u64, u64) {
        let _ = self.input.send(Input::Finish);
        drop(self.input);
        self.done.await.unwrap_or_default()
    }
}

impl Hub {
    /// Let `start.speaker` (or an unnamed participant) join room `room` and start
    /// its engine; what the client should be sent goes to `out`.
    pub(crate) async fn join(
        self: &Arc<Self>,
        room: &str,
        start: &Start,
        out: mpsc::UnboundedSender<Out>,
    ) -> Result<Feed, Refusal> {
        if *self.shutdown.borrow() {
            return Err((ErrorCode::ShuttingDown, "the server is shutting down".into()));
        }
        let Some(model) = self.model.get().cloned() else {
            return Err((
                ErrorCode::NotReady,
                "the model is still loading; try again shortly".into(),
            ));
        };
        let Some(slot) = Slot::take(self) else {
            let n = self.config.limits.max_sessions;
            let msg = format!("the server already has {n} ingest sessions; try again later");
            return Err((ErrorCode::TooManySessions, msg));
        };
        let lease = match &self.cluster {
            Some(cluster) => Some(self.lease(cluster, room).await?),
            None => None,
        };
        let speaker = start.speaker.as_deref().unwrap_or("");
        let data_dir = self.config.data_dir.as_deref();
        let max_speakers = self.config.limits.max_speakers_per_room;
        let claimed = self.session(room, true).await.and_then(|s| {
            let s = s.expect("created");
            Ok((s.begin_ingest(data_dir, speaker, max_speakers, Some(out.clone()))?, s))
        });
        let (session, continuation) = match claimed {
            Ok((Claim::Joined(c), s)) => (s, c),
            Ok((Claim::Busy, _)) => {
                let msg = match speaker {
                    "" => format!("session {room} already has an ingest connection without a speaker; name each participant with \"speaker\" in start"),
                    _ => format!("speaker {speaker:?} already has an ingest connection in session {room}"),
                };
                return Err((ErrorCode::SessionBusy, msg));
            }
            Ok((Claim::Full(n), _)) => {
                let msg =
                    format!("session {room} already has {n} speakers (max_speakers_per_room)");
                return Err((ErrorCode::TooManySessions, msg));
            }
            Err(e) => {
                self.log(format_args!("session {room}: {e}"));
                return Err((ErrorCode::Internal, "the session journal cannot be opened".into()));
            }
        };
        self.metrics.sessions_total.fetch_add(1, Relaxed);
        let (input, input_rx) = std_mpsc::channel();
        let (done_tx, done) = oneshot::channel();
        let job = Job {
            hub: Arc::clone(self),
            session: Arc::clone(&session),
            start: start.clone(),
            continuation,
            input: input_rx,
            out: out.clone(),
            model,
        };
        let name = format!("asr-{room}");
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let summary = job.run();
            drop(slot);
            let _ = done_tx.send(summary);
        });
        if spawned.is_err() {
            let _ = session.end_ingest(speaker, continuation.time_offset_ms);
            return Err((ErrorCode::Internal, "cannot start a decoding thread".into()));
        }
        Ok(Feed { session, continuation, input, done, _lease: lease })
    }

    /// Own `room` in the cluster while this ingest runs.
    async fn lease(&self, cluster: &Arc<Cluster>, room: &str) -> Result<Lease, Refusal> {
        if !cluster.connected() {
            let msg = "this node has lost the cluster (NATS); connect to another node or try again shortly";
            return Err((ErrorCode::NotReady, msg.into()));
        }
        match cluster.claim(room).await {
            Ok(()) => Ok(Lease(Arc::clone(cluster), room.to_string())),
            Err(owner) => Err((
                ErrorCode::SessionBusy,
                format!("session {room} is being captioned on node {owner}: its ingests go there while it runs (a stopped node's lease lapses within seconds)"),
            )),
        }
    }
}
