//! Redaction of personal data: every form of every kind, a list of ordinary text that
//! must survive, masks, counts, idempotency, randomised properties and the
//! `cantocap redact` command.

use std::io::Write;
use std::process::{Command, Stdio};

use cantocap::asr::CaptionEvent;
use cantocap::text::{
    CaptionRedactor, Labels, RedactOptions, RedactionCounts, RedactionKind, RedactionTypes,
    Redactor, Replacement,
};

fn redact(text: &str) -> String {
    Redactor::default().redact(text).text
}

/// `input` becomes `want`, and redacting `want` again changes nothing.
#[track_caller]
fn check(input: &str, want: &str) {
    let out = redact(input);
    assert_eq!(out, want, "input {input:?}");
    assert_eq!(redact(&out), out, "not idempotent on {input:?}");
}

/// Each `item` in a sentence is replaced with `label`, alone and in context.
#[track_caller]
fn check_items(items: &[&str], label: &str) {
    for item in items {
        check(item, label);
        check(&format!("我嘅係{item}，唔該。"), &format!("我嘅係{label}，唔該。"));
        check(&format!("喂 {item} 呀"), &format!("喂 {label} 呀"));
    }
}

/// The HKID check character, written independently of the library.
fn hkid_check(prefix: &str, digits: &str) -> char {
    let value = |c: char| c as u32 - 'A' as u32 + 10;
    let mut values: Vec<u32> = prefix.chars().map(value).collect();
    if values.len() == 1 {
        values.insert(0, 36);
    }
    values.extend(digits.chars().map(|c| c.to_digit(10).unwrap()));
    let sum: u32 = values.iter().zip([9, 8, 7, 6, 5, 4, 3, 2]).map(|(v, w)| v * w).sum();
    match (11 - sum % 11) % 11 {
        10 => 'A',
        n => char::from_digit(n, 10).unwrap(),
    }
}

/// The check digit that makes `digits` Luhn-valid.
fn luhn_digit(digits: &[u8]) -> u8 {
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

const CHINESE: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
const FINANCIAL: [char; 10] = ['零', '壹', '貳', '叁', '肆', '伍', '陸', '柒', '捌', '玖'];

fn chinese(ascii: &str) -> String {
    ascii.chars().map(|c| c.to_digit(10).map_or(c, |d| CHINESE[d as usize])).collect()
}

fn full_width(ascii: &str) -> String {
    ascii
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            _ => c,
        })
        .collect()
}

// ----- HKID ------------------------------------------------------------------------

#[test]
fn hkid_examples_from_the_issue_are_valid() {
    assert_eq!(hkid_check("A", "123456"), '3');
    assert_eq!(hkid_check("AB", "123456"), '9');
    assert_eq!(hkid_check("G", "123456"), 'A');
    check_items(
        &[
            "A123456(3)",
            "AB123456(9)",
            "G123456(A)",
            "A1234563",
            "AB1234569",
            "G123456A",
            "A123456 (3)",
            "A 123456 (3)",
            "A123456（3）",
            "A123 456(3)",
            "a123456(3)",
            "Ａ１２３４５６（３）",
            &full_width("AB123456(9)"),
            "A一二三四五六(三)",
            "A一二三四五六（三）",
            "AB一二三 四五六(九)",
            "A壹貳叁肆伍陸(叁)",
            "A１2三4五６(3)",
            "G一二三四五六(A)",
        ],
        "[身份證號碼]",
    );
}

#[test]
fn hkid_computed_check_digits() {
    let mut rng = Rng(7);
    for _ in 0..500 {
        let (prefix, digits, check) = rng.hkid();
        for form in [
            format!("{prefix}{digits}({check})"),
            format!("{prefix}{digits}{check}"),
            format!("{prefix}{}（{}）", chinese(&digits), chinese(&check.to_string())),
        ] {
            check_items(&[&form], "[身份證號碼]");
        }
    }
}

#[test]
fn hkid_with_a_wrong_check_character_is_left_alone() {
    for (prefix, digits) in [("A", "123456"), ("AB", "123456"), ("G", "123456"), ("Z", "987654")] {
        let right = hkid_check(prefix, digits);
        for wrong in "0123456789A".chars().filter(|&c| c != right) {
            for form in [
                format!("{prefix}{digits}({wrong})"),
                format!("{prefix}{}({})", chinese(digits), chinese(&wrong.to_string())),
            ] {
                check(&form, &form);
                check(&format!("編號係{form}。"), &format!("編號係{form}。"));
            }
        }
    }
}

#[test]
fn hkid_look_alikes_are_left_alone() {
    for text in [
        "A123456",          // no check character
        "ABC123456(9)",     // three letters: a longer code
        "XAB123456(9)",     // the same
        "A12345639",        // eight digits
        "A123456(3",        // unclosed bracket
        "9A123456(3)",      // a digit before the letters
        "A123456(33)",      // two check characters
        "ModelAB123456(9)", // part of a word
        "G123456AB",        // the letter check runs on into a word
    ] {
        check(text, text);
    }
}

// ----- phone -----------------------------------------------------------------------

#[test]
fn phone_numbers_in_every_form() {
    check_items(
        &[
            "91234567",
            "9123 4567",
            "9123-4567",
            "9123 - 4567",
            "+852 2123 4567",
            "+852 9123-4567",
            "+85291234567",
            "+ 852 9123 4567",
            "852 9123 4567",
            "85291234567",
            "(852) 9123 4567",
            "(+852) 9123 4567",
            "（852）9123 4567",
            "＋８５２ ９１２３ ４５６７",
            "９１２３４５６７",
            "九一二三四五六七",
            "九一二三 四五六七",
            "九 一 二 三 四 五 六 七",
            "九一二三-四五六七",
            "玖壹貳叁肆伍陸柒",
            "九1二3 4五6七",
            "9一23 四5六7",
            "八五二 九一二三 四五六七",
            "二一二三四五六七",
            "三一二三四五六七",
            "四一二三四五六七",
            "五一二三四五六七",
            "六一二三四五六七",
            "七一二三四五六七",
            "八一二三四五六七",
            "兩三四五六七八九",
            "两三四五六七八九",
            "六幺二三四五六七",
            "九〇一二 三四五六",
            "九零一二 三四五六",
            "贰叁肆伍陆柒捌玖",
            "九一二三 四 五 六 七",
            "9 1 2 3 4567",
        ],
        "[電話號碼]",
    );
}

#[test]
fn several_phone_numbers() {
    check("2123 4567 / 9123 4567", "[電話號碼] / [電話號碼]");
    check("21234567/91234567", "[電話號碼]/[電話號碼]");
    check("21234567, 91234567", "[電話號碼], [電話號碼]");
    check("打 9123 4567 2345 6789 都得", "打 [電話號碼] [電話號碼] 都得");
    check("九一二三四五六七，二三四五六七八九", "[電話號碼]，[電話號碼]");
    // A phone number followed by a count.
    check("打 9123 4567 3個人去", "打 [電話號碼] 3個人去");
    check("Tel: 2123 4567. Fax: 2123 4568.", "Tel: [電話號碼]. Fax: [電話號碼].");
}

/// Regression: Whisper groups a phone number read out as it likes (`912-3456-7`).
#[test]
fn phone_numbers_in_any_grouping() {
    check_items(
        &[
            "912-3456-7",
            "912 3456 7",
            "91-234-567",
            "91 234 567",
            "912 34567",
            "9 1234567",
            "9123 45 67",
            "91 23 4567",
            "9123456-7",
            "9 1 2 3 4 5 6 7",
            "+852 912-3456-7",
            "852 912-3456-7",
            "852-912-3456-7",
            "(852) 91-234-567",
            "+852 2024 1129",
            "九一二-三四五六-七",
            "九一 二三四 五六七",
            "９１２－３４５６－７",
            "玖壹貳 叁肆伍陸 柒",
            "2024 5678",
            "3012-1999",
        ],
        "[電話號碼]",
    );
    check("電話 912-3456-7 同 2123-4567", "電話 [電話號碼] 同 [電話號碼]");
    check("打 912-3456-7 3個人去", "打 [電話號碼] 3個人去");
}

/// Dates, ranges and lists that are eight digits starting 2–9, in the groupings a
/// phone number may have.
#[test]
fn eight_digit_dates_ranges_and_lists_are_not_phones() {
    for text in [
        "2024-11-29",
        "2024 11 29",
        "2024-29-11",
        "29-11-2024",
        "11-29-2024",
        "29 11 2024",
        "2024 1129",
        "2024-1129",
        "2024-2025",
        "2023-2024",
        "2023 - 2024",
        "1997-2047",
        "二〇二四 十一 二九",
        "二〇二三至二〇二四",
        "25 33 41 45",
        "3 5 12 25 33",
        "91 23 45 67",
        "912 - 3456 - 7",
        "978-0-306-40615-7",
    ] {
        check(text, text);
        let sentence = format!("佢話 {text}，係咁。");
        check(&sentence, &sentence);
    }
}

/// Regression: a word of two capitals before spaced digits read as an HKID prefix.
#[test]
fn spaced_digits_after_a_word_are_a_phone_number() {
    check("OK 8 6 2 7 5 3 1 3", "OK [電話號碼]");
    check("OK ８ ６ ２ ７ ５ ３ １ ３，", "OK [電話號碼]，");
    // Seven digits written together after the letters are still an HKID number.
    check("A1234563 9123 4567", "[身份證號碼] [電話號碼]");
}

/// Regression: numbers read out one after the other with only spaces between them.
#[test]
fn numbers_in_a_row() {
    check("4111 1111 1111 1111   5555 5555 5555 4444", "[信用卡號碼]   [信用卡號碼]");
    check("4111 1111 1111 1111 9123 4567", "[信用卡號碼] [電話號碼]");
    check("9123 4567 4111 1111 1111 1111", "[電話號碼] [信用卡號碼]");
}

#[test]
fn numbers_that_are_not_hong_kong_phones() {
    for text in [
        "12345678",          // starts with 1
        "一二三四五六七八",  // the same in Chinese numerals
        "0123 4567",         // starts with 0
        "9123456",           // 7 digits
        "912345678",         // 9 digits
        "9123 45678",        // 9 digits in groups
        "+86 138 1234 5678", // Mainland
        "+1 415 555 0100",   // elsewhere
        "+852 1234 5678",    // not a Hong Kong number
        "X91234567",         // a code
        "91234567X",         // a code
        "$91234567",         // a price
        "91234567蚊",        // a price
        "91234567%",         // a percentage
        "第91234567位",      // an ordinal
        "0.91234567",        // a decimal
        "3.14159265",        // a decimal
        "20240315",          // a date
        "2024-03-15",        // a date
        "15-03-2024",        // a date
        "****4567",          // a mask
        "91 23 45 67",       // a list of two-digit numbers
    ] {
        check(text, text);
    }
}

// ----- email -----------------------------------------------------------------------

#[test]
fn email_addresses() {
    check_items(
        &[
            "chan.taiman@example.com.hk",
            "tai-man_chan+news@mail.example.org",
            "a@b.io",
            "ABC123@EXAMPLE.COM",
            "peter.wong99@gmail.com",
            "ｃｈａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "chan＠example.com",
            &full_width("chan.taiman@example.com.hk"),
        ],
        "[電郵地址]",
    );
    check("電郵係chan@abc.com，多謝", "電郵係[電郵地址]，多謝");
    check("send to peter@example.com.", "send to [電郵地址].");
    check("(chan@example.com)", "([電郵地址])");
    // A phone number as the local part is part of the address.
    check("91234567@example.com", "[電郵地址]");
}

#[test]
fn not_email_addresses() {
    for text in ["@someone", "a@b", "user@localhost", "chan@", "@example.com", "a@b.c", "x@1.23"] {
        check(text, text);
    }
}

/// Regression: addresses spoken as words (`chan at gmail dot com`) were shown.
#[test]
fn spoken_email_addresses() {
    // A well-known provider or a country domain: no cue word needed.
    for item in [
        "chantaiman at gmail dot com",
        "peter dot wong at abc dot com dot hk",
        "chan underscore tm at yahoo dot com dot hk",
        "chan dash tm at hotmail dot com",
        "chan at netvigator dot com",
        "mary at abc dot hk",
        "Chan At Gmail Dot Com",
        "ｃｈａｎ ａｔ ｇｍａｉｌ ｄｏｔ ｃｏｍ",
    ] {
        check(item, "[電郵地址]");
        check(&format!("喂 {item} 呀"), "喂 [電郵地址] 呀");
        check(&format!("send to {item}."), "send to [電郵地址].");
    }
    // After a cue word: any domain, and the words between the cue and ` at `.
    check("my email is chan tai man at example dot com", "my email is [電郵地址]");
    check("email: chan at example dot org, thanks", "email: [電郵地址], thanks");
    check("my e-mail address is peter dot wong at abc dot net", "my e-mail address is [電郵地址]");
    check("我嘅電郵係 chan at gmail dot com", "我嘅電郵係 [電郵地址]");
    check("我嘅電郵係 chan tai man at example dot com 呀", "我嘅電郵係 [電郵地址] 呀");
    check("電郵 peter dot wong at abc dot com dot hk 呀", "電郵 [電郵地址] 呀");
    check("郵箱係chan at abc dot io", "郵箱係[電郵地址]");
    check("電子郵件地址: tm at company dot co", "電子郵件地址: [電郵地址]");
    // Without a cue, only the word before ` at ` is taken.
    check("ask chan tai man at gmail dot com", "ask chan tai [電郵地址]");
    // Part written, part spoken.
    check("chan.tm at gmail dot com", "[電郵地址]");
    check("chan at gmail.com", "[電郵地址]");
    // Two in one text, counted once each, and beside a written one.
    let out = Redactor::default()
        .redact("電郵 chan at abc dot com 或者 peter at gmail dot com 或者 a@b.io");
    assert_eq!(out.text, "電郵 [電郵地址] 或者 [電郵地址] 或者 [電郵地址]");
    assert_eq!(out.counts, RedactionCounts { email: 3, ..Default::default() });
    // English labels, masks, and emails turned off.
    let english = Redactor::new(RedactOptions { labels: Labels::english(), ..Default::default() });
    let out = english.redact("my email is chan tai man at example dot com");
    assert_eq!(out.text, "my email is [EMAIL]");
    assert_eq!(english.redact(&out.text).text, out.text);
    let masking = Redactor::new(RedactOptions {
        replacement: Replacement::MaskKeepLast(4),
        ..Default::default()
    });
    assert_eq!(masking.redact("電郵 chan at gmail dot com").text, "電郵 [電郵地址]");
    let phones =
        Redactor::new(RedactOptions { types: "phone".parse().unwrap(), ..Default::default() });
    assert_eq!(phones.redact("電郵 chan at gmail dot com").text, "電郵 chan at gmail dot com");
}

#[test]
fn ordinary_english_with_at_and_dot_survives() {
    for text in [
        "look at this dot com boom",
        "meet at the hotel",
        "we arrived at noon",
        "at home dot",
        "point at it",
        "dot com era",
        "look at gmail dot com",
        "I was at abc dot com for years",
        "see you at 3 p.m.",
        "at",
        "chan at",
        "the dot com bubble at its peak",
        "we laughed at him dot dot dot",
        "他在 abc dot com 工作",
        "meet at example dot com tomorrow",
    ] {
        check(text, text);
    }
    // A cue word too far before is no cue.
    check(
        "email me later, I will be looking at this dot com page",
        "email me later, I will be looking at this dot com page",
    );
}

// ----- card ------------------------------------------------------------------------

#[test]
fn payment_card_numbers() {
    check_items(
        &[
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "5555 5555 5555 4444",
            "3782 822463 10005",
            "4222222222222",
            "6011 1111 1111 1117",
            "3530111333300000",
            "6200 0000 0000 0005 009", // 19 digits
            "四一一一 一一一一 一一一一 一一一一",
            "４１１１ １１１１ １１１１ １１１１",
            "肆壹壹壹壹壹壹壹壹壹壹壹壹壹壹壹",
            "4111 一一一一 1111 一一一一",
        ],
        "[信用卡號碼]",
    );
    assert_eq!(luhn_digit(&[6, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0]), 9);
}

#[test]
fn long_numbers_that_fail_the_luhn_check_are_left_alone() {
    for text in [
        "4111 1111 1111 1112",
        "1234567890123",
        "12345678901234567890", // 20 digits
        "4111111111111111.5",   // a decimal
    ] {
        check(text, text);
    }
}

// ----- account ---------------------------------------------------------------------

#[test]
fn bank_account_numbers_near_an_account_word() {
    let label = "[銀行戶口號碼]";
    for (input, want) in [
        ("我個戶口號碼係 004-123-456789-001", format!("我個戶口號碼係 {label}")),
        ("戶口：012 345 678901", format!("戶口：{label}")),
        ("轉帳去賬戶 123456789 啦", format!("轉帳去賬戶 {label} 啦")),
        ("帳戶號碼 024-123456-789", format!("帳戶號碼 {label}")),
        ("户口 004 123456789 0", format!("户口 {label}")),
        ("账户 004123456789", format!("账户 {label}")),
        ("account no. 012-345-678901, thanks", format!("account no. {label}, thanks")),
        ("Account number: 250 123456789", format!("Account number: {label}")),
        ("A/C 004-123-456789-838", format!("A/C {label}")),
        ("入數去 012-345-678901 呢個戶口", format!("入數去 {label} 呢個戶口")),
        ("戶口號碼係零零四一二三四五六七八九零", format!("戶口號碼係{label}")),
        ("戶口號碼係 零零四 一二三 四五六七八九", format!("戶口號碼係 {label}")),
        ("戶口 ００４－１２３－４５６７８９", format!("戶口 {label}")),
    ] {
        check(input, &want);
    }
}

#[test]
fn long_numbers_without_an_account_word_are_left_alone() {
    for text in [
        "編號 004-123-456789-002",
        "訂單號碼 123456789",
        "Zoom 會議 ID 123 456 789",
        // The account word is too far away.
        "我個戶口呢，今日去咗銀行搞咗成個鐘頭都未搞掂，然後佢話 004-123-456789-002",
    ] {
        check(text, text);
    }
}

#[test]
fn phone_numbers_near_an_account_word_are_phones() {
    check("戶口登記電話 9123 4567", "戶口登記電話 [電話號碼]");
    check("戶口登記電話 +852 9123 4567", "戶口登記電話 [電話號碼]");
}

// ----- ordinary text ---------------------------------------------------------------

use crate::common::DEV_SENTENCES;

/// Text with numbers and numeral characters that is not personal data.
const ORDINARY: &[&str] = &[
    "2024年3月15日",
    "二〇二四年三月十五日",
    "二零二四年三月十五號",
    "15/3/2024",
    "2024/03/15",
    "2024-03-15 10:30",
    "2024.03.15",
    "$1,250",
    "$12,345,678",
    "HK$99.5",
    "HK$ 1,234,567.89",
    "三百蚊",
    "一千二百三十四萬五千六百七十八蚊",
    "三十個人",
    "五六個人",
    "兩三日",
    "下晝三點半",
    "十二點三個字",
    "10:30",
    "10:30:45.123",
    "2024",
    "1997年",
    "50%",
    "百分之九十九",
    "3",
    "12",
    "999",
    "1234567",
    "123456789",
    "一二三四五六七八九十",
    "1 2 3 4 5 6 7",
    "一齊",
    "一定",
    "一啲",
    "兩個人",
    "九龍",
    "九龍灣",
    "三文治",
    "一五一十",
    "三三兩兩",
    "七七八八",
    "一二三四五六七八",
    "第一二三四五六七八",
    "四五",
    "iPhone 15 Pro",
    "Windows 11",
    "COVID-19",
    "A123456",
    "MTR",
    "Room 1203",
    "A4紙",
    "3.14159265",
    "v1.2.3",
    "ISBN 978-0-306-40615-7",
    "Tel:",
    "六合彩 3 12 25 33 41 45",
    "六合彩號碼 25 33 41 45 48 49",
    "2024-11-29",
    "29-11-2024",
    "2024 11 29",
    "2024-2025",
    "2023-2024 年度",
    "12:30",
    "$1,234.50",
    "1.2.3",
    "12:30 至 14:30",
    "2024-11-29 12:30",
    "3 5 12 25 33 41",
    "[電話號碼]",
    "****4567",
    "mailto:",
    "chan at example dot com",
];

#[test]
fn ordinary_text_survives() {
    for text in DEV_SENTENCES.iter().chain(ORDINARY) {
        check(text, text);
        let sentence = format!("我哋{text}，然後{text}。");
        check(&sentence, &sentence);
    }
}

#[test]
fn a_sentence_with_everything() {
    let input = "陳大文，身份證 A123456(3)，電話九一二三 四五六七，電郵 chan@example.com，\
                 信用卡 4111 1111 1111 1111，戶口 004-123-456789-001。\
                 佢 2024年3月15日 下晝三點半同三十個人一齊食咗 $1,250 嘅三文治。";
    let out = Redactor::default().redact(input);
    assert_eq!(
        out.text,
        "陳大文，身份證 [身份證號碼]，電話[電話號碼]，電郵 [電郵地址]，\
         信用卡 [信用卡號碼]，戶口 [銀行戶口號碼]。\
         佢 2024年3月15日 下晝三點半同三十個人一齊食咗 $1,250 嘅三文治。"
    );
    assert_eq!(out.counts, RedactionCounts { hkid: 1, phone: 1, email: 1, card: 1, account: 1 });
}

#[test]
fn caption_files_keep_their_timings() {
    let srt = "1\n00:00:01,000 --> 00:00:04,500\n我電話係 9123 4567\n\n\
               2\n00:00:04,500 --> 00:00:07,250\n2024年3月15日下晝三點半\n\n\
               10\n01:02:03,004 --> 01:02:05,678\n三十個人一齊食三文治\n";
    check(srt, &srt.replace("9123 4567", "[電話號碼]"));
    let vtt = "WEBVTT\n\n00:01.000 --> 00:04.500\nA123456(3)\n";
    check(vtt, &vtt.replace("A123456(3)", "[身份證號碼]"));
}

// ----- options ---------------------------------------------------------------------

const EVERY_KIND: &str =
    "A123456(3) 9123 4567 chan@example.com 4111 1111 1111 1111 戶口 004-123-456789-001";

#[test]
fn only_the_chosen_kinds_are_redacted() {
    let with = |types: &str| {
        Redactor::new(RedactOptions { types: types.parse().unwrap(), ..Default::default() })
            .redact(EVERY_KIND)
    };
    assert_eq!(with("none").text, EVERY_KIND);
    assert!(with("none").counts.is_empty());
    assert_eq!(
        with("phone").text,
        "A123456(3) [電話號碼] chan@example.com 4111 1111 1111 1111 戶口 004-123-456789-001"
    );
    assert_eq!(
        with("hkid,email").text,
        "[身份證號碼] 9123 4567 [電郵地址] 4111 1111 1111 1111 戶口 004-123-456789-001"
    );
    assert_eq!(
        with("card, account").text,
        "A123456(3) 9123 4567 chan@example.com [信用卡號碼] 戶口 [銀行戶口號碼]"
    );
    assert_eq!(with("all").counts.total(), 5);
    // With HKID off, its digits are not taken for something else.
    assert_eq!(with("phone,card,account").counts.total(), 3);
}

#[test]
fn kinds_and_types_parse() {
    for kind in RedactionKind::ALL {
        assert_eq!(kind.name().parse::<RedactionKind>(), Ok(kind));
        assert_eq!(kind.to_string().to_uppercase().parse::<RedactionKind>(), Ok(kind));
    }
    assert_eq!("tel".parse::<RedactionKind>(), Ok(RedactionKind::Phone));
    let err = "passport".parse::<RedactionKind>().unwrap_err().to_string();
    assert!(err.contains("passport") && err.contains("hkid, phone"), "{err}");
    assert!("phone,passport".parse::<RedactionTypes>().is_err());
    assert_eq!("all".parse::<RedactionTypes>(), Ok(RedactionTypes::ALL));
    assert_eq!(RedactionTypes::default(), RedactionTypes::ALL);
    let some: RedactionTypes = "phone, email".parse().unwrap();
    assert_eq!(some.iter().collect::<Vec<_>>(), [RedactionKind::Phone, RedactionKind::Email]);
    assert_eq!(some.to_string(), "phone,email");
    assert_eq!(RedactionTypes::NONE.to_string().parse(), Ok(RedactionTypes::NONE));
    assert_eq!(RedactionTypes::ALL.to_string().parse(), Ok(RedactionTypes::ALL));
}

#[test]
fn english_and_custom_labels() {
    let english = Redactor::new(RedactOptions { labels: Labels::english(), ..Default::default() });
    assert_eq!(english.redact(EVERY_KIND).text, "[HKID] [PHONE] [EMAIL] [CARD] 戶口 [ACCOUNT]");
    let custom = Redactor::new(RedactOptions {
        labels: Labels { phone: "☎".into(), ..Labels::chinese() },
        ..Default::default()
    });
    assert_eq!(custom.redact("call 9123 4567 now").text, "call ☎ now");
}

#[test]
fn masks_keep_the_last_digits() {
    let mask = |keep: usize, text: &str| {
        Redactor::new(RedactOptions {
            replacement: Replacement::MaskKeepLast(keep),
            ..Default::default()
        })
        .redact(text)
        .text
    };
    assert_eq!(mask(4, "9123 4567"), "****4567");
    assert_eq!(mask(4, "電話九一二三 四五六七。"), "電話****4567。");
    assert_eq!(mask(4, "+852 9123-4567"), "*******4567");
    assert_eq!(mask(4, "A123456(3)"), "****4563");
    assert_eq!(mask(2, "G123456(A)"), "******6A");
    assert_eq!(mask(4, "4111-1111-1111-1111"), "************1111");
    assert_eq!(mask(4, "戶口 004-123-456789-001"), "戶口 ***********9001");
    assert_eq!(mask(0, "9123 4567"), "********");
    // Never more than half of the digits.
    assert_eq!(mask(100, "9123 4567"), "****4567");
    assert_eq!(mask(100, "A123456(3)"), "****4563");
    // Email addresses have no digits to keep: they get their label.
    assert_eq!(mask(4, "chan@example.com"), "[電郵地址]");
    // Masks are not redacted again.
    for text in [EVERY_KIND, "9123 4567 2345 6789", "A123456(3) 2345 6789"] {
        let once = mask(4, text);
        assert_eq!(mask(4, &once), once);
        assert_eq!(redact(&once), once);
    }
}

#[test]
fn counts_add_up_and_hold_no_values() {
    let redactor = Redactor::default();
    let lines = [
        "電話 9123 4567 同 2345 6789",
        "A123456(3)，chan@example.com",
        "冇嘢",
        "4111 1111 1111 1111，戶口 004-123-456789-001",
    ];
    let total: RedactionCounts = lines.iter().map(|l| redactor.redact(l).counts).sum();
    assert_eq!(total, RedactionCounts { hkid: 1, phone: 2, email: 1, card: 1, account: 1 });
    assert_eq!(total.total(), 6);
    assert_eq!(total.get(RedactionKind::Phone), 2);
    let mut running = RedactionCounts::default();
    for l in lines {
        running += redactor.redact(l).counts;
    }
    assert_eq!(running, total);
    assert_eq!(total.to_string(), "hkid 1, phone 2, email 1, card 1, account 1");
    let json = serde_json::to_string(&total).unwrap();
    assert_eq!(json, r#"{"hkid":1,"phone":2,"email":1,"card":1,"account":1}"#);
    let back: RedactionCounts = serde_json::from_str(&json).unwrap();
    assert_eq!(back, total);
    // Neither the counts nor the redacted result's debug form hold a value.
    let out = redactor.redact(lines[0]);
    let debug = format!("{out:?} {:?}", out.counts);
    for value in ["9123", "4567", "2345", "6789"] {
        assert!(!debug.contains(value), "{debug}");
    }
}

#[test]
fn options_round_trip_through_json() {
    let options = RedactOptions {
        types: "hkid,phone".parse().unwrap(),
        replacement: Replacement::MaskKeepLast(4),
        labels: Labels::english(),
    };
    let json = serde_json::to_string(&options).unwrap();
    assert_eq!(serde_json::from_str::<RedactOptions>(&json).unwrap(), options);
    // Missing fields take their defaults.
    let partial: RedactOptions = serde_json::from_str(
        r#"{"types": {"email": false}, "replacement": {"mask_keep_last": 2}}"#,
    )
    .unwrap();
    assert!(!partial.types.email && partial.types.phone);
    assert_eq!(partial.replacement, Replacement::MaskKeepLast(2));
    assert_eq!(partial.labels, Labels::chinese());
}

#[test]
fn redactors_are_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Redactor>();
}

// ----- randomised properties ---------------------------------------------------------

/// A small deterministic generator (SplitMix64): reproducible failures, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.below(10) as u8).collect()
    }

    /// A valid HKID: prefix, six digits, check character.
    fn hkid(&mut self) -> (String, String, char) {
        let letters = 1 + self.below(2);
        let prefix: String = (0..letters).map(|_| (b'A' + self.below(26) as u8) as char).collect();
        let digits: String = self.digits(6).iter().map(|d| (b'0' + d) as char).collect();
        let check = hkid_check(&prefix, &digits);
        (prefix, digits, check)
    }

    /// One digit in a random script.
    fn write_digit(&mut self, d: u8, script: usize, out: &mut String) {
        let script = if script == 4 { self.below(4) } else { script };
        out.push(match script {
            0 => (b'0' + d) as char,
            1 => char::from_u32('０' as u32 + u32::from(d)).unwrap(),
            2 => match (d, self.below(3)) {
                (2, 0) => '兩',
                (0, 0) => '〇',
                (1, 0) => '幺',
                _ => CHINESE[d as usize],
            },
            _ => FINANCIAL[d as usize],
        });
    }

    /// `digits` in one script (or mixed), grouped as `groups` with a random separator.
    fn write_number(&mut self, digits: &[u8], groups: &[usize]) -> String {
        let script = self.below(5);
        let sep = self.pick(&[" ", "-", " - ", "\u{3000}"]);
        let mut out = String::new();
        let mut i = 0;
        for (g, &size) in groups.iter().enumerate() {
            if g > 0 {
                out.push_str(sep);
            }
            for &d in &digits[i..i + size] {
                self.write_digit(d, script, &mut out);
            }
            i += size;
        }
        out
    }

    /// A valid item of some kind, written in a random form: its kind, its text and
    /// its digits (and HKID letters) in ASCII.
    fn item(&mut self) -> (RedactionKind, String, String) {
        match self.below(4) {
            0 => {
                let (prefix, digits, check) = self.hkid();
                let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
                let body = self.write_number(&values, &[6]);
                let symbols = format!("{prefix}{digits}{check}");
                let check = match check {
                    'A' => "A".to_owned(),
                    c => self.write_number(&[c.to_digit(10).unwrap() as u8], &[1]),
                };
                let text = match self.below(3) {
                    0 => format!("{prefix}{body}({check})"),
                    1 => format!("{prefix}{body}（{check}）"),
                    _ => format!("{prefix} {body} ({check})"),
                };
                (RedactionKind::Hkid, text, symbols)
            }
            1 => {
                let mut digits = vec![2 + self.below(8) as u8];
                digits.extend(self.digits(7));
                if digits.starts_with(&[2, 0]) {
                    digits[1] = 1;
                }
                let groups: &[usize] = self.pick(&[&[8][..], &[4, 4], &[1; 8], &[4, 1, 1, 1, 1]]);
                let number = self.write_number(&digits, groups);
                let (text, code) = match self.below(4) {
                    0 => (format!("+852 {number}"), "852"),
                    1 => (format!("(852) {number}"), "852"),
                    _ => (number, ""),
                };
                (RedactionKind::Phone, text, format!("{code}{}", ascii(&digits)))
            }
            2 => {
                let mut digits = vec![self.pick(&[3, 4, 5, 6])];
                digits.extend(self.digits(14));
                digits.push(luhn_digit(&digits));
                let groups: &[usize] = self.pick(&[&[16][..], &[4, 4, 4, 4], &[1; 16]]);
                (RedactionKind::Card, self.write_number(&digits, groups), ascii(&digits))
            }
            _ => {
                let letters = "abcdefghijklmnopqrstuvwxyz0123456789";
                let mut word = |n: usize| -> String {
                    (0..n).map(|_| letters.as_bytes()[self.below(letters.len())] as char).collect()
                };
                let (local, name, domain) = (word(5), word(3), word(6));
                let spoken = self.below(2) == 0;
                let text = if spoken {
                    // As a recogniser writes a spoken address.
                    format!("{local} dot {name} at {domain} dot com dot hk")
                } else {
                    format!("{local}.{name}@{domain}.com.hk")
                };
                let text = text.replace(|c: char| c.is_ascii_digit(), "x");
                (RedactionKind::Email, text, String::new())
            }
        }
    }
}

fn ascii(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}

fn one(kind: RedactionKind) -> RedactionCounts {
    let mut counts = RedactionCounts::default();
    match kind {
        RedactionKind::Hkid => counts.hkid = 1,
        RedactionKind::Phone => counts.phone = 1,
        RedactionKind::Email => counts.email = 1,
        RedactionKind::Card => counts.card = 1,
        RedactionKind::Account => counts.account = 1,
    }
    counts
}

/// Words without numeral characters, and not starting with a unit such as `個`
/// (none is only spaces: numbers separated only by spaces are one long number).
const FILLER: &[&str] = &[
    "我哋",
    "今日",
    "去飲茶",
    "你食咗飯未呀",
    "呢間餐廳嘅",
    "好好食",
    "聽日會唔會落雨",
    "喺公司開緊會",
    "麻煩你講慢啲",
    "地鐵站喺邊度",
    "佢哋下個禮拜去旅行",
    "要老闆簽名",
    "多謝你幫手",
    "電話係",
    "打俾我",
    "身份證係",
    "記低",
    "喂",
    "好",
    "唔該",
    "張卡",
    "電郵",
    "，",
    "。",
    "？",
    "「",
    "」",
    "：",
    "Hello",
    "OK",
    "send 個 file",
];

fn is_digit_like(c: char) -> bool {
    c.is_ascii_digit()
        || ('０'..='９').contains(&c)
        || "零〇○一二三四五六七八九兩两幺弌壹貳贰貮弍叁參参叄弎肆伍陸陆柒捌玖".contains(c)
}

fn filler(rng: &mut Rng, out: &mut String) {
    for _ in 0..1 + rng.below(3) {
        out.push_str(rng.pick(FILLER));
    }
}

#[test]
fn embedded_items_are_always_removed() {
    let mut rng = Rng(2024);
    let redactor = Redactor::default();
    for round in 0..2000 {
        let mut text = String::new();
        let mut expected = RedactionCounts::default();
        let mut items = Vec::new();
        for _ in 0..1 + rng.below(4) {
            filler(&mut rng, &mut text);
            // Items never touch a Latin word.
            text.push_str(rng.pick(&["，", "：", " ", "係"]));
            let (kind, item, symbols) = rng.item();
            text.push_str(&item);
            text.push_str(rng.pick(&["，", "。", " ", "呀"]));
            expected += one(kind);
            items.push((item, symbols));
        }
        filler(&mut rng, &mut text);
        let out = redactor.redact(&text);
        assert_eq!(out.counts, expected, "round {round}: {text:?} -> {:?}", out.text);
        for (item, _) in &items {
            assert!(!out.text.contains(item.as_str()), "round {round}: {item:?} in {:?}", out.text);
        }
        // The filler has no digits, so no digit of any item may be left.
        assert!(!out.text.chars().any(is_digit_like), "round {round}: {text:?} -> {:?}", out.text);
        assert!(!out.text.contains('@'));
        assert_eq!(redactor.redact(&out.text).text, out.text, "round {round}");

        // Masked, only the last four digits (at most half) of each item are left.
        let masked = Redactor::new(RedactOptions {
            replacement: Replacement::MaskKeepLast(4),
            ..Default::default()
        })
        .redact(&text);
        let left: String = masked.text.chars().filter(|c| c.is_ascii_digit()).collect();
        let want: String = items
            .iter()
            .flat_map(|(_, symbols)| {
                let keep = 4.min(symbols.len() / 2);
                symbols[symbols.len() - keep..].chars().filter(char::is_ascii_digit)
            })
            .collect();
        assert_eq!(left, want, "round {round}: {text:?} -> {:?}", masked.text);
    }
}

#[test]
fn ordinary_text_is_unchanged() {
    let mut rng = Rng(15);
    let redactor = Redactor::default();
    let connectors = ["同埋", "，", "。", "然後", "我哋", " 同 ", "佢話", "？"];
    for round in 0..2000 {
        let mut text = String::new();
        for _ in 0..1 + rng.below(8) {
            text.push_str(rng.pick(&connectors));
            let piece =
                if rng.below(2) == 0 { rng.pick(ORDINARY) } else { rng.pick(&DEV_SENTENCES) };
            text.push_str(piece);
        }
        let out = redactor.redact(&text);
        assert_eq!(out.text, text, "round {round}");
        assert!(out.counts.is_empty());
    }
}

/// Characters that exercise the scanner: digits of every script, separators,
/// brackets, letters, signs, units, account words' characters, combining marks, emoji.
const SOUP: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "９",
    "二",
    "九",
    "兩",
    "幺",
    "〇",
    "玖",
    " ",
    "-",
    "　",
    "(",
    ")",
    "（",
    "）",
    "+",
    "＋",
    "@",
    "＠",
    ".",
    ":",
    ",",
    "/",
    "*",
    "A",
    "G",
    "Z",
    "a",
    "x",
    "ｇ",
    "$",
    "年",
    "個",
    "第",
    "戶口",
    "account",
    "\u{301}",
    "\u{200d}",
    "🙂",
    "👩‍👩‍👧",
    "é",
    "\n",
    "\t",
    "\0",
    "852",
    "+852 ",
    "com",
    "A123456",
    "(3)",
    "9123",
    "4567",
];

#[test]
fn arbitrary_text_never_panics_and_is_idempotent() {
    let mut rng = Rng(99);
    let redactor = Redactor::default();
    let masking = Redactor::new(RedactOptions {
        replacement: Replacement::MaskKeepLast(4),
        ..Default::default()
    });
    for round in 0..20_000 {
        let mut text = String::new();
        for _ in 0..rng.below(40) {
            text.push_str(rng.pick(SOUP));
        }
        for r in [&redactor, &masking] {
            let once = r.redact(&text).text;
            let twice = r.redact(&once);
            assert_eq!(twice.text, once, "round {round}: {text:?}");
            assert!(twice.counts.is_empty(), "round {round}: {text:?}");
        }
    }
    // Random code points, including unassigned ones, surrogates excepted.
    for _ in 0..2000 {
        let text: String = (0..rng.below(64))
            .filter_map(|_| char::from_u32((rng.next() % 0x11_0000) as u32))
            .collect();
        let once = redactor.redact(&text).text;
        assert_eq!(redactor.redact(&once).text, once);
    }
}

#[test]
fn very_long_inputs() {
    let redactor = Redactor::default();
    let digits = "9".repeat(200_000);
    assert_eq!(redactor.redact(&digits).text, digits);
    let spaced = "9 ".repeat(100_000);
    let out = redactor.redact(&spaced);
    assert!(out.counts.phone > 0);
    assert!(!out.text.contains("9 9 9 9 9 9 9 9"));
    let mixed = "電話 9123 4567，A123456(3)。".repeat(10_000);
    let out = redactor.redact(&mixed);
    assert_eq!(out.counts.phone, 10_000);
    assert_eq!(out.counts.hkid, 10_000);
    let marks = "\u{301}".repeat(100_000) + "9123 4567";
    assert_eq!(redactor.redact(&marks).counts.phone, 1);
}

// ----- caption streams ---------------------------------------------------------------

fn final_event(segment: usize, text: &str) -> CaptionEvent {
    let segment = segment as u64;
    CaptionEvent::Final {
        segment,
        text: text.into(),
        start_ms: segment * 1000,
        end_ms: segment * 1000 + 900,
        emitted_ms: segment * 1000 + 1000,
        lag_ms: 0,
    }
}

fn partial_event(text: &str) -> CaptionEvent {
    CaptionEvent::Partial {
        segment: 1,
        revision: 1,
        text: text.into(),
        start_ms: 0,
        end_ms: 0,
        emitted_ms: 0,
        lag_ms: 0,
    }
}

/// The texts emitted for `finals` by one caption redactor, its finish included, and
/// its counts.
fn stream(finals: &[&str]) -> (Vec<String>, RedactionCounts) {
    let mut redactor = CaptionRedactor::new(Redactor::default());
    let mut out: Vec<String> = finals
        .iter()
        .enumerate()
        .map(|(i, text)| redactor.redact(final_event(i + 1, text)).text().to_owned())
        .collect();
    out.extend(redactor.finish().map(|e| e.text().to_owned()));
    (out, redactor.counts())
}

/// Regression: `912-3456-7` cut between two finals at its hyphens.
#[test]
fn a_phone_number_in_any_grouping_split_between_finals() {
    for pieces in [
        ["電話係 912-", "3456-7，唔該"],
        ["電話係 912-3456", "-7，唔該"],
        ["電話係 912", "-3456-7，唔該"],
        ["電話係 912-3456-", "7，唔該"],
        ["電話係 91-234", "-567，唔該"],
        ["電話係 +852 912-", "3456-7，唔該"],
        ["電話係 九一二-三四五六", "-七，唔該"],
    ] {
        let (out, counts) = stream(&pieces);
        assert_eq!(out, ["電話係", "[電話號碼]，唔該"], "{pieces:?}");
        assert_eq!(counts.phone, 1, "{pieces:?}");
    }
}

/// Regression: an address cut between two finals was shown in two pieces.
#[test]
fn an_email_address_split_between_finals() {
    for (pieces, want) in [
        (["我嘅電郵係 chan@", "example.com，多謝"], ["我嘅電郵係", "[電郵地址]，多謝"]),
        (["我嘅電郵係 chan@example", ".com.hk，多謝"], ["我嘅電郵係", "[電郵地址]，多謝"]),
        (["我嘅電郵係 chan@example.", "com，多謝"], ["我嘅電郵係", "[電郵地址]，多謝"]),
        (["send it to chan.taiman", "@example.com thanks"], ["send it to", "[電郵地址] thanks"]),
        (["send it to peter_wong", "@example.com thanks"], ["send it to", "[電郵地址] thanks"]),
        (["send it to peter.wong", "99@example.com thanks"], ["send it to", "[電郵地址] thanks"]),
        (["send it to peter99", "@example.com thanks"], ["send it to", "[電郵地址] thanks"]),
        (["我嘅電郵係 chan", "@example.com"], ["我嘅電郵係", "[電郵地址]"]),
        (["我嘅電郵係 chan。", "@example.com"], ["我嘅電郵係", "[電郵地址]"]),
        (["電郵係ｃｈａｎ＠", "ｅｘａｍｐｌｅ．ｃｏｍ"], ["電郵係", "[電郵地址]"]),
    ] {
        let (out, counts) = stream(&pieces);
        assert_eq!(out, want, "{pieces:?}");
        assert_eq!(counts.email, 1, "{pieces:?}");
    }
    // A plain word is not held (most are no address): the rest is still an address.
    let (out, counts) = stream(&["please write to chan", "@example.com today"]);
    assert_eq!(out, ["please write to chan", "[電郵地址] today"]);
    assert_eq!(counts.email, 1);
    // A complete address is not held: what may follow is no personal data.
    let (out, _) = stream(&["我嘅電郵係 chan@example.com", "好"]);
    assert_eq!(out, ["我嘅電郵係 [電郵地址]", "好"]);
}

/// Regression: a spoken address cut between two finals was shown in pieces.
#[test]
fn a_spoken_email_address_split_between_finals() {
    let whole = "我嘅電郵係 chan tai man at abc dot com dot hk 呀";
    let words: Vec<&str> = whole.split(' ').collect();
    // Cut after every word from `chan` on.
    for cut in 1..words.len() - 1 {
        let pieces = [words[..=cut].join(" "), words[cut + 1..].join(" ")];
        let (out, counts) = stream(&[&pieces[0], &pieces[1]]);
        assert_eq!(out.concat().replace(' ', ""), "我嘅電郵係[電郵地址]呀", "{pieces:?}");
        assert_eq!(counts.email, 1, "{pieces:?}");
    }
    for (pieces, want) in [
        (["my email is chan at", "gmail dot com，多謝"], ["my email is", "[電郵地址]，多謝"]),
        (["my email is chan at gmail", "dot com，多謝"], ["my email is", "[電郵地址]，多謝"]),
        (["my email is chan at gmail dot", "com，多謝"], ["my email is", "[電郵地址]，多謝"]),
        (["電郵 peter dot wong at abc dot com dot", "hk 呀"], ["電郵", "[電郵地址] 呀"]),
        (["電郵 peter dot", "wong at abc dot com dot hk 呀"], ["電郵", "[電郵地址] 呀"]),
        (["我嘅電郵係", "chan at gmail dot com，多謝"], ["我嘅電郵係", "[電郵地址]，多謝"]),
        (["send it to chan at gmail", "dot com thanks"], ["send it to", "[電郵地址] thanks"]),
    ] {
        let (out, counts) = stream(&pieces);
        assert_eq!(out, want, "{pieces:?}");
        assert_eq!(counts.email, 1, "{pieces:?}");
    }
    // Complete with a country, it is not held.
    let mut redactor = CaptionRedactor::new(Redactor::default());
    let out = redactor.redact(final_event(1, "我嘅電郵係 chan at gmail dot com dot hk"));
    assert_eq!(out.text(), "我嘅電郵係 [電郵地址]");
    assert!(!redactor.is_holding());
}

/// Each text, as a final, comes out unchanged and at once.
fn assert_not_held(texts: &[&str]) {
    for &text in texts {
        let mut redactor = CaptionRedactor::new(Redactor::default());
        assert_eq!(redactor.redact(final_event(1, text)).text(), text);
        assert!(!redactor.is_holding(), "{text:?}");
    }
}

#[test]
fn ordinary_endings_with_at_are_not_held() {
    assert_not_held(&[
        "meet at",
        "we arrived at",
        "look at this dot",
        "point at it",
        "dot com era",
    ]);
}

#[test]
fn partials_never_show_a_spoken_address_after_at() {
    let mut redactor = CaptionRedactor::new(Redactor::default());
    for (partial, want) in [
        ("我嘅電郵係 chan at", "我嘅電郵係 **** **"),
        ("我嘅電郵係 chan tai man at gm", "我嘅電郵係 **** *** *** ** **"),
        ("我嘅電郵係 chan at gmail dot", "我嘅電郵係 **** ** ***** ***"),
        ("我嘅電郵係 chan at gmail dot com", "我嘅電郵係 [電郵地址]"),
        ("meet at", "meet at"),
    ] {
        assert_eq!(redactor.redact(partial_event(partial)).text(), want);
    }
    // After a held start.
    redactor.redact(final_event(1, "my email is chan at"));
    assert_eq!(redactor.redact(partial_event("gmail dot")).text().trim(), "**** ** ***** ***");
    assert_eq!(redactor.redact(partial_event("gmail dot com")).text().trim(), "[電郵地址]");
}

#[test]
fn ordinary_words_ending_a_final_are_not_held() {
    assert_not_held(&[
        "send 個 file",
        "Hello",
        "okay",
        "see you at 3 p.m.",
        "etc.",
        "e.g.",
        "follow-up",
    ]);
}

#[test]
fn partials_never_show_half_an_address() {
    let mut redactor = CaptionRedactor::new(Redactor::default());
    for (partial, want) in [
        ("我嘅電郵係 chan@exa", "我嘅電郵係 ****@***"),
        ("我嘅電郵係 chan.taiman", "我嘅電郵係 ****.******"),
        ("我嘅電郵係 chan", "我嘅電郵係 ****"),
        ("我嘅電郵係 chan@example.com", "我嘅電郵係 [電郵地址]"),
        ("send 個 file", "send 個 file"),
    ] {
        assert_eq!(redactor.redact(partial_event(partial)).text(), want);
    }
    // After a held start, the partial shows the address redacted or masked.
    redactor.redact(final_event(1, "我嘅電郵係chan@"));
    assert_eq!(redactor.redact(partial_event("exam")).text(), "****@****");
    assert_eq!(redactor.redact(partial_event("example.com")).text(), "[電郵地址]");
}

/// Regression: an account word in the final after the number came too late.
#[test]
fn an_account_word_in_the_next_final_still_counts() {
    for (pieces, want) in [
        (["我嘅號碼係 012-345678901", "係我嘅戶口"], ["我嘅號碼係", "[銀行戶口號碼]係我嘅戶口"]),
        (
            ["我嘅號碼係 012-345678901，", "係我嘅戶口"],
            ["我嘅號碼係", "[銀行戶口號碼]，係我嘅戶口"],
        ),
        (["入數去 012-345678901 呀", "係我嘅戶口"], ["入數去", "[銀行戶口號碼] 呀係我嘅戶口"]),
        (
            ["Pay into 012-345678901", "which is my bank account"],
            ["Pay into", "[銀行戶口號碼] which is my bank account"],
        ),
    ] {
        let (out, counts) = stream(&pieces);
        assert_eq!(out, want, "{pieces:?}");
        assert_eq!(counts.account, 1, "{pieces:?}");
    }
}

#[test]
fn ordinary_numbers_before_an_account_word_are_kept() {
    for pieces in [
        ["價錢係 $123456789，", "係我嘅戶口"],
        ["2024年3月15日", "開咗個戶口"],
        ["一共 123456789個，", "係我嘅戶口"],
        ["三點半，", "開戶口"],
    ] {
        let (out, counts) = stream(&pieces);
        assert_eq!(out, pieces, "{pieces:?}");
        assert!(counts.is_empty(), "{pieces:?}");
    }
    // A long number with no account word after it comes back as it was.
    let (out, counts) = stream(&["訂單號碼 123456789，", "聽日到"]);
    assert_eq!(out, ["訂單號碼", "123456789，聽日到"]);
    assert!(counts.is_empty());
    // Far enough from the end of its final, it is not held.
    let (out, _) = stream(&["訂單號碼 123456789，今日落單聽日就會送到", "好"]);
    assert_eq!(out, ["訂單號碼 123456789，今日落單聽日就會送到", "好"]);
}

// ----- the command -----------------------------------------------------------------

fn cantocap_redact(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .arg("redact")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cantocap runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn command_redacts_stdin_line_by_line() {
    let input = "電話 9123 4567\nA123456(3)，chan@example.com\r\n冇嘢\n4111 1111 1111 1111";
    let (ok, out, err) = cantocap_redact(&[], input);
    assert!(ok, "{err}");
    assert_eq!(out, "電話 [電話號碼]\n[身份證號碼]，[電郵地址]\r\n冇嘢\n[信用卡號碼]");
    assert_eq!(err, "");
}

#[test]
fn command_options() {
    let (ok, out, err) =
        cantocap_redact(&["--types", "phone,email", "--english-labels", "--counts"], EVERY_KIND);
    assert!(ok, "{err}");
    assert_eq!(out, "A123456(3) [PHONE] [EMAIL] 4111 1111 1111 1111 戶口 004-123-456789-001");
    assert_eq!(err, "phone\t1\nemail\t1\n");

    let (ok, out, err) = cantocap_redact(&["--mask-keep", "4", "--counts"], "9123 4567\n");
    assert!(ok, "{err}");
    assert_eq!(out, "****4567\n");
    assert_eq!(err, "hkid\t0\nphone\t1\nemail\t0\ncard\t0\naccount\t0\n");
}

#[test]
fn command_rejects_bad_options_and_input() {
    let (ok, _, err) = cantocap_redact(&["--types", "passport"], "");
    assert!(!ok);
    assert!(err.contains("passport"), "{err}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ok\n\xff\xfe\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(out.stdout, b"ok\n", "lines before the bad one are written");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
}

#[test]
fn command_help_has_examples() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cantocap")).args(["redact", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for want in
        ["--types", "--mask-keep", "--english-labels", "--counts", "Examples:", "cantocap redact"]
    {
        assert!(help.contains(want), "{want} missing from:\n{help}");
    }
}

// ----- proptest properties -----------------------------------------------------------

mod properties {
    use cantocap::asr::CaptionEvent;
    use cantocap::text::{CaptionRedactor, RedactionCounts, RedactionKind, Redactor};
    use proptest::prelude::*;

    use super::{hkid_check, is_digit_like, luhn_digit, CHINESE, FINANCIAL};

    /// `digits` written in one of the forms Whisper uses.
    fn write(digits: &[u8], form: usize) -> String {
        digits
            .iter()
            .map(|&d| match form {
                0 => char::from(b'0' + d),
                1 => char::from_u32('０' as u32 + u32::from(d)).unwrap(),
                2 => CHINESE[usize::from(d)],
                _ => FINANCIAL[usize::from(d)],
            })
            .collect()
    }

    /// Text without digits of any kind: Chinese, Latin words, punctuation.
    fn words() -> impl Strategy<Value = String> {
        "[\u{4E00}-\u{9FFF}a-zA-Z，。！？ ]{0,16}"
            .prop_map(|s| s.chars().filter(|&c| !is_digit_like(c)).collect())
    }

    /// A valid item: kind and text.
    fn item() -> impl Strategy<Value = (RedactionKind, String)> {
        let phone = (2u8..10, prop::collection::vec(0u8..10, 7), 0usize..4, any::<bool>())
            .prop_map(|(first, rest, form, spaced)| {
                let mut d = vec![first];
                d.extend(rest);
                if d[..2] == [2, 0] {
                    d[1] = 1; // 20xx could be a date
                }
                let text = if spaced {
                    format!("{} {}", write(&d[..4], form), write(&d[4..], form))
                } else {
                    write(&d, form)
                };
                (RedactionKind::Phone, text)
            });
        let hkid = (0u8..26, prop::collection::vec(0u8..10, 6), 0usize..4).prop_map(
            |(letter, d, form)| {
                let prefix = char::from(b'A' + letter).to_string();
                let ascii: String = d.iter().map(|&x| char::from(b'0' + x)).collect();
                let check = match hkid_check(&prefix, &ascii) {
                    'A' => "A".to_owned(),
                    c => write(&[c.to_digit(10).unwrap() as u8], form),
                };
                (RedactionKind::Hkid, format!("{prefix}{}({check})", write(&d, form)))
            },
        );
        let card = (3u8..7, prop::collection::vec(0u8..10, 14), 0usize..4).prop_map(
            |(first, rest, form)| {
                let mut d = vec![first];
                d.extend(rest);
                d.push(luhn_digit(&d));
                let groups: Vec<String> = d.chunks(4).map(|g| write(g, form)).collect();
                (RedactionKind::Card, groups.join(" "))
            },
        );
        prop_oneof![phone, hkid, card]
    }

    /// Dates, prices, times, percentages and counts: numbers that are no item.
    fn kept_number() -> impl Strategy<Value = String> {
        prop_oneof![
            (1900u32..2100, 1u32..13, 1u32..32).prop_map(|(y, m, d)| format!("{y}年{m}月{d}日")),
            (1900u32..2100, 1u32..13, 1u32..32, prop_oneof![Just('-'), Just(' ')])
                .prop_map(|(y, m, d, s)| format!("{y}{s}{m:02}{s}{d:02}")),
            (1900u32..2100, 1u32..13, 1u32..32, prop_oneof![Just('-'), Just(' ')])
                .prop_map(|(y, m, d, s)| format!("{d:02}{s}{m:02}{s}{y}")),
            (1900u32..2099, 1u32..100).prop_map(|(y, n)| format!("{y}-{}", (y + n).min(2099))),
            (0u64..100_000_000, 0u32..100).prop_map(|(n, c)| format!("HK${n}.{c:02}")),
            (0u64..100_000_000).prop_map(|n| format!("${n}")),
            (0u32..24, 0u32..60).prop_map(|(h, m)| format!("{h}:{m:02}")),
            (0u32..101).prop_map(|n| format!("{n}%")),
            (0u64..100_000_000).prop_map(|n| format!("{n}個人")),
            (1u64..100_000_000).prop_map(|n| format!("第{n}")),
            (0u32..24, 0u32..60, 0usize..4).prop_map(|(h, m, f)| format!(
                "{}點{}分",
                write(&[(h % 10) as u8], f),
                m
            )),
        ]
    }

    fn final_(segment: u64, text: String) -> CaptionEvent {
        CaptionEvent::Final { segment, text, start_ms: 0, end_ms: 0, emitted_ms: 0, lag_ms: 0 }
    }

    /// A phone number grouped as Whisper may write it: whole, digit by digit, or
    /// any grouping with a group of three or more digits, one space or hyphen between
    /// groups, in one digit form, sometimes after a country code.
    fn grouped_phone() -> impl Strategy<Value = String> {
        let digits = (2u8..10, prop::collection::vec(0u8..10, 7));
        let cuts = prop::collection::vec(any::<bool>(), 7);
        let seps = prop::collection::vec(prop_oneof![Just(' '), Just('-')], 7);
        let code = prop_oneof![Just(""), Just("+852 "), Just("852 "), Just("(852) "), Just("852-")];
        (digits, cuts, seps, 0usize..4, code).prop_map(|((first, rest), cuts, seps, form, code)| {
            let mut d = vec![first];
            d.extend(rest);
            // No year (19xx, 20xx) to make a date or a range of years.
            if d[..2] == [2, 0] {
                d[1] = 1;
            }
            if matches!(d[4..6], [1, 9] | [2, 0]) {
                d[4] = 3;
            }
            let mut groups = vec![1];
            for &cut in &cuts {
                if cut {
                    groups.push(1);
                } else {
                    *groups.last_mut().unwrap() += 1;
                }
            }
            // Groups of one and two digits, not all of one, are a list of numbers.
            while groups.iter().all(|&g| g <= 2) && groups.contains(&2) {
                let merged = groups.remove(0);
                groups[0] += merged;
            }
            let mut text = code.to_owned();
            let mut at = 0;
            for (i, &size) in groups.iter().enumerate() {
                if i > 0 {
                    text.push(seps[i - 1]);
                }
                text += &write(&d[at..at + size], form);
                at += size;
            }
            text
        })
    }

    /// An email address whose part before the `@` looks like one (`chan.tm`,
    /// `peter_wong`, `peter99`): the text, that part and the domain's first label.
    fn address() -> impl Strategy<Value = (String, String, String)> {
        let local = prop_oneof![
            ("[a-z]{2,6}", prop_oneof![Just('.'), Just('_')], "[a-z]{1,6}")
                .prop_map(|(a, sep, b)| format!("{a}{sep}{b}")),
            ("[a-z]{2,6}", "[0-9]{1,3}").prop_map(|(a, n)| format!("{a}{n}")),
        ];
        let tld = prop_oneof![Just("com"), Just("com.hk"), Just("org"), Just("io")];
        (local, "[a-z]{3,8}", tld)
            .prop_map(|(local, domain, tld)| (format!("{local}@{domain}.{tld}"), local, domain))
    }

    /// `text` cut at `at` (a character) into two finals: what is shown, and the counts.
    fn cut_in_two(text: &str, at: usize) -> (String, RedactionCounts) {
        let chars: Vec<char> = text.chars().collect();
        let mut stream = CaptionRedactor::new(Redactor::default());
        let mut shown = String::new();
        for (i, part) in [&chars[..at], &chars[at..]].into_iter().enumerate() {
            shown += stream.redact(final_(i as u64 + 1, part.iter().collect())).text();
        }
        shown += stream.finish().as_ref().map_or("", |e| e.text());
        (shown, stream.counts())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn items_between_random_words_are_always_caught(
            before in words(), (kind, item) in item(), after in words(),
        ) {
            let text = format!("{before}，{item}。{after}");
            let out = Redactor::default().redact(&text);
            prop_assert_eq!(out.counts.get(kind), 1, "{:?} -> {:?}", text, out.text);
            prop_assert!(!out.text.chars().any(is_digit_like), "{:?} -> {:?}", text, out.text);
        }

        #[test]
        fn items_split_between_two_finals_are_always_caught(
            before in words(), (kind, item) in item(), after in words(), cut in 0usize..64,
        ) {
            let text = format!("{before}，{item}。{after}");
            let chars: Vec<char> = text.chars().collect();
            let at = cut % (chars.len() + 1);
            let mut stream = CaptionRedactor::new(Redactor::default());
            let mut shown = String::new();
            for (i, part) in [&chars[..at], &chars[at..]].into_iter().enumerate() {
                shown += stream.redact(final_(i as u64 + 1, part.iter().collect())).text();
            }
            shown += stream.finish().as_ref().map_or("", |e| e.text());
            prop_assert_eq!(stream.counts().get(kind), 1, "{:?} cut at {} -> {:?}", text, at, shown);
            prop_assert!(!shown.chars().any(is_digit_like), "{:?} cut at {} -> {:?}", text, at, shown);
        }

        #[test]
        fn phones_in_any_grouping_split_anywhere_are_caught(
            before in words(), phone in grouped_phone(), after in words(),
        ) {
            let text = format!("{before}，{phone}。{after}");
            let whole = Redactor::default().redact(&text);
            prop_assert_eq!(whole.counts.phone, 1, "{:?} -> {:?}", text, whole.text);
            for at in 0..=text.chars().count() {
                let (shown, counts) = cut_in_two(&text, at);
                prop_assert_eq!(counts.phone, 1, "{:?} cut at {} -> {:?}", text, at, shown);
                prop_assert!(
                    !shown.chars().any(is_digit_like),
                    "{:?} cut at {} -> {:?}", text, at, shown
                );
            }
        }

        #[test]
        fn addresses_split_anywhere_are_caught(
            before in words(), (address, local, domain) in address(), after in words(),
        ) {
            let text = format!("{before}，{address}。{after}");
            let words = format!("{before} {after}");
            for at in 0..=text.chars().count() {
                let (shown, counts) = cut_in_two(&text, at);
                let context = format!("{:?} cut at {} -> {:?}", text, at, shown);
                prop_assert_eq!(counts.email, 1, "{}", context);
                prop_assert!(!shown.contains('@'), "{}", context);
                // Neither the part before the `@` whole nor the domain is shown (a
                // plain first part cut off before a `.` may be: `chan` | `.tm@…`).
                prop_assert!(shown.matches(&local).count() <= words.matches(&local).count(), "{}", context);
                prop_assert!(shown.matches(&domain).count() <= words.matches(&domain).count(), "{}", context);
            }
        }

        #[test]
        fn dates_prices_times_and_counts_are_always_kept(
            pieces in prop::collection::vec((words(), kept_number()), 1..5), end in words(),
        ) {
            let mut text = String::new();
            for (words, number) in &pieces {
                text.push_str(words);
                text.push('，');
                text.push_str(number);
            }
            text.push_str(&end);
            let out = Redactor::default().redact(&text);
            prop_assert_eq!(&out.text, &text);
            prop_assert!(out.counts.is_empty());
        }
    }
}
