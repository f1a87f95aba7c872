//! Helpers shared by the gateway tests: deploying `echo`, checking the gateway's own errors,
//! health, headers, polling and the calls stream.

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use ferry_proto::jetstream::CALLS_STREAM;
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client};
use serde_json::{Value, json};

pub(crate) const MINUTE: Duration = Duration::from_secs(60);
/// The subject of the echo function's calls on the default queue.
pub(crate) const ECHO_SUBJECT: &str = "ferry.calls.faas-request.echo.openfaas-fn";

/// The gateway tests' usual stack: a Docker guard, a provider, a NATS server and a gateway in
/// front of them, with `echo` (the echo image) deployed and ready. Fields drop in their
/// order: the gateway, NATS and the provider stop before the guard removes what they made.
pub(crate) struct EchoStack {
    pub(crate) gateway: TestGateway,
    pub(crate) nats: NatsServer,
    pub(crate) provider: TestProvider,
    pub(crate) guard: DockerGuard,
}

impl EchoStack {
    /// Starts it all and deploys `echo` (no annotations).
    pub(crate) async fn start() -> EchoStack {
        let guard = DockerGuard::new().await;
        let echo = FunctionImage::echo_http(&guard).await;
        let provider = TestProvider::start(&guard).await;
        let nats = NatsServer::start_async().await;
        let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
        deploy_echo(&gateway, &provider, &echo, json!({})).await;
        EchoStack {
            gateway,
            nats,
            provider,
            guard,
        }
    }
}

/// Deploys `echo` through the gateway (`POST /system/functions` is forwarded to the provider)
/// and waits until its replica is ready.
pub(crate) async fn deploy_echo(
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
pub(crate) async fn gateway_error(resp: reqwest::Response, status: u16) -> String {
    let url = resp.url().clone();
    assert_eq!(resp.status(), status, "{url}");
    assert_eq!(resp.headers()["x-openfaas-internal"], "proxy", "{url}");
    assert_eq!(resp.headers()["content-type"], "application/json", "{url}");
    let body: Value = resp.json().await.expect("JSON error body");
    body["message"].as_str().expect("message").to_string()
}

pub(crate) async fn health(gateway: &TestGateway) -> (u16, Value) {
    let resp = http_client()
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    (resp.status().as_u16(), resp.json().await.expect("JSON"))
}

pub(crate) fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("response has no {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// Polls `attempt` every 100 ms until it returns a value; panics naming `what` after `timeout`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
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

pub(crate) async fn calls_stream(nats: &NatsServer) -> jetstream::stream::Stream {
    let js = jetstream::new(nats.connect().await);
    eventually("the gateway created the calls stream", MINUTE, || {
        let js = js.clone();
        async move { js.get_stream(CALLS_STREAM).await.ok() }
    })
    .await
}

pub(crate) fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}
