//! The two idle tiers at zero, end to end against the real Docker engine: an idle function's
//! replica is frozen (paused) and reported as zero replicas with the memory it holds; a burst
//! of calls through the gateway thaws that one replica; after `stop-after` it is stopped and
//! the next call starts it again; calls in flight hold the freeze back; `max_frozen_memory`
//! stops the longest-frozen replica first.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, Instant};

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses, sample};
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

async fn deploy(provider: &TestProvider, body: Value) {
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&body.to_string()))
        .await;
    assert_eq!(code, 202, "{resp}");
}

/// The one container of `name` (asserted to be the only one).
async fn only(guard: &DockerGuard, name: &str) -> ContainerSummary {
    let all = function_containers(guard, name).await;
    assert_eq!(all.len(), 1, "one container of {name}: {all:?}");
    all.into_iter().next().unwrap()
}

/// Waits until the one container of `name` is in `state`; returns its id.
async fn wait_state(guard: &DockerGuard, name: &str, state: ContainerSummaryStateEnum) -> String {
    wait_until(
        &format!("{name}'s one container is {state}"),
        MINUTE,
        || async {
            let all = function_containers(guard, name).await;
            matches!(all.as_slice(), [only] if only.state == Some(state))
        },
    )
    .await;
    only(guard, name).await.id.expect("container id")
}

/// Prometheus text of `url`.
async fn metrics(url: &str) -> String {
    http_client()
        .get(url)
        .send()
        .await
        .expect("reading metrics")
        .text()
        .await
        .expect("metrics text")
}

/// `n` concurrent calls to `/function/{name}` through `gateway`: each answers 200 with its
/// own body. Returns the time to the first and the last answer.
async fn burst(gateway: &TestGateway, name: &str, n: usize) -> (Duration, Duration) {
    let fired = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let url = gateway.url(&format!("/function/{name}"));
            tokio::spawn(async move {
                let body = format!("call {i}");
                let resp = http_client().post(url).body(body.clone()).send().await;
                let resp = resp.expect("calling through the gateway");
                let status = resp.status().as_u16();
                let text = resp.text().await.expect("reading the answer");
                assert_eq!(status, 200, "{body}: {text}");
                let out: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(out["body"], body.as_str(), "{out}");
                fired.elapsed()
            })
        })
        .collect();
    let mut times = Vec::new();
    for call in calls {
        times.push(call.await.expect("call task"));
    }
    (*times.iter().min().unwrap(), *times.iter().max().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_function_is_frozen_thawed_by_a_burst_and_stopped_after_stop_after() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start_with(
        &guard,
        &[("autoscale_interval", "250ms"), ("freeze_grace", "1s")],
    )
    .await;
    let nats = NatsServer::start_async().await;
    // No outdated list is used past the grace (`endpoint_max_stale` at most `freeze_grace`,
    // as the defaults have it, 5 s each).
    let gateway = TestGateway::start(
        &provider.url(""),
        &nats.url(),
        &[("endpoint_max_stale", "1s")],
    )
    .await;
    deploy(
        &provider,
        json!({"service": "frosty", "image": echo.tag, "labels": {
            "com.openfaas.scale.zero": "true",
            "com.openfaas.scale.zero-duration": "2s",
            "com.ferry.scale.zero.stop-after": "8s",
        }}),
    )
    .await;
    provider.wait_available("frosty", 1).await;
    let (first, _) = burst(&gateway, "frosty", 1).await;
    assert!(first < MINUTE);
    let replica = only(&guard, "frosty").await.id;

    // Idle for 2 s, then the grace: the same container, paused; zero replicas in the API.
    let frozen = wait_state(&guard, "frosty", ContainerSummaryStateEnum::PAUSED).await;
    assert_eq!(
        Some(&frozen),
        replica.as_ref(),
        "the replica itself is frozen"
    );
    let (code, raw) = provider.call("GET", "/system/function/frosty", None).await;
    assert_eq!(code, 200);
    assert!(
        raw.get("replicas").is_none() && raw.get("availableReplicas").is_none(),
        "0 replicas (omitted, as OpenFaaS omits zeros): {raw}"
    );
    assert!(ready_addresses(&provider, "frosty").await.is_empty());
    let (code, listed) = provider.call("GET", "/system/endpoints/frosty", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        listed["endpoints"],
        json!([]),
        "a frozen replica takes no calls"
    );
    // The memory it holds: in the function's usage and the provider's metrics.
    wait_until(
        "the frozen replica's memory is reported",
        MINUTE,
        || async {
            let status = provider.status("frosty").await.unwrap();
            status.usage.is_some_and(|u| {
                u.frozen_memory_bytes > 0.0 && u.frozen_memory_bytes <= u.total_memory_bytes
            })
        },
    )
    .await;
    let (code, list) = provider
        .call("GET", "/system/functions?namespace=openfaas-fn", None)
        .await;
    assert_eq!(code, 200);
    assert!(
        list[0]["usage"]["frozenMemoryBytes"].as_f64().unwrap() > 0.0,
        "{list}"
    );
    wait_until("the provider counts the frozen replica", MINUTE, || async {
        let text = provider.metrics().await;
        sample(&text, "provider_frozen_replicas") == Some(1.0)
            && sample(&text, "provider_frozen_memory_bytes").is_some_and(|m| m > 0.0)
    })
    .await;

    // A burst of 20 calls thaws that one replica, and only it.
    let (first, last) = burst(&gateway, "frosty", 20).await;
    eprintln!(
        "thawed: first 200 after {} ms, all 20 after {} ms",
        first.as_millis(),
        last.as_millis()
    );
    let now = only(&guard, "frosty").await;
    assert_eq!(now.id, replica, "no other container");
    assert_eq!(now.state, Some(ContainerSummaryStateEnum::RUNNING));
    let text = metrics(&gateway.url("/metrics")).await;
    assert_eq!(
        sample(&text, r#"gateway_cold_start_seconds_count{tier="frozen"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "gateway_scale_from_zero_total"), Some(1.0));
    wait_until("the provider records the thaw", MINUTE, || async {
        let text = provider.metrics().await;
        let series =
            r#"provider_cold_starts_total{function_name="frosty.openfaas-fn",tier="frozen"}"#;
        sample(&text, series) == Some(1.0)
    })
    .await;

    // Idle again: frozen again, then stopped after stop-after (8 s), the same container kept.
    wait_state(&guard, "frosty", ContainerSummaryStateEnum::PAUSED).await;
    let frozen_at = Instant::now();
    let stopped = wait_state(&guard, "frosty", ContainerSummaryStateEnum::EXITED).await;
    assert!(
        frozen_at.elapsed() >= Duration::from_secs(5),
        "stopped only after stop-after: {:?}",
        frozen_at.elapsed()
    );
    assert_eq!(Some(&stopped), replica.as_ref());
    assert_eq!(provider.status("frosty").await.unwrap().replicas, 0);
    wait_until("no frozen replica is counted", MINUTE, || async {
        sample(&provider.metrics().await, "provider_frozen_replicas") == Some(0.0)
    })
    .await;

    // The next call starts the stopped container.
    burst(&gateway, "frosty", 1).await;
    assert_eq!(only(&guard, "frosty").await.id, replica);
    let text = metrics(&gateway.url("/metrics")).await;
    assert_eq!(
        sample(&text, r#"gateway_cold_start_seconds_count{tier="stopped"}"#),
        Some(1.0),
        "{text}"
    );
    gateway.stop().await;
    provider.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_hold_the_freeze_and_the_memory_cap_stops_the_longest_frozen() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let settings = [("autoscale_interval", "250ms"), ("freeze_grace", "500ms")];
    let provider = TestProvider::start_in(&guard, data.path(), &settings).await;
    // Frozen for good (`freeze` only): only the cap stops them.
    for name in ["older", "newer"] {
        let labels = json!({"com.openfaas.scale.min": "0", "com.ferry.scale.zero.tiers": "freeze"});
        deploy(
            &provider,
            json!({"service": name, "image": echo.tag, "labels": labels}),
        )
        .await;
    }
    for name in ["older", "newer"] {
        assert_eq!(provider.scale(name, 1).await, 202);
        provider.wait_available(name, 1).await;
    }

    // A 3 s call in flight when `older` goes to zero: it is not frozen before the call is
    // answered.
    let address = ready_addresses(&provider, "older").await.remove(0);
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let resp = http_client()
            .post(format!("http://{address}/"))
            .header("X-Echo-Sleep-Ms", "3000")
            .body("slow")
            .send()
            .await
            .expect("the slow call");
        (resp.status().as_u16(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(provider.scale("older", 0).await, 202);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        only(&guard, "older").await.state,
        Some(ContainerSummaryStateEnum::RUNNING),
        "past the grace but a call in flight: not frozen"
    );
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_secs(3));
    wait_state(&guard, "older", ContainerSummaryStateEnum::PAUSED).await;
    // `since` is in seconds: `newer` is frozen a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(provider.scale("newer", 0).await, 202);
    wait_state(&guard, "newer", ContainerSummaryStateEnum::PAUSED).await;

    // What each holds, as the provider samples it.
    let mut held = Vec::new();
    for name in ["older", "newer"] {
        wait_until(
            &format!("{name}'s frozen memory is sampled"),
            MINUTE,
            || async {
                let usage = provider.status(name).await.unwrap().usage;
                usage.is_some_and(|u| u.frozen_memory_bytes > 0.0)
            },
        )
        .await;
        let usage = provider.status(name).await.unwrap().usage.unwrap();
        held.push(usage.frozen_memory_bytes as u64);
    }
    provider.stop().await;

    // A provider capped below what both hold (by half of the smaller: a paused container's
    // figure may drift a little as its page cache ages) and above either: the older one is
    // stopped, the newer one stays frozen (both survived the restart frozen).
    let cap = (held[0] + held[1] - held[0].min(held[1]) / 2).to_string();
    eprintln!("frozen replicas hold {held:?} bytes; max_frozen_memory {cap}");
    let capped = [
        ("autoscale_interval", "250ms"),
        ("max_frozen_memory", cap.as_str()),
    ];
    let provider = TestProvider::start_in(&guard, data.path(), &capped).await;
    wait_state(&guard, "older", ContainerSummaryStateEnum::EXITED).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a few more rounds
    assert_eq!(
        only(&guard, "newer").await.state,
        Some(ContainerSummaryStateEnum::PAUSED),
        "the newer one is still frozen"
    );
    wait_until("the provider counts one frozen replica", MINUTE, || async {
        let text = provider.metrics().await;
        sample(&text, "provider_frozen_replicas") == Some(1.0)
            && sample(&text, "provider_frozen_memory_bytes").is_some_and(|m| m > 0.0)
    })
    .await;
    for name in ["older", "newer"] {
        let status = provider.status(name).await.unwrap();
        assert_eq!(
            (status.replicas, status.available_replicas),
            (0, 0),
            "{name}"
        );
    }
    // Both come back: the stopped one started, the frozen one thawed.
    for name in ["older", "newer"] {
        assert_eq!(provider.scale(name, 1).await, 202);
        provider.wait_available(name, 1).await;
    }
    for (name, tier) in [("older", "stopped"), ("newer", "frozen")] {
        let series = format!(
            r#"provider_cold_starts_total{{function_name="{name}.openfaas-fn",tier="{tier}"}}"#
        );
        wait_until(&format!("{name} came back {tier}"), MINUTE, || async {
            sample(&provider.metrics().await, &series) == Some(1.0)
        })
        .await;
    }
    provider.stop().await;
}
