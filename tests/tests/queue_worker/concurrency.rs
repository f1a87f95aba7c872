//! Many calls at once: a hundred calls, `max_inflight`, the per-function cap, and throughput.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferry_proto::calls::CallState;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{FakeGateway, Reply, TestWorker, publish_call, stored_calls};
use ferry_tests::{NatsServer, wait_until};

use crate::common::{MINUTE, call, js, wait_state, wait_stream_empty};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_give_a_hundred_callbacks() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("ok")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[]).await;
    let js = js(&nats).await;

    let ids: HashSet<String> = (0..100).map(|i| format!("bulk-{i}")).collect();
    for id in &ids {
        publish_call(&js, &call("f", &callback), id).await;
    }
    let received = callback.wait_for(100, MINUTE).await;
    let got: HashSet<String> = received
        .iter()
        .map(|r| r.header("x-call-id").to_string())
        .collect();
    assert_eq!(got, ids);
    wait_stream_empty(&js).await;
    assert_eq!(gateway.count(), 100);
    assert_eq!(callback.received().len(), 100);
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_bounds_concurrent_calls() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("slow").delay(Duration::from_millis(700))).await;
    let callback = CallbackReceiver::start().await;
    // One function: its own cap (half of max_inflight by default) must not be the limit here.
    let settings = [("max_inflight", "4"), ("max_inflight_per_function", "4")];
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    for i in 0..16 {
        publish_call(&js, &call("slow", &callback), &format!("slow-{i}")).await;
    }
    callback.wait_for(16, MINUTE).await;
    assert_eq!(gateway.max_concurrent(), 4);
    wait_stream_empty(&js).await;
    worker.stop().await.expect("clean stop");
}

/// Not a benchmark with a threshold: prints calls per second through the whole path (pull,
/// invoke a fake gateway that answers at once, callback, ack) with `max_inflight` 64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_through_a_fast_gateway() {
    const N: usize = 1000;
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("fast")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[("max_inflight", "64")]).await;
    worker.stop().await.expect("clean stop");
    let js = js(&nats).await;

    // Queue everything first (the worker is stopped), awaiting acks in windows.
    let request = call("fast", &callback);
    let ids: Vec<String> = (0..N).map(|i| format!("tp-{i}")).collect();
    for chunk in ids.chunks(100) {
        let publishes = chunk.iter().map(|id| publish_call(&js, &request, id));
        futures_util::future::join_all(publishes).await;
    }
    assert_eq!(stored_calls(&js).await, N as u64);

    let started = Instant::now();
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[("max_inflight", "64")]).await;
    callback.wait_for(N, Duration::from_secs(300)).await;
    wait_stream_empty(&js).await;
    let elapsed = started.elapsed();
    eprintln!(
        "queue-worker throughput: {N} calls (invoke + callback + ack) in {elapsed:.2?} = {:.0}/s, \
         {} running at most",
        N as f64 / elapsed.as_secs_f64(),
        gateway.max_concurrent()
    );
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_function_does_not_take_every_slot() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start_with(|call, _| {
        if call.path.starts_with("/function/a/") {
            Reply::ok("slow").delay(Duration::from_secs(2))
        } else {
            Reply::ok("fast")
        }
    })
    .await;
    let callback = CallbackReceiver::start().await;
    let settings = [("max_inflight", "4"), ("max_inflight_per_function", "2")];
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    for i in 0..6 {
        publish_call(&js, &call("a", &callback), &format!("a-{i}")).await;
    }
    publish_call(&js, &call("b", &callback), "b-1").await;

    let called_back = |id: &'static str| {
        let callback = &callback;
        move || async move {
            callback
                .received()
                .iter()
                .any(|r| r.header("x-call-id") == id)
        }
    };
    wait_until("b is called back", MINUTE, called_back("b-1")).await;
    let a_done = callback
        .received()
        .iter()
        .filter(|r| r.header("x-call-id").starts_with("a-"))
        .count();
    assert!(a_done < 6, "b waited for all of a ({a_done} done)");
    callback.wait_for(7, MINUTE).await;
    assert_eq!(gateway.max_concurrent_of("a"), 2);
    // Deferred calls were not counted as attempts.
    for i in 0..6 {
        let status = wait_state(&js, &format!("a-{i}"), CallState::Succeeded).await;
        assert_eq!(status.attempts, 1, "a-{i}");
    }
    wait_stream_empty(&js).await;
    worker.stop().await.expect("clean stop");
}
