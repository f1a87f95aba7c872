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
//!
//! Calls go round-robin over the ready replicas. A replica that cannot be connected to is
//! skipped until the list is fetched again; [`Endpoints::retry`] fetches it at once (one
//! look-up for all the calls that saw the same list fail) and picks a ready replica the
//! call has not tried. While the provider cannot be reached, the last list it gave keeps
//! being used.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_proto::{FunctionEndpoints, FunctionRef, Name};
use futures_util::FutureExt as _;
use http::uri::Authority;

use crate::cache::{Cache, Cached, LoadError, Lookup};
use crate::error::GatewayError;
use crate::provider::ProviderClient;

/// The ready replicas of one function.
#[derive(Debug)]
pub(crate) struct Replicas {
    /// Desired replicas per the provider.
    desired: u64,
    ready: Box<[Replica]>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Replica {
    authority: Authority,
    failed: AtomicBool,
}

impl Replicas {
    fn from_endpoints(e: FunctionEndpoints) -> Replicas {
        let ready = e
            .endpoints
            .into_iter()
            .filter(|e| e.ready)
            .filter_map(|e| match e.address.parse::<Authority>() {
                Ok(authority) => Some(Replica {
                    authority,
                    failed: AtomicBool::new(false),
                }),
                Err(error) => {
                    tracing::warn!(address = %e.address, %error, "provider sent a bad address");
                    None
                }
            })
            .collect();
        Replicas {
            desired: e.replicas,
            ready,
            next: AtomicUsize::new(0),
        }
    }

    /// The next replica round-robin, skipping failed ones and those in `tried`.
    fn choose(&self, tried: &[Authority]) -> Option<usize> {
        let n = self.ready.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| (start.wrapping_add(i)) % n).find(|&i| {
            let replica = &self.ready[i];
            !replica.failed.load(Ordering::Relaxed) && !tried.contains(&replica.authority)
        })
    }

    /// Whether some replica has not failed yet.
    fn any_usable(&self) -> bool {
        self.ready.iter().any(|r| !r.failed.load(Ordering::Relaxed))
    }
}

/// The replica chosen for one call.
pub(crate) struct Chosen {
    entry: Arc<Cached<Replicas>>,
    index: usize,
}

impl Chosen {
    fn pick(entry: Arc<Cached<Replicas>>, tried: &[Authority]) -> Option<Chosen> {
        let index = entry.value.choose(tried)?;
        Some(Chosen { entry, index })
    }

    /// `host:port` of the replica.
    pub(crate) fn authority(&self) -> &Authority {
        &self.entry.value.ready[self.index].authority
    }

    /// The replica could not be connected to: skip it and refresh the list (which brings it
    /// back if the provider still lists it as ready).
    pub(crate) fn connect_failed(&self) {
        self.entry.value.ready[self.index]
            .failed
            .store(true, Ordering::Relaxed);
        self.entry.mark_stale();
    }

    /// The exchange with the replica failed after the request went out: refresh the list
    /// soon. (Not skipped: the cause may as well be the client, e.g. a broken upload.)
    pub(crate) fn exchange_failed(&self) {
        self.entry.mark_stale();
    }
}

/// The endpoint cache.
#[derive(Clone)]
pub(crate) struct Endpoints {
    cache: Cache<Replicas>,
}

impl Endpoints {
    /// Lists are refreshed in the background after `ttl`, before use once older than
    /// `max_stale`.
    pub(crate) fn new(provider: ProviderClient, ttl: Duration, max_stale: Duration) -> Self {
        let load = Arc::new(move |f: FunctionRef| {
            let provider = provider.clone();
            async move {
                let endpoints = provider.endpoints(&f).await?;
                Ok(endpoints.map(Replicas::from_endpoints))
            }
            .boxed()
        });
        Endpoints {
            cache: Cache::new(ttl, max_stale, load),
        }
    }

    /// A ready replica of `function` (`name` or `name.namespace`, as in the URL). The hot
    /// path is one read lock and an atomic increment; the provider is asked first only
    /// when nothing usable is cached.
    pub(crate) async fn choose(&self, function: &str) -> Result<Chosen, GatewayError> {
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
        Chosen::pick(entry, &[]).ok_or_else(|| {
            GatewayError::Provider(format!(
                "every known replica of {function} failed, and no new list could be fetched"
            ))
        })
    }

    /// After connecting to `failed` did not work (the caller has called
    /// [`Chosen::connect_failed`]): a ready replica the call has not tried yet (`tried`,
    /// `failed` included), from a list fetched since, unless a look-up already replaced the
    /// one `failed` came from. `Ok(None)`: every ready replica was tried. No ready replica
    /// at all → [`GatewayError::NoReadyReplica`]; a function that is gone → not found.
    pub(crate) async fn retry(
        &self,
        function: &str,
        failed: &Chosen,
        tried: &[Authority],
    ) -> Result<Option<Chosen>, GatewayError> {
        let entry = match self.cache.newer(function, &failed.entry).await {
            Ok(entry) => entry,
            Err(LoadError::NotFound) => {
                return Err(GatewayError::FunctionNotFound(function.to_string()));
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
    ) -> Result<Arc<Cached<Replicas>>, GatewayError> {
        let f = match &old {
            Some(old) => old.function().clone(),
            None => FunctionRef::parse(function, &Name::default_namespace())
                .map_err(|e| GatewayError::invalid_name(function, e))?,
        };
        match self.cache.load(function, f).await {
            Ok(entry) => Ok(entry),
            Err(LoadError::NotFound) => Err(GatewayError::FunctionNotFound(function.to_string())),
            Err(LoadError::Failed(reason)) => match old {
                Some(old) if old.value.any_usable() => {
                    tracing::warn!(
                        function, %reason,
                        "cannot refresh the replica list; using the last one"
                    );
                    Ok(old)
                }
                _ => Err(GatewayError::Provider(reason)),
            },
        }
    }

    /// Forgets functions not called for `idle`.
    pub(crate) fn sweep(&self, idle: Duration) {
        self.cache.sweep(idle);
    }
}

fn no_ready(function: &str, entry: &Cached<Replicas>) -> GatewayError {
    GatewayError::NoReadyReplica {
        function: function.to_string(),
        replicas: entry.value.desired,
    }
}

#[cfg(test)]
mod tests {
    use ferry_proto::Endpoint;

    use super::*;

    fn replicas(ready: &[(&str, bool)]) -> Replicas {
        Replicas::from_endpoints(FunctionEndpoints {
            name: "f".into(),
            namespace: "openfaas-fn".into(),
            replicas: ready.len() as u64,
            endpoints: ready
                .iter()
                .enumerate()
                .map(|(i, (address, ready))| Endpoint {
                    id: i.to_string(),
                    address: address.to_string(),
                    ready: *ready,
                })
                .collect(),
        })
    }

    #[test]
    fn round_robin_over_ready_replicas_skipping_failed_ones() {
        let r = replicas(&[
            ("127.0.0.1:1", true),
            ("127.0.0.1:2", false),
            ("127.0.0.1:3", true),
            ("not an address", true),
        ]);
        assert_eq!(r.ready.len(), 2);
        let picks: Vec<usize> = (0..4).map(|_| r.choose(&[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        r.ready[0].failed.store(true, Ordering::Relaxed);
        assert_eq!(r.choose(&[]), Some(1));
        assert_eq!(r.choose(&[]), Some(1));
        assert!(r.any_usable());
        r.ready[1].failed.store(true, Ordering::Relaxed);
        assert_eq!(r.choose(&[]), None);
        assert!(!r.any_usable());
        assert_eq!(replicas(&[]).choose(&[]), None);
    }

    #[test]
    fn replicas_a_call_already_tried_are_not_chosen_again() {
        let r = replicas(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]);
        let tried: [Authority; 1] = ["127.0.0.1:1".parse().unwrap()];
        for _ in 0..4 {
            assert_eq!(r.choose(&tried), Some(1));
        }
        let both = [tried[0].clone(), "127.0.0.1:2".parse().unwrap()];
        assert_eq!(r.choose(&both), None);
    }
}
