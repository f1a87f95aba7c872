//! Orphans: containers of this instance (`com.ferry.instance=<instance>`) that belong to no
//! desired function, e.g. those of a function deleted just before the provider stopped (the
//! delete's background drain died with the process), or made by hand with the instance label.
//!
//! [`remove`] runs at start and on every reconcile round, before the
//! functions are reconciled. It leaves alone:
//!
//! - containers of desired functions, parked ones included (reconcile owns those);
//! - containers already being removed (the terminating set of an in-flight delete or scale);
//! - containers of a function whose lock is held: a deploy or delete is in progress and
//!   decides about them; the next round looks again.
//!
//! The listing comes first and the desired state is checked afterwards under the function's
//! lock, so a container made by a deploy that finished in between is never taken for one.

use std::sync::Arc;

use crate::parts::Parts;

/// Stops and removes (in the background, gracefully) every container of this instance
/// that belongs to no desired function.
pub async fn remove(parts: &Arc<Parts>) {
    let containers = match parts.engine.instance_containers().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not list containers to find orphans");
            return;
        }
    };
    for (id, function) in containers {
        if parts.is_terminating(&id) {
            continue;
        }
        match function {
            Some(f) => {
                let lock = parts.store.lock_for(&f);
                let Ok(_guard) = lock.try_lock() else {
                    continue;
                };
                if parts.store.get(&f).is_some() {
                    continue;
                }
                tracing::info!(function = %f, container = %id,
                    "removing a container of a function that is not deployed");
                parts.retire(id);
            }
            None => {
                tracing::info!(container = %id,
                    "removing a container of this instance that belongs to no function");
                parts.retire(id);
            }
        }
    }
}
