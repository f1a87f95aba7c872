//! Queue depths, for `GET /system/queues` and the dashboard: per queue, the calls stored in the
//! calls stream (per function too, from the stream's per-subject counts), the retries scheduled
//! for later, and, once its workers' durable consumer exists, how many calls wait for a worker,
//! how many workers hold and how many workers wait for calls.
//!
//! A queue appears once it holds a call or has a consumer. Read from JetStream at each request
//! (one stream info with subject counts and one consumer list): no state kept here.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, consumer};
use ferry_proto::jetstream::{CALLS_STREAM, CALLS_SUBJECT_PREFIX, RETRY_SUBJECT_PREFIX};
use ferry_proto::{FunctionRef, Name};
use futures_util::TryStreamExt;
use serde::Serialize;

use crate::error::GatewayError;

/// Prefix of the workers' durable consumer names ([`ferry_proto::jetstream::consumer_name`]).
const CONSUMER_PREFIX: &str = "ferry-workers-";

/// One queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueueDepth {
    /// The queue's name.
    pub(crate) queue: String,
    /// Calls stored for it: waiting for a worker or held by one.
    pub(crate) stored: u64,
    /// Calls waiting for their next attempt (scheduled retries).
    pub(crate) scheduled_retries: u64,
    /// Calls no worker has taken yet (`null` before its workers' consumer exists).
    pub(crate) pending: Option<u64>,
    /// Calls a worker holds (delivered, not yet acknowledged).
    pub(crate) in_flight: Option<u64>,
    /// Worker pull requests waiting for calls.
    pub(crate) waiting_workers: Option<u64>,
    /// Stored calls per function (`name.namespace`), of the namespaces the caller may read.
    pub(crate) functions: BTreeMap<String, u64>,
}

/// Every queue, sorted by name; per-function counts only where `visible` says so.
pub(crate) async fn depths(
    js: &jetstream::Context,
    visible: impl Fn(&Name) -> bool,
) -> Result<Vec<QueueDepth>, GatewayError> {
    let nats = |e: &dyn std::fmt::Display| GatewayError::Nats(format!("{CALLS_STREAM}: {e}"));
    let stream = js
        .get_stream_no_info(CALLS_STREAM)
        .await
        .map_err(|e| nats(&e))?;
    let mut queues: BTreeMap<String, QueueDepth> = BTreeMap::new();
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(">")
        .await
        .map_err(|e| nats(&e))?
        .try_collect()
        .await
        .map_err(|e| nats(&e))?;
    for (subject, count) in subjects {
        count_subject(&mut queues, &subject, count as u64, &visible);
    }
    let consumers: Vec<consumer::Info> = stream
        .consumers()
        .try_collect()
        .await
        .map_err(|e| nats(&e))?;
    for info in consumers {
        if let Some(queue) = info.name.strip_prefix(CONSUMER_PREFIX) {
            let q = entry(&mut queues, queue);
            q.pending = Some(info.num_pending);
            q.in_flight = Some(info.num_ack_pending as u64);
            q.waiting_workers = Some(info.num_waiting as u64);
        }
    }
    Ok(queues.into_values().collect())
}

fn entry<'a>(queues: &'a mut BTreeMap<String, QueueDepth>, queue: &str) -> &'a mut QueueDepth {
    queues
        .entry(queue.to_string())
        .or_insert_with(|| QueueDepth {
            queue: queue.to_string(),
            ..QueueDepth::default()
        })
}

/// Adds `count` messages of `subject` (`ferry.calls.<queue>.<name>.<ns>` or
/// `ferry.retry.<queue>.<name>.<ns>.<token>`) to its queue.
fn count_subject(
    queues: &mut BTreeMap<String, QueueDepth>,
    subject: &str,
    count: u64,
    visible: &impl Fn(&Name) -> bool,
) {
    let (retry, rest) = if let Some(rest) = subject.strip_prefix(CALLS_SUBJECT_PREFIX) {
        (false, rest)
    } else if let Some(rest) = subject.strip_prefix(RETRY_SUBJECT_PREFIX) {
        (true, rest)
    } else {
        return;
    };
    let mut tokens = rest.trim_start_matches('.').split('.');
    let (Some(queue), Some(name), Some(ns)) = (tokens.next(), tokens.next(), tokens.next()) else {
        return;
    };
    let q = entry(queues, queue);
    if retry {
        q.scheduled_retries += count;
        return;
    }
    q.stored += count;
    let (Ok(name), Ok(ns)) = (Name::new(name), Name::new(ns)) else {
        return;
    };
    if visible(&ns) {
        let f = FunctionRef::new(name, ns).to_string();
        *q.functions.entry(f).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_counted_per_queue_and_function() {
        let mut queues = BTreeMap::new();
        let default = Name::default_namespace();
        let only_default = |ns: &Name| *ns == default;
        for (subject, n) in [
            ("ferry.calls.faas-request.echo.openfaas-fn", 3),
            ("ferry.calls.faas-request.other.team", 2),
            ("ferry.calls.slow.echo.openfaas-fn", 1),
            ("ferry.retry.faas-request.echo.openfaas-fn.abc", 1),
            ("ferry.retry.faas-request.echo.openfaas-fn.def", 1),
            ("unrelated.subject", 7),
        ] {
            count_subject(&mut queues, subject, n, &only_default);
        }
        let shared = &queues["faas-request"];
        assert_eq!((shared.stored, shared.scheduled_retries), (5, 2));
        assert_eq!(
            shared.functions,
            BTreeMap::from([("echo.openfaas-fn".to_string(), 3)])
        );
        assert_eq!(queues["slow"].stored, 1);
        assert_eq!(queues.len(), 2);
        assert_eq!(shared.pending, None);
    }
}
