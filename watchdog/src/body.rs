//! Response and request body types, and [`Guarded`], the body wrapper that enforces a
//! deadline and holds resources (a concurrency permit, a child process) until the body ends.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use tokio::time::{Instant, Sleep};

/// Errors carried by bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type used for requests handed to runners and for every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with all of `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Why a [`Guarded`] body was cut short.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Expired(pub(crate) &'static str);

/// Wraps a body: fails it with [`Expired`] if it has not ended by a deadline, and keeps
/// `hold` (anything that must live exactly as long as the response) until it is dropped.
pub(crate) struct Guarded {
    inner: Body,
    deadline: Option<Pin<Box<Sleep>>>,
    reason: &'static str,
    expired: bool,
    _hold: Vec<Box<dyn Any + Send>>,
}

impl Guarded {
    /// A guard around `inner`, with no deadline yet.
    pub(crate) fn new(inner: Body) -> Self {
        Guarded {
            inner,
            deadline: None,
            reason: "",
            expired: false,
            _hold: Vec::new(),
        }
    }

    /// Fails the body with `reason` if it is still streaming at `at` (the earliest
    /// deadline wins when called more than once).
    pub(crate) fn deadline(mut self, at: Instant, reason: &'static str) -> Self {
        let earlier = self.deadline.as_ref().is_none_or(|d| at < d.deadline());
        if earlier {
            self.deadline = Some(Box::pin(tokio::time::sleep_until(at)));
            self.reason = reason;
        }
        self
    }

    /// Keeps `value` alive until the body is dropped.
    pub(crate) fn hold(mut self, value: impl Any + Send) -> Self {
        self._hold.push(Box::new(value));
        self
    }

    /// Boxes the guarded body.
    pub(crate) fn into_body(self) -> Body {
        UnsyncBoxBody::new(self)
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.expired = true;
                return Poll::Ready(Some(Err(Box::new(Expired(self.reason)))));
            }
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
