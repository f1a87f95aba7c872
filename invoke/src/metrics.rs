//! The scale-from-zero counters (see [`crate::scaling`]), per process (`gateway_*` in the
//! gateway, `queue_worker_*` in the queue-worker): not per function, to keep label sets small. [`ScaleFromZero::snapshot`] reads them for the log line at exit
//! and for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, Registry};

/// Cold-start buckets, in seconds: from 10 ms (a parked start) to a minute.
const COLD_START_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Scaling from zero, counted per gateway (not per function, to keep label sets small).
#[derive(Debug)]
pub struct ScaleFromZero {
    scale_ups: IntCounter,
    cold_starts: IntCounter,
    cold_start_seconds: HistogramVec,
    cold_start_steps: HistogramVec,
    /// The exact total of cold starts, for [`ScaleFromZero::snapshot`].
    cold_start_micros: AtomicU64,
    timeouts: IntCounter,
    held_requests: IntCounter,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleFromZeroSnapshot {
    /// Scale requests this gateway sent for functions at zero replicas (`0 => n`).
    pub scale_ups: u64,
    /// Waits for a ready replica that ended with one (one per function and episode, however
    /// many calls waited).
    pub cold_starts: u64,
    /// Their total duration, from the first held call to the replica answering its readiness probe.
    pub cold_start_time: Duration,
    /// Waits that ended after `scale_from_zero_timeout` without a ready replica.
    pub timeouts: u64,
    /// Calls that were held because their function had no ready replica.
    pub held_requests: u64,
}

impl ScaleFromZero {
    /// The counters, registered in `r` with names starting `<prefix>_`.
    pub fn new(r: &Registry, prefix: &str) -> ScaleFromZero {
        let counter = |name: &str, help: &str| {
            register(r, valid(IntCounter::new(format!("{prefix}_{name}"), help)))
        };
        ScaleFromZero {
            scale_ups: counter(
                "scale_from_zero_total",
                "Scale requests for functions at zero replicas.",
            ),
            cold_starts: counter(
                "cold_starts_total",
                "Functions that held calls waited for and that became ready.",
            ),
            cold_start_seconds: register(
                r,
                valid(HistogramVec::new(
                    HistogramOpts::new(
                        format!("{prefix}_cold_start_seconds"),
                        "Seconds from the first held call to a ready replica, by how the function came back (tier).",
                    )
                    .buckets(COLD_START_BUCKETS.to_vec()),
                    &["tier"],
                )),
            ),
            cold_start_steps: register(
                r,
                valid(HistogramVec::new(
                    HistogramOpts::new(
                        format!("{prefix}_cold_start_step_seconds"),
                        "Where a cold start's time went, by tier and step: list (provider look-ups), scale (the scale request), probe (until a replica answered ready).",
                    )
                    .buckets(COLD_START_BUCKETS.to_vec()),
                    &["tier", "step"],
                )),
            ),
            cold_start_micros: AtomicU64::new(0),
            timeouts: counter(
                "cold_start_timeouts_total",
                "Waits for a ready replica that ended after scale_from_zero_timeout.",
            ),
            held_requests: counter(
                "held_requests_total",
                "Calls held because their function had no ready replica.",
            ),
        }
    }

    pub fn scaled_up(&self) {
        self.scale_ups.inc();
    }

    /// A wait ended with a ready replica after `after`; `tier`: how the function came back
    /// (`frozen`, `stopped`, `new`, `warm`, or `unknown` when another request brought it back).
    /// `steps`: where the time went (`list`, `scale`, `probe`).
    pub fn became_ready(&self, after: Duration, tier: &str, steps: &[(&str, Duration)]) {
        self.cold_starts.inc();
        self.cold_start_seconds
            .with_label_values(&[tier])
            .observe(after.as_secs_f64());
        for (step, took) in steps {
            self.cold_start_steps
                .with_label_values(&[tier, step])
                .observe(took.as_secs_f64());
        }
        let micros = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
        self.cold_start_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn timed_out(&self) {
        self.timeouts.inc();
    }

    pub fn held(&self) {
        self.held_requests.inc();
    }

    /// The counters now.
    pub fn snapshot(&self) -> ScaleFromZeroSnapshot {
        ScaleFromZeroSnapshot {
            scale_ups: self.scale_ups.get(),
            cold_starts: self.cold_starts.get(),
            cold_start_time: Duration::from_micros(self.cold_start_micros.load(Ordering::Relaxed)),
            timeouts: self.timeouts.get(),
            held_requests: self.held_requests.get(),
        }
    }
}

/// `metric`, which is valid by construction (a fixed name and help).
pub fn valid<T>(metric: Result<T, prometheus::Error>) -> T {
    metric.expect("a valid metric")
}

/// Registers `m` in `registry` (once: a second registration is a bug) and returns it.
pub fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    registry
        .register(Box::new(m.clone()))
        .expect("registering a metric once");
    m
}
