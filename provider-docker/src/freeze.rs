//! Frozen replicas: the first idle tier of a function at zero, below the container runtime's
//! start time.
//!
//! Going to zero, the replica [`crate::park`] keeps is **frozen** (`docker pause`: its
//! processes get no CPU, its memory stays) rather than stopped, unless the function's
//! `com.ferry.scale.zero.tiers` is `stop`. The freeze waits `freeze_grace` first: the replica
//! is no longer listed as an endpoint from the moment the function is at zero, and a call
//! routed on a gateway's outdated list gets that long to arrive; then, under the function's
//! lock, it is frozen once its watchdog reports no request in flight (read again every
//! second while some are). A scale-up meanwhile keeps the replica running (`warm`).
//!
//! Coming back, [`thaw`] unpauses it before anything else is looked up (the store says it is
//! frozen and where it listens), so a scale from zero costs one `docker unpause`; the caller
//! answers with its address so that the gateway can probe it at once.
//!
//! Every autoscaling round, [`tick`] stops (the second tier: parked, memory released) the
//! frozen replicas of functions frozen for `com.ferry.scale.zero.stop-after` (default
//! `frozen_stop_after`) — unless their tiers are `freeze` only — and, while the frozen
//! replicas together hold more than `max_frozen_memory`, the longest-frozen ones first. It
//! sets `provider_frozen_replicas` and `provider_frozen_memory_bytes`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::FunctionRef;

use crate::park::Stopping;
use crate::parts::Parts;
use crate::replica_metrics::Scraper;
use crate::scaling::ScalePolicy;
use crate::store::{Desired, Frozen};
use ferry_provider_core::usage::Usage;

/// How often a replica with calls in flight is looked at again before it is frozen.
const IN_FLIGHT_RECHECK: Duration = Duration::from_secs(1);

/// Replicas waiting to be frozen.
#[derive(Debug, Clone)]
pub struct Freezing {
    pending: Arc<Mutex<HashSet<String>>>,
    scraper: Arc<Scraper>,
}

impl Freezing {
    /// Reads in-flight counts with `probe_timeout`.
    pub fn new(probe_timeout: Duration) -> Freezing {
        Freezing {
            pending: Arc::default(),
            scraper: Arc::new(Scraper::new(probe_timeout)),
        }
    }

    /// Freezes the running container `id` of `f` after the grace, unless `f` has left zero
    /// or kept another container by then (once per container).
    pub(crate) fn freeze_after_grace(&self, parts: &Arc<Parts>, f: &FunctionRef, id: String) {
        if !self
            .pending
            .lock()
            .expect("freezing set poisoned")
            .insert(id.clone())
        {
            return;
        }
        tracing::info!(function = %f, container = %id, grace = ?parts.config.freeze_grace,
            "going to zero: the replica is kept and frozen after the grace");
        parts.prober.forget(&id);
        let (this, parts, f) = (self.clone(), Arc::clone(parts), f.clone());
        tokio::spawn(async move {
            tokio::time::sleep(parts.config.freeze_grace).await;
            while this.try_freeze(&parts, &f, &id).await {
                tokio::time::sleep(IN_FLIGHT_RECHECK).await;
            }
            this.pending
                .lock()
                .expect("freezing set poisoned")
                .remove(&id);
        });
    }

    /// One attempt under the function's lock; true to try again later (calls in flight).
    async fn try_freeze(&self, parts: &Arc<Parts>, f: &FunctionRef, id: &str) -> bool {
        let lock = parts.store.lock_for(f);
        let _guard = lock.lock().await;
        let Some(want) = parts.store.get(f) else {
            return false;
        };
        if want.replicas != 0 || want.parked.as_deref() != Some(id) || want.frozen.is_some() {
            return false;
        }
        let replica = match parts.live_of(f).await {
            Ok(live) => live.into_iter().find(|r| r.id == id && r.running),
            Err(error) => {
                tracing::warn!(function = %f, %error, "cannot list the replica to freeze; trying again");
                return true;
            }
        };
        // Gone or stopped meanwhile: reconcile deals with it.
        let Some(replica) = replica else {
            return false;
        };
        if let Some(address) = &replica.metrics_address {
            match self.scraper.read(address).await {
                Ok(reading) if reading.in_flight > 0.0 => {
                    tracing::debug!(function = %f, container = %id, in_flight = reading.in_flight,
                        "calls in flight: not freezing yet");
                    return true;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(function = %f, container = %id, %error,
                        "cannot read the replica's calls in flight; freezing it anyway")
                }
            }
        }
        if let Err(error) = parts.engine.pause(id).await {
            tracing::warn!(function = %f, container = %id, %error, "cannot freeze the replica; stopping it instead");
            return false;
        }
        let mut frozen = want.clone();
        frozen.frozen = Some(Frozen {
            since: unix_now(),
            address: replica.address,
        });
        if let Err(error) = parts.store.put(f, frozen) {
            // Left paused but not recorded: the next reconcile at zero records it.
            tracing::warn!(function = %f, container = %id, %error, "cannot record the frozen replica");
        }
        tracing::info!(function = %f, container = %id, "froze the replica");
        false
    }
}

/// Coming back from zero: unpauses the frozen container `want` records and clears it from
/// `want` (not yet stored). Returns it and its address; `None` when nothing was frozen or
/// the unpause failed (reconcile then starts or creates a replica).
pub(crate) async fn thaw(
    parts: &Parts,
    f: &FunctionRef,
    want: &mut Desired,
) -> Option<(String, Option<String>)> {
    let frozen = want.frozen.clone()?;
    let id = want.parked.clone()?;
    match parts.engine.unpause(&id).await {
        Ok(()) => {
            parts.prober.forget(&id);
            want.parked = None;
            want.frozen = None;
            tracing::info!(function = %f, container = %id, "thawed the frozen replica");
            Some((id, frozen.address))
        }
        Err(error) => {
            tracing::warn!(function = %f, container = %id, %error, "cannot thaw the frozen replica");
            None
        }
    }
}

/// The stop-after and memory-cap round (see the module docs).
pub(crate) fn tick(parts: &Arc<Parts>, stopping: &Stopping, usage: &Usage) {
    let now = unix_now();
    // Frozen replicas, longest frozen first: (function, state, memory, stop now).
    let mut frozen: Vec<(FunctionRef, Desired, u64, bool)> = parts
        .store
        .list(None)
        .into_iter()
        .filter(|(_, want)| want.replicas == 0 && want.parked.is_some())
        .filter_map(|(f, want)| {
            let since = want.frozen.as_ref()?.since;
            let policy = ScalePolicy::of(&f, &want.deployment);
            let after = policy.stop_after.unwrap_or(parts.config.frozen_stop_after);
            let due = policy.tiers.stop
                && (!policy.tiers.freeze || now.saturating_sub(since) >= after.as_secs());
            let memory = want
                .parked
                .as_deref()
                .and_then(|id| usage.memory_of(id))
                .unwrap_or(0);
            Some((f, want, memory, due))
        })
        .collect();
    frozen.sort_by_key(|(_, want, _, _)| want.frozen.as_ref().map(|z| z.since));
    let mut total: u64 = frozen.iter().map(|(_, _, memory, _)| memory).sum();
    let cap = parts.config.max_frozen_memory;
    for (f, want, memory, due) in &mut frozen {
        if !*due && cap > 0 && total > cap {
            tracing::info!(function = %f, memory = *memory, total, cap,
                "frozen replicas hold more than max_frozen_memory: stopping the longest frozen");
            *due = true;
        }
        if *due && stop_frozen(parts, stopping, f, want) {
            total = total.saturating_sub(*memory);
        }
    }
    let kept = frozen.iter().filter(|(_, _, _, due)| !due).count();
    parts.metrics.set_frozen(kept, total);
}

/// Stops the frozen replica of `f` (kept parked, stopped), if the function is not busy and
/// unchanged since `want` was read. True when it did.
fn stop_frozen(parts: &Arc<Parts>, stopping: &Stopping, f: &FunctionRef, want: &Desired) -> bool {
    let lock = parts.store.lock_for(f);
    let Ok(_guard) = lock.try_lock() else {
        return false;
    };
    if parts.store.get(f).as_ref() != Some(want) {
        return false;
    }
    let Some(id) = want.parked.clone() else {
        return false;
    };
    let mut stopped = want.clone();
    stopped.frozen = None;
    if let Err(error) = parts.store.put(f, stopped) {
        tracing::warn!(function = %f, %error, "cannot record the stop of the frozen replica");
        return false;
    }
    tracing::info!(function = %f, container = %id, "stopping the frozen replica (second idle tier)");
    stopping.stop_in_background(parts, f, id);
    true
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
