//! The command line's larger subcommands.
pub mod live;
