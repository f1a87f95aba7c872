//! One delivered message, from receipt to acknowledgement.
//!
//! 1. Parse the [`QueueRequest`]. A message that cannot be a call is logged with its stream
//!    sequence and terminated (`+TERM`): redelivering it would never help.
//! 2. Under the JetStream lease ([`lease::hold`]): invoke the function, then POST the result to
//!    the callback URL if there is one.
//! 3. Acknowledge with a double ack (the server confirms it recorded the ack), and only then:
//!    a worker that dies before this point leaves the call to be redelivered.
//!
//! Every log line of a call is inside a `call` span carrying its call id, function, stream
//! sequence and delivery count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use ferry_proto::QueueRequest;
use ferry_proto::headers::CALL_ID;
use ferry_proto::jetstream::CALL_ID_HEADER;
use http::HeaderMap;
use reqwest::Url;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::callback::{self, CallResult};
use crate::invoke::{self, Invocation};
use crate::lease;

/// What every call needs, shared by all of them.
#[derive(Debug)]
pub(crate) struct Calls {
    pub(crate) http: reqwest::Client,
    pub(crate) gateway: Url,
    pub(crate) upstream_timeout: Duration,
    pub(crate) callback_timeout: Duration,
    /// How often leases are renewed (a third of the consumer's `ack_wait`).
    pub(crate) renew_every: Duration,
}

/// Handles one message. Returns without acknowledging when `abandon` fires (the shutdown grace
/// ran out): JetStream then redelivers the call after `ack_wait`.
pub(crate) async fn handle(calls: Arc<Calls>, message: Message, abandon: CancellationToken) {
    let received = Instant::now();
    let (sequence, delivered) = message
        .info()
        .map(|i| (i.stream_sequence, i.delivered))
        .unwrap_or((0, 0));
    let nats_call_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(CALL_ID_HEADER))
        .map(|v| v.as_str().to_string());

    let request: QueueRequest = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(error) => {
            let call_id = nats_call_id.as_deref().unwrap_or("-");
            let span = tracing::error_span!("call", call_id, sequence, delivered);
            terminate(&message, &format!("not a QueueRequest: {error}"))
                .instrument(span)
                .await;
            return;
        }
    };
    let call_id = nats_call_id.or_else(|| request.header_value(CALL_ID).map(str::to_string));
    let span = tracing::info_span!(
        "call",
        call_id = call_id.as_deref().unwrap_or("-"),
        function = %request.function,
        sequence,
        delivered,
    );
    let work = run(calls, message, request, call_id, received, abandon);
    work.instrument(span).await
}

async fn run(
    calls: Arc<Calls>,
    message: Message,
    request: QueueRequest,
    call_id: Option<String>,
    received: Instant,
    abandon: CancellationToken,
) {
    let invocation = match Invocation::new(&calls.gateway, &request, call_id.as_deref()) {
        Ok(i) => i,
        Err(error) => return terminate(&message, &error.to_string()).await,
    };
    if message.info().is_ok_and(|i| i.delivered > 1) {
        tracing::info!("call redelivered; running it again");
    }
    tracing::debug!(method = %invocation.method, url = %invocation.url, "invoking");

    let work = async {
        let result = call_function(&calls, &invocation, &request, call_id, received).await;
        if let Some(raw) = &request.callback_url {
            send_callback(&calls, raw.as_str(), &result).await;
        }
    };
    tokio::select! {
        biased;
        () = lease::hold(&message, calls.renew_every, work) => {}
        () = abandon.cancelled() => {
            tracing::warn!("shutdown grace is over: leaving the call unacknowledged; \
                JetStream redelivers it after ack_wait");
            return;
        }
    }
    if let Err(error) = message.double_ack().await {
        tracing::warn!(%error, "acknowledgement not confirmed; the call may run again");
    }
}

async fn call_function(
    calls: &Calls,
    invocation: &Invocation,
    request: &QueueRequest,
    call_id: Option<String>,
    received: Instant,
) -> CallResult {
    let outcome = invoke::invoke(&calls.http, invocation, calls.upstream_timeout).await;
    let duration = received.elapsed();
    let seconds = callback::duration_seconds(duration);
    let (status, headers, body) = match outcome {
        Ok(response) => {
            tracing::info!(status = response.status.as_u16(), seconds, "call finished");
            (response.status, response.headers, response.body)
        }
        Err(error) => {
            let status = error.function_status();
            tracing::warn!(%error, status = status.as_u16(), seconds, "call failed");
            (status, HeaderMap::new(), Bytes::new())
        }
    };
    CallResult {
        function: request.function.clone(),
        call_id,
        status,
        headers,
        body,
        duration,
    }
}

async fn send_callback(calls: &Calls, raw: &str, result: &CallResult) {
    let url = match callback::callback_url(raw) {
        Ok(url) => url,
        Err(error) => {
            tracing::warn!(%error, "callback not sent");
            return;
        }
    };
    match callback::post(&calls.http, url, result, calls.callback_timeout).await {
        Ok(status) if status.is_success() => {
            tracing::info!(status = status.as_u16(), "callback delivered")
        }
        Ok(status) => {
            tracing::warn!(status = status.as_u16(), callback = %raw, "callback refused")
        }
        Err(error) => tracing::warn!(%error, callback = %raw, "callback failed"),
    }
}

async fn terminate(message: &Message, why: &str) {
    tracing::error!(
        reason = why,
        "invalid message; terminating it (it is not redelivered)"
    );
    if let Err(error) = message.double_ack_with(AckKind::Term).await {
        tracing::warn!(%error, "terminating the message not confirmed");
    }
}
