//! Request limits: bodies over `max_request_body` (`/system/*`) and `max_sync_body`
//! (`/function/*`) are `413` and not forwarded whole; a client that sends its headers byte by
//! byte is disconnected after `read_header_timeout`; a body that stalls is `408` after
//! `read_timeout`; past `max_concurrent_requests` calls are shed with `503` and
//! `Retry-After`, `/healthz` and `/metrics` still answered.
//!
//! The gateway runs in front of [`Fake`], one small HTTP server standing in for the provider
//! (it lists itself as the only replica of every function) and for that replica, which
//! records every request whose body it received whole and holds calls to `/hold` until the
//! test releases them. NATS is not needed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_tests::gateway::TestGateway;
use ferry_tests::{http_client, wait_until};
use futures_util::{StreamExt as _, stream};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::common::{gateway_error, header};

/// NATS where nothing listens: these routes do not need it.
const NO_NATS: &str = "nats://127.0.0.1:1";

/// The stand-in provider and replica, and what it saw.
#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    /// `"<method> <path> <body length>"` of every request received whole (endpoint look-ups
    /// aside).
    seen: Arc<Mutex<Vec<String>>>,
    /// Calls to `/hold` waiting to be released.
    held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
}

impl Fake {
    async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            held: Arc::default(),
            release: watch::Sender::new(false),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let fake = server.clone();
                let service = service_fn(move |req| fake.clone().answer(req));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        fake
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_string();
        if let Some(name) = path.strip_prefix("/system/endpoints/") {
            let endpoints = json!({
                "name": name, "namespace": "openfaas-fn", "replicas": 1,
                "endpoints": [{"id": "r1", "address": self.addr.to_string(), "ready": true}],
            });
            return Ok(Response::new(Full::from(endpoints.to_string())));
        }
        if path == "/hold" {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _ = self
                .release
                .subscribe()
                .wait_for(|released| *released)
                .await;
            self.held.fetch_sub(1, Ordering::SeqCst);
        }
        let method = req.method().clone();
        let Ok(body) = req.into_body().collect().await else {
            // Cut by the gateway: nothing is recorded.
            return Ok(Response::new(Full::default()));
        };
        let line = format!("{method} {path} {}", body.to_bytes().len());
        self.seen.lock().unwrap().push(line.clone());
        Ok(Response::new(Full::from(line)))
    }
}

async fn gateway(fake: &Fake, extra: &[(&str, &str)]) -> TestGateway {
    TestGateway::start(&fake.url(), NO_NATS, extra).await
}

/// `chunks`, sent chunked, then nothing more while the connection stays open.
fn then_stall(chunks: Vec<Vec<u8>>) -> reqwest::Body {
    let chunks = chunks.into_iter().map(Ok::<_, std::io::Error>);
    reqwest::Body::wrap_stream(stream::iter(chunks).chain(stream::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_bodies_over_max_request_body_are_413_and_not_forwarded() {
    let fake = Fake::start().await;
    let gateway = gateway(&fake, &[("max_request_body", "1KiB")]).await;
    let client = http_client();
    let deployment = json!({"service": "big", "image": "x", "envVars": {"pad": "x".repeat(2048)}});
    let resp = client
        .post(gateway.url("/system/functions"))
        .json(&deployment)
        .send()
        .await
        .unwrap();
    let message = gateway_error(resp, 413).await;
    assert_eq!(
        message,
        "request body too large: at most 1024 bytes are accepted here (max_request_body)"
    );
    // Chunked, growing past the limit: cut, never received whole.
    let resp = client
        .post(gateway.url("/system/functions"))
        .body(then_stall(vec![vec![b'x'; 600], vec![b'x'; 600]]))
        .send()
        .await
        .unwrap();
    assert!(gateway_error(resp, 413).await.contains("max_request_body"));
    assert_eq!(fake.seen(), Vec::<String>::new(), "nothing forwarded");
    // Within the limit, it is forwarded.
    let resp = client
        .post(gateway.url("/system/functions"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(fake.seen(), ["POST /system/functions 1024"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bodies_over_max_sync_body_are_413() {
    let fake = Fake::start().await;
    let gateway = gateway(&fake, &[("max_sync_body", "1KiB")]).await;
    let client = http_client();
    let call = |body: reqwest::Body| client.post(gateway.url("/function/fn")).body(body).send();
    let resp = call(vec![b'x'; 1024].into()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "POST / 1024");
    // Content-Length over the limit: refused up front, with the call's headers.
    let resp = call(vec![b'x'; 1025].into()).await.unwrap();
    assert!(resp.headers().contains_key("x-call-id"));
    let message = gateway_error(resp, 413).await;
    assert!(message.contains("at most 1024 bytes") && message.contains("max_sync_body"));
    // Chunked: the call is cut once the body grows past the limit.
    let resp = call(then_stall(vec![vec![b'x'; 600], vec![b'x'; 600]]))
        .await
        .unwrap();
    assert!(gateway_error(resp, 413).await.contains("max_sync_body"));
    assert_eq!(fake.seen(), ["POST / 1024"], "the function got no cut body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_byte_by_byte_is_disconnected() {
    let fake = Fake::start().await;
    let timeout = Duration::from_millis(500);
    let gateway = gateway(&fake, &[("read_header_timeout", "500ms")]).await;
    let started = Instant::now();
    let stream = TcpStream::connect(gateway.addr()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // 10 bytes a second: the headers would take 4 s.
    let trickle = tokio::spawn(async move {
        for byte in b"GET /metrics HTTP/1.1\r\nHost: gw\r\nX-Slow: 1\r\n\r\n" {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0; 256];
    let read = read.read(&mut buf).await;
    let took = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "answered: {read:?}");
    assert!(took >= timeout && took < timeout * 4, "{took:?}");
    trickle.abort();
    // A normal client is served.
    let resp = http_client().get(gateway.url("/metrics")).send().await;
    assert_eq!(resp.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_408_after_read_timeout() {
    let fake = Fake::start().await;
    let timeout = Duration::from_millis(500);
    let gateway = gateway(&fake, &[("read_timeout", "500ms")]).await;
    let client = http_client();
    for path in ["/function/fn", "/system/secrets"] {
        let started = Instant::now();
        let resp = client
            .post(gateway.url(path))
            .body(then_stall(vec![b"12345".to_vec()]))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        let message = gateway_error(resp, 408).await;
        assert_eq!(
            message, "the request body did not arrive in time (read_timeout 500ms)",
            "{path}"
        );
        assert!(took >= timeout && took < timeout * 4, "{path}: {took:?}");
    }
    assert_eq!(fake.seen(), Vec::<String>::new(), "nothing received whole");
    // A slow but steady body is not cut: a chunk every 300 ms, 1.2 s in all.
    let steady = stream::iter(0..4).then(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(vec![b'x'; 10])
    });
    let resp = client
        .post(gateway.url("/function/fn"))
        .body(reqwest::Body::wrap_stream(steady))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "POST / 40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_concurrent_requests_calls_are_shed_with_503() {
    let fake = Fake::start().await;
    let gateway = gateway(&fake, &[("max_concurrent_requests", "2")]).await;
    let client = http_client();
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client.post(gateway.url("/function/fn/hold")).send()))
        .collect();
    wait_until("two calls are held", Duration::from_secs(10), || async {
        fake.held.load(Ordering::SeqCst) == 2
    })
    .await;

    for path in ["/function/fn", "/system/functions", "/async-function/fn"] {
        let resp = client.post(gateway.url(path)).send().await.unwrap();
        assert_eq!(header(&resp, "retry-after"), "1", "{path}");
        let message = gateway_error(resp, 503).await;
        assert_eq!(
            message, "too many requests in flight (max_concurrent_requests 2), retry shortly",
            "{path}"
        );
    }
    // Health and metrics are not counted.
    let metrics = client.get(gateway.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let health = client.get(gateway.url("/healthz")).send().await.unwrap();
    let health: serde_json::Value = health.json().await.unwrap();
    assert!(health.get("nats").is_some(), "{health}");

    fake.release.send_replace(true);
    for call in held {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    let resp = client
        .post(gateway.url("/function/fn"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "slots are given back");
}
