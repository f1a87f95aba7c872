//! Async submission: the call is stored in the calls stream, with everything needed to replay
//! it, before the 202; refusals (callback URL, body size, unknown function); concurrent
//! submissions; NATS down (503) and back.

use std::collections::HashSet;

use ferry_proto::QueueRequest;
use ferry_proto::jetstream::CALL_ID_HEADER;
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

use crate::common::{
    ECHO_SUBJECT, MINUTE, calls_stream, deploy_echo, eventually, gateway_error, header, health,
    uuid_like,
};

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
    gateway_error(resp, 404).await;
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
