//! `queue-worker` for tests: in-process through `run()` ([`TestWorker`]) or as the real binary
//! ([`start_process`]); a fake gateway ([`FakeGateway`]) that records the calls the worker
//! makes and answers each as scripted (it also serves as a scriptable callback receiver);
//! helpers that queue calls the way the gateway does; and readers of what the worker records
//! (call status records, dead letters, queued callbacks).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use ferry_proto::calls::{CallStatus, DeadLetter};
use ferry_proto::jetstream::{
    CALL_ID_HEADER, CALLBACK_STREAM, CALLS_STREAM, DEAD_LETTER_STREAM, DEFAULT_QUEUE,
    STATUS_BUCKET, call_subject,
};
use ferry_proto::{FunctionRef, Name, QueueRequest};
use ferry_queue_worker::{Config, WorkerError};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::process::ServiceProcess;
use crate::{free_port, http_client, wait_until};

/// How long a worker gets to report healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker run in-process on `127.0.0.1:<free port>`; stops on drop.
pub struct TestWorker {
    health_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), WorkerError>>>,
}

impl TestWorker {
    /// Starts a worker for `nats_url` and `gateway_url` with `extra` environment variables
    /// (e.g. `[("max_inflight", "4")]`), and waits until `/healthz` answers 200.
    pub async fn start(nats_url: &str, gateway_url: &str, extra: &[(&str, &str)]) -> TestWorker {
        let worker = TestWorker::spawn(nats_url, gateway_url, extra).await;
        worker.wait_healthy().await;
        worker
    }

    /// Starts a worker without waiting for it to be healthy (e.g. while NATS is down).
    pub async fn spawn(nats_url: &str, gateway_url: &str, extra: &[(&str, &str)]) -> TestWorker {
        let mut env: HashMap<String, String> = [
            ("nats_url", nats_url),
            ("gateway_url", gateway_url),
            ("pull_expires", "1s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_env(&env).expect("test worker config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the worker's health port");
        let health_url = format!(
            "http://{}/healthz",
            listener.local_addr().expect("worker address")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(ferry_queue_worker::run(config, listener, shutdown));
        TestWorker {
            health_url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port>/healthz`.
    pub fn health_url(&self) -> &str {
        &self.health_url
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = self.health_url.replace("/healthz", "/metrics");
        let response = http_client().get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.expect("the metrics text")
    }

    /// `GET /healthz`: status and JSON body (status 0 when it does not answer).
    pub async fn health(&self) -> (u16, Value) {
        health(&self.health_url).await
    }

    /// Waits until `/healthz` answers 200.
    pub async fn wait_healthy(&self) {
        wait_healthy(&self.health_url).await;
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run()` to return (after [`begin_stop`](Self::begin_stop)).
    pub async fn join(&mut self) -> Result<(), WorkerError> {
        let task = self.task.take().expect("the worker was joined already");
        task.await.expect("the worker task panicked")
    }

    /// Signals shutdown and waits for `run()` to return.
    pub async fn stop(mut self) -> Result<(), WorkerError> {
        self.begin_stop();
        self.join().await
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the real `queue-worker` binary (built by [`crate::process::host_binary`]) with
/// `nats_url`, `gateway_url`, a free `port` and `extra`, and waits until `/healthz` answers 200.
/// Kill it with [`ServiceProcess::kill`] to simulate a crash.
pub async fn start_process(
    nats_url: &str,
    gateway_url: &str,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let port = free_port();
    let mut env: Vec<(String, String)> = [
        ("nats_url", nats_url),
        ("gateway_url", gateway_url),
        ("pull_expires", "1s"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("port".to_string(), port.to_string()));
    // Building the binary (once per process) blocks: keep the runtime free meanwhile.
    let process = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        ServiceProcess::start("ferry-queue-worker", "queue-worker", &env)
    })
    .await
    .expect("starting queue-worker");
    wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await;
    process
}

async fn health(url: &str) -> (u16, Value) {
    match http_client().get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_healthy(url: &str) {
    wait_until(
        "the queue-worker reports healthy",
        READY_TIMEOUT,
        || async { health(url).await.0 == 200 },
    )
    .await;
}

// === FakeGateway ===

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
            calls: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            per_function: Mutex::new(HashMap::new()),
            responder,
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, hyper::Error>(answer(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeGateway { url, state, task }
    }

    /// `http://127.0.0.1:<port>`: the worker's `gateway_url`.
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
    }
}

async fn answer(
    state: &GatewayState,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let call = Call {
        method: parts.method,
        path: parts.uri.path().to_string(),
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

// === queueing calls ===

/// Queues `request` on the default queue as the gateway does: subject
/// `ferry.calls.faas-request.<name>.<namespace>`, NATS headers `Ferry-Call-Id` and
/// `Nats-Msg-Id` set to `call_id`. The calls stream must exist (a healthy worker created it).
/// Returns the stream sequence once JetStream has stored the call.
pub async fn publish_call(js: &jetstream::Context, request: &QueueRequest, call_id: &str) -> u64 {
    let function = FunctionRef::parse(&request.function, &Name::default_namespace())
        .expect("a valid Function");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(CALL_ID_HEADER, call_id);
    headers.insert("Nats-Msg-Id", call_id);
    let payload = serde_json::to_vec(request).expect("serialising a QueueRequest");
    js.publish_with_headers(
        call_subject(DEFAULT_QUEUE, &function),
        headers,
        payload.into(),
    )
    .await
    .expect("publishing a call")
    .await
    .expect("JetStream storing a call")
    .sequence
}

/// Publishes `payload` as it is to the default queue's subject for function `f`.
pub async fn publish_raw(js: &jetstream::Context, payload: &[u8]) -> u64 {
    let function = FunctionRef::parse("f", &Name::default_namespace()).expect("a valid name");
    js.publish(
        call_subject(DEFAULT_QUEUE, &function),
        Bytes::copy_from_slice(payload),
    )
    .await
    .expect("publishing")
    .await
    .expect("JetStream storing")
    .sequence
}

/// Messages in the calls stream (acknowledged calls leave it: work-queue retention).
pub async fn stored_calls(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(CALLS_STREAM).await.expect("the calls stream");
    stream
        .info()
        .await
        .expect("calls stream info")
        .state
        .messages
}

/// Messages in `stream`.
async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    let mut stream = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("the stream {stream}: {e}"));
    stream.info().await.expect("stream info").state.messages
}

/// Callbacks waiting for a retry (messages in `ferry-callbacks`).
pub async fn stored_callbacks(js: &jetstream::Context) -> u64 {
    stream_messages(js, CALLBACK_STREAM).await
}

// === what the worker records ===

/// The status record of `call_id`, if there is one.
pub async fn call_status(js: &jetstream::Context, call_id: &str) -> Option<CallStatus> {
    let bucket = js
        .get_key_value(STATUS_BUCKET)
        .await
        .expect("the call-status bucket (a healthy worker created it)");
    let value = bucket
        .get(call_id)
        .await
        .expect("reading a status record")?;
    Some(serde_json::from_slice(&value).expect("a CallStatus record"))
}

/// Creates the status record `status` (as the gateway does after storing a call).
pub async fn create_status(js: &jetstream::Context, status: &CallStatus) {
    let bucket = js
        .get_key_value(STATUS_BUCKET)
        .await
        .expect("the call-status bucket (a healthy worker created it)");
    let value = serde_json::to_vec(status).expect("encoding a CallStatus");
    bucket
        .create(&status.call_id, value.into())
        .await
        .expect("creating a status record");
}

/// One message of the dead-letter stream.
#[derive(Debug, Clone)]
pub struct StoredDeadLetter {
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// Its NATS headers (first value of each).
    pub headers: BTreeMap<String, String>,
    /// The letter.
    pub letter: DeadLetter,
}

/// Every message in the dead-letter stream, oldest first.
pub async fn dead_letters(js: &jetstream::Context) -> Vec<StoredDeadLetter> {
    let mut stream = js
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the dead-letter stream (a healthy worker created it)");
    let (messages, first, last) = {
        let state = &stream.info().await.expect("dead-letter stream info").state;
        (state.messages, state.first_sequence, state.last_sequence)
    };
    let mut letters = Vec::new();
    if messages == 0 {
        return letters;
    }
    for sequence in first..=last {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        let headers = message
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.first()?.as_str().to_string())))
            .collect();
        letters.push(StoredDeadLetter {
            sequence,
            subject: message.subject.to_string(),
            headers,
            letter: serde_json::from_slice(&message.payload).expect("a DeadLetter"),
        });
    }
    letters
}
