//! Scaling from zero, end to end: the gateway in-process in front of a real provider-docker
//! with real function containers (published ports on 127.0.0.1), a real NATS server and,
//! for the async path, a real queue-worker.
//!
//! A function scaled to zero through the provider is brought back by the first calls: one
//! scale-up however many calls wait, every call answered by the new replica with its own
//! body. A replica that never becomes ready gives `503` after `scale_from_zero_timeout`, and
//! with `scale_from_zero=false` a function at zero is a `503` at once.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, Instant};

use bollard::models::ContainerSummaryStateEnum;
use ferry_tests::callback::CallbackReceiver;
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::{TestProvider, function_containers};
use ferry_tests::worker::TestWorker;
use ferry_tests::{DockerGuard, FunctionImage, ImageSpec, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

/// Deploys `name` from `image` at the provider, without waiting for it to be ready.
async fn deploy(provider: &TestProvider, name: &str, image: &FunctionImage) {
    let deployment = json!({"service": name, "image": image.tag});
    let (status, body) = provider
        .call("POST", "/system/functions", Some(&deployment.to_string()))
        .await;
    assert_eq!(status, 202, "deploying {name}: {body}");
}

/// Scales `name` to `replicas` at the provider.
async fn scale(provider: &TestProvider, name: &str, replicas: u64) {
    let request = json!({"serviceName": name, "replicas": replicas});
    let (status, body) = provider
        .call(
            "POST",
            &format!("/system/scale-function/{name}"),
            Some(&request.to_string()),
        )
        .await;
    assert_eq!(status, 202, "scaling {name} to {replicas}: {body}");
}

/// Ids of `name`'s running containers.
async fn running(guard: &DockerGuard, name: &str) -> Vec<String> {
    function_containers(guard, name)
        .await
        .into_iter()
        .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
        .filter_map(|c| c.id)
        .collect()
}

/// Scales `name` to zero and waits until the provider reports no replica and no container
/// of it runs any more.
async fn scale_to_zero(guard: &DockerGuard, provider: &TestProvider, name: &str) {
    scale(provider, name, 0).await;
    wait_until(&format!("{name} is at zero replicas"), MINUTE, || async {
        let status = provider.status(name).await.expect("the function exists");
        status.replicas == 0
            && status.available_replicas == 0
            && running(guard, name).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_to_a_function_at_zero_scale_it_up_once_and_all_succeed() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start_with(&guard, &[("autoscale_interval", "250ms")]).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();

    // Idle for 3 s, the function goes to zero by itself.
    let deployment = json!({"service": "echo", "image": echo.tag, "labels": {
        "com.openfaas.scale.zero": "true",
        "com.openfaas.scale.zero-duration": "3s",
    }});
    let (status, body) = provider
        .call("POST", "/system/functions", Some(&deployment.to_string()))
        .await;
    assert_eq!(status, 202, "{body}");
    provider.wait_available("echo", 1).await;
    // The gateway knows the replica (its list of it is cached) before it goes away.
    let resp = client
        .post(gateway.url("/function/echo"))
        .body("warm")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_until(
        "echo is scaled to zero after the idle window",
        MINUTE,
        || async {
            let status = provider.status("echo").await.expect("the function exists");
            status.replicas == 0 && running(&guard, "echo").await.is_empty()
        },
    )
    .await;
    let parked: Vec<String> = function_containers(&guard, "echo")
        .await
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(parked.len(), 1, "one stopped container is kept: {parked:?}");

    let fired = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let (client, url) = (client.clone(), gateway.url("/function/echo"));
            tokio::spawn(async move {
                let body = format!("call {i}");
                let resp = client
                    .post(url)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("calling echo through the gateway");
                let status = resp.status().as_u16();
                let text = resp.text().await.expect("reading the answer");
                (status, text, body, fired.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let mut hosts = Vec::new();
    for (status, text, body, _) in &answers {
        assert_eq!(*status, 200, "{body}: {text}");
        let out: Value = serde_json::from_str(text).unwrap();
        assert_eq!(out["body"], body.as_str(), "{out}");
        hosts.push(out["hostname"].as_str().unwrap().to_string());
    }
    let first = answers.iter().map(|a| a.3).min().unwrap();
    let last = answers.iter().map(|a| a.3).max().unwrap();
    eprintln!(
        "scale from zero: first 200 after {} ms, all 20 after {} ms",
        first.as_millis(),
        last.as_millis()
    );

    // Exactly one scale-up: one desired replica, one running container, which answered
    // every call.
    // (The provider's own readiness probe may lag a moment behind the gateway's.)
    provider.wait_available("echo", 1).await;
    let now = running(&guard, "echo").await;
    assert_eq!(
        now, parked,
        "the parked container was started again, nothing else"
    );
    assert!(
        hosts.iter().all(|h| now[0].starts_with(h.as_str())),
        "{hosts:?} vs {now:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_call_to_a_function_at_zero_completes() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let _worker = TestWorker::start(&nats.url(), &provider.url(""), &[]).await;
    let receiver = CallbackReceiver::start().await;

    deploy(&provider, "echo", &echo).await;
    provider.wait_available("echo", 1).await;
    scale_to_zero(&guard, &provider, "echo").await;

    let resp = http_client()
        .post(gateway.url("/async-function/echo/jobs"))
        .header("x-callback-url", receiver.url("/done"))
        .body("queued while at zero")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let id = resp.headers()["x-call-id"].to_str().unwrap().to_string();
    let callbacks = receiver.wait_for(1, MINUTE).await;
    let cb = &callbacks[0];
    assert_eq!(cb.header("x-call-id"), id);
    assert_eq!(cb.header("x-function-status"), "200", "{}", cb.text());
    let out: Value = serde_json::from_slice(&cb.body).unwrap();
    assert_eq!(out["body"], "queued while at zero");
    assert_eq!(out["path"], "/jobs");
    let status = provider.status("echo").await.unwrap();
    assert_eq!(status.replicas, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_becomes_ready_gives_503_after_the_timeout() {
    let guard = DockerGuard::new().await;
    // The watchdog proxies to a port nothing listens on: /_/ready stays 503.
    let spec = ImageSpec::echo_http().env("upstream_url", "http://127.0.0.1:5999");
    let image = FunctionImage::build(&guard, "never-ready", &spec).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("scale_from_zero_timeout", "3s")],
    )
    .await;

    deploy(&provider, "stuck", &image).await;
    wait_until("stuck has a running container", MINUTE, || async {
        !running(&guard, "stuck").await.is_empty()
    })
    .await;
    scale_to_zero(&guard, &provider, "stuck").await;

    let started = Instant::now();
    let resp = http_client()
        .post(gateway.url("/function/stuck"))
        .body("never answered")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-openfaas-internal"], "proxy");
    let body: Value = resp.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("function stuck did not become ready within 3s"),
        "{message}"
    );
    assert!(message.contains("scaled up from zero"), "{message}");
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // It was scaled up once, and its replica runs (unready).
    let status = provider.status("stuck").await.unwrap();
    assert_eq!((status.replicas, status.available_replicas), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scale_from_zero_a_function_at_zero_is_a_503_at_once() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("scale_from_zero", "false")],
    )
    .await;

    deploy(&provider, "echo", &echo).await;
    provider.wait_available("echo", 1).await;
    scale_to_zero(&guard, &provider, "echo").await;

    let started = Instant::now();
    let resp = http_client()
        .get(gateway.url("/function/echo"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-openfaas-internal"], "proxy");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["message"],
        "no ready replica of function echo (0 desired)"
    );
    // Nothing was scaled.
    assert_eq!(provider.status("echo").await.unwrap().replicas, 0);
    assert!(running(&guard, "echo").await.is_empty());
}
