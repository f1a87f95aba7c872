//! [`FakeGateway`]: stands in for the provider and every function's replica (or for a
//! callback receiver), records every [`Call`] the worker makes and answers each with a
//! scripted [`Reply`].
//!
//! As a provider it knows every function: `GET /system/endpoints/<name>?namespace=<ns>` lists
//! one ready replica, a listener of its own for that function (made on first use), and
//! `GET /system/function/<name>` its status (with the annotations given to [`FakeGateway::
//! annotate`]). A call reaching a function's replica at `<path>` is recorded with the path
//! `/function/<name>[.<namespace>]<path>` (the namespace when it is not `openfaas-fn`), as
//! the gateway's sync route would have seen it. Any other request on the main address is a
//! call too (the fake as a callback receiver).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One call the [`FakeGateway`] received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Method.
    pub method: Method,
    /// Path, still percent-encoded.
    pub path: String,
    /// Raw query, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Arrival time.
    pub at: Instant,
}

impl Call {
    /// Header `name` as text, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// How the [`FakeGateway`] answers a call.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Bytes,
    /// Time taken before answering (the function's run time).
    pub delay: Duration,
}

impl Reply {
    /// 200 with `body`, at once.
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: Bytes::copy_from_slice(body.as_bytes()),
            delay: Duration::ZERO,
        }
    }

    /// The same with status `status`.
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// The same with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same, answered after `delay`.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Answers a call, given every call that arrived before it.
type Responder = dyn Fn(&Call, &[Call]) -> Reply + Send + Sync;

struct GatewayState {
    /// The replica listener of each function (`name.namespace`), once asked for.
    replicas: Mutex<HashMap<String, SocketAddr>>,
    /// The replica listeners' tasks.
    replica_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Annotations per function (`name.namespace`).
    annotations: Mutex<HashMap<String, BTreeMap<String, String>>>,
    calls: Mutex<Vec<Call>>,
    arrived: Notify,
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// Per function (the path segment after `/function/`): (running now, most at once).
    per_function: Mutex<HashMap<String, (usize, usize)>>,
    responder: Box<Responder>,
}

/// Stands in for the gateway's sync route: an HTTP server on `127.0.0.1:<free port>` that
/// records every call and answers as told; it counts how many calls run at once. Stops when
/// dropped.
pub struct FakeGateway {
    url: String,
    state: Arc<GatewayState>,
    task: JoinHandle<()>,
}

impl FakeGateway {
    /// Answers every call with `reply`.
    pub async fn start(reply: Reply) -> FakeGateway {
        FakeGateway::start_with(move |_, _| reply.clone()).await
    }

    /// Answers each call with `responder(call, n)`, `n` counting calls from 0.
    pub async fn start_with(
        responder: impl Fn(&Call, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeGateway {
        FakeGateway::serve(Box::new(move |call, before| responder(call, before.len()))).await
    }

    /// Answers each call with `script(call, n)`, `n` counting the earlier calls with the same
    /// `X-Call-Id` (0 for a call's first invocation): e.g. fail twice, then succeed.
    pub async fn per_call(
        script: impl Fn(&Call, usize) -> Reply + Send + Sync + 'static,
    ) -> FakeGateway {
        FakeGateway::serve(Box::new(move |call, before| {
            let id = call.header("x-call-id");
            let n = before
                .iter()
                .filter(|c| c.header("x-call-id") == id)
                .count();
            script(call, n)
        }))
        .await
    }

    async fn serve(responder: Box<Responder>) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake gateway");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("fake gateway address")
        );
        let state = Arc::new(GatewayState {
            replicas: Mutex::new(HashMap::new()),
            replica_tasks: Mutex::new(Vec::new()),
            annotations: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            per_function: Mutex::new(HashMap::new()),
            responder,
        });
        let task = tokio::spawn(accept(listener, state.clone(), None));
        FakeGateway { url, state, task }
    }

    /// Gives `function` (`name` or `name.namespace`) the annotation `key` = `value`, as its
    /// deployment would (e.g. `com.openfaas.timeout`).
    pub fn annotate(&self, function: &str, key: &str, value: &str) {
        let key_of = qualified(function);
        let mut all = self.state.annotations.lock().expect("fake lock");
        all.entry(key_of)
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// `http://127.0.0.1:<port>`: the worker's `functions_provider_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:<port><path>`: e.g. a callback URL when the fake stands in for a
    /// callback receiver.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().expect("gateway lock").clone()
    }

    /// How many calls arrived.
    pub fn count(&self) -> usize {
        self.state.calls.lock().expect("gateway lock").len()
    }

    /// The most calls that were running at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_running.load(Ordering::SeqCst)
    }

    /// The most calls of `function` (as in `/function/<function>/...`) running at once.
    pub fn max_concurrent_of(&self, function: &str) -> usize {
        let per = self.state.per_function.lock().expect("gateway lock");
        per.get(function).map_or(0, |(_, most)| *most)
    }

    /// The calls so far whose `X-Call-Id` is `call_id`.
    pub fn calls_of(&self, call_id: &str) -> Vec<Call> {
        let calls = self.state.calls.lock().expect("gateway lock");
        calls
            .iter()
            .filter(|c| c.header("x-call-id") == call_id)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` calls arrived (panics after `timeout`), then returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            if self.count() >= n {
                return self.calls();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "fake gateway: {} call(s) after {timeout:?}, expected {n}",
                    self.count()
                );
            }
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
        for task in self
            .state
            .replica_tasks
            .lock()
            .expect("fake lock")
            .drain(..)
        {
            task.abort();
        }
    }
}

/// `name.namespace` of `function`.
fn qualified(function: &str) -> String {
    if function.contains('.') {
        function.to_string()
    } else {
        format!("{function}.openfaas-fn")
    }
}

/// How a call to `name.namespace` is recorded: `name` in the default namespace.
fn addressed(qualified: &str) -> &str {
    qualified.strip_suffix(".openfaas-fn").unwrap_or(qualified)
}

/// Serves connections on `listener`: as a replica of `function`, or (`None`) as the
/// provider and a callback receiver.
fn accept(
    listener: TcpListener,
    state: Arc<GatewayState>,
    function: Option<String>,
) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move { serve_connections(listener, state, function).await })
}

async fn serve_connections(
    listener: TcpListener,
    state: Arc<GatewayState>,
    function: Option<String>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (state, function) = (state.clone(), function.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let (state, function) = (state.clone(), function.clone());
                async move {
                    let response = match function {
                        Some(f) => answer(&state, req, Some(&f)).await,
                        None => route(&state, req).await,
                    };
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The provider's routes, or a call.
async fn route(
    state: &Arc<GatewayState>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let namespace = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("namespace=")))
        .unwrap_or("openfaas-fn")
        .to_string();
    let json = |value: serde_json::Value| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(value.to_string())));
        r.headers_mut().insert(
            "content-type",
            "application/json".parse().expect("a header"),
        );
        r
    };
    if let Some(name) = path.strip_prefix("/system/endpoints/") {
        let function = format!("{name}.{namespace}");
        let address = replica(state, &function).await;
        return json(serde_json::json!({
            "name": name, "namespace": namespace, "replicas": 1,
            "endpoints": [{"id": "r1", "address": address.to_string(), "ready": true}],
        }));
    }
    if let Some(name) = path.strip_prefix("/system/function/") {
        let function = format!("{name}.{namespace}");
        let annotations = state
            .annotations
            .lock()
            .expect("fake lock")
            .get(&function)
            .cloned()
            .unwrap_or_default();
        return json(serde_json::json!({
            "name": name, "namespace": namespace, "image": "fake", "replicas": 1,
            "availableReplicas": 1, "annotations": annotations,
        }));
    }
    answer(state, req, None).await
}

/// The replica listener of `function` (`name.namespace`), made on first use.
async fn replica(state: &Arc<GatewayState>, function: &str) -> SocketAddr {
    if let Some(addr) = state.replicas.lock().expect("fake lock").get(function) {
        return *addr;
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a fake replica");
    let addr = listener.local_addr().expect("replica address");
    let mut replicas = state.replicas.lock().expect("fake lock");
    if let Some(existing) = replicas.get(function) {
        return *existing;
    }
    replicas.insert(function.to_string(), addr);
    let task = tokio::spawn(accept(listener, state.clone(), Some(function.to_string())));
    state.replica_tasks.lock().expect("fake lock").push(task);
    addr
}

async fn answer(
    state: &GatewayState,
    req: hyper::Request<Incoming>,
    function: Option<&str>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = match function {
        Some(f) => format!("/function/{}{}", addressed(f), parts.uri.path()),
        None => parts.uri.path().to_string(),
    };
    let call = Call {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    let function = call
        .path
        .strip_prefix("/function/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
        .to_string();
    let reply = {
        let mut calls = state.calls.lock().expect("gateway lock");
        let reply = (state.responder)(&call, &calls);
        calls.push(call);
        reply
    };
    let running = state.running.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_running.fetch_max(running, Ordering::SeqCst);
    {
        let mut per = state.per_function.lock().expect("gateway lock");
        let (now, most) = per.entry(function.clone()).or_insert((0, 0));
        *now += 1;
        *most = (*most).max(*now);
    }
    state.arrived.notify_waiters();
    tokio::time::sleep(reply.delay).await;
    state.running.fetch_sub(1, Ordering::SeqCst);
    if let Some((now, _)) = state
        .per_function
        .lock()
        .expect("gateway lock")
        .get_mut(&function)
    {
        *now -= 1;
    }
    let mut response = hyper::Response::new(Full::new(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("a valid status");
    for (name, value) in reply.headers {
        response.headers_mut().append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value.parse().expect("a header value"),
        );
    }
    response
}
