//! Fuzzing the redactor: `cargo fuzz run --fuzz-dir tests/fuzz redact` (from the
//! repository root), or `tests/fuzz/run.sh SECONDS`.
//!
//! The input is split into parts at `\u{1}` bytes. The first is arbitrary text,
//! which must come out stable, valid and with as many labels as counted, and must
//! not crash the caption redactor when cut between two finals. The second builds a
//! valid item (HKID, phone or card number, in a digit form the bytes choose), put
//! after the third (any text without digits) between neutral punctuation: it must
//! always be caught, and no digit of it may survive, whole or split between two
//! finals at any character.

#![no_main]

use cantocap::asr::CaptionEvent;
use cantocap::text::{
    CaptionRedactor, Labels, RedactOptions, RedactionCounts, RedactionKind, Redactor, Replacement,
};
use libfuzzer_sys::fuzz_target;

/// Labels no ordinary input holds, so they can be counted in the output.
fn labels() -> Labels {
    Labels {
        hkid: "\u{E000}h\u{E001}".into(),
        phone: "\u{E000}p\u{E001}".into(),
        email: "\u{E000}e\u{E001}".into(),
        card: "\u{E000}c\u{E001}".into(),
        account: "\u{E000}a\u{E001}".into(),
    }
}

fn is_digit_like(c: char) -> bool {
    c.is_ascii_digit()
        || ('０'..='９').contains(&c)
        || "零〇○一二三四五六七八九兩两幺弌壹貳贰貮弍叁參参叄弎肆伍陸陆柒捌玖".contains(c)
}

const CHINESE: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
const FINANCIAL: [char; 10] = ['零', '壹', '貳', '叁', '肆', '伍', '陸', '柒', '捌', '玖'];

/// Digit `d` in the form `form` picks.
fn digit(d: u8, form: u8) -> char {
    match form % 4 {
        0 => char::from(b'0' + d),
        1 => char::from_u32('０' as u32 + u32::from(d)).unwrap(),
        2 => CHINESE[usize::from(d)],
        _ => FINANCIAL[usize::from(d)],
    }
}

fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn hkid_check(letter: u8, digits: &[u8]) -> char {
    let values =
        [36, u32::from(letter - b'A') + 10].into_iter().chain(digits.iter().map(|&d| u32::from(d)));
    let sum: u32 = values.zip((2..=9).rev()).map(|(v, w)| v * w).sum();
    match (11 - sum % 11) % 11 {
        10 => 'A',
        c => char::from(b'0' + c as u8),
    }
}

/// A valid item made from `bytes`: its kind and text.
fn item(bytes: &[u8]) -> Option<(RedactionKind, String)> {
    let (&choice, rest) = bytes.split_first()?;
    let digits: Vec<u8> = rest.iter().map(|b| b % 10).collect();
    let form = rest.first().copied().unwrap_or(0) / 10;
    let write = |d: &[u8]| d.iter().map(|&x| digit(x, form)).collect::<String>();
    match choice % 3 {
        0 if digits.len() >= 6 => {
            let letter = b'A' + choice / 3 % 26;
            let check = hkid_check(letter, &digits[..6]);
            let check = check.to_digit(10).map_or('A', |d| digit(d as u8, form));
            Some((
                RedactionKind::Hkid,
                format!("{}{}({check})", letter as char, write(&digits[..6])),
            ))
        }
        1 if digits.len() >= 8 => {
            let mut d = digits[..8].to_vec();
            d[0] = 2 + d[0] % 8;
            if d[..2] == [2, 0] {
                d[1] = 1; // 20xx could be a date
            }
            let text = if choice & 0x40 != 0 {
                format!("{} {}", write(&d[..4]), write(&d[4..]))
            } else {
                write(&d)
            };
            Some((RedactionKind::Phone, text))
        }
        2 if digits.len() >= 15 => {
            let mut d = digits[..15].to_vec();
            d[0] = 3 + d[0] % 4;
            d.push(luhn_check_digit(&d));
            let groups: Vec<String> = d.chunks(4).map(write).collect();
            Some((RedactionKind::Card, groups.join(" ")))
        }
        _ => None,
    }
}

fn count_labels(text: &str, labels: &Labels) -> RedactionCounts {
    let n = |l: &str| text.matches(l).count() as u64;
    RedactionCounts {
        hkid: n(&labels.hkid),
        phone: n(&labels.phone),
        email: n(&labels.email),
        card: n(&labels.card),
        account: n(&labels.account),
    }
}

fn final_(segment: u64, text: String) -> CaptionEvent {
    CaptionEvent::Final { segment, text, start_ms: 0, end_ms: 0, emitted_ms: 0, lag_ms: 0 }
}

/// `parts` as finals through one caption redactor, then its finish: the texts
/// emitted, one line each (as captions are shown), and the redactor.
fn stream(parts: &[&str]) -> (String, CaptionRedactor) {
    let mut redactor = CaptionRedactor::new(Redactor::default());
    let mut shown = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        shown.push(redactor.redact(final_(i as u64 + 1, part.to_string())).text().to_owned());
    }
    if let Some(last) = redactor.finish() {
        shown.push(last.text().to_owned());
    }
    (shown.join("\n"), redactor)
}

fuzz_target!(|data: &[u8]| {
    let labels = labels();
    let redactor = Redactor::new(RedactOptions { labels: labels.clone(), ..Default::default() });
    let masking = Redactor::new(RedactOptions {
        replacement: Replacement::MaskKeepLast(4),
        ..Default::default()
    });
    let mut parts = data.split(|&b| b == 1);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();

    // Arbitrary text: no panic, valid UTF-8, stable, labels as counted.
    let once = redactor.redact(&text);
    assert!(std::str::from_utf8(once.text.as_bytes()).is_ok());
    let twice = redactor.redact(&once.text);
    assert_eq!(twice.text, once.text, "not stable on {text:?}");
    assert!(twice.counts.is_empty(), "counted again on {text:?}");
    assert_eq!(
        count_labels(&once.text, &labels) - count_labels(&text, &labels),
        once.counts,
        "labels and counts differ on {text:?} -> {:?}",
        once.text
    );
    let masked = masking.redact(&text).text;
    assert_eq!(masking.redact(&masked).text, masked, "masks not stable on {text:?}");

    // The same text cut in two finals: no panic; what is shown is redacted text.
    // Speech recognition cuts between words, never inside an English word, so the
    // cut moves past ASCII letters (a word such as `acct` cut in two, with more
    // text in between, is a known limit: see CaptionRedactor).
    let mut cut = text.char_indices().map(|(i, _)| i).nth(data.len() % 11).unwrap_or(text.len());
    while cut < text.len() && text.as_bytes()[cut].is_ascii_alphabetic() {
        cut += 1;
    }
    // Cut or not, no more digits are shown than redacting the whole text leaves.
    let (shown, _) = stream(&[&text[..cut], &text[cut..]]);
    let whole = Redactor::default().redact(&text).text;
    let digits = |t: &str| t.chars().filter(|&c| is_digit_like(c)).count();
    assert!(digits(&shown) <= digits(&whole), "{text:?} cut at {cut}: {shown:?}, whole {whole:?}");

    // A valid item between neutral punctuation: always caught, whole or split.
    let Some((kind, item)) = parts.next().and_then(item) else { return };
    let prefix: String = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .chars()
        .filter(|&c| !is_digit_like(c))
        .collect();
    let whole = format!("{prefix}，{item}。");
    let redacted = redactor.redact(&whole);
    assert!(redacted.counts.get(kind) >= 1, "{kind} missed in {whole:?} -> {:?}", redacted.text);
    assert!(
        !redacted.text.chars().any(is_digit_like),
        "digits left: {whole:?} -> {:?}",
        redacted.text
    );

    let chars: Vec<char> = whole.chars().collect();
    let at = prefix.chars().count() + 1 + data.len() % (item.chars().count() + 1);
    let (a, b): (String, String) = (chars[..at].iter().collect(), chars[at..].iter().collect());
    let (shown, split) = stream(&[&a, &b]);
    assert!(split.counts().get(kind) >= 1, "{kind} missed in {a:?} + {b:?} -> {shown:?}");
    assert!(!shown.chars().any(is_digit_like), "digits left: {a:?} + {b:?} -> {shown:?}");
});
