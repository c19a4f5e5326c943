//! Integration tests: audio.
