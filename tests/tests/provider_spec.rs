//! provider-docker applies the whole function spec and heals replicas: memory and CPU limits,
//! read-only root filesystem with a writable `/tmp`, no capabilities and no new privileges,
//! a pids limit that contains a fork bomb, an unprivileged user unless the image or the
//! deployment names one, constraints accepted; killed, stopped and stuck-unready replicas
//! are replaced.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerSummaryStateEnum};
use bollard::query_parameters::StatsOptionsBuilder;
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses};
use ferry_tests::{DockerGuard, FunctionImage, ImageSpec, http_client, wait_until};
use futures_util::StreamExt;
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// Reports what the function sees of its own container.
const PROBE: &str = r#"#!/bin/sh
echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
if touch /x 2>/dev/null; then echo root=writable; else echo root=readonly; fi
if touch /tmp/x 2>/dev/null; then echo tmp=writable; else echo tmp=readonly; fi
grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -d ' \t'
echo "uid=$(id -u)"
"#;

async fn deploy(provider: &TestProvider, body: serde_json::Value) {
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&body.to_string()))
        .await;
    assert_eq!(code, 202, "{resp}");
}

async fn inspect(guard: &DockerGuard, id: &str) -> ContainerInspectResponse {
    guard
        .docker()
        .inspect_container(id, None)
        .await
        .expect("inspecting a function container")
}

async fn container_ids(guard: &DockerGuard, name: &str) -> Vec<String> {
    function_containers(guard, name)
        .await
        .into_iter()
        .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_read_only_root_and_privileges_are_in_force() {
    let guard = DockerGuard::new().await;
    let probe = FunctionImage::build(&guard, "probe", &ImageSpec::shell_serializing(PROBE)).await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;

    let constraints = json!(["node.platform.os == linux"]);
    deploy(
        &provider,
        json!({
            "service": "probe",
            "image": probe.tag,
            "limits": {"memory": "40Mi", "cpu": "500m"},
            "requests": {"memory": "20M", "cpu": "250m"},
            "readOnlyRootFilesystem": true,
            "constraints": constraints,
        }),
    )
    .await;
    // A function with no limits and a writable root, as the default.
    deploy(&provider, json!({"service": "plain", "image": echo.tag})).await;
    provider.wait_available("probe", 1).await;
    provider.wait_available("plain", 1).await;

    // The spec is kept in the status, constraints included.
    let status = provider.status("probe").await.unwrap();
    assert_eq!(json!(status.constraints), constraints);
    assert_eq!(status.limits.unwrap().memory, "40Mi");
    assert!(status.read_only_root_filesystem);

    // Docker got the limits, the read-only root with a tmpfs /tmp, and the privileges.
    let id = container_ids(&guard, "probe").await.remove(0);
    let host = inspect(&guard, &id).await.host_config.unwrap();
    assert_eq!(host.memory, Some(40 * 1024 * 1024));
    assert_eq!(host.memory_reservation, Some(20_000_000));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.cpu_shares, Some(256));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert!(host.tmpfs.unwrap()["/tmp"].contains("rw"));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    assert_eq!(host.pids_limit, Some(1024));
    assert!(
        host.security_opt
            .unwrap_or_default()
            .contains(&"no-new-privileges:true".to_string())
    );
    let bindings = host.port_bindings.unwrap();
    for binding in bindings.values().flatten().flatten() {
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
    }

    // ...and they are in force inside the container.
    let address = ready_addresses(&provider, "probe").await.remove(0);
    let resp = http_client()
        .post(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = resp.text().await.unwrap();
    for expected in [
        format!("memory={}", 40 * 1024 * 1024),
        "root=readonly".into(),
        "tmp=writable".into(),
        "CapEff:0000000000000000".into(),
        "CapBnd:0000000000000000".into(),
        "NoNewPrivs:1".into(),
        // nobody, and the read-only root's tmpfs /tmp is writable to it.
        "uid=65534".into(),
    ] {
        assert!(
            seen.lines().any(|l| l == expected),
            "{expected:?} in {seen:?}"
        );
    }

    // The default: no limits, a writable root, still no capabilities.
    let id = container_ids(&guard, "plain").await.remove(0);
    let host = inspect(&guard, &id).await.host_config.unwrap();
    assert!(host.memory.unwrap_or_default() == 0 && host.nano_cpus.unwrap_or_default() == 0);
    assert_ne!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    let inspected = inspect(&guard, &id).await;
    assert_eq!(inspected.host_config.unwrap().pids_limit, Some(1024));
    assert_eq!(
        inspected.config.unwrap().user.as_deref(),
        Some("65534:65534")
    );
}

/// The response of one call to a ready replica of `name`.
async fn invoke(provider: &TestProvider, name: &str) -> (u16, String) {
    let address = ready_addresses(provider, name).await.remove(0);
    let resp = http_client()
        .post(format!("http://{address}/"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("calling {name}: {e}"));
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_run_as_nobody_unless_the_image_or_an_annotation_names_a_user() {
    const WHO: &str = "#!/bin/sh\necho \"uid=$(id -u) gid=$(id -g)\"\n";
    let guard = DockerGuard::new().await;
    let who = FunctionImage::build(&guard, "who", &ImageSpec::shell_serializing(WHO)).await;
    let spec = ImageSpec::shell_serializing(WHO).user("1234:1234");
    let own = FunctionImage::build(&guard, "who-own-user", &spec).await;
    // The classic watchdog is healthy only while it can write /tmp/.lock.
    let classic = FunctionImage::classic(&guard, "cat").await;
    let provider = TestProvider::start(&guard).await;

    let root = json!({"com.ferry.user": "0"});
    let cases = [
        ("nobody", &who.tag, json!({}), "uid=65534 gid=65534"),
        ("root", &who.tag, root, "uid=0 gid=0"),
        ("own", &own.tag, json!({}), "uid=1234 gid=1234"),
    ];
    for (name, image, annotations, _) in &cases {
        let body = json!({"service": name, "image": image, "annotations": annotations});
        deploy(&provider, body).await;
    }
    deploy(
        &provider,
        json!({"service": "classic", "image": classic.tag}),
    )
    .await;
    for (name, _, _, expected) in cases {
        provider.wait_available(name, 1).await;
        let (code, seen) = invoke(&provider, name).await;
        assert_eq!((code, seen.trim()), (200, expected), "{name}");
    }
    provider.wait_available("classic", 1).await;
    assert_eq!(invoke(&provider, "classic").await.0, 200);

    // A user that cannot be one is refused, naming the annotation.
    let bad = json!({"service": "bad", "image": who.tag,
                     "annotations": {"com.ferry.user": "no body"}});
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&bad.to_string()))
        .await;
    assert_eq!(code, 400, "{resp}");
    assert!(resp["message"].as_str().unwrap().contains("com.ferry.user"));
}

/// `pids.current` of a container, from the engine's stats.
async fn pids_current(guard: &DockerGuard, id: &str) -> u64 {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let stats = guard.docker().stats(id, Some(options)).next().await;
    let stats = stats.expect("one stats sample").expect("container stats");
    stats.pids_stats.and_then(|p| p.current).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_stays_inside_its_pids_limit() {
    const LIMIT: u64 = 64;
    // A fork bomb that keeps pushing: every `bomb` is an awk that starts further `bomb`s in a
    // loop, shrugging off failed forks (a shell exits on its first failed fork, so a plain
    // shell bomb dies out under a limit). The handler sets it off in the background.
    const BOMB: &str = "#!/bin/sh\nexec awk 'BEGIN { while (1) system(\"bomb &\") }'\n";
    const HANDLER: &str = "#!/bin/sh\nbomb >/dev/null 2>&1 </dev/null &\necho started\n";
    let guard = DockerGuard::new().await;
    let spec = ImageSpec::shell_serializing(HANDLER).file("/usr/bin/bomb", BOMB, 0o755);
    let bomb = FunctionImage::build(&guard, "bomb", &spec).await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    deploy(
        &provider,
        json!({"service": "bomb", "image": bomb.tag,
               "limits": {"cpu": "250m", "memory": "128Mi"},
               "annotations": {"com.ferry.pids-limit": LIMIT.to_string()}}),
    )
    .await;
    deploy(
        &provider,
        json!({"service": "bystander", "image": echo.tag}),
    )
    .await;
    provider.wait_available("bomb", 1).await;
    provider.wait_available("bystander", 1).await;
    let id = container_ids(&guard, "bomb").await.remove(0);
    let host = inspect(&guard, &id).await.host_config.unwrap();
    assert_eq!(host.pids_limit, Some(LIMIT as i64));

    let (code, said) = invoke(&provider, "bomb").await;
    assert_eq!((code, said.trim()), (200, "started"));
    // The bomb fills its container up to the limit, never past it, and stays there.
    let mut seen: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + MINUTE;
    while seen.last().is_none_or(|n| *n < LIMIT - 2) {
        let late = tokio::time::Instant::now() > deadline;
        assert!(!late, "the bomb never reached the limit: {seen:?}");
        seen.push(pids_current(&guard, &id).await);
    }
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen.push(pids_current(&guard, &id).await);
    }
    assert!(
        seen.iter().all(|n| *n <= LIMIT),
        "pids over {LIMIT}: {seen:?}"
    );
    assert!(
        seen[seen.len() - 10..].iter().all(|n| *n >= LIMIT - 8),
        "{seen:?}"
    );

    // Outside, all is well: the host forks, the provider answers, other functions serve.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
    let (code, _) = provider.call("GET", "/system/functions", None).await;
    assert_eq!(code, 200);
    assert_eq!(invoke(&provider, "bystander").await.0, 200);

    // And the function goes away cleanly, bomb and all.
    let remove = json!({"functionName": "bomb"}).to_string();
    let (code, resp) = provider
        .call("DELETE", "/system/functions", Some(&remove))
        .await;
    assert_eq!(code, 202, "{resp}");
    wait_until("the bombed container is removed", MINUTE, || async {
        function_containers(&guard, "bomb").await.is_empty()
    })
    .await;
    assert!(provider.status("bomb").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_limits_are_rejected_naming_the_field() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    let cases = [
        (json!({"limits": {"memory": "12XB"}}), "limits.memory"),
        (
            json!({"limits": {"memory": "100m"}}),
            "did you mean M or Mi",
        ),
        (json!({"requests": {"memory": "lots"}}), "requests.memory"),
        (json!({"limits": {"cpu": "fast"}}), "limits.cpu"),
        (json!({"requests": {"cpu": "-1"}}), "requests.cpu"),
        (json!({"limits": {"memory": "1Mi"}}), "6Mi"),
        (
            json!({"limits": {"memory": "64Mi"}, "requests": {"memory": "1Gi"}}),
            "larger than limits.memory",
        ),
    ];
    for (extra, mentions) in cases {
        let mut body = json!({"service": "bad", "image": echo.tag});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, resp) = provider
            .call("POST", "/system/functions", Some(&body.to_string()))
            .await;
        assert_eq!(code, 400, "{body}: {resp}");
        let message = resp["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{message:?} names {mentions:?}");
    }
    assert!(provider.status("bad").await.is_none());
    assert!(function_containers(&guard, "bad").await.is_empty());

    // An update with a bad limit is refused too, and the function keeps its spec.
    deploy(&provider, json!({"service": "good", "image": echo.tag})).await;
    let bad = json!({"service": "good", "image": echo.tag, "limits": {"memory": "1.2.3Gi"}});
    let (code, resp) = provider
        .call("PUT", "/system/functions", Some(&bad.to_string()))
        .await;
    assert_eq!(code, 400, "{resp}");
    assert!(provider.status("good").await.unwrap().limits.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_stopped_replicas_come_back() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    deploy(
        &provider,
        json!({"service": "pair", "image": echo.tag, "labels": {"com.openfaas.scale.min": "2"}}),
    )
    .await;
    provider.wait_available("pair", 2).await;

    // Kill one replica behind the provider's back: the other keeps answering, and the count
    // comes back.
    let before = container_ids(&guard, "pair").await;
    let victim = before[0].clone();
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    guard
        .docker()
        .remove_container(&victim, Some(force))
        .await
        .unwrap();
    let survivors = ready_addresses(&provider, "pair").await;
    assert!(!survivors.is_empty());
    for address in survivors {
        let resp = http_client()
            .get(format!("http://{address}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    provider.wait_available("pair", 2).await;
    let after = container_ids(&guard, "pair").await;
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&victim));

    // Stop every replica (as an engine restart does): they are replaced.
    for id in &after {
        guard.docker().stop_container(id, None).await.unwrap();
    }
    wait_until("the stopped replicas are replaced", MINUTE, || async {
        let now = container_ids(&guard, "pair").await;
        now.len() == 2 && now.iter().all(|id| !after.contains(id))
    })
    .await;
    provider.wait_available("pair", 2).await;

    // Again while the provider is down: the restarted provider brings them back.
    provider.stop().await;
    let stopped = container_ids(&guard, "pair").await;
    for id in &stopped {
        guard.docker().stop_container(id, None).await.unwrap();
    }
    let provider = TestProvider::start_in(&guard, data.path(), &[]).await;
    provider.wait_available("pair", 2).await;
    let now = container_ids(&guard, "pair").await;
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|id| !stopped.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stays_unready_is_replaced() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start_with(&guard, &[("unready_timeout", "3s")]).await;
    // The watchdog proxies to a port nothing listens on: running, never ready.
    deploy(
        &provider,
        json!({"service": "stuck", "image": echo.tag,
               "envVars": {"upstream_url": "http://127.0.0.1:5999"}}),
    )
    .await;
    deploy(&provider, json!({"service": "fine", "image": echo.tag})).await;
    provider.wait_available("fine", 1).await;
    let fine = container_ids(&guard, "fine").await;

    let first = container_ids(&guard, "stuck").await;
    assert_eq!(first.len(), 1);
    wait_until("the unready replica is replaced", MINUTE, || async {
        let now = container_ids(&guard, "stuck").await;
        now.len() == 1 && now[0] != first[0]
    })
    .await;
    let status = provider.status("stuck").await.unwrap();
    assert_eq!((status.replicas, status.available_replicas), (1, 0));
    // A ready replica is left alone.
    assert_eq!(container_ids(&guard, "fine").await, fine);
}
