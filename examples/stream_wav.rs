//! cargo run --release --example stream_wav -- ws://127.0.0.1:8787/v1/ingest/demo speech.wav
//!
//! Streams a WAV file to `cantocap serve` at real-time pace, as a meeting server
//! would: a `start` message, s16le frames of 40 ms at the file's own rate and
//! channel count, then `stop`; prints the caption events as they come back. Options
//! after the two arguments: `--token TOKEN`, `--frame-ms 20..100`, `--speed X`
//! (1 = real time; the server refuses audio far faster), `--script hk|tw|cn|raw`,
//! `--language CODE`.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stream_wav WS_URL FILE.wav [--token T] [--frame-ms MS] [--speed X] [--script S] [--language L]";
    let url = args.next().ok_or(usage)?;
    let path = args.next().ok_or(usage)?;
    let (mut token, mut frame_ms, mut speed, mut script, mut language) =
        (None, 40u64, 1.0f64, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--token" => token = Some(value),
            "--frame-ms" => frame_ms = value.parse::<u64>()?.clamp(20, 100),
            "--speed" => speed = value.parse()?,
            "--script" => script = Some(value),
            "--language" => language = Some(value),
            _ => return Err(usage.into()),
        }
    }

    let audio = cantocap::audio::read_wav(std::path::Path::new(&path))?;
    let mut request = url.as_str().into_client_request()?;
    if let Some(token) = &token {
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse()?);
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut sink, mut stream) = ws.split();

    let mut start = serde_json::json!({
        "type": "start", "sample_rate": audio.sample_rate, "channels": audio.channels, "format": "s16le",
    });
    if let Some(s) = script {
        start["script"] = s.into();
    }
    if let Some(l) = language {
        start["language"] = l.into();
    }
    sink.send(Message::text(start.to_string())).await?;

    // Print everything the server says, until it closes.
    let printer = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("final") => {
                            println!("[{}] {}", v["segment"], v["text"].as_str().unwrap_or(""))
                        }
                        Some("partial") => eprintln!("  … {}", v["text"].as_str().unwrap_or("")),
                        _ => eprintln!("{text}"),
                    }
                }
                Ok(Message::Close(frame)) => {
                    eprintln!("closed: {frame:?}");
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("connection error: {e}");
                    break;
                }
            }
        }
    });

    let frame = (audio.sample_rate as u64 * frame_ms / 1000) as usize * usize::from(audio.channels);
    let started = Instant::now();
    for (i, chunk) in audio.samples.chunks(frame).enumerate() {
        let due = Duration::from_secs_f64((i as u64 * frame_ms) as f64 / 1000.0 / speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let bytes: Vec<u8> = chunk
            .iter()
            .flat_map(|&x| ((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
            .collect();
        if sink.send(Message::binary(bytes)).await.is_err() {
            break; // the server closed; the printer says why
        }
    }
    let _ = sink.send(Message::text(r#"{"type":"stop"}"#)).await;
    printer.await?;
    Ok(())
}
