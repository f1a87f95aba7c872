//! Unit tests of [`super`]: freshness, coalescing, failures and sweeping.

use std::sync::atomic::AtomicUsize;

use ferry_proto::Name;

use super::*;

fn down() -> ProviderCallError {
    ProviderCallError::Request("provider down".into())
}

const TTL: Duration = Duration::from_secs(1);
const MAX_STALE: Duration = Duration::from_secs(5);

/// A cache whose loader counts calls, takes 20 ms, and answers from `answer`.
fn cache(
    ttl: Duration,
    max_stale: Duration,
    answer: fn(usize) -> Result<Option<usize>, ProviderCallError>,
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
    (Cache::new(ttl, max_stale, load), calls)
}

fn f() -> FunctionRef {
    FunctionRef::parse("echo", &Name::default_namespace()).unwrap()
}

/// `(stage, value)` of what `get` returns.
fn get(cache: &Cache<usize>) -> (&'static str, Option<usize>) {
    match cache.get("echo") {
        Lookup::Fresh(c) => ("fresh", Some(c.value)),
        Lookup::Stale(c) => ("stale", Some(c.value)),
        Lookup::Expired(c) => ("expired", Some(c.value)),
        Lookup::Missing => ("missing", None),
    }
}

/// Lets spawned look-ups finish (paused time: sleeping auto-advances the clock).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_lookup() {
    let (cache, calls) = cache(TTL, MAX_STALE, |n| Ok(Some(n)));
    assert_eq!(get(&cache), ("missing", None));
    let loads: Vec<_> = (0..10).map(|_| cache.load("echo", f())).collect();
    for result in futures_util::future::join_all(loads).await {
        assert_eq!(result.unwrap().value, 0);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(get(&cache), ("fresh", Some(0)));
    settle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a fresh entry is not refetched"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_functions_are_not_stored() {
    let (cache, _) = cache(TTL, MAX_STALE, |_| Ok(None));
    assert_eq!(
        cache.load("echo", f()).await.unwrap_err(),
        LoadError::NotFound
    );
    assert_eq!(get(&cache), ("missing", None));
    assert_eq!(cache.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn slightly_outdated_entries_are_served_while_refreshed_in_the_background() {
    let (cache, calls) = cache(TTL, MAX_STALE, |n| Ok(Some(n)));
    cache.load("echo", f()).await.unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    // Served as it is; only one refresh however many readers see it.
    for _ in 0..5 {
        assert_eq!(get(&cache), ("stale", Some(0)));
    }
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(get(&cache), ("fresh", Some(1)));

    // A failure marks it stale: refreshed in the background at the next read.
    let Lookup::Fresh(entry) = cache.get("echo") else {
        panic!("fresh")
    };
    entry.mark_stale();
    assert_eq!(get(&cache), ("stale", Some(1)));
    settle().await;
    assert_eq!(get(&cache), ("fresh", Some(2)));
}

#[tokio::test(start_paused = true)]
async fn staleness_is_bounded_older_entries_are_refreshed_before_use() {
    let (cache, calls) = cache(TTL, MAX_STALE, |n| Ok(Some(n)));
    cache.load("echo", f()).await.unwrap();
    // Idle for longer than max_stale: the entry must not be used as it is, and reading
    // it starts nothing in the background (the caller fetches it).
    tokio::time::sleep(MAX_STALE).await;
    assert_eq!(get(&cache), ("expired", Some(0)));
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Concurrent callers seeing it expired share one look-up.
    let loads: Vec<_> = (0..10).map(|_| cache.load("echo", f())).collect();
    for result in futures_util::future::join_all(loads).await {
        assert_eq!(result.unwrap().value, 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(get(&cache), ("fresh", Some(1)));

    // Just under the bound it is still served (and refreshed in the background).
    tokio::time::sleep(MAX_STALE - Duration::from_millis(1)).await;
    assert_eq!(get(&cache), ("stale", Some(1)));
}

#[tokio::test(start_paused = true)]
async fn max_stale_at_or_below_the_ttl_turns_stale_serving_off() {
    let (at_ttl, _) = cache(TTL, TTL, |n| Ok(Some(n)));
    at_ttl.load("echo", f()).await.unwrap();
    tokio::time::sleep(TTL).await;
    assert_eq!(get(&at_ttl), ("expired", Some(0)));
    let (zero, _) = cache(TTL, Duration::ZERO, |n| Ok(Some(n)));
    zero.load("echo", f()).await.unwrap();
    assert_eq!(get(&zero), ("fresh", Some(0)));
    let Lookup::Fresh(entry) = zero.get("echo") else {
        panic!("fresh")
    };
    entry.mark_stale();
    assert_eq!(get(&zero), ("expired", Some(0)));
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_old_value_and_waits_a_ttl() {
    let (cache, calls) = cache(TTL, MAX_STALE, |n| {
        if n == 0 { Ok(Some(7)) } else { Err(down()) }
    });
    cache.load("echo", f()).await.unwrap();
    tokio::time::sleep(MAX_STALE * 2).await;
    let err = cache.load("echo", f()).await.unwrap_err();
    assert_eq!(err, LoadError::Failed(down()));
    assert_eq!(
        get(&cache),
        ("fresh", Some(7)),
        "no retry storm: the next try is a TTL away"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn newer_reuses_a_replacement_or_looks_up_once() {
    let (cache, calls) = cache(TTL, MAX_STALE, |n| Ok(Some(n)));
    let first = cache.load("echo", f()).await.unwrap();
    // `first` failed: everyone who saw it fail shares one look-up.
    first.mark_stale();
    let newer: Vec<_> = (0..10).map(|_| cache.newer("echo", &first)).collect();
    for result in futures_util::future::join_all(newer).await {
        assert_eq!(result.unwrap().value, 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A caller that saw `first` fail only now gets the replacement without a look-up.
    assert_eq!(cache.newer("echo", &first).await.unwrap().value, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The replacement itself failing asks the provider again.
    let second = cache.newer("echo", &first).await.unwrap();
    second.mark_stale();
    assert_eq!(cache.newer("echo", &second).await.unwrap().value, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn unused_entries_are_swept() {
    let (cache, _) = cache(TTL, MAX_STALE, |n| Ok(Some(n)));
    cache.load("echo", f()).await.unwrap();
    cache.sweep(Duration::from_secs(60));
    assert_eq!(cache.len(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    cache.sweep(Duration::from_millis(1));
    assert_eq!(cache.len(), 0);
}
