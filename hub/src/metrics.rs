//! Prometheus text metrics (`GET /metrics`), kept in memory without a metrics crate: a few
//! counters and one latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const DELTA_BUCKETS_MS: [f64; 9] = [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];

/// The hub's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    push_ops: Mutex<BTreeMap<&'static str, u64>>,
    ws_connections: AtomicI64,
    ws_frames_sent: AtomicU64,
    delta_buckets: [AtomicU64; 9],
    delta_count: AtomicU64,
    delta_sum_us: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One request answered.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        *lock(&self.requests)
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
    }

    /// One pushed op's outcome.
    pub fn push_op(&self, outcome: &'static str) {
        *lock(&self.push_ops).entry(outcome).or_default() += 1;
    }

    /// A WebSocket opened (+1) or closed (−1).
    pub fn ws_connections(&self, delta: i64) {
        self.ws_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// A change frame sent.
    pub fn ws_frame(&self) {
        self.ws_frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One delta page served.
    pub fn delta(&self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        for (b, limit) in self.delta_buckets.iter().zip(DELTA_BUCKETS_MS) {
            if ms <= limit {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.delta_count.fetch_add(1, Ordering::Relaxed);
        self.delta_sum_us.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP stocksync_http_requests_total Requests answered, by route and status."
        );
        let _ = writeln!(s, "# TYPE stocksync_http_requests_total counter");
        for ((route, method, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                s,
                "stocksync_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        let _ = writeln!(s, "# HELP stocksync_push_ops_total Pushed ops, by outcome.");
        let _ = writeln!(s, "# TYPE stocksync_push_ops_total counter");
        for (outcome, n) in lock(&self.push_ops).iter() {
            let _ = writeln!(s, "stocksync_push_ops_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP stocksync_ws_connections Open WebSocket connections."
        );
        let _ = writeln!(s, "# TYPE stocksync_ws_connections gauge");
        let _ = writeln!(
            s,
            "stocksync_ws_connections {}",
            self.ws_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP stocksync_ws_frames_sent_total Change frames sent to subscribers."
        );
        let _ = writeln!(s, "# TYPE stocksync_ws_frames_sent_total counter");
        let _ = writeln!(
            s,
            "stocksync_ws_frames_sent_total {}",
            self.ws_frames_sent.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP stocksync_delta_duration_seconds Time to serve a delta page."
        );
        let _ = writeln!(s, "# TYPE stocksync_delta_duration_seconds histogram");
        for (b, limit) in self.delta_buckets.iter().zip(DELTA_BUCKETS_MS) {
            let _ = writeln!(
                s,
                "stocksync_delta_duration_seconds_bucket{{le=\"{}\"}} {}",
                limit / 1000.0,
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.delta_count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "stocksync_delta_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "stocksync_delta_duration_seconds_sum {}",
            self.delta_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "stocksync_delta_duration_seconds_count {count}");
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
