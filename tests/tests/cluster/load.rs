//! The load of the cluster test: async submissions and sync calls spread over the gateways,
//! each retried on the other gateway when one fails (as a client behind a load balancer sees
//! it), and the bookkeeping of what was accepted, when, and what failed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_tests::http_client;

/// How long one submission is retried (same call id) before it counts as not accepted.
const SUBMIT_PATIENCE: Duration = Duration::from_secs(30);

/// What the clients saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// Call ids answered `202`.
    pub(crate) accepted: Mutex<Vec<String>>,
    /// Call ids never answered `202` within [`SUBMIT_PATIENCE`].
    pub(crate) refused: Mutex<Vec<String>>,
    /// Submission attempts that failed (any gateway) and were retried.
    pub(crate) submit_retries: AtomicUsize,
    /// When each submission attempt answered by a gateway with something else than `202`
    /// (a `503` while JetStream fails over) happened; attempts at a killed gateway (refused
    /// connections) are not among them.
    pub(crate) submit_failures_at: Mutex<Vec<Instant>>,
    /// The longest a submission attempt answered `202` took (the gateway holding it while
    /// JetStream elects new leaders).
    pub(crate) slowest_accept: Mutex<Duration>,
    /// Sync calls answered 200 (after at most one retry on the other gateway).
    pub(crate) sync_ok: AtomicUsize,
    /// Sync calls that failed on both gateways, with what was seen.
    pub(crate) sync_failed: Mutex<Vec<String>>,
    /// Sync attempts that failed on the first gateway tried and were retried.
    pub(crate) sync_retries: AtomicUsize,
    /// Stops the sync caller.
    pub(crate) stop: AtomicBool,
}

/// Submits `n` async calls of `echo` that sleep `sleep_ms`, one every `every`, alternating
/// between `gateways`; a failed attempt is retried with the same `X-Call-Id` on the next
/// gateway until it is accepted or [`SUBMIT_PATIENCE`] ran out.
pub(crate) async fn submit(
    gateways: Vec<String>,
    callback: String,
    n: usize,
    every: Duration,
    sleep_ms: u64,
    seen: Arc<Seen>,
) {
    let client = http_client();
    let mut tasks = Vec::new();
    for i in 0..n {
        let id = format!("cluster-{}-{i:04}", std::process::id());
        let (gateways, callback, seen, client) = (
            gateways.clone(),
            callback.clone(),
            seen.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut g = i;
            while started.elapsed() < SUBMIT_PATIENCE {
                let url = format!("{}/async-function/echo", gateways[g % gateways.len()]);
                let attempt = Instant::now();
                let answer = client
                    .post(&url)
                    .header("x-call-id", &id)
                    .header("x-callback-url", &callback)
                    .header("x-echo-sleep-ms", sleep_ms.to_string())
                    // Above the gateway's publish_timeout (15 s with nats_replicas=3).
                    .timeout(Duration::from_secs(20))
                    .body(format!("call {i}"))
                    .send()
                    .await;
                match answer {
                    Ok(a) if a.status() == 202 => {
                        let took = attempt.elapsed();
                        let mut slowest = seen.slowest_accept.lock().unwrap();
                        *slowest = (*slowest).max(took);
                        drop(slowest);
                        seen.accepted.lock().unwrap().push(id);
                        return;
                    }
                    Ok(_) => seen.submit_failures_at.lock().unwrap().push(Instant::now()),
                    Err(_) => {}
                }
                seen.submit_retries.fetch_add(1, Ordering::Relaxed);
                g += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen.refused.lock().unwrap().push(id);
        }));
        tokio::time::sleep(every).await;
    }
    for task in tasks {
        task.await.expect("a submission task panicked");
    }
}

/// Calls `echo` synchronously, alternating between `gateways`, until `seen.stop`; a call that
/// fails on one gateway is retried once on the next.
pub(crate) async fn sync_calls(gateways: Vec<String>, seen: Arc<Seen>) {
    let client = http_client();
    let mut i = 0usize;
    while !seen.stop.load(Ordering::Relaxed) {
        let mut last = String::new();
        let mut ok = false;
        for attempt in 0..2 {
            let url = format!(
                "{}/function/echo/sync",
                gateways[(i + attempt) % gateways.len()]
            );
            match client
                .post(&url)
                .timeout(Duration::from_secs(10))
                .body("sync")
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    ok = true;
                    break;
                }
                Ok(r) => last = format!("{url}: {}", r.status()),
                Err(e) => last = format!("{url}: {e}"),
            }
            seen.sync_retries.fetch_add(1, Ordering::Relaxed);
        }
        if ok {
            seen.sync_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            seen.sync_failed.lock().unwrap().push(last);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
