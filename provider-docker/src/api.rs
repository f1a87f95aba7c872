//! The faas-provider HTTP API (plus ferry's endpoints route and `/metrics`), mapped onto
//! [`Provider`]: the routes, parsing and validation are `ferry-provider-core`'s, over the
//! [`Backend`] implementation here. `/system/namespaces`, `/system/namespace/{name}` and
//! `/system/secrets` are `ferry-provider-core`'s routes too, over the [`NamespaceBackend`] and
//! [`SecretBackend`] implementations here (over [`crate::namespaces`] and [`crate::secrets`]);
//! `/system/logs` lives in [`crate::logs`].

use std::sync::Arc;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use ferry_proto::info::{ProviderInfo, VersionInfo};
use ferry_proto::{
    FunctionDeployment, FunctionEndpoints, FunctionNamespace, FunctionRef, FunctionStatus, Name,
};
use ferry_provider_core::api::Scaled;
use ferry_provider_core::{Backend, NamespaceBackend, SecretBackend};

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
        .merge(Router::new().route(ferry_proto::routes::SYSTEM_LOGS, get(logs)));
    ferry_provider_core::api::finish(routes, provider, credentials)
}

async fn logs(
    State(p): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ProviderError> {
    crate::logs::logs(Arc::clone(&p.parts), &q).await
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

    async fn scale(
        self: &Arc<Self>,
        f: &FunctionRef,
        replicas: u64,
        from_zero: bool,
    ) -> Result<Scaled, ProviderError> {
        Provider::scale(self, f, replicas, from_zero).await
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
        self.parts
            .engine
            .ping()
            .await
            .map_err(|e| format!("the Docker engine does not answer: {e}"))
    }

    /// The provider's Prometheus metrics (see [`crate::metrics`]).
    async fn metrics(self: &Arc<Self>) -> Vec<u8> {
        match self.replica_counts().await {
            Ok(counts) => self.parts.metrics.set_replicas(&counts),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count replicas"),
        }
        self.parts.metrics.render()
    }
}

impl SecretBackend for Provider {
    async fn secret_names(self: &Arc<Self>, ns: &Name) -> Result<Vec<String>, ProviderError> {
        Ok(self.secrets.names(ns)?)
    }

    async fn create_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> Result<(), ProviderError> {
        self.secrets.create(ns, name, value)
    }

    async fn update_secret(
        self: &Arc<Self>,
        ns: &Name,
        name: &str,
        value: &[u8],
    ) -> Result<(), ProviderError> {
        self.secrets.update(ns, name, value)
    }

    async fn delete_secret(self: &Arc<Self>, ns: &Name, name: &str) -> Result<(), ProviderError> {
        self.secrets.delete(ns, name, &self.parts.store).await
    }
}

/// Whether the namespace `name` holds deployed functions.
fn holds_functions(p: &Provider, name: &Name) -> bool {
    !p.parts.store.list(Some(name.as_str())).is_empty()
}

impl NamespaceBackend for Provider {
    async fn namespace_names(self: &Arc<Self>) -> Result<Vec<String>, ProviderError> {
        Ok(self.namespaces.names(self.parts.store.namespaces()))
    }

    async fn namespace(
        self: &Arc<Self>,
        name: &Name,
    ) -> Result<Option<FunctionNamespace>, ProviderError> {
        Ok(self.namespaces.get(name, holds_functions(self, name)))
    }

    async fn create_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> Result<(), ProviderError> {
        self.namespaces
            .create(name, ns, holds_functions(self, name))
    }

    async fn update_namespace(
        self: &Arc<Self>,
        name: &Name,
        ns: FunctionNamespace,
    ) -> Result<(), ProviderError> {
        self.namespaces
            .update(name, ns, holds_functions(self, name))
    }

    async fn delete_namespace(self: &Arc<Self>, name: &Name) -> Result<(), ProviderError> {
        let functions: Vec<String> = self
            .parts
            .store
            .list(Some(name.as_str()))
            .into_iter()
            .map(|(f, _)| f.name.to_string())
            .collect();
        let secrets = self.secrets.names(name)?;
        self.namespaces.delete(name, &functions, &secrets)
    }
}
