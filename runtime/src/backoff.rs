//! Pauses between attempts at something that must work sooner or later (creating the NATS
//! objects, pulling, watching a bucket, writing a call's status): backon's exponential
//! backoff, doubling from a first pause up to a cap, without jitter and without end.
//!
//! Not the retry schedule of async calls: that one is user configuration (worker settings and
//! per-function annotations, equal jitter, computed from the attempt number stored in the
//! call's status), the queue-worker's `policy::Backoff`.

use std::time::Duration;

use backon::BackoffBuilder as _;

/// Doubling pauses from `first` up to `cap`, without end.
pub struct Doubling {
    delays: backon::ExponentialBackoff,
    first: Duration,
    cap: Duration,
}

impl Doubling {
    /// Pauses of `first`, twice that, … up to `cap`, then `cap` for ever.
    pub fn new(first: Duration, cap: Duration) -> Doubling {
        let delays = backon::ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(cap)
            .without_max_times()
            .build();
        Doubling { delays, first, cap }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.cap)
    }

    /// Starts again from the first pause (what was retried works again).
    pub fn reset(&mut self) {
        *self = Doubling::new(self.first, self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_start_over_on_reset() {
        let mut d = Doubling::new(Duration::from_millis(200), Duration::from_secs(5));
        let pauses: Vec<u64> = (0..7).map(|_| d.next_pause().as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000]);
        d.reset();
        assert_eq!(d.next_pause(), Duration::from_millis(200));
    }
}
