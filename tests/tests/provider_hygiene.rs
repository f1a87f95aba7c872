//! provider-docker's hygiene across restarts: containers of its instance that belong to no
//! desired function are removed at start and on every reconcile round, while the parked
//! container of a function at zero is kept.
//!
//! The first provider runs as a child process (the `provider-docker` binary), so that stopping
//! it ends its background drains exactly as in production; the second one runs in-process on
//! the same `data_dir` and instance.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use ferry_tests::process::ServiceProcess;
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::{
    DockerGuard, FunctionImage, INSTANCE_LABEL, ImageSpec, free_port, http_client, wait_until,
};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// A handler that runs for a long while: a call in flight makes the watchdog's drain (and so
/// the delete's `docker stop`) last well beyond the provider's stop.
const SLOW: &str = "#!/bin/sh\nsleep 50\necho done\n";

fn running(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RUNNING)
}

async fn deploy(provider: &TestProvider, body: serde_json::Value) {
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&body.to_string()))
        .await;
    assert_eq!(code, 202, "{resp}");
}

/// Whether a process of container `id` runs `what`.
async fn runs(guard: &DockerGuard, id: &str, what: &str) -> bool {
    match guard.docker().top_processes(id, None).await {
        Ok(top) => top
            .processes
            .unwrap_or_default()
            .iter()
            .flatten()
            .any(|p| p.contains(what)),
        Err(_) => false,
    }
}

/// Creates (without starting) a container from `image` with the test label, the instance
/// label and `labels`; returns its id.
async fn labelled_container(
    guard: &DockerGuard,
    image: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> String {
    let mut all = guard.labels();
    all.insert(INSTANCE_LABEL.to_string(), guard.id().to_string());
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(all),
        ..Default::default()
    };
    let name = format!("{}-{name}", guard.id());
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    guard
        .docker()
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"))
        .id
}

async fn exists(guard: &DockerGuard, id: &str) -> bool {
    guard.docker().inspect_container(id, None).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containers_of_no_desired_function_are_removed_and_parked_ones_kept() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let spec = ImageSpec::shell_serializing(SLOW)
        .env("write_timeout", "60s")
        .env("exec_timeout", "60s");
    let slow = FunctionImage::build(&guard, "slow", &spec).await;
    let data = tempfile::tempdir().unwrap();
    let network = format!("{}-fn", guard.id());
    let port = free_port();
    let env = vec![
        ("port", port.to_string()),
        ("instance", guard.id().to_string()),
        ("functions_network", network.clone()),
        ("data_dir", data.path().to_str().unwrap().to_string()),
        ("stop_timeout", "30s".into()),
        ("reconcile_interval", "1s".into()),
        ("probe_cache", "100ms".into()),
    ];
    let mut child =
        ServiceProcess::start_logged_async("ferry-provider-docker", "provider-docker", env, "info")
            .await;
    let first = TestProvider::remote(format!("http://127.0.0.1:{port}"), network, data.path());
    wait_until("the provider answers", MINUTE, || async {
        http_client()
            .get(first.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // A function parked at zero (still desired) and one busy with a long call.
    deploy(&first, json!({"service": "kept", "image": echo.tag})).await;
    deploy(&first, json!({"service": "gone", "image": slow.tag})).await;
    first.wait_available("kept", 1).await;
    first.wait_available("gone", 1).await;
    assert_eq!(first.scale("kept", 0).await, 202);
    wait_until("kept is parked: one stopped container", MINUTE, || async {
        matches!(function_containers(&guard, "kept").await.as_slice(), [c] if !running(c))
    })
    .await;
    let parked = function_containers(&guard, "kept").await[0].id.clone();

    let address = ready_addresses(&first, "gone").await.remove(0);
    let gone_id = function_containers(&guard, "gone").await[0]
        .id
        .clone()
        .unwrap();
    let call = tokio::spawn(async move {
        let _ = http_client()
            .post(format!("http://{address}/"))
            .send()
            .await;
    });
    wait_until("the slow call runs in gone's container", MINUTE, || {
        runs(&guard, &gone_id, "sleep 50")
    })
    .await;

    // Delete, then stop the provider at once: the drain of gone's container dies with it.
    let (code, resp) = first
        .call(
            "DELETE",
            "/system/functions",
            Some(r#"{"functionName":"gone"}"#),
        )
        .await;
    assert_eq!(code, 202, "{resp}");
    let status = child.terminate();
    assert!(status.success(), "provider exit: {status}\n{}", child.log());
    call.abort();
    assert!(
        exists(&guard, &gone_id).await,
        "the deleted function's container is left behind by the stopped provider"
    );

    // The next provider on the same data_dir and instance removes it, and keeps the parked one.
    let second = TestProvider::start_in(&guard, data.path(), &[]).await;
    wait_until("the leftover container is removed", MINUTE, || async {
        !exists(&guard, &gone_id).await
    })
    .await;
    assert!(second.status("gone").await.is_none());
    let kept = function_containers(&guard, "kept").await;
    assert!(
        matches!(kept.as_slice(), [c] if !running(c) && c.id == parked),
        "the parked container survives: {kept:?}"
    );
    assert_eq!(second.status("kept").await.unwrap().replicas, 0);

    // On a later reconcile round: stray containers with the instance label, one naming a
    // function that is not deployed and one naming none, are removed; the parked one stays.
    let stray_fn = labelled_container(
        &guard,
        &echo.tag,
        "stray-fn",
        &[
            ("com.openfaas.function", "stray"),
            ("com.openfaas.namespace", "openfaas-fn"),
            ("com.ferry.generation", "1"),
        ],
    )
    .await;
    let stray = labelled_container(&guard, &echo.tag, "stray", &[]).await;
    wait_until("the stray containers are removed", MINUTE, || async {
        !exists(&guard, &stray_fn).await && !exists(&guard, &stray).await
    })
    .await;
    let kept = function_containers(&guard, "kept").await;
    assert!(
        matches!(kept.as_slice(), [c] if c.id == parked),
        "the parked container is still there: {kept:?}"
    );
    // It still serves: scaling back up starts that same container.
    assert_eq!(second.scale("kept", 1).await, 202);
    second.wait_available("kept", 1).await;
    let labels: HashMap<String, String> = function_containers(&guard, "kept").await[0]
        .labels
        .clone()
        .unwrap_or_default();
    assert_eq!(labels[INSTANCE_LABEL], guard.id());
    assert_eq!(function_containers(&guard, "kept").await[0].id, parked);
}
