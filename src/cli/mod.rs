//! The command line's larger subcommands.
pub mod audit;
pub mod live;
pub mod purge;
pub mod redact;
#[cfg(feature = "server")]
pub mod serve;
