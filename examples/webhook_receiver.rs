//! CANTOCAP_WEBHOOK_SECRET=… cargo run --release --example webhook_receiver -- 127.0.0.1:9000
//!
//! A webhook receiver for `cantocap serve --webhook http://127.0.0.1:9000/`: accepts
//! POSTs, checks the `Cantocap-Signature` header with
//! `cantocap::server::webhook::verify` (constant-time compare, 5-minute tolerance),
//! skips deliveries it has already seen (`Cantocap-Delivery`) and prints each event.
//! Answers 204 when accepted, 401 on a bad signature, 400 on a malformed request.
//! A real receiver would store the event before answering 2xx, and keep the seen
//! delivery ids in its database rather than in memory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cantocap::server::webhook::{verify, DEFAULT_TOLERANCE, SECRET_ENV};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Largest body accepted (a final is well under 1 KiB).
const MAX_BODY: usize = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let secret = std::env::var(SECRET_ENV).map_err(|_| format!("set ${SECRET_ENV}"))?;
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("webhook_receiver: listening on http://{}", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let (secret, seen) = (secret.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            if let Err(e) = serve(stream, secret.as_bytes(), &seen).await {
                eprintln!("webhook_receiver: {e}");
            }
        });
    }
}

async fn serve(
    mut stream: TcpStream,
    secret: &[u8],
    seen: &Mutex<HashSet<String>>,
) -> Result<(), Error> {
    let Some((head, body)) = read_request(&mut stream).await? else {
        return reply(&mut stream, 400).await;
    };
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let (Some(signature), Some(delivery)) =
        (header("cantocap-signature"), header("cantocap-delivery"))
    else {
        return reply(&mut stream, 400).await;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // Verify the raw bytes, before parsing them.
    if let Err(e) = verify(secret, &signature, &body, now, DEFAULT_TOLERANCE) {
        eprintln!("webhook_receiver: refused delivery {delivery}: {e}");
        return reply(&mut stream, 401).await;
    }
    let fresh = seen.lock().unwrap_or_else(|e| e.into_inner()).insert(delivery.clone());
    if fresh {
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        eprintln!("webhook_receiver: delivery {delivery} again (a retry); already handled");
    }
    reply(&mut stream, 204).await
}

/// The request head and a Content-Length body; `None` when malformed.
async fn read_request(stream: &mut TcpStream) -> Result<Option<(String, Vec<u8>)>, Error> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 16 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let Some(length) = length.filter(|&n| n <= MAX_BODY) else {
        return Ok(None);
    };
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some((head, body)))
}

async fn reply(stream: &mut TcpStream, status: u16) -> Result<(), Error> {
    let head = format!("HTTP/1.1 {status} \r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    Ok(stream.shutdown().await?)
}
