//! Push audio into the streaming engine in small pieces and print caption events
//! as JSON lines: the core with no I/O, as an embedding program would use it.
//!
//! ```sh
//! cargo run --release --example stream_samples -- speech.wav [models/ggml-base.bin]
//! ```

use std::sync::Arc;

use cantocap::asr::{StreamOptions, StreamingTranscriber, WhisperModel};
use cantocap::text::{Script, ScriptConverter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wav = args.next().ok_or("usage: stream_samples FILE.wav [MODEL]")?;
    let model_path = args.next().unwrap_or_else(|| "models/ggml-base.bin".into());

    let model = Arc::new(WhisperModel::load(&model_path)?);
    let hk = ScriptConverter::new(Script::Hk)?;
    // Any rate and channel count: the engine resamples to 16 kHz mono itself.
    let audio = cantocap::audio::read_wav(wav.as_ref())?;
    let mut engine = StreamingTranscriber::new(
        model,
        audio.sample_rate,
        audio.channels,
        StreamOptions::default(),
    )?;

    // 20 ms pieces, as a sound card or a WebSocket would deliver them.
    let piece = (audio.sample_rate as usize / 50) * audio.channels as usize;
    let mut events = Vec::new();
    for chunk in audio.samples.chunks(piece) {
        events.extend(engine.push(chunk)?);
    }
    events.extend(engine.finish()?);

    for mut event in events {
        let text = hk.convert(event.text());
        *event.text_mut() = text;
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(())
}
