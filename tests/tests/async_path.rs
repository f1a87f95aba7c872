//! The async path end to end, every component real: a function container built from the
//! workspace's watchdog and echo-server, provider-docker on the Docker engine, the gateway,
//! NATS JetStream, queue-workers (in-process and as killable child processes), and an HTTP
//! server standing in for the caller's `X-Callback-Url`.

use std::collections::HashSet;
use std::time::Duration;

use ferry_tests::callback::{CallbackReceiver, Received};
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::worker::{TestWorker, start_process, stored_calls};
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

/// Everything but the workers: the echo function deployed and ready, NATS, the gateway.
struct Platform {
    // Fields drop in declaration order: the gateway and provider stop before the guard
    // removes their containers.
    gateway: TestGateway,
    provider: TestProvider,
    nats: NatsServer,
    _guard: DockerGuard,
}

async fn platform() -> Platform {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let provider = TestProvider::start(&guard).await;
    let deployment = json!({"service": "echo", "image": echo.tag}).to_string();
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&deployment))
        .await;
    assert_eq!(code, 202, "{body}");
    provider.wait_available("echo", 1).await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    Platform {
        _guard: guard,
        nats,
        provider,
        gateway,
    }
}

impl Platform {
    /// Submits an async call; returns the call id from the 202.
    async fn submit(
        &self,
        method: &str,
        path: &str,
        callback: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> String {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http_client()
            .request(method, self.gateway.url(path))
            .header("x-callback-url", callback)
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("submitting");
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        resp.headers()["x-call-id"].to_str().unwrap().to_string()
    }

    async fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.connect().await)
    }
}

fn echo_json(callback: &Received) -> Value {
    serde_json::from_slice(&callback.body).unwrap_or_else(|e| panic!("{e}: {}", callback.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_call_is_replayed_and_its_result_posted_to_the_callback() {
    let p = platform().await;
    let _worker = TestWorker::start(&p.nats.url(), &p.provider.url(""), &[]).await;
    let receiver = CallbackReceiver::start().await;

    let id = p
        .submit(
            "PUT",
            "/async-function/echo/orders/42?expand=items",
            &receiver.url("/done?job=7"),
            &[
                ("x-tenant", "acme"),
                ("x-echo-status", "201"),
                ("x-echo-header", "X-Result: stored"),
            ],
            "the payload",
        )
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    let cb = &callbacks[0];
    assert_eq!(cb.method, "POST");
    assert_eq!(cb.uri, "/done?job=7");
    assert_eq!(cb.header("x-call-id"), id);
    assert_eq!(cb.header("x-function-name"), "echo");
    assert_eq!(cb.header("x-function-status"), "201");
    let secs: f64 = cb
        .header("x-duration-seconds")
        .parse()
        .expect("X-Duration-Seconds is a number");
    assert!(secs > 0.0);
    // The function's own response headers travel with its body.
    assert_eq!(cb.header("x-result"), "stored");
    assert!(
        cb.header("content-type").starts_with("application/json"),
        "{:?}",
        cb.headers
    );
    // The function saw the original method, sub-path, query, headers and body.
    let seen = echo_json(cb);
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/orders/42");
    assert_eq!(seen["query"], "expand=items");
    assert_eq!(seen["body"], "the payload");
    assert_eq!(seen["headers"]["x-tenant"][0], "acme");
    assert_eq!(seen["headers"]["x-call-id"][0], id.as_str());

    // Acknowledged: nothing is left in the work queue.
    let js = p.js().await;
    wait_until("the call is acknowledged", MINUTE, || async {
        stored_calls(&js).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_submissions_give_exactly_hundred_callbacks() {
    let p = platform().await;
    let _a = TestWorker::start(
        &p.nats.url(),
        &p.provider.url(""),
        &[("max_inflight", "16")],
    )
    .await;
    let _b = TestWorker::start(
        &p.nats.url(),
        &p.provider.url(""),
        &[("max_inflight", "16")],
    )
    .await;
    let receiver = CallbackReceiver::start().await;
    let callback = receiver.url("/cb");

    let submissions = (0..100).map(|i| {
        let (p, callback) = (&p, callback.clone());
        async move {
            p.submit(
                "POST",
                "/async-function/echo",
                &callback,
                &[],
                &format!("call {i}"),
            )
            .await
        }
    });
    let ids: HashSet<String> = futures_util::future::join_all(submissions)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 100, "100 distinct call ids");

    let callbacks = receiver.wait_for(100, Duration::from_secs(120)).await;
    // Give duplicates a chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let callbacks = receiver.received().len().max(callbacks.len());
    assert_eq!(callbacks, 100, "exactly one callback per call");
    let got: HashSet<String> = receiver
        .received()
        .iter()
        .map(|c| c.header("x-call-id").to_string())
        .collect();
    assert_eq!(got, ids);
    let bodies: HashSet<String> = receiver
        .received()
        .iter()
        .map(|c| echo_json(c)["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_ack_wait_runs_once() {
    let p = platform().await;
    let extra = [("ack_wait", "1s")];
    let _a = TestWorker::start(&p.nats.url(), &p.provider.url(""), &extra).await;
    let _b = TestWorker::start(&p.nats.url(), &p.provider.url(""), &extra).await;
    let receiver = CallbackReceiver::start().await;

    // The function takes 4 s, four times ack_wait (and within the test image's 5 s
    // watchdog write_timeout).
    let id = p
        .submit(
            "POST",
            "/async-function/echo",
            &receiver.url("/"),
            &[("x-echo-sleep-ms", "4000")],
            "slow",
        )
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-id"), id);
    assert_eq!(callbacks[0].header("x-function-status"), "200");
    // Had the lease lapsed, the second worker would have run it again and called back again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.received().len(), 1, "the call ran once");
    let js = p.js().await;
    assert_eq!(stored_calls(&js).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_call_is_completed_by_another_worker() {
    let p = platform().await;
    let receiver = CallbackReceiver::start().await;
    let extra = [("ack_wait", "3s")];
    let mut doomed = start_process(&p.nats.url(), &p.provider.url(""), &extra).await;

    let id = p
        .submit(
            "POST",
            "/async-function/echo",
            &receiver.url("/"),
            &[("x-echo-sleep-ms", "4000")],
            "survive",
        )
        .await;
    // Wait until the worker process holds the call (delivered, not acknowledged)...
    let js = p.js().await;
    let consumer_name =
        ferry_proto::jetstream::consumer_name(ferry_proto::jetstream::DEFAULT_QUEUE);
    wait_until("the worker process took the call", MINUTE, || async {
        let stream = js
            .get_stream(ferry_proto::jetstream::CALLS_STREAM)
            .await
            .unwrap();
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&consumer_name).await.unwrap();
        consumer.info().await.is_ok_and(|i| i.num_ack_pending == 1)
    })
    .await;
    // ...and kill it mid-call: no shutdown code runs, the message stays unacknowledged.
    doomed.kill();
    assert!(
        receiver.received().is_empty(),
        "the killed worker never called back"
    );

    let _rescuer = TestWorker::start(&p.nats.url(), &p.provider.url(""), &extra).await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-id"), id);
    assert_eq!(callbacks[0].header("x-function-status"), "200");
    assert_eq!(echo_json(&callbacks[0])["body"], "survive");
    wait_until("the call is acknowledged", MINUTE, || async {
        stored_calls(&js).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_function_is_reported_to_the_callback_as_503() {
    let p = platform().await;
    // A worker that does not bring the function back from zero replicas, and makes one
    // attempt: the failure is reported at once instead of after retries.
    let _worker = TestWorker::start(
        &p.nats.url(),
        &p.provider.url(""),
        &[("max_retry_attempts", "1"), ("scale_from_zero", "false")],
    )
    .await;
    let receiver = CallbackReceiver::start().await;
    // Accepted while the function exists, then it loses its replicas.
    let scale = json!({"serviceName": "echo", "replicas": 0}).to_string();
    assert_eq!(
        p.provider
            .call("POST", "/system/scale-function/echo", Some(&scale))
            .await
            .0,
        202
    );
    let id = p
        .submit("POST", "/async-function/echo", &receiver.url("/"), &[], "x")
        .await;
    let callbacks = receiver.wait_for(1, MINUTE).await;
    assert_eq!(callbacks[0].header("x-call-id"), id);
    assert_eq!(callbacks[0].header("x-function-status"), "503");
    assert_eq!(callbacks[0].header("x-call-state"), "dead_lettered");
}
