//! Stopping a worker: a running call finishes, one unfinished after the grace is redelivered,
//! and what its last pull delivers is handed back.

use std::time::{Duration, Instant};

use ferry_tests::NatsServer;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{FakeGateway, Reply, TestWorker, publish_call, stored_calls};

use crate::common::{MINUTE, call, js, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_call_finish() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("done").delay(Duration::from_secs(2))).await;
    let callback = CallbackReceiver::start().await;
    let mut worker = TestWorker::start(&nats.url(), gateway.url(), &[]).await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "drain-1").await;
    gateway.wait_for(1, MINUTE).await;
    assert!(callback.received().is_empty());

    worker.begin_stop();
    tokio::time::timeout(MINUTE, worker.join())
        .await
        .expect("the worker stops within the grace")
        .expect("clean stop");
    // run() returned only after the callback and a confirmed ack.
    assert_eq!(callback.received().len(), 1);
    assert_eq!(callback.received()[0].header("x-call-id"), "drain-1");
    assert_eq!(stored_calls(&js).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_unfinished_after_the_grace_is_redelivered() {
    let nats = NatsServer::start_async().await;
    // The first attempt hangs; the second answers at once.
    let gateway = FakeGateway::start_with(|_, n| {
        let reply = Reply::ok(if n == 0 { "first" } else { "second" });
        if n == 0 {
            reply.delay(Duration::from_secs(120))
        } else {
            reply
        }
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let settings = [("ack_wait", "2s"), ("shutdown_grace", "500ms")];
    let mut first = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "grace-1").await;
    gateway.wait_for(1, MINUTE).await;

    first.begin_stop();
    tokio::time::timeout(MINUTE, first.join())
        .await
        .expect("the worker gives up after the grace")
        .expect("clean stop");
    assert!(callback.received().is_empty());
    assert_eq!(stored_calls(&js).await, 1, "the call is still queued");

    let second = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].text(), "second");
    assert_eq!(received[0].header("x-call-id"), "grace-1");
    let calls = gateway.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].header("x-call-id"), "grace-1");
    wait_stream_empty(&js).await;
    second.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_back_what_its_last_pull_delivers() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("ok")).await;
    let callback = CallbackReceiver::start().await;
    // A long lease: a call stranded at the stopping worker would wait a minute for it.
    let mut stopping = TestWorker::start(
        &nats.url(),
        gateway.url(),
        &[("ack_wait", "60s"), ("pull_expires", "10s")],
    )
    .await;
    // Let its pull request reach the server first, so the next call goes to it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = TestWorker::start(&nats.url(), gateway.url(), &[("ack_wait", "60s")]).await;
    stopping.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "handed-back").await;

    let started = Instant::now();
    callback.wait_for(1, MINUTE).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the call waited for its lease to expire"
    );
    tokio::time::timeout(MINUTE, stopping.join())
        .await
        .expect("the worker stops once its last pull expires")
        .expect("clean stop");
    wait_stream_empty(&js).await;
    assert_eq!(gateway.count(), 1);
    other.stop().await.expect("clean stop");
}
