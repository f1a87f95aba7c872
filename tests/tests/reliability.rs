//! Issue 4's guarantees, end to end with every component real: retries with backoff and
//! `Retry-After`, dead letters and their redrive, reliable callbacks, call status, idempotent
//! submission, expiry, named queues, a NATS restart and a worker shutdown with calls in flight.
//! The echo function fails on request (`X-Echo-Fail-Times`, `ECHO_STATUS`) and reports what it
//! saw at `/_/stats`, so invocations are counted by the function itself.

use std::collections::HashSet;
use std::time::Duration;

use ferry_tests::callback::CallbackReceiver;
use ferry_tests::http_client;
use ferry_tests::platform::{MINUTE, platform};
use ferry_tests::worker::start_process;

use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_failing_twice_with_503_is_retried_and_succeeds() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;

    let id = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("x-echo-fail-times", "2"), ("x-echo-fail-status", "503")],
        )
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    let status = p.wait_state(&id, "succeeded").await;
    assert_eq!(callbacks.len(), 1);
    let cb = &callbacks[0];
    assert_eq!(cb.header("x-call-id"), id);
    assert_eq!(cb.header("x-function-status"), "200");
    assert_eq!(cb.header("x-retry"), "2");
    assert!(cb.header("x-retry-max").parse::<u32>().unwrap() >= 2);
    assert_eq!(status["attempts"], 3);
    let history: Vec<u64> = status["attemptHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(history, vec![503, 503, 200]);
    assert_eq!(p.invocations("echo", &id).await.len(), 3);
    assert_eq!(status["callback"]["state"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_are_dead_lettered_and_redriven_after_a_fix() {
    let broken = json!({
        "service": "broken",
        "envVars": {"ECHO_STATUS": "500"},
        "annotations": {"com.openfaas.retry.attempts": "3"}
    });
    let p = platform(std::slice::from_ref(&broken)).await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;

    let id = p.submit("broken", &receiver.url("/"), &[]).await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-state"), "dead_lettered");
    assert_eq!(callbacks[0].header("x-function-status"), "500");
    assert_eq!(callbacks[0].header("x-retry"), "2");
    let status = p.wait_state(&id, "dead_lettered").await;
    assert_eq!(status["attempts"], 3);
    assert_eq!(
        p.invocations("broken", &id).await.len(),
        3,
        "exactly three invocations"
    );

    // The dead letter holds the request and every attempt.
    let client = http_client();
    let page: Value = client
        .get(p.gateway.url("/system/dead-letters?function=broken"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["callId"], id.as_str());
    let letter: Value = client
        .get(p.gateway.url(&format!("/system/dead-letters/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(letter["reason"], "attempts_exhausted");
    assert_eq!(letter["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(letter["attempts"][2]["status"], 500);
    assert_eq!(letter["request"]["Function"], "broken");

    // Fix the function, redrive: the call succeeds and the dead letter is gone.
    let mut fixed = broken;
    fixed["image"] = json!(p.image.tag);
    fixed["envVars"] = json!({});
    let (code, body) = p
        .provider
        .call("PUT", "/system/functions", Some(&fixed.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
    p.provider.wait_available("broken", 1).await;
    let resp = client
        .post(p.gateway.url(&format!("/system/dead-letters/{id}/redrive")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let callbacks = receiver.wait_for(2, MINUTE).await;
    assert_eq!(callbacks[1].header("x-call-id"), id);
    assert_eq!(callbacks[1].header("x-function-status"), "200");
    assert_eq!(callbacks[1].header("x-call-state"), "succeeded");
    let status = p.wait_state(&id, "succeeded").await;
    assert_eq!(status["redrives"], 1);
    let gone = client
        .get(p.gateway.url(&format!("/system/dead-letters/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_is_honoured() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;
    let id = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[
                ("x-echo-fail-times", "1"),
                ("x-echo-fail-status", "429"),
                ("x-echo-header", "Retry-After: 2"),
            ],
        )
        .await;
    receiver.wait_for(1, MINUTE).await;
    let seen = p.invocations("echo", &id).await;
    assert_eq!(seen.len(), 2);
    // initial_retry_wait is 200 ms: only Retry-After explains a gap of 2 s or more.
    assert!(
        seen[1] - seen[0] >= 2000,
        "retried after {} ms",
        seen[1] - seen[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_callback_is_retried_until_delivered_once() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;
    receiver.respond_with(500);
    let id = p.submit("echo", &receiver.url("/hook"), &[]).await;
    receiver.wait_for(2, MINUTE).await;
    assert_eq!(
        p.status(&id).await["state"],
        "running",
        "the call waits for its callback"
    );
    receiver.respond_with(200);
    let before = receiver.received().len();
    let status = p.wait_state(&id, "succeeded").await;
    assert_eq!(status["callback"]["state"], "delivered");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.received().len(),
        before + 1,
        "delivered exactly once after recovery"
    );
    assert_eq!(
        p.invocations("echo", &id).await.len(),
        1,
        "the function ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_runs_the_call_once() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;
    let a = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("idempotency-key", "order-1001")],
        )
        .await;
    let b = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("idempotency-key", "order-1001")],
        )
        .await;
    let c = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("idempotency-key", "order-1002")],
        )
        .await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    receiver.wait_for(2, MINUTE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(p.invocations("echo", &a).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_is_dead_lettered_without_invocation() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let receiver = CallbackReceiver::start().await;
    // Queued while no worker runs...
    let id = p.submit("echo", &receiver.url("/"), &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // ...and older than the worker's maximum age when one starts.
    let _worker = p.worker(&[("max_event_age", "1s")]).await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-state"), "expired");
    let status = p.wait_state(&id, "expired").await;
    assert_eq!(status["attempts"], 0);
    assert!(p.invocations("echo", &id).await.is_empty(), "never invoked");
    let letter: Value = http_client()
        .get(p.gateway.url(&format!("/system/dead-letters/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(letter["reason"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_function_on_its_own_queue_does_not_delay_the_default_queue() {
    let slow = json!({"service": "slow", "annotations": {"com.openfaas.queue": "slow-lane"}});
    let p = platform(&[json!({"service": "echo"}), slow]).await;
    let _default = p.worker(&[]).await;
    let _slow_lane = p
        .worker(&[("queue_name", "slow-lane"), ("max_inflight", "1")])
        .await;
    let slow_cb = CallbackReceiver::start().await;
    let fast_cb = CallbackReceiver::start().await;
    for _ in 0..5 {
        p.submit("slow", &slow_cb.url("/"), &[("x-echo-sleep-ms", "2000")])
            .await;
    }
    let fast = p.submit("echo", &fast_cb.url("/"), &[]).await;
    fast_cb.wait_for(1, MINUTE).await;
    assert!(
        slow_cb.received().len() <= 1,
        "the fast call did not wait behind the slow queue"
    );
    assert_eq!(p.status(&fast).await["queue"], "faas-request");
    let slow_all = slow_cb.wait_for(5, MINUTE).await;
    assert!(
        slow_all
            .iter()
            .all(|c| c.header("x-function-status") == "200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_survive_a_nats_restart() {
    let mut p = platform(&[json!({"service": "echo"})]).await;
    let receiver = CallbackReceiver::start().await;
    let mut ids = HashSet::new();
    for _ in 0..20 {
        ids.insert(p.submit("echo", &receiver.url("/"), &[]).await);
    }
    // Same port, same store.
    p.nats.stop();
    p.nats.start_again();
    let _worker = p.worker(&[]).await;
    receiver.wait_for(20, Duration::from_secs(120)).await;
    let got: HashSet<String> = receiver
        .received()
        .iter()
        .map(|c| c.header("x-call-id").to_string())
        .collect();
    assert_eq!(got, ids, "every queued call completed");
    for id in &ids {
        p.wait_state(id, "succeeded").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_worker_finishes_or_hands_back_its_calls() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let receiver = CallbackReceiver::start().await;
    // Grace long enough for the 2 s calls: they finish before the worker exits.
    let mut worker = start_process(
        &p.nats.url(),
        &p.provider.url(""),
        &[("shutdown_grace", "20s"), ("ack_wait", "3s")],
    )
    .await;
    let ids = p.submit_running(4, "2000", &receiver.url("/")).await;
    let exit = worker.terminate();
    assert!(exit.success(), "clean exit: {exit}");
    let callbacks = receiver.wait_for(4, MINUTE).await;
    let got: HashSet<&str> = callbacks.iter().map(|c| c.header("x-call-id")).collect();
    assert_eq!(got.len(), 4);
    // Nothing ran after it was acknowledged: each call ran exactly once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for id in &ids {
        assert_eq!(p.invocations("echo", id).await.len(), 1, "{id}");
        assert_eq!(p.status(id).await["state"], "succeeded");
    }

    // Grace shorter than the calls: they are left unacknowledged and another worker completes
    // them; none is lost.
    let mut worker = start_process(
        &p.nats.url(),
        &p.provider.url(""),
        &[("shutdown_grace", "500ms"), ("ack_wait", "2s")],
    )
    .await;
    let ids: HashSet<String> = p
        .submit_running(3, "3000", &receiver.url("/"))
        .await
        .into_iter()
        .collect();
    assert!(worker.terminate().success());
    let _rescuer = p.worker(&[("ack_wait", "2s")]).await;
    for id in &ids {
        p.wait_state(id, "succeeded").await;
    }
    let got: HashSet<String> = receiver
        .received()
        .iter()
        .map(|c| c.header("x-call-id").to_string())
        .collect();
    assert!(ids.is_subset(&got), "every call called back");
}
