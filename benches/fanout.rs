//! The caption server under load; prints markdown tables (see BENCHMARKS.md).
//!
//! ```sh
//! cargo bench --bench fanout                     # 1,000 viewers, k = 1..4 sessions
//! cargo bench --bench fanout -- --viewers 200 --sessions-max 2 --clip-secs 20   # quick
//! ```
//!
//! Options: `--viewers N` (1000), `--sessions-max K` (4), `--clip-secs S` (40: speech
//! per session in the fan-out and capacity runs), `--idle-sessions N` (4),
//! `--model PATH` (models/ggml-base.bin), `--threads N` and `--decode-slots N` (the
//! server's defaults: 2 threads, one slot per 2 cores). The process needs about 2 × viewers + 100
//! file descriptors (`ulimit -n 4096`); it stops at once, saying so, if the limit is
//! lower. Speech is espeak-ng English at real-time pace; the server runs in-process
//! with its default limits on a multi-threaded tokio runtime.
//!
//! 1. **Fan-out**: one session streams speech while `--viewers` viewer WebSockets
//!    (scripts hk, tw, cn, raw in turn) watch it on loopback, in the same process.
//!    Delivery latency of an event: its receipt by a viewer minus its first receipt
//!    by any client (the ingest client, fed from the same publish, or a viewer): the
//!    emit instant plus one loopback hop, as the server does not put wall-clock
//!    times on the wire. Finals a viewer never got are counted.
//! 2. **Memory**: RSS of this process (VmRSS, /proc/self/status) before and after
//!    the viewers connect, with the viewer clients in a child process so that only
//!    the server's side is counted; then with `--idle-sessions` ingest sessions
//!    streaming silence; and after each capacity run.
//! 3. **Capacity**: k = 1, 2, … concurrent sessions each stream the clip at real
//!    time. Final latency: end of an utterance's audio sent → the final holding its
//!    last word received by the ingest client. "stop → close": from `stop` to the
//!    server's close, i.e. how far behind decoding was at the end. A run where that
//!    exceeds 10 s, or where the last third of utterances waits more than 2 s longer
//!    than the first third, is falling behind without bound; the bench stops there.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cantocap::server::{Limits, Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
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
    "Thank you all for your hard work this year.",
    "Our next meeting is on Tuesday at ten in the morning.",
];
const SCRIPTS: [&str; 4] = ["hk", "tw", "cn", "raw"];
/// Longest wait for the close after `stop`; a session still decoding then is
/// hopelessly behind.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

struct Options {
    viewers: usize,
    sessions_max: usize,
    clip_secs: usize,
    idle_sessions: usize,
    model: PathBuf,
    /// Decode threads and slots (0: the server's defaults).
    threads: usize,
    decode_slots: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        viewers: 1000,
        sessions_max: 4,
        clip_secs: 40,
        idle_sessions: 4,
        model: Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base.bin"),
        threads: 0,
        decode_slots: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{arg} {v}: {e}"));
        match arg.as_str() {
            "--bench" => {}
            "--viewers" => o.viewers = number(value()?)?,
            "--sessions-max" => o.sessions_max = number(value()?)?.max(1),
            "--clip-secs" => o.clip_secs = number(value()?)?.max(5),
            "--idle-sessions" => o.idle_sessions = number(value()?)?,
            "--model" => o.model = PathBuf::from(value()?),
            "--threads" => o.threads = number(value()?)?,
            "--decode-slots" => o.decode_slots = number(value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The soft limit on open files.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Utterances spoken by espeak-ng until `seconds`, 1.5 s apart: 16 kHz s16le bytes
/// and the stream time (ms) where each utterance ends.
fn clip(dir: &Path, seconds: usize) -> (Vec<u8>, Vec<u64>) {
    let mut audio = vec![0.0f32; 8000];
    let mut ends = Vec::new();
    let mut i = 0;
    while audio.len() < seconds * 16_000 {
        let wav = dir.join(format!("s{}.wav", i % SENTENCES.len()));
        if !wav.exists() {
            let ok = Command::new("espeak-ng")
                .args(["-v", "en", "-s", "150", "-w"])
                .arg(&wav)
                .arg(SENTENCES[i % SENTENCES.len()])
                .status();
            assert!(ok.expect("espeak-ng is needed: apt-get install espeak-ng").success());
        }
        audio.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
        ends.push(audio.len() as u64 / 16);
        audio.extend(std::iter::repeat_n(0.0, 24_000));
        i += 1;
    }
    let bytes = audio.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect();
    (bytes, ends)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

async fn connect(url: &str) -> Ws {
    let mut tries = 0;
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return ws,
            // A full accept queue: try again shortly.
            Err(e) if tries < 50 => {
                tries += 1;
                if tries == 50 {
                    panic!("cannot connect to {url}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }
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

/// One received caption event: (final?, segment, revision, when).
type Receipt = (bool, u64, u64, Instant);

fn receipt(v: &Value) -> Option<(bool, u64, u64)> {
    let is_final = match v["type"].as_str()? {
        "final" => true,
        "partial" => false,
        _ => return None,
    };
    Some((is_final, v["segment"].as_u64()?, v["revision"].as_u64().unwrap_or(0)))
}

/// An ingest session that streams `audio` at real time (once `go` fires, if
/// given), then stops and waits for the close (at most `drain_limit`); returns the
/// instant streaming began, its events as (receipt, JSON), and the time from stop
/// to close.
async fn run_ingest(
    addr: SocketAddr,
    session: String,
    audio: Arc<Vec<u8>>,
    go: Option<oneshot::Receiver<()>>,
    drain_limit: Duration,
) -> (Instant, Vec<(Receipt, Value)>, Duration) {
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/{session}")).await;
    let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    ws.send(Message::text(start.to_string())).await.unwrap();
    let ready = next_json(&mut ws).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    let (mut sink, mut stream) = ws.split();
    let (stopped_tx, stopped_rx) = oneshot::channel::<Instant>();
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        // After stop, wait at most drain_limit for the close.
        let deadline = async move {
            match stopped_rx.await {
                Ok(at) => tokio::time::sleep_until((at + drain_limit).into()).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            let m = tokio::select! {
                m = stream.next() => m,
                _ = &mut deadline => break,
            };
            let Some(Ok(m)) = m else { break };
            let now = Instant::now();
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if let Some((f, s, r)) = receipt(&v) {
                        events.push(((f, s, r, now), v));
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        (events, Instant::now())
    });
    if let Some(go) = go {
        let _ = go.await;
    }
    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        let due = Duration::from_millis(i as u64 * 100);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        sink.send(Message::binary(frame.to_vec())).await.unwrap();
    }
    sink.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    let stopped = Instant::now();
    let _ = stopped_tx.send(stopped);
    let (events, closed) = reader.await.unwrap();
    let _ = sink.close().await;
    (started, events, closed - stopped)
}

/// Open `n` viewers of `session`, at most 64 handshakes at a time.
async fn open_viewers(addr: SocketAddr, session: &str, n: usize) -> Vec<Ws> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let gate = Arc::clone(&gate);
            let url = format!("ws://{addr}/v1/captions/{session}?script={}", SCRIPTS[i % 4]);
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let mut ws = connect(&url).await;
                let ready = next_json(&mut ws).await.expect("ready");
                assert_eq!(ready["type"], "ready", "{ready}");
                ws
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Child mode: hold `n` viewers, print the RSS before and after, wait for stdin to close.
fn viewer_clients(url_base: &str, n: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let before = rss_kib("self");
        let (addr, session) = url_base.split_once('/').unwrap();
        let viewers = open_viewers(addr.parse().unwrap(), session, n).await;
        println!("connected {before} {}", rss_kib("self"));
        std::io::stdout().flush().unwrap();
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
        drop(viewers);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--viewer-clients") {
        return viewer_clients(&args[i + 2], args[i + 1].parse().unwrap());
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("fanout: run with `cargo bench --bench fanout`");
        return;
    }
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(2);
        }
    };
    let needed = 2 * o.viewers as u64 + 100;
    if let Some(limit) = open_files_limit().filter(|&l| l < needed) {
        eprintln!(
            "fanout: {} viewers need about {needed} open files; the limit is {limit}: \
             run `ulimit -n {}` first",
            o.viewers,
            needed.next_power_of_two()
        );
        std::process::exit(2);
    }
    assert!(o.model.is_file(), "{} missing: run models/fetch-test-model.sh", o.model.display());
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(bench(o));
}

async fn bench(o: Options) {
    let dir = tempfile::tempdir().unwrap();
    let (audio, ends) = clip(dir.path(), o.clip_secs);
    let audio = Arc::new(audio);
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: o.model.clone(),
        log: false,
        limits: Limits {
            max_sessions: o.sessions_max.max(o.idle_sessions) + 1,
            max_viewers_per_session: o.viewers.max(1),
            ..Limits::default()
        },
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    if o.threads > 0 {
        config.transcribe.threads = o.threads;
    }
    if o.decode_slots > 0 {
        config.limits.decode_slots = o.decode_slots;
    }
    let decode = (config.transcribe.threads, config.limits.decode_slots);
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "model {}, {cores} cores, {} decode threads, {} decode slot(s); clip {} s, {} utterances; load average at start: {}",
        o.model.file_name().unwrap().to_string_lossy(),
        decode.0,
        decode.1,
        audio.len() / 32_000,
        ends.len(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );

    // Memory per viewer, server side: the clients live in a child process.
    let base_rss = rss_kib("self");
    let mut memory = Vec::new();
    let mut holder = tokio::spawn(async move {
        let mut ws = connect(&format!("ws://{addr}/v1/ingest/mem")).await;
        let start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
        ws.send(Message::text(start.to_string())).await.unwrap();
        next_json(&mut ws).await.expect("ready");
        // Silence keeps the session open without decoding.
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if ws.send(Message::binary(vec![0u8; 16_000])).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib("self");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--viewer-clients", &o.viewers.to_string(), &format!("{addr}/mem")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let client: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    assert_eq!(client.len(), 2, "the viewer clients said {line:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib("self");
    let per = |b: u64, a: u64, n: usize| (a.saturating_sub(b)) as f64 / n.max(1) as f64;
    memory.push(format!(
        "| {} viewers, server side | {before} | {after} | {:.1} KiB per viewer |",
        o.viewers,
        per(before, after, o.viewers)
    ));
    memory.push(format!(
        "| {} viewers, client side (tokio-tungstenite, child process) | {} | {} | {:.1} KiB per viewer |",
        o.viewers,
        client[0],
        client[1],
        per(client[0], client[1], o.viewers)
    ));
    drop(child.stdin.take());
    let _ = child.wait();
    holder.abort();
    let _ = (&mut holder).await;

    // Fan-out latency: one session, the viewers in this process.
    // The viewers join before any speech, so none gets a final in its backlog.
    let (done_tx, done_rx) = watch::channel(false);
    let (go, go_rx) = oneshot::channel();
    let ingest = tokio::spawn(run_ingest(
        addr,
        "fan".into(),
        Arc::clone(&audio),
        Some(go_rx),
        Duration::from_secs(3600),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await; // the session exists now
    let watchers: Vec<_> = open_viewers(addr, "fan", o.viewers)
        .await
        .into_iter()
        .map(|mut ws| {
            let mut done = done_rx.clone();
            tokio::spawn(async move {
                let mut got: Vec<Receipt> = Vec::new();
                loop {
                    tokio::select! {
                        _ = done.wait_for(|&d| d) => return got,
                        m = ws.next() => match m {
                            Some(Ok(Message::Text(t))) => {
                                let now = Instant::now();
                                if let Some((f, s, r)) = serde_json::from_str::<Value>(&t).ok().as_ref().and_then(receipt) {
                                    got.push((f, s, r, now));
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => return got,
                        }
                    }
                }
            })
        })
        .collect();
    let _ = go.send(());
    let (_, events, _) = ingest.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = done_tx.send(true);
    // The first receipt of each event by any client, the ingest client included:
    // the emit instant plus one loopback hop.
    let mut first: std::collections::HashMap<(bool, u64, u64), Instant> =
        events.iter().map(|((f, s, r, at), _)| ((*f, *s, *r), *at)).collect();
    let finals_sent = events.iter().filter(|((f, ..), _)| *f).count();
    let partials_sent = events.len() - finals_sent;
    let mut got_all = Vec::new();
    let mut missed = 0;
    for w in watchers {
        let got = w.await.unwrap();
        missed += finals_sent.saturating_sub(got.iter().filter(|g| g.0).count());
        for &(f, s, r, at) in &got {
            if let Some(t) = first.get_mut(&(f, s, r)) {
                *t = (*t).min(at);
            }
        }
        got_all.push(got);
    }
    let (mut final_ms, mut partial_ms) = (Vec::new(), Vec::new());
    for (f, s, r, at) in got_all.into_iter().flatten() {
        let Some(&t) = first.get(&(f, s, r)) else { continue };
        let ms = (at - t).as_secs_f64() * 1000.0;
        if f {
            final_ms.push(ms);
        } else {
            partial_ms.push(ms);
        }
    }
    println!();
    println!("### Fan-out: one session, {} viewers (hk, tw, cn, raw in turn), loopback", o.viewers);
    println!();
    println!("| events | emitted | received by viewers | finals missed | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (name, n, v, missed) in [
        ("finals", finals_sent, &mut final_ms, missed.to_string()),
        ("partials", partials_sent, &mut partial_ms, "–".into()),
    ] {
        println!(
            "| {name} | {n} | {} | {missed} | {:.1} ms | {:.1} ms | {:.1} ms |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 1.0),
        );
    }

    // Memory per session: ingest sessions streaming silence.
    if o.idle_sessions > 0 {
        let before = rss_kib("self");
        let silence = Arc::new(vec![0u8; 32_000 * 4]);
        let idle: Vec<_> = (0..o.idle_sessions)
            .map(|i| {
                tokio::spawn(run_ingest(
                    addr,
                    format!("idle{i}"),
                    Arc::clone(&silence),
                    None,
                    DRAIN_LIMIT,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_kib("self");
        for h in idle {
            let _ = h.await;
        }
        memory.push(format!(
            "| {} ingest sessions streaming silence | {before} | {after} | {:.0} KiB per session |",
            o.idle_sessions,
            per(before, after, o.idle_sessions)
        ));
    }

    // Capacity: k sessions of speech at real time.
    println!();
    println!("### Capacity: k sessions streaming speech at real time");
    println!();
    println!("| k | finals | final p50 | final p90 | final max | first third → last third (mean) | max lag_ms | stop → close | peak RSS | keeps up |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for k in 1..=o.sessions_max {
        let before = rss_kib("self");
        let (stop_sampling, mut sampling) = watch::channel(false);
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            while !*sampling.borrow() {
                peak = rss_kib("self").max(peak);
                let _ = tokio::time::timeout(Duration::from_millis(250), sampling.changed()).await;
            }
            peak
        });
        let runs: Vec<_> = (0..k)
            .map(|i| {
                tokio::spawn(run_ingest(
                    addr,
                    format!("cap{k}-{i}"),
                    Arc::clone(&audio),
                    None,
                    DRAIN_LIMIT,
                ))
            })
            .collect();
        let (mut latency, mut thirds, mut max_lag, mut drain, mut finals) =
            (Vec::new(), [0.0f64; 2], 0u64, Duration::ZERO, 0);
        let mut outcomes = Vec::new();
        for r in runs {
            outcomes.push(r.await.unwrap());
        }
        let _ = stop_sampling.send(true);
        let peak_rss = sampler.await.unwrap();
        for (started, events, to_close) in outcomes {
            drain = drain.max(to_close);
            let fin: Vec<_> = events.iter().filter(|((f, ..), _)| *f).collect();
            finals += fin.len();
            for (_, v) in &events {
                max_lag = max_lag.max(v["lag_ms"].as_u64().unwrap_or(0));
            }
            let mut mine = Vec::new();
            for &end in &ends {
                // Whisper's word times run early by up to a second; utterances are
                // 1.5 s apart, so a final ending within 1.2 s of the end holds the
                // utterance's last word.
                if let Some(((_, _, _, at), _)) =
                    fin.iter().find(|(_, v)| v["end_ms"].as_u64().unwrap_or(0) + 1200 >= end)
                {
                    let due = started + Duration::from_millis(end);
                    mine.push(at.saturating_duration_since(due).as_secs_f64() * 1000.0);
                }
            }
            let third = (mine.len() / 3).max(1);
            let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
            thirds[0] += mean(&mine[..third.min(mine.len())]) / k as f64;
            thirds[1] += mean(&mine[mine.len().saturating_sub(third)..]) / k as f64;
            latency.extend(mine);
        }
        let behind = drain > Duration::from_secs(10) || thirds[1] > thirds[0] + 2000.0;
        let drain = if drain >= DRAIN_LIMIT {
            format!("> {} s", DRAIN_LIMIT.as_secs())
        } else {
            format!("{:.1} s", drain.as_secs_f64())
        };
        println!(
            "| {k} | {finals} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} → {:.0} ms | {max_lag} | {drain} | {} MiB | {} |",
            percentile(&mut latency, 0.5),
            percentile(&mut latency, 0.9),
            percentile(&mut latency, 1.0),
            thirds[0],
            thirds[1],
            peak_rss / 1024,
            if behind { "no: falling behind" } else { "yes" },
        );
        memory.push(format!(
            "| {k} session(s) streaming speech (capacity run, peak) | {before} | {peak_rss} | {:.0} KiB per session |",
            per(before, peak_rss, k)
        ));
        if behind {
            break;
        }
    }

    println!();
    println!(
        "### Memory (VmRSS, KiB; this process started at {base_rss} KiB with the model loaded)"
    );
    println!();
    println!("| state | before | after | per unit |");
    println!("|---|---|---|---|");
    for line in memory {
        println!("{line}");
    }
    server.shutdown().await;
}
