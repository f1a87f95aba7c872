//! Keeping a delivered message's JetStream lease alive while its call runs.
//!
//! JetStream redelivers a message that is not acknowledged within the consumer's `ack_wait`.
//! That is what hands a dead worker's calls to another worker, but it would also hand a *long*
//! call to a second worker while the first is still running it. So while a call runs the
//! worker sends "in progress" acks (`+WPI`, [`AckKind::Progress`]), each of which restarts the
//! server's `ack_wait` timer, every third of `ack_wait`: two renewals can be lost or late before
//! the lease runs out. Renewals stop the moment the work ends, whatever its outcome; a worker
//! that dies stops renewing, and the call is redelivered one `ack_wait` later.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use tokio::time::{Instant, MissedTickBehavior};

/// Never renew more often than this, whatever `ack_wait` is.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How often a lease of `ack_wait` is renewed: a third of it (at least 100 ms).
pub fn renew_interval(ack_wait: Duration) -> Duration {
    (ack_wait / 3).max(MIN_INTERVAL)
}

/// Something whose lease can be renewed: a JetStream message, or a fake in tests.
pub trait Lease: Sync {
    /// Renews the lease once.
    fn renew(&self) -> impl Future<Output = Result<(), async_nats::Error>> + Send;
}

impl Lease for Message {
    async fn renew(&self) -> Result<(), async_nats::Error> {
        self.ack_with(AckKind::Progress).await
    }
}

/// Runs `work` to completion while renewing `lease` every `every`; returns `work`'s output.
/// The first renewal happens one interval after the start.
pub async fn hold<L: Lease, F: Future>(lease: &L, every: Duration, work: F) -> F::Output {
    tokio::select! {
        // `biased`: when the work is done, stop at once rather than renew one last time.
        biased;
        output = work => output,
        never = renew_forever(lease, every) => match never {},
    }
}

async fn renew_forever<L: Lease>(lease: &L, every: Duration) -> Infallible {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    // After a stall (e.g. a blocked runtime), renew once, not once per missed tick.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match lease.renew().await {
            Ok(()) => tracing::trace!("lease renewed"),
            Err(error) => {
                tracing::warn!(%error, "cannot renew the lease; the call may be redelivered")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Lease for Counter {
        async fn renew(&self) -> Result<(), async_nats::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn renewals_come_every_third_of_ack_wait() {
        assert_eq!(
            renew_interval(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_interval(Duration::from_secs(1)),
            Duration::from_nanos(333_333_333)
        );
        assert_eq!(renew_interval(Duration::from_millis(150)), MIN_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_call_is_renewed_until_it_ends_and_not_after() {
        let lease = Counter::default();
        let every = renew_interval(Duration::from_secs(3));
        let out = hold(&lease, every, async {
            tokio::time::sleep(Duration::from_millis(10_500)).await;
            "done"
        })
        .await;
        assert_eq!(out, "done");
        // Renewed at 1 s, 2 s, ... 10 s.
        assert_eq!(lease.0.load(Ordering::SeqCst), 10);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            lease.0.load(Ordering::SeqCst),
            10,
            "no renewal after the end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_call_is_never_renewed() {
        let lease = Counter::default();
        hold(&lease, Duration::from_secs(1), async {
            tokio::time::sleep(Duration::from_millis(999)).await;
        })
        .await;
        assert_eq!(lease.0.load(Ordering::SeqCst), 0);
    }
}
