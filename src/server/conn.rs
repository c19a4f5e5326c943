//! From an accepted socket to a connection the HTTP front may read: the IP
//! allow-list first (before a byte of the request is read), then the TLS handshake
//! when the server has a certificate.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::Conn;
use super::{allow, http, Shared};

/// Time a client has to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The connection to serve, or `None` when the peer is refused (not on the
/// allow-list: a plain `403` on a plain port, a bare close on a TLS port) or its
/// TLS handshake fails. Both are counted and logged with the peer's address only.
pub(crate) async fn admit(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<Conn> {
    if !allow::allowed(&shared.config.allow_ips, peer.ip()) {
        shared.metrics.ip_denied.fetch_add(1, Relaxed);
        shared.log(format_args!("{}: refused: address not in allow_ips", peer.ip()));
        if shared.tls.is_none() {
            let body = http::json_error("forbidden", "this address may not connect");
            let _ = stream.write_all(&http::response(403, "application/json", &body)).await;
        }
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection, and the client
        // might never see the 403: discard a little of what it sent, unparsed.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                if matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        return None;
    }
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = &shared.tls else {
        return Some(Conn::Plain(stream));
    };
    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(Conn::Tls(Box::new(tls))),
        Ok(Err(e)) => {
            shared.metrics.tls_failed.fetch_add(1, Relaxed);
            shared.log(format_args!("{}: TLS handshake failed: {e}", peer.ip()));
            None
        }
        Err(_) => {
            shared.metrics.tls_failed.fetch_add(1, Relaxed);
            shared.log(format_args!("{}: TLS handshake timed out", peer.ip()));
            None
        }
    }
}
