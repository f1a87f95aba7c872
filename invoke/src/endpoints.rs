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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferry_proto::{FunctionEndpoints, FunctionRef, Name};
use futures_util::FutureExt as _;
use http::uri::Authority;

use crate::cache::{Cache, Cached, LoadError, Lookup};
use crate::error::InvokeError;
use crate::provider::ProviderClient;

/// The ready replicas of one function.
#[derive(Debug)]
pub struct Replicas {
    /// Desired replicas per the provider.
    desired: u64,
    ready: Box<[Replica]>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Replica {
    authority: Authority,
    failed: AtomicBool,
    /// Calls in flight to this address, shared by every list that has it.
    load: Arc<AtomicUsize>,
}

impl Replicas {
    /// The ready replicas of `e`, and those whose address is in `seen_ready` (readiness the
    /// gateway checked itself, fresher than the provider's).
    fn from_endpoints(e: FunctionEndpoints, loads: &Loads, seen_ready: &[Authority]) -> Replicas {
        let ready = e
            .endpoints
            .into_iter()
            .filter_map(|e| match e.address.parse::<Authority>() {
                Ok(authority) => (e.ready || seen_ready.contains(&authority)).then(|| Replica {
                    load: loads.of(&authority),
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

    /// The replica with the fewest calls in flight, ties broken round-robin, skipping failed
    /// ones and those in `tried`.
    fn choose(&self, tried: &[Authority]) -> Option<usize> {
        let n = self.ready.len();
        let usable = |r: &Replica| {
            !r.failed.load(Ordering::Relaxed) && (tried.is_empty() || !tried.contains(&r.authority))
        };
        match n {
            0 => return None,
            1 => return usable(&self.ready[0]).then_some(0),
            _ => {}
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, usize)> = None;
        for i in 0..n {
            let index = start.wrapping_add(i) % n;
            let replica = &self.ready[index];
            if !usable(replica) {
                continue;
            }
            let load = replica.load.load(Ordering::Relaxed);
            if best.is_none_or(|(_, least)| load < least) {
                best = Some((index, load));
                if load == 0 {
                    break;
                }
            }
        }
        best.map(|(index, _)| index)
    }

    /// Whether some replica has not failed yet.
    fn any_usable(&self) -> bool {
        self.ready.iter().any(|r| !r.failed.load(Ordering::Relaxed))
    }
}

/// In-flight counters by replica address, shared by the successive lists of a function
/// (weakly held: a counter goes when no list has its address any more).
#[derive(Debug, Default)]
struct Loads {
    by_address: Mutex<HashMap<Authority, Weak<AtomicUsize>>>,
}

impl Loads {
    /// The counter of `authority`, made when no list has it.
    fn of(&self, authority: &Authority) -> Arc<AtomicUsize> {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(load) = map.get(authority).and_then(Weak::upgrade) {
            return load;
        }
        let load = Arc::new(AtomicUsize::new(0));
        map.insert(authority.clone(), Arc::downgrade(&load));
        load
    }

    /// Forgets counters no list uses.
    fn sweep(&self) {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, load| load.strong_count() > 0);
    }
}

/// One call counted in flight to its replica until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(load: &Arc<AtomicUsize>) -> InFlight {
        load.fetch_add(1, Ordering::Relaxed);
        InFlight(load.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replica chosen for one call, counted in flight while this (or the [`InFlight`] taken
/// from it) lives.
pub struct Chosen {
    entry: Arc<Cached<Replicas>>,
    index: usize,
    in_flight: InFlight,
}

impl Chosen {
    fn pick(entry: Arc<Cached<Replicas>>, tried: &[Authority]) -> Option<Chosen> {
        let index = entry.value.choose(tried)?;
        let in_flight = InFlight::start(&entry.value.ready[index].load);
        Some(Chosen {
            entry,
            index,
            in_flight,
        })
    }

    /// `host:port` of the replica.
    pub fn authority(&self) -> &Authority {
        &self.entry.value.ready[self.index].authority
    }

    /// The call's in-flight count, to be held until its response is over.
    pub fn into_in_flight(self) -> InFlight {
        self.in_flight
    }

    /// The replica could not be connected to: skip it and refresh the list (which brings it
    /// back if the provider still lists it as ready).
    pub fn connect_failed(&self) {
        self.entry.value.ready[self.index]
            .failed
            .store(true, Ordering::Relaxed);
        self.entry.mark_stale();
    }

    /// The exchange with the replica failed after the request went out: refresh the list
    /// soon. (Not skipped: the cause may as well be the client, e.g. a broken upload.)
    pub fn exchange_failed(&self) {
        self.entry.mark_stale();
    }
}

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
        Chosen::pick(entry, &[]).ok_or_else(|| {
            InvokeError::Provider(format!(
                "every known replica of {function} failed, and no new list could be fetched"
            ))
        })
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
        let f = match &old {
            Some(old) => old.function().clone(),
            None => FunctionRef::parse(function, &Name::default_namespace())
                .map_err(|e| InvokeError::invalid_name(function, e))?,
        };
        match self.cache.load(function, f).await {
            Ok(entry) => Ok(entry),
            Err(LoadError::NotFound) => Err(InvokeError::FunctionNotFound(function.to_string())),
            Err(LoadError::Failed(reason)) => match old {
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

#[cfg(test)]
mod tests {
    use ferry_proto::Endpoint;

    use super::*;

    fn endpoints(ready: &[(&str, bool)]) -> FunctionEndpoints {
        FunctionEndpoints {
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
            probe: Default::default(),
        }
    }

    fn replicas(ready: &[(&str, bool)]) -> Replicas {
        Replicas::from_endpoints(endpoints(ready), &Loads::default(), &[])
    }

    fn authority(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn round_robin_over_idle_ready_replicas_skipping_failed_ones() {
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
        let tried = [authority("127.0.0.1:1")];
        for _ in 0..4 {
            assert_eq!(r.choose(&tried), Some(1));
        }
        let both = [tried[0].clone(), authority("127.0.0.1:2")];
        assert_eq!(r.choose(&both), None);
        let one = replicas(&[("127.0.0.1:1", true)]);
        assert_eq!(one.choose(&[]), Some(0));
        assert_eq!(one.choose(&tried), None);
    }

    #[test]
    fn the_replica_with_the_fewest_calls_in_flight_is_chosen() {
        // (in-flight counts, failed replicas, the picks of successive calls that hold
        // nothing; ties go round-robin from a counter that starts at 0).
        let table: &[(&[usize], &[usize], &[usize])] = &[
            (&[0, 0, 0], &[], &[0, 1, 2, 0]),
            (&[1, 0, 0], &[], &[1, 1, 2, 1]),
            (&[1, 0, 1], &[], &[1, 1, 1, 1]),
            (&[2, 1, 3], &[], &[1, 1, 1, 1]),
            (&[5, 5, 2], &[], &[2, 2, 2, 2]),
            (&[3, 3, 3], &[], &[0, 1, 2, 0]),
            (&[1, 0, 1], &[1], &[0, 2, 2, 0]),
            (&[0, 0, 0], &[0, 1, 2], &[]),
        ];
        for (loads, failed, picks) in table {
            let r = replicas(&[
                ("127.0.0.1:1", true),
                ("127.0.0.1:2", true),
                ("127.0.0.1:3", true),
            ]);
            for (replica, load) in r.ready.iter().zip(loads.iter()) {
                replica.load.store(*load, Ordering::Relaxed);
            }
            for &i in *failed {
                r.ready[i].failed.store(true, Ordering::Relaxed);
            }
            let got: Vec<usize> = (0..picks.len()).map(|_| r.choose(&[]).unwrap()).collect();
            assert_eq!(&got, picks, "loads {loads:?}, failed {failed:?}");
            if picks.is_empty() {
                assert_eq!(r.choose(&[]), None);
            }
        }
    }

    #[test]
    fn calls_are_counted_until_released_and_spread_as_they_pile_up() {
        let f = FunctionRef::parse("f", &Name::default_namespace()).unwrap();
        let cache: Cache<Replicas> = Cache::new(
            Duration::from_secs(1),
            Duration::from_secs(5),
            Arc::new(|_| async { Ok(None) }.boxed()),
        );
        let entry = cache.insert(
            "f",
            f,
            replicas(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]),
        );
        let loads = || -> Vec<usize> {
            entry
                .value
                .ready
                .iter()
                .map(|r| r.load.load(Ordering::Relaxed))
                .collect()
        };
        // A slow call holds replica 0: every following call goes to replica 1 while each
        // finishes before the next starts.
        let slow = Chosen::pick(entry.clone(), &[]).unwrap();
        assert_eq!(slow.index, 0);
        for _ in 0..5 {
            let quick = Chosen::pick(entry.clone(), &[]).unwrap();
            assert_eq!(quick.index, 1);
        }
        assert_eq!(loads(), [1, 0]);
        // Calls that overlap even the loads out.
        let a = Chosen::pick(entry.clone(), &[]).unwrap();
        assert_eq!(a.index, 1);
        let b = Chosen::pick(entry.clone(), &[]).unwrap();
        let c = Chosen::pick(entry.clone(), &[]).unwrap();
        assert_ne!(b.index, c.index);
        assert_eq!(loads(), [2, 2]);
        // The count moves with the InFlight taken for the response body.
        let held = slow.into_in_flight();
        drop((a, b, c));
        assert_eq!(loads(), [1, 0]);
        drop(held);
        assert_eq!(loads(), [0, 0]);
    }

    #[tokio::test]
    async fn counts_survive_a_refresh_of_the_list() {
        let loads = Loads::default();
        let first = Replicas::from_endpoints(
            endpoints(&[("127.0.0.1:1", true), ("127.0.0.1:2", true)]),
            &loads,
            &[],
        );
        first.ready[0].load.fetch_add(1, Ordering::Relaxed);
        // The refreshed list lists the replicas in another order, and a new one.
        let second = Replicas::from_endpoints(
            endpoints(&[
                ("127.0.0.1:3", true),
                ("127.0.0.1:2", true),
                ("127.0.0.1:1", true),
            ]),
            &loads,
            &[],
        );
        let counts: Vec<usize> = second
            .ready
            .iter()
            .map(|r| r.load.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [0, 0, 1]);
        assert_ne!(second.choose(&[]), Some(2));
        // Counters of addresses no list has any more are swept.
        drop((first, second));
        loads.sweep();
        assert!(loads.by_address.lock().unwrap().is_empty());
    }

    #[test]
    fn replicas_the_gateway_saw_ready_count_as_ready() {
        let e = endpoints(&[("127.0.0.1:1", false), ("127.0.0.1:2", false)]);
        let r = Replicas::from_endpoints(e, &Loads::default(), &[authority("127.0.0.1:2")]);
        assert_eq!(r.ready.len(), 1);
        assert_eq!(r.ready[0].authority, authority("127.0.0.1:2"));
    }
}
