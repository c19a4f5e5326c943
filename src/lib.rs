#![doc = include_str!("../README.md")]

pub mod asr;
pub mod audio;
pub mod caption;
mod error;
pub mod eval;
pub mod model;
pub mod pipeline;
pub mod privacy;
mod segment;
#[cfg(feature = "server")]
pub mod server;
pub mod text;

pub use error::{Error, Result};
pub use segment::{CaptionEvent, Segment};
