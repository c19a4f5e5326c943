//! Ended sessions leave memory: a sweep drops every session that has had no ingest
//! connection and no viewer for `session_linger_secs`.
//!
//! With a data dir nothing is lost: the finals are in the journal, and the next
//! viewer, transcript request or ingest connection reads them back
//! ([`Registry::get`](super::session::Registry::get)). Without one the session's
//! finals go with it; the linger is then how long captions are kept after a
//! session ends, and a viewer that comes later gets `unknown_session`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{signalled, Hub};

/// How often to look: a quarter of the linger, between 100 ms and 30 s, so a
/// session goes at most a quarter late.
fn interval(linger: Duration) -> Duration {
    (linger / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

/// Sweep until the server shuts down.
pub(crate) async fn sweep(hub: Arc<Hub>) {
    let linger = Duration::from_secs(hub.config.limits.session_linger_secs);
    let mut shutdown = hub.shutdown.clone();
    loop {
        tokio::select! {
            _ = signalled(&mut shutdown) => return,
            _ = tokio::time::sleep(interval(linger)) => {}
        }
        for id in hub.sessions.evict_idle(linger, Instant::now()) {
            hub.log(format_args!(
                "session {id}: dropped from memory after {} s unused",
                linger.as_secs()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_often_enough_but_not_too_often() {
        assert_eq!(interval(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(interval(Duration::from_secs(600)), Duration::from_secs(30));
    }
}
