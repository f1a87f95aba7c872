//! Reading the dead-letter stream `ferry-dead-letters` (subjects
//! `ferry.dead.<queue>.<name>.<namespace>`, one [`DeadLetter`] JSON per message with the call
//! id in the `Ferry-Call-Id` header).
//!
//! Pages are read after the cursor with a [`Reader`], whose pending count says whether there
//! is a next page. Looking a call up by id uses
//! the sequence its status record names, and otherwise scans the headers only.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use ferry_proto::calls::{CallStatus, DeadLetter, DeadLetterPage, DeadLetterSummary};
use ferry_proto::jetstream::{CALL_ID_HEADER, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT_PREFIX};
use ferry_proto::{FunctionRef, Name};

use crate::error::GatewayError;
use crate::queue::delete_message;
use crate::stream_reader::Reader;

/// `limit` when none is given.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Largest `limit`; larger values are capped.
pub(crate) const MAX_LIMIT: usize = 500;
/// Messages per fetch when a page is read (bounds memory: dead letters carry bodies).
const PAGE_BATCH: usize = 50;
/// Messages per fetch when headers are scanned.
const SCAN_BATCH: usize = 500;

/// `GET /system/dead-letters` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// Subject filter: one function, one namespace, or everything.
    pub(crate) filter: String,
    /// Entries after this stream sequence.
    pub(crate) after: u64,
    /// At most this many entries.
    pub(crate) limit: usize,
}

impl ListQuery {
    /// From `function`, `namespace`, `after` and `limit` (others are ignored).
    pub(crate) fn parse(params: &HashMap<String, String>) -> Result<ListQuery, GatewayError> {
        let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let filter = match (get("function"), get("namespace")) {
            (Some(_), _) => function_filter(&function_param(params)?.expect("function given")),
            (None, Some(ns)) => {
                let ns = Name::new(ns)
                    .map_err(|e| GatewayError::InvalidQuery(format!("namespace: {e}")))?;
                format!("{DEAD_LETTER_SUBJECT_PREFIX}.*.*.{ns}")
            }
            (None, None) => format!("{DEAD_LETTER_SUBJECT_PREFIX}.>"),
        };
        let number = |k: &str| -> Result<Option<u64>, GatewayError> {
            get(k)
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|_| GatewayError::InvalidQuery(format!("{k} must be a whole number")))
        };
        let limit = match number("limit")? {
            None => DEFAULT_LIMIT,
            Some(0) => {
                return Err(GatewayError::InvalidQuery(
                    "limit must be at least 1".into(),
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        Ok(ListQuery {
            filter,
            after: number("after")?.unwrap_or(0),
            limit,
        })
    }
}

/// `function` (`name` or `name.namespace`) with `namespace`, if `function` is given.
pub(crate) fn function_param(
    params: &HashMap<String, String>,
) -> Result<Option<FunctionRef>, GatewayError> {
    let Some(name) = params
        .get("function")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    FunctionRef::resolve(name, params.get("namespace").map(String::as_str))
        .map(Some)
        .map_err(|e| GatewayError::InvalidQuery(format!("function: {e}")))
}

/// `ferry.dead.*.<name>.<namespace>`: one function's dead letters, whatever the queue.
pub(crate) fn function_filter(f: &FunctionRef) -> String {
    format!("{DEAD_LETTER_SUBJECT_PREFIX}.*.{}.{}", f.name, f.namespace)
}

/// The dead-letter stream.
#[derive(Clone)]
pub(crate) struct DeadLetters {
    reader: Reader,
    js: jetstream::Context,
}

impl DeadLetters {
    pub(crate) fn new(stream: Stream, js: jetstream::Context, timeout: Duration) -> Self {
        DeadLetters {
            reader: Reader::new(stream, timeout),
            js,
        }
    }

    /// One page, oldest first.
    pub(crate) async fn list(&self, q: &ListQuery) -> Result<DeadLetterPage, GatewayError> {
        let mut items = Vec::new();
        let batch = q.limit.min(PAGE_BATCH);
        let pending = self
            .reader
            .read(&q.filter, q.after, false, batch, |sequence, message| {
                match serde_json::from_slice::<DeadLetter>(&message.payload) {
                    Ok(letter) => items.push(summary(sequence, &letter)),
                    Err(error) => tracing::warn!(
                        stream = DEAD_LETTER_STREAM, sequence, %error,
                        "skipping an unreadable dead letter"
                    ),
                }
                if items.len() >= q.limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await?;
        let next = if pending > 0 {
            items.last().map(|i| i.sequence)
        } else {
            None
        };
        Ok(DeadLetterPage { items, next })
    }

    /// Sequences and call ids of every dead letter under `filter`, oldest first.
    pub(crate) async fn scan(&self, filter: &str) -> Result<Vec<(u64, String)>, GatewayError> {
        let mut found = Vec::new();
        self.reader
            .read(filter, 0, true, SCAN_BATCH, |sequence, message| {
                if let Some(id) = message.headers.as_ref().and_then(|h| h.get(CALL_ID_HEADER)) {
                    found.push((sequence, id.as_str().to_string()));
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(found)
    }

    /// The newest dead letter of `call_id`: at the sequence its status record names, else
    /// found by scanning (the record's function's subjects, or all).
    pub(crate) async fn find(
        &self,
        call_id: &str,
        status: Option<&CallStatus>,
    ) -> Result<Option<(u64, DeadLetter)>, GatewayError> {
        if let Some(sequence) = status.and_then(|s| s.dead_letter_sequence) {
            if let Some(letter) = self.get(sequence, call_id).await? {
                return Ok(Some((sequence, letter)));
            }
        }
        let filter = status
            .and_then(|s| FunctionRef::parse(&s.function, &Name::default_namespace()).ok())
            .map(|f| function_filter(&f))
            .unwrap_or_else(|| format!("{DEAD_LETTER_SUBJECT_PREFIX}.>"));
        for (sequence, id) in self.scan(&filter).await?.into_iter().rev() {
            if id == call_id {
                if let Some(letter) = self.get(sequence, call_id).await? {
                    return Ok(Some((sequence, letter)));
                }
            }
        }
        Ok(None)
    }

    /// The dead letter at `sequence` if it is `call_id`'s.
    pub(crate) async fn get(
        &self,
        sequence: u64,
        call_id: &str,
    ) -> Result<Option<DeadLetter>, GatewayError> {
        let message = match self.reader.stream().get_raw_message(sequence).await {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(nats(e)),
        };
        if message.headers.get(CALL_ID_HEADER).map(|v| v.as_str()) != Some(call_id) {
            return Ok(None);
        }
        serde_json::from_slice(&message.payload)
            .map(Some)
            .map_err(|e| {
                GatewayError::Internal(format!("the dead letter of {call_id} is unreadable: {e}"))
            })
    }

    /// Removes the dead letter at `sequence`; whether it was there.
    pub(crate) async fn delete(&self, sequence: u64) -> Result<bool, GatewayError> {
        delete_message(&self.js, DEAD_LETTER_STREAM, sequence)
            .await
            .map_err(nats)
    }
}

/// The list entry of a dead letter.
pub(crate) fn summary(sequence: u64, letter: &DeadLetter) -> DeadLetterSummary {
    DeadLetterSummary {
        sequence,
        call_id: letter.call_id.clone(),
        function: letter.function.clone(),
        queue: letter.queue.clone(),
        reason: letter.reason,
        dead_lettered_at: letter.dead_lettered_at.clone(),
        attempts: u32::try_from(letter.attempts.len()).unwrap_or(u32::MAX),
        last_status: letter
            .attempts
            .last()
            .and_then(|a| a.status)
            .or(letter.result.as_ref().map(|r| r.status)),
    }
}

fn nats(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Nats(format!("the stream {DEAD_LETTER_STREAM}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, GatewayError> {
        let params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::parse(&params)
    }

    #[test]
    fn paging_parameters() {
        let all = |after, limit| ListQuery {
            filter: "ferry.dead.>".into(),
            after,
            limit,
        };
        let table: &[(&[(&str, &str)], ListQuery)] = &[
            (&[], all(0, 50)),
            (&[("limit", "1"), ("after", "41")], all(41, 1)),
            (&[("limit", "500")], all(0, 500)),
            (&[("limit", "501")], all(0, 500)),
            (&[("after", ""), ("limit", " 7 ")], all(0, 7)),
            (&[("other", "x")], all(0, 50)),
            (
                &[("function", "echo")],
                ListQuery {
                    filter: "ferry.dead.*.echo.openfaas-fn".into(),
                    ..all(0, 50)
                },
            ),
            (
                &[("function", "echo"), ("namespace", "dev")],
                ListQuery {
                    filter: "ferry.dead.*.echo.dev".into(),
                    ..all(0, 50)
                },
            ),
            (
                &[("function", "echo.dev")],
                ListQuery {
                    filter: "ferry.dead.*.echo.dev".into(),
                    ..all(0, 50)
                },
            ),
            (
                &[("namespace", "dev")],
                ListQuery {
                    filter: "ferry.dead.*.*.dev".into(),
                    ..all(0, 50)
                },
            ),
        ];
        for (params, want) in table {
            assert_eq!(&parse(params).unwrap(), want, "{params:?}");
        }
        for bad in [
            &[("limit", "0")][..],
            &[("limit", "-1")],
            &[("limit", "ten")],
            &[("limit", "99999999999999999999999")],
            &[("after", "1.5")],
            &[("function", "Bad_Name")],
            &[("function", "echo"), ("namespace", "a.b")],
            &[("namespace", "*")],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
        }
    }
}
