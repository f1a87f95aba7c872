//! Publishing dead letters: calls that exhausted their attempts or their age, or whose callback
//! could never be delivered.
//!
//! A dead letter is a [`DeadLetter`] JSON message on `ferry.dead.<queue>.<name>.<namespace>`
//! in the stream `ferry-dead-letters`, with the NATS headers `Ferry-Call-Id: <call id>` and
//! `Nats-Msg-Id: <call id>.dl<redrives>.<attempts>`: a worker that dies after publishing and
//! before acknowledging the call publishes the same id again, which JetStream stores once
//! (within its duplicate window) and answers with the first copy's sequence.
//!
//! The publish is awaited: the call is acknowledged only once its dead letter is stored.

use async_nats::jetstream::{self, Message, context::PublishErrorKind};
use bytes::Bytes;
use ferry_proto::calls::{CallState, DeadLetter, DeadLetterReason, valid_call_id};
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_SUBJECT_PREFIX, dead_letter_subject};
use ferry_proto::{FunctionRef, Name, QueueRequest};

use crate::context::{Context, Disposition, REQUEUE_DELAY, Receipt};
use crate::status::Write;

/// Room left for NATS headers when checking a payload against the server's `max_payload`.
const HEADER_ROOM: usize = 4096;

/// NATS's default `max_payload`, assumed while the server has not said (never connected).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The largest JSON payload the connected server takes in one message.
pub(crate) fn payload_limit(client: &async_nats::Client) -> usize {
    let max = match client.server_info().max_payload {
        0 => DEFAULT_MAX_PAYLOAD,
        n => n,
    };
    max.saturating_sub(HEADER_ROOM).max(HEADER_ROOM)
}

/// A stored dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Its sequence in the dead-letter stream.
    pub(crate) sequence: u64,
    /// Whether the function's response body had to be left out to fit in a message.
    pub(crate) body_dropped: bool,
}

/// Publishes `letter` for `function` and waits for JetStream to store it; `redrives` and
/// `attempts` (invocations made) make its message id. A letter too large for one message
/// loses its result body (said in [`Stored::body_dropped`]).
pub(crate) async fn publish(
    js: &jetstream::Context,
    limit: usize,
    function: &FunctionRef,
    mut letter: DeadLetter,
    (redrives, attempts): (u32, u32),
) -> Result<Stored, String> {
    let mut body_dropped = false;
    let mut payload = encode(&letter)?;
    if payload.len() > limit {
        if let Some(result) = letter.result.as_mut().filter(|r| !r.body.is_empty()) {
            result.body.clear();
            body_dropped = true;
            payload = encode(&letter)?;
        }
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, letter.call_id.as_str());
    let id = format!("{}.dl{redrives}.{attempts}", letter.call_id);
    headers.insert("Nats-Msg-Id", id.as_str());
    let subject = dead_letter_subject(&letter.queue, function);
    let ack = js
        .publish_with_headers(subject, headers, payload)
        .await
        .map_err(|e| format!("publishing the dead letter: {e}"))?
        .await
        .map_err(|e| match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => {
                "the dead letter is larger than the server's max_payload".to_string()
            }
            _ => format!("storing the dead letter: {e}"),
        })?;
    Ok(Stored {
        sequence: ack.sequence,
        body_dropped,
    })
}

/// Dead-letters a message that is not a call (`invalid_message`, its payload kept as it was,
/// up to what fits in a message), marks the call's status record `dead_lettered` if the
/// message names a call that has one, and acknowledges it; if the dead letter cannot be
/// stored, the message is handed back to try again later.
pub(crate) async fn invalid(
    ctx: &Context,
    message: &Message,
    call_id: Option<&str>,
    reason: String,
) -> Disposition {
    let delivery = Receipt::of(message);
    let queue = ctx.config.queue_name.clone();
    let function = function_of(message.subject.as_str(), &queue);
    let call_id = call_id
        .filter(|id| valid_call_id(id))
        .map(str::to_string)
        .unwrap_or_else(|| format!("invalid-{}", delivery.sequence));
    tracing::error!(reason, "not a call; dead-lettering it as invalid_message");
    let limit = payload_limit(&ctx.client).saturating_sub(HEADER_ROOM);
    let mut payload = message.payload.to_vec();
    payload.truncate(limit / 2); // base64 grows it by a third
    let letter = DeadLetter {
        call_id: call_id.clone(),
        function: function.to_string(),
        queue,
        reason: DeadLetterReason::InvalidMessage,
        dead_lettered_at: ferry_proto::time::now(),
        submitted_at: ferry_proto::time::rfc3339_millis(delivery.published),
        attempts: Vec::new(),
        callback: None,
        result: None,
        request: QueueRequest::default(),
        payload,
        error: Some(reason.clone()),
    };
    let stored = match publish(
        &ctx.js,
        limit,
        &function,
        letter,
        (0, delivery.sequence as u32),
    )
    .await
    {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(%error, "cannot dead-letter the message; it is tried again later");
            return Disposition::Nak(REQUEUE_DELAY);
        }
    };
    ctx.metrics.message("invalid");
    crate::settle::count_dead_letter(ctx, &function.to_string(), DeadLetterReason::InvalidMessage);
    if let Ok(Some(mut record)) = ctx.status.get(&call_id).await {
        let now = ferry_proto::time::now();
        let write = ctx.status.write(&mut record, |s| {
            if s.state.is_final() {
                return false;
            }
            s.state = CallState::DeadLettered;
            s.dead_letter_sequence = Some(stored.sequence);
            s.last_error = Some(format!("invalid message: {reason}"));
            s.finished_at = Some(now.clone());
            true
        });
        if let Write::Failed(error) = write.await {
            tracing::warn!(%error, "cannot update the call status");
        }
    }
    Disposition::Ack
}

/// The function a calls subject names (`ferry.calls.<queue>.<name>.<namespace>`), or
/// `invalid.invalid` when it names none.
fn function_of(subject: &str, queue: &str) -> FunctionRef {
    let prefix = format!("{CALLS_SUBJECT_PREFIX}.{queue}.");
    subject
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(name, namespace)| {
            Some(FunctionRef::new(
                Name::new(name).ok()?,
                Name::new(namespace).ok()?,
            ))
        })
        .unwrap_or_else(|| {
            let invalid = Name::new("invalid").expect("a valid name");
            FunctionRef::new(invalid.clone(), invalid)
        })
}

fn encode(letter: &DeadLetter) -> Result<Bytes, String> {
    serde_json::to_vec(letter)
        .map(Bytes::from)
        .map_err(|e| format!("encoding the dead letter: {e}"))
}
