//! The state changes the gateway makes to call status records (accepted, cancelled,
//! redriven). The records live in the `ferry-call-status` bucket, read and written through
//! `ferry_runtime::status::StatusStore`, the store the queue-worker uses too: every write is
//! conditional, so a change by the worker is never overwritten.

use ferry_proto::calls::{CallState, CallStatus, CallbackStatus, DeadLetter, DeadLetterReason};
pub(crate) use ferry_runtime::status::{
    MAX_CAS_ATTEMPTS, Record, StatusError, StatusStore, Write, Written,
};

use crate::error::GatewayError;

impl From<StatusError> for GatewayError {
    fn from(e: StatusError) -> Self {
        match e {
            StatusError::Nats(_) => GatewayError::Nats(e.to_string()),
            StatusError::Unreadable { .. } => GatewayError::Internal(e.to_string()),
        }
    }
}

/// `current` cancelled at `now`, or why it cannot be (`409`). Only a `queued` call can be
/// cancelled.
pub(crate) fn cancelled(current: &CallStatus, now: &str) -> Result<CallStatus, GatewayError> {
    let id = &current.call_id;
    match current.state {
        CallState::Queued => {
            let mut next = current.clone();
            next.state = CallState::Cancelled;
            next.next_attempt_at = None;
            next.finished_at = Some(now.to_string());
            next.updated_at = now.to_string();
            Ok(next)
        }
        CallState::Running => Err(GatewayError::Conflict(format!(
            "call {id} is running and cannot be cancelled"
        ))),
        CallState::Cancelled => Err(GatewayError::Conflict(format!(
            "call {id} is already cancelled"
        ))),
        done => Err(GatewayError::Conflict(format!(
            "call {id} has already finished ({}) and cannot be cancelled",
            done.as_str()
        ))),
    }
}

/// The record of a call redriven from its dead letter at `now`: `queued` again with a fresh
/// run (attempts, attempt history, last status and error, timings and callback outcome
/// cleared), `redrives` one more, no dead letter, no queued sequence yet. The original
/// submission time is kept. Refused (`409`) while the call is queued or running.
pub(crate) fn redriven(
    previous: Option<&CallStatus>,
    letter: &DeadLetter,
    now: &str,
) -> Result<CallStatus, GatewayError> {
    if letter.reason == DeadLetterReason::InvalidMessage {
        return Err(GatewayError::Conflict(format!(
            "the dead letter of {} is not a call (invalid_message) and cannot be redriven",
            letter.call_id
        )));
    }
    if let Some(p) = previous.filter(|p| !p.state.is_final()) {
        return Err(GatewayError::Conflict(format!(
            "call {} is {}; only a finished call can be redriven",
            p.call_id,
            p.state.as_str()
        )));
    }
    let submitted_at = previous
        .map(|p| p.submitted_at.as_str())
        .or(Some(letter.submitted_at.as_str()).filter(|s| !s.is_empty()))
        .unwrap_or(now);
    let mut next = CallStatus::queued(&letter.call_id, &letter.function, &letter.queue, now);
    next.submitted_at = submitted_at.to_string();
    next.redrives = previous.map_or(0, |p| p.redrives) + 1;
    next.callback = letter
        .request
        .callback_url
        .as_ref()
        .map(|url| CallbackStatus::pending(url.as_str()));
    Ok(next)
}

#[cfg(test)]
mod tests {
    use ferry_proto::QueueRequest;
    use ferry_proto::calls::{Attempt, CallbackState};

    use super::*;

    fn with_state(state: CallState) -> CallStatus {
        let mut s = CallStatus::accepted("c-1", "echo.openfaas-fn", "faas-request", "t0", None);
        s.sequence = Some(7);
        s.state = state;
        s
    }

    #[test]
    fn only_queued_calls_can_be_cancelled() {
        let table = [
            (CallState::Queued, Ok(())),
            (
                CallState::Running,
                Err("is running and cannot be cancelled"),
            ),
            (CallState::Cancelled, Err("already cancelled")),
            (CallState::Succeeded, Err("already finished (succeeded)")),
            (CallState::Failed, Err("already finished (failed)")),
            (CallState::DeadLettered, Err("(dead_lettered)")),
            (CallState::Expired, Err("(expired)")),
            (CallState::CallbackFailed, Err("(callback_failed)")),
        ];
        for (state, expected) in table {
            let mut current = with_state(state);
            current.next_attempt_at = Some("t5".into());
            match (cancelled(&current, "t9"), expected) {
                (Ok(next), Ok(())) => {
                    assert_eq!(next.state, CallState::Cancelled);
                    assert_eq!(next.finished_at.as_deref(), Some("t9"));
                    assert_eq!(next.updated_at, "t9");
                    assert_eq!(next.next_attempt_at, None);
                    assert_eq!(next.sequence, Some(7), "kept: the message to delete");
                }
                (Err(e), Err(words)) => {
                    assert_eq!(e.status(), 409, "{state:?}");
                    assert!(e.to_string().contains(words), "{state:?}: {e}");
                    assert!(e.to_string().contains("c-1"), "{e}");
                }
                (got, want) => panic!("{state:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn letter() -> DeadLetter {
        DeadLetter {
            call_id: "c-1".into(),
            function: "echo.openfaas-fn".into(),
            queue: "slow".into(),
            reason: DeadLetterReason::AttemptsExhausted,
            dead_lettered_at: "t3".into(),
            submitted_at: "t0".into(),
            attempts: vec![Attempt::default()],
            callback: None,
            result: None,
            request: QueueRequest {
                callback_url: Some(ferry_proto::CallbackUrl::new("http://cb/x")),
                ..QueueRequest::default()
            },
            payload: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn a_redriven_call_starts_a_fresh_run() {
        let mut dead = with_state(CallState::DeadLettered);
        dead.attempts = 3;
        dead.redrives = 1;
        dead.dead_letter_sequence = Some(4);
        dead.last_status = Some(500);
        dead.attempt_history = vec![Attempt::default(); 3];
        dead.finished_at = Some("t2".into());
        let next = redriven(Some(&dead), &letter(), "t9").unwrap();
        assert_eq!(next.state, CallState::Queued);
        assert_eq!((next.attempts, next.redrives), (0, 2));
        assert!(next.attempt_history.is_empty() && next.last_status.is_none());
        assert_eq!((next.dead_letter_sequence, next.sequence), (None, None));
        assert_eq!(next.finished_at, None);
        assert_eq!(
            (next.submitted_at.as_str(), next.updated_at.as_str()),
            ("t0", "t9")
        );
        assert_eq!(next.queue, "slow");
        let cb = next.callback.unwrap();
        assert_eq!(
            (cb.url.as_str(), cb.state, cb.attempts),
            ("http://cb/x", CallbackState::Pending, 0)
        );

        // Without a record (expired from the bucket), from the dead letter alone.
        let next = redriven(None, &letter(), "t9").unwrap();
        assert_eq!((next.redrives, next.submitted_at.as_str()), (1, "t0"));

        for state in [CallState::Queued, CallState::Running] {
            let err = redriven(Some(&with_state(state)), &letter(), "t9").unwrap_err();
            assert_eq!(err.status(), 409, "{state:?}");
        }
        for state in [
            CallState::Succeeded,
            CallState::Expired,
            CallState::CallbackFailed,
        ] {
            assert!(redriven(Some(&with_state(state)), &letter(), "t9").is_ok());
        }
    }
}
