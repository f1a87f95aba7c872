//! Accepting and serving the gateway's client connections, with the limits that protect the
//! process itself. Plain HTTP/1.1 (one request at a time per connection), or, with TLS on
//! (`tls`), HTTPS: HTTP/2 when the client picks `h2` by ALPN, HTTP/1.1 otherwise.
//!
//! - **`max_connections`**: each open connection holds a slot (from the moment it is
//!   accepted, TLS handshake included); with none free the gateway stops accepting, so new
//!   connections wait in the kernel's listen backlog (as Go's `netutil.LimitListener` does)
//!   until one closes, rather than being accepted and dropped. A warning is logged, at most
//!   once a minute, while that happens.
//! - **`read_header_timeout`**: an HTTP/1.1 connection that has not sent a request's
//!   complete headers this long after it opened, or after its previous response (hyper's
//!   `header_read_timeout`), is closed without an answer. This ends slow-loris clients
//!   (headers sent byte by byte) and idle keep-alive connections alike, so slots come back.
//!   The same time bounds a TLS handshake, and an HTTP/2 connection without a request in
//!   flight (one whose client sends nothing, or headers that never complete, or that just
//!   stays idle): it gets a `GOAWAY`, and is dropped if it is still open, still without a
//!   request, that long after.
//! - the client's address is recorded for `X-Forwarded-For` (as axum's `ConnectInfo`). An
//!   HTTP/2 request reaches the routes as an HTTP/1.1 one would: its `:authority` as the
//!   `Host` header, its URI as path and query.
//!
//! On shutdown the listener is closed at once, and every connection is shut down
//! gracefully: idle ones close, busy ones finish their requests (an HTTP/2 connection gets a
//! `GOAWAY`), and handshakes in progress are dropped, before [`serve`] returns.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

mod busy;

use busy::{Busy, Tracked};

/// How often the "connection limit reached" warning may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` resolves,
/// then waits for the open connections to finish (see the module documentation for the
/// limits).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    read_header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let connections = TaskTracker::new();
    let served = Arc::new(Served::new(router, read_header_timeout, tls));
    let mut shutdown = pin!(shutdown);
    let mut warned: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(
                        max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                    warned = Some(Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let served = served.clone();
        connections.spawn(async move {
            served.connection(stream, client).await;
            drop(slot);
        });
    }
    drop(listener);
    served.stop.cancel();
    connections.close();
    connections.wait().await;
}

/// After a failed `accept`: a connection that went away before it was accepted is nothing;
/// anything else (out of file descriptors) is logged, and accepting pauses for a second so
/// that the loop does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What every connection is served with.
struct Served {
    router: Router,
    read_header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    /// Cancelled on shutdown: every connection then shuts down gracefully.
    stop: CancellationToken,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Served {
    fn new(router: Router, read_header_timeout: Duration, tls: Option<TlsAcceptor>) -> Served {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(read_header_timeout);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        Served {
            router,
            read_header_timeout,
            tls,
            stop: CancellationToken::new(),
            http1,
            http2,
        }
    }

    /// Serves one accepted connection until it closes.
    async fn connection(&self, stream: TcpStream, client: SocketAddr) {
        let Some(tls) = &self.tls else {
            return self.http1(TokioIo::new(stream), client).await;
        };
        let handshake = tokio::select! {
            done = tokio::time::timeout(self.read_header_timeout, tls.accept(stream)) => done,
            () = self.stop.cancelled() => return,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%client, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%client, timeout = ?self.read_header_timeout, "TLS handshake timed out");
                return;
            }
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            self.http2(TokioIo::new(stream), client).await
        } else {
            self.http1(TokioIo::new(stream), client).await
        }
    }

    async fn http1<I>(&self, io: I, client: SocketAddr)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(client));
            router.clone().oneshot(req)
        });
        let connection = self.http1.serve_connection(io, service);
        drive(
            connection,
            |c| c.graceful_shutdown(),
            &self.stop,
            None,
            client,
        )
        .await
    }

    async fn http2<I>(&self, io: I, client: SocketAddr)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let (busy, requests) = watch::channel(0usize);
        let router = self.router.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let busy = Busy::start(&busy);
            origin_form(&mut req);
            req.extensions_mut().insert(ConnectInfo(client));
            let call = router.clone().oneshot(req);
            async move {
                let response = call.await?;
                Ok::<_, Infallible>(response.map(|body| Tracked::new(body, busy)))
            }
        });
        let connection = self.http2.serve_connection(io, service);
        let idle = Some((requests, self.read_header_timeout));
        drive(
            connection,
            |c| c.graceful_shutdown(),
            &self.stop,
            idle,
            client,
        )
        .await
    }
}

/// Runs `connection` to its end: shut down gracefully once `stop` is cancelled, or once it
/// has had no request in flight for the `idle` time (HTTP/2), and dropped if it is idle
/// that long again after that.
async fn drive<C, E>(
    connection: C,
    graceful: impl Fn(Pin<&mut C>),
    stop: &CancellationToken,
    idle: Option<(watch::Receiver<usize>, Duration)>,
    client: SocketAddr,
) where
    C: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut connection = pin!(connection);
    let mut idle_for = pin!(busy::idle(idle.clone()));
    let mut closing = false;
    let ended = loop {
        tokio::select! {
            ended = connection.as_mut() => break ended,
            () = stop.cancelled(), if !closing => {
                graceful(connection.as_mut());
                closing = true;
            }
            () = &mut idle_for => {
                if closing {
                    tracing::debug!(%client, "idle connection dropped after its GOAWAY");
                    return;
                }
                graceful(connection.as_mut());
                closing = true;
                idle_for.set(busy::idle(idle.clone()));
            }
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%client, %error, "connection ended with an error");
    }
}

/// An HTTP/2 request in the shape the routes know from HTTP/1.1: `:authority` as `Host`
/// (unless the client also sent one), the URI reduced to path and query.
fn origin_form(req: &mut Request<Incoming>) {
    if !req.headers().contains_key(HOST) {
        let host = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(host) = host {
            req.headers_mut().insert(HOST, host);
        }
    }
    if let Some(path_and_query) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = Uri::from(path_and_query);
    }
}

#[cfg(test)]
mod tests;
