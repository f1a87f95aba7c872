//! gateway end to end: the gateway in-process in front of a real provider-docker with real
//! function containers, and a real NATS JetStream server.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ferry_proto::QueueRequest;
use ferry_proto::jetstream::{CALL_ID_HEADER, CALLS_STREAM};
use ferry_tests::gateway::TestGateway;
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

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}
