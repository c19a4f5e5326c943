//! Integration tests: caption.
