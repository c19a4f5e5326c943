#![doc = include_str!("../README.md")]

pub mod asr;
pub mod audio;
pub mod caption;
mod error;
pub mod model;
mod segment;
#[cfg(feature = "server")]
pub mod server;
pub mod text;

pub use error::{Error, Result};
pub use segment::Segment;
