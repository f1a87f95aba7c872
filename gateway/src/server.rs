//! Accepting and serving the gateway's client connections (HTTP/1.1, one request at a time
//! per connection), with the limits that protect the process itself:
//!
//! - **`max_connections`**: each open connection holds a slot; with none free the gateway
//!   stops accepting, so new connections wait in the kernel's listen backlog (as Go's
//!   `netutil.LimitListener` does) until one closes, rather than being accepted and dropped.
//!   A warning is logged, at most once a minute, while that happens.
//! - **`read_header_timeout`** (hyper's `header_read_timeout`): a connection that has not
//!   sent a request's complete headers this long after it opened, or after its previous
//!   response, is closed without an answer. This ends slow-loris clients (headers sent byte
//!   by byte) and idle keep-alive connections alike, so slots come back.
//! - the client's address is recorded for `X-Forwarded-For` (as axum's `ConnectInfo`).
//!
//! On shutdown the listener is closed at once, idle connections are closed and busy ones
//! finish their request (hyper's graceful shutdown) before [`serve`] returns.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// How often the "connection limit reached" warning may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the open
/// connections to finish (see the module documentation for the limits).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    read_header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_header_timeout);
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
        let router = router.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(client));
            router.clone().oneshot(req)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%client, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nHost: gw\r\n\r\n";

    /// `serve` on a loopback port with a route answering the client's address.
    async fn start(
        max_connections: usize,
        header_timeout: Duration,
    ) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let router = Router::new().route(
            "/who",
            get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move { client.to_string() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            listener,
            router,
            max_connections,
            header_timeout,
            async move {
                let _ = stopped.await;
            },
        ));
        (addr, stop, served)
    }

    /// Reads until the end of one small response (or EOF); the text read.
    async fn response(stream: &mut TcpStream) -> String {
        let mut buf = vec![0; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn requests_are_served_with_the_clients_address() {
        let (addr, _stop, _) = start(10, Duration::from_secs(10)).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(REQUEST).await.unwrap();
        let answer = response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&stream.local_addr().unwrap().to_string()),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn incomplete_headers_and_idle_connections_are_closed_after_the_timeout() {
        let timeout = Duration::from_millis(300);
        let (addr, _stop, _) = start(10, timeout).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        slow.write_all(b"GET /who HTTP/1.1\r\nHost: g")
            .await
            .unwrap();
        let mut buf = [0; 64];
        assert_eq!(
            slow.read(&mut buf).await.unwrap(),
            0,
            "closed without an answer"
        );
        let took = started.elapsed();
        assert!(took >= timeout && took < timeout * 5, "{took:?}");

        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(REQUEST).await.unwrap();
        assert!(response(&mut idle).await.starts_with("HTTP/1.1 200"));
        assert_eq!(
            idle.read(&mut buf).await.unwrap(),
            0,
            "idle keep-alive closed"
        );
    }

    #[tokio::test]
    async fn past_max_connections_new_connections_wait_for_a_free_slot() {
        let (addr, _stop, _) = start(1, Duration::from_secs(10)).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(REQUEST).await.unwrap();
        assert!(response(&mut first).await.starts_with("HTTP/1.1 200"));
        // The second connection is not accepted while the first one stays open...
        let mut second = TcpStream::connect(addr).await.unwrap();
        second.write_all(REQUEST).await.unwrap();
        let mut buf = [0; 64];
        let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
        assert!(waited.is_err(), "served past max_connections");
        // ...and is served once it closes.
        drop(first);
        assert!(response(&mut second).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener_and_idle_connections() {
        let (addr, stop, served) = start(10, Duration::from_secs(10)).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(REQUEST).await.unwrap();
        assert!(response(&mut idle).await.starts_with("HTTP/1.1 200"));
        stop.send(()).unwrap();
        let mut buf = [0; 64];
        assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
        served.await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
