//! [`Deadline`], the one body wrapper that cuts a body still streaming at a deadline and holds
//! what must live exactly as long as the body (a concurrency permit, a call's in-flight
//! count): the gateway's and the queue-worker's replica responses, the watchdog's responses.

use std::borrow::Cow;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A boxed error, as body errors are.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`Deadline`] body was cut short.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Expired(pub Cow<'static, str>);

/// Wraps a body: fails it with [`Expired`] if it has not ended by its deadline (then ends it),
/// and keeps `H` until it is dropped. Without a deadline it only holds.
pub struct Deadline<B, H = ()> {
    inner: B,
    sleep: Option<Pin<Box<Sleep>>>,
    reason: Cow<'static, str>,
    expired: bool,
    _held: H,
}

impl<B> Deadline<B> {
    /// `inner`, with no deadline yet, holding nothing.
    pub fn new(inner: B) -> Self {
        Deadline {
            inner,
            sleep: None,
            reason: Cow::Borrowed(""),
            expired: false,
            _held: (),
        }
    }
}

impl<B, H> Deadline<B, H> {
    /// Fails the body with `reason` if it is still streaming at `at` (the earliest deadline
    /// wins when called more than once).
    pub fn deadline(mut self, at: Instant, reason: impl Into<Cow<'static, str>>) -> Self {
        if self.sleep.as_ref().is_none_or(|d| at < d.deadline()) {
            self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
            self.reason = reason.into();
        }
        self
    }

    /// Keeps `value` (instead of what it held) alive until the body is dropped.
    pub fn hold<V>(self, value: V) -> Deadline<B, V> {
        Deadline {
            inner: self.inner,
            sleep: self.sleep,
            reason: self.reason,
            expired: self.expired,
            _held: value,
        }
    }
}

impl<B, H> HttpBody for Deadline<B, H>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    H: Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                self.expired = true;
                let reason = std::mem::take(&mut self.reason);
                return Poll::Ready(Some(Err(Box::new(Expired(reason)))));
            }
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt as _, Full};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_earliest_deadline_cuts_and_the_body_then_ends() {
        let pending = http_body_util::StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, BoxError>,
        >());
        let now = Instant::now();
        let mut body = Deadline::new(pending)
            .deadline(now + Duration::from_secs(5), "late")
            .deadline(now + Duration::from_secs(1), "write_timeout")
            .deadline(now + Duration::from_secs(3), "later");
        let cut = body.frame().await.unwrap().unwrap_err();
        assert_eq!(cut.to_string(), "write_timeout");
        assert!(cut.downcast_ref::<Expired>().is_some());
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        assert_eq!(Instant::now() - now, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn without_a_deadline_it_only_holds() {
        let held = std::sync::Arc::new(());
        let body = Deadline::new(Full::new(Bytes::from_static(b"all")).map_err(|n| match n {}))
            .hold(held.clone());
        assert_eq!(std::sync::Arc::strong_count(&held), 2);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "all");
        assert_eq!(std::sync::Arc::strong_count(&held), 1);
    }
}
