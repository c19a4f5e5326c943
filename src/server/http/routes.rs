//! The route table and its handlers: each turns a request into hub calls.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::guard::{guard, Caller};
use super::ws::{Ws, WsUpgrade};
use super::{ingest, jitsi, openai, realtime, viewers, whisperlive};
use super::{json_error, App};
use crate::caption::{self, CaptionFormat, LayoutOptions};
use crate::server::metrics::Metrics;
use crate::server::protocol::{valid_session_id, ErrorCode};
use crate::server::{audit, Hub};
use crate::text::Script;

/// The overlay page served at `/`.
const OVERLAY: &str = include_str!("../overlay.html");

/// Largest message a viewer may send (viewers have nothing to say).
const VIEWER_MESSAGE: usize = 1 << 12;

/// Every route, behind the guard; every answer is `Cache-Control: no-store`.
pub(super) fn router(app: App) -> Router {
    if app.whisperlive_only {
        // `--whisperlive-listen`: WhisperLive's clients connect to the root, or
        // any path they were given.
        return Router::new()
            .fallback(whisperlive)
            .layer(middleware::from_fn_with_state(app.clone(), guard))
            .layer(middleware::map_response(answer_headers))
            .with_state(app);
    }
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(root))
        .route("/v1/sessions/{id}/transcript", get(transcript))
        .route("/v1/ingest/{id}", get(ingest))
        .route("/v1/captions/{id}", get(captions))
        .route(realtime::PATH, get(realtime))
        .route(jitsi::PATH, get(jitsi_meeting))
        // The upload's size is checked as it is read (`limits.max_upload_bytes`).
        .route(
            openai::PATH,
            post(openai::transcriptions)
                .fallback(openai::method_not_allowed)
                .layer(DefaultBodyLimit::disable()),
        )
        // The guard answers unknown paths (404); this is for the layers to cover them.
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, "only GET\n").into_response()
        })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(middleware::map_response(answer_headers))
        .with_state(app)
}

/// `Cache-Control: no-store` on everything, and `Connection: close` on everything
/// but a WebSocket upgrade: one request per connection, as before hyper, so clients
/// that read an answer to its end (health checks, scripts) are never left waiting.
async fn answer_headers(mut response: Response) -> Response {
    let upgrade = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The hub's readiness, for `/readyz` and `/metrics`.
fn ready(hub: &Hub) -> bool {
    hub.model.get().is_some()
}

async fn readyz(State(app): State<App>) -> Response {
    if !ready(&app.hub) {
        (StatusCode::SERVICE_UNAVAILABLE, "loading the model\n").into_response()
    } else if *app.hub.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else if !app.hub.cluster_ok() {
        (StatusCode::SERVICE_UNAVAILABLE, "the cluster (NATS) is unreachable\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let metrics: &Metrics = &app.hub.metrics;
    let mut text = metrics.render(ready(&app.hub));
    if let Some(cluster) = &app.hub.cluster {
        text.push_str(&cluster.render_metrics());
    }
    if let Some(log) = &app.hub.audit {
        // The anchor for `cantocap audit verify --expect-last`.
        text.push_str(&format!(
            "# HELP cantocap_audit_last_hash_info The audit log's last record hash.\n\
             # TYPE cantocap_audit_last_hash_info gauge\n\
             cantocap_audit_last_hash_info{{hash=\"{}\"}} 1\n",
            log.last_hash()
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `?script=`, Hong Kong by default; a 400 naming the choices otherwise.
fn script_of(query: &HashMap<String, String>, code: &str) -> Result<Script, Box<Response>> {
    query
        .get("script")
        .map_or(Ok(Script::Hk), |s| s.parse::<Script>())
        .map_err(|e| Box::new(json_error(StatusCode::BAD_REQUEST, code, &e.to_string())))
}

/// Largest message an ingest client may send: frames are checked against
/// `max_frame_bytes` by the ingest loop, which answers with its own error; the
/// socket refuses only what is far past it.
pub(super) fn ingest_message(hub: &Hub) -> usize {
    hub.config.limits.max_frame_bytes.saturating_mul(4).max(1 << 16)
}

/// `/`: the overlay page, or WhisperLive's WebSocket (its clients connect to the
/// server's root).
async fn root(state: State<App>, request: axum::extract::Request) -> Response {
    if !super::ws::is_websocket(request.headers()) {
        return Html(OVERLAY).into_response();
    }
    whisperlive(state, request).await
}

/// A WhisperLive connection (see `whisperlive`).
async fn whisperlive(State(app): State<App>, request: axum::extract::Request) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    let query = Query::<HashMap<String, String>>::from_request_parts(&mut parts, &app)
        .await
        .map(|q| q.0)
        .unwrap_or_default();
    let Some(caller) = parts.extensions.get::<Caller>().cloned() else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no caller");
    };
    let upgrade = match WsUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused,
    };
    let hub = Arc::clone(&app.hub);
    let max = ingest_message(&hub);
    upgrade.on_upgrade(max, app.tasks.clone(), move |ws: Ws| async move {
        hub.log(format_args!("{}: whisperlive ({})", caller.client.addr, caller.who));
        whisperlive::run(ws, hub, query, caller.client).await;
    })
}

/// `GET /v1/realtime?intent=transcription`: OpenAI's realtime transcription (see
/// `realtime`); a query that cannot make one is refused in OpenAI's shape.
async fn realtime(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    upgrade: Result<WsUpgrade, Response>,
) -> Response {
    if let Err(e) = realtime::check_query(&query) {
        return openai::error(StatusCode::BAD_REQUEST, "invalid_value", &e, None);
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused,
    };
    let hub = Arc::clone(&app.hub);
    let max = ingest_message(&hub);
    upgrade.on_upgrade(max, app.tasks.clone(), move |ws: Ws| async move {
        hub.log(format_args!("{}: realtime ({})", caller.client.addr, caller.who));
        realtime::run(ws, hub, query, caller.client).await;
    })
}

/// Jigasi's meeting stream (see `jitsi`); the guard has checked its JWT.
async fn jitsi_meeting(
    State(app): State<App>,
    Path(meeting): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    upgrade: WsUpgrade,
) -> Response {
    if !valid_session_id(&meeting) {
        let msg = "a meeting id is 1-64 characters of A-Z a-z 0-9 _ - . (not starting with a dot)";
        return json_error(StatusCode::BAD_REQUEST, ErrorCode::BadSessionId.name(), msg);
    }
    let script = match script_of(&query, "bad_script") {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let hub = Arc::clone(&app.hub);
    let max = ingest_message(&hub);
    upgrade.on_upgrade(max, app.tasks.clone(), move |ws: Ws| async move {
        hub.log(format_args!("{}: jitsi {meeting} ({})", caller.client.addr, caller.who));
        jitsi::run(ws, hub, meeting, script, caller.client).await;
    })
}

async fn ingest(
    State(app): State<App>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    upgrade: WsUpgrade,
) -> Response {
    let hub = Arc::clone(&app.hub);
    let max = ingest_message(&hub);
    upgrade.on_upgrade(max, app.tasks.clone(), move |mut ws: Ws| async move {
        if let Some(id) = checked_id(&mut ws, &hub, id).await {
            hub.log(format_args!("{}: ingest {id} ({})", caller.client.addr, caller.who));
            ingest::run(ws, hub, id, caller.client).await;
        }
    })
}

async fn captions(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
    upgrade: WsUpgrade,
) -> Response {
    let script = match script_of(&query, "bad_script") {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let hub = Arc::clone(&app.hub);
    upgrade.on_upgrade(VIEWER_MESSAGE, app.tasks.clone(), move |mut ws: Ws| async move {
        if let Some(id) = checked_id(&mut ws, &hub, id).await {
            hub.log(format_args!("{}: captions {id} ({})", caller.client.addr, caller.who));
            viewers::serve(ws, hub, id, script, caller.client).await;
        }
    })
}

/// The session id, or `None` after refusing the socket.
async fn checked_id(ws: &mut Ws, hub: &Hub, id: String) -> Option<String> {
    if valid_session_id(&id) {
        return Some(id);
    }
    let msg = "a session id is 1-64 characters of A-Z a-z 0-9 _ - . (not starting with a dot)";
    viewers::refuse(ws, hub, ErrorCode::BadSessionId, msg).await;
    None
}

/// `GET /v1/sessions/{id}/transcript?format=srt|vtt|jsonl|txt&script=…`
async fn transcript(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let bad = |msg: &str| json_error(StatusCode::BAD_REQUEST, "bad_request", msg);
    let format = match query.get("format").map_or("srt", String::as_str).parse::<CaptionFormat>() {
        Ok(f) => f,
        Err(e) => return bad(&e.to_string()),
    };
    let script = match script_of(&query, "bad_request") {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    if !valid_session_id(&id) {
        return bad("bad session id");
    }
    let hub = &app.hub;
    let session = match hub.session(&id, false).await {
        Ok(Some(s)) => s,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "unknown_session", "no such session"),
        Err(_) => {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "journal unreadable")
        }
    };
    let converter = hub.converters.get(script);
    // Laid out with the finals' ids (JSON lines carry the ids viewers and webhooks
    // saw) and speakers, in time order.
    let finals: Vec<_> = session
        .finals()
        .iter()
        .map(|f| {
            let mut s = f.event.to_segment();
            s.text = converter.caption(&s.text);
            (f.segment(), f.speaker().map(str::to_string), s)
        })
        .collect();
    let captions = caption::layout_speakers(&finals, &LayoutOptions::default());
    let body = SharedBuf::default();
    let written = caption::write_all(caption::writer_for(format, body.clone()).as_mut(), &captions);
    let body = std::mem::take(&mut *body.0.lock().unwrap_or_else(|e| e.into_inner()));
    if written.is_err() {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot write the transcript",
        );
    }
    let content_type = match format {
        CaptionFormat::Srt => "application/x-subrip; charset=utf-8",
        CaptionFormat::Vtt => "text/vtt; charset=utf-8",
        CaptionFormat::Jsonl => "application/jsonl; charset=utf-8",
        CaptionFormat::Txt => "text/plain; charset=utf-8",
    };
    let mut entry =
        caller.client.entry(audit::Event::TranscriptRead).session(&id).detail(format.to_string());
    entry.captions = Some(finals.len() as u64);
    hub.audit(entry);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A `Write` into memory that a `'static` caption writer can own.
#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
