//! A caption-server client for the tests of the overlay page and of session
//! lifetimes: an in-process server, WebSocket ingest and viewers, plain GETs.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use cantocap::server::{Limits, Server, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::*;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one message may take (decoding on a loaded 2-core machine).
pub const WAIT: Duration = Duration::from_secs(120);

/// Sentences spoken by espeak-ng as 16 kHz mono s16le, each followed by `pause_ms`
/// of silence.
pub fn speech(dir: &Path, sentences: &[&str], pause_ms: usize) -> Vec<u8> {
    let mut samples = vec![0.0f32; 4000];
    for (i, s) in sentences.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        speak("en", s, &wav);
        samples.extend(cantocap::audio::read_wav(&wav).unwrap().to_whisper_input().unwrap());
        samples.extend(std::iter::repeat_n(0.0, pause_ms * 16));
    }
    samples.iter().flat_map(|&x| ((x * 32767.0) as i16).to_le_bytes()).collect()
}

/// A loopback server on a free port with the tiny.en model, English, quiet.
pub fn config(data_dir: Option<&Path>) -> ServerConfig {
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: model("ggml-tiny.en.bin"),
        data_dir: data_dir.map(Path::to_path_buf),
        log: false,
        limits: Limits { max_realtime_factor: 20.0, ..Limits::default() },
        ..Default::default()
    };
    config.transcribe.language = Some("en".into());
    config
}

/// Bind and wait for the model.
pub async fn start(config: ServerConfig) -> Server {
    let server = Server::bind(config).await.unwrap();
    server.ready().await.unwrap();
    server
}

pub async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next text message as JSON, or the close code (as `{"close":code}`).
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                return json!({"close": frame.map_or(1005, |f| u16::from(f.code))})
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return json!({"close": 1006, "error": e.to_string()}),
            None => return json!({"close": 1006}),
        }
    }
}

/// Open an ingest session (16 kHz mono s16le plus `extra` start fields) and wait
/// for `ready`.
pub async fn ingest(addr: SocketAddr, session: &str, extra: Value) -> Ws {
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/{session}")).await;
    let mut start = json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"});
    for (k, v) in extra.as_object().unwrap() {
        start[k] = v.clone();
    }
    ws.send(Message::text(start.to_string())).await.unwrap();
    let ready = next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    ws
}

/// Send audio in 100 ms frames at `speed` times real time.
pub async fn stream(ws: &mut Ws, audio: &[u8], speed: f64) {
    let started = Instant::now();
    for (i, frame) in audio.chunks(3200).enumerate() {
        let due = Duration::from_secs_f64(i as f64 * 0.1 / speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        ws.send(Message::binary(frame.to_vec())).await.unwrap();
    }
}

/// Send `stop` and collect the finals until the close; returns (finals, close code).
pub async fn stop(ws: &mut Ws) -> (Vec<Value>, u16) {
    ws.send(Message::text(r#"{"type":"stop"}"#)).await.unwrap();
    let mut finals = Vec::new();
    loop {
        let m = next(ws).await;
        if let Some(code) = m["close"].as_u64() {
            return (finals, code as u16);
        }
        if m["type"] == "final" {
            finals.push(m);
        }
    }
}

/// A viewer's first message (`ready`, or an error) and the socket.
pub async fn viewer(addr: SocketAddr, session: &str) -> (Ws, Value) {
    let mut ws = connect(&format!("ws://{addr}/v1/captions/{session}?script=raw")).await;
    let first = next(&mut ws).await;
    (ws, first)
}

/// Close a WebSocket and wait until the server has closed its side.
pub async fn leave(mut ws: Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
}

/// A plain GET; (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub fn texts(finals: &[Value]) -> Vec<String> {
    finals.iter().map(|f| f["text"].as_str().unwrap().to_string()).collect()
}
