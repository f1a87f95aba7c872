//! Callbacks: a failing callback is retried from its own stream without holding the call; one
//! never delivered dead-letters the call with the function's result; with a signing key every
//! delivery is signed afresh, without one none is; a callback to a denied destination
//! (`callback_deny`, checked on every resolved address) fails for good, undelivered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::CallbackUrl;
use ferry_proto::calls::{CallState, CallbackState, DeadLetterReason};
use ferry_queue_worker::WorkerError;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::worker::{
    Call, FakeGateway, Reply, TestWorker, call_status, dead_letters, publish_call,
    stored_callbacks, stored_calls,
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

/// `v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`, computed here as a receiver would.
fn expected_signature(key: &str, delivery: &Call) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut signed = format!("{}.", delivery.header("x-ferry-timestamp")).into_bytes();
    signed.extend_from_slice(&delivery.body);
    format!("v1={}", hex::encode(ring::hmac::sign(&key, &signed)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_and_retries_are_signed_afresh() {
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("callback-signing-key");
    // Rotation: the first line signs, the second is for receivers only.
    std::fs::write(&key_file, "  new-key\n\nold-key\n").unwrap();
    let nats = NatsServer::start_async().await;
    // The function forges a signature of its own: it must not reach the receiver.
    let reply = Reply::ok("the result \u{2713}").header("x-ferry-signature", "v1=forged");
    let gateway = FakeGateway::start(reply).await;
    let receiver = FakeGateway::per_call(|_, n| match n {
        0 => Reply::ok("down").status(500),
        _ => Reply::ok("thanks"),
    })
    .await;
    let settings = [
        ("secret_mount_path", secrets.path().to_str().unwrap()),
        ("callback_initial_wait", "1s"),
        ("callback_max_wait", "2s"),
    ];
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    let mut request = call("f", &CallbackReceiver::start().await);
    request.callback_url = Some(CallbackUrl::new(receiver.url_for("/hook")));
    publish_call(&js, &request, "signed-1").await;

    wait_state(&js, "signed-1", CallState::Succeeded).await;
    let deliveries = receiver.calls();
    assert_eq!(
        deliveries.len(),
        2,
        "the first delivery failed, the retry got through"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut stamps = Vec::new();
    for d in &deliveries {
        assert_eq!(d.body, "the result \u{2713}");
        let stamp: u64 = d.header("x-ferry-timestamp").parse().expect("a Unix time");
        assert!(now.abs_diff(stamp) < 60, "{stamp} is now");
        let signature = d.header("x-ferry-signature");
        assert_eq!(signature, expected_signature("new-key", d));
        assert_ne!(signature, expected_signature("old-key", d));
        stamps.push(stamp);
    }
    assert!(
        stamps[1] > stamps[0],
        "the retry has its own, later time: {stamps:?}"
    );
    worker.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_callbacks_are_unsigned() {
    let secrets = tempfile::tempdir().unwrap();
    let nats = NatsServer::start_async().await;
    let reply = Reply::ok("the result").header("x-ferry-signature", "v1=forged");
    let gateway = FakeGateway::start(reply).await;
    let receiver = FakeGateway::start(Reply::ok("thanks")).await;
    let settings = [("secret_mount_path", secrets.path().to_str().unwrap())];
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    let mut request = call("f", &CallbackReceiver::start().await);
    request.callback_url = Some(CallbackUrl::new(receiver.url_for("/hook")));
    publish_call(&js, &request, "unsigned-1").await;

    wait_state(&js, "unsigned-1", CallState::Succeeded).await;
    let delivery = &receiver.calls()[0];
    assert_eq!(delivery.body, "the result");
    for name in ["x-ferry-timestamp", "x-ferry-signature"] {
        assert!(delivery.headers.get(name).is_none(), "{name}: {delivery:?}");
    }
    worker.stop().await.expect("clean stop");

    // A key file named explicitly must be there.
    let missing = secrets.path().join("nowhere");
    let settings = [("callback_signing_key_file", missing.to_str().unwrap())];
    let mut worker = TestWorker::spawn(&nats.url(), gateway.url(), &settings).await;
    let err = worker.join().await.expect_err("no key file");
    assert!(matches!(err, WorkerError::SigningKey(_)), "{err}");
    assert!(err.to_string().contains("nowhere"), "names the file: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_to_a_denied_address_is_refused_for_good() {
    let nats = NatsServer::start_async().await;
    let gateway = FakeGateway::start(Reply::ok("the result")).await;
    let receiver = CallbackReceiver::start().await;
    // Denied on the worker only: a name that resolves to loopback gets past any check made
    // without DNS, so only the worker's resolver can stop it.
    let settings = fast(&[("callback_deny", "127.0.0.0/8,::1")]);
    let worker = TestWorker::start(&nats.url(), gateway.url(), &settings).await;
    let js = js(&nats).await;
    let by_name = receiver.url("/by-name").replace("127.0.0.1", "localhost");
    for (id, url) in [("deny-name", by_name), ("deny-ip", receiver.url("/by-ip"))] {
        let mut request = call("f", &receiver);
        request.callback_url = Some(CallbackUrl::new(url));
        publish_call(&js, &request, id).await;
    }

    for (id, target) in [
        ("deny-name", "callback destination localhost ("),
        ("deny-ip", "callback destination 127.0.0.1 refused"),
    ] {
        let status = wait_state(&js, id, CallState::CallbackFailed).await;
        let cb = status.callback.as_ref().expect("the callback's status");
        let error = cb.last_error.as_deref().unwrap_or_default();
        assert_eq!((cb.state, cb.attempts), (CallbackState::Failed, 1), "{id}");
        assert!(
            error.contains(target) && error.contains("matches callback_deny entry"),
            "{id}: {error}"
        );
        let last = status.last_error.as_deref().unwrap_or_default();
        assert!(last.contains("refused"), "{id}: {last}");
    }
    let letters = dead_letters(&js).await;
    assert_eq!(letters.len(), 2);
    assert!(
        letters
            .iter()
            .all(|l| l.letter.reason == DeadLetterReason::CallbackFailed)
    );
    assert_eq!(stored_callbacks(&js).await, 0, "never queued for retry");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 0, "nothing was delivered");
    assert_eq!(gateway.count(), 2, "each function ran once");
    worker.stop().await.expect("clean stop");
}
