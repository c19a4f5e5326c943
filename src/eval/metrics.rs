//! Error rates: edit distance with substitutions, deletions and insertions, and the
//! choice of metric from the reference.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::normalise::{is_cjk, is_cjk_token};

/// Which error rate an utterance is scored with, chosen from its reference (see
/// [`Metric::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Character error rate: Chinese references. Every character is a token, on
    /// both sides (a Latin word in the hypothesis counts letter by letter).
    Cer,
    /// Word error rate: references without Chinese characters. A token is a word;
    /// each Chinese character the hypothesis holds counts as a word of its own.
    Wer,
    /// Mixed error rate: code-switched references. Each Chinese character and each
    /// Latin word (or number) is one token.
    Mer,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 3] = [Metric::Cer, Metric::Wer, Metric::Mer];

    /// The metric for a reference, from its normalised tokens: Chinese characters
    /// and Latin words → [`Mer`](Metric::Mer); Chinese characters (numbers allowed)
    /// → [`Cer`](Metric::Cer); anything else, an empty reference included →
    /// [`Wer`](Metric::Wer).
    pub fn of(reference: &[String]) -> Metric {
        let cjk = reference.iter().any(|t| is_cjk_token(t));
        let latin = reference
            .iter()
            .any(|t| !is_cjk_token(t) && t.chars().any(|c| c.is_alphabetic() && !is_cjk(c)));
        match (cjk, latin) {
            (true, true) => Metric::Mer,
            (true, false) => Metric::Cer,
            (false, _) => Metric::Wer,
        }
    }

    /// Its short upper-case name: `CER`, `WER` or `MER`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cer => "CER",
            Metric::Wer => "WER",
            Metric::Mer => "MER",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The edits that turn a reference into a hypothesis, over `tokens` reference
/// tokens. Adds up over utterances: a total is the sum of edits over the sum of
/// reference tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "EditsJson", from = "EditsJson")]
pub struct Edits {
    /// Reference tokens.
    pub tokens: u64,
    /// Reference tokens written as something else.
    pub substitutions: u64,
    /// Reference tokens missing from the hypothesis.
    pub deletions: u64,
    /// Hypothesis tokens with no reference token.
    pub insertions: u64,
}

impl Edits {
    /// Substitutions, deletions and insertions.
    pub fn errors(&self) -> u64 {
        self.substitutions + self.deletions + self.insertions
    }

    /// Errors per reference token; `None` when there are no reference tokens.
    /// Insertions can take it above 1.
    pub fn rate(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.errors() as f64 / self.tokens as f64)
    }
}

impl Add for Edits {
    type Output = Edits;
    fn add(self, other: Edits) -> Edits {
        Edits {
            tokens: self.tokens + other.tokens,
            substitutions: self.substitutions + other.substitutions,
            deletions: self.deletions + other.deletions,
            insertions: self.insertions + other.insertions,
        }
    }
}

impl AddAssign for Edits {
    fn add_assign(&mut self, other: Edits) {
        *self = *self + other;
    }
}

impl std::iter::Sum for Edits {
    fn sum<I: Iterator<Item = Edits>>(iter: I) -> Edits {
        iter.fold(Edits::default(), Add::add)
    }
}

/// [`Edits`] in JSON: the counts, and the errors and rate for readers of the file
/// (ignored when read back).
#[derive(Serialize, Deserialize)]
struct EditsJson {
    tokens: u64,
    errors: u64,
    substitutions: u64,
    deletions: u64,
    insertions: u64,
    rate: Option<f64>,
}

impl From<Edits> for EditsJson {
    fn from(e: Edits) -> Self {
        EditsJson {
            tokens: e.tokens,
            errors: e.errors(),
            substitutions: e.substitutions,
            deletions: e.deletions,
            insertions: e.insertions,
            rate: e.rate(),
        }
    }
}

impl From<EditsJson> for Edits {
    fn from(e: EditsJson) -> Self {
        Edits {
            tokens: e.tokens,
            substitutions: e.substitutions,
            deletions: e.deletions,
            insertions: e.insertions,
        }
    }
}

/// The fewest edits (Levenshtein distance) that turn `reference` into `hypothesis`,
/// split into substitutions, deletions and insertions along one cheapest alignment
/// (among equally cheap ones: substitutions first, then deletions).
///
/// Two rows of the table at a time, so an hour-long transcript needs no more memory
/// than its length.
///
/// ```
/// use cantocap::eval::align;
///
/// let e = align(&["the", "cat", "sat"], &["a", "cat", "sat", "down"]);
/// assert_eq!((e.substitutions, e.deletions, e.insertions, e.tokens), (1, 0, 1, 3));
/// ```
pub fn align<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> Edits {
    /// (cost, substitutions, deletions, insertions) of the cheapest path to a cell.
    type Cell = (u64, u64, u64, u64);
    let mut prev: Vec<Cell> = (0..=hypothesis.len() as u64).map(|j| (j, 0, 0, j)).collect();
    let mut cur: Vec<Cell> = vec![(0, 0, 0, 0); hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        let i = i as u64 + 1;
        cur[0] = (i, 0, i, 0);
        for (j, h) in hypothesis.iter().enumerate() {
            let (c, s, d, n) = prev[j];
            let diagonal = if r == h { (c, s, d, n) } else { (c + 1, s + 1, d, n) };
            let (c, s, d, n) = prev[j + 1];
            let deletion = (c + 1, s, d + 1, n);
            let (c, s, d, n) = cur[j];
            let insertion = (c + 1, s, d, n + 1);
            // Ties go to the earlier candidate: diagonal, then deletion.
            let mut best = diagonal;
            for candidate in [deletion, insertion] {
                if candidate.0 < best.0 {
                    best = candidate;
                }
            }
            cur[j + 1] = best;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let (_, substitutions, deletions, insertions) = prev[hypothesis.len()];
    Edits { tokens: reference.len() as u64, substitutions, deletions, insertions }
}

/// Score normalised token lists with `metric`: [`Metric::Cer`] aligns characters
/// (the tokens' characters, spaces left out), the others align tokens.
pub fn score(metric: Metric, reference: &[String], hypothesis: &[String]) -> Edits {
    match metric {
        Metric::Cer => {
            let chars = |tokens: &[String]| tokens.iter().flat_map(|t| t.chars()).collect();
            let (r, h): (Vec<char>, Vec<char>) = (chars(reference), chars(hypothesis));
            align(&r, &h)
        }
        Metric::Wer | Metric::Mer => align(reference, hypothesis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn sdi(e: Edits) -> (u64, u64, u64, u64) {
        (e.substitutions, e.deletions, e.insertions, e.tokens)
    }

    #[test]
    fn identical_and_empty() {
        assert_eq!(sdi(align(&["a", "b"], &["a", "b"])), (0, 0, 0, 2));
        assert_eq!(sdi(align::<&str>(&[], &[])), (0, 0, 0, 0));
        assert_eq!(sdi(align(&["a", "b", "c"], &[])), (0, 3, 0, 3));
        assert_eq!(sdi(align(&[], &["x", "y"])), (0, 0, 2, 0));
        assert_eq!(align::<&str>(&[], &["x"]).rate(), None);
        assert_eq!(align(&["a", "b"], &["a", "b"]).rate(), Some(0.0));
    }

    #[test]
    fn english_words_by_hand() {
        // the quick brown fox jumps over → the quack brown jumps over it:
        // quick→quack (S), fox deleted (D), it inserted (I).
        let r = tokens("the quick brown fox jumps over");
        let e = align(&r, &tokens("the quack brown jumps over it"));
        assert_eq!(sdi(e), (1, 1, 1, 6));
        assert_eq!(e.errors(), 3);
        assert!((e.rate().unwrap() - 0.5).abs() < 1e-12);
        // kitten → sitting, letter by letter: k→s, e→i, g inserted.
        let (k, s): (Vec<char>, Vec<char>) =
            ("kitten".chars().collect(), "sitting".chars().collect());
        assert_eq!(sdi(align(&k, &s)), (2, 0, 1, 6));
    }

    #[test]
    fn chinese_characters_by_hand() {
        // 我哋今日去飲茶 → 我地今日飲茶啦: 哋→地 (S), 去 deleted (D), 啦 inserted (I).
        let r = tokens("我 哋 今 日 去 飲 茶");
        let h = tokens("我 地 今 日 飲 茶 啦");
        assert_eq!(Metric::of(&r), Metric::Cer);
        let e = score(Metric::Cer, &r, &h);
        assert_eq!(sdi(e), (1, 1, 1, 7));
        assert!((e.rate().unwrap() - 3.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn cer_counts_latin_letters_in_the_hypothesis() {
        // 好 written as "ok": one substitution and one insertion, letter by letter.
        let r = tokens("我 好 開 心");
        let h = tokens("我 ok 開 心");
        assert_eq!(sdi(score(Metric::Cer, &r, &h)), (1, 0, 1, 4));
        // As mixed tokens "ok" is one token: one substitution.
        assert_eq!(sdi(score(Metric::Mer, &r, &h)), (1, 0, 0, 4));
    }

    #[test]
    fn mixed_tokens_by_hand() {
        // 我哋用 Zoom 開會 send 個 email 俾你 → 我哋 zoom 開會 sent 個 email 俾你啦 ok:
        // 用 deleted (D), send→sent (S), 啦 and ok inserted (2 I), over 11 tokens.
        let r = tokens("我 哋 用 zoom 開 會 send 個 email 俾 你");
        let h = tokens("我 哋 zoom 開 會 sent 個 email 俾 你 啦 ok");
        assert_eq!(Metric::of(&r), Metric::Mer);
        let e = score(Metric::Mer, &r, &h);
        assert_eq!(sdi(e), (1, 1, 2, 11));
        assert!((e.rate().unwrap() - 4.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn the_metric_comes_from_the_reference() {
        assert_eq!(Metric::of(&tokens("hello world")), Metric::Wer);
        assert_eq!(Metric::of(&tokens("room 101")), Metric::Wer);
        assert_eq!(Metric::of(&tokens("九 點 鐘")), Metric::Cer);
        // Numbers do not make Chinese text mixed.
        assert_eq!(Metric::of(&tokens("我 哋 9 點 開 會")), Metric::Cer);
        assert_eq!(Metric::of(&tokens("用 zoom 開 會")), Metric::Mer);
        assert_eq!(Metric::of(&[]), Metric::Wer);
        // Kana count as characters.
        assert_eq!(Metric::of(&tokens("こ ん に ち は")), Metric::Cer);
    }

    #[test]
    fn wer_counts_each_chinese_character_of_a_leak() {
        // An English sentence with a leaked Cantonese prompt: each character is a word.
        let r = tokens("we are right");
        let h = tokens("咁 我 哋 係 啱");
        assert_eq!(sdi(score(Metric::Wer, &r, &h)), (3, 0, 2, 3));
    }

    #[test]
    fn totals_add_edits_not_rates() {
        let a = align(&tokens("a b c d"), &tokens("a b c x"));
        let b = align(&tokens("e"), &tokens("f g"));
        let total: Edits = [a, b].into_iter().sum();
        assert_eq!(sdi(total), (2, 0, 1, 5));
        assert!((total.rate().unwrap() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn edits_round_trip_through_json_with_errors_and_rate() {
        let e = Edits { tokens: 4, substitutions: 1, deletions: 0, insertions: 1 };
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["errors"], 2);
        assert_eq!(json["rate"], 0.5);
        assert_eq!(serde_json::from_value::<Edits>(json).unwrap(), e);
        let none = serde_json::to_value(Edits::default()).unwrap();
        assert!(none["rate"].is_null());
    }
}
