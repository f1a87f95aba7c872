//! The call index `ferry-call-index`: the ids of each function's recent async calls, one
//! message per accepted call on `ferry.index.<name>.<namespace>`, at most
//! [`RECENT_CALLS_KEPT`] per function (JetStream drops the oldest), kept as long as a status
//! record. It only says which status records to read for `GET /system/async-calls?function=`;
//! the records stay the truth.
//!
//! The index is written after the call is stored, with a plain publish (no acknowledgement
//! awaited): it adds nothing to a submission's latency, and a call whose index entry was lost
//! (NATS failing between the two writes) keeps its status record, only missing from the list.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use async_nats::jetstream::stream::Stream;
use ferry_proto::FunctionRef;
use ferry_proto::calls::CallState;
use ferry_proto::jetstream::{RECENT_CALLS_KEPT, call_index_subject};

use crate::dead_letters::function_param;
use crate::error::GatewayError;
use crate::stream_reader::Reader;

/// `limit` when none is given.
pub(crate) const DEFAULT_LIMIT: usize = 20;

/// `GET /system/async-calls` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecentQuery {
    /// The function (`function=name[.ns]` with `namespace=`); required.
    pub(crate) function: FunctionRef,
    /// At most this many calls (1 to [`RECENT_CALLS_KEPT`]).
    pub(crate) limit: usize,
    /// Only calls in this state.
    pub(crate) state: Option<CallState>,
}

impl RecentQuery {
    /// From `function`, `namespace`, `limit` and `state` (others are ignored).
    pub(crate) fn parse(params: &HashMap<String, String>) -> Result<RecentQuery, GatewayError> {
        let function = function_param(params)?.ok_or_else(|| {
            GatewayError::InvalidQuery(
                "function is required: /system/async-calls?function=<name>[&namespace=<ns>]".into(),
            )
        })?;
        let given = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let limit = match given("limit").map(str::parse::<usize>) {
            None => DEFAULT_LIMIT,
            Some(Ok(n)) if (1..=RECENT_CALLS_KEPT).contains(&n) => n,
            Some(_) => {
                return Err(GatewayError::InvalidQuery(format!(
                    "limit must be a whole number from 1 to {RECENT_CALLS_KEPT}"
                )));
            }
        };
        let state = given("state")
            .map(|s| {
                serde_json::from_value::<CallState>(serde_json::Value::String(s.to_string()))
                    .map_err(|_| {
                        GatewayError::InvalidQuery(format!(
                            "state must be one of queued, running, succeeded, failed, \
                             dead_lettered, expired, callback_failed, cancelled, timed_out \
                             (not {s:?})"
                        ))
                    })
            })
            .transpose()?;
        Ok(RecentQuery {
            function,
            limit,
            state,
        })
    }
}

/// The call index stream.
#[derive(Clone)]
pub(crate) struct CallIndex {
    reader: Reader,
}

impl CallIndex {
    pub(crate) fn new(stream: Stream, timeout: std::time::Duration) -> Self {
        CallIndex {
            reader: Reader::new(stream, timeout),
        }
    }

    /// The ids of `function`'s indexed calls, newest first, each once.
    pub(crate) async fn recent(&self, function: &FunctionRef) -> Result<Vec<String>, GatewayError> {
        let mut ids = Vec::with_capacity(RECENT_CALLS_KEPT);
        let subject = call_index_subject(function);
        self.reader
            .read(&subject, 0, false, RECENT_CALLS_KEPT, |_, message| {
                match std::str::from_utf8(&message.payload) {
                    Ok(id) if !id.is_empty() => ids.push(id.to_string()),
                    _ => tracing::debug!(%subject, "skipping an unreadable call-index entry"),
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(newest_first_once(ids))
    }
}

/// `ids` (oldest first) reversed, keeping the newest entry of an id indexed twice.
fn newest_first_once(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.into_iter()
        .rev()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<RecentQuery, GatewayError> {
        let params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RecentQuery::parse(&params)
    }

    #[test]
    fn a_function_is_required_and_limits_are_bounded() {
        let q = query(&[("function", "echo")]).unwrap();
        assert_eq!(q.function.to_string(), "echo.openfaas-fn");
        assert_eq!((q.limit, q.state), (DEFAULT_LIMIT, None));
        let q = query(&[("function", "echo"), ("namespace", "dev"), ("limit", "100")]).unwrap();
        assert_eq!((q.function.to_string(), q.limit), ("echo.dev".into(), 100));
        let q = query(&[("function", "echo.dev"), ("state", "dead_lettered")]).unwrap();
        assert_eq!(q.state, Some(CallState::DeadLettered));
        for bad in [
            vec![],
            vec![("namespace", "dev")],
            vec![("function", "Bad Name")],
            vec![("function", "echo"), ("limit", "0")],
            vec![("function", "echo"), ("limit", "101")],
            vec![("function", "echo"), ("limit", "x")],
            vec![("function", "echo"), ("state", "done")],
        ] {
            assert!(
                matches!(query(&bad), Err(GatewayError::InvalidQuery(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn newest_first_and_each_id_once() {
        let ids = ["a", "b", "a", "c"].map(String::from).to_vec();
        assert_eq!(newest_first_once(ids), ["c", "a", "b"]);
    }
}
