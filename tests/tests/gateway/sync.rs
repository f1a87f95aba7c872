//! Sync calls: proxied to a ready replica with method, path, query, headers and body; the
//! gateway's own errors; spreading over replicas; `upstream_timeout`; graceful stop; a
//! function at zero replicas (brought back, or `503` with `scale_from_zero=false`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bollard::models::ContainerSummaryStateEnum;
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::function_containers;
use ferry_tests::{http_client, wait_until};
use serde_json::{Value, json};

use crate::common::{EchoStack, MINUTE, eventually, gateway_error, header, health, uuid_like};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_calls_are_proxied_to_a_ready_replica() {
    let stack = EchoStack::start().await;
    let EchoStack {
        gateway,
        nats,
        provider,
        guard,
        ..
    } = &stack;
    let client = http_client();

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
        health(gateway).await
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
    // A function that cannot exist is not found, as OpenFaaS answers: an invalid name, an
    // empty one in a namespace, or none.
    assert!(gateway_error(resp, 404).await.contains("Bad_Name"));
    let resp = client
        .post(gateway.url("/function/.openfaas-fn"))
        .send()
        .await
        .unwrap();
    gateway_error(resp, 404).await;
    let resp = client.get(gateway.url("/function/")).send().await.unwrap();
    gateway_error(resp, 404).await;
    // `/` leads to the dashboard, as OpenFaaS's gateway does.
    let resp = client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.url().path(), "/ui/");
    let resp = client.get(gateway.url("/ui/nope.js")).send().await.unwrap();
    gateway_error(resp, 404).await;

    // Load balancing: with two replicas, both answer (once the cached list is refreshed).
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

    // A function scaled to zero: a gateway with scale_from_zero=false answers 503 naming it;
    // the default one scales it back up and the call succeeds.
    let resp = client
        .post(gateway.url("/system/scale-function/echo"))
        .json(&json!({"serviceName": "echo", "replicas": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let no_scaling = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("scale_from_zero", "false")],
    )
    .await;
    let last = eventually("calls get 503 once the replicas are gone", MINUTE, || {
        let (client, url) = (client.clone(), no_scaling.url("/function/echo"));
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
    wait_until("no replica of echo runs", MINUTE, || async {
        function_containers(guard, "echo")
            .await
            .iter()
            .all(|c| c.state != Some(ContainerSummaryStateEnum::RUNNING))
    })
    .await;
    let resp = client
        .post(gateway.url("/function/echo"))
        .body("from zero")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    assert_eq!(out["body"], "from zero");
    // The provider's own readiness result may be a moment behind the gateway's probe.
    provider.wait_available("echo", 1).await;
}
