//! Forwarding one request upstream (to a function replica or to the provider) and its
//! response back, bodies streamed both ways.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::header::HOST;
use http::{Request, Response, Version, request};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::endpoints::InFlight;
use crate::headers::{set_forwarded, strip_hop_by_hop};
use crate::provider::{HttpClient, error_chain};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an upstream exchange produced no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No response headers before the deadline.
    Timeout,
    /// The request never left the gateway, so the upstream cannot have seen it: connecting
    /// failed (refused, reset, unreachable, connect timeout), or the new connection closed
    /// before the request was started.
    NotSent(String),
    /// The exchange failed once the request was (or may have been) on its way: the upstream
    /// may have acted on it.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => f.write_str("no response before the deadline"),
            SendError::NotSent(reason) | SendError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// The client's address, when the server recorded it.
pub(crate) fn client_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Makes a request ready to be sent upstream: hop-by-hop headers removed,
/// `X-Forwarded-For`/`-Host` added when absent, `Host` left to the client (the upstream's
/// address), HTTP/1.1.
pub(crate) fn prepare(parts: &mut request::Parts, client: Option<SocketAddr>) {
    strip_hop_by_hop(&mut parts.headers);
    set_forwarded(&mut parts.headers, client);
    parts.headers.remove(HOST);
    parts.version = Version::HTTP_11;
}

/// Sends `req`; the response headers must arrive before `deadline`.
pub(crate) async fn send(
    client: &HttpClient,
    req: Request<Body>,
    deadline: Instant,
) -> Result<Response<Incoming>, SendError> {
    match tokio::time::timeout_at(deadline, client.request(req)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) if never_sent(&e) => Err(SendError::NotSent(error_chain(&e))),
        Ok(Err(e)) => Err(SendError::Failed(error_chain(&e))),
        Err(_) => Err(SendError::Timeout),
    }
}

/// Whether the pooled client failed before writing any of the request: a connect error
/// (TCP connect, or the HTTP/1 handshake on the new connection), or a request the
/// connection handed back unstarted because it closed first. hyper-util reports the
/// latter as kind `Canceled`, visible only in its message (it re-sends such a request
/// itself when the connection was a reused one, so this is a fresh connection that closed
/// at once, like a port forwarder whose container is gone). Everything else, "connection
/// closed before message completed" included, may have reached the upstream.
fn never_sent(e: &hyper_util::client::legacy::Error) -> bool {
    e.is_connect() || e.to_string() == "client error (Canceled)"
}

/// The upstream response as ours: status and headers copied (hop-by-hop ones removed), the
/// body streamed, and cut at `deadline` if one is given. `in_flight` (the call's count on
/// its replica) is released when the body is finished or dropped.
pub(crate) fn response(
    upstream: Response<Incoming>,
    deadline: Option<(Instant, Duration)>,
    in_flight: Option<InFlight>,
) -> Response<Body> {
    let (mut parts, body) = upstream.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = match deadline {
        Some((at, timeout)) => Body::new(Deadline {
            inner: body,
            sleep: tokio::time::sleep_until(at),
            timeout,
            _in_flight: in_flight,
        }),
        None => Body::new(body),
    };
    Response::from_parts(parts, body)
}

pin_project_lite::pin_project! {
    /// A response body that ends with an error at a deadline, so that a function which
    /// keeps streaming cannot hold a call open past `upstream_timeout`; it keeps the call
    /// counted in flight on its replica while it lives.
    struct Deadline<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
        _in_flight: Option<InFlight>,
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(this.sleep.poll(cx));
        Poll::Ready(Some(Err(format!(
            "response cut: the function was still sending after upstream_timeout ({:?})",
            this.timeout
        )
        .into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    fn get(addr: std::net::SocketAddr) -> Request<Body> {
        Request::get(format!("http://{addr}/"))
            .body(Body::empty())
            .unwrap()
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn a_refused_connection_was_never_sent() {
        let addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let client = crate::provider::http_client();
        match send(&client, get(addr), far()).await {
            Err(SendError::NotSent(reason)) => {
                // The message hyper-util's kinds are told apart by (see `never_sent`).
                assert!(reason.starts_with("client error (Connect)"), "{reason}");
                assert!(reason.contains("refused"), "{reason}");
            }
            other => panic!("expected NotSent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_was_read_may_have_been_seen() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request arrived");
                head.extend_from_slice(&buf[..n]);
            }
            // The upstream read the request, then died without answering.
        });
        let client = crate::provider::http_client();
        let result = send(&client, get(addr), far()).await;
        server.await.unwrap();
        assert!(matches!(result, Err(SendError::Failed(_))), "{result:?}");
    }

    #[tokio::test]
    async fn no_answer_before_the_deadline_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = crate::provider::http_client();
        let deadline = Instant::now() + Duration::from_millis(100);
        let result = send(&client, get(addr), deadline).await;
        assert!(matches!(result, Err(SendError::Timeout)), "{result:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn a_body_still_streaming_at_the_deadline_is_cut() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let inner = StreamBody::new(tokio_stream_from(rx));
        let body = Deadline {
            inner,
            sleep: tokio::time::sleep(Duration::from_millis(50)),
            timeout: Duration::from_millis(50),
            _in_flight: None,
        };
        tx.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let cut = body.frame().await.unwrap().unwrap_err();
        assert!(cut.to_string().contains("upstream_timeout"), "{cut}");
        drop(tx);
    }

    /// A `Stream` over an mpsc receiver, without pulling in tokio-stream.
    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
