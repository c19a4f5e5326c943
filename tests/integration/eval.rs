//! `cantocap eval` end to end on espeak-ng clips. Its error rates are checked against
//! jiwer (PyPI), an independent implementation, on the normalised texts the tool
//! reports; the normalised references against a plain re-derivation here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cantocap::text::{Script, ScriptConverter};
use serde_json::Value;

use crate::common::*;

const ENGLISH: [&str; 3] = [
    "Please send your comments to the shared folder before Friday.",
    "The marketing team needs two more weeks to finish the campaign.",
    "We will meet the client in Hong Kong at the end of the month.",
];
const MANDARIN: [&str; 2] = ["我们今天下午开会，讨论这个问题。", "请大家准时参加明天的会议。"];
/// Spoken by the Mandarin voice; its reference mixes Chinese and English.
const MIXED: &str = "我们明天用 Zoom 开会。";

fn cantocap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(args)
        .env_remove("CANTOCAP_MODEL")
        .output()
        .expect("run cantocap")
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cantocap eval failed: {stderr}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// jiwer's figures for a result file: per utterance errors and tokens, and the totals
/// per metric and overall, computed from the normalised texts alone.
fn jiwer(report: &Path) -> Value {
    const SCRIPT: &str = r#"
import json, sys
import jiwer
report = json.load(open(sys.argv[1], encoding="utf-8"))
out = {"utterances": {}, "totals": {}}
pairs = {"cer": ([], []), "wer": ([], []), "mer": ([], [])}
for u in report["utterances"]:
    ref, hyp = u["reference_norm"], u["hypothesis_norm"]
    if u["metric"] == "cer":
        ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
        o = jiwer.process_characters(ref, hyp)
    else:
        o = jiwer.process_words(ref, hyp)
    pairs[u["metric"]][0].append(ref)
    pairs[u["metric"]][1].append(hyp)
    out["utterances"][u["id"]] = {
        "errors": o.substitutions + o.deletions + o.insertions,
        "tokens": o.hits + o.substitutions + o.deletions,
    }
for metric, (refs, hyps) in pairs.items():
    if refs:
        rate = jiwer.cer(refs, hyps) if metric == "cer" else jiwer.wer(refs, hyps)
        out["totals"][metric] = rate
refs = [u["reference_norm"] for u in report["utterances"]]
hyps = [u["hypothesis_norm"] for u in report["utterances"]]
out["totals"]["overall"] = jiwer.wer(refs, hyps)
print(json.dumps(out))
"#;
    // ./setup.sh test installs jiwer under target/py.
    let mut path = root().join("target/py").into_os_string();
    if let Some(more) = std::env::var_os("PYTHONPATH") {
        path.push(":");
        path.push(more);
    }
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(report)
        .env("PYTHONPATH", path)
        .output()
        .expect("python3 is needed for the eval test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'jiwer'"),
        "jiwer is missing: pip3 install --target target/py jiwer==4.0.0 (./setup.sh test does)"
    );
    assert!(out.status.success(), "jiwer failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The tool's figures agree with jiwer's, utterance by utterance and in total.
fn assert_agrees_with_jiwer(path: &Path) -> Value {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let independent = jiwer(path);
    assert_eq!(
        independent["utterances"].as_object().unwrap().len(),
        report["utterances"].as_array().unwrap().len()
    );
    for u in report["utterances"].as_array().unwrap() {
        let theirs = &independent["utterances"][u["id"].as_str().unwrap()];
        let edits = &u["edits"];
        assert_eq!(
            (&edits["errors"], &edits["tokens"]),
            (&theirs["errors"], &theirs["tokens"]),
            "{}: {:?} vs {:?}",
            u["id"],
            u["reference_norm"],
            u["hypothesis_norm"]
        );
        let sdi = ["substitutions", "deletions", "insertions"].map(|k| edits[k].as_u64().unwrap());
        assert_eq!(sdi.iter().sum::<u64>(), edits["errors"].as_u64().unwrap());
    }
    let totals = &report["totals"];
    let theirs = independent["totals"].as_object().unwrap();
    assert_eq!(theirs.len(), totals["metrics"].as_object().unwrap().len() + 1, "{independent}");
    for (metric, rate) in theirs {
        let ours = if metric == "overall" {
            &totals["overall"]["rate"]
        } else {
            &totals["metrics"][metric]["edits"]["rate"]
        };
        let (ours, theirs) = (ours.as_f64().unwrap(), rate.as_f64().unwrap());
        assert!((ours - theirs).abs() < 1e-9, "{metric}: ours {ours}, jiwer {theirs}");
    }
    report
}

/// A manifest in each of the forms the tool reads: a header and comments, a path
/// in a subfolder, an absolute path, three columns, and an id with ID.wav beside it.
fn manifest(dir: &Path, name: &str, voice: &str, texts: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir.join("clips")).unwrap();
    let mut lines = vec!["# made by the eval test".to_owned(), "path\ttext".to_owned()];
    for (i, text) in texts.iter().enumerate() {
        let stem = format!("{name}{i}");
        let line = match i % 3 {
            0 => {
                speak(voice, text, &dir.join(format!("clips/{stem}.wav")));
                format!("clips/{stem}.wav\t{text}")
            }
            1 => {
                let wav = dir.join(format!("{stem}.wav"));
                speak(voice, text, &wav);
                format!("{stem}-id\t{}\t{text}", wav.display())
            }
            _ => {
                speak(voice, text, &dir.join(format!("{stem}.wav")));
                format!("{stem}\t{text}")
            }
        };
        lines.push(line);
    }
    let path = dir.join(format!("{name}.tsv"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn cjk_chars(text: &str) -> String {
    let cn = ScriptConverter::new(Script::Cn).unwrap().convert(text);
    let chars: Vec<String> = cn.chars().filter(|c| is_cjk(*c)).map(String::from).collect();
    chars.join(" ")
}

#[test]
fn error_rates_agree_with_jiwer_on_english_and_mandarin_clips() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let model = base();

    let english = manifest(dir.path(), "en", "en", &ENGLISH);
    let en_json = dir.path().join("en.json");
    let markdown = succeeded(&cantocap(&[
        "eval",
        s(&english),
        "-m",
        s(&model),
        "-l",
        "en",
        "-t",
        "2",
        "--json",
        s(&en_json),
    ]));
    let report = assert_agrees_with_jiwer(&en_json);
    let utterances = report["utterances"].as_array().unwrap();
    let ids: Vec<&str> = utterances.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["clips/en0.wav", "en1-id", "en2"]);
    for (u, text) in utterances.iter().zip(ENGLISH) {
        assert_eq!(u["metric"], "wer");
        // Normalised as plain lower-case words, punctuation gone.
        assert_eq!(u["reference_norm"], words(text).join(" "));
        let hypothesis = u["hypothesis"].as_str().unwrap();
        assert_eq!(u["hypothesis_norm"], words(&hypothesis.replace('\'', "")).join(" "));
        assert!(u["audio_ms"].as_u64().unwrap() > 1000 && u["compute_ms"].as_u64().unwrap() > 0);
    }
    let wer = report["totals"]["metrics"]["wer"]["edits"]["rate"].as_f64().unwrap();
    assert!(wer <= 0.15, "WER {wer} on clear synthetic English: {markdown}");
    assert!(report["totals"]["rtf"].as_f64().unwrap() > 0.0);
    assert!(markdown.contains("| 1 | clips/en0.wav | WER |"), "{markdown}");
    assert!(markdown.contains("| overall (mixed tokens) | 3 |"), "{markdown}");

    let mut texts = MANDARIN.to_vec();
    texts.push(MIXED);
    let mandarin = manifest(dir.path(), "zh", "cmn-latn-pinyin", &texts);
    let zh_json = dir.path().join("zh.json");
    let stdout = succeeded(&cantocap(&[
        "eval",
        s(&mandarin),
        "-m",
        s(&model),
        "-l",
        "zh",
        "-t",
        "2",
        "--format",
        "json",
        "--json",
        s(&zh_json),
    ]));
    let report = assert_agrees_with_jiwer(&zh_json);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), report, "stdout = the file");
    let utterances = report["utterances"].as_array().unwrap();
    let metrics: Vec<&str> = utterances.iter().map(|u| u["metric"].as_str().unwrap()).collect();
    assert_eq!(metrics, ["cer", "cer", "mer"]);
    for (u, text) in utterances.iter().zip(&texts[..2]) {
        assert_eq!(u["reference_norm"], cjk_chars(text));
        let hypothesis = u["hypothesis"].as_str().unwrap();
        assert!(hypothesis.chars().filter(|c| is_cjk(*c)).count() >= 5, "{hypothesis:?}");
    }
    assert_eq!(utterances[2]["reference_norm"], "我 们 明 天 用 zoom 开 会");
    let cer = report["totals"]["metrics"]["cer"]["edits"]["rate"].as_f64().unwrap();
    assert!(cer < 1.0, "CER {cer}");

    // The comparison of the two runs: every metric of either, ids only in one.
    let compared = succeeded(&cantocap(&["eval", "--compare", s(&en_json), s(&zh_json)]));
    for row in ["| WER |", "| CER |", "| MER |", "| overall (mixed tokens) |", "| RTF |"] {
        assert!(compared.contains(row), "{row} missing: {compared}");
    }
    assert!(compared.contains("Only in A: clips/en0.wav, en1-id, en2."), "{compared}");
    let same = succeeded(&cantocap(&["eval", "--compare", s(&en_json), s(&en_json)]));
    assert!(same.contains("None: every utterance has the same errors"), "{same}");
}

#[test]
fn streaming_reports_final_latency() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let english = manifest(dir.path(), "en", "en", &ENGLISH[..1]);
    let json = dir.path().join("stream.json");
    let markdown = succeeded(&cantocap(&[
        "eval",
        s(&english),
        "-m",
        s(&base()),
        "-l",
        "en",
        "-t",
        "2",
        "--streaming",
        "--pace",
        "4x",
        "--json",
        s(&json),
    ]));
    let report = assert_agrees_with_jiwer(&json);
    assert_eq!(report["settings"]["mode"], "streaming");
    assert_eq!(report["settings"]["pace"], "4x");
    let latency = &report["totals"]["latency"];
    assert_eq!(latency["clock"], "wall");
    let finals = latency["finals"].as_u64().unwrap();
    let p50 = latency["p50_ms"].as_u64().unwrap();
    let p90 = latency["p90_ms"].as_u64().unwrap();
    assert!(finals >= 1, "{markdown}");
    // Above zero (a final cannot come before its audio) and within the endpoint, a
    // step and a few decodes.
    assert!(p50 > 0 && p50 <= p90 && p90 < 15_000, "p50 {p50} p90 {p90}: {markdown}");
    let per_final = report["utterances"][0]["latency_ms"].as_array().unwrap();
    assert_eq!(per_final.len() as u64, finals);
    let wer = report["totals"]["overall"]["rate"].as_f64().unwrap();
    assert!(wer <= 0.3, "streaming WER {wer}: {markdown}");
    assert!(markdown.contains("Final latency (wall time,"), "{markdown}");
}

/// The command failed with one `error:` line holding every needle.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn bad_manifests_are_named_by_line_before_any_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wav"), b"").unwrap();
    let path = dir.path().join("m.tsv");
    std::fs::write(&path, "a.wav\tfine\nmissing.wav\tgone\nspaces instead of tabs\n").unwrap();
    // A model that does not exist: the manifest is checked first.
    let out = cantocap(&["eval", s(&path), "-m", "/nonexistent/model.bin"]);
    assert_fails_with(
        &out,
        &["m.tsv", "line 2: audio file missing.wav not found", "line 3: no tab"],
    );
    let out = cantocap(&["eval", s(&dir.path().join("nope.tsv"))]);
    assert_fails_with(&out, &["cannot read the manifest", "nope.tsv"]);

    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"hello\": 1}").unwrap();
    let out = cantocap(&["eval", "--compare", s(&not_a_report), s(&not_a_report)]);
    assert_fails_with(&out, &["x.json is not a result file of `cantocap eval --json`"]);
    let out = cantocap(&["eval", s(&path), "--pace", "4x"]);
    assert!(!out.status.success(), "--pace needs --streaming");
    let out = cantocap(&["eval"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("MANIFEST"));
}
