//! The guard in front of every route: the Host check of anonymous loopback
//! servers (DNS rebinding), bearer tokens, a rate limit on failed authentication,
//! and the Origin check of WebSocket upgrades. It hands the handlers a [`Caller`].
//! Jitsi's path takes a Jitsi JWT instead of a token (see `jitsi_gate`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{jitsi, openai, realtime, ws, App};
use crate::server::audit::{self, Client};
use crate::server::auth::{self, Denied, Role, Scope};
use crate::server::protocol::valid_session_id;
use crate::server::Hub;

/// Who made a request, once the guard let it through.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The token's name, or `anonymous`.
    pub(crate) who: String,
    /// For audit records.
    pub(crate) client: Client,
}

/// Failed authentications a client address may make per window before it gets 429.
const MAX_FAILURES: u32 = 10;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);
/// Addresses tracked at most (a flood from many addresses cannot grow it further).
const MAX_TRACKED: usize = 10_000;

/// Failed authentications per client address, over fixed windows. Past
/// [`MAX_FAILURES`] the address gets `429` with `Retry-After` until its window
/// ends; the refusals of a burst become one audit record and one log line.
#[derive(Default)]
pub(crate) struct AuthLimiter {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

struct Window {
    start: Instant,
    failures: u32,
    /// Refusals past the limit, not audited one by one.
    suppressed: u32,
}

/// What the limiter says of one request.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Go on (and report a failure, if it fails).
    Open,
    /// Refuse with 429 for this long.
    Limited(Duration),
}

impl AuthLimiter {
    fn check(&self, ip: IpAddr, now: Instant) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get_mut(&ip) {
            Some(w) if now.duration_since(w.start) < WINDOW && w.failures >= MAX_FAILURES => {
                w.suppressed += 1;
                Verdict::Limited(WINDOW - now.duration_since(w.start))
            }
            _ => Verdict::Open,
        }
    }

    /// Count a failure; returns the suppressed refusals of the window it closes,
    /// for one aggregated audit record.
    fn failed(&self, ip: IpAddr, now: Instant) -> Option<u32> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&ip) {
            windows.retain(|_, w| now.duration_since(w.start) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                return None;
            }
        }
        let w = windows.entry(ip).or_insert(Window { start: now, failures: 0, suppressed: 0 });
        let mut closed = None;
        if now.duration_since(w.start) >= WINDOW {
            closed = Some(w.suppressed).filter(|&n| n > 0);
            *w = Window { start: now, failures: 0, suppressed: 0 };
        }
        w.failures += 1;
        closed
    }
}

/// What a path needs: `None` for the open health endpoints; `Err` for no route.
///
/// A WebSocket at `/` (or on any path of the WhisperLive port) is WhisperLive's
/// ingest; its room is in the query (`?session=`) or in its first message.
fn needs(path: &str, whisperlive: bool) -> Result<Option<(Role, Option<&str>)>, ()> {
    if whisperlive {
        return Ok(Some((Role::Ingest, None)));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Ok(match parts.as_slice() {
        ["livez"] | ["readyz"] => None,
        ["metrics"] => Some((Role::Admin, None)),
        [""] => Some((Role::View, None)),
        ["v1", "ingest", id] => Some((Role::Ingest, Some(*id))),
        ["v1", "captions", id] | ["v1", "sessions", id, "transcript"] => {
            Some((Role::View, Some(*id)))
        }
        // File transcription sends audio, so it needs `ingest`; it uses the server's
        // compute outside any session, so not a token limited to one session.
        ["v1", "audio", "transcriptions"] => Some((Role::Ingest, None)),
        // OpenAI's realtime transcription: a room named in `?session=`, or its own.
        ["v1", "realtime"] => Some((Role::Ingest, None)),
        _ => return Err(()),
    })
}

/// Is `host` (a Host header) a loopback name: `localhost`, `127.0.0.1`, `[::1]`
/// or another loopback address, with or without a port?
pub(crate) fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(name, _)| name)
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A refusal in the shape the path's clients expect: OpenAI's for `/v1/audio/…`,
/// cantocap's own elsewhere.
fn json_error(path: &str, status: StatusCode, code: &str, message: &str) -> Response {
    if openai::is_openai_path(path) {
        let code = match status {
            StatusCode::UNAUTHORIZED => "invalid_api_key",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded",
            _ => code,
        };
        return openai::error(status, code, message, None);
    }
    super::json_error(status, code, message)
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn query_token(query: Option<&str>) -> Option<String> {
    query_param(query, "token")
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(
        &format!("/?{query}").parse().ok()?,
    )
    .ok()
    .and_then(|q| q.0.get(name).cloned())
}

/// The tower layer (as an axum middleware) every request passes.
pub(crate) async fn guard(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let hub = &app.hub;
    let config = &hub.config;
    let path = request.uri().path().to_string();
    if let Some(meeting) = jitsi::meeting_of(&path).filter(|_| !app.whisperlive_only) {
        let meeting = percent_decode(meeting);
        return jitsi_gate(&app, peer, request, next, &path, &meeting).await;
    }
    let whisperlive = app.whisperlive_only || (path == "/" && ws::is_websocket(request.headers()));
    let Ok(needs) = needs(&path, whisperlive) else {
        return json_error(&path, StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    };
    let headers = request.headers();
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own
    // Host (and a matching Origin). Without tokens, only loopback names reach us.
    if needs.is_some()
        && config.tokens.is_empty()
        && config.listen.ip().is_loopback()
        && !header(headers, header::HOST).is_some_and(loopback_host)
    {
        hub.log(format_args!("{peer}: {path} refused: Host is not a loopback name"));
        return json_error(
            &path,
            StatusCode::FORBIDDEN,
            "forbidden",
            "this server answers only to localhost, 127.0.0.1 or [::1] in the Host header",
        );
    }
    let session =
        needs.and_then(|(_, id)| id).map(percent_decode).filter(|id| valid_session_id(id));
    let who = match needs {
        None => "anonymous".to_string(),
        Some((role, id)) => {
            let now = Instant::now();
            if let Some(refused) = limited(&app, peer, &path, now) {
                return refused;
            }
            let decoded = id.map(percent_decode);
            // WhisperLive names its room in `?session=`, else by its uid: a token
            // of one session must name it in the query.
            // So does OpenAI's realtime transcription.
            let named = whisperlive || path == realtime::PATH;
            let room = named.then(|| query_param(request.uri().query(), "session")).flatten();
            let scope = match (&decoded, path.as_str()) {
                (Some(id), _) => Scope::Session(id),
                (None, _) if named => room.as_deref().map_or(Scope::Server, Scope::Session),
                (None, "/metrics" | openai::PATH) => Scope::Server,
                (None, _) => Scope::Page,
            };
            let token = auth::presented_token(
                header(headers, header::AUTHORIZATION),
                query_token(request.uri().query()).as_deref(),
            )
            .map(str::to_string);
            match auth::authorize(&config.tokens, token.as_deref(), role, scope) {
                Ok(who) => who.to_string(),
                Err(denied) => {
                    return refuse(hub, &app, peer, &path, session.as_deref(), denied, now)
                }
            }
        }
    };
    if let Some(refused) = origin_refused(hub, peer, &path, session.as_deref(), headers) {
        return refused;
    }
    let client = Client { addr: peer, token: (!config.tokens.is_empty()).then(|| who.clone()) };
    request.extensions_mut().insert(Caller { who, client });
    next.run(request).await
}

/// `/streaming-whisper/ws/{meeting}`: a Jitsi JWT is the credential, not a
/// cantocap token (404 without a `[jitsi]` table). Refused JWTs count against the
/// address as failed tokens do, and are audited.
async fn jitsi_gate(
    app: &App,
    peer: SocketAddr,
    mut request: Request,
    next: Next,
    path: &str,
    meeting: &str,
) -> Response {
    let hub = &app.hub;
    let Some(jitsi) = &hub.config.jitsi else {
        return json_error(path, StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    };
    let now = Instant::now();
    if let Some(refused) = limited(app, peer, path, now) {
        return refused;
    }
    let headers = request.headers();
    let session = Some(meeting).filter(|id| valid_session_id(id));
    let query_token = query_param(request.uri().query(), "auth_token");
    let token =
        auth::presented_token(header(headers, header::AUTHORIZATION), query_token.as_deref());
    let kid = match jitsi.verify(token) {
        Ok(kid) => kid,
        Err(refusal) => {
            count_failure(hub, app, peer, now);
            hub.log(format_args!("{peer}: {path} refused: {}", refusal.code()));
            audit_refusal(hub, peer, session, &format!("jitsi_{}", refusal.code()));
            let mut response =
                json_error(path, StatusCode::UNAUTHORIZED, refusal.code(), &refusal.message());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("ascii"));
            return response;
        }
    };
    if let Some(refused) = origin_refused(hub, peer, path, session, headers) {
        return refused;
    }
    let who = format!("jitsi:{kid}");
    let client = Client { addr: peer, token: Some(who.clone()) };
    request.extensions_mut().insert(Caller { who, client });
    next.run(request).await
}

/// 429 while the address is over its failed authentications.
fn limited(app: &App, peer: SocketAddr, path: &str, now: Instant) -> Option<Response> {
    let Verdict::Limited(wait) = app.limiter.check(peer.ip(), now) else { return None };
    let secs = wait.as_secs().max(1).to_string();
    let mut refused = json_error(
        path,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed authentications from this address; try again later",
    );
    refused.headers_mut().insert(header::RETRY_AFTER, secs.parse().expect("digits"));
    Some(refused)
}

/// 403 for a WebSocket upgrade from a browser page of another origin.
fn origin_refused(
    hub: &Hub,
    peer: SocketAddr,
    path: &str,
    session: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let allowed = auth::origin_allowed(
        header(headers, header::ORIGIN),
        header(headers, header::HOST),
        &hub.config.allowed_origins,
    );
    if !ws::is_websocket(headers) || allowed {
        return None;
    }
    hub.log(format_args!("{peer}: {path} refused: origin not allowed"));
    audit_refusal(hub, peer, session, "origin_not_allowed");
    Some(json_error(path, StatusCode::FORBIDDEN, "forbidden", "this Origin is not allowed"))
}

/// `%XX` escapes of a path segment (axum decodes the path parameters the same way).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn audit_refusal(hub: &Hub, peer: SocketAddr, session: Option<&str>, why: &str) {
    let mut entry = audit::Entry::new(audit::Event::AuthFailed).client(peer).detail(why);
    entry.session = session.map(str::to_string);
    hub.audit(entry);
}

/// Count a failed authentication against the address; one aggregated audit record
/// for the refusals of a rate-limited burst that ended.
fn count_failure(hub: &Hub, app: &App, peer: SocketAddr, now: Instant) {
    if let Some(suppressed) = app.limiter.failed(peer.ip(), now) {
        hub.log(format_args!(
            "{peer}: {suppressed} more requests refused while rate limited (failed authentication)"
        ));
        audit_refusal(hub, peer, None, &format!("rate_limited: {suppressed} requests refused"));
    }
}

/// Answer a failed authentication: 401 or 403, counted against the address; one
/// aggregated audit record for the refusals of a rate-limited burst.
fn refuse(
    hub: &Hub,
    app: &App,
    peer: SocketAddr,
    path: &str,
    session: Option<&str>,
    denied: Denied,
    now: Instant,
) -> Response {
    count_failure(hub, app, peer, now);
    let (status, code, why, message) = match denied {
        Denied::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no valid token",
            "a valid bearer token is needed (Authorization: Bearer or ?token=)",
        ),
        Denied::Expired => (
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "token expired",
            "this token has expired; ask the operator for a new one",
        ),
        Denied::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", why, why),
    };
    hub.log(format_args!("{peer}: {path} refused: {why}"));
    audit_refusal(
        hub,
        peer,
        session,
        match denied {
            Denied::Unauthorized => "unauthorized",
            Denied::Expired => "token_expired",
            Denied::Forbidden(_) => "forbidden_role",
        },
    );
    let mut response = json_error(path, status, code, message);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("ascii"));
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:8787",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:9",
            "LOCALHOST:1",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8787",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:1",
            "",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn failed_authentication_is_limited_per_address_and_window() {
        let limiter = AuthLimiter::default();
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.check(a, t0), Verdict::Open);
            assert_eq!(limiter.failed(a, t0), None);
        }
        assert!(matches!(limiter.check(a, t0), Verdict::Limited(_)));
        assert!(
            matches!(limiter.check(a, t0 + Duration::from_secs(3)), Verdict::Limited(w) if w <= Duration::from_secs(7))
        );
        assert_eq!(limiter.check(b, t0), Verdict::Open, "other addresses are not limited");
        let later = t0 + WINDOW;
        assert_eq!(limiter.check(a, later), Verdict::Open, "the window ends");
        assert_eq!(limiter.failed(a, later), Some(2), "the burst is reported once");
        assert_eq!(limiter.failed(a, later), None);
    }

    #[test]
    fn routes_and_what_they_need() {
        assert_eq!(needs("/livez", false), Ok(None));
        assert_eq!(needs("/v1/ingest/x", false), Ok(Some((Role::Ingest, Some("x")))));
        assert_eq!(needs("/v1/sessions/x/transcript", false), Ok(Some((Role::View, Some("x")))));
        assert_eq!(needs("/nope", false), Err(()));
        assert_eq!(needs("/", false), Ok(Some((Role::View, None))));
        assert_eq!(needs("/", true), Ok(Some((Role::Ingest, None))));
        assert_eq!(needs("/anything", true), Ok(Some((Role::Ingest, None))));
        assert_eq!(needs("/v1/audio/transcriptions", false), Ok(Some((Role::Ingest, None))));
        assert_eq!(needs("/v1/audio/translations", false), Err(()));
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }
}
