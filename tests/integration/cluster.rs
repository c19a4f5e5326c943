//! The cluster (`serve --cluster`): three `cantocap serve` processes on loopback
//! ports sharing one real nats-server (Debian's, with JetStream), as an operator
//! runs them.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::*;
use crate::common::*;

const SENTENCES: &[&str] = &[
    "Good morning everyone, and welcome to the weekly project meeting.",
    "First, we will review the budget for the next quarter.",
    "The marketing team needs two more weeks to finish the campaign.",
    "Please send your comments to the shared folder before Friday.",
    "Thank you all for your hard work this year.",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nats-server with JetStream, its store in `dir`.
fn nats(dir: &Path, port: u16) -> Proc {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is needed for the cluster tests: apt-get install nats-server (./setup.sh does)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

/// A cluster node on a free port; ready (model loaded, NATS connected).
async fn node(name: &str, nats_port: u16) -> (Proc, SocketAddr) {
    node_with(name, nats_port, &[]).await
}

/// A webhook receiver answering 200: the JSON bodies it got.
async fn webhook_receiver() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let list = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let list = Arc::clone(&list);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + length {
                            if let Ok(v) = serde_json::from_slice(&buf[i + 4..i + 4 + length]) {
                                list.lock().unwrap().push(v);
                            }
                            let reply =
                                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                            let _ = s.write_all(reply.as_bytes()).await;
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, got)
}

/// A cluster node with more `serve` arguments.
async fn node_with(name: &str, nats_port: u16, more: &[&str]) -> (Proc, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["serve", "--listen", &addr.to_string(), "--language", "en", "--quiet"])
        .args(more)
        .env("CANTOCAP_WEBHOOK_SECRET", "cluster-webhook-secret-0123")
        .arg("--model")
        .arg(model("ggml-tiny.en.bin"))
        .args(["--cluster", &format!("nats://127.0.0.1:{nats_port}"), "--node-name", name])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_status(addr).await != 200 {
        if let Ok(Some(status)) = node.0.try_wait() {
            panic!("node {name} exited ({status}): its error is above");
        }
        assert!(Instant::now() < deadline, "node {name} not ready in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (node, addr)
}

/// `/readyz`'s status, 0 when nothing listens.
async fn get_status(addr: SocketAddr) -> u16 {
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => get(addr, "/readyz").await.0,
        Err(_) => 0,
    }
}

/// Wait until `/readyz` answers 200 (`ready`) or 503.
async fn wait_ready(addr: SocketAddr, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = get_status(addr).await;
        if (status == 200) == ready && status != 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} /readyz stayed {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Open an ingest (16 kHz s16le); the first message (`ready` or an error).
async fn try_ingest(addr: SocketAddr, room: &str) -> (Ws, Value) {
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/{room}")).await;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    ws.send(Message::text(start.to_string())).await.unwrap();
    let first = next(&mut ws).await;
    (ws, first)
}

/// What a viewer has received: its finals.
type Seen = Arc<Mutex<Vec<Value>>>;

/// A viewer in `script`, collecting finals while it runs.
async fn watch(addr: SocketAddr, room: &str, script: &str) -> (tokio::task::JoinHandle<()>, Seen) {
    let mut ws = connect(&format!("ws://{addr}/v1/captions/{room}?script={script}")).await;
    let seen = Seen::default();
    let list = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let m = next(&mut ws).await;
            if m.get("close").is_some() {
                return;
            }
            if m["type"] == "final" {
                list.lock().unwrap().push(m);
            }
        }
    });
    (task, seen)
}

/// The room's finals from a node's transcript (JSON lines, whose long captions are
/// laid out on several lines of the same segment): `{"segment","text"}` each.
async fn transcript(addr: SocketAddr, room: &str) -> Vec<Value> {
    let (status, body) = get(addr, &format!("/v1/sessions/{room}/transcript?format=jsonl")).await;
    assert_eq!(status, 200, "{body}");
    let mut finals: Vec<Value> = Vec::new();
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match finals.last_mut() {
            Some(last) if last["segment"] == v["segment"] => {
                let text =
                    format!("{} {}", last["text"].as_str().unwrap(), v["text"].as_str().unwrap());
                last["text"] = text.into();
            }
            _ => finals.push(json!({"segment": v["segment"], "text": v["text"]})),
        }
    }
    finals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_final_and_the_room_goes_on_elsewhere() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), SENTENCES, 1200);
    let nats_port = free_port();
    let _nats = nats(&dir.path().join("nats"), nats_port);
    let (mut a, a_addr) = node("a", nats_port).await;
    let (_b, b_addr) = node("b", nats_port).await;
    let (_c, c_addr) = node("c", nats_port).await;

    let hk_on_b = watch(b_addr, "standup", "hk").await;
    let cn_on_c = watch(c_addr, "standup", "cn").await;
    let (ws, ready) = try_ingest(a_addr, "standup").await;
    assert_eq!(ready["type"], "ready", "{ready}");
    // A second node refuses the room while A owns it, naming the owner.
    let (_, busy) = try_ingest(b_addr, "standup").await;
    assert_eq!(busy["code"], "session_busy", "{busy}");
    assert!(busy["message"].as_str().unwrap().contains("node a"), "{busy}");

    // About half the speech to A, in real time; the finals it has echoed must all
    // be stored before A dies: wait until node C has them.
    let half = audio.len() / 2 / 3200 * 3200;
    let (mut sink, mut source) = ws.split();
    let echoed = tokio::spawn(async move {
        let mut finals = Vec::new();
        while let Some(Ok(Message::Text(t))) = source.next().await {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "final" {
                finals.push(v);
            }
        }
        finals
    });
    let started = Instant::now();
    for (i, frame) in audio[..half].chunks(3200).enumerate() {
        let due = Duration::from_millis(i as u64 * 100);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        sink.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    // Let A commit what it has heard, then kill it mid-utterance (the next one
    // starts in the audio that follows).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let on_c = transcript(c_addr, "standup").await.len();
        if on_c > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no final reached node C from A");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before_kill = transcript(c_addr, "standup").await;
    a.0.kill().unwrap();
    let _ = a.0.wait();
    let from_a = echoed.await.unwrap();
    drop(sink);
    assert!(!from_a.is_empty());
    for f in &from_a {
        assert!(
            before_kill.iter().any(|t| t["segment"] == f["segment"] && t["text"] == f["text"]),
            "final {f} from A is not in the cluster: {before_kill:?}"
        );
    }

    // The client reconnects to B: refused while A's lease lives, then it continues.
    let killed = Instant::now();
    let mut ws = loop {
        let (ws, first) = try_ingest(b_addr, "standup").await;
        if first["type"] == "ready" {
            assert!(
                first["next_segment"].as_u64().unwrap()
                    > from_a.last().unwrap()["segment"].as_u64().unwrap(),
                "{first}"
            );
            break ws;
        }
        assert_eq!(first["code"], "session_busy", "{first}");
        assert!(killed.elapsed() < Duration::from_secs(15), "A's lease never lapsed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    stream(&mut ws, &audio[half..], 1.0).await;
    let (from_b, code) = stop(&mut ws).await;
    assert_eq!(code, 1000);
    assert!(!from_b.is_empty(), "B finalized the rest");

    // Node C's transcript: every final once, ids increasing, the whole meeting.
    let all = transcript(c_addr, "standup").await;
    let ids: Vec<u64> = all.iter().map(|f| f["segment"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for f in from_a.iter().chain(&from_b) {
        let n =
            all.iter().filter(|t| t["segment"] == f["segment"] && t["text"] == f["text"]).count();
        assert_eq!(n, 1, "{f} in {all:?}");
    }
    let text: String =
        all.iter().map(|f| f["text"].as_str().unwrap()).collect::<Vec<_>>().join(" ");
    assert!(words(&text).contains(&"morning".to_string()), "{text}");
    assert!(words(&text).contains(&"thank".to_string()), "{text}");
    // B transcribes too: the same list.
    assert_eq!(transcript(b_addr, "standup").await, all);

    // The viewers on B (hk) and C (cn) got every final, live, across the failover.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (task, seen) in [hk_on_b, cn_on_c] {
        task.abort();
        let seen: Vec<u64> =
            seen.lock().unwrap().iter().map(|f| f["segment"].as_u64().unwrap()).collect();
        assert_eq!(seen, ids, "a viewer's finals");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_a_room_one_wins() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let _nats = nats(&dir.path().join("nats"), nats_port);
    let (_a, a_addr) = node("a", nats_port).await;
    let (_b, b_addr) = node("b", nats_port).await;
    for round in 0..5 {
        let room = format!("race-{round}");
        let ((_wa, ra), (_wb, rb)) =
            tokio::join!(try_ingest(a_addr, &room), try_ingest(b_addr, &room));
        let won = [&ra, &rb].iter().filter(|r| r["type"] == "ready").count();
        assert_eq!(won, 1, "{ra} {rb}");
        let lost = if ra["type"] == "ready" { &rb } else { &ra };
        assert_eq!(lost["code"], "session_busy", "{lost}");
    }
    // Each node's metrics: connected, and the rooms it owns (the winners' sockets
    // are closed by now, so their leases go).
    let (status, metrics) = get(a_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("cantocap_cluster_connected{node=\"a\"} 1"), "{metrics}");
    assert!(metrics.contains("cantocap_cluster_leases{node=\"a\"}"), "{metrics}");
    assert!(metrics.contains("cantocap_cluster_buffered_finals{node=\"a\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_session_loses_nothing() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), &SENTENCES[..3], 1200);
    let store = dir.path().join("nats");
    let nats_port = free_port();
    let mut server = nats(&store, nats_port);
    // Every node has the webhook; the room's owner alone sends its finals.
    let (hook, delivered) = webhook_receiver().await;
    let url = format!("http://{hook}/captions");
    let (_a, a_addr) = node_with("a", nats_port, &["--webhook", &url]).await;
    let (_b, b_addr) = node_with("b", nats_port, &["--webhook", &url]).await;
    let (mut ws, ready) = try_ingest(a_addr, "restart").await;
    assert_eq!(ready["type"], "ready", "{ready}");
    let third = audio.len() / 3 / 3200 * 3200;
    stream(&mut ws, &audio[..third], 1.0).await;

    // NATS goes away: A is not ready (new ingests go elsewhere), its session runs on.
    drop(server);
    wait_ready(a_addr, false).await;
    let (status, body) = get(a_addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let (_, refused) = try_ingest(a_addr, "another-room").await;
    assert_eq!(refused["code"], "not_ready", "{refused}");
    stream(&mut ws, &audio[third..2 * third], 1.0).await;

    // Back: ready again, and what was held is published.
    server = nats(&store, nats_port);
    wait_ready(a_addr, true).await;
    stream(&mut ws, &audio[2 * third..], 1.0).await;
    let (finals, code) = stop(&mut ws).await;
    assert_eq!(code, 1000);
    assert!(finals.len() >= 2, "{finals:?}");
    // NATS came back with its JetStream store to recover, and B's client reconnects
    // with back-off: on a loaded machine (decoding 5 s behind) 20 s was too short.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let on_b = transcript(b_addr, "restart").await;
        let all_there = finals.iter().all(|f| {
            on_b.iter().filter(|t| t["segment"] == f["segment"] && t["text"] == f["text"]).count()
                == 1
        });
        if all_there && on_b.len() == finals.len() {
            break;
        }
        assert!(Instant::now() < deadline, "B has {on_b:?}, A sent {finals:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each final reached the webhook once (from A alone), the close too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = delivered.lock().unwrap().clone();
    let hooked: Vec<u64> = delivered
        .iter()
        .filter(|d| d["type"] == "final")
        .map(|d| d["event"]["segment"].as_u64().unwrap())
        .collect();
    let sent: Vec<u64> = finals.iter().map(|f| f["segment"].as_u64().unwrap()).collect();
    assert_eq!(hooked, sent, "{delivered:?}");
    assert_eq!(delivered.iter().filter(|d| d["type"] == "session_closed").count(), 1);
    drop(server);
}

#[test]
fn a_node_without_nats_says_so_and_stops() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["serve", "--listen", "127.0.0.1:0", "--quiet"])
        .arg("--model")
        .arg(model("ggml-tiny.en.bin"))
        .args(["--cluster", &format!("nats://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot reach NATS at nats://127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("-js"), "the message says what NATS needs: {stderr}");
}
