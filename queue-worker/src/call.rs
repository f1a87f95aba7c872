//! One delivered call message, from receipt to its disposition.
//!
//! 1. Parse the [`QueueRequest`]. A message that cannot be a call is dead-lettered as
//!    `invalid_message`, its payload kept as it was, and acknowledged.
//! 2. Take one of the function's slots ([`crate::fairness`]): at once, or after waiting for
//!    one (lease renewed, worker slot given back); a full waiting room hands the message back.
//! 3. Claim the call ([`crate::claim`]): mark it `running` with one more attempt by a
//!    compare-and-set, or learn that it was cancelled, settled, is a duplicate, waits for a
//!    retry, or must be dead-lettered (too old, attempts used up, delivered too often).
//! 4. Invoke the function at a replica ([`crate::invoke`]) with its own timeout: the
//!    function's (`com.openfaas.timeout`, or its watchdog's `exec_timeout`/`write_timeout`),
//!    else `upstream_timeout`, at most `max_call_duration`. Classify the answer: retryable
//!    with attempts left → the retry is scheduled ([`crate::retry`]) and the message
//!    acknowledged; out of time → dead letter `timed_out` (unless the function retries
//!    timeouts); retryable without attempts → dead letter; anything else → the final answer,
//!    concluded with its callback ([`crate::settle`]).
//! 5. Apply the disposition (an ack, a NAK) last.
//!
//! Every log line of a call is inside a `call` span carrying its call id, function, stream
//! sequence and delivery count. The whole call runs under the message's lease
//! ([`lease::hold`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::Message;
use bytes::Bytes;
use ferry_proto::calls::{
    Attempt, CallResult, CallState, CallStatus, DeadLetterReason, valid_call_id,
};
use ferry_proto::headers::CALL_ID;
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use ferry_runtime::backoff::Doubling;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::callback::{self, call_result};
use crate::claim::Claim;
use crate::consumer::Handler;
use crate::context::{Context, Disposition, Receipt};
use crate::fairness::{DEFER, WorkerSlot};
use crate::invoke::{self, FunctionResponse, Invocation};
use crate::policy::RetryPolicy;
use crate::result::{self, Body, Held};
use crate::status::{Record, Write, record_attempt};
use crate::{WorkerError, deadletter, lease};

/// How much of an error answer's body is read for the attempt's error text.
const ERROR_TEXT_BYTES: usize = 4096;

/// Handles the messages of the calls consumer.
pub(crate) struct CallHandler(pub(crate) Arc<Context>);

impl Handler for CallHandler {
    fn handle(
        self: Arc<Self>,
        message: Message,
        renew_every: Duration,
        abandon: CancellationToken,
        slot: WorkerSlot,
    ) -> impl Future<Output = ()> + Send {
        handle(self.0.clone(), message, renew_every, abandon, slot)
    }
}

async fn handle(
    ctx: Arc<Context>,
    message: Message,
    renew_every: Duration,
    abandon: CancellationToken,
    mut slot: WorkerSlot,
) {
    let received = Instant::now();
    let delivery = Receipt::of(&message);
    let nats_call_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(CALL_ID_HEADER))
        .map(|v| v.as_str().to_string());
    let parsed = parse(&message.payload, nats_call_id.as_deref(), &delivery);
    let (request, call_id, function, invocation) = match parsed {
        Ok(parts) => parts,
        Err(reason) => {
            return invalid(&ctx, &message, nats_call_id.as_deref(), &delivery, reason).await;
        }
    };
    let span = tracing::info_span!(
        "call",
        call_id,
        function = %request.function,
        sequence = delivery.sequence,
        delivered = delivery.delivered,
    );
    async {
        let function_name = function.to_string();
        let waited = ctx.fairness.acquire(&function_name, &mut slot);
        let function_slot = tokio::select! {
            biased;
            s = lease::hold(&message, renew_every, waited) => s,
            () = abandon.cancelled() => return,
        };
        let Some(_function_slot) = function_slot else {
            tracing::debug!("function at its cap and the waiting room full; deferred");
            ctx.metrics.message("deferred");
            Disposition::Nak(DEFER).apply(&message).await;
            return;
        };
        ctx.metrics.inflight.inc();
        let (policy, warnings) = ctx.config.retry.for_function(&request.annotations);
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let call = Call {
            ctx: ctx.clone(),
            payload: message.payload.clone(),
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
        let disposition = tokio::select! {
            biased;
            d = lease::hold(&message, renew_every, call.run()) => Some(d),
            () = abandon.cancelled() => {
                tracing::warn!("shutdown grace is over: leaving the call unacknowledged; \
                    JetStream redelivers it after ack_wait");
                None
            }
        };
        if let Some(disposition) = disposition {
            disposition.apply(&message).await;
        }
        ctx.metrics.inflight.dec();
    }
    .instrument(span)
    .await;
    drop(slot);
}

/// A message that is not a call: dead-lettered (payload kept), then acknowledged.
async fn invalid(
    ctx: &Context,
    message: &Message,
    nats_call_id: Option<&str>,
    delivery: &Receipt,
    reason: String,
) {
    let id = nats_call_id.unwrap_or("-");
    let span = tracing::error_span!("call", call_id = id, sequence = delivery.sequence);
    let done = deadletter::invalid(ctx, message, nats_call_id, reason);
    let disposition = done.instrument(span.clone()).await;
    disposition.apply(message).instrument(span).await;
}

type Parsed = (QueueRequest, String, FunctionRef, Invocation);

/// The call a message holds, or why it holds none.
fn parse(payload: &[u8], nats_call_id: Option<&str>, delivery: &Receipt) -> Result<Parsed, String> {
    let request = serde_json::from_slice::<QueueRequest>(payload)
        .map_err(|e| format!("not a QueueRequest: {e}"))?;
    let call_id = call_id(nats_call_id, &request, delivery.sequence);
    let function = FunctionRef::parse(&request.function, &Name::default_namespace())
        .map_err(|e| format!("invalid Function: {e}"))?;
    let invocation = Invocation::new(&request, Some(&call_id)).map_err(|e| e.to_string())?;
    Ok((request, call_id, function, invocation))
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
    /// The message as queued (a retry is scheduled with it).
    pub(crate) payload: Bytes,
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
        match self.claim().await {
            Claim::Run(record) => self.invoke(*record).await,
            Claim::Done(disposition) => disposition,
        }
    }

    /// Invokes the function once and decides what follows.
    async fn invoke(mut self, record: Record) -> Disposition {
        let number = record.status.attempts;
        let function = self.function.to_string();
        self.ctx
            .metrics
            .attempts
            .with_label_values(&[function.as_str()])
            .inc();
        let timeout = self.timeout().await;
        tracing::debug!(method = %self.invocation.method, path = %self.invocation.path_and_query,
            attempt = number, ?timeout, "invoking");
        let started_at = ferry_proto::time::now();
        let started = Instant::now();
        let outcome = invoke::invoke(&self.ctx.invoker, &self.invocation, timeout).await;
        let retry = self.policy.is_retryable(&outcome) && number < self.policy.max_attempts;
        // The memory a kept result holds is counted until this call is done with it.
        let (
            outcome,
            Held {
                body,
                memory: _memory,
            },
        ) = self.read_body(outcome, retry).await;
        self.duration = self.received.elapsed();
        let attempt = attempt_of(number, &outcome, &body, started_at, started.elapsed());
        self.log_outcome(number, &outcome);
        self.attempt = Some(attempt);
        let retryable = self.policy.is_retryable(&outcome);
        if retryable && number < self.policy.max_attempts {
            let delay = self.policy.retry_delay(number, &outcome, SystemTime::now());
            return self.retry_later(record, delay).await;
        }
        let (mut result, stream) = match (&outcome, body) {
            (Ok(r), Body::Whole(bytes)) => {
                (call_result(r.status.as_u16(), &r.headers, &bytes), None)
            }
            (Ok(r), Body::Streaming { prefix, rest }) => (
                call_result(r.status.as_u16(), &r.headers, &Bytes::new()),
                Some((prefix, rest)),
            ),
            (Err(e), _) => (stand_in(&record.status, e.function_status().as_u16()), None),
        };
        let answered = outcome.is_ok();
        if let Err(WorkerError::Timeout(_)) = &outcome {
            if !retryable {
                tracing::warn!(?timeout, "the call ran out of its timeout; dead-lettering");
                return self
                    .dead_letter(record, DeadLetterReason::TimedOut, result, false)
                    .await;
            }
        }
        if retryable {
            tracing::warn!(
                attempts = number,
                "retryable failure and no attempts left; dead-lettering"
            );
            if let Some((prefix, _)) = stream {
                result.body = prefix.to_vec();
            }
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
        self.conclude(record, state, result, stream).await
    }

    /// The answer's body: a little of it for a retry's error text (`retry`), else all of it
    /// (bounded). A body that broke off or ran out of time is the invocation's outcome.
    async fn read_body(
        &self,
        mut outcome: Result<FunctionResponse, WorkerError>,
        retry: bool,
    ) -> (Result<FunctionResponse, WorkerError>, Held) {
        let body = match outcome.as_mut() {
            Ok(response) if retry => {
                let start = result::read_start(response, ERROR_TEXT_BYTES).await;
                Ok(Held::whole(start))
            }
            Ok(response) => result::read(response, &self.ctx.results).await,
            Err(_) => Ok(Held::whole(Bytes::new())),
        };
        match body {
            Ok(held) => (outcome, held),
            Err(error) => (Err(error), Held::whole(Bytes::new())),
        }
    }

    /// The call's timeout: its function's, else `upstream_timeout`, at most
    /// `max_call_duration`.
    async fn timeout(&self) -> Duration {
        let config = &self.ctx.config;
        let declared = match self
            .ctx
            .invoker
            .functions
            .get(&self.invocation.function)
            .await
        {
            Ok(info) => info.value.timeout,
            Err(error) => {
                tracing::debug!(%error, "function settings unavailable; default timeout");
                None
            }
        };
        match declared {
            None => config.upstream_timeout,
            Some(Duration::ZERO) => config.max_call_duration,
            Some(d) => d,
        }
        .min(config.max_call_duration)
    }

    fn log_outcome(&self, number: u32, outcome: &Result<FunctionResponse, WorkerError>) {
        let seconds = callback::duration_seconds(self.duration);
        match outcome {
            Ok(r) => tracing::info!(
                status = r.status.as_u16(),
                seconds,
                attempt = number,
                "call finished"
            ),
            Err(error) => tracing::warn!(%error, seconds, attempt = number, "call failed"),
        }
    }

    /// When the call was submitted: the gateway's `X-Start-Time` (Unix nanoseconds), else
    /// when JetStream stored the message.
    pub(crate) fn submitted_at(&self) -> String {
        let start = self
            .request
            .header_value("X-Start-Time")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|nanos| UNIX_EPOCH + Duration::from_nanos(nanos));
        ferry_proto::time::rfc3339_millis(start.unwrap_or(self.delivery.published))
    }

    /// The record the gateway wrote when it accepted this call.
    pub(crate) fn accepted(&self) -> CallStatus {
        CallStatus::accepted(
            &self.call_id,
            &self.function.to_string(),
            &self.ctx.config.queue_name,
            &self.submitted_at(),
            self.request.callback_url.as_ref().map(|u| u.as_str()),
        )
    }

    /// Applies `change`, plus this delivery's attempt, to the record and stores it, trying
    /// again while the bucket cannot be written (a NATS outage): what the function did must
    /// not be lost. Gives up after [`SAVE_PATIENCE`], logging it.
    pub(crate) async fn save(&self, record: &mut Record, change: impl Fn(&mut CallStatus)) {
        let attempt = self.attempt.clone();
        save(&self.ctx, record, |s| {
            if let Some(a) = &attempt {
                record_attempt(s, a);
            }
            change(s);
        })
        .await;
    }
}

/// How long a status write is retried while the bucket cannot be written.
pub(crate) const SAVE_PATIENCE: Duration = Duration::from_secs(60);

/// Applies `change` to the record and stores it (compare-and-set), retrying with backoff for
/// up to [`SAVE_PATIENCE`] while the bucket cannot be written.
pub(crate) async fn save(ctx: &Context, record: &mut Record, change: impl Fn(&mut CallStatus)) {
    let mut delays = Doubling::new(Duration::from_millis(100), Duration::from_secs(5));
    let started = Instant::now();
    loop {
        let write = ctx.status.write(record, |s| {
            change(s);
            true
        });
        match write.await {
            Write::Written | Write::Vetoed => return,
            Write::Conflict => {
                tracing::warn!("the call status kept changing; not updated");
                return;
            }
            Write::Failed(error) if started.elapsed() >= SAVE_PATIENCE => {
                tracing::error!(%error, "cannot update the call status; giving up");
                return;
            }
            Write::Failed(error) => {
                tracing::warn!(%error, "cannot update the call status yet; trying again");
                tokio::time::sleep(delays.next_pause()).await;
            }
        }
    }
}

/// What a call that produced no answer reports: the last status it got, else `status`.
pub(crate) fn stand_in(record: &CallStatus, status: u16) -> CallResult {
    CallResult {
        status: record.last_status.unwrap_or(status),
        ..Default::default()
    }
}

/// The record of invocation `number`.
fn attempt_of(
    number: u32,
    outcome: &Result<FunctionResponse, WorkerError>,
    body: &Body,
    started_at: String,
    took: Duration,
) -> Attempt {
    let (status, error) = match outcome {
        Ok(r) if r.status.as_u16() < 400 => (Some(r.status.as_u16()), None),
        Ok(r) => (
            Some(r.status.as_u16()),
            Some(error_text(r.status.as_u16(), body)),
        ),
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
fn error_text(status: u16, body: &Body) -> String {
    let bytes = match body {
        Body::Whole(b) => b,
        Body::Streaming { prefix, .. } => prefix,
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_TEXT_BYTES)]);
    let text = text.trim();
    if text.is_empty() || text.contains('\u{fffd}') {
        return format!("HTTP {status}");
    }
    let short: String = text.chars().take(200).collect();
    format!("HTTP {status}: {short}")
}

#[cfg(test)]
mod tests;
