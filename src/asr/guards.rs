//! Guards against what Whisper invents.
//!
//! On silence, music and noise Whisper writes lines it saw at the end of subtitled
//! videos in its training data: subtitle credits and thanks for watching. In Chinese
//! these are very common. It also loops, repeating one phrase until the window ends.
//! These functions recognise both, on text, so every path (file and live) can use them.
//!
//! Given an initial prompt, Whisper may also write the prompt back instead of the
//! speech. [`prompt_echoes`] finds the echoes text can tell from speech; what it
//! cannot ([`echo_suspects`]) is checked against the same audio decoded without the
//! prompt ([`unconfirmed_echoes`], run by
//! [`WhisperModel::decode_kept`](super::WhisperModel::decode_kept)).

/// Lines Whisper is known to invent in Chinese (and English) on silence or noise,
/// after removing spaces and punctuation. Matching is on the whole segment, in any
/// script (Simplified and Traditional forms are both listed where they differ).
const HALLUCINATIONS: &[&str] = &[
    "字幕由amaraorg社区提供",
    "字幕由amaraorg社區提供",
    "由amaraorg社群提供的字幕",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "請不吝點贊訂閱轉發打賞支持明鏡與點點欄目",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "谢谢观看",
    "謝謝觀看",
    "感谢观看",
    "感謝觀看",
    "多谢收看",
    "多謝收看",
    "多谢观看",
    "多謝觀看",
    "谢谢收看",
    "謝謝收看",
    "谢谢大家观看",
    "謝謝大家觀看",
    "谢谢大家",
    "謝謝大家",
    "字幕志愿者",
    "字幕志願者",
    "中文字幕",
    "字幕组",
    "字幕組",
    "优优独播剧场yoyotelevisionseriesexclusive",
    "優優獨播劇場yoyotelevisionseriesexclusive",
    "thankyouforwatching",
    "thanksforwatching",
    "pleasesubscribe",
    "subtitlesbytheamaraorgcommunity",
    "字幕",
];

/// Fragments that mark a line as an invented credit wherever they appear.
const HALLUCINATION_FRAGMENTS: &[&str] = &[
    "amaraorg",
    "字幕由",
    "字幕提供",
    "字幕製作",
    "字幕制作",
    "點贊訂閱",
    "点赞订阅",
    "订阅我的频道",
    "訂閱我的頻道",
    "明镜与点点",
    "明鏡與點點",
];

/// Keep letters and digits, lowercased; drop spaces, punctuation and symbols.
fn skeleton(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Is this segment one of the lines Whisper invents on silence or noise
/// (subtitle credits, thanks for watching, requests to subscribe)?
pub fn is_known_hallucination(text: &str) -> bool {
    let s = skeleton(text);
    if s.is_empty() {
        return false;
    }
    HALLUCINATIONS.contains(&s.as_str()) || HALLUCINATION_FRAGMENTS.iter().any(|f| s.contains(f))
}

/// Is the text just the initial prompt written back? Small models given a prompt
/// copy it instead of transcribing (on music, noise, or speech they cannot follow),
/// skipping and reordering words. See [`prompt_echoes`] for what counts; this is
/// true when every letter of the text is in an echo, or when the text has eight or
/// more letters all drawn from the prompt, in any order.
pub fn is_prompt_echo(text: &str, prompt: &str) -> bool {
    let t: Vec<char> = skeleton(text).chars().collect();
    if t.is_empty() || prompt.is_empty() {
        return false;
    }
    let p: Vec<char> = skeleton(prompt).chars().collect();
    if t.len() >= 8 && t.iter().all(|c| p.contains(c)) {
        return true;
    }
    let echoes = prompt_echoes(text, prompt);
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    chars
        .iter()
        .enumerate()
        .all(|(i, c)| !c.is_alphanumeric() || echoes.iter().any(|r| r.contains(&i)))
}

/// How a piece of text lines up with the prompt, letter by letter, in order.
#[derive(Debug, Default, PartialEq)]
struct PromptMatch {
    /// Letters found in the prompt, in order.
    matched: usize,
    /// Letters not found (after the ones before them).
    missed: usize,
    /// Runs of letters that are contiguous in the prompt, and the longest.
    pieces: usize,
    longest: usize,
}

fn match_prompt(letters: &[char], prompt: &[char]) -> PromptMatch {
    // Longest common subsequence, by dynamic programming (clauses are short).
    let (n, m) = (letters.len(), prompt.len());
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if letters[i] == prompt[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // Walk one best alignment, counting its contiguous pieces.
    let mut out = PromptMatch { matched: usize::from(lcs[0][0]), ..Default::default() };
    out.missed = n - out.matched;
    let (mut i, mut j, mut run) = (0, 0, 0);
    while i < n && j < m {
        if letters[i] == prompt[j] && lcs[i][j] == lcs[i + 1][j + 1] + 1 {
            run += 1;
            if run == 1 {
                out.pieces += 1;
            }
            out.longest = out.longest.max(run);
            i += 1;
            j += 1;
        } else {
            run = 0;
            if lcs[i][j + 1] >= lcs[i + 1][j] {
                j += 1;
            } else {
                i += 1;
            }
        }
    }
    out
}

/// Sentence particles and fillers Whisper adds around an echo (`咁嘅度傾咗`,
/// `我哋話喇`): at the ends of a clause they are not held against it being one.
const FILLERS: &[char] = &['咁', '喇', '呀', '啦', '喎', '囉', '嘛', '啊', '吖', '㗎', '呢', '嘞'];

/// Is a clause (its letters) an echo? Fillers at its ends aside, either six or more
/// letters are found in order in the prompt (three in four at least), or three to
/// five are, all of them, in short pieces (three letters at most) from different
/// places of the prompt: three or more pieces (`我哋係啱`: 我哋 … 係 … 啱), or two
/// making five letters (`我哋喺度傾`) or of two letters at most (`我哋話`). One
/// contiguous piece (`佢話冇問題`, `唔該晒`), two pieces of four letters with one of
/// three or more (`我冇問題`, also `嘅度傾咗`, an echo let through), or a clause with a
/// word not in the prompt (`今日好熱`) could be said for real and is kept.
fn is_echo_clause(letters: &[char], prompt: &[char]) -> bool {
    let start = letters.iter().position(|c| !FILLERS.contains(c)).unwrap_or(letters.len());
    let end = letters.iter().rposition(|c| !FILLERS.contains(c)).map_or(start, |e| e + 1);
    let core = &letters[start..end.max(start)];
    let m = match_prompt(core, prompt);
    (m.matched >= 6 && m.missed * 4 <= core.len())
        || (m.matched >= 3
            && m.missed == 0
            && m.pieces >= 2
            && m.longest <= 3
            && (m.pieces >= 3 || m.matched >= 5 || m.longest <= 2))
}

/// Words of the prompt's heading that are said for real on their own.
const HEADING_WORDS: &[&str] = &["以下", "以下係", "廣東話"];

fn is_clause_end(c: char) -> bool {
    matches!(c, '，' | '。' | '？' | '！' | '；' | '：' | '、' | ',' | '.' | '?' | '!' | ';' | ':')
}

/// The parts of `text` that echo `prompt` (the automatic Cantonese prompt, or the
/// user's), as ranges over the text's non-space characters:
/// - each clause (up to a punctuation mark, which goes with it) that is an echo:
///   fillers aside, six or more letters found in order in the prompt, or three to
///   five found in pieces from different places of it, none longer than three
///   (`我哋係啱。`, `我哋喺度傾咗。`, `咁嘅度傾咗。`), or a run of three or more
///   letters of the prompt's heading (`咁嘅逐字。`);
/// - inside other clauses, any run of four or more letters copied from the prompt's
///   first clause, which is a heading nobody says (`以下係廣東話錄音嘅逐字稿`):
///   `廣東話錄音` in `廣東話錄音，佢話…`.
pub fn prompt_echoes(text: &str, prompt: &str) -> Vec<std::ops::Range<usize>> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let p: Vec<char> = skeleton(prompt).chars().collect();
    let heading: Vec<char> = prompt
        .chars()
        .take_while(|&c| !is_clause_end(c))
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let mut echoes = Vec::new();
    if p.is_empty() {
        return echoes;
    }
    let mut start = 0;
    while start < chars.len() {
        let mut end = start;
        while end < chars.len() && !is_clause_end(chars[end]) {
            end += 1;
        }
        while end < chars.len() && is_clause_end(chars[end]) {
            end += 1;
        }
        // Letters of the clause, with their positions.
        let letters: Vec<(usize, char)> = (start..end)
            .filter(|&i| chars[i].is_alphanumeric())
            .flat_map(|i| chars[i].to_lowercase().map(move |c| (i, c)))
            .collect();
        let only: Vec<char> = letters.iter().map(|&(_, c)| c).collect();
        if is_echo_clause(&only, &p) || is_heading_clause(&only, &heading) {
            echoes.push(start..end);
        } else if heading.len() >= 4 {
            // Runs copied from the heading.
            let mut i = 0;
            while i < letters.len() {
                let best = (0..heading.len())
                    .map(|h| {
                        (0..)
                            .take_while(|&k| {
                                i + k < letters.len()
                                    && h + k < heading.len()
                                    && letters[i + k].1 == heading[h + k]
                            })
                            .count()
                    })
                    .max()
                    .unwrap_or(0);
                if best >= 4 {
                    echoes.push(letters[i].0..letters[i + best - 1].0 + 1);
                    i += best;
                } else {
                    i += 1;
                }
            }
        }
        start = end;
    }
    echoes
}

/// Is the clause, fillers aside, a run of three or more letters of the heading
/// (`嘅逐字`), other than a word said for real ([`HEADING_WORDS`])?
fn is_heading_clause(letters: &[char], heading: &[char]) -> bool {
    let core: String = letters.iter().filter(|c| !FILLERS.contains(c)).collect();
    let heading: String = heading.iter().collect();
    core.chars().count() >= 3 && heading.contains(&core) && !HEADING_WORDS.contains(&core.as_str())
}

/// The text without its echoes of the prompt (see [`prompt_echoes`]), spacing kept.
pub fn strip_prompt_echoes(text: &str, prompt: &str) -> String {
    without(text, &prompt_echoes(text, prompt))
}

/// The text without the characters in `ranges` (over its non-space characters),
/// spacing tidied and punctuation left at the start dropped.
fn without(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let echoes = ranges;
    if echoes.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    for c in text.chars() {
        if c.is_whitespace() {
            out.push(c);
            continue;
        }
        if !echoes.iter().any(|r| r.contains(&i)) {
            out.push(c);
        }
        i += 1;
    }
    // Spaces left where words went, and punctuation left at the start.
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    out.trim_start_matches(|c: char| is_clause_end(c) || c.is_whitespace()).to_string()
}

/// How a decode without the prompt writes the prompt's characters: the Simplified
/// forms of its Traditional ones, and the standard written Chinese Whisper writes,
/// unprompted, for its colloquial Cantonese (是 for 係, 們 for 哋, 了 for 咗, 在 for
/// 喺). [`unconfirmed_echoes`] folds both texts to the prompt's forms before
/// comparing them, so a word really said is confirmed however it is written.
const FOLDS: &[(char, char)] = &[
    ('广', '廣'),
    ('东', '東'),
    ('话', '話'),
    ('说', '話'),
    ('說', '話'),
    ('录', '錄'),
    ('倾', '傾'),
    ('问', '問'),
    ('题', '題'),
    ('该', '該'),
    ('系', '係'),
    ('是', '係'),
    ('的', '嘅'),
    ('們', '哋'),
    ('们', '哋'),
    ('了', '咗'),
    ('在', '喺'),
    ('沒', '冇'),
    ('没', '冇'),
    ('他', '佢'),
    ('她', '佢'),
    ('不', '唔'),
    ('對', '啱'),
    ('对', '啱'),
    ('天', '日'),
    ('很', '好'),
];

fn fold(c: char) -> char {
    FOLDS.iter().find(|(from, _)| *from == c).map_or(c, |&(_, to)| to)
}

/// Where a decode made with `prompt` may still be copying it once the echoes
/// [`prompt_echoes`] finds are gone, as ranges over the text's non-space
/// characters: runs of CJK characters in a row (spaces aside; punctuation and other
/// letters end a run) that follow the prompt, each the character after the one
/// before it there, or the one after that (one skipped), or the same again, and
/// that cover three or more of the prompt's characters from first to last
/// (`係啱啱`: 係咪啱; `度傾咗`). Copying is how Whisper echoes, and these are the
/// pieces no rule on text can judge: `喺度傾咗` and `係啱啱` (echoes) follow the
/// prompt as `我哋今` (of `我哋今晚`) does (speech). A decode of the same audio
/// without the prompt can: see [`unconfirmed_echoes`]. A two-character word of
/// the prompt (`我哋`, `佢話`) is said for real too often to be judged at all, and
/// only CJK characters count, as a letter of an alphabet tells nothing.
pub fn echo_suspects(text: &str, prompt: &str) -> Vec<std::ops::Range<usize>> {
    let p: Vec<char> = skeleton(prompt).chars().filter(|&c| is_cjk(c)).collect();
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        // Places in the prompt the run so far can end at, each with the earliest
        // place it can have started from.
        let mut reach: Vec<(usize, usize)> = (0..p.len())
            .filter(|&j| is_cjk(chars[i]) && p[j] == chars[i])
            .map(|j| (j, j))
            .collect();
        let (start, mut span) = (i, 1);
        while i + 1 < chars.len() && is_cjk(chars[i + 1]) && !reach.is_empty() {
            let c = chars[i + 1];
            let mut next: Vec<(usize, usize)> = Vec::new();
            for &(j, from) in &reach {
                for q in [j, j + 1, j + 2] {
                    if q < p.len() && p[q] == c {
                        match next.iter_mut().find(|(k, _)| *k == q) {
                            Some(e) => e.1 = e.1.min(from),
                            None => next.push((q, from)),
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            reach = next;
            span = span.max(reach.iter().map(|&(j, from)| j - from + 1).max().unwrap_or(1));
            i += 1;
        }
        if span >= 3 {
            runs.push(start..i + 1);
        }
        i += 1;
    }
    runs
}

/// A CJK ideograph (the letters of Chinese text)?
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}')
}

/// The parts of `text`, decoded with `prompt`, that the same audio decoded without
/// the prompt (`unprompted`) does not confirm, as ranges over the text's non-space
/// characters:
/// - in each run of [`echo_suspects`], the pieces of two or more characters in a
///   row that are in no confirmed pair: a pair of neighbours in the run is
///   confirmed when the two are also neighbours in `unprompted` (letters only, both
///   texts folded to the prompt's forms: Simplified to Traditional, 是 to 係, 們 to
///   哋, and so on). Against `我們慢慢對面都會很好`, `我哋今晚都變成寫法諾` keeps
///   `我哋今` (我哋 is confirmed, and 今 alone is no piece); against `AZFMB 北河方話`,
///   `係啱啱` goes;
/// - then any clause that has lost letters and kept only fillers (`咁` of `咁嘅度傾咗`).
///
/// Everything else of the text is kept: the prompt is there to make Whisper write
/// Cantonese, and the unprompted decode writes Mandarin forms, so it is evidence
/// only about the prompt's own pieces. The price: speech that says the prompt's
/// own words, which Mandarin writes otherwise (`喺度傾咗`, 在這裡談了), loses them.
pub fn unconfirmed_echoes(
    text: &str,
    unprompted: &str,
    prompt: &str,
) -> Vec<std::ops::Range<usize>> {
    let suspects = echo_suspects(text, prompt);
    if suspects.is_empty() {
        return suspects;
    }
    let heard: Vec<char> = skeleton(unprompted).chars().map(fold).collect();
    let pairs: std::collections::HashSet<(char, char)> =
        heard.windows(2).map(|w| (w[0], w[1])).collect();
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut dropped = vec![false; chars.len()];
    for run in suspects {
        let confirmed = |i: usize| pairs.contains(&(fold(chars[i]), fold(chars[i + 1])));
        // Characters of the run in no confirmed pair, in pieces of two or more: a
        // single one is no piece of the prompt (`今` of `我哋今晚`, 我哋 confirmed).
        let lone: Vec<bool> = run
            .clone()
            .map(|i| !((i > run.start && confirmed(i - 1)) || (i + 1 < run.end && confirmed(i))))
            .collect();
        let mut k = 0;
        while k < lone.len() {
            let from = k;
            while k < lone.len() && lone[k] {
                k += 1;
            }
            if k - from >= 2 {
                dropped[run.start + from..run.start + k].iter_mut().for_each(|d| *d = true);
            }
            k = k.max(from + 1);
        }
    }
    // Clauses left with fillers only.
    let mut start = 0;
    while start < chars.len() {
        let mut end = start;
        while end < chars.len() && !is_clause_end(chars[end]) {
            end += 1;
        }
        let letters: Vec<usize> = (start..end).filter(|&i| chars[i].is_alphanumeric()).collect();
        let lost = letters.iter().any(|&i| dropped[i]);
        if lost && letters.iter().all(|&i| dropped[i] || FILLERS.contains(&chars[i])) {
            letters.iter().for_each(|&i| dropped[i] = true);
            // Its punctuation goes with it.
            while end < chars.len() && is_clause_end(chars[end]) {
                dropped[end] = true;
                end += 1;
            }
        }
        while end < chars.len() && is_clause_end(chars[end]) {
            end += 1;
        }
        start = end.max(start + 1);
    }
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, _) in dropped.iter().enumerate().filter(|(_, &d)| d) {
        match ranges.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => ranges.push(i..i + 1),
        }
    }
    ranges
}

/// The text without what [`unconfirmed_echoes`] finds, spacing tidied.
pub fn drop_unconfirmed_echoes(text: &str, unprompted: &str, prompt: &str) -> String {
    without(text, &unconfirmed_echoes(text, unprompted, prompt))
}

/// Does the text loop: one unit repeated so much that it fills the rest of the text?
/// Whisper does this when decoding goes wrong, for example "係係係係係係係係",
/// "我哋去，我哋去，我哋去，我哋去", or a whole sentence written three times.
/// Short units must repeat more to count: 6 times for 1–2 characters, 4 times up to
/// 16, 3 times beyond, and twice for a unit of 16 or more letters that ends
/// the text. Only letters and digits are compared (a loop's punctuation wanders:
/// `我哋去咗公園，我哋去咗公園。`), and a unit of 8 or more letters may differ in one
/// letter in ten between its repeats (long loops drift a character here and there).
///
/// Returns the byte offset where the looping begins and the length of the unit in
/// letters, or `None` if the text does not loop.
pub fn repetition(text: &str) -> Option<(usize, usize)> {
    let chars: Vec<(usize, char)> =
        text.char_indices().filter(|(_, c)| c.is_alphanumeric()).collect();
    let n = chars.len();
    let mut best: Option<(usize, usize)> = None; // (char index, period)
    for period in 1..=n / 2 {
        let min_repeats = match period {
            1..=2 => 6,
            3..=16 => 4,
            _ => 3,
        };
        let needed = (min_repeats - 1) * period;
        // Mismatches allowed within any `needed` comparisons.
        let allowed = if period >= 8 { needed / 10 } else { 0 };
        let same = |i: usize| chars[i].1 == chars[i + period].1;
        // The earliest window of `needed` comparisons with few enough mismatches,
        // starting on a match.
        let mut found = None;
        let mut misses = 0;
        for end in 0..n - period {
            misses += usize::from(!same(end));
            if end >= needed {
                misses -= usize::from(!same(end - needed));
            }
            if end + 1 >= needed && misses <= allowed {
                let start = end + 1 - needed;
                if same(start) {
                    found = Some(start);
                    break;
                }
            }
        }
        // A long unit (a sentence) written twice at the very end is a loop too.
        if found.is_none() && period >= 16 {
            let start = n - 2 * period;
            let misses = (start..n - period).filter(|&i| !same(i)).count();
            if misses <= period / 10 && same(start) {
                found = Some(start);
            }
        }
        if let Some(start) = found {
            if best.is_none_or(|(s, _)| start < s) {
                best = Some((start, period));
            }
        }
    }
    best.map(|(start, period)| (chars[start].0, period))
}

/// Is `text` the segment before it written again: the same 16 or more letters?
/// Whisper loops across segments too, writing a sentence it heard once as two
/// segments; a sentence that long said twice in a row is rare.
pub fn repeats_previous(previous: &str, text: &str) -> bool {
    let s = skeleton(text);
    s.chars().count() >= 16 && s == skeleton(previous)
}

fn is_sentence_punct(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '，' | ',')
}

/// Cut a looping tail off: keep the text before the loop plus one instance of
/// the repeated unit. Text that does not loop is returned as it is.
pub fn trim_repetition(text: &str) -> String {
    let Some((start, period)) = repetition(text) else {
        return text.to_string();
    };
    // Keep one instance of the unit, from the original text (spacing included).
    let mut kept = 0;
    let mut end = start;
    for (i, c) in text[start..].char_indices() {
        if kept == period {
            break;
        }
        if c.is_alphanumeric() {
            kept += 1;
        }
        end = start + i + c.len_utf8();
    }
    // The loop may have been entered mid-sentence (".Good morning …meeting" rather
    // than "Good morning …meeting."): finish the sentence if it ends within the
    // next unit's worth of text.
    let mut letters = 0;
    let rest: Vec<(usize, char)> = text[end..]
        .char_indices()
        .take_while(|(_, c)| {
            letters += usize::from(c.is_alphanumeric());
            letters <= period
        })
        .collect();
    let ends_sentence =
        text[..end].chars().rev().find(|c| !c.is_whitespace()).is_some_and(is_sentence_punct);
    if !ends_sentence {
        if let Some(&(i, c)) = rest.iter().find(|(_, c)| is_sentence_punct(*c)) {
            end += i + c.len_utf8();
        }
    }
    text[..end].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_credit_lines_are_recognised_in_both_scripts() {
        for line in [
            "字幕由Amara.org社區提供",
            "字幕由 Amara.org 社区提供",
            "請不吝點贊 訂閱 轉發 打賞支持明鏡與點點欄目",
            "謝謝觀看！",
            "谢谢观看",
            "多謝收看。",
            "Thank you for watching!",
            "優優獨播劇場——YoYo Television Series Exclusive",
        ] {
            assert!(is_known_hallucination(line), "{line}");
        }
    }

    #[test]
    fn ordinary_speech_is_not_a_hallucination() {
        for line in [
            "我哋今日去飲茶。",
            "多謝你幫手",
            "呢套戲冇字幕㗎？",
            "Thank you, that was helpful.",
            "",
        ] {
            assert!(!is_known_hallucination(line), "{line}");
        }
    }

    #[test]
    fn echoes_of_the_prompt_are_recognised() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        assert!(is_prompt_echo("我哋今日喺度傾咗好多嘢", prompt));
        // Seen from Whisper base: the prompt with words skipped.
        assert!(is_prompt_echo("我哋喺度傾咗好", prompt));
        assert!(!is_prompt_echo("佢話冇問題", prompt), "too short to tell");
        assert!(!is_prompt_echo("我哋今日去飲茶", prompt));
        assert!(!is_prompt_echo("好多嘢我哋今日", prompt), "out of order and short");
        assert!(is_prompt_echo("我哋喺度傾咗好多嘅逐字稿。", prompt), "reordered but long");
    }

    /// Everyday Hong Kong sentences (tests/data/hk-sentences.txt): real speech.
    fn real_sentences() -> impl Iterator<Item = &'static str> {
        include_str!("../../tests/data/hk-sentences.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    }

    /// (spoken, written) pairs recorded from Whisper base in zh + prompt mode.
    fn recorded() -> Vec<(&'static str, &'static str)> {
        include_str!("../../tests/data/recorded-base-yue-prompt.tsv")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .collect()
    }

    /// Pieces of the Cantonese prompt that turned up in base's outputs.
    const PROMPT_PIECES: &[&str] = &["傾咗", "廣東話", "錄音", "逐字", "係啱", "喺度傾", "度傾"];

    fn prompt_pieces(text: &str) -> Vec<&'static str> {
        let s = skeleton(text);
        PROMPT_PIECES.iter().copied().filter(|p| s.contains(p)).collect()
    }

    #[test]
    fn echoes_of_any_length_are_found_in_recorded_outputs() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        let recorded = recorded();
        assert!(recorded.len() >= 30, "the recording is there");
        let (mut before, mut after) = (0, 0);
        for (spoken, written) in &recorded {
            let pieces = prompt_pieces(written);
            if pieces.iter().any(|p| !skeleton(spoken).contains(p)) {
                before += 1;
            }
            let kept = if is_prompt_echo(written, prompt) {
                String::new()
            } else {
                trim_repetition(&strip_prompt_echoes(written, prompt))
            };
            let left: Vec<_> = prompt_pieces(&kept)
                .into_iter()
                .filter(|p| !skeleton(spoken).contains(p))
                .collect();
            if !left.is_empty() {
                eprintln!("{written:?} → {kept:?} still echoes {left:?}");
                after += 1;
            }
        }
        eprintln!("outputs echoing the prompt: {before} before the guard, {after} after");
        assert!(before >= 8, "only {before} recorded outputs echo the prompt");
        assert!(after * 3 <= before, "{after} of {before} echoes got through");
    }

    /// (spoken, written with the prompt, written without it) from Whisper base:
    /// tests/data/recorded-base-yue-noprompt.tsv holds what it wrote without the
    /// prompt for the same audio as recorded-base-yue-prompt.tsv.
    fn recorded_both() -> Vec<(&'static str, &'static str, &'static str)> {
        let unprompted: Vec<(&str, &str)> =
            include_str!("../../tests/data/recorded-base-yue-noprompt.tsv")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('\t'))
                .collect();
        recorded()
            .into_iter()
            .map(|(spoken, written)| {
                let (_, heard) = unprompted
                    .iter()
                    .find(|(s, _)| *s == spoken)
                    .unwrap_or_else(|| panic!("no unprompted output recorded for {spoken}"));
                (spoken, written, *heard)
            })
            .collect()
    }

    /// The text-level guard, as `keep` applies it to a segment.
    fn text_guard(written: &str, prompt: &str) -> String {
        if is_prompt_echo(written, prompt) {
            String::new()
        } else {
            trim_repetition(&strip_prompt_echoes(written, prompt))
        }
    }

    /// Prompt pieces in `text` that were not said.
    fn unsaid_pieces(spoken: &str, text: &str) -> Vec<&'static str> {
        prompt_pieces(text).into_iter().filter(|p| !skeleton(spoken).contains(p)).collect()
    }

    #[test]
    fn echoes_the_text_guard_misses_go_when_an_unprompted_decode_lacks_them() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        let (mut guard_alone, mut checked, mut triggered) = (0, 0, 0);
        let mut missed = Vec::new();
        for (spoken, written, heard) in recorded_both() {
            let guarded = text_guard(written, prompt);
            let kept = drop_unconfirmed_echoes(&guarded, heard, prompt);
            triggered += usize::from(!echo_suspects(&guarded, prompt).is_empty());
            if !unsaid_pieces(spoken, &guarded).is_empty() {
                guard_alone += 1;
                missed.push((spoken, guarded.clone(), kept.clone()));
            }
            if !unsaid_pieces(spoken, &kept).is_empty() {
                eprintln!("{written:?} → {guarded:?} → {kept:?} (unprompted {heard:?})");
                checked += 1;
            }
        }
        eprintln!(
            "outputs still echoing: {guard_alone} after the text guard, {checked} after the \
             unprompted check ({triggered} of 32 would decode again)"
        );
        // The three the text guard lets through (issue 12): 喺度傾咗唔會, 咁嘅度傾咗, 係啱啱.
        let texts: Vec<&str> = missed.iter().map(|(_, g, _)| g.as_str()).collect();
        for echo in ["喺度傾咗唔會", "咁嘅度傾咗", "係啱啱"] {
            assert!(texts.iter().any(|t| t.contains(echo)), "{echo} not among {texts:?}");
        }
        assert!(guard_alone >= 3, "{missed:?}");
        assert_eq!(checked, 0, "echoes left after the check");
    }

    #[test]
    fn the_check_removes_nothing_that_was_said() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        for (spoken, written, heard) in recorded_both() {
            let guarded = text_guard(written, prompt);
            let kept = drop_unconfirmed_echoes(&guarded, heard, prompt);
            let spoken: Vec<char> = skeleton(spoken).chars().collect();
            let mut rest = kept.chars().filter(|c| c.is_alphanumeric()).peekable();
            for c in guarded.chars().filter(|c| c.is_alphanumeric()) {
                if rest.peek() == Some(&c) {
                    rest.next();
                } else {
                    assert!(!spoken.contains(&c), "{c} was said: {guarded:?} → {kept:?}");
                }
            }
            assert_eq!(rest.next(), None, "{guarded:?} → {kept:?} is not a part of it");
        }
    }

    #[test]
    fn speech_the_unprompted_decode_also_hears_is_kept() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        // Hand-written, not model outputs: the Cantonese a capable model writes with
        // the prompt, and the Mandarin forms it writes for the same words without.
        for (written, heard) in [
            ("我哋今晚去邊度食飯好？", "我们今晚去哪里吃饭好？"),
            ("佢話冇問題。", "他说没问题。"),
            ("唔該晒！", "唔該晒！"),
        ] {
            assert!(!echo_suspects(written, prompt).is_empty(), "{written}");
            assert_eq!(drop_unconfirmed_echoes(written, heard, prompt), written, "{heard}");
        }
        // Whatever is heard, text without runs of the prompt is never touched.
        for line in real_sentences() {
            if echo_suspects(line, prompt).is_empty() {
                assert_eq!(drop_unconfirmed_echoes(line, "", prompt), line);
            }
            assert_eq!(drop_unconfirmed_echoes(line, line, prompt), line, "heard the same");
        }
    }

    #[test]
    fn suspects_are_runs_that_follow_the_prompt() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        let runs = |t: &str| -> Vec<String> {
            let chars: Vec<char> = t.chars().filter(|c| !c.is_whitespace()).collect();
            echo_suspects(t, prompt).into_iter().map(|r| chars[r].iter().collect()).collect()
        };
        assert_eq!(runs("係啱啱。"), ["係啱啱"]);
        assert_eq!(runs("咁嘅度傾咗。"), ["度傾咗"]);
        assert_eq!(runs("我哋今晚都變成寫法諾。"), ["我哋今"]);
        assert_eq!(runs("佢係唔係唔先到"), Vec::<String>::new(), "not in the prompt's order");
        assert_eq!(runs("今日好熱"), Vec::<String>::new(), "a word of two");
        assert_eq!(runs("我哋哋"), Vec::<String>::new(), "two of the prompt's characters");
        assert_eq!(runs("喺度傾咗唔會。"), ["喺度傾咗"]);
        assert_eq!(runs("hello 係 world"), Vec::<String>::new());
        assert_eq!(runs("係，啱"), Vec::<String>::new(), "punctuation ends a run");
        let real = real_sentences().filter(|l| !echo_suspects(l, prompt).is_empty()).count();
        eprintln!("{real} of {} real sentences hold a run", real_sentences().count());
    }

    #[test]
    fn short_echoes_are_caught_and_short_speech_is_not() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        for echo in ["我哋係啱。", "我哋話喇。", "我哋喺度傾咗。", "我哋係喺度傾咗。"]
        {
            assert!(is_prompt_echo(echo, prompt), "{echo}");
        }
        for speech in ["佢話冇問題。", "唔該晒！", "係咪？", "我冇問題。", "我哋。", "好多嘢"]
        {
            assert!(!is_prompt_echo(speech, prompt), "{speech}");
            assert_eq!(strip_prompt_echoes(speech, prompt), speech);
        }
        // An echo clause in front of speech goes; the speech stays.
        assert_eq!(strip_prompt_echoes("我哋係啱。佢遲到。", prompt), "佢遲到。");
        // The heading, copied into a clause of speech.
        assert_eq!(strip_prompt_echoes("廣東話錄音，佢話聽日得閒", prompt), "佢話聽日得閒");
        assert!(!is_prompt_echo("廣東話", prompt), "a word, not the heading");
    }

    #[test]
    fn real_sentences_are_neither_echoes_nor_loops() {
        let prompt = super::super::language::CANTONESE_PROMPT;
        let mut n = 0;
        for line in real_sentences() {
            assert!(!is_prompt_echo(line, prompt), "{line}");
            assert_eq!(strip_prompt_echoes(line, prompt), line);
            assert_eq!(repetition(line), None, "{line}");
            n += 1;
        }
        assert!(n >= 150);
    }

    #[test]
    fn long_loops_are_caught_through_wandering_punctuation_and_drift() {
        // Punctuation differs between repeats.
        assert_eq!(
            trim_repetition("佢話我哋去咗公園，我哋去咗公園。我哋去咗公園，我哋去咗公園。"),
            "佢話我哋去咗公園，"
        );
        // A long phrase, four times, one character drifting in one repeat.
        let phrase = "今日嘅會議主要討論明年嘅財政預算";
        let drifted = phrase.replace('明', "名");
        let looped = format!("{phrase}，{phrase}，{drifted}，{phrase}，");
        assert_eq!(trim_repetition(&looped), format!("{phrase}，"));
        // Different sentences sharing words are not a loop.
        let text = "今日嘅會議主要討論明年嘅財政預算，聽日嘅會議主要討論今年嘅人手安排。";
        assert_eq!(repetition(text), None);
    }

    #[test]
    fn a_long_segment_written_twice_is_a_loop() {
        let sentence = "We need to discuss a budget for next year.";
        assert!(repeats_previous(sentence, "We need to discuss a budget, for next year"));
        assert!(!repeats_previous("Thank you.", "Thank you."), "short: could be said twice");
        assert!(!repeats_previous(sentence, "We need to discuss the budget for this year."));
    }

    #[test]
    fn loops_are_found_and_trimmed() {
        assert_eq!(trim_repetition("係係係係係係係係係係"), "係");
        assert_eq!(
            trim_repetition("我話，我哋去，我哋去，我哋去，我哋去，我哋去"),
            "我話，我哋去，"
        );
        assert_eq!(trim_repetition("go go go go go go go"), "go");
        let sentence = "Good morning everyone and welcome to the meeting. ";
        let looped = format!("Hello. {}", sentence.repeat(5));
        assert_eq!(trim_repetition(&looped), format!("Hello. {}", sentence.trim_end()));
        let twice = "Good morning everyone. Good morning everyone.";
        assert_eq!(trim_repetition(twice), "Good morning everyone.");
    }

    #[test]
    fn ordinary_repetition_is_kept() {
        for line in ["好好食", "佢哋哋", "係咪係咪呀", "hello hello", "一二三四五六七八九十"]
        {
            assert_eq!(repetition(line), None, "{line}");
            assert_eq!(trim_repetition(line), line);
        }
    }
}
