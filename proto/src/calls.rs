//! What ferry records about each async call: its status (in the call-status key-value bucket,
//! served by `GET /system/async-calls/{call_id}`) and, for calls that could not complete, its
//! dead letter (in the dead-letter stream, served under `/system/dead-letters`).
//!
//! Field names are camelCase, as in the rest of the `/system` API. Times are RFC 3339 UTC
//! strings with milliseconds ([`crate::time`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::queue::QueueRequest;

/// Where a call is in its life.
///
/// `queued → running → succeeded | failed | timed_out | dead_lettered | expired |
/// callback_failed`, and `queued → cancelled`. A call waiting for a retry is `queued` again
/// (with `nextAttemptAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Stored, waiting for a worker (first attempt or a retry).
    Queued,
    /// A worker is invoking the function or delivering its callback.
    Running,
    /// The function answered with a success (or non-retryable) status and the callback, if
    /// any, was delivered. `lastStatus` tells which.
    Succeeded,
    /// The function answered with a non-retryable error status; the callback, if any, was
    /// delivered.
    Failed,
    /// Retries were exhausted; the call is in the dead-letter stream.
    DeadLettered,
    /// The call was older than its maximum age before it could run; it is in the
    /// dead-letter stream and was not invoked (again).
    Expired,
    /// The function ran but its callback could not be delivered; the call is in the
    /// dead-letter stream.
    CallbackFailed,
    /// Cancelled while queued; never invoked, no callback.
    Cancelled,
    /// The function was still running when the call's own timeout (its function's timeout,
    /// at most the worker's `max_call_duration`) ran out; the call is in the dead-letter
    /// stream. Retried only when the function opts in (`com.openfaas.retry.on_timeout`).
    TimedOut,
}

impl CallState {
    /// Whether the call has reached an end state.
    pub fn is_final(self) -> bool {
        !matches!(self, CallState::Queued | CallState::Running)
    }

    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Running => "running",
            CallState::Succeeded => "succeeded",
            CallState::Failed => "failed",
            CallState::DeadLettered => "dead_lettered",
            CallState::Expired => "expired",
            CallState::CallbackFailed => "callback_failed",
            CallState::Cancelled => "cancelled",
            CallState::TimedOut => "timed_out",
        }
    }
}

/// One invocation of the function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first invocation.
    pub attempt: u32,
    /// The status the function (or the platform) answered; absent on a connection error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What went wrong, when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the invocation started.
    pub started_at: String,
    /// How long it took.
    pub duration_seconds: f64,
}

/// Delivery of a call's result to its `X-Callback-Url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Not attempted yet.
    Pending,
    /// Failed at least once; a retry is scheduled.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

/// The callback part of a [`CallStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackStatus {
    /// The callback URL.
    pub url: String,
    /// Delivery state.
    pub state: CallbackState,
    /// Delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The receiver's last status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// The last delivery error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A call's record in the call-status bucket, keyed by call id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStatus {
    /// The call id (`X-Call-Id`).
    pub call_id: String,
    /// `name.namespace`.
    pub function: String,
    /// The queue the call was published to.
    pub queue: String,
    /// Where the call is.
    pub state: CallState,
    /// Invocations so far (the first included).
    #[serde(default)]
    pub attempts: u32,
    /// Most invocations allowed (0 when not known yet).
    #[serde(default)]
    pub max_attempts: u32,
    /// Status of the last invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Error of the last invocation, or why the call ended where it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Duration of the last invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// When the gateway accepted the call.
    pub submitted_at: String,
    /// When the first invocation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the call reached its end state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When a retry is due, while one is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Last change of this record.
    pub updated_at: String,
    /// Sequence of the queued message in the calls stream (lets a queued call be cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Every invocation so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_history: Vec<Attempt>,
    /// Callback delivery, when the call has a callback URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackStatus>,
    /// Sequence of the call's dead letter, while it is in the dead-letter stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sequence: Option<u64>,
    /// How many times the call was redriven from the dead-letter stream.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrives: u32,
}

impl CallbackStatus {
    /// A callback to `url`, not attempted yet.
    pub fn pending(url: &str) -> CallbackStatus {
        CallbackStatus {
            url: url.to_string(),
            state: CallbackState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
        }
    }
}

impl CallStatus {
    /// The record of a call being accepted: `queued`, with its callback pending. The gateway
    /// stores it at submission; the worker builds the same one from the message to mark the
    /// call `running` over it.
    pub fn accepted(
        call_id: &str,
        function: &str,
        queue: &str,
        submitted_at: &str,
        callback_url: Option<&str>,
    ) -> CallStatus {
        let mut status = CallStatus::queued(call_id, function, queue, submitted_at);
        status.callback = callback_url.map(CallbackStatus::pending);
        status
    }

    /// A freshly accepted call.
    pub fn queued(call_id: &str, function: &str, queue: &str, now: &str) -> CallStatus {
        CallStatus {
            call_id: call_id.to_string(),
            function: function.to_string(),
            queue: queue.to_string(),
            state: CallState::Queued,
            attempts: 0,
            max_attempts: 0,
            last_status: None,
            last_error: None,
            duration_seconds: None,
            submitted_at: now.to_string(),
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            updated_at: now.to_string(),
            sequence: None,
            attempt_history: Vec::new(),
            callback: None,
            dead_letter_sequence: None,
            redrives: 0,
        }
    }
}

/// Why a call was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Every allowed attempt failed with a retryable error.
    AttemptsExhausted,
    /// The call was older than its maximum age.
    Expired,
    /// The function ran but the callback could never be delivered.
    CallbackFailed,
    /// The function was still running when the call's timeout ran out.
    TimedOut,
    /// The message was delivered `max_deliveries` times without the call ever finishing (its
    /// workers died or lost it each time): it was not invoked again.
    MaxDeliveries,
    /// The message is not a call (unreadable, or names no valid function, path or method);
    /// `payload` holds it as it was.
    InvalidMessage,
}

impl DeadLetterReason {
    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::AttemptsExhausted => "attempts_exhausted",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::CallbackFailed => "callback_failed",
            DeadLetterReason::TimedOut => "timed_out",
            DeadLetterReason::MaxDeliveries => "max_deliveries",
            DeadLetterReason::InvalidMessage => "invalid_message",
        }
    }
}

/// The function's answer, kept with a dead letter whose callback failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallResult {
    /// Status the function answered.
    pub status: u16,
    /// Its response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Its response body (base64 on the wire).
    #[serde(
        default,
        with = "crate::queue::base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub body: Vec<u8>,
}

/// A message in the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The call id.
    pub call_id: String,
    /// `name.namespace`.
    pub function: String,
    /// The queue the call came from (and goes back to on redrive).
    pub queue: String,
    /// Why it is here.
    pub reason: DeadLetterReason,
    /// When it was dead-lettered.
    pub dead_lettered_at: String,
    /// When the gateway accepted the call.
    #[serde(default)]
    pub submitted_at: String,
    /// Every invocation, with its status and error.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The callback's delivery, if the call has a callback URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackStatus>,
    /// The last answer of the function, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CallResult>,
    /// The original call, as queued (empty for an `invalid_message`).
    pub request: QueueRequest,
    /// An `invalid_message`'s payload as it was (base64 on the wire), and why it is not a
    /// call.
    #[serde(
        default,
        with = "crate::queue::base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub payload: Vec<u8>,
    /// What went wrong, for an `invalid_message` or a `max_deliveries` dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One entry of `GET /system/dead-letters` (the request body and result left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSummary {
    /// Position in the dead-letter stream (the paging cursor).
    pub sequence: u64,
    /// The call id.
    pub call_id: String,
    /// `name.namespace`.
    pub function: String,
    /// The queue.
    pub queue: String,
    /// Why it is here.
    pub reason: DeadLetterReason,
    /// When it was dead-lettered.
    pub dead_lettered_at: String,
    /// Invocations made.
    pub attempts: u32,
    /// Status of the last invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
}

/// `GET /system/dead-letters` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    /// This page's entries, oldest first.
    pub items: Vec<DeadLetterSummary>,
    /// Pass as `?after=` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Whether `id` can be a call id: 1–128 characters of `A-Z a-z 0-9 - _ . =`, usable as a key
/// of the call-status bucket and in a URL path.
pub fn valid_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..")
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'='))
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_snake_case() {
        assert_eq!(
            serde_json::to_string(&CallState::DeadLettered).unwrap(),
            "\"dead_lettered\""
        );
        assert_eq!(
            serde_json::to_string(&CallState::CallbackFailed).unwrap(),
            "\"callback_failed\""
        );
        assert!(CallState::Expired.is_final() && !CallState::Queued.is_final());
        assert_eq!(CallState::Cancelled.as_str(), "cancelled");
    }

    #[test]
    fn status_round_trips() {
        let mut s = CallStatus::queued("id-1", "echo.openfaas-fn", "faas-request", "t0");
        s.attempt_history.push(Attempt {
            attempt: 1,
            status: Some(503),
            error: None,
            started_at: "t1".into(),
            duration_seconds: 0.5,
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["state"], "queued");
        assert_eq!(json["callId"], "id-1");
        assert_eq!(json["attemptHistory"][0]["status"], 503);
        assert!(json.get("redrives").is_none());
        let back: CallStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn call_ids() {
        for ok in ["9e6f8dd8-7d3b-4d5e-b6c1-0f0c5a0a1b2c", "job_7", "a.b=c"] {
            assert!(valid_call_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "a*", "a>", ".a", "a..b", &"x".repeat(129)] {
            assert!(!valid_call_id(bad), "{bad}");
        }
    }
}
