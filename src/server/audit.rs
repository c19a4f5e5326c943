//! The server's side of the audit log ([`crate::privacy::audit`]): who a
//! connection is, and the hub's helper that never lets an audit failure take a
//! session down.

pub use crate::privacy::audit::*;

use std::net::SocketAddr;

/// Who is on the other end of a connection, for audit records.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    /// The token's name; `None` for anonymous.
    pub(crate) token: Option<String>,
}

impl Client {
    /// An entry about this client.
    pub(crate) fn entry(&self, event: Event) -> Entry {
        Entry::new(event).client(self.addr).token_name(self.token.as_deref())
    }
}

/// The `detail` of `config_loaded`: what was configured, never a secret.
pub(crate) fn config_summary(config: &super::ServerConfig, addr: SocketAddr) -> String {
    format!(
        "listen={addr} tokens={} data_dir={} retention={} record_audio={}",
        config.tokens.len(),
        if config.data_dir.is_some() { "yes" } else { "no" },
        config
            .retention
            .map_or("forever".to_string(), |r| crate::privacy::retention::Retention(r).to_string()),
        if config.record_audio { "on" } else { "off" },
    )
}

impl super::Hub {
    /// Record an entry if the server keeps an audit log; a failure is logged, never
    /// passed on (the audit log must not take sessions down).
    pub(crate) fn audit(&self, entry: Entry) {
        if let Some(log) = &self.audit {
            if let Err(e) = log.append(entry) {
                tracing::error!("audit log: {e}");
            }
        }
    }
}
