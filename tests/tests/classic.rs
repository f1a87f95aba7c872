//! Functions made the way OpenFaaS's classic templates make them — a classic watchdog forking
//! `fprocess` per request for every path but `/_/health`, healthy while `/tmp/.lock` exists —
//! run under the provider unchanged: its readiness probe is OpenFaaS's `GET /_/health`, so
//! probes never run the function, a function that fails on empty input is ready (and is not
//! replaced as stuck), and the `com.openfaas.ready.http.path`/`health.http.path` and
//! `initialDelay` annotations are honoured. The image is ferry's watchdog in `mode=classic`.

use std::time::{Duration, Instant};

use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::{DockerGuard, FunctionImage, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

async fn deploy(provider: &TestProvider, f: Value) {
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&f.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
}

/// Asks for `name`'s status `rounds` times, `gap` apart: each answer probes its replicas
/// (the test provider caches a probe for 10 ms). Returns the available replicas seen.
async fn probe_rounds(provider: &TestProvider, name: &str, rounds: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        let status = provider.status(name).await.expect("function exists");
        seen.push(status.available_replicas);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// The function's log lines containing `needle` (`GET /system/logs`, not following).
async fn log_lines(provider: &TestProvider, name: &str, needle: &str) -> Vec<String> {
    let resp = http_client()
        .get(provider.url(&format!("/system/logs?name={name}&follow=false")))
        .send()
        .await
        .expect("GET /system/logs");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .filter(|t| t.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_functions_are_probed_at_health_and_never_forked_by_probes() {
    let guard = DockerGuard::new().await;
    let classic = FunctionImage::classic(&guard, "cat").await;
    let provider = TestProvider::start_with(
        &guard,
        &[
            ("probe_cache", "10ms"),
            ("unready_timeout", "2s"),
            ("reconcile_interval", "500ms"),
        ],
    )
    .await;

    // `env` answers any request with its environment: each fork is logged by the watchdog.
    deploy(
        &provider,
        json!({"service": "env", "image": classic.tag, "envProcess": "env"}),
    )
    .await;
    provider.wait_available("env", 1).await;
    let address = ready_addresses(&provider, "env").await.remove(0);
    let resp = http_client()
        .get(format!("http://{address}/hello?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains("Http_Path=/hello"), "{body}");
    let seen = probe_rounds(&provider, "env", 20).await;
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
    // One request, one fork: twenty probes ran nothing.
    let forks = log_lines(&provider, "env", "Forking fprocess.").await;
    assert_eq!(forks.len(), 1, "{forks:?}");

    // `false` fails on every input, empty included: still ready, answering 500, and the
    // same container after several unready timeouts.
    deploy(
        &provider,
        json!({"service": "fails", "image": classic.tag, "envProcess": "false"}),
    )
    .await;
    provider.wait_available("fails", 1).await;
    let before: Vec<_> = function_containers(&guard, "fails").await;
    let address = ready_addresses(&provider, "fails").await.remove(0);
    let resp = http_client()
        .post(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let seen = probe_rounds(&provider, "fails", 40).await;
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
    let after = function_containers(&guard, "fails").await;
    assert_eq!(
        before.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        after.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "not replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_annotations_are_honoured() {
    let guard = DockerGuard::new().await;
    let classic = FunctionImage::classic(&guard, "cat").await;
    let provider = TestProvider::start_with(&guard, &[("probe_cache", "10ms")]).await;

    // Readiness at a path the classic watchdog hands to the function: `false` never passes.
    let strict = json!({"service": "strict", "image": classic.tag, "envProcess": "false",
        "annotations": {"com.openfaas.ready.http.path": "/_/ready"}});
    deploy(&provider, strict).await;
    // The health path annotation applies when no ready path is set.
    let health = json!({"service": "health", "image": classic.tag, "envProcess": "false",
        "annotations": {"com.openfaas.health.http.path": "/healthz"}});
    deploy(&provider, health).await;
    // With `cat` the function answers 200 at any path: ready.
    let custom = json!({"service": "custom", "image": classic.tag,
        "annotations": {"com.openfaas.ready.http.path": "/ready-check"}});
    deploy(&provider, custom).await;
    provider.wait_available("custom", 1).await;
    let probes = log_lines(&provider, "custom", "Forking fprocess.").await;
    assert!(
        !probes.is_empty(),
        "the annotated path reaches the function"
    );
    wait_until(
        "strict and health have a running replica",
        MINUTE,
        || async {
            function_containers(&guard, "strict").await.len() == 1
                && function_containers(&guard, "health").await.len() == 1
        },
    )
    .await;
    for name in ["strict", "health"] {
        let seen = probe_rounds(&provider, name, 20).await;
        assert!(seen.iter().all(|n| *n == 0), "{name}: {seen:?}");
    }

    // An initial delay: not ready before it has passed since the container was created.
    let started = Instant::now();
    let delayed = json!({"service": "delayed", "image": classic.tag,
        "annotations": {"com.openfaas.health.http.initialDelay": "4s"}});
    deploy(&provider, delayed).await;
    provider.wait_available("delayed", 1).await;
    let took = started.elapsed();
    // Container creation times are whole seconds: allow for the rounding.
    assert!(took >= Duration::from_secs(3), "ready after {took:?}");
    let (code, body) = provider
        .call("GET", "/system/endpoints/delayed", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        body["probe"],
        json!({"path": "/_/health", "initialDelayMs": 4000})
    );
}
