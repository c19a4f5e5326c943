//! Chinese typography for caption text: full-width punctuation in Chinese, half-width
//! in English, no spaces between Chinese characters.
//!
//! Whisper writes punctuation in whatever width its training text used, often
//! half-width after Chinese (`我哋今日 ,傾咗好多嘢 .`), and its tokens leave spaces
//! between characters (`我 哋 係`). [`tidy`] puts that right after script conversion,
//! before captions are laid out into lines, and it is what
//! [`ScriptConverter::caption`](super::ScriptConverter::caption) applies to every
//! caption (files, the terminal, JSON lines, viewers, webhooks).
//!
//! # The rules
//!
//! *Chinese* below means a CJK ideograph or kana; *Latin* a letter or digit of any
//! other script.
//!
//! - **Punctuation** `, . ? ! : ;` and their full-width forms `，。？！：；` take the
//!   language of their neighbours, looked for past spaces, quotes, brackets and other
//!   punctuation:
//!   - after Chinese: full-width (`開始, OK` → `開始，OK`);
//!   - after a Latin word: full-width when Chinese follows (`send 咗 email, 你睇下`
//!     → `email，你睇下`), half-width when Latin follows (`我覺得 OK, let's go` keeps
//!     its comma), and at the end of a sentence full-width when that sentence holds
//!     any Chinese (`我覺得 OK, let's go.` → `let's go。`), half-width when it does
//!     not (`Thank you。` → `Thank you.`);
//!   - a full-width mark that becomes half-width gets a space before a following
//!     word (`OK，let's` → `OK, let's`).
//! - **Never changed:** a mark between two ASCII letters or digits with no space
//!   (`12.5`, `1,000`, `3:30`, `cantocap.hk`), the full stop of `Mr.`, `Dr.`, `No.`
//!   and similar abbreviations, and anything in text without Chinese: text of ASCII
//!   characters only comes back as it was.
//! - **Ellipsis** `...` (two or more dots, or `…`) becomes `……` where a full stop
//!   would be full-width; otherwise it stays as written.
//! - **Brackets** `( )` around text with Chinese in it become `（ ）`
//!   (`(笑聲)` → `（笑聲）`); around English only they stay.
//! - **Quotes** `"…"` and `“…”` around Chinese, or with Chinese just outside them,
//!   become `「…」` for [`Script::Hk`] and [`Script::Tw`] (Hong Kong and Taiwan
//!   style), `‘…’` around Chinese becomes `『…』`. For [`Script::Cn`] mainland style
//!   keeps curly quotes: `"…"` becomes `“…”` (unless the text has curly quotes
//!   already, which the new ones could pair with wrongly) and `「」` are left as
//!   written. Apostrophes and unpaired quotes are never touched.
//! - **Spaces** between two Chinese characters are removed (`我 哋 係` → `我哋係`), and
//!   so are spaces next to full-width punctuation (`開始 ， OK` → `開始，OK`). Spaces
//!   between Chinese and a Latin word are kept as Whisper wrote them, neither added
//!   nor removed (`我哋 book 咗房` and `我哋book咗房` both stay): Hong Kong writes
//!   both, and a space that is there may be a word boundary the speaker made. Line
//!   breaks are never removed.
//! - [`Script::Raw`] is left exactly as decoded.
//!
//! Nothing but spaces is ever removed, and tidying tidied text changes nothing.
//!
//! ```
//! use cantocap::text::{tidy, Script};
//!
//! assert_eq!(tidy("我 哋 今日 ,傾咗好多嘢 .", Script::Hk), "我哋今日，傾咗好多嘢。");
//! assert_eq!(tidy("我覺得 OK, let's go.", Script::Hk), "我覺得 OK, let's go。");
//! assert_eq!(tidy("佢話 \"冇問題\" 。", Script::Hk), "佢話「冇問題」。");
//! assert_eq!(tidy("佢话 \"没问题\" 。", Script::Cn), "佢话“没问题”。");
//! assert_eq!(tidy("Meeting 喺 3:30pm 開始, OK?", Script::Hk), "Meeting 喺 3:30pm 開始，OK？");
//! ```

use super::Script;

/// Tidies Chinese typography in `text` for `script`: see the [module](self) for the
/// rules. [`Script::Raw`] text comes back unchanged.
pub fn tidy(text: &str, script: Script) -> String {
    if script == Script::Raw {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let marks = pair_marks(&chars, script);
    let mut out: Vec<Out> = Vec::with_capacity(chars.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some((to, wide)) = marks[i] {
            out.push(Out { c: to, wide });
            i += 1;
        } else if is_dotty(c) {
            let end = dotty_run_end(&chars, i);
            if end - i == 1 && c != '…' {
                punctuation(&chars, i, &mut out);
            } else if chinese_context(&chars, i, end) {
                out.push(Out { c: '…', wide: true });
                out.push(Out { c: '…', wide: true });
            } else {
                out.extend(chars[i..end].iter().map(|&c| Out { c, wide: is_wide_punct(c) }));
            }
            i = end;
        } else if widths(c).is_some() {
            punctuation(&chars, i, &mut out);
            i += 1;
        } else {
            out.push(Out { c, wide: is_wide_punct(c) });
            i += 1;
        }
    }
    drop_spaces(&out)
}

/// One character of the result, and whether spaces next to it go.
#[derive(Debug, Clone, Copy)]
struct Out {
    c: char,
    wide: bool,
}

/// A CJK ideograph or kana (and `々`, `〇`).
fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x3005 | 0x3007 | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF | 0x20000..=0x3FFFF)
}

/// A letter or digit that is not Chinese.
fn is_latin(c: char) -> bool {
    c.is_alphanumeric() && !is_chinese(c)
}

/// The spaces this module may remove; line breaks are not among them.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{3000}' | '\u{A0}')
}

/// The end of the run of full stops and ellipses starting at `i`, spaces between
/// them included (`. . .`): spaces the rules remove must not join two runs later.
fn dotty_run_end(chars: &[char], i: usize) -> usize {
    let mut end = i;
    let mut j = i;
    while j < chars.len() && (is_dotty(chars[j]) || is_space(chars[j])) {
        if is_dotty(chars[j]) {
            end = j + 1;
        }
        j += 1;
    }
    end
}

/// Whether `chars[i]`, a full stop or ellipsis, has another one before or after it,
/// past spaces.
fn in_dotty_run(chars: &[char], i: usize) -> bool {
    let before = chars[..i].iter().rev().find(|&&c| !is_space(c));
    let after = chars[i + 1..].iter().find(|&&c| !is_space(c));
    before.is_some_and(|&c| is_dotty(c)) || after.is_some_and(|&c| is_dotty(c))
}

/// Full stops and ellipses: two or more in a row make one ellipsis (`...`, `。。。`).
fn is_dotty(c: char) -> bool {
    matches!(c, '.' | '。' | '…')
}

/// The (half-width, full-width) forms of a punctuation mark this module converts.
fn widths(c: char) -> Option<(char, char)> {
    Some(match c {
        ',' | '，' => (',', '，'),
        '.' | '。' => ('.', '。'),
        '?' | '？' => ('?', '？'),
        '!' | '！' => ('!', '！'),
        ':' | '：' => (':', '：'),
        ';' | '；' => (';', '；'),
        _ => return None,
    })
}

/// Quotes and brackets of either width: never a neighbour that decides anything.
fn is_quote_or_bracket(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '“'
            | '”'
            | '‘'
            | '’'
            | '「'
            | '」'
            | '『'
            | '』'
            | '('
            | ')'
            | '（'
            | '）'
            | '【'
            | '】'
            | '《'
            | '》'
            | '〈'
            | '〉'
    )
}

/// Full-width punctuation that carries its own spacing: spaces next to it go.
fn is_wide_punct(c: char) -> bool {
    matches!(
        c,
        '，' | '。'
            | '？'
            | '！'
            | '：'
            | '；'
            | '、'
            | '「'
            | '」'
            | '『'
            | '』'
            | '（'
            | '）'
            | '《'
            | '》'
            | '〈'
            | '〉'
            | '【'
            | '】'
            | '〔'
            | '〕'
    )
}

/// Skipped when looking for the word a mark belongs with.
fn is_transparent(c: char) -> bool {
    is_space(c) || is_dotty(c) || widths(c).is_some() || is_quote_or_bracket(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Chinese,
    Latin,
    Nothing,
}

fn side(c: Option<char>) -> Side {
    match c {
        Some(c) if is_chinese(c) => Side::Chinese,
        Some(c) if is_latin(c) => Side::Latin,
        _ => Side::Nothing,
    }
}

/// The first character before `i` that is not transparent.
fn left_of(chars: &[char], i: usize) -> Option<char> {
    chars[..i].iter().rev().copied().find(|&c| !is_transparent(c))
}

/// The first character from `i` on that is not transparent.
fn right_of(chars: &[char], i: usize) -> Option<char> {
    chars[i..].iter().copied().find(|&c| !is_transparent(c))
}

/// Whether the mark at `chars[i]` ends a sentence. A lone `.` does unless it sits
/// between two ASCII letters or digits (`12.5`); ellipses never do.
fn ends_sentence(chars: &[char], i: usize) -> bool {
    match chars[i] {
        '？' | '！' | '?' | '!' => true,
        '。' => !in_dotty_run(chars, i),
        '.' => !in_dotty_run(chars, i) && !between_ascii(chars, i),
        _ => false,
    }
}

/// Whether the sentence before `i` (back to the previous sentence end) has Chinese.
/// Text in square brackets does not count: redaction labels such as `[電話號碼]`
/// stand in English sentences too.
fn sentence_has_chinese(chars: &[char], i: usize) -> bool {
    let mut depth = 0usize;
    for j in (0..i).rev() {
        match chars[j] {
            ']' => depth += 1,
            '[' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            _ if ends_sentence(chars, j) => return false,
            c if is_chinese(c) => return true,
            _ => {}
        }
    }
    false
}

/// Whether the mark at `chars[i]` has an ASCII letter or digit right on both sides.
fn between_ascii(chars: &[char], i: usize) -> bool {
    let ascii =
        |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_ascii_alphanumeric());
    ascii(i.checked_sub(1)) && ascii(Some(i + 1))
}

/// Whether the punctuation in `chars[from..to]` belongs to Chinese text.
fn chinese_context(chars: &[char], from: usize, to: usize) -> bool {
    match (side(left_of(chars, from)), side(right_of(chars, to))) {
        (Side::Chinese, _) | (_, Side::Chinese) => true,
        (_, Side::Latin) => false,
        (_, Side::Nothing) => sentence_has_chinese(chars, from),
    }
}

/// Abbreviations whose full stop is not a sentence's end.
const ABBREVIATIONS: [&str; 16] = [
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "co", "no", "eg",
    "ie",
];

/// Whether the word right before `chars[i]` is an abbreviation.
fn after_abbreviation(chars: &[char], i: usize) -> bool {
    let start = chars[..i].iter().rev().take_while(|c| c.is_ascii_alphabetic()).count();
    let word: String = chars[i - start..i].iter().collect::<String>().to_ascii_lowercase();
    // "e.g." and "i.e.": the letters before the previous dot count too.
    let word = if word.len() == 1 && i >= 3 && chars[i - 2] == '.' {
        let before: String = chars[i - 3..i - 2].iter().collect::<String>().to_ascii_lowercase();
        format!("{before}{word}")
    } else {
        word
    };
    start > 0 && ABBREVIATIONS.contains(&word.as_str())
}

/// Push the punctuation mark at `chars[i]` in the width its context asks for.
fn punctuation(chars: &[char], i: usize, out: &mut Vec<Out>) {
    let c = chars[i];
    let (half, full) = widths(c).expect("a convertible mark");
    // `1,000`, `12.5`, `3:30`, `a.b`; a full-width mark only between digits (`3，5`),
    // so that `OK，let's` still becomes `OK, let's`.
    let digits = |j: usize| chars.get(j).is_some_and(|c| c.is_ascii_digit());
    let between =
        if c == half { between_ascii(chars, i) } else { i > 0 && digits(i - 1) && digits(i + 1) };
    let keep = between || (half == '.' && after_abbreviation(chars, i));
    if keep {
        out.push(Out { c, wide: c == full });
        return;
    }
    if chinese_context(chars, i, i + 1) {
        out.push(Out { c: full, wide: true });
        return;
    }
    out.push(Out { c: half, wide: false });
    if c == full && chars.get(i + 1).is_some_and(|&next| is_latin(next)) {
        out.push(Out { c: ' ', wide: false });
    }
}

/// What each paired quote or bracket becomes, by index: `Some((char, wide))` for
/// the marks of pairs that enclose or adjoin Chinese.
fn pair_marks(chars: &[char], script: Script) -> Vec<Option<(char, bool)>> {
    let mut marks = vec![None; chars.len()];
    let corner = script != Script::Cn;
    let has_chinese = |from: usize, to: usize| chars[from + 1..to].iter().any(|&c| is_chinese(c));
    // Chinese just outside a pair of quotes also makes them Chinese quotes.
    let outside_chinese = |open: usize, close: usize| {
        let skip = |c: &char| is_space(*c) || is_dotty(*c) || widths(*c).is_some();
        let before = chars[..open].iter().rev().find(|c| !skip(c));
        let after = chars[close + 1..].iter().find(|c| !skip(c));
        before.is_some_and(|&c| is_chinese(c)) || after.is_some_and(|&c| is_chinese(c))
    };
    // Straight quotes become curly ones in mainland text only where there are no
    // curly ones yet: the new ones would otherwise pair with the old.
    let has_curly = chars.iter().any(|&c| matches!(c, '“' | '”'));
    let mut parens = Vec::new();
    let mut curly = Vec::new();
    let mut single = Vec::new();
    let mut straight: Option<usize> = None;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '(' | '（' => parens.push(i),
            ')' | '）' => {
                if let Some(open) = parens.pop() {
                    if has_chinese(open, i) {
                        marks[open] = Some(('（', true));
                        marks[i] = Some(('）', true));
                    }
                }
            }
            '"' => match straight.take() {
                None => straight = Some(i),
                Some(open) => {
                    if (corner || !has_curly) && (has_chinese(open, i) || outside_chinese(open, i))
                    {
                        let (l, r) = if corner { ('「', '」') } else { ('“', '”') };
                        marks[open] = Some((l, true));
                        marks[i] = Some((r, true));
                    }
                }
            },
            '“' => curly.push(i),
            '”' => {
                if let Some(open) = curly.pop() {
                    if has_chinese(open, i) || outside_chinese(open, i) {
                        let (l, r) = if corner { ('「', '」') } else { ('“', '”') };
                        marks[open] = Some((l, true));
                        marks[i] = Some((r, true));
                    }
                }
            }
            '‘' => single.push(i),
            '’' => {
                if let Some(open) = single.pop() {
                    if has_chinese(open, i) {
                        let (l, r) = if corner { ('『', '』') } else { ('‘', '’') };
                        marks[open] = Some((l, true));
                        marks[i] = Some((r, true));
                    }
                }
            }
            _ => {}
        }
    }
    marks
}

/// The text of `out` without the spaces the rules remove: those between two
/// Chinese characters and those next to full-width punctuation.
fn drop_spaces(out: &[Out]) -> String {
    let mut text = String::with_capacity(out.len() * 3);
    let mut i = 0;
    while i < out.len() {
        if !is_space(out[i].c) {
            text.push(out[i].c);
            i += 1;
            continue;
        }
        let end = i + out[i..].iter().take_while(|o| is_space(o.c)).count();
        let before = i.checked_sub(1).map(|j| out[j]);
        let after = out.get(end).copied();
        let both_chinese =
            before.is_some_and(|o| is_chinese(o.c)) && after.is_some_and(|o| is_chinese(o.c));
        let by_wide = before.is_some_and(|o| o.wide) || after.is_some_and(|o| o.wide);
        if !both_chinese && !by_wide {
            text.extend(out[i..end].iter().map(|o| o.c));
        }
        i = end;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whisper-style outputs written for these tests (not decoded), and what each
    /// should become in Hong Kong script.
    const HK: &[(&str, &str)] = &[
        ("我哋今日 ,傾咗好多嘢 .", "我哋今日，傾咗好多嘢。"),
        ("我 哋 係 咪 。", "我哋係咪。"),
        ("佢話 \"冇問題\" 。", "佢話「冇問題」。"),
        ("佢話“冇問題”", "佢話「冇問題」"),
        ("Meeting 喺 3:30pm 開始, OK?", "Meeting 喺 3:30pm 開始，OK？"),
        ("我覺得 OK, let's go.", "我覺得 OK, let's go。"),
        ("我覺得 OK, let's go。", "我覺得 OK, let's go。"),
        ("我哋 book 咗房", "我哋 book 咗房"),
        ("我哋book咗房", "我哋book咗房"),
        ("我 send 咗 email, 你睇下.", "我 send 咗 email，你睇下。"),
        ("價錢係 12.5 蚊, 唔係 1,000.", "價錢係 12.5 蚊，唔係 1,000。"),
        ("等陣先...", "等陣先……"),
        ("等陣先…", "等陣先……"),
        ("等陣先……", "等陣先……"),
        ("Wait... 我諗下", "Wait……我諗下"),
        ("(笑聲) 好好笑", "（笑聲）好好笑"),
        ("我哋用 (Zoom) 開會", "我哋用 (Zoom) 開會"),
        ("Thank you。", "Thank you."),
        ("OK，let's go", "OK, let's go"),
        ("時間: 3:30", "時間：3:30"),
        ("我見咗 Dr. 陳", "我見咗 Dr. 陳"),
        ("網址係 cantocap.hk 。", "網址係 cantocap.hk。"),
        ("好!!", "好！！"),
        ("我身份證係 [身份證號碼]，電話[電話號碼]", "我身份證係 [身份證號碼]，電話[電話號碼]"),
        ("佢‘講’咗", "佢『講』咗"),
        ("Please call me on [電話號碼]. Thanks.", "Please call me on [電話號碼]. Thanks."),
        ("電話[電話號碼], 三點半見.", "電話[電話號碼]，三點半見。"),
        ("It's fine", "It's fine"),
        ("第一行\n第二行", "第一行\n第二行"),
        ("我哋聽日開會. Please come on time.", "我哋聽日開會。Please come on time."),
    ];

    #[test]
    fn whisper_outputs_come_out_in_hong_kong_typography() {
        for (input, want) in HK {
            assert_eq!(tidy(input, Script::Hk), *want, "{input:?}");
            assert_eq!(tidy(input, Script::Tw), *want, "{input:?}");
        }
    }

    #[test]
    fn mainland_output_keeps_curly_quotes() {
        assert_eq!(tidy("佢话 \"没问题\" 。", Script::Cn), "佢话“没问题”。");
        assert_eq!(tidy("佢话 “没问题” 。", Script::Cn), "佢话“没问题”。");
        assert_eq!(tidy("我们今天 ,开会 .", Script::Cn), "我们今天，开会。");
        assert_eq!(tidy("He said “OK” then", Script::Cn), "He said “OK” then");
    }

    #[test]
    fn raw_is_left_as_decoded() {
        assert_eq!(tidy("我 哋 ,", Script::Raw), "我 哋 ,");
    }

    /// What tidying may change, folded away: spaces, punctuation widths, quote and
    /// bracket styles, and the length of an ellipsis.
    fn folded(text: &str) -> String {
        let mut s = String::new();
        for c in text.chars().filter(|&c| !is_space(c)) {
            let c = match c {
                '「' | '“' | '”' | '」' => '"',
                '『' | '』' | '‘' | '’' => '\'',
                '（' => '(',
                '）' => ')',
                '…' => {
                    s.push_str("..");
                    '.'
                }
                c => widths(c).map_or(c, |(half, _)| half),
            };
            s.push(c);
        }
        // Any run of two or more dots is one ellipsis.
        let mut folded = String::new();
        let mut dots = 0;
        for c in s.chars().chain(std::iter::once('\0')) {
            if c == '.' {
                dots += 1;
                continue;
            }
            match dots {
                0 => {}
                1 => folded.push('.'),
                _ => folded.push('…'),
            }
            dots = 0;
            folded.push(c);
        }
        folded.pop();
        folded
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn tidying_twice_changes_nothing(
            text in "[我哋係好話开會 aOKz19,.?!:;()（）\"“”‘’'「」…，。？！：；\n]{0,24}",
            script in proptest::sample::select(vec![Script::Hk, Script::Tw, Script::Cn]),
        ) {
            let once = tidy(&text, script);
            proptest::prop_assert_eq!(tidy(&once, script), once.clone(), "from {:?}", text);
            proptest::prop_assert_eq!(folded(&once), folded(&text), "lost characters: {:?}", text);
        }

        #[test]
        fn ascii_text_never_changes(
            text in "[ -~\n\t]{0,40}",
            script in proptest::sample::select(vec![Script::Hk, Script::Tw, Script::Cn]),
        ) {
            proptest::prop_assert_eq!(tidy(&text, script), text);
        }
    }

    #[test]
    fn tidied_table_is_stable() {
        for (_, want) in HK {
            assert_eq!(tidy(want, Script::Hk), *want);
        }
    }
}
