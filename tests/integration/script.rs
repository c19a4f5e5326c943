//! Script conversion: OpenCC's own reference cases through every stock configuration,
//! and sentence-level checks of cantocap's Hong Kong, Taiwan and Simplified output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cantocap::text::{OpenccConfig, OpenccConverter, Script, ScriptConverter};
use serde_json::Value;

/// Cases per configuration in OpenCC 1.4.2's testcases.json; all of them pass.
///
/// (OpenCC's command-line tool fails three `t2s` cases, because by default it skips
/// the dictionaries that may output characters fonts lack; the library, which
/// cantocap uses, loads them, so the stock `t2s` passes all 55.)
const EXPECTED_CASES: &[(&str, usize)] = &[
    ("hk2s", 21),
    ("hk2sp", 9),
    ("hk2t", 17),
    ("jp2t", 4),
    ("s2hk", 51),
    ("s2hkp", 9),
    ("s2t", 105),
    ("s2tw", 65),
    ("s2twp", 85),
    ("t2hk", 17),
    ("t2jp", 4),
    ("t2s", 55),
    ("t2tw", 10),
    ("tw2s", 32),
    ("tw2sp", 54),
    ("tw2t", 18),
];

fn testcases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".deps/opencc/share/opencc-tests/testcases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "OpenCC's test cases are missing ({}: {e}): run models/setup-opencc.sh",
            path.display()
        )
    });
    // OpenCC's file has trailing commas, which JSON does not allow.
    let json: Value = serde_json::from_str(&strip_trailing_commas(&text))
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    json["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no \"cases\" array", path.display()))
        .clone()
}

/// Removes commas that directly precede `}` or `]`, leaving strings alone.
fn strip_trailing_commas(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' {
            let rest: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
            let next = chars.clone().nth(rest.chars().count());
            if matches!(next, Some('}' | ']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[test]
fn trailing_commas_are_stripped_outside_strings() {
    assert_eq!(
        strip_trailing_commas("{\"a\": [1, 2, ], \"b,}\": \"x\\\",]\",\n}"),
        "{\"a\": [1, 2 ], \"b,}\": \"x\\\",]\"\n}"
    );
}

#[test]
fn opencc_reference_cases_pass_for_every_stock_config() {
    let cases = testcases();
    let converters: BTreeMap<&str, OpenccConverter> = OpenccConfig::ALL
        .into_iter()
        .map(|c| (c.name(), OpenccConverter::new(c).unwrap()))
        .collect();
    // config -> (cases, passed)
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().expect("case id");
        let input = case["input"].as_str().expect("case input");
        for (config, want) in case["expected"].as_object().expect("case expected") {
            let converter = converters
                .get(config.as_str())
                .unwrap_or_else(|| panic!("case {id}: cantocap has no config {config}"));
            let want = want.as_str().expect("expected text");
            let got = converter.convert(input);
            let count = counts.entry(config.clone()).or_default();
            count.0 += 1;
            if got == want {
                count.1 += 1;
            } else {
                failures
                    .push(format!("{config} {id}: {input:?}\n    got  {got:?}\n    want {want:?}"));
            }
        }
    }
    let (total, passed) = counts.values().fold((0, 0), |(t, p), &(ct, cp)| (t + ct, p + cp));
    eprintln!("OpenCC reference cases: {passed} of {total} pass");
    for (config, (cases, pass)) in &counts {
        eprintln!("  {config:6} {pass:3} / {cases:3}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} reference cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let expected: BTreeMap<String, usize> =
        EXPECTED_CASES.iter().map(|&(config, cases)| (config.to_owned(), cases)).collect();
    let found: BTreeMap<String, usize> = counts.iter().map(|(c, &(n, _))| (c.clone(), n)).collect();
    assert_eq!(found, expected, "cases per configuration in testcases.json");
    assert_eq!(total, 556);
}

fn converter(script: Script) -> ScriptConverter {
    ScriptConverter::new(script).unwrap()
}

/// Words where a character's reading decides its Traditional form, and regional forms.
#[test]
fn words_convert_to_the_right_characters() {
    let table: &[(Script, &[(&str, &str)])] = &[
        (
            Script::Hk,
            &[
                // Debian's OpenCC 1.1.6 wrote 髮育.
                ("发育", "發育"),
                ("头发", "頭髮"),
                ("理发", "理髮"),
                ("后来", "後來"),
                ("皇后", "皇后"),
                ("里面", "裏面"),
                // Traditional text keeps its characters: only Hong Kong variants apply.
                ("裡面", "裡面"),
                ("公里", "公里"),
                ("干净", "乾淨"),
                ("干涉", "干涉"),
                ("一只猫", "一隻貓"),
                ("说话", "説話"),
                ("說話", "説話"),
                ("看著", "看著"),
                ("看着", "看着"),
                ("溫度", "温度"),
                ("台风", "颱風"),
                ("发布", "發佈"),
                ("软件", "軟件"),
                ("衛生署", "衞生署"),
                ("机场快线", "機場快綫"),
            ],
        ),
        (
            Script::Tw,
            &[
                ("发育", "發育"),
                ("里面", "裡面"),
                ("裏面", "裡面"),
                ("説話", "說話"),
                ("衞生", "衛生"),
                ("温度", "溫度"),
                ("看着", "看著"),
                ("信息", "資訊"),
                ("软件", "軟體"),
                ("出租车", "計程車"),
                ("揾工", "搵工"),
                ("台风", "颱風"),
                ("機場快綫", "機場快線"),
            ],
        ),
        (
            Script::Cn,
            &[
                ("發育", "发育"),
                ("頭髮", "头发"),
                ("後來", "后来"),
                ("裡面", "里面"),
                ("裏面", "里面"),
                ("看著", "看着"),
                ("睡著了", "睡着了"),
                ("顯著", "显著"),
                ("显著", "显著"),
                ("著名", "著名"),
                ("什么", "什么"),
                ("这么", "这么"),
                // A round trip through Traditional would give 揹着, 想像, 座标.
                ("背着", "背着"),
                ("想象", "想象"),
                ("坐标", "坐标"),
                ("係", "系"),
                ("嗰個", "嗰个"),
                ("餸菜", "餸菜"),
                ("赤鱲角", "赤鱲角"),
                ("衞生", "卫生"),
                ("説話", "说话"),
                ("老闆", "老板"),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (script, words) in table {
        let converter = converter(*script);
        for &(input, want) in *words {
            let got = converter.convert(input);
            if got != want {
                wrong.push(format!("{script}: {input} -> {got}, want {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The same sentence written in Simplified, Hong Kong and Taiwan forms gives the same
/// output in every script (but Hong Kong output, which keeps the characters of
/// Traditional text, see the next test).
#[test]
fn output_does_not_depend_on_the_input_script() {
    // (Simplified, Hong Kong, Taiwan) spellings; then the Hk, Tw and Cn output.
    let table: &[([&str; 3], [&str; 3])] = &[
        (
            [
                "我们在这里开会，说话要小心",
                "我們在這裏開會，説話要小心",
                "我們在這裡開會，說話要小心",
            ],
            [
                "我們在這裏開會，説話要小心",
                "我們在這裡開會，說話要小心",
                "我们在这里开会，说话要小心",
            ],
        ),
        (
            ["卫生署出咗新嘅温度警告", "衞生署出咗新嘅温度警告", "衛生署出咗新嘅溫度警告"],
            ["衞生署出咗新嘅温度警告", "衛生署出咗新嘅溫度警告", "卫生署出咗新嘅温度警告"],
        ),
        (
            ["佢睡着咗，我哋跟着佢", "佢睡着咗，我哋跟着佢", "佢睡著咗，我哋跟著佢"],
            ["佢睡着咗，我哋跟着佢", "佢睡著咗，我哋跟著佢", "佢睡着咗，我哋跟着佢"],
        ),
        (["揾工好难", "揾工好難", "搵工好難"], ["揾工好難", "搵工好難", "揾工好难"]),
        (
            [
                "我哋用 Zoom 开会，send 个 email 俾你",
                "我哋用 Zoom 開會，send 個 email 俾你",
                "我哋用 Zoom 開會，send 個 email 俾你",
            ],
            [
                "我哋用 Zoom 開會，send 個 email 俾你",
                "我哋用 Zoom 開會，send 個 email 俾你",
                "我哋用 Zoom 开会，send 个 email 俾你",
            ],
        ),
    ];
    let converters = [Script::Hk, Script::Tw, Script::Cn].map(converter);
    let t2hk = OpenccConverter::new(OpenccConfig::T2hk).unwrap();
    let mut wrong = Vec::new();
    for (inputs, outputs) in table {
        for (converter, want) in converters.iter().zip(outputs) {
            for (n, input) in inputs.iter().enumerate() {
                let got = converter.convert(input);
                // Taiwan text to Hong Kong: only Hong Kong variants (説, 温, 衞, 揾).
                let want = match (converter.script(), n) {
                    (Script::Hk, 2) => t2hk.convert(input),
                    _ => want.to_string(),
                };
                if got != want {
                    wrong.push(format!("{}: {input} -> {got}, want {want}", converter.script()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// The evaluation sentences are written in Hong Kong forms already: Hong Kong output
/// must not change a character of them.
#[test]
fn hong_kong_reference_text_is_left_as_it_is() {
    let hk = converter(Script::Hk);
    for sentence in [
        "我哋今日去飲茶。",
        "呢間餐廳嘅點心好好食。",
        "我而家喺公司開緊會。",
        "佢哋下個禮拜去旅行。",
        "呢份文件要老闆簽名。",
        "你想飲咖啡定係奶茶？",
        "呢個星期六我冇時間。",
        "請你幫我睇下呢份報告。",
        "多謝晒你幫手，唔該晒！",
        "唔好郁，我哋喺東涌等你。",
    ] {
        assert_eq!(hk.convert(sentence), sentence);
    }
}

fn hk_sentences() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hk-sentences.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Text already in Hong Kong Traditional keeps its characters: `hk` gives exactly what
/// OpenCC's own `t2hk` gives, with no Simplified-to-Traditional step to misread
/// characters both scripts share (`借借` is not `藉藉`, `唔准` is not `唔準`).
#[test]
fn everyday_hong_kong_sentences_come_out_as_t2hk_gives_them() {
    let sentences = hk_sentences();
    assert!(sentences.len() >= 150, "{} sentences", sentences.len());
    let hk = converter(Script::Hk);
    let t2hk = OpenccConverter::new(OpenccConfig::T2hk).unwrap();
    let wrong: Vec<String> = sentences
        .iter()
        .filter_map(|s| {
            let (got, want) = (hk.convert(s), t2hk.convert(s));
            (got != want).then(|| format!("{s} -> {got}, t2hk gives {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    for (input, want) in
        [("唔該借借，我要落車。", "唔該借借，我要落車。"), ("呢度唔准食煙。", "呢度唔准食煙。")]
    {
        assert_eq!(hk.convert(input), want);
        assert_eq!(converter(Script::Tw).convert(input), want, "tw");
    }
}

/// Whisper writes both scripts, sometimes in one caption: each clause converts from
/// what it is written in.
#[test]
fn mixed_text_converts_clause_by_clause() {
    let hk = converter(Script::Hk);
    for (input, want) in [
        // A Simplified clause, then a Traditional one.
        ("唔该借借，我要落车。佢借借書。", "唔該借借，我要落車。佢借借書。"),
        ("我们准备好了。呢度唔准食煙。", "我們準備好了。呢度唔准食煙。"),
        // Clauses with no sign of either script follow their neighbour.
        ("里面，我们在这里", "裏面，我們在這裏"),
        ("借借，唔該", "借借，唔該"),
        // Simplified and Traditional forms in one clause: the Simplified chain takes both.
        ("裡面有啲改动", "裏面有啲改動"),
        ("send 个 email，OK", "send 個 email，OK"),
    ] {
        assert_eq!(hk.convert(input), want, "{input}");
        // Converting again changes nothing.
        assert_eq!(hk.convert(want), want, "{want}");
    }
}

/// Simplified output of the Hong Kong sentences round-trips through `hk` back to them.
#[test]
fn simplified_hong_kong_sentences_convert_back() {
    let (hk, cn) = (converter(Script::Hk), converter(Script::Cn));
    let t2hk = OpenccConverter::new(OpenccConfig::T2hk).unwrap();
    let mut differ = Vec::new();
    for s in hk_sentences() {
        let simplified = cn.convert(&s);
        let back = hk.convert(&simplified);
        if back != t2hk.convert(&s) {
            differ.push(format!("{s} -> {simplified} -> {back}"));
        }
    }
    // Simplified merges characters (借/藉, 准/準, 面/麪), so a few cannot come back;
    // the rest must.
    assert!(
        differ.len() <= 10,
        "{} of the sentences do not come back:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
