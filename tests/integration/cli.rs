//! The `cantocap` binary: end to end, and every bad input answered with one clear
//! line and a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

fn cantocap(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(args)
        .env_remove("CANTOCAP_MODEL")
        .output()
        .expect("run cantocap")
}

fn run(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    cantocap(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command failed with a single `error:` line containing every `needle`.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn english(dir: &Path) -> PathBuf {
    let wav = dir.join("english.wav");
    speak("en", "Good morning. Today we will review the quarterly budget.", &wav);
    wav
}

#[test]
fn transcribes_to_an_srt_file_that_parses_back() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    // 44.1 kHz stereo, to go through downmixing and resampling.
    let stereo = dir.path().join("stereo.wav");
    sox(&[s(&wav), "-r", "44100", "-c", "2", s(&stereo)]);
    let srt = dir.path().join("out.srt");
    let out =
        run(&["transcribe", s(&stereo), "-o", s(&srt), "-l", "en", "-t", "2", "-m", s(&base())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&srt).unwrap();
    let captions = cantocap::caption::parse_srt(&text).unwrap();
    assert!(!captions.is_empty());
    let all: Vec<String> = captions.iter().map(|c| c.text()).collect();
    let wer = wer("Good morning. Today we will review the quarterly budget.", &all.join(" "));
    assert!(wer <= 0.25, "WER {wer} for {all:?}");
}

#[test]
fn writes_jsonl_and_vtt_to_stdout() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    let out =
        run(&["transcribe", s(&wav), "--format", "jsonl", "-l", "en", "-t", "2", "-m", s(&base())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.trim().is_empty());
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["type", "segment", "text", "start_ms", "end_ms"] {
            assert!(keys.contains(&k), "{k} missing in {line}");
        }
        assert_eq!(v["type"], "final");
    }
    let out = run(&["transcribe", s(&wav), "-f", "vtt", "-l", "en", "-t", "2", "-m", s(&base())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let vtt = String::from_utf8(out.stdout).unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    assert!(!cantocap::caption::parse_vtt(&vtt).unwrap().is_empty());
}

#[test]
fn scripts_apply_to_chinese_output() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("cmn.wav");
    speak("cmn-latn-pinyin", "这个星期我们去图书馆学习汉语。", &wav);
    for (script, check) in
        [("hk", simplified_only as fn(&str) -> Vec<char>), ("cn", traditional_only)]
    {
        let out = run(&[
            "transcribe",
            s(&wav),
            "-f",
            "txt",
            "-s",
            script,
            "-l",
            "zh",
            "-t",
            "2",
            "-m",
            s(&base()),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.chars().filter(|c| is_cjk(*c)).count() >= 5, "{script}: {text:?}");
        assert!(check(&text).is_empty(), "{script}: wrong-script characters in {text:?}");
    }
}

/// Typography problems in caption text: a half-width comma or full stop next to a
/// Chinese character, or a space between two Chinese characters.
fn typography_faults(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut faults = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        if matches!(c, ',' | '.') && (before.is_some_and(is_cjk) || after.is_some_and(is_cjk)) {
            faults.push(format!("half-width {c:?} at {i}"));
        }
        if c == ' ' {
            let left = chars[..i].iter().rev().find(|c| **c != ' ');
            let right = chars[i..].iter().find(|c| **c != ' ');
            if left.is_some_and(|c| is_cjk(*c)) && right.is_some_and(|c| is_cjk(*c)) {
                faults.push(format!("space between Chinese characters at {i}"));
            }
        }
    }
    faults
}

#[test]
fn slow_mandarin_gives_whole_lines_in_chinese_typography() {
    // Regression: slow speech (espeak-ng at 80 words a minute with pauses) decodes on
    // base as one long final with spaces between the characters (`我 门 间 下 …` over
    // 28 s); the layout's time limit cut it into a caption per character or two, and
    // txt wrote each on its own line, spaces and all.
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("slow.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "cmn-latn-pinyin", "-s", "80", "-g", "60", "-w"])
        .arg(&wav)
        .arg("我们今天下午开会。请大家准时参加。")
        .status()
        .expect("espeak-ng is needed for the speech tests: apt-get install espeak-ng");
    assert!(status.success());
    let transcribe = |format: &str| {
        let args = ["transcribe", s(&wav), "-f", format, "-s", "hk", "-l", "zh", "-t", "2"];
        let out = run(&[&args[..], &["-m", s(&base())]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let txt = transcribe("txt");
    let cjk = txt.chars().filter(|c| is_cjk(*c)).count();
    assert!(cjk >= 5, "expected Chinese text, got {txt:?}");
    let lines: Vec<&str> = txt.lines().collect();
    // Two sentences were spoken: a line per final, not per character.
    assert!(lines.len() <= 3 && lines.len() * 3 <= cjk, "{} lines: {txt:?}", lines.len());
    assert!(typography_faults(&txt).is_empty(), "{:?} in {txt:?}", typography_faults(&txt));
    let srt = transcribe("srt");
    let captions = cantocap::caption::parse_srt(&srt).unwrap();
    assert!(!captions.is_empty(), "{srt}");
    for caption in &captions {
        let text = caption.text();
        assert!(typography_faults(&text).is_empty(), "{:?} in {text:?}", typography_faults(&text));
    }
    for line in srt.lines() {
        assert!(typography_faults(line).is_empty(), "{:?} in {line:?}", typography_faults(line));
    }
}

#[test]
fn a_missing_file_is_named() {
    let out = run(&["transcribe", "/no/such/file.wav"]);
    assert_fails_with(&out, &["/no/such/file.wav"]);
}

#[test]
fn a_file_that_is_not_a_wav_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wav");
    std::fs::write(&path, "these are meeting notes, not audio").unwrap();
    assert_fails_with(&run(&["transcribe", s(&path)]), &["notes.wav", "WAV"]);
}

#[test]
fn an_empty_wav_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    hound::WavWriter::create(&path, spec).unwrap().finalize().unwrap();
    let out = run(&["transcribe", s(&path)]);
    assert_fails_with(&out, &["empty"]);
}

#[test]
fn a_zero_byte_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.wav");
    std::fs::write(&path, b"").unwrap();
    assert_fails_with(&run(&["transcribe", s(&path)]), &["zero.wav"]);
}

#[test]
fn a_truncated_wav_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    let bytes = std::fs::read(&wav).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..30]).unwrap(); // inside the header
    assert_fails_with(&run(&["transcribe", s(&cut)]), &["cut.wav"]);
}

#[test]
fn a_wav_cut_short_inside_its_data_is_transcribed_with_a_warning() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    // Through sox: a plain 44-byte header with the data length filled in.
    let wav = dir.path().join("whole.wav");
    sox(&[s(&english(dir.path())), "-r", "16000", "-b", "16", s(&wav)]);
    let bytes = std::fs::read(&wav).unwrap();
    let cut = dir.path().join("cut.wav");
    // Two thirds of the data: the header still declares all of it.
    std::fs::write(&cut, &bytes[..44 + (bytes.len() - 44) * 2 / 3 / 2 * 2]).unwrap();
    let out = run(&["transcribe", s(&cut), "-l", "en", "-m", s(&base())]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cut.wav is cut short") && err.contains(" s of audio"), "{err}");
    let declared = err.split("of the ").nth(1).and_then(|r| r.split(' ').next());
    let held = err.split("holds ").nth(1).and_then(|r| r.split(' ').next());
    let (declared, held): (f64, f64) =
        (declared.unwrap().parse().unwrap(), held.unwrap().parse().unwrap());
    assert!((held / declared - 2.0 / 3.0).abs() < 0.05, "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "what is there is transcribed"
    );
    // An intact file gets no warning.
    let out = run(&["transcribe", s(&wav), "-l", "en", "-m", s(&base())]);
    assert!(out.status.success() && !stderr(&out).contains("cut short"), "{}", stderr(&out));
}

#[test]
fn nan_samples_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..16000 {
        w.write_sample(if i == 100 { f32::NAN } else { 0.0 }).unwrap();
    }
    w.finalize().unwrap();
    assert_fails_with(&run(&["transcribe", s(&path)]), &["finite"]);
}

#[test]
fn unsupported_encodings_say_what_is_supported() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    let alaw = dir.path().join("alaw.wav");
    sox(&[s(&wav), "-e", "a-law", s(&alaw)]);
    assert_fails_with(&run(&["transcribe", s(&alaw)]), &["alaw.wav", "supported"]);
}

#[test]
fn a_missing_or_wrong_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    assert_fails_with(&run(&["transcribe", s(&wav), "-m", "/no/model.bin"]), &["/no/model.bin"]);
    let fake = dir.path().join("fake.bin");
    std::fs::write(&fake, vec![7u8; 4096]).unwrap();
    assert_fails_with(&run(&["transcribe", s(&wav), "-m", s(&fake)]), &["fake.bin"]);
}

#[test]
fn bad_options_are_usage_errors() {
    let out = run(&["transcribe", "x.wav", "--script", "klingon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("hk"), "the choices should be listed: {}", stderr(&out));
    let out = run(&["transcribe", "x.wav", "--format", "docx"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_language_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    let out = run(&["transcribe", s(&wav), "-l", "klingon", "-m", s(&base())]);
    assert_fails_with(&out, &["klingon"]);
}

#[test]
fn importing_a_folder_that_is_not_a_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.txt"), "hello").unwrap();
    let out_path = dir.path().join("out.bin");
    let out = run(&["model", "import", s(dir.path()), "-o", s(&out_path)]);
    assert_fails_with(&out, &["model.bin"]);
    assert!(!out_path.exists(), "no partial output may be left behind");
}

#[test]
fn model_info_describes_the_model() {
    let out = run(&["model", "info", s(&base())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("51865") && text.contains("zh"), "{text}");
    assert!(text.contains("language yue+en"), "{text}");
}

#[test]
fn convert_turns_simplified_into_hong_kong_script() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .args(["convert", "--script", "hk"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all("我们发布了新软件".as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("我們") && text.contains("軟件") && text.contains('發'), "{text}");
    assert!(simplified_only(&text).is_empty(), "{text}");
}

#[test]
fn live_streams_a_file_into_jsonl_and_srt() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english(dir.path());
    let padded = dir.path().join("padded.wav");
    sox(&[s(&wav), s(&padded), "pad", "0.5", "2"]);
    let jsonl = dir.path().join("events.jsonl");
    let srt = dir.path().join("live.srt");
    let out = run(&[
        "live",
        "--input",
        s(&padded),
        "--speed",
        "max",
        "-l",
        "en",
        "-t",
        "2",
        "-m",
        s(&base()),
        "--jsonl",
        s(&jsonl),
        "--srt",
        s(&srt),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("[00:00:0"), "finals should be printed with times: {stdout}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finals: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "final").collect();
    assert!(!finals.is_empty(), "{events:?}");
    for e in &events {
        for k in ["segment", "text", "start_ms", "end_ms", "emitted_ms"] {
            assert!(!e[k].is_null(), "{k} missing in {e}");
        }
    }
    let text: Vec<&str> = finals.iter().map(|e| e["text"].as_str().unwrap()).collect();
    let w = wer("Good morning. Today we will review the quarterly budget.", &text.join(" "));
    assert!(w <= 0.25, "WER {w}: {text:?}");
    let captions = cantocap::caption::parse_srt(&std::fs::read_to_string(&srt).unwrap()).unwrap();
    assert!(!captions.is_empty());
}

#[test]
fn live_without_the_named_device_fails_clearly() {
    let out = run(&["live", "--device", "no-such-microphone-xyz", "-m", s(&base())]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("audio input") && err.contains("no-such-microphone-xyz"), "{err}");
}

#[test]
fn devices_lists_inputs_or_says_there_are_none() {
    let out = run(&["devices"]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    if out.status.success() {
        assert!(String::from_utf8_lossy(&out.stdout).contains("Hz"));
    } else {
        assert!(err.contains("error:") && err.contains("audio input"), "{err}");
    }
}
