//! Failures around the worker: NATS not up yet, NATS crashing, and a worker killed mid-call
//! (its call redelivered to another worker).

use std::time::{Duration, Instant};

use ferry_proto::calls::CallState;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{FakeGateway, Reply, TestWorker, publish_call};
use ferry_tests::{NatsServer, wait_until};

use crate::common::{MINUTE, call, js, wait_state, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_waits_for_nats() {
    let mut nats = NatsServer::start_async().await;
    nats.stop();
    let gateway = FakeGateway::start(Reply::ok("late")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::spawn(&nats.url(), gateway.url(), &[]).await;
    wait_until("the worker answers /healthz", MINUTE, || async {
        worker.health().await.0 != 0
    })
    .await;
    let (code, body) = worker.health().await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["consumer_ready"], false);

    let nats = tokio::task::spawn_blocking(move || {
        nats.start_again();
        nats
    })
    .await
    .expect("restarting nats-server");
    worker.wait_healthy().await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "late-1").await;
    callback.wait_for(1, MINUTE).await;
    wait_stream_empty(&js).await;
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_nats_crash() {
    let mut nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("after")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[]).await;
    {
        let js = js(&nats).await;
        publish_call(&js, &call("f", &callback), "before-crash").await;
        callback.wait_for(1, MINUTE).await;
        wait_stream_empty(&js).await;
    }

    let nats = tokio::task::spawn_blocking(move || {
        nats.restart();
        nats
    })
    .await
    .expect("restarting nats-server");
    worker.wait_healthy().await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "after-crash").await;
    // (A crash may lose the record of a recent ack, so "before-crash" may come again:
    // at-least-once. Only look for the new call.)
    wait_until(
        "the call queued after the crash is called back",
        MINUTE,
        || async {
            callback
                .received()
                .iter()
                .any(|r| r.header("x-call-id") == "after-crash")
        },
    )
    .await;
    wait_stream_empty(&js).await;
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_call_is_redelivered_to_another_worker() {
    let nats = NatsServer::start_async().await;
    // The first attempt hangs (the worker is killed during it); the second answers.
    let gateway = FakeGateway::start_with(|_, n| {
        if n == 0 {
            Reply::ok("never").delay(Duration::from_secs(300))
        } else {
            Reply::ok("redelivered")
        }
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let settings = [("ack_wait", "2s")];
    let mut doomed =
        ferry_tests::worker::start_process(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    publish_call(&js, &call("f", &callback), "killed-1").await;
    gateway.wait_for(1, MINUTE).await;
    doomed.kill();
    let killed_at = Instant::now();

    let survivor = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].text(), "redelivered");
    assert_eq!(received[0].header("x-call-id"), "killed-1");
    let calls = gateway.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].header("x-call-id"), "killed-1");
    // Redelivered by JetStream after ack_wait, not before.
    assert!(calls[1].at >= killed_at);
    wait_stream_empty(&js).await;
    assert_eq!(callback.received().len(), 1);
    // The crashed invocation counts as an attempt.
    assert_eq!(received[0].header("x-retry"), "1");
    let status = wait_state(&js, "killed-1", CallState::Succeeded).await;
    let history: Vec<Option<u16>> = status.attempt_history.iter().map(|a| a.status).collect();
    assert_eq!(history, [None, Some(200)]);
    let lost = status.attempt_history[0].error.as_deref().unwrap_or("");
    assert!(lost.starts_with("lost"), "{lost}");
    survivor.stop().await.expect("clean stop");
}
