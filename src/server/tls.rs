//! TLS (https and wss) with rustls, and the connection type the HTTP front and the
//! WebSocket code read and write: plain TCP or TLS over TCP.
//!
//! The crypto provider is ring, passed explicitly to this server's rustls
//! configuration, so it works whatever process-wide default another part of the
//! program installs (or does not).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::{Error, Result};

/// The certificate chain and private key of a TLS server, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate first, then any intermediates (PEM `CERTIFICATE`
    /// blocks; a `fullchain.pem` as Let's Encrypt writes it).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY`).
    pub key: PathBuf,
}

fn bad(path: &Path, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::ServerConfig { reason: format!("TLS {what} {}: {reason}", path.display()) }
}

/// Read the files and build the acceptor; every problem (a missing or unreadable
/// file, no PEM block, a key that does not fit the certificate) is an error naming
/// the file, so the server refuses to start.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let pem = std::fs::read(&files.cert).map_err(|e| bad(&files.cert, "certificate", e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&files.cert, "certificate", format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "certificate", "no PEM CERTIFICATE block in the file"));
    }
    let pem = std::fs::read(&files.key).map_err(|e| bad(&files.key, "key", e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            bad(&files.key, "key", "no PEM private key block in the file")
        }
        e => bad(&files.key, "key", format!("not a valid PEM private key: {e}")),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ServerConfig { reason: format!("TLS: {e}") })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                &files.cert,
                "certificate",
                format!("cannot be used with the key {}: {e}", files.key.display()),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// One client connection: plain TCP or TLS over TCP.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        TlsFiles { cert: c, key: k }
    }

    fn message(files: &TlsFiles) -> String {
        match acceptor(files) {
            Ok(_) => panic!("accepted {files:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = files(dir.path(), &cert.pem(), &key.serialize_pem());
        assert!(acceptor(&good).is_ok());

        let missing = TlsFiles { cert: dir.path().join("nope.pem"), ..good.clone() };
        let e = message(&missing);
        assert!(e.contains("TLS certificate") && e.contains("nope.pem"), "{e}");

        let e = message(&files(dir.path(), "hello", &key.serialize_pem()));
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");

        let e = message(&files(dir.path(), &cert.pem(), &cert.pem()));
        assert!(e.contains("TLS key") && e.contains("no PEM private key"), "{e}");

        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let e = message(&files(dir.path(), broken, &key.serialize_pem()));
        assert!(e.contains("not valid PEM"), "{e}");

        let other = rcgen::KeyPair::generate().unwrap();
        let e = message(&files(dir.path(), &cert.pem(), &other.serialize_pem()));
        assert!(e.contains("cannot be used with the key"), "{e}");
    }
}
