//! Callbacks: a failing callback is retried from its own stream without holding the call; one
//! never delivered dead-letters the call with the function's result.

use std::time::Duration;

use ferry_proto::CallbackUrl;
use ferry_proto::calls::{CallState, CallbackState, DeadLetterReason};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{
    FakeGateway, Reply, TestWorker, call_status, dead_letters, publish_call, stored_callbacks,
    stored_calls,
};
use ferry_tests::{NatsServer, wait_until};

use crate::common::{MINUTE, call, fast, js, wait_state, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_callback_is_retried_without_holding_the_call() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("the result")).await;
    // The receiver fails twice, then accepts.
    let receiver = FakeGateway::per_call(|_, n| match n {
        0 | 1 => Reply::ok("down").status(500),
        _ => Reply::ok("thanks"),
    })
    .await;
    // Slow callback retries leave seconds to look at the queues in between.
    let settings = [("callback_initial_wait", "2s"), ("callback_max_wait", "4s")];
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    let mut request = call("f", &CallbackReceiver::start().await);
    request.callback_url = Some(CallbackUrl::new(receiver.url_for("/hook")));
    publish_call(&js, &request, "cb-1").await;

    receiver.wait_for(1, MINUTE).await;
    wait_until(
        "the call is acknowledged while its callback waits for a retry",
        MINUTE,
        || async { stored_calls(&js).await == 0 && stored_callbacks(&js).await == 1 },
    )
    .await;
    assert!(
        receiver.count() < 3,
        "the call message was acked right after the first failure"
    );
    let running = call_status(&js, "cb-1").await.expect("a status record");
    assert_eq!(
        running.state,
        CallState::Running,
        "the call waits for its callback"
    );
    let cb = running.callback.expect("the callback's status");
    assert_eq!(cb.state, CallbackState::Retrying);

    let status = wait_state(&js, "cb-1", CallState::Succeeded).await;
    let cb = status.callback.expect("the callback's status");
    assert_eq!(
        (cb.state, cb.attempts, cb.last_status),
        (CallbackState::Delivered, 3, Some(200))
    );
    let deliveries = receiver.calls();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d.body == "the result"));
    assert_eq!(deliveries[2].header("x-call-state"), "succeeded");
    assert_eq!(deliveries[2].header("x-retry"), "0");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.count(), 3, "delivered exactly once");
    assert_eq!(gateway.count(), 1, "the function ran once");
    assert_eq!(stored_callbacks(&js).await, 0);
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_never_delivered_dead_letters_the_call_with_its_result() {
    let nats = NatsServer::start_async().await;
    let gateway =
        FakeGateway::start(Reply::ok("the result").header("x-from-function", "yes")).await;
    let receiver = FakeGateway::start(Reply::ok("down").status(500)).await;
    let settings = fast(&[("callback_max_attempts", "2")]);
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    let mut request = call("f", &CallbackReceiver::start().await);
    request.callback_url = Some(CallbackUrl::new(receiver.url_for("/hook")));
    publish_call(&js, &request, "cbf-1").await;

    let status = wait_state(&js, "cbf-1", CallState::CallbackFailed).await;
    let cb = status.callback.as_ref().expect("the callback's status");
    assert_eq!(
        (cb.state, cb.attempts, cb.last_status),
        (CallbackState::Failed, 2, Some(500))
    );
    assert_eq!(status.attempts, 1);
    let letters = dead_letters(&js).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(status.dead_letter_sequence, Some(letters[0].sequence));
    let letter = &letters[0].letter;
    assert_eq!(letter.reason, DeadLetterReason::CallbackFailed);
    assert_eq!(letter.request, request);
    let result = letter.result.as_ref().expect("the function's result");
    assert_eq!(
        (result.status, result.body.as_slice()),
        (200, &b"the result"[..])
    );
    assert_eq!(result.headers["x-from-function"], ["yes"]);
    assert_eq!(letter.attempts.len(), 1);
    wait_stream_empty(&js).await;
    assert_eq!(stored_callbacks(&js).await, 0);
    assert_eq!(receiver.count(), 2);
    assert_eq!(gateway.count(), 1);
    worker.stop().await.expect("clean stop");
}
