//! Redriving dead letters: putting a dead-lettered call back on its queue.
//!
//! Order matters, because the queue-worker consults the status record before it runs a
//! call: (1) the record is reset to `queued` (compare-and-set; a call that is queued or
//! running is refused with `409`), (2) the original `QueueRequest` is published again to
//! `ferry.calls.<queue>.<name>.<namespace>` under the same call id, with `Nats-Msg-Id`
//! `<call_id>.redrive<n>` so the duplicate window does not swallow it (if this fails the old
//! record is put back and the dead letter stays), (3) the dead letter is deleted. The message
//! carries no `Ferry-Status-Revision`: the redriven record (its `redrives`, its original
//! `submittedAt`) is not one the worker could rebuild from the message, so the worker reads
//! it before it writes.
//!
//! A redriven call starts a fresh run: attempts, attempt history, last status and error and
//! the callback outcome are cleared (the failed run was the dead letter's to keep, and
//! redriving consumes it), `redrives` counts up, the original `submittedAt` stays.

use std::sync::Arc;

use ferry_proto::calls::{CallStatus, DeadLetter};
use ferry_proto::jetstream::{call_subject, valid_queue_name};
use ferry_proto::token::Scope;
use ferry_proto::{FunctionRef, Name};
use futures_util::StreamExt as _;

use crate::Gateway;
use crate::access::Access;
use crate::dead_letters::{DeadLetters, function_filter};
use crate::error::GatewayError;
use crate::queue::Queue;
use crate::status::{self, MAX_CAS_ATTEMPTS, Record, StatusStore, Written};

/// Dead letters redriven at once by a redrive-all.
const CONCURRENCY: usize = 16;

/// Redrives the dead letter of `call_id` if `access` may invoke in its function's namespace
/// (`403`); the call's new status. Runs as a task of its own, so that a client going away
/// cannot stop it half-way.
pub(crate) async fn one(
    gateway: &Gateway,
    access: Access,
    call_id: &str,
) -> Result<CallStatus, GatewayError> {
    let target = Redrive::new(gateway).await?;
    let call_id = call_id.to_string();
    let task = tokio::spawn(async move {
        let record = target.statuses.get(&call_id).await?;
        let (sequence, letter) = target
            .letters
            .find(&call_id, record.as_ref().map(|r| &r.status))
            .await?
            .ok_or_else(|| GatewayError::DeadLetterNotFound(call_id.clone()))?;
        access.demand_function(Scope::Invoke, &letter.function)?;
        target.run(record, sequence, letter).await
    });
    task.await
        .map_err(|e| GatewayError::Internal(format!("the redrive task failed: {e}")))?
}

/// Redrives every dead letter of `function`, a few at a time; how many were redriven. Dead
/// letters of calls that are queued or running again, or that cannot be read, are skipped; a
/// NATS failure stops the run (those redriven so far stay redriven).
pub(crate) async fn all(gateway: &Gateway, function: &FunctionRef) -> Result<u64, GatewayError> {
    let target = Arc::new(Redrive::new(gateway).await?);
    let found = target.letters.scan(&function_filter(function)).await?;
    let mut tasks = futures_util::stream::iter(found)
        .map(|(sequence, call_id)| {
            let target = target.clone();
            tokio::spawn(async move {
                let outcome = async {
                    let record = target.statuses.get(&call_id).await?;
                    match target.letters.get(sequence, &call_id).await? {
                        Some(letter) => target.run(record, sequence, letter).await.map(Some),
                        None => Ok(None), // deleted or redriven meanwhile
                    }
                };
                (sequence, call_id.clone(), outcome.await)
            })
        })
        .buffer_unordered(CONCURRENCY);
    let mut redriven = 0;
    while let Some(done) = tasks.next().await {
        let (sequence, call_id, outcome) =
            done.map_err(|e| GatewayError::Internal(format!("a redrive task failed: {e}")))?;
        match outcome {
            Ok(Some(_)) => redriven += 1,
            Ok(None) => {}
            Err(e @ (GatewayError::Nats(_) | GatewayError::QueueUnavailable(_))) => return Err(e),
            Err(error) => {
                tracing::warn!(%call_id, sequence, %error, "dead letter not redriven");
            }
        }
    }
    Ok(redriven)
}

/// What a redrive works on.
struct Redrive {
    queue: Queue,
    statuses: StatusStore,
    letters: DeadLetters,
}

impl Redrive {
    async fn new(gateway: &Gateway) -> Result<Redrive, GatewayError> {
        Ok(Redrive {
            queue: gateway.queue.clone(),
            statuses: gateway.queue.statuses().await?,
            letters: gateway.queue.dead_letters().await?,
        })
    }

    async fn run(
        &self,
        mut record: Option<Record>,
        sequence: u64,
        letter: DeadLetter,
    ) -> Result<CallStatus, GatewayError> {
        let call_id = letter.call_id.as_str();
        let function = FunctionRef::parse(&letter.function, &Name::default_namespace())
            .ok()
            .filter(|_| valid_queue_name(&letter.queue))
            .ok_or_else(|| {
                GatewayError::Internal(format!(
                    "dead letter {sequence} names an invalid function {:?} or queue {:?}",
                    letter.function, letter.queue
                ))
            })?;

        // 1. queued again, before any worker can see the message.
        let mut conflicts = 0;
        let (status, revision) = loop {
            let next = status::redriven(record.as_ref().map(|r| &r.status), &letter, &now())?;
            let previous = record.as_ref().and_then(|r| r.revision);
            match self.statuses.store(&next, previous).await? {
                Written::Stored(revision) => break (next, revision),
                Written::Conflict if conflicts < MAX_CAS_ATTEMPTS => {
                    conflicts += 1;
                    record = self.statuses.get(call_id).await?;
                }
                Written::Conflict => {
                    return Err(GatewayError::Conflict(format!(
                        "the status of call {call_id} kept changing; try again"
                    )));
                }
            }
        };

        // 2. the original call, back on its queue.
        let payload = serde_json::to_vec(&letter.request)
            .map_err(|e| GatewayError::Internal(format!("encoding the redriven call: {e}")))?;
        let msg_id = format!("{call_id}.redrive{}", status.redrives);
        let subject = call_subject(&letter.queue, &function);
        let ack = match self
            .queue
            .publish(subject, &msg_id, call_id, None, payload.into())
            .await
        {
            Ok(ack) => ack,
            Err(error) => {
                let restored = match &record {
                    Some(old) => self.statuses.update(&old.status, revision).await.map(drop),
                    None => self.statuses.delete_at(call_id, revision).await,
                };
                if let Err(e) = restored {
                    tracing::warn!(
                        %call_id, error = %e,
                        "could not restore the status after a failed redrive"
                    );
                }
                return Err(error);
            }
        };

        // 3. no longer a dead letter, and among the function's recent calls again. The call
        // is queued by now: failures from here on are logged, not reported.
        self.queue.index_call(&function, call_id).await;
        if let Err(error) = self.letters.delete(sequence).await {
            tracing::warn!(
                %call_id, sequence, %error,
                "call redriven, but its dead letter could not be deleted"
            );
        }
        tracing::info!(
            %call_id, redrives = status.redrives, sequence = ack.sequence, "call redriven"
        );
        Ok(status)
    }
}

fn now() -> String {
    ferry_proto::time::now()
}
