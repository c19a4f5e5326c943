//! Counters for `/metrics`, in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::protocol::ErrorCode;
use crate::text::{RedactionCounts, RedactionKind};

/// Bucket bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 10] = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0];

/// A histogram of seconds with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Record one observation, in ms.
    pub fn observe_ms(&self, ms: u64) {
        let s = ms as f64 / 1000.0;
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(ms, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_ms.load(Relaxed) as f64 / 1000.0);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Webhook deliveries (see [`super::webhook`]), shared with the webhook workers.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Delivered (the receiver answered 2xx).
    pub ok: AtomicU64,
    /// Given up: attempts used up, or a status that is not retried (4xx other than 429).
    pub failed: AtomicU64,
    /// Never attempted: the queue was full, or the server stopped before its turn.
    pub dropped: AtomicU64,
    /// Retries (attempts after the first).
    pub retries: AtomicU64,
    /// Waiting in the queues now.
    pub queued: AtomicU64,
}

impl WebhookCounters {
    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP cantocap_webhook_deliveries_total Webhook deliveries by result.\n# TYPE cantocap_webhook_deliveries_total counter"
        );
        for (result, n) in [("ok", &self.ok), ("failed", &self.failed), ("dropped", &self.dropped)]
        {
            let _ = writeln!(
                out,
                "cantocap_webhook_deliveries_total{{result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cantocap_webhook_retries_total Webhook attempts after the first.\n# TYPE cantocap_webhook_retries_total counter\ncantocap_webhook_retries_total {}",
            self.retries.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cantocap_webhook_queued Webhook deliveries waiting now.\n# TYPE cantocap_webhook_queued gauge\ncantocap_webhook_queued {}",
            self.queued.load(Relaxed)
        );
    }
}

/// The server's counters. All are lock-free; reading them never blocks a session.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Ingest sessions decoding now.
    pub sessions: AtomicU64,
    /// Ingest sessions accepted since start.
    pub sessions_total: AtomicU64,
    /// Viewers connected now.
    pub viewers: AtomicU64,
    /// Audio received, in ms.
    pub audio_ms: AtomicU64,
    /// Finals emitted.
    pub finals: AtomicU64,
    /// Partials emitted.
    pub partials: AtomicU64,
    /// Times a viewer fell behind the broadcast and skipped partials.
    pub viewer_lagged: AtomicU64,
    /// Wall time from the end of an utterance's audio reaching the server to its final.
    pub final_latency: Histogram,
    /// How far decoding was behind its schedule (the engine's `lag_ms`).
    pub decode_lag: Histogram,
    /// Connections refused by the IP allow-list (`kind="ip_denied"`).
    pub ip_denied: AtomicU64,
    /// TLS handshakes that failed or timed out (`kind="tls_handshake"`).
    pub tls_failed: AtomicU64,
    /// Webhook deliveries.
    pub webhooks: Arc<WebhookCounters>,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    redactions: [AtomicU64; RedactionKind::ALL.len()],
}

impl Metrics {
    /// Count an error sent to a client.
    pub fn error(&self, code: ErrorCode) {
        self.errors[code.ordinal()].fetch_add(1, Relaxed);
    }

    /// Count items redacted from finals.
    pub fn redacted(&self, counts: RedactionCounts) {
        for (i, kind) in RedactionKind::ALL.into_iter().enumerate() {
            self.redactions[i].fetch_add(counts.get(kind), Relaxed);
        }
    }

    /// Everything, as Prometheus text.
    pub fn render(&self, ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        let count = |n: &AtomicU64| n.load(Relaxed).to_string();
        let scalars = [
            ("cantocap_ready", "1 once the model is loaded.", "gauge", u8::from(ready).to_string()),
            ("cantocap_sessions", "Ingest sessions active now.", "gauge", count(&self.sessions)),
            (
                "cantocap_sessions_total",
                "Ingest sessions accepted.",
                "counter",
                count(&self.sessions_total),
            ),
            ("cantocap_viewers", "Caption viewers connected now.", "gauge", count(&self.viewers)),
            (
                "cantocap_audio_seconds_total",
                "Audio received from ingest clients.",
                "counter",
                (self.audio_ms.load(Relaxed) as f64 / 1000.0).to_string(),
            ),
            ("cantocap_finals_total", "Final caption events.", "counter", count(&self.finals)),
            (
                "cantocap_partials_total",
                "Partial caption events.",
                "counter",
                count(&self.partials),
            ),
            (
                "cantocap_viewer_lagged_total",
                "Times a viewer fell behind and skipped stale partials.",
                "counter",
                count(&self.viewer_lagged),
            ),
        ];
        for (name, help, kind, value) in scalars {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        self.final_latency.render(
            &mut out,
            "cantocap_final_latency_seconds",
            "Wall time from the end of an utterance's audio reaching the server to its final.",
        );
        self.decode_lag.render(
            &mut out,
            "cantocap_decode_lag_seconds",
            "How far decoding was behind schedule per event.",
        );
        let _ = writeln!(
            out,
            "# HELP cantocap_errors_total Errors sent to clients, by code.\n# TYPE cantocap_errors_total counter"
        );
        for code in ErrorCode::ALL {
            let _ = writeln!(
                out,
                "cantocap_errors_total{{kind=\"{}\"}} {}",
                code.name(),
                self.errors[code.ordinal()].load(Relaxed)
            );
        }
        // Refused before any HTTP, so not protocol error codes.
        for (kind, count) in [("ip_denied", &self.ip_denied), ("tls_handshake", &self.tls_failed)] {
            let _ =
                writeln!(out, "cantocap_errors_total{{kind=\"{kind}\"}} {}", count.load(Relaxed));
        }
        self.webhooks.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP cantocap_redactions_total Personal data items redacted from finals, by kind.\n# TYPE cantocap_redactions_total counter"
        );
        for (i, kind) in RedactionKind::ALL.into_iter().enumerate() {
            let count = self.redactions[i].load(Relaxed);
            let _ = writeln!(out, "cantocap_redactions_total{{kind=\"{kind}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.final_latency.observe_ms(700);
        m.final_latency.observe_ms(30_000);
        m.error(ErrorCode::TooFast);
        m.ip_denied.fetch_add(2, Relaxed);
        m.redacted(RedactionCounts { phone: 2, hkid: 1, ..Default::default() });
        let text = m.render(true);
        assert!(text.contains("cantocap_final_latency_seconds_bucket{le=\"1\"} 1\n"), "{text}");
        assert!(text.contains("cantocap_final_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("cantocap_final_latency_seconds_sum 30.7\n"));
        assert!(text.contains("cantocap_errors_total{kind=\"too_fast\"} 1\n"));
        assert!(text.contains("cantocap_ready 1\n"));
        assert!(text.contains("cantocap_errors_total{kind=\"ip_denied\"} 2\n"), "{text}");
        assert!(text.contains("cantocap_errors_total{kind=\"tls_handshake\"} 0\n"));
        m.webhooks.dropped.fetch_add(3, Relaxed);
        let text = m.render(true);
        assert!(
            text.contains("cantocap_webhook_deliveries_total{result=\"dropped\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("cantocap_webhook_deliveries_total{result=\"ok\"} 0\n"));
        assert!(text.contains("cantocap_redactions_total{kind=\"phone\"} 2\n"), "{text}");
        assert!(text.contains("cantocap_redactions_total{kind=\"hkid\"} 1\n"));
        assert!(text.contains("cantocap_redactions_total{kind=\"account\"} 0\n"));
    }
}
