//! Network controls of `cantocap serve`, in-process on port 0: the IP allow-list,
//! TLS (https and wss) with a self-signed certificate made here, and expiring,
//! session-scoped tokens. No model is loaded: handshakes and plain endpoints are
//! enough, so these tests are quick.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cantocap::server::{IpNet, Role, Server, ServerConfig, TlsFiles, TokenEntry};
use futures_util::StreamExt;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const WAIT: Duration = Duration::from_secs(20);

/// A server that never loads a model (the path does not exist): enough for
/// everything before decoding.
fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        model: dir.join("no-model.bin"),
        log: false,
        ..Default::default()
    }
}

/// Send a raw request head on any stream; the status and the whole response.
async fn raw_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
    headers: &str,
) -> (u16, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    // A reset after the answer is fine: what was read before it stays in `out`.
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect("no answer");
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

async fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    raw_get(TcpStream::connect(addr).await.unwrap(), path, headers).await
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// A TCP connection from a chosen local (source) address.
pub(crate) async fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let source = SocketAddr::new(source.parse().unwrap(), 0);
    let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(source)?;
    socket.connect(addr).await
}

/// The status of a WebSocket handshake on `url` (101 when upgraded).
async fn ws_status(url: &str, token: Option<&str>) -> u16 {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_refuses_other_addresses_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.allow_ips = vec!["127.0.0.1/32".parse().unwrap()];
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();

    // 127.0.0.2 is loopback too, but not on the list: a 403, never a 101.
    let denied = connect_from("127.0.0.2", addr).await.unwrap();
    let (status, response) = raw_get(denied, "/v1/captions/s", UPGRADE).await;
    assert_eq!(status, 403, "{response}");
    assert!(!response.contains("101") && !response.contains("Sec-WebSocket-Accept"));
    let denied = connect_from("127.0.0.2", addr).await.unwrap();
    let (status, _) = raw_get(denied, "/livez", "").await;
    assert_eq!(status, 403);
    // Through a real WebSocket client too.
    let denied = connect_from("127.0.0.2", addr).await.unwrap();
    match tokio_tungstenite::client_async(format!("ws://{addr}/v1/captions/s"), denied).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("expected a 403, got {e}"),
        Ok(_) => panic!("a denied address was upgraded"),
    }

    // 127.0.0.1 is served: plain requests and the WebSocket upgrade.
    let allowed = connect_from("127.0.0.1", addr).await.unwrap();
    let (status, body) = raw_get(allowed, "/livez", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ws_status(&format!("ws://{addr}/v1/captions/s"), None).await, 101);

    let (_, metrics) = get(addr, "/metrics", "").await;
    assert!(metrics.contains("cantocap_errors_total{kind=\"ip_denied\"} 3\n"), "{metrics}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_matches_ipv4_mapped_peers_on_a_dual_stack_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // On [::] an IPv4 client arrives as ::ffff:127.0.0.1 and must match 127.0.0.1.
    config.listen = "[::]:0".parse().unwrap();
    config.allow_anonymous = true;
    config.allow_ips = vec!["127.0.0.1".parse().unwrap(), "::1/128".parse().unwrap()];
    let server = Server::bind(config).await.unwrap();
    let port = server.local_addr().port();
    let v4: SocketAddr = ([127, 0, 0, 1], port).into();

    let (status, _) = raw_get(connect_from("127.0.0.1", v4).await.unwrap(), "/livez", "").await;
    assert_eq!(status, 200);
    let (status, _) = raw_get(connect_from("127.0.0.2", v4).await.unwrap(), "/livez", "").await;
    assert_eq!(status, 403);
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let (status, _) = raw_get(connect_from("::1", v6).await.unwrap(), "/livez", "").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

/// A self-signed certificate for `localhost`, written as PEM files.
fn self_signed(dir: &Path) -> (TlsFiles, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, cert.der().clone())
}

/// A TLS connection to the test server, checked against `localhost`.
async fn open(tls: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// Poll `/metrics` until it contains `line` (failures are counted by the server
/// task shortly after the client sees them).
async fn metrics_reach(addr: SocketAddr, tls: &TlsConnector, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, metrics) = raw_get(open(tls, addr).await, "/metrics", "").await;
        if metrics.contains(line) || tokio::time::Instant::now() > deadline {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TLS client that trusts only `cert`.
fn connector(cert: CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_wss_and_drops_plain_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (files, cert) = self_signed(dir.path());
    let mut config = config(dir.path());
    config.tls = Some(files.clone());
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let tls = connector(cert);

    let (status, response) = raw_get(open(&tls, addr).await, "/livez", "").await;
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("ok\n"), "{response}");
    // The overlay page picks wss: when it was loaded over https:.
    let (status, page) = raw_get(open(&tls, addr).await, "/", "").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"location.protocol === "https:" ? "wss://""#), "{page}");

    // A WebSocket over TLS: upgraded, then the server's first message arrives
    // through it (no such session yet: the viewer is told to wait).
    let (mut ws, response) = tokio_tungstenite::client_async(
        "wss://localhost/v1/captions/nobody",
        open(&tls, addr).await,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    let Message::Text(text) = first else { panic!("{first:?}") };
    let waiting: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(waiting["type"], "waiting", "{waiting}");

    // Plain HTTP on the TLS port: no answer, the connection just ends.
    let (status, response) = get(addr, "/livez", "").await;
    assert_eq!(status, 0, "{response}");
    assert!(!response.contains("ok"));
    // A client that does not trust the certificate fails its handshake.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let untrusting = connector(self_signed(&other).1);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let localhost = ServerName::try_from("localhost").unwrap();
    assert!(untrusting.connect(localhost, tcp).await.is_err());

    // The server is unharmed and counted both failures.
    let line = "cantocap_errors_total{kind=\"tls_handshake\"} 2\n";
    let metrics = metrics_reach(addr, &tls, line).await;
    assert!(metrics.contains(line), "{metrics}");
    server.shutdown().await;

    // A key that does not exist: the server refuses to start, naming the file.
    let mut config = self::config(dir.path());
    config.tls = Some(TlsFiles { key: dir.path().join("missing-key.pem"), ..files });
    let err = Server::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("TLS key") && err.contains("missing-key.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_session_scoped_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let token = |name: &str, roles: Vec<Role>| TokenEntry {
        name: name.into(),
        token: format!("{name}-secret-123"),
        roles,
        ..Default::default()
    };
    let day = Duration::from_secs(86_400);
    config.tokens = vec![
        TokenEntry { expires: Some(SystemTime::now() - day), ..token("old", vec![Role::Admin]) },
        TokenEntry {
            session: Some("room-1".into()),
            expires: Some(SystemTime::now() + day),
            ..token("room1", vec![Role::Ingest, Role::View])
        },
        TokenEntry { session: Some("room-1".into()), ..token("room1-admin", vec![Role::Admin]) },
        token("ops", vec![Role::Admin]),
    ];
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let bearer = |name: &str| format!("Authorization: Bearer {name}-secret-123\r\n");

    // Expired: 401 with its own code, everywhere, also for an admin token.
    let (status, body) = get(addr, "/metrics", &bearer("old")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"token_expired\""), "{body}");
    assert!(!body.contains("old-secret-123"));
    assert_eq!(
        ws_status(&format!("ws://{addr}/v1/ingest/room-1"), Some("old-secret-123")).await,
        401
    );

    // Scoped to room-1: served there, 403 in any other session.
    let ingest = |id: &str| format!("ws://{addr}/v1/ingest/{id}");
    let captions = |id: &str| format!("ws://{addr}/v1/captions/{id}");
    assert_eq!(ws_status(&ingest("room-1"), Some("room1-secret-123")).await, 101);
    assert_eq!(ws_status(&ingest("room-2"), Some("room1-secret-123")).await, 403);
    assert_eq!(ws_status(&captions("room-1"), Some("room1-secret-123")).await, 101);
    assert_eq!(ws_status(&captions("room-2"), Some("room1-secret-123")).await, 403);
    assert_eq!(
        ws_status(&format!("{}?token=room1-secret-123", captions("room-2")), None).await,
        403
    );
    // The transcript passes the token check for room-1 (then: no such session yet).
    let (status, body) = get(addr, "/v1/sessions/room-1/transcript", &bearer("room1")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown_session"), "{body}");
    let (status, body) = get(addr, "/v1/sessions/room-2/transcript", &bearer("room1")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("another session"), "{body}");
    // The overlay page belongs to no session: a scoped view token opens it.
    assert_eq!(get(addr, "/?session=room-1", &bearer("room1")).await.0, 200);

    // /metrics needs an admin token without a session.
    let (status, body) = get(addr, "/metrics", &bearer("room1-admin")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(get(addr, "/metrics", &bearer("room1")).await.0, 403);
    let (status, body) = get(addr, "/metrics", &bearer("ops")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ws_status(&ingest("room-2"), Some("ops-secret-123")).await, 101);
    server.shutdown().await;
}

#[test]
fn allow_list_entries_parse_as_the_cli_and_config_take_them() {
    let nets: Vec<IpNet> =
        ["10.0.0.0/8", "::1", "::ffff:0:0/96"].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(nets[1].to_string(), "::1/128");
    let e = "10.0.0.0/33".parse::<IpNet>().unwrap_err().to_string();
    assert!(e.contains("\"10.0.0.0/33\""), "{e}");
}

/// Run `cantocap serve ARGS`, expecting it to refuse to start; its stderr.
fn serve_refuses(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cantocap"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--model", "no-model.bin"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_refuses_bad_network_flags() {
    let e = serve_refuses(&["--allow-ip", "127.0.0.1/32", "--allow-ip", "10.0.0.0/33"]);
    assert!(e.contains("\"10.0.0.0/33\"") && e.contains("at most 32"), "{e}");
    let e = serve_refuses(&["--tls-cert", "cert.pem"]);
    assert!(e.contains("--tls-key"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let e = serve_refuses(&["--tls-cert", missing, "--tls-key", missing]);
    assert!(e.contains("TLS certificate") && e.contains("missing.pem"), "{e}");
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "allow_ips = [\"10.0.0.0/8\", \"not-an-ip\"]\n").unwrap();
    let e = serve_refuses(&["--config", config.to_str().unwrap()]);
    assert!(e.contains("serve.toml") && e.contains("\"not-an-ip\""), "{e}");
}
