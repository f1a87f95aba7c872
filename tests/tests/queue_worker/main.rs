//! queue-worker against a real nats-server: a fake gateway stands in for the functions (each
//! call answered as scripted) and a callback receiver for the callers' `X-Callback-Url`s. The
//! worker runs in-process through `run()`, or as the real binary when a test kills it.
//!
//! The second half covers reliability: retries with backoff and `Retry-After`, dead letters,
//! callback retries, expiry, cancellation, the per-function cap and metrics, reading what the
//! worker records (status bucket, dead-letter stream) straight from JetStream.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use ferry_proto::calls::{CallState, CallStatus, CallbackState, DeadLetterReason};
use ferry_proto::jetstream::{CALLS_STREAM, DEFAULT_QUEUE, consumer_name};
use ferry_proto::{CallbackUrl, QueueRequest};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{
    FakeGateway, Reply, TestWorker, call_status, create_status, dead_letters, publish_call,
    publish_raw, stored_callbacks, stored_calls,
};
use ferry_tests::{NatsServer, free_port, wait_until};

const MINUTE: Duration = Duration::from_secs(60);

/// Quick retries, so tests do not wait for production backoffs.
const FAST: [(&str, &str); 4] = [
    ("initial_retry_wait", "200ms"),
    ("max_retry_wait", "1s"),
    ("callback_initial_wait", "200ms"),
    ("callback_max_wait", "1s"),
];

/// [`FAST`] plus `extra`.
fn fast<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FAST.iter().chain(extra).copied().collect()
}

/// Waits until the status record of `id` is in `state`; returns it.
async fn wait_state(js: &jetstream::Context, id: &str, state: CallState) -> CallStatus {
    wait_until(
        &format!("call {id} is {}", state.as_str()),
        MINUTE,
        || async { call_status(js, id).await.is_some_and(|s| s.state == state) },
    )
    .await;
    call_status(js, id).await.expect("the status record")
}

/// A call to `function` with a callback to `callback`.
fn call(function: &str, callback: &CallbackReceiver) -> QueueRequest {
    QueueRequest {
        method: "POST".into(),
        function: function.into(),
        callback_url: Some(CallbackUrl::new(callback.url("/cb"))),
        ..Default::default()
    }
}

async fn js(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(nats.connect().await)
}

/// Waits until every call is acknowledged: the work-queue stream is empty.
async fn wait_stream_empty(js: &jetstream::Context) {
    wait_until(
        "every call is acknowledged (stream empty)",
        MINUTE,
        || async { stored_calls(js).await == 0 },
    )
    .await;
}

/// The shared consumer's (unacknowledged, not yet delivered) counts.
async fn consumer_counts(js: &jetstream::Context) -> (usize, u64) {
    let stream = js.get_stream(CALLS_STREAM).await.expect("calls stream");
    let mut consumer: PullConsumer = stream
        .get_consumer(&consumer_name(DEFAULT_QUEUE))
        .await
        .expect("the workers' consumer");
    let info = consumer.info().await.expect("consumer info");
    (info.num_ack_pending, info.num_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_the_original_request_and_posts_the_result_to_the_callback() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(
        Reply::ok("the result")
            .status(201)
            .header("content-type", "text/plain")
            .header("x-from-function", "yes"),
    )
    .await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[]).await;
    let (code, health) = worker.health().await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["consumer"], "ferry-workers-faas-request");
    assert_eq!(health["nats"], "connected");

    let js = js(&nats).await;
    let headers: BTreeMap<String, Vec<String>> = [
        ("Content-Type", vec!["application/json"]),
        ("Authorization", vec!["Bearer secret"]),
        ("X-Custom", vec!["one", "two"]),
        ("X-Call-Id", vec!["call-1"]),
        ("Connection", vec!["keep-alive"]),
        ("Content-Length", vec!["999"]),
        ("Host", vec!["api.example.com"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let body = b"{\"n\": 1}\xff\x00binary".to_vec();
    let request = QueueRequest {
        method: "PUT".into(),
        function: "echo.dev".into(),
        path: "/a/b".into(),
        query_string: "x=1&y=two%20words".into(),
        header: headers,
        host: "api.example.com".into(),
        body: body.clone(),
        callback_url: Some(CallbackUrl::new(callback.url("/cb?token=t1"))),
        ..Default::default()
    };
    publish_call(&js, &request, "call-1").await;

    let calls = gateway.wait_for(1, MINUTE).await;
    let c = &calls[0];
    assert_eq!(c.method, "PUT");
    assert_eq!(c.path, "/function/echo.dev/a/b");
    assert_eq!(c.query.as_deref(), Some("x=1&y=two%20words"));
    assert_eq!(c.body, body);
    assert_eq!(c.header("content-type"), "application/json");
    assert_eq!(c.header("authorization"), "Bearer secret");
    let custom: Vec<_> = c.headers.get_all("x-custom").iter().collect();
    assert_eq!(custom, ["one", "two"]);
    assert_eq!(c.header("x-call-id"), "call-1");
    assert_eq!(c.header("x-forwarded-host"), "api.example.com");
    assert_eq!(c.header("content-length"), body.len().to_string());
    assert!(!c.header("host").contains("example.com"));
    assert!(!c.headers.contains_key("connection"));

    let received = callback.wait_for(1, MINUTE).await;
    let cb = &received[0];
    assert_eq!(cb.method, "POST");
    assert_eq!(cb.uri, "/cb?token=t1");
    assert_eq!(cb.text(), "the result");
    assert_eq!(cb.header("content-type"), "text/plain");
    assert_eq!(cb.header("x-from-function"), "yes");
    assert_eq!(cb.header("x-call-id"), "call-1");
    assert_eq!(cb.header("x-function-name"), "echo.dev");
    assert_eq!(cb.header("x-function-status"), "201");
    let seconds = cb.header("x-duration-seconds");
    let (_, decimals) = seconds.split_once('.').expect("a decimal duration");
    assert_eq!(decimals.len(), 6, "{seconds}");
    assert!(seconds.parse::<f64>().is_ok_and(|s| s >= 0.0), "{seconds}");
    assert_eq!(cb.header("x-retry"), "0");
    assert_eq!(cb.header("x-retry-max"), "9");
    assert_eq!(cb.header("x-call-state"), "succeeded");

    let status = wait_state(&js, "call-1", CallState::Succeeded).await;
    assert_eq!((status.attempts, status.last_status), (1, Some(201)));
    assert_eq!(status.function, "echo.dev");
    assert_eq!(status.queue, "faas-request");
    assert!(status.finished_at.is_some() && status.sequence.is_some());
    let cb_status = status.callback.expect("the callback's status");
    assert_eq!(
        (cb_status.state, cb_status.attempts),
        (CallbackState::Delivered, 1)
    );
    wait_stream_empty(&js).await;
    assert_eq!(consumer_counts(&js).await, (0, 0));
    worker.stop().await.expect("clean stop");
    assert_eq!(gateway.count(), 1);
    assert_eq!(callback.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_reported_as_503() {
    let nats = NatsServer::start_async().await;
    let callback = CallbackReceiver::start().await;
    // Nothing listens on this port. One attempt: retryable, but no retry allowed.
    let gateway_url = format!("http://127.0.0.1:{}", free_port());
    let settings = [("max_retry_attempts", "1")];
    let worker = TestWorker::start(&nats.url(), &gateway_url, &settings).await;
    let js = js(&nats).await;
    publish_call(&js, &call("figlet", &callback), "down-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].header("x-function-status"), "503");
    assert_eq!(received[0].header("x-call-state"), "dead_lettered");
    assert_eq!(received[0].header("x-retry-max"), "0");
    assert_eq!(received[0].header("x-function-name"), "figlet");
    assert_eq!(received[0].header("x-call-id"), "down-1");
    assert!(received[0].body.is_empty());
    wait_stream_empty(&js).await;
    worker.stop().await.expect("clean stop");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_ack_wait_runs_once() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("long").delay(Duration::from_secs(4))).await;
    let callback = CallbackReceiver::start().await;
    let settings = [("ack_wait", "1s")];
    let one = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let two = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    publish_call(&js, &call("long", &callback), "long-1").await;

    callback.wait_for(1, MINUTE).await;
    wait_stream_empty(&js).await;
    // Three more ack_waits: a lost lease would have shown up as a second call by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gateway.count(), 1, "the call was redelivered");
    assert_eq!(callback.received().len(), 1);
    assert_eq!(callback.received()[0].header("x-function-status"), "200");
    one.stop().await.expect("clean stop");
    two.stop().await.expect("clean stop");
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_terminated_and_do_not_block_the_queue() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("fine")).await;
    let callback = CallbackReceiver::start().await;
    let worker = TestWorker::start(&nats.url(), gateway.url(), &[("ack_wait", "1s")]).await;
    let js = js(&nats).await;

    publish_raw(&js, b"this is not JSON").await;
    publish_raw(
        &js,
        br#"{"Function": "../system/functions", "Method": "POST"}"#,
    )
    .await;
    publish_call(&js, &call("good", &callback), "good-1").await;

    let received = callback.wait_for(1, MINUTE).await;
    assert_eq!(received[0].header("x-call-id"), "good-1");
    wait_until("nothing is pending or unacknowledged", MINUTE, || async {
        consumer_counts(&js).await == (0, 0)
    })
    .await;
    // Terminated messages are never redelivered, and never reached the gateway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gateway.count(), 1);
    assert_eq!(gateway.calls()[0].path, "/function/good/");
    assert_eq!(consumer_counts(&js).await, (0, 0));
    // Work-queue retention removes terminated messages too.
    assert_eq!(stored_calls(&js).await, 0);
    worker.stop().await.expect("clean stop");
}

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

// === reliability ===

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
