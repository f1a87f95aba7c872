//! A small per-function cache of provider answers, read on every call.
//!
//! Reads take a `std::sync::RwLock` read lock just long enough to clone an `Arc`; nothing is
//! held across an await. What a read gets depends on the entry's age (time since it was
//! fetched):
//!
//! - younger than `ttl` (and not marked stale after a failure): **fresh**, used as it is;
//! - younger than `max_stale`: **stale**, still used while one background task fetches a
//!   fresh copy (stale-while-revalidate), so a function in steady use never waits for the
//!   provider;
//! - older: **expired**, fetched again before it is used, so a function that was idle for a
//!   while is never served an answer older than `max_stale` (its replicas may have been
//!   replaced meanwhile). `max_stale <= ttl` turns stale serving off.
//!
//! Look-ups are coalesced: however many requests need the same key at once (a miss, an
//! expired entry, a background refresh, a retry after a failure), one look-up goes to the
//! provider and they all share its answer. A function the provider no longer knows is dropped
//! from the cache; unknown names are never stored, and entries nobody asked for lately are
//! swept. When a look-up fails (provider unreachable), the old value is kept, counts as
//! fresh for another TTL (no retry storm), and callers may keep using it. A value learnt
//! otherwise (a replica the gateway itself saw become ready while scaling from zero) can be
//! inserted as a fresh entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferry_proto::{FunctionRef, Name};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Either, Shared};
use tokio::time::Instant;

use crate::error::InvokeError;
use crate::provider::ProviderCallError;

/// Why a look-up produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The provider does not know the function.
    NotFound,
    /// The provider could not be asked, or answered something unusable.
    Failed(ProviderCallError),
}

/// Fetches the value of one function from the provider: `Ok(None)` when it does not exist.
pub type Loader<V> = Arc<
    dyn Fn(FunctionRef) -> BoxFuture<'static, Result<Option<V>, ProviderCallError>> + Send + Sync,
>;

type Pending<V> = Shared<BoxFuture<'static, Result<Arc<Cached<V>>, LoadError>>>;

/// One cached value and its freshness.
#[derive(Debug)]
pub struct Cached<V> {
    /// The value.
    pub value: V,
    /// The function it belongs to (to refresh it).
    function: FunctionRef,
    /// When it was fetched (or last failed to refresh): nanoseconds since the cache's epoch.
    fetched: AtomicU64,
    stale: AtomicBool,
    refreshing: AtomicBool,
}

impl<V> Cached<V> {
    /// Asks for a refresh at the next read (after a failure that suggests it is outdated).
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// The function the value belongs to.
    pub fn function(&self) -> &FunctionRef {
        &self.function
    }
}

/// What the cache holds for a key, by freshness (see the module docs).
pub enum Lookup<V> {
    /// Younger than the TTL: use it.
    Fresh(Arc<Cached<V>>),
    /// Past the TTL (or marked stale) but younger than `max_stale`: use it; a background
    /// refresh has been started.
    Stale(Arc<Cached<V>>),
    /// Older than `max_stale`: fetch it again ([`Cache::load`]) before using it; use it only
    /// if that look-up fails.
    Expired(Arc<Cached<V>>),
    /// Nothing cached: [`Cache::load`] it.
    Missing,
}

/// The cache; cheap to clone.
pub struct Cache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<V> {
    epoch: Instant,
    ttl: Duration,
    max_stale: Duration,
    load: Loader<V>,
    table: RwLock<HashMap<Box<str>, Arc<Cached<V>>>>,
    pending: Mutex<HashMap<Box<str>, Pending<V>>>,
}

impl<V: Send + Sync + 'static> Cache<V> {
    /// A cache filled by `load` whose entries are refreshed in the background after `ttl`,
    /// and before use once older than `max_stale`.
    pub fn new(ttl: Duration, max_stale: Duration, load: Loader<V>) -> Self {
        Cache {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                ttl,
                max_stale,
                load,
                table: RwLock::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// What is cached for `key` (the function as addressed in the URL). For a stale entry, a
    /// background refresh is started (once, however many readers see it).
    pub fn get(&self, key: &str) -> Lookup<V> {
        let Some(cached) = read(&self.inner.table).get(key).cloned() else {
            return Lookup::Missing;
        };
        let age = self.inner.age(&cached);
        if age < self.inner.ttl && !cached.stale.load(Ordering::Relaxed) {
            return Lookup::Fresh(cached);
        }
        if age >= self.inner.max_stale {
            return Lookup::Expired(cached);
        }
        if !cached.refreshing.swap(true, Ordering::AcqRel) {
            drop(self.load(key, cached.function.clone()));
        }
        Lookup::Stale(cached)
    }

    /// A value for `key` fetched after `seen` turned out to be wrong (a replica it lists
    /// cannot be reached): the cached one if a look-up already replaced `seen` since, else
    /// a new look-up, shared with everyone asking at the same time. So a burst of calls
    /// failing on the same outdated list costs one provider look-up, not one per call.
    pub fn newer(
        &self,
        key: &str,
        seen: &Arc<Cached<V>>,
    ) -> impl Future<Output = Result<Arc<Cached<V>>, LoadError>> + Send + 'static {
        match self.get(key) {
            Lookup::Fresh(current) if !Arc::ptr_eq(&current, seen) => {
                Either::Left(std::future::ready(Ok(current)))
            }
            _ => Either::Right(self.load(key, seen.function.clone())),
        }
    }

    /// Looks `function` up at the provider and caches the answer under `key`, sharing one
    /// look-up between all callers asking for the same key at the same time.
    pub fn load(
        &self,
        key: &str,
        function: FunctionRef,
    ) -> impl Future<Output = Result<Arc<Cached<V>>, LoadError>> + Send + 'static {
        let mut pending = lock(&self.inner.pending);
        if let Some(p) = pending.get(key) {
            return p.clone();
        }
        let inner = self.inner.clone();
        let key: Box<str> = key.into();
        let fetch = {
            let key = key.clone();
            async move {
                let result = (inner.load)(function.clone()).await;
                let out = inner.store(&key, function, result);
                lock(&inner.pending).remove(&key);
                out
            }
        }
        .boxed()
        .shared();
        pending.insert(key, fetch.clone());
        // Driven to the end by its own task, so that a caller who gives up (a client that
        // disconnects) does not leave a half-done look-up behind for the next one.
        tokio::spawn(fetch.clone().map(drop));
        fetch
    }

    /// Looks `key` up again (as `old`'s function, else parsed); `Ok(Err)`: provider unreachable.
    pub async fn reload(
        &self,
        key: &str,
        old: Option<&Arc<Cached<V>>>,
    ) -> Result<Result<Arc<Cached<V>>, ProviderCallError>, InvokeError> {
        let function = match old {
            Some(old) => old.function().clone(),
            None => FunctionRef::parse(key, &Name::default_namespace())
                .map_err(|e| InvokeError::invalid_name(key, e))?,
        };
        match self.load(key, function).await {
            Ok(entry) => Ok(Ok(entry)),
            Err(LoadError::NotFound) => Err(InvokeError::FunctionNotFound(key.to_string())),
            Err(LoadError::Failed(reason)) => Ok(Err(reason)),
        }
    }

    /// Caches `value`, learnt some other way than a look-up (a replica the gateway saw
    /// become ready itself), as a fresh entry for `key`.
    pub fn insert(&self, key: &str, function: FunctionRef, value: V) -> Arc<Cached<V>> {
        self.inner.put(key, function, value)
    }

    /// Caches `entry` under `key` as well (the same function addressed another way, e.g.
    /// `echo` and `echo.openfaas-fn`), unless it is already there.
    pub fn adopt(&self, key: &str, entry: &Arc<Cached<V>>) {
        if read(&self.inner.table)
            .get(key)
            .is_some_and(|c| Arc::ptr_eq(c, entry))
        {
            return;
        }
        write(&self.inner.table).insert(key.into(), entry.clone());
    }

    /// Removes entries nobody read in `idle` (they are refreshed on use, so their age says
    /// when they were last used).
    pub fn sweep(&self, idle: Duration) {
        let inner = &self.inner;
        write(&inner.table).retain(|_, c| inner.age(c) < idle);
    }

    /// Number of cached functions.
    #[cfg(test)]
    fn len(&self) -> usize {
        read(&self.inner.table).len()
    }
}

impl<V> Inner<V> {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn age(&self, cached: &Cached<V>) -> Duration {
        Duration::from_nanos(
            self.now()
                .saturating_sub(cached.fetched.load(Ordering::Relaxed)),
        )
    }

    fn put(&self, key: &str, function: FunctionRef, value: V) -> Arc<Cached<V>> {
        let cached = Arc::new(Cached {
            value,
            function,
            fetched: AtomicU64::new(self.now()),
            stale: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
        });
        write(&self.table).insert(key.into(), cached.clone());
        cached
    }

    fn store(
        &self,
        key: &str,
        function: FunctionRef,
        result: Result<Option<V>, ProviderCallError>,
    ) -> Result<Arc<Cached<V>>, LoadError> {
        match result {
            Ok(Some(value)) => Ok(self.put(key, function, value)),
            Ok(None) => {
                write(&self.table).remove(key);
                Err(LoadError::NotFound)
            }
            Err(reason) => {
                // Keep serving what we had, and try again after another TTL rather than at
                // once, so that a provider outage is not met with a storm of retries.
                if let Some(old) = read(&self.table).get(key) {
                    old.fetched.store(self.now(), Ordering::Relaxed);
                    old.stale.store(false, Ordering::Relaxed);
                    old.refreshing.store(false, Ordering::Release);
                }
                Err(LoadError::Failed(reason))
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
