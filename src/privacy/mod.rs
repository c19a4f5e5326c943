//! Privacy, in one place and without the server: what the organisations using
//! cantocap need under Hong Kong's Personal Data (Privacy) Ordinance.
//!
//! - [`redact`] and [`caption_redact`]: personal data (HKID numbers, phone numbers,
//!   e-mail addresses, card and account numbers, also spoken as Chinese numerals or
//!   words) masked before captions leave the engine, in every sink.
//! - [`audit`]: the append-only, hash-chained audit log (who connected, when, from
//!   where, what was done; never caption text or tokens) and its verification.
//! - [`retention`]: deleting session files older than a limit.
//!
//! The server uses all of them; `cantocap redact`, `cantocap purge` and
//! `cantocap audit verify` use them offline, in a build without the `server`
//! feature too.

pub mod audit;
pub mod caption_redact;
pub mod redact;
pub mod retention;

pub use caption_redact::CaptionRedactor;
pub use redact::{
    Labels, ParseRedactionKindError, RedactOptions, Redacted, RedactionCounts, RedactionKind,
    RedactionTypes, Redactor, Replacement,
};
