//! Sending a sync call again, to another replica, when it never reached the first one.
//!
//! A call is retried only when both hold:
//!
//! - **the function cannot have seen it**: connecting to the replica failed, or the new
//!   connection closed before the request was started ([`SendError::NotSent`]). Then any
//!   method may be retried, `POST` included. A failure once the request was on its way (a
//!   reset, a connection closed before the response, a timeout) is never retried: the
//!   function may have acted on it.
//! - **its body can be sent again**: the request has no body, or its size is known up front
//!   (`Content-Length`) and at most `max_retry_body` bytes. Such a body is read into memory
//!   before the call (`408` if it is not complete within `upstream_timeout`, or stalls for
//!   `read_timeout`: see [`crate::limits`]). Bigger bodies
//!   and bodies of unknown size (chunked) are streamed to the replica as they arrive, and a
//!   connect failure answers `502` at once.
//!
//! A call goes to at most [`MAX_ATTEMPTS`] replicas, each one different.

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Uri, request};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Limited};
use tokio::time::Instant;

use crate::error::GatewayError;
use ferry_invoke::SendError;

/// The most replicas one sync call is sent to (the first included).
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// Whether a body of `size` bytes (`None`: unknown, i.e. chunked) is kept to be sent again.
pub(crate) fn replayable(size: Option<u64>, limit: usize) -> bool {
    size.is_some_and(|n| u64::try_from(limit).is_ok_and(|limit| n <= limit))
}

/// Whether a call that failed with `error` may be sent to another replica.
pub(crate) fn may_retry(error: &SendError, outgoing: &Outgoing) -> bool {
    matches!(error, SendError::NotSent(_)) && outgoing.replayable()
}

/// A prepared sync call (head ready for upstream), sent once or replayed.
pub(crate) enum Outgoing {
    /// A small body (or none), in memory: every attempt gets a copy.
    Replayable { head: request::Parts, body: Bytes },
    /// A body streamed as it arrives: one attempt only.
    Once(Option<(request::Parts, Body)>),
}

impl Outgoing {
    /// Reads `body` into memory when it is [`replayable`] under `limit`, by `deadline`
    /// (`408` past it, `400` if the client breaks off); leaves any other body to stream.
    pub(crate) async fn new(
        head: request::Parts,
        body: Body,
        limit: usize,
        deadline: Instant,
        timeout: std::time::Duration,
    ) -> Result<Outgoing, GatewayError> {
        if !replayable(body.size_hint().exact(), limit) {
            return Ok(Outgoing::Once(Some((head, body))));
        }
        if body.is_end_stream() {
            return Ok(Outgoing::Replayable {
                head,
                body: Bytes::new(),
            });
        }
        let body = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect())
            .await
            .map_err(|_| GatewayError::RequestBodyTimeout {
                timeout,
                setting: "upstream_timeout",
            })?
            .map_err(|e| GatewayError::BadBody(e.to_string()))?
            .to_bytes();
        Ok(Outgoing::Replayable { head, body })
    }

    /// Whether the call can be sent again after a failure.
    pub(crate) fn replayable(&self) -> bool {
        matches!(self, Outgoing::Replayable { .. })
    }

    /// The request of the next attempt, to `uri`; `None` once a streamed body was sent.
    pub(crate) fn request(&mut self, uri: Uri) -> Option<Request<Body>> {
        match self {
            Outgoing::Replayable { head, body } => {
                let mut req = Request::new(Body::from(body.clone()));
                *req.method_mut() = head.method.clone();
                *req.uri_mut() = uri;
                *req.version_mut() = head.version;
                *req.headers_mut() = head.headers.clone();
                Some(req)
            }
            Outgoing::Once(once) => {
                let (mut head, body) = once.take()?;
                head.uri = uri;
                Some(Request::from_parts(head, body))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use http::Method;
    use http::header::CONTENT_TYPE;

    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn head() -> request::Parts {
        let (mut head, ()) = Request::post("/orders")
            .header(CONTENT_TYPE, "text/plain")
            .body(())
            .unwrap()
            .into_parts();
        head.uri = Uri::default();
        head
    }

    async fn outgoing(body: Body) -> Outgoing {
        let deadline = Instant::now() + Duration::from_secs(5);
        Outgoing::new(head(), body, LIMIT, deadline, Duration::from_secs(5))
            .await
            .unwrap()
    }

    fn chunked(parts: &[&'static str]) -> Body {
        let chunks = parts
            .iter()
            .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes())));
        Body::from_stream(stream::iter(chunks.collect::<Vec<_>>()))
    }

    fn uri(n: u16) -> Uri {
        format!("http://127.0.0.1:{n}/orders").parse().unwrap()
    }

    async fn text(req: Request<Body>) -> String {
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn only_bodies_of_known_small_size_are_replayable() {
        assert!(replayable(Some(0), LIMIT), "no body");
        assert!(replayable(Some(1), LIMIT));
        assert!(replayable(Some(LIMIT as u64), LIMIT), "exactly the limit");
        assert!(!replayable(Some(LIMIT as u64 + 1), LIMIT), "too big");
        assert!(!replayable(None, LIMIT), "size unknown up front (chunked)");
        assert!(
            replayable(Some(0), 0),
            "max_retry_body=0 still retries bodiless calls"
        );
        assert!(!replayable(Some(1), 0));
    }

    #[tokio::test]
    async fn only_calls_that_never_left_with_a_replayable_body_are_retried() {
        let small = outgoing(Body::from("order 1")).await;
        let empty = outgoing(Body::empty()).await;
        let streamed = outgoing(chunked(&["order ", "1"])).await;
        let big = outgoing(Body::from(vec![b'x'; LIMIT + 1])).await;
        let not_sent = SendError::NotSent("tcp connect error: Connection refused".into());
        let failed = SendError::Failed("connection closed before message completed".into());
        assert!(may_retry(&not_sent, &small));
        assert!(may_retry(&not_sent, &empty));
        assert!(!may_retry(&not_sent, &streamed), "the body is gone");
        assert!(!may_retry(&not_sent, &big), "not buffered");
        for body in [&small, &empty, &streamed, &big] {
            assert!(!may_retry(&failed, body), "may have reached the function");
            assert!(!may_retry(&SendError::Timeout, body));
        }
    }

    #[tokio::test]
    async fn a_replayable_call_is_rebuilt_for_every_attempt() {
        let mut call = outgoing(Body::from("order 1")).await;
        assert!(call.replayable());
        for port in [1, 2, 3] {
            let req = call.request(uri(port)).unwrap();
            assert_eq!(req.method(), Method::POST);
            assert_eq!(req.uri(), &uri(port));
            assert_eq!(req.headers()[CONTENT_TYPE], "text/plain");
            assert_eq!(text(req).await, "order 1");
        }
    }

    #[tokio::test]
    async fn a_streamed_call_is_sent_once() {
        let mut call = outgoing(chunked(&["order ", "1"])).await;
        assert!(!call.replayable());
        let req = call.request(uri(1)).unwrap();
        assert_eq!(req.uri(), &uri(1));
        assert_eq!(text(req).await, "order 1");
        assert!(call.request(uri(2)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_that_does_not_arrive_in_time_is_a_408() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        // Claims 10 bytes, sends 5, then stalls.
        let body = http_body_util::StreamBody::new(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (b.map(http_body::Frame::data), rx)) },
        ));
        let body = Body::new(Sized10 { inner: body });
        tx.send(Ok(Bytes::from_static(b"12345"))).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = Outgoing::new(head(), body, LIMIT, deadline, Duration::from_secs(1)).await;
        assert!(
            matches!(result, Err(GatewayError::RequestBodyTimeout { .. })),
            "{:?}",
            result.err()
        );
        drop(tx);
    }

    pin_project_lite::pin_project! {
        /// A body that says it is 10 bytes long, as one with `Content-Length: 10` does.
        struct Sized10<B> {
            #[pin]
            inner: B,
        }
    }

    impl<B: http_body::Body> http_body::Body for Sized10<B> {
        type Data = B::Data;
        type Error = B::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
            self.project().inner.poll_frame(cx)
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(10)
        }
    }
}
