//! Whether an HTTP/2 connection has requests in flight, for its idle timeout: a count per
//! connection, raised when a request arrives and lowered when its response body has been
//! sent (or dropped: a reset stream, a failed call).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::watch;

/// One request in flight on its connection, until dropped.
pub(super) struct Busy(watch::Sender<usize>);

impl Busy {
    /// Counts a request in on `requests`.
    pub(super) fn start(requests: &watch::Sender<usize>) -> Busy {
        requests.send_modify(|n| *n += 1);
        Busy(requests.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

pin_project! {
    /// A response body that keeps its request counted until it is finished or dropped.
    pub(super) struct Tracked {
        #[pin]
        body: Body,
        busy: Busy,
    }
}

impl Tracked {
    pub(super) fn new(body: Body, busy: Busy) -> Tracked {
        Tracked { body, busy }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once the count has stayed at zero for `after`; never without a count (HTTP/1.1,
/// where hyper's `header_read_timeout` does the same).
pub(super) async fn idle(requests: Option<(watch::Receiver<usize>, Duration)>) {
    let Some((mut requests, after)) = requests else {
        return std::future::pending().await;
    };
    loop {
        if requests.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        if tokio::time::timeout(after, requests.changed())
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_once_no_request_is_in_flight_for_the_whole_time() {
        let after = Duration::from_secs(10);
        let (requests, watched) = watch::channel(0usize);
        let started = tokio::time::Instant::now();
        let busy = Busy::start(&requests);
        let idle = tokio::spawn(idle(Some((watched, after))));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "a request in flight");
        let body = Tracked::new(Body::from("done"), busy);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "its response body is not sent yet");
        drop(body);
        idle.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(70));
        assert_eq!(*requests.borrow(), 0);
    }
}
