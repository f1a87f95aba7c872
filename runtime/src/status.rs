//! Call status records in the key-value bucket `ferry-call-status`, keyed by call id: the one
//! store the gateway (`queued` at submission, cancel, redrive) and the queue-worker
//! (`running`, retries, final states) both write.
//!
//! Every write is conditional: [`StatusStore::create`] stores only where no record exists,
//! [`StatusStore::update`] only over the revision read, and [`StatusStore::write`] applies a
//! change, re-reading and deciding again after a lost race. There is no unconditional write,
//! so a change made meanwhile by someone else (a cancel, a redrive, another worker) is never
//! overwritten: the change is re-applied to it, or vetoed by it.

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use ferry_proto::calls::CallStatus;
use ferry_proto::jetstream::STATUS_BUCKET;

/// How often a change is applied again after lost races before [`Write::Conflict`].
pub const MAX_CAS_ATTEMPTS: usize = 8;

/// What can go wrong with the bucket.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatusError {
    /// The bucket could not be read or written (NATS unavailable, a timeout, ...).
    #[error("the bucket {STATUS_BUCKET}: {0}")]
    Nats(String),
    /// A stored record is not a [`CallStatus`].
    #[error("the status record of {call_id} is unreadable: {reason}")]
    Unreadable {
        /// The record's key.
        call_id: String,
        /// Why it cannot be read.
        reason: String,
    },
}

/// A record and the revision it was read or written at; `None`: not stored (none existed
/// when it was last looked at), so the next write creates it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The record.
    pub status: CallStatus,
    /// Its revision in the bucket.
    pub revision: Option<u64>,
}

/// The outcome of one conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored, at this revision.
    Stored(u64),
    /// The record was not at the expected revision (or, for a create, already existed).
    Conflict,
}

/// What became of a [`StatusStore::write`].
#[derive(Debug)]
pub enum Write {
    /// Stored; the record is the one written.
    Written,
    /// The change refused to apply to the record as it is now; the record is that one.
    Vetoed,
    /// Still conflicting after [`MAX_CAS_ATTEMPTS`]; the record is the last one read.
    Conflict,
    /// The bucket could not be used; the record is the last one read, unchanged.
    Failed(StatusError),
}

/// The call-status bucket; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusStore {
    kv: kv::Store,
}

impl StatusStore {
    /// The store on `kv` (see `jetstream::ensure_status_bucket`).
    pub fn new(kv: kv::Store) -> Self {
        StatusStore { kv }
    }

    /// The record of `call_id`, if there is one (deleted or expired records are none).
    pub async fn get(&self, call_id: &str) -> Result<Option<Record>, StatusError> {
        let entry = self.kv.entry(call_id).await.map_err(nats)?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(None);
        };
        let status = serde_json::from_slice(&entry.value).map_err(|e| StatusError::Unreadable {
            call_id: call_id.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Record {
            status,
            revision: Some(entry.revision),
        }))
    }

    /// Stores `status` only if the call has no record yet.
    pub async fn create(&self, status: &CallStatus) -> Result<Written, StatusError> {
        match self.kv.create(&status.call_id, encode(status)).await {
            Ok(revision) => Ok(Written::Stored(revision)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(Written::Conflict),
            Err(e) => Err(nats(e)),
        }
    }

    /// Stores `status` only if the record is still at `revision`.
    pub async fn update(&self, status: &CallStatus, revision: u64) -> Result<Written, StatusError> {
        match self
            .kv
            .update(&status.call_id, encode(status), revision)
            .await
        {
            Ok(revision) => Ok(Written::Stored(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Written::Conflict),
            Err(e) => Err(nats(e)),
        }
    }

    /// Stores `status` over `revision` (compare-and-set), or creates it for `None`.
    pub async fn store(
        &self,
        status: &CallStatus,
        revision: Option<u64>,
    ) -> Result<Written, StatusError> {
        match revision {
            Some(revision) => self.update(status, revision).await,
            None => self.create(status).await,
        }
    }

    /// Removes the record of `call_id` if it is still at `revision`.
    pub async fn delete_at(&self, call_id: &str, revision: u64) -> Result<(), StatusError> {
        self.kv
            .delete_expect_revision(call_id, Some(revision))
            .await
            .map_err(nats)
    }

    /// Applies `change` to `record` and stores the result conditionally (over its revision,
    /// or as a new record), setting `updatedAt`. After a lost race the record is read again
    /// and `change` applied to that, up to [`MAX_CAS_ATTEMPTS`] times; `change` returns
    /// `false` to veto, may run several times and must not depend on having run before.
    pub async fn write(
        &self,
        record: &mut Record,
        mut change: impl FnMut(&mut CallStatus) -> bool,
    ) -> Write {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut next = record.status.clone();
            if !change(&mut next) {
                return Write::Vetoed;
            }
            next.updated_at = ferry_proto::time::now();
            match self.store(&next, record.revision).await {
                Ok(Written::Stored(revision)) => {
                    *record = Record {
                        status: next,
                        revision: Some(revision),
                    };
                    return Write::Written;
                }
                Ok(Written::Conflict) => {}
                Err(error) => return Write::Failed(error),
            }
            match self.get(&record.status.call_id).await {
                Ok(Some(fresh)) => *record = fresh,
                // Gone meanwhile (deleted, or expired): create it again.
                Ok(None) => record.revision = None,
                Err(error) => return Write::Failed(error),
            }
        }
        Write::Conflict
    }
}

fn encode(status: &CallStatus) -> Bytes {
    // A CallStatus is plain data: encoding it cannot fail.
    Bytes::from(serde_json::to_vec(status).expect("a CallStatus encodes"))
}

fn nats(e: impl std::fmt::Display) -> StatusError {
    StatusError::Nats(e.to_string())
}
