//! Self-healing beyond "the container exited": a running replica that stays unready (its
//! readiness probe, see [`crate::readiness`], fails) for longer than `unready_timeout` is
//! replaced (its initial delay does not count). Reconcile retires it and, since the count is now short, starts a new one.
//!
//! The clock of a replica starts when the provider first sees it unready and stops when it
//! is seen ready, so a replica that is slow to start gets the whole timeout, and one that was
//! ready for hours gets it again before it is replaced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::FunctionRef;

use crate::docker::Replica;
use crate::parts::Parts;

/// When each replica was first seen unready.
#[derive(Debug)]
pub struct Unready {
    timeout: Duration,
    since: Mutex<HashMap<FunctionRef, HashMap<String, Instant>>>,
}

impl Unready {
    /// A tracker replacing replicas unready for `timeout`; zero disables it.
    pub fn new(timeout: Duration) -> Unready {
        Unready {
            timeout,
            since: Mutex::default(),
        }
    }

    /// Records the readiness of `f`'s replicas (`(id, ready)`, all of them: replicas not
    /// listed are forgotten) at `now`; returns the ids unready for longer than the timeout.
    pub fn stuck(&self, f: &FunctionRef, replicas: &[(&str, bool)], now: Instant) -> Vec<String> {
        let mut all = self.since.lock().expect("unready map poisoned");
        let seen = all.entry(f.clone()).or_default();
        let mut next = HashMap::new();
        let mut stuck = Vec::new();
        for (id, ready) in replicas {
            if *ready {
                continue;
            }
            let first = seen.get(*id).copied().unwrap_or(now);
            if now.saturating_duration_since(first) > self.timeout {
                stuck.push(id.to_string());
            } else {
                next.insert(id.to_string(), first);
            }
        }
        if next.is_empty() {
            all.remove(f);
        } else {
            all.insert(f.clone(), next);
        }
        stuck
    }

    /// Retires the replicas of `current` (running, current generation) that stayed unready
    /// past `unready_timeout`, and returns the others. The caller holds `f`'s lock.
    pub(crate) async fn without_stuck(
        &self,
        parts: &Arc<Parts>,
        f: &FunctionRef,
        current: Vec<Replica>,
    ) -> Vec<Replica> {
        if self.timeout.is_zero() || current.is_empty() {
            return current;
        }
        let ready = parts.prober.ready_all(&current).await;
        let observed: Vec<(&str, bool)> = current
            .iter()
            .zip(ready)
            // A replica within its probe's initial delay is not counted as unready yet.
            .map(|(r, ready)| (r.id.as_str(), ready || crate::readiness::delayed(r)))
            .collect();
        let stuck = self.stuck(f, &observed, Instant::now());
        if stuck.is_empty() {
            return current;
        }
        let (gone, keep): (Vec<Replica>, Vec<Replica>) =
            current.into_iter().partition(|r| stuck.contains(&r.id));
        for r in gone {
            tracing::warn!(function = %f, container = %r.id, timeout = ?self.timeout,
                "replacing a replica that stayed unready");
            parts.retire(r.id);
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_unready_past_the_timeout_are_stuck() {
        let f: FunctionRef = FunctionRef::resolve("f", None).unwrap();
        let u = Unready::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(u.stuck(&f, &[("a", false), ("b", true)], at(0)).is_empty());
        assert!(u.stuck(&f, &[("a", false), ("b", false)], at(5)).is_empty());
        // a: unready since 0; b: since 5.
        assert_eq!(u.stuck(&f, &[("a", false), ("b", false)], at(11)), ["a"]);
        // b became ready: its clock restarts.
        assert!(u.stuck(&f, &[("b", true)], at(12)).is_empty());
        assert!(u.stuck(&f, &[("b", false)], at(20)).is_empty());
        assert_eq!(u.stuck(&f, &[("b", false)], at(31)), ["b"]);
        assert!(u.since.lock().unwrap().is_empty(), "nothing left to track");
    }
}
