//! The server's retention task: [`crate::privacy::retention::purge`] at start and
//! every `min(1 h, limit / 10)`, skipping sessions with an active ingest.

pub use crate::privacy::retention::*;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{signalled, Hub};

/// How often the server purges: every `min(1 h, retention / 10)`, at least 1 s.
pub(crate) fn interval(retention: Duration) -> Duration {
    (retention / 10).min(Duration::from_secs(3600)).max(Duration::from_secs(1))
}

/// The server's retention task: purge now and on every interval until shutdown.
pub(crate) async fn run(hub: Arc<Hub>, retention: Duration) {
    let mut shutdown = hub.shutdown.clone();
    loop {
        let pass = {
            let hub = Arc::clone(&hub);
            tokio::task::spawn_blocking(move || pass(&hub, retention))
        };
        let _ = pass.await;
        tokio::select! {
            _ = signalled(&mut shutdown) => return,
            _ = tokio::time::sleep(interval(retention)) => {}
        }
    }
}

fn pass(hub: &Hub, retention: Duration) {
    let Some(dir) = &hub.config.data_dir else { return };
    let busy = |id: &str| hub.sessions.is_ingesting(id);
    let except: Vec<PathBuf> = hub.audit.iter().map(|log| log.path().to_path_buf()).collect();
    match purge(dir, retention, SystemTime::now(), false, &busy, &except) {
        Ok(report) => {
            hub.sessions.forget(&report.sessions);
            if report.files.is_empty() {
                return;
            }
            hub.log(format_args!(
                "retention: removed {} session(s), {} file(s)",
                report.sessions.len(),
                report.files.len()
            ));
            if let Some(log) = &hub.audit {
                if let Err(e) = audit_purge(log, &report, Retention(retention), "retention") {
                    tracing::error!("audit log: {e}");
                }
            }
        }
        Err(e) => hub.log(format_args!("retention: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_hourly_at_most_and_every_second_at_least() {
        assert_eq!(interval(Duration::from_secs(30 * 86_400)), Duration::from_secs(3600));
        assert_eq!(interval(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(interval(Duration::from_secs(5)), Duration::from_secs(1));
    }
}
