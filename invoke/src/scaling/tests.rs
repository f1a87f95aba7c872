//! Scaling from zero against a fake provider and replica (`test_support::Cold`).

use std::sync::atomic::Ordering;

use ferry_proto::FunctionEndpoints;

use super::episode::describe;
use super::*;
use crate::metrics::ScaleFromZeroSnapshot;
use crate::provider::ProviderUrl;
use crate::test_support::{COLD, Cold};

fn scaler(cold: &Cold, timeout: Duration) -> (Scaler, Arc<ScaleFromZero>) {
    scaler_in(cold, timeout, &prometheus::Registry::new())
}

fn scaler_in(
    cold: &Cold,
    timeout: Duration,
    registry: &prometheus::Registry,
) -> (Scaler, Arc<ScaleFromZero>) {
    let client = crate::client::http_client();
    let provider = ProviderClient::new(
        client.clone(),
        ProviderUrl::parse(&cold.provider_url()).unwrap(),
        Duration::from_secs(2),
        None,
    );
    let endpoints = Endpoints::new(
        provider.clone(),
        Duration::from_secs(1),
        Duration::from_secs(5),
    );
    let metrics = Arc::new(ScaleFromZero::new(registry, "test"));
    let scaler = Scaler::new(provider, client, endpoints, timeout, metrics.clone());
    (scaler, metrics)
}

/// `n` concurrent waits for `cold` (addressed both ways), each with how long it took.
async fn wait_all(
    scaler: &Scaler,
    n: usize,
) -> Vec<(Result<Option<Chosen>, InvokeError>, Duration)> {
    let waits = (0..n).map(|i| {
        let scaler = scaler.clone();
        tokio::spawn(async move {
            let name = if i % 2 == 0 { COLD } else { "cold.openfaas-fn" };
            let started = Instant::now();
            let result = scaler.wait(name, &[], false).await;
            (result, started.elapsed())
        })
    });
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_waiters_share_one_scale_up_from_zero() {
    let cold = Cold::start(0, Some(Duration::from_millis(150))).await;
    let (scaler, metrics) = scaler(&cold, Duration::from_secs(10));
    let results = wait_all(&scaler, 20).await;
    for (result, took) in &results {
        let chosen = result.as_ref().unwrap().as_ref().expect("a replica");
        assert_eq!(chosen.authority().to_string(), cold.replica.to_string());
        assert!(*took >= Duration::from_millis(150), "{took:?}");
    }
    // max(com.openfaas.scale.min = 2, 1), asked once.
    assert_eq!(cold.scale_requests(), [2]);
    // The provider never reported the replica ready: the gateway's probes found it.
    assert!(!cold.provider_probes.load(Ordering::SeqCst));
    let counted = metrics.snapshot();
    assert_eq!(
        (
            counted.scale_ups,
            counted.cold_starts,
            counted.held_requests,
            counted.timeouts
        ),
        (1, 1, 20, 0),
        "{counted:?}"
    );
    assert!(counted.cold_start_time >= Duration::from_millis(150));
    // The replica is cached now: the next wait (a call that found none) needs no probe
    // episode of its own and scales nothing.
    drop(results);
    let again = wait_all(&scaler, 1).await;
    assert!(again[0].0.as_ref().unwrap().is_some());
    assert_eq!(cold.scale_requests(), [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_replica_is_probed_without_listing_and_counted_by_tier() {
    let cold = Cold::start(0, Some(Duration::from_millis(20))).await;
    cold.thaws.store(true, Ordering::SeqCst);
    let registry = prometheus::Registry::new();
    let (scaler, _) = scaler_in(&cold, Duration::from_secs(10), &registry);
    // The call's cached list said zero desired replicas: scaled first, nothing listed.
    let chosen = scaler
        .wait(COLD, &[], true)
        .await
        .unwrap()
        .expect("a replica");
    assert_eq!(chosen.authority().to_string(), cold.replica.to_string());
    assert_eq!(cold.scale_requests(), [2]);
    assert_eq!(cold.lookups.load(Ordering::SeqCst), 0, "no listing");
    // The tier is the provider's X-Ferry-Wake.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"test_cold_start_seconds_count{tier="frozen"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_is_waited_for_without_scaling() {
    // Desired 1, started just now, ready in 200 ms.
    let cold = Cold::start(1, Some(Duration::from_millis(200))).await;
    let (scaler, metrics) = scaler(&cold, Duration::from_secs(10));
    let results = wait_all(&scaler, 5).await;
    for (result, _) in &results {
        assert!(result.as_ref().unwrap().is_some());
    }
    assert!(cold.scale_requests().is_empty());
    let counted = metrics.snapshot();
    assert_eq!((counted.scale_ups, counted.cold_starts), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_gets_ready_times_out_every_waiter() {
    let cold = Cold::start(0, None).await;
    let timeout = Duration::from_millis(400);
    let (scaler, metrics) = scaler(&cold, timeout);
    let results = wait_all(&scaler, 10).await;
    for (result, took) in &results {
        match result {
            Err(InvokeError::NotReadyInTime {
                function,
                timeout: t,
                detail,
            }) => {
                assert!(function.starts_with(COLD));
                assert_eq!(*t, timeout);
                assert_eq!(
                    detail,
                    "2 desired replicas, 1 running, none ready; scaled up from zero"
                );
            }
            other => panic!("expected NotReadyInTime, got {:?}", other.as_ref().err()),
        }
        // Calls that joined the episode give up with it when less than a probe
        // interval of their own time is left.
        assert!(*took + PROBE_INTERVAL >= timeout, "{took:?}");
        assert!(*took < timeout + Duration::from_secs(1), "{took:?}");
    }
    assert_eq!(cold.scale_requests(), [2], "scaled once");
    assert_eq!(
        metrics.snapshot(),
        ScaleFromZeroSnapshot {
            scale_ups: 1,
            cold_starts: 0,
            cold_start_time: Duration::ZERO,
            timeouts: 1,
            held_requests: 10,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_joining_late_still_waits_its_whole_timeout() {
    let cold = Cold::start(1, None).await;
    let timeout = Duration::from_millis(400);
    let (scaler, _) = scaler(&cold, timeout);
    let first = tokio::spawn({
        let scaler = scaler.clone();
        async move { scaler.wait(COLD, &[], false).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let late = scaler.wait(COLD, &[], false).await;
    let took = started.elapsed();
    assert!(matches!(
        first.await.unwrap(),
        Err(InvokeError::NotReadyInTime { .. })
    ));
    assert!(matches!(late, Err(InvokeError::NotReadyInTime { .. })));
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_function_is_not_found() {
    let cold = Cold::start(0, None).await;
    let (scaler, _) = scaler(&cold, Duration::from_secs(10));
    let started = Instant::now();
    let result = scaler.wait("other", &[], false).await;
    assert!(
        matches!(&result, Err(InvokeError::FunctionNotFound(f)) if f == "other"),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(cold.scale_requests().is_empty());
}

#[test]
fn timeout_messages_say_what_was_seen() {
    let listing = FunctionEndpoints {
        replicas: 1,
        ..FunctionEndpoints::default()
    };
    assert_eq!(
        describe(Some(&listing), &[], false, None),
        "1 desired replica, 0 running, none ready"
    );
    assert_eq!(
        describe(None, &[], false, Some("connection refused")),
        "no answer from the provider; last provider error: connection refused"
    );
}
