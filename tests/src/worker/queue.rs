//! Queueing calls the way the gateway does, and reading what the worker records: the calls and
//! callback streams, call status records and dead letters.

use std::collections::BTreeMap;

use async_nats::jetstream;
use bytes::Bytes;
use ferry_proto::calls::{CallStatus, DeadLetter};
use ferry_proto::jetstream::{
    CALL_ID_HEADER, CALLBACK_STREAM, CALLS_STREAM, DEAD_LETTER_STREAM, DEFAULT_QUEUE,
    STATUS_BUCKET, call_subject,
};
use ferry_proto::{FunctionRef, Name, QueueRequest};

// === queueing calls ===

/// Queues `request` on the default queue as the gateway does: subject
/// `ferry.calls.faas-request.<name>.<namespace>`, NATS headers `Ferry-Call-Id` and
/// `Nats-Msg-Id` set to `call_id`. The calls stream must exist (a healthy worker created it).
/// Returns the stream sequence once JetStream has stored the call.
pub async fn publish_call(js: &jetstream::Context, request: &QueueRequest, call_id: &str) -> u64 {
    let function = FunctionRef::parse(&request.function, &Name::default_namespace())
        .expect("a valid Function");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, call_id);
    headers.insert("Nats-Msg-Id", call_id);
    let payload = serde_json::to_vec(request).expect("serialising a QueueRequest");
    js.publish_with_headers(
        call_subject(DEFAULT_QUEUE, &function),
        headers,
        payload.into(),
    )
    .await
    .expect("publishing a call")
    .await
    .expect("JetStream storing a call")
    .sequence
}

/// Publishes `payload` as it is to the default queue's subject for function `f`.
pub async fn publish_raw(js: &jetstream::Context, payload: &[u8]) -> u64 {
    let function = FunctionRef::parse("f", &Name::default_namespace()).expect("a valid name");
    js.publish(
        call_subject(DEFAULT_QUEUE, &function),
        Bytes::copy_from_slice(payload),
    )
    .await
    .expect("publishing")
    .await
    .expect("JetStream storing")
    .sequence
}

/// Messages in the calls stream (acknowledged calls leave it: work-queue retention).
pub async fn stored_calls(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(CALLS_STREAM).await.expect("the calls stream");
    stream
        .info()
        .await
        .expect("calls stream info")
        .state
        .messages
}

/// Messages in `stream`.
async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    let mut stream = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("the stream {stream}: {e}"));
    stream.info().await.expect("stream info").state.messages
}

/// Callbacks waiting for a retry (messages in `ferry-callbacks`).
pub async fn stored_callbacks(js: &jetstream::Context) -> u64 {
    stream_messages(js, CALLBACK_STREAM).await
}

// === what the worker records ===

/// The status record of `call_id`, if there is one.
pub async fn call_status(js: &jetstream::Context, call_id: &str) -> Option<CallStatus> {
    let bucket = js
        .get_key_value(STATUS_BUCKET)
        .await
        .expect("the call-status bucket (a healthy worker created it)");
    let value = bucket
        .get(call_id)
        .await
        .expect("reading a status record")?;
    Some(serde_json::from_slice(&value).expect("a CallStatus record"))
}

/// Creates the status record `status` (as the gateway does after storing a call).
pub async fn create_status(js: &jetstream::Context, status: &CallStatus) {
    let bucket = js
        .get_key_value(STATUS_BUCKET)
        .await
        .expect("the call-status bucket (a healthy worker created it)");
    let value = serde_json::to_vec(status).expect("encoding a CallStatus");
    bucket
        .create(&status.call_id, value.into())
        .await
        .expect("creating a status record");
}

/// One message of the dead-letter stream.
#[derive(Debug, Clone)]
pub struct StoredDeadLetter {
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// Its NATS headers (first value of each).
    pub headers: BTreeMap<String, String>,
    /// The letter.
    pub letter: DeadLetter,
}

/// Every message in the dead-letter stream, oldest first.
pub async fn dead_letters(js: &jetstream::Context) -> Vec<StoredDeadLetter> {
    let mut stream = js
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the dead-letter stream (a healthy worker created it)");
    let (messages, first, last) = {
        let state = &stream.info().await.expect("dead-letter stream info").state;
        (state.messages, state.first_sequence, state.last_sequence)
    };
    let mut letters = Vec::new();
    if messages == 0 {
        return letters;
    }
    for sequence in first..=last {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let headers = message
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.first()?.as_str().to_string())))
            .collect();
        letters.push(StoredDeadLetter {
            sequence,
            subject: message.subject.to_string(),
            headers,
            letter: serde_json::from_slice(&message.payload).expect("a DeadLetter"),
        });
    }
    letters
}
