//! Issue 12's guarantees of the async path, end to end with every component real (NATS, the
//! provider, echo function containers, the gateway, workers in-process and as killable
//! processes): long calls run once whatever the gateway's sync timeout; a call past its own
//! timeout ends `timed_out`; a killed worker's call is finished by another (duplicates
//! counted); retries waiting for their time hold up nothing; a cancel racing the start of a
//! call either cancels it or lets it run once; large results stream to the callback; messages
//! that are not calls, or that keep killing workers, end as dead letters. The echo function
//! counts its invocations itself (`/_/stats`). The tests of one binary run at once: the
//! three-minute call overlaps the rest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ferry_proto::jetstream::{CALLS_STREAM, DEFAULT_QUEUE, consumer_name};
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::platform::{MINUTE, platform};
use ferry_tests::worker::start_process;
use ferry_tests::{http_client, wait_until};
use serde_json::{Value, json};

/// The watchdog settings of a function that may take five minutes, as in the issue.
fn five_minute_function(name: &str) -> Value {
    json!({
        "service": name,
        "envVars": {"exec_timeout": "300s", "write_timeout": "300s", "read_timeout": "300s"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_minute_call_runs_once_past_the_gateways_sync_timeout() {
    let p = platform(&[five_minute_function("slow")]).await;
    // The compose timeouts: the gateway's upstream_timeout is 60s, the worker's lease 30s.
    let _worker = p.worker(&[("ack_wait", "30s")]).await;
    let receiver = CallbackReceiver::start().await;
    let started = Instant::now();
    let id = p
        .submit("slow", &receiver.url("/"), &[("x-echo-sleep-ms", "180000")])
        .await;
    let queued = p.status(&id).await;
    let callbacks = receiver.wait_for(1, 5 * MINUTE).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(180), "{took:?}");
    assert_eq!(callbacks[0].header("x-function-status"), "200");
    assert_eq!(callbacks[0].header("x-call-state"), "succeeded");
    let status = p.wait_state(&id, "succeeded").await;
    assert_eq!(status["attempts"], 1, "{status}");
    assert_eq!(status["submittedAt"], queued["submittedAt"]);
    assert_eq!(p.invocations("slow", &id).await.len(), 1);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_own_timeout_ends_timed_out_and_is_not_run_again() {
    let p = platform(&[json!({
        "service": "bounded",
        "annotations": {"com.openfaas.timeout": "2s"},
        "envVars": {"exec_timeout": "60s", "write_timeout": "60s"},
    })])
    .await;
    let _worker = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;
    let id = p
        .submit(
            "bounded",
            &receiver.url("/"),
            &[("x-echo-sleep-ms", "6000")],
        )
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-state"), "timed_out");
    assert_eq!(callbacks[0].header("x-function-status"), "504");
    let status = p.wait_state(&id, "timed_out").await;
    assert_eq!(status["attempts"], 1);
    assert!(status["deadLetterSequence"].is_u64(), "{status}");
    let letter = p.dead_letter(&id).await;
    assert_eq!(letter["reason"], "timed_out");
    // Past the function's own sleep: still one invocation, one callback.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(p.invocations("bounded", &id).await.len(), 1);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_long_call_leaves_it_to_another() {
    let p = platform(&[five_minute_function("echo")]).await;
    let receiver = CallbackReceiver::start().await;
    let settings = [("ack_wait", "2s"), ("initial_retry_wait", "200ms")];
    let mut doomed = start_process(&p.nats.url(), &p.provider.url(""), &settings).await;
    let id = p
        .submit("echo", &receiver.url("/"), &[("x-echo-sleep-ms", "6000")])
        .await;
    p.wait_state(&id, "running").await;
    doomed.kill();
    let _rescuer = p.worker(&settings).await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-state"), "succeeded");
    let status = p.wait_state(&id, "succeeded").await;
    // At least once: the killed worker's invocation ran on in the function, and the call
    // ran again. Both are counted: the first as a lost attempt, by the function as two.
    assert_eq!(status["attempts"], 2, "{status}");
    let lost = status["attemptHistory"][0]["error"].as_str().unwrap_or("");
    assert!(lost.starts_with("lost"), "{status}");
    assert_eq!(p.invocations("echo", &id).await.len(), 2);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_waiting_for_their_time_hold_up_no_other_function() {
    let p = platform(&[
        json!({"service": "busy", "envVars": {"ECHO_STATUS": "429"}}),
        json!({"service": "echo"}),
    ])
    .await;
    // A pending window far below the number of waiting retries: before retries left the
    // queue, they filled it and stalled everything behind them for ten minutes.
    let _worker = p
        .worker(&[("max_ack_pending", "64"), ("max_inflight", "64")])
        .await;
    let receiver = CallbackReceiver::start().await;
    let before = latencies(&p, &receiver, 20).await;

    let retry_after = [("x-echo-header", "Retry-After: 600")];
    let mut busy = Vec::new();
    for _ in 0..300 {
        busy.push(p.submit("busy", &receiver.url("/busy"), &retry_after).await);
    }
    let js = jetstream::new(p.nats.connect().await);
    wait_until("every busy call waits for its retry", MINUTE, || async {
        retry_schedules(&js).await == 300 && pending(&js).await == 0
    })
    .await;
    let status = p.status(&busy[0]).await;
    assert_eq!(
        (status["state"].as_str(), status["attempts"].as_u64()),
        (Some("queued"), Some(1))
    );
    assert!(status["nextAttemptAt"].is_string(), "{status}");

    let after = latencies(&p, &receiver, 20).await;
    let (p50_before, p50_after) = (median(before), median(after));
    println!("echo p50 without waiting retries {p50_before:?}, with 300 waiting {p50_after:?}");
    assert!(
        p50_after < p50_before + Duration::from_millis(500),
        "{p50_after:?} vs {p50_before:?}"
    );
    assert_eq!(pending(&js).await, 0);
    // The waiting calls can still be cancelled: their schedules go.
    let resp = http_client()
        .delete(p.gateway.url(&format!("/system/async-calls/{}", busy[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(retry_schedules(&js).await, 299);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_start_of_a_call_either_cancels_it_or_lets_it_run_once() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _a = p.worker(&[]).await;
    let _b = p.worker(&[]).await;
    let receiver = CallbackReceiver::start().await;
    let client = http_client();
    let mut outcomes = HashMap::new();
    for _ in 0..40 {
        let id = p.submit("echo", &receiver.url("/"), &[]).await;
        let resp = client
            .delete(p.gateway.url(&format!("/system/async-calls/{id}")))
            .send()
            .await
            .unwrap();
        outcomes.insert(id, resp.status().as_u16());
    }
    let ran = outcomes.values().filter(|s| **s == 409).count();
    assert_eq!(
        ran + outcomes.values().filter(|s| **s == 202).count(),
        40,
        "{outcomes:?}"
    );
    receiver.wait_for(ran, MINUTE).await;
    for (id, cancel) in &outcomes {
        let state = if *cancel == 202 {
            "cancelled"
        } else {
            "succeeded"
        };
        p.wait_state(id, state).await;
    }
    js_settled(&p).await;
    let called: Vec<String> = receiver
        .received()
        .iter()
        .map(|c| c.header("x-call-id").to_string())
        .collect();
    for (id, cancel) in &outcomes {
        let invoked = p.invocations("echo", id).await.len();
        let callbacks = called.iter().filter(|c| *c == id).count();
        match cancel {
            202 => assert_eq!((invoked, callbacks), (0, 0), "cancelled {id}"),
            _ => assert_eq!((invoked, callbacks), (1, 1), "ran {id}"),
        }
    }
    println!("cancel race: {} cancelled, {ran} ran", 40 - ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8_mib_result_streams_to_its_callback() {
    let p = platform(&[json!({"service": "echo"})]).await;
    let _worker = p.worker(&[("max_buffered_result", "1MiB")]).await;
    let receiver = CallbackReceiver::start().await;
    let size = 8 * 1024 * 1024;
    let id = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("x-echo-bytes", &size.to_string())],
        )
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    let body = &callbacks[0].body;
    assert_eq!(body.len(), size);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == b'0' + (i % 10) as u8)
    );
    assert_eq!(callbacks[0].header("x-call-state"), "succeeded");
    p.wait_state(&id, "succeeded").await;

    // A streamed result cannot be delivered again: a failing receiver ends the call
    // `callback_failed`, its dead letter without the body.
    receiver.respond_with(500);
    let id = p
        .submit(
            "echo",
            &receiver.url("/"),
            &[("x-echo-bytes", &size.to_string())],
        )
        .await;
    let status = p.wait_state(&id, "callback_failed").await;
    let error = status["lastError"].as_str().unwrap_or("");
    assert!(error.contains("streamed"), "{status}");
    let letter = p.dead_letter(&id).await;
    assert_eq!(letter["reason"], "callback_failed");
    assert!(letter["result"]["body"].is_null(), "no body kept");
    assert_eq!(p.invocations("echo", &id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_not_calls_or_keep_killing_workers_are_dead_lettered() {
    let p = platform(&[five_minute_function("echo")]).await;
    let receiver = CallbackReceiver::start().await;
    let js = jetstream::new(p.nats.connect().await);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Ferry-Call-Id", "junk-1");
    js.publish_with_headers(
        "ferry.calls.faas-request.echo.openfaas-fn",
        headers,
        "{not a call".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // A worker that allows one delivery: a call whose worker dies is not run again.
    let settings = [("ack_wait", "2s"), ("max_deliveries", "1")];
    let mut doomed = start_process(&p.nats.url(), &p.provider.url(""), &settings).await;
    let letter = wait_for_letter(&p, "junk-1").await;
    assert_eq!(letter["reason"], "invalid_message");
    assert!(
        letter["error"]
            .as_str()
            .unwrap_or("")
            .contains("not a QueueRequest")
    );
    let redrive = http_client()
        .post(p.gateway.url("/system/dead-letters/junk-1/redrive"))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), 409);

    let id = p
        .submit("echo", &receiver.url("/"), &[("x-echo-sleep-ms", "8000")])
        .await;
    p.wait_state(&id, "running").await;
    doomed.kill();
    let _next = p.worker(&settings).await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-state"), "dead_lettered");
    let status = p.wait_state(&id, "dead_lettered").await;
    assert_eq!(status["attempts"], 1, "not run again: {status}");
    let letter = p.dead_letter(&id).await;
    assert_eq!(letter["reason"], "max_deliveries");
    assert_eq!(p.invocations("echo", &id).await.len(), 1);
}

/// The time from submission to callback of `n` calls of `echo`, one after another.
async fn latencies(
    p: &ferry_tests::platform::Platform,
    receiver: &CallbackReceiver,
    n: usize,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let seen = receiver.count();
        let started = Instant::now();
        p.submit("echo", &receiver.url("/echo"), &[]).await;
        wait_until("the callback", MINUTE, || async {
            receiver
                .received()
                .iter()
                .skip(seen)
                .any(|c| c.uri == "/echo")
        })
        .await;
        out.push(started.elapsed());
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Retries waiting for their time: schedules in the calls stream.
async fn retry_schedules(js: &jetstream::Context) -> u64 {
    use futures_util::TryStreamExt as _;
    let calls = js.get_stream(CALLS_STREAM).await.unwrap();
    let mut subjects = calls.info_with_subjects("ferry.retry.>").await.unwrap();
    let mut n = 0;
    while let Some((_, count)) = subjects.try_next().await.unwrap() {
        n += count as u64;
    }
    n
}

/// Messages of the default queue delivered and not yet acknowledged.
async fn pending(js: &jetstream::Context) -> u64 {
    let stream = js.get_stream(CALLS_STREAM).await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&consumer_name(DEFAULT_QUEUE))
        .await
        .unwrap();
    consumer.info().await.unwrap().num_ack_pending as u64
}

/// Waits until no call of the default queue is pending or unacknowledged.
async fn js_settled(p: &ferry_tests::platform::Platform) {
    let js = jetstream::new(p.nats.connect().await);
    wait_until("the queue is empty", MINUTE, || async {
        let stream = js.get_stream(CALLS_STREAM).await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer = stream
            .get_consumer(&consumer_name(DEFAULT_QUEUE))
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        info.num_ack_pending == 0 && info.num_pending == 0
    })
    .await;
}

async fn wait_for_letter(p: &ferry_tests::platform::Platform, id: &str) -> Value {
    wait_until(&format!("the dead letter of {id}"), MINUTE, || async {
        let url = p.gateway.url(&format!("/system/dead-letters/{id}"));
        http_client().get(url).send().await.unwrap().status() == 200
    })
    .await;
    p.dead_letter(id).await
}
