//! Integration tests: script.
