//! How a call ends: its dead letter, its callback, its final status.
//!
//! **Final answers** (success, or a non-retryable failure): without a callback URL the status
//! becomes `succeeded` / `failed` at once. With one, the callback is tried once inline
//! (`callback_timeout`): delivered → `succeeded` / `failed` with `callback.state = delivered`.
//! Not delivered → a [`CallbackJob`] is published to the callback stream for the retry loop,
//! the call stays `running` with `callback.state = retrying`, and the call message is
//! acknowledged. A result too large to queue (or a callback URL that cannot work) is
//! dead-lettered at once as `callback_failed`.
//!
//! **Dead letters** (attempts exhausted, or expired): the [`DeadLetter`] is published and
//! stored before anything else; the status becomes `dead_lettered` / `expired` with its
//! `deadLetterSequence`; then the failure callback goes the same way as above (tried inline,
//! then queued), except that the call's state is already final and stays so whatever becomes
//! of the callback. If the dead-letter stream cannot be written the message is handed back
//! (`-NAK`) to try again later: nothing is lost.

use std::time::SystemTime;

use bytes::Bytes;
use ferry_invoke::client::BoxError;
use ferry_proto::FunctionRef;
use ferry_proto::calls::{
    Attempt, CallResult, CallState, CallStatus, CallbackState, CallbackStatus, DeadLetter,
    DeadLetterReason,
};

use crate::call::Call;
use crate::callback::{self, CallbackJob, Delivery};
use crate::callback_retry::{self, Enqueue};
use crate::context::{Context, Disposition, REQUEUE_DELAY};
use crate::deadletter::{self, payload_limit};
use crate::invoke::ResponseBody;
use crate::status::{Record, Write, record_attempt};

impl Call {
    /// Dead-letters the call for `reason`, then sends its failure callback. `result` is what
    /// the callback reports; it goes into the dead letter too when the function `answered`.
    pub(crate) async fn dead_letter(
        &mut self,
        mut record: Record,
        reason: DeadLetterReason,
        result: CallResult,
        answered: bool,
    ) -> Disposition {
        let mut view = record.status.clone();
        if let Some(a) = &self.attempt {
            record_attempt(&mut view, a);
        }
        let letter = DeadLetter {
            call_id: self.call_id.clone(),
            function: self.function.to_string(),
            queue: self.ctx.config.queue_name.clone(),
            reason,
            dead_lettered_at: ferry_proto::time::now(),
            submitted_at: view.submitted_at.clone(),
            attempts: view.attempt_history.clone(),
            callback: view.callback.clone(),
            result: answered.then(|| result.clone()),
            request: self.request.clone(),
            payload: Vec::new(),
            error: (reason == DeadLetterReason::MaxDeliveries).then(|| {
                format!(
                    "delivered {} times without finishing (max_deliveries {})",
                    self.delivery.delivered, self.ctx.config.max_deliveries
                )
            }),
        };
        let limit = payload_limit(&self.ctx.client);
        let ids = (view.redrives, view.attempts);
        let stored =
            match deadletter::publish(&self.ctx.js, limit, &self.function, letter, ids).await {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::error!(%error, "cannot dead-letter the call; it is tried again later");
                    self.ctx.metrics.message("requeued");
                    return Disposition::Nak(REQUEUE_DELAY);
                }
            };
        let state = match reason {
            DeadLetterReason::Expired => CallState::Expired,
            DeadLetterReason::TimedOut => CallState::TimedOut,
            DeadLetterReason::CallbackFailed => CallState::CallbackFailed,
            DeadLetterReason::AttemptsExhausted
            | DeadLetterReason::MaxDeliveries
            | DeadLetterReason::InvalidMessage => CallState::DeadLettered,
        };
        let now = ferry_proto::time::now();
        self.save(&mut record, |s| {
            s.state = state;
            s.dead_letter_sequence = Some(stored.sequence);
            s.finished_at = Some(now.clone());
            s.next_attempt_at = None;
            if stored.body_dropped {
                s.last_error = Some("the dead letter holds the result without its body".into());
            }
        })
        .await;
        let function = self.function.to_string();
        self.count_dead_letter(&function, reason);
        self.ctx.metrics.message(state.as_str());
        self.ctx.observe_end(state, self.delivery.published);
        tracing::warn!(?reason, sequence = stored.sequence, "dead-lettered");
        self.final_callback(record, state, result, None).await
    }

    /// A final answer (`succeeded` or `failed`): its callback, then its status. With
    /// `stream`, the result's body is not in `result` but still coming (see
    /// [`crate::result`]): what was read, and the rest.
    pub(crate) async fn conclude(
        &mut self,
        mut record: Record,
        state: CallState,
        result: CallResult,
        stream: Option<(Bytes, ResponseBody)>,
    ) -> Disposition {
        self.ctx.metrics.message(state.as_str());
        if self.request.callback_url.is_none() {
            let now = ferry_proto::time::now();
            self.save(&mut record, |s| {
                s.state = state;
                s.finished_at = Some(now.clone());
            })
            .await;
            self.ctx.observe_end(state, self.delivery.published);
            return Disposition::Ack;
        }
        self.final_callback(record, state, result, stream).await
    }

    /// A call whose record already shows a final state for this message: acknowledged, after
    /// delivering the failure callback of a dead letter if that never started.
    pub(crate) async fn settled(&mut self, record: Record) -> Disposition {
        let state = record.status.state;
        let callback_pending = matches!(state, CallState::DeadLettered | CallState::Expired)
            && record.status.callback.as_ref().map(|c| c.state) == Some(CallbackState::Pending);
        if callback_pending {
            tracing::info!(
                state = state.as_str(),
                "dead-lettered earlier; delivering its callback now"
            );
            let result = CallResult {
                status: record.status.last_status.unwrap_or(504),
                ..Default::default()
            };
            return self.final_callback(record, state, result, None).await;
        }
        tracing::info!(
            state = state.as_str(),
            "already settled by an earlier delivery; acknowledging"
        );
        self.ctx.metrics.message("duplicate");
        Disposition::Ack
    }

    /// Delivers the callback reporting `state` (if the call has one): inline once, else queued
    /// for the retry loop. For `succeeded` / `failed`, the status becomes final here once
    /// delivered.
    async fn final_callback(
        &mut self,
        mut record: Record,
        state: CallState,
        result: CallResult,
        stream: Option<(Bytes, ResponseBody)>,
    ) -> Disposition {
        let Some(mut job) = self.job(&record, state, result) else {
            return Disposition::Ack;
        };
        let waiting = matches!(state, CallState::Succeeded | CallState::Failed);
        let tried = record.status.callback.as_ref().map_or(0, |c| c.attempts) + 1;
        let streamed = stream.is_some();
        let (status, error, permanent) = match self.send_callback(&job, stream).await {
            Delivery::Delivered(code) => {
                return self.delivered(record, state, &job, tried, code).await;
            }
            Delivery::Failed {
                status,
                error,
                permanent,
            } => (status, error, permanent),
        };
        let callback = ferry_runtime::redact::callback_url(&job.url);
        tracing::warn!(%callback, status, %error, "callback not delivered");
        job.callback_attempts = tried;
        let queued = if streamed {
            Enqueue::Refused(format!(
                "{STREAMED}: the result was larger than max_buffered_result, or result_memory \
                 was spent, so it was streamed to the callback once and is not kept ({error})"
            ))
        } else if permanent {
            Enqueue::Refused(error.clone())
        } else {
            callback_retry::enqueue(&self.ctx, &self.function, &job, record.status.redrives).await
        };
        let mut cb = callback_status(
            &job.url,
            CallbackState::Retrying,
            tried,
            status,
            Some(error),
        );
        match queued {
            Enqueue::Queued => {
                self.ctx.metrics.callback("retrying");
                self.save(&mut record, |s| s.callback = Some(cb.clone()))
                    .await;
                Disposition::Ack
            }
            Enqueue::Failed(error) => {
                tracing::error!(%error, "cannot queue the callback for retry; the call is tried again later");
                self.ctx.metrics.message("requeued");
                Disposition::Nak(REQUEUE_DELAY)
            }
            Enqueue::Refused(why) if waiting => {
                cb.state = CallbackState::Failed;
                let attempt = self.attempt.clone();
                give_up(
                    &self.ctx,
                    Some(&mut record),
                    attempt.as_ref(),
                    &mut job,
                    cb,
                    why,
                )
                .await
            }
            Enqueue::Refused(why) => {
                // The call is dead-lettered already; only its callback record changes.
                cb.state = CallbackState::Failed;
                cb.last_error = Some(why);
                self.ctx.metrics.callback("failed");
                self.save(&mut record, |s| s.callback = Some(cb.clone()))
                    .await;
                Disposition::Ack
            }
        }
    }

    /// POSTs `job` once: its body in memory (signed with a key), or `stream`ed (unsigned).
    async fn send_callback(
        &self,
        job: &CallbackJob,
        stream: Option<(Bytes, ResponseBody)>,
    ) -> Delivery {
        let timeout = self.ctx.config.callback_timeout;
        match stream {
            None => {
                let key = self.ctx.signing_key.as_ref();
                callback::deliver(&self.ctx.http, job, key, timeout).await
            }
            Some((prefix, rest)) => {
                // The function's time bounds the body; the receiver then has callback_timeout.
                let deadline = self.invocation_deadline_left() + timeout;
                let body = streamed_body(prefix, rest);
                if self.ctx.signing_key.is_some() {
                    tracing::warn!("the result is streamed to its callback: sent unsigned");
                }
                let headers = callback::callback_headers(job);
                callback::deliver_with(&self.ctx.http, job, headers, body, deadline).await
            }
        }
    }

    /// The callback got answer `code` on attempt `tried`: recorded, and for `succeeded` /
    /// `failed` the status is final.
    async fn delivered(
        &mut self,
        mut record: Record,
        state: CallState,
        job: &CallbackJob,
        tried: u32,
        code: u16,
    ) -> Disposition {
        let waiting = matches!(state, CallState::Succeeded | CallState::Failed);
        tracing::info!(status = code, "callback delivered");
        self.ctx.metrics.callback("delivered");
        let cb = callback_status(&job.url, CallbackState::Delivered, tried, Some(code), None);
        let now = ferry_proto::time::now();
        self.save(&mut record, |s| {
            s.callback = Some(cb.clone());
            if waiting {
                s.state = state;
                s.finished_at = Some(now.clone());
            }
        })
        .await;
        if waiting {
            self.ctx.observe_end(state, self.delivery.published);
        }
        Disposition::Ack
    }

    /// The callback of this call reporting `state` and `result`; `None` without a callback URL.
    fn job(&self, record: &Record, state: CallState, result: CallResult) -> Option<CallbackJob> {
        let url = self.request.callback_url.as_ref()?;
        let mut view = record.status.clone();
        if let Some(a) = &self.attempt {
            record_attempt(&mut view, a);
        }
        Some(CallbackJob {
            call_id: self.call_id.clone(),
            url: url.to_string(),
            function: self.request.function.clone(),
            queue: self.ctx.config.queue_name.clone(),
            state,
            result,
            duration_seconds: self.duration.as_secs_f64(),
            attempts: view.attempts,
            attempt_history: view.attempt_history,
            max_attempts: self.policy.max_attempts,
            callback_attempts: 0,
            submitted_unix_ms: self.delivery.published_unix_ms(),
            request: self.request.clone(),
        })
    }

    fn count_dead_letter(&self, function: &str, reason: DeadLetterReason) {
        count_dead_letter(&self.ctx, function, reason);
    }
}

/// A callback status record.
pub(crate) fn callback_status(
    url: &str,
    state: CallbackState,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
) -> CallbackStatus {
    CallbackStatus {
        url: url.to_string(),
        state,
        attempts,
        last_status,
        last_error,
    }
}

pub(crate) fn count_dead_letter(ctx: &Context, function: &str, reason: DeadLetterReason) {
    ctx.metrics
        .dead_letters
        .with_label_values(&[function, reason.as_str()])
        .inc();
}

/// How the reason starts when a streamed result's callback failed.
pub(crate) const STREAMED: &str = "the callback of a streamed result failed";

/// A callback body: `prefix`, then the rest of the function's response as it arrives.
fn streamed_body(prefix: Bytes, rest: ResponseBody) -> reqwest::Body {
    use futures_util::StreamExt as _;
    use http_body_util::BodyExt as _;
    let head = futures_util::stream::once(async move { Ok::<_, BoxError>(prefix) });
    reqwest::Body::wrap_stream(head.chain(rest.into_data_stream()))
}

impl Call {
    /// The time left of the invocation's deadline (its body may still be coming).
    fn invocation_deadline_left(&self) -> std::time::Duration {
        self.ctx
            .config
            .max_call_duration
            .saturating_sub(self.received.elapsed())
    }
}

/// Gives up on the callback of a call whose function answered (`job.state` is `succeeded` or
/// `failed`): dead-letters it as `callback_failed` with the result (its body left out when
/// `why` says the result is too large), and makes that the call's state. `attempt` is an
/// invocation not yet in the record.
pub(crate) async fn give_up(
    ctx: &Context,
    record: Option<&mut Record>,
    attempt: Option<&Attempt>,
    job: &mut CallbackJob,
    callback: CallbackStatus,
    why: String,
) -> Disposition {
    let Ok(function) = FunctionRef::parse(&job.function, &ferry_proto::Name::default_namespace())
    else {
        return Disposition::Term;
    };
    if why.starts_with(callback_retry::TOO_LARGE) || why.starts_with(STREAMED) {
        job.result.body.clear();
    }
    let mut view = record.as_ref().map(|r| r.status.clone());
    if let (Some(v), Some(a)) = (view.as_mut(), attempt) {
        record_attempt(v, a);
    }
    let letter = callback_letter(&function, job, view.as_ref(), &callback);
    let redrives = view.as_ref().map_or(0, |v| v.redrives);
    let limit = payload_limit(&ctx.client);
    let stored = match deadletter::publish(
        &ctx.js,
        limit,
        &function,
        letter,
        (redrives, job.attempts),
    )
    .await
    {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(%error, "cannot dead-letter the call; it is tried again later");
            return Disposition::Nak(REQUEUE_DELAY);
        }
    };
    tracing::warn!(reason = %why, sequence = stored.sequence, "callback failed for good; dead-lettered");
    if let Some(record) = record {
        let now = ferry_proto::time::now();
        let write = ctx.status.write(record, |s| {
            if let Some(a) = attempt {
                record_attempt(s, a);
            }
            s.state = CallState::CallbackFailed;
            s.callback = Some(callback.clone());
            s.dead_letter_sequence = Some(stored.sequence);
            s.finished_at = Some(now.clone());
            s.last_error = Some(format!("callback not delivered: {why}"));
            true
        });
        if let Write::Failed(error) = write.await {
            tracing::warn!(%error, "cannot update the call status");
        }
    }
    count_dead_letter(ctx, &function.to_string(), DeadLetterReason::CallbackFailed);
    ctx.metrics.callback("failed");
    let submitted =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(job.submitted_unix_ms);
    ctx.observe_end(CallState::CallbackFailed, submitted);
    Disposition::Ack
}

/// The dead letter of a call whose callback failed for good; `view` is its record, if any.
fn callback_letter(
    function: &FunctionRef,
    job: &CallbackJob,
    view: Option<&CallStatus>,
    callback: &CallbackStatus,
) -> DeadLetter {
    DeadLetter {
        call_id: job.call_id.clone(),
        function: function.to_string(),
        queue: job.queue.clone(),
        reason: DeadLetterReason::CallbackFailed,
        dead_lettered_at: ferry_proto::time::now(),
        submitted_at: view.map(|v| v.submitted_at.clone()).unwrap_or_default(),
        attempts: match view {
            Some(v) if v.attempt_history.len() > job.attempt_history.len() => {
                v.attempt_history.clone()
            }
            _ => job.attempt_history.clone(),
        },
        callback: Some(callback.clone()),
        result: Some(job.result.clone()),
        request: job.request.clone(),
        payload: Vec::new(),
        error: None,
    }
}
