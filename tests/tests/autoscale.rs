//! Autoscaling end to end: replicas follow the in-flight load of real function containers
//! (up at once, down after the stabilisation window, never above max), follow a backlog of
//! async calls in JetStream, a manual scale stays within the bounds, and a function without
//! `type`/`target` labels follows OpenFaaS CE's rule (a replica more above 5 requests per
//! second, back to min when the load stops).

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferry_tests::gateway::TestGateway;
use ferry_tests::provider::{TestProvider, ready_addresses};
use ferry_tests::{DockerGuard, FunctionImage, NatsServer, http_client, wait_until};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

async fn deploy(provider: &TestProvider, name: &str, image: &str, labels: serde_json::Value) {
    let body = json!({"service": name, "image": image, "labels": labels}).to_string();
    let (code, resp) = provider
        .call("POST", "/system/functions", Some(&body))
        .await;
    assert_eq!(code, 202, "{resp}");
}

/// Polls `name`'s desired replicas until `stop`, keeping the highest seen.
fn watch_replicas(
    provider: Arc<TestProvider>,
    name: &'static str,
) -> (Arc<AtomicU64>, Arc<AtomicBool>) {
    let highest = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let (highest, stop) = (highest.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = provider.status(name).await {
                    highest.fetch_max(s.replicas, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    (highest, stop)
}

async fn replicas(provider: &TestProvider, name: &str) -> u64 {
    provider
        .status(name)
        .await
        .expect("function exists")
        .replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_follow_in_flight_load_within_bounds() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = Arc::new(
        TestProvider::start_with(
            &guard,
            &[
                ("autoscale_interval", "500ms"),
                ("scale_down_window", "5s"),
                // Metrics read at the containers' addresses (published ports: scale_zero.rs).
                ("endpoint_mode", "network"),
            ],
        )
        .await,
    );
    let labels = json!({
        "com.openfaas.scale.min": "1",
        "com.openfaas.scale.max": "4",
        "com.openfaas.scale.target": "2",
        "com.openfaas.scale.type": "inflight",
    });
    deploy(&provider, "busy", &echo.tag, labels).await;
    provider.wait_available("busy", 1).await;

    // By hand: clamped to [min, max].
    assert_eq!(provider.scale("busy", 10).await, 202);
    assert_eq!(replicas(&provider, "busy").await, 4);
    assert_eq!(provider.scale("busy", 0).await, 202);
    assert_eq!(replicas(&provider, "busy").await, 1);
    provider.wait_available("busy", 1).await;

    // Sustained load: 10 concurrent slow requests at a time, spread over the ready replicas.
    let (highest, stop_watch) = watch_replicas(provider.clone(), "busy");
    let load_on = Arc::new(AtomicBool::new(true));
    let addresses = Arc::new(std::sync::Mutex::new(
        ready_addresses(&provider, "busy").await,
    ));
    let refresher = tokio::spawn({
        let (provider, addresses, load_on) = (provider.clone(), addresses.clone(), load_on.clone());
        async move {
            while load_on.load(Ordering::Relaxed) {
                let now = ready_addresses(&provider, "busy").await;
                if !now.is_empty() {
                    *addresses.lock().unwrap() = now;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let (addresses, load_on) = (addresses.clone(), load_on.clone());
            tokio::spawn(async move {
                let client = http_client();
                let mut n = i;
                while load_on.load(Ordering::Relaxed) {
                    let address = {
                        let all = addresses.lock().unwrap();
                        all[n % all.len()].clone()
                    };
                    n += 1;
                    // Errors (a replica going away) are fine: the next request goes elsewhere.
                    let _ = client
                        .get(format!("http://{address}/work"))
                        .header("X-Echo-Sleep-Ms", "1000")
                        .send()
                        .await;
                }
            })
        })
        .collect();

    wait_until("busy scales up to at least 3 replicas", MINUTE, || async {
        replicas(&provider, "busy").await >= 3
    })
    .await;
    provider
        .wait_available("busy", replicas(&provider, "busy").await)
        .await;
    // While the load lasts, the replicas stay up.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = replicas(&provider, "busy").await;
        assert!((3..=4).contains(&n), "{n} replicas under load");
    }

    // Load stops: back to min once the window has passed.
    load_on.store(false, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    refresher.await.unwrap();
    wait_until("busy scales back down to 1", MINUTE, || async {
        replicas(&provider, "busy").await == 1
    })
    .await;
    provider.wait_available("busy", 1).await;
    stop_watch.store(true, Ordering::Relaxed);
    let highest = highest.load(Ordering::Relaxed);
    assert!(
        (3..=4).contains(&highest),
        "highest replicas seen: {highest}"
    );
    wait_until("one container left", MINUTE, || async {
        ferry_tests::provider::function_containers(&guard, "busy")
            .await
            .len()
            == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openfaas_ce_rule_adds_a_replica_at_ten_rps_and_goes_back_after_the_load() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    // The default autoscale_interval (2s): the timing a user of the stack sees.
    let provider =
        Arc::new(TestProvider::start_with(&guard, &[("endpoint_mode", "network")]).await);
    let labels = json!({"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "2"});
    deploy(&provider, "steady", &echo.tag, labels).await;
    provider.wait_available("steady", 1).await;

    // A steady 10 requests per second, spread over the ready replicas.
    let (highest, stop_watch) = watch_replicas(provider.clone(), "steady");
    let load_on = Arc::new(AtomicBool::new(true));
    let load = tokio::spawn({
        let (provider, load_on) = (provider.clone(), load_on.clone());
        async move {
            let client = http_client();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0usize;
            let mut addresses = Vec::new();
            while load_on.load(Ordering::Relaxed) {
                tick.tick().await;
                if n % 10 == 0 {
                    let now = ready_addresses(&provider, "steady").await;
                    if !now.is_empty() {
                        addresses = now;
                    }
                }
                let address = addresses[n % addresses.len()].clone();
                n += 1;
                let client = client.clone();
                // Errors (a replica going away) are fine: the next request goes elsewhere.
                tokio::spawn(async move { client.get(format!("http://{address}/")).send().await });
            }
        }
    });
    let started = std::time::Instant::now();
    wait_until("steady gets its second replica", MINUTE, || async {
        replicas(&provider, "steady").await == 2
    })
    .await;
    eprintln!("2 replicas after {:?} at 10 req/s", started.elapsed());

    load_on.store(false, Ordering::Relaxed);
    load.await.unwrap();
    let stopped = std::time::Instant::now();
    wait_until("steady goes back to 1 replica", MINUTE, || async {
        replicas(&provider, "steady").await == 1
    })
    .await;
    eprintln!(
        "back to 1 replica {:?} after the load stopped",
        stopped.elapsed()
    );
    stop_watch.store(true, Ordering::Relaxed);
    assert_eq!(highest.load(Ordering::Relaxed), 2, "never above max");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_follow_the_backlog_of_async_calls() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let nats = NatsServer::start_async().await;
    let provider = Arc::new(
        TestProvider::start_with(
            &guard,
            &[
                ("autoscale_interval", "500ms"),
                ("scale_down_window", "5s"),
                ("nats_url", &nats.url()),
            ],
        )
        .await,
    );
    let labels = json!({
        "com.openfaas.scale.max": "4",
        "com.openfaas.scale.target": "2",
        "com.openfaas.scale.type": "queue",
    });
    deploy(&provider, "queued", &echo.tag, labels).await;
    provider.wait_available("queued", 1).await;
    let (highest, stop_watch) = watch_replicas(provider.clone(), "queued");

    // 7 calls queued and no worker to run them: ceil(7 / 2) = 4 replicas.
    let gateway = TestGateway::start(&provider.url(""), &nats.url(), &[]).await;
    let client = http_client();
    for i in 0..7 {
        let resp = client
            .post(gateway.url("/async-function/queued"))
            .body(format!("call {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    wait_until("queued scales up to 4 replicas", MINUTE, || async {
        replicas(&provider, "queued").await == 4
    })
    .await;
    provider.wait_available("queued", 4).await;

    // The backlog is gone (purged, as if workers had run it): back to min after the window.
    let js = async_nats::jetstream::new(nats.connect().await);
    let calls = js
        .get_stream(ferry_proto::jetstream::CALLS_STREAM)
        .await
        .unwrap();
    calls.purge().await.unwrap();
    wait_until("queued scales back down to 1", MINUTE, || async {
        replicas(&provider, "queued").await == 1
    })
    .await;
    stop_watch.store(true, Ordering::Relaxed);
    assert_eq!(highest.load(Ordering::Relaxed), 4, "never above max");
    gateway.stop().await;
}
