//! The provider's operations on Swarm services, as a [`Backend`] of the shared API.
//!
//! Swarm holds the whole desired state (the deployment in a service label, the replicas in
//! the service's mode), so there is no store: deploy creates a service, update replaces its
//! spec (Swarm rolls the tasks), scale sets its replicas (0 included: scale to zero; Swarm
//! removes the tasks), delete removes it, and Swarm itself replaces tasks that die.
//! Secrets and created namespaces are Swarm secrets and configs ([`crate::secrets`],
//! [`crate::namespaces`]). Changes are serialised by one lock, so two calls never race on a
//! service's version, and a secret never goes while a deploy references it.

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::info::{ProviderInfo, VersionInfo};
use ferry_proto::probe::ReadinessProbe;
use ferry_proto::{
    Endpoint, FunctionDeployment, FunctionEndpoints, FunctionRef, FunctionStatus, Wake, labels,
};
use ferry_provider_core::Backend;
use ferry_provider_core::api::Scaled;
use ferry_provider_core::usage::{SAMPLE_INTERVAL, Usage};

use crate::config::Config;
use crate::engine::{Engine, FunctionService};
use crate::error::SwarmError;
use crate::objects::Versioned;
use crate::spec::{self, Target};

/// Shared state behind the HTTP API.
#[derive(Debug)]
pub struct SwarmProvider {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    /// Serialises every change (functions, secrets, namespaces).
    pub(crate) changes: tokio::sync::Mutex<()>,
    /// Tasks' memory and CPU ([`ferry_provider_core::usage`]).
    usage: Usage,
}

impl SwarmProvider {
    /// A provider on `engine`.
    pub fn new(config: Config, engine: Engine) -> Arc<SwarmProvider> {
        Arc::new(SwarmProvider {
            config,
            engine,
            changes: tokio::sync::Mutex::new(()),
            usage: Usage::default(),
        })
    }

    async fn find(&self, f: &FunctionRef) -> Result<Option<FunctionService>, SwarmError> {
        let (mut found, _) = self.engine.services(Some(f)).await?;
        found.retain(|s| &s.function == f);
        Ok(found.into_iter().next())
    }

    async fn get(&self, f: &FunctionRef) -> Result<FunctionService, SwarmError> {
        self.find(f)
            .await?
            .ok_or_else(|| SwarmError::NotFound(f.to_string()))
    }

    /// The id of `f`'s service (not found: 404).
    pub(crate) async fn service_id(&self, f: &FunctionRef) -> Result<String, SwarmError> {
        Ok(self.get(f).await?.id)
    }

    /// The Docker client (for the logs API).
    pub(crate) fn docker(&self) -> &bollard::Docker {
        self.engine.client()
    }

    fn target<'a>(&'a self, image_id: &'a str, secrets: &'a [Versioned]) -> Target<'a> {
        Target {
            instance: &self.config.instance,
            network: &self.config.network,
            image_id,
            stop_timeout: self.config.stop_timeout,
            secrets,
        }
    }

    async fn status_of(&self, s: &FunctionService) -> Result<FunctionStatus, SwarmError> {
        let tasks = self.engine.running_tasks(&s.id).await?;
        let mut status =
            FunctionStatus::from_deployment(&s.deployment, s.function.namespace.as_str());
        status.labels.insert(
            labels::FAAS_FUNCTION.to_string(),
            s.function.name.to_string(),
        );
        status.replicas = s.replicas;
        status.available_replicas = (tasks.len() as u64).min(s.replicas);
        status.created_at = Some(s.created_at.clone());
        status.usage = self
            .usage
            .of(tasks.iter().filter_map(|t| t.container.as_deref()));
        Ok(status)
    }

    /// Samples the resource usage of every running task's container ([`Usage`]); a task on
    /// another node has no container here and is not sampled.
    pub async fn sample_usage(&self) {
        let services = match self.engine.services(None).await {
            Ok((services, _)) => services,
            Err(error) => {
                tracing::debug!(%error, "cannot list services to sample their usage");
                return;
            }
        };
        let mut containers = Vec::new();
        for s in services {
            match self.engine.running_tasks(&s.id).await {
                Ok(tasks) => containers.extend(tasks.into_iter().filter_map(|t| t.container)),
                Err(error) => tracing::debug!(%error, "cannot list tasks to sample their usage"),
            }
        }
        self.usage.refresh(self.engine.client(), containers).await;
    }

    /// Removes services of this instance that carry no readable deployment, all but the
    /// first service of a function listed twice, and secret versions no longer current (at
    /// start and every `reconcile_interval`).
    pub async fn remove_strays(&self) {
        let _guard = self.changes.lock().await;
        self.remove_stale_secrets().await;
        let (good, bad) = match self.engine.services(None).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "could not list services to find strays");
                return;
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        let duplicates = good
            .into_iter()
            .filter(|s| !seen.insert(s.function.clone()))
            .map(|s| s.id);
        for id in bad.into_iter().chain(duplicates) {
            tracing::info!(service = %id, "removing a service of this instance that is no function");
            if let Err(e) = self.engine.remove(&id).await {
                tracing::warn!(service = %id, error = %e, "could not remove the stray service");
            }
        }
    }

    /// Every `interval`, [`remove_strays`](Self::remove_strays) until `cancel`.
    pub async fn reconcile_loop(
        self: Arc<Self>,
        interval: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        loop {
            self.remove_strays().await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Samples the tasks' usage every [`SAMPLE_INTERVAL`] until `cancel`.
    pub async fn usage_loop(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        loop {
            self.sample_usage().await;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            }
        }
    }
}

impl Backend for SwarmProvider {
    type Error = SwarmError;

    async fn deploy(self: &Arc<Self>, d: FunctionDeployment) -> Result<FunctionRef, SwarmError> {
        let f = d.validate()?;
        spec::check(&d)?;
        let _guard = self.changes.lock().await;
        if self.find(&f).await?.is_some() {
            return Err(SwarmError::AlreadyExists(f.to_string()));
        }
        let image_id = self.engine.image_id(&d.image).await?;
        let secrets = self.secret_versions(&f, &d.secrets).await?;
        self.engine.ensure_network().await?;
        let created = ferry_proto::time::rfc3339_seconds(std::time::SystemTime::now());
        let replicas = initial_replicas(&d);
        let t = self.target(&image_id, &secrets);
        let spec = spec::service_spec(&f, &d, replicas, &created, &t)?;
        self.engine.create(spec).await?;
        Ok(f)
    }

    async fn update(self: &Arc<Self>, d: FunctionDeployment) -> Result<FunctionRef, SwarmError> {
        let f = d.validate()?;
        spec::check(&d)?;
        let _guard = self.changes.lock().await;
        let old = self.get(&f).await?;
        let image_id = self.engine.image_id(&d.image).await?;
        let secrets = self.secret_versions(&f, &d.secrets).await?;
        let t = self.target(&image_id, &secrets);
        let spec = spec::service_spec(&f, &d, old.replicas, &old.created_at, &t)?;
        self.engine.update(&old.id, old.version, spec).await?;
        Ok(f)
    }

    async fn delete(self: &Arc<Self>, f: &FunctionRef) -> Result<(), SwarmError> {
        let _guard = self.changes.lock().await;
        let s = self.get(f).await?;
        Ok(self.engine.remove(&s.id).await?)
    }

    async fn status(self: &Arc<Self>, f: &FunctionRef) -> Result<FunctionStatus, SwarmError> {
        let s = self.get(f).await?;
        self.status_of(&s).await
    }

    async fn list(self: &Arc<Self>, namespace: &str) -> Result<Vec<FunctionStatus>, SwarmError> {
        let (services, _) = self.engine.services(None).await?;
        let mut out = Vec::new();
        for s in services
            .iter()
            .filter(|s| s.function.namespace.as_str() == namespace)
        {
            out.push(self.status_of(s).await?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn scale(
        self: &Arc<Self>,
        f: &FunctionRef,
        replicas: u64,
        from_zero: bool,
    ) -> Result<Scaled, SwarmError> {
        let _guard = self.changes.lock().await;
        let s = self.get(f).await?;
        if from_zero && s.replicas > 0 {
            return Ok(Scaled {
                replicas: s.replicas,
                wake: None,
                endpoints: None,
            });
        }
        let floor = if from_zero {
            min_replicas(&s.deployment).max(1)
        } else {
            0
        };
        let replicas = replicas.max(floor).min(max_replicas(&s.deployment));
        let mut spec = s.spec.clone();
        if let Some(r) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
            r.replicas = Some(i64::try_from(replicas).unwrap_or(i64::MAX));
        }
        self.engine.update(&s.id, s.version, spec).await?;
        if s.replicas != replicas {
            tracing::info!(function = %f, from = s.replicas, to = replicas, "scaling");
        }
        // Swarm creates a new task for every replica it adds.
        let wake = (s.replicas == 0 && replicas > 0).then_some(Wake::New);
        Ok(Scaled {
            replicas,
            wake,
            endpoints: None,
        })
    }

    async fn endpoints(self: &Arc<Self>, f: &FunctionRef) -> Result<FunctionEndpoints, SwarmError> {
        let s = self.get(f).await?;
        let tasks = self.engine.running_tasks(&s.id).await?;
        let endpoints = tasks
            .into_iter()
            .filter_map(|t| {
                Some(Endpoint {
                    address: t.address?,
                    id: t.id,
                    // Swarm reports the task running; the gateway's own probe (see `probe`)
                    // decides whether it takes calls.
                    ready: true,
                })
            })
            .collect();
        Ok(FunctionEndpoints {
            name: f.name.to_string(),
            namespace: f.namespace.to_string(),
            replicas: s.replicas,
            endpoints,
            probe: ReadinessProbe::from_annotations(&s.deployment.annotations),
        })
    }

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: "ferry-provider-swarm".into(),
            orchestration: "swarm".into(),
            version: VersionInfo {
                commit_message: String::new(),
                sha: option_env!("FERRY_GIT_SHA").unwrap_or("unknown").into(),
                release: env!("CARGO_PKG_VERSION").into(),
            },
        }
    }

    async fn health(self: &Arc<Self>) -> Result<(), String> {
        self.engine.check().await.map_err(|e| e.to_string())
    }

    async fn metrics(self: &Arc<Self>) -> Vec<u8> {
        let mut out = String::from(
            "# HELP gateway_service_count Desired replicas of each function.\n\
             # TYPE gateway_service_count gauge\n",
        );
        if let Ok((services, _)) = self.engine.services(None).await {
            for s in services {
                out.push_str(&format!(
                    "gateway_service_count{{function_name=\"{}\"}} {}\n",
                    s.function, s.replicas
                ));
            }
        }
        out.into_bytes()
    }
}

/// `com.openfaas.scale.min` (default 1) at deploy.
fn initial_replicas(d: &FunctionDeployment) -> u64 {
    d.labels
        .get(labels::SCALE_MIN)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `com.openfaas.scale.min` (default 1), for a scale from zero.
fn min_replicas(d: &FunctionDeployment) -> u64 {
    d.labels
        .get(labels::SCALE_MIN)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// `com.openfaas.scale.max` (default unbounded) for manual scaling.
fn max_replicas(d: &FunctionDeployment) -> u64 {
    d.labels
        .get(labels::SCALE_MAX)
        .and_then(|v| v.parse().ok())
        .filter(|m| *m > 0)
        .unwrap_or(u64::MAX)
}
