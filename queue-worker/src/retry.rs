//! Retries that wait outside the queue.
//!
//! A call to retry after a delay is not handed back to its consumer with a delayed NAK (it
//! would stay pending there, and calls waiting for an hour would fill `max_ack_pending` and
//! stall every other function of the queue). Instead:
//!
//! 1. its record becomes `queued` with `nextAttemptAt` and the attempt just made;
//! 2. the call is published, as it was queued, to `ferry.retry.<queue>.<name>.<namespace>.
//!    <call token>` in the calls stream as a JetStream message schedule (`Nats-Schedule: @at
//!    <time>`, NATS 2.12+) targeting its queue subject: at that time JetStream publishes it to
//!    the queue again, as a new message, and removes the schedule;
//! 3. the delivered message is acknowledged.
//!
//! Until then the call occupies nothing but its stored schedule. One schedule per call: a
//! schedule published again for the same call replaces the first, so a worker that dies
//! between 2 and 3 does no harm (the redelivered message finds the record waiting for its
//! retry and schedules it again, see `claim`). A cancel purges the schedule.

use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use ferry_proto::calls::CallState;
use ferry_proto::jetstream::{CALL_ID_HEADER, call_subject, retry_subject};

use crate::call::Call;
use crate::context::{Disposition, REQUEUE_DELAY};
use crate::status::Record;

impl Call {
    /// Records the attempt, schedules the retry `delay` from now, and acknowledges.
    pub(crate) async fn retry_later(&mut self, mut record: Record, delay: Duration) -> Disposition {
        let at = SystemTime::now() + delay;
        let next = ferry_proto::time::rfc3339_millis(at);
        self.save(&mut record, |s| {
            s.state = CallState::Queued;
            s.next_attempt_at = Some(next.clone());
        })
        .await;
        let function = self.function.to_string();
        self.ctx
            .metrics
            .retries
            .with_label_values(&[function.as_str()])
            .inc();
        self.ctx.metrics.message("retried");
        tracing::info!(
            attempt = record.status.attempts,
            max_attempts = self.policy.max_attempts,
            ?delay,
            "retryable failure; retrying later"
        );
        self.schedule(at).await
    }

    /// Schedules the retry the record waits for (again), and acknowledges.
    pub(crate) async fn reschedule(&mut self, record: &Record) -> Disposition {
        let at = record
            .status
            .next_attempt_at
            .as_deref()
            .and_then(ferry_proto::time::parse_rfc3339)
            .unwrap_or_else(SystemTime::now);
        tracing::info!("the call waits for a retry; making sure it is scheduled");
        self.ctx.metrics.message("duplicate");
        self.schedule(at).await
    }

    /// Publishes the schedule of this call's retry at `at`; `Ack` once stored, else a NAK to
    /// try again later (the record says the retry is due, so the next delivery schedules it).
    async fn schedule(&self, at: SystemTime) -> Disposition {
        let queue = &self.ctx.config.queue_name;
        let mut headers = HeaderMap::new();
        headers.insert(CALL_ID_HEADER, self.call_id.as_str());
        let when = format!("@at {}", ferry_proto::time::rfc3339_millis(at));
        headers.insert("Nats-Schedule", when.as_str());
        let target = call_subject(queue, &self.function);
        headers.insert("Nats-Schedule-Target", target.as_str());
        let subject = retry_subject(queue, &self.function, &self.call_id);
        let stored = async {
            self.ctx
                .js
                .publish_with_headers(subject, headers, self.payload.clone())
                .await?
                .await
        };
        match stored.await {
            Ok(_) => Disposition::Ack,
            Err(error) => {
                tracing::error!(%error, "cannot schedule the retry; trying again later");
                self.ctx.metrics.message("requeued");
                Disposition::Nak(REQUEUE_DELAY)
            }
        }
    }
}
