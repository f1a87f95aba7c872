//! ferry on a NATS cluster, losing a NATS server and a gateway under load.
//!
//! Real processes on loopback: three `nats-server`s clustered with JetStream
//! ([`NatsCluster`]), the Docker provider (in-process, its function containers labelled for
//! this test), two `gateway` and three `queue-worker` processes given all three NATS URLs and
//! `nats_replicas=3`. While async calls of a function that sleeps 1.5 s are submitted and
//! running, and sync calls are made, the NATS server leading the calls stream is killed
//! (SIGKILL) and so is one gateway. Clients do what a client behind a load balancer does: a
//! failed attempt goes to the other gateway, an async submission with the same `X-Call-Id`.
//!
//! Checked: no submission is answered with anything but `202` (the surviving gateway holds a
//! submission while JetStream elects new leaders, within its `publish_timeout`: 15 s by
//! default with `nats_replicas=3`); every call answered `202` reaches a final state (by its
//! status and its callback): none is lost; sync calls keep succeeding through the surviving
//! gateway; the streams and buckets have three replicas, the status bucket too although it
//! was created with one before the services started (as a stack grown from one NATS server
//! finds it). Reported: the slowest accepted submission, and how many calls the function saw
//! more than once (at-least-once delivery: a worker whose acknowledgement was lost with the
//! server runs a call again).
//!
//! The compose file of the same shape (`compose.cluster.yaml`, `make up-cluster`) is started in
//! `cluster_compose.rs`.

// A test reads as one scenario; the 80-line limit is for the code under test.
#![allow(clippy::too_many_lines)]

#[path = "cluster/load.rs"]
mod load;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_tests::callback::CallbackReceiver;
use ferry_tests::nats_cluster::NatsCluster;
use ferry_tests::platform::FAST_RETRIES;
use ferry_tests::process::ServiceProcess;
use ferry_tests::provider::TestProvider;
use ferry_tests::{DockerGuard, FunctionImage, free_port, http_client, wait_until, worker};
use serde_json::{Value, json};

use load::Seen;

const MINUTE: Duration = Duration::from_secs(60);
/// Async calls submitted, one every [`EVERY`].
const CALLS: usize = 60;
const EVERY: Duration = Duration::from_millis(100);
/// How long each call runs in the function.
const SLEEP_MS: u64 = 1500;
/// Final states of a call.
const FINAL: [&str; 7] = [
    "succeeded",
    "failed",
    "timed_out",
    "dead_lettered",
    "callback_failed",
    "expired",
    "cancelled",
];

/// A `gateway` process on a free port; its URL.
async fn gateway(provider: &str, nats: &str) -> (ServiceProcess, String) {
    let port = free_port();
    let env = vec![
        ("port", port.to_string()),
        ("bind", "127.0.0.1".to_string()),
        ("functions_provider_url", provider.to_string()),
        ("nats_url", nats.to_string()),
        // publish_timeout is left at its default with replicas (15 s): above nats-server's
        // election timeout, so submissions are held, not refused, while leaders change.
        ("nats_replicas", "3".to_string()),
    ];
    let process = ServiceProcess::start_logged_async("ferry-gateway", "gateway", env, "info").await;
    let url = format!("http://127.0.0.1:{port}");
    let health = format!("{url}/healthz");
    wait_until("the gateway is healthy", MINUTE, || async {
        http_client()
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    (process, url)
}

/// The index of the server that leads the calls stream (the one worth killing).
async fn calls_stream_leader(cluster: &NatsCluster) -> usize {
    let deadline = Instant::now() + MINUTE;
    loop {
        if let Some((3, leader)) = cluster.stream_replicas(0, "ferry-calls").await {
            if let Some(n) = leader.strip_prefix('n').and_then(|n| n.parse().ok()) {
                return n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ferry-calls has no leader on three replicas"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The call's state, through `gateway` (empty when it cannot be read).
async fn state(gateway: &str, id: &str) -> String {
    let url = format!("{gateway}/system/async-calls/{id}");
    match http_client().get(url).send().await {
        Ok(r) if r.status() == 200 => r.json::<Value>().await.unwrap_or_default()["state"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_survive_losing_a_nats_server_and_a_gateway() {
    let guard = DockerGuard::new().await;
    let image = FunctionImage::echo_http(&guard).await;
    let mut cluster = NatsCluster::start().await;
    let nats = cluster.url();
    let provider = TestProvider::start(&guard).await;
    let deployment = json!({"service": "echo", "image": image.tag}).to_string();
    let (code, body) = provider
        .call("POST", "/system/functions", Some(&deployment))
        .await;
    assert_eq!(code, 202, "{body}");
    provider.wait_available("echo", 1).await;

    // A status bucket left by a one-server stack: the gateways bring it to three replicas.
    let js = async_nats::jetstream::new(
        async_nats::connect(cluster.servers[0].url())
            .await
            .expect("connecting to the cluster"),
    );
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "ferry-call-status".to_string(),
        history: 1,
        max_age: Duration::from_secs(24 * 3600),
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .expect("creating a one-replica status bucket");

    let receiver = CallbackReceiver::start().await;
    let mut gateways = [
        gateway(&provider.url(""), &nats).await,
        gateway(&provider.url(""), &nats).await,
    ];
    let mut env: Vec<(&str, &str)> = FAST_RETRIES.to_vec();
    env.extend([("nats_replicas", "3"), ("max_inflight", "32")]);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(worker::start_process(&nats, &provider.url(""), &env).await);
    }
    for name in ["ferry-calls", "ferry-dead-letters", "KV_ferry-call-status"] {
        wait_until(&format!("{name} has three replicas"), MINUTE, || async {
            matches!(cluster.stream_replicas(0, name).await, Some((3, _)))
        })
        .await;
    }
    let victim = calls_stream_leader(&cluster).await;

    let urls: Vec<String> = gateways.iter().map(|(_, u)| u.clone()).collect();
    let seen = Arc::new(Seen::default());
    let submitter = tokio::spawn(load::submit(
        urls.clone(),
        receiver.url("/done"),
        CALLS,
        EVERY,
        SLEEP_MS,
        seen.clone(),
    ));
    let syncer = tokio::spawn(load::sync_calls(urls.clone(), seen.clone()));

    // A third of the calls in, some of them running: kill the calls stream's leader and the
    // first gateway.
    wait_until("a third of the calls are accepted", MINUTE, || async {
        seen.accepted.lock().unwrap().len() >= CALLS / 3
    })
    .await;
    let killed_at = Instant::now();
    cluster.servers[victim].kill();
    gateways[0].0.kill();
    eprintln!("cluster test: killed nats server n{victim} and gateway 0");

    submitter.await.expect("the submitter panicked");
    let survivor = urls[1].clone();
    let accepted = seen.accepted.lock().unwrap().clone();
    let mut states = HashMap::new();
    let final_wait = Instant::now();
    let deadline = final_wait + 2 * MINUTE;
    loop {
        for id in &accepted {
            if !states
                .get(id)
                .is_some_and(|s: &String| FINAL.contains(&s.as_str()))
            {
                states.insert(id.clone(), state(&survivor, id).await);
            }
        }
        if states.values().all(|s| FINAL.contains(&s.as_str())) {
            break;
        }
        let open: Vec<_> = states
            .iter()
            .filter(|(_, s)| !FINAL.contains(&s.as_str()))
            .collect();
        assert!(
            Instant::now() < deadline,
            "calls not final after 2 minutes: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "cluster test: every call final {:.1?} after the last submission",
        final_wait.elapsed()
    );
    wait_until("every accepted call has called back", MINUTE, || async {
        let received = receiver.received();
        accepted
            .iter()
            .all(|id| received.iter().any(|r| r.header("x-call-id") == id))
    })
    .await;
    seen.stop.store(true, Ordering::Relaxed);
    syncer.await.expect("the sync caller panicked");

    report(&seen, &states, &receiver, &survivor, killed_at).await;
    let answered_not_202 = seen.submit_failures_at.lock().unwrap().len();
    assert_eq!(
        answered_not_202, 0,
        "a gateway answered a submission with something else than 202 while a NATS server was lost"
    );
    let refused = seen.refused.lock().unwrap().clone();
    assert!(
        refused.is_empty(),
        "never accepted within 30 s: {refused:?}"
    );
    assert_eq!(accepted.len(), CALLS);
    let not_succeeded: Vec<_> = states.iter().filter(|(_, s)| *s != "succeeded").collect();
    assert!(not_succeeded.is_empty(), "{not_succeeded:?}");
    let sync_failed = seen.sync_failed.lock().unwrap().clone();
    assert!(sync_failed.is_empty(), "sync calls failed: {sync_failed:?}");
    assert!(seen.sync_ok.load(Ordering::Relaxed) > 0);
    drop(workers);
}

/// Prints the figures: the failover window, duplicates (invocations and callbacks), sync calls.
async fn report(
    seen: &Seen,
    states: &HashMap<String, String>,
    receiver: &CallbackReceiver,
    gateway: &str,
    killed_at: Instant,
) {
    let failures = seen.submit_failures_at.lock().unwrap().clone();
    let window = failures
        .iter()
        .filter(|t| **t >= killed_at)
        .map(|t| t.duration_since(killed_at))
        .max();
    let stats: Value = http_client()
        .get(format!("{gateway}/function/echo/_/stats"))
        .send()
        .await
        .expect("GET /_/stats")
        .json()
        .await
        .expect("stats JSON");
    let invoked_twice = states
        .keys()
        .filter(|id| {
            stats["calls"][id.as_str()]
                .as_array()
                .is_some_and(|a| a.len() > 1)
        })
        .count();
    let mut callbacks: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *callbacks
            .entry(r.header("x-call-id").to_string())
            .or_default() += 1;
    }
    let called_back_twice = callbacks.values().filter(|n| **n > 1).count();
    eprintln!(
        "cluster test: {} calls accepted, {} final; submission attempts retried: {} \
         (last non-202 answer {window:?} after the kill; slowest 202 {:.1?}); calls invoked \
         more than once: {invoked_twice}; calls called back more than once: \
         {called_back_twice}; sync calls ok: {}, retried on the other gateway: {}",
        seen.accepted.lock().unwrap().len(),
        states.len(),
        seen.submit_retries.load(Ordering::Relaxed),
        *seen.slowest_accept.lock().unwrap(),
        seen.sync_ok.load(Ordering::Relaxed),
        seen.sync_retries.load(Ordering::Relaxed),
    );
}
