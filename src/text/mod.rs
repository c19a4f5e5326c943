//! Text: script conversion with OpenCC, Whisper's mixed Chinese in, one script out.
//!
//! Whisper writes Chinese in whatever script its training data happened to use, often
//! several in one sentence: Simplified characters, Taiwan-style Traditional (`裡`, `著`),
//! Hong Kong forms (`説`, `衞`, `綫`) and OpenCC's "standard" Traditional (`裏`, `爲`).
//! [`ScriptConverter`] turns any such mix into one [`Script`].
//!
//! # The chain per script
//!
//! OpenCC's dictionaries all lead to or from one hub, "OpenCC standard Traditional":
//! `s2t`, `tw2t` and `hk2t` reach it from Simplified, Taiwan and Hong Kong text, and
//! `t2hk`, `t2tw` (with Taiwan phrases) and `t2s` leave it. A stock configuration such
//! as `s2hk` assumes pure Simplified input, so Taiwan forms in the input survive it
//! (`s2hk` leaves `裡面` alone but writes `裏面` for `里面`). cantocap therefore builds
//! one OpenCC configuration per script, from the stock dictionaries, that walks every
//! input form to the hub and then out to the target, in a single OpenCC call:
//!
//! | Script | Chain | Why |
//! |--------|-------|-----|
//! | [`Script::Hk`] | `s2t` → `tw2t` → `hk2t` → `t2hk` | what `s2hk` gives for Simplified input (all but 11 of OpenCC's 49,238 Simplified phrases), and the same for the same words in Taiwan or Hong Kong forms |
//! | [`Script::Tw`] | `s2t` → `tw2t` → `hk2t` → `t2tw` with Taiwan phrases | identical to `s2twp` on Simplified input; Hong Kong forms (`説`, `衞`, `揾`) become Taiwan ones |
//! | [`Script::Cn`] | `tw2t` → `hk2t` → `t2s` | `hk2s` plus Taiwan forms (`看著` → `看着`); no `s2t` first, because a round trip through Traditional damages Simplified words (`背着` → `揹着`, `想象` → `想像`); without OpenCC's "may output tofu" dictionary, so rare characters stay readable rather than turn into ones fonts lack |
//! | [`Script::Raw`] | none | the text as Whisper wrote it |
//!
//! # Text already in Traditional characters keeps them
//!
//! `s2t` is right only for Simplified input: characters both scripts use are read as
//! Simplified, so Hong Kong text such as `唔該借借` (excuse me) would become `唔該藉藉`
//! and `唔准` (not allowed) `唔準`. Hong Kong and Taiwan output therefore convert each
//! clause (up to its punctuation) by what it is written in:
//!
//! - a clause with a character only Simplified has (`们`, `车`, `发`: 3,809 of them,
//!   from OpenCC's own character table) takes the chain above;
//! - a clause in Traditional characters takes only the target region's forms: OpenCC's
//!   own `t2hk` for [`Script::Hk`] (so `裡` and `著`, also written in Hong Kong, stay),
//!   and Hong Kong forms to standard then `t2tw` with Taiwan phrases for [`Script::Tw`];
//! - a clause with neither (`借借`, `里面`) follows its neighbours; where nothing in the
//!   text tells, a few characters that are usually Simplified (`后`, `万`, `里`, `几`)
//!   choose Simplified, and anything else keeps its characters.
//!
//! Whisper writes both scripts, sometimes in one sentence, so a caption may take both
//! chains, clause by clause. [`Script::Cn`] has one chain for every input.
//!
//! Because every input form reaches the same hub, converting converted text gives the
//! same text again: conversion is idempotent on ordinary sentences. (OpenCC's `s2t` is
//! not idempotent on about 1% of its own dictionary phrases, mostly classical words
//! and names written half in each script; neither is the stock `s2hk`.)
//!
//! # Cantonese
//!
//! Cantonese colloquial characters (`係 嘅 咗 喺 冇 哋 嘢 啲 咁 乜 嚟 佢 唔 畀 俾 啱`)
//! are not Simplified forms of anything, so Hong Kong and Taiwan output keeps them. A few Cantonese characters double as Simplified forms of something else,
//! and a small override dictionary, checked before OpenCC's single characters but after
//! its phrases, keeps them: `晒` (食晒, "all") is not `曬` (sun-dry) unless OpenCC knows a
//! phrase such as `防晒`; `吓` (睇吓) is not `嚇` except in words such as `吓死`; `郁`
//! ("move") is not `鬱` outside `忧郁`-style phrases. Simplified Cantonese `唔系`, `系咪`
//! become `唔係`, `係咪` (only where the context cannot be Mandarin: OpenCC matches
//! greedily, so an entry `都系` would also break `都系统`). OpenCC's Hong Kong standard writes `搵` as `揾` (like `溫` →
//! `温`); Taiwan output writes `搵`. In Simplified output `係` becomes `系`, but `嗰`,
//! `餸` and `鱲` (赤鱲角) stay, because OpenCC's simplifications of them are rare
//! characters outside the Basic Multilingual Plane that most fonts cannot show.
//!
//! English words, digits, punctuation and spacing are never changed.
//!
//! # Dictionaries
//!
//! The dictionaries are compiled into the binary (opencc-rust's `static-dictionaries`),
//! so nothing needs OpenCC installed at run time. OpenCC reads dictionaries from files,
//! so the first converter of a process writes them (about 1.4 MB) into a versioned
//! folder of the user cache (`$XDG_CACHE_HOME/cantocap` or `~/.cache/cantocap`),
//! staged in a private folder and renamed into place so that racing processes never see
//! half a folder. Where no cache folder can be written, the process uses a private
//! folder under the temporary folder instead.
//!
//! # Threads
//!
//! Converters are `Send + Sync` and meant to be shared. opencc-rust serialises every
//! conversion of the process behind one lock (OpenCC's error state is global), so
//! threads converting at once take turns; a caption line takes microseconds.
//!
//! ```
//! use cantocap::text::{Script, ScriptConverter};
//!
//! let hk = ScriptConverter::new(Script::Hk)?;
//! assert_eq!(hk.convert("我哋用 Zoom 开会，send 个 email 俾你"), "我哋用 Zoom 開會，send 個 email 俾你");
//! # Ok::<(), cantocap::Error>(())
//! ```

mod script;
pub mod typography;

// Redaction lives in `crate::privacy`; these paths stay for existing users.
pub use crate::privacy::{caption_redact, redact};
pub use crate::privacy::{
    CaptionRedactor, Labels, ParseRedactionKindError, RedactOptions, Redacted, RedactionCounts,
    RedactionKind, RedactionTypes, Redactor, Replacement,
};
pub use script::{
    convert, OpenccConfig, OpenccConverter, ParseScriptError, Script, ScriptConverter,
};
pub use typography::tidy;
