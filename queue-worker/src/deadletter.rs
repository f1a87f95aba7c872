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

use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;
use ferry_proto::FunctionRef;
use ferry_proto::calls::DeadLetter;
use ferry_proto::jetstream::{CALL_ID_HEADER, dead_letter_subject};

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

fn encode(letter: &DeadLetter) -> Result<Bytes, String> {
    serde_json::to_vec(letter)
        .map(Bytes::from)
        .map_err(|e| format!("encoding the dead letter: {e}"))
}
