//! Guards against what Whisper invents.
//!
//! On silence, music and noise Whisper writes lines it saw at the end of subtitled
//! videos in its training data: subtitle credits and thanks for watching. In Chinese
//! these are very common. It also loops, repeating one phrase until the window ends.
//! These functions recognise both, on text, so every path (file and live) can use them.

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
/// sometimes copy it instead of transcribing (on music, noise, or speech they cannot
/// follow), skipping and reordering words. Taken as such an echo: text of six or
/// more letters that all appear, in order, in the prompt; or of eight or more
/// letters all drawn from the prompt. (Shorter text could be a real utterance that
/// happens to be in the prompt.)
pub fn is_prompt_echo(text: &str, prompt: &str) -> bool {
    let t: Vec<char> = skeleton(text).chars().collect();
    let p: Vec<char> = skeleton(prompt).chars().collect();
    if t.len() >= 8 && t.iter().all(|c| p.contains(c)) {
        return true;
    }
    let mut rest = p.iter();
    t.len() >= 6 && t.iter().all(|c| rest.any(|q| q == c))
}

/// Does the text loop: one unit repeated so much that it fills the rest of the text?
/// Whisper does this when decoding goes wrong, for example "係係係係係係係係",
/// "我哋去，我哋去，我哋去，我哋去", or a whole sentence written three times.
/// Short units must repeat more to count: 6 times for 1–2 characters, 4 times up to
/// 16, 3 times beyond, and twice for a unit of 20 or more characters that ends
/// the text.
///
/// Returns the byte offset where the looping begins and the length of the unit in
/// characters (spaces ignored), or `None` if the text does not loop.
pub fn repetition(text: &str) -> Option<(usize, usize)> {
    let chars: Vec<(usize, char)> =
        text.char_indices().filter(|(_, c)| !c.is_whitespace()).collect();
    let n = chars.len();
    let mut best: Option<(usize, usize)> = None; // (char index, period)
    for period in 1..=n / 2 {
        let min_repeats = match period {
            1..=2 => 6,
            3..=16 => 4,
            _ => 3,
        };
        let needed = (min_repeats - 1) * period;
        let mut run = 0;
        let mut found = None;
        for i in 0..n - period {
            if chars[i].1 == chars[i + period].1 {
                run += 1;
                if run >= needed {
                    found = Some(i + 1 - run);
                    break;
                }
            } else {
                run = 0;
            }
        }
        // A long unit (a sentence) written twice at the very end is a loop too.
        if found.is_none() && period >= 20 && run >= period {
            found = Some(n - period - run);
        }
        if let Some(start) = found {
            if best.is_none_or(|(s, _)| start < s) {
                best = Some((start, period));
            }
        }
    }
    best.map(|(start, period)| (chars[start].0, period))
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
        if !c.is_whitespace() {
            kept += 1;
        }
        end = start + i + c.len_utf8();
    }
    // The loop may have been entered mid-sentence (".Good morning …meeting" rather
    // than "Good morning …meeting."): finish the sentence if it ends within the
    // next unit's worth of text.
    let rest: Vec<(usize, char)> =
        text[end..].char_indices().filter(|(_, c)| !c.is_whitespace()).take(period).collect();
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
