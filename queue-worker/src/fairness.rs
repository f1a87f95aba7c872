//! The per-function concurrency cap (`max_inflight_per_function`), and the waiting room of
//! calls that find their function at it.
//!
//! Every call of a function takes one of the function's slots for as long as the worker
//! runs it. A call that finds its function at the cap waits, before anything else happens
//! to it (no attempt counted, status untouched, its lease renewed), until one of that
//! function's calls ends: it is woken, not polled, and nothing goes through NATS meanwhile.
//! While it waits it gives its worker slot back, so the pull loop fetches other calls for
//! the free slots: one busy function cannot take every slot of the worker. The waiting room
//! holds at most `max_inflight` calls; a call that finds it full is handed back to JetStream
//! with a delay of [`DEFER`] (the only case left where a call goes back without running).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// How long a call waits before JetStream offers it again when the waiting room is full.
pub(crate) const DEFER: Duration = Duration::from_secs(2);

/// Calls in flight per function.
#[derive(Debug)]
pub(crate) struct Fairness {
    cap: usize,
    running: Mutex<HashMap<String, usize>>,
    /// Woken whenever a function slot is freed.
    freed: Notify,
    /// Places in the waiting room.
    room: Arc<Semaphore>,
}

/// One function slot; freed on drop.
#[derive(Debug)]
pub(crate) struct FunctionSlot {
    fairness: Arc<Fairness>,
    function: String,
}

/// A call's slot among the worker's `max_inflight`, which it can give back while it waits.
#[derive(Debug)]
pub(crate) struct WorkerSlot {
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Semaphore>,
}

impl WorkerSlot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, pool: Arc<Semaphore>) -> WorkerSlot {
        WorkerSlot {
            permit: Some(permit),
            pool,
        }
    }

    fn release(&mut self) {
        self.permit = None;
    }

    async fn reacquire(&mut self) {
        if self.permit.is_none() {
            let permit = self.pool.clone().acquire_owned().await;
            self.permit = Some(permit.expect("the slot semaphore is never closed"));
        }
    }
}

impl Fairness {
    /// `cap` calls per function; a waiting room of `room` calls.
    pub(crate) fn new(cap: usize, room: usize) -> Arc<Fairness> {
        Arc::new(Fairness {
            cap: cap.max(1),
            running: Mutex::new(HashMap::new()),
            freed: Notify::new(),
            room: Arc::new(Semaphore::new(room.max(1))),
        })
    }

    /// A slot for `function`, or `None` when it is at the cap.
    pub(crate) fn try_acquire(self: &Arc<Self>, function: &str) -> Option<FunctionSlot> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let n = running.entry(function.to_string()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(FunctionSlot {
            fairness: self.clone(),
            function: function.to_string(),
        })
    }

    /// A slot for `function`: at once, or after waiting in the room (with `slot` given back
    /// meanwhile and taken again before this returns). `None`: the room is full.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        function: &str,
        slot: &mut WorkerSlot,
    ) -> Option<FunctionSlot> {
        if let Some(acquired) = self.try_acquire(function) {
            return Some(acquired);
        }
        let _place = self.room.clone().try_acquire_owned().ok()?;
        slot.release();
        let acquired = loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(acquired) = self.try_acquire(function) {
                break acquired;
            }
            freed.await;
        };
        slot.reacquire().await;
        Some(acquired)
    }

    #[cfg(test)]
    fn running(&self, function: &str) -> usize {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(function).copied().unwrap_or(0)
    }
}

impl Drop for FunctionSlot {
    fn drop(&mut self) {
        let mut running = self
            .fairness
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.function);
            }
        }
        drop(running);
        self.fairness.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn caps_each_function_separately() {
        let f = Fairness::new(2, 4);
        let a1 = f.try_acquire("a").unwrap();
        let _a2 = f.try_acquire("a").unwrap();
        assert!(f.try_acquire("a").is_none());
        let _b = f.try_acquire("b").unwrap();
        drop(a1);
        assert_eq!(f.running("a"), 1);
        assert!(f.try_acquire("a").is_some());
        assert_eq!(f.running("a"), 1, "the temporary slot was freed");
    }

    #[tokio::test]
    async fn a_call_at_the_cap_waits_without_its_worker_slot_until_one_ends() {
        let f = Fairness::new(1, 1);
        let pool = Arc::new(Semaphore::new(2));
        let slot = |pool: &Arc<Semaphore>| {
            WorkerSlot::new(pool.clone().try_acquire_owned().unwrap(), pool.clone())
        };
        let running = f.try_acquire("a").unwrap();
        let mut waiting_slot = slot(&pool);
        let waiter = tokio::spawn({
            let f = f.clone();
            async move {
                let got = f.acquire("a", &mut waiting_slot).await;
                (got.is_some(), waiting_slot.permit.is_some())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            pool.available_permits(),
            2,
            "the waiting call gave its slot back"
        );
        // The room (1 place) is full: a third call of `a` is turned away at once.
        let mut third = slot(&pool);
        assert!(f.acquire("a", &mut third).await.is_none());
        drop(third);
        // Another function is not held up.
        assert!(f.try_acquire("b").is_some());
        drop(running);
        assert_eq!(waiter.await.unwrap(), (true, true));
        assert_eq!(pool.available_permits(), 2, "its slot back once it is done");
    }
}
