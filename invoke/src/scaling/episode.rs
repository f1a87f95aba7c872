//! One scale-from-zero episode: list the function's replicas, scale it up from zero once,
//! probe the listed replicas until one is ready, and cache the list with it (see the parent
//! module's docs for the steps).

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::{FunctionEndpoints, FunctionRef, Wake};
use http::uri::Authority;
use tokio::time::Instant;

use super::probe::probe_all;
use super::{
    Failure, Inner, LIST_INTERVAL, Outcome, PROBE_INTERVAL, PROVIDER_RETRY, RELIST_INTERVAL,
};
use crate::cache::Cached;
use crate::endpoints::Replicas;
use crate::provider::{ProviderCallError, ScaleAnswer};

/// What one episode has seen so far.
struct Seen {
    started: Instant,
    /// Whether it asked the provider for replicas.
    scaled: bool,
    /// How the function came back, when this episode's request brought it back.
    wake: Option<Wake>,
    /// Time spent listing the replicas, and in the scale request.
    listing_time: Duration,
    scale_time: Duration,
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

/// One episode (see the module docs); `at_zero`: the call's cached list said the function has
/// no desired replica, so it is scaled up before anything is listed.
pub(super) async fn run(
    inner: &Inner,
    key: &str,
    f: &FunctionRef,
    deadline: Instant,
    at_zero: bool,
) -> Outcome {
    let started = Instant::now();
    let mut seen = Seen {
        started,
        scaled: false,
        wake: None,
        listing_time: Duration::ZERO,
        scale_time: Duration::ZERO,
        problem: None,
        listing: None,
        addresses: Vec::new(),
        probe_path: String::new(),
        next_list: started,
    };
    if at_zero {
        if let Step::Done(outcome) = seen.scale(inner, f, None, deadline).await {
            return outcome;
        }
    }
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
                    return Ok(ready(inner, key, f, e, &up, &seen));
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
        let asked = Instant::now();
        let answer = tokio::time::timeout_at(deadline, inner.provider.endpoints(f)).await;
        self.listing_time += asked.elapsed();
        let Ok(answer) = answer else {
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
                Step::Done(Ok(ready(inner, key, f, e, &[], self)))
            }
            Ok(Some(e)) => {
                self.problem = None;
                if e.replicas == 0 && !self.scaled {
                    return self.scale(inner, f, Some(e), deadline).await;
                }
                self.watch(e);
                Step::Probe
            }
        }
    }

    /// The function has no desired replica (`e`: as last listed): asks for some, once per
    /// episode, with `fromZero` (see [`scale_up`]). A thawed replica's address comes with the
    /// answer and is probed at once; otherwise the replicas are listed again at once.
    async fn scale(
        &mut self,
        inner: &Inner,
        f: &FunctionRef,
        e: Option<FunctionEndpoints>,
        deadline: Instant,
    ) -> Step {
        if e.is_some() {
            self.listing = e;
        }
        let asked = Instant::now();
        let answer = scale_up(inner, f, deadline).await;
        self.scale_time += asked.elapsed();
        match answer {
            Ok(Some(answer)) => {
                self.scaled = true;
                self.wake = answer.wake;
                self.problem = None;
                if let Some(thawed) = answer.endpoints {
                    self.watch(thawed);
                    return Step::Probe;
                }
                self.next_list = Instant::now();
            }
            Ok(None) => return Step::Done(Err(Failure::NotFound)),
            Err(reason) => {
                tracing::warn!(function = %f, %reason, "scale from zero failed; trying again");
                self.problem = Some(reason);
                self.next_list = Instant::now() + PROVIDER_RETRY;
            }
        }
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

/// Asks the provider to scale `f` up from zero (`fromZero`: only if it is still at zero,
/// to `max(com.openfaas.scale.min, 1)`); `None` when the function is gone.
async fn scale_up(
    inner: &Inner,
    f: &FunctionRef,
    deadline: Instant,
) -> Result<Option<ScaleAnswer>, Problem> {
    let answer = tokio::time::timeout_at(deadline, inner.provider.scale_from_zero(f))
        .await
        .map_err(|_| Problem::Late)??;
    if let Some(ScaleAnswer {
        wake: Some(wake), ..
    }) = &answer
    {
        tracing::info!(function = %f, tier = wake.as_str(), "scale from zero: {f} 0 => 1+ ({})", wake.as_str());
        inner.metrics.scaled_up();
    }
    Ok(answer)
}

/// The episode's end: `e`, with the replicas at `seen` ready, cached under `key`.
fn ready(
    inner: &Inner,
    key: &str,
    f: &FunctionRef,
    e: FunctionEndpoints,
    up: &[Authority],
    seen: &Seen,
) -> Arc<Cached<Replicas>> {
    let after = seen.started.elapsed();
    let tier = seen.wake.map_or("unknown", Wake::as_str);
    tracing::info!(
        function = %f,
        ms = after.as_millis() as u64,
        tier,
        "scale from zero: {f} ready after {} ms",
        after.as_millis()
    );
    let probe = after.saturating_sub(seen.listing_time + seen.scale_time);
    let steps = [
        ("list", seen.listing_time),
        ("scale", seen.scale_time),
        ("probe", probe),
    ];
    inner.metrics.became_ready(after, tier, &steps);
    inner.endpoints.install(key, f.clone(), e, up)
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
