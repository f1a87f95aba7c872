//! Scale to zero, provider side, with the `stop` tier only (`com.ferry.scale.zero.tiers=stop`;
//! the frozen tier is freeze.rs's): an idle function goes to zero replicas keeping one stopped
//! ("parked") container, which survives a provider restart and is started again (the same
//! container) on the next scale-up; cold starts are counted and timed.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::time::{Duration, Instant};

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use ferry_tests::provider::{TestProvider, function_containers, ready_addresses, sample};
use ferry_tests::{DockerGuard, FunctionImage, http_client, wait_until};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

fn running(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RUNNING)
}

async fn deploy(provider: &TestProvider, body: serde_json::Value) {
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&body.to_string()))
        .await;
    assert_eq!(code, 202, "{resp}");
}

async fn invoke(address: &str) {
    let resp = http_client()
        .post(format!("http://{address}/"))
        .body("hi")
        .send()
        .await
        .expect("invoking the replica");
    assert_eq!(resp.status(), 200);
}

/// Waits until `name` has exactly one container, stopped, and returns its id.
async fn parked(guard: &DockerGuard, name: &str) -> String {
    wait_until(
        &format!("{name} keeps exactly one stopped container"),
        MINUTE,
        || async {
            let all = function_containers(guard, name).await;
            matches!(all.as_slice(), [only] if !running(only))
        },
    )
    .await;
    let all = function_containers(guard, name).await;
    assert!(all.len() == 1 && !running(&all[0]), "still parked");
    all[0].id.clone().expect("container id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_function_parks_a_container_that_survives_restarts_and_starts_again() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let data = tempfile::tempdir().unwrap();
    let provider =
        TestProvider::start_in(&guard, data.path(), &[("autoscale_interval", "250ms")]).await;
    deploy(
        &provider,
        json!({"service": "sleepy", "image": echo.tag, "labels": {
            "com.openfaas.scale.zero": "true",
            "com.openfaas.scale.zero-duration": "3s",
            "com.ferry.scale.zero.tiers": "stop",
        }}),
    )
    .await;
    provider.wait_available("sleepy", 1).await;
    let first = function_containers(&guard, "sleepy").await[0].id.clone();
    invoke(&ready_addresses(&provider, "sleepy").await[0]).await;

    // Idle for 3 s: zero replicas, one container kept, stopped.
    wait_until("sleepy is scaled to zero", MINUTE, || async {
        provider
            .status("sleepy")
            .await
            .is_some_and(|s| s.replicas == 0 && s.available_replicas == 0)
    })
    .await;
    let parked_id = parked(&guard, "sleepy").await;
    assert_eq!(
        Some(&parked_id),
        first.as_ref(),
        "the replica itself is parked"
    );
    assert!(ready_addresses(&provider, "sleepy").await.is_empty());

    // A restarted provider keeps it (autoscaling slowed down so nothing else moves meanwhile).
    provider.stop().await;
    let provider =
        TestProvider::start_in(&guard, data.path(), &[("autoscale_interval", "1h")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a few reconcile rounds
    assert_eq!(
        parked(&guard, "sleepy").await,
        parked_id,
        "no new container"
    );
    let status = provider.status("sleepy").await.unwrap();
    assert_eq!((status.replicas, status.available_replicas), (0, 0));

    // Scaling up starts that same container again, and it answers.
    assert_eq!(provider.scale("sleepy", 1).await, 202);
    provider.wait_available("sleepy", 1).await;
    let all = function_containers(&guard, "sleepy").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id.as_ref(), Some(&parked_id), "the parked container");
    assert!(running(&all[0]));
    invoke(&ready_addresses(&provider, "sleepy").await[0]).await;

    // The cold start is counted and timed.
    let function = r#"{function_name="sleepy.openfaas-fn",tier="stopped"}"#;
    let starts = format!("provider_cold_starts_total{function}");
    wait_until("the cold start is recorded", MINUTE, || async {
        sample(&provider.metrics().await, &starts) == Some(1.0)
    })
    .await;
    let text = provider.metrics().await;
    assert_eq!(
        sample(
            &text,
            &format!("provider_cold_start_seconds_count{function}")
        ),
        Some(1.0),
        "{text}"
    );
    let seconds = sample(&text, &format!("provider_cold_start_seconds_sum{function}")).unwrap();
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");
    let function = r#"{function_name="sleepy.openfaas-fn"}"#;
    assert_eq!(
        sample(&text, &format!("provider_function_replicas{function}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("provider_function_available_replicas{function}")
        ),
        Some(1.0)
    );
    let up = r#"{direction="up",function_name="sleepy.openfaas-fn"}"#;
    assert_eq!(
        sample(&text, &format!("provider_scale_events_total{up}")),
        Some(1.0)
    );

    // A manual scale to zero parks the same way: of two replicas, the older one is kept.
    assert_eq!(provider.scale("sleepy", 2).await, 202);
    provider.wait_available("sleepy", 2).await;
    assert_eq!(provider.scale("sleepy", 0).await, 202);
    assert_eq!(provider.status("sleepy").await.unwrap().replicas, 0);
    assert_eq!(parked(&guard, "sleepy").await, parked_id);

    // Back up at once, while the parked container may still be stopping (its watchdog drains
    // for a second): a replica is up either way, and one container is left of the two.
    assert_eq!(provider.scale("sleepy", 1).await, 202);
    provider.wait_available("sleepy", 1).await;
    assert_eq!(provider.scale("sleepy", 0).await, 202);
    assert_eq!(provider.scale("sleepy", 1).await, 202);
    provider.wait_available("sleepy", 1).await;
    invoke(&ready_addresses(&provider, "sleepy").await[0]).await;
    wait_until("one running container is left", MINUTE, || async {
        let all = function_containers(&guard, "sleepy").await;
        all.len() == 1 && running(&all[0])
    })
    .await;
    assert_eq!(provider.scale("sleepy", 0).await, 202);
    parked(&guard, "sleepy").await;
    provider.stop().await;
}

/// Cold start of a parked container (`docker start`) against a fresh one (`docker create` and
/// `start`): both are recorded; the times are printed for comparison.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_starts_of_parked_and_fresh_containers_are_measured() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start_with(&guard, &[("autoscale_interval", "1h")]).await;
    let labels = json!({"com.openfaas.scale.min": "0", "com.ferry.scale.zero.tiers": "stop"});
    for name in ["parked", "fresh"] {
        deploy(
            &provider,
            json!({"service": name, "image": echo.tag, "labels": labels}),
        )
        .await;
    }
    // "parked" gets its parked container; "fresh" is updated before each start instead.
    assert_eq!(provider.scale("parked", 1).await, 202);
    provider.wait_available("parked", 1).await;
    assert_eq!(provider.scale("parked", 0).await, 202);
    parked(&guard, "parked").await;

    const ROUNDS: usize = 5;
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (i, name) in ["parked", "fresh"].into_iter().enumerate() {
            if name == "fresh" {
                // An update (a new generation) discards the parked container: the next start
                // creates one.
                let update = json!({"service": name, "image": echo.tag,
                    "labels": labels, "envVars": {"ROUND": round.to_string()}});
                assert_eq!(
                    provider
                        .call("PUT", "/system/functions", Some(&update.to_string()))
                        .await
                        .0,
                    202
                );
                wait_until("no container left", MINUTE, || async {
                    function_containers(&guard, name).await.is_empty()
                })
                .await;
            }
            let tier = if name == "parked" { "stopped" } else { "new" };
            let label = format!(r#"{{function_name="{name}.openfaas-fn",tier="{tier}"}}"#);
            let series = format!("provider_cold_start_seconds_sum{label}");
            let count = format!("provider_cold_starts_total{label}");
            let text = provider.metrics().await;
            let before = sample(&text, &series).unwrap_or(0.0);
            let starts = sample(&text, &count).unwrap_or(0.0);
            let started = Instant::now();
            assert_eq!(provider.scale(name, 1).await, 202);
            wait_until("the cold start is recorded", MINUTE, || async {
                sample(&provider.metrics().await, &count) == Some(starts + 1.0)
            })
            .await;
            let after = sample(&provider.metrics().await, &series).unwrap();
            let took = after - before;
            assert!(took > 0.0 && took <= started.elapsed().as_secs_f64() + 0.001);
            times[i].push(took * 1e3);
            provider.wait_available(name, 1).await;
            assert_eq!(provider.scale(name, 0).await, 202);
            parked(&guard, name).await;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [mut parked_ms, mut fresh_ms] = times;
    eprintln!(
        "cold start to ready, ms: parked start median {:.0} {parked_ms:.0?}; fresh create median {:.0} {fresh_ms:.0?}",
        median(&mut parked_ms),
        median(&mut fresh_ms),
    );
    provider.stop().await;
}
