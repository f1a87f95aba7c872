//! A small per-function cache of provider answers, read on every call.
//!
//! Reads take a `std::sync::RwLock` read lock just long enough to clone an `Arc`; nothing is
//! held across an await. An entry older than the TTL (or marked stale after a failure) is
//! still served while one background task fetches a fresh copy (stale-while-revalidate), so
//! the hot path never waits for the provider once a function has been seen. Misses are
//! coalesced: however many requests miss at once, one look-up goes to the provider and they
//! all share its answer. A function the provider no longer knows is dropped from the cache;
//! unknown names are never stored, and entries nobody asked for lately are swept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ferry_proto::FunctionRef;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

/// Why a look-up produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadError {
    /// The provider does not know the function.
    NotFound,
    /// The provider could not be asked, or answered something unusable.
    Failed(String),
}

/// Fetches the value of one function from the provider: `Ok(None)` when it does not exist.
pub(crate) type Loader<V> =
    Arc<dyn Fn(FunctionRef) -> BoxFuture<'static, Result<Option<V>, String>> + Send + Sync>;

type Pending<V> = Shared<BoxFuture<'static, Result<Arc<Cached<V>>, LoadError>>>;

/// One cached value and its freshness.
#[derive(Debug)]
pub(crate) struct Cached<V> {
    /// The value.
    pub(crate) value: V,
    /// The function it belongs to (to refresh it).
    function: FunctionRef,
    /// When it was fetched (or last failed to refresh): nanoseconds since the cache's epoch.
    fetched: AtomicU64,
    stale: AtomicBool,
    refreshing: AtomicBool,
}

impl<V> Cached<V> {
    /// Asks for a refresh at the next read (after a failure that suggests it is outdated).
    pub(crate) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }
}

/// The cache; cheap to clone.
pub(crate) struct Cache<V> {
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
    load: Loader<V>,
    table: RwLock<HashMap<Box<str>, Arc<Cached<V>>>>,
    pending: Mutex<HashMap<Box<str>, Pending<V>>>,
}

impl<V: Send + Sync + 'static> Cache<V> {
    /// A cache whose entries are refreshed after `ttl`, filled by `load`.
    pub(crate) fn new(ttl: Duration, load: Loader<V>) -> Self {
        Cache {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                ttl,
                load,
                table: RwLock::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cached value for `key` (the function as addressed in the URL), if any. An
    /// expired or stale entry is returned too, and a background refresh is started for it.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Cached<V>>> {
        let cached = read(&self.inner.table).get(key).cloned()?;
        if !self.is_fresh(&cached) && !cached.refreshing.swap(true, Ordering::AcqRel) {
            drop(self.load(key, cached.function.clone()));
        }
        Some(cached)
    }

    /// Whether the entry is younger than the TTL and not marked stale.
    pub(crate) fn is_fresh(&self, cached: &Cached<V>) -> bool {
        !cached.stale.load(Ordering::Relaxed) && self.inner.age(cached) < self.inner.ttl
    }

    /// Looks `function` up at the provider and caches the answer under `key`, sharing one
    /// look-up between all callers asking for the same key at the same time.
    pub(crate) fn load(
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

    /// Removes entries nobody read in `idle` (they are refreshed on use, so their age says
    /// when they were last used).
    pub(crate) fn sweep(&self, idle: Duration) {
        let inner = &self.inner;
        write(&inner.table).retain(|_, c| inner.age(c) < idle);
    }

    /// Number of cached functions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
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

    fn store(
        &self,
        key: &str,
        function: FunctionRef,
        result: Result<Option<V>, String>,
    ) -> Result<Arc<Cached<V>>, LoadError> {
        match result {
            Ok(Some(value)) => {
                let cached = Arc::new(Cached {
                    value,
                    function,
                    fetched: AtomicU64::new(self.now()),
                    stale: AtomicBool::new(false),
                    refreshing: AtomicBool::new(false),
                });
                write(&self.table).insert(key.into(), cached.clone());
                Ok(cached)
            }
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
mod tests {
    use std::sync::atomic::AtomicUsize;

    use ferry_proto::Name;

    use super::*;

    /// A cache whose loader counts calls, waits a little, and answers from `answer`.
    fn cache(
        ttl: Duration,
        answer: fn(usize) -> Result<Option<usize>, String>,
    ) -> (Cache<usize>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let load: Loader<usize> = Arc::new(move |_f| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer(n)
            }
            .boxed()
        });
        (Cache::new(ttl, load), calls)
    }

    fn f() -> FunctionRef {
        FunctionRef::parse("echo", &Name::default_namespace()).unwrap()
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_lookup() {
        let (cache, calls) = cache(Duration::from_secs(60), |n| Ok(Some(n)));
        let loads: Vec<_> = (0..10).map(|_| cache.load("echo", f())).collect();
        for result in futures_util::future::join_all(loads).await {
            assert_eq!(result.unwrap().value, 0);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("echo").unwrap().value, 0);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a fresh entry is not refetched"
        );
    }

    #[tokio::test]
    async fn unknown_functions_are_not_stored() {
        let (cache, _) = cache(Duration::from_secs(60), |_| Ok(None));
        assert_eq!(
            cache.load("echo", f()).await.unwrap_err(),
            LoadError::NotFound
        );
        assert!(cache.get("echo").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn outdated_entries_are_served_while_refreshed_in_the_background() {
        let (cache, calls) = cache(Duration::from_millis(30), |n| Ok(Some(n)));
        cache.load("echo", f()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let old = cache.get("echo").unwrap();
        assert_eq!(old.value, 0);
        assert!(!cache.is_fresh(&old));
        // Only one refresh however many readers see the outdated entry.
        for _ in 0..5 {
            assert!(cache.get("echo").is_some());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let new = cache.get("echo").unwrap();
        assert_eq!(new.value, 1);

        new.mark_stale();
        assert!(!cache.is_fresh(&new));
        cache.get("echo");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(cache.get("echo").unwrap().value, 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_old_value_and_waits_a_ttl() {
        let (cache, calls) = cache(Duration::from_millis(30), |n| {
            if n == 0 {
                Ok(Some(7))
            } else {
                Err("provider down".into())
            }
        });
        cache.load("echo", f()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let err = cache.load("echo", f()).await.unwrap_err();
        assert_eq!(err, LoadError::Failed("provider down".into()));
        let kept = cache.get("echo").unwrap();
        assert_eq!(kept.value, 7);
        assert!(
            cache.is_fresh(&kept),
            "no retry storm: the next try is a TTL away"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn unused_entries_are_swept() {
        let (cache, _) = cache(Duration::from_secs(60), |n| Ok(Some(n)));
        cache.load("echo", f()).await.unwrap();
        cache.sweep(Duration::from_secs(60));
        assert_eq!(cache.len(), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.sweep(Duration::from_millis(1));
        assert_eq!(cache.len(), 0);
    }
}
