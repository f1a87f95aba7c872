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
//!    one ends the episode at once; an unknown function ends every waiting call with `404`
//!    — unless the list the call saw had zero desired replicas, when step 2 comes first;
//! 2. if the desired count is 0, asks for replicas with ferry's conditional scale
//!    (`POST /system/scale-function/{name}` with `"fromZero": true`: the provider scales only
//!    a function still at zero, to `max(com.openfaas.scale.min, 1)`, so gateways racing each
//!    other or an operator's scale are never undone) — once per episode. The answer says how
//!    the function came back (`X-Ferry-Wake`: `frozen`, `stopped`, `new`, `warm`; the `tier`
//!    of the cold-start metrics) and, for a thawed replica, where it listens, which is then
//!    probed at once without listing. It logs `scale from zero: <fn> 0 => 1+ (<tier>)`;
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

mod episode;
mod probe;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_proto::{FunctionRef, Name};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::uri::Authority;
use tokio::time::Instant;

use crate::cache::Cached;
use crate::client::HttpClient;
use crate::endpoints::{Chosen, Endpoints, Replicas};
use crate::error::InvokeError;
use crate::metrics::ScaleFromZero;
use crate::provider::ProviderClient;

/// How often a listed replica's watchdog is asked whether it is ready.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How often the provider is asked for the replicas while it lists no address.
pub const LIST_INTERVAL: Duration = Duration::from_millis(25);
/// How often it is asked again while listed replicas are being probed.
pub const RELIST_INTERVAL: Duration = Duration::from_millis(500);
/// The pause after a provider call failed.
const PROVIDER_RETRY: Duration = Duration::from_millis(100);

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
    /// [`InvokeError::NotReadyInTime`]. `at_zero`: the list the call saw had no desired
    /// replica (the episode then asks for one before listing).
    pub async fn wait(
        &self,
        function: &str,
        tried: &[Authority],
        at_zero: bool,
    ) -> Result<Option<Chosen>, InvokeError> {
        let f = FunctionRef::parse(function, &Name::default_namespace())
            .map_err(|e| InvokeError::invalid_name(function, e))?;
        self.inner.metrics.held();
        let deadline = Instant::now() + self.inner.timeout;
        tracing::debug!(function, "no ready replica: holding the call");
        loop {
            match self.episode(function, &f, deadline, at_zero).await {
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
    fn episode(&self, key: &str, f: &FunctionRef, deadline: Instant, at_zero: bool) -> Episode {
        let mut episodes = lock(&self.inner.episodes);
        if let Some(running) = episodes.get(f) {
            return running.clone();
        }
        let inner = self.inner.clone();
        let (key, function) = (key.to_string(), f.clone());
        let episode = async move {
            let outcome = episode::run(&inner, &key, &function, deadline, at_zero).await;
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

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}
