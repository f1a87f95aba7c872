//! The gateway's Prometheus metrics, served as text at `GET /metrics` (see
//! [`crate::routes::metrics`]). Every metric lives in the gateway's own [`Registry`].
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `gateway_function_invocation_started` | counter | `function_name` | sync calls to an existing function, counted once the function is known to exist |
//! | `gateway_function_invocation_total` | counter | `function_name`, `code` | sync calls answered, by HTTP status (`"200"`, `"502"`, ...) |
//! | `gateway_functions_seconds` | histogram | `function_name`, `code` | from the request to the response headers (a held call's wait for a ready replica included) |
//! | `gateway_service_count` | gauge | `function_name` | desired replicas, per the provider's `/system/functions` (read at scrape time, at most once a second) |
//! | `gateway_async_submissions_total` | counter | `function_name`, `outcome` | async submissions: `accepted`, `duplicate` (stored before), `rejected` (4xx), `unavailable` (5xx) |
//! | `gateway_scale_from_zero_total` | counter | | scale requests for functions at zero replicas |
//! | `gateway_cold_starts_total` | counter | | held calls' functions that became ready (one per episode) |
//! | `gateway_cold_start_seconds` | histogram | `tier` | from the first held call to the replica answering its readiness probe; `tier`: how the function came back (`frozen`, `stopped`, `new`, `warm`, `unknown`) |
//! | `gateway_cold_start_step_seconds` | histogram | `tier`, `step` | where that time went: `list` (provider look-ups), `scale` (the scale request), `probe` (the rest, until a replica answered ready) |
//! | `gateway_cold_start_timeouts_total` | counter | | waits that ended after `scale_from_zero_timeout` |
//! | `gateway_held_requests_total` | counter | | calls held because their function had no ready replica |
//!
//! `function_name` is `name.namespace`, as OpenFaaS labels it. Only functions that exist are
//! labelled: a sync call is counted once the provider knew its function (calls to unknown or
//! invalid names are not counted at all), and an async submission whose function was never
//! found is counted with `function_name=""`; random names cannot grow the label sets.
//! The OpenFaaS names break two of Prometheus' naming rules, as in OpenFaaS:
//! `gateway_function_invocation_started` is a counter without `_total` and
//! `gateway_service_count` a gauge ending in `_count` (`promtool check metrics` says so; the
//! text parses).
//!
//! The hot path does no label formatting: the handles of a function's counters are cached
//! per function as addressed (`echo`, `echo.openfaas-fn`) and per status code. The
//! scale-from-zero counters are `ferry_invoke::ScaleFromZero`, registered here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferry_invoke::metrics::{register, valid};
use ferry_proto::{FunctionRef, Name};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Call duration buckets, in seconds (OpenFaaS uses the client's defaults too).
const CALL_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Everything the gateway counts.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    invocations: IntCounterVec,
    seconds: HistogramVec,
    started: IntCounterVec,
    service_count: IntGaugeVec,
    async_submissions: IntCounterVec,
    /// Per function as addressed in paths.
    by_path: RwLock<HashMap<String, Arc<FunctionMetrics>>>,
    /// The same handles per `function_name`.
    by_label: RwLock<HashMap<String, Arc<FunctionMetrics>>>,
    /// When `gateway_service_count` was last refreshed.
    service_counts_at: Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The registry, for metrics registered elsewhere (scaling from zero).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers every metric in a new registry.
    pub(crate) fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let invocations = register(
            r,
            valid(IntCounterVec::new(
                Opts::new(
                    "gateway_function_invocation_total",
                    "Sync function calls answered, by function and HTTP status code.",
                ),
                &["function_name", "code"],
            )),
        );
        let seconds = register(
            r,
            valid(HistogramVec::new(
                HistogramOpts::new(
                    "gateway_functions_seconds",
                    "Seconds from a sync call's request to its response headers.",
                )
                .buckets(CALL_BUCKETS.to_vec()),
                &["function_name", "code"],
            )),
        );
        let started = register(
            r,
            valid(IntCounterVec::new(
                Opts::new(
                    "gateway_function_invocation_started",
                    "Sync calls started, per function.",
                ),
                &["function_name"],
            )),
        );
        let service_count = register(
            r,
            valid(IntGaugeVec::new(
                Opts::new(
                    "gateway_service_count",
                    "Desired replicas of a function, per the provider.",
                ),
                &["function_name"],
            )),
        );
        let async_submissions = register(
            r,
            valid(IntCounterVec::new(
                Opts::new(
                    "gateway_async_submissions_total",
                    "Async submissions, by function and outcome \
                     (accepted, duplicate, rejected, unavailable).",
                ),
                &["function_name", "outcome"],
            )),
        );
        Metrics {
            registry,
            invocations,
            seconds,
            started,
            service_count,
            async_submissions,
            by_path: RwLock::default(),
            by_label: RwLock::default(),
            service_counts_at: Mutex::default(),
        }
    }

    /// The counters of `function` (as addressed: `name` or `name.namespace`), which exists;
    /// `None` for a name that cannot be a function's.
    pub(crate) fn function(&self, function: &str) -> Option<Arc<FunctionMetrics>> {
        if let Some(found) = self.by_path.read().expect("metrics poisoned").get(function) {
            return Some(found.clone());
        }
        let f = FunctionRef::parse(function, &Name::default_namespace()).ok()?;
        let label = f.to_string();
        let handles = self
            .by_label
            .write()
            .expect("metrics poisoned")
            .entry(label.clone())
            .or_insert_with(|| {
                Arc::new(FunctionMetrics {
                    started: self.started.with_label_values(&[label.as_str()]),
                    invocations: self.invocations.clone(),
                    seconds: self.seconds.clone(),
                    codes: RwLock::default(),
                    label,
                })
            })
            .clone();
        self.by_path
            .write()
            .expect("metrics poisoned")
            .insert(function.to_string(), handles.clone());
        Some(handles)
    }

    /// Completed sync calls per `function_name`, all codes together.
    pub(crate) fn invocation_counts(&self) -> HashMap<String, u64> {
        let all = self.by_label.read().expect("metrics poisoned");
        all.iter().map(|(k, m)| (k.clone(), m.count())).collect()
    }

    /// Counts an async submission of `function_name` (`""` when the function was not found).
    pub(crate) fn async_submission(&self, function_name: &str, outcome: &str) {
        self.async_submissions
            .with_label_values(&[function_name, outcome])
            .inc();
    }

    /// Whether `gateway_service_count` is older than `max_age`; if so, the caller refreshes
    /// it (concurrent scrapes within `max_age` do not).
    pub(crate) fn service_counts_due(&self, max_age: Duration) -> bool {
        let mut at = self.service_counts_at.lock().expect("metrics poisoned");
        let now = Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < max_age) {
            return false;
        }
        *at = Some(now);
        true
    }

    /// Sets `gateway_service_count` to `(function_name, replicas)` for every function.
    pub(crate) fn set_service_counts(&self, counts: &[(String, u64)]) {
        self.service_count.reset();
        for (name, replicas) in counts {
            self.service_count
                .with_label_values(&[name.as_str()])
                .set(i64::try_from(*replicas).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics into memory");
        out
    }
}

/// The cached handles of one function's call metrics.
#[derive(Debug)]
pub(crate) struct FunctionMetrics {
    label: String,
    started: IntCounter,
    invocations: IntCounterVec,
    seconds: HistogramVec,
    /// Per status code; a handful at most.
    codes: RwLock<Vec<(u16, IntCounter, Histogram)>>,
}

impl FunctionMetrics {
    /// A call started.
    pub(crate) fn started(&self) {
        self.started.inc();
    }

    /// A call was answered with `code` after `took`.
    pub(crate) fn completed(&self, code: u16, took: Duration) {
        let secs = took.as_secs_f64();
        {
            let codes = self.codes.read().expect("metrics poisoned");
            if let Some((_, counter, histogram)) = codes.iter().find(|(c, ..)| *c == code) {
                counter.inc();
                histogram.observe(secs);
                return;
            }
        }
        let mut codes = self.codes.write().expect("metrics poisoned");
        let i = match codes.iter().position(|(c, ..)| *c == code) {
            Some(i) => i,
            None => {
                let text = code.to_string();
                let labels = [self.label.as_str(), text.as_str()];
                let counter = self.invocations.with_label_values(&labels);
                let histogram = self.seconds.with_label_values(&labels);
                codes.push((code, counter, histogram));
                codes.len() - 1
            }
        };
        codes[i].1.inc();
        codes[i].2.observe(secs);
    }

    /// Calls answered, all codes together.
    fn count(&self) -> u64 {
        let codes = self.codes.read().expect("metrics poisoned");
        codes.iter().map(|(_, c, _)| c.get()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_cached_handles() {
        let m = Metrics::new();
        let short = m.function("echo").unwrap();
        let long = m.function("echo.openfaas-fn").unwrap();
        assert!(
            Arc::ptr_eq(&short, &long),
            "one set of handles per function"
        );
        assert!(m.function("Not_A-Name").is_none());
        short.started();
        short.completed(200, Duration::from_millis(3));
        long.completed(200, Duration::from_millis(30));
        long.completed(500, Duration::from_millis(1));
        m.async_submission("echo.openfaas-fn", "accepted");
        m.async_submission("", "rejected");
        m.set_service_counts(&[("echo.openfaas-fn".into(), 2)]);
        let cold = ferry_invoke::ScaleFromZero::new(m.registry(), "gateway");
        cold.became_ready(
            Duration::from_millis(40),
            "frozen",
            &[("scale", Duration::from_millis(30))],
        );
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"gateway_function_invocation_started{function_name="echo.openfaas-fn"} 1"#,
            r#"gateway_function_invocation_total{code="200",function_name="echo.openfaas-fn"} 2"#,
            r#"gateway_function_invocation_total{code="500",function_name="echo.openfaas-fn"} 1"#,
            r#"gateway_functions_seconds_count{code="200",function_name="echo.openfaas-fn"} 2"#,
            r#"gateway_functions_seconds_bucket{code="200",function_name="echo.openfaas-fn",le="0.005"} 1"#,
            r#"gateway_service_count{function_name="echo.openfaas-fn"} 2"#,
            r#"gateway_async_submissions_total{function_name="echo.openfaas-fn",outcome="accepted"} 1"#,
            r#"gateway_async_submissions_total{function_name="",outcome="rejected"} 1"#,
            "gateway_cold_starts_total 1",
            r#"gateway_cold_start_seconds_count{tier="frozen"} 1"#,
            r#"gateway_cold_start_step_seconds_count{step="scale",tier="frozen"} 1"#,
            "gateway_held_requests_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(m.invocation_counts()["echo.openfaas-fn"], 3);
        assert_eq!(cold.snapshot().cold_start_time, Duration::from_millis(40));
    }
}
