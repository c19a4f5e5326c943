//! Speech recognition with Whisper (whisper.cpp through whisper-rs).
//!
//! - [`language`]: which language token and prompt to give Whisper for Cantonese,
//!   chosen from what the loaded model knows.
//! - [`gpu`]: where Whisper runs: the CPU, or a GPU compiled in by a Cargo feature.
//! - [`guards`]: drop what Whisper invents on silence and noise.
//! - [`whisper`]: load a ggml model once, transcribe 16 kHz mono samples into
//!   timed [`Segment`](crate::Segment)s.
//! - [`stream`]: the streaming engine: push audio, get partial and final captions.

pub mod gpu;
pub mod guards;
pub mod language;
pub mod slots;
pub mod stream;
pub mod whisper;

pub use gpu::Device;
pub use language::{plan_language, LanguagePlan, ModelCaps, CANTONESE_PROMPT};
pub use slots::DecodeSlots;
pub use stream::{CaptionEvent, StreamOptions, StreamStats, StreamingTranscriber};
pub use whisper::{TranscribeOptions, WhisperModel};
