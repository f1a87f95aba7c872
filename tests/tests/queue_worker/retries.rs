//! Retries: backoff on 503, `Retry-After` on 429, no retry for a non-retryable failure, and
//! the metrics that count attempts, retries and callbacks.

use std::time::Duration;

use ferry_proto::calls::CallState;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{FakeGateway, Reply, TestWorker, dead_letters, publish_call};
use ferry_tests::{NatsServer, wait_until};

use crate::common::{FAST, MINUTE, call, js, wait_state, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_failing_twice_with_503_is_retried_and_called_back_once() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::per_call(|_, n| match n {
        0 | 1 => Reply::ok("busy").status(503),
        _ => Reply::ok("done"),
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    publish_call(&js, &call("flaky", &callback), "retry-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    let cb = &received[0];
    assert_eq!(cb.text(), "done");
    assert_eq!(cb.header("x-function-status"), "200");
    assert_eq!(cb.header("x-retry"), "2");
    assert_eq!(cb.header("x-retry-max"), "9");
    assert_eq!(cb.header("x-call-state"), "succeeded");
    let status = wait_state(&js, "retry-1", CallState::Succeeded).await;
    assert_eq!((status.attempts, status.max_attempts), (3, 10));
    let history: Vec<Option<u16>> = status.attempt_history.iter().map(|a| a.status).collect();
    assert_eq!(history, [Some(503), Some(503), Some(200)]);
    assert!(status.next_attempt_at.is_none() && status.dead_letter_sequence.is_none());
    wait_stream_empty(&js).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        gateway.calls_of("retry-1").len(),
        3,
        "exactly three invocations"
    );
    assert_eq!(callback.received().len(), 1, "one callback");
    assert!(dead_letters(&js).await.is_empty());
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_is_honoured() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::per_call(|_, n| match n {
        0 => Reply::ok("slow down")
            .status(429)
            .header("retry-after", "2"),
        _ => Reply::ok("ok"),
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    publish_call(&js, &call("limited", &callback), "ra-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].header("x-retry"), "1");
    let calls = gateway.calls_of("ra-1");
    assert_eq!(calls.len(), 2);
    // initial_retry_wait is 200 ms: only Retry-After explains 2 s or more.
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_failure_is_called_back_once_as_failed() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("bad input").status(400)).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    publish_call(&js, &call("strict", &callback), "bad-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].header("x-function-status"), "400");
    assert_eq!(received[0].header("x-call-state"), "failed");
    assert_eq!(received[0].header("x-retry"), "0");
    assert_eq!(received[0].text(), "bad input");
    let status = wait_state(&js, "bad-1", CallState::Failed).await;
    assert_eq!((status.attempts, status.last_status), (1, Some(400)));
    wait_stream_empty(&js).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gateway.count(), 1);
    assert!(dead_letters(&js).await.is_empty());
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_attempts_retries_and_callbacks() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::per_call(|_, n| match n {
        0 => Reply::ok("busy").status(503),
        _ => Reply::ok("done"),
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &FAST).await;
    let js = js(&nats).await;
    publish_call(&js, &call("m", &callback), "metrics-1").await;
    callback.wait_for(1, MINUTE).await;

    let want = [
        "queue_worker_attempts_total{function_name=\"m.openfaas-fn\"} 2",
        "queue_worker_retries_total{function_name=\"m.openfaas-fn\"} 1",
        "queue_worker_callbacks_total{outcome=\"delivered\"} 1",
        "queue_worker_messages_total{outcome=\"retried\"} 1",
        "queue_worker_messages_total{outcome=\"succeeded\"} 1",
        "queue_worker_end_to_end_seconds_count{state=\"succeeded\"} 1",
        "queue_worker_inflight 0",
    ];
    wait_until("the metrics show the call", MINUTE, || async {
        let text = worker.metrics().await;
        want.iter().all(|line| text.contains(line))
    })
    .await;
    let text = worker.metrics().await;
    assert!(
        text.contains("# TYPE queue_worker_end_to_end_seconds histogram"),
        "{text}"
    );
    worker.stop().await.expect("clean stop");
}
