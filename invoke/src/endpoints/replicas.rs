//! One function's ready replicas as the endpoint cache keeps them, the least-in-flight
//! choice among them, and the in-flight count of a chosen replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ferry_proto::FunctionEndpoints;
use http::uri::Authority;

use crate::cache::Cached;

/// The ready replicas of one function.
#[derive(Debug)]
pub struct Replicas {
    /// Desired replicas per the provider.
    pub(super) desired: u64,
    pub(super) ready: Box<[Replica]>,
    pub(super) next: AtomicUsize,
}

#[derive(Debug)]
pub(super) struct Replica {
    pub(super) authority: Authority,
    pub(super) failed: AtomicBool,
    /// Calls in flight to this address, shared by every list that has it.
    pub(super) load: Arc<AtomicUsize>,
}

impl Replicas {
    /// The ready replicas of `e`, and those whose address is in `seen_ready` (readiness the
    /// gateway checked itself, fresher than the provider's).
    pub(super) fn from_endpoints(
        e: FunctionEndpoints,
        loads: &Loads,
        seen_ready: &[Authority],
    ) -> Replicas {
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
    pub(super) fn choose(&self, tried: &[Authority]) -> Option<usize> {
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
    pub(super) fn any_usable(&self) -> bool {
        self.ready.iter().any(|r| !r.failed.load(Ordering::Relaxed))
    }
}

/// In-flight counters by replica address, shared by the successive lists of a function
/// (weakly held: a counter goes when no list has its address any more).
#[derive(Debug, Default)]
pub(super) struct Loads {
    pub(super) by_address: Mutex<HashMap<Authority, Weak<AtomicUsize>>>,
}

impl Loads {
    /// The counter of `authority`, made when no list has it.
    pub(super) fn of(&self, authority: &Authority) -> Arc<AtomicUsize> {
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(load) = map.get(authority).and_then(Weak::upgrade) {
            return load;
        }
        let load = Arc::new(AtomicUsize::new(0));
        map.insert(authority.clone(), Arc::downgrade(&load));
        load
    }

    /// Forgets counters no list uses.
    pub(super) fn sweep(&self) {
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
    pub(super) entry: Arc<Cached<Replicas>>,
    pub(super) index: usize,
    in_flight: InFlight,
}

impl Chosen {
    pub(super) fn pick(entry: Arc<Cached<Replicas>>, tried: &[Authority]) -> Option<Chosen> {
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
