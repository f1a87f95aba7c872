//! Parking: how a function at zero replicas keeps one container for its next start.
//!
//! Going to zero (idle, or a manual scale to 0), reconcile keeps one container of the current
//! generation — preferring a frozen one, then a running one — and removes the others. A
//! running one is frozen after a grace ([`crate::freeze`], the first idle tier) or, when the
//! function's tiers are `stop` only, stopped at once (the second tier, described here). Its
//! id is written to the function's desired state (`parked`) before it is stopped, so a
//! restarted provider keeps it rather than removing it as a stopped replica. The stop
//! (SIGTERM, the watchdog's drain, SIGKILL after `stop_timeout`) runs in the background, so
//! neither the scale call nor the function's lock waits for it. Coming back (0 → n), the
//! parked container is thawed (frozen), kept (still running) or started again (stopped)
//! before any other is created, and `parked` is cleared once it runs — unless it is still
//! stopping (a call right after the function went idle): waiting for its drain could take up
//! to `stop_timeout`, so it is removed and a new container created instead. An update (a new
//! generation) discards it with the other old containers.
//!
//! After any start from zero a task probes the new containers' `/_/ready` every
//! [`COLD_START_PROBE`] and records the first success as a cold start: from the scale-up
//! decision to that probe, in `provider_cold_start_seconds` and `provider_cold_starts_total`.
//! The result also goes into the readiness cache, so the function shows as available at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::{FunctionRef, Wake};

use crate::docker::Replica;
use crate::error::ProviderError;
use crate::freeze::Freezing;
use crate::parts::Parts;
use crate::scaling::ScalePolicy;
use crate::store::{Desired, Frozen};

/// How often a replica starting from zero is probed.
pub const COLD_START_PROBE: Duration = Duration::from_millis(10);

/// Parked containers still being stopped.
#[derive(Debug, Default, Clone)]
pub struct Stopping(Arc<Mutex<HashSet<String>>>);

/// Containers a reconcile started, and how the function came back from zero.
#[derive(Debug, Default)]
pub struct Started {
    /// The parked container, started, thawed or kept running.
    pub parked: Option<String>,
    /// Containers created.
    pub created: Vec<String>,
    /// How the parked container came back (`None`: there was none to bring back).
    pub wake: Option<Wake>,
}

impl Started {
    /// How the function came back: the parked container's way, else `new` when containers
    /// were created.
    pub fn wake(&self) -> Option<Wake> {
        self.wake
            .or_else(|| (!self.created.is_empty()).then_some(Wake::New))
    }
}

/// The parking part of reconcile: at zero, keeps one container of the current generation
/// (and takes it out of `replicas`, so it is not removed), frozen or stopped per the
/// function's tiers; above zero, brings the parked container back (which then counts as a
/// running replica). The caller holds `f`'s lock.
pub(crate) async fn handle(
    parts: &Arc<Parts>,
    keepers: &Keepers,
    f: &FunctionRef,
    want: &Desired,
    mut replicas: Vec<Replica>,
) -> Result<(Started, Vec<Replica>), ProviderError> {
    let current = |r: &Replica| r.generation == want.generation;
    let recorded = want
        .parked
        .as_ref()
        .and_then(|id| replicas.iter().position(|r| &r.id == id && current(r)));
    if want.replicas > 0 {
        let mut started = Started::default();
        if want.parked.is_some() {
            if let Some(r) = recorded.map(|i| &mut replicas[i]) {
                started.wake = bring_back(parts, &keepers.stopping, f, r).await;
                started.parked = started.wake.map(|_| r.id.clone());
            }
            set_parked(parts, f, want, None)?;
        }
        return Ok((started, replicas));
    }

    // At zero: the recorded one, else a frozen one, else a running one, else a stopped one
    // (oldest first).
    let keep = recorded.or_else(|| {
        let mut candidates: Vec<(usize, &Replica)> = replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| current(r))
            .collect();
        candidates.sort_by_key(|(_, r)| (!r.paused, !r.running, r.created));
        candidates.first().map(|(i, _)| *i)
    });
    let Some(i) = keep else {
        if want.parked.is_some() {
            tracing::info!(function = %f, "the parked replica is gone; the next start creates one");
            set_parked(parts, f, want, None)?;
        }
        return Ok((Started::default(), replicas));
    };
    let r = replicas.remove(i);
    // Recorded frozen exactly when it is paused (it may have been paused or thawed behind
    // the provider's back, or before a crash).
    let frozen = match (r.paused, &want.frozen) {
        (true, Some(frozen)) => Some(frozen.clone()),
        (true, None) => Some(Frozen {
            since: crate::freeze::unix_now(),
            address: r.address.clone(),
        }),
        (false, _) => None,
    };
    if want.parked.as_deref() != Some(r.id.as_str()) || want.frozen != frozen {
        let mut d = want.clone();
        d.parked = Some(r.id.clone());
        d.frozen = frozen;
        parts.store.put(f, d)?;
    }
    if r.running {
        if ScalePolicy::of(f, &want.deployment).tiers.freeze {
            keepers.freezing.freeze_after_grace(parts, f, r.id);
        } else {
            keepers.stopping.stop_in_background(parts, f, r.id);
        }
    }
    Ok((Started::default(), replicas))
}

/// What keeps a function's container at zero: the stops and the freezes under way.
#[derive(Debug, Clone)]
pub struct Keepers {
    /// Parked containers being stopped.
    pub stopping: Stopping,
    /// Containers waiting to be frozen.
    pub freezing: Freezing,
}

/// Brings the parked container `r` back: thawed if frozen, kept if still running, started if
/// stopped. `None` (and `r` marked stopped, so reconcile removes it and creates another) when
/// it is still stopping or cannot be brought back.
async fn bring_back(
    parts: &Parts,
    stopping: &Stopping,
    f: &FunctionRef,
    r: &mut Replica,
) -> Option<Wake> {
    if stopping.contains(&r.id) {
        tracing::info!(function = %f, container = %r.id,
            "the parked replica is still stopping; creating a new one instead");
        // Counted as stopped: removed below, once its stop is done.
        r.running = false;
        return None;
    }
    let (wake, result) = if r.paused {
        (Wake::Frozen, parts.engine.unpause(&r.id).await)
    } else if r.running {
        // Going to zero, not yet frozen: started anyway, the listing may be outdated.
        (Wake::Warm, parts.engine.start_existing(&r.id).await)
    } else {
        (Wake::Stopped, parts.engine.start_existing(&r.id).await)
    };
    match result {
        Ok(()) => {
            tracing::info!(function = %f, container = %r.id, tier = wake.as_str(), "brought the parked replica back");
            parts.prober.forget(&r.id);
            r.running = true;
            if wake == Wake::Stopped {
                // A new start may publish new ports: the next listing says.
                r.address = None;
                r.metrics_address = None;
            }
            r.paused = false;
            Some(wake)
        }
        // Left stopped, it is removed below and a new one created.
        Err(e) => {
            tracing::warn!(function = %f, container = %r.id, error = %e, "cannot bring the parked replica back; creating a new one");
            r.running = false;
            r.paused = false;
            None
        }
    }
}

impl Stopping {
    /// Stops the container `id` in the background and keeps it (once per stop).
    pub(crate) fn stop_in_background(&self, parts: &Arc<Parts>, f: &FunctionRef, id: String) {
        if !self
            .0
            .lock()
            .expect("stopping set poisoned")
            .insert(id.clone())
        {
            return;
        }
        tracing::info!(function = %f, container = %id, "parking a replica: stopping it and keeping it for the next start");
        parts.prober.forget(&id);
        let (this, parts, f) = (self.clone(), Arc::clone(parts), f.clone());
        tokio::spawn(async move {
            if let Err(e) = parts.engine.stop(&id).await {
                tracing::warn!(function = %f, container = %id, error = %e, "stopping the parked replica failed");
            }
            parts.prober.forget(&id);
            this.0.lock().expect("stopping set poisoned").remove(&id);
        });
    }

    /// Whether the container `id` is being stopped for parking.
    fn contains(&self, id: &str) -> bool {
        self.0.lock().expect("stopping set poisoned").contains(id)
    }
}

fn set_parked(
    parts: &Parts,
    f: &FunctionRef,
    want: &Desired,
    parked: Option<String>,
) -> Result<(), ProviderError> {
    let mut d = want.clone();
    d.parked = parked;
    d.frozen = None;
    Ok(parts.store.put(f, d)?)
}

/// Probes the containers started from zero every [`COLD_START_PROBE`] until one is ready,
/// and records the cold start (from `decided`). Gives up after `rollout_timeout`.
pub(crate) fn watch_cold_start(
    parts: &Arc<Parts>,
    f: &FunctionRef,
    started: Started,
    decided: Instant,
) {
    let ids: Vec<String> = started
        .parked
        .iter()
        .chain(started.created.iter())
        .cloned()
        .collect();
    if ids.is_empty() {
        return;
    }
    let (this, f) = (Arc::clone(parts), f.clone());
    tokio::spawn(async move {
        let deadline = decided + this.config.rollout_timeout;
        let mut addresses: Vec<Replica> = Vec::new();
        let mut round = 0u32;
        while Instant::now() < deadline {
            // Addresses are known once a container runs; look again now and then for
            // the ones still missing, without listing containers a hundred times a second.
            if addresses.len() < ids.len() && (addresses.is_empty() || round % 25 == 0) {
                addresses = match this.live_of(&f).await {
                    Ok(live) => live
                        .into_iter()
                        .filter(|r| r.running && ids.contains(&r.id))
                        .filter(|r| r.address.is_some())
                        .collect(),
                    Err(_) => Vec::new(),
                };
            }
            for replica in &addresses {
                let id = &replica.id;
                if this.prober.probe_now(replica).await {
                    let took = decided.elapsed();
                    let tier = if started.parked.as_ref() == Some(id) {
                        started.wake.unwrap_or(Wake::Stopped)
                    } else {
                        Wake::New
                    };
                    tracing::info!(function = %f, container = %id, tier = tier.as_str(),
                        ms = took.as_secs_f64() * 1e3, "cold start: replica ready");
                    this.metrics.cold_start(&f, tier, took);
                    return;
                }
            }
            round = round.wrapping_add(1);
            tokio::time::sleep(COLD_START_PROBE).await;
        }
        tracing::warn!(function = %f, timeout = ?this.config.rollout_timeout,
            "no replica became ready after a start from zero");
    });
}
