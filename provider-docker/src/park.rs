//! Parking: how a function at zero replicas keeps its cold start close to a bare
//! `docker start`.
//!
//! Going to zero (idle, or a manual scale to 0), reconcile stops one container of the current
//! generation and keeps it — preferring a running one — and removes the others. Its id is
//! written to the function's desired state (`parked`) before it is stopped, so a restarted
//! provider keeps it rather than removing it as a stopped replica. The stop (SIGTERM, the
//! watchdog's drain, SIGKILL after `stop_timeout`) runs in the background, so neither the
//! scale call nor the function's lock waits for it. Coming back (0 → n), the parked container
//! is started again before any other is created, and `parked` is cleared once it runs — unless
//! it is still stopping (a call right after the function went idle): waiting for its drain
//! could take up to `stop_timeout`, so it is removed and a new container created instead. An
//! update (a new generation) discards it with the other old containers.
//!
//! After any start from zero a task probes the new containers' `/_/ready` every
//! [`COLD_START_PROBE`] and records the first success as a cold start: from the scale-up
//! decision to that probe, in `provider_cold_start_seconds` and `provider_cold_starts_total`.
//! The result also goes into the readiness cache, so the function shows as available at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::FunctionRef;

use crate::docker::Replica;
use crate::error::ProviderError;
use crate::parts::Parts;
use crate::store::Desired;

/// How often a replica starting from zero is probed.
pub const COLD_START_PROBE: Duration = Duration::from_millis(10);

/// Parked containers still being stopped.
#[derive(Debug, Default, Clone)]
pub struct Stopping(Arc<Mutex<HashSet<String>>>);

/// Containers a reconcile started.
#[derive(Debug, Default)]
pub struct Started {
    /// The parked container, started again.
    pub parked: Option<String>,
    /// Containers created.
    pub created: Vec<String>,
}

/// The parking part of reconcile: at zero, keeps one container of the current generation
/// stopped (and takes it out of `replicas`, so it is not removed); above zero, starts the
/// parked container (which then counts as a running replica). The caller holds `f`'s lock.
pub(crate) async fn handle(
    parts: &Arc<Parts>,
    stopping: &Stopping,
    f: &FunctionRef,
    want: &Desired,
    mut replicas: Vec<Replica>,
) -> Result<(Started, Vec<Replica>), ProviderError> {
    let current = |r: &Replica| r.generation == want.generation;
    let recorded = want
        .parked
        .as_ref()
        .and_then(|id| replicas.iter().position(|r| &r.id == id && current(r)));
    let mut started = Started::default();
    if want.replicas > 0 {
        if want.parked.is_none() {
            return Ok((started, replicas));
        }
        if let Some(r) = recorded.map(|i| &mut replicas[i]) {
            if stopping.contains(&r.id) {
                tracing::info!(function = %f, container = %r.id,
                    "the parked replica is still stopping; creating a new one instead");
                // Counted as stopped: removed below, once its stop is done.
                r.running = false;
                set_parked(parts, f, want, None)?;
                return Ok((started, replicas));
            }
            // Started even if listed as running: it may have stopped since the listing.
            match parts.engine.start_existing(&r.id).await {
                Ok(()) => {
                    tracing::info!(function = %f, container = %r.id, "started the parked replica");
                    parts.prober.forget(&r.id);
                    r.running = true;
                    // A new start may publish new ports: the next listing says.
                    r.address = None;
                    r.metrics_address = None;
                    started.parked = Some(r.id.clone());
                }
                // Left stopped, it is removed below and a new one created.
                Err(e) => {
                    tracing::warn!(function = %f, container = %r.id, error = %e, "cannot start the parked replica; creating a new one")
                }
            }
        }
        set_parked(parts, f, want, None)?;
        return Ok((started, replicas));
    }

    // At zero: the recorded one, else a running one, else a stopped one (oldest first).
    let keep = recorded.or_else(|| {
        let mut candidates: Vec<(usize, &Replica)> = replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| current(r))
            .collect();
        candidates.sort_by_key(|(_, r)| (!r.running, r.created));
        candidates.first().map(|(i, _)| *i)
    });
    let Some(i) = keep else {
        if want.parked.is_some() {
            tracing::info!(function = %f, "the parked replica is gone; the next start creates one");
            set_parked(parts, f, want, None)?;
        }
        return Ok((started, replicas));
    };
    let r = replicas.remove(i);
    if want.parked.as_deref() != Some(r.id.as_str()) {
        set_parked(parts, f, want, Some(r.id.clone()))?;
    }
    if r.running {
        stopping.stop_in_background(parts, f, r.id);
    }
    Ok((started, replicas))
}

impl Stopping {
    /// Stops the container `id` in the background and keeps it (once per stop).
    fn stop_in_background(&self, parts: &Arc<Parts>, f: &FunctionRef, id: String) {
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
                addresses = match this.live(Some(&f)).await {
                    Ok(mut live) => live
                        .remove(&f)
                        .unwrap_or_default()
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
                    let kind = if started.parked.as_ref() == Some(id) {
                        "parked"
                    } else {
                        "created"
                    };
                    tracing::info!(function = %f, container = %id, kind,
                        ms = took.as_secs_f64() * 1e3, "cold start: replica ready");
                    this.metrics.cold_start(&f, took);
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
