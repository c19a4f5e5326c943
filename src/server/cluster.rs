//! Many nodes, one set of rooms: NATS carries events between nodes, JetStream keeps
//! the finals and the ingest leases (`serve --cluster nats://HOST:4222`).
//!
//! ```text
//!            node A (owns room r)                      NATS                      node B, C
//! engine ─► Session::publish ─► viewers on A
//!                  │ partial ─────────────► core  cantocap.room.r.partial ──► mirror ─► viewers
//!                  │ final ───► buffer ───► JetStream CANTOCAP_FINALS ───────► mirror ─► viewers,
//!                  │                         (file storage, Nats-Msg-Id r/segment)        transcripts
//!   Hub::join ─► lease ───────────────────► JetStream CANTOCAP_LEASES  cantocap.lease.r = "A" (renewed)
//! ```
//!
//! - **Ownership.** A room's ingests run on one node at a time: the first ingest of
//!   a room on a node stores the node's name on `cantocap.lease.{room}` in the
//!   stream `CANTOCAP_LEASES` (one message per subject, kept `lease_secs`), only if
//!   the subject holds none (`Nats-Expected-Last-Subject-Sequence: 0`, JetStream's
//!   compare-and-set, as its key-value buckets use), and renews it while any
//!   ingest of the room runs there; another node's ingest of that room is refused
//!   (`session_busy`, naming the owner) until the lease is released or expires. So
//!   the room's segment ids are numbered in one place, as on a single node. (The
//!   key-value API itself is not used: the client library cannot read NATS 2.9's
//!   account information, which it asks for first.)
//! - **Finals** go into the stream `CANTOCAP_FINALS` (subject
//!   `cantocap.room.{room}.final`, message id `{room}/{segment}`, so a retried
//!   publish is stored once) through a bounded buffer: while NATS is away they wait
//!   there (and in the local journal with `--data-dir`), and go out in order when it
//!   is back. **Partials** go over core NATS, best effort.
//! - **Every node mirrors every room**: a room not in memory is loaded from the
//!   stream (its backlog) the first time it is needed, by a viewer, a transcript
//!   request, an ingest taking over after a failover, or an event from another
//!   node; then events from other nodes are added as they come. Segment ids are the
//!   owner's, so a mirror keeps only finals newer than its last.
//!
//! Room ids may hold dots, which NATS subjects use as separators: in subjects a dot
//! becomes `~` (which room ids never hold).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::journal;
use super::session::Published;
use super::Hub;

/// `[cluster]` in the server's TOML, or `--cluster URL`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS servers (`nats://HOST:4222`, `tls://…`); any one reachable will do.
    pub urls: Vec<String>,
    /// This node's name in leases, logs and metrics [default: the host name].
    #[serde(default)]
    pub node_name: Option<String>,
    /// A NATS credentials file (`.creds`).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for `tls://` NATS servers.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Copies JetStream keeps of the finals and the leases (1, or 3 on a NATS cluster).
    #[serde(default = "one")]
    pub replicas: usize,
    /// A lease lasts this long without renewal: how soon a dead node's rooms can
    /// be taken over.
    #[serde(default = "five")]
    pub lease_secs: u64,
    /// Finals held while NATS is away before they are kept only in the local
    /// journal.
    #[serde(default = "ten_thousand")]
    pub buffer: usize,
    /// Wait for NATS at start instead of failing.
    #[serde(default)]
    pub wait: bool,
}

fn one() -> usize {
    1
}
fn five() -> u64 {
    5
}
fn ten_thousand() -> usize {
    10_000
}

impl ClusterConfig {
    /// A configuration for one NATS URL, other settings at their defaults.
    pub fn new(url: &str) -> Self {
        Self {
            urls: vec![url.to_string()],
            node_name: None,
            credentials: None,
            tls_ca: None,
            replicas: 1,
            lease_secs: 5,
            buffer: 10_000,
            wait: false,
        }
    }

    /// The node name given, else the host name, else `cantocap`.
    pub fn node(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "cantocap".into())
        })
    }
}

const STREAM: &str = "CANTOCAP_FINALS";
const LEASES: &str = "CANTOCAP_LEASES";
const NODE_HEADER: &str = "Cantocap-Node";

/// A room id as a subject token.
fn token(room: &str) -> String {
    room.replace('.', "~")
}

/// The room of a subject `cantocap.room.{token}.{kind}`.
fn room_of(subject: &str) -> Option<String> {
    let mut parts = subject.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("cantocap"), Some("room"), Some(t), Some(_), None) => Some(t.replace('~', ".")),
        _ => None,
    }
}

fn final_subject(room: &str) -> String {
    format!("cantocap.room.{}.final", token(room))
}

fn lease_subject(room: &str) -> String {
    format!("cantocap.lease.{}", token(room))
}

fn partial_subject(room: &str) -> String {
    format!("cantocap.room.{}.partial", token(room))
}

/// A final on its way to the stream.
struct Outgoing {
    room: String,
    segment: u64,
    payload: String,
    queued: Instant,
}

/// A room this node owns: its ingests here, and the lease renewal.
struct Held {
    ingests: usize,
    renew: tokio::task::JoinHandle<()>,
}

/// This node's link to the cluster.
pub(crate) struct Cluster {
    pub(crate) node: String,
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    leases: stream::Stream,
    lease_ttl: Duration,
    finals: mpsc::Sender<Outgoing>,
    partials: mpsc::Sender<(String, String)>,
    held: Mutex<HashMap<String, Held>>,
    /// Figures for `/metrics`.
    pub(crate) buffered: AtomicUsize,
    published: AtomicU64,
    publish_lag_ms: AtomicU64,
    local_only: AtomicU64,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
#[error("cluster: {0}")]
pub struct ClusterError(String);

impl Cluster {
    /// Connect to NATS, make sure the stream and the lease bucket exist, and start
    /// the publisher tasks. Mirroring starts with [`Cluster::mirror`].
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Arc<Self>, ClusterError> {
        let node = config.node();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("cantocap {node}"))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        if config.wait {
            options = options.retry_on_initial_connect();
        }
        if let Some(creds) = &config.credentials {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| ClusterError(format!("credentials file {}: {e}", creds.display())))?;
        }
        if let Some(ca) = &config.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        let urls = config.urls.join(",");
        let client = options.connect(urls.as_str()).await.map_err(|e| {
            ClusterError(format!(
                "cannot reach NATS at {urls}: {e} (is nats-server running with JetStream, -js? `wait = true` in [cluster] waits for it)"
            ))
        })?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec!["cantocap.room.*.final".into()],
                storage: stream::StorageType::File,
                num_replicas: config.replicas.max(1),
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                ClusterError(format!(
                    "the JetStream stream {STREAM}: {e} (JetStream enabled on the server?)"
                ))
            })?;
        let lease_ttl = Duration::from_secs(config.lease_secs.max(2));
        let leases = js
            .get_or_create_stream(stream::Config {
                name: LEASES.into(),
                subjects: vec!["cantocap.lease.*".into()],
                storage: stream::StorageType::File,
                num_replicas: config.replicas.max(1),
                max_messages_per_subject: 1,
                max_age: lease_ttl,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError(format!("the JetStream stream {LEASES}: {e}")))?;
        let (finals, finals_rx) = mpsc::channel(config.buffer.max(1));
        let (partials, partials_rx) = mpsc::channel(1024);
        let cluster = Arc::new(Self {
            node,
            client,
            js: js.clone(),
            stream,
            leases,
            lease_ttl,
            finals,
            partials,
            held: Mutex::new(HashMap::new()),
            buffered: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            publish_lag_ms: AtomicU64::new(0),
            local_only: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&cluster).publish_finals(js, finals_rx));
        tokio::spawn(Arc::clone(&cluster).publish_partials(partials_rx));
        Ok(cluster)
    }

    /// Whether NATS is connected now.
    pub(crate) fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, self.node.as_str());
        headers
    }

    /// Queue a final of `room` for the stream (from any thread). Past the buffer it
    /// stays in this node only (and its journal), and the log says so.
    pub(crate) fn publish_final(&self, hub: &Hub, room: &str, published: &Published) {
        let entry = journal::Entry { event: published.event.clone(), speaker: published.speaker() };
        let payload = serde_json::to_string(&entry).unwrap_or_default();
        let outgoing = Outgoing {
            room: room.to_string(),
            segment: published.segment(),
            payload,
            queued: Instant::now(),
        };
        match self.finals.try_send(outgoing) {
            Ok(()) => {
                self.buffered.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.local_only.fetch_add(1, Relaxed);
                hub.log(format_args!(
                    "cluster: session {room}: final {} not sent to NATS (the buffer of unsent finals is full); it is only on this node{}",
                    published.segment(),
                    if hub.config.data_dir.is_some() { " and in its journal" } else { "" }
                ));
            }
        }
    }

    /// Send a partial of `room` to the other nodes (best effort).
    pub(crate) fn publish_partial(&self, room: &str, published: &Published) {
        let entry = journal::Entry { event: published.event.clone(), speaker: published.speaker() };
        if let Ok(payload) = serde_json::to_string(&entry) {
            let _ = self.partials.try_send((room.to_string(), payload));
        }
    }

    /// Publish queued finals in order, each until the stream has it.
    async fn publish_finals(
        self: Arc<Self>,
        js: jetstream::Context,
        mut rx: mpsc::Receiver<Outgoing>,
    ) {
        while let Some(f) = rx.recv().await {
            let mut wait = Duration::from_millis(100);
            loop {
                let mut headers = self.headers();
                headers.insert("Nats-Msg-Id", format!("{}/{}", f.room, f.segment).as_str());
                let payload = f.payload.clone().into();
                let sent = js.publish_with_headers(final_subject(&f.room), headers, payload).await;
                let acked = match sent {
                    Ok(ack) => tokio::time::timeout(Duration::from_secs(5), ack)
                        .await
                        .is_ok_and(|a| a.is_ok()),
                    Err(_) => false,
                };
                if acked {
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            self.buffered.fetch_sub(1, Relaxed);
            self.published.fetch_add(1, Relaxed);
            self.publish_lag_ms.store(f.queued.elapsed().as_millis() as u64, Relaxed);
        }
    }

    async fn publish_partials(self: Arc<Self>, mut rx: mpsc::Receiver<(String, String)>) {
        while let Some((room, payload)) = rx.recv().await {
            if self.connected() {
                let subject = partial_subject(&room);
                let _ =
                    self.client.publish_with_headers(subject, self.headers(), payload.into()).await;
            }
        }
    }

    /// Every final of `room` in the stream, in order.
    pub(crate) async fn backlog(&self, room: &str) -> Result<Vec<journal::Spoken>, String> {
        let subject = final_subject(room);
        let last = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(last) => last.sequence,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(format!("reading session {room} from NATS: {e}")),
        };
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("reading session {room} from NATS: {e}"))?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut finals = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
            let Ok(Some(message)) = next else {
                return Err(format!("reading session {room} from NATS: the stream stopped"));
            };
            let message = message.map_err(|e| e.to_string())?;
            if let Ok(spoken) = journal::parse(&message.payload) {
                finals.push(spoken);
            }
            let info = message.info().map_err(|e| e.to_string())?;
            if info.stream_sequence >= last || info.pending == 0 {
                return Ok(finals);
            }
        }
    }

    /// Store this node's lease on `room` if the lease subject's last message is
    /// `expected` (0: none); the new sequence, or `None` when it is not.
    async fn set_lease(&self, room: &str, expected: u64) -> Result<Option<u64>, String> {
        let mut headers = self.headers();
        headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string().as_str());
        let sent = self
            .js
            .publish_with_headers(lease_subject(room), headers, self.node.clone().into())
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), sent).await {
            Ok(Ok(ack)) => Ok(Some(ack.sequence)),
            // JetStream refused it: another lease is there (wrong last sequence).
            Ok(Err(e)) if e.to_string().contains("wrong last sequence") => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer from JetStream".into()),
        }
    }

    /// Claim room `room` for an ingest on this node; `Err(owner)` when another node
    /// holds it.
    pub(crate) async fn claim(self: &Arc<Self>, room: &str) -> Result<(), String> {
        if let Some(held) = self.lock().get_mut(room) {
            held.ingests += 1;
            return Ok(());
        }
        if let Some(sequence) = self.set_lease(room, 0).await? {
            self.hold(room, sequence);
            return Ok(());
        }
        let last = self.leases.get_last_raw_message_by_subject(&lease_subject(room)).await;
        let (owner, sequence) = match last {
            Ok(m) => (String::from_utf8_lossy(&m.payload).into_owned(), m.sequence),
            // Gone in between: try once more.
            Err(_) => match self.set_lease(room, 0).await? {
                Some(sequence) => {
                    self.hold(room, sequence);
                    return Ok(());
                }
                None => return Err("another node".into()),
            },
        };
        if owner == self.node {
            // This node's own lease from a moment ago, not yet removed.
            if let Some(sequence) = self.set_lease(room, sequence).await? {
                self.hold(room, sequence);
                return Ok(());
            }
        }
        Err(owner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep the lease on `room` (stored at `sequence`) alive until the room's
    /// ingests here end.
    fn hold(self: &Arc<Self>, room: &str, sequence: u64) {
        let cluster = Arc::clone(self);
        let every = self.lease_ttl / 3;
        let key = room.to_string();
        let renew = tokio::spawn(async move {
            let mut sequence = sequence;
            loop {
                tokio::time::sleep(every).await;
                match cluster.set_lease(&key, sequence).await {
                    Ok(Some(s)) => sequence = s,
                    // Lapsed (NATS was away longer than the lease): take it again,
                    // unless another node has meanwhile.
                    Ok(None) => match cluster.set_lease(&key, 0).await {
                        Ok(Some(s)) => sequence = s,
                        _ => {
                            tracing::warn!("cluster: session {key}: another node took this node's lease while NATS was away");
                            return;
                        }
                    },
                    // NATS away: try again; the lease may lapse meanwhile.
                    Err(_) => {}
                }
            }
        });
        let mut held = self.lock();
        match held.get_mut(room) {
            // Claimed twice at once: one renewal is enough.
            Some(h) => {
                h.ingests += 1;
                renew.abort();
            }
            None => {
                held.insert(room.to_string(), Held { ingests: 1, renew });
            }
        }
    }

    /// An ingest of `room` on this node ended; the last one releases the lease.
    pub(crate) fn release(self: &Arc<Self>, room: &str) {
        let mut held = self.lock();
        let Some(h) = held.get_mut(room) else { return };
        h.ingests -= 1;
        if h.ingests > 0 {
            return;
        }
        let h = held.remove(room).expect("held");
        h.renew.abort();
        let cluster = Arc::clone(self);
        let subject = lease_subject(room);
        tokio::spawn(async move {
            let _ = cluster.leases.purge().filter(subject).await;
        });
    }

    /// Rooms owned by this node now.
    pub(crate) fn leases_held(&self) -> usize {
        self.lock().len()
    }

    /// Mirror other nodes' events into this node's rooms, until the server stops.
    /// When NATS goes away the subscriptions are made again, the finals' from the
    /// stream sequence after the last one seen, so none is missed.
    pub(crate) async fn mirror(self: Arc<Self>, hub: Arc<Hub>) {
        let mut next_sequence = None;
        let mut shutdown = hub.shutdown.clone();
        loop {
            let followed = tokio::select! {
                _ = super::signalled(&mut shutdown) => return,
                f = self.follow(&hub, &mut next_sequence) => f,
            };
            if let Err(e) = followed {
                hub.log(format_args!("cluster: following the other nodes: {e}; again in 1 s"));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Follow the other nodes' events until a subscription ends.
    async fn follow(&self, hub: &Arc<Hub>, next_sequence: &mut Option<u64>) -> Result<(), String> {
        let mut partials =
            self.client.subscribe("cantocap.room.*.partial").await.map_err(|e| e.to_string())?;
        let deliver_policy = match *next_sequence {
            Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
            None => consumer::DeliverPolicy::New,
        };
        let mut finals = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: "cantocap.room.*.final".into(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let (subject, headers, payload) = tokio::select! {
                m = partials.next() => match m {
                    Some(m) => (m.subject, m.headers, m.payload),
                    None => return Err("the partials' subscription ended".into()),
                },
                m = finals.next() => match m {
                    Some(Ok(m)) => {
                        if let Ok(info) = m.info() {
                            *next_sequence = Some(info.stream_sequence + 1);
                        }
                        (m.message.subject.clone(), m.message.headers.clone(), m.message.payload.clone())
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the finals' consumer ended".into()),
                },
            };
            let from =
                headers.as_ref().and_then(|h| h.get(NODE_HEADER)).map(|v| v.as_str().to_string());
            if from.as_deref() == Some(self.node.as_str()) {
                continue;
            }
            let (Some(room), Ok(spoken)) = (room_of(&subject), journal::parse(&payload)) else {
                continue;
            };
            // Loads the room from the stream if this node does not have it yet.
            if let Ok(Some(session)) = hub.session(&room, true).await {
                session.mirror(Published::spoken(spoken.event, spoken.speaker.map(Arc::from)));
            }
        }
    }

    /// The cluster's lines for `/metrics`.
    pub(crate) fn render_metrics(&self) -> String {
        let gauge = |name: &str, help: &str, value: String| {
            format!("# HELP cantocap_cluster_{name} {help}\n# TYPE cantocap_cluster_{name} gauge\ncantocap_cluster_{name}{{node=\"{}\"}} {value}\n", self.node)
        };
        [
            gauge("connected", "1 while NATS is connected.", u8::from(self.connected()).to_string()),
            gauge("leases", "Rooms whose ingests this node owns.", self.leases_held().to_string()),
            gauge("buffered_finals", "Finals waiting to be stored in JetStream.", self.buffered.load(Relaxed).to_string()),
            gauge(
                "publish_lag_seconds",
                "Time the last stored final waited in the buffer.",
                format!("{:.3}", self.publish_lag_ms.load(Relaxed) as f64 / 1000.0),
            ),
            format!(
                "# HELP cantocap_cluster_finals_published_total Finals stored in JetStream by this node.\n# TYPE cantocap_cluster_finals_published_total counter\ncantocap_cluster_finals_published_total {}\n",
                self.published.load(Relaxed)
            ),
            format!(
                "# HELP cantocap_cluster_finals_local_only_total Finals kept on this node only (the buffer was full).\n# TYPE cantocap_cluster_finals_local_only_total counter\ncantocap_cluster_finals_local_only_total {}\n",
                self.local_only.load(Relaxed)
            ),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_with_dots_map_to_one_subject_token_and_back() {
        assert_eq!(final_subject("board.2026-12"), "cantocap.room.board~2026-12.final");
        assert_eq!(room_of("cantocap.room.board~2026-12.final").as_deref(), Some("board.2026-12"));
        assert_eq!(room_of(&partial_subject("a_b-c")).as_deref(), Some("a_b-c"));
        assert_eq!(room_of("cantocap.room.x"), None);
        assert_eq!(room_of("other.room.x.final"), None);
    }

    #[test]
    fn cluster_tables_parse_with_defaults() {
        let c: ClusterConfig =
            toml::from_str("urls = [\"nats://n1:4222\"]\nnode_name = \"a\"").unwrap();
        assert_eq!((c.replicas, c.lease_secs, c.buffer, c.wait), (1, 5, 10_000, false));
        assert_eq!(c.node(), "a");
        assert!(toml::from_str::<ClusterConfig>("urls = []\nbogus = 1").is_err());
    }
}
