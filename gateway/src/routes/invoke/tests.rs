//! The whole sync route, without Docker: the real gateway in front of a fake provider whose
//! endpoint answers are scripted per function (and counted), and tiny replicas that answer
//! `"<replica> <method> <body>"`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use ferry_proto::{Endpoint, FunctionEndpoints};
use futures_util::stream;
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::test_support::{Cold, serve, start_gateway};

/// One answer of the provider: the ready replicas, or `None` for "not found".
type Answer = Option<Vec<SocketAddr>>;

/// Per function, the provider's successive answers (the last one repeats), and how many
/// look-ups each function got.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    lookups: Arc<Mutex<HashMap<String, usize>>>,
}

impl Script {
    fn set(&self, function: &str, answers: Vec<Answer>) {
        let mut all = self.answers.lock().unwrap();
        all.insert(function.to_string(), answers);
    }

    fn lookups(&self, function: &str) -> usize {
        self.lookups
            .lock()
            .unwrap()
            .get(function)
            .copied()
            .unwrap_or(0)
    }
}

async fn endpoints(
    State(script): State<Script>,
    Path(name): Path<String>,
) -> Result<axum::Json<FunctionEndpoints>, StatusCode> {
    let n = {
        let mut lookups = script.lookups.lock().unwrap();
        let n = lookups.entry(name.clone()).or_default();
        *n += 1;
        *n
    };
    let answer = {
        let answers = script.answers.lock().unwrap();
        let list = answers.get(&name).ok_or(StatusCode::NOT_FOUND)?;
        list[(n - 1).min(list.len() - 1)].clone()
    };
    let addresses = answer.ok_or(StatusCode::NOT_FOUND)?;
    Ok(axum::Json(FunctionEndpoints {
        name,
        namespace: "openfaas-fn".into(),
        replicas: addresses.len() as u64,
        endpoints: addresses
            .iter()
            .enumerate()
            .map(|(i, a)| Endpoint {
                id: i.to_string(),
                address: a.to_string(),
                ready: true,
            })
            .collect(),
        probe: Default::default(),
    }))
}

/// A replica answering `"<name> <method> <body>"`, and how many calls it got.
async fn replica(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().fallback(move |method: Method, body: Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            format!("{name} {method} {}", String::from_utf8_lossy(&body))
        }
    });
    (serve(router).await, hits)
}

/// An address nothing listens on: connecting is refused.
async fn dead() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

struct Running {
    addr: SocketAddr,
    script: Script,
    _stop: oneshot::Sender<()>,
}

async fn gateway(extra: &[(&str, &str)]) -> Running {
    let script = Script::default();
    let provider = serve(
        Router::new()
            .route("/system/endpoints/{name}", get(endpoints))
            .with_state(script.clone()),
    )
    .await;
    let (addr, stop) = start_gateway(&format!("http://{provider}"), extra).await;
    Running {
        addr,
        script,
        _stop: stop,
    }
}

/// Calls `/function/<function>`; returns status and body text.
async fn call(gw: &Running, method: Method, function: &str, body: Body) -> (u16, String) {
    let (status, _, body) = call_at(gw.addr, method, function, body).await;
    (status, body)
}

/// Calls `/function/<function>` on the gateway at `addr`; returns status, headers and
/// body text.
async fn call_at(
    addr: SocketAddr,
    method: Method,
    function: &str,
    body: Body,
) -> (u16, http::HeaderMap, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/function/{function}"))
        .body(body)
        .unwrap();
    let resp = ferry_invoke::client::http_client()
        .request(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A body of unknown size (sent chunked), which the gateway cannot replay.
fn chunked(text: impl Into<String>) -> Body {
    let text: String = text.into();
    let (a, b) = text.split_at(text.len() / 2);
    let chunks = [a, b].map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c.as_bytes())));
    Body::from_stream(stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_reached_a_replica_is_sent_to_another_one() {
    let gw = gateway(&[]).await;
    let (a, a_hits) = replica("a").await;
    let gone = dead().await;
    // The cached list has a replica that is gone, first in round-robin order; the
    // provider no longer lists it.
    gw.script
        .set("post", vec![Some(vec![gone, a]), Some(vec![a])]);
    let (status, body) = call(&gw, Method::POST, "post", Body::from("order 1")).await;
    assert_eq!((status, body.as_str()), (200, "a POST order 1"));
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
    assert_eq!(gw.script.lookups("post"), 2, "the list was fetched again");
    let (status, body) = call(&gw, Method::POST, "post", Body::from("order 2")).await;
    assert_eq!((status, body.as_str()), (200, "a POST order 2"));
    assert_eq!(gw.script.lookups("post"), 2, "the fresh list is used");

    // Bodiless calls too, any method.
    gw.script.set("delete", vec![Some(vec![gone, a])]);
    let (status, body) = call(&gw, Method::DELETE, "delete", Body::empty()).await;
    assert_eq!((status, body.as_str()), (200, "a DELETE "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_or_big_bodies_are_not_retried() {
    let gw = gateway(&[("max_retry_body", "16")]).await;
    let (a, a_hits) = replica("a").await;
    let gone = dead().await;
    gw.script.set("streamed", vec![Some(vec![gone, a])]);
    let (status, body) = call(&gw, Method::POST, "streamed", chunked("order 1")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains(&format!("replica {gone}")), "{body}");
    assert!(body.contains("refused"), "{body}");
    gw.script.set("big", vec![Some(vec![gone, a])]);
    let (status, body) = call(&gw, Method::POST, "big", Body::from(vec![b'x'; 17])).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(a_hits.load(Ordering::SeqCst), 0);
    // Up to the limit, it is.
    gw.script.set("small", vec![Some(vec![gone, a])]);
    let (status, _) = call(&gw, Method::POST, "small", Body::from(vec![b'x'; 16])).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_replica_works_the_answer_is_502_or_503() {
    // Without scaling from zero, a function without a ready replica is a 503 at once.
    let gw = gateway(&[("scale_from_zero", "false")]).await;
    let gone: Vec<SocketAddr> = vec![dead().await, dead().await, dead().await, dead().await];
    // Every replica is gone but still listed: at most three are tried.
    gw.script.set("all-gone", vec![Some(gone.clone())]);
    let (status, body) = call(&gw, Method::GET, "all-gone", Body::empty()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(gw.script.lookups("all-gone"), 3, "one look-up per retry");
    // The fresh list has no ready replica: 503.
    gw.script
        .set("scaled-down", vec![Some(vec![gone[0]]), Some(vec![])]);
    let (status, body) = call(&gw, Method::GET, "scaled-down", Body::empty()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no ready replica"), "{body}");
    // The function was deleted meanwhile: 404.
    gw.script.set("deleted", vec![Some(vec![gone[0]]), None]);
    let (status, body) = call(&gw, Method::GET, "deleted", Body::empty()).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_functions_outdated_list_is_refreshed_before_the_call() {
    let gw = gateway(&[
        ("endpoint_cache_ttl", "200ms"),
        ("endpoint_max_stale", "600ms"),
    ])
    .await;
    let (a, _) = replica("a").await;
    let (b, _) = replica("b").await;
    let (c, _) = replica("c").await;
    gw.script
        .set("idle", vec![Some(vec![a]), Some(vec![b]), Some(vec![c])]);
    let (_, body) = call(&gw, Method::POST, "idle", chunked("x")).await;
    assert_eq!(body, "a POST x");
    // Slightly outdated: still used once, while it is refreshed in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = call(&gw, Method::POST, "idle", chunked("x")).await;
    assert_eq!(body, "a POST x");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, body) = call(&gw, Method::POST, "idle", chunked("x")).await;
    assert_eq!(body, "b POST x");
    // Idle for longer than endpoint_max_stale: the call waits for a fresh list. The
    // body is streamed, so a stale list could not be made up for by a retry.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, body) = call(&gw, Method::POST, "idle", chunked("x")).await;
    assert_eq!((status, body.as_str()), (200, "c POST x"));
    assert_eq!(gw.script.lookups("idle"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_calls_keep_their_bodies_and_go_once_a_replica_is_ready() {
    let cold = Cold::start(0, Some(Duration::from_millis(150))).await;
    let (addr, _stop) = start_gateway(&cold.provider_url(), &[("max_retry_body", "1KiB")]).await;
    let big = "b".repeat(100 * 1024);
    // Small bodies (read before the call), streamed ones, and ones over max_retry_body.
    let calls = (0..12).map(|i| {
        let body = match i % 3 {
            0 => format!("small {i}"),
            1 => format!("streamed {i}"),
            _ => format!("big {i} {big}"),
        };
        async move {
            let sent = if i % 3 == 1 {
                chunked(body.clone())
            } else {
                Body::from(body.clone())
            };
            let (status, _, answer) = call_at(addr, Method::POST, "cold", sent).await;
            (status, answer, body)
        }
    });
    for (status, answer, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, format!("cold POST {body}"));
    }
    assert_eq!(cold.scale_requests(), [2], "one scale-up");
    assert_eq!(
        cold.calls.load(Ordering::SeqCst),
        12,
        "none sent before ready"
    );
    // From now on the replica is cached: calls go straight to it.
    let lookups = cold.lookups.load(Ordering::SeqCst);
    let (status, _, _) = call_at(addr, Method::GET, "cold", Body::empty()).await;
    assert_eq!(status, 200);
    assert_eq!(cold.lookups.load(Ordering::SeqCst), lookups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scale_from_zero_a_function_at_zero_is_a_503_at_once() {
    let cold = Cold::start(0, Some(Duration::from_millis(10))).await;
    let (addr, _stop) = start_gateway(&cold.provider_url(), &[("scale_from_zero", "false")]).await;
    let started = Instant::now();
    let (status, headers, body) = call_at(addr, Method::GET, "cold", Body::empty()).await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(headers["x-openfaas-internal"], "proxy");
    assert!(
        body.contains("no ready replica of function cold (0 desired)"),
        "{body}"
    );
    assert!(cold.scale_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_never_gets_ready_is_a_503_after_the_timeout() {
    let cold = Cold::start(0, None).await;
    let (addr, _stop) = start_gateway(
        &cold.provider_url(),
        &[("scale_from_zero_timeout", "500ms")],
    )
    .await;
    let started = Instant::now();
    let (status, headers, body) = call_at(addr, Method::POST, "cold", Body::from("lost?")).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(headers["x-openfaas-internal"], "proxy");
    assert_eq!(headers["content-type"], "application/json");
    let message: ferry_proto::ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(
        message.message,
        "function cold did not become ready within 500ms \
         (2 desired replicas, 1 running, none ready; scaled up from zero)"
    );
    assert_eq!(cold.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_sync_body_are_413_and_stalled_ones_408() {
    let gw = gateway(&[("max_sync_body", "16"), ("read_timeout", "300ms")]).await;
    let (a, hits) = replica("a").await;
    gw.script.set("limited", vec![Some(vec![a])]);
    let (status, body) = call(&gw, Method::POST, "limited", Body::from(vec![b'x'; 16])).await;
    assert_eq!(status, 200, "{body}");
    // Content-Length over the limit: refused before the replica is chosen.
    let (status, body) = call(&gw, Method::POST, "limited", Body::from(vec![b'x'; 17])).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("at most 16 bytes") && body.contains("max_sync_body"),
        "{body}"
    );
    // Chunked: cut once it grows past the limit.
    let (status, body) = call(&gw, Method::POST, "limited", chunked("x".repeat(20))).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the first call was answered"
    );

    // 5 bytes, then nothing: 408 once read_timeout passed, not the replica's fault.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from_static(b"12345"))).await.unwrap();
    let stalled = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let started = Instant::now();
    let (status, body) = call(&gw, Method::POST, "limited", Body::from_stream(stalled)).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("read_timeout"), "{body}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(tx);
    assert_eq!(
        gw.script.lookups("limited"),
        1,
        "the replica list was not refreshed"
    );
}
