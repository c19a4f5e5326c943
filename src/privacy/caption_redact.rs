//! Redaction of caption streams: partials and finals, across event boundaries.
//!
//! A [`Redactor`] sees one text at a time. Speech recognition cuts text where the
//! speaker paused, not where a number ends, so a phone number can arrive as two
//! finals (`電話係九一二三`, then `四五六七`), and a partial can show the first half
//! of a number that is still being spoken. A [`CaptionRedactor`] sits between a
//! [`StreamingTranscriber`](crate::asr::StreamingTranscriber) (or a file
//! transcription) and every sink, and makes sure that no complete item ever leaves
//! the engine, whole or in pieces.
//!
//! # Finals: the open tail is held back
//!
//! Finals never change once emitted, so a final cannot be corrected after the next
//! one shows that it ended in half a phone number. Instead, a final whose end *could
//! be the start of an item* is emitted without that end, its **open tail**, which is
//! put in front of the next final and redacted together with it:
//!
//! | Final from the engine | Emitted | Held back |
//! |---|---|---|
//! | `電話係九一二三` | `電話係` | `九一二三` |
//! | `四五六七，唔該` | `[電話號碼]，唔該` | |
//!
//! The open tail is a trailing run of digits (ASCII, full-width or Chinese numerals),
//! with the spaces, hyphens, brackets and `+` that numbers are written with, and one
//! or two Latin letters before it (an HKID prefix, `A123`), or one or two capital
//! letters ending the final (`身份證係 A`). A full stop right after the digits
//! belongs to the tail too, because Whisper ends a text with one even in the middle
//! of a number (`9123.`, then `4567.`); it is dropped when the next final starts with
//! a digit. A complete number at the end is held as well: it may be the first half of
//! a longer one (a phone number's eight digits can start a card number). Text that
//! already became a label or a mask is never held.
//!
//! Two more things are held the same way:
//!
//! - **An address that may go on**: the last word, when it has an `@` but is no
//!   complete address yet (`chan@`, `chan@example.`), or could be the part before the
//!   `@` (`chan.tm`, `peter_wong`, `peter99`, or any word after `電郵`, `email` and
//!   the like: `我嘅電郵係 chan`). Ordinary words are not held, so an address cut
//!   right after a plain first word (`chan` | `@example.com`) shows that word; the
//!   rest is still redacted as an address.
//! - **A spoken address that may go on**, after a cue word or with a mail provider's
//!   domain: from its first word, when the final ends in ` at ` and part of a domain
//!   (`chan at`, `chan tai man at gmail`, `at gmail dot`, `at abc dot com dot`, or
//!   `at abc dot com`, which `dot hk` may follow), or in the words after a cue word
//!   (`電郵係 chan tai`). A final ending in ` at ` without either (`meet at`) is not
//!   held.
//! - **A long number that may be an account**: 9 to 15 digits that are no item yet,
//!   with fewer than 10 characters after them (a Latin word counting as one), are
//!   held with the rest of the final, so that an account word at the start of the
//!   next final still counts (`我嘅號碼係 012-345678901，` | `係我嘅戶口`), as it
//!   would in one text.
//!
//! The emitted final keeps its segment id and times; the next final starts where the
//! held text started. A final that is all open tail is
//! emitted with empty text, so that segment ids still go up by one (sinks skip
//! empty finals). Each final is also redacted with the end of the text emitted
//! before it as context, so `戶口號碼係` in one final still makes the number in the
//! next a bank account number.
//!
//! **Latency cost**: only text at the end of a final that looks like the start of a
//! number or an address, or a long number near its end, is delayed, until the next
//! final, by the pause and the next utterance
//! (typically one to a few seconds); every other final is emitted at once, unchanged
//! in timing. When the stream ends, [`CaptionRedactor::finish`] emits what is still
//! held as one last final. A tail that grows past 64 characters (a long list of
//! digits read out) is emitted with every digit (and every letter of an open
//! address) masked (`*`).
//!
//! # Partials: same rules, half numbers masked
//!
//! A partial is redacted with the same rules, held text in front and context before,
//! and then, because it may be half of a number still being spoken, its open tail and
//! any other run of six or more digits that survived are masked digit by digit
//! (`電話係****`), and an open address letter by letter (`電郵係 ****@*****`). A
//! partial therefore never shows what a final can still redact. Partials are not
//! counted: each item is counted once, in its final.
//!
//! ```
//! use cantocap::asr::CaptionEvent;
//! use cantocap::text::{CaptionRedactor, Redactor};
//!
//! let final_ = |segment, text: &str| CaptionEvent::Final {
//!     segment, text: text.into(), start_ms: 0, end_ms: 0, emitted_ms: 0, lag_ms: 0,
//! };
//! let mut redactor = CaptionRedactor::new(Redactor::default());
//! assert_eq!(redactor.redact(final_(1, "電話係九一二三")).text(), "電話係");
//! assert_eq!(redactor.redact(final_(2, "四五六七，唔該")).text(), "[電話號碼]，唔該");
//! assert_eq!(redactor.counts().phone, 1);
//! assert!(redactor.finish().is_none());
//! ```
//!
//! Whether two finals were written with a space between them is not known; between
//! ASCII letters or digits both readings are tried and the one leaving fewer digits
//! (then fewer letters outside labels: `peter.wong` | `99@example.com`) wins, but an
//! account word cut inside (`ac` | `ct`), which speech recognition does not do, is
//! not always found again.

use super::redact::{ascii_form, classify, is_email_address, Class};
use super::{Redacted, RedactionCounts, RedactionKind, RedactionTypes, Redactor};
use crate::CaptionEvent;
use crate::Segment;

/// Characters of emitted text kept as context for the next final: enough for an
/// account word 20 characters before a number.
const CONTEXT_CHARS: usize = 32;
/// A held tail longer than this is emitted, masked.
const MAX_HELD_CHARS: usize = 64;
/// In partials, runs of this many digits or more are masked even when complete.
const PARTIAL_MASK_DIGITS: usize = 6;
/// Full stops Whisper writes at the end of a text, also right after a number.
const PERIODS: &[char] = &['.', '。', '．'];
/// Words after which a plain word at the end of a final may be the start of an email
/// address (`我嘅電郵係 chan`).
const EMAIL_WORDS: &[&str] =
    &["電郵", "电邮", "郵箱", "邮箱", "郵件", "邮件", "email", "e-mail", "mail"];
/// Characters before a word that are searched for [`EMAIL_WORDS`].
const EMAIL_WORD_BEFORE: usize = 16;

/// Redacts the caption events of one stream; see the [module](self). One per stream:
/// it holds the stream's open tail, context and counts.
#[derive(Debug, Clone)]
pub struct CaptionRedactor {
    redactor: Redactor,
    /// Some kind is redacted.
    active: bool,
    /// Some kind made of digits is redacted, so open numbers are held.
    holds: bool,
    /// Email addresses are redacted, so open addresses are held.
    addresses: bool,
    held: String,
    /// Where the held text starts, in stream ms.
    held_from_ms: u64,
    context: String,
    counts: RedactionCounts,
    last: Option<LastFinal>,
}

#[derive(Debug, Clone, Copy)]
struct LastFinal {
    segment: u64,
    end_ms: u64,
    emitted_ms: u64,
}

impl CaptionRedactor {
    /// A caption redactor for one stream, with `redactor`'s options. With
    /// [`RedactionTypes::NONE`] it passes every event through unchanged.
    pub fn new(redactor: Redactor) -> Self {
        let types = redactor.options().types;
        CaptionRedactor {
            active: types != RedactionTypes::NONE,
            holds: types.hkid || types.phone || types.card || types.account,
            addresses: types.email,
            redactor,
            held: String::new(),
            held_from_ms: 0,
            context: String::new(),
            counts: RedactionCounts::default(),
            last: None,
        }
    }

    /// The redactor it applies.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// What was redacted from this stream's finals so far, by kind (never values).
    pub fn counts(&self) -> RedactionCounts {
        self.counts
    }

    /// Whether text is held back, waiting for the next final.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Redacts one event. Every event gives exactly one event back, with the same
    /// kind and segment id; a final's text may lack its open tail (then held back)
    /// and start with the tail held from the final before.
    pub fn redact(&mut self, event: CaptionEvent) -> CaptionEvent {
        if !self.active {
            return event;
        }
        match event {
            CaptionEvent::Partial {
                segment,
                revision,
                text,
                start_ms,
                end_ms,
                emitted_ms,
                lag_ms,
            } => CaptionEvent::Partial {
                segment,
                revision,
                text: self.partial_text(&text),
                start_ms: self.start_with_held(start_ms),
                end_ms,
                emitted_ms,
                lag_ms,
            },
            CaptionEvent::Final { segment, text, start_ms, end_ms, emitted_ms, lag_ms } => {
                let start_ms = self.start_with_held(start_ms);
                let text = self.final_text(&text, start_ms, end_ms);
                self.last = Some(LastFinal { segment, end_ms, emitted_ms });
                CaptionEvent::Final { segment, text, start_ms, end_ms, emitted_ms, lag_ms }
            }
        }
    }

    /// Redacts events in order (see [`redact`](Self::redact)).
    pub fn redact_all(
        &mut self,
        events: impl IntoIterator<Item = CaptionEvent>,
    ) -> Vec<CaptionEvent> {
        events.into_iter().map(|e| self.redact(e)).collect()
    }

    /// The stream ended: the text still held back, if any, redacted, as a last final
    /// with the segment id after the last final's.
    pub fn finish(&mut self) -> Option<CaptionEvent> {
        if self.held.is_empty() {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        // With the spaces it starts with: they keep `第` or `$` away from a number.
        let (text, counts) = self.redact_in_context(held.trim_end());
        let text = text.trim().to_owned();
        self.counts += counts;
        self.push_context(&text);
        let last = self.last.as_mut()?;
        last.segment += 1;
        Some(CaptionEvent::Final {
            segment: last.segment,
            text,
            start_ms: self.held_from_ms,
            end_ms: last.end_ms.max(self.held_from_ms),
            emitted_ms: last.emitted_ms,
            lag_ms: 0,
        })
    }

    /// Redacts the segments of a whole transcription (a file), as a stream of finals
    /// that ends after the last one: segments left empty are dropped, and a tail
    /// still held at the end goes back onto the segment it came from (or becomes one
    /// of its own).
    pub fn redact_segments(&mut self, segments: impl IntoIterator<Item = Segment>) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        let mut last_end = 0;
        for segment in segments {
            if !self.active {
                out.push(segment);
                continue;
            }
            let start_ms = self.start_with_held(segment.start_ms);
            let text = self.final_text(&segment.text, start_ms, segment.end_ms);
            last_end = last_end.max(segment.end_ms);
            if !text.is_empty() {
                out.push(Segment::new(start_ms, segment.end_ms, text));
            }
        }
        if !self.held.is_empty() {
            // Redacted with the spaces it was written with, to go back where it was.
            let held = std::mem::take(&mut self.held);
            let (held, counts) = self.redact_in_context(&held);
            self.counts += counts;
            self.push_context(held.trim());
            match out.last_mut() {
                Some(last) if last.end_ms >= self.held_from_ms => {
                    last.text.push_str(held.trim_end());
                    last.end_ms = last.end_ms.max(last_end);
                }
                _ => out.push(Segment::new(
                    self.held_from_ms,
                    last_end.max(self.held_from_ms),
                    held.trim(),
                )),
            }
        }
        out
    }

    fn start_with_held(&self, start_ms: u64) -> u64 {
        if self.held.is_empty() {
            start_ms
        } else {
            start_ms.min(self.held_from_ms)
        }
    }

    /// The text to emit for a final: the held text and `text`, redacted, without
    /// its open tail, which is held. The tail is found in the text as written, so a
    /// complete phone number at the end is held too: it may be the first half of a
    /// card number.
    fn final_text(&mut self, text: &str, start_ms: u64, end_ms: u64) -> String {
        let held = std::mem::take(&mut self.held);
        let combined = self.combine(&held, text);
        let mut tail = self.hold_from(&combined, text.len());
        let mut held = combined[tail..].to_owned();
        if held.chars().count() > MAX_HELD_CHARS {
            tail = combined.len();
            held.clear();
        }
        let (out, counts, sep) = self.redact_before_held(&combined, tail);
        self.counts += counts;
        // Nothing held (or too much to hold): what could still grow is masked.
        let emit = if tail == combined.len() { self.mask_open(&out, false) } else { out };
        if !held.is_empty() {
            self.held_from_ms = if emit.trim().is_empty() { start_ms } else { end_ms };
        }
        // The context goes on as the text was read (`ac` and `ct` are `acct`), its
        // white space included (a line break keeps `£` away from the next number).
        if !emit.is_empty() {
            self.context = format!("{}{sep}", self.context);
            let glued = self.context.is_empty() || sep.is_empty();
            self.push_context_glued(&emit, glued);
        }
        self.held = held;
        emit.trim().to_owned()
    }

    fn partial_text(&self, text: &str) -> String {
        let combined = self.combine(&self.held, text);
        let (out, _) = self.redact_in_context(&combined);
        self.mask_open(&out, true)
    }

    /// Where the text to hold back from a final starts (`text.len()` for none): its
    /// open tails, or a long number that an account word in the next final could
    /// still make a bank account number (`012-345678901，` | `係我嘅戶口`). `text` is
    /// the held text and the final joined; only a number in the last `fresh` bytes,
    /// the final's own, is held for an account word: one final later, it goes.
    fn hold_from(&self, text: &str, fresh: usize) -> usize {
        let (number, address) = self.open_tails(text);
        let mut from = number.min(address);
        // Found after the context, as the final will be redacted: in every reading
        // of the join (`ac` and `ct` are `acct` in one).
        let seps: &[&str] = if needs_space(&self.context, text) { &[" ", ""] } else { &[""] };
        let pending = seps.iter().try_fold(text.len(), |first, sep| {
            let prefix = format!("{}{sep}", self.context);
            let at = self.redactor.pending_account(&format!("{prefix}{text}"))?;
            Some(first.min(at.checked_sub(prefix.len())?))
        });
        if let Some(at) = pending.filter(|&at| at < text.len() && at + fresh >= text.len()) {
            from = from.min(at - spaces_before(&text[..at]));
        }
        from
    }

    /// Where the open tails of `text` start (`text.len()` for none): a number that
    /// may go on ([`open_tail`]) and an email address that may go on
    /// ([`address_tail`](Self::address_tail)).
    fn open_tails(&self, text: &str) -> (usize, usize) {
        let number = if self.holds { open_tail(text) } else { text.len() };
        let address = if self.addresses {
            self.address_tail(text).min(self.spoken_address_tail(text))
        } else {
            text.len()
        };
        (number, address)
    }

    /// Where a spoken address that may go on in the next final starts in `text`
    /// (`text.len()` if none), found after the context so that a cue word emitted
    /// before counts; the spaces before it are held with it. Begun in the context
    /// (emitted already), it is held from the start of `text`.
    fn spoken_address_tail(&self, text: &str) -> usize {
        let prefix = format!("{} ", self.context);
        let Some(at) = self.redactor.open_spoken_email(&format!("{prefix}{text}")) else {
            return text.len();
        };
        let from = at.saturating_sub(prefix.len());
        from - spaces_before(&text[..from])
    }

    /// `text` with what could still grow into an item masked: the digits of its open
    /// number and the letters and digits of its open address; in a `partial`, also
    /// every long run of digits before them.
    fn mask_open(&self, text: &str, partial: bool) -> String {
        let (number, address) = self.open_tails(text);
        let from = number.min(address);
        let mut out = if partial && self.holds {
            mask_long_runs(&text[..from])
        } else {
            text[..from].to_owned()
        };
        for (i, c) in text[from..].char_indices() {
            let at = from + i;
            let digit = matches!(classify(c), Class::Digit { .. });
            let alnum = ascii_form(c).is_some_and(|c| c.is_ascii_alphanumeric());
            out.push(if (at >= number && digit) || (at >= address && alnum) { '*' } else { c });
        }
        out
    }

    /// The byte offset where an email address that may go on in the next final starts
    /// in `text` (`text.len()` if none): the last word of address characters (a `。`
    /// after it and the spaces before it included) when it
    ///
    /// - has an `@` but is no complete address yet (`chan@`, `chan@example`,
    ///   `chan@example.`; `@example` only right after an emitted word), or
    /// - could be the part before the `@`: `.`, `_`, `+` or `%` inside (`chan.tm`,
    ///   `peter_wong`, not `p.m.`), or ending in `_`, or letters and digits
    ///   (`peter99`, `7peter`), or any word within 16 characters after a word such as
    ///   `電郵` or `email` (`我嘅電郵係 chan`).
    ///
    /// A word that goes on from a number (`兩012…`, or digits after a number and a
    /// separator: `3456 01@`) is held with that number.
    ///
    /// Other words are not held: that would delay every final ending in a Latin word.
    fn address_tail(&self, text: &str) -> usize {
        let body = text.strip_suffix('。').unwrap_or(text);
        let start = body
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_address_char(c))
            .last()
            .map_or(body.len(), |(i, _)| i);
        let word: String = body[start..].chars().filter_map(ascii_form).collect();
        let emitted_before =
            start == 0 && self.context.chars().next_back().is_some_and(is_address_char);
        // `word` is in ASCII, one character for each of `body[start..]`.
        let byte = |k: usize| start + body[start..].char_indices().nth(k).map_or(0, |(i, _)| i);
        let (open, from) = match word.rfind('@') {
            None => (could_be_local_part(&word) || self.after_email_word(&body[..start]), start),
            Some(last) => {
                // The address it may become starts after any `@` before the last.
                let first = word[..last].rfind('@').map_or(0, |k| k + 1);
                if first < last {
                    (!is_email_address(&word[first..]), start)
                } else if first == 0 && emitted_before {
                    // The part before the `@` was emitted already (`chan` | `@example`).
                    (!is_email_address(&format!("x{word}")), start)
                } else {
                    // Nothing before the `@`: what follows may be the part before another.
                    (could_be_local_part(&word[last + 1..]), byte(last + 1))
                }
            }
        };
        if word.is_empty() || !open {
            return text.len();
        }
        // A word that goes on from a number (`九9123chan`, digits after digits and a
        // separator: `3456 01@`) is held with all of it: a number is never cut in two.
        let digit = |c: char| matches!(classify(c), Class::Digit { .. });
        let sep = |c: char| classify(c) == Class::Sep;
        let mut before = body[..from].char_indices().rev().peekable();
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            while before.next_if(|&(_, c)| sep(c)).is_some() {}
        }
        let mut from = from;
        if before.peek().is_some_and(|&(_, c)| digit(c)) {
            // From where that number starts, its HKID letters or `+852` included.
            from = open_tail(&body[..from]);
        }
        from - spaces_before(&body[..from])
    }

    /// Whether `before` (after the context) ends with a word such as `電郵` or `email`
    /// within [`EMAIL_WORD_BEFORE`] characters.
    fn after_email_word(&self, before: &str) -> bool {
        let all = format!("{}{before}", self.context);
        // An address redacted before is no such word.
        let all = all.replace(&self.redactor.options().labels.email, " ");
        let chars: Vec<char> = all.chars().collect();
        let window: String =
            chars[chars.len().saturating_sub(EMAIL_WORD_BEFORE)..].iter().collect();
        let window = window.to_lowercase();
        // A Latin word whole: `mail`, not the `gmail` of a spoken address.
        let letter = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphabetic());
        EMAIL_WORDS.iter().any(|w| {
            window.match_indices(w).any(|(i, _)| {
                !w.is_ascii()
                    || !letter(window[..i].chars().next_back())
                        && !letter(window[i + w.len()..].chars().next())
            })
        })
    }

    /// The held text and the next text as one: joined as Whisper would have written
    /// them, except that a period Whisper put after the held digits goes when digits
    /// follow (`9123.` and `4567.` are `9123 4567.`). Between ASCII digits, whether
    /// there was a space is unknown (`3` and `000 0000`): the joining that leaves
    /// less unredacted wins ([`left_over`](Self::left_over)).
    fn combine(&self, held: &str, text: &str) -> String {
        let first = text.chars().next();
        let digit = |c: Option<char>| c.is_some_and(|c| matches!(classify(c), Class::Digit { .. }));
        let trimmed = held.trim_end_matches(PERIODS);
        let held = match first.map(classify) {
            // `9123.` and `4567`, not `A。` and `9123`.
            Some(Class::Digit { .. }) if digit(trimmed.chars().next_back()) => trimmed,
            // `chan。` and `@example.com`: the full stop was Whisper's.
            _ if first.and_then(ascii_form) == Some('@') => held.trim_end_matches('。'),
            _ => held,
        };
        let joined = join(held, text);
        // `G123456` and `A` (an HKID check letter) too.
        let (end, start) = (held.chars().next_back(), text.chars().next());
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !(alnum(end) && alnum(start)) {
            return joined;
        }
        let glued = format!("{held}{text}");
        if self.left_over(&glued) < self.left_over(&joined) {
            glued
        } else {
            joined
        }
    }

    /// What redacting `text` leaves that could be personal data: digits, then the
    /// letters and digits outside labels (the part of an address before the `@`
    /// when the address was cut between words: `peter.wong` and `99@example.com`).
    fn left_over(&self, text: &str) -> (usize, usize) {
        let (mut out, _) = self.redact_in_context(text);
        let labels = &self.redactor.options().labels;
        for kind in RedactionKind::ALL {
            out = out.replace(labels.get(kind), " ");
        }
        let digits = out.chars().filter(|&c| matches!(classify(c), Class::Digit { .. })).count();
        let alnum =
            out.chars().filter(|&c| ascii_form(c).is_some_and(|c| c.is_ascii_alphanumeric()));
        (digits, alnum.count())
    }

    /// Redacts `text` as it follows the emitted context; the context itself never
    /// changes (it was redacted already and ends before any open tail).
    ///
    /// Between ASCII letters or digits, whether the two were written with a space is
    /// unknown (a word such as `account` can be cut in two): both are tried, and the
    /// one leaving fewer digits unredacted wins.
    fn redact_in_context(&self, text: &str) -> (String, RedactionCounts) {
        let (out, counts, _) = self.redact_after_context(text);
        (out, counts)
    }

    /// `text[..tail]` redacted after the context, and with the held `text[tail..]`
    /// after it, because what follows a number can make it an item (`012-345678901`
    /// and a held `a_account_b`); the held text itself is redacted with the next
    /// final. Without it when an item reaches into the held text.
    fn redact_before_held(
        &self,
        text: &str,
        tail: usize,
    ) -> (String, RedactionCounts, &'static str) {
        if tail < text.len() {
            let (out, counts, sep) = self.redact_after_context(text);
            if let Some(emitted) = out.strip_suffix(&text[tail..]) {
                return (emitted.to_owned(), counts, sep);
            }
        }
        self.redact_after_context(&text[..tail])
    }

    /// [`redact_in_context`](Self::redact_in_context), and the separator chosen
    /// between the context and `text`.
    fn redact_after_context(&self, text: &str) -> (String, RedactionCounts, &'static str) {
        let seps: &[&'static str] =
            if needs_space(&self.context, text) { &[" ", ""] } else { &[""] };
        let digits =
            |t: &str| t.chars().filter(|&c| matches!(classify(c), Class::Digit { .. })).count();
        let mut best: Option<(String, RedactionCounts, &'static str)> = None;
        for &sep in seps {
            let prefix = format!("{}{sep}", self.context);
            let redacted = self.redactor.redact(&format!("{prefix}{text}"));
            // An item reaching into the context (which should not happen) would
            // change it: then `text` is redacted alone.
            let candidate = match redacted.text.strip_prefix(&prefix) {
                Some(rest) => (rest.to_owned(), redacted.counts, sep),
                None => {
                    let alone = self.redact_alone(text);
                    (alone.text, alone.counts, " ")
                }
            };
            if best.as_ref().is_none_or(|b| digits(&candidate.0) < digits(&b.0)) {
                best = Some(candidate);
            }
        }
        best.unwrap_or_else(|| (String::new(), RedactionCounts::default(), ""))
    }

    /// Redacts `text` without its context, when an item found with the context reached
    /// into it. That item may be an address whose part before the `@` was emitted
    /// already (`chan` | `@example.com`, speech recognition cutting where no address
    /// was expected): what is left of it is redacted as an address still.
    fn redact_alone(&self, text: &str) -> Redacted {
        let alone = self.redactor.redact(text);
        if text.chars().next().and_then(ascii_form) != Some('@') {
            return alone;
        }
        let stand_in = self.redactor.redact(&format!("x{text}"));
        if stand_in.counts.email > alone.counts.email {
            stand_in
        } else {
            alone
        }
    }

    /// Keeps the last [`CONTEXT_CHARS`] characters of emitted text, starting after
    /// any number or word cut in half by the cut (what is left of a number could look
    /// like an item alone).
    fn push_context(&mut self, emitted: &str) {
        self.push_context_glued(emitted, false);
    }

    /// [`push_context`](Self::push_context), without adding a space when `glued`.
    fn push_context_glued(&mut self, emitted: &str, glued: bool) {
        if emitted.is_empty() {
            return;
        }
        let all =
            if glued { format!("{}{emitted}", self.context) } else { join(&self.context, emitted) };
        let chars: Vec<char> = all.chars().collect();
        let mut from = chars.len().saturating_sub(CONTEXT_CHARS);
        if from > 0 {
            // Past the number or code the cut went through, up to a separator before a
            // word: the words after it stay (`my bank account is`).
            while from < chars.len() && classify(chars[from]) != Class::Other {
                let next = chars.get(from + 1).map(|&c| classify(c));
                let word_next = matches!(next, None | Some(Class::Letter(_) | Class::Other));
                from += 1;
                if classify(chars[from - 1]) == Class::Sep && word_next {
                    break;
                }
            }
        }
        self.context = chars[from..].iter().collect();
    }
}

/// `a` then `b`, with a space between two ASCII letters or digits (`9123` and
/// `4567` are read as `9123 4567`), as Whisper would have written them in one text.
fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        return b.to_owned();
    }
    if b.is_empty() {
        return a.to_owned();
    }
    let space = if needs_space(a, b) { " " } else { "" };
    format!("{a}{space}{b}")
}

fn needs_space(a: &str, b: &str) -> bool {
    let end = a.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
    let start = b.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    end && start
}

/// The length of the spaces ending `text`, held with what follows them so that held
/// text goes back as it was written. Line breaks are not: they stay in the emitted
/// text, where they keep the context apart from what follows (`$` and a number).
fn spaces_before(text: &str) -> usize {
    let space = |c: &char| classify(*c) == Class::Sep && *c != '-';
    text.chars().rev().take_while(space).map(char::len_utf8).sum()
}

/// Characters email addresses are written with (full-width forms too).
fn is_address_char(c: char) -> bool {
    ascii_form(c).is_some_and(|c| c.is_ascii_alphanumeric() || "._%+-@".contains(c))
}

/// Whether `word` (ASCII, no `@`) looks like the part of an email address before the
/// `@`, not an ordinary word: see [`CaptionRedactor::address_tail`].
fn could_be_local_part(word: &str) -> bool {
    let core = word.trim_end_matches('.');
    let is_sep = |c: char| "._+%".contains(c);
    // The redactor skips a `.` starting the part before the `@`, nothing else.
    if core.is_empty() || core.starts_with('.') {
        return false;
    }
    let letters = core.chars().any(|c| c.is_ascii_alphabetic());
    let digits = core.chars().any(|c| c.is_ascii_digit());
    let parts: Vec<&str> = core.split(is_sep).filter(|p| !p.is_empty()).collect();
    // `p.m.` and `e.g.` are abbreviations: one letter between the dots.
    let joined = parts.len() >= 2 && parts.iter().any(|p| p.len() >= 2);
    letters && (joined || digits || core.ends_with('_'))
}

/// Characters numbers are written with.
fn numberish(class: Class) -> bool {
    matches!(class, Class::Digit { .. } | Class::Sep | Class::Open | Class::Close | Class::Plus)
}

/// The byte offset where the open tail of `text` starts (`text.len()` if none):
/// the trailing characters that could be the first part of an item, with the
/// spaces before them (kept, so that held text is put back as it was written).
fn open_tail(text: &str) -> usize {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let class = |k: usize| classify(chars[k].1);
    let n = chars.len();
    let mut i = n;
    // A full stop after digits may be Whisper ending the text, not the number.
    if n >= 2 && PERIODS.contains(&chars[n - 1].1) && matches!(class(n - 2), Class::Digit { .. }) {
        i -= 1;
    }
    // An HKID check letter in its bracket: `A123456(A`.
    if i >= 2 && matches!(class(i - 1), Class::Letter(_)) {
        let before = if class(i - 2) == Class::Sep && i >= 3 { i - 3 } else { i - 2 };
        if class(before) == Class::Open {
            i -= 1;
        }
    }
    while i > 0 && numberish(class(i - 1)) {
        i -= 1;
    }
    let mut anchored =
        (i..n).any(|k| matches!(class(k), Class::Digit { .. } | Class::Plus | Class::Open));
    // One or two letters before it: an HKID prefix.
    let mut j = i;
    while j > 0 && i - j < 2 && matches!(class(j - 1), Class::Letter(_)) {
        j -= 1;
    }
    // As the redactor reads HKID numbers: a Chinese numeral before the letters is fine.
    let word_start =
        j == 0 || !matches!(class(j - 1), Class::Letter(_) | Class::Digit { ascii: true, .. });
    if j < i && word_start {
        // The redactor reads letters (any case) and one separator before six or
        // seven digits as an HKID number, so `on 9123` is held whole.
        let capitals = (j..i).all(|k| chars[k].1.is_uppercase());
        let reach = if capitals { n } else { (i + 2).min(n) };
        let next = (i..reach).find(|&k| class(k) != Class::Sep);
        let digits_follow = next.is_some_and(|k| matches!(class(k), Class::Digit { .. }));
        if digits_follow || (capitals && i == n) {
            i = j;
            anchored = true;
            while i > 0 && class(i - 1) == Class::Sep {
                i -= 1;
            }
        }
    }
    if !anchored {
        return text.len();
    }
    let first = (i..n).find(|&k| class(k) != Class::Sep).unwrap_or(n);
    // The digits a mask kept (`****4567`) are not the start of anything.
    if first == n || (first > 0 && class(first - 1) == Class::Mask) {
        return text.len();
    }
    chars[i].0
}

/// `text` with the digits of every run of [`PARTIAL_MASK_DIGITS`] or more digits
/// (groups joined by separators) masked.
fn mask_long_runs(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !matches!(classify(chars[i]), Class::Digit { .. }) {
            i += 1;
            continue;
        }
        let (mut end, mut digits) = (i, 0);
        let mut k = i;
        while k < chars.len() {
            match classify(chars[k]) {
                Class::Digit { .. } => {
                    digits += 1;
                    k += 1;
                    end = k;
                }
                Class::Sep => k += 1,
                _ => break,
            }
        }
        if digits >= PARTIAL_MASK_DIGITS {
            for c in &mut chars[i..end] {
                if matches!(classify(*c), Class::Digit { .. }) {
                    *c = '*';
                }
            }
        }
        i = end.max(i + 1);
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::{Labels, RedactOptions, Replacement};

    fn final_(segment: u64, text: &str, start_ms: u64, end_ms: u64) -> CaptionEvent {
        CaptionEvent::Final {
            segment,
            text: text.into(),
            start_ms,
            end_ms,
            emitted_ms: end_ms + 500,
            lag_ms: 0,
        }
    }

    fn partial(segment: u64, revision: u32, text: &str) -> CaptionEvent {
        CaptionEvent::Partial {
            segment,
            revision,
            text: text.into(),
            start_ms: 0,
            end_ms: 0,
            emitted_ms: 0,
            lag_ms: 0,
        }
    }

    /// The texts of finals fed one by one, then the finish.
    fn finals(redactor: &mut CaptionRedactor, texts: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let i = i as u64;
                redactor.redact(final_(i + 1, t, i * 1000, i * 1000 + 900)).text().to_owned()
            })
            .collect();
        out.extend(redactor.finish().map(|e| e.text().to_owned()));
        out
    }

    #[test]
    fn open_tails() {
        fn tail(t: &str) -> &str {
            &t[open_tail(t)..]
        }
        assert_eq!(tail("電話係九一二三"), "九一二三");
        assert_eq!(tail("call me on 9123 "), " on 9123 ");
        assert_eq!(tail("p-9109106"), "p-9109106");
        assert_eq!(tail("身份證係 A123"), " A123");
        assert_eq!(tail("身份證係 A"), " A");
        assert_eq!(tail("身份證係 AB1234 56("), " AB1234 56(");
        assert_eq!(tail("打去 +852"), " +852");
        assert_eq!(tail("打去 (852)"), " (852)");
        assert_eq!(tail("send 個 file"), "");
        assert_eq!(tail("好 ok"), "");
        assert_eq!(tail("call me on 9123"), " on 9123");
        assert_eq!(tail("a123"), "a123");
        assert_eq!(tail("XYZ123"), "123");
        assert_eq!(tail("玖AA123456"), "AA123456");
        assert_eq!(tail("9AA123456"), "123456");
        assert_eq!(tail("****4567"), "");
        assert_eq!(tail("電話 9123 4567"), " 9123 4567");
        assert_eq!(tail("call me on 912."), " on 912.");
        assert_eq!(tail("身份證 N434845(A"), " N434845(A");
        assert_eq!(tail("身份證 N434845 ( A"), " N434845 ( A");
        assert_eq!(tail("三點半見。"), "");
        assert_eq!(tail("[電話號碼]"), "");
        assert_eq!(tail("三點半見"), "");
        assert_eq!(tail(""), "");
    }

    #[test]
    fn address_tails() {
        let r = CaptionRedactor::new(Redactor::default());
        let tail = |t: &'static str| &t[r.address_tail(t)..];
        assert_eq!(tail("電郵係 chan@"), " chan@");
        assert_eq!(tail("電郵係chan@example"), "chan@example");
        assert_eq!(tail("電郵係 chan@example."), " chan@example.");
        assert_eq!(tail("電郵係 chan@example。"), " chan@example。");
        assert_eq!(tail("send to chan.taiman"), " chan.taiman");
        assert_eq!(tail("send to peter_wong"), " peter_wong");
        assert_eq!(tail("send to peter_"), " peter_");
        assert_eq!(tail("send to peter99"), " peter99");
        assert_eq!(tail("send to ｃｈａｎ＠"), " ｃｈａｎ＠");
        // After a word such as `電郵`, any word.
        assert_eq!(tail("我嘅電郵係 chan"), " chan");
        assert_eq!(tail("my email is chan"), " chan");
        // Complete addresses and ordinary words are not held.
        assert_eq!(tail("電郵係 chan@example.com"), "");
        assert_eq!(tail("電郵係 chan@example.com."), "");
        assert_eq!(tail("send 個 file"), "");
        assert_eq!(tail("at 3 p.m."), "");
        assert_eq!(tail("e.g."), "");
        assert_eq!(tail("follow-up"), "");
        assert_eq!(tail("@someone"), "");
        assert_eq!(tail("電郵@peter.wong"), "peter.wong");
        assert_eq!(tail("電郵@Ｃｈａｎ＠"), "@Ｃｈａｎ＠");
        assert_eq!(tail("電郵 a@b.com@x"), " a@b.com@x");
        assert_eq!(tail("九一二三"), "");
        assert_eq!(tail("兩012-345678901+x98"), "兩012-345678901+x98");
        assert_eq!(tail("號碼 兩x98@"), " 兩x98@");
        assert_eq!(tail("號碼 012-3456789 01@"), " 012-3456789 01@");
        assert_eq!(tail("8九9123Ｃｈ"), "8九9123Ｃｈ");
        assert_eq!(tail("戶口A123 4563.x_"), "A123 4563.x_");
        assert_eq!(tail("電話 9123 4567 chan@"), " chan@");
        assert_eq!(tail(""), "");
        // The label of an address is no word such as `電郵`.
        assert_eq!(tail("[電郵地址] thanks"), "");
    }

    #[test]
    fn local_parts() {
        for word in [
            "chan.tm",
            "chan.t",
            "a.bc",
            "peter_wong",
            "peter_",
            "peter99",
            "7peter",
            "v1.2",
            "_9zc",
        ] {
            assert!(could_be_local_part(word), "{word}");
        }
        for word in ["chan", "p.m.", "e.g", "U.S", "follow-up", "99", "1.2", ".chan", "etc."] {
            assert!(!could_be_local_part(word), "{word}");
        }
    }

    #[test]
    fn an_address_begun_after_an_emitted_word_is_held() {
        // `chan` was emitted; `@example` may still become an address.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["write to chan", "@example", ".com now"]),
            ["write to chan", "", "[電郵地址] now"]
        );
        assert_eq!(r.counts().email, 1);
    }

    #[test]
    fn a_long_number_is_held_one_final_for_an_account_word() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["號碼係 012-345678901，", "好", "係我嘅戶口"]),
            ["號碼係", "012-345678901，好", "係我嘅戶口"]
        );
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["號碼係 012-345678901，", "係我嘅戶口"]),
            ["號碼係", "[銀行戶口號碼]，係我嘅戶口"]
        );
        // Account numbers off: nothing held for them.
        let phones =
            Redactor::new(RedactOptions { types: "phone".parse().unwrap(), ..Default::default() });
        let mut r = CaptionRedactor::new(phones);
        assert_eq!(
            finals(&mut r, &["號碼係 012-345678901，", "係我嘅戶口"]),
            ["號碼係 012-345678901，", "係我嘅戶口"]
        );
    }

    #[test]
    fn a_phone_number_split_between_two_finals_is_redacted_whole() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["電話係九一二三", "四五六七，唔該"]),
            ["電話係", "[電話號碼]，唔該"]
        );
        assert_eq!(r.counts().phone, 1);
        // ASCII digits, as an English model writes them.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["call me on 9123", "4567 please."]),
            ["call me", "on [電話號碼] please."]
        );
        // Whisper's full stop after the first half goes. A full stop after digits
        // may be one of those, so the second final is held whole, until the end.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["Call me on 9123.", "4567."]),
            ["Call me", "", "on [電話號碼]."]
        );
        // Only a full stop after digits goes: a word held before one stays apart.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["電郵係 A。", "９012-345678901戶口"]),
            ["電郵係", "A。[銀行戶口號碼]戶口"]
        );
        // Split inside a group of ASCII digits: joined without the space.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["卡號 3", "000 0000 0000 0004，"]), ["卡號", "[信用卡號碼]，"]);
        assert_eq!(r.counts().card, 1);
        // Found by fuzzing: with the space, the middle is a phone number.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["，6", "044 4483 5754 0638，"]), ["，", "[信用卡號碼]，"]);
        // Digit by digit, in three pieces, the middle one all digits.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["我個電話係 9 1", "2 3 4 5", "6 7，唔該"]),
            ["我個電話係", "", "[電話號碼]，唔該"]
        );
        assert_eq!(r.counts().phone, 1);
    }

    #[test]
    fn an_hkid_number_split_between_two_finals_is_redacted_whole() {
        for pieces in [
            ["我身份證係 A123", "456(3)，記低"],
            ["我身份證係 A", "123456(3)，記低"],
            ["我身份證係 A123456", "(3)，記低"],
            ["我身份證係 A一二三四五六", "（三），記低"],
            ["我身份證係 A123456(", "3)，記低"],
            ["我身份證係 A123456 (3", ")，記低"],
        ] {
            let mut r = CaptionRedactor::new(Redactor::default());
            let out = finals(&mut r, &pieces);
            assert_eq!(out[0], "我身份證係", "{pieces:?}");
            assert_eq!(out[1], "[身份證號碼]，記低", "{pieces:?}");
            assert_eq!(r.counts().hkid, 1, "{pieces:?}");
        }
    }

    #[test]
    fn an_hkid_check_letter_in_the_next_final_is_caught() {
        for pieces in [["身份證 N434845(A", ")。"], ["身份證 G123456", "A，"]] {
            let mut r = CaptionRedactor::new(Redactor::default());
            let out = finals(&mut r, &pieces);
            assert_eq!(
                out.concat(),
                format!("身份證[身份證號碼]{}", &pieces[1][pieces[1].len() - 3..])
            );
            assert_eq!(r.counts().hkid, 1, "{pieces:?} -> {out:?}");
        }
    }

    #[test]
    fn white_space_trimmed_from_a_final_still_separates() {
        // Found by fuzzing: the line break kept `£` away from the number.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["£\n817077", "77，"]), ["£", "[電話號碼]，"]);
    }

    #[test]
    fn held_text_that_is_no_item_comes_back_in_order() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["我哋聽朝九", "點鐘開會"]), ["我哋聽朝", "九點鐘開會"]);
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["今年係 2024", "好呀"]), ["今年係", "2024好呀"]);
        // At the end of the stream, what is held is a final of its own.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["你好", "號碼係 1234"]), ["你好", "號碼係", "1234"]);
        assert!(r.counts().is_empty());
        assert!(!r.is_holding());
    }

    #[test]
    fn the_finish_final_keeps_a_number_apart_from_the_text_before() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(finals(&mut r, &["第\u{3000}9123 4567"]), ["第", "[電話號碼]"]);
        assert_eq!(r.counts().phone, 1);
    }

    #[test]
    fn the_finish_final_follows_the_last_segment() {
        let mut r = CaptionRedactor::new(Redactor::default());
        r.redact(final_(7, "電話係 9123", 1000, 2000));
        let CaptionEvent::Final { segment, text, start_ms, end_ms, .. } = r.finish().unwrap()
        else {
            panic!("not a final");
        };
        assert_eq!((segment, text.as_str(), start_ms, end_ms), (8, "9123", 2000, 2000));
        assert!(r.finish().is_none());
    }

    #[test]
    fn times_move_with_held_text() {
        let mut r = CaptionRedactor::new(Redactor::default());
        let first = r.redact(final_(1, "電話係九一二三", 1000, 3000));
        assert_eq!(first.span(), (1000, 3000));
        let second = r.redact(final_(2, "四五六七，好", 4000, 5000));
        assert_eq!((second.text(), second.span()), ("[電話號碼]，好", (3000, 5000)));
        // All held: the empty final keeps its times, the next one starts there.
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(r.redact(final_(1, "九一二三", 1000, 2000)).text(), "");
        let next = r.redact(final_(2, "四五六七，好", 3000, 4000));
        assert_eq!((next.text(), next.span()), ("[電話號碼]，好", (1000, 4000)));
    }

    #[test]
    fn an_account_word_cut_in_two_still_counts() {
        // Found by fuzzing: `acct` cut between two finals.
        let mut r = CaptionRedactor::new(Redactor::default());
        let out = finals(&mut r, &["我 ac", "ct 1 4444444441，"]);
        assert_eq!(out, ["我 ac", "ct [銀行戶口號碼]，"]);
        assert_eq!(r.counts().account, 1);
    }

    #[test]
    fn an_account_word_in_the_final_before_still_counts() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["我嘅銀行戶口號碼係", "123456789012，唔該"]),
            ["我嘅銀行戶口號碼係", "[銀行戶口號碼]，唔該"]
        );
        assert_eq!(r.counts().account, 1);
    }

    #[test]
    fn partials_never_show_half_a_number() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(r.redact(partial(1, 1, "電話係九一二")).text(), "電話係***");
        assert_eq!(
            r.redact(partial(1, 1, "Please call me on 912.")).text(),
            "Please call me on ***."
        );
        assert_eq!(r.redact(partial(1, 2, "電話係九一二三四五六七")).text(), "電話係[電話號碼]");
        assert_eq!(
            r.redact(partial(1, 3, "電話係九一二三四五六七，")).text(),
            "電話係[電話號碼]，"
        );
        // A long number that is no item yet (a unit follows) is masked in partials.
        assert_eq!(r.redact(partial(1, 4, "12345678個，")).text(), "********個，");
        // Short numbers that are complete stay.
        assert_eq!(r.redact(partial(1, 5, "三點半，2024年")).text(), "三點半，2024年");
        assert!(r.counts().is_empty(), "partials are not counted");
        // With held text in front.
        r.redact(final_(1, "電話係九一二三", 0, 900));
        assert_eq!(r.redact(partial(2, 1, "四五")).text(), "******");
        assert_eq!(r.redact(partial(2, 2, "四五六七，")).text(), "[電話號碼]，");
        assert_eq!(r.redact(final_(2, "四五六七，", 1000, 1900)).text(), "[電話號碼]，");
        assert_eq!(r.counts().phone, 1);
    }

    #[test]
    fn counts_are_per_stream_and_by_kind() {
        let mut r = CaptionRedactor::new(Redactor::default());
        let out = finals(
            &mut r,
            &["A123456(3) 同 9123 4567", "chan@example.com 4111 1111", "1111 1111 完"],
        );
        // A phone number ending a final is held too: it might have been the start of
        // a card number.
        assert_eq!(out, ["[身份證號碼] 同", "[電話號碼] [電郵地址]", "[信用卡號碼] 完"]);
        let c = r.counts();
        assert_eq!((c.hkid, c.phone, c.email, c.card, c.account), (1, 1, 1, 1, 0));
        assert_eq!(CaptionRedactor::new(Redactor::default()).counts(), RedactionCounts::default());
    }

    #[test]
    fn nothing_changes_when_redaction_is_off() {
        let off =
            Redactor::new(RedactOptions { types: RedactionTypes::NONE, ..Default::default() });
        let mut r = CaptionRedactor::new(off);
        assert_eq!(finals(&mut r, &["電話係九一二三", "四五六七"]), ["電話係九一二三", "四五六七"]);
        assert_eq!(r.redact(partial(3, 1, "九一二")).text(), "九一二");
        // Emails only: digits are not held either.
        let emails =
            Redactor::new(RedactOptions { types: "email".parse().unwrap(), ..Default::default() });
        let mut r = CaptionRedactor::new(emails);
        assert_eq!(finals(&mut r, &["電話係九一二三", "a@b.hk"]), ["電話係九一二三", "[電郵地址]"]);
    }

    #[test]
    fn masks_and_labels_are_never_held() {
        let masking = Redactor::new(RedactOptions {
            replacement: Replacement::MaskKeepLast(4),
            labels: Labels::english(),
            ..Default::default()
        });
        let mut r = CaptionRedactor::new(masking);
        assert_eq!(finals(&mut r, &["電話 9123 4567，", "好"]), ["電話 ****4567，", "好"]);
        assert_eq!(finals(&mut r, &["call 9123", "4567 now"]), ["call", "****4567 now"]);
        // A partial ending in a mask shows the kept digits: the mask is final.
        assert_eq!(r.redact(partial(9, 1, "電話 9123 4567")).text(), "電話 ****4567");
    }

    #[test]
    fn a_long_held_tail_is_masked_and_let_go() {
        let mut r = CaptionRedactor::new(Redactor::default());
        let digits = "1 ".repeat(40);
        let out = r.redact(final_(1, &digits, 0, 10)).text().to_owned();
        assert!(!out.chars().any(|c| c.is_ascii_digit()) && out.contains('*'), "{out}");
        assert!(!r.is_holding());
    }

    #[test]
    fn file_segments_keep_order_and_drop_empties() {
        let mut r = CaptionRedactor::new(Redactor::default());
        let segments = vec![
            Segment::new(0, 1000, "你好，電話係"),
            Segment::new(1000, 2000, "九一二三"),
            Segment::new(2000, 3000, "四五六七。多謝"),
            Segment::new(3000, 4000, "再見 12"),
        ];
        let out = r.redact_segments(segments);
        assert_eq!(
            out,
            [
                Segment::new(0, 1000, "你好，電話係"),
                Segment::new(1000, 3000, "[電話號碼]。多謝"),
                Segment::new(3000, 4000, "再見 12"),
            ]
        );
        assert_eq!(r.counts().phone, 1);
    }

    /// Regression: the cut skipped every Latin word and space up to the next
    /// punctuation, `account` included.
    #[test]
    fn a_context_cut_inside_english_words_keeps_the_words_after_it() {
        let mut r = CaptionRedactor::new(Redactor::default());
        assert_eq!(
            finals(&mut r, &["so the number of my bank account is", "012-345678901"]),
            ["so the number of my bank account is", "", "[銀行戶口號碼]"]
        );
        assert_eq!(r.counts().account, 1);
        // Cut inside a number followed by words: the number goes, the words stay.
        let mut r = CaptionRedactor::new(Redactor::default());
        r.push_context("$99 1234 5678 and my bank account");
        assert_eq!(r.context, "and my bank account");
    }

    #[test]
    fn context_cut_inside_a_number_is_not_an_item() {
        let mut r = CaptionRedactor::new(Redactor::default());
        // The context (the last 32 characters) cuts the price in two; the part left
        // would look like a phone number alone.
        let text = format!("$991234567{}", "呀".repeat(24));
        assert_eq!(finals(&mut r, &[&text, "好"]), [text.as_str(), "好"]);
        assert!(r.counts().is_empty());
    }
}
