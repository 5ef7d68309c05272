//! The server's counters and latency histograms, rendered as Prometheus text on the admin
//! listener's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;
use waguard::{CodeEffect, Decision};

/// The upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    decisions: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    send_errors: BTreeMap<(u32, String), u64>,
    webhook_items: BTreeMap<&'static str, u64>,
    store_failures: BTreeMap<&'static str, u64>,
    store_latency: BTreeMap<&'static str, Histogram>,
    store_errors: BTreeMap<&'static str, u64>,
}

/// The counters of one server. Cheap to update (one short lock), rendered on demand.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Counts one answered request on `route` (the matched route pattern) and its latency.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let mut r = self.registry.lock();
        *r.requests.entry((route.to_owned(), status)).or_default() += 1;
        match r.latency.get_mut(route) {
            Some(h) => h.observe(elapsed.as_secs_f64()),
            None => {
                let mut h = Histogram::default();
                h.observe(elapsed.as_secs_f64());
                r.latency.insert(route.to_owned(), h);
            }
        }
    }

    /// Counts one decision answered by `operation` (`check` or `reserve`).
    pub fn decision(&self, operation: &'static str, decision: &Decision) {
        let reason = decision.reason().map_or("none", |r| r.as_str());
        *self
            .registry
            .lock()
            .decisions
            .entry((operation, decision.kind(), reason))
            .or_default() += 1;
    }

    /// Counts one send error reported, by code and effect.
    pub fn send_error(&self, code: u32, effect: CodeEffect) {
        let effect = serde_json::to_value(effect)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        *self
            .registry
            .lock()
            .send_errors
            .entry((code, effect))
            .or_default() += 1;
    }

    /// Counts webhook items: `applied` events made durable, `ignored` items that carry nothing
    /// the guard decides by, `refused` items that could not be applied.
    pub fn webhook(&self, applied: usize, ignored: usize, refused: usize) {
        let mut r = self.registry.lock();
        for (outcome, n) in [
            ("applied", applied),
            ("ignored", ignored),
            ("refused", refused),
        ] {
            *r.webhook_items.entry(outcome).or_default() += n as u64;
        }
    }

    /// Counts one guard call that failed because the store could not answer.
    pub fn store_failure(&self, operation: &'static str) {
        *self
            .registry
            .lock()
            .store_failures
            .entry(operation)
            .or_default() += 1;
    }

    /// Times one store operation (what [`Observed`](waguard::observe::Observed) reports).
    pub fn store_operation(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let mut r = self.registry.lock();
        r.store_latency
            .entry(operation)
            .or_default()
            .observe(elapsed.as_secs_f64());
        if !ok {
            *r.store_errors.entry(operation).or_default() += 1;
        }
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let r = self.registry.lock();
        let mut out = String::with_capacity(4096);
        let _ = render_into(&r, &mut out);
        out
    }
}

fn render_into(r: &Registry, out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP waguard_http_requests_total HTTP requests answered, by route and status."
    )?;
    writeln!(out, "# TYPE waguard_http_requests_total counter")?;
    for ((route, status), n) in &r.requests {
        writeln!(
            out,
            "waguard_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            escape(route)
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_http_request_duration_seconds Time to answer a request, by route."
    )?;
    writeln!(
        out,
        "# TYPE waguard_http_request_duration_seconds histogram"
    )?;
    for (route, h) in &r.latency {
        let route = escape(route);
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
            writeln!(
                out,
                "waguard_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
            )?;
        }
        writeln!(
            out,
            "waguard_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            h.count
        )?;
        writeln!(
            out,
            "waguard_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
            h.sum
        )?;
        writeln!(
            out,
            "waguard_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
            h.count
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_decisions_total Decisions answered, by operation, kind and rules.md reason."
    )?;
    writeln!(out, "# TYPE waguard_decisions_total counter")?;
    for ((operation, kind, reason), n) in &r.decisions {
        writeln!(
            out,
            "waguard_decisions_total{{operation=\"{operation}\",decision=\"{kind}\",reason=\"{reason}\"}} {n}"
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_send_errors_total Send errors reported, by Meta error code and effect."
    )?;
    writeln!(out, "# TYPE waguard_send_errors_total counter")?;
    for ((code, effect), n) in &r.send_errors {
        writeln!(
            out,
            "waguard_send_errors_total{{code=\"{code}\",effect=\"{}\"}} {n}",
            escape(effect)
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_webhook_items_total Webhook items: applied (events made durable), ignored (items that carry nothing the guard decides by), refused (items that could not be applied)."
    )?;
    writeln!(out, "# TYPE waguard_webhook_items_total counter")?;
    for outcome in ["applied", "ignored", "refused"] {
        let n = r.webhook_items.get(outcome).copied().unwrap_or(0);
        writeln!(
            out,
            "waguard_webhook_items_total{{outcome=\"{outcome}\"}} {n}"
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_store_failures_total Guard calls that failed because the store could not answer."
    )?;
    writeln!(out, "# TYPE waguard_store_failures_total counter")?;
    for (operation, n) in &r.store_failures {
        writeln!(
            out,
            "waguard_store_failures_total{{operation=\"{operation}\"}} {n}"
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_store_operation_seconds Time of one store operation, by operation."
    )?;
    writeln!(out, "# TYPE waguard_store_operation_seconds histogram")?;
    for (operation, h) in &r.store_latency {
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
            writeln!(
                out,
                "waguard_store_operation_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {count}"
            )?;
        }
        writeln!(
            out,
            "waguard_store_operation_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}",
            h.count
        )?;
        writeln!(
            out,
            "waguard_store_operation_seconds_sum{{operation=\"{operation}\"}} {}",
            h.sum
        )?;
        writeln!(
            out,
            "waguard_store_operation_seconds_count{{operation=\"{operation}\"}} {}",
            h.count
        )?;
    }
    writeln!(
        out,
        "# HELP waguard_store_errors_total Store operations that failed, by operation."
    )?;
    writeln!(out, "# TYPE waguard_store_errors_total counter")?;
    for (operation, n) in &r.store_errors {
        writeln!(
            out,
            "waguard_store_errors_total{{operation=\"{operation}\"}} {n}"
        )?;
    }
    Ok(())
}

impl waguard::observe::StoreObserver for Metrics {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        self.store_operation(operation, elapsed, ok);
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/check", 200, Duration::from_micros(300));
        m.request("/v1/check", 200, Duration::from_millis(3));
        m.request("/v1/check", 401, Duration::from_micros(100));
        m.webhook(3, 1, 2);
        m.send_error(131047, CodeEffect::of(131047));
        let text = m.render();
        assert!(text.contains("waguard_http_requests_total{route=\"/v1/check\",status=\"200\"} 2"));
        assert!(text.contains("waguard_http_requests_total{route=\"/v1/check\",status=\"401\"} 1"));
        assert!(text.contains(
            "waguard_http_request_duration_seconds_bucket{route=\"/v1/check\",le=\"0.0005\"} 2"
        ));
        assert!(text.contains(
            "waguard_http_request_duration_seconds_bucket{route=\"/v1/check\",le=\"0.005\"} 3"
        ));
        assert!(text.contains("waguard_http_request_duration_seconds_count{route=\"/v1/check\"} 3"));
        assert!(text.contains("waguard_webhook_items_total{outcome=\"refused\"} 2"));
        assert!(text.contains("waguard_send_errors_total{code=\"131047\""));
    }
}
