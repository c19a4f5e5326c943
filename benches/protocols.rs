//! What each ingest protocol's translation layer adds to final latency; prints a
//! markdown table (see BENCHMARKS.md).
//!
//! ```sh
//! cargo bench --bench protocols                       # 40 s clip, Whisper base
//! cargo bench --bench protocols -- --clip-secs 20 --model models/ggml-tiny.en.bin
//! ```
//!
//! The same espeak-ng clip is streamed at real-time pace, once per protocol, into a
//! fresh room of an in-process server: cantocap's native `/v1/ingest`, WhisperLive
//! (`/`, float32), OpenAI realtime (`/v1/realtime`, PCM16 at 24 kHz, server VAD) and
//! Jitsi skynet (`/streaming-whisper/ws/…`, 60-byte headers, HS512 JWT, 100 ms
//! frames rather than Jigasi's 1.5 s, so that pacing is the same). A native
//! viewer of the room (`/v1/captions/…`) watches each run.
//!
//! - **Final latency**: the end of an utterance's audio sent → its final received by
//!   the protocol's client (the protocol's own final: a `final` event, a newly
//!   completed WhisperLive segment, a realtime `completed`, a Jitsi `final`). Mostly
//!   decoding; it differs between runs because decoding does.
//! - **Added by the protocol**: the client's receipt of a final minus the native
//!   viewer's receipt of the same final. Both are sent from the same publish, so
//!   this is what the protocol's translation (and its socket task) adds; the native
//!   ingest client's own figure is the baseline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cantocap::server::{JitsiConfig, Server, ServerConfig};
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
    "Thank you all for your hard work this year.",
    "Our next meeting is on Tuesday at ten in the morning.",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Native,
    WhisperLive,
    Realtime,
    Jitsi,
}

impl Protocol {
    const ALL: [Protocol; 4] = [Self::Native, Self::WhisperLive, Self::Realtime, Self::Jitsi];

    fn name(self) -> &'static str {
        match self {
            Self::Native => "native `/v1/ingest`",
            Self::WhisperLive => "WhisperLive `/`",
            Self::Realtime => "OpenAI realtime",
            Self::Jitsi => "Jitsi skynet",
        }
    }
}

struct Options {
    clip_secs: usize,
    model: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        clip_secs: 40,
        model: Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base.bin"),
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--clip-secs" => o.clip_secs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--model" => o.model = PathBuf::from(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Utterances spoken by espeak-ng until `seconds`, 1.5 s apart, as 16 kHz samples.
fn clip(dir: &Path, seconds: usize) -> Vec<f32> {
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
            assert!(ok.expect("espeak-ng is needed: apt-get install espeak-ng").success());
        }
        audio.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
        audio.extend(std::iter::repeat_n(0.0, 24_000));
        i += 1;
    }
    audio
}

/// 16 kHz → 24 kHz by linear interpolation (good enough for speech the server
/// resamples again).
fn to_24k(audio: &[f32]) -> Vec<f32> {
    (0..audio.len() * 3 / 2)
        .map(|i| {
            let x = i as f64 * 2.0 / 3.0;
            let (j, frac) = (x as usize, (x - x.floor()) as f32);
            let a = audio[j];
            let b = *audio.get(j + 1).unwrap_or(&a);
            a + (b - a) * frac
        })
        .collect()
}

fn s16le(audio: &[f32]) -> Vec<u8> {
    audio.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
}

const KID: &str = "bench";
const SECRET: &str = "a-shared-secret-of-32-bytes-or-more";

/// An HS512 Jitsi JWT, as Jigasi signs one.
fn jitsi_token() -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    header.kid = Some(KID.into());
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        + 3600;
    let claims = json!({"aud": "jitsi", "iss": "jigasi", "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
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

/// What a protocol client saw: each final's text and when it arrived.
type Finals = Vec<(String, Instant)>;

/// The finals in one message of `protocol`; `seen`: WhisperLive segment starts
/// already completed.
fn finals_in(protocol: Protocol, m: &Value, seen: &mut Vec<String>) -> Vec<String> {
    match protocol {
        Protocol::Native if m["type"] == "final" => vec![m["text"].as_str().unwrap().into()],
        Protocol::Realtime
            if m["type"] == "conversation.item.input_audio_transcription.completed" =>
        {
            vec![m["transcript"].as_str().unwrap().into()]
        }
        Protocol::Jitsi if m["type"] == "final" => vec![m["text"].as_str().unwrap().into()],
        Protocol::WhisperLive => {
            let mut out = Vec::new();
            for s in m["segments"].as_array().into_iter().flatten() {
                let start = s["start"].as_str().unwrap_or_default().to_string();
                if s["completed"] == true && !seen.contains(&start) {
                    seen.push(start);
                    out.push(s["text"].as_str().unwrap_or_default().into());
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Stream the clip into room `room` over `protocol` at real time; the client's
/// finals and the instant streaming began.
async fn run(addr: SocketAddr, protocol: Protocol, room: &str, audio: &[f32]) -> (Finals, Instant) {
    let (url, hello, frames): (String, Option<Value>, Vec<Message>) = match protocol {
        Protocol::Native => (
            format!("ws://{addr}/v1/ingest/{room}"),
            Some(json!({"type": "start", "sample_rate": 16000, "channels": 1,
                "format": "s16le", "script": "raw"})),
            s16le(audio).chunks(3200).map(|c| Message::binary(c.to_vec())).collect(),
        ),
        Protocol::WhisperLive => (
            format!("ws://{addr}/?session={room}&script=raw"),
            Some(json!({"uid": "bench", "language": "en", "task": "transcribe",
                "model": "small", "use_vad": true})),
            audio
                .chunks(1600)
                .map(|c| {
                    Message::binary(c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
                })
                .collect(),
        ),
        Protocol::Realtime => (
            format!("ws://{addr}/v1/realtime?intent=transcription&session={room}&script=raw"),
            Some(json!({"type": "session.update", "session": {"type": "transcription",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"language": "en"}, "turn_detection": {"type": "server_vad"}}}}})),
            s16le(&to_24k(audio))
                .chunks(4800)
                .map(|c| {
                    let audio = base64::engine::general_purpose::STANDARD.encode(c);
                    Message::text(
                        json!({"type": "input_audio_buffer.append", "audio": audio}).to_string(),
                    )
                })
                .collect(),
        ),
        Protocol::Jitsi => (
            format!(
                "ws://{addr}/streaming-whisper/ws/{room}?auth_token={}&script=raw",
                jitsi_token()
            ),
            None,
            s16le(audio)
                .chunks(3200)
                .map(|c| {
                    let mut frame = b"bench|en-US".to_vec();
                    frame.resize(60, 0);
                    frame.extend_from_slice(c);
                    Message::binary(frame)
                })
                .collect(),
        ),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
    if let Some(hello) = hello {
        ws.send(Message::text(hello.to_string())).await.unwrap();
    }
    // The handshake's answers: ready, SERVER_READY, session.created + updated.
    let answers = match protocol {
        Protocol::Realtime => 2,
        Protocol::Jitsi => 0,
        _ => 1,
    };
    for _ in 0..answers {
        let m = next_json(&mut ws).await.expect("handshake");
        assert!(m.get("error").is_none() && m["status"] != "ERROR", "{m}");
    }
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        let mut finals = Finals::new();
        let mut seen = Vec::new();
        while let Some(Ok(m)) = stream.next().await {
            let now = Instant::now();
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    for text in finals_in(protocol, &v, &mut seen) {
                        finals.push((text, now));
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        finals
    });
    let started = Instant::now();
    for (i, frame) in frames.into_iter().enumerate() {
        let due = Duration::from_millis(i as u64 * 100);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        sink.send(frame).await.unwrap();
    }
    match protocol {
        Protocol::Native => sink.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap(),
        Protocol::WhisperLive => {
            sink.send(Message::binary(b"END_OF_AUDIO".to_vec())).await.unwrap()
        }
        Protocol::Jitsi => sink.send(Message::binary(vec![0u8])).await.unwrap(),
        Protocol::Realtime => {
            // Its last turn is over when the server VAD says so: give it time, then go.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = sink.close().await;
        }
    }
    let finals = tokio::time::timeout(Duration::from_secs(120), reader).await.unwrap().unwrap();
    (finals, started)
}

/// What a native viewer saw: each final's text, end (ms of room time) and receipt.
type Viewed = Arc<Mutex<Vec<(String, u64, Instant)>>>;

/// A native viewer of `room`, recording into the returned list until aborted.
async fn watch(addr: SocketAddr, room: String) -> (tokio::task::JoinHandle<()>, Viewed) {
    let url = format!("ws://{addr}/v1/captions/{room}?script=raw");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("viewer");
    let viewed = Viewed::default();
    let list = Arc::clone(&viewed);
    let task = tokio::spawn(async move {
        while let Some(m) = next_json(&mut ws).await {
            if m["type"] == "final" {
                let text = m["text"].as_str().unwrap_or_default().to_string();
                let end_ms = m["end_ms"].as_u64().unwrap_or(0);
                list.lock().unwrap().push((text, end_ms, Instant::now()));
            }
        }
    });
    (task, viewed)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("protocols: run with `cargo bench --bench protocols`");
        return;
    }
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("protocols: {e}");
            std::process::exit(2);
        }
    };
    assert!(o.model.is_file(), "{} missing: run models/fetch-test-model.sh", o.model.display());
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(bench(o));
}

async fn bench(o: Options) {
    let dir = tempfile::tempdir().unwrap();
    let audio = clip(dir.path(), o.clip_secs);
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: o.model.clone(),
        log: false,
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    config.jitsi = Some(JitsiConfig {
        audiences: vec!["jitsi".into()],
        keys_dir: None,
        zh_means: Default::default(),
        secrets: [(KID.to_string(), SECRET.to_string())].into(),
    });
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    let addr = server.local_addr();
    println!(
        "{} s clip at real-time pace, model {}, one protocol at a time\n",
        audio.len() / 16_000,
        o.model.file_name().unwrap().to_string_lossy()
    );
    println!("| protocol | finals matched | final latency p50 / p90 (ms) | added vs native viewer p50 / p90 / max (ms) |");
    println!("|---|---|---|---|");
    for (i, protocol) in Protocol::ALL.into_iter().enumerate() {
        let room = format!("bench-{i}");
        let (viewer, viewed) = watch(addr, room.clone()).await;
        let (finals, started) = run(addr, protocol, &room, &audio).await;
        // The room lingers with its viewer: read what it saw after a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        viewer.abort();
        let seen = viewed.lock().unwrap().clone();
        let (mut latency, mut added) = (Vec::new(), Vec::new());
        for (text, at) in &finals {
            let Some((_, end_ms, viewed)) = seen.iter().find(|(t, ..)| t.trim() == text.trim())
            else {
                continue;
            };
            let audio_sent = started + Duration::from_millis(*end_ms);
            latency.push(at.saturating_duration_since(audio_sent).as_secs_f64() * 1000.0);
            let diff = if at >= viewed {
                at.duration_since(*viewed).as_secs_f64()
            } else {
                -viewed.duration_since(*at).as_secs_f64()
            };
            added.push(diff * 1000.0);
        }
        println!(
            "| {} | {} of {} | {:.0} / {:.0} | {:.1} / {:.1} / {:.1} |",
            protocol.name(),
            added.len(),
            finals.len(),
            percentile(&mut latency, 0.5),
            percentile(&mut latency, 0.9),
            percentile(&mut added, 0.5),
            percentile(&mut added, 0.9),
            percentile(&mut added, 1.0),
        );
    }
    server.shutdown().await;
}
