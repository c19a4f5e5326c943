//! `--gpu` and `--gpu-device`: refused clearly in a build without a GPU backend; in a
//! `--features vulkan` build, the whole path end to end on Mesa's lavapipe, the CPU
//! Vulkan driver (`mesa-vulkan-drivers`), so CI proves it without a GPU. Slow there
//! (lavapipe runs the shaders on the CPU), so the smallest model does the work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const ENGLISH: &str = "Captions should appear on the screen within a second. \
    Please send your comments to the shared folder before Friday.";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn english_wav(dir: &Path) -> PathBuf {
    let path = dir.join("english.wav");
    speak("en", ENGLISH, &path);
    path
}

fn cantocap() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cantocap"));
    cmd.env_remove("CANTOCAP_MODEL");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command failed with a single `error:` line containing every `needle`.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
}

#[cfg(not(any(feature = "vulkan", feature = "cuda", feature = "metal")))]
#[test]
fn gpu_flags_without_a_gpu_build_say_how_to_build_one() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let tiny = model("ggml-tiny.en.bin");
    for flags in [&["--gpu"][..], &["--gpu-device", "1"]] {
        let out =
            cantocap().args(["transcribe", s(&wav), "-m", s(&tiny)]).args(flags).output().unwrap();
        assert_fails_with(&out, &["built without GPU support", "--features vulkan"]);
    }
    // The server refuses before it binds its port.
    let out = cantocap()
        .args(["serve", "--listen", "127.0.0.1:0", "-m", s(&tiny), "--gpu"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--features vulkan"), "{}", stderr(&out));
}

/// Lavapipe, and only it: its driver file alone, and named to ggml, which skips
/// CPU drivers unless `GGML_VK_VISIBLE_DEVICES` names them.
#[cfg(feature = "vulkan")]
fn on_lavapipe(cmd: &mut Command) -> &mut Command {
    cmd.env("VK_DRIVER_FILES", lavapipe_icd())
        .env("VK_ICD_FILENAMES", lavapipe_icd())
        .env("GGML_VK_VISIBLE_DEVICES", "0")
}

#[cfg(feature = "vulkan")]
fn lavapipe_icd() -> PathBuf {
    let dir = Path::new("/usr/share/vulkan/icd.d");
    std::fs::read_dir(dir)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("lvp_icd")))
        })
        .unwrap_or_else(|| {
            panic!("no lavapipe driver in {}: apt-get install mesa-vulkan-drivers", dir.display())
        })
}

/// ggml's Vulkan performance logger prints its timings on stderr after each graph
/// it computed on a Vulkan device: proof the work ran there, not on the CPU
/// fallback whisper.cpp takes silently.
#[cfg(feature = "vulkan")]
const VULKAN_RAN: &str = "Vulkan Timings";

#[cfg(feature = "vulkan")]
fn transcribe_txt(wav: &Path, flags: &[&str]) -> (String, String) {
    let tiny = model("ggml-tiny.en.bin");
    let out = on_lavapipe(&mut cantocap())
        .env("GGML_VK_PERF_LOGGER", "1")
        .args(["transcribe", s(wav), "-m", s(&tiny), "-t", "2", "--format", "txt"])
        .args(flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
    let log = stderr(&out);
    (String::from_utf8(out.stdout).unwrap(), log)
}

#[cfg(feature = "vulkan")]
#[test]
fn transcribes_on_lavapipe_with_the_words_of_the_cpu() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let (gpu_text, gpu_log) = transcribe_txt(&wav, &["--gpu"]);
    assert!(gpu_log.contains(VULKAN_RAN), "nothing ran on Vulkan: {gpu_log}");
    assert!(gpu_log.contains("GPU 0: llvmpipe"), "the GPU is not named: {gpu_log}");
    let gpu_wer = wer(ENGLISH, &gpu_text);
    assert!(gpu_wer <= 0.10, "WER {gpu_wer:.2} on lavapipe: {gpu_text:?}");

    let (cpu_text, cpu_log) = transcribe_txt(&wav, &[]);
    assert!(!cpu_log.contains(VULKAN_RAN), "the CPU run used Vulkan: {cpu_log}");
    let apart = wer(&cpu_text, &gpu_text);
    assert!(apart <= 0.10, "lavapipe {gpu_text:?} against the CPU's {cpu_text:?}");
}

#[cfg(feature = "vulkan")]
#[test]
fn streams_on_lavapipe() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let jsonl = dir.path().join("events.jsonl");
    let tiny = model("ggml-tiny.en.bin");
    let out = on_lavapipe(&mut cantocap())
        .env("GGML_VK_PERF_LOGGER", "1")
        .args(["live", "--input", s(&wav), "--speed", "max", "-m", s(&tiny), "-t", "2"])
        .args(["--gpu-device", "0", "--jsonl", s(&jsonl)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(VULKAN_RAN), "nothing ran on Vulkan: {}", stderr(&out));
    let finals: Vec<String> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    let w = wer(ENGLISH, &finals.join(" "));
    assert!(w <= 0.25, "streamed WER {w:.2} on lavapipe: {finals:?}");
}

#[cfg(feature = "vulkan")]
#[test]
fn a_gpu_that_does_not_exist_is_refused_naming_those_found() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let tiny = model("ggml-tiny.en.bin");
    let out = on_lavapipe(&mut cantocap())
        .args(["transcribe", s(&wav), "-m", s(&tiny), "--gpu-device", "99"])
        .output()
        .unwrap();
    assert_fails_with(&out, &["GPU 99", "1 GPU was found", "0: llvmpipe"]);
}

#[cfg(feature = "vulkan")]
#[test]
fn no_gpu_at_all_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let wav = english_wav(dir.path());
    let tiny = model("ggml-tiny.en.bin");
    // Lavapipe is the only driver, and ggml skips CPU drivers unless named.
    let out = on_lavapipe(&mut cantocap())
        .env_remove("GGML_VK_VISIBLE_DEVICES")
        .args(["transcribe", s(&wav), "-m", s(&tiny), "--gpu"])
        .output()
        .unwrap();
    assert_fails_with(&out, &["no GPU was found", "GGML_VK_VISIBLE_DEVICES"]);
}
