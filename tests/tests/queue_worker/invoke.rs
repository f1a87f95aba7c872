//! One call's trip: the original request replayed to the gateway and the result posted to the
//! callback; an unreachable gateway; a call longer than `ack_wait`; invalid messages.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_proto::calls::{CallState, CallbackState, DeadLetterReason};
use ferry_proto::{CallbackUrl, QueueRequest};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{
    FakeGateway, Reply, TestWorker, dead_letters, publish_call, publish_raw, stored_calls,
};
use ferry_tests::{NatsServer, free_port, wait_until};

use crate::common::{MINUTE, call, consumer_counts, js, wait_state, wait_stream_empty};

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
async fn invalid_messages_are_dead_lettered_and_do_not_block_the_queue() {
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
    // Dead-lettered as `invalid_message` with their payload; never redelivered, never run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gateway.count(), 1);
    assert_eq!(gateway.calls()[0].path, "/function/good/");
    assert_eq!(consumer_counts(&js).await, (0, 0));
    assert_eq!(stored_calls(&js).await, 0);
    let letters = dead_letters(&js).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    // Both are handled at once: their letters may be stored in either order.
    for (payload, why) in [
        (&b"this is not JSON"[..], "not a QueueRequest"),
        (
            &br#"{"Function": "../system/functions", "Method": "POST"}"#[..],
            "invalid Function",
        ),
    ] {
        let stored = letters
            .iter()
            .find(|l| l.letter.payload == payload)
            .unwrap_or_else(|| panic!("no dead letter for {payload:?}: {letters:?}"));
        assert_eq!(stored.letter.reason, DeadLetterReason::InvalidMessage);
        assert_eq!(stored.letter.payload, payload);
        assert!(
            stored.letter.error.as_deref().unwrap_or("").contains(why),
            "{:?}",
            stored.letter.error
        );
        assert_eq!(stored.subject, "ferry.dead.faas-request.f.openfaas-fn");
    }
    worker.stop().await.expect("clean stop");
}
