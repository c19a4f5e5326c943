//! The command line's larger subcommands.
#[cfg(feature = "server")]
pub mod audit;
pub mod live;
#[cfg(feature = "server")]
pub mod purge;
pub mod redact;
#[cfg(feature = "server")]
pub mod serve;
