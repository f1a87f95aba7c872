//! Request body limits, the same for every route that reads or forwards a body: a size
//! (`max_sync_body` for `/function/*`, `max_request_body` for `/system/*`, `max_async_body`
//! for `/async-function/*`) and `read_timeout`, the longest the body may stall.
//!
//! [`BodyLimit::check`] refuses a body whose `Content-Length` is over the limit before
//! anything is sent (`413`). [`BodyLimit::guard`] wraps the body as it is streamed on: it
//! counts the bytes (a chunked body fails once it grows past the limit) and times every wait
//! for the next bytes (the body fails when none came for `read_timeout`). Nothing is
//! buffered. Whoever reads the body (the client sending it upstream, or the async handler
//! collecting it) then fails; the handler asks the [`BodyWatch`] why, and answers `413` or
//! `408` instead of blaming the upstream. A response the function already started is passed
//! on as it is (and ends where the function stops).
//!
//! The stall timer runs only while the body is being read: a call held while its function
//! scales from zero, body unread, is not timed here.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// A body error, as bodies have them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The limits of one route's request bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit {
    /// Most bytes a body may have; `None`: no limit.
    max: Option<usize>,
    /// The setting `max` comes from, for the `413` message.
    setting: &'static str,
    /// `read_timeout`.
    read_timeout: Duration,
}

/// Why a guarded body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breach {
    TooLarge,
    Stalled,
}

impl BodyLimit {
    /// At most `max` bytes (`0`: no limit), from `setting`; stalls of at most `read_timeout`.
    pub(crate) fn new(max: usize, setting: &'static str, read_timeout: Duration) -> BodyLimit {
        BodyLimit {
            max: (max > 0).then_some(max),
            setting,
            read_timeout,
        }
    }

    /// `413` when the body's `Content-Length` is over the limit.
    pub(crate) fn check(&self, body: &Body) -> Result<(), GatewayError> {
        match self.max {
            Some(max) if body.size_hint().lower() > max as u64 => Err(self.error(Breach::TooLarge)),
            _ => Ok(()),
        }
    }

    /// `body`, counted and timed, and the watch that tells why it failed if it did. A body
    /// that is empty already is returned as it is.
    pub(crate) fn guard(&self, body: Body) -> (Body, BodyWatch) {
        if body.is_end_stream() {
            return (body, BodyWatch::default());
        }
        let breach = Arc::new(OnceLock::new());
        let guarded = Guarded {
            inner: body,
            limit: *self,
            received: 0,
            sleep: None,
            armed: false,
            failed: false,
            breach: breach.clone(),
        };
        let watch = BodyWatch {
            limit: Some(*self),
            breach: Some(breach),
        };
        (Body::new(guarded), watch)
    }

    fn error(&self, breach: Breach) -> GatewayError {
        match breach {
            Breach::TooLarge => GatewayError::BodyTooLarge {
                limit: self.max.unwrap_or(usize::MAX),
                setting: self.setting,
            },
            Breach::Stalled => GatewayError::RequestBodyTimeout {
                timeout: self.read_timeout,
                setting: "read_timeout",
            },
        }
    }
}

/// Tells whether (and why) a guarded body broke its limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyWatch {
    limit: Option<BodyLimit>,
    breach: Option<Arc<OnceLock<Breach>>>,
}

impl BodyWatch {
    /// The error to answer with if the body broke a limit (`413`, `408`), else `None`.
    pub(crate) fn error(&self) -> Option<GatewayError> {
        let breach = *self.breach.as_ref()?.get()?;
        Some(self.limit?.error(breach))
    }

    /// `error`, unless the body broke a limit: then that.
    pub(crate) fn or(&self, error: GatewayError) -> GatewayError {
        self.error().unwrap_or(error)
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails once it is over its size limit or stalled too long. Its
    /// size hint and end are the inner body's, so `Content-Length` framing and the retry
    /// decision ([`crate::replay`]) see through it.
    struct Guarded {
        #[pin]
        inner: Body,
        limit: BodyLimit,
        received: u64,
        // Boxed once, on the first wait, and re-armed after.
        sleep: Option<Pin<Box<Sleep>>>,
        armed: bool,
        failed: bool,
        breach: Arc<OnceLock<Breach>>,
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        // The body first: bytes that are there count even if the timer ran out meanwhile
        // (the reader may have been slow to poll, e.g. held back by the upstream).
        let breach = match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.armed = false;
                let size = frame
                    .as_ref()
                    .and_then(|f| f.as_ref().ok())
                    .and_then(Frame::data_ref)
                    .map_or(0, Bytes::len);
                *this.received += size as u64;
                if this
                    .limit
                    .max
                    .is_none_or(|max| *this.received <= max as u64)
                {
                    return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
                }
                Breach::TooLarge
            }
            Poll::Pending => {
                if !*this.armed {
                    let deadline = Instant::now() + this.limit.read_timeout;
                    match this.sleep.as_mut() {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    *this.armed = true;
                }
                match this.sleep.as_mut() {
                    Some(sleep) => ready!(sleep.as_mut().poll(cx)),
                    None => return Poll::Pending,
                }
                Breach::Stalled
            }
        };
        *this.failed = true;
        let _ = this.breach.set(breach);
        Poll::Ready(Some(Err(Box::new(this.limit.error(breach)))))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::BodyExt as _;
    use tokio::sync::mpsc;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn limit(max: usize) -> BodyLimit {
        BodyLimit::new(max, "max_sync_body", TIMEOUT)
    }

    /// A chunked body fed through the returned sender.
    fn fed() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
        let (tx, rx) = mpsc::channel(4);
        let chunks = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        (tx, Body::from_stream(chunks))
    }

    #[test]
    fn a_declared_size_over_the_limit_is_refused_up_front() {
        assert!(limit(5).check(&Body::from("12345")).is_ok());
        let err = limit(5).check(&Body::from("123456")).unwrap_err();
        assert_eq!(err.status(), 413);
        assert_eq!(
            err.to_string(),
            "request body too large: at most 5 bytes are accepted here (max_sync_body)"
        );
        assert!(
            limit(0).check(&Body::from(vec![0; 1 << 20])).is_ok(),
            "0: none"
        );
        let (_tx, chunked) = fed();
        assert!(limit(5).check(&chunked).is_ok(), "size unknown up front");
    }

    #[tokio::test]
    async fn bodies_within_the_limit_pass_with_their_size_hint() {
        let (body, watch) = limit(5).guard(Body::from("12345"));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "12345");
        assert!(watch.error().is_none());
        let (body, _) = limit(5).guard(Body::empty());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_chunked_body_is_cut_once_it_grows_past_the_limit() {
        let (tx, body) = fed();
        let (mut body, watch) = limit(5).guard(body);
        tx.send(Ok(Bytes::from_static(b"123"))).await.unwrap();
        tx.send(Ok(Bytes::from_static(b"45"))).await.unwrap();
        tx.send(Ok(Bytes::from_static(b"6"))).await.unwrap();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "123"
        );
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "45"
        );
        assert!(body.frame().await.unwrap().is_err(), "the 6th byte");
        assert!(body.frame().await.is_none());
        assert!(matches!(
            watch.error(),
            Some(GatewayError::BodyTooLarge { limit: 5, .. })
        ));
        let unlimited = BodyLimit::new(0, "max_sync_body", TIMEOUT);
        let (body, watch) =
            unlimited.guard(Body::from_stream(stream::iter([Ok::<_, std::io::Error>(
                Bytes::from(vec![0; 1 << 20]),
            )])));
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1 << 20);
        assert!(watch.error().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_for_read_timeout_fails_and_a_steady_one_does_not() {
        let (tx, body) = fed();
        let (mut body, watch) = limit(0).guard(body);
        // A chunk every 9 s: never a 10 s wait.
        for _ in 0..5 {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(9)).await;
                tx.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
            });
            assert!(body.frame().await.unwrap().is_ok());
        }
        let started = Instant::now();
        assert!(body.frame().await.unwrap().is_err());
        let waited = started.elapsed();
        assert!(
            waited >= TIMEOUT && waited < TIMEOUT + Duration::from_secs(1),
            "{waited:?}"
        );
        let error = watch.error().unwrap();
        assert_eq!(error.status(), 408);
        assert_eq!(
            error.to_string(),
            "the request body did not arrive in time (read_timeout 10s)"
        );
        assert_eq!(watch.or(GatewayError::Internal("x".into())).status(), 408);
        drop(tx);
    }

    #[tokio::test]
    async fn a_client_error_is_not_a_breach() {
        let (tx, body) = fed();
        let (body, watch) = limit(0).guard(body);
        tx.send(Err(std::io::Error::other("reset"))).await.unwrap();
        assert!(body.collect().await.is_err());
        assert!(watch.error().is_none());
        assert_eq!(
            watch.or(GatewayError::BadBody("reset".into())).status(),
            400
        );
    }
}
