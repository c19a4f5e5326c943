//! The overlay page (`/`) in a real browser: headless Chromium loads it from an
//! in-process server, its script opens the captions WebSocket, and the DOM it
//! builds must show the session's finals. Needs `chromium` (Debian's package;
//! `./setup.sh` installs it); without it the test fails, saying so.

// One runtime per test; holding the global decode lock across awaits is the point.
#![allow(clippy::await_holding_lock)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::*;
use crate::common::*;

const ONE: &str = "Good morning everyone, and welcome to the weekly project meeting.";
const TWO: &str = "Please send your comments to the shared folder before Friday.";

/// `chromium` on the PATH (or `$CHROMIUM`), failing loudly without it.
pub fn chromium() -> PathBuf {
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

/// Headless Chromium with a fresh profile and a DevTools port, showing `url`.
struct Browser {
    child: std::process::Child,
    port: u16,
}

impl Browser {
    async fn open(url: &str, profile: &Path) -> Browser {
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run chromium");
        // Chromium writes the port it chose to DevToolsActivePort in the profile.
        let active = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Browser { child, port }
    }

    /// The page's DOM, polled through the DevTools protocol until `done` holds
    /// or 60 s pass (the page's WebSocket is real network I/O, so no fixed wait
    /// is right on every machine); the last DOM seen either way.
    async fn dom_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let page = loop {
            let list = devtools_targets(self.port).await;
            let list: Value = serde_json::from_str(&list).unwrap_or(Value::Null);
            let page = list.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < deadline, "chromium shows no page: {list}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut ws = connect(&page).await;
        let mut id = 0;
        loop {
            id += 1;
            let ask = json!({"id": id, "method": "Runtime.evaluate", "params": {
                "expression": "document.documentElement.outerHTML", "returnByValue": true}});
            ws.send(Message::text(ask.to_string())).await.unwrap();
            let dom = loop {
                let reply = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("DevTools did not answer")
                    .expect("DevTools closed")
                    .unwrap();
                let reply: Value = match reply {
                    Message::Text(t) => serde_json::from_str(&t).unwrap(),
                    _ => continue,
                };
                if reply["id"] == id {
                    break reply["result"]["result"]["value"].as_str().unwrap_or("").to_string();
                }
            };
            if done(&dom) || Instant::now() > deadline {
                return dom;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `GET /json/list` from Chromium's DevTools port: its targets as JSON text.
async fn devtools_targets(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let ask =
        format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(ask.as_bytes()).await.unwrap();
    // It answers with a Content-Length and may keep the connection open.
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return body.to_string();
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return String::new(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open `url` in a fresh browser and return its DOM once `done` holds (or the
/// last one seen after 60 s).
pub async fn page(url: &str, done: impl Fn(&str) -> bool) -> String {
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(url, profile.path()).await;
    browser.dom_until(done).await
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

/// The partials shown (one element per speaker), as HTML.
fn shown_partial(dom: &str) -> String {
    let rest = dom.split(r#"<span id="partials">"#).nth(1).expect("the partials' span");
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
    let dom = page(&url, |dom| shown_finals(dom) == finals).await;
    assert_eq!(shown_finals(&dom), finals, "page:\n{dom}");
    assert_eq!(shown_partial(&dom), "", "the finals replaced the partial");
    assert!(dom.contains(r#"<div id="captions" style="font-size: 30px;">"#), "{dom}");
    assert!(dom.contains(r#"<div id="status"></div>"#), "an error is shown:\n{dom}");

    // lines=1 keeps only the latest final on screen.
    let url = format!("http://{addr}/?session=stage&script=cn&lines=1");
    let last = [finals[n - 1].clone()];
    let dom = page(&url, |dom| shown_finals(dom) == last).await;
    assert_eq!(shown_finals(&dom), last, "page:\n{dom}");
    assert!(dom.contains(r#"style="font-size: 42px;""#), "the default font size:\n{dom}");

    // A session that has not started: the page says it waits for it.
    let url = format!("http://{addr}/?session=nobody");
    let dom = page(&url, |dom| dom.contains("waiting for session nobody to start")).await;
    assert!(shown_finals(&dom).is_empty());
    assert!(dom.contains("waiting for session nobody to start"), "page:\n{dom}");
    drop(browser);
    server.shutdown().await;
}
