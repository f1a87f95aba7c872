//! The gateway's routing of sync calls: to the replica with the fewest calls in flight; when
//! a function's replicas change, the replica list is never used once it is older than
//! `endpoint_max_stale`, and a call that never reached a replica (its container gone) is sent
//! to another one.
//!
//! The gateway runs in-process in front of a real provider-docker with real function
//! containers (published ports on 127.0.0.1) and a real NATS server.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bollard::models::ContainerSummaryStateEnum;
use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::{TestProvider, function_containers};
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
/// The gateway's default `endpoint_max_stale`.
const MAX_STALE: Duration = Duration::from_secs(5);

/// Deploys `echo` (directly at the provider, so the gateway hears nothing of it) and waits
/// until `replicas` are ready; returns the ids of its containers.
async fn deploy_echo(
    guard: &DockerGuard,
    provider: &TestProvider,
    image: &FunctionImage,
    replicas: u64,
) -> Vec<String> {
    let deployment = json!({
        "service": "echo",
        "image": image.tag,
        "labels": {"com.openfaas.scale.min": replicas.to_string()},
    });
    let (status, body) = provider
        .call("POST", "/system/functions", Some(&deployment.to_string()))
        .await;
    assert_eq!(status, 202, "deploying echo: {body}");
    provider.wait_available("echo", replicas).await;
    running_containers(guard).await
}

/// Ids of echo's running containers.
async fn running_containers(guard: &DockerGuard) -> Vec<String> {
    function_containers(guard, "echo")
        .await
        .into_iter()
        .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
        .filter_map(|c| c.id)
        .collect()
}

/// A container's hostname, which the echo function reports: the first 12 characters of its id.
fn hostname(id: &str) -> &str {
    &id[..12]
}

/// `POST /function/echo` with `body`; status, and the function's answer (or the gateway's
/// error) as JSON.
async fn call(gateway: &TestGateway, body: reqwest::Body) -> (u16, Value) {
    let resp = http_client()
        .post(gateway.url("/function/echo"))
        .body(body)
        .send()
        .await
        .expect("calling echo through the gateway");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("reading the answer");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"text": text}));
    (status, value)
}

/// A request body of unknown size (sent chunked): the gateway streams it and cannot send it
/// again, so only an up-to-date replica list gets it answered.
fn streamed(text: &str) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        text.as_bytes().chunks(4).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_idling_a_redeployed_function_is_called_on_its_new_replica_first_time() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;

    let old = deploy_echo(&guard, &provider, &echo, 1).await;
    let (status, out) = call(&gateway, "first".into()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["hostname"], hostname(&old[0]), "{out}");

    // Delete and redeploy under the same name, behind the gateway's back; wait until the
    // old container (and its published port) is gone.
    let (status, body) = provider
        .call(
            "DELETE",
            "/system/functions",
            Some(&json!({"functionName": "echo"}).to_string()),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_until("the old replica is removed", MINUTE, || async {
        function_containers(&guard, "echo").await.is_empty()
    })
    .await;
    let new = deploy_echo(&guard, &provider, &echo, 1).await;
    assert_ne!(new, old);

    // Idle for longer than the staleness bound: the first call goes to the new replica.
    // Its body is streamed, so the gateway could not have made up for a stale list by
    // retrying: the list it used was fresh.
    tokio::time::sleep(MAX_STALE + Duration::from_secs(1)).await;
    let (status, out) = call(&gateway, streamed("after the redeploy")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["hostname"], hostname(&new[0]), "{out}");
    assert_eq!(out["body"], "after the redeploy");
    let (status, out) = call(&gateway, "again".into()).await;
    assert_eq!(status, 200, "{out}");
}

/// One call made while a replica was being removed.
struct Outcome {
    started: Instant,
    status: u16,
    body: String,
    answer: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_calls_keep_succeeding_while_a_replica_is_removed_behind_the_providers_back() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;

    let replicas = deploy_echo(&guard, &provider, &echo, 2).await;
    assert_eq!(replicas.len(), 2);
    let victim = replicas[0].clone();
    let victim_address = ready_address_of(&provider, &victim).await;
    // Both replicas are in the gateway's list (and its connection pool).
    let mut seen = HashSet::new();
    let deadline = Instant::now() + MINUTE;
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only {seen:?} answered");
        let (status, out) = call(&gateway, "warm-up".into()).await;
        assert_eq!(status, 200, "{out}");
        seen.insert(out["hostname"].as_str().unwrap().to_string());
    }

    // Four callers keep calling with small bodies while one replica is force-removed (the
    // provider notices at its next reconcile and starts a replacement), until well past
    // the staleness bound.
    let removed_at = Instant::now() + Duration::from_secs(1);
    let stop_at = removed_at + MAX_STALE + Duration::from_secs(1);
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let url = gateway.url("/function/echo");
            tokio::spawn(async move {
                let client = http_client();
                let mut outcomes = Vec::new();
                for n in 0.. {
                    let started = Instant::now();
                    if started >= stop_at {
                        break;
                    }
                    let body = format!("caller {caller} call {n}");
                    let resp = client
                        .post(&url)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("calling echo through the gateway");
                    outcomes.push(Outcome {
                        started,
                        status: resp.status().as_u16(),
                        body,
                        answer: resp.text().await.expect("reading the answer"),
                    });
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep_until(removed_at.into()).await;
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    guard
        .docker()
        .remove_container(&victim, Some(force))
        .await
        .expect("force-removing a replica");
    // From now on the container and its port forwarder are gone: connecting is refused.
    let removed = Instant::now();

    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.extend(caller.await.unwrap());
    }
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    let report = || {
        failures
            .iter()
            .map(|o| {
                let at = o.started.saturating_duration_since(removed_at);
                format!("{} at removal+{at:?}: {}", o.status, o.answer)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for o in outcomes.iter().filter(|o| o.status == 200) {
        let out: Value = serde_json::from_str(&o.answer).unwrap();
        assert_eq!(out["body"], o.body.as_str(), "{out}");
    }
    // No call that never reached a replica failed: connect failures (refused once the
    // container's port is gone) and connections closed before the request was started
    // were all sent to the other replica.
    for o in &failures {
        assert_eq!(o.status, 502, "{}", report());
        assert!(
            !o.answer.contains("client error (Connect)")
                && !o.answer.contains("client error (Canceled)"),
            "a call that never left the gateway was not retried:\n{}",
            report()
        );
        // What may fail is a call already written to a connection of the replica at the
        // moment it died: on a kept-alive connection, or one its port forwarder accepted
        // for a container that no longer runs ("connection closed before message
        // completed", "connection reset"). The gateway cannot tell whether the function
        // saw it, so it must not send it again.
        assert!(
            o.answer.contains(&format!(
                "replica {victim_address}: client error (SendRequest)"
            )),
            "only calls in flight to the removed replica may fail:\n{}",
            report()
        );
        assert!(
            o.started < removed + Duration::from_secs(1),
            "a call failed after the replica was gone (removal took {:?}):\n{}",
            removed - removed_at,
            report()
        );
    }
    // Long after the removal (past the staleness bound), calls keep coming and succeed.
    let late = outcomes
        .iter()
        .filter(|o| o.started > removed_at + MAX_STALE)
        .count();
    assert!(late > 20, "only {late} calls after the staleness bound");
    eprintln!(
        "{} calls, {} failed in flight to the removed replica",
        outcomes.len(),
        failures.len()
    );

    // The replacement the provider started is called too.
    provider.wait_available("echo", 2).await;
    let now = running_containers(&guard).await;
    assert!(!now.contains(&victim), "{now:?}");
    let replacement = now.iter().find(|id| !replicas.contains(id)).unwrap();
    wait_until("the replacement replica answers", MINUTE, || async {
        let (status, out) = call(&gateway, "replacement?".into()).await;
        status == 200 && out["hostname"] == hostname(replacement)
    })
    .await;
}

/// The `host:port` the provider lists for container `id`.
async fn ready_address_of(provider: &TestProvider, id: &str) -> String {
    let (status, body) = provider.call("GET", "/system/endpoints/echo", None).await;
    assert_eq!(status, 200, "{body}");
    let endpoints: ferry_proto::FunctionEndpoints = serde_json::from_value(body).unwrap();
    endpoints
        .endpoints
        .into_iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("the provider does not list container {id}"))
        .address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_to_the_replica_with_the_fewest_calls_in_flight() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let nats = NatsServer::start_async().await;
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;

    let replicas = deploy_echo(&guard, &provider, &echo, 2).await;
    assert_eq!(replicas.len(), 2);
    // Both replicas are in the gateway's list: idle, they take turns.
    let mut seen = HashSet::new();
    let deadline = Instant::now() + MINUTE;
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only {seen:?} answered");
        let (status, out) = call(&gateway, "warm-up".into()).await;
        assert_eq!(status, 200, "{out}");
        seen.insert(out["hostname"].as_str().unwrap().to_string());
    }

    // A slow call occupies one replica (A) for 3 s...
    let slow = tokio::spawn({
        let url = gateway.url("/function/echo");
        async move {
            let resp = http_client()
                .post(url)
                .header("x-echo-sleep-ms", "3000")
                .body("slow")
                .send()
                .await
                .expect("the slow call");
            assert_eq!(resp.status(), 200);
            let out: Value = resp.json().await.unwrap();
            out["hostname"].as_str().unwrap().to_string()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so quick calls meanwhile all go to the other one (B), also after the gateway
    // refreshed its list (every endpoint_cache_ttl, 1 s).
    let started = Instant::now();
    let mut quick = Vec::new();
    for n in 0..10 {
        let (status, out) = call(&gateway, format!("quick {n}").into()).await;
        assert_eq!(status, 200, "{out}");
        quick.push(out["hostname"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let quick_took = started.elapsed();
    let a = slow.await.unwrap();
    assert!(
        quick_took < Duration::from_millis(2700),
        "the quick calls overlapped the slow one only partly ({quick_took:?})"
    );
    assert!(seen.contains(&a), "{a} vs {seen:?}");
    assert!(
        quick.iter().all(|host| host != &a),
        "quick calls went to the busy replica {a}: {quick:?}"
    );
    let b = seen.iter().find(|host| **host != a).unwrap();
    assert!(quick.iter().all(|host| host == b), "{quick:?}");
}
