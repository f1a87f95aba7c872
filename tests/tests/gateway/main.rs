//! gateway end to end: the gateway in-process in front of a real provider-docker with real
//! function containers, and a real NATS JetStream server.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ferry_proto::QueueRequest;
use ferry_proto::calls::{CallState, CallStatus, CallbackState, DeadLetter, DeadLetterPage};
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM, DEAD_LETTER_STREAM};
use ferry_tests::gateway::{
    TestGateway, calls_and_statuses, dead_letter, messages_of, rewrite_status,
};
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
/// The subject of the echo function's calls on the default queue.
const ECHO_SUBJECT: &str = "ferry.calls.faas-request.echo.openfaas-fn";

/// Deploys `echo` through the gateway (`POST /system/functions` is forwarded to the provider)
/// and waits until its replica is ready.
async fn deploy_echo(
    gateway: &TestGateway,
    provider: &TestProvider,
    image: &FunctionImage,
    annotations: Value,
) {
    let deployment = json!({"service": "echo", "image": image.tag, "annotations": annotations});
    let resp = http_client()
        .post(gateway.url("/system/functions"))
        .json(&deployment)
        .send()
        .await
        .expect("deploying through the gateway");
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    provider.wait_available("echo", 1).await;
}

/// Asserts an error made by the gateway itself: `status`, `X-OpenFaaS-Internal: proxy` and a
/// JSON `{"message"}`; returns the message.
async fn gateway_error(resp: reqwest::Response, status: u16) -> String {
    let url = resp.url().clone();
    assert_eq!(resp.status(), status, "{url}");
    assert_eq!(resp.headers()["x-openfaas-internal"], "proxy", "{url}");
    assert_eq!(resp.headers()["content-type"], "application/json", "{url}");
    let body: Value = resp.json().await.expect("JSON error body");
    body["message"].as_str().expect("message").to_string()
}

async fn health(gateway: &TestGateway) -> (u16, Value) {
    let resp = http_client()
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    (resp.status().as_u16(), resp.json().await.expect("JSON"))
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Polls `attempt` every 100 ms until it returns a value; panics naming `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn calls_stream(nats: &NatsServer) -> jetstream::stream::Stream {
    let js = jetstream::new(nats.connect().await);
    eventually("the gateway created the calls stream", MINUTE, || {
        let js = js.clone();
        async move { js.get_stream(CALLS_STREAM).await.ok() }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_calls_are_proxied_to_a_ready_replica() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();

    deploy_echo(&gateway, &provider, &echo, json!({})).await;
    let list: Value = client
        .get(gateway.url("/system/functions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "echo", "{list}");
    wait_until("healthz is ok", MINUTE, || async {
        health(&gateway).await
            == (
                200,
                json!({"status": "ok", "nats": "connected", "provider": "ok"}),
            )
    })
    .await;

    // Method, sub-path, raw query, headers and body reach the function; its status and
    // headers come back. Hop-by-hop headers (and those named in Connection) do not pass.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let resp = client
        .put(gateway.url("/function/echo/orders/7/?verbose=1&x=%20y"))
        .header("x-echo-status", "201")
        .header("x-echo-header", "X-Result: done")
        .header("content-type", "text/plain")
        .header("connection", "x-hop")
        .header("x-hop", "must not pass")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-result"], "done");
    let call_id = header(&resp, "x-call-id");
    assert!(uuid_like(&call_id), "{call_id}");
    let start_time = header(&resp, "x-start-time");
    assert!(start_time.parse::<u128>().unwrap() >= before);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["method"], "PUT");
    assert_eq!(out["path"], "/orders/7/");
    assert_eq!(out["query"], "verbose=1&x=%20y");
    assert_eq!(out["body"], "payload");
    let seen = &out["headers"];
    assert_eq!(seen["x-call-id"], json!([call_id]));
    assert_eq!(seen["x-start-time"], json!([start_time]));
    assert_eq!(seen["content-type"], json!(["text/plain"]));
    assert!(
        seen["x-forwarded-for"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{seen}"
    );
    assert_eq!(
        seen["x-forwarded-host"],
        json!([gateway.addr().to_string()])
    );
    assert!(seen.get("x-hop").is_none(), "{seen}");

    // A caller's X-Call-Id and X-Forwarded-* are honoured; `name.namespace` works.
    let resp = client
        .get(gateway.url("/function/echo.openfaas-fn"))
        .header("x-call-id", "my-call-1")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-forwarded-host", "edge.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-start-time"));
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["method"], "GET");
    assert_eq!(out["path"], "/");
    assert_eq!(out["headers"]["x-call-id"], json!(["my-call-1"]));
    assert_eq!(out["headers"]["x-forwarded-for"], json!(["10.1.2.3"]));
    assert_eq!(out["headers"]["x-forwarded-host"], json!(["edge.example"]));

    // Errors made by the gateway.
    let resp = client
        .get(gateway.url("/function/nope"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("x-call-id"));
    let message = gateway_error(resp, 404).await;
    assert!(message.contains("nope"), "{message}");
    let resp = client
        .post(gateway.url("/function/Bad_Name"))
        .send()
        .await
        .unwrap();
    assert!(gateway_error(resp, 400).await.contains("Bad_Name"));
    let resp = client.get(gateway.url("/function/")).send().await.unwrap();
    gateway_error(resp, 400).await;
    let resp = client.get(gateway.url("/")).send().await.unwrap();
    gateway_error(resp, 404).await;

    // Round-robin: with two replicas, both answer (once the cached list is refreshed).
    let resp = client
        .post(gateway.url("/system/scale-function/echo"))
        .json(&json!({"serviceName": "echo", "replicas": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    provider.wait_available("echo", 2).await;
    let mut hosts = HashSet::new();
    let deadline = Instant::now() + MINUTE;
    while hosts.len() < 2 {
        assert!(Instant::now() < deadline, "only {hosts:?} answered");
        let out: Value = client
            .get(gateway.url("/function/echo"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        hosts.insert(out["hostname"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // upstream_timeout: a function slower than it gets 504, in about that time.
    let quick = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("upstream_timeout", "1s")],
    )
    .await;
    let started = Instant::now();
    let resp = client
        .get(quick.url("/function/echo"))
        .header("x-echo-sleep-ms", "3000")
        .send()
        .await
        .unwrap();
    let message = gateway_error(resp, 504).await;
    assert!(message.contains("echo"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(2500));

    // Graceful shutdown: a call in flight when the gateway is asked to stop still completes.
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), quick.url("/function/echo"));
        async move {
            client
                .get(url)
                .header("x-echo-sleep-ms", "700")
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick_url = quick.url("/function/echo");
    quick.stop().await;
    assert_eq!(in_flight.await.unwrap().expect("in-flight call"), 200);
    assert!(client.get(quick_url).send().await.is_err(), "stopped");

    // No ready replica: 503 naming the function.
    let resp = client
        .post(gateway.url("/system/scale-function/echo"))
        .json(&json!({"serviceName": "echo", "replicas": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let last = eventually("calls get 503 once the replicas are gone", MINUTE, || {
        let (client, url) = (client.clone(), gateway.url("/function/echo"));
        async move {
            let resp = client.get(url).send().await.unwrap();
            match resp.status().as_u16() {
                503 => Some(gateway_error(resp, 503).await),
                _ => None,
            }
        }
    })
    .await;
    assert!(last.contains("no ready replica of function echo"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_are_stored_before_they_are_accepted() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let mut nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("publish_timeout", "2s"), ("max_async_body", "4KiB")],
    )
    .await;
    let client = http_client();
    let annotations = json!({"com.openfaas.retry.attempts": "3", "topic": "orders"});
    deploy_echo(&gateway, &provider, &echo, annotations).await;
    let stream = calls_stream(&nats).await;

    // 202 with the call id, and the call is in the stream with everything needed to replay it.
    let resp = client
        .post(gateway.url("/async-function/echo/orders/7?verbose=1"))
        .header("x-callback-url", "http://127.0.0.1:9/cb?k=v")
        .header("content-type", "application/json")
        .header("x-tag", "a")
        .header("connection", "x-hop")
        .header("x-hop", "must not be recorded")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let call_id = header(&resp, "x-call-id");
    assert!(uuid_like(&call_id), "{call_id}");
    let start_time = header(&resp, "x-start-time");
    assert!(resp.bytes().await.unwrap().is_empty());

    let message = stream
        .get_last_raw_message_by_subject(ECHO_SUBJECT)
        .await
        .expect("the call is in the stream");
    let headers = message.headers.clone();
    assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str(), call_id);
    assert_eq!(headers.get(CALL_ID_HEADER).unwrap().as_str(), call_id);
    let raw: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(raw["Function"], "echo", "PascalCase keys: {raw}");
    assert_eq!(raw["CallbackUrl"]["Host"], "127.0.0.1:9", "a Go URL object");
    let q: QueueRequest = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(q.method, "POST");
    assert_eq!(q.path, "/orders/7");
    assert_eq!(q.query_string, "verbose=1");
    assert_eq!(q.body, br#"{"n":1}"#);
    assert_eq!(q.function, "echo");
    assert_eq!(q.queue_name, "faas-request");
    assert_eq!(q.host, gateway.addr().to_string());
    assert_eq!(
        q.callback_url.as_ref().map(|u| u.as_str()),
        Some("http://127.0.0.1:9/cb?k=v")
    );
    assert_eq!(q.header["X-Call-Id"], [call_id]);
    assert_eq!(q.header["X-Start-Time"], [start_time]);
    assert_eq!(q.header["X-Tag"], ["a"]);
    assert_eq!(q.header["Content-Type"], ["application/json"]);
    assert_eq!(q.header["X-Callback-Url"], ["http://127.0.0.1:9/cb?k=v"]);
    for absent in ["Connection", "X-Hop", "Host"] {
        assert!(!q.header.contains_key(absent), "{absent}: {:?}", q.header);
    }
    assert_eq!(
        q.annotations,
        [("com.openfaas.retry.attempts".to_string(), "3".to_string())].into()
    );

    // Any method; the caller's call id; `name.namespace`; no sub-path.
    let resp = client
        .put(gateway.url("/async-function/echo.openfaas-fn"))
        .header("x-call-id", "my-async-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "x-call-id"), "my-async-1");
    let message = stream
        .get_last_raw_message_by_subject(ECHO_SUBJECT)
        .await
        .unwrap();
    let q: QueueRequest = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        (q.method.as_str(), q.path.as_str(), q.function.as_str()),
        ("PUT", "", "echo.openfaas-fn")
    );
    assert_eq!(q.header_value("x-call-id"), Some("my-async-1"));
    assert!(q.body.is_empty() && q.callback_url.is_none());

    // Refused before anything is queued.
    let stored = stream.get_info().await.unwrap().state.messages;
    for bad in [
        "not a url",
        "ftp://example.com/cb",
        "/relative",
        "http:///nohost",
    ] {
        let resp = client
            .post(gateway.url("/async-function/echo"))
            .header("x-callback-url", bad)
            .send()
            .await
            .unwrap();
        let message = gateway_error(resp, 400).await;
        assert!(message.contains("X-Callback-Url"), "{bad}: {message}");
    }
    let resp = client
        .post(gateway.url("/async-function/echo"))
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();
    gateway_error(resp, 413).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..2).map(|_| Ok(vec![b'x'; 3000])).collect();
    let resp = client
        .post(gateway.url("/async-function/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 413).await;
    let resp = client
        .post(gateway.url("/async-function/nope"))
        .send()
        .await
        .unwrap();
    assert!(gateway_error(resp, 404).await.contains("nope"));
    let resp = client
        .post(gateway.url("/async-function/No_Pe"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 400).await;
    assert_eq!(stream.get_info().await.unwrap().state.messages, stored);

    // 50 concurrent submissions: all accepted, distinct ids, all 50 stored.
    let submissions = (0..50).map(|i| {
        let (client, url) = (client.clone(), gateway.url("/async-function/echo"));
        async move {
            let resp = client
                .post(url)
                .body(format!("n={i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
            header(&resp, "x-call-id")
        }
    });
    let ids: HashSet<String> = futures_util::future::join_all(submissions)
        .await
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 50);
    let state = stream.get_info().await.unwrap().state;
    assert_eq!(state.messages, stored + 50);
    let mut stored_ids = HashSet::new();
    for seq in state.last_sequence - 49..=state.last_sequence {
        let m = stream.get_raw_message(seq).await.unwrap();
        stored_ids.insert(m.headers.get(CALL_ID_HEADER).unwrap().as_str().to_string());
    }
    assert_eq!(stored_ids, ids);

    // NATS down: 503, never 202; health says so; sync calls still work.
    tokio::task::block_in_place(|| nats.stop());
    for _ in 0..3 {
        let resp = client
            .post(gateway.url("/async-function/echo"))
            .body("while NATS is down")
            .send()
            .await
            .unwrap();
        assert!(resp.headers().contains_key("retry-after"));
        let message = gateway_error(resp, 503).await;
        assert!(message.contains("not queued"), "{message}");
    }
    wait_until("healthz reports NATS down", MINUTE, || async {
        let (status, body) = health(&gateway).await;
        status == 503 && body["nats"] == "disconnected" && body["provider"] == "ok"
    })
    .await;
    let resp = client
        .get(gateway.url("/function/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // NATS back: submissions are accepted and stored again.
    tokio::task::block_in_place(|| nats.start_again());
    let accepted = eventually("async submissions are accepted again", MINUTE, || {
        let (client, url) = (client.clone(), gateway.url("/async-function/echo"));
        async move {
            let resp = client.post(url).body("after restart").send().await.unwrap();
            match resp.status().as_u16() {
                202 => Some(header(&resp, "x-call-id")),
                503 => None,
                other => panic!("unexpected {other}"),
            }
        }
    })
    .await;
    let stream = calls_stream(&nats).await;
    let message = stream
        .get_last_raw_message_by_subject(ECHO_SUBJECT)
        .await
        .unwrap();
    assert_eq!(
        message.headers.get(CALL_ID_HEADER).unwrap().as_str(),
        accepted
    );
    let q: QueueRequest = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(q.body, b"after restart");
    wait_until("healthz is ok again", MINUTE, || async {
        health(&gateway).await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_starts_without_nats_and_creates_the_stream_when_it_comes() {
    let guard = DockerGuard::new().await;
    let provider = TestProvider::start(&guard).await;
    let mut nats = NatsServer::start_async().await;
    tokio::task::block_in_place(|| nats.stop());
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();

    let (status, body) = health(&gateway).await;
    assert_eq!(status, 503);
    assert_eq!(
        (&body["status"], &body["nats"], &body["provider"]),
        (&json!("unavailable"), &json!("disconnected"), &json!("ok")),
        "{body}"
    );
    // Sync calls and the provider API do not need NATS.
    let resp = client
        .get(gateway.url("/function/nope"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 404).await;
    let resp = client
        .get(gateway.url("/system/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    tokio::task::block_in_place(|| nats.start_again());
    wait_until("healthz is ok once NATS is up", MINUTE, || async {
        health(&gateway).await.0 == 200
    })
    .await;
    let stream = calls_stream(&nats).await;
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.subjects, ["ferry.calls.>"]);

    // With the provider gone, /system/* is a 502 of the gateway's own.
    let provider_url = provider.url("");
    provider.stop().await;
    let resp = client
        .get(gateway.url("/system/functions"))
        .send()
        .await
        .unwrap();
    let message = gateway_error(resp, 502).await;
    assert!(message.contains(&provider_url), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_have_a_status_can_be_cancelled_and_are_idempotent() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let mut nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();
    deploy_echo(&gateway, &provider, &echo, json!({})).await;
    let (stream, statuses) = calls_and_statuses(&nats).await;
    let submit = |headers: &[(&str, &str)]| {
        let mut req = client
            .post(gateway.url("/async-function/echo"))
            .body("work");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap() }
    };
    let call_url = |id: &str| gateway.url(&format!("/system/async-calls/{id}"));

    // The 202 points at the status: `queued`, at the stored message's sequence.
    let resp = submit(&[("x-callback-url", "http://127.0.0.1:9/cb")]).await;
    assert_eq!(resp.status(), 202);
    let id = header(&resp, "x-call-id");
    assert_eq!(
        header(&resp, "location"),
        format!("/system/async-calls/{id}")
    );
    let message = stream
        .get_last_raw_message_by_subject(ECHO_SUBJECT)
        .await
        .unwrap();
    let resp = client
        .get(gateway.url(&format!("/system/async-calls/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status: CallStatus = resp.json().await.unwrap();
    assert_eq!(status.state, CallState::Queued);
    assert_eq!(
        (
            status.call_id.as_str(),
            status.function.as_str(),
            status.queue.as_str()
        ),
        (id.as_str(), "echo.openfaas-fn", "faas-request")
    );
    assert_eq!(status.sequence, Some(message.sequence));
    assert_eq!((status.attempts, status.redrives), (0, 0));
    let callback = status.callback.clone().expect("the callback is recorded");
    assert_eq!(callback.url, "http://127.0.0.1:9/cb");
    assert_eq!(
        (callback.state, callback.attempts),
        (CallbackState::Pending, 0)
    );
    assert!(
        status.submitted_at.ends_with('Z'),
        "{}",
        status.submitted_at
    );
    assert_eq!(gateway.call_status(&id).await, Some(status));

    // Unknown ids are 404, ids that cannot be call ids 400: the gateway's own answers.
    let resp = client.get(call_url("no-such-call")).send().await.unwrap();
    assert!(gateway_error(resp, 404).await.contains("no-such-call"));
    let resp = client
        .delete(call_url("no-such-call"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 404).await;
    for bad in ["a..b", "bad*id", ".x", "%C3%A9"] {
        let resp = client.get(call_url(bad)).send().await.unwrap();
        assert!(gateway_error(resp, 400).await.contains("call id"), "{bad}");
    }
    let resp = client.post(call_url(&id)).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // Cancelling a queued call: `cancelled`, and its message leaves the stream.
    let resp = client.delete(call_url(&id)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let cancelled: CallStatus = resp.json().await.unwrap();
    assert_eq!(cancelled.state, CallState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(stream.get_raw_message(message.sequence).await.is_err());
    assert_eq!(
        gateway.call_status(&id).await.unwrap().state,
        CallState::Cancelled
    );
    let resp = client.delete(call_url(&id)).send().await.unwrap();
    assert!(gateway_error(resp, 409).await.contains("already cancelled"));

    // A running call cannot be cancelled, nor a finished one; their messages stay.
    let resp = submit(&[]).await;
    let busy = header(&resp, "x-call-id");
    let sequence = rewrite_status(&statuses, &busy, |s| s.state = CallState::Running)
        .await
        .sequence
        .unwrap();
    let resp = client.delete(call_url(&busy)).send().await.unwrap();
    let message = gateway_error(resp, 409).await;
    assert!(
        message.contains("is running and cannot be cancelled"),
        "{message}"
    );
    rewrite_status(&statuses, &busy, |s| s.state = CallState::Succeeded).await;
    let resp = client.delete(call_url(&busy)).send().await.unwrap();
    assert!(gateway_error(resp, 409).await.contains("succeeded"));
    assert!(stream.get_raw_message(sequence).await.is_ok());

    // The same Idempotency-Key twice: one stored call, one id (a UUID v5 of function and key).
    let first = header(
        &submit(&[("idempotency-key", "order-7")]).await,
        "x-call-id",
    );
    let resp = submit(&[("idempotency-key", "order-7")]).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "x-call-id"), first);
    assert_eq!(
        header(&resp, "location"),
        format!("/system/async-calls/{first}")
    );
    assert!(uuid_like(&first) && first.as_bytes()[14] == b'5', "{first}");
    let stored = messages_of(&stream, &first).await;
    assert_eq!(stored.len(), 1);
    let status = gateway.call_status(&first).await.unwrap();
    assert_eq!(status.sequence, Some(stored[0].sequence));
    // A repeat does not overwrite the record, and the key wins over X-Call-Id.
    rewrite_status(&statuses, &first, |s| s.state = CallState::Running).await;
    let resp = submit(&[("idempotency-key", "order-7"), ("x-call-id", "mine")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "x-call-id")),
        (202, first.clone())
    );
    assert_eq!(messages_of(&stream, &first).await.len(), 1);
    assert_eq!(
        gateway.call_status(&first).await.unwrap().state,
        CallState::Running
    );
    let other = header(
        &submit(&[("idempotency-key", "order-8")]).await,
        "x-call-id",
    );
    assert_ne!(other, first);
    let q: QueueRequest =
        serde_json::from_slice(&messages_of(&stream, &other).await[0].payload).unwrap();
    assert_eq!(q.header_value("x-call-id"), Some(other.as_str()));

    // A repeated X-Call-Id inside the duplicate window is stored once; its record is kept.
    assert_eq!(submit(&[("x-call-id", "dup-1")]).await.status(), 202);
    rewrite_status(&statuses, "dup-1", |s| s.state = CallState::Running).await;
    let resp = submit(&[("x-call-id", "dup-1")]).await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "x-call-id")),
        (202, "dup-1".into())
    );
    assert_eq!(messages_of(&stream, "dup-1").await.len(), 1);
    assert_eq!(
        gateway.call_status("dup-1").await.unwrap().state,
        CallState::Running
    );

    // Ids and keys that cannot be used are refused before anything is stored.
    let count = stream.get_info().await.unwrap().state.messages;
    let long_id = "x".repeat(129);
    for bad in ["a/b", "a b", "a..b", long_id.as_str()] {
        let resp = submit(&[("x-call-id", bad)]).await;
        assert!(gateway_error(resp, 400).await.contains("call id"), "{bad}");
    }
    let long_key = "k".repeat(257);
    let resp = submit(&[("idempotency-key", &long_key)]).await;
    assert!(gateway_error(resp, 400).await.contains("Idempotency-Key"));
    assert_eq!(stream.get_info().await.unwrap().state.messages, count);

    // NATS down: the status API says 503.
    tokio::task::block_in_place(|| nats.stop());
    let resp = client.get(call_url(&first)).send().await.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    gateway_error(resp, 503).await;
    let resp = client.delete(call_url(&first)).send().await.unwrap();
    gateway_error(resp, 503).await;
    let resp = client
        .get(gateway.url("/system/dead-letters"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_inspected_redriven_and_deleted() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();
    deploy_echo(&gateway, &provider, &echo, json!({})).await;
    let (stream, statuses) = calls_and_statuses(&nats).await;
    let nc = nats.connect().await;
    let dead_stream = jetstream::new(nc.clone())
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .unwrap();
    let get = |path: String| {
        let req = client.get(gateway.url(&path));
        async move { req.send().await.unwrap() }
    };
    let page = |query: &'static str| {
        let req = client.get(gateway.url(&format!("/system/dead-letters{query}")));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{query}");
            resp.json::<DeadLetterPage>().await.unwrap()
        }
    };

    // An empty stream answers at once.
    let empty = page("").await;
    assert!(empty.items.is_empty() && empty.next.is_none());

    // Three calls that failed for good, dead-lettered as the worker does.
    let mut ids = Vec::new();
    let mut letters = Vec::new();
    for i in 0..3 {
        let resp = client
            .post(gateway.url(&format!("/async-function/echo/job/{i}")))
            .header("x-callback-url", "http://127.0.0.1:9/cb")
            .body(format!("job {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let id = header(&resp, "x-call-id");
        letters.push(dead_letter(&nc, &id, &[500, 502]).await);
        ids.push(id);
    }

    // Listing: oldest first, summaries, paged with limit and next.
    let all = page("").await;
    assert_eq!(all.next, None);
    let listed: Vec<(u64, &str)> = all
        .items
        .iter()
        .map(|i| (i.sequence, i.call_id.as_str()))
        .collect();
    let expected: Vec<(u64, &str)> = letters
        .iter()
        .map(|(seq, l)| (*seq, l.call_id.as_str()))
        .collect();
    assert_eq!(listed, expected);
    let first = &all.items[0];
    assert_eq!(
        (first.function.as_str(), first.queue.as_str()),
        ("echo.openfaas-fn", "faas-request")
    );
    assert_eq!((first.attempts, first.last_status), (2, Some(502)));
    let mut seen = Vec::new();
    let mut next = Some(0);
    while let Some(after) = next {
        let p: DeadLetterPage = get(format!(
            "/system/dead-letters?function=echo&limit=1&after={after}"
        ))
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(p.items.len(), 1, "after {after}");
        seen.push(p.items[0].call_id.clone());
        next = p.next;
        assert_eq!(
            next.is_some(),
            seen.len() < 3,
            "next after {after}: {next:?}"
        );
    }
    assert_eq!(seen, ids);
    for other in [
        "?function=other",
        "?function=echo&namespace=dev",
        "?namespace=dev",
    ] {
        assert!(page(other).await.items.is_empty(), "{other}");
    }
    for bad in ["?limit=0", "?limit=ten", "?after=-1", "?function=Bad_Name"] {
        gateway_error(get(format!("/system/dead-letters{bad}")).await, 400).await;
    }

    // Inspecting one: the whole dead letter, by its record's sequence or by scanning.
    let resp = get(format!("/system/dead-letters/{}", ids[0])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<DeadLetter>().await.unwrap(), letters[0].1);
    statuses.delete(&ids[1]).await.unwrap(); // the record expired: found by scanning
    let resp = get(format!("/system/dead-letters/{}", ids[1])).await;
    assert_eq!(resp.json::<DeadLetter>().await.unwrap(), letters[1].1);
    gateway_error(get("/system/dead-letters/no-such-call".into()).await, 404).await;
    gateway_error(get("/system/dead-letters/a..b".into()).await, 400).await;

    // Redriving one: the original request is queued again under the same id, the dead letter
    // is gone, the status is `queued` with `redrives: 1` and a fresh run.
    let redrive = |id: &str| {
        let req = client.post(gateway.url(&format!("/system/dead-letters/{id}/redrive")));
        async move { req.send().await.unwrap() }
    };
    let resp = redrive(&ids[0]).await;
    assert_eq!(resp.status(), 202);
    let status: CallStatus = resp.json().await.unwrap();
    assert_eq!(
        (status.state, status.redrives, status.attempts),
        (CallState::Queued, 1, 0)
    );
    assert!(status.attempt_history.is_empty() && status.dead_letter_sequence.is_none());
    let queued = messages_of(&stream, &ids[0]).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(status.sequence, Some(queued[0].sequence));
    assert_eq!(queued[0].subject.as_str(), ECHO_SUBJECT);
    let msg_id = queued[0].headers.get("Nats-Msg-Id").unwrap().as_str();
    assert_eq!(msg_id, format!("{}.redrive1", ids[0]));
    let request: QueueRequest = serde_json::from_slice(&queued[0].payload).unwrap();
    assert_eq!(request, letters[0].1.request);
    assert!(dead_stream.get_raw_message(letters[0].0).await.is_err());
    gateway_error(get(format!("/system/dead-letters/{}", ids[0])).await, 404).await;
    assert_eq!(gateway.call_status(&ids[0]).await, Some(status));
    gateway_error(redrive(&ids[0]).await, 404).await;

    // A dead letter of a call that is queued again is not redriven twice (409), but can be
    // deleted.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, ids[0].as_str());
    let stale = jetstream::new(nc.clone())
        .publish_with_headers(
            "ferry.dead.faas-request.echo.openfaas-fn",
            headers,
            serde_json::to_vec(&letters[0].1).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let message = gateway_error(redrive(&ids[0]).await, 409).await;
    assert!(message.contains("queued"), "{message}");
    let delete = |id: &str| {
        let req = client.delete(gateway.url(&format!("/system/dead-letters/{id}")));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(delete(&ids[0]).await.status(), 204);
    assert!(dead_stream.get_raw_message(stale.sequence).await.is_err());

    // Deleting one: 204, then 404; the call keeps its final state.
    assert_eq!(delete(&ids[2]).await.status(), 204);
    gateway_error(delete(&ids[2]).await, 404).await;
    gateway_error(get(format!("/system/dead-letters/{}", ids[2])).await, 404).await;
    let status = gateway.call_status(&ids[2]).await.unwrap();
    assert_eq!(
        (status.state, status.dead_letter_sequence),
        (CallState::DeadLettered, None)
    );

    // Redriving a function's dead letters: the function is required.
    let resp = client
        .post(gateway.url("/system/dead-letters/redrive"))
        .send()
        .await
        .unwrap();
    assert!(gateway_error(resp, 400).await.contains("function"));
    let resp = client
        .post(gateway.url("/system/dead-letters/redrive?function=echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"redriven": 1}));
    let status = gateway
        .call_status(&ids[1])
        .await
        .expect("recreated from the dead letter");
    assert_eq!((status.state, status.redrives), (CallState::Queued, 1));
    assert_eq!(status.submitted_at, letters[1].1.submitted_at);
    let queued = messages_of(&stream, &ids[1]).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        serde_json::from_slice::<QueueRequest>(&queued[0].payload).unwrap(),
        letters[1].1.request
    );
    let left = page("").await;
    assert!(left.items.is_empty() && left.next.is_none(), "{left:?}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}
