//! Evaluation: how well a model transcribes your own recordings (`cantocap eval`).
//!
//! ```text
//! manifest (audio path, reference text)
//!   └─► decode (offline as `transcribe`, or streaming through the live engine)
//!   └─► Normaliser: width, case, numbers, one script, punctuation out, tokens
//!   └─► metric per utterance, from the reference: CER (Chinese), WER (no Chinese),
//!         MER (both: each Chinese character and each Latin word a token)
//!   └─► Report: per utterance and totals (sum of edits / sum of reference tokens),
//!         RTF, final latency; Markdown or JSON; compare two reports
//! ```
//!
//! - [`manifest`]: the TSV file of recordings and references.
//! - [`normalise`]: what both sides go through before scoring.
//! - [`metrics`]: edit distance with substitutions, deletions and insertions.
//! - [`report`]: results, totals, Markdown, JSON, comparison.
//!
//! Decoding itself is the command line's (`src/cli/eval.rs`): it uses the same
//! model, options and pipeline as `transcribe` and `live`.
//!
//! ```
//! use cantocap::eval::{Metric, NormaliseOptions, Normaliser, Utterance};
//!
//! let n = Normaliser::new(NormaliseOptions::default())?;
//! let u = Utterance::score(&n, "u1", "u1.wav", "我哋用 Zoom 開會。", "我地用zoom開會");
//! assert_eq!(u.metric, Metric::Mer);
//! assert_eq!((u.edits.substitutions, u.edits.tokens), (1, 6));
//! # Ok::<(), cantocap::Error>(())
//! ```

pub mod manifest;
pub mod metrics;
pub mod normalise;
pub mod report;

pub use manifest::{parse_manifest, read_manifest, Entry, ManifestError};
pub use metrics::{align, score, Edits, Metric};
pub use normalise::{spell_numbers, NormaliseOptions, Normaliser};
pub use report::{compare, Latency, MetricTotal, Report, Settings, Totals, Utterance};
