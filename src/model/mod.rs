//! Whisper models: importing CTranslate2 folders into ggml, and reading ggml headers.
