//! Captions: layout into lines and screens, and SRT / WebVTT / JSON lines / text writers.
//!
//! [`layout`] turns timed [`Segment`](crate::Segment)s into numbered [`Caption`]s
//! of at most two lines of about 16 full-width characters, each 1–7 s on screen.
//! A [`CaptionWriter`] writes captions one at a time, each complete and flushed, so
//! a live caption file is valid at every moment; [`writer_for`] picks one by
//! [`CaptionFormat`]. [`parse_srt`] and [`parse_vtt`] read files back.
//!
//! ```
//! use cantocap::caption::{layout, write_all, CaptionFormat, LayoutOptions};
//! use cantocap::Segment;
//!
//! let segments = [Segment::new(1000, 3500, "我哋聽日用 Zoom 開會，記得 send 個 agenda 俾我。")];
//! let captions = layout(&segments, &LayoutOptions::default());
//! assert_eq!(captions[0].lines, ["我哋聽日用 Zoom 開會，", "記得 send 個 agenda 俾我。"]);
//!
//! let mut srt = Vec::new();
//! write_all(&mut cantocap::caption::SrtWriter::new(&mut srt), &captions)?;
//! assert!(String::from_utf8(srt).unwrap().starts_with("1\n00:00:01,000 --> 00:00:03,500\n"));
//! # let _ = CaptionFormat::Srt;
//! # Ok::<(), cantocap::Error>(())
//! ```

mod jsonl;
mod layout;
mod srt;
mod txt;
mod vtt;
mod writer;

pub use jsonl::JsonlWriter;
pub use layout::{display_width, layout, layout_finals, layout_speakers, Caption, LayoutOptions};
pub use srt::{format_srt_time, parse_srt, SrtWriter};
pub use txt::TxtWriter;
pub use vtt::{
    escape as escape_vtt, format_vtt_time, parse_vtt, unescape as unescape_vtt, VttWriter,
};
pub use writer::{write_all, writer_for, CaptionFormat, CaptionWriter, UnknownCaptionFormat};
