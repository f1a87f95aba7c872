//! Helpers shared by the queue-worker tests: fast retry settings, a call with a callback, and
//! waiting on what the worker records (status records, the calls stream, the consumer).

use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use ferry_proto::calls::{CallState, CallStatus};
use ferry_proto::jetstream::{CALLS_STREAM, DEFAULT_QUEUE, consumer_name};
use ferry_proto::{CallbackUrl, QueueRequest};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{call_status, stored_calls};
use ferry_tests::{NatsServer, wait_until};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// Quick retries, so tests do not wait for production backoffs.
pub(crate) const FAST: [(&str, &str); 4] = [
    ("initial_retry_wait", "200ms"),
    ("max_retry_wait", "1s"),
    ("callback_initial_wait", "200ms"),
    ("callback_max_wait", "1s"),
];

/// [`FAST`] plus `extra`.
pub(crate) fn fast<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FAST.iter().chain(extra).copied().collect()
}

/// Waits until the status record of `id` is in `state`; returns it.
pub(crate) async fn wait_state(js: &jetstream::Context, id: &str, state: CallState) -> CallStatus {
    wait_until(
        &format!("call {id} is {}", state.as_str()),
        MINUTE,
        || async { call_status(js, id).await.is_some_and(|s| s.state == state) },
    )
    .await;
    call_status(js, id).await.expect("the status record")
}

/// A call to `function` with a callback to `callback`.
pub(crate) fn call(function: &str, callback: &CallbackReceiver) -> QueueRequest {
    QueueRequest {
        method: "POST".into(),
        function: function.into(),
        callback_url: Some(CallbackUrl::new(callback.url("/cb"))),
        ..Default::default()
    }
}

pub(crate) async fn js(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(nats.connect().await)
}

/// Waits until every call is acknowledged: the work-queue stream is empty.
pub(crate) async fn wait_stream_empty(js: &jetstream::Context) {
    wait_until(
        "every call is acknowledged (stream empty)",
        MINUTE,
        || async { stored_calls(js).await == 0 },
    )
    .await;
}

/// The shared consumer's (unacknowledged, not yet delivered) counts.
pub(crate) async fn consumer_counts(js: &jetstream::Context) -> (usize, u64) {
    let stream = js.get_stream(CALLS_STREAM).await.expect("calls stream");
    let mut consumer: PullConsumer = stream
        .get_consumer(&consumer_name(DEFAULT_QUEUE))
        .await
        .expect("the workers' consumer");
    let info = consumer.info().await.expect("consumer info");
    (info.num_ack_pending, info.num_pending)
}
