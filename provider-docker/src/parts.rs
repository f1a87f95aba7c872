//! The narrow pieces the provider's satellites work with: [`Parts`] holds the settings, the
//! engine, the desired state, the prober and the metrics, plus the containers being removed.
//!
//! The provider (`provider.rs`) owns one and hands it to [`crate::park`], [`crate::health`],
//! [`crate::orphans`] and [`crate::autoscale`], which never see the provider itself: the
//! modules form a DAG with `provider.rs` on top (and the HTTP layer, [`crate::api`], above it).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use ferry_proto::FunctionRef;

use crate::config::Config;
use crate::docker::{Engine, Replica};
use crate::error::ProviderError;
use crate::metrics::Metrics;
use crate::readiness::Prober;
use crate::store::Store;

/// What the provider's parts share.
#[derive(Debug)]
pub struct Parts {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) prober: Prober,
    /// What `GET /metrics` reports.
    pub(crate) metrics: Metrics,
    /// Containers being stopped and removed; no longer counted or routed to.
    terminating: Mutex<HashSet<String>>,
}

impl Parts {
    /// The parts of a provider configured by `config`.
    pub fn new(config: Config, engine: Engine, store: Store) -> Arc<Parts> {
        let prober = Prober::new(config.probe_timeout, config.probe_cache);
        Arc::new(Parts {
            config,
            engine,
            store,
            prober,
            metrics: Metrics::new(),
            terminating: Mutex::default(),
        })
    }

    /// Containers per function, leaving out those being removed.
    pub(crate) async fn live(
        &self,
        f: Option<&FunctionRef>,
    ) -> Result<BTreeMap<FunctionRef, Vec<Replica>>, ProviderError> {
        let all = self.engine.replicas(f).await?;
        let terminating = self
            .terminating
            .lock()
            .expect("terminating set poisoned")
            .clone();
        let mut out: BTreeMap<FunctionRef, Vec<Replica>> = BTreeMap::new();
        for (f, r) in all
            .into_iter()
            .filter(|(_, r)| !terminating.contains(&r.id))
        {
            out.entry(f).or_default().push(r);
        }
        Ok(out)
    }

    /// The containers of `f`, leaving out those being removed.
    pub(crate) async fn live_of(&self, f: &FunctionRef) -> Result<Vec<Replica>, ProviderError> {
        Ok(self.live(Some(f)).await?.remove(f).unwrap_or_default())
    }

    /// Stops and removes a container in the background; from now on it is not counted.
    pub(crate) fn retire(self: &Arc<Self>, id: String) {
        if !self
            .terminating
            .lock()
            .expect("terminating set poisoned")
            .insert(id.clone())
        {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.engine.stop_and_remove(&id).await {
                tracing::warn!(container = %id, error = %e, "could not remove replica");
            }
            this.prober.forget(&id);
            this.terminating
                .lock()
                .expect("terminating set poisoned")
                .remove(&id);
        });
    }

    /// Whether the container `id` is being stopped and removed.
    pub(crate) fn is_terminating(&self, id: &str) -> bool {
        self.terminating
            .lock()
            .expect("terminating set poisoned")
            .contains(id)
    }

    /// Retires every container of `f`.
    pub(crate) async fn retire_all(self: &Arc<Self>, f: &FunctionRef) {
        match self.engine.replicas(Some(f)).await {
            Ok(all) => all.into_iter().for_each(|(_, r)| self.retire(r.id)),
            Err(e) => {
                tracing::warn!(function = %f, error = %e, "could not list replicas to remove")
            }
        }
    }
}
