//! The per-function concurrency cap (`max_inflight_per_function`).
//!
//! Every call of a function takes one of the function's slots for as long as the worker holds
//! its message; a call that finds its function at the cap is handed back to JetStream with a
//! short delay ([`DEFER`]) before anything else happens to it: no attempt is counted and its
//! status is not touched. Other functions' calls then get the free worker slots, so one busy
//! function cannot take them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a call deferred by the cap waits before JetStream offers it again.
pub(crate) const DEFER: Duration = Duration::from_millis(250);

/// Calls in flight per function.
#[derive(Debug)]
pub(crate) struct Fairness {
    cap: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// One function slot; freed on drop.
#[derive(Debug)]
pub(crate) struct FunctionSlot {
    fairness: Arc<Fairness>,
    function: String,
}

impl Fairness {
    pub(crate) fn new(cap: usize) -> Arc<Fairness> {
        Arc::new(Fairness {
            cap: cap.max(1),
            running: Mutex::new(HashMap::new()),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_function_separately() {
        let f = Fairness::new(2);
        let a1 = f.try_acquire("a").unwrap();
        let _a2 = f.try_acquire("a").unwrap();
        assert!(f.try_acquire("a").is_none());
        let _b = f.try_acquire("b").unwrap();
        drop(a1);
        assert_eq!(f.running("a"), 1);
        assert!(f.try_acquire("a").is_some());
        assert_eq!(f.running("a"), 1, "the temporary slot was freed");
    }
}
