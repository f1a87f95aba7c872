//! Callback destinations at submission: cloud metadata and link-local addresses are refused
//! with `400` whatever the settings, before anything is queued; loopback is accepted by
//! default and refused where `callback_deny` lists it; names are not resolved here.

use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client};
use serde_json::json;

use crate::common::{calls_stream, deploy_echo, gateway_error};

async fn submit(gateway: &TestGateway, callback: &str) -> reqwest::Response {
    http_client()
        .post(gateway.url("/async-function/echo"))
        .header("x-callback-url", callback)
        .body("x")
        .send()
        .await
        .expect("submitting")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_callback_destinations_are_refused_at_submission() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let strict = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("callback_deny", "127.0.0.0/8")],
    )
    .await;
    deploy_echo(&gateway, &provider, &echo, json!({})).await;
    let stream = calls_stream(&nats).await;
    let stored = || async { stream.get_info().await.unwrap().state.messages };
    let before = stored().await;

    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://metadata.google.internal/", "cloud metadata"),
    ] {
        for g in [&gateway, &strict] {
            let message = gateway_error(submit(g, url).await, 400).await;
            assert!(
                message.contains("X-Callback-Url") && message.contains(why),
                "{url}: {message}"
            );
        }
    }
    assert_eq!(stored().await, before, "nothing refused was queued");

    let loopback = "http://127.0.0.1:9/cb?token=secret";
    assert_eq!(submit(&gateway, loopback).await.status(), 202, "default");
    let message = gateway_error(submit(&strict, loopback).await, 400).await;
    assert!(
        message.contains("matches callback_deny entry 127.0.0.0/8"),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
    // No DNS at submission: a name is the worker's to check when it resolves it.
    let by_name = submit(&strict, "http://localhost:9/cb").await;
    assert_eq!(by_name.status(), 202);
    assert_eq!(stored().await, before + 2);
}
