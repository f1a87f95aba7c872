//! The provider's operations: deploy, update, scale, delete (what it reports is in
//! [`crate::status`]).
//!
//! Every change follows one pattern: take the function's lock, write the new desired state,
//! then [`Provider::reconcile`] the containers towards it. The periodic reconcile loop uses
//! the same function, so a replica that died is replaced the same way a scale-up creates one.
//! Manual scaling, autoscaling and scale to zero all go through [`Provider::set_replicas`];
//! at zero, reconcile keeps one container, frozen then stopped (see [`crate::park`] and
//! [`crate::freeze`]); coming back, a frozen one is thawed before anything else.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::{Endpoint, FunctionDeployment, FunctionEndpoints, FunctionRef, Wake, labels};
use ferry_provider_core::api::Scaled;

use ferry_proto::probe::ReadinessProbe;

use crate::autoscale::{Autoscaler, Rescale};
use crate::config::Config;
use crate::docker::{Engine, Replica};
use crate::error::ProviderError;
use crate::freeze::Freezing;
use crate::health::Unready;
use crate::namespaces::Namespaces;
use crate::park::{Keepers, Started, Stopping};
use crate::parts::Parts;
use crate::scaling::ScalePolicy;
use crate::secrets::Secrets;
use crate::store::{Desired, Store};
use ferry_provider_core::usage::Usage;

/// Shared state behind the HTTP API.
#[derive(Debug)]
pub struct Provider {
    /// Settings, engine, desired state, prober, metrics: what the satellites get.
    pub(crate) parts: Arc<Parts>,
    /// Secrets on disk (`/system/secrets`, mounts).
    pub(crate) secrets: Secrets,
    /// Namespaces created through `/system/namespace/` (see [`crate::namespaces`]).
    pub(crate) namespaces: Namespaces,
    /// Replicas seen unready, and since when.
    pub(crate) unready: Unready,
    /// Autoscaling and scale-to-zero state.
    pub(crate) autoscaler: Autoscaler,
    /// Parked containers being stopped or frozen.
    pub(crate) keepers: Keepers,
    /// Replicas' memory and CPU ([`ferry_provider_core::usage`]).
    pub(crate) usage: Usage,
}

impl Provider {
    /// Assembles a provider from its parts; `jetstream` (from `nats_url`) is where `queue`
    /// autoscaling counts pending calls.
    pub fn new(
        config: Config,
        engine: Engine,
        store: Store,
        secrets: Secrets,
        namespaces: Namespaces,
        jetstream: Option<async_nats::jetstream::Context>,
    ) -> Arc<Provider> {
        let unready = Unready::new(config.unready_timeout);
        let autoscaler = Autoscaler::new(&config, jetstream);
        let keepers = Keepers {
            stopping: Stopping::default(),
            freezing: Freezing::new(config.probe_timeout),
        };
        Arc::new(Provider {
            parts: Parts::new(config, engine, store),
            secrets,
            namespaces,
            unready,
            autoscaler,
            keepers,
            usage: Usage::default(),
        })
    }

    /// `POST /system/functions`.
    pub async fn deploy(
        self: &Arc<Self>,
        d: FunctionDeployment,
    ) -> Result<FunctionRef, ProviderError> {
        let f = d.validate()?;
        let lock = self.parts.store.lock_for(&f);
        let _guard = lock.lock().await;
        if self.parts.store.get(&f).is_some() {
            return Err(ProviderError::AlreadyExists(f.to_string()));
        }
        crate::spec::check(&f, &d)?;
        let _secrets = self.secrets.require(&f, &d.secrets).await?;
        self.parts.engine.ensure_image(&d.image).await?;
        self.parts.engine.ensure_network().await?;
        let want = Desired {
            replicas: ScalePolicy::of(&f, &d).initial(),
            deployment: d,
            generation: 1,
            created_at: now_rfc3339(),
            parked: None,
            frozen: None,
        };
        self.parts.store.put(&f, want.clone())?;
        if let Err(e) = self.reconcile(&f, &want, false).await {
            // Leave nothing behind from a deployment that could not start.
            self.parts.store.remove(&f)?;
            self.parts.retire_all(&f).await;
            return Err(e);
        }
        Ok(f)
    }

    /// `PUT /system/functions`: new containers from the new spec replace the old ones once
    /// they are ready (or after `rollout_timeout`).
    pub async fn update(
        self: &Arc<Self>,
        d: FunctionDeployment,
    ) -> Result<FunctionRef, ProviderError> {
        let f = d.validate()?;
        let lock = self.parts.store.lock_for(&f);
        let _guard = lock.lock().await;
        let old = self
            .parts
            .store
            .get(&f)
            .ok_or_else(|| ProviderError::NotFound(f.to_string()))?;
        crate::spec::check(&f, &d)?;
        let _secrets = self.secrets.require(&f, &d.secrets).await?;
        self.parts.engine.ensure_image(&d.image).await?;
        self.parts.engine.ensure_network().await?;
        let policy = ScalePolicy::of(&f, &d);
        let replicas = match old.replicas {
            // A function at zero stays there (the gateway brings it back on a call).
            0 if policy.zero => 0,
            n if d.labels.contains_key(labels::SCALE_MIN) => n.max(policy.min),
            n => n,
        };
        let want = Desired {
            replicas: replicas.min(policy.max),
            deployment: d,
            generation: old.generation + 1,
            created_at: old.created_at.clone(),
            parked: None,
            frozen: None,
        };
        self.parts.store.put(&f, want.clone())?;
        if let Err(e) = self.reconcile(&f, &want, true).await {
            // Keep the function as it was.
            self.parts.store.put(&f, old.clone())?;
            let _ = self.reconcile(&f, &old, false).await;
            return Err(e);
        }
        Ok(f)
    }

    /// `POST /system/scale-function/{name}`, within the function's bounds
    /// ([`ScalePolicy::clamp_manual`]). With `from_zero` (a gateway holding calls), only a
    /// function at zero is scaled, to at least `com.openfaas.scale.min` and 1; a frozen
    /// replica is thawed before anything else and its address answered.
    pub async fn scale(
        self: &Arc<Self>,
        f: &FunctionRef,
        replicas: u64,
        from_zero: bool,
    ) -> Result<Scaled, ProviderError> {
        let decided = Instant::now();
        let lock = self.parts.store.lock_for(f);
        let _guard = lock.lock().await;
        let want = self
            .parts
            .store
            .get(f)
            .ok_or_else(|| ProviderError::NotFound(f.to_string()))?;
        if from_zero && want.replicas > 0 {
            return Ok(Scaled {
                replicas: want.replicas,
                wake: None,
                endpoints: None,
            });
        }
        let policy = ScalePolicy::of(f, &want.deployment);
        let asked = if from_zero {
            replicas.max(policy.min).max(1)
        } else {
            replicas
        };
        let replicas = policy.clamp_manual(asked);
        self.autoscaler.manual(f, replicas);
        self.set_replicas(f, want, replicas, "manual", decided)
            .await
    }

    /// Sets the desired replicas of `f` to `replicas` and reconciles; coming back from zero,
    /// a frozen replica is thawed first, and the time from `decided` until a replica is ready
    /// is recorded as a cold start. The caller holds the function's lock; `cause` is for the
    /// log.
    pub(crate) async fn set_replicas(
        self: &Arc<Self>,
        f: &FunctionRef,
        mut want: Desired,
        replicas: u64,
        cause: &'static str,
        decided: Instant,
    ) -> Result<Scaled, ProviderError> {
        let from = want.replicas;
        let waking = from == 0 && replicas > 0;
        let mut clock = Steps::starting(decided);
        let thawed = match waking {
            true => crate::freeze::thaw(&self.parts, f, &mut want).await,
            false => None,
        };
        clock.lap("thaw");
        want.replicas = replicas;
        self.parts.store.put(f, want.clone())?;
        clock.lap("store");
        if from != replicas {
            tracing::info!(function = %f, from, to = replicas, cause, "scaling");
            self.parts.metrics.scale_event(f, from, replicas);
        }
        let mut scaled = Scaled {
            replicas,
            wake: None,
            endpoints: None,
        };
        let started = match thawed {
            // The thawed replica is all that is wanted: nothing to reconcile before answering
            // (the periodic reconcile checks it like any other).
            Some((id, address)) => {
                scaled.endpoints = address.map(|address| self.thawed(f, &want, &id, address));
                if replicas > 1 {
                    self.reconcile(f, &want, false).await?;
                }
                Started {
                    parked: Some(id),
                    created: Vec::new(),
                    wake: Some(Wake::Frozen),
                }
            }
            None => self.reconcile(f, &want, false).await?,
        };
        clock.lap("reconcile");
        if waking {
            scaled.wake = started.wake();
            if let Some(tier) = scaled.wake {
                self.parts.metrics.wake_steps(tier, &clock.laps);
            }
            crate::park::watch_cold_start(&self.parts, f, started, decided);
        }
        Ok(scaled)
    }

    /// The listing of `f`'s thawed replica `id` at `address`, not yet ready, for the caller
    /// of a scale from zero to probe.
    fn thawed(
        &self,
        f: &FunctionRef,
        want: &Desired,
        id: &str,
        address: String,
    ) -> FunctionEndpoints {
        FunctionEndpoints {
            name: f.name.to_string(),
            namespace: f.namespace.to_string(),
            replicas: want.replicas,
            endpoints: vec![Endpoint {
                id: id.to_string(),
                address,
                ready: false,
            }],
            probe: ReadinessProbe::from_annotations(&want.deployment.annotations),
        }
    }

    /// `DELETE /system/functions`: the function is gone at once; its containers drain and
    /// are removed in the background.
    pub async fn delete(self: &Arc<Self>, f: &FunctionRef) -> Result<(), ProviderError> {
        let lock = self.parts.store.lock_for(f);
        let _guard = lock.lock().await;
        self.parts
            .store
            .remove(f)?
            .ok_or_else(|| ProviderError::NotFound(f.to_string()))?;
        self.parts.retire_all(f).await;
        Ok(())
    }

    /// Brings every function's containers to its desired state (the periodic loop).
    /// Functions busy with an API call are skipped until the next round.
    /// Containers of no desired function are removed first (see [`crate::orphans`]).
    pub async fn reconcile_all(self: &Arc<Self>) {
        crate::orphans::remove(&self.parts).await;
        for (f, want) in self.parts.store.list(None) {
            let lock = self.parts.store.lock_for(&f);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            // Re-read under the lock: the function may have changed or gone meanwhile.
            if self.parts.store.get(&f).as_ref() != Some(&want) {
                continue;
            }
            if let Err(e) = self.reconcile(&f, &want, false).await {
                tracing::warn!(function = %f, error = %e, "reconcile failed");
            }
        }
    }

    /// Creates and removes containers of `f` until they match `want`; returns the containers
    /// it started. The caller holds the function's lock. With `wait_rollout`, containers of
    /// older generations are removed only once the new ones are ready (or `rollout_timeout`
    /// passed). At zero replicas one container is kept stopped; coming back, it is started
    /// before any is created.
    async fn reconcile(
        self: &Arc<Self>,
        f: &FunctionRef,
        want: &Desired,
        wait_rollout: bool,
    ) -> Result<Started, ProviderError> {
        let replicas = self.parts.live_of(f).await?;
        let (mut started, replicas) =
            crate::park::handle(&self.parts, &self.keepers, f, want, replicas).await?;
        let (running, stopped): (Vec<_>, Vec<_>) = replicas.into_iter().partition(|r| r.running);
        for r in stopped {
            tracing::info!(function = %f, container = %r.id, "removing stopped replica");
            self.parts.retire(r.id);
        }
        let (current, old): (Vec<_>, Vec<_>) = running
            .into_iter()
            .partition(|r| r.generation == want.generation);
        let mut current = self.unready.without_stuck(&self.parts, f, current).await;
        let desired = usize::try_from(want.replicas).unwrap_or(usize::MAX);
        while current.len() < desired {
            let id = self.parts.engine.start_replica(f, want).await?;
            started.created.push(id.clone());
            current.push(Replica {
                id,
                running: true,
                paused: false,
                generation: want.generation,
                address: None,
                metrics_address: None,
                created: i64::MAX,
                probe: ReadinessProbe::from_annotations(&want.deployment.annotations),
            });
        }
        if current.len() > desired {
            // Remove replicas that are not ready first, then the newest.
            let ready = self.parts.prober.ready_all(&current).await;
            let mut ranked: Vec<(bool, Replica)> = ready.into_iter().zip(current).collect();
            ranked.sort_by_key(|(ready, r)| (!*ready, std::cmp::Reverse(r.created)));
            for (_, r) in ranked.into_iter().skip(desired) {
                self.parts.retire(r.id);
            }
        }
        if !old.is_empty() {
            if wait_rollout && desired > 0 && !self.wait_ready(f, want.generation, desired).await {
                tracing::warn!(function = %f, "new replicas not ready within rollout_timeout; replacing the old ones anyway");
            }
            for r in old {
                self.parts.retire(r.id);
            }
        }
        Ok(started)
    }

    /// Waits until `n` replicas of `generation` are ready; false on timeout.
    async fn wait_ready(&self, f: &FunctionRef, generation: u64, n: usize) -> bool {
        let deadline = Instant::now() + self.parts.config.rollout_timeout;
        while Instant::now() < deadline {
            if let Ok(live) = self.parts.live_of(f).await {
                let current: Vec<Replica> = live
                    .into_iter()
                    .filter(|r| r.running && r.generation == generation)
                    .collect();
                let ready = self.parts.prober.ready_all(&current).await;
                if ready.iter().filter(|r| **r).count() >= n {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// One autoscaling round over every function that autoscales or scales to zero
    /// ([`crate::autoscale`]).
    pub async fn autoscale_all(self: &Arc<Self>) {
        self.autoscaler.round(&self.parts, self).await;
        crate::freeze::tick(&self.parts, &self.keepers.stopping, &self.usage);
    }
}

impl Rescale for Provider {
    fn rescale(
        self: &Arc<Self>,
        f: &FunctionRef,
        want: Desired,
        replicas: u64,
        cause: &'static str,
        decided: Instant,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send {
        let scaled = self.set_replicas(f, want, replicas, cause, decided);
        async move { scaled.await.map(drop) }
    }
}

struct Steps {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Steps {
    /// The first step (`lock`) started at `decided` and ends now.
    fn starting(decided: Instant) -> Steps {
        Steps {
            last: Instant::now(),
            laps: vec![("lock", decided.elapsed())],
        }
    }

    /// Ends the step `name`, which started where the last one ended.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.laps.push((name, now - self.last));
        self.last = now;
    }
}

fn now_rfc3339() -> String {
    ferry_proto::time::rfc3339_seconds(std::time::SystemTime::now())
}
