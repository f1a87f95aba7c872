//! The provider's Prometheus metrics, served as text at `GET /metrics` on its API port.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `provider_function_replicas` | gauge | `function_name` | desired replicas |
//! | `provider_function_available_replicas` | gauge | `function_name` | ready replicas |
//! | `provider_cold_starts_total` | counter | `function_name`, `tier` | starts from zero that became ready |
//! | `provider_cold_start_seconds` | histogram | `function_name`, `tier` | from the scale-up decision to the first ready probe |
//! | `provider_wake_step_seconds` | histogram | `tier`, `step` | a scale from zero's steps before it answers: `lock` (from the decision to the function's lock), `thaw` (`docker unpause`), `store` (writing the desired state), `reconcile` (listing containers, starting or creating them) |
//! | `provider_frozen_replicas` | gauge | | frozen (paused) replicas of functions at zero |
//! | `provider_frozen_memory_bytes` | gauge | | memory they hold, as last sampled (capped by `max_frozen_memory`) |
//! | `provider_scale_events_total` | counter | `function_name`, `direction` | changes of the desired replicas, `up` or `down` (manual, autoscaling, idle) |
//!
//! `function_name` is `name.namespace`, as OpenFaaS labels it; `tier` is how the function came
//! back: `frozen` (unpaused), `stopped` (a parked container started), `new` (a container
//! created) or `warm` (still running, not yet frozen). The two gauges are read when
//! `/metrics` is scraped. Every metric lives in the provider's own [`Registry`].

use std::time::Duration;

use ferry_proto::FunctionRef;
use ferry_proto::Wake;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Cold-start buckets, in seconds: from 10 ms (a parked start) to a minute (a pull).
const COLD_START_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The provider's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    replicas: IntGaugeVec,
    available: IntGaugeVec,
    cold_starts: IntCounterVec,
    cold_start_seconds: HistogramVec,
    scale_events: IntCounterVec,
    frozen_replicas: IntGauge,
    frozen_memory: IntGauge,
    wake_steps: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let register = |c: Box<dyn Collector>| {
            registry.register(c).expect("registering a metric once");
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["function_name"])
                .expect("a valid metric");
            register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            register(Box::new(c.clone()));
            c
        };
        let replicas = gauge(
            "provider_function_replicas",
            "Desired replicas of a function.",
        );
        let available = gauge(
            "provider_function_available_replicas",
            "Ready replicas of a function.",
        );
        let cold_starts = counter(
            "provider_cold_starts_total",
            "Starts of a function from zero replicas that became ready.",
            &["function_name", "tier"],
        );
        let scale_events = counter(
            "provider_scale_events_total",
            "Changes of a function's desired replicas, by direction (up, down).",
            &["function_name", "direction"],
        );
        let cold_start_seconds = HistogramVec::new(
            HistogramOpts::new(
                "provider_cold_start_seconds",
                "Seconds from the decision to scale a function up from zero to its first ready replica.",
            )
            .buckets(COLD_START_BUCKETS.to_vec()),
            &["function_name", "tier"],
        )
        .expect("a valid metric");
        register(Box::new(cold_start_seconds.clone()));
        let wake_steps = HistogramVec::new(
            HistogramOpts::new(
                "provider_wake_step_seconds",
                "Steps of a scale from zero before the scale call answers, by tier.",
            )
            .buckets(COLD_START_BUCKETS.to_vec()),
            &["tier", "step"],
        )
        .expect("a valid metric");
        register(Box::new(wake_steps.clone()));
        let plain = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid metric");
            register(Box::new(g.clone()));
            g
        };
        let frozen_replicas = plain(
            "provider_frozen_replicas",
            "Frozen (paused) replicas kept by functions at zero.",
        );
        let frozen_memory = plain(
            "provider_frozen_memory_bytes",
            "Memory held by frozen replicas, as last sampled.",
        );
        Metrics {
            registry,
            replicas,
            available,
            cold_starts,
            cold_start_seconds,
            scale_events,
            frozen_replicas,
            frozen_memory,
            wake_steps,
        }
    }

    /// Counts a change of `f`'s desired replicas.
    pub fn scale_event(&self, f: &FunctionRef, from: u64, to: u64) {
        let direction = if to > from { "up" } else { "down" };
        self.scale_events
            .with_label_values(&[f.to_string().as_str(), direction])
            .inc();
    }

    /// Records a cold start of `f` from `tier` that took `took`.
    pub fn cold_start(&self, f: &FunctionRef, tier: Wake, took: Duration) {
        let labels = [f.to_string(), tier.as_str().to_string()];
        self.cold_starts.with_label_values(&labels).inc();
        self.cold_start_seconds
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records the steps of a scale from zero that brought the function back from `tier`.
    pub fn wake_steps(&self, tier: Wake, steps: &[(&str, Duration)]) {
        for (step, took) in steps {
            self.wake_steps
                .with_label_values(&[tier.as_str(), step])
                .observe(took.as_secs_f64());
        }
    }

    /// Sets the frozen replicas' count and memory.
    pub fn set_frozen(&self, replicas: usize, memory_bytes: u64) {
        self.frozen_replicas
            .set(i64::try_from(replicas).unwrap_or(i64::MAX));
        self.frozen_memory
            .set(i64::try_from(memory_bytes).unwrap_or(i64::MAX));
    }

    /// Sets the replica gauges to `(function, desired, available)` for every function (and
    /// drops those of functions that are gone).
    pub fn set_replicas(&self, counts: &[(FunctionRef, u64, u64)]) {
        self.replicas.reset();
        self.available.reset();
        for (f, desired, available) in counts {
            let name = f.to_string();
            let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.replicas
                .with_label_values(&[name.as_str()])
                .set(as_i64(*desired));
            self.available
                .with_label_values(&[name.as_str()])
                .set(as_i64(*available));
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics into memory");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        let m = Metrics::new();
        let f = FunctionRef::resolve("echo", None).unwrap();
        m.scale_event(&f, 0, 1);
        m.scale_event(&f, 3, 1);
        m.cold_start(&f, Wake::Frozen, Duration::from_millis(40));
        m.set_replicas(&[(f.clone(), 2, 1)]);
        m.set_frozen(1, 2048);
        m.wake_steps(Wake::Frozen, &[("thaw", Duration::from_millis(20))]);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            r#"provider_function_replicas{function_name="echo.openfaas-fn"} 2"#,
            r#"provider_function_available_replicas{function_name="echo.openfaas-fn"} 1"#,
            r#"provider_cold_starts_total{function_name="echo.openfaas-fn",tier="frozen"} 1"#,
            r#"provider_cold_start_seconds_count{function_name="echo.openfaas-fn",tier="frozen"} 1"#,
            r#"provider_cold_start_seconds_bucket{function_name="echo.openfaas-fn",tier="frozen",le="0.05"} 1"#,
            "provider_frozen_replicas 1",
            r#"provider_wake_step_seconds_count{step="thaw",tier="frozen"} 1"#,
            "provider_frozen_memory_bytes 2048",
            r#"provider_scale_events_total{direction="up",function_name="echo.openfaas-fn"} 1"#,
            r#"provider_scale_events_total{direction="down",function_name="echo.openfaas-fn"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        m.set_replicas(&[]);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(!text.contains("provider_function_replicas{"), "{text}");
    }
}
