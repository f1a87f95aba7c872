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
use ferry_runtime::env::{self, Env, EnvError};
use http::uri::Authority;

pub use client::{HttpClient, SendError};
pub use endpoints::{Chosen, Endpoints, InFlight};
pub use error::InvokeError;
pub use functions::{FunctionInfo, Functions};
pub use metrics::ScaleFromZero;
pub use provider::{ProviderClient, ProviderUrl};
pub use scaling::Scaler;

/// `functions_provider_url` default.
pub const DEFAULT_PROVIDER_URL: &str = "http://127.0.0.1:8081";
/// `provider_timeout` default.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// `endpoint_cache_ttl` default.
pub const DEFAULT_ENDPOINT_CACHE_TTL: Duration = Duration::from_secs(1);
/// `endpoint_max_stale` default.
pub const DEFAULT_ENDPOINT_MAX_STALE: Duration = Duration::from_secs(5);
/// `function_cache_ttl` default.
pub const DEFAULT_FUNCTION_CACHE_TTL: Duration = Duration::from_secs(5);
/// `scale_from_zero` default.
pub const DEFAULT_SCALE_FROM_ZERO: bool = true;
/// `scale_from_zero_timeout` default.
pub const DEFAULT_SCALE_FROM_ZERO_TIMEOUT: Duration = Duration::from_secs(30);

/// How functions are reached: the same variables, with the same defaults, in the gateway and
/// the queue-worker.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `functions_provider_url` (`http://127.0.0.1:8081`): the faas-provider API. Plain
    /// `http://`; a path prefix is kept (`http://host/provider` → `/provider/system/...`).
    pub provider_url: ProviderUrl,
    /// `provider_timeout` (`5s`): the longest one provider look-up (endpoints, function
    /// status, health, scaling) may take.
    pub provider_timeout: Duration,
    /// `endpoint_cache_ttl` (`1s`): how long a function's replica list is used before it is
    /// fetched again from the provider (in the background; a failed replica forces it).
    pub endpoint_cache_ttl: Duration,
    /// `endpoint_max_stale` (`5s`): the oldest a replica list may be and still be used
    /// while it is refreshed in the background; an older one (a function idle for a while)
    /// is fetched again before the call. At or below `endpoint_cache_ttl`, an outdated list
    /// is never used. Replicas the provider stopped listing are forgotten within this time.
    pub endpoint_max_stale: Duration,
    /// `function_cache_ttl` (`5s`): how long a function's settings (that it exists, its
    /// queue, annotations, call timeout, and whether its calls need an API token) are used
    /// before they are fetched again.
    pub function_cache_ttl: Duration,
    /// `scale_from_zero` (`true`, OpenFaaS's name): a call to a function with no ready
    /// replica is held until one is ready, the function being scaled up first when it has
    /// zero desired replicas. `false`: such calls fail at once (`503`).
    pub scale_from_zero: bool,
    /// `scale_from_zero_timeout` (`30s`): how long a call is held waiting for a replica to
    /// become ready; past it the call fails (`503`). The wait does not count toward the
    /// call's own timeout, which starts when the call is sent.
    pub scale_from_zero_timeout: Duration,
}

impl Settings {
    /// Reads the variables; every error names the variable.
    pub fn from_env(e: &impl Env) -> Result<Settings, EnvError> {
        let positive = |name: &str, default: Duration| env::positive_duration_or(e, name, default);
        Ok(Settings {
            provider_url: env::parse_or(
                e,
                "functions_provider_url",
                ProviderUrl::parse(DEFAULT_PROVIDER_URL).expect("valid default"),
                ProviderUrl::parse,
            )
            .map_err(|mut e| {
                // The message quotes the value: not the credentials it may hold.
                e.value = ferry_runtime::redact::url(&e.value);
                e
            })?,
            provider_timeout: positive("provider_timeout", DEFAULT_PROVIDER_TIMEOUT)?,
            endpoint_cache_ttl: env::duration_or(
                e,
                "endpoint_cache_ttl",
                DEFAULT_ENDPOINT_CACHE_TTL,
            )?,
            endpoint_max_stale: env::duration_or(
                e,
                "endpoint_max_stale",
                DEFAULT_ENDPOINT_MAX_STALE,
            )?,
            function_cache_ttl: env::duration_or(
                e,
                "function_cache_ttl",
                DEFAULT_FUNCTION_CACHE_TTL,
            )?,
            scale_from_zero: env::bool_or(e, "scale_from_zero", DEFAULT_SCALE_FROM_ZERO)?,
            scale_from_zero_timeout: positive(
                "scale_from_zero_timeout",
                DEFAULT_SCALE_FROM_ZERO_TIMEOUT,
            )?,
        })
    }
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
            Err(InvokeError::NoReadyReplica { .. }) if self.hold => {
                let chosen = self.scaler.wait(function, &[]).await?;
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
            Err(InvokeError::NoReadyReplica { .. }) if self.hold => {
                // The replica went and no other is ready (scaled to zero meanwhile?).
                Ok((self.scaler.wait(function, tried).await?, true))
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
