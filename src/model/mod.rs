//! Whisper models: importing Hugging Face transformers and CTranslate2 folders into ggml,
//! and reading ggml headers;
//! converting Silero VAD weights into whisper.cpp's VAD model ([`silero`]).
//!
//! The import is a pipeline of small parts, each usable alone:
//! [`ct2`] reads CTranslate2's `model.bin`, [`safetensors`] Hugging Face's weights,
//! [`tokens`] byte-decodes the vocabulary,
//! [`mel`] computes Whisper's mel filterbank, [`ggml`] writes (and reads back) whisper.cpp's
//! model format, and [`import`] maps one onto the other.
//!
//! ```no_run
//! use std::path::Path;
//! use cantocap::model::{import_ct2, read_ggml_header, Quantize};
//!
//! let report = import_ct2(Path::new("models/ct2/whisper-base"), Path::new("ggml-base.bin"), Quantize::F16)?;
//! println!("{} tensors, {} bytes", report.tensors, report.bytes_written);
//! let header = read_ggml_header(Path::new("ggml-base.bin"))?;
//! assert_eq!(header.size_name(), "base");
//! # Ok::<(), cantocap::Error>(())
//! ```

pub mod ct2;
pub mod ggml;
pub mod hf;
pub mod import;
pub mod mel;
pub mod safetensors;
pub mod silero;
pub mod tokens;

pub use ggml::{read_ggml_header, GgmlHeader};
pub use import::{
    import_ct2, import_ct2_with_progress, import_model, import_model_with_progress,
    import_transformers, import_transformers_with_progress, ImportReport, ModelKind,
    ParseQuantizeError, Quantize,
};
pub use silero::{import_silero, read_vad_model, SileroVersion};

/// Route whisper.cpp's log lines (every load detail, on stderr) away, once per process,
/// through whisper-rs's hooks, which discard them without a logging backend. Used by
/// everything that loads a ggml model (Whisper, Silero VAD).
pub(crate) fn quiet_whisper_logs() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(whisper_rs::install_logging_hooks);
}
