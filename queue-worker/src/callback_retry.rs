//! Callbacks that failed their first delivery, retried from the stream `ferry-callbacks`.
//!
//! A failed inline delivery publishes the call's [`CallbackJob`] to
//! `ferry.callbacks.<queue>.<name>.<namespace>` ([`enqueue`]; `Nats-Msg-Id:
//! <call id>.cb<redrives>.<attempts>`), and the call message is acknowledged: the function is
//! not run again, and no call slot waits for a callback receiver. A second pull loop of the
//! worker consumes the queue's durable consumer `ferry-callbacks-<queue>` ([`CallbackHandler`]).
//! A job's first delivery only waits: it is handed back until `callback_initial_wait` after it
//! was queued. Every later delivery tries the callback once; its number is the attempts made
//! before queueing plus the job message's deliveries after the first.
//!
//! - Delivered (2xx) → the call's status gets its final state (`succeeded` / `failed`, unless
//!   it was dead-lettered already) with `callback.state = delivered`; the job is acknowledged.
//! - Not delivered, attempts left (`callback_max_attempts`) → `callback.state = retrying`,
//!   `-NAK` with an exponential delay (`callback_initial_wait` doubling up to
//!   `callback_max_wait`, equal jitter).
//! - Not delivered, no attempts left → the call is dead-lettered as `callback_failed`, with the
//!   function's result (a call dead-lettered already only gets `callback.state = failed`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_nats::jetstream::Message;
use async_nats::jetstream::context::PublishErrorKind;
use ferry_proto::FunctionRef;
use ferry_proto::calls::{CallState, CallbackState};
use ferry_proto::jetstream::{CALL_ID_HEADER, callback_subject};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::callback::{self, CallbackJob, Delivery};
use crate::consumer::Handler;
use crate::context::{Context, Disposition, Receipt};
use crate::deadletter::payload_limit;
use crate::fairness::WorkerSlot;
use crate::lease;
use crate::settle::{callback_status, give_up};
use crate::status::Write;

/// How the reason starts when a callback job cannot be queued because it is too large.
pub(crate) const TOO_LARGE: &str = "the result is too large";

/// What became of [`enqueue`].
#[derive(Debug)]
pub(crate) enum Enqueue {
    /// Stored in the callback stream.
    Queued,
    /// It can never be queued (too large, or a callback URL that cannot work).
    Refused(String),
    /// The stream could not be written (try again later).
    Failed(String),
}

/// Publishes `job` for the retry loop and waits for JetStream to store it.
pub(crate) async fn enqueue(
    ctx: &Context,
    function: &FunctionRef,
    job: &CallbackJob,
    redrives: u32,
) -> Enqueue {
    let payload = match serde_json::to_vec(job) {
        Ok(p) => p,
        Err(e) => return Enqueue::Failed(format!("encoding the callback: {e}")),
    };
    let limit = payload_limit(&ctx.client);
    if payload.len() > limit {
        return Enqueue::Refused(too_large(payload.len(), limit));
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, job.call_id.as_str());
    let id = format!("{}.cb{redrives}.{}", job.call_id, job.attempts);
    headers.insert("Nats-Msg-Id", id.as_str());
    let subject = callback_subject(&job.queue, function);
    let published = match ctx
        .js
        .publish_with_headers(subject, headers, payload.into())
        .await
    {
        Ok(ack) => ack.await,
        Err(e) => return Enqueue::Failed(format!("publishing the callback: {e}")),
    };
    match published {
        Ok(_) => Enqueue::Queued,
        Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
            Enqueue::Refused(too_large(limit + 1, limit))
        }
        Err(e) => Enqueue::Failed(format!("storing the callback: {e}")),
    }
}

fn too_large(size: usize, limit: usize) -> String {
    format!(
        "{TOO_LARGE} to queue its callback for retry ({size} bytes, the limit is {limit}); \
         dead-lettered without its body"
    )
}

/// Handles the messages of the callback consumer.
pub(crate) struct CallbackHandler(pub(crate) Arc<Context>);

impl Handler for CallbackHandler {
    fn handle(
        self: Arc<Self>,
        message: Message,
        renew_every: Duration,
        abandon: CancellationToken,
        slot: WorkerSlot,
    ) -> impl Future<Output = ()> + Send {
        let handled = handle(self.0.clone(), message, renew_every, abandon);
        async move {
            handled.await;
            drop(slot);
        }
    }
}

async fn handle(
    ctx: Arc<Context>,
    message: Message,
    renew_every: Duration,
    abandon: CancellationToken,
) {
    let delivery = Receipt::of(&message);
    let job: CallbackJob = match serde_json::from_slice(&message.payload) {
        Ok(job) => job,
        Err(error) => {
            tracing::error!(%error, sequence = delivery.sequence, "not a callback job; terminating it");
            Disposition::Term.apply(&message).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "callback",
        call_id = %job.call_id,
        function = %job.function,
        sequence = delivery.sequence,
        delivered = delivery.delivered,
    );
    async {
        if delivery.delivered == 1 && message.info().is_ok() {
            // The first retry waits callback_initial_wait, like every later one.
            let wait = ctx
                .config
                .callback_backoff
                .min_wait
                .saturating_sub(delivery.age());
            Disposition::Nak(wait).apply(&message).await;
            return;
        }
        let work = deliver_again(&ctx, job, delivery.delivered - 1);
        let disposition = tokio::select! {
            biased;
            d = lease::hold(&message, renew_every, work) => d,
            () = abandon.cancelled() => {
                tracing::warn!("shutdown grace is over: leaving the callback for redelivery");
                return;
            }
        };
        disposition.apply(&message).await;
    }
    .instrument(span)
    .await;
}

/// One more delivery of `job`, its `retry`-th from the stream.
async fn deliver_again(ctx: &Context, mut job: CallbackJob, retry: u32) -> Disposition {
    let mut record = match ctx.status.get(&job.call_id).await {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%error, "call status unavailable; delivering anyway");
            None
        }
    };
    let settled = record
        .as_ref()
        .and_then(|r| r.status.callback.as_ref())
        .map(|c| c.state)
        .filter(|s| matches!(s, CallbackState::Delivered | CallbackState::Failed));
    if let Some(state) = settled {
        tracing::info!(
            ?state,
            "callback settled by an earlier delivery; acknowledging"
        );
        return Disposition::Ack;
    }
    let attempt = job.callback_attempts + retry;
    let waiting = matches!(job.state, CallState::Succeeded | CallState::Failed);
    let timeout = ctx.config.callback_timeout;
    let key = ctx.signing_key.as_ref();
    let (status, error, permanent) = match callback::deliver(&ctx.http, &job, key, timeout).await {
        Delivery::Delivered(code) => {
            delivered(ctx, record.as_mut(), &job, attempt, code, waiting).await;
            return Disposition::Ack;
        }
        Delivery::Failed {
            status,
            error,
            permanent,
        } => (status, error, permanent),
    };
    let mut cb = callback_status(
        &job.url,
        CallbackState::Retrying,
        attempt,
        status,
        Some(error.clone()),
    );
    let max = ctx.config.callback_max_attempts;
    if !permanent && attempt < max {
        let delay = ctx.config.callback_backoff.random_delay(attempt);
        tracing::warn!(attempt, max_attempts = max, status, %error, ?delay, "callback not delivered; retrying later");
        ctx.metrics.callback("retrying");
        write(ctx, record.as_mut(), |s| s.callback = Some(cb.clone())).await;
        return Disposition::Nak(delay);
    }
    cb.state = CallbackState::Failed;
    let why = format!(
        "{attempt} deliveries to {} failed, the last with: {error}",
        job.url
    );
    if waiting {
        return give_up(ctx, record.as_mut(), None, &mut job, cb, why).await;
    }
    tracing::warn!(reason = %why, "callback failed for good (the call is dead-lettered already)");
    ctx.metrics.callback("failed");
    write(ctx, record.as_mut(), |s| s.callback = Some(cb.clone())).await;
    Disposition::Ack
}

/// A delivery that succeeded: counted, recorded, and (if the call waited for it) the call
/// ends now.
async fn delivered(
    ctx: &Context,
    record: Option<&mut crate::status::Record>,
    job: &CallbackJob,
    attempt: u32,
    code: u16,
    waiting: bool,
) {
    tracing::info!(status = code, attempt, "callback delivered");
    ctx.metrics.callback("delivered");
    let cb = callback_status(
        &job.url,
        CallbackState::Delivered,
        attempt,
        Some(code),
        None,
    );
    let now = ferry_proto::time::now();
    write(ctx, record, |s| {
        s.callback = Some(cb.clone());
        if waiting {
            s.state = job.state;
            s.finished_at = Some(now.clone());
        }
    })
    .await;
    if waiting {
        let submitted = UNIX_EPOCH + Duration::from_millis(job.submitted_unix_ms);
        ctx.observe_end(job.state, submitted);
    }
}

/// Applies `change` to the call's record, when there is one.
async fn write(
    ctx: &Context,
    record: Option<&mut crate::status::Record>,
    change: impl Fn(&mut ferry_proto::calls::CallStatus),
) {
    let Some(record) = record else {
        return;
    };
    let write = ctx.status.write(record, |s| {
        change(s);
        true
    });
    if let Write::Failed(error) = write.await {
        tracing::warn!(%error, "cannot update the call status");
    }
}
