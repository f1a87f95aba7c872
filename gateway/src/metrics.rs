//! Counters the gateway keeps about itself, for the Prometheus exporter to read.
//!
//! **Hook for the metrics issue (issue 6).** The gateway does not serve `/metrics` yet. What
//! it already counts lives here, updated with relaxed atomics off the hot path; the exporter
//! reads [`Metrics::scale_from_zero`]`.snapshot()` at scrape time and publishes it, e.g. as
//! `gateway_scale_from_zero_total` (scale-ups requested), `gateway_cold_starts_total` and
//! `gateway_cold_start_seconds_sum` (held calls' functions that became ready, and how long
//! that took), `gateway_cold_start_timeouts_total` and `gateway_held_requests_total`. The
//! OpenFaaS names (`gateway_function_invocation_total`, ...) come with that issue too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Everything the gateway counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Scaling from zero (see [`crate::scaling`]).
    pub(crate) scale_from_zero: ScaleFromZero,
}

/// Scaling from zero, counted per gateway (not per function, to keep label sets small until
/// the exporter decides).
#[derive(Debug, Default)]
pub(crate) struct ScaleFromZero {
    scale_ups: AtomicU64,
    cold_starts: AtomicU64,
    cold_start_micros: AtomicU64,
    timeouts: AtomicU64,
    held_requests: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ScaleFromZeroSnapshot {
    /// Scale requests this gateway sent for functions at zero replicas (`0 => n`).
    pub(crate) scale_ups: u64,
    /// Waits for a ready replica that ended with one (one per function and episode, however
    /// many calls waited).
    pub(crate) cold_starts: u64,
    /// Their total duration, from the first held call to the replica answering `/_/ready`.
    pub(crate) cold_start_time: Duration,
    /// Waits that ended after `scale_from_zero_timeout` without a ready replica.
    pub(crate) timeouts: u64,
    /// Calls that were held because their function had no ready replica.
    pub(crate) held_requests: u64,
}

impl ScaleFromZero {
    pub(crate) fn scaled_up(&self) {
        self.scale_ups.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn became_ready(&self, after: Duration) {
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
        self.cold_start_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn held(&self) {
        self.held_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> ScaleFromZeroSnapshot {
        ScaleFromZeroSnapshot {
            scale_ups: self.scale_ups.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            cold_start_time: Duration::from_micros(self.cold_start_micros.load(Ordering::Relaxed)),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            held_requests: self.held_requests.load(Ordering::Relaxed),
        }
    }
}
