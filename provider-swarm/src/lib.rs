//! `provider-swarm`: the faas-provider API on Docker Swarm services.
//!
//! Each function is one replicated Swarm service (endpoint mode `dnsrr`, on an attachable
//! overlay network), its replicas are the service's tasks, and Swarm replaces tasks that
//! die. The HTTP API, request validation, error answers and basic auth are
//! `ferry-provider-core`'s, shared with provider-docker; this crate is the [`Backend`]:
//!
//! - [`config`]: environment variables and defaults;
//! - [`spec`]: a deployment as a service spec;
//! - [`engine`]: services, tasks, the overlay network and images on the swarm manager;
//! - [`logs`]: `/system/logs` from the service logs, NDJSON as provider-docker's;
//! - [`secrets`]: `/system/secrets` as Swarm secrets, mounted at
//!   `/var/openfaas/secrets/<name>`; an update rolls the services using the secret;
//! - [`namespaces`]: the namespace API, created namespaces kept as Swarm configs;
//! - [`objects`]: labels, names and versions of those secrets and configs;
//! - [`provider`]: the operations, and the removal of stray services;
//! - [`error`]: the error enum and its HTTP statuses.
//!
//! [`Backend`]: ferry_provider_core::Backend

pub mod config;
pub mod engine;
pub mod error;
pub mod logs;
pub mod namespaces;
pub mod objects;
pub mod provider;
pub mod secrets;
pub mod spec;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::Config;
pub use error::SwarmError;
pub use provider::SwarmProvider;

/// Connects to the swarm manager, makes sure the functions network exists, serves the API on
/// `listener` until `shutdown` resolves, and meanwhile removes stray services of this
/// instance every `reconcile_interval` and samples the tasks' memory and CPU.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SwarmError> {
    let credentials = ferry_provider_core::auth::load(&config.auth).await?;
    let engine = engine::Engine::connect(&config).await?;
    engine.check().await?;
    engine.ensure_network().await?;
    let interval = config.reconcile_interval;
    let provider = SwarmProvider::new(config, engine);
    let cancel = tokio_util::sync::CancellationToken::new();
    let reconciler = tokio::spawn(provider.clone().reconcile_loop(interval, cancel.clone()));
    let sampler = tokio::spawn(provider.clone().usage_loop(cancel.clone()));
    tracing::info!(address = %listener.local_addr()?, "provider-swarm listening");
    let routes = ferry_provider_core::api::routes::<SwarmProvider>()
        .merge(ferry_provider_core::namespaces::routes::<SwarmProvider>())
        .merge(ferry_provider_core::secrets::routes::<SwarmProvider>())
        .merge(logs::routes());
    let router = ferry_provider_core::api::finish(routes, provider, credentials);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    cancel.cancel();
    let _ = reconciler.await;
    let _ = sampler.await;
    served.map_err(SwarmError::Io)
}
