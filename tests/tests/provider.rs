//! provider-docker end to end: real Docker engine, real function containers built from the
//! workspace's watchdog, HTTP requests answered from inside the containers.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::Duration;

use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::{DockerGuard, FunctionImage, http_client, wait_until};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

async fn running(guard: &DockerGuard, name: &str) -> usize {
    function_containers(guard, name)
        .await
        .iter()
        .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
        .count()
}

/// `usage.totalMemoryBytes` of `echo` in `GET /system/functions` once every one of its
/// `replicas` has been sampled (the sum grows with each sampled replica; the smallest a
/// replica's memory can be is well above 64 KiB).
async fn usage_memory(provider: &TestProvider, replicas: u64) -> f64 {
    let mut memory = 0.0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let (_, list) = provider.call("GET", "/system/functions", None).await;
        let status: ferry_proto::FunctionStatus = serde_json::from_value(list[0].clone()).unwrap();
        memory = status.usage.map_or(0.0, |u| u.total_memory_bytes);
        if status.available_replicas == replicas && memory > replicas as f64 * 64.0 * 1024.0 {
            return memory;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no usage of {replicas} replicas reported within 30 s (last: {memory} bytes)");
}

/// POSTs `body` to the function through one replica's address; returns the echo JSON.
async fn invoke_echo(address: &str, path_and_query: &str, body: &str) -> Value {
    let resp = http_client()
        .post(format!("http://{address}{path_and_query}"))
        .header("x-call-id", "test-call-1")
        .body(body.to_string())
        .send()
        .await
        .expect("invoking the replica");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-duration-seconds"));
    resp.json().await.expect("echo JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_invoke_scale_update_delete() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let cat = FunctionImage::cat_streaming(&guard).await;
    let provider = TestProvider::start(&guard).await;

    // Deploy: the containers exist, carry the function's labels, and become ready.
    let deployment = json!({
        "service": "echo",
        "image": echo.tag,
        "envVars": {"GREETING": "hello"},
        "labels": {"team": "blue"},
        "annotations": {"topic": "orders"}
    });
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&deployment.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
    provider.wait_available("echo", 1).await;
    let status = provider.status("echo").await.unwrap();
    assert_eq!(status.image, echo.tag);
    assert_eq!(status.namespace, "openfaas-fn");
    assert_eq!(status.env_vars["GREETING"], "hello");
    assert_eq!(status.labels["team"], "blue");
    assert_eq!(status.labels["faas_function"], "echo");
    assert_eq!(status.annotations["topic"], "orders");
    assert!(status.created_at.is_some());

    let containers = function_containers(&guard, "echo").await;
    assert_eq!(containers.len(), 1);
    let labels = containers[0].labels.clone().unwrap();
    assert_eq!(labels["com.openfaas.function"], "echo");
    assert_eq!(labels["com.openfaas.namespace"], "openfaas-fn");
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels["com.openfaas.annotations.topic"], "orders");

    // An HTTP request to the function's endpoint is answered from inside the container.
    let addresses = ready_addresses(&provider, "echo").await;
    assert_eq!(addresses.len(), 1);
    assert!(addresses[0].starts_with("127.0.0.1:"), "{addresses:?}");
    let out = invoke_echo(&addresses[0], "/orders/7?verbose=1", "payload").await;
    assert_eq!(out["method"], "POST");
    assert_eq!(out["path"], "/orders/7");
    assert_eq!(out["query"], "verbose=1");
    assert_eq!(out["body"], "payload");
    assert_eq!(out["headers"]["x-call-id"][0], "test-call-1");
    assert_eq!(out["env"]["GREETING"], "hello");

    // The listing shows it too.
    let (code, list) = provider.call("GET", "/system/functions", None).await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "echo");
    assert_eq!(list[0]["availableReplicas"], 1);

    // Scale 1 -> 3: three running containers, three distinct ready replicas.
    let scale = |n: u64| json!({"serviceName": "echo", "replicas": n}).to_string();
    let (code, body) = provider
        .call("POST", "/system/scale-function/echo", Some(&scale(3)))
        .await;
    assert_eq!(code, 202, "{body}");
    provider.wait_available("echo", 3).await;
    assert_eq!(running(&guard, "echo").await, 3);
    let addresses = ready_addresses(&provider, "echo").await;
    assert_eq!(addresses.len(), 3);
    let mut hosts = Vec::new();
    for a in &addresses {
        hosts.push(
            invoke_echo(a, "/", "").await["hostname"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts.len(),
        3,
        "three different containers answered: {hosts:?}"
    );

    // Usage: the memory of the three replicas (as `docker stats` counts it), summed, in both
    // the list and the status, once the sampler has read them.
    let memory = usage_memory(&provider, 3).await;
    let per_replica = memory / 3.0;
    assert!(
        (64.0 * 1024.0..256.0 * 1024.0 * 1024.0).contains(&per_replica),
        "{per_replica} bytes per replica"
    );
    let status = provider.status("echo").await.unwrap();
    assert!(status.usage.is_some_and(|u| u.total_memory_bytes > 0.0));

    // Scale 3 -> 1: back to one container.
    let (code, _) = provider
        .call("POST", "/system/scale-function/echo", Some(&scale(1)))
        .await;
    assert_eq!(code, 202);
    provider.wait_available("echo", 1).await;
    wait_until("two replicas are removed", MINUTE, || async {
        function_containers(&guard, "echo").await.len() == 1
    })
    .await;

    // Update the environment: new containers replace the old, the function keeps answering.
    let old_id = function_containers(&guard, "echo").await[0]
        .id
        .clone()
        .unwrap();
    let updated = json!({"service": "echo", "image": echo.tag, "envVars": {"GREETING": "bye"}});
    let (code, body) = provider
        .call("PUT", "/system/functions", Some(&updated.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
    let addresses = ready_addresses(&provider, "echo").await;
    assert!(
        !addresses.is_empty(),
        "a ready replica right after the update"
    );
    wait_until("the old replica is replaced", MINUTE, || async {
        let c = function_containers(&guard, "echo").await;
        c.len() == 1 && c[0].id.as_ref() != Some(&old_id)
    })
    .await;
    provider.wait_available("echo", 1).await;
    let addresses = ready_addresses(&provider, "echo").await;
    assert_eq!(
        invoke_echo(&addresses[0], "/", "").await["env"]["GREETING"],
        "bye"
    );
    assert_eq!(
        provider.status("echo").await.unwrap().labels.get("team"),
        None
    );

    // Update the image: now a `cat` function in streaming mode.
    let updated = json!({"service": "echo", "image": cat.tag});
    let (code, body) = provider
        .call("PUT", "/system/functions", Some(&updated.to_string()))
        .await;
    assert_eq!(code, 202, "{body}");
    provider.wait_available("echo", 1).await;
    wait_until("only the cat replica is left", MINUTE, || async {
        let c = function_containers(&guard, "echo").await;
        c.len() == 1 && c[0].image.as_deref() == Some(cat.tag.as_str())
    })
    .await;
    let address = ready_addresses(&provider, "echo").await.remove(0);
    let resp = http_client()
        .post(format!("http://{address}/"))
        .body("meow")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "meow");

    // Delete: the function is gone at once, its containers shortly after.
    let (code, body) = provider
        .call(
            "DELETE",
            "/system/functions",
            Some(r#"{"functionName":"echo"}"#),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert!(provider.status("echo").await.is_none());
    let (_, list) = provider.call("GET", "/system/functions", None).await;
    assert_eq!(list, json!([]));
    wait_until(
        "every container of the function is removed",
        MINUTE,
        || async { function_containers(&guard, "echo").await.is_empty() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_clear_errors_and_create_nothing() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;

    // An image reference pointing at a closed port on loopback: neither present nor pullable,
    // and the failed pull never leaves this machine.
    let closed = ferry_tests::free_port();
    let unpullable = format!("127.0.0.1:{closed}/ferry/nothing:1");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "bad name",
            json!({"service": "Bad_Name", "image": echo.tag}).to_string(),
            400,
            "Bad_Name",
        ),
        (
            "no image",
            json!({"service": "noimage"}).to_string(),
            400,
            "image",
        ),
        (
            "no name",
            json!({"image": echo.tag}).to_string(),
            400,
            "service",
        ),
        (
            "bad namespace",
            json!({"service": "f", "image": echo.tag, "namespace": "A.B"}).to_string(),
            400,
            "namespace",
        ),
        (
            "malformed JSON",
            "{\"service\": \"f\",".to_string(),
            400,
            "malformed JSON",
        ),
        (
            "wrong type",
            json!({"service": 5, "image": echo.tag}).to_string(),
            400,
            "malformed JSON",
        ),
        ("empty body", String::new(), 400, "empty"),
        (
            "unpullable image",
            json!({"service": "ghost", "image": unpullable}).to_string(),
            400,
            "ferry/nothing",
        ),
        (
            "missing secret",
            json!({"service": "s", "image": echo.tag, "secrets": ["db-password"]}).to_string(),
            400,
            "db-password",
        ),
    ];
    for (what, body, want, mentions) in &cases {
        let (code, resp) = provider.call("POST", "/system/functions", Some(body)).await;
        assert_eq!(code, *want, "{what}: {resp}");
        let message = resp["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: JSON error body, got {resp}"));
        assert!(
            message.contains(mentions),
            "{what}: message {message:?} should mention {mentions:?}"
        );
    }

    // Unknown functions: 404 for every operation.
    let scale = json!({"serviceName": "nope", "replicas": 2}).to_string();
    let update = json!({"service": "nope", "image": echo.tag}).to_string();
    for (method, path, body) in [
        ("GET", "/system/function/nope", None),
        ("GET", "/system/endpoints/nope", None),
        ("POST", "/system/scale-function/nope", Some(scale.as_str())),
        ("PUT", "/system/functions", Some(update.as_str())),
        (
            "DELETE",
            "/system/functions",
            Some(r#"{"functionName":"nope"}"#),
        ),
    ] {
        let (code, resp) = provider.call(method, path, body).await;
        assert_eq!(code, 404, "{method} {path}: {resp}");
        assert!(
            resp["message"]
                .as_str()
                .unwrap()
                .contains("nope.openfaas-fn"),
            "{resp}"
        );
    }

    // Wrong methods and unknown routes answer with JSON too.
    let (code, resp) = provider.call("PATCH", "/system/functions", None).await;
    assert_eq!(code, 405, "{resp}");
    assert!(resp["message"].as_str().unwrap().contains("PATCH"));
    let (code, resp) = provider.call("GET", "/system/nothing", None).await;
    assert_eq!(code, 404, "{resp}");
    assert!(resp["message"].is_string());

    // A duplicate deploy is a conflict and changes nothing.
    let good = json!({"service": "dup", "image": echo.tag}).to_string();
    assert_eq!(
        provider
            .call("POST", "/system/functions", Some(&good))
            .await
            .0,
        202
    );
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&good))
        .await;
    assert_eq!(code, 409, "{resp}");
    provider.wait_available("dup", 1).await;
    // An update to an unusable image is refused and the function keeps running as it was.
    let bad_update =
        json!({"service": "dup", "image": format!("127.0.0.1:{closed}/x:1")}).to_string();
    assert_eq!(
        provider
            .call("PUT", "/system/functions", Some(&bad_update))
            .await
            .0,
        400
    );
    assert_eq!(provider.status("dup").await.unwrap().image, echo.tag);
    // Without labels or annotations, both are still objects, as OpenFaaS providers send them
    // (clients dereference them), and the function's name is the `faas_function` label.
    let (_, dup) = provider.call("GET", "/system/function/dup", None).await;
    assert_eq!(dup["labels"], json!({"faas_function": "dup"}), "{dup}");
    assert_eq!(dup["annotations"], json!({}), "{dup}");

    // Nothing of the rejected deployments exists, in the API or in Docker.
    let (_, list) = provider.call("GET", "/system/functions", None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["dup"]);
    for name in ["ghost", "s", "noimage", "f"] {
        assert!(
            function_containers(&guard, name).await.is_empty(),
            "{name} left containers"
        );
    }
    assert_eq!(function_containers(&guard, "dup").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_endpoint_mode_gives_container_addresses() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start_with(&guard, &[("endpoint_mode", "network")]).await;
    let deployment = json!({"service": "net", "image": echo.tag}).to_string();
    assert_eq!(
        provider
            .call("POST", "/system/functions", Some(&deployment))
            .await
            .0,
        202
    );
    provider.wait_available("net", 1).await;

    let address = ready_addresses(&provider, "net").await.remove(0);
    let container = function_containers(&guard, "net").await.remove(0);
    let ip = container.network_settings.unwrap().networks.unwrap()[provider.network()]
        .ip_address
        .clone()
        .unwrap();
    assert_eq!(address, format!("{ip}:8080"));
    assert!(
        container
            .ports
            .unwrap_or_default()
            .iter()
            .all(|p| p.public_port.is_none()),
        "nothing published"
    );
    // The host reaches the container on the provider's bridge network.
    assert_eq!(invoke_echo(&address, "/x", "hi").await["body"], "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_state_survives_a_provider_restart_and_lost_replicas_come_back() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    let deployment =
        json!({"service": "keep", "image": echo.tag, "labels": {"com.openfaas.scale.min": "2"}});
    assert_eq!(
        provider
            .call("POST", "/system/functions", Some(&deployment.to_string()))
            .await
            .0,
        202
    );
    provider.wait_available("keep", 2).await;
    provider.stop().await;

    // A container removed behind the provider's back while it is down...
    let victim = function_containers(&guard, "keep")
        .await
        .remove(0)
        .id
        .unwrap();
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    guard
        .docker()
        .remove_container(&victim, Some(force))
        .await
        .unwrap();

    // ...is replaced by the restarted provider, which still knows the function.
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    provider.wait_available("keep", 2).await;
    let ids: Vec<String> = function_containers(&guard, "keep")
        .await
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&victim));
}
