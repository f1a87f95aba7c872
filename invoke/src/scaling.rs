//! Scaling from zero: a call (sync through the gateway, or async from the queue-worker) to a
//! function without a ready replica is held until one is ready, the function being scaled up
//! first when it has zero desired replicas (`scale_from_zero`, on by default; OpenFaaS's
//! `handlers/scaling.go`, without its known faults).
//!
//! Nothing here runs on the hot path: a call comes here only after the endpoint cache said
//! "no ready replica" ([`InvokeError::NoReadyReplica`]).
//!
//! **One episode per function.** However many calls wait for the same function (`name` and
//! `name.namespace` being the same one), one task, the *episode*, does the work and they all
//! share its outcome; calls arriving meanwhile join it. The episode:
//!
//! 1. asks the provider for the function's replicas (`GET /system/endpoints/{name}`): a ready
//!    one ends the episode at once; an unknown function ends every waiting call with `404`;
//! 2. if the desired count is 0, reads `com.openfaas.scale.min` (`GET /system/function/{name}`)
//!    and asks for `max(min, 1)` replicas (`POST /system/scale-function/{name}`) — once per
//!    episode; the provider's scale is idempotent, so gateways racing each other do no harm.
//!    It logs `scale from zero: <fn> 0 => <n>`;
//! 3. as soon as the provider lists a replica's address (ready or not), probes that replica
//!    itself every [`PROBE_INTERVAL`] with the probe the provider uses (the listing says which:
//!    `GET /_/health` unless the function's annotations name another path; 200 or 429 meaning
//!    ready), rather than waiting for the provider's own probe and its cache — except for a
//!    function with an initial probe delay, whose replicas only the provider may declare ready;
//!    meanwhile it asks the provider again every [`LIST_INTERVAL`] while no address is
//!    listed, every [`RELIST_INTERVAL`] once some are (new replicas, a deleted function);
//! 4. when a replica answers ready, puts the list, with that replica ready, in the endpoint
//!    cache, logs `scale from zero: <fn> ready after <ms> ms`, and releases the calls, which
//!    then pick replicas as usual (least in flight).
//!
//! An episode gives up at the `scale_from_zero_timeout` of the call that started it; a call
//! that joined later and still has time left starts (or joins) another episode, so every
//! call waits its whole timeout and no longer. Past it: `503` saying the function did not
//! become ready in time, with what was last seen. An episode runs in its own task: calls
//! that give up (clients that leave) do not stop it for the others.
//!
//! A held call has not been sent anywhere, so its body, still unread, goes with it to the
//! replica whatever its size. The wait does not count toward `upstream_timeout`.
//!
//! Counted in [`crate::metrics::ScaleFromZero`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use ferry_proto::labels::SCALE_MIN;
use ferry_proto::{FunctionEndpoints, FunctionRef, Name};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::uri::{Authority, Scheme};
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt as _;
use tokio::time::Instant;

use crate::cache::Cached;
use crate::client::HttpClient;
use crate::endpoints::{Chosen, Endpoints, Replicas};
use crate::error::InvokeError;
use crate::metrics::ScaleFromZero;
use crate::provider::ProviderClient;

/// How often a listed replica's watchdog is asked whether it is ready.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// The longest one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the provider is asked for the replicas while it lists no address.
pub const LIST_INTERVAL: Duration = Duration::from_millis(25);
/// How often it is asked again while listed replicas are being probed.
pub const RELIST_INTERVAL: Duration = Duration::from_millis(500);
/// The pause after a provider call failed.
const PROVIDER_RETRY: Duration = Duration::from_millis(100);
/// The largest readiness answer read (to keep the connection for the call that follows).
const MAX_PROBE_BODY: usize = 4096;

/// Why an episode ended without a ready replica.
#[derive(Debug, Clone)]
enum Failure {
    /// The provider does not know the function.
    NotFound,
    /// The episode's time ran out; what was seen last.
    TimedOut(String),
}

type Outcome = Result<Arc<Cached<Replicas>>, Failure>;
type Episode = Shared<BoxFuture<'static, Outcome>>;

/// Holds calls until their function has a ready replica; cheap to clone.
#[derive(Clone)]
pub struct Scaler {
    inner: Arc<Inner>,
}

struct Inner {
    provider: ProviderClient,
    client: HttpClient,
    endpoints: Endpoints,
    timeout: Duration,
    metrics: Arc<ScaleFromZero>,
    episodes: Mutex<HashMap<FunctionRef, Episode>>,
}

impl Scaler {
    /// Calls wait at most `timeout` (`scale_from_zero_timeout`).
    pub fn new(
        provider: ProviderClient,
        client: HttpClient,
        endpoints: Endpoints,
        timeout: Duration,
        metrics: Arc<ScaleFromZero>,
    ) -> Scaler {
        Scaler {
            inner: Arc::new(Inner {
                provider,
                client,
                endpoints,
                timeout,
                metrics,
                episodes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Holds a call to `function` (as addressed in the URL) until a replica is ready,
    /// scaling the function up from zero if need be; then chooses a replica for it that it
    /// has not `tried` (`Ok(None)`: the ready ones were all tried). Unknown function → not
    /// found; no ready replica within `scale_from_zero_timeout` →
    /// [`InvokeError::NotReadyInTime`].
    pub async fn wait(
        &self,
        function: &str,
        tried: &[Authority],
    ) -> Result<Option<Chosen>, InvokeError> {
        let f = FunctionRef::parse(function, &Name::default_namespace())
            .map_err(|e| InvokeError::invalid_name(function, e))?;
        self.inner.metrics.held();
        let deadline = Instant::now() + self.inner.timeout;
        tracing::debug!(function, "no ready replica: holding the call");
        loop {
            match self.episode(function, &f, deadline).await {
                Ok(entry) => {
                    self.inner.endpoints.adopt(function, &entry);
                    return Ok(Endpoints::pick(entry, tried));
                }
                Err(Failure::NotFound) => {
                    return Err(InvokeError::FunctionNotFound(function.to_string()));
                }
                // The episode was started by an earlier call: this one has time left.
                Err(Failure::TimedOut(_)) if Instant::now() + PROBE_INTERVAL < deadline => {}
                Err(Failure::TimedOut(detail)) => {
                    return Err(InvokeError::NotReadyInTime {
                        function: function.to_string(),
                        timeout: self.inner.timeout,
                        detail,
                    });
                }
            }
        }
    }

    /// The running episode of `f`, or a new one ending at `deadline` whose list is cached
    /// under `key`.
    fn episode(&self, key: &str, f: &FunctionRef, deadline: Instant) -> Episode {
        let mut episodes = lock(&self.inner.episodes);
        if let Some(running) = episodes.get(f) {
            return running.clone();
        }
        let inner = self.inner.clone();
        let (key, function) = (key.to_string(), f.clone());
        let episode = async move {
            let outcome = run(&inner, &key, &function, deadline).await;
            lock(&inner.episodes).remove(&function);
            outcome
        }
        .boxed()
        .shared();
        episodes.insert(f.clone(), episode.clone());
        // Driven by its own task, so that calls giving up do not stop it for the others.
        tokio::spawn(episode.clone().map(drop));
        episode
    }
}

/// One episode (see the module docs).
async fn run(inner: &Inner, key: &str, f: &FunctionRef, deadline: Instant) -> Outcome {
    let started = Instant::now();
    let mut scaled = false;
    let mut problem: Option<String> = None;
    let mut listing: Option<FunctionEndpoints> = None;
    let mut addresses: Vec<Authority> = Vec::new();
    let mut probe_path = String::new();
    let mut next_list = started;
    loop {
        let now = Instant::now();
        if now >= deadline {
            let detail = describe(listing.as_ref(), &addresses, scaled, problem.as_deref());
            tracing::warn!(
                function = %f,
                "scale from zero: {f} not ready after {} ms ({detail})",
                started.elapsed().as_millis()
            );
            inner.metrics.timed_out();
            return Err(Failure::TimedOut(detail));
        }
        if now >= next_list {
            let Ok(answer) = tokio::time::timeout_at(deadline, inner.provider.endpoints(f)).await
            else {
                continue;
            };
            match answer {
                Ok(None) => return Err(Failure::NotFound),
                Err(reason) => {
                    problem = Some(reason);
                    next_list = now + PROVIDER_RETRY;
                }
                Ok(Some(e)) if e.endpoints.iter().any(|e| e.ready) => {
                    return Ok(ready(inner, key, f, e, &[], started));
                }
                Ok(Some(e)) => {
                    problem = None;
                    if e.replicas == 0 && !scaled {
                        match scale_up(inner, f, deadline).await {
                            Ok(ScaleUp::Requested) => {
                                scaled = true;
                                // The provider has started the replica: list it at once.
                                listing = Some(e);
                                continue;
                            }
                            Ok(ScaleUp::NotNeeded) => {
                                // Scaled up meanwhile by someone else: list it again soon.
                                next_list = Instant::now() + LIST_INTERVAL;
                                listing = Some(e);
                                continue;
                            }
                            Ok(ScaleUp::Gone) => return Err(Failure::NotFound),
                            Err(reason) => {
                                tracing::warn!(function = %f, %reason, "scale from zero failed; trying again");
                                problem = Some(reason);
                                next_list = Instant::now() + PROVIDER_RETRY;
                                listing = Some(e);
                                continue;
                            }
                        }
                    }
                    // Replicas within an initial delay are only ready when the provider says so.
                    let direct = e.probe.initial_delay_ms == 0;
                    addresses = e
                        .endpoints
                        .iter()
                        .filter(|_| direct)
                        .filter_map(|e| e.address.parse::<Authority>().ok())
                        .collect();
                    probe_path.clone_from(&e.probe.path);
                    let every = if addresses.is_empty() {
                        LIST_INTERVAL
                    } else {
                        RELIST_INTERVAL
                    };
                    next_list = Instant::now() + every;
                    listing = Some(e);
                }
            }
        }
        if !addresses.is_empty() {
            let seen = probe_all(&inner.client, &addresses, &probe_path, deadline).await;
            if !seen.is_empty() {
                if let Some(e) = listing.take() {
                    return Ok(ready(inner, key, f, e, &seen, started));
                }
            }
        }
        let wake = if addresses.is_empty() {
            next_list
        } else {
            next_list.min(Instant::now() + PROBE_INTERVAL)
        };
        tokio::time::sleep_until(wake.min(deadline)).await;
    }
}

/// What [`scale_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScaleUp {
    /// Asked the provider for replicas.
    Requested,
    /// The function has desired replicas by now (another gateway, an operator).
    NotNeeded,
    /// The function is gone.
    Gone,
}

/// Asks for `max(com.openfaas.scale.min, 1)` replicas, unless the function has some desired
/// replicas by now.
async fn scale_up(inner: &Inner, f: &FunctionRef, deadline: Instant) -> Result<ScaleUp, String> {
    let timed_out = || "the provider did not answer in time".to_string();
    let status = tokio::time::timeout_at(deadline, inner.provider.function(f))
        .await
        .map_err(|_| timed_out())??;
    let Some(status) = status else {
        return Ok(ScaleUp::Gone);
    };
    if status.replicas > 0 {
        return Ok(ScaleUp::NotNeeded);
    }
    let min = match status
        .labels
        .get(SCALE_MIN)
        .map(|v| v.trim().parse::<u64>())
    {
        Some(Ok(min)) => min,
        Some(Err(_)) => {
            tracing::warn!(function = %f, label = SCALE_MIN, "ignoring a label that is not a number");
            1
        }
        None => 1,
    };
    let replicas = min.max(1);
    let found = tokio::time::timeout_at(deadline, inner.provider.scale(f, replicas))
        .await
        .map_err(|_| timed_out())??;
    if !found {
        return Ok(ScaleUp::Gone);
    }
    tracing::info!(function = %f, replicas, "scale from zero: {f} 0 => {replicas}");
    inner.metrics.scaled_up();
    Ok(ScaleUp::Requested)
}

/// The episode's end: `e`, with the replicas at `seen` ready, cached under `key`.
fn ready(
    inner: &Inner,
    key: &str,
    f: &FunctionRef,
    e: FunctionEndpoints,
    seen: &[Authority],
    started: Instant,
) -> Arc<Cached<Replicas>> {
    let after = started.elapsed();
    tracing::info!(
        function = %f,
        ms = after.as_millis() as u64,
        "scale from zero: {f} ready after {} ms",
        after.as_millis()
    );
    inner.metrics.became_ready(after);
    inner.endpoints.install(key, f.clone(), e, seen)
}

/// The replicas among `addresses` that answer `GET <path>` with 200 or 429.
async fn probe_all(
    client: &HttpClient,
    addresses: &[Authority],
    path: &str,
    deadline: Instant,
) -> Vec<Authority> {
    let probes = addresses
        .iter()
        .map(|a| async move { probe(client, a, path, deadline).await.then(|| a.clone()) });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn probe(client: &HttpClient, address: &Authority, path: &str, deadline: Instant) -> bool {
    let Ok(uri) = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(address.clone())
        .path_and_query(path)
        .build()
    else {
        return false;
    };
    let Ok(request) = Request::get(uri).body(Body::empty()) else {
        return false;
    };
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let ready = matches!(
            response.status(),
            StatusCode::OK | StatusCode::TOO_MANY_REQUESTS
        );
        // Read the (tiny) body so that the connection goes back to the pool, for the call.
        http_body_util::Limited::new(response.into_body(), MAX_PROBE_BODY)
            .collect()
            .await
            .ok()?;
        Some(ready)
    };
    let until = deadline.min(Instant::now() + PROBE_TIMEOUT);
    matches!(
        tokio::time::timeout_at(until, exchange).await,
        Ok(Some(true))
    )
}

/// What an episode saw last, for the timeout's message.
fn describe(
    listing: Option<&FunctionEndpoints>,
    addresses: &[Authority],
    scaled: bool,
    problem: Option<&str>,
) -> String {
    let mut out = match listing {
        Some(e) => format!(
            "{} desired replica{}, {} running, none ready",
            e.replicas,
            if e.replicas == 1 { "" } else { "s" },
            addresses.len()
        ),
        None => "no answer from the provider".to_string(),
    };
    if scaled {
        out.push_str("; scaled up from zero");
    }
    if let Some(problem) = problem {
        out.push_str("; last provider error: ");
        out.push_str(problem);
    }
    out
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::metrics::ScaleFromZeroSnapshot;
    use crate::provider::ProviderUrl;
    use crate::test_support::{COLD, Cold};

    fn scaler(cold: &Cold, timeout: Duration) -> (Scaler, Arc<ScaleFromZero>) {
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
        let metrics = Arc::new(ScaleFromZero::new(&prometheus::Registry::new(), "test"));
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
                let result = scaler.wait(name, &[]).await;
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
            async move { scaler.wait(COLD, &[]).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let late = scaler.wait(COLD, &[]).await;
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
        let result = scaler.wait("other", &[]).await;
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
}
