//! Names of ferry's JetStream objects, shared by the gateway (publisher) and the
//! queue-workers (consumers).
//!
//! All queued calls live in one stream, [`CALLS_STREAM`], with work-queue retention (a call
//! is deleted once a worker acknowledges it). Each call's subject names its queue and its
//! function, `ferry.calls.<queue>.<name>.<namespace>`, so that:
//!
//! - each queue has one durable pull consumer ([`consumer_name`]) filtered on
//!   `ferry.calls.<queue>.>`, shared by every worker of that queue (competing consumers);
//! - a function's backlog can be counted by subject.

use crate::name::FunctionRef;

/// The stream holding queued calls.
pub const CALLS_STREAM: &str = "ferry-calls";
/// Every call subject starts with this.
pub const CALLS_SUBJECT_PREFIX: &str = "ferry.calls";
/// The shared queue (OpenFaaS's default channel name).
pub const DEFAULT_QUEUE: &str = "faas-request";
/// NATS header carrying the call id on every queued message.
pub const CALL_ID_HEADER: &str = "Ferry-Call-Id";
/// NATS header on a queued message: the revision of the call's status record when it was
/// queued, so that the worker can mark it `running` with one compare-and-set.
pub const STATUS_REVISION_HEADER: &str = "Ferry-Status-Revision";

/// Every scheduled retry's subject starts with this, in the calls stream:
/// `ferry.retry.<queue>.<name>.<namespace>.<call token>` (see [`retry_subject`]).
pub const RETRY_SUBJECT_PREFIX: &str = "ferry.retry";

/// The stream of dead letters: calls that exhausted their attempts or their age, or whose
/// callback could not be delivered. Kept until deleted or redriven (or `dead_letter_max_age`).
pub const DEAD_LETTER_STREAM: &str = "ferry-dead-letters";
/// Every dead-letter subject starts with this: `ferry.dead.<queue>.<name>.<namespace>`.
pub const DEAD_LETTER_SUBJECT_PREFIX: &str = "ferry.dead";
/// The stream of callbacks waiting for a retry (work-queue retention).
pub const CALLBACK_STREAM: &str = "ferry-callbacks";
/// Every callback subject starts with this: `ferry.callbacks.<queue>.<name>.<namespace>`.
pub const CALLBACK_SUBJECT_PREFIX: &str = "ferry.callbacks";
/// The stream indexing each function's recent async calls: one message per accepted call on
/// `ferry.index.<name>.<namespace>` (see [`call_index_subject`]) holding its call id, at
/// most [`RECENT_CALLS_KEPT`] per function. The status records stay the truth; the index
/// only says which ones to read for `GET /system/async-calls?function=`.
pub const CALL_INDEX_STREAM: &str = "ferry-call-index";
/// Every call-index subject starts with this.
pub const CALL_INDEX_SUBJECT_PREFIX: &str = "ferry.index";
/// The most calls per function the call index keeps (older ones are dropped first).
pub const RECENT_CALLS_KEPT: usize = 100;
/// The key-value bucket of call status records, keyed by call id.
pub const STATUS_BUCKET: &str = "ferry-call-status";
/// The key-value bucket of the gateway's API tokens, keyed by token name (SHA-256 of each
/// token, never the token itself).
pub const TOKEN_BUCKET: &str = "ferry-tokens";

/// `ferry.calls.<queue>.<name>.<namespace>`.
pub fn call_subject(queue: &str, function: &FunctionRef) -> String {
    format!(
        "{CALLS_SUBJECT_PREFIX}.{queue}.{}.{}",
        function.name, function.namespace
    )
}

/// The subjects of one function's queued calls, whatever their queue:
/// `ferry.calls.*.<name>.<namespace>` (its backlog, for queue-based autoscaling).
pub fn function_calls_filter(function: &FunctionRef) -> String {
    format!(
        "{CALLS_SUBJECT_PREFIX}.*.{}.{}",
        function.name, function.namespace
    )
}

/// Where the retry of call `call_id` waits for its time: `ferry.retry.<queue>.<name>.
/// <namespace>.<token>`, the token being the call id with `.` written `~` (a call id has no
/// `~`, so tokens of different ids differ). A JetStream message schedule on this subject
/// (one per call: a newer one replaces it) publishes the call to [`call_subject`] when due.
pub fn retry_subject(queue: &str, function: &FunctionRef, call_id: &str) -> String {
    format!(
        "{RETRY_SUBJECT_PREFIX}.{queue}.{}.{}.{}",
        function.name,
        function.namespace,
        call_id.replace('.', "~")
    )
}

/// `ferry.index.<name>.<namespace>`: where the ids of a function's accepted calls are
/// indexed, whatever their queue.
pub fn call_index_subject(function: &FunctionRef) -> String {
    format!(
        "{CALL_INDEX_SUBJECT_PREFIX}.{}.{}",
        function.name, function.namespace
    )
}

/// `ferry.dead.<queue>.<name>.<namespace>`.
pub fn dead_letter_subject(queue: &str, function: &FunctionRef) -> String {
    format!(
        "{DEAD_LETTER_SUBJECT_PREFIX}.{queue}.{}.{}",
        function.name, function.namespace
    )
}

/// `ferry.callbacks.<queue>.<name>.<namespace>`.
pub fn callback_subject(queue: &str, function: &FunctionRef) -> String {
    format!(
        "{CALLBACK_SUBJECT_PREFIX}.{queue}.{}.{}",
        function.name, function.namespace
    )
}

/// The durable consumer of `queue`'s pending callbacks.
pub fn callback_consumer_name(queue: &str) -> String {
    format!("ferry-callbacks-{queue}")
}

/// The subject filter of a queue's consumer: `ferry.calls.<queue>.>`.
pub fn queue_filter(queue: &str) -> String {
    format!("{CALLS_SUBJECT_PREFIX}.{queue}.>")
}

/// The durable consumer shared by the workers of `queue`.
pub fn consumer_name(queue: &str) -> String {
    format!("ferry-workers-{queue}")
}

/// Whether `queue` can be used as a queue name (a subject token and part of a consumer name):
/// letters, digits, `-` and `_`, at most 64 characters.
pub fn valid_queue_name(queue: &str) -> bool {
    !queue.is_empty()
        && queue.len() <= 64
        && queue
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::Name;

    #[test]
    fn names() {
        let f = FunctionRef::new(Name::new("figlet").unwrap(), Name::default_namespace());
        assert_eq!(
            call_subject(DEFAULT_QUEUE, &f),
            "ferry.calls.faas-request.figlet.openfaas-fn"
        );
        assert_eq!(queue_filter("slow"), "ferry.calls.slow.>");
        assert_eq!(
            function_calls_filter(&f),
            "ferry.calls.*.figlet.openfaas-fn"
        );
        assert_eq!(consumer_name("slow"), "ferry-workers-slow");
        assert_eq!(
            retry_subject("slow", &f, "a.b=c"),
            "ferry.retry.slow.figlet.openfaas-fn.a~b=c"
        );
        assert!(valid_queue_name("faas-request") && valid_queue_name("slow_2"));
        assert!(!valid_queue_name("") && !valid_queue_name("a.b") && !valid_queue_name("a>"));
    }
}
