//! Text: script conversion (OpenCC).
