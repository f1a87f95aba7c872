//! One scale-from-zero episode: list the function's replicas, scale it up from zero once,
//! probe the listed replicas until one is ready, and cache the list with it (see the parent
//! module's docs for the steps).

use std::sync::Arc;

use ferry_proto::labels::SCALE_MIN;
use ferry_proto::{FunctionEndpoints, FunctionRef};
use http::uri::Authority;
use tokio::time::Instant;

use super::probe::probe_all;
use super::{
    Failure, Inner, LIST_INTERVAL, Outcome, PROBE_INTERVAL, PROVIDER_RETRY, RELIST_INTERVAL,
};
use crate::cache::Cached;
use crate::endpoints::Replicas;
use crate::provider::ProviderCallError;

/// What one episode has seen so far.
struct Seen {
    started: Instant,
    /// Whether it asked the provider for replicas.
    scaled: bool,
    /// The provider's last error, while it fails.
    problem: Option<Problem>,
    /// The provider's last listing.
    listing: Option<FunctionEndpoints>,
    /// Listed replicas to probe.
    addresses: Vec<Authority>,
    probe_path: String,
    /// When the provider is asked again.
    next_list: Instant,
}

/// What asking the provider led to.
enum Step {
    /// The episode is over.
    Done(Outcome),
    /// Start the loop over (list again at once, or notice the deadline).
    Again,
    /// Probe what is listed, then sleep.
    Probe,
}

/// One episode (see the module docs).
pub(super) async fn run(inner: &Inner, key: &str, f: &FunctionRef, deadline: Instant) -> Outcome {
    let started = Instant::now();
    let mut seen = Seen {
        started,
        scaled: false,
        problem: None,
        listing: None,
        addresses: Vec::new(),
        probe_path: String::new(),
        next_list: started,
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(seen.timed_out(inner, f));
        }
        if now >= seen.next_list {
            match seen.list(inner, key, f, now, deadline).await {
                Step::Done(outcome) => return outcome,
                Step::Again => continue,
                Step::Probe => {}
            }
        }
        if !seen.addresses.is_empty() {
            let up = probe_all(&inner.client, &seen.addresses, &seen.probe_path, deadline).await;
            if !up.is_empty() {
                if let Some(e) = seen.listing.take() {
                    return Ok(ready(inner, key, f, e, &up, started));
                }
            }
        }
        let wake = if seen.addresses.is_empty() {
            seen.next_list
        } else {
            seen.next_list.min(Instant::now() + PROBE_INTERVAL)
        };
        tokio::time::sleep_until(wake.min(deadline)).await;
    }
}

impl Seen {
    /// The episode's time ran out: logged, counted, and what was seen last.
    fn timed_out(&self, inner: &Inner, f: &FunctionRef) -> Failure {
        let problem = self.problem.as_ref().map(ToString::to_string);
        let detail = describe(
            self.listing.as_ref(),
            &self.addresses,
            self.scaled,
            problem.as_deref(),
        );
        tracing::warn!(
            function = %f,
            "scale from zero: {f} not ready after {} ms ({detail})",
            self.started.elapsed().as_millis()
        );
        inner.metrics.timed_out();
        Failure::TimedOut(detail)
    }

    /// Asks the provider for the replicas and acts on the answer.
    async fn list(
        &mut self,
        inner: &Inner,
        key: &str,
        f: &FunctionRef,
        now: Instant,
        deadline: Instant,
    ) -> Step {
        let Ok(answer) = tokio::time::timeout_at(deadline, inner.provider.endpoints(f)).await
        else {
            return Step::Again;
        };
        match answer {
            Ok(None) => Step::Done(Err(Failure::NotFound)),
            Err(reason) => {
                self.problem = Some(Problem::Provider(reason));
                self.next_list = now + PROVIDER_RETRY;
                Step::Probe
            }
            Ok(Some(e)) if e.endpoints.iter().any(|e| e.ready) => {
                Step::Done(Ok(ready(inner, key, f, e, &[], self.started)))
            }
            Ok(Some(e)) => {
                self.problem = None;
                if e.replicas == 0 && !self.scaled {
                    return self.scale(inner, f, e, deadline).await;
                }
                self.watch(e);
                Step::Probe
            }
        }
    }

    /// The function has no desired replica: asks for some (once per episode).
    async fn scale(
        &mut self,
        inner: &Inner,
        f: &FunctionRef,
        e: FunctionEndpoints,
        deadline: Instant,
    ) -> Step {
        match scale_up(inner, f, deadline).await {
            // The provider has started the replica: list it at once.
            Ok(ScaleUp::Requested) => self.scaled = true,
            // Scaled up meanwhile by someone else: list it again soon.
            Ok(ScaleUp::NotNeeded) => self.next_list = Instant::now() + LIST_INTERVAL,
            Ok(ScaleUp::Gone) => return Step::Done(Err(Failure::NotFound)),
            Err(reason) => {
                tracing::warn!(function = %f, %reason, "scale from zero failed; trying again");
                self.problem = Some(reason);
                self.next_list = Instant::now() + PROVIDER_RETRY;
            }
        }
        self.listing = Some(e);
        Step::Again
    }

    /// Probes the replicas `e` lists (unless they are within an initial delay) and lists
    /// again later.
    fn watch(&mut self, e: FunctionEndpoints) {
        // Replicas within an initial delay are only ready when the provider says so.
        let direct = e.probe.initial_delay_ms == 0;
        self.addresses = e
            .endpoints
            .iter()
            .filter(|_| direct)
            .filter_map(|e| e.address.parse::<Authority>().ok())
            .collect();
        self.probe_path.clone_from(&e.probe.path);
        let every = if self.addresses.is_empty() {
            LIST_INTERVAL
        } else {
            RELIST_INTERVAL
        };
        self.next_list = Instant::now() + every;
        self.listing = Some(e);
    }
}

/// Why asking the provider failed during an episode.
#[derive(Debug, Clone, thiserror::Error)]
enum Problem {
    /// The provider could not be asked, or answered something unusable.
    #[error(transparent)]
    Provider(#[from] ProviderCallError),
    /// No answer before the episode's deadline.
    #[error("the provider did not answer in time")]
    Late,
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
async fn scale_up(inner: &Inner, f: &FunctionRef, deadline: Instant) -> Result<ScaleUp, Problem> {
    let status = tokio::time::timeout_at(deadline, inner.provider.function(f))
        .await
        .map_err(|_| Problem::Late)??;
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
        .map_err(|_| Problem::Late)??;
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

/// What an episode saw last, for the timeout's message.
pub(super) fn describe(
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
