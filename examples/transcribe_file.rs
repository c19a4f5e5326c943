//! Transcribe a WAV file into Hong Kong Traditional SRT captions on stdout.
//!
//! ```sh
//! cargo run --release --example transcribe_file -- speech.wav [models/ggml-base.bin]
//! ```

use cantocap::asr::{TranscribeOptions, WhisperModel};
use cantocap::caption::{self, CaptionFormat, LayoutOptions};
use cantocap::text::{Script, ScriptConverter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let wav = args.next().ok_or("usage: transcribe_file FILE.wav [MODEL]")?;
    let model_path = args.next().unwrap_or_else(|| "models/ggml-base.bin".into());

    // Load once; a WhisperModel can transcribe many files, from many threads.
    let model = WhisperModel::load(&model_path)?;
    let converter = ScriptConverter::new(Script::Hk)?;

    // Any WAV: any rate, any channel count. Whisper wants 16 kHz mono.
    let audio = cantocap::audio::read_wav(wav.as_ref())?;
    let samples = audio.to_whisper_input()?;

    // Defaults: Cantonese (yue where the model has it, else zh + a Cantonese prompt).
    let opts = TranscribeOptions::default();
    let mut segments = model.transcribe(&samples, &opts)?;
    for segment in &mut segments {
        segment.text = converter.convert(&segment.text);
    }

    let captions = caption::layout(&segments, &LayoutOptions::default());
    let mut writer = caption::writer_for(CaptionFormat::Srt, std::io::stdout());
    caption::write_all(writer.as_mut(), &captions)?;
    Ok(())
}
