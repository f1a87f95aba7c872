//! The changes the worker makes to call status records. The records are read and written
//! through `ferry_runtime::status::StatusStore`, the store the gateway uses too: every write
//! is conditional (compare-and-set, or create where none exists), so a cancel or a redrive
//! written meanwhile is never overwritten.

use std::collections::BTreeSet;

use ferry_proto::calls::{Attempt, CallStatus, CallbackStatus};
pub(crate) use ferry_runtime::status::{Record, StatusStore, Write};

// === changes to a record ===

/// A callback not attempted yet.
pub(crate) fn pending_callback(url: &str) -> CallbackStatus {
    CallbackStatus::pending(url)
}

/// Adds `attempt` to the history (once) and makes it the record's last result.
pub(crate) fn record_attempt(s: &mut CallStatus, attempt: &Attempt) {
    if !s
        .attempt_history
        .iter()
        .any(|a| a.attempt == attempt.attempt)
    {
        s.attempt_history.push(attempt.clone());
        s.attempt_history.sort_by_key(|a| a.attempt);
    }
    s.attempts = s.attempts.max(attempt.attempt);
    s.last_status = attempt.status;
    s.last_error = attempt.error.clone();
    s.duration_seconds = Some(attempt.duration_seconds);
}

/// Records attempts counted as started but never finished: their worker died (or gave up at
/// shutdown) and the message was redelivered.
pub(crate) fn account_lost(s: &mut CallStatus) {
    let recorded: BTreeSet<u32> = s.attempt_history.iter().map(|a| a.attempt).collect();
    for n in 1..=s.attempts {
        if !recorded.contains(&n) {
            s.attempt_history.push(Attempt {
                attempt: n,
                status: None,
                error: Some("lost: the worker running it stopped before it finished".into()),
                started_at: s.updated_at.clone(),
                duration_seconds: 0.0,
            });
        }
    }
    s.attempt_history.sort_by_key(|a| a.attempt);
}
