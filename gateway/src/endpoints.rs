//! Where a function's ready replicas listen, cached per function, and which one takes the
//! next call.
//!
//! The list comes from the provider's `GET /system/endpoints/{name}` and is kept for
//! `endpoint_cache_ttl`, then refreshed in the background (see [`crate::cache`]). Calls go
//! round-robin over the ready replicas. A replica that cannot be connected to is skipped from
//! then on and the list is refreshed; when every replica of the list failed, the next call
//! waits for a fresh list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferry_proto::{FunctionEndpoints, FunctionRef, Name};
use futures_util::FutureExt as _;
use http::uri::Authority;

use crate::cache::{Cache, Cached, LoadError};
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

    /// The next replica round-robin, skipping failed ones.
    fn choose(&self) -> Option<usize> {
        let n = self.ready.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start.wrapping_add(i)) % n)
            .find(|&i| !self.ready[i].failed.load(Ordering::Relaxed))
    }
}

/// The replica chosen for one call.
pub(crate) struct Chosen {
    entry: Arc<Cached<Replicas>>,
    index: usize,
}

impl Chosen {
    /// `host:port` of the replica.
    pub(crate) fn authority(&self) -> &Authority {
        &self.entry.value.ready[self.index].authority
    }

    /// The replica could not be connected to: skip it and refresh the list.
    pub(crate) fn connect_failed(&self) {
        self.entry.value.ready[self.index]
            .failed
            .store(true, Ordering::Relaxed);
        self.entry.mark_stale();
    }

    /// The exchange with the replica failed after connecting: refresh the list soon.
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
    pub(crate) fn new(provider: ProviderClient, ttl: Duration) -> Self {
        let load = Arc::new(move |f: FunctionRef| {
            let provider = provider.clone();
            async move {
                let endpoints = provider.endpoints(&f).await?;
                Ok(endpoints.map(Replicas::from_endpoints))
            }
            .boxed()
        });
        Endpoints {
            cache: Cache::new(ttl, load),
        }
    }

    /// A ready replica of `function` (`name` or `name.namespace`, as in the URL).
    pub(crate) async fn choose(&self, function: &str) -> Result<Chosen, GatewayError> {
        if let Some(entry) = self.cache.get(function) {
            if let Some(index) = entry.value.choose() {
                return Ok(Chosen { entry, index });
            }
            if self.cache.is_fresh(&entry) && entry.value.ready.is_empty() {
                return Err(no_ready(function, &entry));
            }
        }
        let f = FunctionRef::parse(function, &Name::default_namespace())
            .map_err(|e| GatewayError::invalid_name(function, e))?;
        let entry = self.cache.load(function, f).await.map_err(|e| match e {
            LoadError::NotFound => GatewayError::FunctionNotFound(function.to_string()),
            LoadError::Failed(reason) => GatewayError::Provider(reason),
        })?;
        match entry.value.choose() {
            Some(index) => Ok(Chosen { entry, index }),
            None => Err(no_ready(function, &entry)),
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
        let picks: Vec<usize> = (0..4).map(|_| r.choose().unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        r.ready[0].failed.store(true, Ordering::Relaxed);
        assert_eq!(r.choose(), Some(1));
        assert_eq!(r.choose(), Some(1));
        r.ready[1].failed.store(true, Ordering::Relaxed);
        assert_eq!(r.choose(), None);
        assert_eq!(replicas(&[]).choose(), None);
    }
}
