//! The command line's larger subcommands.
pub mod live;
pub mod redact;
#[cfg(feature = "server")]
pub mod serve;
