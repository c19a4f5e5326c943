//! The command line's larger subcommands.
pub mod audit;
pub mod eval;
pub mod gpu;
pub mod live;
pub mod purge;
pub mod redact;
#[cfg(feature = "server")]
pub mod serve;
pub mod vad;
