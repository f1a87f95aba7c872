//! The pooled HTTP/1 client used for every outgoing request (replicas and the provider), and
//! sending one call to a replica with a deadline: [`send`] tells a request that never left
//! (safe to send elsewhere) from one that may have reached the function, and [`deadline_body`]
//! cuts a response body that is still streaming when the call's time is up.

use std::time::Duration;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::endpoints::InFlight;

pub use ferry_runtime::body::{BoxError, Deadline};

/// How long connecting to a replica or the provider may take. Short, because a replica
/// that cannot be connected to quickly is gone (its address is then dropped).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most a connection buffers of a response it reads (hyper's default is about 400 KiB):
/// a worker streaming 64 large results at once would otherwise hold 25 MiB in read buffers.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// The pooled keep-alive HTTP/1 client used for every outgoing request.
pub type HttpClient = Client<HttpConnector, Body>;

/// A client with `TCP_NODELAY`, a connect timeout, a large idle pool per host and read
/// buffers of at most [`MAX_READ_BUFFER`].
pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(1024)
        .http1_max_buf_size(MAX_READ_BUFFER)
        .build(connector)
}

/// An error and its sources, `outer: inner: innermost` (hyper's own messages are terse).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Why an upstream exchange produced no response.
#[derive(Debug)]
pub enum SendError {
    /// No response headers before the deadline.
    Timeout,
    /// The request never left this process, so the upstream cannot have seen it: connecting
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

/// Sends `req`; the response headers must arrive before `deadline`.
pub async fn send(
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
/// latter as kind `Canceled`, over hyper's own error saying so ([`hyper::Error::is_canceled`]:
/// hyper cancels only requests it hands back unsent). hyper-util re-sends such a request
/// itself when the connection was a reused one, so this is a fresh connection that closed
/// at once, like a port forwarder whose container is gone. Everything else, "connection
/// closed before message completed" included, may have reached the upstream.
fn never_sent(e: &hyper_util::client::legacy::Error) -> bool {
    e.is_connect()
        || std::error::Error::source(e)
            .and_then(|source| source.downcast_ref::<hyper::Error>())
            .is_some_and(hyper::Error::is_canceled)
}

/// A response body cut (with an error) when it is still streaming at the call's deadline, so
/// that a function which keeps streaming cannot hold a call open past its timeout
/// (`timeout` is for the message); it holds `in_flight`, keeping the call counted on its
/// replica while it lives.
pub fn deadline_body<B>(
    inner: B,
    at: Instant,
    timeout: Duration,
    in_flight: Option<InFlight>,
) -> Deadline<B, Option<InFlight>> {
    Deadline::new(inner)
        .deadline(
            at,
            format!(
                "response cut: the function was still sending when its time was up ({timeout:?})"
            ),
        )
        .hold(in_flight)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body::Frame;
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
        let client = http_client();
        match send(&client, get(addr), far()).await {
            Err(SendError::NotSent(reason)) => {
                // A connect error (see `never_sent`).
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
        let client = http_client();
        let result = send(&client, get(addr), far()).await;
        server.await.unwrap();
        assert!(matches!(result, Err(SendError::Failed(_))), "{result:?}");
    }

    #[tokio::test]
    async fn no_answer_before_the_deadline_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = http_client();
        let deadline = Instant::now() + Duration::from_millis(100);
        let result = send(&client, get(addr), deadline).await;
        assert!(matches!(result, Err(SendError::Timeout)), "{result:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn a_body_still_streaming_at_the_deadline_is_cut() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let inner = StreamBody::new(tokio_stream_from(rx));
        let at = Instant::now() + Duration::from_millis(50);
        let body = deadline_body(inner, at, Duration::from_millis(50), None);
        tx.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        let cut = body.frame().await.unwrap().unwrap_err();
        assert!(cut.to_string().contains("time was up"), "{cut}");
        drop(tx);
    }

    /// A `Stream` over an mpsc receiver, without pulling in tokio-stream.
    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
