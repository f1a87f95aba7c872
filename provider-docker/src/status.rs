//! What the provider reports, read from the desired state and the containers: a function's
//! status and the list (`/system/function/{name}`, `/system/functions`), its endpoints for the
//! gateway, the replica counts of the metrics, and the usage samples behind them. Only reads:
//! on top of [`crate::provider`], like the HTTP layer.

use ferry_proto::probe::ReadinessProbe;
use ferry_proto::{Endpoint, FunctionEndpoints, FunctionRef, FunctionStatus};

use crate::docker::Replica;
use crate::error::ProviderError;
use crate::provider::Provider;
use crate::store::Desired;

impl Provider {
    /// What `f` should be and its replicas now; `NotFound` unless deployed.
    async fn desired_and_live(
        &self,
        f: &FunctionRef,
    ) -> Result<(Desired, Vec<Replica>), ProviderError> {
        let want = self
            .parts
            .store
            .get(f)
            .ok_or_else(|| ProviderError::NotFound(f.to_string()))?;
        let replicas = self.parts.live_of(f).await?;
        Ok((want, replicas))
    }

    /// `GET /system/function/{name}`.
    pub async fn status(&self, f: &FunctionRef) -> Result<FunctionStatus, ProviderError> {
        let (want, replicas) = self.desired_and_live(f).await?;
        Ok(self.status_of(f, &want, &replicas).await)
    }

    /// `GET /system/functions?namespace=`.
    pub async fn list(&self, namespace: &str) -> Result<Vec<FunctionStatus>, ProviderError> {
        let mut live = self.parts.live(None).await?;
        let functions = self.parts.store.list(Some(namespace));
        let statuses = functions.iter().map(|(f, want)| {
            let replicas = live.remove(f).unwrap_or_default();
            async move { self.status_of(f, want, &replicas).await }
        });
        Ok(futures_util::future::join_all(statuses).await)
    }

    /// `GET /system/endpoints/{name}`: every running replica, its address and readiness (the
    /// one a function at zero keeps is not listed: it takes no calls).
    pub async fn endpoints(&self, f: &FunctionRef) -> Result<FunctionEndpoints, ProviderError> {
        let (want, replicas) = self.desired_and_live(f).await?;
        let running = serving(&want, replicas);
        let ready = self.parts.prober.ready_all(&running).await;
        let endpoints = running
            .into_iter()
            .zip(ready)
            .filter_map(|(r, ready)| {
                Some(Endpoint {
                    address: r.address?,
                    id: r.id,
                    ready,
                })
            })
            .collect();
        Ok(FunctionEndpoints {
            name: f.name.to_string(),
            namespace: f.namespace.to_string(),
            replicas: want.replicas,
            endpoints,
            probe: ReadinessProbe::from_annotations(&want.deployment.annotations),
        })
    }

    /// `(function, desired, ready)` replicas of every function.
    pub async fn replica_counts(&self) -> Result<Vec<(FunctionRef, u64, u64)>, ProviderError> {
        let mut live = self.parts.live(None).await?;
        let counts = self.parts.store.list(None).into_iter().map(|(f, want)| {
            let replicas = serving(&want, live.remove(&f).unwrap_or_default());
            async move {
                let ready = self.parts.prober.ready_all(&replicas).await;
                let available = ready.iter().filter(|r| **r).count() as u64;
                (f, want.replicas, available)
            }
        });
        Ok(futures_util::future::join_all(counts).await)
    }

    async fn status_of(
        &self,
        f: &FunctionRef,
        want: &Desired,
        replicas: &[Replica],
    ) -> FunctionStatus {
        let ready = self
            .parts
            .prober
            .ready_all(&serving(want, replicas.to_vec()))
            .await;
        let mut status = FunctionStatus::from_deployment(&want.deployment, f.namespace.as_str());
        // As OpenFaaS providers report it on every function.
        status.labels.insert(
            ferry_proto::labels::FAAS_FUNCTION.to_string(),
            f.name.to_string(),
        );
        status.replicas = want.replicas;
        status.available_replicas = ready.iter().filter(|r| **r).count() as u64;
        status.created_at = Some(want.created_at.clone());
        // A frozen replica's memory counts: the function holds it (`frozenMemoryBytes` says
        // how much of it is frozen).
        status.usage = self.usage.of(replicas.iter().map(|r| r.id.as_str()));
        if let (Some(usage), Some(id)) = (status.usage.as_mut(), &want.parked) {
            usage.frozen_memory_bytes = want
                .frozen
                .as_ref()
                .and_then(|_| self.usage.memory_of(id))
                .unwrap_or(0) as f64;
        }
        status
    }

    /// Samples the resource usage of every running replica ([`ferry_provider_core::usage`]).
    pub async fn sample_usage(&self) {
        let running = match self.parts.live(None).await {
            Ok(live) => live
                .into_values()
                .flatten()
                .filter(|r| r.running || r.paused),
            Err(error) => {
                tracing::debug!(%error, "cannot list replicas to sample their usage");
                return;
            }
        };
        let ids = running.map(|r| r.id).collect();
        self.usage.refresh(self.parts.engine.client(), ids).await;
    }
}

/// The replicas of `replicas` that take calls: running, and not the one a function at zero
/// keeps (running until it is frozen or stopped).
fn serving(want: &Desired, replicas: Vec<Replica>) -> Vec<Replica> {
    replicas
        .into_iter()
        .filter(|r| r.running && want.parked.as_ref() != Some(&r.id))
        .collect()
}
