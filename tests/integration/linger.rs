//! Sessions leave memory once unused for `session_linger_secs`: with a data dir
//! they come back from the journal; without one they are gone.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::client::*;

/// Past a 1 s linger and the sweep after it (every 250 ms).
const PAST_LINGER: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_session_is_dropped_and_read_back_from_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = config(Some(&data));
    config.limits.session_linger_secs = 1;
    let server = start(config).await;
    let addr = server.local_addr();

    let mut ws = ingest(addr, "room", json!({})).await;
    assert_eq!(stop(&mut ws).await.1, 1000);
    let (watching, ready) = viewer(addr, "room").await;
    assert_eq!(ready["backlog"], 0, "{ready}");
    // A final written to the journal behind the server's back shows when (and
    // only when) the session is read back from the journal.
    let line = json!({"type":"final","segment":1,"text":"from the journal","start_ms":0,
        "end_ms":900,"emitted_ms":1000,"lag_ms":0});
    let mut journal =
        std::fs::OpenOptions::new().append(true).open(data.join("room.jsonl")).unwrap();
    writeln!(journal, "{line}").unwrap();

    // Watched: it stays in memory however long.
    tokio::time::sleep(PAST_LINGER).await;
    let (second, ready) = viewer(addr, "room").await;
    assert_eq!(ready["backlog"], 0, "dropped while a viewer watched: {ready}");
    leave(watching).await;
    leave(second).await;

    // Unused: dropped, then read back on demand, with the final from the journal.
    tokio::time::sleep(PAST_LINGER).await;
    let (mut third, ready) = viewer(addr, "room").await;
    assert_eq!(ready["backlog"], 1, "not read back from the journal: {ready}");
    assert_eq!(next(&mut third).await["text"], "from the journal");
    let (status, txt) = get(addr, "/v1/sessions/room/transcript?format=txt&script=raw").await;
    assert_eq!((status, txt.trim()), (200, "from the journal"));
    // And an ingest continues it after that final.
    let mut ws = connect(&format!("ws://{addr}/v1/ingest/room")).await;
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text(
            json!({"type":"start","sample_rate":16000,"channels":1,"format":"s16le"}).to_string(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["next_segment"], 2);
    assert_eq!(stop(&mut ws).await.1, 1000);
    leave(third).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_data_dir_an_ended_session_is_gone_after_the_linger() {
    let mut config = config(None);
    config.limits.session_linger_secs = 1;
    let server = start(config).await;
    let addr = server.local_addr();

    let mut ws = ingest(addr, "brief", json!({})).await;
    assert_eq!(stop(&mut ws).await.1, 1000);
    let (watching, ready) = viewer(addr, "brief").await;
    assert_eq!(ready["type"], "ready", "{ready}");
    leave(watching).await;
    assert_eq!(get(addr, "/v1/sessions/brief/transcript").await.0, 200);

    tokio::time::sleep(PAST_LINGER).await;
    // The session is gone: a viewer now waits for a new ingest to start it.
    let (late, waiting) = viewer(addr, "brief").await;
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    leave(late).await;
    assert_eq!(get(addr, "/v1/sessions/brief/transcript").await.0, 404);
    server.shutdown().await;
}
