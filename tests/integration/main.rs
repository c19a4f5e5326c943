//! cantocap's integration tests: one binary, one module per area.
//!
//! Tests that run Whisper use the real test models made by
//! `models/fetch-test-model.sh` (run by `./setup.sh test`). They never skip: without
//! the models they fail, saying how to get them. They take a global lock so only one
//! decodes at a time on a small machine.

mod audio;
mod caption;
mod cli;
mod client;
mod cluster;
mod codeswitch;
mod common;
mod download;
mod echo;
mod eval;
mod formats;
mod gpu;
mod hostile;
mod import;
mod jitsi;
mod linger;
mod network;
mod openai_files;
mod openai_realtime;
mod overlay;
mod privacy;
mod quiet;
mod redact;
mod redaction_sinks;
mod rooms;
mod script;
mod server;
mod stream;
mod transcribe;
mod vad;
mod webhooks;
mod whisperlive;
