//! `provider-docker`: the faas-provider API on the Docker Engine.
//!
//! It turns function deployments into containers through the Docker Engine API (bollard),
//! reports their replicas and readiness, and tells the gateway where each ready replica
//! listens. Layout:
//!
//! - [`config`]: environment variables and defaults;
//! - [`auth`]: basic auth of `/system/*` (`basic_auth`), with the credentials the gateway
//!   writes to `secret_mount_path`;
//! - [`api`]: HTTP routes (`/system/functions`, `/system/function/{name}`,
//!   `/system/scale-function/{name}`, `/system/endpoints/{name}`, `/system/info`,
//!   `/healthz`, `/metrics`);
//! - [`namespaces`]: the `NamespaceBackend` of `/system/namespaces` and
//!   `/system/namespace/{name}` (routes and rules in `ferry-provider-core`), namespaces
//!   created through the API kept under `data_dir/namespaces`;
//! - [`secrets`]: the `SecretBackend` of `/system/secrets` (routes in `ferry-provider-core`),
//!   secrets stored under `data_dir/secrets` and mounted read-only at
//!   `/var/openfaas/secrets/<name>`;
//! - [`logs`]: `/system/logs`, the containers' output as NDJSON, optionally followed;
//! - [`status`]: what the provider reports (status, list, endpoints, replica counts, usage
//!   samples), reads on top of [`provider`];
//! - [`provider`]: the operations, all built on one `reconcile` step; on top of the modules
//!   below, which get the narrow [`parts::Parts`] (settings, engine, desired state, prober,
//!   metrics, containers being removed) rather than the provider;
//! - [`orphans`]: removing containers of this instance that belong to no desired function
//!   (at start and on every reconcile round);
//! - [`attach`]: connecting containers labelled `com.ferry.attach=<instance>` (the gateway
//!   in compose) to the functions network;
//! - [`health`]: replacing replicas that stay unready past `unready_timeout`;
//! - [`autoscale`]: the autoscaling and scale-to-zero loop (every `autoscale_interval`), with
//!   [`scaling`] reading the `com.openfaas.scale.*` labels, [`replica_metrics`] reading the
//!   watchdogs' metrics and [`recommend`] deciding;
//! - [`park`]: the container a function at zero keeps, and cold-start timing; [`freeze`]:
//!   keeping it frozen (paused) first, stopping it after `frozen_stop_after` or past
//!   `max_frozen_memory`;
//! - [`metrics`]: the provider's own Prometheus metrics (`GET /metrics`);
//! - [`store`]: desired state, persisted under `data_dir`;
//! - [`docker`]: containers on the engine (create, list, stop, remove, images, network);
//! - [`spec`]: a deployment as Docker host configuration (limits, read-only root,
//!   capabilities, secret mounts), with [`quantity`] parsing `128M`, `40Mi`, `100m` and
//!   [`confine`] choosing the containers' user and pids limit;
//! - [`readiness`]: `/_/ready` probes of replicas;
//! - [`error`]: the error enum and its HTTP statuses.

pub mod api;
pub mod attach;
pub mod auth;
pub mod autoscale;
pub mod config;
pub mod confine;
pub mod docker;
pub mod error;
pub mod freeze;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod namespaces;
pub mod orphans;
pub mod park;
pub mod parts;
pub mod provider;
pub mod quantity;
pub mod readiness;
pub mod recommend;
pub mod replica_metrics;
pub mod scaling;
pub mod secrets;
pub mod spec;
pub mod status;
pub mod store;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::Config;
pub use error::ProviderError;
pub use provider::Provider;

/// Connects to Docker (and NATS, with `nats_url`), loads desired state, serves the API on
/// `listener` until `shutdown` resolves, and meanwhile keeps replicas reconciled and
/// autoscaled in the background.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProviderError> {
    let credentials = auth::load(&config.auth).await?;
    let engine = docker::Engine::connect(&config).await?;
    engine.ping().await?;
    engine.ensure_network().await?;
    let attacher = attach::Attacher::new(&engine, &config);
    let store = store::Store::open(&config.data_dir)?;
    let secrets = secrets::Secrets::open(&config.data_dir)?;
    let namespaces = namespaces::Namespaces::open(&config.data_dir)?;
    let interval = config.reconcile_interval;
    let autoscale_interval = config.autoscale_interval;
    let jetstream = match &config.nats_url {
        Some(url) => {
            let client = ferry_runtime::jetstream::connect(url, "provider-docker")
                .await
                .map_err(|source| ProviderError::Nats {
                    url: ferry_runtime::redact::url(url),
                    source,
                })?;
            Some(async_nats::jetstream::new(client))
        }
        None => None,
    };
    let provider = Provider::new(config, engine, store, secrets, namespaces, jetstream);

    let cancel = tokio_util::sync::CancellationToken::new();
    let reconciler = tokio::spawn({
        let provider = provider.clone();
        let cancel = cancel.clone();
        async move {
            // Restore the desired state at once (e.g. after a restart), then periodically.
            loop {
                attacher.attach_all().await;
                provider.reconcile_all().await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        }
    });

    let autoscaler = tokio::spawn({
        let provider = provider.clone();
        let cancel = cancel.clone();
        async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(autoscale_interval) => {}
                }
                provider.autoscale_all().await;
            }
        }
    });

    let sampler = tokio::spawn({
        let provider = provider.clone();
        let cancel = cancel.clone();
        async move {
            loop {
                provider.sample_usage().await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(ferry_provider_core::usage::SAMPLE_INTERVAL) => {}
                }
            }
        }
    });

    let address = listener.local_addr().map_err(ProviderError::Serve)?;
    tracing::info!(%address, "provider-docker listening");
    let served = axum::serve(listener, api::router(provider.clone(), credentials))
        .with_graceful_shutdown(shutdown)
        .await;
    cancel.cancel();
    let _ = reconciler.await;
    let _ = autoscaler.await;
    let _ = sampler.await;
    provider.autoscaler.finish().await;
    served.map_err(ProviderError::Serve)
}
