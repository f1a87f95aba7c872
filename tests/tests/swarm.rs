//! provider-swarm end to end on a single-node Docker Swarm (made for the test when the engine
//! is not a swarm, and left again after). One test function: swarm tests never run
//! concurrently with each other. Tasks are reached from a helper container on the functions
//! overlay network ([`SwarmSession::helper`]).

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::collections::HashMap;
use std::time::Duration;

use ferry_proto::FunctionEndpoints;
use ferry_tests::provider::TestProvider;
use ferry_tests::provider_suite::lifecycle;
use ferry_tests::provider_suite::namespaces::namespaces;
use ferry_tests::provider_suite::secrets::secrets;
use ferry_tests::swarm::SwarmSession;
use ferry_tests::{DockerGuard, FunctionImage, INSTANCE_LABEL, wait_until};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

async fn endpoints(p: &TestProvider, name: &str) -> FunctionEndpoints {
    let (code, body) = p
        .call("GET", &format!("/system/endpoints/{name}"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_value(body).expect("endpoints")
}

/// Containers of the test's instance running function `name`.
async fn task_containers(guard: &DockerGuard, name: &str) -> Vec<String> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{INSTANCE_LABEL}={}", guard.id()),
            format!("com.openfaas.function={name}"),
        ],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = guard.docker().list_containers(Some(options)).await;
    list.expect("listing task containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_swarm_runs_functions_as_services() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let session = SwarmSession::begin(&guard).await;
    let provider = session.provider().await;
    let reach = session.helper(&guard, &echo.tag).await;

    let (code, info) = provider.call("GET", "/system/info", None).await;
    assert_eq!(code, 200);
    assert_eq!(info["orchestration"], "swarm", "{info}");
    let missing = json!({"service": "nothing", "image": "ferry-test/absent:1"}).to_string();
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&missing))
        .await;
    assert_eq!(code, 400, "{body}");

    // The checks every provider passes.
    lifecycle(&provider, &reach, &echo.tag).await;
    secrets(&provider, &reach, &echo.tag).await;
    namespaces(&provider).await;

    // A task whose container is killed is replaced by Swarm, at a new endpoint.
    let heal = json!({"service": "heal", "image": echo.tag}).to_string();
    assert_eq!(
        provider
            .call("POST", "/system/functions", Some(&heal))
            .await
            .0,
        202
    );
    provider.wait_available("heal", 1).await;
    // Its task's memory, sampled from the task's container (as provider-docker's replicas).
    wait_until("heal's memory is reported", MINUTE, || async {
        let status = provider.status("heal").await.expect("heal exists");
        status.usage.is_some_and(|u| u.total_memory_bytes > 0.0)
    })
    .await;
    let before = endpoints(&provider, "heal").await.endpoints;
    assert_eq!(before.len(), 1, "{before:?}");
    let victim = task_containers(&guard, "heal").await.remove(0);
    guard
        .docker()
        .kill_container(&victim, None)
        .await
        .expect("killing the task's container");
    wait_until("Swarm replaces the killed task", MINUTE, || async {
        let now = endpoints(&provider, "heal").await.endpoints;
        now.len() == 1 && now[0].id != before[0].id
    })
    .await;
    let address = endpoints(&provider, "heal")
        .await
        .endpoints
        .remove(0)
        .address;
    wait_until("the new task answers", MINUTE, || async {
        reach.post(&address, "x").await.is_some()
    })
    .await;

    // A service of this instance that is no function (no deployment label) is removed.
    let image_id = guard
        .docker()
        .inspect_image(&echo.tag)
        .await
        .unwrap()
        .id
        .unwrap();
    let stray = format!("{}-stray", guard.id());
    let label = format!("{INSTANCE_LABEL}={}", guard.id());
    let created = std::process::Command::new("docker")
        .args([
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            "0",
            "--endpoint-mode",
            "dnsrr",
            "--label",
            &label,
            "--name",
            &stray,
            &image_id,
        ])
        .output()
        .expect("docker service create");
    assert!(created.status.success(), "{created:?}");
    wait_until("the stray service is removed", MINUTE, || async {
        guard.docker().inspect_service(&stray, None).await.is_err()
    })
    .await;
    assert!(provider.status("heal").await.is_some(), "heal is kept");
}
