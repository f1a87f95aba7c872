//! Where a function's ready replicas listen, cached per function, and which one takes the
//! next call.
//!
//! The list comes from the provider's `GET /system/endpoints/{name}` (see [`crate::cache`]).
//! It is used as it is for `endpoint_cache_ttl`; up to `endpoint_max_stale` old it is still
//! used while a background task fetches it again; an older one (a function idle for a
//! while, whose replicas may have been replaced, scaled or removed meanwhile) is fetched
//! before the call, concurrent calls sharing one look-up. The provider stops listing a
//! replica as soon as it starts removing it, so a removed replica leaves the gateway's list
//! within `endpoint_max_stale` (within about `endpoint_cache_ttl` for a function in use).
//! While scaling from zero, the gateway also puts a list in the cache itself, as soon as it
//! saw a replica become ready (see [`crate::scaling`]).
//!
//! **Least in flight.** Each call goes to the ready replica with the fewest calls in flight
//! from this gateway, ties broken round-robin. The count of a replica (by address) lives
//! outside the cached lists, so it survives their refreshes: a call is counted from the moment
//! its replica is chosen until its response body is finished or dropped ([`InFlight`]).
//! Choosing is a scan of the (few) ready replicas with atomic loads, and counting is one
//! atomic increment and a reference-count bump: no lock, no allocation.
//!
//! A replica that cannot be connected to is skipped until the list is fetched again;
//! [`Endpoints::retry`] fetches it at once (one look-up for all the calls that saw the same
//! list fail) and picks a ready replica the call has not tried. While the provider cannot be
//! reached, the last list it gave keeps being used.

mod replicas;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use ferry_proto::{FunctionEndpoints, FunctionRef};
use futures_util::FutureExt as _;
use http::uri::Authority;

use crate::cache::{Cache, Cached, LoadError, Lookup};
use crate::error::InvokeError;
use crate::provider::ProviderClient;

use replicas::Loads;
pub use replicas::{Chosen, InFlight, Replicas};

/// The endpoint cache.
#[derive(Clone)]
pub struct Endpoints {
    cache: Cache<Replicas>,
    loads: Arc<Loads>,
}

impl Endpoints {
    /// Lists are refreshed in the background after `ttl`, before use once older than
    /// `max_stale`.
    pub fn new(provider: ProviderClient, ttl: Duration, max_stale: Duration) -> Self {
        let loads = Arc::new(Loads::default());
        let load = {
            let loads = loads.clone();
            Arc::new(move |f: FunctionRef| {
                let (provider, loads) = (provider.clone(), loads.clone());
                async move {
                    let endpoints = provider.endpoints(&f).await?;
                    Ok(endpoints.map(|e| Replicas::from_endpoints(e, &loads, &[])))
                }
                .boxed()
            })
        };
        Endpoints {
            cache: Cache::new(ttl, max_stale, load),
            loads,
        }
    }

    /// Caches `endpoints` of `f` under `function` (as addressed in the URL), counting the
    /// replicas at `seen_ready` as ready too (the gateway just saw them answer their readiness probe).
    pub fn install(
        &self,
        function: &str,
        f: FunctionRef,
        endpoints: FunctionEndpoints,
        seen_ready: &[Authority],
    ) -> Arc<Cached<Replicas>> {
        let replicas = Replicas::from_endpoints(endpoints, &self.loads, seen_ready);
        self.cache.insert(function, f, replicas)
    }

    /// Caches `entry` (installed for the same function addressed another way) under
    /// `function` too.
    pub fn adopt(&self, function: &str, entry: &Arc<Cached<Replicas>>) {
        self.cache.adopt(function, entry);
    }

    /// A replica of `entry` for a call that already tried `tried`, counted in flight.
    pub fn pick(entry: Arc<Cached<Replicas>>, tried: &[Authority]) -> Option<Chosen> {
        Chosen::pick(entry, tried)
    }

    /// A ready replica of `function` (`name` or `name.namespace`, as in the URL). The hot
    /// path is one read lock, a scan of the ready replicas' in-flight counts and two atomic
    /// increments; the provider is asked first only when nothing usable is cached.
    pub async fn choose(&self, function: &str) -> Result<Chosen, InvokeError> {
        let old = match self.cache.get(function) {
            Lookup::Fresh(entry) => {
                if entry.value.ready.is_empty() {
                    return Err(no_ready(function, &entry));
                }
                match Chosen::pick(entry.clone(), &[]) {
                    Some(chosen) => return Ok(chosen),
                    // Every replica failed since the list came: fetch it again.
                    None => Some(entry),
                }
            }
            Lookup::Stale(entry) => match Chosen::pick(entry.clone(), &[]) {
                Some(chosen) => return Ok(chosen),
                None => Some(entry),
            },
            Lookup::Expired(entry) => Some(entry),
            Lookup::Missing => None,
        };
        let entry = self.fetch(function, old).await?;
        if entry.value.ready.is_empty() {
            return Err(no_ready(function, &entry));
        }
        Chosen::pick(entry, &[]).ok_or_else(|| InvokeError::ReplicasExhausted(function.to_string()))
    }

    /// After connecting to `failed` did not work (the caller has called
    /// [`Chosen::connect_failed`]): a ready replica the call has not tried yet (`tried`,
    /// `failed` included), from a list fetched since, unless a look-up already replaced the
    /// one `failed` came from. `Ok(None)`: every ready replica was tried. No ready replica
    /// at all → [`InvokeError::NoReadyReplica`]; a function that is gone → not found.
    pub async fn retry(
        &self,
        function: &str,
        failed: &Chosen,
        tried: &[Authority],
    ) -> Result<Option<Chosen>, InvokeError> {
        let entry = match self.cache.newer(function, &failed.entry).await {
            Ok(entry) => entry,
            Err(LoadError::NotFound) => {
                return Err(InvokeError::FunctionNotFound(function.to_string()));
            }
            Err(LoadError::Failed(reason)) => {
                tracing::warn!(
                    function, %reason,
                    "cannot refresh the replica list; trying the rest of the last one"
                );
                failed.entry.clone()
            }
        };
        if entry.value.ready.is_empty() {
            return Err(no_ready(function, &entry));
        }
        Ok(Chosen::pick(entry, tried))
    }

    /// Asks the provider (sharing the look-up with concurrent callers); when it cannot be
    /// asked, keeps using `old` if it has a replica left to try.
    async fn fetch(
        &self,
        function: &str,
        old: Option<Arc<Cached<Replicas>>>,
    ) -> Result<Arc<Cached<Replicas>>, InvokeError> {
        match self.cache.reload(function, old.as_ref()).await? {
            Ok(entry) => Ok(entry),
            Err(reason) => match old {
                Some(old) if old.value.any_usable() => {
                    tracing::warn!(
                        function, %reason,
                        "cannot refresh the replica list; using the last one"
                    );
                    Ok(old)
                }
                _ => Err(InvokeError::Provider(reason)),
            },
        }
    }

    /// Forgets functions not called for `idle`, and in-flight counters of addresses no
    /// list has any more.
    pub fn sweep(&self, idle: Duration) {
        self.cache.sweep(idle);
        self.loads.sweep();
    }
}

fn no_ready(function: &str, entry: &Cached<Replicas>) -> InvokeError {
    InvokeError::NoReadyReplica {
        function: function.to_string(),
        replicas: entry.value.desired,
    }
}
