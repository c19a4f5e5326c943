//! Integration tests: caption layout and the caption file writers.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use cantocap::caption::{
    display_width, layout, parse_srt, parse_vtt, write_all, writer_for, Caption, CaptionFormat,
    CaptionWriter, JsonlWriter, LayoutOptions, SrtWriter, TxtWriter, VttWriter,
};
use cantocap::Segment;

use crate::common::DEV_SENTENCES as DEV;

/// Hong Kong code-switching, as Whisper writes it.
const MIXED: [&str; 8] = [
    "我哋聽日用 Zoom 開會，記得 send 個 agenda 俾我。",
    "我哋今日 send 個 email 俾你",
    "個 presentation 改咗做 3:30pm，喺 Room 1203 度。",
    "呢個 project 嘅 deadline 係下個禮拜五，我哋要 check 晒所有 document 同埋 update 個 schedule 先可以 submit。",
    "Sorry 呀，我 late 咗少少，train 有 delay。",
    "個 budget 大概係 $1,250,000，要 boss approve 先得。",
    "Good morning everyone, today we will review the quarterly budget.",
    "「OK」佢話，跟住就 WhatsApp 咗我。",
];

/// Segments with speech-like timing: about 250 ms a character, short pauses.
fn segments(texts: &[&str]) -> Vec<Segment> {
    let mut at = 500;
    texts
        .iter()
        .map(|text| {
            let end = at + (display_width(text) * 250.0) as u64;
            let segment = Segment::new(at, end, *text);
            at = end + 300;
            segment
        })
        .collect()
}

fn all_captions() -> Vec<Caption> {
    let texts: Vec<&str> = DEV.iter().chain(MIXED.iter()).copied().collect();
    layout(&segments(&texts), &LayoutOptions::default())
}

fn write_with(writer: &mut dyn CaptionWriter, captions: &[Caption]) {
    write_all(writer, captions).unwrap();
}

fn srt(captions: &[Caption]) -> String {
    let mut writer = SrtWriter::new(Vec::new());
    write_with(&mut writer, captions);
    String::from_utf8(writer.into_inner()).unwrap()
}

fn vtt(captions: &[Caption]) -> String {
    let mut writer = VttWriter::new(Vec::new());
    write_with(&mut writer, captions);
    String::from_utf8(writer.into_inner()).unwrap()
}

#[test]
fn dev_sentences_each_get_one_line() {
    let captions = layout(&segments(&DEV), &LayoutOptions::default());
    let texts: Vec<String> = captions.iter().map(Caption::text).collect();
    assert_eq!(texts, DEV);
    assert!(captions.iter().all(|c| c.lines.len() == 1));
}

#[test]
fn mixed_sentences_keep_their_words_and_spaces() {
    let captions = layout(&segments(&MIXED[..1]), &LayoutOptions::default());
    assert_eq!(captions.len(), 1);
    assert_eq!(captions[0].lines, ["我哋聽日用 Zoom 開會，", "記得 send 個 agenda 俾我。"]);
    for text in MIXED {
        let captions = layout(&segments(&[text]), &LayoutOptions::default());
        let joined: Vec<String> = captions.iter().map(Caption::text).collect();
        // Captions split the text; inside each, nothing is added or lost.
        assert!(text.starts_with(&joined[0]), "{joined:?}");
        assert_eq!(joined.concat().replace(' ', ""), text.replace(' ', ""));
        for word in text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
            assert!(
                captions.iter().any(|c| c.lines.iter().any(|l| l.contains(word))),
                "{word} split in {captions:?}"
            );
        }
    }
}

#[test]
fn srt_round_trips() {
    let captions = all_captions();
    assert!(captions.len() > 25);
    let text = srt(&captions);
    assert!(!text.starts_with('\u{FEFF}'));
    assert!(text.starts_with("1\n00:00:00,500 --> "), "{text}");
    assert_eq!(parse_srt(&text).unwrap(), captions);
}

#[test]
fn vtt_round_trips() {
    let captions = all_captions();
    let text = vtt(&captions);
    assert!(text.starts_with("WEBVTT\n\n1\n00:00:00.500 --> "), "{text}");
    assert_eq!(parse_vtt(&text).unwrap(), captions);
    // Escaping survives the trip too.
    let odd = [Caption {
        segment: None,
        index: 1,
        start_ms: 0,
        end_ms: 1000,
        lines: vec!["<b>A & B</b> --> C &amp;".into()],
        speaker: None,
    }];
    let text = vtt(&odd);
    assert!(!text.lines().skip(4).any(|l| l.contains("-->") || l.contains('<')), "{text}");
    assert_eq!(parse_vtt(&text).unwrap(), odd);
}

#[test]
fn jsonl_lines_have_exactly_the_fields() {
    let captions = all_captions();
    let mut writer = JsonlWriter::new(Vec::new());
    write_with(&mut writer, &captions);
    let text = String::from_utf8(writer.into_inner()).unwrap();
    assert!(!text.contains("\\u"), "non-ASCII must be written as UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), captions.len());
    for (line, caption) in lines.iter().zip(&captions) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let object = value.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["end_ms", "segment", "start_ms", "text", "type"]);
        assert_eq!(value["type"], "final");
        assert_eq!(value["segment"], caption.index);
        assert_eq!(value["text"], caption.text());
        assert_eq!(value["start_ms"], caption.start_ms);
        assert_eq!(value["end_ms"], caption.end_ms);
        // Field order on the wire.
        let at = |key: &str| line.find(&format!("\"{key}\":")).unwrap();
        assert!(at("type") < at("segment") && at("segment") < at("text"));
        assert!(at("text") < at("start_ms") && at("start_ms") < at("end_ms"));
        assert!(line.starts_with("{\"type\":\"final\",\"segment\":"));
    }
}

#[test]
fn txt_has_one_caption_per_line() {
    let captions = all_captions();
    let mut writer = TxtWriter::new(Vec::new());
    write_with(&mut writer, &captions);
    let text = String::from_utf8(writer.into_inner()).unwrap();
    let expected: Vec<String> = captions.iter().map(Caption::text).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

/// A `Write` whose bytes can be read while a writer owns it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn files_are_valid_after_every_caption() {
    let captions = all_captions();
    for format in CaptionFormat::ALL {
        let out = Shared::default();
        let mut writer = writer_for(format, out.clone());
        for n in 1..=captions.len() {
            writer.write_caption(&captions[n - 1]).unwrap();
            let text = out.text();
            match format {
                CaptionFormat::Srt => {
                    assert_eq!(parse_srt(&text).unwrap(), captions[..n], "{format} after {n}")
                }
                CaptionFormat::Vtt => {
                    assert_eq!(parse_vtt(&text).unwrap(), captions[..n], "{format} after {n}")
                }
                CaptionFormat::Jsonl => {
                    assert!(text.ends_with('\n'));
                    assert_eq!(text.lines().count(), n);
                    for line in text.lines() {
                        serde_json::from_str::<serde_json::Value>(line).unwrap();
                    }
                }
                CaptionFormat::Txt => assert_eq!(text.lines().count(), n),
            }
        }
        let before = out.text();
        writer.finish().unwrap();
        assert_eq!(out.text(), before, "{format}: finish adds nothing after captions");
    }
}

#[test]
fn an_empty_vtt_file_is_valid_once_finished() {
    let out = Shared::default();
    let mut writer = writer_for(CaptionFormat::Vtt, out.clone());
    writer.finish().unwrap();
    assert_eq!(parse_vtt(&out.text()).unwrap(), []);
    writer.finish().unwrap();
    assert_eq!(out.text(), "WEBVTT\n\n");
}

#[test]
fn writers_number_cues_across_layout_calls() {
    // Live captioning lays out each final on its own: indices restart at 1.
    let first = layout(&[Segment::new(0, 2000, "我哋今日去飲茶。")], &LayoutOptions::default());
    let second = layout(&[Segment::new(3000, 5000, "你食咗飯未呀？")], &LayoutOptions::default());
    let mut writer = SrtWriter::new(Vec::new());
    write_with(&mut writer, &first);
    write_with(&mut writer, &second);
    let parsed = parse_srt(&String::from_utf8(writer.into_inner()).unwrap()).unwrap();
    assert_eq!(parsed.iter().map(|c| c.index).collect::<Vec<_>>(), [1, 2]);
}

// ---------------------------------------------------------------------------
// Property test

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const HANZI: &[&str] = &[
    "我", "哋", "今", "日", "去", "飲", "茶", "佢", "係", "唔", "嘅", "咗", "喺", "冇", "𠝹", "啲",
    "㗎",
];
const WORDS: &[&str] = &[
    "send",
    "email",
    "Zoom",
    "agenda",
    "OK",
    "deadline",
    "presentation",
    "WhatsApp",
    "iPhone",
    "don't",
    "e-mail",
];
const NUMBERS: &[&str] = &["3.5", "1,000", "2024", "10:30", "$1,250,000", "50%"];
/// Longer than any line we test with (8 full-width units or more): they must stand alone.
const LONG: &[&str] = &[
    "Supercalifragilisticexpialidocious",
    "internationalisation-localisation",
    "https://example.com/a/b/c",
];
const PUNCT: &[&str] = &["，", "。", "！", "？", "、", "：", "；", "…", ", ", ". ", "! ", "? "];

/// A random Cantonese/English sentence.
fn sentence(rng: &mut Rng) -> String {
    let mut text = String::new();
    let pieces = rng.range(0, 40);
    for _ in 0..pieces {
        match rng.below(100) {
            0..=54 => text.push_str(rng.pick(HANZI)),
            55..=69 => {
                let spaced = rng.chance(70);
                if spaced {
                    text.push(' ');
                }
                text.push_str(rng.pick(WORDS));
                if spaced {
                    text.push(' ');
                }
            }
            70..=76 => text.push_str(rng.pick(NUMBERS)),
            77..=78 => {
                text.push(' ');
                text.push_str(rng.pick(LONG));
                text.push(' ');
            }
            79..=92 => text.push_str(rng.pick(PUNCT)),
            93..=95 => text.push_str(rng.pick(&["「", "（", "“"])),
            96..=97 => text.push_str(rng.pick(&["」", "）", "”"])),
            _ => text.push_str(rng.pick(&["  ", "\t", "\n", "\u{3000}"])),
        }
    }
    text
}

fn random_case(rng: &mut Rng) -> (Vec<Segment>, LayoutOptions) {
    let opts = LayoutOptions {
        max_lines: rng.range(1, 3) as usize,
        line_width: rng.range(16, 48) as f32 / 2.0,
        min_duration_ms: rng.range(0, 1500),
        max_duration_ms: rng.range(2000, 8000),
        max_gap_ms: rng.range(200, 3000),
    };
    let mut segments = Vec::new();
    let mut at = rng.range(0, 5000);
    for _ in 0..rng.range(0, 12) {
        let text = sentence(rng);
        let per_unit = rng.range(0, 600);
        let length = (display_width(&text) as f64 * per_unit as f64) as u64 + rng.range(0, 800);
        // Now and then a segment that overlaps the one before, as streaming ASR can emit.
        let start = if rng.chance(10) { at.saturating_sub(rng.range(0, 1000)) } else { at };
        segments.push(Segment::new(start, start + length, text));
        at = start + length + rng.range(0, 4000);
    }
    (segments, opts)
}

/// Maximal runs of ASCII letters and digits.
fn ascii_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect()
}

fn no_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_invariants(segments: &[Segment], opts: &LayoutOptions, captions: &[Caption]) {
    let context = || format!("{opts:?}\n{segments:#?}\n{captions:#?}");
    let input_words: HashSet<&str> = segments.iter().flat_map(|s| ascii_words(&s.text)).collect();
    for (i, c) in captions.iter().enumerate() {
        assert_eq!(c.index, i + 1, "{}", context());
        assert!(c.end_ms > c.start_ms, "{}", context());
        assert!(c.duration_ms() <= opts.max_duration_ms, "{}", context());
        match captions.get(i + 1) {
            Some(next) => {
                assert!(c.end_ms <= next.start_ms, "overlap at {}: {}", c.index, context());
                assert!(
                    c.duration_ms() >= opts.min_duration_ms || c.end_ms == next.start_ms,
                    "{}",
                    context()
                );
            }
            None => assert!(c.duration_ms() >= opts.min_duration_ms, "{}", context()),
        }
        assert!(!c.lines.is_empty() && c.lines.len() <= opts.max_lines, "{}", context());
        for line in &c.lines {
            assert!(!line.is_empty() && line.trim() == line, "{line:?}: {}", context());
            if display_width(line) > opts.line_width {
                // Only an unbreakable run of half-width text wider than a line may
                // overflow, and then alone (with any punctuation attached to it).
                let core = line.trim_matches(|c: char| !c.is_alphanumeric());
                assert!(
                    !core.is_empty()
                        && core
                            .chars()
                            .all(|c| !c.is_whitespace() && display_width(&c.to_string()) == 0.5),
                    "{line:?} is too wide: {}",
                    context()
                );
            }
            for word in ascii_words(line) {
                assert!(input_words.contains(word), "{word:?} was split: {}", context());
            }
        }
    }
    // Nothing lost, added or reordered (segments are taken in start order).
    let mut ordered: Vec<&Segment> = segments.iter().collect();
    ordered.sort_by_key(|s| s.start_ms);
    // No caption spans a long silence (times as layout sees them: overlaps moved).
    let mut spoken = Vec::new();
    for s in ordered.iter().filter(|s| !no_space(&s.text).is_empty()) {
        let start = s.start_ms.max(spoken.last().map_or(0, |&(_, end)| end));
        spoken.push((start, s.end_ms.max(start)));
    }
    for pair in spoken.windows(2) {
        let (silence_from, silence_to) = (pair[0].1, pair[1].0);
        if silence_to - silence_from > opts.max_gap_ms {
            assert!(
                !captions.iter().any(|c| c.start_ms < silence_from && c.end_ms > silence_to),
                "a caption spans the silence {silence_from}..{silence_to}: {}",
                context()
            );
        }
    }
    let input: String = ordered.iter().map(|s| no_space(&s.text)).collect();
    let output: String = captions.iter().map(|c| no_space(&c.text())).collect();
    assert_eq!(output, input, "{}", context());
}

#[test]
fn layout_invariants_hold_for_generated_segments() {
    let mut rng = Rng(0x0CA7_0CA9);
    let mut total = 0;
    for _ in 0..400 {
        let (segments, opts) = random_case(&mut rng);
        let captions = layout(&segments, &opts);
        check_invariants(&segments, &opts, &captions);
        assert_eq!(layout(&segments, &opts), captions, "layout is deterministic");
        assert_eq!(parse_srt(&srt(&captions)).unwrap(), captions);
        assert_eq!(parse_vtt(&vtt(&captions)).unwrap(), captions);
        total += captions.len();
    }
    assert!(total > 1000, "the generator should make plenty of captions, made {total}");
}

#[test]
fn a_long_monologue_lays_out_quickly() {
    // An hour of continuous speech in one segment list must not be quadratic.
    let mut rng = Rng(7);
    let texts: Vec<String> = (0..1200).map(|_| sentence(&mut rng)).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let segments = segments(&texts);
    let started = std::time::Instant::now();
    let captions = layout(&segments, &LayoutOptions::default());
    check_invariants(&segments, &LayoutOptions::default(), &captions);
    assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());
}
