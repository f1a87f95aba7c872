use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::calls::{CallState, CallStatus, CallbackState, CallbackStatus, DeadLetterReason};

use super::{Decision, decide};
use crate::context::Receipt;
use crate::policy::{Backoff, RetryPolicy};

const NOW: u64 = 1_800_000_000;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        codes: vec![503],
        backoff: Backoff {
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(2),
        },
        max_age: Duration::from_secs(600),
        on_timeout: false,
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn record(state: CallState, sequence: Option<u64>) -> CallStatus {
    let submitted = ferry_proto::time::rfc3339_millis(at(NOW - 10));
    let mut s = CallStatus::queued("c-1", "f.openfaas-fn", "faas-request", &submitted);
    s.state = state;
    s.sequence = sequence;
    s
}

fn message(sequence: u64, delivered: u32, scheduled: bool) -> Receipt {
    Receipt {
        sequence,
        delivered,
        published: at(NOW - 10),
        scheduled,
        revision: None,
    }
}

fn decided(s: &CallStatus, d: &Receipt) -> Decision {
    decide(s, d, &policy(), 5, at(NOW))
}

#[test]
fn decisions_follow_the_record_and_the_message() {
    use CallState::*;
    let waiting = |sequence| {
        let mut s = record(Queued, sequence);
        s.attempts = 1;
        s.next_attempt_at = Some("2027-01-01T00:00:00.000Z".into());
        s
    };
    let retrying_callback = {
        let mut s = record(Running, Some(7));
        s.callback = Some(CallbackStatus {
            state: CallbackState::Retrying,
            ..CallbackStatus::pending("http://cb")
        });
        s
    };
    let cases: Vec<(&str, CallStatus, Receipt, Decision)> = vec![
        (
            "fresh",
            record(Queued, None),
            message(7, 1, false),
            Decision::Run,
        ),
        (
            "cancelled",
            record(Cancelled, None),
            message(7, 1, false),
            Decision::Cancelled,
        ),
        (
            "settled",
            record(Succeeded, Some(7)),
            message(7, 2, false),
            Decision::Settled,
        ),
        (
            "finished by another",
            record(Succeeded, Some(6)),
            message(7, 1, false),
            Decision::Duplicate,
        ),
        (
            "running elsewhere",
            record(Running, Some(6)),
            message(7, 1, false),
            Decision::Duplicate,
        ),
        (
            "lost attempt",
            record(Running, Some(7)),
            message(7, 2, false),
            Decision::Run,
        ),
        (
            "callback retrying",
            retrying_callback,
            message(7, 2, false),
            Decision::CallbackRetrying,
        ),
        (
            "the due retry",
            waiting(Some(7)),
            message(9, 1, true),
            Decision::Run,
        ),
        (
            "retry not yet scheduled",
            waiting(Some(7)),
            message(7, 2, false),
            Decision::Reschedule,
        ),
        (
            "a stray copy",
            waiting(Some(7)),
            message(8, 1, false),
            Decision::Duplicate,
        ),
        (
            "delivered too often",
            record(Running, Some(7)),
            message(7, 6, false),
            Decision::DeadLetter(DeadLetterReason::MaxDeliveries),
        ),
    ];
    for (what, s, d, want) in cases {
        assert_eq!(decided(&s, &d), want, "{what}");
    }
}

#[test]
fn limits_apply_before_a_run() {
    let mut s = record(CallState::Queued, None);
    s.attempts = 3;
    assert_eq!(
        decided(&s, &message(7, 1, false)),
        Decision::DeadLetter(DeadLetterReason::AttemptsExhausted)
    );
    let mut old = record(CallState::Queued, None);
    old.submitted_at = ferry_proto::time::rfc3339_millis(at(NOW - 601));
    assert_eq!(
        decided(&old, &message(7, 1, false)),
        Decision::DeadLetter(DeadLetterReason::Expired)
    );
}
