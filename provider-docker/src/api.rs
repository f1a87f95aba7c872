//! The faas-provider HTTP API (plus ferry's endpoints route and `/metrics`), mapped onto
//! [`Provider`]: the routes, parsing and validation are `ferry-provider-core`'s, over the
//! [`Backend`] implementation here. `/system/namespaces`, `/system/namespace/{name}` and
//! `/system/secrets` are `ferry-provider-core`'s routes too, over the `NamespaceBackend` and
//! `SecretBackend` implementations in [`crate::namespaces`] and [`crate::secrets`];
//! `/system/logs` lives in [`crate::logs`].

use std::sync::Arc;

use axum::Router;
use ferry_proto::info::{ProviderInfo, VersionInfo};
use ferry_proto::{FunctionDeployment, FunctionEndpoints, FunctionRef, FunctionStatus};
use ferry_provider_core::Backend;

pub use ferry_provider_core::api::{function_ref, namespace_param, parse_json};

use crate::error::ProviderError;
use crate::provider::Provider;

/// The provider's routes; with `credentials`, `/system/*` requires them (see
/// [`crate::auth`]).
pub fn router(
    provider: Arc<Provider>,
    credentials: Option<Arc<ferry_runtime::auth::Credentials>>,
) -> Router {
    let routes = ferry_provider_core::api::routes::<Provider>()
        .merge(ferry_provider_core::namespaces::routes::<Provider>())
        .merge(ferry_provider_core::secrets::routes::<Provider>())
        .merge(crate::logs::routes());
    ferry_provider_core::api::finish(routes, provider, credentials)
}

impl Backend for Provider {
    type Error = ProviderError;

    async fn deploy(self: &Arc<Self>, d: FunctionDeployment) -> Result<FunctionRef, ProviderError> {
        Provider::deploy(self, d).await
    }

    async fn update(self: &Arc<Self>, d: FunctionDeployment) -> Result<FunctionRef, ProviderError> {
        Provider::update(self, d).await
    }

    async fn delete(self: &Arc<Self>, f: &FunctionRef) -> Result<(), ProviderError> {
        Provider::delete(self, f).await
    }

    async fn status(self: &Arc<Self>, f: &FunctionRef) -> Result<FunctionStatus, ProviderError> {
        Provider::status(self, f).await
    }

    async fn list(self: &Arc<Self>, namespace: &str) -> Result<Vec<FunctionStatus>, ProviderError> {
        Provider::list(self, namespace).await
    }

    async fn scale(self: &Arc<Self>, f: &FunctionRef, replicas: u64) -> Result<u64, ProviderError> {
        Provider::scale(self, f, replicas).await
    }

    async fn endpoints(
        self: &Arc<Self>,
        f: &FunctionRef,
    ) -> Result<FunctionEndpoints, ProviderError> {
        Provider::endpoints(self, f).await
    }

    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: "ferry-provider-docker".into(),
            orchestration: "docker".into(),
            version: VersionInfo {
                commit_message: String::new(),
                sha: option_env!("FERRY_GIT_SHA").unwrap_or("unknown").into(),
                release: env!("CARGO_PKG_VERSION").into(),
            },
        }
    }

    async fn health(self: &Arc<Self>) -> Result<(), String> {
        self.engine
            .ping()
            .await
            .map_err(|e| format!("the Docker engine does not answer: {e}"))
    }

    /// The provider's Prometheus metrics (see [`crate::metrics`]).
    async fn metrics(self: &Arc<Self>) -> Vec<u8> {
        match self.replica_counts().await {
            Ok(counts) => self.metrics.set_replicas(&counts),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count replicas"),
        }
        self.metrics.render()
    }
}
