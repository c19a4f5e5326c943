//! Jitsi's skynet streaming protocol: a Jigasi stand-in (tests/clients/jitsi.py,
//! PyJWT and websockets, installed under target/py by ./setup.sh test) signs its
//! JWTs and streams a meeting into `cantocap serve`.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cantocap::server::jitsi::{JitsiConfig, ZhMeans};
use serde_json::Value;

use crate::client::*;
use crate::common::*;

const AMY: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const BEN: &str = "Please send your comments to the shared folder before Friday.";
const LATER: &str = "The budget review moves to next Tuesday afternoon.";
const RSA_KID: &str = "jigasi-key-1";
const HS_KID: &str = "jigasi-hs";
const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

/// Run the Jigasi stand-in; its stdout.
async fn jigasi(args: Vec<String>) -> String {
    let mut path = root().join("target/py").into_os_string();
    if let Some(more) = std::env::var_os("PYTHONPATH") {
        path.push(":");
        path.push(more);
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/clients/jitsi.py")).args(args).env("PYTHONPATH", path);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("python3 is needed for the Jitsi tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Jigasi stand-in failed (pip3 install --target target/py pyjwt==2.15.1 cryptography==50.0.2 websockets==17.4 if they are missing; ./setup.sh test does):\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A key pair for `RSA_KID` (its public half in `keys`); the private key's path.
async fn keygen(dir: &Path, keys: &Path) -> String {
    let private = dir.join("private.pem").to_string_lossy().into_owned();
    let keys = keys.to_string_lossy().into_owned();
    jigasi(strings(&["keygen", "--keys-dir", &keys, "--kid", RSA_KID, "--private", &private]))
        .await;
    private
}

/// A signed JWT.
async fn token(alg: &str, kid: &str, key: &str, aud: &str, exp_in: i64) -> String {
    let exp = exp_in.to_string();
    let args = ["token", "--alg", alg, "--kid", kid, "--key", key, "--aud", aud, "--exp-in", &exp];
    jigasi(strings(&args)).await
}

/// The server's `[jitsi]` table.
fn jitsi_config(keys: &Path) -> JitsiConfig {
    JitsiConfig {
        audiences: vec!["jitsi".into()],
        keys_dir: Some(keys.to_path_buf()),
        zh_means: ZhMeans::Yue,
        secrets: BTreeMap::from([(HS_KID.to_string(), SECRET.to_string())]),
    }
}

/// Send raw frames; the refusal or the messages and close code.
async fn frames(url: &str, token: &str, frames: &[Vec<u8>]) -> Value {
    let mut args = strings(&["frames", "--url", url, "--token", token, "--query-auth"]);
    for f in frames {
        args.push("--hex".into());
        args.push(f.iter().map(|b| format!("{b:02x}")).collect());
    }
    serde_json::from_str(&jigasi(args).await).unwrap()
}

fn is_uuid(id: &str) -> bool {
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jigasi_meeting_of_two_participants_gets_interims_and_finals_for_each() {
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let private = keygen(dir.path(), &keys).await;
    let mut config = config(Some(&dir.path().join("data")));
    config.jitsi = Some(jitsi_config(&keys));
    // Amy stops long before Ben: she is finished while he speaks on. A third
    // participant finds the room full.
    config.limits.idle_secs = 2;
    config.limits.max_speakers_per_room = 2;
    let audit = dir.path().join("audit.jsonl");
    config.audit_log = Some(audit.clone());
    let server = start(config).await;
    let addr = server.local_addr();

    let mut args = strings(&["meeting", "--url"]);
    // Jigasi appends its connection's UUID to the configured URL.
    args.push(format!("ws://{addr}/streaming-whisper/ws/9b2f61c4-3c1e-4a8e-9a55-0f1d2b3c4d5e"));
    args.push("--token".into());
    args.push(token("RS256", RSA_KID, &private, "jitsi", 3600).await);
    args.extend(strings(&["--speed", "2"]));
    let mut longest_ms = 0;
    for (name, sentences) in [("amy", &[AMY][..]), ("ben", &[BEN, LATER][..]), ("cat", &[AMY][..])]
    {
        let raw = dir.path().join(format!("{name}.raw"));
        let pause = if name == "ben" { 4000 } else { 1500 };
        let audio = speech(dir.path(), sentences, pause);
        longest_ms = longest_ms.max(audio.len() as u64 / 32);
        std::fs::write(&raw, audio).unwrap();
        args.push("--participant".into());
        args.push(format!("{name}:en-US:{}", raw.display()));
    }
    let began = now_ms();
    let result: Value = serde_json::from_str(&jigasi(args).await).unwrap();
    assert_eq!(result["close"], 1000, "{result}");
    let messages = result["messages"].as_array().unwrap();
    let cat: Vec<&Value> = messages.iter().filter(|m| m["participant_id"] == "cat").collect();
    assert_eq!(cat.len(), 1, "one error, no captions: {cat:?}");
    assert_eq!(
        (cat[0]["type"].as_str(), cat[0]["code"].as_str()),
        (Some("error"), Some("too_many_sessions"))
    );
    for (name, sentence) in [("amy", AMY.to_string()), ("ben", format!("{BEN} {LATER}"))] {
        let mine: Vec<&Value> = messages.iter().filter(|m| m["participant_id"] == name).collect();
        let interims: Vec<&&Value> = mine.iter().filter(|m| m["type"] == "interim").collect();
        let finals: Vec<&&Value> = mine.iter().filter(|m| m["type"] == "final").collect();
        assert!(!interims.is_empty() && !finals.is_empty(), "{name}: {mine:?}");
        for m in &mine {
            assert!(is_uuid(m["id"].as_str().unwrap()), "{m}");
            let ts = m["ts"].as_u64().unwrap();
            // The meeting's start on the server's clock, plus room time (the
            // stand-in streams at twice real time).
            assert!(began - 1000 <= ts && ts <= began + longest_ms + 1000, "{m}");
            let variance = if m["type"] == "final" { 1.0 } else { 0.5 };
            assert_eq!(m["variance"].as_f64(), Some(variance), "{m}");
        }
        // An utterance's interims carry its final's id.
        for f in &finals {
            assert!(interims.iter().any(|i| i["id"] == f["id"]), "{name}: {f} in {mine:?}");
        }
        let ids: std::collections::HashSet<&str> =
            finals.iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), finals.len(), "each final its own id: {finals:?}");
        let heard: Vec<&str> = finals.iter().map(|f| f["text"].as_str().unwrap()).collect();
        let heard = heard.join(" ");
        assert!(wer(&sentence, &heard) < 0.3, "{name}: {heard}");
    }

    // The meeting is a room like any other: a transcript with both speakers.
    let room = "9b2f61c4-3c1e-4a8e-9a55-0f1d2b3c4d5e";
    let (status, jsonl) = get(addr, &format!("/v1/sessions/{room}/transcript?format=jsonl")).await;
    assert_eq!(status, 200);
    assert!(
        jsonl.contains(r#""speaker":"amy""#) && jsonl.contains(r#""speaker":"ben""#),
        "{jsonl}"
    );
    server.shutdown().await;
    let audit = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let details = |event: &str| -> Vec<String> {
        let of = records.iter().filter(|r| r["event"] == event);
        of.map(|r| r["detail"].as_str().unwrap_or_default().to_string()).collect()
    };
    assert_eq!(details("session_opened"), ["jitsi", "jitsi"], "{audit}");
    let mut closed = details("session_closed");
    closed.sort();
    assert_eq!(closed, ["quiet", "stop"], "amy went quiet, ben stayed to the end: {audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitsi_tokens_and_frames_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let private = keygen(dir.path(), &keys).await;
    let audit = dir.path().join("audit.jsonl");
    let mut checked = config(None);
    checked.jitsi = Some(jitsi_config(&keys));
    checked.audit_log = Some(audit.clone());
    let server = start(checked).await;
    let url = format!("ws://{}/streaming-whisper/ws/meeting-1", server.local_addr());

    let good = token("HS512", HS_KID, SECRET, "jitsi", 600).await;
    let refused = [
        (String::new(), "no_token"),
        (token("RS256", RSA_KID, &private, "jitsi", -300).await, "token_expired"),
        (token("RS256", RSA_KID, &private, "someone-else", 600).await, "wrong_audience"),
        (token("RS256", "unknown-kid", &private, "jitsi", 600).await, "unknown_kid"),
        (
            token("HS512", HS_KID, "not-the-shared-secret-of-32-bytes!!", "jitsi", 600).await,
            "bad_signature",
        ),
    ];
    for (token, code) in &refused {
        let r = frames(&url, token, &[vec![0]]).await;
        assert_eq!(r["status"], 401, "{code}: {r}");
        assert_eq!(r["body"]["code"], *code, "{r}");
        assert!(!r["body"]["message"].as_str().unwrap().is_empty(), "{r}");
    }
    let bad_id = format!("ws://{}/streaming-whisper/ws/.hidden", server.local_addr());
    assert_eq!(frames(&bad_id, &good, &[vec![0]]).await["status"], 400);

    // The end frame alone: a clean close, nothing said.
    let r = frames(&url, &good, &[vec![0]]).await;
    assert_eq!(
        (r["close"].as_u64(), r["messages"].as_array().map(Vec::len)),
        (Some(1000), Some(0))
    );

    let mut header = b"amy|en".to_vec();
    header.resize(60, 0);
    let mut odd = header.clone();
    odd.push(7); // the 61-byte frame: a header and half a sample
    let mut no_bar = vec![b'x'; 60];
    no_bar.extend([0, 0]);
    let mut not_utf8 = vec![0xff; 60];
    not_utf8.extend([0, 0]);
    let mut bad_name = b"<script>|en".to_vec();
    bad_name.resize(62, 0);
    for (frame, expect, close) in [
        (odd, "16-bit", 1003),
        (no_bar, "participant|language", 1003),
        (not_utf8, "UTF-8", 1003),
        (vec![1, 2, 3], "shorter", 1003),
        (bad_name, "participant", 1008),
    ] {
        let r = frames(&url, &good, &[frame]).await;
        assert_eq!(r["close"], close, "{expect}: {r}");
        let error = &r["messages"][0];
        assert_eq!(error["type"], "error", "{r}");
        assert!(error["message"].as_str().unwrap().contains(expect), "{expect}: {r}");
    }
    server.shutdown().await;

    let audit = std::fs::read_to_string(&audit).unwrap();
    for (_, code) in &refused {
        assert!(audit.contains(&format!("jitsi_{code}")), "{code}: {audit}");
    }

    // Without a [jitsi] table the path does not exist.
    let server = start(config(None)).await;
    let url = format!("ws://{}/streaming-whisper/ws/meeting-1", server.local_addr());
    let r = frames(&url, &good, &[vec![0]]).await;
    assert_eq!(r["status"], 404, "{r}");
    server.shutdown().await;
}
