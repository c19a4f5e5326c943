//! The cluster on one machine: viewers spread over three nodes, failover; prints
//! markdown tables (see BENCHMARKS.md).
//!
//! ```sh
//! cargo build --release && cargo bench --bench cluster                 # 1,000 viewers per node
//! cargo bench --bench cluster -- --viewers-per-node 200 --clip-secs 20   # quick
//! ```
//!
//! Needs `nats-server` (Debian's, with JetStream) and `target/release/cantocap`. A
//! nats-server and three `cantocap serve --cluster` processes (A, B, C) run on
//! loopback ports; the bench process holds the viewers and the ingest client.
//!
//! 1. **Delivery**: one meeting streams the clip into node A at real-time pace;
//!    `--viewers-per-node` viewers watch it on each node (scripts hk, tw, cn, raw in
//!    turn). An event's delivery latency is its receipt by a viewer minus its receipt
//!    by the ingest client (which node A sends from the same publish): on A that is
//!    the single-node figure; on B and C it adds the trip through NATS (JetStream
//!    for finals) and the other node's mirror. Finals a viewer never got are counted.
//! 2. **Failover**: a second meeting streams into A; after half the clip, A is
//!    killed (SIGKILL) mid-utterance; the client reconnects to B every 100 ms (B
//!    refuses while A's lease lives) and streams the rest. Reported: kill → B
//!    accepts the ingest, and kill → the first final from B.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SENTENCES: &[&str] = &[
    "Good morning everyone, and welcome to the weekly project meeting.",
    "First, we will review the budget for the next quarter.",
    "The marketing team needs two more weeks to finish the campaign.",
    "Please send your comments to the shared folder before Friday.",
    "We will meet the client in Hong Kong at the end of the month.",
    "The new office opens in January, near the harbour.",
];
const SCRIPTS: [&str; 4] = ["hk", "tw", "cn", "raw"];

struct Options {
    viewers_per_node: usize,
    clip_secs: usize,
    model: PathBuf,
}

fn options() -> Result<Options, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut o =
        Options { viewers_per_node: 1000, clip_secs: 40, model: root.join("models/ggml-base.bin") };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--viewers-per-node" => {
                o.viewers_per_node = value()?.parse().map_err(|e| format!("{e}"))?
            }
            "--clip-secs" => o.clip_secs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--model" => o.model = PathBuf::from(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

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

fn clip(dir: &Path, seconds: usize) -> Vec<u8> {
    let mut audio = vec![0.0f32; 8000];
    let mut i = 0;
    while audio.len() < seconds * 16_000 {
        let wav = dir.join(format!("s{}.wav", i % SENTENCES.len()));
        if !wav.exists() {
            let ok = Command::new("espeak-ng")
                .args(["-v", "en", "-s", "150", "-w"])
                .arg(&wav)
                .arg(SENTENCES[i % SENTENCES.len()])
                .status();
            assert!(ok.expect("espeak-ng is needed").success());
        }
        audio.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
        audio.extend(std::iter::repeat_n(0.0, 24_000));
        i += 1;
    }
    audio.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

async fn ready(addr: SocketAddr, node: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut out = String::new();
                let _ = s.read_to_string(&mut out).await;
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
        }
        if let Ok(Some(status)) = node.0.try_wait() {
            panic!("a node exited: {status}");
        }
        assert!(Instant::now() < deadline, "{addr} not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node(name: &str, nats_port: u16, model: &Path) -> (Proc, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/cantocap");
    assert!(bin.is_file(), "build it first: cargo build --release");
    let child = Command::new(bin)
        .args(["serve", "--listen", &addr.to_string(), "--language", "en", "--quiet"])
        .args(["--max-viewers", "100000"])
        .arg("--model")
        .arg(model)
        .args(["--cluster", &format!("nats://127.0.0.1:{nats_port}"), "--node-name", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), addr)
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Finals received: (segment, when).
type Got = Arc<Mutex<Vec<(u64, Instant)>>>;

/// `n` viewers of `room` on `addr`, each recording its finals.
async fn viewers(
    addr: SocketAddr,
    room: &str,
    n: usize,
) -> Vec<(tokio::task::JoinHandle<()>, Got)> {
    let mut out = Vec::new();
    for i in 0..n {
        let url = format!("ws://{addr}/v1/captions/{room}?script={}", SCRIPTS[i % 4]);
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("viewer");
        let got = Got::default();
        let list = Arc::clone(&got);
        out.push((
            tokio::spawn(async move {
                while let Some(m) = next_json(&mut ws).await {
                    if m["type"] == "final" {
                        let segment = m["segment"].as_u64().unwrap_or(0);
                        list.lock().unwrap().push((segment, Instant::now()));
                    }
                }
            }),
            got,
        ));
    }
    out
}

/// Open an ingest; the socket once `ready`, or the error message.
async fn ingest(addr: SocketAddr, room: &str) -> Result<Ws, Value> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ingest/{room}"))
        .await
        .map_err(|e| json!({"error": e.to_string()}))?;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    ws.send(Message::text(start.to_string())).await.unwrap();
    match next_json(&mut ws).await {
        Some(m) if m["type"] == "ready" => Ok(ws),
        Some(m) => Err(m),
        None => Err(json!({"error": "closed"})),
    }
}

/// Stream `audio` at real time over `ws`, then stop; the finals (segment, when)
/// as the client got them.
async fn stream(ws: Ws, audio: &[u8], stop: bool) -> Vec<(u64, Instant)> {
    let (mut sink, mut source) = ws.split();
    let reader = tokio::spawn(async move {
        let mut finals = Vec::new();
        while let Some(Ok(m)) = source.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "final" {
                    finals.push((v["segment"].as_u64().unwrap_or(0), Instant::now()));
                }
            }
        }
        finals
    });
    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        let due = Duration::from_millis(i as u64 * 100);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        if sink.send(Message::binary(frame.to_vec())).await.is_err() {
            break;
        }
    }
    if stop {
        let _ = sink.send(Message::text(r#"{"type":"stop"}"#)).await;
        tokio::time::timeout(Duration::from_secs(60), reader).await.unwrap().unwrap()
    } else {
        reader.abort();
        Vec::new()
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster: run with `cargo bench --bench cluster`");
        return;
    }
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cluster: {e}");
            std::process::exit(2);
        }
    };
    assert!(o.model.is_file(), "{} missing: run models/fetch-test-model.sh", o.model.display());
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(bench(o));
}

async fn bench(o: Options) {
    let dir = tempfile::tempdir().unwrap();
    let audio = clip(dir.path(), o.clip_secs);
    let nats_port = free_port();
    let _nats = Proc(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &nats_port.to_string(), "-sd"])
            .arg(dir.path().join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is needed: apt-get install nats-server"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (mut a, a_addr) = node("a", nats_port, &o.model);
    let (mut b, b_addr) = node("b", nats_port, &o.model);
    let (mut c, c_addr) = node("c", nats_port, &o.model);
    for (addr, node) in [(a_addr, &mut a), (b_addr, &mut b), (c_addr, &mut c)] {
        ready(addr, node).await;
    }
    println!(
        "{} s clip at real-time pace into node A; model {}; {} viewers per node\n",
        audio.len() / 32_000,
        o.model.file_name().unwrap().to_string_lossy(),
        o.viewers_per_node
    );

    // 1. Delivery.
    let mut watching = Vec::new();
    for (name, addr) in [("A (owner)", a_addr), ("B", b_addr), ("C", c_addr)] {
        watching.push((name, viewers(addr, "meeting", o.viewers_per_node).await));
    }
    let ws = ingest(a_addr, "meeting").await.expect("ingest on A");
    let sent = stream(ws, &audio, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("| viewers on | finals | delivery p50 / p99 / max (ms) | finals missed |");
    println!("|---|---|---|---|");
    for (name, list) in watching {
        let mut latency = Vec::new();
        let mut missed = 0;
        for (task, got) in list {
            task.abort();
            let got = got.lock().unwrap();
            for (segment, at) in &sent {
                match got.iter().find(|(s, _)| s == segment) {
                    Some((_, viewed)) => latency.push(
                        viewed.saturating_duration_since(*at).as_secs_f64() * 1000.0
                            - at.saturating_duration_since(*viewed).as_secs_f64() * 1000.0,
                    ),
                    None => missed += 1,
                }
            }
        }
        println!(
            "| {name} | {} | {:.1} / {:.1} / {:.1} | {missed} |",
            sent.len(),
            percentile(&mut latency, 0.5),
            percentile(&mut latency, 0.99),
            percentile(&mut latency, 1.0),
        );
    }

    // 2. Failover.
    let half = audio.len() / 2 / 3200 * 3200;
    let ws = ingest(a_addr, "failover").await.expect("ingest on A");
    stream(ws, &audio[..half], false).await;
    let killed = Instant::now();
    let _ = a.0.kill();
    let _ = a.0.wait();
    let ws = loop {
        match ingest(b_addr, "failover").await {
            Ok(ws) => break ws,
            Err(_) if killed.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("B never took the room: {e}"),
        }
    };
    let accepted = killed.elapsed();
    let finals = stream(ws, &audio[half..], true).await;
    let first = finals.first().map(|(_, at)| at.duration_since(killed));
    println!("\n| failover | seconds |\n|---|---|");
    println!("| SIGKILL of A → B accepts the ingest | {:.2} |", accepted.as_secs_f64());
    match first {
        Some(first) => {
            println!("| SIGKILL of A → first final from B | {:.2} |", first.as_secs_f64())
        }
        None => println!("| SIGKILL of A → first final from B | none |"),
    }
}
