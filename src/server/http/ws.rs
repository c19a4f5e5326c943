//! WebSocket upgrades: hyper's upgrade mechanism, tungstenite's handshake key and
//! socket. The socket loops (`ingest`, `viewers`) take a tokio-tungstenite
//! [`WebSocketStream`], so their frames, close codes and limits are exactly those
//! of tungstenite, whatever HTTP stack sits in front.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::json_error;

/// The socket type every WebSocket loop of the server reads and writes.
pub(crate) type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A valid WebSocket version 13 upgrade request. As an extractor it refuses
/// anything else: `426` for a plain GET, `400` for a broken handshake.
pub(crate) struct WsUpgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Whether a request asks for a WebSocket (whatever else is wrong with it).
pub(crate) fn is_websocket(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if !is_websocket(&parts.headers) {
            return Err(
                (StatusCode::UPGRADE_REQUIRED, "this endpoint is a WebSocket\n").into_response()
            );
        }
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY);
        let version_ok =
            parts.headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        match (key, on_upgrade) {
            (Some(key), Some(on_upgrade)) if version_ok && parts.method == Method::GET => {
                let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
                    .expect("base64 is a valid header value");
                Ok(Self { accept, on_upgrade })
            }
            _ => Err(json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "not a WebSocket version 13 upgrade",
            )),
        }
    }
}

impl WsUpgrade {
    /// Answer `101 Switching Protocols` and run `serve` on the socket once hyper
    /// hands the connection over. Messages (and frames) over `max_message` bytes
    /// are a capacity error on read.
    /// `task` is held until `serve` returns (shutdown waits for it).
    pub(crate) fn on_upgrade<F, Fut>(
        self,
        max_message: usize,
        task: super::TaskToken,
        serve: F,
    ) -> Response
    where
        F: FnOnce(Ws) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let span = tracing::Span::current();
        let on_upgrade = self.on_upgrade;
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let Ok(upgraded) = on_upgrade.await else { return };
                // The read buffer is allocated up front, 128 KiB by default: viewers,
                // whose messages are tiny, get a small one (1,000 viewers: 4 MiB, not 128).
                let config = WebSocketConfig::default()
                    .read_buffer_size(max_message.min(128 * 1024))
                    .max_message_size(Some(max_message))
                    .max_frame_size(Some(max_message));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(ws).await;
                drop(task);
            },
            span,
        ));
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept)
            .body(axum::body::Body::empty())
            .expect("a valid response")
    }
}
