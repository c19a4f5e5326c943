//! A tiny HTTP/1.1 front: reads one request head, answers plain GETs, and upgrades
//! WebSocket requests. One request per connection (`Connection: close`), over plain
//! TCP or TLS alike.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::tls::Conn;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// As sent (still percent-encoded); decode it segment by segment.
    pub(crate) path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn is_websocket(&self) -> bool {
        self.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// Read a request head; also returns bytes read past it.
pub(crate) async fn read_request(
    stream: &mut Conn,
    timeout: Duration,
) -> io::Result<(Request, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let end = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a request",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(end + 4);
            }
            if buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request head is not UTF-8"))?;
    let request = parse_head(head)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed request"))?;
    Ok((request, buf[end..].to_vec()))
}

fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    first.next().filter(|v| v.starts_with("HTTP/1."))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect::<Option<Vec<_>>>()?;
    Some(Request { method, path: path.to_string(), query, headers })
}

/// Decode `%XX` escapes and `+` (as a space in queries).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A complete response.
pub(crate) fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        out.push_str("WWW-Authenticate: Bearer\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Write a response and close.
pub(crate) async fn respond(mut stream: Conn, status: u16, content_type: &str, body: &[u8]) {
    let _ = stream.write_all(&response(status, content_type, body)).await;
    let _ = stream.shutdown().await;
}

/// A JSON error body for refused HTTP requests.
pub(crate) fn json_error(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string().into_bytes()
}

/// Complete the WebSocket handshake; `None` (after answering 400) if the request is
/// not a valid upgrade.
pub(crate) async fn upgrade(
    mut stream: Conn,
    request: &Request,
    leftover: Vec<u8>,
    max_message: usize,
) -> Option<WebSocketStream<Conn>> {
    let key = request.header("sec-websocket-key");
    let version_ok = request.header("sec-websocket-version") == Some("13");
    let Some(key) = key.filter(|_| version_ok && request.method == "GET") else {
        respond(
            stream,
            400,
            "application/json",
            &json_error("bad_request", "not a WebSocket version 13 upgrade"),
        )
        .await;
        return None;
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    // The read buffer is allocated up front, 128 KiB by default: viewers, whose
    // messages are tiny, get a small one (1,000 viewers: 4 MiB instead of 128).
    let config = WebSocketConfig::default()
        .read_buffer_size(max_message.min(128 * 1024))
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    Some(WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_head() {
        let r = parse_head("GET /v1/captions/a%20b?script=hk&token=x%2By+z HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\n").unwrap();
        assert_eq!(r.path, "/v1/captions/a%20b");
        assert_eq!(r.query("script"), Some("hk"));
        assert_eq!(r.query("token"), Some("x+y z"));
        assert_eq!(r.header("host"), Some("h"));
        assert!(r.is_websocket());
        assert!(parse_head("GET /\r\n\r\n").is_none());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
