//! Text normalisation before scoring, the same for reference and hypothesis, so that
//! only what was heard differently counts as an error.
//!
//! In order:
//! 1. **Width**: full-width Latin letters, digits and signs (`ＡＢＣ１２３％`) become
//!    their ASCII forms, the ideographic space a space.
//! 2. **Case**: lower case.
//! 3. **Numbers**: digit groups lose their thousands commas (`1,000` → `1000`); with
//!    [`spell_numbers`](NormaliseOptions::spell_numbers), numbers are written in
//!    words (see [`spell_numbers`]).
//! 4. **Script**: both sides go through the same [`ScriptConverter`], by default to
//!    Simplified: Traditional, Hong Kong and Taiwan variants of a character fold into
//!    one (`裏`, `裡`, `里` → `里`), so a model is not charged for writing the other
//!    script.
//! 5. **Tokens**: punctuation and symbols are dropped (a hyphen or slash separates
//!    words; an apostrophe inside a word is dropped, so `don't` is `dont`); each
//!    Chinese character (and kana) is a token; each run of letters and digits is a
//!    token, with a decimal point between digits kept (`3.5`).

use crate::text::{Script, ScriptConverter};
use crate::Result;

/// Normalisation settings, with documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormaliseOptions {
    /// The script both sides are folded to. Default [`Script::Cn`] (Simplified: the
    /// fold that merges the most variants); [`Script::Raw`] folds nothing.
    pub fold: Script,
    /// Write numbers in words. Default false.
    pub spell_numbers: bool,
}

impl Default for NormaliseOptions {
    fn default() -> Self {
        NormaliseOptions { fold: Script::Cn, spell_numbers: false }
    }
}

/// Turns text into tokens for scoring. See the [module docs](self).
///
/// ```
/// use cantocap::eval::{NormaliseOptions, Normaliser};
///
/// let n = Normaliser::new(NormaliseOptions::default())?;
/// assert_eq!(n.normalise("我哋用 Zoom 開會，OK？"), "我 哋 用 zoom 开 会 ok");
/// let spelled = Normaliser::new(NormaliseOptions { spell_numbers: true, ..Default::default() })?;
/// assert_eq!(spelled.normalise("Room 101, 9點"), "room one hundred one 九 点");
/// # Ok::<(), cantocap::Error>(())
/// ```
#[derive(Debug)]
pub struct Normaliser {
    converter: ScriptConverter,
    options: NormaliseOptions,
}

impl Normaliser {
    /// A normaliser with `options`.
    ///
    /// # Errors
    /// [`Error::Opencc`](crate::Error::Opencc) if the fold's dictionaries cannot load.
    pub fn new(options: NormaliseOptions) -> Result<Self> {
        Ok(Normaliser { converter: ScriptConverter::new(options.fold)?, options })
    }

    /// The settings.
    pub fn options(&self) -> NormaliseOptions {
        self.options
    }

    /// The tokens of `text`.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let text: String = text.chars().map(fold_width).collect::<String>().to_lowercase();
        let text = join_digit_groups(&text);
        let text = if self.options.spell_numbers { spell_numbers(&text) } else { text };
        tokenise(&self.converter.convert(&text))
    }

    /// The tokens of `text`, joined by single spaces: what the metrics compare.
    pub fn normalise(&self, text: &str) -> String {
        self.tokens(text).join(" ")
    }
}

/// A Chinese character (CJK ideograph, compatibility ideograph, `〇`, `々`) or kana:
/// each is a token of its own.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{20000}'..='\u{3FFFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{3005}' | '\u{3007}'
        | '\u{3041}'..='\u{309F}'
        | '\u{30A0}'..='\u{30FF}')
}

/// Whether a token is one Chinese character (or kana).
pub fn is_cjk_token(token: &str) -> bool {
    let mut chars = token.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if is_cjk(c))
}

/// Full-width ASCII forms to ASCII, the ideographic space to a space.
fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// `1,000,000` → `1000000`: a comma between digits followed by exactly three digits.
fn join_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let grouping = c == ','
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.len() > i + 3
            && chars[i + 1..i + 4].iter().all(char::is_ascii_digit)
            && !chars.get(i + 4).is_some_and(char::is_ascii_digit);
        if !grouping {
            out.push(c);
        }
    }
    out
}

fn tokenise(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        if is_cjk(c) {
            flush(&mut word, &mut tokens);
            tokens.push(c.to_string());
        } else if c.is_alphanumeric()
            || (c == '.'
                && before.is_some_and(|b| b.is_ascii_digit())
                && after.is_some_and(|a| a.is_ascii_digit()))
        {
            // A decimal point between digits stays: 3.5.
            word.push(c);
        } else if matches!(c, '\'' | '’')
            && !word.is_empty()
            && after.is_some_and(|a| a.is_alphanumeric() && !is_cjk(a))
        {
            // don't → dont
        } else if is_mark(c) && !word.is_empty() {
            word.push(c);
        } else {
            flush(&mut word, &mut tokens);
        }
    }
    flush(&mut word, &mut tokens);
    tokens
}

fn flush(word: &mut String, tokens: &mut Vec<String>) {
    if !word.is_empty() {
        tokens.push(std::mem::take(word));
    }
}

/// A combining mark (accents written apart: `é` as `e` + U+0301).
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}')
}

/// Writes the numbers in `text` in words: in Chinese next to a Chinese character,
/// in English elsewhere.
///
/// - English: cardinals without "and" (`101` → `one hundred one`, `2024` → `two
///   thousand twenty four`), ordinals (`21st` → `twenty first`), decimals digit by
///   digit (`3.14` → `three point one four`), `%` → `percent`; a number with a leading
///   zero (`007`, a phone number) is read digit by digit.
/// - Chinese (a Chinese character right before or after the number, spaces
///   allowed): `15` → `十五`, `105` → `一百零五`, `20000` → `二万`; a year (four
///   digits before `年`) digit by digit (`2024年` → `二零二四年`); `3.5` → `三点五`;
///   `50%` → `百分之五十`. (Cantonese says `兩` where the count is two; references
///   written so still differ.)
///
/// Numbers of more than 12 digits are read digit by digit.
///
/// ```
/// use cantocap::eval::spell_numbers;
///
/// assert_eq!(spell_numbers("room 101 at 5pm, 2nd floor"), "room one hundred one at five pm, second floor");
/// assert_eq!(spell_numbers("我哋9點開會，15%嘅人"), "我哋九點開會，百分之十五嘅人");
/// ```
pub fn spell_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let integer: String = chars[start..i].iter().collect();
        let mut fraction = None;
        if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
            let from = i + 1;
            i = from;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            fraction = Some(chars[from..i].iter().collect::<String>());
        }
        let percent = chars.get(i) == Some(&'%');
        let near = |from: Option<&char>| from.is_some_and(|c| is_cjk(*c));
        let previous = chars[..start].iter().rev().find(|c| !c.is_whitespace());
        let next = chars[i + usize::from(percent)..].iter().find(|c| !c.is_whitespace());
        let chinese = near(previous) || near(next);
        let words = if chinese {
            let year = fraction.is_none() && integer.len() == 4 && chars.get(i) == Some(&'年');
            let mut s =
                if year { digits_zh(&integer) } else { number_zh(&integer, fraction.as_deref()) };
            if percent {
                s = format!("百分之{s}");
            }
            s
        } else {
            let mut s = number_en(&integer, fraction.as_deref());
            let suffix: String = chars[i..].iter().take(2).collect();
            if fraction.is_none() && matches!(suffix.as_str(), "st" | "nd" | "rd" | "th") {
                let boundary = chars.get(i + 2).is_none_or(|c| !c.is_alphanumeric());
                if boundary {
                    s = ordinal_en(&s);
                    i += 2;
                }
            }
            if percent {
                s.push_str(" percent");
            }
            // Keep numbers apart from letters around them: 5pm → five pm.
            if out.chars().last().is_some_and(char::is_alphanumeric) {
                out.push(' ');
            }
            if chars.get(i + usize::from(percent)).is_some_and(|c| c.is_alphanumeric()) {
                s.push(' ');
            }
            s
        };
        out.push_str(&words);
        i += usize::from(percent);
    }
    out
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] =
    ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

fn number_en(integer: &str, fraction: Option<&str>) -> String {
    let mut s = if integer.len() > 12 || (integer.len() > 1 && integer.starts_with('0')) {
        digits_en(integer)
    } else {
        cardinal_en(integer.parse().expect("at most 12 ASCII digits"))
    };
    if let Some(fraction) = fraction {
        s.push_str(" point ");
        s.push_str(&digits_en(fraction));
    }
    s
}

fn digits_en(digits: &str) -> String {
    let words: Vec<&str> =
        digits.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize]).collect();
    words.join(" ")
}

fn cardinal_en(n: u64) -> String {
    if n < 20 {
        return ONES[n as usize].to_owned();
    }
    if n < 100 {
        let (tens, ones) = (TENS[(n / 10) as usize], n % 10);
        return if ones == 0 { tens.to_owned() } else { format!("{tens} {}", ONES[ones as usize]) };
    }
    if n < 1000 {
        let rest = n % 100;
        let hundreds = format!("{} hundred", ONES[(n / 100) as usize]);
        return if rest == 0 { hundreds } else { format!("{hundreds} {}", cardinal_en(rest)) };
    }
    let (scale, name) = [(1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand")]
        .into_iter()
        .find(|(scale, _)| n >= *scale)
        .expect("n >= 1000");
    let rest = n % scale;
    let head = format!("{} {name}", cardinal_en(n / scale));
    if rest == 0 {
        head
    } else {
        format!("{head} {}", cardinal_en(rest))
    }
}

/// `twenty one` → `twenty first`, `one hundred` → `one hundredth`.
fn ordinal_en(cardinal: &str) -> String {
    let (head, last) = match cardinal.rsplit_once(' ') {
        Some((head, last)) => (format!("{head} "), last),
        None => (String::new(), cardinal),
    };
    let last = match last {
        "one" => "first".to_owned(),
        "two" => "second".to_owned(),
        "three" => "third".to_owned(),
        "five" => "fifth".to_owned(),
        "eight" => "eighth".to_owned(),
        "nine" => "ninth".to_owned(),
        "twelve" => "twelfth".to_owned(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    head + &last
}

const DIGITS_ZH: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

fn digits_zh(digits: &str) -> String {
    digits.chars().filter_map(|c| c.to_digit(10)).map(|d| DIGITS_ZH[d as usize]).collect()
}

fn number_zh(integer: &str, fraction: Option<&str>) -> String {
    let mut s = if integer.len() > 12 || (integer.len() > 1 && integer.starts_with('0')) {
        digits_zh(integer)
    } else {
        cardinal_zh(integer.parse().expect("at most 12 ASCII digits"))
    };
    if let Some(fraction) = fraction {
        s.push('点');
        s.push_str(&digits_zh(fraction));
    }
    s
}

/// `0` → `零`, `15` → `十五`, `105` → `一百零五`, `1050` → `一千零五十`, `100000` →
/// `十万`, `10005` → `一万零五`.
fn cardinal_zh(n: u64) -> String {
    if n == 0 {
        return "零".to_owned();
    }
    let groups = [(n / 100_000_000, "亿"), (n / 10_000 % 10_000, "万"), (n % 10_000, "")];
    let mut s = String::new();
    let mut zero = false;
    for (group, unit) in groups {
        if group == 0 {
            zero = !s.is_empty();
            continue;
        }
        if !s.is_empty() && (zero || group < 1000) {
            s.push('零');
        }
        s.push_str(&group_zh(group));
        s.push_str(unit);
        zero = false;
    }
    // 一十五 → 十五 at the start only (一百一十五 keeps its 一).
    match s.strip_prefix("一十") {
        Some(rest) => format!("十{rest}"),
        None => s,
    }
}

/// 1..=9999 without the leading-zero rule of the group before it.
fn group_zh(n: u64) -> String {
    let mut s = String::new();
    let mut zero = false;
    for (value, unit) in [(1000, "千"), (100, "百"), (10, "十"), (1, "")] {
        let digit = n / value % 10;
        if digit == 0 {
            zero = !s.is_empty();
            continue;
        }
        if zero {
            s.push('零');
            zero = false;
        }
        s.push(DIGITS_ZH[digit as usize]);
        s.push_str(unit);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normaliser(spell_numbers: bool) -> Normaliser {
        Normaliser::new(NormaliseOptions { spell_numbers, ..Default::default() }).unwrap()
    }

    #[test]
    fn punctuation_width_and_case_go() {
        let n = normaliser(false);
        assert_eq!(n.normalise("Hello, World! It's 3.5 o'clock…"), "hello world its 3.5 oclock");
        assert_eq!(n.normalise("ＨＥＬＬＯ，ｗｏｒｌｄ！１２３"), "hello world 123");
        assert_eq!(n.normalise("「唔該借借，我要落車。」"), "唔 该 借 借 我 要 落 车");
        assert_eq!(n.normalise("well-known e-mail/fax"), "well known e mail fax");
        assert_eq!(n.normalise("1,000,000 people, 1,2,3"), "1000000 people 1 2 3");
        assert_eq!(n.normalise("  \u{3000}。！"), "");
        assert_eq!(n.normalise("café cafe\u{301}"), "café cafe\u{301}");
    }

    #[test]
    fn scripts_fold_into_one() {
        let n = normaliser(false);
        // Hong Kong, Taiwan and Simplified forms of the same words compare equal.
        let forms = ["我哋喺裏面開會", "我哋喺裡面開會", "我哋喺里面开会"];
        let folded: Vec<String> = forms.iter().map(|f| n.normalise(f)).collect();
        assert!(folded.iter().all(|f| *f == folded[0]), "{folded:?}");
        // Latin words inside stay words; Chinese characters are single tokens.
        assert_eq!(
            n.tokens("我哋用Zoom開會"),
            ["我", "哋", "用", "zoom", "开", "会"].map(String::from)
        );
    }

    #[test]
    fn english_numbers_in_words() {
        let cases = [
            ("0", "zero"),
            ("7", "seven"),
            ("13", "thirteen"),
            ("40", "forty"),
            ("42", "forty two"),
            ("100", "one hundred"),
            ("101", "one hundred one"),
            ("999", "nine hundred ninety nine"),
            ("1000", "one thousand"),
            ("2024", "two thousand twenty four"),
            ("1,500,000", "one million five hundred thousand"),
            ("3.14", "three point one four"),
            ("007", "zero zero seven"),
            ("1st", "first"),
            ("2nd", "second"),
            ("3rd", "third"),
            ("12th", "twelfth"),
            ("21st", "twenty first"),
            ("40th", "fortieth"),
            ("100th", "one hundredth"),
            ("50%", "fifty percent"),
            ("5pm", "five pm"),
            ("3:30", "three thirty"),
        ];
        let n = normaliser(true);
        for (digits, words) in cases {
            assert_eq!(n.normalise(digits), words, "{digits}");
        }
        assert_eq!(spell_numbers("a1b"), "a one b");
    }

    #[test]
    fn chinese_numbers_in_characters() {
        let cases = [
            ("9點", "九點"),
            ("10個", "十個"),
            ("15蚊", "十五蚊"),
            ("20人", "二十人"),
            ("105號", "一百零五號"),
            ("110號", "一百一十號"),
            ("1005元", "一千零五元"),
            ("1050元", "一千零五十元"),
            ("10000元", "一万元"),
            ("10005元", "一万零五元"),
            ("100000人", "十万人"),
            ("120000人", "十二万人"),
            ("1000500元", "一百万零五百元"),
            ("300000000人", "三亿人"),
            ("2024年", "二零二四年"),
            ("3.5倍", "三点五倍"),
            ("50%嘅人", "百分之五十嘅人"),
            ("第 3 個", "第 三 個"),
        ];
        for (digits, spelled) in cases {
            assert_eq!(spell_numbers(digits), spelled, "{digits}");
        }
        let n = normaliser(true);
        assert_eq!(n.normalise("我哋9點開會"), n.normalise("我哋九點開會"));
        assert_eq!(n.normalise("香港有700萬人"), "香 港 有 七 百 万 人");
        assert_eq!(cardinal_zh(100_010_000), "一亿零一万");
        assert_eq!(cardinal_zh(100_000_001), "一亿零一");
        assert_eq!(cardinal_zh(0), "零");
    }

    #[test]
    fn cjk_tokens() {
        assert!(is_cjk_token("我") && is_cjk_token("の") && is_cjk_token("〇"));
        assert!(!is_cjk_token("ok") && !is_cjk_token("我們") && !is_cjk_token(""));
    }
}
