//! Calls that end without a result: exhausted attempts and expired calls are dead-lettered
//! (with every attempt); a cancelled call is acknowledged without invocation or callback.

use std::time::Duration;

use ferry_proto::calls::{CallState, CallStatus, DeadLetterReason};
use ferry_proto::jetstream::DEFAULT_QUEUE;
use ferry_tests::NatsServer;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{
    FakeGateway, Reply, TestWorker, call_status, create_status, dead_letters, publish_call,
};

use crate::common::{FAST, MINUTE, call, fast, js, wait_state, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_are_dead_lettered_with_every_attempt() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("broken").status(500)).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    let mut request = call("broken", &callback);
    request.body = b"payload".to_vec();
    request.annotations = [("com.openfaas.retry.attempts".to_string(), "3".to_string())].into();
    publish_call(&js, &request, "dl-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    let cb = &received[0];
    assert_eq!(cb.header("x-call-state"), "dead_lettered");
    assert_eq!(cb.header("x-function-status"), "500");
    assert_eq!((cb.header("x-retry"), cb.header("x-retry-max")), ("2", "2"));
    assert_eq!(cb.text(), "broken");
    let status = wait_state(&js, "dl-1", CallState::DeadLettered).await;
    assert_eq!(status.attempts, 3);

    let letters = dead_letters(&js).await;
    assert_eq!(letters.len(), 1);
    let stored = &letters[0];
    assert_eq!(status.dead_letter_sequence, Some(stored.sequence));
    assert_eq!(stored.subject, "ferry.dead.faas-request.broken.openfaas-fn");
    assert_eq!(stored.headers["Ferry-Call-Id"], "dl-1");
    assert_eq!(stored.headers["Nats-Msg-Id"], "dl-1.dl0.3");
    let letter = &stored.letter;
    assert_eq!(letter.reason, DeadLetterReason::AttemptsExhausted);
    assert_eq!(
        (letter.call_id.as_str(), letter.queue.as_str()),
        ("dl-1", "faas-request")
    );
    let statuses: Vec<Option<u16>> = letter.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500); 3]);
    assert_eq!(letter.request, request, "the original request");
    let result = letter.result.as_ref().expect("the last answer");
    assert_eq!(
        (result.status, result.body.as_slice()),
        (500, &b"broken"[..])
    );
    wait_stream_empty(&js).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gateway.count(), 3, "exactly three invocations");
    assert_eq!(callback.received().len(), 1);
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_is_dead_lettered_without_invocation() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("never")).await;
    let callback = CallbackReceiver::start().await;
    // A first worker creates the streams and the bucket, then goes away.
    let first = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    first.stop().await.expect("clean stop");
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "old-1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let settings = fast(&[("max_event_age", "1s")]);
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let received = callback.wait_for(1, MINUTE).await;
    let cb = &received[0];
    assert_eq!(cb.header("x-call-state"), "expired");
    assert_eq!(cb.header("x-function-status"), "504");
    assert_eq!(cb.header("x-retry"), "0");
    assert!(cb.body.is_empty());
    let status = wait_state(&js, "old-1", CallState::Expired).await;
    assert_eq!(status.attempts, 0);
    let letters = dead_letters(&js).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter.reason, DeadLetterReason::Expired);
    assert!(letters[0].letter.attempts.is_empty() && letters[0].letter.result.is_none());
    wait_stream_empty(&js).await;
    assert_eq!(gateway.count(), 0, "never invoked");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_acknowledged_without_invocation_or_callback() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("never")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    let mut cancelled = CallStatus::queued("gone-1", "f.openfaas-fn", DEFAULT_QUEUE, "t0");
    cancelled.state = CallState::Cancelled;
    create_status(&js, &cancelled).await;
    publish_call(&js, &call("f", &callback), "gone-1").await;

    wait_stream_empty(&js).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gateway.count(), 0);
    assert!(callback.received().is_empty());
    let status = call_status(&js, "gone-1").await.expect("the status record");
    assert_eq!((status.state, status.attempts), (CallState::Cancelled, 0));
    worker.stop().await.expect("clean stop");
}
