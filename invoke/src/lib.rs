//! `ferry-invoke`: reaching a function's replicas, one implementation for the gateway (sync
//! calls) and the queue-worker (async calls, which go straight to a replica rather than
//! through the gateway, so that their deadline is the function's own and not the gateway's
//! sync `upstream_timeout`).
//!
//! - [`provider`]: the provider API client (endpoints, function status, scale) and its URL;
//! - [`cache`]: the per-function cache of provider answers (stale-while-refresh, coalesced
//!   look-ups);
//! - [`endpoints`]: each function's ready replicas and the least-in-flight choice;
//! - [`scaling`]: holding calls while a function scales from zero (one episode per function);
//! - [`functions`]: what a function says about its calls: queue, annotations, timeout;
//! - [`client`]: the pooled HTTP/1 client, sending one request with a deadline, and a body
//!   cut at the deadline;
//! - [`metrics`]: the scale-from-zero counters; [`error`]: [`InvokeError`].
//!
//! [`Invoker`] puts them together: [`Invoker::replica`] picks a ready replica of a function,
//! scaling it from zero and waiting for it if need be, and [`Invoker::next_replica`] picks
//! another after a replica could not be connected to.

pub mod cache;
pub mod client;
pub mod endpoints;
pub mod error;
pub mod functions;
pub mod metrics;
pub mod provider;
pub mod scaling;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

use std::sync::Arc;
use std::time::Duration;

use ferry_runtime::auth::Credentials;
use ferry_runtime::env::{Env, EnvError};
use ferry_runtime::settings;
use http::uri::Authority;

pub use client::{HttpClient, SendError};
pub use endpoints::{Chosen, Endpoints, InFlight};
pub use error::InvokeError;
pub use functions::{FunctionInfo, Functions};
pub use metrics::ScaleFromZero;
pub use provider::{ProviderCallError, ProviderClient, ProviderUrl};
pub use scaling::Scaler;

/// `functions_provider_url` default.
pub const DEFAULT_PROVIDER_URL: &str = "http://127.0.0.1:8081";
/// How functions are reached: the same variables, with the same defaults, declared once for
/// the gateway and the queue-worker.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Settings {
    /// The faas-provider API: plain http://; a path prefix is kept (http://host/provider →
    /// /provider/system/...); user-info in it is dropped.
    #[arg(long = "functions_provider_url", env = "functions_provider_url",
          default_value = DEFAULT_PROVIDER_URL, value_parser = provider_url)]
    pub provider_url: ProviderUrl,
    /// The longest one provider look-up (endpoints, function status, health, scaling) may
    /// take.
    #[arg(long = "provider_timeout", env = "provider_timeout", default_value = "5s",
          value_parser = settings::positive_duration)]
    pub provider_timeout: Duration,
    /// How long a function's replica list is used before it is fetched again from the
    /// provider.
    ///
    /// In the background; a failed replica forces it.
    #[arg(long = "endpoint_cache_ttl", env = "endpoint_cache_ttl", default_value = "1s",
          value_parser = settings::duration)]
    pub endpoint_cache_ttl: Duration,
    /// The oldest a replica list may be and still be used while it is refreshed; an older one
    /// is fetched before the call.
    ///
    /// At or below `endpoint_cache_ttl`, an outdated list is never used. Replicas the
    /// provider stopped listing are forgotten within this time.
    #[arg(long = "endpoint_max_stale", env = "endpoint_max_stale", default_value = "5s",
          value_parser = settings::duration)]
    pub endpoint_max_stale: Duration,
    /// How long a function's settings (that it exists, its queue, annotations, call timeout,
    /// whether its calls need a token) are used before they are fetched again.
    #[arg(long = "function_cache_ttl", env = "function_cache_ttl", default_value = "5s",
          value_parser = settings::duration)]
    pub function_cache_ttl: Duration,
    /// Hold a call to a function without a ready replica until one is ready, scaling it up
    /// from zero first; false: 503 at once.
    #[arg(long = "scale_from_zero", env = "scale_from_zero", default_value = "true",
          action = clap::ArgAction::Set, value_parser = settings::boolean)]
    pub scale_from_zero: bool,
    /// How long a call is held waiting for a ready replica (503 past it); the wait does not
    /// count toward the call's own timeout.
    #[arg(long = "scale_from_zero_timeout", env = "scale_from_zero_timeout",
          default_value = "30s", value_parser = settings::positive_duration)]
    pub scale_from_zero_timeout: Duration,
}

impl Settings {
    /// Reads the variables; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Settings, EnvError> {
        settings::from_env(e)
    }
}

fn provider_url(v: &str) -> Result<ProviderUrl, String> {
    ProviderUrl::parse(v.trim())
}

/// Everything needed to reach functions; cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    /// The pooled HTTP client (replicas and provider).
    pub client: HttpClient,
    /// The provider API.
    pub provider: ProviderClient,
    /// Replica lists per function.
    pub endpoints: Endpoints,
    /// Function settings per function.
    pub functions: Functions,
    /// Scaling from zero.
    pub scaler: Scaler,
    /// The scale-from-zero counters.
    pub scale_from_zero: Arc<ScaleFromZero>,
    hold: bool,
}

impl Invoker {
    /// The pieces for `settings`, sending `credentials` to the provider; the scale-from-zero
    /// counters are registered in `registry` as `<metric_prefix>_...`.
    pub fn new(
        settings: &Settings,
        credentials: Option<&Credentials>,
        registry: &prometheus::Registry,
        metric_prefix: &str,
    ) -> Invoker {
        let client = client::http_client();
        let provider = ProviderClient::new(
            client.clone(),
            settings.provider_url.clone(),
            settings.provider_timeout,
            credentials,
        );
        let endpoints = Endpoints::new(
            provider.clone(),
            settings.endpoint_cache_ttl,
            settings.endpoint_max_stale,
        );
        let scale_from_zero = Arc::new(ScaleFromZero::new(registry, metric_prefix));
        let scaler = Scaler::new(
            provider.clone(),
            client.clone(),
            endpoints.clone(),
            settings.scale_from_zero_timeout,
            scale_from_zero.clone(),
        );
        Invoker {
            functions: Functions::new(provider.clone(), settings.function_cache_ttl),
            client,
            provider,
            endpoints,
            scaler,
            scale_from_zero,
            hold: settings.scale_from_zero,
        }
    }

    /// Whether calls to a function without a ready replica are held (`scale_from_zero`).
    pub fn holds_calls(&self) -> bool {
        self.hold
    }

    /// A ready replica of `function` (`name` or `name.namespace`), counted in flight; when it
    /// has none and calls are held, after scaling it from zero and waiting for one. The flag
    /// says whether the call waited (its own time starts after the wait).
    pub async fn replica(&self, function: &str) -> Result<(Chosen, bool), InvokeError> {
        match self.endpoints.choose(function).await {
            Ok(chosen) => Ok((chosen, false)),
            Err(InvokeError::NoReadyReplica { replicas, .. }) if self.hold => {
                let chosen = self.scaler.wait(function, &[], replicas == 0).await?;
                let chosen = chosen.ok_or_else(|| InvokeError::NoReadyReplica {
                    function: function.to_string(),
                    replicas: 0,
                })?;
                Ok((chosen, true))
            }
            Err(error) => Err(error),
        }
    }

    /// After `failed` could not be connected to (the caller has called
    /// [`Chosen::connect_failed`]): a ready replica not in `tried` (`failed` included), from a
    /// fresh list, waiting for one if none is ready and calls are held. `Ok((None, _))`:
    /// every ready replica was tried. The flag says whether the call waited.
    pub async fn next_replica(
        &self,
        function: &str,
        failed: &Chosen,
        tried: &[Authority],
    ) -> Result<(Option<Chosen>, bool), InvokeError> {
        match self.endpoints.retry(function, failed, tried).await {
            Err(InvokeError::NoReadyReplica { replicas, .. }) if self.hold => {
                // The replica went and no other is ready (scaled to zero meanwhile?).
                let chosen = self.scaler.wait(function, tried, replicas == 0).await?;
                Ok((chosen, true))
            }
            next => Ok((next?, false)),
        }
    }

    /// Forgets functions not called for `idle`.
    pub fn sweep(&self, idle: Duration) {
        self.endpoints.sweep(idle);
        self.functions.sweep(idle);
    }
}
