//! One delivered call message, from receipt to its disposition.
//!
//! 1. Parse the [`QueueRequest`] and build the invocation. A message that cannot be a call is
//!    terminated (`+TERM`): redelivering it would never help.
//! 2. Take one of the function's slots ([`crate::fairness`]); a function at its cap gets the
//!    message handed back for a moment (`-NAK` with a short delay), nothing else.
//! 3. Under the JetStream lease ([`lease::hold`]), read the call's status record (or create
//!    it), and stop there if the call was cancelled or already settled by an earlier delivery.
//!    A record naming another message of the same call id ended in a final state (a redrive
//!    the gateway did not reset) starts a fresh run. Attempts recorded as started but never
//!    finished (the worker running them died) are recorded as lost attempts.
//! 4. Too old → dead letter `expired`; attempts used up → dead letter `attempts_exhausted`.
//! 5. Otherwise write `running` with one more attempt (compare-and-set: a concurrent cancel
//!    either wins, and the call is skipped, or loses), invoke, and classify the answer:
//!    retryable with attempts left → record the attempt, state `queued` with `nextAttemptAt`,
//!    `-NAK` with the backoff delay (no slot is held while waiting); retryable without →
//!    dead letter; anything else → the final answer, concluded with its callback
//!    ([`crate::settle`]).
//! 6. Apply the disposition (a confirmed ack, a NAK, a TERM) last.
//!
//! Every log line of a call is inside a `call` span carrying its call id, function, stream
//! sequence and delivery count.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::Message;
use ferry_proto::calls::{
    Attempt, CallState, CallStatus, CallbackState, DeadLetterReason, valid_call_id,
};
use ferry_proto::headers::CALL_ID;
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::callback::{self, call_result};
use crate::consumer::Handler;
use crate::context::{Context, Disposition, Receipt};
use crate::fairness::DEFER;
use crate::invoke::{self, FunctionResponse, Invocation};
use crate::policy::RetryPolicy;
use crate::status::{Record, Write, account_lost, fresh_run, pending_callback, record_attempt};
use crate::{WorkerError, lease};

/// Handles the messages of the calls consumer.
#[derive(Debug)]
pub(crate) struct CallHandler(pub(crate) Arc<Context>);

impl Handler for CallHandler {
    fn handle(
        self: Arc<Self>,
        message: Message,
        renew_every: Duration,
        abandon: CancellationToken,
    ) -> impl Future<Output = ()> + Send {
        handle(self.0.clone(), message, renew_every, abandon)
    }
}

async fn handle(
    ctx: Arc<Context>,
    message: Message,
    renew_every: Duration,
    abandon: CancellationToken,
) {
    let received = Instant::now();
    let delivery = Receipt::of(&message);
    let nats_call_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(CALL_ID_HEADER))
        .map(|v| v.as_str().to_string());
    let parsed = serde_json::from_slice::<QueueRequest>(&message.payload)
        .map_err(|e| format!("not a QueueRequest: {e}"))
        .and_then(|request| {
            let call_id = call_id(nats_call_id.as_deref(), &request, delivery.sequence);
            let function = FunctionRef::parse(&request.function, &Name::default_namespace())
                .map_err(|e| format!("invalid Function: {e}"))?;
            let invocation = Invocation::new(&ctx.config.gateway_url, &request, Some(&call_id))
                .map_err(|e| e.to_string())?;
            Ok((request, call_id, function, invocation))
        });
    let (request, call_id, function, invocation) = match parsed {
        Ok(parts) => parts,
        Err(reason) => {
            let call_id = nats_call_id.as_deref().unwrap_or("-");
            let (sequence, delivered) = (delivery.sequence, delivery.delivered);
            let span = tracing::error_span!("call", call_id, sequence, delivered);
            span.in_scope(|| {
                tracing::error!(
                    reason,
                    "invalid message; terminating it (it is not redelivered)"
                )
            });
            ctx.metrics.message("invalid");
            Disposition::Term.apply(&message).instrument(span).await;
            return;
        }
    };
    let function_name = function.to_string();
    let Some(_slot) = ctx.fairness.try_acquire(&function_name) else {
        tracing::debug!(call_id, function = %function_name, "function at its concurrency cap; deferred");
        ctx.metrics.message("deferred");
        Disposition::Nak(DEFER).apply(&message).await;
        return;
    };
    ctx.metrics.inflight.inc();
    let span = tracing::info_span!(
        "call",
        call_id,
        function = %request.function,
        sequence = delivery.sequence,
        delivered = delivery.delivered,
    );
    let (policy, warnings) = ctx.config.retry.for_function(&request.annotations);
    let call = Call {
        ctx: ctx.clone(),
        request,
        call_id,
        function,
        invocation,
        delivery,
        received,
        policy,
        attempt: None,
        duration: Duration::ZERO,
    };
    async {
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let work = call.run();
        let disposition = tokio::select! {
            biased;
            d = lease::hold(&message, renew_every, work) => d,
            () = abandon.cancelled() => {
                tracing::warn!("shutdown grace is over: leaving the call unacknowledged; \
                    JetStream redelivers it after ack_wait");
                return;
            }
        };
        disposition.apply(&message).await;
    }
    .instrument(span)
    .await;
    ctx.metrics.inflight.dec();
}

/// The call id: the `Ferry-Call-Id` NATS header, else the `X-Call-Id` request header, else
/// (or when it cannot be a status key) one made from the stream sequence.
fn call_id(nats: Option<&str>, request: &QueueRequest, sequence: u64) -> String {
    match nats.or_else(|| request.header_value(CALL_ID)) {
        Some(id) if valid_call_id(id) => id.to_string(),
        other => {
            let made = format!("{CALLS_STREAM}-{sequence}");
            if let Some(id) = other {
                tracing::warn!(call_id = id, instead = made, "unusable call id replaced");
            }
            made
        }
    }
}

/// One call being handled.
pub(crate) struct Call {
    pub(crate) ctx: Arc<Context>,
    pub(crate) request: QueueRequest,
    pub(crate) call_id: String,
    pub(crate) function: FunctionRef,
    pub(crate) invocation: Invocation,
    pub(crate) delivery: Receipt,
    pub(crate) received: Instant,
    pub(crate) policy: RetryPolicy,
    /// This delivery's invocation, once made: every later write of the record includes it.
    pub(crate) attempt: Option<Attempt>,
    /// From receipt to the end of the invocation (`X-Duration-Seconds`).
    pub(crate) duration: Duration,
}

impl Call {
    async fn run(mut self) -> Disposition {
        let mut record = self.load().await;
        let known = record.revision.is_some();
        let same_message = self.same_message(&record.status);
        match record.status.state {
            CallState::Cancelled => {
                tracing::info!("the call was cancelled; not invoked");
                self.ctx.metrics.message("cancelled");
                return Disposition::Ack;
            }
            state if state.is_final() && same_message => return self.settled(record).await,
            state if state.is_final() => {
                tracing::info!(
                    state = state.as_str(),
                    "the call id ended before with another message (a redrive?); starting afresh"
                );
                let sequence = self.delivery.sequence;
                self.save(&mut record, move |s| fresh_run(s, sequence))
                    .await;
            }
            CallState::Running
                if same_message
                    && record.status.callback.as_ref().map(|c| c.state)
                        == Some(CallbackState::Retrying) =>
            {
                tracing::info!("the result is already with the callback retries; acknowledging");
                self.ctx.metrics.message("duplicate");
                return Disposition::Ack;
            }
            _ => {}
        }
        if known {
            account_lost(&mut record.status);
        }

        let max_age = self.policy.max_age;
        if !max_age.is_zero() && self.delivery.age() > max_age {
            tracing::warn!(age = ?self.delivery.age(), ?max_age, "the call expired; not invoked");
            let result = stand_in(&record.status, 504);
            return self
                .dead_letter(record, DeadLetterReason::Expired, result, false)
                .await;
        }
        if record.status.attempts >= self.policy.max_attempts {
            tracing::warn!(
                attempts = record.status.attempts,
                "no attempts left; dead-lettering"
            );
            let result = stand_in(&record.status, 503);
            return self
                .dead_letter(record, DeadLetterReason::AttemptsExhausted, result, false)
                .await;
        }
        if !self.begin(&mut record, known).await {
            return Disposition::Ack;
        }
        self.invoke(record).await
    }

    /// Writes `running` with one more attempt; `false` when the call was cancelled or settled
    /// meanwhile.
    async fn begin(&self, record: &mut Record, known: bool) -> bool {
        let sequence = self.delivery.sequence;
        let max_attempts = self.policy.max_attempts;
        let callback = self.request.callback_url.as_ref().map(|u| u.to_string());
        let now = ferry_proto::time::now();
        let write = self.ctx.status.write(record, |s| {
            if s.state.is_final() {
                return false;
            }
            if known {
                account_lost(s);
            }
            s.attempts += 1;
            s.state = CallState::Running;
            s.max_attempts = max_attempts;
            s.sequence = Some(sequence);
            s.next_attempt_at = None;
            s.started_at.get_or_insert_with(|| now.clone());
            // A callback settled in an earlier run (a redrive) is due again.
            let stale = s.callback.as_ref().is_some_and(|c| {
                matches!(c.state, CallbackState::Delivered | CallbackState::Failed)
            });
            if let (true, Some(url)) = (s.callback.is_none() || stale, &callback) {
                s.callback = Some(pending_callback(url));
            }
            true
        });
        match write.await {
            Write::Written => true,
            Write::Failed(error) => {
                tracing::warn!(%error, "cannot record the attempt; running the call anyway");
                true
            }
            Write::Vetoed => {
                let state = record.status.state;
                tracing::info!(
                    state = state.as_str(),
                    "the call was settled or cancelled meanwhile; not invoked"
                );
                let outcome = if state == CallState::Cancelled {
                    "cancelled"
                } else {
                    "duplicate"
                };
                self.ctx.metrics.message(outcome);
                false
            }
        }
    }

    /// Invokes the function once and decides what follows.
    async fn invoke(mut self, mut record: Record) -> Disposition {
        let number = record.status.attempts;
        let function = self.function.to_string();
        self.ctx
            .metrics
            .attempts
            .with_label_values(&[function.as_str()])
            .inc();
        tracing::debug!(method = %self.invocation.method, url = %self.invocation.url, attempt = number, "invoking");
        let started_at = ferry_proto::time::now();
        let started = Instant::now();
        let timeout = self.ctx.config.upstream_timeout;
        let outcome = invoke::invoke(&self.ctx.http, &self.invocation, timeout).await;
        self.duration = self.received.elapsed();
        let attempt = attempt_of(number, &outcome, started_at, started.elapsed());
        let seconds = callback::duration_seconds(self.duration);
        match &outcome {
            Ok(r) => tracing::info!(
                status = r.status.as_u16(),
                seconds,
                attempt = number,
                "call finished"
            ),
            Err(error) => tracing::warn!(%error, seconds, attempt = number, "call failed"),
        }
        self.attempt = Some(attempt);
        let retryable = self.policy.is_retryable(&outcome);

        if retryable && number < self.policy.max_attempts {
            let delay = self.policy.retry_delay(number, &outcome, SystemTime::now());
            let next = ferry_proto::time::rfc3339_millis(SystemTime::now() + delay);
            self.save(&mut record, |s| {
                s.state = CallState::Queued;
                s.next_attempt_at = Some(next.clone());
            })
            .await;
            self.ctx
                .metrics
                .retries
                .with_label_values(&[function.as_str()])
                .inc();
            self.ctx.metrics.message("retried");
            tracing::info!(
                attempt = number,
                max_attempts = self.policy.max_attempts,
                ?delay,
                "retryable failure; retrying later"
            );
            return Disposition::Nak(delay);
        }
        let (result, answered) = match &outcome {
            Ok(r) => (call_result(r.status.as_u16(), &r.headers, &r.body), true),
            Err(e) => (
                stand_in(&record.status, e.function_status().as_u16()),
                false,
            ),
        };
        if retryable {
            tracing::warn!(
                attempts = number,
                "retryable failure and no attempts left; dead-lettering"
            );
            return self
                .dead_letter(
                    record,
                    DeadLetterReason::AttemptsExhausted,
                    result,
                    answered,
                )
                .await;
        }
        let state = if result.status < 400 {
            CallState::Succeeded
        } else {
            CallState::Failed
        };
        self.conclude(record, state, result).await
    }

    /// The call's record, created from the message when there is none. When the bucket cannot
    /// be used, a record made up from the message, with the delivery count as attempts.
    async fn load(&self) -> Record {
        let fresh = || {
            let mut s = CallStatus::queued(
                &self.call_id,
                &self.function.to_string(),
                &self.ctx.config.queue_name,
                &ferry_proto::time::rfc3339_millis(self.delivery.published),
            );
            s.sequence = Some(self.delivery.sequence);
            s.callback = self
                .request
                .callback_url
                .as_ref()
                .map(|u| pending_callback(u.as_str()));
            s
        };
        match self.ctx.status.load_or_create(&self.call_id, fresh).await {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(%error, "call status unavailable; counting attempts by deliveries");
                let mut status = fresh();
                status.attempts = self.delivery.delivered.saturating_sub(1);
                Record {
                    status,
                    revision: None,
                }
            }
        }
    }

    /// Whether `status` describes this message (or does not say which message it describes).
    fn same_message(&self, status: &CallStatus) -> bool {
        status.sequence.is_none_or(|s| s == self.delivery.sequence)
    }

    /// Applies `change`, plus this delivery's attempt, to the record and stores it. A failed
    /// write is logged: the status is best effort, the call goes on.
    pub(crate) async fn save(&self, record: &mut Record, change: impl Fn(&mut CallStatus)) {
        let attempt = self.attempt.clone();
        let write = self.ctx.status.write(record, |s| {
            if let Some(a) = &attempt {
                record_attempt(s, a);
            }
            change(s);
            true
        });
        if let Write::Failed(error) = write.await {
            tracing::warn!(%error, "cannot update the call status");
        }
    }
}

/// What a call that produced no answer reports: the last status it got, else `status`.
fn stand_in(record: &CallStatus, status: u16) -> ferry_proto::calls::CallResult {
    ferry_proto::calls::CallResult {
        status: record.last_status.unwrap_or(status),
        ..Default::default()
    }
}

/// The record of invocation `number`.
fn attempt_of(
    number: u32,
    outcome: &Result<FunctionResponse, WorkerError>,
    started_at: String,
    took: Duration,
) -> Attempt {
    let (status, error) = match outcome {
        Ok(r) if r.status.as_u16() < 400 => (Some(r.status.as_u16()), None),
        Ok(r) => (Some(r.status.as_u16()), Some(error_text(r))),
        Err(e) => (None, Some(e.to_string())),
    };
    Attempt {
        attempt: number,
        status,
        error,
        started_at,
        duration_seconds: took.as_secs_f64(),
    }
}

/// A short description of an error answer: the start of its text body, or its status.
fn error_text(response: &FunctionResponse) -> String {
    let text = String::from_utf8_lossy(&response.body);
    let text = text.trim();
    if text.is_empty() || text.contains('\u{fffd}') {
        return format!("HTTP {}", response.status);
    }
    let short: String = text.chars().take(200).collect();
    format!("HTTP {}: {short}", response.status.as_u16())
}

#[cfg(test)]
mod tests;
