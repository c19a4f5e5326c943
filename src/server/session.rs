//! A session: the finals so far, the journal, and the broadcast viewers listen to.
//!
//! Events are published once per session into a `tokio::sync::broadcast`; each is an
//! [`Published`] that converts itself to a script the first time some viewer asks for
//! that script, so an event is converted once per script in use, not once per
//! viewer, and the JSON is shared by reference among all viewers of that script.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::engine::Out;
use super::journal::{self, Journal};
use crate::asr::CaptionEvent;
use crate::text::{RedactionCounts, Script, ScriptConverter};
use crate::Result;

/// One converter per script, made once per server.
pub(crate) struct Converters([ScriptConverter; 4]);

impl Converters {
    pub(crate) fn new() -> Result<Self> {
        let [a, b, c, d] = Script::ALL;
        Ok(Self([
            ScriptConverter::new(a)?,
            ScriptConverter::new(b)?,
            ScriptConverter::new(c)?,
            ScriptConverter::new(d)?,
        ]))
    }

    pub(crate) fn get(&self, script: Script) -> &ScriptConverter {
        &self.0[script_index(script)]
    }
}

fn set_segment(event: &mut CaptionEvent, id: u64) {
    match event {
        CaptionEvent::Final { segment, .. } | CaptionEvent::Partial { segment, .. } => {
            *segment = id
        }
    }
}

fn script_index(script: Script) -> usize {
    Script::ALL.iter().position(|&s| s == script).unwrap_or(3)
}

/// A caption event as published: the raw event with the room's segment id, who
/// spoke it, and its JSON per script, made on first use.
pub(crate) struct Published {
    pub(crate) event: CaptionEvent,
    /// The participant, as the ingest's `start` named it.
    pub(crate) speaker: Option<Arc<str>>,
    json: [OnceLock<Utf8Bytes>; 4],
}

impl Published {
    #[cfg(test)]
    pub(crate) fn new(event: CaptionEvent) -> Arc<Self> {
        Self::spoken(event, None)
    }

    pub(crate) fn spoken(event: CaptionEvent, speaker: Option<Arc<str>>) -> Arc<Self> {
        Arc::new(Self { event, speaker, json: Default::default() })
    }

    /// The event as JSON text in `script` (converted at most once per script), with
    /// `speaker` last when there is one.
    pub(crate) fn json(&self, script: Script, converters: &Converters) -> Utf8Bytes {
        self.json[script_index(script)]
            .get_or_init(|| {
                let mut event = self.event.clone();
                *event.text_mut() = converters.get(script).caption(self.event.text());
                let entry = journal::Entry { event, speaker: self.speaker.as_deref() };
                Utf8Bytes::from(serde_json::to_string(&entry).unwrap_or_default())
            })
            .clone()
    }

    /// The speaker as a plain string.
    pub(crate) fn speaker(&self) -> Option<&str> {
        self.speaker.as_deref()
    }

    pub(crate) fn segment(&self) -> u64 {
        self.event.segment()
    }

    /// (segment, revision); finals count as revision `u32::MAX`.
    pub(crate) fn version(&self) -> (u64, u32) {
        match &self.event {
            CaptionEvent::Partial { segment, revision, .. } => (*segment, *revision),
            CaptionEvent::Final { segment, .. } => (*segment, u32::MAX),
        }
    }
}

struct State {
    finals: Vec<Arc<Published>>,
    /// The room's last segment id (the last final's).
    last_segment: u64,
    journal: Option<Journal>,
    /// The participants whose ingest connections feed the room now (`""` for an
    /// ingest that named no speaker).
    ingesting: std::collections::HashSet<String>,
    /// Room time where the next ingest connection's audio starts, when none is
    /// running: the end of the last one.
    time_offset_ms: u64,
    /// While ingests run, the room's clock: room time `base_ms` at `since`. A
    /// participant who joins then starts at the room time of the moment.
    clock: Option<(Instant, u64)>,
    /// Per participant with an ingest connection: the room time before which its
    /// engine will commit nothing more (see [`Session::advance`]).
    watermarks: HashMap<String, u64>,
    /// Where each participant's own events go (its ingest client's writer).
    echo: HashMap<String, tokio::sync::mpsc::UnboundedSender<Out>>,
    /// Finals held until every other participant's engine is past their start, so
    /// the room's finals come out in time order (see [`Session::publish`]).
    pending: Vec<Pending>,
    /// Items redacted from this session's finals since the server started.
    redactions: RedactionCounts,
}

/// A final waiting for the room's other participants.
struct Pending {
    event: CaptionEvent,
    speaker: Option<Arc<str>>,
    since: Instant,
}

/// Longest a final waits for other participants' engines before it is published
/// anyway (an engine far behind its audio must not hold up the room for ever).
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(10);

/// What a publication put out: the finals released (in time order, numbered), for
/// the webhooks; and the first journal error, if any.
#[derive(Default)]
#[must_use]
pub(crate) struct Released {
    pub(crate) finals: Vec<Arc<Published>>,
    /// The partial published, if the event was one (for the cluster).
    pub(crate) partial: Option<Arc<Published>>,
    pub(crate) journal: Option<crate::Error>,
}

/// Where the next ingest connection of a session continues.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Continuation {
    /// Added to the new engine's segment ids (the last id so far). With several
    /// speakers the room renumbers finals as they are published ([`Session::publish`]).
    pub(crate) segment_offset: u64,
    /// Added to the new engine's times: the room time when it joins.
    pub(crate) time_offset_ms: u64,
}

/// The answer to an ingest asking to join a room.
#[derive(Debug)]
pub(crate) enum Claim {
    Joined(Continuation),
    /// The participant already has an ingest connection.
    Busy,
    /// The room has its `max_speakers_per_room` ingests.
    Full(usize),
}

/// A caption session.
pub(crate) struct Session {
    pub(crate) id: String,
    tx: broadcast::Sender<Arc<Published>>,
    state: Mutex<State>,
    pub(crate) viewers: std::sync::atomic::AtomicUsize,
    /// Since when only the registry holds the session (set by the sweeps of
    /// [`Registry::evict_idle`], cleared by each [`Registry::get`]).
    unused_since: Mutex<Option<Instant>>,
}

impl Session {
    fn new(id: &str, finals: Vec<journal::Spoken>, capacity: usize) -> Self {
        let time_offset_ms = finals.iter().map(|f| f.event.span().1).max().unwrap_or(0);
        let last_segment = finals.iter().map(|f| f.event.segment()).max().unwrap_or(0);
        Self {
            id: id.to_string(),
            tx: broadcast::channel(capacity.max(1)).0,
            state: Mutex::new(State {
                finals: finals
                    .into_iter()
                    .map(|f| Published::spoken(f.event, f.speaker.map(Arc::from)))
                    .collect(),
                last_segment,
                journal: None,
                ingesting: Default::default(),
                time_offset_ms,
                clock: None,
                watermarks: HashMap::new(),
                echo: HashMap::new(),
                pending: Vec::new(),
                redactions: RedactionCounts::default(),
            }),
            viewers: Default::default(),
            unused_since: Mutex::new(None),
        }
    }

    fn unused_since(&self) -> MutexGuard<'_, Option<Instant>> {
        self.unused_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let participant `speaker` (`""` for none named) join the room with an ingest
    /// connection, unless it already has one or the room has `max_speakers` of them.
    /// Its own events (partials at once, finals as the room releases them) go to
    /// `echo`.
    pub(crate) fn begin_ingest(
        &self,
        data_dir: Option<&Path>,
        speaker: &str,
        max_speakers: usize,
        echo: Option<tokio::sync::mpsc::UnboundedSender<Out>>,
    ) -> Result<Claim> {
        let mut state = self.lock();
        if state.ingesting.contains(speaker) {
            return Ok(Claim::Busy);
        }
        if state.ingesting.len() >= max_speakers.max(1) {
            return Ok(Claim::Full(max_speakers.max(1)));
        }
        if let (Some(dir), None) = (data_dir, &state.journal) {
            state.journal = Some(Journal::open(dir, &self.id)?);
        }
        state.ingesting.insert(speaker.to_string());
        let time_offset_ms = match state.clock {
            Some((since, base_ms)) => base_ms + since.elapsed().as_millis() as u64,
            None => {
                state.clock = Some((Instant::now(), state.time_offset_ms));
                state.time_offset_ms
            }
        };
        state.watermarks.insert(speaker.to_string(), time_offset_ms);
        if let Some(echo) = echo {
            state.echo.insert(speaker.to_string(), echo);
        }
        Ok(Claim::Joined(Continuation { segment_offset: state.last_segment, time_offset_ms }))
    }

    /// Participant `speaker`'s ingest connection ended at room time `end_ms` (its
    /// engine has published everything): finals that waited for it are released.
    pub(crate) fn end_ingest(&self, speaker: &str, end_ms: u64) -> Released {
        let mut state = self.lock();
        state.ingesting.remove(speaker);
        state.watermarks.remove(speaker);
        let released = self.release(&mut state, Instant::now());
        state.time_offset_ms = state.time_offset_ms.max(end_ms);
        if state.ingesting.is_empty() {
            state.clock = None;
        }
        if let Some(journal) = &state.journal {
            let _ = journal.sync();
        }
        released
    }

    /// Whether finals of `speaker` still wait for other participants.
    pub(crate) fn holds(&self, speaker: &str) -> bool {
        self.lock().pending.iter().any(|p| p.speaker.as_deref().unwrap_or("") == speaker)
    }

    /// Release what may go out now (finals that waited [`MAX_HOLD`]).
    pub(crate) fn release_due(&self) -> Released {
        let mut state = self.lock();
        self.release(&mut state, Instant::now())
    }

    /// Stop echoing `speaker`'s events to `echo` (its connection is over), unless
    /// a newer connection of the same participant registered its own.
    pub(crate) fn forget_echo(
        &self,
        speaker: &str,
        echo: &tokio::sync::mpsc::UnboundedSender<Out>,
    ) {
        let mut state = self.lock();
        if state.echo.get(speaker).is_some_and(|e| e.same_channel(echo)) {
            state.echo.remove(speaker);
        }
    }

    /// Participant `speaker`'s engine will commit nothing before room time
    /// `watermark_ms` any more: finals of others that waited for it may go out.
    pub(crate) fn advance(&self, speaker: &str, watermark_ms: u64) -> Released {
        let mut state = self.lock();
        if let Some(w) = state.watermarks.get_mut(speaker) {
            *w = (*w).max(watermark_ms);
        }
        self.release(&mut state, Instant::now())
    }

    /// Publish the held finals that no other participant can precede any more (or
    /// that waited [`MAX_HOLD`]), earliest first: numbered, journaled, broadcast and
    /// echoed to their speaker's client.
    fn release(&self, state: &mut State, now: Instant) -> Released {
        let mut released = Released::default();
        while let Some((index, first)) =
            state.pending.iter().enumerate().min_by_key(|(_, p)| p.event.span().0)
        {
            let start = first.event.span().0;
            let own = first.speaker.as_deref().unwrap_or("");
            let others_past = state.watermarks.iter().all(|(who, &w)| who == own || w >= start);
            if !others_past && now.duration_since(first.since) < MAX_HOLD {
                break;
            }
            let Pending { mut event, speaker, .. } = state.pending.remove(index);
            let id = state.last_segment + 1;
            set_segment(&mut event, id);
            state.last_segment = id;
            let published = Published::spoken(event, speaker);
            if let Some(journal) = &mut state.journal {
                if let Err(e) = journal.append(&published.event, published.speaker()) {
                    let key = published.speaker().unwrap_or("");
                    if let Some(echo) = state.echo.get(key) {
                        let msg = "the journal cannot be written".to_string();
                        let _ = echo.send(Out::Fail(super::protocol::ErrorCode::Internal, msg));
                    }
                    released.journal.get_or_insert(e);
                }
            }
            state.finals.push(Arc::clone(&published));
            // Under the lock, so a viewer subscribing sees each final exactly once:
            // either in its backlog or on its receiver.
            let _ = self.tx.send(Arc::clone(&published));
            self.echo(state, &published);
            released.finals.push(published);
        }
        released
    }

    fn echo(&self, state: &State, published: &Arc<Published>) {
        if let Some(echo) = state.echo.get(published.speaker().unwrap_or("")) {
            let _ = echo.send(Out::Event(Arc::clone(published)));
        }
    }

    /// Publish an event of `speaker`'s engine to the room.
    ///
    /// A partial goes out at once, with the id it would take if it were committed
    /// now (with one speaker, the id it will take). A final waits until every other
    /// participant's engine is past its start ([`advance`](Self::advance)), so the
    /// room's finals come out in time order even when one engine lags; then the
    /// room numbers it (ids unique and increasing however many engines feed the
    /// room), journals it, broadcasts it, echoes it to its speaker's client, and
    /// returns it among the released finals. With one participant nothing waits.
    /// The broadcast happens even if the journal fails, whose error is returned.
    pub(crate) fn publish(&self, event: CaptionEvent, speaker: Option<&Arc<str>>) -> Released {
        let mut state = self.lock();
        if event.is_final() {
            let since = Instant::now();
            state.pending.push(Pending { event, speaker: speaker.cloned(), since });
            return self.release(&mut state, since);
        }
        let mut event = event;
        set_segment(&mut event, state.last_segment + 1);
        let published = Published::spoken(event, speaker.cloned());
        let _ = self.tx.send(Arc::clone(&published));
        self.echo(&state, &published);
        Released { partial: Some(published), ..Default::default() }
    }

    /// An event another node published for this room (a cluster mirror): a final
    /// newer than the room's last is kept and broadcast, an older one dropped (it
    /// is here already); a partial is broadcast.
    pub(crate) fn mirror(&self, published: Arc<Published>) {
        let mut state = self.lock();
        if published.event.is_final() {
            if published.segment() <= state.last_segment {
                return;
            }
            state.last_segment = published.segment();
            state.time_offset_ms = state.time_offset_ms.max(published.event.span().1);
            state.finals.push(Arc::clone(&published));
        } else if published.segment() <= state.last_segment {
            return;
        }
        let _ = self.tx.send(published);
    }

    /// Count items redacted from this session's finals.
    pub(crate) fn add_redactions(&self, counts: RedactionCounts) {
        self.lock().redactions += counts;
    }

    /// Items redacted from this session's finals since the server started, by kind
    /// (for audit logs: never the items themselves).
    pub(crate) fn redactions(&self) -> RedactionCounts {
        self.lock().redactions
    }

    /// A receiver for new events, and the latest `backlog` finals.
    pub(crate) fn subscribe(
        &self,
        backlog: usize,
    ) -> (broadcast::Receiver<Arc<Published>>, Vec<Arc<Published>>) {
        let state = self.lock();
        let rx = self.tx.subscribe();
        let from = state.finals.len().saturating_sub(backlog);
        (rx, state.finals[from..].to_vec())
    }

    /// Finals with segment ids above `segment` (for a viewer that lagged).
    pub(crate) fn finals_after(&self, segment: u64) -> Vec<Arc<Published>> {
        let state = self.lock();
        let from = state.finals.partition_point(|f| f.segment() <= segment);
        state.finals[from..].to_vec()
    }

    /// Whether an ingest connection feeds the session now.
    pub(crate) fn is_ingesting(&self) -> bool {
        !self.lock().ingesting.is_empty()
    }

    /// Every final so far, in the order they were published.
    pub(crate) fn finals(&self) -> Vec<Arc<Published>> {
        self.lock().finals.clone()
    }

    /// How many finals the room has.
    pub(crate) fn final_count(&self) -> usize {
        self.lock().finals.len()
    }
}

/// All sessions of the server: live ones, ended ones, and ones found in the journal
/// folder on first use.
pub(crate) struct Registry {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    capacity: usize,
    /// Woken whenever a session comes into memory (viewers may wait for one).
    created: tokio::sync::Notify,
}

impl Registry {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { sessions: Mutex::new(HashMap::new()), capacity, created: Default::default() }
    }

    /// Resolves when a session next comes into memory; create it before looking,
    /// so none is missed in between.
    pub(crate) fn created(&self) -> tokio::sync::futures::Notified<'_> {
        self.created.notified()
    }

    /// The session, loaded from its journal if there is one; with `create`, a new
    /// empty one otherwise.
    pub(crate) fn get(
        &self,
        id: &str,
        data_dir: Option<&Path>,
        create: bool,
    ) -> Result<Option<Arc<Session>>> {
        if let Some(s) = self.held(id) {
            return Ok(Some(s));
        }
        // The journal is read without the lock, so one long journal does not hold
        // up every other connection; whoever inserts first wins.
        let journal_path = data_dir.map(|d| journal::path_for(d, id)).filter(|p| p.is_file());
        let finals = match &journal_path {
            Some(path) => journal::read(path)?,
            None if create => Vec::new(),
            None => return Ok(None),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Session::new(id, finals, self.capacity)));
        *session.unused_since() = None;
        let session = Arc::clone(session);
        drop(sessions);
        self.created.notify_waiters();
        Ok(Some(session))
    }

    /// The session, made from `finals` (read from elsewhere: the cluster's stream)
    /// unless it is in memory already.
    pub(crate) fn insert_loaded(&self, id: &str, finals: Vec<journal::Spoken>) -> Arc<Session> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Session::new(id, finals, self.capacity)));
        *session.unused_since() = None;
        let session = Arc::clone(session);
        drop(sessions);
        self.created.notify_waiters();
        session
    }

    /// The session if it is in memory (marked as used).
    pub(crate) fn held(&self, id: &str) -> Option<Arc<Session>> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let session = sessions.get(id)?;
        *session.unused_since() = None;
        Some(Arc::clone(session))
    }

    /// Drop the sessions that nothing has used for `linger`, and return their ids.
    /// A session is unused when the registry holds the only reference: every
    /// ingest connection, viewer and transcript request holds its own while it
    /// runs, and takes it through [`Registry::get`] under the same lock, so nothing
    /// can pick a session up while it is being dropped. Called periodically; the
    /// first call that finds a session unused starts its clock.
    pub(crate) fn evict_idle(&self, linger: Duration, now: Instant) -> Vec<String> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = Vec::new();
        sessions.retain(|id, session| {
            let mut since = session.unused_since();
            if Arc::strong_count(session) > 1 {
                *since = None;
                return true;
            }
            let unused = now.saturating_duration_since(*since.get_or_insert(now));
            if unused >= linger {
                dropped.push(id.clone());
                return false;
            }
            true
        });
        dropped
    }

    /// Sessions held in memory.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Registry {
    /// Whether the session has an active ingest connection.
    pub(crate) fn is_ingesting(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(id).is_some_and(|s| s.is_ingesting())
    }

    /// Forget these sessions (their files were purged), except any being ingested.
    pub(crate) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if sessions.get(id).is_some_and(|s| !s.is_ingesting()) {
                sessions.remove(id);
            }
        }
    }
}

/// Ingest connections that have not sent `start` yet: in all and per address.
#[derive(Default)]
pub(crate) struct Unstarted {
    pub(crate) total: usize,
    pub(crate) by_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_(segment: u64, text: &str) -> CaptionEvent {
        CaptionEvent::Final {
            segment,
            text: text.into(),
            start_ms: 0,
            end_ms: 10,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    #[test]
    fn events_are_converted_once_per_script() {
        let converters = Converters::new().unwrap();
        let p = Published::new(final_(1, "我们发布了软件"));
        let hk = p.json(Script::Hk, &converters);
        assert!(hk.as_str().contains("我們發佈了軟件"), "{}", hk.as_str());
        assert!(p.json(Script::Cn, &converters).as_str().contains("我们发布了软件"));
        // The second viewer of a script gets the very same bytes (no conversion).
        let again = p.json(Script::Hk, &converters);
        assert_eq!(hk.as_str().as_ptr(), again.as_str().as_ptr());
    }

    #[test]
    fn backlog_and_lag_recovery_never_repeat_or_miss_finals() {
        let s = Session::new("s", vec![spoken(1, "a"), spoken(2, "b")], 4);
        let (mut rx, backlog) = s.subscribe(1);
        assert_eq!(backlog.iter().map(|f| f.segment()).collect::<Vec<_>>(), [2]);
        for i in 3..=10 {
            assert!(s.publish(final_(i, "x"), None).journal.is_none());
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
        let resent: Vec<_> = s.finals_after(2).iter().map(|f| f.segment()).collect();
        assert_eq!(resent, (3..=10).collect::<Vec<_>>());
    }

    #[test]
    fn unused_sessions_leave_memory_after_the_linger_and_come_back_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let data = Some(dir.path());
        let linger = Duration::from_secs(60);
        let t0 = Instant::now();
        let registry = Registry::new(4);
        let held = registry.get("a", data, true).unwrap().unwrap();
        assert!(matches!(held.begin_ingest(data, "", 4, None).unwrap(), Claim::Joined(_)));
        assert_eq!(held.publish(final_(1, "kept"), None).finals.len(), 1, "nobody to wait for");
        let _ = held.end_ingest("", 10);
        // "b" is created, then let go; "a" is still held (an ingest, a viewer).
        registry.get("b", data, true).unwrap().unwrap();
        // Held, "a" stays however long.
        assert!(registry.evict_idle(linger, t0).is_empty());
        assert_eq!(registry.evict_idle(linger, t0 + linger * 2), ["b"]);
        assert_eq!(registry.len(), 1);
        drop(held);
        // The clock starts when a sweep first finds it unused; a use restarts it.
        assert!(registry.evict_idle(linger, t0 + linger * 3).is_empty());
        registry.get("a", data, false).unwrap().unwrap();
        assert!(registry.evict_idle(linger, t0 + linger * 4).is_empty());
        assert!(registry.evict_idle(linger, t0 + linger * 5 - Duration::from_secs(1)).is_empty());
        assert_eq!(registry.evict_idle(linger, t0 + linger * 5), ["a"]);
        assert_eq!(registry.len(), 0);
        // The finals come back from the journal, and the session continues after them.
        let again = registry.get("a", data, false).unwrap().unwrap();
        assert_eq!(events(&again), [final_(1, "kept")]);
        let Claim::Joined(c) = again.begin_ingest(data, "", 4, None).unwrap() else { panic!() };
        assert_eq!(c.segment_offset, 1);
        // Without a data dir an evicted session is gone.
        registry.get("m", None, true).unwrap().unwrap();
        registry.evict_idle(Duration::ZERO, t0);
        assert!(registry.get("m", None, false).unwrap().is_none());
    }

    fn spoken(segment: u64, text: &str) -> journal::Spoken {
        journal::Spoken { event: final_(segment, text), speaker: None }
    }

    fn events(s: &Session) -> Vec<CaptionEvent> {
        s.finals().iter().map(|f| f.event.clone()).collect()
    }

    fn joined(claim: Claim) -> Continuation {
        match claim {
            Claim::Joined(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_ingest_per_speaker_and_continuation() {
        let s = Session::new("s", vec![spoken(7, "a")], 4);
        let c = joined(s.begin_ingest(None, "", 4, None).unwrap());
        assert_eq!((c.segment_offset, c.time_offset_ms), (7, 10));
        assert!(matches!(s.begin_ingest(None, "", 4, None).unwrap(), Claim::Busy));
        let _ = s.end_ingest("", 5000);
        assert_eq!(joined(s.begin_ingest(None, "", 4, None).unwrap()).time_offset_ms, 5000);
    }

    #[test]
    fn a_room_numbers_every_speakers_finals_in_one_sequence() {
        let s = Session::new("room", vec![spoken(3, "before")], 16);
        let ann: Arc<str> = Arc::from("Ann");
        let bob: Arc<str> = Arc::from("Bob");
        let (echo, mut bobs_client) = tokio::sync::mpsc::unbounded_channel();
        joined(s.begin_ingest(None, "Ann", 2, None).unwrap());
        // Bob joins while Ann talks: his stream starts at the room time of the moment.
        std::thread::sleep(Duration::from_millis(30));
        let c = joined(s.begin_ingest(None, "Bob", 2, Some(echo)).unwrap());
        assert!(c.time_offset_ms >= 10 + 30, "{c:?}");
        assert!(matches!(s.begin_ingest(None, "Bob", 2, None).unwrap(), Claim::Busy));
        assert!(matches!(s.begin_ingest(None, "Cy", 2, None).unwrap(), Claim::Full(2)));
        let (mut rx, _) = s.subscribe(0);
        // Each engine counts its own ids (both say 4); the room gives 4 and 5.
        let partial = CaptionEvent::Partial {
            segment: 4,
            revision: 1,
            text: "hel".into(),
            start_ms: 0,
            end_ms: 5,
            emitted_ms: 0,
            lag_ms: 0,
        };
        let none = |r: Released| r.finals.is_empty();
        assert!(none(s.publish(partial, Some(&bob))));
        // Ann's final waits until Bob's engine is past its start; Bob's for Ann's.
        assert!(none(s.publish(final_at(4, "hello", 1000), Some(&ann))));
        assert_eq!(s.advance("Bob", 1500).finals.len(), 1);
        assert!(none(s.publish(final_at(4, "hi", 2000), Some(&bob))));
        assert_eq!(s.advance("Ann", 2000).finals.len(), 1);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|p| (p.event.is_final(), p.segment(), p.speaker().map(str::to_string)))
            .collect();
        let who = |name: &str| Some(name.to_string());
        assert_eq!(got, [(false, 4, who("Bob")), (true, 4, who("Ann")), (true, 5, who("Bob"))]);
        let json = s.finals()[2].json(Script::Raw, &Converters::new().unwrap());
        assert!(json.as_str().ends_with(r#""speaker":"Bob"}"#), "{}", json.as_str());
        // Bob's client got its own partial and final, not Ann's.
        let echoed: Vec<_> = std::iter::from_fn(|| bobs_client.try_recv().ok())
            .map(|o| match o {
                Out::Event(p) => p.event.text().to_string(),
                _ => panic!("only events"),
            })
            .collect();
        assert_eq!(echoed, ["hel", "hi"]);
        // A participant leaving frees the place; the room's clock runs until the last.
        let _ = s.end_ingest("Ann", 100);
        joined(s.begin_ingest(None, "Cy", 2, None).unwrap());
        assert!(s.is_ingesting());
    }

    fn final_at(segment: u64, text: &str, start_ms: u64) -> CaptionEvent {
        CaptionEvent::Final {
            segment,
            text: text.into(),
            start_ms,
            end_ms: start_ms + 500,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    #[test]
    fn a_lagging_engine_holds_later_finals_back_so_the_room_stays_in_time_order() {
        let s = Session::new("room", vec![], 16);
        let (ann, bob) = (Arc::from("Ann"), Arc::from("Bob"));
        joined(s.begin_ingest(None, "Ann", 4, None).unwrap());
        joined(s.begin_ingest(None, "Bob", 4, None).unwrap());
        // Ann spoke at 0-2 s and 8 s; Bob at 5 s, but his engine is behind.
        let _ = s.advance("Ann", 9000);
        assert!(s.publish(final_at(1, "ann 1", 100), Some(&ann)).finals.is_empty());
        assert_eq!(s.advance("Bob", 3000).finals.len(), 1);
        assert!(s.publish(final_at(2, "ann 2", 8000), Some(&ann)).finals.is_empty());
        // Bob's 5 s final comes after Ann's 8 s one was committed: it goes first.
        let released = s.publish(final_at(1, "bob", 5000), Some(&bob));
        assert_eq!(released.finals.len(), 1);
        let _ = s.advance("Bob", 8500);
        let order: Vec<_> =
            s.finals().iter().map(|f| (f.segment(), f.event.text().to_string())).collect();
        assert_eq!(order, [(1, "ann 1".into()), (2, "bob".into()), (3, "ann 2".into())]);
        // An engine that never catches up holds nobody for longer than MAX_HOLD.
        assert!(s.publish(final_at(3, "ann 3", 20_000), Some(&ann)).finals.is_empty());
        let mut state = s.lock();
        let later = Instant::now() + MAX_HOLD;
        assert_eq!(s.release(&mut state, later).finals.len(), 1);
        drop(state);
        // Leaving releases what waited for the one who left.
        assert!(s.publish(final_at(4, "ann 4", 30_000), Some(&ann)).finals.is_empty());
        assert_eq!(s.end_ingest("Bob", 31_000).finals.len(), 1);
        assert_eq!(s.final_count(), 5);
    }
}
