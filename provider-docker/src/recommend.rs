//! The autoscaling and scale-to-zero decision for one function, from what its replicas
//! reported: pure bookkeeping, no I/O, so it is tested with made-up clocks.
//!
//! Each round the autoscaler hands [`FunctionLoad::observe`] the readings of the function's
//! ready replicas (or `None` for a replica whose metrics could not be read) and, for `queue`
//! functions, the backlog. Then:
//!
//! 1. **Load.** `rps`: the increase of each replica's `http_requests_total` since its previous
//!    reading, over the time between them, summed (a counter that went down was reset: its
//!    value is the increase); unknown on a replica's first reading. `inflight`: the sum of
//!    `http_requests_in_flight`. `queue`: the backlog.
//! 2. **Target rule.** Recommendation = `ceil(load / target)` within `[min, max]`. When a
//!    replica could not be read the summed load is only a lower bound: the recommendation may
//!    raise the replicas but never lower them. Above the current replicas, the
//!    recommendation is applied at once. Otherwise the function goes to the highest
//!    recommendation of the last stabilisation window (never above where it is), so a dip
//!    does not remove replicas that the next burst needs, and the count never flaps.
//! 3. **Alert rule** (OpenFaaS CE's, see [`crate::scaling`]): the `rps` load above
//!    [`ALERT_RPS`] for [`ALERT_FOR`] fires the alert: `step` replicas more at once, and again
//!    every [`ALERT_REPEAT`] while it fires, up to `max`. At or below [`ALERT_RPS`] for
//!    [`ALERT_RESOLVE`] (with every replica read) it resolves: back to `min`.
//! 4. **Zero.** With scale to zero on, a function with no activity for `zero-duration` goes
//!    to 0. Activity is any replica's counter going up, a request in flight, a backlog, a
//!    replica that could not be read (unknown is never taken for idle), or replicas that are
//!    all still starting. The idle clock restarts whenever the function comes back from zero
//!    or is scaled by hand.
//!
//! At zero nothing is measured; only a `queue` function with a backlog is brought back here
//! (to `max(min, 1)` or more). Calls bring the others back through the gateway.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::replica_metrics::Reading;
use crate::scaling::{LoadType, Rule, ScalePolicy};

/// Alert rule: the request rate above which the alert fires (OpenFaaS CE's rule,
/// `rate(gateway_function_invocation_total[10s]) > 5`).
pub const ALERT_RPS: f64 = 5.0;
/// Alert rule: how long the rate must stay above [`ALERT_RPS`] (the CE rule's `for: 5s`).
pub const ALERT_FOR: Duration = Duration::from_secs(5);
/// Alert rule: time between steps while the alert fires (CE's AlertManager `repeat_interval`).
pub const ALERT_REPEAT: Duration = Duration::from_secs(30);
/// Alert rule: how long the rate must stay at or below [`ALERT_RPS`] before the alert
/// resolves (CE's rate window and `group_interval`, 10 s each).
pub const ALERT_RESOLVE: Duration = Duration::from_secs(10);

/// What one round measured.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Each ready replica of the current generation: its id and its reading (`None`: it
    /// could not be read).
    pub replicas: Vec<(String, Option<Reading>)>,
    /// Running replicas of the current generation that are not ready (yet).
    pub unready: usize,
    /// The function's pending calls (`queue` functions, when they could be counted).
    pub queue: Option<u64>,
}

/// What to do with the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Leave it.
    Hold,
    /// Autoscale to this many replicas.
    Scale(u64),
    /// Idle for its `zero-duration`: scale to zero.
    Zero,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    requests: f64,
    at: Instant,
}

/// The alert rule's state.
#[derive(Debug, Clone, Copy, Default)]
struct Alert {
    /// Since when the rate has been above the threshold.
    above_since: Option<Instant>,
    /// Since when the rate has been at or below it, while firing.
    calm_since: Option<Instant>,
    /// Whether the alert fires.
    firing: bool,
    /// The last step up.
    last_step: Option<Instant>,
}

/// What the replicas' readings add up to.
#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Requests per second; `None` while a replica has no previous reading.
    rate: Option<f64>,
    in_flight: f64,
    /// Every ready replica could be read.
    complete: bool,
}

/// One function's autoscaling memory.
#[derive(Debug)]
pub struct FunctionLoad {
    samples: HashMap<String, Sample>,
    history: VecDeque<(Instant, u64)>,
    last_active: Instant,
    last_desired: u64,
    alert: Alert,
}

impl FunctionLoad {
    /// Memory of a function first seen at `now` with `desired` replicas. It counts as active
    /// now, so a restarted provider gives every function its whole `zero-duration` again.
    pub fn new(now: Instant, desired: u64) -> FunctionLoad {
        FunctionLoad {
            samples: HashMap::new(),
            history: VecDeque::new(),
            last_active: now,
            last_desired: desired,
            alert: Alert::default(),
        }
    }

    /// A scale made by hand (or by the gateway) to `replicas`: it holds for a stabilisation
    /// window before autoscaling may lower it, and restarts the idle clock.
    pub fn manual(&mut self, now: Instant, replicas: u64) {
        self.history.clear();
        self.history.push_back((now, replicas));
        self.last_active = now;
        self.last_desired = replicas;
    }

    /// Takes one round's observation of a function at `desired` replicas and decides.
    pub fn observe(
        &mut self,
        policy: &ScalePolicy,
        desired: u64,
        obs: &Observation,
        window: Duration,
        now: Instant,
    ) -> Decision {
        if desired > 0 && self.last_desired == 0 {
            // Back from zero: a fresh start.
            self.samples.clear();
            self.history.clear();
            self.alert = Alert::default();
            self.last_active = now;
        }
        self.last_desired = desired;
        let measured = self.measure(obs, now);
        if policy.zero
            && desired > 0
            && now.saturating_duration_since(self.last_active) >= policy.zero_duration
        {
            self.history.clear();
            return Decision::Zero;
        }
        if !policy.autoscale {
            return Decision::Hold;
        }
        match policy.rule {
            Rule::Alert { step } => self.alert(policy, step, desired, measured, now),
            Rule::Target => self.target(policy, desired, obs, measured, window, now),
        }
    }

    /// Reads the replicas' counters into a rate and the in-flight sum, and notes activity.
    fn measure(&mut self, obs: &Observation, now: Instant) -> Measured {
        let mut complete = true;
        // Replicas still starting with none ready: calls are waiting for them, not absent.
        let mut active =
            obs.queue.is_some_and(|q| q > 0) || (obs.replicas.is_empty() && obs.unready > 0);
        let mut rate = 0.0;
        let mut rate_known = true;
        let mut in_flight = 0.0;
        let mut samples = HashMap::new();
        for (id, reading) in &obs.replicas {
            let previous = self.samples.get(id).copied();
            let Some(r) = reading else {
                complete = false;
                if let Some(p) = previous {
                    samples.insert(id.clone(), p);
                }
                continue;
            };
            in_flight += r.in_flight;
            active |= r.in_flight > 0.0;
            match previous {
                Some(p) => {
                    let increase = if r.requests >= p.requests {
                        r.requests - p.requests
                    } else {
                        r.requests
                    };
                    active |= increase > 0.0;
                    let secs = now.saturating_duration_since(p.at).as_secs_f64();
                    if secs > 0.0 {
                        rate += increase / secs;
                    }
                }
                None => {
                    rate_known = false;
                    active |= r.requests > 0.0;
                }
            }
            let sample = Sample {
                requests: r.requests,
                at: now,
            };
            samples.insert(id.clone(), sample);
        }
        self.samples = samples;
        if active || !complete {
            self.last_active = now;
        }
        Measured {
            rate: rate_known.then_some(rate),
            in_flight,
            complete,
        }
    }

    /// The alert rule (see the module docs).
    fn alert(
        &mut self,
        policy: &ScalePolicy,
        step: u64,
        desired: u64,
        m: Measured,
        now: Instant,
    ) -> Decision {
        let (Some(rate), true) = (m.rate, desired > 0) else {
            return Decision::Hold;
        };
        let alert = &mut self.alert;
        if rate > ALERT_RPS {
            alert.calm_since = None;
            let since = *alert.above_since.get_or_insert(now);
            alert.firing |= now.saturating_duration_since(since) >= ALERT_FOR;
            let due = alert
                .last_step
                .is_none_or(|at| now.saturating_duration_since(at) >= ALERT_REPEAT);
            if !alert.firing || !due {
                return Decision::Hold;
            }
            alert.last_step = Some(now);
            let wanted = desired.saturating_add(step).min(policy.max);
            return if wanted > desired {
                Decision::Scale(wanted)
            } else {
                Decision::Hold
            };
        }
        alert.above_since = None;
        if !alert.firing || !m.complete {
            return Decision::Hold;
        }
        let calm = *alert.calm_since.get_or_insert(now);
        if now.saturating_duration_since(calm) < ALERT_RESOLVE {
            return Decision::Hold;
        }
        *alert = Alert::default();
        if desired > policy.min {
            Decision::Scale(policy.min)
        } else {
            Decision::Hold
        }
    }

    /// The target rule (see the module docs).
    fn target(
        &mut self,
        policy: &ScalePolicy,
        desired: u64,
        obs: &Observation,
        m: Measured,
        window: Duration,
        now: Instant,
    ) -> Decision {
        let load = match policy.load {
            LoadType::Rps => m.rate,
            LoadType::Inflight => Some(m.in_flight),
            LoadType::Queue => obs.queue.map(|q| q as f64),
        };
        let wanted = |load: f64| (load / policy.target).ceil() as u64;
        if desired == 0 {
            return match (policy.load, load) {
                (LoadType::Queue, Some(q)) if q > 0.0 => {
                    Decision::Scale(wanted(q).clamp(policy.min.max(1), policy.max.max(1)))
                }
                _ => Decision::Hold,
            };
        }
        let Some(load) = load else {
            return Decision::Hold;
        };
        let mut recommended = policy.clamp_auto(wanted(load));
        if !m.complete && policy.load != LoadType::Queue {
            recommended = recommended.max(desired);
        }
        self.history.push_back((now, recommended));
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window)
        {
            self.history.pop_front();
        }
        if recommended > desired {
            return Decision::Scale(recommended);
        }
        let floor = self
            .history
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(desired);
        match floor.min(desired) {
            n if n < desired => Decision::Scale(n),
            _ => Decision::Hold,
        }
    }
}

#[cfg(test)]
mod tests;
