use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt as _, Empty};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::*;
use crate::tls::{Tls, TlsSettings};

const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nHost: gw\r\n\r\n";

/// Routes answering the client's address (`/who`) and what the request looked like
/// (`/host`: its `Host` header and URI).
fn router() -> Router {
    Router::new()
        .route(
            "/who",
            get(|ConnectInfo(client): ConnectInfo<SocketAddr>| async move { client.to_string() }),
        )
        .route(
            "/host",
            get(|headers: HeaderMap, uri: Uri| async move {
                let host = headers.get(HOST).map(|h| h.to_str().unwrap().to_string());
                format!("{} {uri}", host.unwrap_or_default())
            }),
        )
}

struct Started {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
    /// The self-signed certificate served, with TLS.
    cert: Option<CertificateDer<'static>>,
    _dir: Option<tempfile::TempDir>,
}

/// `serve` on a loopback port, plain or with a self-signed certificate for `localhost`.
async fn start(max_connections: usize, header_timeout: Duration, with_tls: bool) -> Started {
    let (tls, cert, dir) = if with_tls {
        let dir = tempfile::tempdir().unwrap();
        let settings = TlsSettings {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            reload_interval: Duration::ZERO,
            self_signed: Some(vec!["localhost".into()]),
        };
        let tls = Tls::start(&settings).unwrap();
        let pem = std::fs::read(&settings.cert_file).unwrap();
        let cert = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
        (Some(tls.acceptor()), Some(cert), Some(dir))
    } else {
        (None, None, None)
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(
        listener,
        router(),
        max_connections,
        header_timeout,
        tls,
        async move {
            let _ = stopped.await;
        },
    ));
    Started {
        addr,
        stop: Some(stop),
        served,
        cert,
        _dir: dir,
    }
}

impl Started {
    /// Resolves `serve`'s shutdown future.
    fn stop(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
    }
}

/// A TLS connection to `started` trusting its certificate, offering `alpn`.
async fn tls_connect(started: &Started, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(started.cert.clone().unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(started.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the end of one small response (or EOF); the text read.
async fn response(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn requests_are_served_with_the_clients_address() {
    let started = start(10, Duration::from_secs(10), false).await;
    let mut stream = TcpStream::connect(started.addr).await.unwrap();
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
    let started = start(10, timeout, false).await;
    let mut slow = TcpStream::connect(started.addr).await.unwrap();
    let begun = Instant::now();
    slow.write_all(b"GET /who HTTP/1.1\r\nHost: g")
        .await
        .unwrap();
    let mut buf = [0; 64];
    assert_eq!(
        slow.read(&mut buf).await.unwrap(),
        0,
        "closed without an answer"
    );
    let took = begun.elapsed();
    assert!(took >= timeout && took < timeout * 5, "{took:?}");

    let mut idle = TcpStream::connect(started.addr).await.unwrap();
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
    let started = start(1, Duration::from_secs(10), false).await;
    let mut first = TcpStream::connect(started.addr).await.unwrap();
    first.write_all(REQUEST).await.unwrap();
    assert!(response(&mut first).await.starts_with("HTTP/1.1 200"));
    // The second connection is not accepted while the first one stays open...
    let mut second = TcpStream::connect(started.addr).await.unwrap();
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
    let mut started = start(10, Duration::from_secs(10), false).await;
    let mut idle = TcpStream::connect(started.addr).await.unwrap();
    idle.write_all(REQUEST).await.unwrap();
    assert!(response(&mut idle).await.starts_with("HTTP/1.1 200"));
    started.stop();
    let mut buf = [0; 64];
    assert_eq!(idle.read(&mut buf).await.unwrap(), 0);
    (&mut started.served).await.unwrap();
    assert!(
        TcpStream::connect(started.addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn tls_serves_http1_by_alpn_with_the_clients_address() {
    let started = start(10, Duration::from_secs(10), true).await;
    let mut stream = tls_connect(&started, b"http/1.1").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let local = stream.get_ref().0.local_addr().unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let answer = response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&local.to_string()), "{answer}");
}

#[tokio::test]
async fn tls_serves_http2_by_alpn_as_routes_know_http1() {
    let started = start(10, Duration::from_secs(10), true).await;
    let stream = tls_connect(&started, b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let local = stream.get_ref().0.local_addr().unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for (path, expected) in [
        ("/who", local.to_string()),
        ("/host?x=1", "localhost:1 /host?x=1".to_string()),
    ] {
        let request = Request::get(format!("https://localhost:1{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = sender.send_request(request).await.unwrap();
        assert_eq!(answer.version(), http::Version::HTTP_2);
        assert_eq!(answer.status(), 200);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, expected.as_bytes());
    }
}

#[tokio::test]
async fn tls_port_does_not_answer_plain_http() {
    let started = start(10, Duration::from_secs(10), true).await;
    let mut plain = TcpStream::connect(started.addr).await.unwrap();
    plain.write_all(REQUEST).await.unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn tls_handshakes_and_idle_http2_connections_time_out() {
    let timeout = Duration::from_millis(300);
    let started = start(10, timeout, true).await;
    // No ClientHello: dropped after the timeout.
    let mut silent = TcpStream::connect(started.addr).await.unwrap();
    let begun = Instant::now();
    let mut buf = [0; 64];
    assert_eq!(silent.read(&mut buf).await.unwrap(), 0);
    let took = begun.elapsed();
    assert!(took >= timeout && took < timeout * 5, "{took:?}");

    // An HTTP/2 connection that served a request and then stays idle is closed.
    let stream = tls_connect(&started, b"h2").await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get("https://localhost/who")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let begun = Instant::now();
    let answer = sender.send_request(request).await.unwrap();
    answer.into_body().collect().await.unwrap();
    let ended = tokio::time::timeout(timeout * 10, connection)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .unwrap();
    assert!(
        begun.elapsed() >= timeout,
        "{:?} {ended:?}",
        begun.elapsed()
    );
}

#[tokio::test]
async fn shutdown_ends_tls_connections_too() {
    let mut started = start(10, Duration::from_secs(10), true).await;
    let stream = tls_connect(&started, b"h2").await;
    let (_sender, connection) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    // A connection still in its handshake is dropped.
    let _handshaking = TcpStream::connect(started.addr).await.unwrap();
    started.stop();
    tokio::time::timeout(Duration::from_secs(5), &mut started.served)
        .await
        .expect("serve returned")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the HTTP/2 connection was closed")
        .unwrap()
        .ok();
}
