//! `make up-cluster`: `compose.cluster.yaml` started the way users start it (three clustered
//! NATS servers, two gateways behind haproxy, three workers, the provider, Prometheus), in a
//! compose project of its own ([`Stack`]: the test id names the project, images, provider
//! instance and network; free ports; everything labelled and removed, pass or fail).
//!
//! Checked: every service becomes healthy; the echo function is deployed and called, sync and
//! async, through the load balancer's one address; then one NATS server and one gateway are
//! killed and sync calls through that address go on succeeding while async calls submitted
//! around the kill all end `succeeded`. Figures are printed (failed sync calls, if any; how
//! long the last failure came after the kill).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptionsBuilder,
};
use ferry_tests::compose::{Auth, Stack, credentials, with_auth};
use ferry_tests::{DockerGuard, FunctionImage, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);
/// Containers of the stack: 3 NATS, 2 gateways, haproxy, 3 workers, provider, Prometheus.
const CONTAINERS: usize = 11;

/// The stack's containers by compose service (several for the workers).
async fn containers(guard: &DockerGuard, stack: &Stack) -> HashMap<String, Vec<String>> {
    let project = format!("com.docker.compose.project={}", stack.id);
    let filters = HashMap::from([("label", vec![project.as_str()])]);
    let options = ListContainersOptionsBuilder::new()
        .filters(&filters)
        .build();
    let mut by_service: HashMap<String, Vec<String>> = HashMap::new();
    for c in guard
        .docker()
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        let service = c
            .labels
            .as_ref()
            .and_then(|l| l.get("com.docker.compose.service"))
            .cloned()
            .unwrap_or_default();
        by_service
            .entry(service)
            .or_default()
            .push(c.id.unwrap_or_default());
    }
    by_service
}

/// Every container is running, and healthy where it has a health check.
async fn wait_healthy(guard: &DockerGuard, stack: &Stack) {
    wait_until(
        "every service of the cluster stack is healthy",
        2 * MINUTE,
        || async {
            let all: Vec<String> = containers(guard, stack)
                .await
                .into_values()
                .flatten()
                .collect();
            if all.len() != CONTAINERS {
                return false;
            }
            for id in &all {
                let Ok(c) = guard
                    .docker()
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
                else {
                    return false;
                };
                let state = c.state.unwrap_or_default();
                let health = state.health.and_then(|h| h.status).map(|s| s.to_string());
                if state.running != Some(true) || health.is_some_and(|s| s != "healthy") {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Deploys the echo function through the load balancer and waits for a ready replica.
async fn deploy_echo(stack: &Stack, auth: &Auth, image: &str) {
    let client = http_client();
    let body = json!({"service": "echo", "image": image}).to_string();
    let deployed = with_auth(client.post(stack.gateway("/system/functions")), auth)
        .body(body)
        .send()
        .await
        .expect("POST /system/functions");
    assert_eq!(deployed.status(), 202, "{:?}", deployed.text().await);
    wait_until(
        "echo answers through the load balancer",
        2 * MINUTE,
        || async {
            client
                .post(stack.gateway("/function/echo"))
                .body("hi")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

/// Submits an async call that sleeps 1 s, retrying with the same id until it is accepted.
async fn submit(stack: &Stack, id: &str) {
    let client = http_client();
    wait_until(&format!("call {id} is accepted"), MINUTE, || async {
        client
            .post(stack.gateway("/async-function/echo"))
            .header("x-call-id", id)
            .header("x-echo-sleep-ms", "1000")
            .timeout(Duration::from_secs(10))
            .body("async")
            .send()
            .await
            .is_ok_and(|r| r.status() == 202)
    })
    .await;
}

/// The call's state (empty when it cannot be read).
async fn state(stack: &Stack, auth: &Auth, id: &str) -> String {
    let url = stack.gateway(&format!("/system/async-calls/{id}"));
    match with_auth(http_client().get(url), auth).send().await {
        Ok(r) if r.status() == 200 => r.json::<Value>().await.unwrap_or_default()["state"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_up_cluster_survives_losing_a_nats_server_and_a_gateway() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let mut stack = Stack::new(&guard);
    stack.set("FERRY_COMPOSE_FILE", "compose.cluster.yaml");
    stack.make("up-cluster").await;
    wait_healthy(&guard, &stack).await;
    let auth = credentials(&stack).await;
    deploy_echo(&stack, &auth, &echo.tag).await;

    // Sync calls through the one address, one at a time, never retried by the client.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let last_failure = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let caller = tokio::spawn({
        let (url, stop, ok, failed, last_failure) = (
            stack.gateway("/function/echo"),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            last_failure.clone(),
        );
        async move {
            let client = http_client();
            while !stop.load(Ordering::Relaxed) {
                let answer = client.post(&url).body("sync").send().await;
                if answer.is_ok_and(|r| r.status() == 200) {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    *last_failure.lock().unwrap() = Some(Instant::now());
                }
            }
        }
    });
    let ids: Vec<String> = (0..20).map(|i| format!("{}-{i}", stack.id)).collect();
    for id in &ids[..10] {
        submit(&stack, id).await;
    }

    let by_service = containers(&guard, &stack).await;
    let killed_at = Instant::now();
    for service in ["nats-1", "gateway-1"] {
        let id = &by_service[service][0];
        guard
            .docker()
            .kill_container(id, None::<KillContainerOptions>)
            .await
            .unwrap_or_else(|e| panic!("killing {service}: {e}"));
    }
    eprintln!("cluster compose test: killed nats-1 and gateway-1");
    for id in &ids[10..] {
        submit(&stack, id).await;
    }
    let before = ok.load(Ordering::Relaxed);
    wait_until(
        "100 more sync calls succeed after the kill",
        MINUTE,
        || async { ok.load(Ordering::Relaxed) >= before + 100 },
    )
    .await;
    for id in &ids {
        wait_until(&format!("call {id} succeeded"), 2 * MINUTE, || async {
            state(&stack, &auth, id).await == "succeeded"
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    caller.await.expect("the sync caller panicked");
    let last = last_failure
        .lock()
        .unwrap()
        .map(|t| t.saturating_duration_since(killed_at));
    let failed = failed.load(Ordering::Relaxed);
    eprintln!(
        "cluster compose test: sync calls through the load balancer: {} ok, {failed} failed \
         (last failure {last:?} after the kill); 20 async calls succeeded",
        ok.load(Ordering::Relaxed)
    );
    assert!(
        failed <= 2,
        "{failed} sync calls failed through the load balancer"
    );
}
