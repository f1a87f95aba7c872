//! Claiming a delivered call: deciding from its status record whether this message runs it,
//! and marking it `running` (one more attempt) by compare-and-set, so that a cancel or a
//! redrive written meanwhile wins or loses cleanly and two messages of one call never both
//! run it.
//!
//! **Fast path.** A message as the gateway queued it carries the revision of the `queued`
//! record it created (`Ferry-Status-Revision`). On its first delivery the worker writes the
//! `running` record over exactly that revision, without reading it first: one JetStream
//! operation. Any change meanwhile (a cancel) makes that write fail, and the slow path
//! decides.
//!
//! **Slow path.** Read the record (none: create it) and [`decide`]:
//!
//! | record | this message | decision |
//! |---|---|---|
//! | `cancelled` | any | acknowledge, not invoked |
//! | final | the one that ran it | settled: acknowledge (deliver a dead letter's pending callback first) |
//! | final, or `running` | another one | a duplicate: acknowledge |
//! | `running` with its callback being retried | the one that ran it | acknowledge: the callback loop has it |
//! | `running` | the one that ran it | its worker died: that attempt is recorded as lost, run again |
//! | `queued`, waiting for a retry | the scheduled retry | run |
//! | `queued`, waiting for a retry | the one that ran before | the retry may not be scheduled yet: schedule it (again) and acknowledge |
//! | `queued`, waiting for a retry | another one | a duplicate: acknowledge |
//! | `queued` | any | run |
//!
//! Before a run: delivered more than `max_deliveries` times → dead letter `max_deliveries`;
//! older than its maximum age → `expired`; attempts used up → `attempts_exhausted`. When the
//! bucket cannot be used the message is handed back for later: a call never runs without its
//! claim.

use std::time::{Duration, SystemTime};

use ferry_proto::calls::{CallState, CallStatus, CallbackState, DeadLetterReason};

use crate::call::{Call, stand_in};
use crate::context::{Disposition, REQUEUE_DELAY, Receipt};
use crate::policy::RetryPolicy;
use crate::status::{Record, Write, account_lost, pending_callback};

/// What claiming ended with.
pub(crate) enum Claim {
    /// Run it: the record says `running`, with this delivery's attempt counted.
    Run(Box<Record>),
    /// Nothing to run; the message ends this way.
    Done(Disposition),
}

/// What a record and a message call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Invoke it (again).
    Run,
    /// Cancelled while queued.
    Cancelled,
    /// Already settled by this message.
    Settled,
    /// Another message of the same call runs it, or ran it.
    Duplicate,
    /// Its result is with the callback retries.
    CallbackRetrying,
    /// Waiting for a retry that this message may not have scheduled.
    Reschedule,
    /// Dead-letter it without invoking it.
    DeadLetter(DeadLetterReason),
}

/// The decision for message `d` of a call whose record is `s` (see the module docs), at
/// `now`, under `policy` and `max_deliveries`.
pub(crate) fn decide(
    s: &CallStatus,
    d: &Receipt,
    policy: &RetryPolicy,
    max_deliveries: u32,
    now: SystemTime,
) -> Decision {
    let mine = s.sequence.is_none_or(|seq| seq == d.sequence);
    match s.state {
        CallState::Cancelled => return Decision::Cancelled,
        state if state.is_final() => {
            return if mine {
                Decision::Settled
            } else {
                Decision::Duplicate
            };
        }
        CallState::Running if !mine => return Decision::Duplicate,
        CallState::Running
            if s.callback.as_ref().map(|c| c.state) == Some(CallbackState::Retrying) =>
        {
            return Decision::CallbackRetrying;
        }
        CallState::Queued if s.next_attempt_at.is_some() && !d.scheduled => {
            return if s.sequence == Some(d.sequence) {
                Decision::Reschedule
            } else {
                Decision::Duplicate
            };
        }
        _ => {}
    }
    if d.delivered > max_deliveries {
        return Decision::DeadLetter(DeadLetterReason::MaxDeliveries);
    }
    let submitted = ferry_proto::time::parse_rfc3339(&s.submitted_at).unwrap_or(d.published);
    let age = now.duration_since(submitted).unwrap_or(Duration::ZERO);
    if !policy.max_age.is_zero() && age > policy.max_age {
        return Decision::DeadLetter(DeadLetterReason::Expired);
    }
    if s.attempts >= policy.max_attempts {
        return Decision::DeadLetter(DeadLetterReason::AttemptsExhausted);
    }
    Decision::Run
}

impl Call {
    /// Claims the call for this delivery (see the module docs).
    pub(crate) async fn claim(&mut self) -> Claim {
        let ctx = self.ctx.clone();
        if let (1, Some(revision), false) = (
            self.delivery.delivered,
            self.delivery.revision,
            self.delivery.scheduled,
        ) {
            let mut record = Record {
                status: self.accepted(),
                revision: Some(revision),
            };
            if self.decision(&record.status) == Decision::Run {
                let mut running = record.status.clone();
                self.mark_running(&mut running);
                running.updated_at = ferry_proto::time::now();
                if let Ok(ferry_runtime::status::Written::Stored(revision)) =
                    ctx.status.update(&running, revision).await
                {
                    record = Record {
                        status: running,
                        revision: Some(revision),
                    };
                    return Claim::Run(Box::new(record));
                }
            }
        }
        let record = match ctx.status.get(&self.call_id).await {
            Ok(Some(record)) => record,
            // The gateway's record is gone (expired) or was never written: make it.
            Ok(None) => Record {
                status: self.accepted(),
                revision: None,
            },
            Err(error) => {
                tracing::warn!(%error, "call status unavailable; the call waits");
                ctx.metrics.message("requeued");
                return Claim::Done(Disposition::Nak(REQUEUE_DELAY));
            }
        };
        self.claim_slowly(record).await
    }

    async fn claim_slowly(&mut self, mut record: Record) -> Claim {
        let ctx = self.ctx.clone();
        let mut decided = self.decision(&record.status);
        if decided == Decision::Run {
            let write = ctx.status.write(&mut record, |s| {
                if self.decision(s) != Decision::Run {
                    return false;
                }
                self.mark_running(s);
                true
            });
            match write.await {
                Write::Written => return Claim::Run(Box::new(record)),
                // Changed meanwhile (a cancel?): decide on what it is now.
                Write::Vetoed => decided = self.decision(&record.status),
                Write::Conflict | Write::Failed(_) => {
                    tracing::warn!("cannot mark the call running; it waits");
                    ctx.metrics.message("requeued");
                    return Claim::Done(Disposition::Nak(REQUEUE_DELAY));
                }
            }
        }
        Claim::Done(self.not_run(record, decided).await)
    }

    /// What follows a decision other than [`Decision::Run`].
    async fn not_run(&mut self, record: Record, decided: Decision) -> Disposition {
        let metrics = &self.ctx.metrics;
        match decided {
            Decision::Run => Disposition::Nak(REQUEUE_DELAY),
            Decision::Cancelled => {
                tracing::info!("the call was cancelled; not invoked");
                metrics.message("cancelled");
                Disposition::Ack
            }
            Decision::Settled => self.settled(record).await,
            Decision::Duplicate => {
                tracing::info!(
                    state = record.status.state.as_str(),
                    "another message of this call runs or ran it; acknowledging this one"
                );
                metrics.message("duplicate");
                Disposition::Ack
            }
            Decision::CallbackRetrying => {
                tracing::info!("the result is already with the callback retries; acknowledging");
                metrics.message("duplicate");
                Disposition::Ack
            }
            Decision::Reschedule => self.reschedule(&record).await,
            Decision::DeadLetter(reason) => {
                let mut record = record;
                if record.status.state == CallState::Running {
                    let delivered = self.delivery.delivered;
                    self.save(&mut record, account_lost).await;
                    if reason == DeadLetterReason::MaxDeliveries {
                        tracing::error!(
                            delivered,
                            "delivered too often without finishing; dead-lettering"
                        );
                    }
                }
                let status = match reason {
                    DeadLetterReason::Expired | DeadLetterReason::MaxDeliveries => 504,
                    _ => 503,
                };
                let result = stand_in(&record.status, status);
                self.dead_letter(record, reason, result, false).await
            }
        }
    }

    fn decision(&self, s: &CallStatus) -> Decision {
        let max = self.ctx.config.max_deliveries;
        decide(s, &self.delivery, &self.policy, max, SystemTime::now())
    }

    /// `s` as this delivery runs it: one more attempt.
    fn mark_running(&self, s: &mut CallStatus) {
        if s.state == CallState::Running {
            // The last attempt's worker died (or lost the call) before it finished.
            account_lost(s);
        }
        s.attempts += 1;
        s.state = CallState::Running;
        s.max_attempts = self.policy.max_attempts;
        s.sequence = Some(self.delivery.sequence);
        s.next_attempt_at = None;
        s.started_at.get_or_insert_with(ferry_proto::time::now);
        // A callback settled in an earlier run (a redrive) is due again.
        let stale = s
            .callback
            .as_ref()
            .is_some_and(|c| matches!(c.state, CallbackState::Delivered | CallbackState::Failed));
        if let (true, Some(url)) = (s.callback.is_none() || stale, &self.request.callback_url) {
            s.callback = Some(pending_callback(url.as_str()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as one scenario
mod tests;
