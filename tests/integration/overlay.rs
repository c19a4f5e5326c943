//! The overlay page (`/`) in a real browser: headless Chromium loads it from an
//! in-process server, its script opens the captions WebSocket, and the DOM it
//! builds must show the session's finals. Needs `chromium` (Debian's package;
//! `./setup.sh` installs it); without it the test fails, saying so.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::client::*;
use crate::common::*;

const ONE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const TWO: &str = "Please send your comments to the shared folder before Friday.";

/// `chromium` on the PATH (or `$CHROMIUM`), failing loudly without it.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .expect(
            "chromium is needed for the overlay test: apt-get install chromium \
             (./setup.sh installs it), or set CHROMIUM to a Chromium binary",
        )
}

/// Load `url` in headless Chromium with a fresh profile, give the page 5 s of
/// (virtual) time for its WebSocket, and return the DOM it built.
fn dump_dom(url: &str, profile: &Path) -> String {
    let output = Command::new("timeout")
        .arg("90")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("cannot run chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The texts of the `<span class="final">` elements, in order.
fn shown_finals(dom: &str) -> Vec<String> {
    dom.split(r#"<span class="final">"#)
        .skip(1)
        .map(|rest| {
            let text = &rest[..rest.find("</span>").expect("a closed span")];
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The text of the partial's element.
fn shown_partial(dom: &str) -> String {
    let rest = dom.split(r#"<span id="partial" class="partial">"#).nth(1).expect("a partial span");
    rest[..rest.find("</span>").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlay_page_shows_the_sessions_finals_in_chromium() {
    let browser = chromium(); // before anything else: fail at once without it
    let _lock = whisper_lock();
    let dir = tempfile::tempdir().unwrap();
    let audio = speech(dir.path(), &[ONE, TWO], 1000);
    let server = start(config(None)).await;
    let addr = server.local_addr();

    let mut ws = ingest(addr, "stage", json!({"script": "hk"})).await;
    stream(&mut ws, &audio, 4.0).await;
    let (finals, code) = stop(&mut ws).await;
    assert_eq!(code, 1000);
    let finals = texts(&finals);
    assert!(!finals.is_empty(), "the ingest client got no finals");
    assert!(wer(&format!("{ONE} {TWO}"), &finals.join(" ")) < 0.3, "{finals:?}");

    // A viewer that joins late gets the backlog: every final, in the page's script.
    let n = finals.len();
    let url = format!("http://{addr}/?session=stage&script=hk&font=30&lines={n}");
    let dom =
        tokio::task::spawn_blocking(move || dump_dom(&url, &dir.path().join("p1"))).await.unwrap();
    assert_eq!(shown_finals(&dom), finals, "page:\n{dom}");
    assert_eq!(shown_partial(&dom), "", "the finals replaced the partial");
    assert!(dom.contains(r#"<div id="captions" style="font-size: 30px;">"#), "{dom}");
    assert!(dom.contains(r#"<div id="status"></div>"#), "an error is shown:\n{dom}");

    // lines=1 keeps only the latest final on screen.
    let url = format!("http://{addr}/?session=stage&script=cn&lines=1");
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url, profile.path())).await.unwrap();
    assert_eq!(shown_finals(&dom), [finals[n - 1].clone()], "page:\n{dom}");
    assert!(dom.contains(r#"style="font-size: 42px;""#), "the default font size:\n{dom}");

    // A session that does not exist: the page says so instead of showing captions.
    let url = format!("http://{addr}/?session=nobody");
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url, profile.path())).await.unwrap();
    assert!(shown_finals(&dom).is_empty());
    assert!(dom.contains("no session nobody"), "page:\n{dom}");
    drop(browser);
    server.shutdown().await;
}
