use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::*;
use crate::status::{account_lost, record_attempt};

fn status() -> CallStatus {
    CallStatus::queued("c-1", "f.openfaas-fn", "faas-request", "t0")
}

fn attempt(n: u32, code: Option<u16>) -> Attempt {
    Attempt {
        attempt: n,
        status: code,
        error: code.is_none().then(|| "refused".to_string()),
        started_at: format!("t{n}"),
        duration_seconds: 0.25,
    }
}

fn answer(code: u16) -> Result<FunctionResponse, WorkerError> {
    Ok(FunctionResponse::ready(
        StatusCode::from_u16(code).unwrap(),
        HeaderMap::new(),
        Bytes::new(),
    ))
}

fn body(text: &'static [u8]) -> Body {
    Body::Whole(Bytes::from_static(text))
}

#[test]
fn call_ids_come_from_nats_then_the_request_then_the_sequence() {
    let mut r = QueueRequest::default();
    assert_eq!(call_id(Some("n-1"), &r, 7), "n-1");
    r.header = BTreeMap::from([("X-Call-Id".to_string(), vec!["h-1".to_string()])]);
    assert_eq!(call_id(None, &r, 7), "h-1");
    assert_eq!(call_id(Some("a/b"), &r, 7), "ferry-calls-7");
    assert_eq!(call_id(None, &QueueRequest::default(), 9), "ferry-calls-9");
}

#[test]
fn attempts_are_recorded_once_and_become_the_last_result() {
    let mut s = status();
    s.attempts = 2;
    record_attempt(&mut s, &attempt(2, Some(503)));
    record_attempt(&mut s, &attempt(2, Some(503)));
    record_attempt(&mut s, &attempt(1, None));
    let numbers: Vec<u32> = s.attempt_history.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(s.attempts, 2);
    assert_eq!(
        (s.last_status, s.last_error.as_deref()),
        (None, Some("refused"))
    );
    assert_eq!(s.duration_seconds, Some(0.25));
}

#[test]
fn started_but_unfinished_attempts_are_recorded_as_lost() {
    let mut s = status();
    s.attempts = 3;
    s.attempt_history.push(attempt(1, Some(500)));
    account_lost(&mut s);
    account_lost(&mut s);
    let lost: Vec<(u32, Option<u16>)> = s
        .attempt_history
        .iter()
        .map(|a| (a.attempt, a.status))
        .collect();
    assert_eq!(lost, [(1, Some(500)), (2, None), (3, None)]);
    assert!(
        s.attempt_history[2]
            .error
            .as_deref()
            .unwrap()
            .starts_with("lost")
    );
}

#[test]
fn attempts_describe_the_answer() {
    let a = attempt_of(
        1,
        &answer(200),
        &body(b"fine"),
        "t".into(),
        Duration::from_secs(1),
    );
    assert_eq!((a.status, a.error), (Some(200), None));
    let a = attempt_of(
        2,
        &answer(500),
        &body(b" boom \n"),
        "t".into(),
        Duration::ZERO,
    );
    assert_eq!(
        (a.status, a.error.as_deref()),
        (Some(500), Some("HTTP 500: boom"))
    );
    let a = attempt_of(
        3,
        &answer(503),
        &body(b"\xff\xfe"),
        "t".into(),
        Duration::ZERO,
    );
    assert_eq!(a.error.as_deref(), Some("HTTP 503"));
    let a = attempt_of(
        4,
        &Err(WorkerError::Timeout(Duration::from_secs(5))),
        &body(b""),
        "t".into(),
        Duration::ZERO,
    );
    assert_eq!((a.attempt, a.status), (4, None));
    assert_eq!(
        a.error.as_deref(),
        Some("the function did not finish within its timeout (5s)")
    );
}

#[test]
fn a_call_without_an_answer_reports_its_last_status() {
    let mut s = status();
    assert_eq!(stand_in(&s, 504).status, 504);
    s.last_status = Some(502);
    assert_eq!(stand_in(&s, 504).status, 502);
}
