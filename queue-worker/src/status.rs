//! Call status records in the key-value bucket `ferry-call-status` (key = call id).
//!
//! The gateway creates a call's record (`queued`) right after JetStream stored the call, and
//! may change it while the call is queued (cancel, redrive). The worker changes it with
//! compare-and-set ([`StatusStore::write`]): each write names the revision it read, and a
//! write that lost a race re-reads the record, applies its change to the fresh record (or
//! vetoes it, e.g. when the call was cancelled meanwhile) and tries once more.
//!
//! The bucket is best effort for the worker: when it cannot be read or written (NATS trouble)
//! the call still runs, with the message's delivery count standing in for the attempt count,
//! and later writes are blind puts.

use std::collections::BTreeSet;

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use bytes::Bytes;
use ferry_proto::calls::{Attempt, CallState, CallStatus, CallbackState, CallbackStatus};

/// The worker's handle on the bucket.
#[derive(Debug, Clone)]
pub(crate) struct StatusStore {
    kv: kv::Store,
}

/// A call's record as last read or written.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The record.
    pub(crate) status: CallStatus,
    /// Its revision in the bucket; `None` when it is not known (the bucket was unavailable),
    /// and the next write is a blind put.
    pub(crate) revision: Option<u64>,
}

/// What became of a [`StatusStore::write`].
#[derive(Debug)]
pub(crate) enum Write {
    /// Stored.
    Written,
    /// The change refused to apply to the record found after a lost race; the record is the
    /// fresh one.
    Vetoed,
    /// The bucket could not be written; the record holds the change, unsaved.
    Failed(String),
}

impl StatusStore {
    pub(crate) fn new(kv: kv::Store) -> StatusStore {
        StatusStore { kv }
    }

    /// The record of `call_id`; `None` when there is none (or it was deleted).
    pub(crate) async fn load(&self, call_id: &str) -> Result<Option<Record>, String> {
        let entry = self.kv.entry(call_id).await.map_err(|e| e.to_string())?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(None);
        };
        let status = serde_json::from_slice::<CallStatus>(&entry.value)
            .map_err(|e| format!("the status record of {call_id} is not readable: {e}"))?;
        Ok(Some(Record {
            status,
            revision: Some(entry.revision),
        }))
    }

    /// The record of `call_id`, created from `fresh` when there is none.
    pub(crate) async fn load_or_create(
        &self,
        call_id: &str,
        fresh: impl FnOnce() -> CallStatus,
    ) -> Result<Record, String> {
        if let Some(record) = self.load(call_id).await? {
            return Ok(record);
        }
        let status = fresh();
        match self.kv.create(call_id, encode(&status)?).await {
            Ok(revision) => Ok(Record {
                status,
                revision: Some(revision),
            }),
            // The gateway created it meanwhile.
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                .load(call_id)
                .await?
                .ok_or_else(|| format!("the status record of {call_id} vanished")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Applies `change` to `record` and stores it (compare-and-set). `change` returns `false`
    /// to veto; it may run twice (the second time on a re-read record) and must not depend on
    /// having run before.
    pub(crate) async fn write(
        &self,
        record: &mut Record,
        mut change: impl FnMut(&mut CallStatus) -> bool,
    ) -> Write {
        let mut next = record.status.clone();
        if !change(&mut next) {
            return Write::Vetoed;
        }
        match self.store(&mut next, record.revision).await {
            Ok(revision) => {
                *record = Record {
                    status: next,
                    revision: Some(revision),
                };
                return Write::Written;
            }
            Err(Some(error)) => {
                *record = Record {
                    status: next,
                    revision: None,
                };
                return Write::Failed(error);
            }
            // Lost a race: once more on the record as it is now.
            Err(None) => {}
        }
        let call_id = record.status.call_id.clone();
        match self.load(&call_id).await {
            Ok(Some(fresh)) => *record = fresh,
            Ok(None) => record.revision = None,
            Err(error) => {
                record.status = next;
                record.revision = None;
                return Write::Failed(error);
            }
        }
        let mut next = record.status.clone();
        if !change(&mut next) {
            return Write::Vetoed;
        }
        let stored = self.store(&mut next, record.revision).await;
        let (revision, outcome) = match stored {
            Ok(revision) => (Some(revision), Write::Written),
            Err(error) => (
                None,
                Write::Failed(error.unwrap_or_else(|| "changed again meanwhile".into())),
            ),
        };
        *record = Record {
            status: next,
            revision,
        };
        outcome
    }

    /// Stores `status` expecting `revision` (or blindly); `Err(None)` on a lost race.
    async fn store(
        &self,
        status: &mut CallStatus,
        revision: Option<u64>,
    ) -> Result<u64, Option<String>> {
        status.updated_at = ferry_proto::time::now();
        let value = encode(status).map_err(Some)?;
        let key = status.call_id.as_str();
        match revision {
            Some(revision) => match self.kv.update(key, value, revision).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(None),
                Err(e) => Err(Some(e.to_string())),
            },
            None => self
                .kv
                .put(key, value)
                .await
                .map_err(|e| Some(e.to_string())),
        }
    }
}

fn encode(status: &CallStatus) -> Result<Bytes, String> {
    serde_json::to_vec(status)
        .map(Bytes::from)
        .map_err(|e| format!("encoding a status record: {e}"))
}

// === changes to a record ===

/// A callback not attempted yet.
pub(crate) fn pending_callback(url: &str) -> CallbackStatus {
    CallbackStatus {
        url: url.to_string(),
        state: CallbackState::Pending,
        attempts: 0,
        last_status: None,
        last_error: None,
    }
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

/// Resets a record that ended with an earlier message of the same call id for a new run by
/// message `sequence`; `redrives` is kept.
pub(crate) fn fresh_run(s: &mut CallStatus, sequence: u64) {
    s.state = CallState::Queued;
    s.sequence = Some(sequence);
    s.attempts = 0;
    s.attempt_history.clear();
    s.last_status = None;
    s.last_error = None;
    s.duration_seconds = None;
    s.started_at = None;
    s.finished_at = None;
    s.next_attempt_at = None;
    s.dead_letter_sequence = None;
    if let Some(callback) = &mut s.callback {
        *callback = pending_callback(&callback.url);
    }
}
