//! Redaction of personal data in caption text: HKID numbers, Hong Kong phone numbers,
//! email addresses, payment card numbers and bank account numbers, however the speech
//! recogniser happened to write the digits.
//!
//! Captions are personal data under Hong Kong's Personal Data (Privacy) Ordinance as
//! soon as someone reads out an identity card or a phone number. A [`Redactor`] runs
//! over partials and finals before they leave the engine (and behind
//! `cantocap redact`), replaces each item with a label such as `[電話號碼]` or a mask
//! such as `****4567`, and counts what it removed by kind, never keeping the values.
//!
//! ```
//! use cantocap::text::{RedactOptions, RedactionKind, Redactor, Replacement};
//!
//! let redactor = Redactor::default();
//! let out = redactor.redact("我身份證係 A123456(3)，電話九一二三 四五六七，三點半見");
//! assert_eq!(out.text, "我身份證係 [身份證號碼]，電話[電話號碼]，三點半見");
//! assert_eq!(out.counts.get(RedactionKind::Phone), 1);
//!
//! let masking = Redactor::new(RedactOptions {
//!     replacement: Replacement::MaskKeepLast(4),
//!     ..RedactOptions::default()
//! });
//! assert_eq!(masking.redact("call me on +852 9123-4567").text, "call me on *******4567");
//! ```
//!
//! # Digits, however written
//!
//! Whisper writes a spoken number in ASCII digits, full-width digits (`９１２３`),
//! Chinese numerals (`九一二三`, `兩`, `幺`, `〇`), financial numerals (`玖壹貳叁`, also
//! Simplified `贰 叁 陆`) or a mixture, with or without spaces or hyphens between
//! groups. The redactor reads every such character as a digit, and full-width Latin
//! letters and brackets (`Ａ`, `（）`) as their ASCII forms, then matches the patterns
//! below on the digits while replacing the original characters. Chinese numerals also
//! occur in ordinary words (`一齊`, `兩個人`, `九龍`, `三文治`); they only matter when
//! they form a run of digit-like characters long enough to match a pattern, and
//! `十 百 千 萬` are never digits, so counts such as `三十個人` never form one.
//!
//! # What is redacted
//!
//! | Kind | Matched | Why this way |
//! |------|---------|--------------|
//! | [`Hkid`](RedactionKind::Hkid) | 1–2 letters, 6 digits, a check character (`0`–`9` or `A`), bracketed or not: `A123456(3)`, `AB123456(9)`, `G123456A`, `A 一二三四五六 (三)` | **only when the check character is right**: a letter and seven digits with a wrong check character are more likely a product or reference code |
//! | [`Phone`](RedactionKind::Phone) | 8 digits starting 2–9 (2, 3 fixed lines; 4–9 mobile, 4, 7 and 8 included since 2018), optionally after `+852`, `852` or `(852)`, in any grouping: `91234567`, `9123 4567`, `9123-4567`, `九 一 二 三 四五六七`, `912-3456-7`, `91-234-567` | every Hong Kong number has this form, and Whisper groups a number read out as it likes, so any such 8-digit number is taken for a phone number, except dates, ranges of years and lists of small numbers (see [Phone numbers](#phone-numbers)) |
//! | [`Email`](RedactionKind::Email) | `local@domain.tld`, ASCII or full-width; spoken as words, `chan at gmail dot com` (see [Spoken addresses](#spoken-addresses)) | an `@` and a dotted domain are an address; spoken, only the forms below |
//! | [`Card`](RedactionKind::Card) | 13–19 digits that pass the Luhn check, in groups of 3 or more (`4111 1111 1111 1111`, `3782 822463 10005`) or digit by digit | the Luhn check keeps most other long numbers |
//! | [`Account`](RedactionKind::Account) | 9–15 digits (a 3-digit bank code and 9–12 digits, or the account number alone) within 20 characters after or 10 before `戶口`, `户口`, `賬戶`, `帳戶`, `账户`, `賬號`, `帳號`, `account`, `acct` or `a/c` (before it, a Latin word counts as one character: `012-345678901 is my bank account`) | without such a word, a long number is not known to be an account |
//!
//! A run of digits is left alone when it is part of a bigger number or a quantity:
//! next to `.` or `:` and another digit (`10:30`, `HK$99.5`, `3.14159265`), after a
//! currency sign or `第`, before a unit such as `年 月 日 號 蚊 元 個 人 歲 % 點 十 百
//! 千 萬`, or when ASCII digits touch a Latin letter (`X91234567` is a code; the
//! letters of an HKID number excepted). Runs of 7 or 9 digits are not phone numbers,
//! and Mainland and other non-Hong Kong phone numbers are not matched. Prices, dates,
//! times, years, percentages and counts are short or broken by `, / : . 年 月` and
//! the like, so they survive.
//!
//! Numbers read out one after another with only spaces between them (`9123 4567
//! 2345 6789`) are split at their groups into phone and card numbers.
//!
//! # Spoken addresses
//!
//! Speech recognisers write a spoken address as words: `chantaiman at gmail dot com`,
//! `peter dot wong at abc dot com dot hk`, `chan underscore tm at yahoo dot com dot
//! hk`, `我嘅電郵係 chan at gmail dot com`. Such an address is `LOCAL at DOMAIN`, the
//! words apart by spaces only, where
//!
//! - DOMAIN is words joined by ` dot ` (also ` dash `, ` hyphen `, ` underscore `, or
//!   a written `.`), the longest run whose last part is a known top-level domain
//!   (`com net org edu gov hk io co uk cn tw mo sg info biz` and a few countries);
//! - and one of these holds: a **cue word** (`email`, `e-mail`, `mail`, `address`,
//!   `電郵`, `郵箱`, `電子郵件`, `郵件`, `地址`, `信箱`, Simplified forms too) ends at
//!   most 20 characters before LOCAL; or the domain is a **mail provider's**
//!   (`gmail`, `yahoo`, `hotmail`, `outlook`, `icloud`, `netvigator`, `protonmail`,
//!   `qq`, `163` …); or it ends in a **country** (`dot hk`, `dot com dot hk`).
//!
//! LOCAL, after a cue word, is every word between the cue (and `係`, `is`, `:`) and
//! ` at ` (`email is chan tai man at …`), up to four; without one, or when other text
//! stands between, it is the one word before ` at ` with the words joined to it by
//! ` dot ` and the like (`peter dot wong`), and not a word such as `look` or `me`.
//! So ordinary English survives: `look at this dot com boom`, `meet at the hotel`,
//! `at home dot`, `dot com era`. A cue word inside a label (`[電郵地址]`) is no cue.
//!
//! # Phone numbers
//!
//! Eight digits starting 2–9 are a phone number however they are grouped, with these
//! exceptions:
//!
//! - **Dates**: `20240315` written whole; a year (1900–2099) then a month and day in
//!   either order, grouped 4-2-2 or 4-4 (`2024-11-29`, `2024 11 29`, `2024 1129`); a
//!   day and month in either order then a year, grouped 2-2-4 (`29-11-2024`).
//! - **Ranges of years**: two years grouped 4-4, the second later (`2023-2024`).
//! - **Lists of small numbers**: groups of one or two digits, not all of one
//!   (`25 33 41 45`, `3 5 12 25 33`: lottery draws, scores, ages). Digit by digit
//!   (`9 1 2 3 4 5 6 7`) is a phone number.
//! - **Wide separators** in an unusual grouping: whole, in fours or digit by digit,
//!   groups may be apart by up to three separator characters (`9123 - 4567`); any
//!   other grouping needs one space or hyphen between groups (`912-3456-7`).
//! - **Part of a longer code**: inside a longer run of digits, an unusual grouping is a
//!   phone number only when its own separators differ from those around it
//!   (`912-3456-7 3個人` is, `306-40615` in the ISBN `978-0-306-40615-7` is not).
//!
//! With a country code (`+852 2024 1129`), none of these is a date or a list. A year
//! before four digits that are no month and day (`2024 5678`) is a phone number:
//! Whisper writes a count after a year with its unit or a comma. Times (`12:30`),
//! prices (`$1,234.50`) and versions (`1.2.3`) are broken by `:`, `,` and `.` and never
//! form eight digits in a row.
//!
//! # Replacement
//!
//! [`Replacement::Label`] writes the kind's label ([`Labels::chinese`] by default,
//! [`Labels::english`] or your own). [`Replacement::MaskKeepLast`] writes `*` for every
//! digit (and HKID letter) except the last N, which are written as ASCII digits; it
//! never keeps more than half of them, so a mask can't give a number away whole.
//! Email addresses have no digits to keep and get their label in both modes.
//!
//! Redaction is idempotent: redacting redacted text changes nothing (digits next to
//! `*` are a mask already, and labels hold no digits; keep it so in custom labels).
//!
//! A [`Redactor`] sees one text at a time: a number split between two texts (say a
//! final ending `九一二三` and the next starting `四五六七`) is not seen whole. Caption
//! streams go through a [`CaptionRedactor`](super::CaptionRedactor), which holds such
//! a tail back until the next final.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Add, AddAssign, Range, Sub};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of personal data the [`Redactor`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactionKind {
    /// Hong Kong identity card numbers with a valid check character.
    Hkid,
    /// Hong Kong phone numbers (fixed and mobile).
    Phone,
    /// Email addresses.
    Email,
    /// Payment card numbers (13–19 digits, Luhn-valid).
    Card,
    /// Bank account numbers near a word such as `戶口` or `account`.
    Account,
}

impl RedactionKind {
    /// Every kind, in the order of the command-line help and of [`RedactionCounts`].
    pub const ALL: [RedactionKind; 5] = [
        RedactionKind::Hkid,
        RedactionKind::Phone,
        RedactionKind::Email,
        RedactionKind::Card,
        RedactionKind::Account,
    ];

    /// The short name used on the command line and in JSON: `hkid`, `phone`, `email`,
    /// `card` or `account`.
    pub fn name(self) -> &'static str {
        match self {
            RedactionKind::Hkid => "hkid",
            RedactionKind::Phone => "phone",
            RedactionKind::Email => "email",
            RedactionKind::Card => "card",
            RedactionKind::Account => "account",
        }
    }
}

impl fmt::Display for RedactionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RedactionKind {
    type Err = ParseRedactionKindError;

    /// Accepts the [`name`](RedactionKind::name)s in any case, and `id`, `tel`, `mail`,
    /// `credit-card`, `bank`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "hkid" | "id" => Ok(RedactionKind::Hkid),
            "phone" | "tel" => Ok(RedactionKind::Phone),
            "email" | "e-mail" | "mail" => Ok(RedactionKind::Email),
            "card" | "credit-card" => Ok(RedactionKind::Card),
            "account" | "bank" => Ok(RedactionKind::Account),
            _ => Err(ParseRedactionKindError { input: s.to_owned() }),
        }
    }
}

/// A redaction kind that is not one of `hkid`, `phone`, `email`, `card` or `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRedactionKindError {
    input: String,
}

impl fmt::Display for ParseRedactionKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kind of personal data {:?}: choose from hkid, phone, email, card, account \
             (comma-separated), all or none",
            self.input
        )
    }
}

impl std::error::Error for ParseRedactionKindError {}

/// Which kinds to redact. The default is all of them.
///
/// Parses from a comma-separated list (`"hkid,phone"`), `all` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactionTypes {
    /// HKID numbers.
    pub hkid: bool,
    /// Phone numbers.
    pub phone: bool,
    /// Email addresses.
    pub email: bool,
    /// Payment card numbers.
    pub card: bool,
    /// Bank account numbers.
    pub account: bool,
}

impl RedactionTypes {
    /// Every kind.
    pub const ALL: RedactionTypes =
        RedactionTypes { hkid: true, phone: true, email: true, card: true, account: true };
    /// No kind: the redactor changes nothing.
    pub const NONE: RedactionTypes =
        RedactionTypes { hkid: false, phone: false, email: false, card: false, account: false };

    /// Whether `kind` is redacted.
    pub fn contains(&self, kind: RedactionKind) -> bool {
        match kind {
            RedactionKind::Hkid => self.hkid,
            RedactionKind::Phone => self.phone,
            RedactionKind::Email => self.email,
            RedactionKind::Card => self.card,
            RedactionKind::Account => self.account,
        }
    }

    /// Turns `kind` on or off.
    pub fn set(&mut self, kind: RedactionKind, on: bool) {
        let flag = match kind {
            RedactionKind::Hkid => &mut self.hkid,
            RedactionKind::Phone => &mut self.phone,
            RedactionKind::Email => &mut self.email,
            RedactionKind::Card => &mut self.card,
            RedactionKind::Account => &mut self.account,
        };
        *flag = on;
    }

    /// The kinds that are on, in [`RedactionKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = RedactionKind> + '_ {
        RedactionKind::ALL.into_iter().filter(|&k| self.contains(k))
    }
}

impl Default for RedactionTypes {
    fn default() -> Self {
        RedactionTypes::ALL
    }
}

impl FromIterator<RedactionKind> for RedactionTypes {
    fn from_iter<I: IntoIterator<Item = RedactionKind>>(iter: I) -> Self {
        let mut types = RedactionTypes::NONE;
        for kind in iter {
            types.set(kind, true);
        }
        types
    }
}

impl FromStr for RedactionTypes {
    type Err = ParseRedactionKindError;

    /// Accepts kinds separated by commas (spaces allowed), `all` or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => return Ok(RedactionTypes::ALL),
            "none" | "" => return Ok(RedactionTypes::NONE),
            _ => {}
        }
        s.split(',').filter(|p| !p.trim().is_empty()).map(str::parse).collect()
    }
}

impl fmt::Display for RedactionTypes {
    /// The kinds that are on, comma-separated (`none` when none is): parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(RedactionKind::name).collect();
        f.write_str(if names.is_empty() { "none".to_owned() } else { names.join(",") }.as_str())
    }
}

/// What a redacted item is replaced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    /// The kind's label from [`RedactOptions::labels`], such as `[電話號碼]`.
    #[default]
    Label,
    /// `*` for each digit (and HKID letter) except the last N, kept as ASCII digits:
    /// `****4567`. At most half of the digits are kept, whatever N is. Email addresses
    /// get their label.
    MaskKeepLast(usize),
}

/// The text written in place of each kind under [`Replacement::Label`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Labels {
    /// For HKID numbers.
    pub hkid: String,
    /// For phone numbers.
    pub phone: String,
    /// For email addresses.
    pub email: String,
    /// For payment card numbers.
    pub card: String,
    /// For bank account numbers.
    pub account: String,
}

impl Labels {
    /// Traditional Chinese labels (the default): `[身份證號碼]`, `[電話號碼]`,
    /// `[電郵地址]`, `[信用卡號碼]`, `[銀行戶口號碼]`.
    pub fn chinese() -> Self {
        Labels {
            hkid: "[身份證號碼]".into(),
            phone: "[電話號碼]".into(),
            email: "[電郵地址]".into(),
            card: "[信用卡號碼]".into(),
            account: "[銀行戶口號碼]".into(),
        }
    }

    /// English labels: `[HKID]`, `[PHONE]`, `[EMAIL]`, `[CARD]`, `[ACCOUNT]`.
    pub fn english() -> Self {
        Labels {
            hkid: "[HKID]".into(),
            phone: "[PHONE]".into(),
            email: "[EMAIL]".into(),
            card: "[CARD]".into(),
            account: "[ACCOUNT]".into(),
        }
    }

    /// The label for `kind`.
    pub fn get(&self, kind: RedactionKind) -> &str {
        match kind {
            RedactionKind::Hkid => &self.hkid,
            RedactionKind::Phone => &self.phone,
            RedactionKind::Email => &self.email,
            RedactionKind::Card => &self.card,
            RedactionKind::Account => &self.account,
        }
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::chinese()
    }
}

/// How a [`Redactor`] works. The default redacts every kind and writes Chinese labels.
///
/// ```
/// use cantocap::text::{Labels, RedactOptions, RedactionTypes, Redactor};
///
/// let phones_only = Redactor::new(RedactOptions {
///     types: "phone".parse()?,
///     labels: Labels::english(),
///     ..RedactOptions::default()
/// });
/// assert_eq!(phones_only.redact("chan@example.com 23456789").text, "chan@example.com [PHONE]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactOptions {
    /// The kinds to redact. Default: all.
    pub types: RedactionTypes,
    /// What to write instead. Default: [`Replacement::Label`].
    pub replacement: Replacement,
    /// The labels for [`Replacement::Label`] (and for email addresses under masking).
    /// Default: [`Labels::chinese`].
    pub labels: Labels,
}

/// How many items of each kind were redacted: never the items themselves, so counts
/// can go to audit logs. Counts add up (`+`, `+=`, `sum()`) over a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RedactionCounts {
    /// HKID numbers.
    pub hkid: u64,
    /// Phone numbers.
    pub phone: u64,
    /// Email addresses.
    pub email: u64,
    /// Payment card numbers.
    pub card: u64,
    /// Bank account numbers.
    pub account: u64,
}

impl RedactionCounts {
    /// The count for `kind`.
    pub fn get(&self, kind: RedactionKind) -> u64 {
        match kind {
            RedactionKind::Hkid => self.hkid,
            RedactionKind::Phone => self.phone,
            RedactionKind::Email => self.email,
            RedactionKind::Card => self.card,
            RedactionKind::Account => self.account,
        }
    }

    fn bump(&mut self, kind: RedactionKind) {
        let count = match kind {
            RedactionKind::Hkid => &mut self.hkid,
            RedactionKind::Phone => &mut self.phone,
            RedactionKind::Email => &mut self.email,
            RedactionKind::Card => &mut self.card,
            RedactionKind::Account => &mut self.account,
        };
        *count += 1;
    }

    /// All kinds together.
    pub fn total(&self) -> u64 {
        RedactionKind::ALL.iter().map(|&k| self.get(k)).sum()
    }

    /// Whether nothing was redacted.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

impl AddAssign for RedactionCounts {
    fn add_assign(&mut self, other: Self) {
        self.hkid += other.hkid;
        self.phone += other.phone;
        self.email += other.email;
        self.card += other.card;
        self.account += other.account;
    }
}

impl Add for RedactionCounts {
    type Output = RedactionCounts;

    fn add(mut self, other: Self) -> Self {
        self += other;
        self
    }
}

impl Sub for RedactionCounts {
    type Output = RedactionCounts;

    /// Kind by kind, never below zero: what was redacted between two readings.
    fn sub(self, other: Self) -> Self {
        RedactionCounts {
            hkid: self.hkid.saturating_sub(other.hkid),
            phone: self.phone.saturating_sub(other.phone),
            email: self.email.saturating_sub(other.email),
            card: self.card.saturating_sub(other.card),
            account: self.account.saturating_sub(other.account),
        }
    }
}

impl std::iter::Sum for RedactionCounts {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(RedactionCounts::default(), Add::add)
    }
}

impl fmt::Display for RedactionCounts {
    /// `hkid 1, phone 2, email 0, card 0, account 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, kind) in RedactionKind::ALL.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{kind} {}", self.get(kind))?;
        }
        Ok(())
    }
}

/// Redacted text and what was taken out of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Redacted {
    /// The text with every item replaced.
    pub text: String,
    /// How many items of each kind were replaced.
    pub counts: RedactionCounts,
}

/// Finds and replaces personal data in caption text; see the [module](self) for what
/// it matches. Pure and cheap (linear in the text, microseconds for a caption line):
/// build one per configuration and share it between threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    options: RedactOptions,
}

impl Redactor {
    /// A redactor with these options.
    pub fn new(options: RedactOptions) -> Self {
        Redactor { options }
    }

    /// Its options.
    pub fn options(&self) -> &RedactOptions {
        &self.options
    }

    /// Replaces every item of the enabled kinds in `text` and counts them by kind.
    /// Never fails; text without personal data comes back unchanged.
    ///
    /// Whether a number is an item depends on its neighbours (`戶口` nearby, a unit
    /// after it), and replacing one item changes the neighbours of the next, so the
    /// text is scanned again after each replacement until nothing more is found:
    /// redacting the result again changes nothing.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut counts = RedactionCounts::default();
        let mut text = Cow::Borrowed(text);
        for _ in 0..MAX_PASSES {
            let mut scan = Scan::new(&text, self.options.types);
            let found = scan.find_all();
            if found.is_empty() {
                break;
            }
            let mut out = String::with_capacity(text.len());
            let mut copied = 0;
            for item in &found {
                let bytes = scan.bytes(&item.chars);
                out.push_str(&text[copied..bytes.start]);
                self.write_replacement(item, &mut out);
                copied = bytes.end;
                counts.bump(item.kind);
            }
            out.push_str(&text[copied..]);
            text = Cow::Owned(out);
        }
        Redacted { text: text.into_owned(), counts }
    }

    /// Where a spoken address at the end of `text` that may go on in the text after
    /// it starts (a byte offset; see [`Scan::open_spoken_email`]); `None` when there
    /// is none or emails are not redacted.
    pub(super) fn open_spoken_email(&self, text: &str) -> Option<usize> {
        if !self.options.types.email {
            return None;
        }
        let scan = Scan::new(text, self.options.types);
        Some(scan.offsets[scan.open_spoken_email()?])
    }

    /// Where the last number in `text` starts (a byte offset) that is no item yet, but
    /// that an account word in the text after `text` could still make a bank account
    /// number (see [`Scan::pending_account`]); `None` when accounts are not redacted.
    pub(super) fn pending_account(&self, text: &str) -> Option<usize> {
        if !self.options.types.account {
            return None;
        }
        let mut scan = Scan::new(text, self.options.types);
        let start = scan.pending_account()?;
        Some(scan.offsets[start])
    }

    fn write_replacement(&self, item: &Found, out: &mut String) {
        match self.options.replacement {
            Replacement::MaskKeepLast(keep) if item.kind != RedactionKind::Email => {
                let symbols = &item.symbols;
                let keep = keep.min(symbols.len() / 2);
                out.extend(std::iter::repeat_n('*', symbols.len() - keep));
                out.push_str(&symbols[symbols.len() - keep..]);
            }
            _ => out.push_str(self.options.labels.get(item.kind)),
        }
    }
}

/// An item found, in characters of the scanned text.
#[derive(Debug)]
struct Found {
    kind: RedactionKind,
    chars: Range<usize>,
    /// Its digits (and HKID letters) in ASCII, for masks.
    symbols: String,
}

/// What a character means to the matchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// A digit, however written; `ascii` for `0-9` and full-width `０-９`, which form
    /// codes with Latin letters where Chinese numerals do not.
    Digit { value: u8, ascii: bool },
    /// A Latin letter (ASCII or full-width), upper-cased.
    Letter(u8),
    /// A space or hyphen that may separate digit groups.
    Sep,
    /// `(` or `（`.
    Open,
    /// `)` or `）`.
    Close,
    /// `+` or `＋`.
    Plus,
    /// `.` and `:` (and full-width forms): between digits, they make one bigger number
    /// (a decimal, a time). Commas and slashes do not: phone numbers are listed with
    /// them (`2123 4567/9123 4567`), and they join only short numbers (`1,250`,
    /// `15/3/2024`).
    Joiner,
    /// `*`: a mask from an earlier redaction.
    Mask,
    /// Anything else, or part of an item already found.
    Other,
}

/// `c` as the ASCII character it stands for (full-width forms such as `ａ`, `＠`,
/// `．` too), if any.
pub(super) fn ascii_form(c: char) -> Option<char> {
    let c = match c {
        '！'..='～' => char::from_u32(c as u32 - 0xFEE0)?,
        _ => c,
    };
    c.is_ascii().then_some(c)
}

/// Whether `text` is one email address and nothing else, full stops after it aside.
pub(super) fn is_email_address(text: &str) -> bool {
    let scan = Scan::new(text, RedactionTypes::NONE);
    match scan.written_emails().as_slice() {
        [one] => {
            one.chars.start == 0
                && scan.chars[one.chars.end..].iter().all(|&c| ascii_form(c) == Some('.'))
        }
        _ => false,
    }
}

pub(super) fn classify(c: char) -> Class {
    let digit = |value| Class::Digit { value, ascii: false };
    match c {
        '0'..='9' => Class::Digit { value: c as u8 - b'0', ascii: true },
        '０'..='９' => Class::Digit { value: (c as u32 - '０' as u32) as u8, ascii: true },
        'A'..='Z' => Class::Letter(c as u8),
        'a'..='z' => Class::Letter(c.to_ascii_uppercase() as u8),
        'Ａ'..='Ｚ' => Class::Letter(b'A' + (c as u32 - 'Ａ' as u32) as u8),
        'ａ'..='ｚ' => Class::Letter(b'A' + (c as u32 - 'ａ' as u32) as u8),
        '零' | '〇' | '○' => digit(0),
        '一' | '壹' | '幺' | '弌' => digit(1),
        '二' | '兩' | '两' | '貳' | '贰' | '貮' | '弍' => digit(2),
        '三' | '叁' | '參' | '参' | '叄' | '弎' => digit(3),
        '四' | '肆' => digit(4),
        '五' | '伍' => digit(5),
        '六' | '陸' | '陆' => digit(6),
        '七' | '柒' => digit(7),
        '八' | '捌' => digit(8),
        '九' | '玖' => digit(9),
        ' ' | '\u{a0}' | '\u{3000}' | '-' | '－' | '‐' | '‑' | '‒' | '–' => Class::Sep,
        '(' | '（' => Class::Open,
        ')' | '）' => Class::Close,
        '+' | '＋' => Class::Plus,
        '.' | ':' | '．' | '：' => Class::Joiner,
        '*' | '＊' | '∗' => Class::Mask,
        _ => Class::Other,
    }
}

/// After a digit run, these make it a quantity, date or time rather than an item.
const UNITS: &str = "年月日號号蚊元圓圆毫個个人位歲岁%％度點点時时分秒十百千萬万億亿";
/// Before a digit run, these make it a price or an ordinal.
const BEFORE: &str = "$＄¥￥€£第";
/// Words that make a spoken address near after them one (`電郵係 chan at …`).
pub(super) const EMAIL_CUES: &[&str] = &[
    "email",
    "e-mail",
    "mail",
    "address",
    "電郵",
    "电邮",
    "郵箱",
    "邮箱",
    "電子郵件",
    "电子邮件",
    "郵件",
    "邮件",
    "地址",
    "信箱",
];
/// Characters between a cue word and the part before ` at ` (`電郵係 chan`,
/// `email: chan`).
const CUE_FILLER: &str = ":：係系是為为=,，";
/// Words between a cue word and the part before ` at ` (`email is chan`).
const FILLER_WORDS: &[&str] = &["is", "was", "are"];
/// Characters before the part before ` at ` that are searched for a cue word.
const CUE_BEFORE: usize = 20;
/// Words (joiners aside) of the part before ` at ` taken after a cue word.
const MAX_LOCAL_WORDS: usize = 4;
/// Top-level domains of spoken addresses.
const TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "hk", "io", "co", "uk", "cn", "tw", "mo", "sg", "info",
    "biz", "me", "us", "jp", "au", "ca", "de", "fr", "my", "nz", "kr", "in",
];
/// Country domains that make a spoken address without a cue word one (`at abc dot com
/// dot hk`): not `io`, `co` or `me`, used as words and brands.
const COUNTRY_TLDS: &[&str] =
    &["hk", "uk", "cn", "tw", "mo", "sg", "jp", "au", "ca", "de", "fr", "my", "nz", "kr"];
/// Mail providers that make a spoken address without a cue word one.
const PROVIDERS: &[&str] = &[
    "gmail",
    "googlemail",
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "icloud",
    "netvigator",
    "protonmail",
    "proton",
    "qq",
    "163",
    "126",
];
/// Words before ` at ` that are no address without a cue word (`look at gmail dot com`).
const NOT_LOCAL: &[&str] = &[
    "look", "looking", "looked", "arrive", "arrived", "be", "is", "are", "was", "were", "am", "me",
    "us", "him", "her", "them", "it", "you", "we", "they", "i", "meet", "see", "stay", "stayed",
    "live", "lives", "lived", "work", "works", "worked", "working", "point", "pointing", "good",
    "bad", "best", "better", "great", "not", "and", "or", "but", "the", "a", "an", "here", "there",
    "just", "only", "even", "all", "up", "down", "out", "back", "home", "email", "mail", "address",
];
/// Words that join parts of a spoken address, and the character each stands for.
fn spoken_joiner(word: &str) -> Option<char> {
    match word {
        "dot" => Some('.'),
        "underscore" => Some('_'),
        "dash" | "hyphen" => Some('-'),
        _ => None,
    }
}

/// A word of a spoken address: not ` at ` and no joiner.
fn is_part(word: &Word) -> bool {
    word.text != "at" && spoken_joiner(&word.text).is_none()
}

/// Whether `labels` are a domain: two or more, none empty, the last a [`TLDS`] one.
fn is_domain(labels: &[String]) -> bool {
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels.last().is_some_and(|l| TLDS.contains(&l.as_str()))
}

/// Whether a domain makes a spoken address one without a cue word: a mail provider's,
/// a country's, or three labels or more (`abc dot com dot hk`).
fn well_known(labels: &[String]) -> bool {
    let last = labels.last().map_or("", String::as_str);
    PROVIDERS.contains(&labels[0].as_str())
        || COUNTRY_TLDS.contains(&last)
        || labels.len() >= 3 && last.len() == 2
}

/// An ASCII word, for spoken addresses: its characters and its text in lower case.
#[derive(Debug)]
struct Word {
    start: usize,
    end: usize,
    text: String,
}

/// Words that make a long number near them a bank account number.
const ACCOUNT_WORDS: &[&str] = &[
    "戶口", "户口", "賬戶", "帳戶", "账户", "帐户", "賬號", "帳號", "账号", "帐号", "account",
    "acct", "a/c",
];
/// Characters before (after) a number that are searched for [`ACCOUNT_WORDS`].
const ACCOUNT_BEFORE: usize = 20;
const ACCOUNT_AFTER: usize = 10;
/// Scans of one text at most: each finds what the replacements of the one before
/// brought to light; a second scan normally finds nothing.
const MAX_PASSES: usize = 4;
/// Separator characters allowed between two digit groups.
const MAX_SEP: usize = 3;

/// A digit run: digits with separators between groups.
#[derive(Debug, Clone)]
struct Run {
    /// First character of the item (a `+` or `(` of a country code included).
    start: usize,
    /// One past its last character.
    end: usize,
    /// Character index of each digit.
    digits: Vec<usize>,
    /// Digits per group.
    groups: Vec<usize>,
    /// The characters between each group and the next (`groups.len() - 1` of them).
    gaps: Vec<Range<usize>>,
    /// Written after a `+` or as `(852)`: a phone number with a country code.
    international: bool,
}

struct Scan {
    /// Byte offset of each character, and the text's length at the end.
    offsets: Vec<usize>,
    chars: Vec<char>,
    class: Vec<Class>,
    types: RedactionTypes,
}

impl Scan {
    fn new(text: &str, types: RedactionTypes) -> Self {
        let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        offsets.push(text.len());
        let chars: Vec<char> = text.chars().collect();
        let class = chars.iter().map(|&c| classify(c)).collect();
        Scan { offsets, chars, class, types }
    }

    fn bytes(&self, chars: &Range<usize>) -> Range<usize> {
        self.offsets[chars.start]..self.offsets[chars.end]
    }

    fn class(&self, i: usize) -> Class {
        self.class.get(i).copied().unwrap_or(Class::Other)
    }

    fn digit(&self, i: usize) -> Option<u8> {
        match self.class(i) {
            Class::Digit { value, .. } => Some(value),
            _ => None,
        }
    }

    fn is_alnum(&self, i: usize) -> bool {
        matches!(self.class(i), Class::Digit { .. } | Class::Letter(_))
    }

    fn is_ascii_digit(&self, i: usize) -> bool {
        matches!(self.class(i), Class::Digit { ascii: true, .. })
    }

    /// Every item, in order, not overlapping. Emails first (their digits are not
    /// phone numbers), then HKID numbers (their digits are not phone numbers either),
    /// then digit runs.
    fn find_all(&mut self) -> Vec<Found> {
        let mut found = Vec::new();
        if self.types.email {
            self.take(self.emails(), &mut found);
        }
        if self.types.hkid {
            self.take(self.hkids(), &mut found);
        }
        if self.types.phone || self.types.card || self.types.account {
            let runs = self.digit_items();
            found.extend(runs);
        }
        found.sort_by_key(|f| f.chars.start);
        found
    }

    /// Records `items` and hides their characters from later matchers.
    fn take(&mut self, items: Vec<Found>, found: &mut Vec<Found>) {
        for item in items {
            for c in &mut self.class[item.chars.clone()] {
                *c = Class::Other;
            }
            found.push(item);
        }
    }

    // ----- email -------------------------------------------------------------------

    /// Written and spoken email addresses, in order; a spoken one never overlaps a
    /// written one.
    fn emails(&self) -> Vec<Found> {
        let mut found = self.written_emails();
        let spoken = self.spoken_emails();
        let free = |s: &Found| {
            found.iter().all(|w| w.chars.end <= s.chars.start || s.chars.end <= w.chars.start)
        };
        let spoken: Vec<Found> = spoken.into_iter().filter(free).collect();
        found.extend(spoken);
        found.sort_by_key(|f| f.chars.start);
        found
    }

    fn written_emails(&self) -> Vec<Found> {
        let ascii = |i: usize| self.chars.get(i).copied().and_then(ascii_form);
        let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
        let domain = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
        let mut out = Vec::new();
        let mut after_last = 0;
        for at in 0..self.chars.len() {
            if ascii(at) != Some('@') || at < after_last {
                continue;
            }
            let mut start = at;
            while start > after_last && ascii(start - 1).is_some_and(local) {
                start -= 1;
            }
            while start < at && ascii(start) == Some('.') {
                start += 1;
            }
            let mut end = at + 1;
            while ascii(end).is_some_and(domain) {
                end += 1;
            }
            while end > at + 1 && matches!(ascii(end - 1), Some('.' | '-')) {
                end -= 1;
            }
            let host: String = (at + 1..end).filter_map(ascii).collect();
            let labels: Vec<&str> = host.split('.').collect();
            let tld = labels.last().copied().unwrap_or("");
            let valid = start < at
                && labels.len() >= 2
                && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
                && tld.len() >= 2
                && tld.chars().all(|c| c.is_ascii_alphabetic());
            if valid {
                out.push(Found {
                    kind: RedactionKind::Email,
                    chars: start..end,
                    symbols: String::new(),
                });
                after_last = end;
            }
        }
        out
    }

    // ----- spoken email ------------------------------------------------------------

    /// The ASCII words of the text (full-width forms too): letters, digits and
    /// `._%+-`, without punctuation at either end (`com.` is `com`).
    fn words(&self) -> Vec<Word> {
        let ascii = |i: usize| self.chars.get(i).copied().and_then(ascii_form);
        let wordy = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
        let alnum = |i: usize| ascii(i).is_some_and(|c| c.is_ascii_alphanumeric());
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.chars.len() {
            if !ascii(i).is_some_and(wordy) {
                i += 1;
                continue;
            }
            let (mut start, mut end) = (i, i);
            while ascii(end).is_some_and(wordy) {
                end += 1;
            }
            i = end;
            while start < end && !alnum(start) {
                start += 1;
            }
            while end > start && !alnum(end - 1) {
                end -= 1;
            }
            if start < end {
                let text = (start..end).filter_map(ascii).collect::<String>().to_ascii_lowercase();
                out.push(Word { start, end, text });
            }
        }
        out
    }

    /// Whether only white space stands between `words[i]` and `words[i + 1]`.
    fn spaced(&self, words: &[Word], i: usize) -> bool {
        match (words.get(i), words.get(i + 1)) {
            (Some(a), Some(b)) => {
                b.start > a.end && self.chars[a.end..b.start].iter().all(|c| c.is_whitespace())
            }
            _ => false,
        }
    }

    /// The end (a character index) of the last [`EMAIL_CUES`] word that ends at most
    /// [`CUE_BEFORE`] characters before `at`. A cue inside a label (`[電郵地址]`,
    /// `[EMAIL]`) is none: redacted text must not bring more to light.
    fn cue_before(&self, at: usize) -> Option<usize> {
        let lower: Vec<char> =
            self.chars.iter().map(|&c| ascii_form(c).unwrap_or(c).to_ascii_lowercase()).collect();
        let letter =
            |i: Option<usize>| i.and_then(|i| lower.get(i)).is_some_and(char::is_ascii_alphabetic);
        let mut best = None;
        for cue in EMAIL_CUES {
            let cue: Vec<char> = cue.chars().collect();
            let latin = cue[0].is_ascii();
            for start in at.saturating_sub(CUE_BEFORE + cue.len())..at {
                let end = start + cue.len();
                if end > at || end + CUE_BEFORE < at || lower[start..end] != cue[..] {
                    continue;
                }
                let (before, after) = (start.checked_sub(1), Some(end));
                if latin && (letter(before) || letter(after)) {
                    continue;
                }
                if before.is_some_and(|b| lower[b] == '[') || lower.get(end) == Some(&']') {
                    continue;
                }
                best = best.max(Some(end));
            }
        }
        best
    }

    /// The domain of a spoken address from `words[from]` on: the index of its last
    /// word and its labels, the longest run of words joined by ` dot `,
    /// ` underscore `, ` dash ` or ` hyphen ` whose last label is a [`TLDS`] one.
    fn spoken_domain(&self, words: &[Word], from: usize) -> Option<(usize, Vec<String>)> {
        let domain_word = |w: &Word| {
            is_part(w) && w.text.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        };
        let first = words.get(from).filter(|w| domain_word(w))?;
        let mut labels: Vec<String> = first.text.split('.').map(str::to_owned).collect();
        let mut best = None;
        let mut j = from;
        loop {
            if is_domain(&labels) {
                best = Some((j, labels.clone()));
            }
            let (Some(joiner), Some(next)) = (words.get(j + 1), words.get(j + 2)) else {
                break;
            };
            let Some(joiner) = spoken_joiner(&joiner.text) else {
                break;
            };
            if !self.spaced(words, j) || !self.spaced(words, j + 1) || !domain_word(next) {
                break;
            }
            let mut parts = next.text.split('.');
            if joiner == '.' {
                labels.extend(parts.map(str::to_owned));
            } else if let Some(last) = labels.last_mut() {
                last.push(joiner);
                last.push_str(parts.next().unwrap_or(""));
                labels.extend(parts.map(str::to_owned));
            }
            j += 2;
        }
        best
    }

    /// The first word of the part before the ` at ` at `words[at]` (or before the end
    /// of the text, for `at == words.len()`), not before `words[min]`, and whether a cue
    /// word is near before it. Without a cue: the word before ` at `, with the words
    /// joined to it by ` dot ` and the like (`peter dot wong`). With one: every word
    /// between the cue (and `係`, `is`, `:`) and ` at ` (`chan tai man`), up to
    /// [`MAX_LOCAL_WORDS`].
    fn spoken_local(&self, words: &[Word], at: usize, min: usize) -> Option<(usize, bool)> {
        let mut i = at.checked_sub(1).filter(|&i| i >= min && is_part(&words[i]))?;
        while i >= min + 2
            && self.spaced(words, i - 1)
            && self.spaced(words, i - 2)
            && spoken_joiner(&words[i - 1].text).is_some()
            && is_part(&words[i - 2])
        {
            i -= 2;
        }
        let Some(cue_end) = self.cue_before(words[i].start) else {
            return Some((i, false));
        };
        // After the cue: `係`, `:`, `is` and white space, then the words.
        let mut pos = cue_end;
        let mut k = words.partition_point(|w| w.start < cue_end);
        loop {
            while self.chars.get(pos).is_some_and(|&c| c.is_whitespace() || CUE_FILLER.contains(c))
            {
                pos += 1;
            }
            match words.get(k) {
                Some(w) if w.start == pos && FILLER_WORDS.contains(&w.text.as_str()) => {
                    pos = w.end;
                    k += 1;
                }
                _ => break,
            }
        }
        let run = k < i
            && k >= min
            && words[k].start == pos
            && is_part(&words[k])
            && (k..at - 1).all(|j| self.spaced(words, j))
            && words[k..at].iter().filter(|w| is_part(w)).count() <= MAX_LOCAL_WORDS
            && words[k..at].iter().all(|w| w.text != "at");
        Some((if run { k } else { i }, true))
    }

    /// Addresses spoken as words: `LOCAL at DOMAIN (dot PART)+`, the last part a
    /// [`TLDS`] one, after a cue word, or with a [`PROVIDERS`] domain or a country
    /// domain (`dot com dot hk`, `dot hk`); see the [module](self).
    fn spoken_emails(&self) -> Vec<Found> {
        let words = self.words();
        let mut out = Vec::new();
        let mut min = 0;
        for at in 1..words.len() {
            if words[at].text != "at" || at <= min || !self.spaced(&words, at - 1) {
                continue;
            }
            if !self.spaced(&words, at) {
                continue;
            }
            let Some((last, labels)) = self.spoken_domain(&words, at + 1) else {
                continue;
            };
            let Some((first, cued)) = self.spoken_local(&words, at, min) else {
                continue;
            };
            let ordinary = first + 1 == at && NOT_LOCAL.contains(&words[first].text.as_str());
            if !cued && (ordinary || !well_known(&labels)) {
                continue;
            }
            out.push(Found {
                kind: RedactionKind::Email,
                chars: words[first].start..words[last].end,
                symbols: String::new(),
            });
            min = last + 1;
        }
        out
    }

    /// Where a spoken address that may go on in the text after this one starts (a
    /// character index): the text ends after ` at ` and part of a domain (`chan at`,
    /// `chan at gmail dot`, `peter at abc dot com dot`, also `abc dot com`, which may
    /// go on with `dot hk`) that is no complete domain with a country yet,
    /// after a cue word or with a [`PROVIDERS`] domain; or in the words after a cue
    /// word (`電郵係 chan tai`).
    fn open_spoken_email(&self) -> Option<usize> {
        let words = self.words();
        let last = words.len().checked_sub(1)?;
        let trailing = &self.chars[words[last].end..];
        if !trailing.iter().all(|&c| c.is_whitespace() || ".。．".contains(c)) {
            return None;
        }
        // The last ` at `, with only a domain begun after it.
        let begun = |at: usize| {
            let joiner = |j: usize| spoken_joiner(&words[j].text).is_some();
            (at + 1..words.len()).all(|j| {
                if (j - at) % 2 == 1 {
                    is_part(&words[j])
                } else {
                    joiner(j)
                }
            }) && (at..last).all(|j| self.spaced(&words, j))
        };
        let at = match words.iter().rposition(|w| w.text == "at") {
            Some(at) if at > 0 && begun(at) => at,
            _ => words.len(),
        };
        if at == words.len() {
            // No ` at ` yet: only the words after a cue.
            let end = if spoken_joiner(&words[last].text).is_some() { last } else { words.len() };
            let (first, cued) = self.spoken_local(&words, end, 0)?;
            // Not the domain of a written address (`chan@example`).
            let start = words[first].start;
            let written = start > 0 && ascii_form(self.chars[start - 1]) == Some('@');
            return (cued && !written).then_some(start);
        }
        let domain: Vec<String> = words[at + 1..]
            .iter()
            .filter(|w| is_part(w))
            .flat_map(|w| w.text.split('.').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        // A complete domain may still go on with a country (`abc dot com` | `dot hk`).
        let last_label = domain.last().map_or("", String::as_str);
        let country = domain.len() >= 3 || COUNTRY_TLDS.contains(&last_label);
        let complete = is_part(&words[last]) && is_domain(&domain) && country;
        if complete || !self.spaced(&words, at - 1) {
            return None;
        }
        let (first, cued) = self.spoken_local(&words, at, 0)?;
        let provider = domain.first().is_some_and(|d| PROVIDERS.contains(&d.as_str()));
        let ordinary = first + 1 == at && NOT_LOCAL.contains(&words[first].text.as_str());
        (cued || provider && !ordinary).then(|| words[first].start)
    }

    // ----- HKID --------------------------------------------------------------------

    fn hkids(&self) -> Vec<Found> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.class.len() {
            match self.hkid_at(i) {
                Some(found) => {
                    i = found.chars.end;
                    out.push(found);
                }
                None => i += 1,
            }
        }
        out
    }

    /// An HKID number starting with the letter at `i`.
    fn hkid_at(&self, start: usize) -> Option<Found> {
        let letter = |i| match self.class(i) {
            Class::Letter(l) => Some(l),
            _ => None,
        };
        let first = letter(start)?;
        // Part of a longer code (Chinese numerals before it are fine: `一A…` is odd,
        // but not a code).
        let before = start.checked_sub(1).map(|i| self.class(i));
        if matches!(before, Some(Class::Letter(_) | Class::Digit { ascii: true, .. })) {
            return None;
        }
        let mut letters = vec![first];
        let mut i = start + 1;
        if let Some(second) = letter(i) {
            letters.push(second);
            i += 1;
        }
        if self.class(i) == Class::Sep {
            i += 1;
        }
        let run = self.digits_from(i, 8);
        let (check, end) = match run.digits.len() {
            // Seven digits: the last is the check digit.
            7 if !self.is_alnum(run.end) => (self.digit(run.digits[6])?, run.end),
            // More digits follow after a separator: only seven written together are an
            // HKID number (`A1234563 9123 4567`); spaced digits are more likely a
            // phone number after a word (`OK 9 1 2 3 4 5 6 7`).
            8 if run.groups[0] == 7 => (self.digit(run.digits[6])?, run.digits[6] + 1),
            6 => {
                let after = run.end;
                if self.class(after) == Class::Letter(b'A') && !self.is_alnum(after + 1) {
                    (10, after + 1)
                } else {
                    self.bracketed_check(after)?
                }
            }
            _ => return None,
        };
        let digits: Vec<u8> = run.digits[..6].iter().map(|&d| self.digit(d).unwrap_or(0)).collect();
        if hkid_check(&letters, &digits) != check {
            return None;
        }
        let mut symbols: String = letters.iter().map(|&l| l as char).collect();
        symbols.extend(digits.iter().map(|&d| char::from(b'0' + d)));
        symbols.push(if check == 10 { 'A' } else { char::from(b'0' + check) });
        Some(Found { kind: RedactionKind::Hkid, chars: start..end, symbols })
    }

    /// `(3)`, `（A）`, `(三)` at `i`, a space allowed before and inside the brackets:
    /// the check value and the end of the number.
    fn bracketed_check(&self, mut i: usize) -> Option<(u8, usize)> {
        let skip_sep = |i: usize| if self.class(i) == Class::Sep { i + 1 } else { i };
        i = skip_sep(i);
        if self.class(i) != Class::Open {
            return None;
        }
        i = skip_sep(i + 1);
        let check = match self.class(i) {
            Class::Digit { value, .. } => value,
            Class::Letter(b'A') => 10,
            _ => return None,
        };
        i = skip_sep(i + 1);
        (self.class(i) == Class::Close).then_some((check, i + 1))
    }

    // ----- digit runs: phone, card, account -----------------------------------------

    /// Digits from `i` on, groups separated by up to [`MAX_SEP`] separators, at most
    /// `max` digits.
    fn digits_from(&self, start: usize, max: usize) -> Run {
        let mut run = Run {
            start,
            end: start,
            digits: Vec::new(),
            groups: Vec::new(),
            gaps: Vec::new(),
            international: false,
        };
        let mut i = start;
        let mut group = 0;
        while run.digits.len() < max {
            if self.digit(i).is_some() {
                run.digits.push(i);
                group += 1;
                i += 1;
                run.end = i;
                continue;
            }
            if group == 0 {
                break;
            }
            let mut j = i;
            while j < i + MAX_SEP && self.class(j) == Class::Sep {
                j += 1;
            }
            if j == i || self.digit(j).is_none() {
                break;
            }
            run.groups.push(group);
            run.gaps.push(i..j);
            group = 0;
            i = j;
        }
        if group > 0 {
            run.groups.push(group);
        }
        run
    }

    /// A run starting at `i`: a digit, `+` and digits, or `(852)` / `(+852)` and
    /// digits.
    fn run_at(&self, i: usize) -> Option<Run> {
        match self.class(i) {
            Class::Digit { .. } => Some(self.digits_from(i, usize::MAX)),
            Class::Plus => {
                let first = if self.class(i + 1) == Class::Sep { i + 2 } else { i + 1 };
                self.digit(first)?;
                let mut run = self.digits_from(first, usize::MAX);
                run.start = i;
                run.international = true;
                Some(run)
            }
            Class::Open => {
                let mut j = i + 1;
                if self.class(j) == Class::Plus {
                    j += 1;
                }
                let code: Vec<u8> = (j..j + 3).filter_map(|k| self.digit(k)).collect();
                if code != [8, 5, 2] || self.class(j + 3) != Class::Close {
                    return None;
                }
                let mut k = j + 4;
                while k < j + 4 + MAX_SEP && self.class(k) == Class::Sep {
                    k += 1;
                }
                self.digit(k)?;
                let rest = self.digits_from(k, usize::MAX);
                let mut digits: Vec<usize> = (j..j + 3).collect();
                digits.extend(&rest.digits);
                let mut groups = vec![3];
                groups.extend(&rest.groups);
                // The bracket and separators after the country code.
                let gaps = std::iter::once(j + 3..k).chain(rest.gaps).collect();
                Some(Run { start: i, end: rest.end, digits, groups, gaps, international: true })
            }
            _ => None,
        }
    }

    fn digit_items(&self) -> Vec<Found> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.class.len() {
            let Some(run) = self.run_at(i) else {
                i += 1;
                continue;
            };
            i = run.end.max(i + 1);
            if let Some(kind) = self.classify_run(&run) {
                out.push(self.found(kind, &run));
                continue;
            }
            if !run.international {
                out.extend(self.split_run(&run));
            }
        }
        out
    }

    fn found(&self, kind: RedactionKind, run: &Run) -> Found {
        let symbols = self.values(run).iter().map(|&d| char::from(b'0' + d)).collect();
        Found { kind, chars: run.start..run.end, symbols }
    }

    fn values(&self, run: &Run) -> Vec<u8> {
        run.digits.iter().filter_map(|&d| self.digit(d)).collect()
    }

    /// What the whole run is, if anything.
    fn classify_run(&self, run: &Run) -> Option<RedactionKind> {
        if !self.stands_alone(run) {
            return None;
        }
        if self.types.phone && self.phone_grouping(run).is_some() {
            return Some(RedactionKind::Phone);
        }
        let values = self.values(run);
        if run.international {
            return None;
        }
        if self.types.account && (9..=15).contains(&values.len()) && self.near_account_word(run) {
            return Some(RedactionKind::Account);
        }
        if self.types.card && is_card(&values, &run.groups) {
            return Some(RedactionKind::Card);
        }
        None
    }

    /// The items in a run that is not one item as a whole: numbers read out one after
    /// the other (`9123 4567 2345 6789`), or one followed by a count (`9123 4567
    /// 3個人`). The run is split at its groups into phone and card numbers; digits
    /// left between them must be too few to be a number of their own (under 8), or
    /// the run is left alone as one long number (`4111 1111 1111 1112` is not a phone
    /// number and eight more digits).
    fn split_run(&self, run: &Run) -> Vec<Found> {
        let mut parts = Vec::new();
        let (mut group, mut digit, mut loose) = (0, 0, 0);
        while group < run.groups.len() {
            match self.part_at(run, group, digit) {
                Some((last_group, part)) => {
                    if loose >= 8 {
                        return Vec::new();
                    }
                    loose = 0;
                    digit += part.symbols.len();
                    group = last_group + 1;
                    parts.push(part);
                }
                None => {
                    loose += run.groups[group];
                    digit += run.groups[group];
                    group += 1;
                }
            }
        }
        if loose >= 8 {
            return Vec::new();
        }
        parts
    }

    /// The item of `run` that starts at its group `group` (digit `digit`): the longest
    /// card number, else a phone number. Returns its last group and the item.
    fn part_at(&self, run: &Run, group: usize, digit: usize) -> Option<(usize, Found)> {
        let (mut count, mut phone, mut card) = (0, None, None);
        for last_group in group..run.groups.len() {
            count += run.groups[last_group];
            let kind = match count {
                8 | 11 => RedactionKind::Phone,
                13..=19 => RedactionKind::Card,
                20.. => break,
                _ => continue,
            };
            if !self.types.contains(kind) {
                continue;
            }
            let digits = run.digits[digit..digit + count].to_vec();
            let part = Run {
                start: digits[0],
                end: digits[count - 1] + 1,
                digits,
                groups: run.groups[group..=last_group].to_vec(),
                gaps: run.gaps[group..last_group].to_vec(),
                international: false,
            };
            let valid = match (kind, self.phone_grouping(&part)) {
                (RedactionKind::Phone, Some(Grouping::Usual)) => true,
                (RedactionKind::Phone, Some(Grouping::Other)) => {
                    self.set_apart(run, group, last_group)
                }
                (RedactionKind::Phone, None) => false,
                _ => is_card(&self.values(&part), &part.groups),
            };
            if valid && self.stands_alone(&part) {
                let found = (last_group, self.found(kind, &part));
                match kind {
                    RedactionKind::Phone => phone = phone.or(Some(found)),
                    _ => card = Some(found),
                }
            }
        }
        card.or(phone)
    }

    /// How `run` is grouped, if it is a Hong Kong phone number: 8 digits starting 2–9,
    /// after `852` when `international` or when there are 11, and not an ordinary
    /// number ([`is_ordinary`]) unless a country code says otherwise. Usual groupings
    /// may be written with up to [`MAX_SEP`] separators between groups (`9123 - 4567`);
    /// any other has one separator between groups (`912-3456-7`, not `912 - 3456 - 7`).
    fn phone_grouping(&self, run: &Run) -> Option<Grouping> {
        let values = self.values(run);
        let (local, groups, first_gap) = local_number(&values, &run.groups, run.international)?;
        if !(2..=9).contains(&local[0]) {
            return None;
        }
        let with_code = local.len() < values.len();
        if !with_code && is_ordinary(local, &groups) {
            return None;
        }
        if groups.iter().all(|&g| g == 1 || g == 4) || groups == [8] {
            return Some(Grouping::Usual);
        }
        let single = run.gaps[first_gap..].iter().all(|gap| gap.len() == 1);
        single.then_some(Grouping::Other)
    }

    /// Whether groups `first..=last` of `run` are set apart from the groups around
    /// them, so that they can be a phone number of their own in an [unusual
    /// grouping](Grouping::Other): one and the same separator inside, and any other
    /// separator, or more than one, around them (`912-3456-7 3個人`, but not
    /// `306-40615` in the ISBN `978-0-306-40615-7`).
    fn set_apart(&self, run: &Run, first: usize, last: usize) -> bool {
        let inside = &run.gaps[first..last];
        let Some(sep) = inside.first().map(|gap| self.chars[gap.start]) else {
            return true;
        };
        let is_sep = |gap: &Range<usize>| gap.len() == 1 && self.chars[gap.start] == sep;
        let before = first.checked_sub(1).map(|k| &run.gaps[k]);
        let after = run.gaps.get(last);
        inside.iter().all(is_sep) && !before.is_some_and(is_sep) && !after.is_some_and(is_sep)
    }

    /// Whether the characters around a run leave it a number of its own, rather than
    /// part of a bigger number, a code, a price, a quantity or a mask.
    fn stands_alone(&self, run: &Run) -> bool {
        let first_ascii = self.is_ascii_digit(run.start);
        let last_ascii = run.end > 0 && self.is_ascii_digit(run.end - 1);
        if run.start > 0 {
            let before = run.start - 1;
            let bad = match self.class(before) {
                Class::Letter(_) => first_ascii,
                Class::Digit { .. } | Class::Mask => true,
                Class::Joiner => before > 0 && self.digit(before - 1).is_some(),
                _ => BEFORE.contains(self.chars[before]),
            };
            if bad {
                return false;
            }
        }
        if let Some(&after) = self.chars.get(run.end) {
            let bad = match self.class(run.end) {
                Class::Letter(_) => last_ascii,
                Class::Digit { .. } | Class::Mask => true,
                Class::Joiner => self.digit(run.end + 1).is_some(),
                _ => UNITS.contains(after),
            };
            if bad {
                return false;
            }
        }
        true
    }

    fn near_account_word(&self, run: &Run) -> bool {
        let window = |range: Range<usize>| -> String {
            self.chars[range].iter().collect::<String>().to_lowercase()
        };
        let before = window(run.start.saturating_sub(ACCOUNT_BEFORE)..run.start);
        let after = window(run.end..self.on_by(run.end, ACCOUNT_AFTER));
        ACCOUNT_WORDS.iter().any(|w| before.contains(w) || after.contains(w))
    }

    /// The character `units` characters after `from`, a Latin word counting as one
    /// (`is my bank account` is seven), or the end of the text. Only the window after a
    /// number is counted so: the one before it must fit in the context a
    /// [`CaptionRedactor`](super::CaptionRedactor) keeps of earlier finals.
    fn on_by(&self, mut from: usize, units: usize) -> usize {
        for _ in 0..units {
            if from >= self.chars.len() {
                break;
            }
            from += 1;
            while matches!(self.class(from - 1), Class::Letter(_))
                && matches!(self.class(from), Class::Letter(_))
            {
                from += 1;
            }
        }
        from
    }

    /// The start of the last number of 9 to 15 digits that is no item yet but could
    /// still become a bank account number: one that stands alone, with fewer than
    /// [`ACCOUNT_AFTER`] characters after it, so that an account word in text that
    /// follows would be near enough.
    fn pending_account(&mut self) -> Option<usize> {
        // Emails and HKID numbers are hidden from digit runs, as when redacting.
        self.find_all();
        let mut pending = None;
        let mut i = 0;
        while i < self.class.len() {
            let Some(run) = self.run_at(i) else {
                i += 1;
                continue;
            };
            i = run.end.max(i + 1);
            // Not an item as a whole (a phone number split out of it does not count:
            // with an account word, the whole run is an account number).
            if !run.international
                && (9..=15).contains(&run.digits.len())
                && self.classify_run(&run).is_none()
                && self.stands_alone(&run)
                && self.on_by(run.end, ACCOUNT_AFTER - 1) == self.chars.len()
            {
                pending = Some(run.start);
            }
        }
        pending
    }
}

/// The HKID check value (10 for `A`) of `letters` (one or two, `A`–`Z`) and six
/// digits: letters count A = 10 … Z = 35, a missing first letter 36; weights 9 to 2.
fn hkid_check(letters: &[u8], digits: &[u8]) -> u8 {
    let letter = |l: u8| u32::from(l - b'A') + 10;
    let (first, second) = match letters {
        [one] => (36, letter(*one)),
        [a, b, ..] => (letter(*a), letter(*b)),
        [] => return u8::MAX,
    };
    let values = [first, second].into_iter().chain(digits.iter().map(|&d| u32::from(d)));
    let sum: u32 = values.zip((2..=9).rev()).map(|(v, w)| v * w).sum();
    ((11 - sum % 11) % 11) as u8
}

/// How the eight digits of a phone number are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grouping {
    /// Whole, in fours or digit by digit (`91234567`, `9123 4567`, `9 1 2 3 4567`): how
    /// phone numbers are written, so also found inside a longer run of numbers read
    /// out one after the other.
    Usual,
    /// Any other grouping with one separator between groups (`912-3456-7`,
    /// `91-234-567`): a phone number when it is the whole run, or when it is [set
    /// apart](Scan::set_apart) from the rest of a longer run.
    Other,
}

/// The eight local digits of a phone number that `digits` (grouped as `groups`) could
/// be, their groups, and the index of the first gap between them: the digits
/// themselves, or the last eight of 11 after `852` (a group of its own or run straight
/// on; always there when `international`).
fn local_number<'d>(
    digits: &'d [u8],
    groups: &[usize],
    international: bool,
) -> Option<(&'d [u8], Vec<usize>, usize)> {
    match digits.len() {
        8 if !international => Some((digits, groups.to_vec(), 0)),
        11 if digits.starts_with(&[8, 5, 2]) => match groups.first() {
            Some(3) => Some((&digits[3..], groups[1..].to_vec(), 1)),
            Some(&g) if g > 3 => {
                let mut rest = groups.to_vec();
                rest[0] -= 3;
                Some((&digits[3..], rest, 0))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether eight digits grouped as `groups` are more likely an ordinary number than a
/// phone number:
///
/// - a date: `YYYYMMDD` written whole (`20240315`), a year and a month and day in
///   either order (`2024-11-29`, `2024 11 29`, `2024 1129`), or a day and month and
///   a year (`29-11-2024`, `11-29-2024`); years are 1900–2099;
/// - a range of years, the second later (`2023-2024`, `1997-2047`);
/// - a list of one- and two-digit numbers, not all of one digit (lottery draws
///   `25 33 41 45`, `3 5 12 25 33`, scores, ages).
///
/// A year before a number that is no month and day (`2024 5678`) is taken for a phone
/// number: Whisper writes a count after a year with a unit or a comma.
fn is_ordinary(d: &[u8], groups: &[usize]) -> bool {
    let n = |r: Range<usize>| d[r].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let year = |r: Range<usize>| (1900..=2099).contains(&n(r));
    let month_day =
        |m: Range<usize>, d: Range<usize>| (1..=12).contains(&n(m)) && (1..=31).contains(&n(d));
    let day_month =
        |a: Range<usize>, b: Range<usize>| month_day(a.clone(), b.clone()) || month_day(b, a);
    match groups {
        [8] => year(0..4) && month_day(4..6, 6..8),
        [4, 2, 2] => year(0..4) && day_month(4..6, 6..8),
        [4, 4] => year(0..4) && (day_month(4..6, 6..8) || year(4..8) && n(4..8) > n(0..4)),
        [2, 2, 4] => year(4..8) && day_month(0..2, 2..4),
        _ => groups.iter().all(|&g| g <= 2) && groups.contains(&2),
    }
}

/// Whether `digits` (grouped as `groups`) are a payment card number: 13–19 digits
/// passing the Luhn check, in groups of three or more (`4111 1111 1111 1111`,
/// `3782 822463 10005`) or digit by digit.
fn is_card(digits: &[u8], groups: &[usize]) -> bool {
    (13..=19).contains(&digits.len())
        && (groups.iter().all(|&g| g >= 3) || groups.iter().all(|&g| g == 1))
        && luhn(digits)
}

/// The Luhn check of payment card numbers.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        Redactor::default().redact(text).text
    }

    #[test]
    fn hkid_check_digits() {
        assert_eq!(hkid_check(b"A", &[1, 2, 3, 4, 5, 6]), 3);
        assert_eq!(hkid_check(b"AB", &[1, 2, 3, 4, 5, 6]), 9);
        assert_eq!(hkid_check(b"G", &[1, 2, 3, 4, 5, 6]), 10);
        // 36·9 + 35·8 = 604 = 54·11 + 10.
        assert_eq!(hkid_check(b"Z", &[0, 0, 0, 0, 0, 0]), 1);
    }

    #[test]
    fn luhn_examples() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }

    #[test]
    fn classes() {
        for (c, v) in [('０', 0), ('９', 9), ('兩', 2), ('幺', 1), ('〇', 0), ('陆', 6), ('玖', 9)]
        {
            assert!(matches!(classify(c), Class::Digit { value, .. } if value == v), "{c}");
        }
        assert_eq!(classify('ｇ'), Class::Letter(b'G'));
        assert_eq!(classify('十'), Class::Other);
    }

    /// How the run at the start of `text` is grouped as a phone number.
    fn grouping(text: &str) -> Option<Grouping> {
        let scan = Scan::new(text, RedactionTypes::ALL);
        scan.phone_grouping(&scan.run_at(0).expect("a run"))
    }

    #[test]
    fn phone_groupings() {
        use Grouping::{Other, Usual};
        for (text, want) in [
            ("91234567", Some(Usual)),
            ("9123 4567", Some(Usual)),
            ("9123 - 4567", Some(Usual)),
            ("9 1 2 3 4 5 6 7", Some(Usual)),
            ("9123 4 5 6 7", Some(Usual)),
            ("912-3456-7", Some(Other)),
            ("91-234-567", Some(Other)),
            ("912 34567", Some(Other)),
            ("91 23 4567", Some(Other)),
            ("9123 45 67", Some(Other)),
            ("+852 912-3456-7", Some(Other)),
            ("852 912-3456-7", Some(Other)),
            ("(852) 912-3456-7", Some(Other)),
            ("852912-3456-7", Some(Other)),
            ("85291234567", Some(Usual)),
            ("+85291234567", Some(Usual)),
            // Unusual groupings take one separator.
            ("912 - 3456 - 7", None),
            ("912  3456 7", None),
            // Lists of small numbers.
            ("91 23 45 67", None),
            ("9 12 34 5 67", None),
            // Dates and ranges of years.
            ("20240315", None),
            ("2024-11-29", None),
            ("2024 11 29", None),
            ("2024-29-11", None),
            ("2024 1129", None),
            ("29-11-2024", None),
            ("11-29-2024", None),
            ("2023-2024", None),
            ("1997-2047", None),
            // A year before a number, two years backwards, impossible dates.
            ("2024 5678", Some(Usual)),
            ("2024-2023", Some(Usual)),
            ("2024-13-40", Some(Other)),
            ("32-11-2024", Some(Other)),
            // With a country code, nothing is a date.
            ("+852 2024 1129", Some(Usual)),
            // Not Hong Kong numbers.
            ("11234567", None),
            ("0123-4567", None),
            ("+91234567", None),
            ("912345678", None),
        ] {
            assert_eq!(grouping(text), want, "{text}");
        }
    }

    #[test]
    fn unusual_groupings_inside_longer_runs() {
        assert_eq!(redact("打 912-3456-7 3個人"), "打 [電話號碼] 3個人");
        assert_eq!(redact("ISBN 978-0-306-40615-7"), "ISBN 978-0-306-40615-7");
        assert_eq!(redact("100 200 50 300"), "100 200 50 300");
    }

    #[test]
    fn the_window_after_a_number_counts_latin_words_as_one() {
        let scan = Scan::new("is my bank account", RedactionTypes::ALL);
        assert_eq!(scan.on_by(0, 1), 2);
        assert_eq!(scan.on_by(0, 7), 18);
        assert_eq!(scan.on_by(0, 100), 18);
        assert_eq!(redact("012-345678901 is my bank account"), "[銀行戶口號碼] is my bank account");
        assert_eq!(redact("012-345678901 係我嘅戶口"), "[銀行戶口號碼] 係我嘅戶口");
    }

    #[test]
    fn pending_accounts() {
        let pending = |text: &str| Scan::new(text, RedactionTypes::ALL).pending_account();
        assert_eq!(pending("號碼係 012-345678901"), Some(4));
        assert_eq!(pending("號碼係 012-345678901，呀"), Some(4));
        assert_eq!(pending("號碼係 012-345678901 and then"), Some(4));
        // The window after it is full, or it is something else already.
        assert_eq!(pending("號碼係 012-345678901，今日天氣好好，我哋去飲茶"), None);
        assert_eq!(pending("戶口 012-345678901"), None);
        assert_eq!(pending("電話 9123 4567"), None);
        // Prices, counts and short numbers.
        assert_eq!(pending("$123456789"), None);
        assert_eq!(pending("123456789個"), None);
        assert_eq!(pending("12345678"), None);
        // A phone number split out of the run: the whole run may still be an account.
        assert_eq!(pending("（91233456-7_戶"), Some(1));
    }

    #[test]
    fn basic_forms() {
        assert_eq!(redact("A123456(3)"), "[身份證號碼]");
        assert_eq!(redact("電話 9123 4567。"), "電話 [電話號碼]。");
        assert_eq!(redact("10:30 三點半 2024年3月15日"), "10:30 三點半 2024年3月15日");
    }
}
