//! Connections the gateway closed and calls it refused, counted in metrics
//! and logged as one summary line a second at most: a flood of silent
//! sockets or refused calls must not become a flood of log lines.

use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Why the gateway ended a connection or turned a call away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No TLS handshake, HTTP/2 preface and first call within
    /// `GATEWAY_HANDSHAKE_TIMEOUT`.
    HandshakeTimeout,
    /// The TLS handshake failed.
    TlsHandshakeFailed,
    /// No call open for `GATEWAY_IDLE_TIMEOUT`.
    Idle,
    /// Reached `GATEWAY_MAX_CONNECTION_AGE` (GOAWAY, then closed at the
    /// latest after the grace).
    MaxAge,
    /// A call refused because `GATEWAY_MAX_CONCURRENT_CALLS` were running.
    CallCap,
}

impl Closed {
    const ALL: [Closed; 5] = [
        Closed::HandshakeTimeout,
        Closed::TlsHandshakeFailed,
        Closed::Idle,
        Closed::MaxAge,
        Closed::CallCap,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::TlsHandshakeFailed => "tls_handshake_failed",
            Closed::Idle => "idle",
            Closed::MaxAge => "max_age",
            Closed::CallCap => "max_concurrent_calls",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How often the summary line is written at most.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Counts each closure in the metrics at once and in a pending tally that
/// [`Report::spawn`]'s task writes out once a second (and on drop).
pub struct Report {
    metrics: Arc<Metrics>,
    pending: [AtomicU64; Closed::ALL.len()],
}

impl Report {
    /// A report whose summary task runs while the report is in use.
    pub fn spawn(metrics: Arc<Metrics>) -> Arc<Self> {
        let report = Arc::new(Self {
            metrics,
            pending: Default::default(),
        });
        let weak: Weak<Self> = Arc::downgrade(&report);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(report) => report.flush(),
                    // Dropping the report flushed what was left.
                    None => return,
                }
            }
        });
        report
    }

    /// One connection closed or call refused.
    pub fn note(&self, why: Closed) {
        match why {
            Closed::CallCap => self.metrics.grpc_call_refused(why.label()),
            _ => self.metrics.grpc_connection_closed(why.label()),
        }
        self.pending[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Writes the tally since the last line, if there is any: normal
    /// closures (idle, age) at info, refusals at warn.
    fn flush(&self) {
        let mut n = [0_u64; Closed::ALL.len()];
        for why in Closed::ALL {
            n[why.index()] = self.pending[why.index()].swap(0, Ordering::Relaxed);
        }
        let count = |why: Closed| n[why.index()];
        let (timeout, tls, cap) = (
            count(Closed::HandshakeTimeout),
            count(Closed::TlsHandshakeFailed),
            count(Closed::CallCap),
        );
        if timeout + tls + cap > 0 {
            tracing::warn!(
                handshake_timeout = timeout,
                tls_handshake_failed = tls,
                max_concurrent_calls = cap,
                "gRPC connections closed before their first call, or calls refused at the concurrent-call cap, since the last report"
            );
        }
        let (idle, aged) = (count(Closed::Idle), count(Closed::MaxAge));
        if idle + aged > 0 {
            tracing::info!(
                idle,
                max_age = aged,
                "gRPC connections closed idle or at their maximum age since the last report"
            );
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.flush();
    }
}
