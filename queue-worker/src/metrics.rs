//! The worker's Prometheus metrics, served as text on `GET /metrics`.
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `queue_worker_attempts_total` | counter | `function_name` | invocations of functions |
//! | `queue_worker_retries_total` | counter | `function_name` | retries scheduled (NAK with a delay) |
//! | `queue_worker_dead_letters_total` | counter | `function_name`, `reason` | calls dead-lettered: `attempts_exhausted`, `expired`, `callback_failed` |
//! | `queue_worker_callbacks_total` | counter | `outcome` | callback deliveries: `delivered`, `retrying` (failed, retry scheduled), `failed` (given up) |
//! | `queue_worker_messages_total` | counter | `outcome` | call messages handled, by what became of them (below) |
//! | `queue_worker_inflight` | gauge | | call messages being worked on |
//! | `queue_worker_end_to_end_seconds` | histogram | `state` | submission (JetStream storage time) → final state |
//! | `queue_worker_pending_messages` | gauge | `queue_name`, `function_name` | calls stored per queue and function, waiting or being worked on, for every queue (one without a worker too; read from JetStream at scrape time, absent when none) |
//!
//! Message outcomes: `succeeded`, `failed` (the function's final answer, whether or not its
//! callback is still being retried), `retried`, `dead_lettered`, `expired`, `cancelled`,
//! `duplicate` (already settled by an earlier delivery), `deferred` (the function was at its
//! concurrency cap), `invalid` (terminated), `requeued` (handed back after an infrastructure
//! error, e.g. the dead-letter stream unavailable).
//!
//! `function_name` is `name.namespace`. Every worker of a queue reports the same pending
//! counts: aggregate them with `max`, not `sum`. Every metric is registered in the worker's
//! own [`Registry`]; nothing global.

use std::time::Duration;

use ferry_proto::jetstream::{CALLS_STREAM, CALLS_SUBJECT_PREFIX};
use futures_util::TryStreamExt as _;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Longest a scrape waits for JetStream's pending counts.
const PENDING_TIMEOUT: Duration = Duration::from_secs(2);

/// End-to-end latency buckets, in seconds: from a tenth of a second to a day.
const BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// The worker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `queue_worker_attempts_total{function_name}`.
    pub attempts: IntCounterVec,
    /// `queue_worker_retries_total{function_name}`.
    pub retries: IntCounterVec,
    /// `queue_worker_dead_letters_total{function_name,reason}`.
    pub dead_letters: IntCounterVec,
    /// `queue_worker_callbacks_total{outcome}`.
    pub callbacks: IntCounterVec,
    /// `queue_worker_messages_total{outcome}`.
    pub messages: IntCounterVec,
    /// `queue_worker_inflight`.
    pub inflight: IntGauge,
    /// `queue_worker_end_to_end_seconds{state}`.
    pub end_to_end: HistogramVec,
    /// `queue_worker_pending_messages{queue_name,function_name}`.
    pub pending: IntGaugeVec,
}

impl Metrics {
    /// The registry, for metrics registered elsewhere (scaling from zero).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers every metric in a new registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registering a metric once");
            c
        };
        let attempts = counter(
            "queue_worker_attempts_total",
            "Function invocations made by the queue-worker.",
            &["function_name"],
        );
        let retries = counter(
            "queue_worker_retries_total",
            "Invocations that failed with a retryable error and were scheduled again.",
            &["function_name"],
        );
        let dead_letters = counter(
            "queue_worker_dead_letters_total",
            "Calls published to the dead-letter stream, by reason.",
            &["function_name", "reason"],
        );
        let callbacks = counter(
            "queue_worker_callbacks_total",
            "Callback deliveries, by outcome (delivered, retrying, failed).",
            &["outcome"],
        );
        let messages = counter(
            "queue_worker_messages_total",
            "Queued call messages handled, by outcome.",
            &["outcome"],
        );
        let inflight = IntGauge::new(
            "queue_worker_inflight",
            "Call messages the queue-worker is working on.",
        )
        .expect("a valid metric");
        registry
            .register(Box::new(inflight.clone()))
            .expect("registering a metric once");
        let end_to_end = HistogramVec::new(
            HistogramOpts::new(
                "queue_worker_end_to_end_seconds",
                "Seconds from a call's submission to its final state, by state.",
            )
            .buckets(BUCKETS.to_vec()),
            &["state"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(end_to_end.clone()))
            .expect("registering a metric once");
        let pending = IntGaugeVec::new(
            Opts::new(
                "queue_worker_pending_messages",
                "Calls stored on a queue for a function, waiting or being worked on.",
            ),
            &["queue_name", "function_name"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(pending.clone()))
            .expect("registering a metric once");
        Metrics {
            registry,
            pending,
            attempts,
            retries,
            dead_letters,
            callbacks,
            messages,
            inflight,
            end_to_end,
        }
    }

    /// Counts one call message with `outcome`.
    pub fn message(&self, outcome: &str) {
        self.messages.with_label_values(&[outcome]).inc();
    }

    /// Counts one callback delivery with `outcome`.
    pub fn callback(&self, outcome: &str) {
        self.callbacks.with_label_values(&[outcome]).inc();
    }

    /// Sets `queue_worker_pending_messages` from the calls stream's per-subject counts
    /// (`ferry.calls.<queue>.<name>.<namespace>`); on a failure the last values stay.
    pub async fn refresh_pending(&self, client: &async_nats::Client) {
        let js = async_nats::jetstream::new(client.clone());
        let prefix = format!("{CALLS_SUBJECT_PREFIX}.");
        let count = async {
            let stream = js
                .get_stream(CALLS_STREAM)
                .await
                .map_err(|e| e.to_string())?;
            let mut subjects = stream
                .info_with_subjects(format!("{prefix}>"))
                .await
                .map_err(|e| e.to_string())?;
            let mut counts = Vec::new();
            while let Some((subject, n)) = subjects.try_next().await.map_err(|e| e.to_string())? {
                let queue_function = subject
                    .strip_prefix(&prefix)
                    .and_then(|s| s.split_once('.'));
                if let Some((queue, function)) = queue_function {
                    counts.push((queue.to_string(), function.to_string(), n));
                }
            }
            Ok::<_, String>(counts)
        };
        match tokio::time::timeout(PENDING_TIMEOUT, count).await {
            Ok(Ok(counts)) => {
                self.pending.reset();
                for (queue, function, n) in counts {
                    self.pending
                        .with_label_values(&[queue.as_str(), function.as_str()])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            Ok(Err(error)) => tracing::debug!(%error, "metrics: cannot count pending calls"),
            Err(_) => tracing::debug!("metrics: JetStream did not tell the pending calls in time"),
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.attempts.with_label_values(&["echo.openfaas-fn"]).inc();
        m.dead_letters
            .with_label_values(&["echo.openfaas-fn", "expired"])
            .inc();
        m.callback("delivered");
        m.message("succeeded");
        m.inflight.set(3);
        m.end_to_end.with_label_values(&["succeeded"]).observe(1.5);
        let text = m.render();
        for line in [
            "queue_worker_attempts_total{function_name=\"echo.openfaas-fn\"} 1",
            "queue_worker_dead_letters_total{function_name=\"echo.openfaas-fn\",reason=\"expired\"} 1",
            "queue_worker_callbacks_total{outcome=\"delivered\"} 1",
            "queue_worker_messages_total{outcome=\"succeeded\"} 1",
            "queue_worker_inflight 3",
            "queue_worker_end_to_end_seconds_count{state=\"succeeded\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
