//! Reading a function's response body in bounded memory.
//!
//! A result is kept in memory whole, so that its callback can be retried and a dead letter
//! can hold it, when it is at most `max_buffered_result` bytes and the worker-wide budget
//! `result_memory` (shared by every call in flight, counted in KiB) has room for it. A result
//! that is larger, or that finds the budget spent, is not read further: what was read so far
//! and the rest of the function's response are streamed to the callback once, as they arrive
//! ([`Body::Streaming`]). Memory per call stays at most `max_buffered_result` plus a few
//! transport buffers, whatever the function sends.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::WorkerError;
use crate::error::Unreachable;
use crate::invoke::{FunctionResponse, ResponseBody};

/// The unit the budget counts in.
const KIB: usize = 1024;

/// The worker-wide memory budget for results in memory.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    per_call: usize,
}

impl Budget {
    /// `total` bytes for all calls, at most `per_call` for one.
    pub(crate) fn new(total: usize, per_call: usize) -> Budget {
        Budget {
            permits: Arc::new(Semaphore::new(total.div_ceil(KIB))),
            per_call,
        }
    }

    /// KiB free now (for tests and metrics).
    #[cfg(test)]
    fn free_kib(&self) -> usize {
        self.permits.available_permits()
    }
}

/// A function's response body, as far as it was read.
pub(crate) enum Body {
    /// All of it, in memory.
    Whole(Bytes),
    /// Too large to keep: the part read, then the rest still to come.
    Streaming {
        /// What was read before the limit.
        prefix: Bytes,
        /// The rest, cut at the call's deadline.
        rest: ResponseBody,
    },
}

/// A body read under the budget; the memory it holds is counted until this is dropped.
pub(crate) struct Held {
    pub(crate) body: Body,
    pub(crate) memory: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// A body already in memory that the budget does not count (small, or empty).
    pub(crate) fn whole(bytes: Bytes) -> Held {
        Held {
            body: Body::Whole(bytes),
            memory: None,
        }
    }
}

/// Reads `response`'s body into memory within `budget`, or as far as the budget allows.
/// The body ending with an error is a timeout when the deadline has passed, else the
/// function breaking off.
pub(crate) async fn read(
    response: &mut FunctionResponse,
    budget: &Budget,
) -> Result<Held, WorkerError> {
    let mut buffer = BytesMut::new();
    let mut memory: Option<OwnedSemaphorePermit> = None;
    let (deadline, timeout) = (response.deadline, response.timeout);
    let body = &mut response.body;
    loop {
        let Some(frame) = body.frame().await else {
            return Ok(Held {
                body: Body::Whole(buffer.freeze()),
                memory,
            });
        };
        let frame = frame.map_err(|e| body_error(deadline, timeout, &*e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buffer.len() + data.len();
        let held = memory.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        let needed = total.div_ceil(KIB).saturating_sub(held);
        let room = total <= budget.per_call
            && match u32::try_from(needed) {
                Ok(0) => true,
                Ok(n) => match budget.permits.clone().try_acquire_many_owned(n) {
                    Ok(more) => {
                        match memory.as_mut() {
                            Some(m) => m.merge(more),
                            None => memory = Some(more),
                        }
                        true
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            };
        buffer.extend_from_slice(&data);
        if !room {
            let rest = std::mem::replace(
                body,
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            return Ok(Held {
                body: Body::Streaming {
                    prefix: buffer.freeze(),
                    rest,
                },
                memory,
            });
        }
    }
}

/// Up to `limit` bytes of `response`'s body (for an error message); the rest is dropped.
pub(crate) async fn read_start(response: &mut FunctionResponse, limit: usize) -> Bytes {
    let mut buffer = BytesMut::new();
    while buffer.len() < limit {
        match response.body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let take = data.len().min(limit - buffer.len());
                    buffer.extend_from_slice(&data[..take]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    buffer.freeze()
}

/// What a failed body read means: the call's time ran out, or the function broke off.
pub(crate) fn body_error(
    deadline: Instant,
    timeout: std::time::Duration,
    e: &(dyn std::error::Error + 'static),
) -> WorkerError {
    if Instant::now() >= deadline {
        WorkerError::Timeout(timeout)
    } else {
        Unreachable::BrokeOff(ferry_invoke::client::error_chain(e)).into()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn response(chunks: &[usize]) -> FunctionResponse {
        let frames: Vec<Result<http_body::Frame<Bytes>, ferry_invoke::client::BoxError>> = chunks
            .iter()
            .map(|n| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let mut r = FunctionResponse::ready(StatusCode::OK, HeaderMap::new(), Bytes::new());
        r.body = body.boxed_unsync();
        r
    }

    async fn rest_len(body: Body) -> (usize, usize) {
        match body {
            Body::Whole(b) => (b.len(), 0),
            Body::Streaming { prefix, rest } => {
                (prefix.len(), rest.collect().await.unwrap().to_bytes().len())
            }
        }
    }

    #[tokio::test]
    async fn small_results_are_kept_whole_and_their_memory_given_back() {
        let budget = Budget::new(64 * KIB, 16 * KIB);
        let held = read(&mut response(&[4000, 4000]), &budget).await.unwrap();
        assert_eq!(budget.free_kib(), 64 - 8);
        assert!(matches!(&held.body, Body::Whole(b) if b.len() == 8000));
        drop(held);
        assert_eq!(budget.free_kib(), 64, "given back with the body");
    }

    #[tokio::test]
    async fn a_result_over_the_per_call_limit_streams() {
        let budget = Budget::new(64 * KIB, 16 * KIB);
        let held = read(&mut response(&[10_000, 10_000, 10_000]), &budget)
            .await
            .unwrap();
        // The chunk that crossed the limit is part of the prefix; the rest was not read.
        assert_eq!(rest_len(held.body).await, (20_000, 10_000));
    }

    #[tokio::test]
    async fn a_spent_budget_makes_results_stream() {
        let budget = Budget::new(16 * KIB, 16 * KIB);
        let first = read(&mut response(&[12_000]), &budget).await.unwrap();
        let second = read(&mut response(&[12_000, 1]), &budget).await.unwrap();
        assert!(matches!(second.body, Body::Streaming { .. }));
        drop(first);
        let third = read(&mut response(&[12_000]), &budget).await.unwrap();
        assert!(matches!(third.body, Body::Whole(_)));
    }
}
